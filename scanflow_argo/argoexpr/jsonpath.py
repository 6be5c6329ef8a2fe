"""JSONPath for Argo's ``jsonpath(json, path)`` with the result shapes of github.com/evilmonkeyinc/jsonpath v0.8:
a plain path (``$.a.b``, ``$.a[0]``, ``$['k']``) gives the value itself; a wildcard (``*``), recursive descent
(``..``), filter (``[?(...)]``), slice (``[a:b:c]``) or union (``[0,1]``, ``['a','b']``) gives a list, and the steps
after one apply to each element (elements that do not have them are left out). Filters support ``@``/``$`` paths,
literals, ``== != < <= > >= =~ in``, ``&& || !``, arithmetic and parentheses.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Fail
from .golang import go_str, regex

__all__ = ["jsonpath_query"]


class _Step:
    """One token of a path: kind is key, index, wildcard, recursive, filter, slice, union, script, length."""

    __slots__ = ("arg", "kind")

    def __init__(self, kind: str, arg: Any = None) -> None:
        self.kind, self.arg = kind, arg


def _split_path(path: str) -> tuple[str, list[_Step]]:
    if not path or path[0] not in "$@":
        raise Fail(f"invalid JSONPath selector {path!r}: it must start with $ (or @ in a filter)")
    root = path[0]
    steps: list[_Step] = []
    i = 1
    n = len(path)
    while i < n:
        c = path[i]
        if path.startswith("..", i):
            steps.append(_Step("recursive"))
            i += 2
            if i < n and path[i] not in "[.":
                i = _read_name(path, i, steps)
            continue
        if c == ".":
            i += 1
            if i < n and path[i] == "[":
                continue
            i = _read_name(path, i, steps)
            continue
        if c == "[":
            end = _closing_bracket(path, i)
            steps.append(_subscript(path[i + 1 : end].strip(), path))
            i = end + 1
            continue
        if c.isspace():
            i += 1
            continue
        raise Fail(f"invalid JSONPath selector {path!r}: unexpected {c!r} at {i}")
    return root, steps


def _read_name(path: str, i: int, steps: list[_Step]) -> int:
    j = i
    while j < len(path) and path[j] not in ".[":
        j += 1
    name = path[i:j].strip()
    if not name:
        raise Fail(f"invalid JSONPath selector {path!r}: empty name at {i}")
    steps.append(_Step("wildcard") if name == "*" else _Step("length") if name == "length" else _Step("key", name))
    return j


def _closing_bracket(path: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(path):
        c = path[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
            if depth == 0 and c == "]":
                return i
        i += 1
    raise Fail(f"invalid JSONPath selector {path!r}: unclosed bracket at {start}")


_QUOTED = re.compile(r"""\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*\Z""")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _subscript(inner: str, path: str) -> _Step:
    if inner == "*":
        return _Step("wildcard")
    if inner.startswith("?"):
        if not (inner.startswith("?(") and inner.endswith(")")):
            raise Fail(f"invalid JSONPath selector {path!r}: a filter is [?(expression)]")
        return _Step("filter", _FilterParser(inner[2:-1]).parse())
    if inner.startswith("(") and inner.endswith(")"):
        return _Step("script", _FilterParser(inner[1:-1]).parse())
    if _QUOTED.match(inner):
        return _Step("key", _unquote(inner.strip()))
    parts = _split_top(inner, ",")
    if len(parts) > 1:
        keys: list[str | int] = []
        for part in parts:
            part = part.strip()
            if _QUOTED.match(part):
                keys.append(_unquote(part))
            elif re.fullmatch(r"-?\d+", part):
                keys.append(int(part))
            else:
                raise Fail(f"invalid JSONPath selector {path!r}: bad union member {part!r}")
        if len({type(k) for k in keys}) > 1:
            raise Fail(f"invalid JSONPath selector {path!r}: a union mixes keys and indices")
        return _Step("union", keys)
    if ":" in inner:
        bounds = inner.split(":")
        if len(bounds) > 3 or not all(re.fullmatch(r"\s*(-?\d+)?\s*", b) for b in bounds):
            raise Fail(f"invalid JSONPath selector {path!r}: bad slice [{inner}]")
        values = [int(b) if b.strip() else None for b in bounds] + [None] * (3 - len(bounds))
        if values[2] == 0:
            raise Fail(f"invalid JSONPath selector {path!r}: slice step cannot be 0")
        return _Step("slice", values)
    if re.fullmatch(r"-?\d+", inner):
        return _Step("index", int(inner))
    raise Fail(f"invalid JSONPath selector {path!r}: bad subscript [{inner}]")


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


class _Missing(Exception):
    pass


def _apply(steps: list[_Step], i: int, root: Any, current: Any) -> Any:
    if i == len(steps):
        return current
    step = steps[i]
    kind = step.kind
    if kind == "key":
        if not isinstance(current, dict) or step.arg not in current:
            raise _Missing(f"key '{step.arg}' not found")
        return _apply(steps, i + 1, root, current[step.arg])
    if kind == "index":
        if not isinstance(current, list):
            raise _Missing(f"index [{step.arg}] on a {type(current).__name__}")
        index = step.arg + len(current) if step.arg < 0 else step.arg
        if not 0 <= index < len(current):
            raise _Missing(f"index [{step.arg}] out of range")
        return _apply(steps, i + 1, root, current[index])
    if kind == "length":
        if isinstance(current, dict) and "length" in current:
            return _apply(steps, i + 1, root, current["length"])
        if not isinstance(current, list | dict | str):
            raise _Missing("length of a value that has none")
        return _apply(steps, i + 1, root, float(len(current)))
    if kind == "script":
        key = _eval(step.arg, root, current)
        if isinstance(key, str):
            return _apply([_Step("key", key), *steps[i + 1 :]], 0, root, current)
        if isinstance(key, int | float) and not isinstance(key, bool) and float(key).is_integer():
            return _apply([_Step("index", int(key)), *steps[i + 1 :]], 0, root, current)
        raise _Missing("script must give an index or a key")
    if kind == "recursive":
        return _recursive(steps, i + 1, root, current)
    elements = _collect(step, root, current)
    rest = i + 1
    if rest < len(steps) and steps[rest].kind == "index" and kind != "wildcard":
        return _apply(steps, rest, root, elements)  # [?(...)][0] indexes the filtered list
    if rest == len(steps):
        return elements
    out = []
    for element in elements:
        try:
            value = _apply(steps, rest, root, element)
        except _Missing:
            continue
        if value is not None:
            out.append(value)
    return out


def _collect(step: _Step, root: Any, current: Any) -> list[Any]:
    kind = step.kind
    if kind == "wildcard":
        if isinstance(current, dict):
            return [current[k] for k in sorted(current)]
        if isinstance(current, list):
            return list(current)
        raise _Missing("wildcard on a scalar")
    if kind == "filter":
        if isinstance(current, dict):
            items = [current[k] for k in sorted(current)]
        elif isinstance(current, list):
            items = list(current)
        else:
            raise _Missing("filter on a scalar")
        return [item for item in items if _truthy(_safe_eval(step.arg, root, item))]
    if kind == "slice":
        if not isinstance(current, list):
            raise _Missing("slice of a non-array")
        start, stop, stride = step.arg
        length = len(current)
        lo = 0 if start is None else max(0, min(length, start + length if start < 0 else start))
        hi = length if stop is None else max(0, min(length, stop + length if stop < 0 else stop))
        stride = stride or 1
        if stride > 0:
            return current[lo:hi:stride]
        return [current[j] for j in range(hi - 1, lo - 1, stride)]
    if kind == "union":
        keys = step.arg
        if isinstance(keys[0], str):
            if not isinstance(current, dict):
                raise _Missing("union of keys on a non-object")
            return [current[k] for k in keys if k in current]
        if not isinstance(current, list):
            raise _Missing("union of indices on a non-array")
        out = []
        for k in keys:
            index = k + len(current) if k < 0 else k
            if not 0 <= index < len(current):
                raise _Missing(f"index [{k}] out of range")
            out.append(current[index])
        return out
    raise _Missing(f"unknown step {kind}")  # pragma: no cover


def _recursive(steps: list[_Step], rest: int, root: Any, current: Any) -> list[Any]:
    out: list[Any] = []
    if rest < len(steps):
        try:
            found = _apply(steps, rest, root, current)
        except _Missing:
            found = None
        if isinstance(found, list):
            out.extend(found)
        elif found is not None:
            out.append(found)
    else:
        out.append(current)
    children = (
        [current[k] for k in sorted(current)] if isinstance(current, dict) else current if isinstance(current, list) else []
    )
    for child in children:
        out.extend(_recursive(steps, rest, root, child))
    return out


def _truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, list | dict):
        return len(value) > 0
    if isinstance(value, str):
        return value != ""
    return value != 0


# --- filter expressions ----------------------------------------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(
    r"""\s*(?:(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"""|(?P<path>[@$](?:\.\.?[\w*-]+|\[(?:[^\[\]'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")*\]|\.length)*)"""
    r"""|(?P<op>not\s+in\b|==|!=|<=|>=|=~|&&|\|\||\*\*|[<>!+\-*/%(),\[\]])|(?P<word>[A-Za-z_]\w*)|(?P<regex>/(?:[^/\\]|\\.)*/[a-z]*))"""
)


class _FilterParser:
    """Recursive descent over: or → and → comparison → additive → multiplicative → unary → primary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _FILTER_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise Fail(f"invalid JSONPath filter {text!r} at {pos}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def parse(self) -> Any:
        if not self.tokens:
            raise Fail(f"invalid JSONPath filter {self.text!r}: empty")
        node = self.or_()
        if self.peek()[0] != "end":
            raise Fail(f"invalid JSONPath filter {self.text!r}: unexpected {self.peek()[1]!r}")
        return node

    def or_(self) -> Any:
        node = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            node = ("||", node, self.and_())
        return node

    def and_(self) -> Any:
        node = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            node = ("&&", node, self.cmp())
        return node

    def cmp(self) -> Any:
        node = self.add()
        kind, value = self.peek()
        if kind == "op" and (value in ("==", "!=", "<", "<=", ">", ">=", "=~") or value.startswith("not")):
            self.take()
            return ("not in" if value.startswith("not") else value, node, self.add())
        if kind == "word" and value == "in":
            self.take()
            return ("in", node, self.add())
        return node

    def add(self) -> Any:
        node = self.mul()
        while self.peek()[0] == "op" and self.peek()[1] in "+-" and self.peek()[1]:
            op = self.take()[1]
            node = (op, node, self.mul())
        return node

    def mul(self) -> Any:
        node = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/", "%", "**"):
            op = self.take()[1]
            node = (op, node, self.unary())
        return node

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return ("!", self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return ("lit", float(value))
        if kind == "str":
            return ("lit", _unquote(value))
        if kind == "regex":
            return ("lit", value[1 : value.rindex("/")])
        if kind == "path":
            return ("path", value)
        if kind == "word":
            words = {"true": True, "false": False, "null": None, "nil": None}
            if value in words:
                return ("lit", words[value])
            raise Fail(f"invalid JSONPath filter {self.text!r}: unknown word {value!r}")
        if (kind, value) == ("op", "("):
            node = self.or_()
            if self.take() != ("op", ")"):
                raise Fail(f"invalid JSONPath filter {self.text!r}: missing )")
            return node
        if (kind, value) == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.primary()[1])
                if self.peek() == ("op", ","):
                    self.take()
            self.take()
            return ("lit", items)
        raise Fail(f"invalid JSONPath filter {self.text!r}: unexpected {value!r}")


def _safe_eval(node: Any, root: Any, current: Any) -> Any:
    try:
        return _eval(node, root, current)
    except (_Missing, Fail, TypeError, ZeroDivisionError):
        return None  # an element the filter cannot evaluate is left out, as in the Go library


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    return None


def _eval(node: Any, root: Any, current: Any) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "path":
        base, steps = _split_path(node[1])
        return _apply(steps, 0, root, root if base == "$" else current)
    if op == "!":
        return not _truthy(_eval(node[1], root, current))
    if op == "&&":
        return _truthy(_eval(node[1], root, current)) and _truthy(_eval(node[2], root, current))
    if op == "||":
        return _truthy(_eval(node[1], root, current)) or _truthy(_eval(node[2], root, current))
    a, b = _eval(node[1], root, current), _eval(node[2], root, current)
    if op in ("==", "!="):
        x, y = _number(a), _number(b)
        same = x == y if x is not None and y is not None else go_str(a) == go_str(b) and (a is None) == (b is None)
        return same if op == "==" else not same
    if op in ("in", "not in"):
        found = isinstance(b, list) and any(_eval(("==", ("lit", a), ("lit", x)), root, current) for x in b)
        return found if op == "in" else not found
    if op == "=~":
        return isinstance(a, str) and isinstance(b, str) and regex(b).search(a) is not None
    x, y = _number(a), _number(b)
    if x is None or y is None:
        raise _Missing(f"{op} needs numbers")
    return {
        "<": lambda: x < y,
        "<=": lambda: x <= y,
        ">": lambda: x > y,
        ">=": lambda: x >= y,
        "+": lambda: x + y,
        "-": lambda: x - y,
        "*": lambda: x * y,
        "/": lambda: x / y,
        "%": lambda: x % y,
        "**": lambda: x**y,
    }[op]()


def jsonpath_query(path: str, document: Any) -> Any:
    """Query ``document`` (decoded JSON) with ``path``; a path that does not exist is an error, as in Argo."""
    base, steps = _split_path(path.strip())
    if base != "$":
        raise Fail(f"invalid JSONPath selector {path!r}: it must start with $")
    try:
        return _apply(steps, 0, document, document)
    except _Missing as err:
        raise Fail(f"jsonpath {path!r}: {err}") from None
