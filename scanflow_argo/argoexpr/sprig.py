"""The ``sprig.*`` functions Argo puts in every expression (Masterminds/sprig v3 ``GenericFuncMap``, minus env/expandenv).

Argument order is sprig's template-pipeline order (``sprig.contains(substr, s)``, ``sprig.replace(old, new, s)``,
``sprig.trimSuffix(suffix, s)``). Numeric helpers coerce like spf13/cast (``"3"`` → 3, junk → 0) and return int64
(``add``, ``max``) or float64 (``maxf``, ``round``); ``split`` returns a map ``{_0: …, _1: …}``. Every function used
by Argo's examples is here, plus the common string, list, dict, math, encoding, regex, path and date helpers.
Random, crypto, network and semver functions are not: calling them names the gap.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import posixpath
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from .errors import Fail
from .golang import (
    Duration,
    format_duration,
    format_time,
    from_json,
    go_json,
    go_parse_float,
    go_parse_int,
    go_str,
    go_type,
    parse_duration,
    parse_time,
    regex,
    wrap_int,
)
from .values import equal

__all__ = ["SPRIG_NAMES", "sprig_functions"]

# Every name in sprig.GenericFuncMap (v3.3), to tell "not in sprig" from "not available locally".
SPRIG_NAMES = frozenset(
    [
        "hello",
        "ago",
        "date",
        "date_in_zone",
        "date_modify",
        "dateInZone",
        "dateModify",
        "duration",
        "durationRound",
        "htmlDate",
        "htmlDateInZone",
        "must_date_modify",
        "mustDateModify",
        "mustToDate",
        "now",
        "toDate",
        "unixEpoch",
        "abbrev",
        "abbrevboth",
        "trunc",
        "trim",
        "upper",
        "lower",
        "title",
        "untitle",
        "substr",
        "repeat",
        "trimall",
        "trimAll",
        "trimSuffix",
        "trimPrefix",
        "nospace",
        "initials",
        "randAlphaNum",
        "randAlpha",
        "randAscii",
        "randNumeric",
        "swapcase",
        "shuffle",
        "snakecase",
        "camelcase",
        "kebabcase",
        "wrap",
        "wrapWith",
        "contains",
        "hasPrefix",
        "hasSuffix",
        "quote",
        "squote",
        "cat",
        "indent",
        "nindent",
        "replace",
        "plural",
        "sha1sum",
        "sha256sum",
        "sha512sum",
        "adler32sum",
        "toString",
        "atoi",
        "int64",
        "int",
        "float64",
        "seq",
        "toDecimal",
        "split",
        "splitList",
        "splitn",
        "toStrings",
        "until",
        "untilStep",
        "add1",
        "add",
        "sub",
        "div",
        "mod",
        "mul",
        "randInt",
        "add1f",
        "addf",
        "subf",
        "divf",
        "mulf",
        "biggest",
        "max",
        "min",
        "maxf",
        "minf",
        "ceil",
        "floor",
        "round",
        "join",
        "sortAlpha",
        "default",
        "empty",
        "coalesce",
        "all",
        "any",
        "compact",
        "mustCompact",
        "fromJson",
        "toJson",
        "toPrettyJson",
        "toRawJson",
        "mustFromJson",
        "mustToJson",
        "mustToPrettyJson",
        "mustToRawJson",
        "ternary",
        "deepCopy",
        "mustDeepCopy",
        "typeOf",
        "typeIs",
        "typeIsLike",
        "kindOf",
        "kindIs",
        "deepEqual",
        "getHostByName",
        "base",
        "dir",
        "clean",
        "ext",
        "isAbs",
        "osBase",
        "osClean",
        "osDir",
        "osExt",
        "osIsAbs",
        "b64enc",
        "b64dec",
        "b32enc",
        "b32dec",
        "tuple",
        "list",
        "dict",
        "get",
        "set",
        "unset",
        "hasKey",
        "pluck",
        "keys",
        "pick",
        "omit",
        "merge",
        "mergeOverwrite",
        "mustMerge",
        "mustMergeOverwrite",
        "values",
        "append",
        "push",
        "mustAppend",
        "mustPush",
        "prepend",
        "mustPrepend",
        "first",
        "mustFirst",
        "rest",
        "mustRest",
        "last",
        "mustLast",
        "initial",
        "mustInitial",
        "reverse",
        "mustReverse",
        "uniq",
        "mustUniq",
        "without",
        "mustWithout",
        "has",
        "mustHas",
        "slice",
        "mustSlice",
        "concat",
        "dig",
        "chunk",
        "mustChunk",
        "bcrypt",
        "htpasswd",
        "genPrivateKey",
        "derivePassword",
        "buildCustomCert",
        "genCA",
        "genCAWithKey",
        "genSelfSignedCert",
        "genSelfSignedCertWithKey",
        "genSignedCert",
        "genSignedCertWithKey",
        "encryptAES",
        "decryptAES",
        "randBytes",
        "uuidv4",
        "semver",
        "semverCompare",
        "fail",
        "regexMatch",
        "mustRegexMatch",
        "regexFindAll",
        "mustRegexFindAll",
        "regexFind",
        "mustRegexFind",
        "regexReplaceAll",
        "mustRegexReplaceAll",
        "regexReplaceAllLiteral",
        "mustRegexReplaceAllLiteral",
        "regexSplit",
        "mustRegexSplit",
        "regexQuoteMeta",
        "urlParse",
        "urlJoin",
    ]
)


# --- spf13/cast -----------------------------------------------------------------------------------------------------------------


def _trim_zero_decimal(s: str) -> str:
    found_zero = False
    for i in range(len(s), 0, -1):
        ch = s[i - 1]
        if ch == ".":
            if found_zero:
                return s[: i - 1]
        elif ch == "0":
            found_zero = True
        else:
            return s
    return s


def to_int64(v: Any) -> int:
    """cast.ToInt64 with errors ignored (sprig's behaviour): strings parse with base prefixes, junk is 0."""
    if isinstance(v, bool):
        return int(v)
    if type(v) is int:
        return v
    if type(v) is float:
        return wrap_int(int(v)) if math.isfinite(v) else 0
    if isinstance(v, Duration):
        return v.ns
    if isinstance(v, str):
        try:
            return go_parse_int(_trim_zero_decimal(v), 0)
        except ValueError:
            return 0
    return 0


def to_float64(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    if type(v) in (int, float):
        return float(v)
    if isinstance(v, str):
        try:
            return go_parse_float(v)
        except ValueError:
            return 0.0
    return 0.0


def strval(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return go_str(v)


def empty(v: Any) -> bool:
    """sprig's ``empty``: nil, false, 0, "" and empty collections."""
    if v is None or v is False:
        return True
    if isinstance(v, int | float) and not isinstance(v, bool):
        return v == 0
    if isinstance(v, str | list | tuple | dict | bytes):
        return len(v) == 0
    if isinstance(v, Duration):
        return v.ns == 0
    return False


def _s(v: Any, fn: str, i: int) -> str:
    if type(v) is not str:
        raise Fail(f"sprig.{fn}: argument {i + 1} must be a string, not {go_type(v)}")
    return v


def _i(v: Any, fn: str, i: int) -> int:
    if type(v) is not int:
        raise Fail(f"sprig.{fn}: argument {i + 1} must be an int, not {go_type(v)}")
    return v


def _list(v: Any, fn: str) -> list[Any]:
    if isinstance(v, list | tuple):
        return list(v)
    raise Fail(f"Cannot find {fn} on type {go_type(v)}")


def _dict(v: Any, fn: str) -> dict[Any, Any]:
    if isinstance(v, dict):
        return v
    raise Fail(f"sprig.{fn}: argument must be a map, not {go_type(v)}")


def _sig(fn: str, *kinds: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Check argument count and Go types ("s" string, "i" int, "*" anything, "..." rest) before calling."""

    def wrap(impl: Callable[..., Any]) -> Callable[..., Any]:
        variadic = kinds and kinds[-1] == "..."
        fixed = kinds[:-1] if variadic else kinds

        def call(*args: Any) -> Any:
            if len(args) < len(fixed) or (not variadic and len(args) > len(fixed)):
                raise Fail(f"sprig.{fn}: wrong number of arguments: want {len(fixed)}{'+' if variadic else ''}, got {len(args)}")
            for i, kind in enumerate(fixed):
                if kind == "s":
                    _s(args[i], fn, i)
                elif kind == "i":
                    _i(args[i], fn, i)
            return impl(*args)

        return call

    return wrap


def _date_of(v: Any, now: Callable[[], datetime]) -> datetime:
    """sprig's dateInZone: time values and unix seconds; anything else (even a date string) means now."""
    if isinstance(v, datetime):
        return v
    if type(v) is int:
        return datetime.fromtimestamp(v, UTC)
    return now()


def _zone_of(name: str) -> Any:
    if name in ("UTC", "Local", ""):
        return UTC
    try:
        return ZoneInfo(name)
    except Exception:
        return UTC


def _regex_find_all(pattern: str, s: str, n: int) -> list[str]:
    found = [m.group(0) for m in regex(pattern).finditer(s)]
    return found if n < 0 else found[:n]


def _go_replacement(repl: str) -> str:
    # Go's ${1} / $1 / $name expansion → Python's \g<1>
    return re.sub(r"\$\{?(\w+)\}?", lambda m: "\\g<" + m.group(1) + ">", repl.replace("\\", "\\\\"))


def sprig_functions(now: Callable[[], datetime]) -> dict[str, Callable[..., Any]]:
    """The ``sprig`` map of an expression environment; ``now`` is the injected clock."""
    f: dict[str, Callable[..., Any]] = {}

    def reg(name: str, *kinds: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(impl: Callable[..., Any]) -> Callable[..., Any]:
            f[name] = _sig(name, *kinds)(impl)
            return impl

        return deco

    # strings
    reg("trim", "s")(lambda s: s.strip(" \t\n\v\f\r\x85\xa0"))
    reg("upper", "s")(str.upper)
    reg("lower", "s")(str.lower)
    # strings.Title: a letter after anything but a letter, digit or underscore starts a word
    reg("title", "s")(lambda s: re.sub(r"(?<![\w])(\w)", lambda m: m.group(1).upper(), s))
    reg("untitle", "s")(lambda s: re.sub(r"(?<![\w])(\w)", lambda m: m.group(1).lower(), s))
    reg("repeat", "i", "s")(lambda n, s: _budget(len(s) * max(n, 0)) and s * max(n, 0))
    reg("substr", "i", "i", "s")(lambda a, b, s: s[:b] if a < 0 else (s[a:] if b < 0 or b > len(s) else s[a:b]))
    reg("trunc", "i", "s")(lambda c, s: s[len(s) + c :] if c < 0 and len(s) + c > 0 else (s[:c] if 0 <= c < len(s) else s))
    reg("trimAll", "s", "s")(lambda cut, s: s.strip(cut))
    reg("trimall", "s", "s")(lambda cut, s: s.strip(cut))
    reg("trimSuffix", "s", "s")(lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s)
    reg("trimPrefix", "s", "s")(lambda pre, s: s[len(pre) :] if pre and s.startswith(pre) else s)
    reg("nospace", "s")(lambda s: "".join(s.split()))
    reg("initials", "s")(lambda s: "".join(w[0] for w in s.split()))
    reg("swapcase", "s")(str.swapcase)
    reg("contains", "s", "s")(lambda sub, s: sub in s)
    reg("hasPrefix", "s", "s")(lambda pre, s: s.startswith(pre))
    reg("hasSuffix", "s", "s")(lambda suf, s: s.endswith(suf))
    reg("quote", "...")(lambda *v: " ".join(json.dumps(strval(x), ensure_ascii=False) for x in v if x is not None))
    reg("squote", "...")(lambda *v: " ".join(f"'{go_str(x)}'" for x in v if x is not None))
    reg("cat", "...")(lambda *v: " ".join(go_str(x) for x in v if x is not None))
    reg("indent", "i", "s")(lambda n, s: " " * n + s.replace("\n", "\n" + " " * n))
    reg("nindent", "i", "s")(lambda n, s: "\n" + " " * n + s.replace("\n", "\n" + " " * n))
    reg("replace", "s", "s", "s")(lambda old, new, s: s.replace(old, new))
    reg("plural", "s", "s", "i")(lambda one, many, n: one if n == 1 else many)
    reg("toString", "*")(strval)
    reg("split", "s", "s")(lambda sep, s: {f"_{i}": p for i, p in enumerate(s.split(sep) if sep else list(s))})
    reg("splitList", "s", "s")(lambda sep, s: s.split(sep) if sep else list(s))
    reg("splitn", "s", "i", "s")(lambda sep, n, s: {f"_{i}": p for i, p in enumerate(s.split(sep, n - 1) if n > 0 else [])})
    reg("join", "s", "*")(
        lambda sep, v: sep.join(strval(x) for x in (v if isinstance(v, list | tuple) else [v]) if x is not None)
    )
    reg("sortAlpha", "*")(lambda v: sorted(strval(x) for x in _list(v, "sortAlpha")))
    reg("toStrings", "*")(lambda v: [strval(x) for x in _list(v, "toStrings")])
    reg("abbrev", "i", "s")(lambda w, s: s if len(s) <= w or w < 4 else s[: w - 3] + "...")

    # conversions and math (int64 / float64 results, as in sprig)
    reg("atoi", "s")(lambda s: to_int64(s) if s.strip() == s and s.lstrip("+-").isdigit() else 0)
    reg("int", "*")(to_int64)
    reg("int64", "*")(to_int64)
    reg("float64", "*")(to_float64)
    reg("toDecimal", "*")(lambda v: _octal(go_str(v)))
    reg("add1", "*")(lambda v: wrap_int(to_int64(v) + 1))
    reg("add", "...")(lambda *v: wrap_int(sum(to_int64(x) for x in v)))
    reg("sub", "*", "*")(lambda a, b: wrap_int(to_int64(a) - to_int64(b)))
    reg("mul", "*", "...")(lambda a, *v: wrap_int(math.prod([to_int64(a), *(to_int64(x) for x in v)])))
    reg("div", "*", "*")(lambda a, b: _int_div(to_int64(a), to_int64(b)))
    reg("mod", "*", "*")(lambda a, b: _int_mod(to_int64(a), to_int64(b)))
    reg("max", "*", "...")(lambda a, *v: max([to_int64(a), *(to_int64(x) for x in v)]))
    reg("biggest", "*", "...")(lambda a, *v: max([to_int64(a), *(to_int64(x) for x in v)]))
    reg("min", "*", "...")(lambda a, *v: min([to_int64(a), *(to_int64(x) for x in v)]))
    reg("maxf", "*", "...")(lambda a, *v: max([to_float64(a), *(to_float64(x) for x in v)]))
    reg("minf", "*", "...")(lambda a, *v: min([to_float64(a), *(to_float64(x) for x in v)]))
    reg("addf", "...")(lambda *v: float(sum((_dec(x) for x in v), _dec(0))))
    reg("add1f", "*")(lambda v: float(_dec(v) + 1))
    reg("subf", "*", "...")(lambda a, *v: float(_dec(a) - sum((_dec(x) for x in v), _dec(0))))
    reg("mulf", "*", "...")(lambda a, *v: float(math.prod([_dec(a), *(_dec(x) for x in v)])))
    reg("divf", "*", "...")(_divf)
    reg("floor", "*")(lambda v: float(math.floor(to_float64(v))))
    reg("ceil", "*")(lambda v: float(math.ceil(to_float64(v))))
    reg("round", "*", "i", "...")(_round)
    reg("until", "i")(lambda n: _budget(abs(n)) and list(range(0, n, 1 if n >= 0 else -1)))
    reg("untilStep", "i", "i", "i")(_until_step)
    reg("seq", "...")(_seq)

    # defaults, flow, JSON
    reg("default", "*", "...")(lambda d, *given: d if not given or empty(given[0]) else given[0])
    reg("empty", "*")(empty)
    reg("coalesce", "...")(lambda *v: next((x for x in v if not empty(x)), None))
    reg("all", "...")(lambda *v: all(not empty(x) for x in v))
    reg("any", "...")(lambda *v: any(not empty(x) for x in v))
    reg("compact", "*")(lambda v: [x for x in _list(v, "compact") if not empty(x)])
    reg("ternary", "*", "*", "*")(lambda a, b, cond: a if cond is True else b)
    reg("fromJson", "s")(lambda s: _quiet(from_json, s))
    reg("mustFromJson", "s")(from_json)
    reg("toJson", "*")(lambda v: _quiet(go_json, v) or "")
    reg("mustToJson", "*")(go_json)
    reg("toRawJson", "*")(lambda v: _raw_json(v))
    reg("toPrettyJson", "*")(lambda v: _quiet(go_json, v, "  ") or "")
    reg("deepEqual", "*", "*")(lambda a, b: equal(a, b) and type(a) is type(b))
    reg("typeOf", "*")(go_type)
    reg("kindOf", "*")(_kind)
    reg("kindIs", "s", "*")(lambda k, v: _kind(v) == k)
    reg("typeIs", "s", "*")(lambda t, v: go_type(v) == t)
    reg("fail", "s")(_fail)

    # encodings, hashes, paths
    reg("b64enc", "s")(lambda s: base64.b64encode(s.encode()).decode())
    reg("b64dec", "s")(_b64dec)
    reg("b32enc", "s")(lambda s: base64.b32encode(s.encode()).decode())
    reg("b32dec", "s")(lambda s: _decode(base64.b32decode, s))
    reg("sha1sum", "s")(lambda s: hashlib.sha1(s.encode()).hexdigest())
    reg("sha256sum", "s")(lambda s: hashlib.sha256(s.encode()).hexdigest())
    reg("sha512sum", "s")(lambda s: hashlib.sha512(s.encode()).hexdigest())
    reg("adler32sum", "s")(lambda s: str(zlib.adler32(s.encode())))
    reg("base", "s")(lambda p: posixpath.basename(p.rstrip("/")) or ("/" if p.startswith("/") else "."))
    reg("dir", "s")(lambda p: posixpath.dirname(posixpath.normpath(p)) or ".")
    reg("clean", "s")(lambda p: posixpath.normpath(p) if p else ".")
    reg("ext", "s")(lambda p: posixpath.splitext(p)[1])
    reg("isAbs", "s")(lambda p: p.startswith("/"))

    # lists and dicts
    reg("list", "...")(lambda *v: list(v))
    reg("tuple", "...")(lambda *v: list(v))
    reg("dict", "...")(lambda *v: {strval(v[i]): (v[i + 1] if i + 1 < len(v) else "") for i in range(0, len(v), 2)})
    reg("get", "*", "s")(lambda d, k: _dict(d, "get").get(k, ""))
    reg("set", "*", "s", "*")(lambda d, k, v: _dict(d, "set").update({k: v}) or d)
    reg("unset", "*", "s")(lambda d, k: (_dict(d, "unset").pop(k, None) and d) or d)
    reg("hasKey", "*", "s")(lambda d, k: k in _dict(d, "hasKey"))
    reg("pluck", "s", "...")(lambda k, *ds: [d[k] for d in ds if k in _dict(d, "pluck")])
    reg("keys", "...")(lambda *ds: [k for d in ds for k in _dict(d, "keys")])
    reg("values", "*")(lambda d: list(_dict(d, "values").values()))
    reg("pick", "*", "...")(lambda d, *ks: {k: v for k, v in _dict(d, "pick").items() if k in ks})
    reg("omit", "*", "...")(lambda d, *ks: {k: v for k, v in _dict(d, "omit").items() if k not in ks})
    reg("merge", "*", "...")(lambda d, *src: _merge(d, src, overwrite=False))
    reg("mergeOverwrite", "*", "...")(lambda d, *src: _merge(d, src, overwrite=True))
    reg("dig", "...")(_dig)
    for name in ("append", "push", "mustAppend", "mustPush"):
        reg(name, "*", "*")(lambda lst, v: [*_list(lst, "push"), v])
    for name in ("prepend", "mustPrepend"):
        reg(name, "*", "*")(lambda lst, v: [v, *_list(lst, "prepend")])
    for name in ("first", "mustFirst"):
        reg(name, "*")(lambda lst: (_list(lst, "first") or [None])[0])
    for name in ("last", "mustLast"):
        reg(name, "*")(lambda lst: (_list(lst, "last") or [None])[-1])
    for name in ("rest", "mustRest"):
        reg(name, "*")(lambda lst: _list(lst, "rest")[1:] if _list(lst, "rest") else None)
    for name in ("initial", "mustInitial"):
        reg(name, "*")(lambda lst: _list(lst, "initial")[:-1] if _list(lst, "initial") else None)
    for name in ("reverse", "mustReverse"):
        reg(name, "*")(lambda lst: _list(lst, "reverse")[::-1])
    for name in ("uniq", "mustUniq"):
        reg(name, "*")(lambda lst: _uniq(_list(lst, "uniq")))
    for name in ("without", "mustWithout"):
        reg(name, "*", "...")(lambda lst, *omit: [x for x in _list(lst, "without") if not any(equal(x, o) for o in omit)])
    for name in ("has", "mustHas"):
        reg(name, "*", "*")(lambda needle, lst: lst is not None and any(equal(x, needle) for x in _list(lst, "has")))
    for name in ("slice", "mustSlice"):
        reg(name, "*", "...")(lambda lst, *idx: _list(lst, "slice")[slice(*(int(to_int64(i)) for i in idx[:2]))])
    for name in ("chunk", "mustChunk"):
        reg(name, "i", "*")(
            lambda n, lst: [_list(lst, "chunk")[i : i + n] for i in range(0, len(_list(lst, "chunk")), max(n, 1))]
        )
    reg("concat", "...")(lambda *ls: [x for lst in ls for x in _list(lst, "concat")])
    reg("compact", "*")(lambda v: [x for x in _list(v, "compact") if not empty(x)])
    reg("mustCompact", "*")(lambda v: [x for x in _list(v, "compact") if not empty(x)])
    reg("deepCopy", "*")(lambda v: json.loads(json.dumps(v)) if v is not None else None)

    # regular expressions (RE2)
    reg("regexMatch", "s", "s")(lambda p, s: regex(p).search(s) is not None)
    reg("mustRegexMatch", "s", "s")(lambda p, s: regex(p).search(s) is not None)
    reg("regexFind", "s", "s")(lambda p, s: m.group(0) if (m := regex(p).search(s)) else "")
    reg("mustRegexFind", "s", "s")(lambda p, s: m.group(0) if (m := regex(p).search(s)) else "")
    reg("regexFindAll", "s", "s", "i")(_regex_find_all)
    reg("mustRegexFindAll", "s", "s", "i")(_regex_find_all)
    reg("regexReplaceAll", "s", "s", "s")(lambda p, s, r: regex(p).sub(_go_replacement(r), s))
    reg("mustRegexReplaceAll", "s", "s", "s")(lambda p, s, r: regex(p).sub(_go_replacement(r), s))
    reg("regexReplaceAllLiteral", "s", "s", "s")(lambda p, s, r: regex(p).sub(lambda _m: r, s))
    reg("regexSplit", "s", "s", "i")(lambda p, s, n: regex(p).split(s, maxsplit=max(n - 1, 0)) if n != 0 else [])
    reg("regexQuoteMeta", "s")(_quote_meta)

    # dates (``now`` is the injected clock; "Local" is the controller's zone, UTC)
    reg("now")(now)
    reg("date", "s", "*")(lambda layout, d: format_time(_date_of(d, now).astimezone(UTC), layout))
    reg("dateInZone", "s", "*", "s")(lambda layout, d, z: format_time(_date_of(d, now).astimezone(_zone_of(z)), layout))
    reg("date_in_zone", "s", "*", "s")(lambda layout, d, z: format_time(_date_of(d, now).astimezone(_zone_of(z)), layout))
    reg("htmlDate", "*")(lambda d: format_time(_date_of(d, now).astimezone(UTC), "2006-01-02"))
    reg("htmlDateInZone", "*", "s")(lambda d, z: format_time(_date_of(d, now).astimezone(_zone_of(z)), "2006-01-02"))
    reg("unixEpoch", "*")(lambda d: str(int(_date_of(d, now).timestamp())))
    reg("toDate", "s", "s")(_to_date)
    reg("mustToDate", "s", "s")(_to_date)
    reg("dateModify", "s", "*")(lambda m, d: _date_modify(m, d))
    reg("date_modify", "s", "*")(lambda m, d: _date_modify(m, d))
    reg("duration", "*")(lambda sec: format_duration(to_int64(sec) * 10**9))
    reg("ago", "*")(lambda d: format_duration(_round_seconds(now() - _date_of(d, now))))
    return f


def _octal(text: str) -> int:
    try:
        return go_parse_int(text, 8)
    except ValueError:
        return 0


def _int_div(a: int, b: int) -> int:
    if b == 0:
        raise Fail("sprig.div: integer divide by zero")
    q = abs(a) // abs(b)
    return wrap_int(q if (a >= 0) == (b >= 0) else -q)


def _int_mod(a: int, b: int) -> int:
    if b == 0:
        raise Fail("sprig.mod: integer divide by zero")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _dec(v: Any) -> Any:

    return Decimal(repr(to_float64(v)))


def _divf(a: Any, *v: Any) -> float:

    result = _dec(a)
    for x in v:
        try:
            result = result / _dec(x)
        except (DivisionByZero, InvalidOperation) as err:
            raise Fail("sprig.divf: division by zero") from err
    return float(result.quantize(Decimal("1e-16")).normalize()) if result != 0 else 0.0


def _round(a: Any, places: int, *opt: Any) -> float:
    round_on = to_float64(opt[0]) if opt else 0.5
    pow_ = math.pow(10, places)
    digit = pow_ * to_float64(a)
    frac = digit - math.trunc(digit)
    rounded = math.ceil(digit) if frac >= round_on else math.floor(digit)
    return rounded / pow_


def _budget(size: int) -> bool:
    """Refuse results that would exhaust memory (a hostile parameter must not take the engine down)."""
    if size > 10_000_000:
        raise Fail("memory budget exceeded")
    return True


def _until_step(start: int, stop: int, step: int) -> list[int]:
    if step and abs((stop - start) // step) > 10_000_000:
        raise Fail("memory budget exceeded")
    if stop < start:
        return list(range(start, stop, step)) if step < 0 else []
    return list(range(start, stop, step)) if step > 0 else []


def _seq(*params: Any) -> str:
    ints = [int(to_int64(p)) for p in params]
    if not ints:
        return ""
    if len(ints) == 1:
        start, step, end = 1, 1, ints[0]
        if end < start:
            step = -1
    elif len(ints) == 2:
        start, end = ints
        step = 1 if end >= start else -1
    else:
        start, step, end = ints[:3]
        if (end > start and step <= 0) or (end < start and step >= 0):
            return ""
    if step and abs((end - start) // step) > 10_000_000:
        raise Fail("memory budget exceeded")
    values = list(range(start, end + (1 if step > 0 else -1), step)) if step else []
    return " ".join(map(str, values))


def _quiet(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Fail:
        return None


def _raw_json(v: Any) -> str:
    text = _quiet(go_json, v) or ""
    for escaped, raw in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&")):
        text = text.replace(escaped, raw)
    return text


def _kind(v: Any) -> str:
    kinds = {type(None): "invalid", bool: "bool", int: "int", float: "float64", str: "string", list: "slice", dict: "map"}
    return kinds.get(type(v), "struct")


def _fail(message: str) -> Any:
    raise Fail(message)


def _b64dec(s: str) -> str:
    try:
        return base64.b64decode(s, validate=True).decode("utf-8", errors="replace")
    except ValueError as err:
        return f"illegal base64 data: {err}"  # sprig returns the error text as the value


def _decode(fn: Callable[[str], bytes], s: str) -> str:
    try:
        return fn(s).decode("utf-8", errors="replace")
    except ValueError as err:
        return str(err)


def _merge(dst: Any, sources: tuple[Any, ...], overwrite: bool) -> dict[Any, Any]:
    out = _dict(dst, "merge")
    for src in sources:
        for k, v in _dict(src, "merge").items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                _merge(out[k], (v,), overwrite)
            elif overwrite or k not in out or empty(out[k]):
                out[k] = v
    return out


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise Fail("sprig.dig: needs at least a key, a default and a map")
    *keys, default, d = args
    current = _dict(d, "dig")
    for i, key in enumerate(keys):
        if not isinstance(current, dict) or key not in current:
            return default
        current = current[key]
        if i < len(keys) - 1 and not isinstance(current, dict):
            return default
    return current


def _uniq(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if not any(equal(x, y) for y in out):
            out.append(x)
    return out


def _quote_meta(s: str) -> str:
    special = set("\\.+*?()|[]{}^$")
    return "".join("\\" + ch if ch in special else ch for ch in s)


def _to_date(layout: str, text: str) -> datetime:

    return parse_time(text, layout)


def _date_modify(modifier: str, d: Any) -> datetime:
    if not isinstance(d, datetime):
        raise Fail(f"sprig.dateModify: argument 2 must be a time, not {go_type(d)}")
    try:
        return d + timedelta(microseconds=parse_duration(modifier).ns // 1000)
    except Fail:
        return d


def _round_seconds(delta: timedelta) -> int:
    return round(delta.total_seconds()) * 10**9
