"""Go's semantics that Argo shows users, from ``scanflow_argo.argoexpr.golang``: ``time.ParseDuration``,
Argo's ``ParseStringToDuration`` and ``fmt.Sprintf``. Every expected value below was produced by Go itself
(go1.19: ``fmt.Sprintf(format, i)`` and ``time.ParseDuration(s)``), so the tables are Go's, not ours.

Where Argo uses them: ``withSequence.format`` → ``fmt.Sprintf(format, i)`` in
workflow/controller/operator.go ``expandSequence``; suspend ``duration`` and ``retryStrategy.backoff``
→ ``wfv1.ParseStringToDuration`` (pkg/apis/workflow/v1alpha1/utils.go: ``strconv.Atoi`` first, then
``time.ParseDuration``); a template's ``timeout`` must not be a whole number (workflow/validate/validate.go:
"has invalid duration format in timeout"), so it is ``time.ParseDuration`` only; containerSet
``retryStrategy.duration`` → ``time.ParseDuration`` (container_set_template_types.go).
"""

from __future__ import annotations

import pytest

from scanflow_argo.argoexpr.errors import Fail
from scanflow_argo.argoexpr.golang import argo_duration, parse_duration, sprintf

# (format, argument, what Go's fmt.Sprintf gives)
SPRINTF = [
    ("% 05d", -3, "-0003"),
    ("% 05d", 0, " 0000"),
    ("% 05d", 255, " 0255"),
    ("% 05d", 42, " 0042"),
    ("% d", -3, "-3"),
    ("% d", 0, " 0"),
    ("% d", 255, " 255"),
    ("% d", 42, " 42"),
    ("%!", -3, "%!!(int=-3)"),
    ("%!", 0, "%!!(int=0)"),
    ("%!", 255, "%!!(int=255)"),
    ("%!", 42, "%!!(int=42)"),
    ("%#08x", -3, "-0x0000003"),
    ("%#08x", 0, "0x00000000"),
    ("%#08x", 255, "0x000000ff"),
    ("%#08x", 42, "0x0000002a"),
    ("%#U", -3, "U+FFFFFFFFFFFFFFFD"),
    ("%#U", 0, "U+0000"),
    ("%#U", 255, "U+00FF 'ÿ'"),
    ("%#U", 42, "U+002A '*'"),
    ("%#X", -3, "-0X3"),
    ("%#X", 0, "0X0"),
    ("%#X", 255, "0XFF"),
    ("%#X", 42, "0X2A"),
    ("%#b", -3, "-0b11"),
    ("%#b", 0, "0b0"),
    ("%#b", 255, "0b11111111"),
    ("%#b", 42, "0b101010"),
    ("%#o", -3, "-03"),
    ("%#o", 0, "0"),
    ("%#o", 255, "0377"),
    ("%#o", 42, "052"),
    ("%#v", -3, "-3"),
    ("%#v", 0, "0"),
    ("%#v", 255, "255"),
    ("%#v", 42, "42"),
    ("%#x", -3, "-0x3"),
    ("%#x", 0, "0x0"),
    ("%#x", 255, "0xff"),
    ("%#x", 42, "0x2a"),
    ("%%%d", -3, "%-3"),
    ("%%%d", 0, "%0"),
    ("%%%d", 255, "%255"),
    ("%%%d", 42, "%42"),
    ("%*d", -3, "%!d(MISSING)"),
    ("%*d", 0, "%!d(MISSING)"),
    ("%*d", 255, "%!d(MISSING)"),
    ("%*d", 42, "%!d(MISSING)"),
    ("%+05d", -3, "-0003"),
    ("%+05d", 0, "+0000"),
    ("%+05d", 255, "+0255"),
    ("%+05d", 42, "+0042"),
    ("%+d", -3, "-3"),
    ("%+d", 0, "+0"),
    ("%+d", 255, "+255"),
    ("%+d", 42, "+42"),
    ("%-*d", -3, "%!d(MISSING)"),
    ("%-*d", 0, "%!d(MISSING)"),
    ("%-*d", 255, "%!d(MISSING)"),
    ("%-*d", 42, "%!d(MISSING)"),
    ("%-08d|", -3, "-3      |"),
    ("%-08d|", 0, "0       |"),
    ("%-08d|", 255, "255     |"),
    ("%-08d|", 42, "42      |"),
    ("%-5d|", -3, "-3   |"),
    ("%-5d|", 0, "0    |"),
    ("%-5d|", 255, "255  |"),
    ("%-5d|", 42, "42   |"),
    ("%.*d", -3, "%!(BADPREC)%!d(MISSING)"),
    ("%.*d", 0, "%!d(MISSING)"),
    ("%.*d", 255, "%!d(MISSING)"),
    ("%.*d", 42, "%!d(MISSING)"),
    ("%.0d", -3, "-3"),
    ("%.0d", 0, ""),
    ("%.0d", 255, "255"),
    ("%.0d", 42, "42"),
    ("%.3d", -3, "-003"),
    ("%.3d", 0, "000"),
    ("%.3d", 255, "255"),
    ("%.3d", 42, "042"),
    ("%02d", -3, "-3"),
    ("%02d", 0, "00"),
    ("%02d", 255, "255"),
    ("%02d", 42, "42"),
    ("%08.3d", -3, "    -003"),
    ("%08.3d", 0, "     000"),
    ("%08.3d", 255, "     255"),
    ("%08.3d", 42, "     042"),
    ("%5.2v", -3, "  -03"),
    ("%5.2v", 0, "   00"),
    ("%5.2v", 255, "  255"),
    ("%5.2v", 42, "   42"),
    ("%5d|", -3, "   -3|"),
    ("%5d|", 0, "    0|"),
    ("%5d|", 255, "  255|"),
    ("%5d|", 42, "   42|"),
    ("%O", -3, "-0o3"),
    ("%O", 0, "0o0"),
    ("%O", 255, "0o377"),
    ("%O", 42, "0o52"),
    ("%T", -3, "int"),
    ("%T", 0, "int"),
    ("%T", 255, "int"),
    ("%T", 42, "int"),
    ("%U", -3, "U+FFFFFFFFFFFFFFFD"),
    ("%U", 0, "U+0000"),
    ("%U", 255, "U+00FF"),
    ("%U", 42, "U+002A"),
    ("%X", -3, "-3"),
    ("%X", 0, "0"),
    ("%X", 255, "FF"),
    ("%X", 42, "2A"),
    ("%[1]d %[1]x", -3, "-3 -3"),
    ("%[1]d %[1]x", 0, "0 0"),
    ("%[1]d %[1]x", 255, "255 ff"),
    ("%[1]d %[1]x", 42, "42 2a"),
    ("%[2]d", -3, "%!d(BADINDEX)"),
    ("%[2]d", 0, "%!d(BADINDEX)"),
    ("%[2]d", 255, "%!d(BADINDEX)"),
    ("%[2]d", 42, "%!d(BADINDEX)"),
    ("%[x]d", -3, "%!d(BADINDEX)"),
    ("%[x]d", 0, "%!d(BADINDEX)"),
    ("%[x]d", 255, "%!d(BADINDEX)"),
    ("%[x]d", 42, "%!d(BADINDEX)"),
    ("%b", -3, "-11"),
    ("%b", 0, "0"),
    ("%b", 255, "11111111"),
    ("%b", 42, "101010"),
    ("%c", -3, "�"),
    ("%c", 0, "\x00"),
    ("%c", 255, "ÿ"),
    ("%c", 42, "*"),
    ("%d %d", -3, "-3 %!d(MISSING)"),
    ("%d %d", 0, "0 %!d(MISSING)"),
    ("%d %d", 255, "255 %!d(MISSING)"),
    ("%d %d", 42, "42 %!d(MISSING)"),
    ("%d%%", -3, "-3%"),
    ("%d%%", 0, "0%"),
    ("%d%%", 255, "255%"),
    ("%d%%", 42, "42%"),
    ("%d", -3, "-3"),
    ("%d", 0, "0"),
    ("%d", 255, "255"),
    ("%d", 42, "42"),
    ("%e", -3, "%!e(int=-3)"),
    ("%e", 0, "%!e(int=0)"),
    ("%e", 255, "%!e(int=255)"),
    ("%e", 42, "%!e(int=42)"),
    ("%f", -3, "%!f(int=-3)"),
    ("%f", 0, "%!f(int=0)"),
    ("%f", 255, "%!f(int=255)"),
    ("%f", 42, "%!f(int=42)"),
    ("%o", -3, "-3"),
    ("%o", 0, "0"),
    ("%o", 255, "377"),
    ("%o", 42, "52"),
    ("%q", -3, "'�'"),
    ("%q", 0, "'\\x00'"),
    ("%q", 255, "'ÿ'"),
    ("%q", 42, "'*'"),
    ("%s", -3, "%!s(int=-3)"),
    ("%s", 0, "%!s(int=0)"),
    ("%s", 255, "%!s(int=255)"),
    ("%s", 42, "%!s(int=42)"),
    ("%t", -3, "%!t(int=-3)"),
    ("%t", 0, "%!t(int=0)"),
    ("%t", 255, "%!t(int=255)"),
    ("%t", 42, "%!t(int=42)"),
    ("%v", -3, "-3"),
    ("%v", 0, "0"),
    ("%v", 255, "255"),
    ("%v", 42, "42"),
    ("%x", -3, "-3"),
    ("%x", 0, "0"),
    ("%x", 255, "ff"),
    ("%x", 42, "2a"),
    ("%z", -3, "%!z(int=-3)"),
    ("%z", 0, "%!z(int=0)"),
    ("%z", 255, "%!z(int=255)"),
    ("%z", 42, "%!z(int=42)"),
    ("%", -3, "%!(NOVERB)%!(EXTRA int=-3)"),
    ("%", 0, "%!(NOVERB)%!(EXTRA int=0)"),
    ("%", 255, "%!(NOVERB)%!(EXTRA int=255)"),
    ("%", 42, "%!(NOVERB)%!(EXTRA int=42)"),
    ("2020-05-%02X", -3, "2020-05--3"),
    ("2020-05-%02X", 0, "2020-05-00"),
    ("2020-05-%02X", 255, "2020-05-FF"),
    ("2020-05-%02X", 42, "2020-05-2A"),
    ("abc", -3, "abc%!(EXTRA int=-3)"),
    ("abc", 0, "abc%!(EXTRA int=0)"),
    ("abc", 255, "abc%!(EXTRA int=255)"),
    ("abc", 42, "abc%!(EXTRA int=42)"),
    ("step-%03d-of", -3, "step--03-of"),
    ("step-%03d-of", 0, "step-000-of"),
    ("step-%03d-of", 255, "step-255-of"),
    ("step-%03d-of", 42, "step-042-of"),
]

# time.ParseDuration(text): nanoseconds, or Go's error text
DURATIONS = [
    ("", 'ERR time: invalid duration ""'),
    (" 1s", 'ERR time: invalid duration " 1s"'),
    ("+0", 0),
    ("+5m", 300000000000),
    ("-0", 0),
    ("-1s", -1000000000),
    ("-9223372036854775808ns", -9223372036854775808),
    (".5s", 500000000),
    (".s", 'ERR time: invalid duration ".s"'),
    ("0", 0),
    ("0.0000000001s", 0),
    ("0.000000001s", 1),
    ("1", 'ERR time: missing unit in duration "1"'),
    ("1 s", 'ERR time: unknown unit " s" in duration "1 s"'),
    ('1"s', 'ERR time: unknown unit "\\"s" in duration "1\\"s"'),
    ("1.0000000000000000000001s", 1000000000),
    ("1.123456789123s", 1123456789),
    ("1.5", 'ERR time: missing unit in duration "1.5"'),
    ("1.5.s", 'ERR time: missing unit in duration "1.5.s"'),
    ("1.5h", 5400000000000),
    ("1.s", 1000000000),
    ("10000000000000h", 'ERR time: invalid duration "10000000000000h"'),
    ("1S", 'ERR time: unknown unit "S" in duration "1S"'),
    ("1d", 'ERR time: unknown unit "d" in duration "1d"'),
    ("1e3s", 'ERR time: unknown unit "e" in duration "1e3s"'),
    ("1h-1m", 'ERR time: unknown unit "h-" in duration "1h-1m"'),
    ("1h30m", 5400000000000),
    ("1s", 1000000000),
    ("1µ", 'ERR time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),
    ("1é", 'ERR time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
    ("2h45m30.5s", 9930500000000),
    ("300us", 300000),
    ("300µs", 300000),
    ("300μs", 300000),
    ("3m0.5s", 180500000000),
    ("9223372036854775807ns", 9223372036854775807),
    ("9223372036854775808ns", 'ERR time: invalid duration "9223372036854775808ns"'),
    ("s", 'ERR time: invalid duration "s"'),
]


@pytest.mark.parametrize(("fmt", "arg", "want"), SPRINTF)
def test_sprintf_is_gos(fmt: str, arg: int, want: str) -> None:
    assert sprintf(fmt, arg) == want


def test_sprintf_with_strings_bools_and_several_arguments() -> None:
    assert sprintf("%s-%d", "a", 1) == "a-1"
    assert sprintf("%5s|%-5s|", "ab", "cd") == "   ab|cd   |"
    assert sprintf("%.2s %q", "abcdef", "x") == 'ab "x"'
    assert sprintf("%t %v", True, False) == "true false"
    assert sprintf("%d", "x") == "%!d(string=x)"
    assert sprintf("%d %d", 1) == "1 %!d(MISSING)"


@pytest.mark.parametrize(("text", "want"), DURATIONS)
def test_parse_duration_is_gos(text: str, want: int | str) -> None:
    if isinstance(want, str):
        with pytest.raises(Fail) as err:
            parse_duration(text)
        assert "ERR " + err.value.cause == want
    else:
        assert parse_duration(text).ns == want


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("-1", -1.0), ("0", 0.0), ("1m30s", 90.0), ("300us", 0.0003), ("-1s", -1.0), ("1.5h", 5400.0)],
)
def test_argo_durations_take_whole_seconds_first(text: str, seconds: float) -> None:
    assert argo_duration(text).ns / 1e9 == seconds


@pytest.mark.parametrize(("text", "cause"), [("1d", 'unknown unit "d"'), ("1.5", "missing unit"), ("", "invalid duration")])
def test_argo_durations_refuse_what_go_refuses(text: str, cause: str) -> None:
    with pytest.raises(Fail, match=f"unable to parse {text} as a duration: time: .*{cause}"):
        argo_duration(text)
