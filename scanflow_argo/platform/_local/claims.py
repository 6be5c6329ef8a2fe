"""PersistentVolumeClaims on the local platform: one folder per claim, ``<home>/volumes/<namespace>/<name>/``,
where the engine mounts it (``engine/features/volumes.py`` ``claim_dir``).

``create`` is what the API server does with a PVC: a ``generateName`` gets five random characters
(Kubernetes' ``SimpleNameGenerator``, ``apiserver/pkg/storage/names/generate.go``), a taken name is
refused (``persistentvolumeclaims "NAME" already exists``); ``apply`` keeps an existing claim. A claim
whose ``metadata.ownerReferences`` names a Workflow (Argo's ``resource.setOwnerReference``, set by the
controller in ``workflow/controller/operator.go`` ``executeResource``) is removed with that run, as
Kubernetes' garbage collector removes it with its owner: ``delete_owned``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...engine.core.manifest import random_suffix
from ...errors import AlreadyExistsError, PlatformError

__all__ = ["apply_claim", "delete_owned"]

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_OWNER = ".{}.owner.json"
"""Beside a claim's folder: the run that owns it (a dot name, which no claim can have)."""


def _plain(value: str, what: str) -> str:
    if not _LABEL.fullmatch(value) or len(value) > 253:
        raise PlatformError(
            f"persistentvolumeclaim {what} {value!r} is not a DNS-1123 name: use lowercase letters, digits and '-'"
        )
    return value


def apply_claim(home: Path, action: str, manifest: Mapping[str, Any], default_namespace: str = "default") -> dict[str, Any]:
    """``create`` or ``apply`` a PersistentVolumeClaim; the claim as stored (its name given, ``status.phase``
    ``Bound``: a folder is ready at once)."""
    meta = dict(manifest.get("metadata") or {})
    namespace = _plain(str(meta.get("namespace") or default_namespace), "namespace")
    root = home / "volumes" / namespace
    name = str(meta.get("name") or "")
    if not name:
        prefix = str(meta.get("generateName") or "")
        if not prefix:
            raise PlatformError("a PersistentVolumeClaim needs metadata.name or metadata.generateName")
        if action != "create":  # kubectl apply: "cannot use generate name with apply"
            raise PlatformError(
                f"persistentvolumeclaim generateName {prefix!r}: cannot use generate name with {action}: use create"
            )
        name = f"{prefix}{random_suffix()}"
        while (root / name).exists():  # the API server retries a generated name that is taken
            name = f"{prefix}{random_suffix()}"
    folder = root / _plain(name, "name")
    if folder.exists() and action == "create":
        raise AlreadyExistsError(
            f'persistentvolumeclaims "{name}" already exists in namespace {namespace!r}: use generateName, or '
            f"action apply to use the existing claim"
        )
    folder.mkdir(parents=True, exist_ok=True)
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, Mapping) and o.get("kind") == "Workflow"]
    if owners:
        (root / _OWNER.format(name)).write_text(json.dumps({"workflow": str(owners[0].get("name"))}))
    meta.update(name=name, namespace=namespace)
    return {**dict(manifest), "metadata": meta, "status": {"phase": "Bound"}}


def delete_owned(home: Path, namespace: str, workflow: str) -> list[str]:
    """Remove the claims of ``namespace`` owned by run ``workflow``; their names."""
    root = home / "volumes" / namespace
    gone = []
    for note in sorted(root.glob(_OWNER.format("*"))) if root.is_dir() else []:
        try:
            owner = json.loads(note.read_text()).get("workflow")
        except (OSError, ValueError, AttributeError):
            continue
        if owner != workflow:
            continue
        claim = note.name[1 : -len(".owner.json")]
        shutil.rmtree(root / claim, ignore_errors=True)
        note.unlink(missing_ok=True)
        gone.append(claim)
    return gone
