"""The local Prometheus server: its config, file service discovery of scrape targets, start and stop.

Layout under ``<home>/prometheus/``: ``prometheus.yml`` (written on every start: Prometheus scrapes itself,
job ``prometheus``, and every file of ``targets/``), ``targets/<job>.json`` (file service discovery,
rewritten atomically by ``set_targets``; ``agent-<name>-<port>.json`` for each running agent), ``data/`` (the TSDB), ``prometheus.log`` and ``server.json`` (pid record, so
``scanflow-argo prometheus down`` in another process can stop a server ``up`` started).

Timing (measured, Prometheus 2.42): the file is re-read at once (inotify, 1 s refresh), but Prometheus's
discovery and scrape managers pass target changes on at most every 5 s, hard-coded — so a new or removed
target shows in ``/api/v1/targets`` 4–6 s after ``set_targets``; wait for it, do not assume less.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx

from .. import _proc
from ..errors import SetupError, SpecError, UnavailableError
from ..settings import Settings

__all__ = [
    "AGENTS_JOB",
    "PrometheusServer",
    "prometheus_dir",
    "recorded_url",
    "register_scrape_target",
    "set_targets",
    "stop_recorded",
]

_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_TARGET = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def prometheus_dir(settings: Settings) -> Path:
    """Folder of the local Prometheus (config, targets, TSDB, log)."""
    return Path(settings.home).resolve() / "prometheus"


def _seconds(value: float) -> str:
    """Prometheus duration: whole milliseconds (``1.0`` → ``1000ms``)."""
    return f"{max(1, round(value * 1000))}ms"


class PrometheusServer(_proc.RecordedServer):
    """A real Prometheus on 127.0.0.1 scraping the targets named in ``targets/*.json``.

    ``port=None`` uses ``settings.prometheus.port``. Use as a context manager or call
    ``start()``/``stop()``.
    """

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        chosen = port if port is not None else settings.prometheus.port
        self.port = int(chosen) or _proc.free_port()  # 0: any free port
        self.dir = prometheus_dir(settings)
        self.targets_dir = self.dir / "targets"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def record_path(self) -> Path:
        return self.dir / "server.json"

    # -- lifecycle ---------------------------------------------------------------------------

    def binary(self) -> str:
        """Absolute path of the Prometheus executable, or a SetupError saying how to get one."""
        name = self.settings.prometheus.binary
        found = shutil.which(name)
        if found is None:
            raise SetupError(
                f"the Prometheus binary {name!r} was not found — install it with `apt-get install prometheus` "
                "(Debian/Ubuntu) or set SCANFLOW_PROMETHEUS_BINARY to its path"
            )
        return found

    def write_config(self) -> Path:
        """Write ``prometheus.yml``: one file-SD scrape config over ``targets/*.json``."""
        interval = _seconds(self.settings.prometheus.scrape_interval)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [
                # Prometheus's own metrics: `up{job="prometheus"}` says the server scrapes at all
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]},
                {
                    # Each targets file sets its own ``job`` label; this name is only the fallback.
                    "job_name": "scanflow",
                    "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}],
                },
            ],
        }
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML; no YAML writer needed.
        _atomic_write(self.config_path, json.dumps(config, indent=2))
        return self.config_path

    def start(self, timeout: float = 30) -> PrometheusServer:
        """Start Prometheus and wait until ``/-/ready`` answers; SetupError when it cannot."""
        if self._child is not None and self._child.alive():
            return self
        binary = self.binary()
        if _proc.port_in_use(self.port):
            raise SetupError(
                f"port {self.port} on 127.0.0.1 is already in use, so Prometheus cannot listen there — "
                "stop what uses it (`scanflow-argo prometheus down` if it is ours) or set SCANFLOW_PROMETHEUS_PORT"
            )
        self.write_config()
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            "--storage.tsdb.retention.time=2d",
            "--web.enable-lifecycle",
        ]
        self._child = _proc.start_recorded(
            argv,
            name="prometheus",
            log=self.dir / "prometheus.log",
            ready_url=f"{self.url}/-/ready",
            record=self.record_path,
            timeout=timeout,
            url=self.url,
            port=self.port,
        )
        return self

    # -- file service discovery ------------------------------------------------------------------

    def set_targets(self, job: str, targets: list[str], labels: dict[str, str] | None = None) -> Path:
        """Make Prometheus scrape ``targets`` (``host:port``) as ``job``; an empty list removes the job.

        The file is replaced atomically, so Prometheus never reads half of it; the change is live
        after about 5 s (see the module docstring). ``labels`` are added to every series scraped;
        ``{"__metrics_path__": "/prometheus"}`` changes the path scraped (default ``/metrics``).
        """
        return set_targets(self.targets_dir, job, targets, labels)

    # -- queries (tests, agents' checks) ------------------------------------------------------------

    def query(self, promql: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (a list of ``{"metric":…, "value":[ts, "v"]}``)."""
        return _api(self.url, "/api/v1/query", {"query": promql}, timeout)["result"]

    def targets(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Active scrape targets (``/api/v1/targets``), each with ``labels``, ``scrapeUrl``, ``health``."""
        return _api(self.url, "/api/v1/targets", {"state": "active"}, timeout)["activeTargets"]


AGENTS_JOB = "scanflow-agents"
"""The job every local agent's ``/metrics`` is scraped as (label ``agent`` names it)."""


def register_scrape_target(settings: Settings, agent: str, target: str) -> Path:
    """Make this home's Prometheus scrape an agent's ``/metrics`` at ``target`` (``host:port``), as
    ``job="scanflow-agents", agent="<name>"``: one file per agent process (``agent-<name>-<port>.json``, so
    replicas do not overwrite each other); the caller removes it when the agent stops. Prometheus need
    not run yet: it reads the folder when it starts."""
    port = target.rpartition(":")[2]
    return set_targets(prometheus_dir(settings) / "targets", AGENTS_JOB, [target], {"agent": agent}, file=f"agent-{agent}-{port}")


def set_targets(
    targets_dir: Path, job: str, targets: list[str], labels: dict[str, str] | None = None, *, file: str | None = None
) -> Path:
    """Write ``targets_dir/<job>.json`` (or ``<file>.json``) for file service discovery (usable without a server object)."""
    if not _JOB.match(job):
        raise SpecError(f"invalid Prometheus job name {job!r}: use letters, digits, '_', '.', '-' and start with a letter")
    for target in targets:
        if not _TARGET.match(target):
            raise SpecError(f"invalid scrape target {target!r} for job {job!r}: write it as host:port, without scheme or path")
    extra = dict(labels or {})
    for key in extra:
        if not _LABEL.match(key):
            raise SpecError(f"invalid Prometheus label name {key!r} for job {job!r}: use letters, digits and '_'")
    if file is not None and not _JOB.match(file):
        raise SpecError(f"invalid targets file name {file!r}: use letters, digits, '_', '.', '-'")
    path = Path(targets_dir) / f"{file or job}.json"
    groups = (
        [{"targets": sorted(set(targets)), "labels": {**{k: str(v) for k, v in extra.items()}, "job": job}}] if targets else []
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(groups, indent=2))
    return path


def stop_recorded(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop a Prometheus that ``scanflow-argo prometheus up`` started for this home; True if one ran."""
    folder = prometheus_dir(settings)
    return _proc.stop_record(folder / "server.json", str(folder), timeout=timeout)


def recorded_url(settings: Settings) -> str | None:
    """URL of the running Prometheus recorded for this home, if it is alive."""
    folder = prometheus_dir(settings)
    record = _proc.live_record(folder / "server.json", str(folder))
    return str(record["url"]) if record else None


def _atomic_write(path: Path, text: str) -> None:
    # The temporary name must not match ``*.json``, or Prometheus could read it half-written.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _api(base: str, path: str, params: dict[str, str], timeout: float) -> dict[str, Any]:
    try:
        resp = httpx.get(f"{base}{path}", params=params, timeout=timeout)
    except httpx.HTTPError as err:
        raise UnavailableError(f"Prometheus at {base} did not answer {path}: {err}") from err
    try:
        body = resp.json()
    except ValueError as err:
        raise UnavailableError(f"Prometheus at {base} answered {path} with HTTP {resp.status_code}, not JSON") from err
    if body.get("status") != "success":
        raise UnavailableError(f"Prometheus at {base} refused {path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]
