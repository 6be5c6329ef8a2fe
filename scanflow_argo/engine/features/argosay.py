"""A local stand-in for Argo's test image ``argoproj/argosay:v2``.

Commands (as the image's ``/argosay`` binary): no arguments prints a greeting; ``echo [msg [file]]``
prints ``msg`` or writes it to ``file``; ``cat FILE...``; ``sleep DURATION``; ``exit [N]``;
``assert_contains FILE TEXT``; ``sh -c SCRIPT``. Runs as a plain script that imports only the Go-semantics module (for
``sleep``'s durations), so it starts fast.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _duration(text: str) -> float:
    """argosay's ``sleep`` takes Go's ``time.ParseDuration`` (``10s``, ``500ms``, ``1m30s``), from the one
    Go-semantics module. Started as a plain script (``python -S``), so the package is found from this file."""
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents if (p / "scanflow_argo").is_dir())))
    # imported here, not at the top: it triples the start of every other command (echo, cat, exit…)
    from scanflow_argo.argoexpr.errors import Fail
    from scanflow_argo.argoexpr.golang import parse_duration

    try:
        return parse_duration(text).ns / 1e9
    except Fail as err:
        raise SystemExit(f"argosay: {err.cause}") from None


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
