"""The tokenizer of expr-lang (github.com/expr-lang/expr ``parser/lexer``), rule for rule.

Tokens are ``(kind, value, position)``; kinds are ``EOF``, ``Identifier``, ``Number``, ``String``, ``Bytes``,
``Operator`` and ``Bracket``. Keywords (``in``, ``and``, ``matches``…) lex as operators, ``not in`` and friends
become two operator tokens, comments are skipped.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import Fail

__all__ = ["Token", "lex"]


class Token(NamedTuple):
    kind: str
    value: str
    pos: int

    def show(self) -> str:
        """How expr names a token in messages: ``Bracket(")")``, ``EOF``."""
        if self.kind == "EOF" or not self.value:
            return self.kind
        return f'{self.kind}("{self.value}")'

    def is_(self, kind: str, *values: str) -> bool:
        return self.kind == kind and (not values or self.value in values)


_KEYWORD_OPS = {"in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
_NOT_SUFFIX = {"in", "matches", "contains", "startsWith", "endsWith"}


def _alnum(c: str) -> bool:
    return c == "_" or c == "$" or c.isalpha() or c.isdigit()


def lex(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an EOF token."""
    out: list[Token] = []
    n = len(source)
    i = 0
    while True:
        if i >= n:
            out.append(Token("EOF", "", max(0, n - 1)))
            return out
        c = source[i]
        start = i
        if c.isspace():
            i += 1
        elif c in "'\"":
            text, i = _scan_string(source, i, c)
            out.append(Token("String", text, start))
        elif c == "`":
            end = i + 1
            buf = []
            while True:
                if end >= n:
                    raise Fail("literal not terminated", start)
                if source[end] == "`":
                    if end + 1 < n and source[end + 1] == "`":
                        buf.append("`")
                        end += 2
                        continue
                    break
                buf.append(source[end])
                end += 1
            out.append(Token("String", "".join(buf), start))
            i = end + 1
        elif c in "bB" and i + 1 < n and source[i + 1] in "'\"":
            text, i = _scan_string(source, i + 1, source[i + 1], as_bytes=True)
            out.append(Token("Bytes", text, start))
        elif c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            i = _scan_number(source, i)
            out.append(Token("Number", source[start:i], start))
        elif c == "?":
            i += 2 if i + 1 < n and source[i + 1] in ".?" else 1
            out.append(Token("Operator", source[start:i], start))
        elif c == "/":
            if source.startswith("//", i):
                end = source.find("\n", i)
                i = n if end < 0 else end + 1
            elif source.startswith("/*", i):
                end = source.find("*/", i + 2)
                if end < 0:
                    raise Fail("unclosed comment", n)
                i = end + 2
            else:
                out.append(Token("Operator", "/", start))
                i += 1
        elif c == "#":
            out.append(Token("Operator", "#", start))
            i += 1
            j = i
            while j < n and _alnum(source[j]):
                j += 1
            if j > i:
                out.append(Token("Identifier", source[i:j], i))
                i = j
        elif c in "|:":
            i += 2 if i + 1 < n and source[i + 1] == c else 1
            out.append(Token("Operator", source[start:i], start))
        elif c in "([{)]}":
            out.append(Token("Bracket", c, start))
            i += 1
        elif c in ",;%+-^":
            out.append(Token("Operator", c, start))
            i += 1
        elif c in "&!=*<>":
            i += 2 if i + 1 < n and source[i + 1] in "&=*" else 1
            out.append(Token("Operator", source[start:i], start))
        elif c == ".":
            i += 2 if i + 1 < n and source[i + 1] == "." else 1
            out.append(Token("Operator", source[start:i], start))
        elif _alnum(c):
            j = i
            while j < n and _alnum(source[j]):
                j += 1
            word = source[i:j]
            i = j
            if word == "not":
                out.append(Token("Operator", "not", start))
                k = i
                while k < n and source[k] == " ":
                    k += 1
                m = k
                while m < n and _alnum(source[m]):
                    m += 1
                if source[k:m] in _NOT_SUFFIX:
                    out.append(Token("Operator", source[k:m], k))
                    i = m
            elif word in _KEYWORD_OPS:
                out.append(Token("Operator", word, start))
            else:
                out.append(Token("Identifier", word, start))
        else:
            raise Fail(f"unrecognized character: U+{ord(c):04X} {c!r}", i)


def _scan_number(source: str, i: int) -> int:
    n = len(source)
    digits = "0123456789_"
    if source[i] == "0" and i + 1 < n and source[i + 1] in "xXoObB":
        digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[source[i + 1].lower()]
        i += 2
    while i < n and source[i] in digits:
        i += 1
    if i < n and source[i] == ".":
        if i + 1 < n and source[i + 1] == ".":
            return i  # 1..3 is a range
        i += 1
        while i < n and source[i] in digits:
            i += 1
    if i < n and source[i] in "eE":
        i += 1
        if i < n and source[i] in "+-":
            i += 1
        while i < n and source[i] in digits:
            i += 1
    if i < n and _alnum(source[i]):
        raise Fail(f"bad number syntax: {source[: i + 1].split()[-1]!r}", i)
    return i


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _scan_string(source: str, i: int, quote: str, as_bytes: bool = False) -> tuple[str, int]:
    """Read a quoted literal starting at ``source[i] == quote``; return its unescaped text and the index after it."""
    n = len(source)
    buf: list[str] = []
    j = i + 1
    while True:
        if j >= n or source[j] == "\n":
            raise Fail("literal not terminated", i)
        c = source[j]
        if c == quote:
            return "".join(buf), j + 1
        if c != "\\":
            buf.append(c)
            j += 1
            continue
        if j + 1 >= n:
            raise Fail("literal not terminated", i)
        e = source[j + 1]
        if e in _SIMPLE_ESCAPES:
            buf.append(_SIMPLE_ESCAPES[e])
            j += 2
        elif e in "'\"":
            if e != quote:
                raise Fail("invalid char escape", j)
            buf.append(e)
            j += 2
        elif e in "01234567":
            code = source[j + 1 : j + 4]
            if len(code) < 3 or any(d not in "01234567" for d in code) or int(code, 8) > 255:
                raise Fail("invalid char escape", j)
            buf.append(chr(int(code, 8)))
            j += 4
        elif e in "xuU" and not (as_bytes and e != "x"):
            if e == "u" and source[j + 2 : j + 3] == "{":
                end = source.find("}", j + 3)
                code = source[j + 3 : end] if end > 0 else ""
                if not code or len(code) > 6 or any(d not in "0123456789abcdefABCDEF" for d in code):
                    raise Fail("invalid char escape", j)
                j = end + 1
            else:
                width = {"x": 2, "u": 4, "U": 8}[e]
                code = source[j + 2 : j + 2 + width]
                if len(code) < width or any(d not in "0123456789abcdefABCDEF" for d in code):
                    raise Fail("invalid char escape", j)
                j += 2 + width
            value = int(code, 16)
            if value > 0x10FFFF or 0xD800 <= value < 0xE000:
                raise Fail("invalid char escape", j)
            buf.append(chr(value))
        else:
            raise Fail("invalid char escape", j)
