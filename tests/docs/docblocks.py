"""The code blocks of the project's Markdown, and how ``test_docs.py`` runs them (the convention is in
docs/architecture.md, "Docs that run").

- ```` ```bash ```` / ```` ```sh ```` blocks run in one bash session per block, line by line, from a scratch
  copy of the project (``../shared`` beside it, its own ``.scanflow``, free ports); every command must
  exit 0, or the status its trailing comment names: ``scanflow-argo lint ... # exits 1: ...``. A command
  ending in ``&`` runs in the background; the block stops it (``kill %1``), or the test does.
- ```` ```python ```` blocks run as one program per stretch between shell blocks, in page order (later
  blocks use what earlier ones made).
- ``<!-- doctest: skip (why) -->`` on the line before a fence leaves that block out; the reason is required.
- Other languages (``yaml``, ``text``…) are shown, not run.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "blocks", "shell_script"]

_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doctest:\s*(.*?)\s*-->\s*$")
_EXITS = re.compile(r"#\s*exits?\s+(\d+)\b")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
RUNNABLE = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    lang: str
    text: str
    directive: str | None

    @property
    def kind(self) -> str | None:
        """``shell``, ``python`` or None (shown, not run)."""
        return RUNNABLE.get(self.lang)

    @property
    def skipped(self) -> str | None:
        """The reason given in ``<!-- doctest: skip (reason) -->``, else None."""
        if self.directive and self.directive.startswith("skip"):
            reason = self.directive[4:].strip().strip("()").strip()
            if not reason:
                raise ValueError(f"{self.path}:{self.line}: `doctest: skip` needs a reason in parentheses")
            return reason
        return None

    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with the directive on the line before it (blank lines between allowed)."""
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        d = _DIRECTIVE.match(lines[k]) if k >= 0 else None
        if d and d.group(1) and not d.group(1).startswith("skip"):
            raise ValueError(f"{path}:{k + 1}: unknown doctest directive {d.group(1)!r} (only `skip (why)`)")
        text = textwrap.dedent("\n".join(lines[start + 1 : j]))  # a block inside a list item is indented
        out.append(Block(path, start + 1, lang, text, d.group(1) if d else None))
        i = j + 1
    return out


def _commands(text: str) -> list[tuple[int, str, bool]]:
    """(line offset, command, is_heredoc) with backslash continuations joined and a here-document kept
    whole (``cat > f <<'EOF'`` … ``EOF``); comment-only and blank lines dropped."""
    out: list[tuple[int, str, bool]] = []
    lines = text.splitlines()
    pending, first, n = "", 0, 0
    while n < len(lines):
        line = lines[n].rstrip()
        if not pending:
            first = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            n += 1
            continue
        command = pending + line
        pending = ""
        here = _HEREDOC.search(command.split("#")[0])
        if here:
            end = n + 1
            while end < len(lines) and lines[end].strip() != here.group(1):
                end += 1
            out.append((first, "\n".join([command, *lines[n + 1 : end + 1]]), True))
            n = end + 1
            continue
        if command.strip() and not command.strip().startswith("#"):
            out.append((first, command, False))
        n += 1
    return out


def _split(command: str) -> list[str]:
    """``a; b  # c`` → ``["a", "b  # c"]``: splits on ``;`` outside quotes, ``$(…)`` and comments."""
    parts, cur, quote, depth, i = [], "", "", 0, 0
    while i < len(command):
        ch = command[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "#" and (not cur or cur[-1].isspace()):
            cur += command[i:]
            break
        elif ch == ";" and depth == 0:
            parts.append(cur)
            cur, i = "", i + 1
            continue
        cur += ch
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def shell_script(block: Block) -> str:
    """The block as a bash script that stops at the first command whose status is not the expected one,
    naming its line (``# exits N`` in a command's comment expects N; background ``&`` commands are not checked)."""
    parts = ["set -o pipefail"]
    for offset, full, heredoc in _commands(block.text):
        for command in [full] if heredoc else _split(full):
            parts.append(_checked(command, block, block.line + 1 + offset))
    return "\n".join(parts) + "\n"


def _checked(command: str, block: Block, line: int) -> str:
    m = _EXITS.search(command.splitlines()[0])
    want = int(m.group(1)) if m else 0
    if command.split("#")[0].rstrip().endswith("&"):
        return command
    shown = command.splitlines()[0].split("  #")[0].strip().replace("'", "'\\''")
    return (
        f"{command}\nrc=$?\nif [ $rc -ne {want} ]; then echo '{block.path.name}:{line}: `{shown}` exited '$rc' "
        f"(expected {want})' >&2; exit 97; fi"
    )
