"""A real Prometheus exporter (prometheus_client) whose series the test sets through a JSON file.

``python _exporter.py SPEC.json PORT``. SPEC: ``{"series": [{"name": ..., "labels": {...},
"value": v}  # a gauge
or {"name": ..., "labels": {...}, "rate": r}]}``  # a counter growing r per second
The file is re-read on every scrape, so a test changes what Prometheus sees by rewriting it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, Metric


class FileCollector:
    def __init__(self, spec: Path) -> None:
        self.spec = spec
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.last = time.time()
        self.lock = threading.Lock()

    def collect(self):
        try:
            series = json.loads(self.spec.read_text()).get("series", [])
        except (OSError, ValueError):
            series = []
        with self.lock:
            now = time.time()
            dt, self.last = now - self.last, now
            families: dict[str, Metric] = {}
            for s in series:
                name, labels = s["name"], {k: str(v) for k, v in (s.get("labels") or {}).items()}
                fam = families.setdefault(name, Metric(name, f"test series {name}", "unknown"))
                if "rate" in s:
                    key = (name, tuple(sorted(labels.items())))
                    self.counters[key] = self.counters.get(key, 0.0) + float(s["rate"]) * dt
                    value = self.counters[key]
                else:
                    value = float(s["value"])
                fam.add_sample(name, labels, value)
            yield from families.values()


def main() -> None:
    spec, port = Path(sys.argv[1]), int(sys.argv[2])
    REGISTRY.register(FileCollector(spec))
    start_http_server(port, addr="127.0.0.1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
