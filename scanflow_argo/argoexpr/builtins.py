"""expr-lang's builtin functions (``builtin/builtin.go``) and Argo's additions (``util/expr/env``):
``asInt``/``asFloat`` (expr's ``int``/``float``), ``jsonpath``, ``toJson`` (compact, unlike expr's indented ``toJSON``)
and ``sprig`` (the map of sprig functions).
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import Fail
from .golang import (
    Duration,
    from_json,
    go_atoi,
    go_json,
    go_parse_float,
    go_str,
    go_type,
    parse_duration,
    parse_time,
    wrap_int,
)
from .jsonpath import jsonpath_query
from .sprig import sprig_functions
from .values import equal, fetch, less, to_float, to_int

__all__ = ["argo_functions", "builtins"]

Fn = Callable[..., Any]


def _s(value: Any, fn: str) -> str:
    if type(value) is not str:
        raise Fail(f"invalid argument for {fn} (type {go_type(value)}, want string)")
    return value


def _arity(args: tuple[Any, ...], fn: str, lo: int, hi: int) -> bool:
    """True when ``fn`` got between ``lo`` and ``hi`` arguments (else Fail): usable inside a lambda's tuple."""
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise Fail(f"invalid number of arguments for {fn} (expected {want}, got {len(args)})")
    return True


# --- conversions ------------------------------------------------------------------------------------------------------------


def b_int(*args: Any) -> int:
    _arity(args, "int", 1, 1)
    x = args[0]
    if type(x) is str:
        try:
            return go_atoi(x)
        except ValueError:
            raise Fail(f"invalid operation: int({x})") from None
    if isinstance(x, Duration):
        return x.ns
    return to_int(x)


def b_float(*args: Any) -> float:
    _arity(args, "float", 1, 1)
    x = args[0]
    if type(x) is str:
        try:
            return go_parse_float(x)
        except ValueError:
            raise Fail(f"invalid operation: float({x})") from None
    return to_float(x)


def b_type(*args: Any) -> str:
    _arity(args, "type", 1, 1)
    x = args[0]
    names = {type(None): "nil", bool: "bool", int: "int", float: "float", str: "string", list: "array", dict: "map"}
    if type(x) in names:
        return names[type(x)]
    if isinstance(x, datetime):
        return "time.Time"
    if isinstance(x, Duration):
        return "time.Duration"
    return "func" if callable(x) else go_type(x)


def b_len(*args: Any) -> int:
    _arity(args, "len", 1, 1)
    x = args[0]
    if isinstance(x, list | tuple | dict | str | bytes):
        return len(x)
    raise Fail(f"invalid argument for len (type {go_type(x)})")


def _number_fn(name: str, op: Callable[[float], float]) -> Fn:
    def fn(*args: Any) -> Any:
        _arity(args, name, 1, 1)
        x = args[0]
        if type(x) is int:
            return float(x) if name != "abs" else abs(x)
        if type(x) is float:
            return op(x)
        raise Fail(f"invalid argument for {name} (type {go_type(x)})")

    return fn


def _go_round(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return t


# --- strings -------------------------------------------------------------------------------------------------------------------

_GO_SPACE = " \t\n\v\f\r\x85\xa0"


def b_trim(*args: Any) -> str:
    _arity(args, "trim", 1, 2)
    s = _s(args[0], "trim")
    return s.strip(_GO_SPACE) if len(args) == 1 else s.strip(_s(args[1], "trim"))


def _trim_affix(name: str) -> Fn:
    def fn(*args: Any) -> str:
        _arity(args, name, 1, 2)
        s = _s(args[0], name)
        affix = _s(args[1], name) if len(args) == 2 else " "
        if name == "trimPrefix":
            return s[len(affix) :] if affix and s.startswith(affix) else s
        return s[: -len(affix)] if affix and s.endswith(affix) else s

    return fn


def _go_split(s: str, sep: str, n: int, after: bool) -> list[str]:
    if n == 0:
        return []
    if sep == "":
        chars = list(s)
        if 0 < n < len(chars):
            chars = [*chars[: n - 1], "".join(chars[n - 1 :])]
        return chars
    parts = s.split(sep, n - 1) if n > 0 else s.split(sep)
    if after:
        parts = [p + sep for p in parts[:-1]] + parts[-1:]
    return parts


def _split(name: str, after: bool) -> Fn:
    def fn(*args: Any) -> list[str]:
        _arity(args, name, 2, 3)
        n = to_int(args[2]) if len(args) == 3 else -1
        return _go_split(_s(args[0], name), _s(args[1], name), n, after)

    return fn


def b_replace(*args: Any) -> str:
    _arity(args, "replace", 3, 4)
    s, old, new = (_s(a, "replace") for a in args[:3])
    n = to_int(args[3]) if len(args) == 4 else -1
    return s.replace(old, new, n if n >= 0 else -1)


def b_repeat(*args: Any) -> str:
    _arity(args, "repeat", 2, 2)
    s, n = _s(args[0], "repeat"), to_int(args[1])
    if n < 0:
        raise Fail(f"invalid argument for repeat (expected positive integer, got {n})")
    if n > 1_000_000:
        raise Fail("memory budget exceeded")
    return s * n


def b_join(*args: Any) -> str:
    _arity(args, "join", 1, 2)
    items, glue = args[0], (_s(args[1], "join") if len(args) == 2 else "")
    if not isinstance(items, list | tuple):
        raise Fail(f"invalid argument for join (type {go_type(items)})")
    return glue.join(_s(x, "join") for x in items)


def _index_of(name: str) -> Fn:
    def fn(*args: Any) -> int:
        _arity(args, name, 2, 2)
        s, sub = _s(args[0], name).encode(), _s(args[1], name).encode()
        return s.find(sub) if name == "indexOf" else s.rfind(sub)  # Go counts bytes

    return fn


# --- numbers and collections ------------------------------------------------------------------------------------------------------


def _min_max(name: str) -> Fn:
    op = ">" if name == "max" else "<"

    def collect(values: Any, out: list[Any], depth: int) -> None:
        for v in values:
            if type(v) in (int, float):
                out.append(v)
            elif isinstance(v, list | tuple) and depth < 10_000:
                collect(v, out, depth + 1)
            else:
                raise Fail(f"invalid argument for {name} (type {go_type(v)})")

    def fn(*args: Any) -> Any:
        values: list[Any] = []
        collect(args, values, 0)
        if not values:
            raise Fail(f"not enough arguments to call {name}")
        best = values[0]
        for v in values[1:]:
            if less(op, v, best):
                best = v
        return best

    return fn


def _numbers(name: str, args: tuple[Any, ...]) -> list[float]:
    out: list[float] = []
    for v in args:
        if type(v) in (int, float):
            out.append(float(v))
        elif isinstance(v, list | tuple):
            out.extend(_numbers(name, tuple(v)))
        else:
            raise Fail(f"invalid argument for {name} (type {go_type(v)})")
    return out


def b_mean(*args: Any) -> float:
    values = _numbers("mean", args)
    return sum(values) / len(values) if values else 0.0


def b_median(*args: Any) -> float:
    values = sorted(_numbers("median", args))
    n = len(values)
    if not n:
        return 0.0
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def _array(x: Any, name: str) -> list[Any]:
    if isinstance(x, list | tuple):
        return list(x)
    raise Fail(f"cannot {name} {go_type(x)}")


def b_first(*args: Any) -> Any:
    _arity(args, "first", 1, 1)
    try:
        return fetch(args[0], 0)
    except Fail:
        return None


def b_last(*args: Any) -> Any:
    _arity(args, "last", 1, 1)
    try:
        return fetch(args[0], -1)
    except Fail:
        return None


def b_get(*args: Any) -> Any:
    _arity(args, "get", 2, 2)
    try:
        return fetch(args[0], args[1])
    except Fail:
        return None


def b_take(*args: Any) -> list[Any]:
    _arity(args, "take", 2, 2)
    items = _array(args[0], "take from")
    if type(args[1]) is not int:
        raise Fail(f"cannot take {go_type(args[1])} elements")
    return items[: max(0, args[1])]


def _map_arg(x: Any, name: str) -> dict[Any, Any]:
    if isinstance(x, dict):
        return x
    raise Fail(f"cannot get {name} from {go_type(x)}")


def b_uniq(*args: Any) -> list[Any]:
    _arity(args, "uniq", 1, 1)
    out: list[Any] = []
    for x in _array(args[0], "uniq"):
        if not any(equal(x, y) for y in out):
            out.append(x)
    return out


def b_concat(*args: Any) -> list[Any]:
    if not args:
        raise Fail("invalid number of arguments for concat (expected at least 1, got 0)")
    out: list[Any] = []
    for a in args:
        out.extend(_array(a, "concat"))
    return out


def b_flatten(*args: Any) -> list[Any]:
    _arity(args, "flatten", 1, 1)
    out: list[Any] = []

    def walk(items: list[Any]) -> None:
        for x in items:
            if isinstance(x, list | tuple):
                walk(list(x))
            else:
                out.append(x)

    walk(_array(args[0], "flatten"))
    return out


def b_sort(*args: Any) -> list[Any]:
    _arity(args, "sort", 1, 2)
    items = _array(args[0], "sort")
    order = args[1] if len(args) == 2 else "asc"
    if order not in ("asc", "desc"):
        raise Fail(f'unknown order {order}, use "asc" or "desc"')

    def cmp(a: Any, b: Any) -> int:
        return -1 if less("<", a, b) else (1 if less("<", b, a) else 0)

    return sorted(items, key=functools.cmp_to_key(cmp), reverse=order == "desc")


def b_from_pairs(*args: Any) -> dict[Any, Any]:
    _arity(args, "fromPairs", 1, 1)
    out: dict[Any, Any] = {}
    for pair in _array(args[0], "fromPairs"):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise Fail(f"invalid pair {go_str(pair)}")
        out[pair[0]] = pair[1]
    return out


def _shift(count: int) -> int:
    if count < 0:
        raise Fail(f"invalid shift count {count}")
    return min(count, 64)


def _bit(name: str, op: Callable[..., int], arity: int) -> Fn:
    def fn(*args: Any) -> int:
        _arity(args, name, arity, arity)
        ints = []
        for a in args:
            if type(a) is not int:
                raise Fail(f"invalid argument for {name} (type {go_type(a)})")
            ints.append(a)
        return wrap_int(op(*ints))

    return fn


# --- JSON, base64, time ---------------------------------------------------------------------------------------------------------


def b_from_base64(*args: Any) -> str:
    _arity(args, "fromBase64", 1, 1)
    try:
        return base64.b64decode(_s(args[0], "fromBase64"), validate=True).decode("utf-8", errors="replace")
    except ValueError as err:
        raise Fail(f"illegal base64 data: {err}") from err


_DATE_LAYOUTS = (
    "2006-01-02",
    "15:04:05",
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05Z07:00",
    "02 Jan 06 15:04 MST",
    "Monday, 02-Jan-06 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 MST",
)


def _zone(name: str) -> Any:
    if name in ("UTC", "Local", ""):
        return UTC

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise Fail(f"unknown time zone {name}") from err


def b_date(*args: Any) -> datetime:

    zone = None
    if args and isinstance(args[0], tzinfo):
        zone, args = args[0], args[1:]
    _arity(args, "date", 1, 3)
    text = _s(args[0], "date")
    if len(args) == 3:
        zone = _zone(_s(args[2], "date"))
    if len(args) >= 2:
        return parse_time(text, _s(args[1], "date"), zone)
    for layout in _DATE_LAYOUTS:
        try:
            return parse_time(text, layout, zone)
        except Fail:
            continue
    raise Fail(f"invalid date {text}")


def builtins(now: Callable[[], datetime]) -> dict[str, Fn]:
    """expr's builtins by name; ``now`` is the injected clock."""

    def b_now(*args: Any) -> datetime:
        if args and len(args) == 1 and not isinstance(args[0], str | int | float):
            return now().astimezone(args[0])
        _arity(args, "now", 0, 0)
        return now()

    return {
        "len": b_len,
        "type": b_type,
        "abs": _number_fn("abs", abs),
        "ceil": _number_fn("ceil", lambda x: float(math.ceil(x)) if math.isfinite(x) else x),
        "floor": _number_fn("floor", lambda x: float(math.floor(x)) if math.isfinite(x) else x),
        "round": _number_fn("round", _go_round),
        "int": b_int,
        "float": b_float,
        "string": lambda *a: (_arity(a, "string", 1, 1), go_str(a[0]))[1],
        "trim": b_trim,
        "trimPrefix": _trim_affix("trimPrefix"),
        "trimSuffix": _trim_affix("trimSuffix"),
        "upper": lambda *a: (_arity(a, "upper", 1, 1), _s(a[0], "upper").upper())[1],
        "lower": lambda *a: (_arity(a, "lower", 1, 1), _s(a[0], "lower").lower())[1],
        "split": _split("split", after=False),
        "splitAfter": _split("splitAfter", after=True),
        "replace": b_replace,
        "repeat": b_repeat,
        "join": b_join,
        "indexOf": _index_of("indexOf"),
        "lastIndexOf": _index_of("lastIndexOf"),
        "hasPrefix": lambda *a: (_arity(a, "hasPrefix", 2, 2), _s(a[0], "hasPrefix").startswith(_s(a[1], "hasPrefix")))[1],
        "hasSuffix": lambda *a: (_arity(a, "hasSuffix", 2, 2), _s(a[0], "hasSuffix").endswith(_s(a[1], "hasSuffix")))[1],
        "max": _min_max("max"),
        "min": _min_max("min"),
        "mean": b_mean,
        "median": b_median,
        "toJSON": lambda *a: (_arity(a, "toJSON", 1, 1), go_json(a[0], indent="  "))[1],
        "fromJSON": lambda *a: (_arity(a, "fromJSON", 1, 1), from_json(_s(a[0], "fromJSON")))[1],
        "toBase64": lambda *a: (_arity(a, "toBase64", 1, 1), base64.b64encode(_s(a[0], "toBase64").encode()).decode())[1],
        "fromBase64": b_from_base64,
        "now": b_now,
        "duration": lambda *a: (_arity(a, "duration", 1, 1), parse_duration(_s(a[0], "duration")))[1],
        "date": b_date,
        "timezone": lambda *a: (_arity(a, "timezone", 1, 1), _zone(_s(a[0], "timezone")))[1],
        "first": b_first,
        "last": b_last,
        "get": b_get,
        "take": b_take,
        "keys": lambda *a: (_arity(a, "keys", 1, 1), list(_map_arg(a[0], "keys")))[1],
        "values": lambda *a: (_arity(a, "values", 1, 1), list(_map_arg(a[0], "values").values()))[1],
        "toPairs": lambda *a: (_arity(a, "toPairs", 1, 1), [[k, v] for k, v in _map_arg(a[0], "pairs").items()])[1],
        "fromPairs": b_from_pairs,
        "reverse": lambda *a: (_arity(a, "reverse", 1, 1), _array(a[0], "reverse")[::-1])[1],
        "uniq": b_uniq,
        "concat": b_concat,
        "flatten": b_flatten,
        "sort": b_sort,
        "bitand": _bit("bitand", lambda a, b: a & b, 2),
        "bitor": _bit("bitor", lambda a, b: a | b, 2),
        "bitxor": _bit("bitxor", lambda a, b: a ^ b, 2),
        "bitnand": _bit("bitnand", lambda a, b: a & ~b, 2),
        "bitnot": _bit("bitnot", lambda a: ~a, 1),
        "bitshl": _bit("bitshl", lambda a, b: a << _shift(b), 2),
        "bitshr": _bit("bitshr", lambda a, b: a >> _shift(b), 2),
        "bitushr": _bit("bitushr", lambda a, b: (a % (1 << 64)) >> _shift(b), 2),
    }


BUILTIN_NAMES = frozenset(builtins(lambda: datetime.now(UTC))) | frozenset(
    ["all", "none", "any", "one", "filter", "map", "count", "sum", "find", "findIndex", "findLast", "findLastIndex",
     "groupBy", "sortBy", "reduce"]
)  # fmt: skip


def argo_functions(now: Callable[[], datetime]) -> dict[str, Any]:
    """What Argo adds to every expression's environment (``util/expr/env.GetFuncMap``)."""

    def jsonpath(*args: Any) -> Any:
        _arity(args, "jsonpath", 2, 2)
        document = from_json(_s(args[0], "jsonpath"))
        return jsonpath_query(_s(args[1], "jsonpath"), document)

    return {
        "asInt": b_int,
        "asFloat": b_float,
        "jsonpath": jsonpath,
        "toJson": lambda *a: (_arity(a, "toJson", 1, 1), go_json(a[0]))[1],
        "sprig": sprig_functions(now),
    }
