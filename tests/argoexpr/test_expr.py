"""Argo's expression languages as the engine evaluates them: expr-lang (``{{=...}}``), govaluate (``when``),
enhanced ``depends``, and how results become parameter text. Expected values are Argo's (its docs, its
examples' stated outputs, and the Go libraries' semantics); every ``{{=``/``when``/``depends``/``expression``
in Argo's own examples must evaluate.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanflow_argo.argoexpr.expr import (
    ExprError,
    depends_tasks,
    eval_depends,
    eval_expr,
    eval_expr_bool,
    eval_when,
    expand_env,
    render,
    render_param,
    replace_expressions,
)
from scanflow_argo.clock import ManualClock
from scanflow_argo.errors import EngineError

CONFIG = '{"employees": [{"name": "Baris", "age":43},{"name": "Mo", "age": 42}, {"name": "Jai", "age" :44}]}'
WEATHER = '{"weekWeather": "eyJ0ZW1wcyI6IFszNCwgMjcsIDE1LCA1NywgNDZdfQo="}'
CLOCK = ManualClock(start=datetime(2031, 6, 7, 8, 9, 10, tzinfo=UTC).timestamp())

ENV: dict[str, Any] = {
    "inputs.parameters.foo": "3",
    "inputs.parameters.should-print": "true",
    "inputs.parameters.num": "7",
    "workflow.parameters.config": CONFIG,
    "workflow.parameters.json": '[{"name": "x", "value": "true"}]',
    "workflow.parameters.weather": WEATHER,
    "workflow.creationTimestamp": "2031-06-07T08:00:00Z",
    "workflow.status": "Running",
    "steps.flip-coin.outputs.result": "heads",
    "steps.heads.outputs.result": "it was heads",
    "steps.tails.outputs.result": "it was tails",
    "tasks.producer.outputs.parameters.msg": None,
    "item": 3,
}

# --- expr-lang -------------------------------------------------------------------------------------------------------------

EXPR_CASES: list[tuple[str, Any, str]] = [
    # (expression, value, rendered as Argo substitutes it into a template)
    ("1 + 2 * 3", 7, "7"),
    ("(1 + 2) * 3", 9, "9"),
    ("10 / 4", 2.5, "2.5"),
    ("10 / 5", 2.0, "2"),
    ("7 % 3", 1, "1"),
    ("-7 % 3", -1, "-1"),
    ("2 ** 10", 1024.0, "1024"),
    ("2 ^ 3 ^ 2", 512.0, "512"),
    ("-2 ** 2", -4.0, "-4"),
    ("9223372036854775807 + 1", -9223372036854775808, "-9223372036854775808"),
    ("1.5 + 1", 2.5, "2.5"),
    ("0.1 + 0.2", 0.30000000000000004, "0.30000000000000004"),
    ("1e6 * 1.0", 1e6, "1000000"),
    ("1 == 1.0", True, "true"),
    ("'1' == 1", False, "false"),
    ("[1, 2] == [1, 2.0]", True, "true"),
    ("1 < 2 < 3", True, "true"),
    ("3 > 2 > 2", False, "false"),
    ("'abc' < 'abd'", True, "true"),
    ("true && !false", True, "true"),
    ("true and not false", True, "true"),
    ("false || 1 == 1", True, "true"),
    ("false or false", False, "false"),
    ("'a' + 'b'", "ab", "ab"),
    ("'b' in ['a', 'b']", True, "true"),
    ("'c' not in ['a', 'b']", True, "true"),
    ("'k' in {k: 1}", True, "true"),
    ("1 in [1.0]", True, "true"),
    ("'hello' contains 'ell'", True, "true"),
    ("'hello' startsWith 'he' && 'hello' endsWith 'lo'", True, "true"),
    ("'hello' not contains 'z'", True, "true"),
    ("'tails' matches '^t'", True, "true"),
    ("'a\\nb' matches 'a$'", False, "false"),
    ("true ? 'yes' : 'no'", "yes", "yes"),
    ("1 > 2 ? 'a' : 2 > 1 ? 'b' : 'c'", "b", "b"),
    ("nil ?? 'fallback'", "fallback", "fallback"),
    ("'' ?? 'fallback'", "", ""),
    ("{a: {b: 1}}.a.b", 1, "1"),
    ("{a: 1}?.b?.c ?? 'none'", "none", "none"),
    ("{'a-b': 2}['a-b']", 2, "2"),
    ("[1, 2, 3][-1]", 3, "3"),
    ("[1, 2, 3, 4][1:3]", [2, 3], "[2,3]"),
    ("[1, 2, 3][:-1]", [1, 2], "[1,2]"),
    ("'hello'[1:]", "ello", "ello"),
    ("1..4", [1, 2, 3, 4], "[1,2,3,4]"),
    ("let x = 2; let y = 3; x * y", 6, "6"),
    ("if 1 > 2 { 'a' } else { 'b' }", "b", "b"),
    ("'A B' | lower() | split(' ')", ["a", "b"], '["a","b"]'),
    # pipes and concat, as #12 kind 8 and Argo's steps_test.go TestStepsWhenExprWithParamFilter use them
    # (expr-lang builtin/builtin.go: `x | f(y)` is f(x, y); toJSON is json.MarshalIndent(v, "", "  "))
    (
        "concat(['always'], 'true' == 'true' ? ['test'] : []) | toJSON()",
        '[\n  "always",\n  "test"\n]',
        '[\n  "always",\n  "test"\n]',
    ),
    ('\'["always","test"]\' | fromJSON() | join(\'","\')', 'always","test', 'always","test'),
    ("{b: 1, a: [2]} | toJSON()", '{\n  "a": [\n    2\n  ],\n  "b": 1\n}', '{\n  "a": [\n    2\n  ],\n  "b": 1\n}'),
    ("[1] | concat([], [2], ['x'])", [1, 2, "x"], '[1,2,"x"]'),
    ("[1, 2] | toJSON() | fromJSON() | map(# + 1)", [2.0, 3.0], "[2,3]"),
    ("// a comment\n 1 /* and another */ + 1", 2, "2"),
    ("`raw\\n`", "raw\\n", "raw\\n"),
    ("'\\u00e9\\x41\\101\\t'", "éAA\t", "éAA\t"),
    ("0x1F + 0b11 + 0o7 + 1_000", 1041, "1041"),
    (".5 + 1", 1.5, "1.5"),
    # predicates
    ("filter([1, 2, 3, 4], # % 2 == 0)", [2, 4], "[2,4]"),
    ("map([1, 2], {# * 10})", [10, 20], "[10,20]"),
    ("map([{n: 'a'}, {n: 'b'}], .n)", ["a", "b"], '["a","b"]'),
    ("all([1, 2], # > 0) && any([1, 2], # > 1) && none([1], # > 5) && one([1, 2], # > 1)", True, "true"),
    ("count([1, 2, 3], # > 1)", 2, "2"),
    ("count([true, false, true])", 2, "2"),
    ("sum([1, 2, 3])", 6, "6"),
    ("sum([{v: 1.5}, {v: 2}], .v)", 3.5, "3.5"),
    ("find([1, 2, 3], # > 1)", 2, "2"),
    ("findIndex([1, 2, 3], # > 5)", -1, "-1"),
    ("findLast([1, 2, 3], # < 3)", 2, "2"),
    ("reduce(1..5, #acc + #)", 15, "15"),
    ("reduce([1, 2], #acc + # * #index, 10)", 12, "12"),
    ("groupBy([1, 2, 3], # % 2 == 0)[true]", [2], "[2]"),
    ("sortBy([{a: 2}, {a: 1}], .a)", [{"a": 1}, {"a": 2}], '[{"a":1},{"a":2}]'),
    ("filter([[1, 2], [3]], {let row = #; len(row) > 1})", [[1, 2]], "[[1,2]]"),
    # builtins
    ("len('héllo') + len([1]) + len({a: 1})", 7, "7"),
    ("string(1) + string(2.5) + string(true) + string(nil)", "12.5true<nil>", "12.5true<nil>"),
    ("string([1, 'a']) + string({b: 1, a: 2})", "[1 a]map[a:2 b:1]", "[1 a]map[a:2 b:1]"),
    ("int('42') + int(3.9) + int(-3.9)", 42, "42"),
    ("float('2.5') + float(1)", 3.5, "3.5"),
    ("upper('a') + lower('B') + trim('  c  ') + trim('__d__', '_')", "AbCd".replace("C", "c"), "Abcd"),
    ("trimPrefix('HelloWorld', 'Hello') + trimSuffix('HelloWorld', 'Hello')", "WorldHelloWorld", "WorldHelloWorld"),
    ("split('a,b,c', ',', 2)", ["a", "b,c"], '["a","b,c"]'),
    ("splitAfter('a,b', ',')", ["a,", "b"], '["a,","b"]'),
    ("replace('aaa', 'a', 'b') + repeat('x', 3)", "bbbxxx", "bbbxxx"),
    ("join(['a', 'b'], '-') + join(['c'])", "a-bc", "a-bc"),
    ("indexOf('apple pie', 'pie') + lastIndexOf('a a a', 'a')", 10, "10"),
    ("hasPrefix('abc', 'ab') && hasSuffix('abc', 'bc')", True, "true"),
    ("max(1, 5, 3) + min([4, 2])", 7, "7"),
    ("mean([1, 2, 3]) + median([1, 3, 2, 10])", 4.5, "4.5"),
    ("abs(-3) + ceil(1.2) + floor(1.8) + round(2.5) + round(-2.5)", 6.0, "6"),
    ("type(1) + type(1.0) + type('') + type([]) + type({}) + type(nil) + type(true)", "intfloatstringarraymapnilbool", None),
    ("toJSON({b: [1, 2.5], a: '<&>'})", '{\n  "a": "\\u003c\\u0026\\u003e",\n  "b": [\n    1,\n    2.5\n  ]\n}', None),
    ("fromJSON('{\"a\": [1, 2]}').a[1]", 2.0, "2"),
    ("toBase64('Hello World') + ' ' + fromBase64('SGk=')", "SGVsbG8gV29ybGQ= Hi", "SGVsbG8gV29ybGQ= Hi"),
    ("first([1, 2]) + last([1, 2]) + get([1, 2], 5) ?? 0", 3, "3"),
    ("take([1, 2, 3], 2)", [1, 2], "[1,2]"),
    ("keys({a: 1})", ["a"], '["a"]'),
    ("values({a: 1})", [1], "[1]"),
    ("toPairs({a: 1})", [["a", 1]], '[["a",1]]'),
    ("fromPairs([['a', 1]])", {"a": 1}, '{"a":1}'),
    ("reverse([1, 2]) + uniq([1, 1, 2])", None, None),  # arrays do not add: an error, checked below
    ("concat([1], [2, 3]) == flatten([1, [2, [3]]])", True, "true"),
    ("sort([3, 1, 2]) == [1, 2, 3] && sort([3, 1, 2], 'desc') == [3, 2, 1]", True, "true"),
    ("bitand(12, 10) + bitor(1, 2) + bitxor(3, 1) + bitshl(1, 4) + bitshr(16, 2) + bitnot(0)", 32, "32"),
    ("duration('1h30m').Minutes()", 90.0, "90"),
    ("date('2024-03-05').Year() * 100 + date('2024-03-05').Month()", 202403, "202403"),
    ("date('2024-03-05 10:11:12').Format('Jan 2 15:04')", "Mar 5 10:11", "Mar 5 10:11"),
    ("(date('2024-01-02') - date('2024-01-01')).Hours()", 24.0, "24"),
    ("date('2024-01-01') + duration('36h') > date('2024-01-02')", True, "true"),
    ("now().Year()", 2031, "2031"),
    # Argo's additions
    ("asInt('12') * 2", 24, "24"),
    ("asFloat('1.5') * 2", 3.0, "3"),
    ("toJson({b: 1, a: [1, 'x']})", '{"a":[1,"x"],"b":1}', '{"a":[1,"x"],"b":1}'),
    ("jsonpath('{\"a\": {\"b\": [5, 6]}}', '$.a.b[1]')", 6.0, "6"),
    ('jsonpath(\'{"a": {"x": 1}, "b": {"x": 2}}\', \'$..x\')', [1.0, 2.0], "[1,2]"),
    ("jsonpath('[{\"v\": 1}, {\"v\": 2}]', '$[*].v')", [1.0, 2.0], "[1,2]"),
    ("jsonpath('{\"a\": [1, 2, 3]}', '$.a.length')", 3.0, "3"),
    ("jsonpath('{\"a\": [1, 2, 3]}', '$.a[0,2]')", [1.0, 3.0], "[1,3]"),
    ("jsonpath('{\"a\": [1, 2, 3]}', '$.a[-1:]')", [3.0], "[3]"),
    ('jsonpath(\'{"a": [{"k": "x"}, {"k": "y"}]}\', \'$.a[?(@.k == "y")].k\')', ["y"], '["y"]'),
    ("sprig.add(1, '2', 3.9) + sprig.sub(10, 4) + sprig.mul(2, 3) + sprig.div(7, 2) + sprig.mod(7, 4)", 24, "24"),
    ("sprig.max(1, 9, '3') + sprig.min(4, 2.5)", 11, "11"),
    ("sprig.maxf(1, 2.5) + sprig.minf(4, 0.5)", 3.0, "3"),
    ("sprig.upper('a') + sprig.lower('B') + sprig.trim(' c ') + sprig.title('hello world')", "AbcHello World", None),
    ("sprig.default('d', '') + sprig.default('d', 'given') + sprig.toString(2.0)", "dgiven2", "dgiven2"),
    ("sprig.title('hello wide-world_x')", "Hello Wide-World_x", "Hello Wide-World_x"),
    ("sprig.empty('') && sprig.empty(0) && sprig.empty([]) && !sprig.empty('x')", True, "true"),
    ("sprig.atoi('12') + sprig.int('0x10') + sprig.int64('7') + sprig.atoi('x')", 35, "35"),
    ("sprig.float64('2.5')", 2.5, "2.5"),
    ("sprig.repeat(2, 'ab') + sprig.replace('a', 'b', 'banana') + sprig.trimSuffix('.txt', 'f.txt')", "ababbbnbnbf", None),
    ("sprig.contains('an', 'banana') && sprig.hasPrefix('ba', 'banana') && sprig.hasSuffix('na', 'banana')", True, "true"),
    ("sprig.split('/', 'a/b')._1", "b", "b"),
    ("sprig.splitList(',', 'a,b') == ['a', 'b'] && sprig.join('-', ['a', 'b']) == 'a-b'", True, "true"),
    ("sprig.list(1, 'a')", [1, "a"], '[1,"a"]'),
    ("sprig.dict('a', 1, 'b')", {"a": 1, "b": ""}, '{"a":1,"b":""}'),
    ("sprig.b64enc('hi') + ' ' + sprig.b64dec('aGk=')", "aGk= hi", "aGk= hi"),
    ("sprig.toJson({a: 1}) + sprig.fromJson('[1]')[0]", None, None),  # string + float: an error, checked below
    ("sprig.fromJson('{\"a\": 2}').a", 2.0, "2"),
    ("sprig.ternary('y', 'n', 1 > 0) + sprig.quote('q') + sprig.squote(1)", "y\"q\"'1'", None),
    ("sprig.regexMatch('^a.c$', 'abc') && sprig.regexReplaceAll('(b)', 'abc', '[${1}]') == 'a[b]c'", True, "true"),
    ("sprig.regexFindAll('[0-9]', 'a1b2c3', 2)", ["1", "2"], '["1","2"]'),
    ("sprig.first([1, 2]) + sprig.last([1, 2]) + len(sprig.rest([1, 2, 3])) + len(sprig.uniq([1, 1]))", 6, "6"),
    ("sprig.has(2, [1, 2]) && sprig.hasKey({a: 1}, 'a')", True, "true"),
    ("sprig.until(3) == [0, 1, 2] && sprig.seq(3) == '1 2 3'", True, "true"),
    ("sprig.round(3.14159, 2)", 3.14, "3.14"),
    ("sprig.floor(1.5) + sprig.ceil(1.2)", 3.0, "3"),
    ("sprig.date('2006-01-02', 0)", "1970-01-01", "1970-01-01"),
    ("sprig.date('2006', 'not a time')", "2031", "2031"),
    ("sprig.sha256sum('a')[:8] + sprig.base('/x/y.txt') + sprig.ext('y.txt')", "ca978112y.txt.txt", None),
    ("sprig.nospace(' a b ') + sprig.trunc(2, 'abc') + sprig.substr(1, 3, 'abcd') + sprig.indent(2, 'x')", "ababbc  x", None),
    # Argo's variables
    ("asInt(inputs.parameters.foo) * 10", 30, "30"),
    ("inputs.parameters['should-print'] == 'true'", True, "true"),
    (
        "steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result",
        "it was heads",
        None,
    ),
    ("tasks.producer.outputs.parameters.msg ?? 'expr-fallback'", "expr-fallback", "expr-fallback"),
    ("item", 3, "3"),
    ("workflow.status == 'Running'", True, "true"),
    ("'workflow' in $env", True, "true"),
]


@pytest.mark.parametrize(("source", "value", "text"), [c for c in EXPR_CASES if c[1] is not None], ids=lambda v: str(v)[:60])
def test_expr_values(source: str, value: Any, text: str | None) -> None:
    got = eval_expr(source, ENV, clock=CLOCK)
    assert got == value
    assert type(got) is type(value)
    if text is not None:
        assert render(got) == text


def test_expr_keeps_int_and_float_apart() -> None:
    assert type(eval_expr("2 * 3", {})) is int
    assert type(eval_expr("6 / 3", {})) is float
    assert type(eval_expr("2 ** 2", {})) is float
    assert type(eval_expr("sprig.add(1, 2)", {})) is int
    assert type(eval_expr("fromJSON('1')", {})) is float  # encoding/json decodes every number as float64


def test_expr_examples_of_argo_render_as_argo_documents() -> None:
    """Outputs stated by Argo's examples (expression-destructure-json-complex, -reusing-verbose-snippets, -tag-template)."""
    env = {"workflow.parameters.config": CONFIG, "workflow.parameters.weather": WEATHER}
    complex_ = {
        "a": """jsonpath(workflow.parameters.config, '$.employees[?(@.name=="Baris")].age')""",
        "b": "jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')",
        "c": "jsonpath(workflow.parameters.config, '$.employees[0:1]')",
        "d": "jsonpath(workflow.parameters.config, '$.employees[*].name')",
    }
    got = {k: render(eval_expr(v, env)) for k, v in complex_.items()}
    assert got == {"a": "[43]", "b": "[43]", "c": '[{"age":43,"name":"Baris"}]', "d": '["Baris","Mo","Jai"]'}

    week = """map([jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')], {
        toJson({avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5,
                min: sprig.min(#[0], #[1], #[2], #[3], #[4]), max: sprig.max(#[0], #[1], #[2], #[3], #[4])})})[0]"""
    temps = render(eval_expr(week, env))
    assert temps == '{"avg":35.8,"max":57,"min":15}'
    stats = {
        k: render(eval_expr(f"jsonpath(inputs.parameters['week-temps'], '$.{k}')", {"inputs.parameters.week-temps": temps}))
        for k in ("avg", "min", "max")
    }
    assert stats == {"avg": "35.8", "min": "15", "max": "57"}

    assert render(eval_expr("toJson(filter([1, 3], {# > 1}))", {})) == "[3]"
    line = "hello {{=asInt(inputs.parameters.foo) * 10}} @ {{=sprig.date('2006', workflow.creationTimestamp)}}"
    assert (
        replace_expressions(
            line, {"inputs.parameters.foo": "3", "workflow.creationTimestamp": "2031-01-01T00:00:00Z"}, clock=CLOCK
        )
        == "hello 30 @ 2031"
    )


def test_render_and_render_param_follow_go() -> None:
    cases = [
        # value, json.Marshal text ({{=}}), %v text (valueFrom.expression)
        ("text", "text", "text"),
        (10, "10", "10"),
        (43.0, "43", "43"),
        (35.8, "35.8", "35.8"),
        (1e6, "1000000", "1e+06"),
        (1e21, "1e+21", "1e+21"),
        (1.5e-7, "1.5e-7", "1.5e-07"),
        (True, "true", "true"),
        ([1, "a", None], '[1,"a",null]', "[1 a <nil>]"),
        ({"b": 1, "a": [2.5]}, '{"a":[2.5],"b":1}', "map[a:[2.5] b:1]"),
        ({"html": "<a&b>"}, '{"html":"\\u003ca\\u0026b\\u003e"}', "map[html:<a&b>]"),
    ]
    for value, as_json, as_go in cases:
        assert render(value) == as_json, value
        assert render_param(value) == as_go, value
    with pytest.raises(ExprError, match="nil"):
        render(None)
    with pytest.raises(ExprError, match="nil"):
        render_param(None)
    with pytest.raises(ExprError, match="unsupported value"):
        render(eval_expr("1 / 0", {}))


def test_expand_env_nests_dotted_keys_like_argo() -> None:
    env = expand_env({"a.b.c": 1, "a.b": "dropped: a deeper key exists", "x": 2, "tasks.t-1.outputs.result": "r"})
    assert env == {"a": {"b": {"c": 1}}, "x": 2, "tasks": {"t-1": {"outputs": {"result": "r"}}}}
    assert eval_expr("tasks['t-1'].outputs.result + string(a.b.c)", {"tasks.t-1.outputs.result": "r", "a.b.c": 1}) == "r1"


def test_eval_expr_bool_needs_a_bool() -> None:
    last = {"exitCode": "2", "status": "Failed", "duration": "10", "message": "pod deleted"}
    expression = """asInt(lastRetry.exitCode) > 1 && lastRetry.status != "Error" && asInt(lastRetry.duration) < 120 &&
                    (false == true || lastRetry.message matches 'imminent node shutdown|pod deleted')"""
    assert eval_expr_bool(expression, {"lastRetry": last}) is True
    with pytest.raises(ExprError, match="cast expression result '3' to bool"):
        eval_expr_bool("1 + 2", {})


EXPR_ERRORS: list[tuple[str, str, int | None]] = [
    # (expression, message fragment, column (1-based) or None)
    ("foo + 1", "unknown name foo", 1),
    ("true ? 1 : missing", "unknown name missing", 12),  # checked before running, as expr's checker does
    ("1 +", "unexpected end of expression", None),
    ("(1 + 2", "unexpected end of expression", None),
    ("1 + 2)", 'unexpected token Bracket(")")', 6),
    ("'abc", "literal not terminated", 1),
    ("1 @ 2", "unrecognized character", 3),
    ("1 + 'a'", "invalid operation: int + string", 3),
    ("'a' - 'b'", "invalid operation: string - string", 5),
    ("1.5 % 2", "invalid operation: float64 % int", 5),
    ("5 % 0", "integer divide by zero", 3),
    ("nil.a", "unexpected token", 4),
    ("{a: 1}.a.b", "cannot fetch b from int", None),
    ("{a: nil}.a.b", "cannot fetch b from <nil>", None),
    ("[1][5]", "index out of range: 5 (array length is 1)", None),
    ("1 ?? 2 + 3", "cannot be mixed", 8),
    ("1 && true", "invalid operation: int && … (want bool)", 3),
    ("!1", "invalid operation: ! int (want bool)", 1),
    ("1 ? 2 : 3", "non-bool condition", None),
    ("'a' matches '('", "error parsing regexp", None),
    ("1 contains 'a'", "want string contains string", None),
    ("1 in {a: 1}", "cannot use int as a key of map[string]interface {}", None),
    ("asInt('3.5')", "invalid operation: int(3.5)", 1),
    ("asFloat('x')", "invalid operation: float(x)", 1),
    ("int(nil)", "int(<nil>)", 1),
    ("len(1)", "invalid argument for len (type int)", 1),
    ("upper(1)", "invalid argument for upper (type int, want string)", 1),
    ("filter(1, # > 0)", "cannot iterate over int in filter", 1),
    ("any(nil, # > 0)", "cannot iterate over <nil> in any", 1),
    ("filter([1], #)", "predicate of filter must return a bool", 1),
    ("reduce([], #acc)", "reduce of empty array", 1),
    ("jsonpath('{\"a\": 1}', '$.b')", "key 'b' not found", 1),
    ("jsonpath('not json', '$.a')", "Expecting value", 1),
    ("jsonpath('{}', 'a')", "must start with $", 1),
    ("sprig.nosuchfn(1)", "sprig.nosuchfn is not a function (it is nil: no such function)", 7),
    ("sprig.upper(1)", "argument 1 must be a string, not int", 7),
    ("sprig.div(1, 0)", "integer divide by zero", 7),
    ("sprig.fail('boom')", "boom", 7),
    ("date('31/12/2024')", "invalid date 31/12/2024", 1),
    ("duration('5 parsecs')", 'unknown unit " parsecs"', 1),
    ("reverse([1, 2]) + uniq([1, 1, 2])", "invalid operation: []interface {} + []interface {}", None),
    ("sprig.toJson({a: 1}) + sprig.fromJson('[1]')[0]", "invalid operation: string + float64", None),
    ("repeat('x', 2000000)", "memory budget exceeded", 1),
    ("1..2000000", "memory budget exceeded", None),
    ("let x = 1; y", "unknown name y", 12),
    ("concat(1)", "cannot concat int", 1),
    ("'a' | concat(['b'])", "cannot concat string", 7),
    ("map([1], # +)", "unexpected token", None),
    ("map([1], # ; 1)", "wrap predicate with brackets", None),
    ("{1 2}", "unexpected token Number", None),
    ("a not b", "unexpected token Identifier", None),
]


@pytest.mark.parametrize(("source", "fragment", "column"), EXPR_ERRORS, ids=lambda v: str(v)[:40])
def test_expr_errors_name_expression_position_and_cause(source: str, fragment: str, column: int | None) -> None:
    with pytest.raises(ExprError) as info:
        eval_expr(source, {"present": 1})
    err = info.value
    assert isinstance(err, EngineError)
    assert fragment in str(err)
    assert repr(source) in str(err)  # the message names the expression
    assert err.language == "expr" and err.expression == source
    if column is not None:
        assert err.position == column - 1
        assert f"column {column}" in str(err)


def test_expr_error_on_a_later_line_says_line_and_column() -> None:
    with pytest.raises(ExprError, match="at line 2, column 3: unknown name nope"):
        eval_expr("1 +\n  nope", {})


def test_expr_wraps_sprig_functions_that_are_not_local() -> None:
    with pytest.raises(ExprError, match=r"sprig\.genCA is not a function"):
        eval_expr("sprig.genCA('x', 1)", {})


def test_expr_does_not_run_python() -> None:
    for hostile in ("__import__('os').system('true')", "().__class__", "[].__class__.__base__"):
        with pytest.raises(ExprError):
            eval_expr(hostile, {})
    # env values are data: a string that looks like code stays a string
    assert eval_expr("x + ''", {"x": "__import__('os')"}) == "__import__('os')"


# --- when (govaluate) -----------------------------------------------------------------------------------------------------------

WHEN_CASES: list[tuple[str, bool]] = [
    ("heads == heads", True),
    ("heads == tails", False),
    ('"heads" == "heads"', True),
    ("'heads' == heads", True),
    ("heads != tails", True),
    ("5 > 3", True),
    ("10 < 9", False),
    ("2 < 10", True),  # numbers, not strings
    ("1 != 1 && 1 != 2", False),
    ("7 != 1 && 7 != 2", True),
    ("tails =~ '^t'", True),
    ("heads =~ tai", False),
    ("heads !~ tai", True),
    ("true && false", False),
    ("true || false", True),
    ("true == true", True),
    ("false == true", False),
    ("!(a == b)", True),
    ("!true", False),
    ("'a' in ('a','b')", True),
    ("c in (a, b)", False),
    ("3 in (1, 2, 3)", True),
    ("( heads == heads &&\n  tails == tails\n) ||\n( heads == tails &&\n  tails == tails )", True),
    ("Succeeded == Succeeded", True),
    ("Failed != Succeeded", True),
    ("YES == YES", True),
    ("1 + 1 == 2", True),
    ("'a' + 1 == 'a1'", True),
    ("2 * 3 - 1 == 5", True),
    ("10 - 2 - 3 == 5", True),
    ("2 ** 3 == 8", True),
    ("7 % 4 == 3", True),
    ("-1 < 0", True),
    ("abc < abd", True),
    ("'2024-01-02' > '2024-01-01'", True),  # dates in quotes compare as times
    ("0x10 == 16", True),
    ("(1 == 1) == true", True),
    ("true ? true : false", True),
    ("false ? true : false", False),
    ("[a b] == 'a b'", True),  # govaluate's bracketed variable, a string here
]


@pytest.mark.parametrize(("source", "expected"), WHEN_CASES, ids=lambda v: str(v)[:40])
def test_when(source: str, expected: bool) -> None:
    assert eval_when(source) is expected


def test_empty_when_is_true() -> None:
    assert eval_when("") is True


WHEN_ERRORS: list[tuple[str, str]] = [
    ("hello-world == hello-world", "cannot be used with the modifier '-', it is not a number"),
    ("heads > 1", "cannot be used with the comparator '>', it is not a number"),
    ("'a' && true", "cannot be used with the logical operator '&&', it is not a bool"),
    ("!heads", "Cannot transition token types from PREFIX [!] to STRING [heads]"),
    ("hello world == hello world", "Cannot transition token types from VARIABLE [hello] to VARIABLE [world]"),
    ("foo(1) == 1", "Undefined function foo"),
    ("a.b == c", "Unable to access unexported field 'b'"),
    ("a.B == c", "No parameter 'a' found."),
    ("(a == b", "Unbalanced parenthesis"),
    ("a ==", "Unexpected end of expression"),
    (" ", "Unexpected end of expression"),
    ("'a", "Unclosed string literal"),
    ("a === b", "Invalid token: '==='"),
    ("a == _b", "Invalid token: '_'"),
    ("1.2.3 == 1", "Unable to parse numeric value '1.2.3' to float64"),
    ("heads", "expected a boolean, got 'heads'"),
    ("1 + 1", "expected a boolean, got '2'"),
    ("a in (b)", "cannot be used with the comparator 'in'"),
    ("a =~ '('", "error parsing regexp"),
]


@pytest.mark.parametrize(("source", "fragment"), WHEN_ERRORS, ids=lambda v: str(v)[:40])
def test_when_errors(source: str, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        eval_when(source)
    assert fragment in str(info.value)
    assert info.value.language == "when"
    assert repr(source) in str(info.value)


# --- depends --------------------------------------------------------------------------------------------------------------------

DEPENDS_CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, bool]] = [
    ("A", {"A": "Succeeded"}, None, True),
    ("A", {"A": "Skipped"}, None, True),
    ("A", {"A": "Failed"}, None, False),
    ("A", {"A": "Omitted"}, None, False),
    ("A", {"A": "Error"}, None, False),
    ("A", {"A": "Failed"}, {"A": {"failed": True}}, True),
    ("A", {"A": "Error"}, {"A": {"error": True}}, True),
    ("A", {"A": "Error"}, {"A": {"failed": True}}, False),
    ("A && B", {"A": "Succeeded", "B": "Succeeded"}, None, True),
    ("A && B", {"A": "Succeeded", "B": "Failed"}, None, False),
    ("A || B", {"A": "Failed", "B": "Succeeded"}, None, True),
    ("A && (C.Succeeded || C.Failed)", {"A": "Succeeded", "C": "Failed"}, None, True),
    ("B.Failed && C", {"B": "Failed", "C": "Succeeded"}, None, True),
    ("B.Failed && C", {"B": "Succeeded", "C": "Succeeded"}, None, False),
    ("producer.Succeeded || producer.Skipped", {"producer": "Skipped"}, None, True),
    (
        "should-execute-2.Succeeded || should-not-execute",
        {"should-execute-2": "Skipped", "should-not-execute": "Omitted"},
        None,
        False,
    ),
    (
        "should-execute-2.Succeeded || should-not-execute",
        {"should-execute-2": "Succeeded", "should-not-execute": "Omitted"},
        None,
        True,
    ),
    ("A.Errored", {"A": "Error"}, None, True),
    ("A.Omitted", {"A": "Omitted"}, None, True),
    ("!A.Succeeded", {"A": "Failed"}, None, True),
    ("A.AnySucceeded", {"A": ["Failed", "Succeeded"]}, None, True),
    ("A.AnySucceeded", {"A": ["Failed", "Failed"]}, None, False),
    ("A.AllFailed", {"A": ["Failed", "Failed"]}, None, True),
    ("A.AllFailed", {"A": ["Failed", "Error"]}, None, False),
    ("A.AllFailed", {"A": []}, None, False),
    ("A.Failed", {"A": ["Succeeded", "Failed"]}, None, True),  # a fan-out with a failed child is Failed
    ("A", {"A": ["Succeeded", "Skipped"]}, None, True),
    ("A", {"A": []}, None, True),  # no items: Skipped
    ("A.Daemoned", {"A": {"phase": "Running", "daemoned": True}}, None, True),
    ("A", {"A": {"phase": "Succeeded", "children": ["Succeeded"]}}, None, True),
    ("A.AnySucceeded", {"A": {"phase": "Failed", "children": ["Succeeded", "Failed"]}}, None, True),
]


@pytest.mark.parametrize(("source", "states", "continue_on", "expected"), DEPENDS_CASES, ids=lambda v: str(v)[:40])
def test_depends(source: str, states: dict[str, Any], continue_on: dict[str, Any] | None, expected: bool) -> None:
    assert eval_depends(source, states, continue_on=continue_on) is expected


def test_depends_tasks_names_dependencies() -> None:
    assert depends_tasks("A && (B.Failed || C.AnySucceeded) || d-1") == {"A": "task", "B": "task", "C": "items", "d-1": "task"}
    assert depends_tasks("C.AllFailed && C") == {"C": "task"}  # as Argo: a later bare name wins


DEPENDS_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("A.Success", {"A": "Succeeded"}, "task result 'Success' for task 'A' is invalid"),
    ("A && B", {"A": "Succeeded"}, "task 'B' is not a finished task of this DAG"),
    ("A", {"A": "Running"}, "task 'A' has not finished (phase Running)"),
    ("A", {"A": "Happy"}, "unknown phase 'Happy'"),
    ("A &&", {"A": "Succeeded"}, "unexpected end of expression"),
    ("A", {"A": 3}, "must be a phase, a list of child phases or a mapping"),
    # Argo reads every word as a task name: `and`/`not` are tasks there, so use && and !
    ("A.Succeeded and not B.Failed", {"A": "Succeeded", "B": "Succeeded"}, "task 'and' is not a finished task"),
]


@pytest.mark.parametrize(("source", "states", "fragment"), DEPENDS_ERRORS, ids=lambda v: str(v)[:40])
def test_depends_errors(source: str, states: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        eval_depends(source, states)
    assert fragment in str(info.value)
    assert info.value.language == "depends"


# --- every expression in Argo's examples -------------------------------------------------------------------------------------

EXAMPLE_ENV: dict[str, Any] = {
    "workflow": {
        "name": "wf-x1",
        "namespace": "argo",
        "uid": "0000-1111",
        "status": "Running",
        "creationTimestamp": "2031-06-07T08:00:00Z",
        "parameters": {},
    },
    "inputs": {
        "parameters": {
            "foo": "3",
            "should-print": "true",
            "num": "3",
            "week-temps": '{"avg":35.8,"max":57,"min":15}',
            "safe-to-retry": "true",
        }
    },
    "steps": {
        "flip-coin": {"status": "Succeeded", "outputs": {"result": "heads"}},
        "heads": {"status": "Succeeded", "outputs": {"result": "heads it is", "artifacts": {"result": {"local": "h"}}}},
        "tails": {"status": "Skipped", "outputs": {"result": "tails it is", "artifacts": {"result": {"local": "t"}}}},
        "step-1": {"status": "Running"},
        "step2": {"status": "Succeeded"},
        "fibonacci-helper": {"outputs": {"parameters": {"result": "2"}}},
    },
    "tasks": {
        "flip-coin": {"status": "Succeeded", "outputs": {"result": "tails"}},
        "heads": {"outputs": {"result": "heads it is", "artifacts": {"result": {"local": "h"}}}},
        "tails": {"outputs": {"result": "tails it is", "artifacts": {"result": {"local": "t"}}}},
        "producer": {"outputs": {"parameters": {"msg": None}}},
    },
    "item": 3,
    "lastRetry": {"exitCode": "2", "status": "Failed", "duration": "10", "message": "pod deleted"},
    "cronworkflow": {"lastScheduledTime": None, "name": "sleep-when"},
    "data": ["a/main.log", "b/other.log"],
    "payload": {"appellation": "Mr", "commits": [{"added": ["subpath/A/x.txt"], "removed": [], "modified": ["README.md"]}]},
    "metadata": {"x-github-event": ["push"]},
    "discriminator": "github-path-filter",
}
# what plain {{...}} tags stand for when a `when:` or `expression:` is substituted before evaluation
TAG_VALUES = {
    "steps.flip-coin.outputs.result": "heads",
    "steps.flip-again.outputs.result": "tails",
    "tasks.flip-coin.outputs.result": "heads",
    "inputs.parameters.should-print": "true",
    "inputs.parameters.num": "3",
    "inputs.parameters.num-1": "2",
    "inputs.parameters.limit": "10",
    "inputs.parameters.safe-to-retry": "true",
    "steps.iterate-counter.outputs.result": "4",
    "steps.approval.outputs.parameters.approve": "YES",
    "steps.flakey-container.status": "Succeeded",
    "steps.submit-resource.status": "Failed",
    "item.evenness": "even",
    "workflow.status": "Succeeded",
    "status": "Succeeded",
}
EXPECTED_WHEN = {  # (file, substituted when) → Argo's result with the values above
    "{{steps.flip-coin.outputs.result}} == heads": True,
    "{{steps.flip-coin.outputs.result}} == tails": False,
    "{{inputs.parameters.num}} != 1 && {{inputs.parameters.num}} != 2": True,
    "{{inputs.parameters.num-1}} != 1 && {{inputs.parameters.num-1}} != 2": False,
    "{{steps.iterate-counter.outputs.result}} < {{inputs.parameters.limit}}": True,
    "{{inputs.parameters.should-print}} == true": True,
    "{{steps.flip-again.outputs.result}} =~ tai": True,
    "{{workflow.status}} != Succeeded": False,
    "{{= inputs.parameters[\"should-print\"] == 'true'}}": True,
}


def _strings(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _strings(v, (*path, str(k)))]
    if isinstance(node, list):
        return [item for v in node for item in _strings(v, path)]
    return [(path, node)] if isinstance(node, str) else []


def _examples(shared_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    root = shared_dir / "argo-examples"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return _load_examples(root)


@functools.cache
def _load_examples(root: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                docs.append((str(path.relative_to(root)), doc))
    return docs


def _substitute_tags(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        key = m.group(1).strip()
        if key not in TAG_VALUES:
            raise AssertionError(f"the test has no plausible value for {{{{{key}}}}}")
        return TAG_VALUES[key]

    return re.sub(r"\{\{(?!=)(.*?)\}\}", one, text)


def _example_env(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    spec = spec.get("workflowSpec", spec)
    params = {p["name"]: str(p.get("value", "")) for p in (spec.get("arguments") or {}).get("parameters") or [] if "name" in p}
    env = dict(EXAMPLE_ENV)
    # conditionals.yaml reads workflow.parameters.json without declaring it (it is passed with -p)
    env["workflow"] = {**EXAMPLE_ENV["workflow"], "parameters": {"foo": "bar", "json": '[{"value": "true"}]', **params}}
    return env


@pytest.mark.shared
def test_every_expr_in_argos_examples_evaluates(shared_dir: Path) -> None:
    seen = 0
    for name, doc in _examples(shared_dir):
        env = _example_env(doc)
        for path, text in _strings(doc):
            sources = [m.group(1) for m in re.finditer(r"\{\{=(.*?)\}\}", text, re.DOTALL)]
            key = path[-1] if path else ""
            if key in ("expression", "fromExpression") or (
                key in ("selector", "event") and doc.get("kind") == "WorkflowEventBinding"
            ):
                sources.append(_substitute_tags(text))
            for source in sources:
                try:
                    eval_expr(source, env, clock=CLOCK)
                except ExprError as err:  # pragma: no cover - the assertion message is the point
                    raise AssertionError(f"{name} {'.'.join(path)}: {err}") from err
                seen += 1
    assert seen >= 30, f"only {seen} expressions found in the examples"


@pytest.mark.shared
def test_every_when_in_argos_examples_evaluates(shared_dir: Path) -> None:
    seen = 0
    for name, doc in _examples(shared_dir):
        env = _example_env(doc)
        for path, text in _strings(doc):
            if not path or path[-1] != "when":
                continue
            substituted = replace_expressions(text, env, clock=CLOCK)
            substituted = _substitute_tags(substituted)
            try:
                result = eval_when(substituted)
            except ExprError as err:  # pragma: no cover
                raise AssertionError(f"{name}: when {text!r} → {substituted!r}: {err}") from err
            if text in EXPECTED_WHEN:
                assert result is EXPECTED_WHEN[text], f"{name}: when {text!r}"
            seen += 1
    assert seen >= 30, f"only {seen} when clauses found in the examples"


@pytest.mark.shared
def test_every_depends_in_argos_examples_evaluates(shared_dir: Path) -> None:
    seen = 0
    for name, doc in _examples(shared_dir):
        for path, text in _strings(doc):
            if not path or path[-1] != "depends":
                continue
            deps = depends_tasks(text)
            assert deps, f"{name}: {text!r} names no task"
            assert eval_depends(text, dict.fromkeys(deps, "Succeeded")) in (True, False), name
            seen += 1
    assert seen >= 60, f"only {seen} depends found in the examples"


@pytest.mark.shared
def test_examples_conditions_decide_like_argo(shared_dir: Path) -> None:
    """dag-enhanced-depends: with A and B succeeded and C failed, D runs (A && (C.Succeeded || C.Failed))."""
    assert eval_depends("A && (C.Succeeded || C.Failed)", {"A": "Succeeded", "C": "Failed"}) is True
    assert eval_depends("B.Failed && C", {"B": "Succeeded", "C": "Failed"}) is False
    # conditional-parameters: the output comes from the branch that ran
    source = "steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result"
    assert render_param(eval_expr(source, EXAMPLE_ENV)) == "heads it is"
    # fibonacci-seq-conditional-param
    fib = "asInt(inputs.parameters.num) == 1? 1: asInt(inputs.parameters.num) == 2? 1: steps['fibonacci-helper'].outputs.parameters.result"
    assert render_param(eval_expr(fib, {**EXAMPLE_ENV, "inputs": {"parameters": {"num": "2"}}})) == "1"
    assert render_param(eval_expr(fib, EXAMPLE_ENV)) == "2"
    # cron-when: never scheduled → run; scheduled 10 s ago → wait
    cron = "cronworkflow.lastScheduledTime == nil || (now() - cronworkflow.lastScheduledTime).Seconds() > 360"
    assert eval_expr(cron, {"cronworkflow": {"lastScheduledTime": None}}, clock=CLOCK) is True
    recent = datetime.fromtimestamp(CLOCK.now() - 10, UTC)
    assert eval_expr(cron, {"cronworkflow": {"lastScheduledTime": recent}}, clock=CLOCK) is False
    # data-transformations
    assert eval_expr('filter(data, {# endsWith "main.log"})', EXAMPLE_ENV) == ["a/main.log"]
    # github-path-filter event binding: the push touches subpath/A/
    selector = next(
        text
        for name, doc in _examples(shared_dir)
        if doc.get("kind") == "WorkflowEventBinding"
        for path, text in _strings(doc)
        if path[-1:] == ("selector",) and "any(" in text
    )
    assert eval_expr(selector, EXAMPLE_ENV) is True
    assert eval_expr(selector, {**EXAMPLE_ENV, "payload": {"commits": [{"added": ["other/x"]}]}}) is False
