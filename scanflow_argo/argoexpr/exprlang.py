"""expr-lang (github.com/expr-lang/expr v1.17, the language of Argo's ``{{=...}}``): parser and evaluator.

The parser is a port of expr's Pratt parser (same precedences, same associativity, chained comparisons, ``not in``,
``??`` that cannot mix with other operators unparenthesised, predicates with ``#``/``#acc``/``#index``/``.Field``,
``let``, ``if {} else {}``, pipes, optional chaining, slices). Names are checked before evaluation, as expr's
checker does, so a misspelt variable fails even in a branch that is not taken. Evaluation follows expr's VM.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from .errors import Fail
from .golang import go_type, regex
from .lexer import Token, lex
from .values import (
    add,
    divide,
    equal,
    fetch,
    in_,
    less,
    modulo,
    multiply,
    negate,
    power,
    subtract,
    to_int,
)

__all__ = ["Ctx", "Node", "evaluate", "parse"]

UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
BINARY: dict[str, tuple[int, bool]] = {  # precedence, left-associative
    "|": (0, True),
    "or": (10, True),
    "||": (10, True),
    "and": (15, True),
    "&&": (15, True),
    "==": (20, True),
    "!=": (20, True),
    "<": (20, True),
    ">": (20, True),
    ">=": (20, True),
    "<=": (20, True),
    "in": (20, True),
    "matches": (20, True),
    "contains": (20, True),
    "startsWith": (20, True),
    "endsWith": (20, True),
    "..": (25, True),
    "+": (30, True),
    "-": (30, True),
    "*": (60, True),
    "/": (60, True),
    "%": (60, True),
    "**": (100, False),
    "^": (100, False),
    "??": (500, True),
}
_COMPARISON = {"<", ">", ">=", "<="}
_NEGATABLE = {"contains", "matches", "startsWith", "endsWith", "in"}
# builtin name -> argument kinds ("e" expression, "p" predicate, "?" suffix = optional)
PREDICATES: dict[str, tuple[str, ...]] = {
    "all": ("e", "p"),
    "none": ("e", "p"),
    "any": ("e", "p"),
    "one": ("e", "p"),
    "filter": ("e", "p"),
    "map": ("e", "p"),
    "count": ("e", "p?"),
    "sum": ("e", "p?"),
    "find": ("e", "p"),
    "findIndex": ("e", "p"),
    "findLast": ("e", "p"),
    "findLastIndex": ("e", "p"),
    "groupBy": ("e", "p"),
    "sortBy": ("e", "p", "e?"),
    "reduce": ("e", "p", "e?"),
}


# --- evaluation context ---------------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What an evaluation sees: the (expanded) environment, ``let`` variables, predicate frames, builtins, the time."""

    env: Mapping[str, Any]
    builtins: Mapping[str, Callable[..., Any]]
    now: Callable[[], datetime]
    scopes: list[dict[str, Any]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)


class _NilChain(Exception):
    pass


# --- AST --------------------------------------------------------------------------------------------------------------------


class Node:
    __slots__ = ("pos",)
    pos: int

    def ev(self, c: Ctx) -> Any:  # pragma: no cover - every node overrides
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        return ()


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any, pos: int) -> None:
        self.value, self.pos = value, pos

    def ev(self, c: Ctx) -> Any:
        return self.value


class Ident(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, pos: int) -> None:
        self.name, self.pos = name, pos

    def ev(self, c: Ctx) -> Any:
        for scope in reversed(c.scopes):
            if self.name in scope:
                return scope[self.name]
        if self.name == "$env":
            return dict(c.env)
        if self.name in c.env:
            return c.env[self.name]
        raise Fail(f"unknown name {self.name}", self.pos)


class Pointer(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, pos: int) -> None:
        self.name, self.pos = name, pos

    def ev(self, c: Ctx) -> Any:
        frame = c.frames[-1]
        if self.name not in frame:
            raise Fail(f"unknown pointer #{self.name}", self.pos)
        return frame[self.name]


class Member(Node):
    __slots__ = ("node", "optional", "prop")

    def __init__(self, node: Node, prop: Node, optional: bool, pos: int) -> None:
        self.node, self.prop, self.optional, self.pos = node, prop, optional, pos

    def children(self) -> tuple[Node, ...]:
        return (self.node, self.prop)

    def ev(self, c: Ctx) -> Any:
        base = self.node.ev(c)
        if base is None and self.optional:
            raise _NilChain
        key = self.prop.ev(c)
        try:
            return fetch(base, key)
        except Fail as err:
            raise Fail(err.cause, self.pos) from None


class Chain(Node):
    __slots__ = ("node",)

    def __init__(self, node: Node, pos: int) -> None:
        self.node, self.pos = node, pos

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def ev(self, c: Ctx) -> Any:
        try:
            return self.node.ev(c)
        except _NilChain:
            return None


class SliceNode(Node):
    __slots__ = ("node", "start", "stop")

    def __init__(self, node: Node, start: Node | None, stop: Node | None, pos: int) -> None:
        self.node, self.start, self.stop, self.pos = node, start, stop, pos

    def children(self) -> tuple[Node, ...]:
        return tuple(n for n in (self.node, self.start, self.stop) if n is not None)

    def ev(self, c: Ctx) -> Any:
        base = self.node.ev(c)
        if not isinstance(base, list | tuple | str | bytes):
            raise Fail(f"cannot slice {go_type(base)}", self.pos)
        length = len(base.encode()) if isinstance(base, str) else len(base)
        a = to_int(self.start.ev(c)) if self.start else 0
        b = to_int(self.stop.ev(c)) if self.stop else length
        a = max(0, a + length if a < 0 else a)
        b = min(length, max(0, b + length if b < 0 else b))
        a = min(a, b)
        if isinstance(base, str):
            return base.encode()[a:b].decode("utf-8", errors="replace")
        return list(base[a:b]) if isinstance(base, tuple) else base[a:b]


class Call(Node):
    __slots__ = ("args", "callee", "label")

    def __init__(self, callee: Node, args: list[Node], label: str, pos: int) -> None:
        self.callee, self.args, self.label, self.pos = callee, args, label, pos

    def children(self) -> tuple[Node, ...]:
        return (self.callee, *self.args)

    def ev(self, c: Ctx) -> Any:
        fn = self.callee.ev(c)
        if not callable(fn):
            missing = " (it is nil: no such function)" if fn is None else ""
            raise Fail(f"{self.label} is not a function{missing}", self.pos)
        args = [a.ev(c) for a in self.args]
        return _invoke(fn, args, self.label, self.pos)


def _invoke(fn: Callable[..., Any], args: list[Any], label: str, pos: int) -> Any:
    try:
        return fn(*args)
    except Fail as err:
        raise Fail(f"{label}: {err.cause}" if not err.cause.startswith(label) else err.cause, pos) from None
    except (_NilChain, RecursionError):
        raise
    except TypeError as err:
        raise Fail(f"{label}: wrong arguments ({err})", pos) from None
    except Exception as err:  # a helper failed the way a Go panic would: report it, never crash the engine
        raise Fail(f"{label}: {err}", pos) from None


class Builtin(Node):
    __slots__ = ("args", "name")

    def __init__(self, name: str, args: list[Node], pos: int) -> None:
        self.name, self.args, self.pos = name, args, pos

    def children(self) -> tuple[Node, ...]:
        return tuple(self.args)

    def ev(self, c: Ctx) -> Any:
        if self.name in PREDICATES:
            try:
                return _predicate_builtin(self, c)
            except Fail as err:
                if err.position is None:
                    raise Fail(f"{self.name}: {err.cause}", self.pos) from None
                raise
        fn = c.builtins[self.name]
        return _invoke(fn, [a.ev(c) for a in self.args], self.name, self.pos)


class Predicate(Node):
    __slots__ = ("node",)

    def __init__(self, node: Node, pos: int) -> None:
        self.node, self.pos = node, pos

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def call(self, c: Ctx, frame: dict[str, Any]) -> Any:
        c.frames.append(frame)
        try:
            return self.node.ev(c)
        finally:
            c.frames.pop()

    def ev(self, c: Ctx) -> Any:  # pragma: no cover - predicates are only called through builtins
        raise Fail("a predicate can only be an argument of a builtin", self.pos)


class Unary(Node):
    __slots__ = ("node", "op")

    def __init__(self, op: str, node: Node, pos: int) -> None:
        self.op, self.node, self.pos = op, node, pos

    def children(self) -> tuple[Node, ...]:
        return (self.node,)

    def ev(self, c: Ctx) -> Any:
        v = self.node.ev(c)
        try:
            if self.op in ("not", "!"):
                if type(v) is not bool:
                    raise Fail(f"invalid operation: {self.op} {go_type(v)} (want bool)")
                return not v
            if self.op == "-":
                return negate(v)
            if type(v) not in (int, float):
                raise Fail(f"invalid operation: + {go_type(v)}")
            return v
        except Fail as err:
            raise Fail(err.cause, self.pos) from None


def _need_str(op: str, a: Any, b: Any) -> None:
    if type(a) is not str or type(b) is not str:
        raise Fail(f"invalid operation: {go_type(a)} {op} {go_type(b)} (want string {op} string)")


class Binary(Node):
    __slots__ = ("left", "op", "right")

    def __init__(self, op: str, left: Node, right: Node, pos: int) -> None:
        self.op, self.left, self.right, self.pos = op, left, right, pos

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def ev(self, c: Ctx) -> Any:
        op = self.op
        if op in ("&&", "and", "||", "or"):
            left = self.left.ev(c)
            if type(left) is not bool:
                raise Fail(f"invalid operation: {go_type(left)} {op} … (want bool)", self.pos)
            if left is (op in ("||", "or")):
                return left
            return self.right.ev(c)
        if op == "??":
            left = self.left.ev(c)
            return self.right.ev(c) if left is None else left
        a = self.left.ev(c)
        b = self.right.ev(c)
        try:
            if op == "==":
                return equal(a, b)
            if op == "!=":
                return not equal(a, b)
            if op in ("<", ">", "<=", ">="):
                return less(op, a, b)
            if op == "+":
                return add(a, b)
            if op == "-":
                return subtract(a, b)
            if op == "*":
                return multiply(a, b)
            if op == "/":
                return divide(a, b)
            if op == "%":
                return modulo(a, b)
            if op in ("**", "^"):
                return power(a, b)
            if op == "in":
                return in_(a, b)
            if op == "matches":
                _need_str(op, a, b)
                return regex(b).search(a) is not None
            if op == "contains":
                _need_str(op, a, b)
                return b in a
            if op == "startsWith":
                _need_str(op, a, b)
                return a.startswith(b)
            if op == "endsWith":
                _need_str(op, a, b)
                return a.endswith(b)
            if op == "..":
                lo, hi = to_int(a), to_int(b)
                if hi - lo + 1 > 1_000_000:
                    raise Fail("memory budget exceeded")
                return list(range(lo, hi + 1))
        except Fail as err:
            raise Fail(err.cause, self.pos if err.position is None else err.position) from None
        raise Fail(f"unknown operator ({op})", self.pos)  # pragma: no cover - the parser only makes known ones


class Conditional(Node):
    __slots__ = ("cond", "no", "yes")

    def __init__(self, cond: Node, yes: Node, no: Node, pos: int) -> None:
        self.cond, self.yes, self.no, self.pos = cond, yes, no, pos

    def children(self) -> tuple[Node, ...]:
        return (self.cond, self.yes, self.no)

    def ev(self, c: Ctx) -> Any:
        cond = self.cond.ev(c)
        if type(cond) is not bool:
            raise Fail(f"non-bool condition ({go_type(cond)}) in ternary or if", self.pos)
        return self.yes.ev(c) if cond else self.no.ev(c)


class Array(Node):
    __slots__ = ("items",)

    def __init__(self, items: list[Node], pos: int) -> None:
        self.items, self.pos = items, pos

    def children(self) -> tuple[Node, ...]:
        return tuple(self.items)

    def ev(self, c: Ctx) -> Any:
        return [n.ev(c) for n in self.items]


class MapNode(Node):
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Node, Node]], pos: int) -> None:
        self.pairs, self.pos = pairs, pos

    def children(self) -> tuple[Node, ...]:
        return tuple(n for pair in self.pairs for n in pair)

    def ev(self, c: Ctx) -> Any:
        out: dict[Any, Any] = {}
        for k, v in self.pairs:
            key = k.ev(c)
            try:
                hash(key)
            except TypeError:
                raise Fail(f"invalid map key type {go_type(key)}", k.pos) from None
            out[key] = v.ev(c)
        return out


class Sequence(Node):
    __slots__ = ("nodes",)

    def __init__(self, nodes: list[Node], pos: int) -> None:
        self.nodes, self.pos = nodes, pos

    def children(self) -> tuple[Node, ...]:
        return tuple(self.nodes)

    def ev(self, c: Ctx) -> Any:
        value = None
        for n in self.nodes:
            value = n.ev(c)
        return value


class Let(Node):
    __slots__ = ("body", "name", "value")

    def __init__(self, name: str, value: Node, body: Node, pos: int) -> None:
        self.name, self.value, self.body, self.pos = name, value, body, pos

    def children(self) -> tuple[Node, ...]:
        return (self.value, self.body)

    def ev(self, c: Ctx) -> Any:
        c.scopes.append({self.name: self.value.ev(c)})
        try:
            return self.body.ev(c)
        finally:
            c.scopes.pop()


# --- predicates (all, any, filter, map, reduce…) -----------------------------------------------------------------------


def _items(value: Any, name: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise Fail(f"cannot iterate over {go_type(value)} in {name}")  # nil too: guard with `x ?? []`


def _truth(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise Fail(f"predicate of {name} must return a bool, got {go_type(value)}")
    return value


def _predicate_builtin(node: Builtin, c: Ctx) -> Any:
    name = node.name
    items = _items(node.args[0].ev(c), name)
    pred = node.args[1] if len(node.args) > 1 else None
    assert pred is None or isinstance(pred, Predicate)

    def call(i: int, item: Any, **extra: Any) -> Any:
        assert pred is not None
        return pred.call(c, {"": item, "index": i, **extra})

    if name == "all":
        return all(_truth(call(i, x), name) for i, x in enumerate(items))
    if name == "none":
        return not any(_truth(call(i, x), name) for i, x in enumerate(items))
    if name == "any":
        return any(_truth(call(i, x), name) for i, x in enumerate(items))
    if name == "one":
        return sum(1 for i, x in enumerate(items) if _truth(call(i, x), name)) == 1
    if name == "filter":
        return [x for i, x in enumerate(items) if _truth(call(i, x), name)]
    if name == "map":
        return [call(i, x) for i, x in enumerate(items)]
    if name == "count":
        if pred is None:
            return sum(1 for x in items if _truth(x, name))
        return sum(1 for i, x in enumerate(items) if _truth(call(i, x), name))
    if name == "sum":
        total: Any = 0
        for i, x in enumerate(items):
            total = add(total, call(i, x) if pred is not None else x)
        return total
    if name in ("find", "findIndex", "findLast", "findLastIndex"):
        order = list(enumerate(items))
        if name.startswith("findLast"):
            order.reverse()
        for i, x in order:
            if _truth(call(i, x), name):
                return i if name.endswith("Index") else x
        return -1 if name.endswith("Index") else None
    if name == "groupBy":
        groups: dict[Any, list[Any]] = {}
        for i, x in enumerate(items):
            groups.setdefault(call(i, x), []).append(x)
        return groups
    if name == "sortBy":
        order_ = node.args[2].ev(c) if len(node.args) > 2 else "asc"
        if order_ not in ("asc", "desc"):
            raise Fail(f'unknown order {order_}, use "asc" or "desc"')
        keyed = [(call(i, x), x) for i, x in enumerate(items)]
        return [x for _, x in _sorted(keyed, order_ == "desc")]
    if name == "reduce":
        if len(node.args) > 2:
            acc, start = node.args[2].ev(c), 0
        elif items:
            acc, start = items[0], 1
        else:
            raise Fail("reduce of empty array with no initial value")
        for i in range(start, len(items)):
            acc = call(i, items[i], acc=acc)
        return acc
    raise Fail(f"unknown builtin {name}")  # pragma: no cover


def _sorted(keyed: list[tuple[Any, Any]], reverse: bool) -> list[tuple[Any, Any]]:

    def cmp(x: tuple[Any, Any], y: tuple[Any, Any]) -> int:
        if less("<", x[0], y[0]):
            return -1
        return 1 if less("<", y[0], x[0]) else 0

    return sorted(keyed, key=functools.cmp_to_key(cmp), reverse=reverse)


# --- parser -------------------------------------------------------------------------------------------------------------------


def _valid_identifier(word: str) -> bool:
    return bool(word) and not word[0].isdigit() and all(ch == "_" or ch == "$" or ch.isalnum() for ch in word)


class _Parser:
    def __init__(self, source: str, builtin_names: frozenset[str]) -> None:
        self.tokens = lex(source)
        self.i = 0
        self.depth = 0
        self.builtin_names = builtin_names

    @property
    def cur(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> None:
        if self.cur.kind == "EOF":
            raise Fail("unexpected end of expression", self.cur.pos)
        self.i += 1

    def error(self, message: str, token: Token | None = None) -> Fail:
        token = token or self.cur
        if token.kind == "EOF" and message.startswith("unexpected token"):
            message = "unexpected end of expression"
        return Fail(message, token.pos)

    def expect(self, kind: str, *values: str) -> None:
        if self.cur.is_(kind, *values):
            self.next()
            return
        raise self.error(f"unexpected token {self.cur.show()}")

    def parse(self) -> Node:
        node = self.sequence()
        if self.cur.kind != "EOF":
            raise self.error(f"unexpected token {self.cur.show()}")
        return node

    def sequence(self) -> Node:
        nodes = [self.expression(0)]
        while self.cur.is_("Operator", ";"):
            self.next()
            if self.cur.kind == "EOF":
                break
            nodes.append(self.expression(0))
        return nodes[0] if len(nodes) == 1 else Sequence(nodes, nodes[0].pos)

    def expression(self, precedence: int) -> Node:
        if precedence == 0 and self.cur.is_("Operator", "let"):
            return self.let()
        if precedence == 0 and self.cur.is_("Operator", "if"):
            return self.if_else()
        left = self.primary()
        prev = ""
        op = self.cur
        while op.kind == "Operator":
            negate = op.value == "not"
            not_token = op
            if negate:
                backup = self.i
                self.next()
                if self.cur.value not in _NEGATABLE or self.cur.kind != "Operator":
                    raise self.error(f"unexpected token {self.cur.show()}")
                if BINARY[self.cur.value][0] < precedence:
                    self.i = backup
                    break
                op = self.cur
            info = BINARY.get(op.value)
            if info is None or info[0] < precedence:
                break
            self.next()
            if op.value == "|":
                ident = self.cur
                self.expect("Identifier")
                left = self.call(ident, [left], pipe=True)
            else:
                if prev == "??" and op.value != "??":
                    raise self.error(
                        f"Operator ({op.value}) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.", op
                    )
                if op.value in _COMPARISON:
                    left = self.comparison(left, op, info[0])
                else:
                    right = self.expression(info[0] + 1 if info[1] else info[0])
                    left = Binary(op.value, left, right, op.pos)
                    if negate:
                        left = Unary("not", left, not_token.pos)
            prev = op.value
            op = self.cur
        if precedence == 0:
            left = self.conditional(left)
        return left

    def comparison(self, left: Node, op: Token, precedence: int) -> Node:
        root: Node | None = None
        while True:
            right = self.expression(precedence + 1)
            node = Binary(op.value, left, right, op.pos)
            root = node if root is None else Binary("&&", root, node, op.pos)
            left = right
            op = self.cur
            if not (op.kind == "Operator" and op.value in _COMPARISON):
                break
            self.next()
        return root

    def let(self) -> Node:
        self.expect("Operator", "let")
        name = self.cur
        self.expect("Identifier")
        self.expect("Operator", "=")
        value = self.expression(0)
        self.expect("Operator", ";")
        return Let(name.value, value, self.sequence(), name.pos)

    def if_else(self) -> Node:
        pos = self.cur.pos
        self.next()
        cond = self.expression(0)
        self.expect("Bracket", "{")
        yes = self.sequence()
        self.expect("Bracket", "}")
        self.expect("Operator", "else")
        if self.cur.is_("Operator", "if"):
            no = self.if_else()
        else:
            self.expect("Bracket", "{")
            no = self.sequence()
            self.expect("Bracket", "}")
        return Conditional(cond, yes, no, pos)

    def conditional(self, node: Node) -> Node:
        while self.cur.is_("Operator", "?"):
            pos = self.cur.pos
            self.next()
            if not self.cur.is_("Operator", ":"):
                yes = self.expression(0)
                self.expect("Operator", ":")
                no = self.expression(0)
                node = Conditional(node, yes, no, pos)
            else:
                self.next()  # `a ?: b` is `a ? a : b` (the condition must still be a bool)
                node = Conditional(node, node, self.expression(0), pos)
        return node

    def primary(self) -> Node:
        tok = self.cur
        if tok.kind == "Operator" and tok.value in UNARY:
            self.next()
            node: Node = Unary(tok.value, self.expression(UNARY[tok.value]), tok.pos)
            return self.postfix(node)
        if tok.is_("Bracket", "("):
            self.next()
            node = self.sequence()
            self.expect("Bracket", ")")
            return self.postfix(node)
        if self.depth > 0 and tok.is_("Operator", "#", "."):
            name = ""
            if tok.value == "#":
                self.next()
                if self.cur.kind == "Identifier":
                    name = self.cur.value
                    self.next()
            return self.postfix(Pointer(name, tok.pos))
        if tok.is_("Operator", "::"):
            self.next()
            tok = self.cur
            self.expect("Identifier")
            return self.postfix(self.call(tok, [], pipe=False))
        return self.secondary()

    def secondary(self) -> Node:
        tok = self.cur
        if tok.kind == "Identifier":
            self.next()
            if tok.value in ("true", "false"):
                return Const(tok.value == "true", tok.pos)
            if tok.value == "nil":
                return Const(None, tok.pos)
            node: Node = self.call(tok, [], pipe=False) if self.cur.is_("Bracket", "(") else Ident(tok.value, tok.pos)
        elif tok.kind == "Number":
            self.next()
            return Const(_number(tok), tok.pos)
        elif tok.kind == "String":
            self.next()
            node = Const(tok.value, tok.pos)
        elif tok.kind == "Bytes":
            self.next()
            node = Const(tok.value.encode("latin-1", errors="replace"), tok.pos)
        elif tok.is_("Bracket", "["):
            node = self.array()
        elif tok.is_("Bracket", "{"):
            node = self.map()
        else:
            raise self.error(f"unexpected token {tok.show()}")
        return self.postfix(node)

    def call(self, tok: Token, args: list[Node], pipe: bool) -> Node:
        name = tok.value
        if name in PREDICATES:
            self.expect("Bracket", "(")
            kinds = PREDICATES[name][len(args) :]
            for i, kind in enumerate(kinds):
                if self.cur.is_("Bracket", ")"):
                    if kind.endswith("?"):
                        break
                    raise self.error(f"expected at least {len(kinds)} arguments")
                if i > 0:
                    self.expect("Operator", ",")
                args.append(self.predicate() if kind.startswith("p") else self.expression(0))
            if self.cur.is_("Operator", ","):
                self.next()
            self.expect("Bracket", ")")
            return Builtin(name, args, tok.pos)
        if name in self.builtin_names:
            return Builtin(name, self.arguments(args), tok.pos)
        return Call(Ident(name, tok.pos), self.arguments(args), name, tok.pos)

    def arguments(self, args: list[Node]) -> list[Node]:
        offset = len(args)
        self.expect("Bracket", "(")
        while not self.cur.is_("Bracket", ")"):
            if len(args) > offset:
                self.expect("Operator", ",")
            if self.cur.is_("Bracket", ")"):
                break
            args.append(self.expression(0))
        self.expect("Bracket", ")")
        return args

    def predicate(self) -> Node:
        start = self.cur
        brackets = start.is_("Bracket", "{")
        if brackets:
            self.next()
        self.depth += 1
        if brackets:
            node = self.sequence()
        else:
            node = self.expression(0)
            if self.cur.is_("Operator", ";"):
                raise self.error("wrap predicate with brackets { and }")
        self.depth -= 1
        if brackets:
            self.expect("Bracket", "}")
        return Predicate(node, start.pos)

    def array(self) -> Node:
        pos = self.cur.pos
        self.expect("Bracket", "[")
        items: list[Node] = []
        while not self.cur.is_("Bracket", "]"):
            if items:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "]"):
                    break
            items.append(self.expression(0))
        self.expect("Bracket", "]")
        return Array(items, pos)

    def map(self) -> Node:
        pos = self.cur.pos
        self.expect("Bracket", "{")
        pairs: list[tuple[Node, Node]] = []
        while not self.cur.is_("Bracket", "}"):
            if pairs:
                self.expect("Operator", ",")
                if self.cur.is_("Bracket", "}"):
                    break
                if self.cur.is_("Operator", ","):
                    raise self.error(f"unexpected token {self.cur.show()}")
            tok = self.cur
            if tok.kind in ("Number", "String", "Identifier"):
                key: Node = Const(tok.value, tok.pos)
                self.next()
            elif tok.is_("Bracket", "("):
                key = self.expression(0)
            else:
                raise self.error(
                    "a map key must be a quoted string, a number, a identifier, or an expression enclosed in parentheses "
                    f"(unexpected token {tok.show()})"
                )
            self.expect("Operator", ":")
            pairs.append((key, self.expression(0)))
        self.expect("Bracket", "}")
        return MapNode(pairs, pos)

    def postfix(self, node: Node) -> Node:
        tok = self.cur
        while tok.kind in ("Operator", "Bracket"):
            optional = tok.value == "?."
            if tok.value in (".", "?."):
                self.next()
                prop = self.cur
                if optional and prop.is_("Bracket", "["):
                    tok = prop
                    node = self._index(node, optional=True)
                    tok = self.cur
                    continue
                self.next()
                if prop.kind != "Identifier" and not (prop.kind == "Operator" and _valid_identifier(prop.value)):
                    raise self.error("expected name", prop)
                is_chain = isinstance(node, Chain)
                if is_chain:
                    assert isinstance(node, Chain)
                    node = node.node
                member = Member(node, Const(prop.value, prop.pos), optional, prop.pos)
                node = Call(member, self.arguments([]), _label(member), prop.pos) if self.cur.is_("Bracket", "(") else member
                if is_chain or optional:
                    node = Chain(node, prop.pos)
            elif tok.value == "[":
                node = self._index(node, optional=False)
            else:
                break
            tok = self.cur
        return node

    def _index(self, node: Node, optional: bool) -> Node:
        pos = self.cur.pos
        self.next()  # past "["
        if self.cur.is_("Operator", ":"):
            self.next()
            stop = None if self.cur.is_("Bracket", "]") else self.expression(0)
            self.expect("Bracket", "]")
            return SliceNode(node, None, stop, pos)
        start = self.expression(0)
        if self.cur.is_("Operator", ":"):
            self.next()
            stop = None if self.cur.is_("Bracket", "]") else self.expression(0)
            self.expect("Bracket", "]")
            return SliceNode(node, start, stop, pos)
        self.expect("Bracket", "]")
        member: Node = Member(node, start, optional, pos)
        return Chain(member, pos) if optional else member


def _label(node: Node) -> str:
    """A readable name for a callee: ``sprig.add``, ``now().Year``."""
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Member) and isinstance(node.prop, Const):
        return f"{_label(node.node)}.{node.prop.value}"
    if isinstance(node, Call | Builtin):
        return f"{_label(node.callee) if isinstance(node, Call) else node.name}()"
    if isinstance(node, Chain):
        return _label(node.node)
    return "expression"


def _number(tok: Token) -> int | float:
    text = tok.value.replace("_", "")
    lower = text.lower()
    try:
        if lower.startswith("0x"):
            value: int | float = int(text[2:], 16)
        elif "." in lower or "e" in lower:
            value = float(text)
            if value == float("inf"):
                raise Fail("float literal is too large", tok.pos)
            return value
        elif lower.startswith("0b"):
            value = int(text[2:], 2)
        elif lower.startswith("0o"):
            value = int(text[2:], 8)
        else:
            value = int(text, 10)
    except ValueError as err:
        raise Fail(f"invalid number literal {tok.value!r}", tok.pos) from err
    if value > (1 << 63) - 1:
        raise Fail("integer literal is too large", tok.pos)
    return value


# --- names check (expr's checker reports unknown names before running anything) -------------------------------------------


def check_names(node: Node, known: Callable[[str], bool], declared: frozenset[str] = frozenset()) -> None:
    """Fail on the first identifier that is neither a ``let`` variable nor in the environment."""
    if isinstance(node, Let):
        check_names(node.value, known, declared)
        check_names(node.body, known, declared | {node.name})
        return
    if isinstance(node, Ident):
        if node.name not in declared and node.name != "$env" and not known(node.name):
            raise Fail(f"unknown name {node.name}", node.pos)
        return
    for child in node.children():
        check_names(child, known, declared)


# --- entry points ---------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def parse(source: str, builtin_names: frozenset[str]) -> Node:
    """Parse once per distinct source (templates repeat the same expressions over many nodes)."""
    return _Parser(source, builtin_names).parse()


def evaluate(node: Node, c: Ctx) -> Any:
    try:
        return node.ev(c)
    except _NilChain:  # pragma: no cover - every optional member sits inside a Chain
        return None
    except RecursionError as err:
        raise Fail("expression nests too deeply") from err
