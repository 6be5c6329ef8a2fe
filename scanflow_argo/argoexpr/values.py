"""expr-lang's runtime operations on values (``vm/runtime``): equality, ordering, arithmetic, ``in``, fetching members.

Every rule follows Go: ints are int64 and wrap, ``/`` always gives a float, ``%`` is for ints only and keeps
the dividend's sign, ``==`` compares numbers across int/float, and mismatched types are an error, not a guess.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from .errors import Fail
from .golang import Duration, go_type, wrap_int
from .timefuncs import method

__all__ = [
    "add",
    "divide",
    "equal",
    "fetch",
    "in_",
    "less",
    "modulo",
    "multiply",
    "negate",
    "power",
    "subtract",
    "to_float",
    "to_int",
]


def _num(v: object) -> bool:
    return type(v) is int or type(v) is float


def to_int(v: object) -> int:
    """runtime.ToInt: numbers only, floats truncate."""
    if type(v) is int:
        return v
    if type(v) is float:
        if math.isnan(v) or math.isinf(v):
            return -(1 << 63)
        return wrap_int(int(v))
    raise Fail(f"invalid operation: int({go_type(v)})")


def to_float(v: object) -> float:
    if type(v) is int or type(v) is float:
        return float(v)
    raise Fail(f"invalid operation: float({go_type(v)})")


def _deep_equal(a: object, b: object) -> bool:
    """reflect.DeepEqual on decoded values: types must match exactly (1 and 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    return a == b


def equal(a: object, b: object) -> bool:
    """runtime.Equal."""
    if _num(a) and _num(b):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is str and type(b) is str:
        return a == b
    if type(a) is bool and type(b) is bool:
        return a == b
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    if isinstance(a, Duration) and isinstance(b, Duration):
        return a.ns == b.ns
    if a is None and b is None:
        return True
    return _deep_equal(a, b)


_CMP = {"<": lambda x, y: x < y, ">": lambda x, y: x > y, "<=": lambda x, y: x <= y, ">=": lambda x, y: x >= y}


def less(op: str, a: object, b: object) -> bool:
    """runtime.Less / More / LessOrEqual / MoreOrEqual."""
    if _num(a) and _num(b):
        return _CMP[op](a, b)
    if type(a) is str and type(b) is str:
        return _CMP[op](a.encode(), b.encode())  # Go compares strings bytewise
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _CMP[op](a, b)
    if isinstance(a, Duration) and isinstance(b, Duration):
        return _CMP[op](a.ns, b.ns)
    raise Fail(f"invalid operation: {go_type(a)} {op} {go_type(b)}")


def _mismatch(op: str, a: object, b: object) -> Fail:
    return Fail(f"invalid operation: {go_type(a)} {op} {go_type(b)}")


def add(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        return wrap_int(a + b)
    if _num(a) and _num(b):
        return float(a) + float(b)  # type: ignore[arg-type]  # _num() checked both are int or float
    if type(a) is str and type(b) is str:
        return a + b
    if isinstance(a, datetime) and isinstance(b, Duration):
        return a + timedelta(microseconds=b.ns // 1000)
    if isinstance(a, Duration) and isinstance(b, datetime):
        return b + timedelta(microseconds=a.ns // 1000)
    if isinstance(a, Duration) and isinstance(b, Duration):
        return Duration(a.ns + b.ns)
    raise _mismatch("+", a, b)


def subtract(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        return wrap_int(a - b)
    if _num(a) and _num(b):
        return float(a) - float(b)  # type: ignore[arg-type]  # _num() checked both are int or float
    if isinstance(a, datetime) and isinstance(b, datetime):
        delta = a - b
        return Duration((delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000)
    if isinstance(a, datetime) and isinstance(b, Duration):
        return a - timedelta(microseconds=b.ns // 1000)
    if isinstance(a, Duration) and isinstance(b, Duration):
        return Duration(a.ns - b.ns)
    raise _mismatch("-", a, b)


def multiply(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        return wrap_int(a * b)
    if _num(a) and _num(b):
        return float(a) * float(b)  # type: ignore[arg-type]  # _num() checked both are int or float
    if isinstance(a, Duration | int) and isinstance(b, Duration | int) and not isinstance(a, bool) and not isinstance(b, bool):
        x = a.ns if isinstance(a, Duration) else a
        y = b.ns if isinstance(b, Duration) else b
        return Duration(x * y)
    if isinstance(a, Duration) and type(b) is float:
        return float(a.ns) * b
    if type(a) is float and isinstance(b, Duration):
        return a * float(b.ns)
    raise _mismatch("*", a, b)


def divide(a: object, b: object) -> float:
    if not (_num(a) and _num(b)):
        raise _mismatch("/", a, b)
    x, y = float(a), float(b)  # type: ignore[arg-type]  # _num() checked both are int or float
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def modulo(a: object, b: object) -> int:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise Fail("integer divide by zero")
        r = abs(a) % abs(b)
        return wrap_int(-r if a < 0 else r)
    raise _mismatch("%", a, b)


def power(a: object, b: object) -> float:
    x, y = to_float(a), to_float(b)
    try:
        return math.pow(x, y)
    except ZeroDivisionError:
        return math.inf
    except OverflowError:
        return math.inf if x > 0 or (float(y).is_integer() and int(y) % 2 == 0) else -math.inf
    except ValueError:
        return math.nan


def negate(v: object) -> object:
    if type(v) is int:
        return wrap_int(-v)
    if type(v) is float:
        return -v
    if isinstance(v, Duration):
        return Duration(-v.ns)
    raise Fail(f"invalid operation: - {go_type(v)}")


def in_(needle: object, haystack: object) -> bool:
    """runtime.In: membership in an array (by ``equal``) or among a map's keys."""
    if haystack is None:
        return False
    if isinstance(haystack, list | tuple):
        return any(equal(item, needle) for item in haystack)
    if isinstance(haystack, dict):
        if not isinstance(needle, str) and haystack and all(isinstance(k, str) for k in haystack):
            raise Fail(f"cannot use {go_type(needle)} as a key of {go_type(haystack)}")
        try:
            return needle in haystack
        except TypeError as err:
            raise Fail(f"cannot use {go_type(needle)} as a map key") from err
    raise Fail(f'operator "in" not defined on {go_type(haystack)}')


def fetch(base: object, key: object) -> object:
    """runtime.Fetch: ``base.key`` / ``base[key]``; a missing map key is nil, a bad index is an error."""
    if isinstance(base, dict):
        if isinstance(key, str):
            return base.get(key)
        if base and all(isinstance(k, str) for k in base):
            raise Fail(f"cannot fetch {key} from {go_type(base)}: the key is a {go_type(key)}, not a string")
        return base.get(key) if _hashable(key) else None
    if isinstance(base, list | tuple | str | bytes):
        if isinstance(key, str) and not isinstance(base, str | bytes):
            raise Fail(f"cannot fetch {key} from {go_type(base)}")
        index = to_int(key)
        data = base.encode() if isinstance(base, str) else base
        length = len(data)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise Fail(f"index out of range: {index} (array length is {length})")
        return data[index]
    if base is None:
        raise Fail(f"cannot fetch {key} from <nil>")

    if isinstance(key, str):
        bound = method(base, key)
        if bound is not None:
            return bound
    raise Fail(f"cannot fetch {key} from {go_type(base)}")


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
