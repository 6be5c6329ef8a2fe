"""Local SeldonDeployments: desired state in files, one supervisor process per deployment that makes it so.

``LocalDeployments(settings)`` (what ``LocalPlatform`` delegates to) never touches replicas itself:
``apply``/``scale``/``roll`` resolve the model (``models:/…`` is downloaded here, before anything
starts, so an unknown model fails at once), write the desired state and wait until the status
says it is reached. The supervisor — ``python -m scanflow_argo.serving.controller NAME --home HOME``,
detached in its own process group, started on demand — owns the router and the replicas::

    <home>/deployments/<name>/spec.json        desired: manifest, generation, replicas, model_uri, model_dir, router_port
    <home>/deployments/<name>/status.json      observed: state, readyReplicas, endpoint, replica processes …
    <home>/deployments/<name>/supervisor.json  pid record of the supervisor (see _proc.write_record)
    <home>/deployments/<name>/supervisor.log, replicas/<id>.log
    <home>/models/<name>/<version>/            models downloaded from MLflow
    <home>/feedback/<name>/                    the replicas' feedback store (FEEDBACK_DIR)
    <home>/prometheus/targets/seldon-<name>-router.json, seldon-<name>-models.json   file-SD targets

The supervisor reconciles ``spec.json`` every ``_POLL`` seconds: it rolls replicas whose model
is not the desired one one at a time (start new → ready → into the router → drain old → stop old),
then starts or drains/stops replicas until the count matches. Replicas are seldon-core
microservices of the serving venv run through ``serving/replica.py`` so that they listen on
127.0.0.1 only and answer the router only (whatever address the router listens on), each in its
own process group, on free ports; their parent-death signal is set so that even a SIGKILLed supervisor leaves no
replica behind, and a successor supervisor stops any replica still recorded in ``status.json``.
SIGTERM makes the supervisor drain and stop every replica, clear its targets and exit. A failed
reconcile (a replica that cannot load its model, say) marks the status ``Failed`` with the replica's
reason — ``apply``/``scale``/``roll`` raise it as a ``ServingError`` — and is retried with backoff
(1 s doubling to 30 s) until the desired state changes or the deployment is deleted.

From the manifest the local platform takes ``metadata.name``/``namespace`` and, for each predictor,
its name, ``replicas`` (``componentSpecs[].replicas`` wins, as in Seldon), ``graph.name`` (the
``model_name`` metric label), ``graph.modelUri``, ``traffic``, ``shadow`` and the first container's
plain ``env`` values (``MODEL_NAME`` picks the model class; ``valueFrom`` secrets do not exist locally).

Several predictors (issue 17): their split is checked as Seldon's webhook checks it
(``traffic.split_of``) before anything is written; each predictor gets its own replicas (labelled
with its name: ``PREDICTOR_ID``), and the router sends each request to one of them by the split,
seeded from the annotation ``scanflow.io/traffic-seed`` (default 0), and mirrors to shadows. The
first predictor is the deployment's own: ``scale``, ``roll``, ``replicas`` and ``model_uri`` are
its. A change of predictors starts the new predictor's replicas first, then switches the split,
then drains and stops the replicas of a predictor that is gone — no request fails on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _proc
from ..backoff import Backoff
from ..clock import Clock, SystemClock
from ..errors import NotFoundError, ScanflowError, ServingError, SetupError, SpecError
from ..monitoring.prometheus import prometheus_dir, set_targets
from ..settings import Settings
from ..status import DeploymentStatus, PredictorStatus
from ..tracking import registry
from .traffic import TrafficSplit, split_of

__all__ = [
    "REPLICA_HOST",
    "LocalDeployments",
    "ModelSpec",
    "Supervisor",
    "deployment_manifest",
    "parse_manifest",
    "parse_predictors",
    "resolve_model",
    "serving_python",
]

MODEL_CLASS = "scanflow_argo.serving.model.TorchClassifier"
_MODULE = "scanflow_argo.serving.controller"
_REPLICA_MODULE = "scanflow_argo.serving.replica"
REPLICA_HOST = "127.0.0.1"
"""Where replicas listen: loopback only, reached through the router (``serving.host`` is the router's)."""
_POLL = 0.1
SEED_ANNOTATION = "scanflow.io/traffic-seed"
"""Seed of the router's traffic split (a run with the same seed sends the same requests to the same predictors)."""
_RECONCILE_BACKOFF = Backoff(1.0, factor=2.0, cap=30.0)
"""A failed reconcile is retried 1 s later, doubling per failure up to 30 s (until the spec changes)."""
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # folder holding the scanflow_argo package
# Makes the replica die with the supervisor thread that started it (prctl PR_SET_PDEATHSIG = 1,
# SIGTERM = 15), then becomes the microservice; the setting survives exec.
_PDEATHSIG = "import ctypes,os,sys;ctypes.CDLL(None).prctl(1,15);os.getppid()==int(sys.argv[1]) or sys.exit(3);os.execv(sys.argv[2],sys.argv[2:])"


# -- manifest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What the local platform needs from a SeldonDeployment."""

    name: str
    namespace: str
    predictor: str
    model_name: str
    model_uri: str
    replicas: int
    predictor_version: str = ""
    model_class: str = "scanflow_argo.serving.model.TorchClassifier"
    env: Mapping[str, str] = field(default_factory=dict)
    """Plain ``value`` env of the model container (``valueFrom`` secrets do not exist locally)."""
    traffic: int = 100
    """The predictor's share of the traffic in percent (``split_of``: 100 for a lone one, 0 for a shadow)."""
    shadow: bool = False


def parse_manifest(manifest: Mapping[str, Any], default_namespace: str = "default") -> ModelSpec:
    """The deployment's own (first) predictor, after every predictor was checked (``parse_predictors``)."""
    return parse_predictors(manifest, default_namespace)[0]


def parse_predictors(manifest: Mapping[str, Any], default_namespace: str = "default") -> list[ModelSpec]:
    """Each predictor's name, graph unit, modelUri, replicas, traffic and shadow; a SpecError names what is wrong."""
    if manifest.get("kind") != "SeldonDeployment":
        raise SpecError(f"expected a SeldonDeployment manifest, got kind {manifest.get('kind')!r}")
    meta = manifest.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name or not all(c.isalnum() or c == "-" for c in name) or not name[0].isalnum():
        raise SpecError(f"SeldonDeployment metadata.name {name!r} is not a valid name: use lowercase letters, digits and '-'")
    predictors = (manifest.get("spec") or {}).get("predictors") or []
    split = split_of(name, predictors)  # Seldon's webhook rules: unique names, traffic adding up to 100
    namespace = str(meta.get("namespace") or default_namespace)
    return [_predictor(name, namespace, i, pred, split) for i, pred in enumerate(predictors)]


def _predictor(name: str, namespace: str, i: int, pred: Mapping[str, Any], split: TrafficSplit) -> ModelSpec:
    graph = pred.get("graph") or {}
    if graph.get("children"):
        raise SpecError(
            f"SeldonDeployment {name}: inference graphs with children are not supported locally; serve a single MODEL unit"
        )
    uri = graph.get("modelUri")
    if not uri:
        raise SpecError(
            f"SeldonDeployment {name}: spec.predictors[{i}].graph.modelUri is missing — set it to models:/NAME@ALIAS or a model folder"
        )
    replicas = pred.get("replicas")
    for comp in pred.get("componentSpecs") or []:
        if comp.get("replicas") is not None:
            replicas = comp["replicas"]
    replicas = 1 if replicas is None else replicas
    if not isinstance(replicas, int) or replicas < 0:
        raise SpecError(f"SeldonDeployment {name}: replicas must be a whole number >= 0, got {replicas!r}")
    labels = pred.get("labels") or {}
    env = _container_env(pred)
    predictor = str(pred["name"])
    return ModelSpec(
        name=name,
        namespace=namespace,
        predictor=predictor,
        model_name=str(graph.get("name") or "classifier"),
        model_uri=str(uri),
        replicas=replicas,
        # The executor reads the predictor's annotations["version"]; labels["version"] as a fallback.
        predictor_version=str((pred.get("annotations") or {}).get("version") or labels.get("version") or ""),
        model_class=env.pop("MODEL_NAME", MODEL_CLASS),
        env=env,
        traffic=split.share(predictor),
        shadow=predictor in split.shadows,
    )


# Set per replica by the controller (or meaningless locally): never taken from the manifest.
_OWN_ENV = {
    "MODEL_DIR",
    "SERVICE_TYPE",
    "FEEDBACK_DIR",
    "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
    "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
}


def _container_env(predictor: Mapping[str, Any]) -> dict[str, str]:
    """``name: value`` env of the predictor's first container, minus what the controller sets itself."""
    for comp in predictor.get("componentSpecs") or []:
        for container in (comp.get("spec") or {}).get("containers") or []:
            return {
                str(e["name"]): str(e["value"])
                for e in container.get("env") or []
                if "value" in e and e.get("name") not in _OWN_ENV
            }
    return {}


def _with_changes(manifest: Mapping[str, Any], replicas: int | None = None, model_uri: str | None = None) -> dict[str, Any]:
    """A copy of ``manifest`` with its predictor's replicas and/or modelUri set."""
    out = json.loads(json.dumps(manifest))
    pred = out["spec"]["predictors"][0]
    if replicas is not None:
        pred["replicas"] = replicas
        for comp in pred.get("componentSpecs") or []:
            if "replicas" in comp:
                comp["replicas"] = replicas
    if model_uri is not None:
        pred["graph"]["modelUri"] = model_uri
    return out


def _seed(manifest: Mapping[str, Any]) -> int:
    text = ((manifest.get("metadata") or {}).get("annotations") or {}).get(SEED_ANNOTATION, "0")
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"annotation {SEED_ANNOTATION}: {text!r} is not a whole number — give the traffic split's seed") from None


def wanted_predictors(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The predictors a ``spec.json`` asks for (one, from the top-level fields, in a spec written before several)."""
    if spec.get("predictors"):
        return [dict(p) for p in spec["predictors"]]
    return [
        {
            "name": spec["predictor"],
            "predictor_version": spec.get("predictor_version", ""),
            "model_name": spec["model_name"],
            "model_class": spec.get("model_class") or MODEL_CLASS,
            "env": spec.get("env") or {},
            "model_uri": spec["model_uri"],
            "model_dir": spec["model_dir"],
            "replicas": int(spec["replicas"]),
            "traffic": 100,
            "shadow": False,
        }
    ]


def spec_document(
    manifest: Mapping[str, Any],
    every: Sequence[ModelSpec],
    model_dirs: Mapping[str, str],
    router_port: int,
    generation: int,
    seed: int,
) -> dict[str, Any]:
    """The ``spec.json`` a deployment's supervisor reconciles: ``manifest``'s predictors (``every``, the first one's
    fields also at the top level, as a spec written before several predictors had them), each predictor's model
    folder from ``model_dirs`` by model URI."""
    first = every[0]
    return {
        "name": first.name,
        "namespace": first.namespace,
        "predictor": first.predictor,
        "predictor_version": first.predictor_version,
        "model_name": first.model_name,
        "model_class": first.model_class,
        "env": dict(first.env),
        "model_uri": first.model_uri,
        "model_dir": str(model_dirs[first.model_uri]),
        "replicas": first.replicas,
        "router_port": router_port,
        "manifest": dict(manifest),
        "generation": generation,
        "seed": seed,
        "predictors": [
            {
                "name": p.predictor,
                "predictor_version": p.predictor_version,
                "model_name": p.model_name,
                "model_class": p.model_class,
                "env": dict(p.env),
                "model_uri": p.model_uri,
                "model_dir": str(model_dirs[p.model_uri]),
                "replicas": p.replicas,
                "traffic": p.traffic,
                "shadow": p.shadow,
            }
            for p in every
        ],
    }


def deployment_manifest(name: str, model_uri: str, replicas: int, namespace: str = "default") -> dict[str, Any]:
    """The minimal SeldonDeployment ``serve`` applies (the compiler writes the full one for clusters)."""
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "predictors": [
                {
                    "name": "default",
                    "replicas": replicas,
                    "graph": {"name": "classifier", "type": "MODEL", "modelUri": model_uri},
                }
            ]
        },
    }


# -- models ------------------------------------------------------------------------------------------


def resolve_model(settings: Settings, deployment: str, model_uri: str) -> Path:
    """A local model folder for ``model_uri``: a folder path, ``file://`` URI, or ``models:/``/``runs:/`` (downloaded)."""
    if model_uri.startswith(("models:/", "runs:/")):
        return _download(settings, deployment, model_uri)
    if "://" in model_uri and not model_uri.startswith("file://"):
        raise ServingError(
            f"model URI {model_uri!r} cannot be served locally: use models:/NAME@ALIAS, models:/NAME/VERSION, a folder or file://"
        )
    path = Path(model_uri.removeprefix("file://")).expanduser().resolve()
    if not path.is_dir():
        raise NotFoundError(f"model {model_uri!r} not found: {path} is not a folder")
    if not (path / "model.pt").is_file() or not (path / "meta.json").is_file():
        raise NotFoundError(
            f"model {model_uri!r} is not a model folder: {path} needs model.pt and meta.json (drift.npz optional)"
        )
    return path


def _download(settings: Settings, deployment: str, model_uri: str) -> Path:
    uri = settings.tracking.uri
    dst_root = Path(settings.home).resolve() / "models" / deployment
    if model_uri.startswith("models:/"):
        ref = model_uri.removeprefix("models:/")
        if "@" in ref:
            model, alias = ref.split("@", 1)
            version = registry.get_alias(model, alias, tracking_uri=uri)
            if version is None:
                raise NotFoundError(f"model {model_uri!r} not found: {model!r} has no alias {alias!r} in the registry")
            tag, source = str(version.version), f"models:/{model}/{version.version}"
        else:
            model, _, tag = ref.partition("/")
            if not tag:
                raise SpecError(f"model URI {model_uri!r} names no version: use models:/NAME/VERSION or models:/NAME@ALIAS")
            source = model_uri
        dst = dst_root / f"{model}-{tag}"
    else:
        source = model_uri
        dst = dst_root / ("run-" + hashlib.sha256(model_uri.encode()).hexdigest()[:12])
    cached = [p.parent for p in dst.rglob("model.pt")] if dst.is_dir() else []
    if cached:
        return cached[0]
    return registry.download(source, dst, tracking_uri=uri)


def serving_python(settings: Settings) -> Path:
    """The serving venv's interpreter (``settings.serving.venv``; a relative path is tried from the working folder, then the project)."""
    venv = Path(settings.serving.venv)
    candidates = [venv] if venv.is_absolute() else [Path.cwd() / venv, _PACKAGE_ROOT / venv]
    for folder in candidates:
        if (folder / "bin" / "seldon-core-microservice").is_file() and (folder / "bin" / "python").exists():
            return folder.resolve() / "bin" / "python"
    looked = ", ".join(str(c) for c in candidates)
    raise SetupError(
        f"the serving environment is missing (looked for seldon-core-microservice in {looked}): run scripts/setup or set SCANFLOW_SERVING_VENV"
    )


# -- state files -------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of ``spec.json`` between processes (CLI, agents, tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_ours(pid: int, *markers: str) -> bool:
    """``pid`` is alive and its command line holds every marker (a recycled pid is not ours)."""
    argv = _proc.cmdline_of(pid)
    return argv is not None and all(any(m in part for part in argv) for m in markers)


def _targets(settings: Settings, job: str, targets: list[str], labels: dict[str, str]) -> None:
    """Prometheus file-SD targets (``monitoring.prometheus.set_targets``)."""
    set_targets(prometheus_dir(settings) / "targets", job, targets, labels)


# -- the API the platform uses ---------------------------------------------------------------------


class LocalDeployments:
    """SeldonDeployments on this machine: ``apply``, ``get``, ``scale``, ``roll``, ``delete``."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.home = Path(settings.home).resolve()
        self.root = self.home / "deployments"

    def dir(self, name: str) -> Path:
        return self.root / name

    # -- desired state ------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any], timeout: float | None = None) -> DeploymentStatus:
        """Create or update a deployment and wait until it is available."""
        every = parse_predictors(manifest, self.settings.kubernetes.namespace)
        spec = every[0]
        folder = self.dir(spec.name)
        model_dirs = {p.model_uri: str(resolve_model(self.settings, spec.name, p.model_uri)) for p in every}
        seed = _seed(manifest)
        serving_python(self.settings)  # fail before writing anything when the venv is missing
        with _locked(folder):
            old = _read_json(folder / "spec.json") or {}
            port = old.get("router_port") or self.settings.serving.router_port
            if not old.get("router_port") or not self._supervisor_alive(spec.name):
                port = port or _proc.free_port(self.settings.serving.host)
                if _proc.port_in_use(port, self.settings.serving.host):
                    if not old:  # leave no empty folder behind for a deployment that never existed
                        with contextlib.suppress(OSError):
                            (folder / ".lock").unlink()
                            folder.rmdir()
                    raise SetupError(
                        f"port {port} on {self.settings.serving.host} is in use: pick another router port (--port / SCANFLOW_SERVING_ROUTER_PORT)"
                    )
            generation = int(old.get("generation", 0)) + 1
            desired = spec_document(manifest, every, model_dirs, port, generation, seed)
            _write_json(folder / "spec.json", desired)
            self._ensure_supervisor(spec.name)
        return self._wait(spec.name, generation, timeout)

    def scale(self, name: str, replicas: int, timeout: float | None = None) -> DeploymentStatus:
        """Set the replica count; returns once the replicas are ready (or drained and stopped)."""
        if not isinstance(replicas, int) or replicas < 0:
            raise SpecError(f"replicas must be a whole number >= 0, got {replicas!r}")
        return self._change(name, timeout, replicas=replicas)

    def roll(self, name: str, model_uri: str, timeout: float | None = None) -> DeploymentStatus:
        """Serve another model, replica by replica, with no failed requests."""
        model_dir = resolve_model(self.settings, name, model_uri)
        return self._change(name, timeout, model_uri=model_uri, model_dir=str(model_dir))

    def set_predictors(self, name: str, predictors: list[dict[str, Any]], timeout: float | None = None) -> DeploymentStatus:
        """Replace the deployment's ``spec.predictors`` (a roll-out's split, shadow, canary added or removed).

        The local twin of the merge patch ``platform/_k8s/seldon.py`` sends: checked first (Seldon's
        webhook rules, each model resolved), so a refused split writes nothing.
        """
        manifest = json.loads(json.dumps(self._spec(name)["manifest"]))
        manifest.setdefault("spec", {})["predictors"] = json.loads(json.dumps(list(predictors)))
        return self.apply(manifest, timeout)

    def _change(self, name: str, timeout: float | None, **changes: Any) -> DeploymentStatus:
        folder = self.dir(name)
        with _locked(folder):
            spec = self._spec(name)
            spec.update(changes)
            if spec.get("predictors"):  # the deployment's own predictor is the first
                spec["predictors"][0].update(changes)
            spec["manifest"] = _with_changes(spec["manifest"], changes.get("replicas"), changes.get("model_uri"))
            spec["generation"] = int(spec["generation"]) + 1
            _write_json(folder / "spec.json", spec)
            self._ensure_supervisor(name)
        return self._wait(name, spec["generation"], timeout)

    def get(self, name: str) -> DeploymentStatus:
        """The deployment as it is now; ``NotFoundError`` when there is none."""
        spec = self._spec(name)
        status = _read_json(self.dir(name) / "status.json") or {}
        pid = self._supervisor_alive(name)
        alive = bool(pid)
        if alive and int(status.get("supervisor_pid") or 0) != pid:
            status = {}  # a killed supervisor's last word: its successor has not reported yet (Creating, none ready)
        state = status.get("state", "Creating") if alive else "Failed"
        ready = {p["name"]: p.get("readyReplicas", 0) for p in status.get("predictors") or []}
        declared = {p.get("name"): p for p in ((spec.get("manifest") or {}).get("spec") or {}).get("predictors") or []}
        return DeploymentStatus(
            name=name,
            namespace=spec.get("namespace", self.settings.kubernetes.namespace),
            replicas=int(spec["replicas"]),
            ready_replicas=int(status.get("readyReplicas", 0)) if alive else 0,
            model_uri=status.get("model_uri") or spec.get("model_uri"),
            state=state,
            predictor=spec.get("predictor", "default"),
            endpoint=status.get("endpoint") or f"http://{self.settings.serving.host}:{spec['router_port']}",
            predictors=tuple(
                PredictorStatus(
                    name=p["name"],
                    traffic=int(p["traffic"]),
                    shadow=bool(p["shadow"]),
                    replicas=int(p["replicas"]),
                    ready_replicas=int(ready.get(p["name"], 0)) if alive else 0,
                    model_uri=p["model_uri"],
                    spec=declared.get(p["name"], {}),
                )
                for p in wanted_predictors(spec)
            ),
        )

    def list(self) -> list[str]:
        """Names of the deployments in this home."""
        return sorted(p.parent.name for p in self.root.glob("*/spec.json")) if self.root.is_dir() else []

    def delete(self, name: str, timeout: float = 60.0) -> None:
        """Stop the supervisor (it drains and stops its replicas) and forget the deployment."""
        folder = self.dir(name)
        if not (folder / "spec.json").is_file():
            raise NotFoundError(f"no SeldonDeployment {name!r} in {self.settings.kubernetes.namespace} (local home {self.home})")
        with _locked(folder):
            record = _read_json(folder / "supervisor.json") or {}
            pid = int(record.get("pid", 0) or 0)
            if pid and _is_ours(pid, _MODULE, str(self.home), name):
                _proc.stop_pid(pid, timeout=timeout)
            # A supervisor killed with SIGKILL cannot clean up: do it from its records.
            _stop_recorded_replicas(folder)
            with contextlib.suppress(SpecError, OSError, ImportError):
                _targets(self.settings, f"seldon-{name}-router", [], {})
                _targets(self.settings, f"seldon-{name}-models", [], {})
            for leftover in ("spec.json", "status.json", "supervisor.json"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / leftover).unlink()

    # -- helpers --------------------------------------------------------------------------------

    def _spec(self, name: str) -> dict[str, Any]:
        spec = _read_json(self.dir(name) / "spec.json")
        if spec is None:
            raise NotFoundError(
                f"no SeldonDeployment {name!r} in {self.settings.kubernetes.namespace} (local home {self.home}) — create it with `scanflow-argo serve`"
            )
        return spec

    def _supervisor_alive(self, name: str) -> int:
        """The pid of the deployment's running supervisor, 0 when none runs."""
        record = _read_json(self.dir(name) / "supervisor.json") or {}
        pid = int(record.get("pid", 0) or 0)
        return pid if pid and _is_ours(pid, _MODULE, str(self.home), name) else 0

    def _ensure_supervisor(self, name: str) -> None:
        if self._supervisor_alive(name):
            return
        folder = self.dir(name)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
        serving = self.settings.serving
        env.update(
            {
                "SCANFLOW_HOME": str(self.home),
                "SCANFLOW_SERVING_VENV": str(serving_python(self.settings).parents[1]),
                "SCANFLOW_SERVING_HOST": serving.host,
                "SCANFLOW_SERVING_DRAIN_SECONDS": str(serving.drain_seconds),
                "SCANFLOW_SERVING_START_TIMEOUT": str(serving.start_timeout),
                "SCANFLOW_SERVING_WORKERS": str(serving.workers),
                "SCANFLOW_NAMESPACE": self.settings.kubernetes.namespace,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")])),
            }
        )
        child = _proc.spawn(
            [sys.executable, "-m", _MODULE, name, "--home", str(self.home)],
            name=f"supervisor of {name}",
            log=folder / "supervisor.log",
            env=env,
            cwd=self.home,
        )
        _proc.write_record(folder / "supervisor.json", child, name=name)

    def _wait(self, name: str, generation: int, timeout: float | None) -> DeploymentStatus:
        spec = self._spec(name)
        serving = self.settings.serving
        if timeout is None:
            timeout = serving.start_timeout * max(1, int(spec["replicas"])) + serving.drain_seconds * 4 + 30
        deadline = self.clock.monotonic() + timeout
        folder = self.dir(name)
        while True:
            status = _read_json(folder / "status.json") or {}
            observed = int(status.get("observedGeneration", 0))
            if observed >= generation and status.get("state") == "Available":
                return self.get(name)
            if observed >= generation and status.get("state") == "Failed":
                raise ServingError(f"deployment {name!r} failed: {status.get('message', 'unknown error')}")
            if not self._supervisor_alive(name):
                tail = (
                    "\n".join((folder / "supervisor.log").read_text(errors="replace").splitlines()[-15:])
                    if (folder / "supervisor.log").exists()
                    else ""
                )
                raise ServingError(f"the supervisor of deployment {name!r} exited:\n{tail}")
            if self.clock.monotonic() > deadline:
                raise ServingError(
                    f"deployment {name!r} did not become available within {timeout:.0f}s (state {status.get('state')!r}: {status.get('message', '')}) — see {folder}/supervisor.log"
                )
            self.clock.sleep(_POLL)


def _stop_recorded_replicas(folder: Path) -> int:
    """Stop replica process groups recorded in ``status.json`` that are still ours; returns how many."""
    status = _read_json(folder / "status.json") or {}
    stopped = 0
    for rep in status.get("replicaProcesses") or []:
        pid = int(rep.get("pid", 0) or 0)
        if pid and _is_ours(pid, _REPLICA_MODULE, f"--http-port={rep.get('http_port')}"):
            _proc.stop_pid(pid, timeout=15)
            stopped += 1
    return stopped


def _reason(log_tail: str) -> str:
    """The first ``SomethingError: message`` line of a replica's log tail (the cause, before exit noise)."""
    for line in log_tail.splitlines():
        head = line.split(": ", 1)[0].strip()
        if ": " in line and head.endswith(("Error", "Exception")) and " " not in head:
            return line.strip()
    return "see its log below"


# -- the supervisor process --------------------------------------------------------------------------


@dataclass(eq=False)
class _Process:
    id: str
    child: _proc.Child
    http_port: int
    metrics_port: int
    model_uri: str
    model_dir: str
    predictor: str = ""
    state: str = "starting"


class Supervisor:
    """Runs one deployment: its router and replicas, reconciled from ``spec.json``."""

    def __init__(self, settings: Settings, name: str, clock: Clock | None = None) -> None:
        self.settings = settings
        self.name = name
        self.clock = clock or SystemClock()
        self.home = Path(settings.home).resolve()
        self.folder = self.home / "deployments" / name
        self.python = serving_python(settings)
        self.procs: list[_Process] = []
        self.router: Any = None
        self.state = "Creating"
        self.message = ""
        self.observed = 0
        self.spec: dict[str, Any] = {}
        self._seq = 0
        self._lock_handle: Any = None
        self._stopping = asyncio.Event()

    # -- main loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        # One supervisor per deployment: the lock is held for the life of this process.
        self._lock_handle = open(self.folder / ".supervisor.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise ServingError(f"another supervisor already runs deployment {self.name!r}") from err
        await self._run()

    async def _run(self) -> None:
        from .router import Router  # pulls aiohttp (~0.5 s): supervisor only

        _stop_recorded_replicas(self.folder)  # from a predecessor that died without cleaning up
        self.spec = self._read_spec()
        self._write_status()  # at once: the status a killed predecessor left says nothing of this supervisor
        self.router = Router(
            self.name,
            predictor=self.spec["predictor"],
            model_name=self.spec["model_name"],
            predictor_version=self.spec.get("predictor_version", ""),
            namespace=self.spec["namespace"],
            host=self.settings.serving.host,
            port=int(self.spec["router_port"]),
            clock=self.clock,
            seed=int(self.spec.get("seed", 0)),
            hold_seconds=self.settings.serving.start_timeout,  # requests wait for the first replica, not 503
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.router.start()
        except ServingError as err:
            self.state, self.message, self.observed = "Failed", str(err), int(self.spec["generation"])
            self._write_status()
            raise
        self._publish_targets()
        failures = 0
        retry_at = 0.0
        try:
            while not self._stopping.is_set():
                spec = self._read_spec()
                changed = int(spec["generation"]) != self.observed
                died = self._reap()
                if changed or died or (self.state == "Failed" and self.clock.monotonic() >= retry_at):
                    self.spec = spec
                    self.observed = int(spec["generation"])
                    try:
                        await self.reconcile()
                        failures = 0
                    except Exception as err:
                        # Keep supervising whatever went wrong: report it, retry with backoff.
                        if not isinstance(err, ScanflowError):
                            traceback.print_exc()
                        self.state, self.message = "Failed", str(err) or type(err).__name__
                        failures += 1
                        retry_at = self.clock.monotonic() + _RECONCILE_BACKOFF.delay(failures - 1)
                        self._write_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=_POLL)
        finally:
            await self.shutdown()

    def _read_spec(self) -> dict[str, Any]:
        spec = _read_json(self.folder / "spec.json")
        if spec is None:
            raise ServingError(f"deployment {self.name!r} has no spec.json in {self.folder}")
        return spec

    def _reap(self) -> bool:
        """Forget replicas that exited on their own (they are restarted by the next reconcile)."""
        dead = [p for p in self.procs if not p.child.alive()]
        for proc in dead:
            self.router.discard(proc.id)
            self.procs.remove(proc)
            print(f"replica {proc.id} exited with code {proc.child.popen.returncode}:\n{proc.child.tail(10)}", flush=True)
        if dead:
            self._write_status()
            self._publish_targets()
        return bool(dead)

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make every predictor's replicas so, then route by the split, then retire predictors that are gone."""
        wanted = wanted_predictors(self.spec)
        self.state, self.message = "Creating", ""
        self._write_status()
        for pred in wanted:
            await self._reconcile_predictor(pred)
        names = {p["name"] for p in wanted}
        self.router.versions = {p["name"]: p.get("predictor_version", "") for p in wanted}
        self.router.set_split(split_of(self.name, [_as_predictor(p) for p in wanted]) if len(wanted) > 1 else None)
        self.router.predictor = wanted[0]["name"]
        gone = [p for p in self.procs if p.predictor not in names]
        if gone:
            await asyncio.gather(*(self._retire(p) for p in gone))
        self.state = "Available"
        self._write_status()

    async def _reconcile_predictor(self, pred: Mapping[str, Any]) -> None:
        name, want_dir, want_n = pred["name"], pred["model_dir"], int(pred["replicas"])
        mine = [p for p in self.procs if p.predictor == name]
        # Roll: surge one new replica, then retire one old, until no old ones are left.
        for old in [p for p in mine if p.model_dir != want_dir]:
            current = [p for p in self.procs if p.predictor == name and p.model_dir == want_dir and p.state == "ready"]
            if len(current) < want_n:
                await self._start(pred)
            await self._retire(old)
        current = [p for p in self.procs if p.predictor == name and p.model_dir == want_dir]
        missing = want_n - len(current)
        if missing > 0:
            await asyncio.gather(*(self._start(pred) for _ in range(missing)))
        elif missing < 0:
            # Retire the newest first, as a ReplicaSet scales down.
            await asyncio.gather(*(self._retire(p) for p in current[::-1][:-missing]))

    async def _start(self, pred: Mapping[str, Any]) -> _Process:
        from .router import Replica  # aiohttp: only the controller's process starts replicas, not every user of this module

        model_uri = pred["model_uri"]
        for attempt in range(2):
            proc = self._spawn(pred)
            self.procs.append(proc)
            self._write_status()
            try:
                await self._wait_ready(proc)
                break
            except ServingError:
                self.procs.remove(proc)
                await asyncio.to_thread(proc.child.stop, 5.0)
                self._write_status()
                # A port taken between picking and binding is worth one retry; anything else is not.
                if attempt or "Address already in use" not in proc.child.tail(40):
                    raise
        proc.state = "ready"
        self.router.add(
            Replica(
                proc.id,
                f"http://{REPLICA_HOST}:{proc.http_port}",
                model_uri,
                model_image="local",
                model_version=model_uri,
                predictor=proc.predictor,
            )
        )
        self._write_status()
        self._publish_targets()
        return proc

    def _spawn(self, pred: Mapping[str, Any]) -> _Process:
        model_uri, model_dir = pred["model_uri"], pred["model_dir"]
        self._seq += 1
        rid = f"{self.name}-{pred['name']}-{os.getpid()}-{self._seq}"
        http_port, metrics_port = _proc.free_port(REPLICA_HOST), _proc.free_port(REPLICA_HOST)
        while metrics_port == http_port:
            metrics_port = _proc.free_port(REPLICA_HOST)
        argv = [
            str(self.python),
            "-c",
            _PDEATHSIG,
            str(os.getpid()),
            str(self.python),
            "-m",
            _REPLICA_MODULE,
            f"--bind-host={REPLICA_HOST}",
            pred.get("model_class") or MODEL_CLASS,
            f"--http-port={http_port}",
            f"--metrics-port={metrics_port}",
            "--grpc-workers=0",  # REST only: gRPC would bind 0.0.0.0:5000 shared by every replica
            f"--workers={max(1, self.settings.serving.workers)}",
            "--log-level=WARNING",
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH")}
        env.update(pred.get("env") or {})
        env.update(
            {
                "PYTHONPATH": str(_PACKAGE_ROOT),
                "PYTHONUNBUFFERED": "1",
                "MODEL_DIR": model_dir,
                "FEEDBACK_DIR": str(self.home / "feedback" / self.name),
                "SELDON_DEPLOYMENT_ID": self.name,
                "PREDICTOR_ID": pred["name"],
                "PREDICTIVE_UNIT_ID": pred["model_name"],
                "PREDICTOR_LABELS": json.dumps({"version": pred.get("predictor_version", "")}),
                "TORCH_THREADS": env.get("TORCH_THREADS", "1"),
                "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            }
        )
        child = _proc.spawn(argv, name=f"replica {rid}", log=self.folder / "replicas" / f"{rid}.log", env=env, cwd=self.folder)
        print(f"started replica {rid} (pid {child.pid}, http {http_port}, metrics {metrics_port}) for {model_uri}", flush=True)
        return _Process(rid, child, http_port, metrics_port, model_uri, model_dir, predictor=pred["name"])

    async def _wait_ready(self, proc: _Process) -> None:
        """Until the model answers /health/status and the metrics port answers; fail early if it exits."""
        import aiohttp  # ~0.5 s: supervisor only

        timeout = self.settings.serving.start_timeout
        deadline = self.clock.monotonic() + timeout
        urls = [f"http://{REPLICA_HOST}:{proc.http_port}/health/status", f"http://{REPLICA_HOST}:{proc.metrics_port}/metrics"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while urls:
                if self._stopping.is_set():
                    raise ServingError(f"replica {proc.id} abandoned: the supervisor is stopping")
                if not proc.child.alive():
                    tail = proc.child.tail(25)
                    code = proc.child.popen.returncode
                    raise ServingError(f"replica {proc.id} exited with code {code} while starting: {_reason(tail)}\n{tail}")
                if self.clock.monotonic() > deadline:
                    raise ServingError(
                        f"replica {proc.id} did not answer {urls[0]} within {timeout:.0f}s:\n{proc.child.tail(15)}"
                    )
                try:
                    async with session.get(urls[0]) as resp:
                        await resp.read()
                        if resp.status == 200:
                            urls.pop(0)
                            continue
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)

    async def _retire(self, proc: _Process) -> None:
        proc.state = "draining"
        await self.router.remove(proc.id, self.settings.serving.drain_seconds)
        self._write_status()
        await asyncio.to_thread(proc.child.stop, 15.0)
        if proc in self.procs:
            self.procs.remove(proc)
        print(f"stopped replica {proc.id}", flush=True)
        self._write_status()
        self._publish_targets()

    async def shutdown(self) -> None:
        """Drain and stop every replica, stop the router, clear the targets."""
        self.state, self.message = "Terminating", "supervisor stopping"
        self._write_status()
        await asyncio.gather(*(self._retire(p) for p in list(self.procs)), return_exceptions=True)
        if self.router is not None:
            await self.router.stop()
        with contextlib.suppress(SpecError, OSError, ImportError):
            _targets(self.settings, f"seldon-{self.name}-router", [], {})
            _targets(self.settings, f"seldon-{self.name}-models", [], {})
        self.state = "Terminated"
        self._write_status()

    # -- status ---------------------------------------------------------------------------------

    def _write_status(self) -> None:
        every = self.router.ready() if self.router is not None else []
        wanted = wanted_predictors(self.spec) if self.spec else []
        own = wanted[0]["name"] if wanted else ""
        ready = [r for r in every if (r.predictor or own) == own]  # the deployment's own predictor's
        models = sorted({r.model_uri for r in ready})
        _write_json(
            self.folder / "status.json",
            {
                "name": self.name,
                "state": self.state,
                "message": self.message,
                "observedGeneration": self.observed,
                "replicas": int(self.spec.get("replicas", 0)),
                "readyReplicas": len(ready),
                "model_uri": models[0] if len(models) == 1 else self.spec.get("model_uri"),
                "model_uris": models,
                "endpoint": self.router.url if self.router is not None else None,
                "supervisor_pid": os.getpid(),
                "predictors": [
                    {
                        "name": p["name"],
                        "traffic": p["traffic"],
                        "shadow": p["shadow"],
                        "replicas": int(p["replicas"]),
                        "readyReplicas": sum(1 for r in every if (r.predictor or own) == p["name"]),
                        "model_uri": p["model_uri"],
                    }
                    for p in wanted
                ],
                "updated": self.clock.now(),
                "replicaProcesses": [
                    {
                        "id": p.id,
                        "pid": p.child.pid,
                        "http_port": p.http_port,
                        "metrics_port": p.metrics_port,
                        "model_uri": p.model_uri,
                        "predictor": p.predictor,
                        "state": p.state,
                    }
                    for p in self.procs
                ],
            },
        )

    def _publish_targets(self) -> None:
        host = self.settings.serving.host
        labels = {"seldon_deployment": self.name, "namespace": self.spec.get("namespace", "")}
        try:
            _targets(
                self.settings, f"seldon-{self.name}-router", [f"{host}:{self.router.port}"], {**labels, "component": "router"}
            )
            _targets(
                self.settings,
                f"seldon-{self.name}-models",
                [f"{REPLICA_HOST}:{p.metrics_port}" for p in self.procs if p.state == "ready"],
                {**labels, "component": "model"},
            )
        except (SpecError, OSError) as err:
            print(f"cannot write Prometheus targets: {err}", flush=True)


def _as_predictor(pred: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD fields of a ``spec.json`` predictor that ``split_of`` reads."""
    return {"name": pred["name"], "traffic": pred["traffic"], **({"shadow": True} if pred["shadow"] else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {_MODULE}", description="Supervise one local SeldonDeployment (router + replicas)."
    )
    parser.add_argument("name", help="deployment name (folder under <home>/deployments)")
    parser.add_argument("--home", help="state folder (default: $SCANFLOW_HOME)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.home:
        settings = settings.with_home(args.home)
    try:
        asyncio.run(Supervisor(settings, args.name).run())
    except ScanflowError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
