"""Argo's ``when``: github.com/Knetic/govaluate with every variable turned into a string (``shouldExecute``).

Argo substitutes ``{{...}}`` first, then tokenizes with govaluate and rewrites each VARIABLE token as a STRING
token, so ``heads == heads`` compares two strings and ``Succeeded == Succeeded`` is true without quotes. The rest is
govaluate's own: numbers are float64 (``5 > 3``), ``true``/``false`` are booleans, quoted text that looks like a
date becomes its unix time, ``=~``/``!~`` take RE2 patterns, ``in`` takes a parenthesised list, ``+`` concatenates
when either side is a string, comparisons need two numbers or two strings, ``&&``/``||`` need booleans. A word with
a dot (``a.b``) is a govaluate accessor, which Argo cannot resolve: it is an error there, so it is one here.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from .errors import Fail
from .golang import go_str, parse_time, regex

__all__ = ["eval_govaluate"]

# token kinds
NUMERIC, BOOLEAN, STRING, PATTERN, TIME, VARIABLE, ACCESSOR = (
    "NUMERIC",
    "BOOLEAN",
    "STRING",
    "PATTERN",
    "TIME",
    "VARIABLE",
    "ACCESSOR",
)
COMPARATOR, LOGICALOP, MODIFIER, PREFIX, TERNARY, SEPARATOR = (
    "COMPARATOR",
    "LOGICALOP",
    "MODIFIER",
    "PREFIX",
    "TERNARY",
    "SEPARATOR",
)
CLAUSE, CLAUSE_CLOSE = "CLAUSE", "CLAUSE_CLOSE"


class Tok(NamedTuple):
    kind: str
    value: Any
    pos: int


_COMPARATORS = {"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"}
_LOGICAL = {"&&", "||"}
_MODIFIERS = {"+", "-", "*", "/", "%", "**", "&", "|", "^", ">>", "<<"}
_PREFIXES = {"-", "!", "~"}
_TERNARY = {"?", ":", "??"}

_VALUES = (NUMERIC, BOOLEAN, VARIABLE, PATTERN, ACCESSOR, STRING, TIME, CLAUSE)
_NEXT: dict[str, tuple[str, ...]] = {  # govaluate's lexerState.validNextKinds
    "START": (PREFIX, *_VALUES),
    CLAUSE: (PREFIX, *_VALUES, CLAUSE_CLOSE),
    CLAUSE_CLOSE: (
        COMPARATOR,
        MODIFIER,
        NUMERIC,
        BOOLEAN,
        VARIABLE,
        STRING,
        PATTERN,
        TIME,
        CLAUSE,
        CLAUSE_CLOSE,
        LOGICALOP,
        TERNARY,
        SEPARATOR,
    ),
    NUMERIC: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR),
    BOOLEAN: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR),
    STRING: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR),
    TIME: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, SEPARATOR),
    PATTERN: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, SEPARATOR),
    VARIABLE: (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR),
    MODIFIER: (PREFIX, NUMERIC, VARIABLE, ACCESSOR, STRING, BOOLEAN, CLAUSE, CLAUSE_CLOSE),
    COMPARATOR: (PREFIX, NUMERIC, BOOLEAN, VARIABLE, ACCESSOR, STRING, TIME, CLAUSE, CLAUSE_CLOSE, PATTERN),
    LOGICALOP: (PREFIX, NUMERIC, BOOLEAN, VARIABLE, ACCESSOR, STRING, TIME, CLAUSE, CLAUSE_CLOSE),
    PREFIX: (NUMERIC, BOOLEAN, VARIABLE, ACCESSOR, CLAUSE, CLAUSE_CLOSE),
    TERNARY: (PREFIX, NUMERIC, BOOLEAN, STRING, TIME, VARIABLE, ACCESSOR, CLAUSE, SEPARATOR),
    ACCESSOR: (CLAUSE, MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR),
    SEPARATOR: (PREFIX, NUMERIC, BOOLEAN, STRING, TIME, VARIABLE, ACCESSOR, CLAUSE),
}
_CAN_END = {CLAUSE_CLOSE, NUMERIC, BOOLEAN, STRING, TIME, PATTERN, VARIABLE, ACCESSOR}

_TIME_LAYOUTS = (  # govaluate's tryParseTime, in order
    "Mon Jan _2 15:04:05 2006",
    "Mon Jan _2 15:04:05 MST 2006",
    "Mon Jan 02 15:04:05 -0700 2006",
    "3:04PM",
    "2006-01-02T15:04:05Z07:00",
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006-01-02",
    "2006-01-02 15:04",
    "2006-01-02 15:04:05",
    "2006-01-02 15:04:05-07:00",
    "2006-01-02T15Z0700",
    "2006-01-02T15:04Z0700",
    "2006-01-02T15:04:05Z0700",
    "2006-01-02T15:04:05.999999999Z0700",
)


def _try_time(text: str) -> datetime | None:
    if not text or not (text[0].isdigit() or text[:3].isalpha()):
        return None
    for layout in _TIME_LAYOUTS:
        try:
            return parse_time(text, layout)
        except Fail:
            continue
    return None


def _is_digit(c: str) -> bool:
    return c.isdigit()


def _is_variable_char(c: str) -> bool:
    return c.isalpha() or c.isdigit() or c == "_" or c == "."


def _is_symbol_char(c: str) -> bool:
    return not (c.isdigit() or c.isalpha() or c in "()[]'\"")


def _tokenize(text: str) -> list[Tok]:
    tokens: list[Tok] = []
    state = "START"
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        start = i
        if c.isdigit() or c == ".":
            if c == "0" and i + 1 < n and text[i + 1] == "x":
                j = i + 2
                while j < n and text[j] in "0123456789abcdefABCDEF":
                    j += 1
                try:
                    tok = Tok(NUMERIC, float(int(text[i + 2 : j], 16)), start)
                except ValueError:
                    raise Fail(f"Unable to parse hex value '{text[i + 2 : j]}' to uint64", start) from None
                i = j
            else:
                j = i
                while j < n and (text[j].isdigit() or text[j] == "."):
                    j += 1
                try:
                    tok = Tok(NUMERIC, float(text[i:j]), start)
                except ValueError:
                    raise Fail(f"Unable to parse numeric value '{text[i:j]}' to float64", start) from None
                i = j
        elif c == ",":
            tok, i = Tok(SEPARATOR, ",", start), i + 1
        elif c == "[":
            value, i = _read_quoted(text, i + 1, "]", "Unclosed parameter bracket", start)
            tok = Tok(VARIABLE, value, start)
        elif c.isalpha():
            j = i
            while j < n and _is_variable_char(text[j]):
                j += 1
            word = text[i:j]
            i = j
            if word in ("true", "false"):
                tok = Tok(BOOLEAN, word == "true", start)
            elif word in ("in", "IN"):
                tok = Tok(COMPARATOR, "in", start)
            elif "." in word:
                if word.endswith("."):
                    raise Fail(f"Hanging accessor on token '{word}'", start)
                parts = word.split(".")
                for part in parts[1:]:
                    if part[:1] != part[:1].upper():
                        raise Fail(f"Unable to access unexported field '{part}' in token '{word}'", start)
                tok = Tok(ACCESSOR, parts, start)
            else:
                tok = Tok(VARIABLE, word, start)
        elif c in "'\"":
            value, i = _read_quoted(text, i + 1, "'\"", "Unclosed string literal", start)
            when = _try_time(value)
            tok = Tok(TIME, when, start) if when is not None else Tok(STRING, value, start)
        elif c == "(":
            tok, i = Tok(CLAUSE, "(", start), i + 1
        elif c == ")":
            tok, i = Tok(CLAUSE_CLOSE, ")", start), i + 1
        else:
            j = i
            while j < n and _is_symbol_char(text[j]) and not text[j].isspace():
                j += 1
            symbol = text[i:j]
            i = j
            if PREFIX in _NEXT[state] and symbol in _PREFIXES:
                tok = Tok(PREFIX, symbol, start)
            elif symbol in _MODIFIERS:
                tok = Tok(MODIFIER, symbol, start)
            elif symbol in _LOGICAL:
                tok = Tok(LOGICALOP, symbol, start)
            elif symbol in _COMPARATORS:
                tok = Tok(COMPARATOR, symbol, start)
            elif symbol in _TERNARY:
                tok = Tok(TERNARY, symbol, start)
            else:
                raise Fail(f"Invalid token: '{symbol}' (hint: try wrapping the affected expression in quotes (\"))", start)
        tokens.append(tok)
        state = tok.kind
    depth = 0
    for tok in tokens:
        depth += tok.kind == CLAUSE
        depth -= tok.kind == CLAUSE_CLOSE
    if depth != 0:
        raise Fail("Unbalanced parenthesis", None)
    return tokens


def _read_quoted(text: str, i: int, stops: str, unclosed: str, start: int) -> tuple[str, int]:
    buf = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])  # a backslash escapes any character
            i += 2
            continue
        if c in stops:
            return "".join(buf), i + 1
        buf.append(c)
        i += 1
    raise Fail(unclosed, start)


def _check_syntax(tokens: list[Tok]) -> None:
    state = "START"
    last: Tok | None = None
    for tok in tokens:
        if tok.kind not in _NEXT[state]:
            if last is not None and last.kind == VARIABLE and tok.kind == CLAUSE:
                raise Fail(f"Undefined function {last.value}", last.pos)
            shown = go_str(last.value) if last is not None else ""
            raise Fail(f"Cannot transition token types from {state} [{shown}] to {tok.kind} [{_show(tok)}]", tok.pos)
        state = tok.kind
        last = tok
    if state not in _CAN_END:
        raise Fail("Unexpected end of expression", None)


def _show(tok: Tok) -> str:
    if isinstance(tok.value, list):
        return "[" + " ".join(tok.value) + "]"
    if isinstance(tok.value, datetime):
        return str(tok.value)
    return go_str(tok.value)


# --- planning: govaluate's precedence levels, lowest first ------------------------------------------------------------------

_LEVELS: list[tuple[str, set[str]]] = [
    (SEPARATOR, {","}),
    (TERNARY, {"?", ":", "??"}),
    (LOGICALOP, {"||"}),
    (LOGICALOP, {"&&"}),
    (COMPARATOR, _COMPARATORS),
    (MODIFIER, {"^", "&", "|"}),
    (MODIFIER, {">>", "<<"}),
    (MODIFIER, {"+", "-"}),
    (MODIFIER, {"*", "/", "%"}),
    (MODIFIER, {"**"}),
]


class _Planner:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def level(self, index: int) -> Any:
        if index == len(_LEVELS):
            return self.value()
        kind, symbols = _LEVELS[index]
        left = self.level(index + 1)
        while (tok := self.peek()) is not None and tok.kind == kind and tok.value in symbols:
            self.i += 1
            right = self.level(index + 1)
            left = ("bin", tok.value, left, right, tok.pos)
        return left

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            return ("lit", None)
        self.i += 1
        if tok.kind == CLAUSE:
            if (nxt := self.peek()) is not None and nxt.kind == CLAUSE_CLOSE:
                self.i += 1
                return ("lit", None)
            inner = self.level(0)
            self.i += 1  # the closing parenthesis, guaranteed by the balance check
            return inner
        if tok.kind == PREFIX:
            return ("prefix", tok.value, self.value(), tok.pos)
        if tok.kind == TIME:
            return ("lit", float(int(tok.value.timestamp() // 1)))
        if tok.kind in (NUMERIC, STRING, BOOLEAN, PATTERN):
            return ("lit", tok.value)
        if tok.kind == ACCESSOR:
            raise Fail(f"No parameter '{tok.value[0]}' found.", tok.pos)
        raise Fail(f"Unable to plan token kind: '{tok.kind}', value: '{_show(tok)}'", tok.pos)


# --- evaluation -----------------------------------------------------------------------------------------------------------------

_LOGICAL_MSG = "Value '{}' cannot be used with the logical operator '{}', it is not a bool"
_MODIFIER_MSG = "Value '{}' cannot be used with the modifier '{}', it is not a number"
_COMPARATOR_MSG = "Value '{}' cannot be used with the comparator '{}', it is not a number"
_TERNARY_MSG = "Value '{}' cannot be used with the ternary operator '{}', it is not a bool"


def _is_num(v: Any) -> bool:
    return type(v) is float


def _fail(template: str, value: Any, op: str, pos: int) -> Fail:
    return Fail(template.format(_val(value), "=" if op == "==" else op), pos)


def _val(v: Any) -> str:
    if isinstance(v, re.Pattern):
        return v.pattern
    if isinstance(v, list):
        return "[" + " ".join(_val(x) for x in v) + "]"
    return go_str(v)


def _eval(node: Any) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "prefix":
        _, op, inner, pos = node
        v = _eval(inner)
        if op == "!":
            if type(v) is not bool:
                raise Fail(f"Value '{_val(v)}' cannot be used with the prefix '!'", pos)
            return not v
        if not _is_num(v):
            raise Fail(f"Value '{_val(v)}' cannot be used with the prefix '{op}'", pos)
        return -v if op == "-" else float(~int(v))
    _, op, left_node, right_node, pos = node
    left = _eval(left_node)
    if op == "&&" and left is False:
        return False
    if op == "||" and left is True:
        return True
    if op == "??" and left is not None:
        return left
    if op == ":" and left is not None:
        return left
    if op == "?" and left is False:
        return None
    right = _eval(right_node)
    if op in ("&&", "||"):
        for v in (left, right):
            if type(v) is not bool:
                raise _fail(_LOGICAL_MSG, v, op, pos)
        return left and right if op == "&&" else left or right
    if op == "?":
        if type(left) is not bool:
            raise _fail(_TERNARY_MSG, left, op, pos)
        return right if left else None
    if op in (":", "??"):
        return right
    if op == ",":
        return [*left, right] if isinstance(left, list) else [left, right]
    if op == "==":
        return _deep_equal(left, right)
    if op == "!=":
        return not _deep_equal(left, right)
    if op in ("<", "<=", ">", ">="):
        if not ((_is_num(left) and _is_num(right)) or (type(left) is str and type(right) is str)):
            raise _fail(_COMPARATOR_MSG, left, op, pos)
        a, b = (left.encode(), right.encode()) if type(left) is str else (left, right)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("=~", "!~"):
        if type(left) is not str:
            raise _fail(_COMPARATOR_MSG, left, op, pos)
        if not isinstance(right, str | re.Pattern):
            raise _fail(_COMPARATOR_MSG, right, op, pos)
        pattern = right if isinstance(right, re.Pattern) else regex(right)
        found = pattern.search(left) is not None
        return found if op == "=~" else not found
    if op == "in":
        if not isinstance(right, list):
            raise _fail(_COMPARATOR_MSG, right, op, pos)
        return any(type(item) is type(left) and item == left for item in right)
    if op == "+":
        if type(left) is str or type(right) is str:
            return _val(left) + _val(right)
        if not (_is_num(left) and _is_num(right)):
            raise _fail(_MODIFIER_MSG, left, op, pos)
        return left + right
    for v in (left, right):
        if not _is_num(v):
            raise _fail(_MODIFIER_MSG, v, op, pos)
    return _arith(op, left, right)


def _arith(op: str, a: float, b: float) -> float:
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)
        return a / b
    if op == "%":
        return math.fmod(a, b) if b != 0 else math.nan
    if op == "**":
        try:
            return math.pow(a, b)
        except (OverflowError, ZeroDivisionError):
            return math.inf
        except ValueError:
            return math.nan
    ia, ib = int(a), int(b)
    if op == "&":
        return float(ia & ib)
    if op == "|":
        return float(ia | ib)
    if op == "^":
        return float(ia ^ ib)
    if ib < 0:
        raise Fail(f"negative shift amount {ib}")
    if op == "<<":
        return float(((ia % (1 << 64)) << min(ib, 64)) % (1 << 64))
    return float((ia % (1 << 64)) >> min(ib, 64))  # ">>"


def _deep_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, re.Pattern):
        return a.pattern == b.pattern
    return bool(a == b)


@lru_cache(maxsize=1024)
def _plan(source: str) -> Any:
    tokens = _tokenize(source)
    _check_syntax(tokens)
    # Argo's shouldExecute: every VARIABLE becomes a STRING, then govaluate re-checks and re-plans the tokens
    tokens = [Tok(STRING, t.value, t.pos) if t.kind == VARIABLE else t for t in tokens]
    _check_syntax(tokens)
    for index, tok in enumerate(tokens):
        if tok.kind == COMPARATOR and tok.value in ("=~", "!~") and index + 1 < len(tokens) and tokens[index + 1].kind == STRING:
            tokens[index + 1] = Tok(PATTERN, regex(tokens[index + 1].value), tokens[index + 1].pos)
    if not tokens:
        return ("lit", None)
    planner = _Planner(tokens)
    return planner.level(0)


def eval_govaluate(source: str) -> Any:
    """Evaluate an already-substituted ``when`` string the way Argo does; returns govaluate's value."""
    return _eval(_plan(source))
