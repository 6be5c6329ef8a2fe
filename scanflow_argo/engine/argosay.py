"""A local stand-in for Argo's test image ``argoproj/argosay:v2``.

Commands (as the image's ``/argosay`` binary): no arguments prints a greeting; ``echo [msg [file]]``
prints ``msg`` or writes it to ``file``; ``cat FILE...``; ``sleep DURATION``; ``exit [N]``;
``assert_contains FILE TEXT``; ``sh -c SCRIPT``. Runs as a plain script (no package imports) so it
starts fast.
"""

from __future__ import annotations

import os
import re
import sys


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)?", text)
    if not parts:
        raise ValueError(f"bad duration {text!r}")
    for number, unit in parts:
        total += float(number) * units[unit or "s"]
    return total


def main(argv: list[str]) -> int:
    if not argv:
        print("hello argo")
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "echo":
        msg = args[0] if args else "hello argo"
        if len(args) > 1:
            directory = os.path.dirname(args[1])
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(args[1], "w") as fh:
                fh.write(msg)
        else:
            print(msg)
        return 0
    if cmd == "cat":
        for name in args:
            with open(name) as fh:
                sys.stdout.write(fh.read())
        sys.stdout.flush()
        return 0
    if cmd == "sleep":
        import time

        time.sleep(_duration(args[0]) if args else 1.0)
        return 0
    if cmd == "exit":
        return int(args[0]) if args else 0
    if cmd == "assert_contains":
        with open(args[0]) as fh:
            content = fh.read()
        if args[1] not in content:
            print(f"{args[0]} does not contain {args[1]!r}", file=sys.stderr)
            return 1
        return 0
    if cmd == "sh":
        os.execvp("sh", ["sh", *args])
    print(f"argosay: unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
