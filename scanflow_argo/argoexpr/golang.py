"""Go's value semantics that Argo's expressions show to users: ``%v`` and ``json.Marshal`` text, int64 arithmetic,
``time.Duration``/``time.Time`` formatting and parsing, and RE2 regular expressions on Python's ``re``.

Values are plain Python: ``int`` (Go int/int64), ``float`` (float64), ``str``, ``bool``, ``None`` (nil),
``list`` ([]any), ``dict`` (map[string]any), ``bytes``, ``datetime`` (time.Time, always timezone-aware)
and ``Duration`` (time.Duration, integer nanoseconds).
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .errors import Fail

__all__ = [
    "Duration",
    "argo_duration",
    "format_duration",
    "format_time",
    "from_json",
    "go_atoi",
    "go_json",
    "go_parse_float",
    "go_parse_int",
    "go_str",
    "go_type",
    "is_int",
    "is_number",
    "parse_duration",
    "parse_time",
    "regex",
    "sprintf",
    "wrap_int",
]

_TWO64 = 1 << 64


def wrap_int(value: int) -> int:
    """Wrap to int64 the way Go's fixed-size integers overflow."""
    return ((value + (1 << 63)) % _TWO64) - (1 << 63)


def is_int(value: object) -> bool:
    return type(value) is int


def is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


class Duration:
    """Go's time.Duration: a signed count of nanoseconds."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = wrap_int(int(ns))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(("Duration", self.ns))

    def __repr__(self) -> str:
        return f"Duration({format_duration(self.ns)})"

    def timedelta(self) -> timedelta:
        return timedelta(microseconds=self.ns / 1000)


# --- strconv and encoding/json -------------------------------------------------------------------------------------------

_ATOI = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(
    r"[+-]?(?:(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?|0[xX][\da-fA-F_]*\.?[\da-fA-F_]*[pP][+-]?\d+|inf(?:inity)?|nan)\Z",
    re.IGNORECASE,
)


def go_atoi(text: str) -> int:
    """strconv.Atoi: an optional sign and decimal digits, nothing else."""
    if not _ATOI.match(text):
        raise ValueError(text)
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(text)
    return value


def go_parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64): no surrounding spaces, ``1e5``, ``inf``, ``NaN``, hex floats."""
    if not _FLOAT.match(text):
        raise ValueError(text)
    cleaned = text.replace("_", "")
    if "x" in cleaned.lower() and "p" in cleaned.lower():
        return float.fromhex(cleaned)
    return float(cleaned)


def go_parse_int(text: str, base: int = 0) -> int:
    """strconv.ParseInt(text, base, 64); base 0 reads 0x, 0o, 0b and a leading 0 as octal."""
    sign = 1
    body = text
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if base == 0:
        lower = body.lower()
        if lower.startswith("0x"):
            base, body = 16, body[2:]
        elif lower.startswith("0o"):
            base, body = 8, body[2:]
        elif lower.startswith("0b"):
            base, body = 2, body[2:]
        elif len(body) > 1 and body[0] == "0":
            base, body = 8, body[1:]
        else:
            base = 10
        body = body.replace("_", "") if "__" not in body and not body.startswith("_") and not body.endswith("_") else body
    if not body or not all(ch.isalnum() for ch in body):
        raise ValueError(text)
    value = sign * int(body, base)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(text)
    return value


def from_json(text: str) -> Any:
    """encoding/json into interface{}: every number becomes a float64."""

    def bad_constant(name: str) -> Any:
        raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")

    try:
        return json.loads(text, parse_int=float, parse_constant=bad_constant)
    except (json.JSONDecodeError, ValueError) as err:
        raise Fail(str(err)) from err


# --- float text -------------------------------------------------------------------------------------------------------


def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a positive finite float, and where the decimal point goes (0.DIGITS × 10^point)."""
    _, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent
    stripped = text.lstrip("0")
    point -= len(text) - len(stripped)
    return stripped.rstrip("0") or "0", point


def _fmt_e(digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def format_float(value: float) -> str:
    """Go's ``%v`` (``strconv.FormatFloat(f, 'g', -1, 64)``): exponent form below 1e-4 and from 1e6 (``1e+06``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _digits(abs(value))
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go: "if precision was the shortest possible, use precision 6 for this decision"
        return sign + _fmt_e(digits, point)
    return sign + _fmt_f(digits, point)


def format_float_json(value: float) -> str:
    """``encoding/json``'s float text: plain below 1e21 and from 1e-6, else exponent form with e-7 not e-07."""
    if math.isnan(value) or math.isinf(value):
        raise Fail(f"json: unsupported value: {format_float(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _digits(abs(value))
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = _fmt_e(digits, point)
        return sign + re.sub(r"e([-+])0(\d)$", r"e\1\2", text)
    return sign + _fmt_f(digits, point)


# --- %v and json.Marshal ----------------------------------------------------------------------------------------------


def go_type(value: object) -> str:
    """The name Go's ``%T`` prints, for error messages that read like Argo's."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "[]uint8"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, Duration):
        return "time.Duration"
    if isinstance(value, datetime):
        return "time.Time"
    if callable(value):
        return "func"
    return type(value).__name__


def _sort_key(key: object) -> tuple[int, object]:
    # internal/fmtsort orders keys of one type by value; mixed keys are rare (map literals with (expr) keys).
    if isinstance(key, bool):
        return (0, key)
    if isinstance(key, int | float):
        return (1, key)
    return (2, str(key))


def go_str(value: object) -> str:
    """Go's ``fmt.Sprintf("%v", value)``."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in items) + "]"
    if isinstance(value, Duration):
        return format_duration(value.ns)
    if isinstance(value, datetime):
        return format_time(value, "2006-01-02 15:04:05.999999999 -0700 MST")
    return str(value)


_JSON_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    if any(c in out for c in _JSON_HTML):
        out = "".join(_JSON_HTML.get(c, c) for c in out)
    return out


def go_json(value: object, indent: str | None = None, _level: int = 0) -> str:
    """Go's ``json.Marshal`` (or ``json.MarshalIndent(v, "", indent)``): sorted keys, HTML-safe escapes."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_json(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    if isinstance(value, Duration):
        return str(value.ns)
    if isinstance(value, datetime):
        return '"' + format_time(value, "2006-01-02T15:04:05.999999999Z07:00") + '"'
    if isinstance(value, list | tuple):
        parts = [go_json(v, indent, _level + 1) for v in value]
        return _join("[", "]", parts, indent, _level)
    if isinstance(value, dict):
        parts = []
        for key in sorted(value, key=lambda k: str(k)):
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise Fail(f"json: unsupported type: map[{go_type(key)}]interface {{}}")
            sep = ": " if indent is not None else ":"
            parts.append(_json_string(str(key)) + sep + go_json(value[key], indent, _level + 1))
        return _join("{", "}", parts, indent, _level)
    if callable(value):
        raise Fail("json: unsupported type: func")
    raise Fail(f"json: unsupported type: {go_type(value)}")


def _join(open_: str, close: str, parts: list[str], indent: str | None, level: int) -> str:
    if not parts:
        return open_ + close
    if indent is None:
        return open_ + ",".join(parts) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(parts) + "\n" + indent * level + close


# --- time.Duration ------------------------------------------------------------------------------------------------------

# --- time.Duration ----------------------------------------------------------------------------------------------------------
# Go's ``time.ParseDuration`` (src/time/format.go), Argo's ``ParseStringToDuration``
# (pkg/apis/workflow/v1alpha1/utils.go: integer seconds first, else ParseDuration) and ``strconv.Atoi``.

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_MAX = 1 << 63


def _quote(text: str) -> str:
    """Go's ``time.quote`` (what ParseDuration's errors print): double quotes, ``"`` and ``\\`` escaped,
    control and non-ASCII characters as ``\\xNN`` bytes."""
    out = ['"']
    for ch in text:
        if ch >= "\x80" or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("\\" + ch if ch in ('"', "\\") else ch)
    out.append('"')
    return "".join(out)


def _leading_int(text: str) -> tuple[int, str]:
    """``time.leadingInt``: the digits at the start of ``text`` (Fail on overflow) and the rest."""
    i = 0
    value = 0
    while i < len(text) and "0" <= text[i] <= "9":
        value = value * 10 + ord(text[i]) - 48
        if value > _MAX:  # Go allows exactly 1<<63 here (a negative duration may need it)
            raise Fail("overflow")
        i += 1
    return value, text[i:]


def _leading_fraction(text: str) -> tuple[int, float, str]:
    """``time.leadingFraction``: digits after a decimal point, as (value, scale), ignoring digits past int64."""
    i = 0
    value, scale, overflow = 0, 1.0, False
    while i < len(text) and "0" <= text[i] <= "9":
        if not overflow:
            if value > (_MAX - 1) // 10:
                overflow = True
            else:
                nxt = value * 10 + ord(text[i]) - 48
                if nxt >= _MAX:
                    overflow = True
                else:
                    value, scale = nxt, scale * 10
        i += 1
    return value, scale, text[i:]


def parse_duration(text: str) -> Duration:
    """Go's ``time.ParseDuration``: ``"300ms"``, ``"-1.5h"``, ``"2h45m"``, ``"1µs"``; ``"1d"`` and ``"1.5"`` fail
    with Go's messages (``time: unknown unit "d" in duration "1d"``, ``time: missing unit in duration "1.5"``)."""
    original = text
    invalid = f"time: invalid duration {_quote(original)}"
    negative = False
    if text[:1] in ("-", "+") and text:
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return Duration(0)
    if not text:
        raise Fail(invalid)
    total = 0
    while text:
        if not (text[0] == "." or "0" <= text[0] <= "9"):
            raise Fail(invalid)
        before = len(text)
        try:
            whole, text = _leading_int(text)
        except Fail:
            raise Fail(invalid) from None
        pre = before != len(text)
        frac, scale, post = 0, 1.0, False
        if text[:1] == ".":
            text = text[1:]
            before = len(text)
            frac, scale, text = _leading_fraction(text)
            post = before != len(text)
        if not pre and not post:
            raise Fail(invalid)
        i = 0
        while i < len(text) and not (text[i] == "." or "0" <= text[i] <= "9"):
            i += 1
        if i == 0:
            raise Fail(f"time: missing unit in duration {_quote(original)}")
        unit_name, text = text[:i], text[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise Fail(f"time: unknown unit {_quote(unit_name)} in duration {_quote(original)}")
        if whole > _MAX // unit:
            raise Fail(invalid)
        whole *= unit
        if frac > 0:
            whole += int(float(frac) * (float(unit) / scale))  # Go: float64, truncated to uint64
            if whole > _MAX:
                raise Fail(invalid)
        total += whole
        if total > _MAX:
            raise Fail(invalid)
    if negative:
        return Duration(-total)
    if total > _MAX - 1:
        raise Fail(invalid)
    return Duration(total)


def argo_duration(text: str) -> Duration:
    """Argo's ``ParseStringToDuration`` (suspend ``duration``, retry ``backoff``): a whole number is seconds
    (``strconv.Atoi``), anything else goes to ``time.ParseDuration``."""
    try:
        return Duration(go_atoi(text) * 10**9)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except Fail as err:
        raise Fail(f"unable to parse {text} as a duration: {err.cause}") from None


def format_duration(ns: int) -> str:
    """Go's ``Duration.String()``: ``"1h2m3.5s"``, ``"1.5ms"``, ``"0s"``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 10**9:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    out = ""
    hours, rest = divmod(u, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return sign + out + _frac(rest, 10**9) + "s"


def _frac(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{width}d}".rstrip("0")


# --- fmt.Sprintf -----------------------------------------------------------------------------------------------------------
# Go's fmt (src/fmt/print.go doPrintf, src/fmt/format.go fmtInteger/padString) for the values Argo formats:
# integers (``withSequence.format``: ``fmt.Sprintf(format, i)`` in workflow/controller/operator.go expandSequence),
# strings and bools. Floats take %v/%g/%e/%f; other Go types do not reach it.

_FLAGS = "+-# 0"


def _go_arg_text(value: object) -> str:
    """``%!verb(type=value)``'s inner text."""
    return f"{go_type(value)}={go_str(value)}"


def _pad(text: str, width: int | None, minus: bool, zero: bool) -> str:
    """``fmt.pad``: fill to ``width`` runes with spaces (or zeros, on the left), left-justified with ``-``."""
    if width is None or len(text) >= width:
        return text
    fill = width - len(text)
    if minus:
        return text + " " * fill
    return ("0" if zero else " ") * fill + text


def _fmt_integer(value: int, verb: str, f: dict[str, Any]) -> str:
    """``fmt.fmtInteger`` (and %c, %q, %U for runes)."""
    if verb == "c":
        return _pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", f["wid"], f["minus"], f["zero"] and not f["minus"])
    if verb == "q":
        return _pad(_go_quote_rune(value), f["wid"], f["minus"], False)
    if verb == "U":
        body = f"U+{value:04X}" if value >= 0 else f"U+{value & 0xFFFFFFFFFFFFFFFF:04X}"
        if f["sharp"] and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            body += f" '{chr(value)}'"
        return _pad(body, f["wid"], f["minus"], False)
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    negative = value < 0
    u = -value if negative else value
    prec = 0
    if f["prec"] is not None:
        prec = f["prec"]
        if prec == 0 and u == 0:
            return _pad("", f["wid"], f["minus"], False)
    elif f["zero"] and not f["minus"] and f["wid"] is not None:
        prec = f["wid"]
        if negative or f["plus"] or f["space"]:
            prec -= 1  # room for the sign
    digits = {10: str(u), 2: format(u, "b"), 8: format(u, "o"), 16: format(u, "X" if verb == "X" else "x")}[base]
    digits = digits.rjust(prec, "0")
    if f["sharp"]:
        if base == 2:
            digits = "0b" + digits
        elif base == 8 and not digits.startswith("0"):
            digits = "0" + digits
        elif base == 16:
            digits = ("0X" if verb == "X" else "0x") + digits
    if verb == "O":
        digits = "0o" + digits
    if negative:
        digits = "-" + digits
    elif f["plus"]:
        digits = "+" + digits
    elif f["space"]:
        digits = " " + digits
    return _pad(digits, f["wid"], f["minus"], False)


def _go_quote_rune(value: int) -> str:
    """``strconv.QuoteRune`` for the printable and common cases."""
    if not 0 <= value <= 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return "'\ufffd'"
    ch = chr(value)
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if ch in escapes:
        return f"'{escapes[ch]}'"
    if ch in ("'", "\\"):
        return f"'\\{ch}'"
    if ch.isprintable():
        return f"'{ch}'"
    if value < 0x80:
        return f"'\\x{value:02x}'"
    return f"'\\u{value:04x}'" if value <= 0xFFFF else f"'\\U{value:08x}'"


def _fmt_one(value: object, verb: str, f: dict[str, Any]) -> str:
    """One argument under one verb; a verb that does not fit the value is ``%!verb(type=value)``."""
    if verb == "T":
        return _pad(go_type(value), f["wid"], f["minus"], False)
    if isinstance(value, bool):
        if verb in ("t", "v"):
            return _pad("true" if value else "false", f["wid"], f["minus"], False)
    elif isinstance(value, int):
        if verb in "dvboOxXcqU":
            return _fmt_integer(value, verb, f)
    elif isinstance(value, str):
        if verb in ("s", "v", "q", "x", "X"):
            text = value if f["prec"] is None else value[: f["prec"]]
            if verb == "q":
                text = go_json(text)
            elif verb in ("x", "X"):
                text = text.encode().hex()
                text = text.upper() if verb == "X" else text
            return _pad(text, f["wid"], f["minus"], f["zero"] and not f["minus"])
    elif isinstance(value, float):
        if verb == "v":
            return _pad(format_float(value), f["wid"], f["minus"], f["zero"] and not f["minus"])
        if verb in "eEfFgG":
            spec = ("+" if f["plus"] else " " if f["space"] else "") + ("." + str(f["prec"]) if f["prec"] is not None else "")
            text = (
                format(value, spec + ("f" if verb == "F" else verb))
                if verb != "g" or f["prec"] is not None
                else format_float(value)
            )
            return _pad(text, f["wid"], f["minus"], f["zero"] and not f["minus"])
    return f"%!{verb}({_go_arg_text(value)})"


def sprintf(format_: str, *args: object) -> str:
    """Go's ``fmt.Sprintf``: flags ``+ - # 0`` and space, width and precision (``*`` and ``[n]`` indexes too),
    ``%%``, ``%v`` and Go's error texts (``%!d(MISSING)``, ``%!(EXTRA int=1)``, ``%!(NOVERB)``, ``%!z(int=1)``)."""
    out: list[str] = []
    argn = 0
    reordered = False
    i, end = 0, len(format_)
    while i < end:
        j = format_.find("%", i)
        if j < 0:
            out.append(format_[i:])
            break
        out.append(format_[i:j])
        i = j + 1
        f: dict[str, Any] = {
            "plus": False,
            "minus": False,
            "sharp": False,
            "zero": False,
            "space": False,
            "wid": None,
            "prec": None,
        }
        while i < end and format_[i] in _FLAGS:
            c = format_[i]
            if c == "+":
                f["plus"] = True
            elif c == "-":
                f["minus"], f["zero"] = True, False  # only zero-pad on the left
            elif c == "#":
                f["sharp"] = True
            elif c == "0":
                f["zero"] = not f["minus"]
            else:
                f["space"] = True
            i += 1

        def index(pos: int, argn: int) -> tuple[int, int, bool]:
            """An explicit ``[n]`` argument index at ``pos``: (new arg number, new pos, ok)."""
            nonlocal reordered
            if pos < end and format_[pos] == "[":
                reordered = True
                close = format_.find("]", pos)
                text = format_[pos + 1 : close] if close > 0 else ""
                if close < 0 or not text.isdigit() or not 1 <= int(text) <= len(args):
                    return argn, (close + 1 if close > 0 else end), False
                return int(text) - 1, close + 1, True
            return argn, pos, True

        good = True
        argn, i, ok = index(i, argn)
        good = good and ok
        if i < end and format_[i] == "*":
            i += 1
            if argn < len(args) and type(args[argn]) is int:
                wid = int(args[argn])  # type: ignore[call-overload]  # checked: an int
                if wid < 0:
                    f["minus"], f["zero"], wid = True, False, -wid
                f["wid"] = wid
            else:
                out.append("%!(BADWIDTH)")
            argn += 1
        else:
            start = i
            while i < end and format_[i].isdigit():
                i += 1
            if i > start:
                f["wid"] = int(format_[start:i])
        if i < end and format_[i] == ".":
            i += 1
            argn, i, ok = index(i, argn)
            good = good and ok
            if i < end and format_[i] == "*":
                i += 1
                if argn < len(args) and type(args[argn]) is int and int(args[argn]) >= 0:  # type: ignore[call-overload]  # checked: an int
                    f["prec"] = int(args[argn])  # type: ignore[call-overload]  # checked: an int
                else:
                    out.append("%!(BADPREC)")
                argn += 1
            else:
                start = i
                while i < end and format_[i].isdigit():
                    i += 1
                f["prec"] = int(format_[start:i]) if i > start else 0
        argn, i, ok = index(i, argn)
        good = good and ok
        if i >= end:
            out.append("%!(NOVERB)")
            break
        verb = format_[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if not good:
            out.append(f"%!{verb}(BADINDEX)")
            continue
        if argn >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(args[argn], verb, f))
        argn += 1
    if not reordered and argn < len(args):
        out.append("%!(EXTRA " + ", ".join(_go_arg_text(a) for a in args[argn:]) + ")")
    return "".join(out)


# --- time.Time layouts ------------------------------------------------------------------------------------------------

_STD = [
    "January", "Jan", "Monday", "Mon", "MST",
    "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07",
    "-07:00:00", "-070000", "-07:00", "-0700", "-07",
    "2006", "002", "__2", "_2", "01", "02", "03", "04", "05", "06", "15", "PM", "pm",
    "1", "2", "3", "4", "5",
]  # fmt: skip
_FRACTION = re.compile(r"[.,](0+|9+)(?!\d)")


@lru_cache(maxsize=256)
def _chunks(layout: str) -> tuple[tuple[str, str], ...]:
    """Split a Go layout into ("lit", text) and ("std", element) parts, as time.nextStdChunk does."""
    out: list[tuple[str, str]] = []
    literal = ""
    i = 0
    while i < len(layout):
        chunk = ""
        frac = _FRACTION.match(layout, i)
        if frac:
            chunk = frac.group(0)
        else:
            for candidate in _STD:
                if layout.startswith(candidate, i):
                    if candidate in ("Jan", "Mon") and layout[i + 3 : i + 4].islower():
                        continue  # "Janet" is text, as in Go
                    chunk = candidate
                    break
        if not chunk:
            literal += layout[i]
            i += 1
            continue
        if literal:
            out.append(("lit", literal))
            literal = ""
        out.append(("std", chunk))
        i += len(chunk)
    if literal:
        out.append(("lit", literal))
    return tuple(out)


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _zone(dt: datetime, chunk: str) -> str:
    offset = dt.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if chunk.startswith("Z") and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    body = chunk.lstrip("Z-")
    if body == "07":
        return f"{sign}{hh:02d}"
    if body == "0700":
        return f"{sign}{hh:02d}{mm:02d}"
    if body == "07:00":
        return f"{sign}{hh:02d}:{mm:02d}"
    if body == "070000":
        return f"{sign}{hh:02d}{mm:02d}{ss:02d}"
    return f"{sign}{hh:02d}:{mm:02d}:{ss:02d}"


def format_time(dt: datetime, layout: str) -> str:
    """Go's ``Time.Format(layout)`` for a timezone-aware datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    parts: list[str] = []
    for kind, chunk in _chunks(layout):
        if kind == "lit":
            parts.append(chunk)
        else:
            parts.append(_format_chunk(dt, chunk))
    return "".join(parts)


def _format_chunk(dt: datetime, chunk: str) -> str:
    hour12 = dt.hour % 12 or 12
    simple = {
        "January": _MONTHS[dt.month - 1],
        "Jan": _MONTHS[dt.month - 1][:3],
        "Monday": _DAYS[dt.weekday()],
        "Mon": _DAYS[dt.weekday()][:3],
        "2006": f"{dt.year:04d}",
        "06": f"{dt.year % 100:02d}",
        "01": f"{dt.month:02d}",
        "1": str(dt.month),
        "02": f"{dt.day:02d}",
        "2": str(dt.day),
        "_2": f"{dt.day:>2d}",
        "002": f"{dt.timetuple().tm_yday:03d}",
        "__2": f"{dt.timetuple().tm_yday:>3d}",
        "15": f"{dt.hour:02d}",
        "03": f"{hour12:02d}",
        "3": str(hour12),
        "04": f"{dt.minute:02d}",
        "4": str(dt.minute),
        "05": f"{dt.second:02d}",
        "5": str(dt.second),
        "PM": "PM" if dt.hour >= 12 else "AM",
        "pm": "pm" if dt.hour >= 12 else "am",
    }
    if chunk in simple:
        return simple[chunk]
    if chunk == "MST":
        name = dt.tzname() or ""
        return "UTC" if name in ("UTC", "UTC+00:00") else (name if name.isalpha() else _zone(dt, "-0700"))
    if chunk[0] in "Z-":
        return _zone(dt, chunk)
    # fractional seconds: .000 keeps zeros, .999 trims them
    digits = f"{dt.microsecond:06d}000"[: len(chunk) - 1]
    if chunk[1] == "9":
        digits = digits.rstrip("0")
        return (chunk[0] + digits) if digits else ""
    return chunk[0] + digits


_PARSE_RE = {
    "January": r"(?P<month_name>January|February|March|April|May|June|July|August|September|October|November|December)",
    "Jan": r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
    "Monday": r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    "Mon": r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)",
    "MST": r"(?P<zname>[A-Z]{3,5}|[+-]\d\d)",
    "2006": r"(?P<year>\d{4})",
    "06": r"(?P<yy>\d\d)",
    "01": r"(?P<month>\d\d)",
    "1": r"(?P<month>\d\d?)",
    "02": r"(?P<day>\d\d)",
    "2": r"(?P<day>\d\d?)",
    "_2": r" ?(?P<day>\d\d?)",
    "002": r"(?P<yday>\d\d\d)",
    "__2": r" {0,2}(?P<yday>\d{1,3})",
    "15": r"(?P<hour>\d\d?)",
    "03": r"(?P<hour12>\d\d)",
    "3": r"(?P<hour12>\d\d?)",
    "04": r"(?P<minute>\d\d)",
    "4": r"(?P<minute>\d\d?)",
    "05": r"(?P<second>\d\d)",
    "5": r"(?P<second>\d\d?)",
    "PM": r"(?P<ampm>AM|PM)",
    "pm": r"(?P<ampm>am|pm)",
}


@lru_cache(maxsize=256)
def _layout_regex(layout: str) -> re.Pattern[str]:
    parts = []
    for kind, chunk in _chunks(layout):
        if kind == "lit":
            parts.append(re.escape(chunk))
        elif chunk in _PARSE_RE:
            parts.append(_PARSE_RE[chunk])
        elif chunk[0] == "Z":
            parts.append(r"(?P<zone>Z|[+-]\d\d(?::?\d\d(?::?\d\d)?)?)")
        elif chunk[0] == "-":
            parts.append(r"(?P<zone>[+-]\d\d(?::?\d\d(?::?\d\d)?)?)")
        else:
            parts.append(r"(?P<frac>[.,]\d+)" + ("?" if chunk[1] == "9" else ""))
    # Go accepts fractional seconds right after the seconds field even when the layout has none
    pattern = "".join(parts).replace(r"(?P<second>\d\d)", r"(?P<second>\d\d)(?P<frac2>[.,]\d+)?", 1)
    try:
        return re.compile(pattern + r"\Z")
    except re.error as err:  # e.g. a layout naming the month twice
        raise Fail(f"unsupported time layout {layout!r}: {err}") from err


def parse_time(text: str, layout: str, default_zone: tzinfo | None = None) -> datetime:
    """Go's ``time.Parse(layout, text)`` for the layout elements Argo's users write; zone names other than UTC count as UTC."""
    match = _layout_regex(layout).match(text)
    if not match:
        raise Fail(f'parsing time "{text}" as "{layout}": cannot parse')
    g = match.groupdict()
    year = int(g["year"]) if g.get("year") else (int(g["yy"]) + (1900 if int(g["yy"]) >= 69 else 2000) if g.get("yy") else 0)
    month = 1
    if g.get("month"):
        month = int(g["month"])
    elif g.get("month_name"):
        month = _MONTHS.index(g["month_name"]) + 1
    elif g.get("mon"):
        month = [m[:3] for m in _MONTHS].index(g["mon"]) + 1
    day = int(g["day"]) if g.get("day") else 1
    hour = int(g["hour"]) if g.get("hour") else 0
    if g.get("hour12"):
        hour = int(g["hour12"]) % 12 + (12 if (g.get("ampm") or "").lower() == "pm" else 0)
    minute = int(g["minute"]) if g.get("minute") else 0
    second = int(g["second"]) if g.get("second") else 0
    frac = g.get("frac") or g.get("frac2") or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz: tzinfo = default_zone or UTC
    zone = g.get("zone")
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        seconds = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60 + int(digits[4:6] or 0)
        tz = timezone(timedelta(seconds=seconds if zone[0] == "+" else -seconds))
    elif zone == "Z":
        tz = UTC
    try:
        return datetime(max(year, 1), month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as err:
        raise Fail(f'parsing time "{text}": {err}') from err


# --- RE2 on Python's re ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern with Python's ``re``: ``$`` means end of text (not before a final newline), ``\\z`` works."""
    out = []
    i = 0
    in_class = False
    multiline = bool(re.match(r"\(\?[a-zA-Z]*m", pattern))
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "z" and not in_class:
                out.append(r"\Z")
            elif nxt == "Q":  # \Q...\E literal text
                end = pattern.find(r"\E", i + 2)
                end = len(pattern) if end < 0 else end
                out.append(re.escape(pattern[i + 2 : end]))
                i = end + 2
                continue
            else:
                out.append(c + nxt)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "[" and pattern[i : i + 2] == "[:":
                end = pattern.find(":]", i)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name in _POSIX:
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                out.append(r"\]")
                i += 1
        elif c == "$" and not multiline:
            out.append(r"(?!\n)\Z")
        else:
            out.append(c)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as err:
        raise Fail(f"error parsing regexp: {err}: `{pattern}`") from err


_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z", "space": r"\s",
    "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~", "word": r"\w", "blank": r" \t", "cntrl": r"\x00-\x1f\x7f",
    "print": r" -~", "graph": r"!-~", "ascii": r"\x00-\x7f",
}  # fmt: skip
