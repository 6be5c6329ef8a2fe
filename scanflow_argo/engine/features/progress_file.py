"""Progress a pod reports of itself: the ``workflows.argoproj.io/progress`` annotation of its template's
``metadata`` (its initial progress, ``workflow/controller/workflowpod.go`` ``createWorkflowPod``:
``ProgressToApply``) and the file ``$ARGO_PROGRESS_FILE`` it writes ``N/M`` lines to while it runs (the
executor's ``monitorProgress``, ``workflow/executor/executor.go``: the last non-empty line, when it
changed and parses as a valid progress). The sums over nodes are ``core/progress.py``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.progress import parse_progress

__all__ = ["ANNOTATION", "ENV", "PROGRESS_PATH", "ProgressFile", "initial_progress"]

ANNOTATION = "workflows.argoproj.io/progress"
"""``common.AnnotationKeyProgress``."""
ENV = "ARGO_PROGRESS_FILE"
"""``common.EnvVarProgressFile``: where the pod writes its progress."""
PROGRESS_PATH = "/var/run/argo/progress"
"""``common.ArgoProgressPath`` (``/var/run/argo`` + ``/progress``): the file's path inside the pod."""
TICK_SECONDS = 0.5
"""How often the file is read (Argo watches it with inotify and patches its result every few seconds)."""


def initial_progress(tmpl: Mapping[str, Any]) -> str | None:
    """The template's ``workflows.argoproj.io/progress`` annotation when it is a valid ``N/M``."""
    value = ((tmpl.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    return str(value) if parse_progress(value) is not None else None


class ProgressFile:
    """Watches one pod's progress file on the host (``host``) and calls ``report`` with each new valid
    ``N/M``; ``with`` it around the pod's main container."""

    def __init__(self, host: Path, report: Callable[[str], None], tick: float = TICK_SECONDS) -> None:
        self.host = host
        self.report = report
        self.tick = tick
        self._last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress {host}", daemon=True)

    def __enter__(self) -> ProgressFile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.read()  # what the pod wrote last before it ended

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.read()

    def read(self) -> None:
        """Report the file's last non-empty line when it is new and a valid progress."""
        try:
            text = self.host.read_text(errors="replace")
        except OSError:
            return  # not written (yet): the file is optional
        lines = text.strip().split("\n")
        last = lines[-1].strip()
        if not last or last == self._last:
            return
        self._last = last
        if parse_progress(last) is not None:
            self.report(last)
