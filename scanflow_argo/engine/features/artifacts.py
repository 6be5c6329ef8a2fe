"""The local artifact repository (``<home>/artifacts``) and safe paths into it.

Output artifacts are stored under ``<home>/artifacts/.namespaces/<namespace>/<key>`` (key
``<run>/<node-id>/<name>.tgz`` by default, tar-gz or raw per ``archive``): each namespace's artifacts under its
own prefix, as each team's artifact repository has its own key prefix on a cluster (``compile/teams.py``), and a
run reads only its own namespace's (a stored location names its namespace; artifacts an older engine stored at
``<home>/artifacts/<key>``, naming none, are read as before). Input artifacts are placed at their path in the node's
filesystem. Every key and path is checked so nothing can escape the repository or the node folder.
Artifacts at ``http``/``artifactory`` locations are downloaded and uploaded as Argo's HTTP artifact driver does
(``workflow/artifacts/http/http.go``; unpacking and archiving as ``workflow/executor/executor.go``). Nothing becomes
more readable than it was: the repository is private to its owner (0700), a stored
artifact keeps its source's mode (the archive of a 0600 file is 0600), and an artifact placed from an
archive gets the mode its member had (as Argo's executor untars it).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import EngineError
from ..core.configstore import CONFIGMAPS, configmap_annotations, read_key
from ..core.manifest import load_yaml
from ..core.paths import safe_join

__all__ = [
    "REPOSITORIES_CONFIGMAP",
    "ArtifactNotFound",
    "ArtifactRepo",
    "http_load",
    "http_location",
    "http_save",
    "is_tarball",
    "make_tgz",
    "resolve_repository",
    "unpack_tar",
]

NAMESPACES = ".namespaces"
"""The folder of ``<home>/artifacts`` that holds one repository per namespace (a dot name: no run or key
an older engine wrote there starts with a dot, and a key naming none cannot reach it)."""


class ArtifactRepo:
    """Save and load the artifacts of one namespace (``None``: the whole folder) in a local folder; a location
    is ``{"key": ..., "archived": ..., "namespace": ...}``."""

    def __init__(self, root: Path, namespace: str | None = None) -> None:
        self.root = root
        self.namespace = namespace

    @property
    def base(self) -> Path:
        """The folder keys are relative to: the namespace's repository."""
        return self.root / NAMESPACES / self.namespace if self.namespace else self.root

    def save(self, src: Path, key: str, archive: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """Store ``src`` (file or folder) under ``key``; returns the Argo-shaped artifact location."""
        self._private_root()
        dest = safe_join(self.base, key, what)
        dest.parent.mkdir(parents=True, exist_ok=True)
        raw = archive is not None and "none" in archive
        if raw:
            if src.is_dir():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(src, dest, symlinks=True)  # copy2: modes kept
            else:
                shutil.copyfile(src, dest)
                os.chmod(dest, stat.S_IMODE(src.stat().st_mode))
        else:
            tmp = dest.with_name(dest.name + ".part")
            make_tgz(src, tmp, archive)
            os.replace(tmp, dest)
        return {"key": key, "archived": not raw, **({"namespace": self.namespace} if self.namespace else {})}

    def _private_root(self) -> None:
        """The repository folder, private to its owner."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            with contextlib.suppress(PermissionError):  # not ours: leave it as its owner set it
                self.root.chmod(0o700)
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)

    def where(self, location: Mapping[str, Any], what: str) -> Path:
        """The stored file or folder of ``location``; another namespace's is refused, naming both."""
        key, owner = str(location.get("key", "")), location.get("namespace")
        if owner is not None and self.namespace is not None and owner != self.namespace:
            raise EngineError(
                f"{what}: artifact {key!r} belongs to namespace {owner!r}, and a run in {self.namespace!r} reads only its "
                "own namespace's artifacts: take what another team publishes by reference (docs/teams.md)"
            )
        src = safe_join(self.root / NAMESPACES / str(owner) if owner else self.base, key, what)
        if owner is None and self.namespace is not None and not src.exists():
            first = PurePosixPath(key.lstrip("/")).parts[:1]
            if first and not first[0].startswith("."):  # stored by an engine before namespaces: read where it put it
                src = safe_join(self.root, key, what)
        return src

    def load(self, location: dict[str, Any], dest: Path, what: str) -> None:
        """Place a stored artifact at ``dest`` (a file or folder, as it was saved)."""
        src = self.where(location, what)
        if not src.exists():
            raise EngineError(f"{what}: artifact {location.get('key')!r} is missing from the local repository {self.root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        archived = location.get("archived")
        if archived is None:  # a key given by the user (key-only artifacts): look at what is stored
            archived = src.is_file() and src.read_bytes()[:2] == b"\x1f\x8b"
        if not archived:
            if src.is_dir():
                shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dest)
                shutil.copymode(src, dest)
            return
        unpack_tar(src, dest)

    @staticmethod
    def write_raw(data: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(data)


def make_tgz(src: Path, dest: Path, archive: Mapping[str, Any] | None) -> None:
    """``src`` (a file or folder) as Argo's executor archives an output (tar + gzip, ``archive.tar.compressionLevel``),
    at ``dest``: never readable by others while written, then as readable as its source is (group, others)."""
    level = int(((archive or {}).get("tar") or {}).get("compressionLevel", 6) or 6)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz", compresslevel=level) as tar:
        tar.add(src, arcname=src.name or "artifact")
    os.chmod(dest, 0o600 | (stat.S_IMODE(src.stat().st_mode) & 0o044))


def is_tarball(path: Path) -> bool:
    """Whether ``path`` is a (gzipped) tarball: Argo's executor unpacks those (``executor.go`` ``isTarball``)."""
    try:
        with tarfile.open(path, "r:*"):
            return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def unpack_tar(src: Path, dest: Path) -> None:
    """Unpack the tarball ``src`` at ``dest`` as Argo's executor untars an artifact: one file becomes ``dest``
    (with its mode), a folder's content goes into ``dest`` (its top folder stripped)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src, "r:*") as tar:
        members = tar.getmembers()
        tops = {PurePosixPath(m.name).parts[0] for m in members if m.name}
        if len(members) == 1 and members[0].isfile():
            fh = tar.extractfile(members[0])
            assert fh is not None
            dest.write_bytes(fh.read())
            os.chmod(dest, members[0].mode & 0o777)
            return
        staging = dest.parent / f".{dest.name}.extract"
        if staging.exists():
            shutil.rmtree(staging)
        tar.extractall(staging, filter="data")
        top = staging / next(iter(tops)) if len(tops) == 1 else staging
        if dest.exists() and dest.is_dir():
            shutil.copytree(top, dest, dirs_exist_ok=True, symlinks=True)
            shutil.rmtree(staging)
        else:
            os.replace(top, dest)
            if staging.exists():
                shutil.rmtree(staging)


# -- http and Artifactory artifacts (workflow/artifacts/http/http.go) --------------------------------------------
HTTP_TIMEOUT = 300.0
"""Seconds a transfer may stall (Argo's client has no timeout; a node's deadline bounds it there)."""
SecretReader = Callable[[Mapping[str, Any], str], "str | None"]
"""Reads a ``secretKeyRef`` (``{name, key}``) from this machine's state folder."""


def http_location(art: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``http``/``artifactory`` location of an artifact, as Argo records it, or None."""
    for kind in ("http", "artifactory"):
        if isinstance(art.get(kind), Mapping):
            return {kind: dict(art[kind])}
    return None


def _request(method: str, location: Mapping[str, Any], secret: SecretReader, what: str, body: bytes | None = None) -> Any:
    """Argo's HTTP artifact driver's request: the location's headers, basic auth from Secrets (Artifactory always),
    no proxy (tests and local servers are on 127.0.0.1)."""
    kind, loc = next(iter(location.items()))
    url = str(loc.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise EngineError(f"{what}: {kind}.url {url!r} is not an http:// or https:// URL")
    req = urllib.request.Request(url, data=body, method=method)
    for h in loc.get("headers") or []:
        req.add_header(str(h.get("name")), str(h.get("value", "")))
    basic = loc if kind == "artifactory" else ((loc.get("auth") or {}).get("basicAuth") or {})
    if basic.get("usernameSecret") or basic.get("passwordSecret"):
        user = secret(basic.get("usernameSecret") or {}, f"{what} {kind} username")
        password = secret(basic.get("passwordSecret") or {}, f"{what} {kind} password")
        if user and password:
            token = base64.b64encode(f"{user.strip()}:{password.strip()}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        return opener.open(req, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as err:
        return err  # a response: its status is judged by the caller, as Go's client leaves it to the driver
    except (urllib.error.URLError, OSError) as err:
        raise EngineError(f"{what}: {method} {url} failed: {getattr(err, 'reason', err)}") from err


def _status(res: Any) -> str:
    """Go's ``Response.Status``: the status line as the server sent it (``404 Not Found``)."""
    return f"{res.status} {res.reason or ''}".strip()


class ArtifactNotFound(EngineError):
    """The artifact's server answered 404: an optional input is then skipped (``executor.go`` ``loadArtifact``)."""


def http_load(art: Mapping[str, Any], location: Mapping[str, Any], dest: Path, secret: SecretReader, what: str) -> None:
    """Download an http/Artifactory input artifact to ``dest`` as Argo's executor does: GET, a 404 is
    ``ArtifactNotFound``, another non-2xx status an error naming it; then unpacked per ``archive`` (``none``: as is;
    by default a tarball is unpacked, anything else kept)."""
    url = str(next(iter(location.values())).get("url") or "")
    tmp = dest.with_name(dest.name + ".tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _request("GET", location, secret, what) as res:
        if res.status == 404:
            raise ArtifactNotFound(f"{what}: artifact {art.get('name')} failed to load: {_status(res)}")
        if not 200 <= res.status < 300:
            raise EngineError(
                f"{what}: artifact {art.get('name')} failed to load: loading content from {url} failed with reason: {_status(res)}"
            )
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(res, fh)
    archive = art.get("archive") or {}
    if "none" not in archive and ("tar" in archive or is_tarball(tmp)):
        unpack_tar(tmp, dest)
        tmp.unlink()
    else:
        os.replace(tmp, dest)


def http_save(src: Path, location: Mapping[str, Any], archive: Mapping[str, Any] | None, secret: SecretReader, what: str) -> None:
    """Upload an output artifact as Argo's executor does: archived (tar + gzip, unless ``archive: {none: {}}``),
    then PUT; a non-2xx status is an error naming it."""
    url = str(next(iter(location.values())).get("url") or "")
    raw = archive is not None and "none" in archive
    if raw and src.is_dir():
        raise EngineError(f"{what}: archive none cannot upload the folder {src.name}: only a file can be sent as is")
    with tempfile.TemporaryDirectory(prefix="artifact-") as tmpdir:
        body_path = src if raw else Path(tmpdir) / f"{src.name or 'artifact'}.tgz"
        if not raw:
            make_tgz(src, body_path, archive)
        with _request("PUT", location, secret, what, body_path.read_bytes()) as res:
            if not 200 <= res.status < 300:
                raise EngineError(f"{what}: saving file {src} to {url} failed with reason: {_status(res)}")


# -- artifactRepositoryRef (workflow/artifactrepositories/artifactrepositories.go) ----------------------------------
REPOSITORIES_CONFIGMAP = "artifact-repositories"
DEFAULT_KEY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"


def resolve_repository(ref: Mapping[str, Any] | None, namespace: str, home: Path) -> dict[str, Any]:
    """The workflow's ``status.artifactRepositoryRef``, as Argo's ``artifactRepositories.Resolve``: the ConfigMap
    ``ref.configMap`` (default ``artifact-repositories``) of the workflow's namespace (``core/configstore.py``), its
    key ``ref.key`` (default: the ConfigMap's ``workflows.argoproj.io/default-artifact-repository`` annotation),
    which must hold a repository (YAML). Without a ref, that ConfigMap's default key if there is one, else the
    default repository. Artifacts are stored in the local repository whatever the entry's location (S3…): it stands
    for them all here. A ref that resolves to nothing raises ``EngineError`` with Argo's message."""
    name = str((ref or {}).get("configMap") or REPOSITORIES_CONFIGMAP)
    key = str((ref or {}).get("key") or configmap_annotations(home, namespace, name).get(DEFAULT_KEY_ANNOTATION, ""))
    text = read_key(home, CONFIGMAPS, namespace, name, key) if key else None
    if text is not None:
        try:
            repo = load_yaml(text) or {}
        except Exception as err:  # PyYAML's errors (and a key that is no mapping) are the user's to fix
            raise EngineError(
                f'failed to resolve artifact repository: failed to unmarshall config map key "{key}": {err}'
            ) from err
        if not isinstance(repo, Mapping):
            raise EngineError(f'failed to resolve artifact repository: config map key "{key}" holds no artifact repository')
        return {"namespace": namespace, "configMap": name, "key": key}
    if ref is None:
        return {"default": True}
    shown = f"&ArtifactRepositoryRef{{ConfigMap:{(ref or {}).get('configMap') or ''},Key:{(ref or {}).get('key') or ''},}}"
    raise EngineError(
        f'failed to resolve artifact repository: failed to find any artifact repository for artifact repository ref "{shown}"'
    )
