"""Readers for the on-disk dataset formats vitnas understands.

Every reader returns plain numpy arrays -- images as uint8 ``(N, C, H, W)``, labels as int64
``(N,)`` -- plus the class names. Missing, truncated or corrupt input is reported as a one-line
:class:`~vitnas.errors.DatasetError` that names the file, because a user can act on "file X is
truncated" but not on a traceback from deep inside pickle or zlib.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

import numpy as np
from PIL import Image

from vitnas.errors import ConfigError, DatasetError, interrupts_deferred
from vitnas.paths import cache_dir as _default_cache_dir

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = ("train", "test")

# Bumped whenever the layout of the decoded-archive cache changes, so old caches are rebuilt.
_CACHE_VERSION = 1


class RawData(NamedTuple):
    """What every reader returns: uint8 images (N, C, H, W), int64 labels (N,), class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]


def _fail(path: PathLike, problem: str) -> DatasetError:
    """A DatasetError whose message is exactly one line and starts with the file's name."""
    text = " ".join(line.strip() for line in f"{path}: {problem}".splitlines())
    return DatasetError(text)


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def check_split(split: str) -> str:
    """Validate a split name early, so a typo does not surface as a missing file."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def limit_per_class(data: RawData, limit: int | None) -> RawData:
    """Keep the first ``limit`` samples of each class (in the given order), for quick looks."""
    if limit is None:
        return data
    if limit < 1:
        raise ConfigError(f"limit_per_class must be >= 1, got {limit}")
    keep = np.zeros(len(data.labels), dtype=bool)
    for cls in np.unique(data.labels):
        keep[np.flatnonzero(data.labels == cls)[:limit]] = True
    return RawData(data.images[keep], data.labels[keep], data.classes)


# --------------------------------------------------------------------------- CIFAR pickles

_SAFE_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays and builtins.

    A dataset file is data; refusing every other global means a tampered download cannot run
    code when it is loaded.
    """

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _load_pickle(path: Path) -> object:
    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        with open(path, "rb") as f:
            return _DataOnlyUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # pickle raises many unrelated types on bad input
        raise _fail(path, f"corrupt or truncated pickle ({_describe(exc)})") from exc


def _field(obj: object, key: str, path: Path) -> object:
    """Look up ``key`` whether the pickle was written by Python 2 (bytes keys) or 3 (str)."""
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a pickled dict, found {type(obj).__name__}")
    for candidate in (key.encode(), key):
        if candidate in obj:
            return obj[candidate]
    raise _fail(path, f"missing key {key!r}")


def _names(value: object, path: Path, key: str) -> list[str]:
    try:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]  # type: ignore[union-attr]
    except Exception as exc:
        raise _fail(path, f"{key!r} is not a list of names ({_describe(exc)})") from exc


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    obj = _load_pickle(path)
    data = np.asarray(_field(obj, "data", path))
    try:
        labels = np.asarray(_field(obj, label_key, path), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"{label_key!r} is not a list of integers") from exc
    n = len(labels)
    if data.dtype != np.uint8:
        raise _fail(path, f"'data' has dtype {data.dtype}, expected uint8")
    if data.size != n * 3072:
        raise _fail(path, f"'data' holds {data.size} bytes, expected {n} x 3072 for {n} labels")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise _fail(path, f"labels out of range 0..{num_classes - 1}")
    return data.reshape(n, 3, 32, 32), labels


def load_cifar10_pickles(directory: PathLike, split: str = "train") -> RawData:
    """Read the official ``cifar-10-batches-py`` directory (``data_batch_1..5``, ``test_batch``)."""
    d = Path(directory)
    check_split(split)
    if not d.is_dir():
        raise _fail(d, "CIFAR-10 directory not found")
    meta_path = d / "batches.meta"
    classes = _names(
        _field(_load_pickle(meta_path), "label_names", meta_path), meta_path, "label_names"
    )
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_cifar_batch(d / name, "labels", len(classes)) for name in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return RawData(images, labels, classes)


def load_cifar100_pickles(
    directory: PathLike, split: str = "train", label_mode: str = "fine"
) -> RawData:
    """Read the official ``cifar-100-python`` directory; ``label_mode`` is "fine" or "coarse"."""
    d = Path(directory)
    check_split(split)
    if label_mode not in ("fine", "coarse"):
        raise ConfigError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    if not d.is_dir():
        raise _fail(d, "CIFAR-100 directory not found")
    meta_path = d / "meta"
    key = f"{label_mode}_label_names"
    classes = _names(_field(_load_pickle(meta_path), key, meta_path), meta_path, key)
    images, labels = _cifar_batch(d / split, f"{label_mode}_labels", len(classes))
    return RawData(images, labels, classes)


# --------------------------------------------------------------------------- idx (MNIST)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: Path) -> bytes:
    """File contents, transparently gunzipped (recognised by magic bytes, not by name)."""
    if not path.is_file():
        raise _fail(path, "file not found")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(path, f"corrupt or truncated gzip data ({_describe(exc)})") from exc


def read_idx(path: PathLike) -> np.ndarray:
    """Read one idx file (plain or gzipped), checking the payload size matches the header."""
    p = Path(path)
    raw = _read_maybe_gzip(p)
    if len(raw) < 4:
        raise _fail(p, f"too short for an idx header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise _fail(p, f"not an idx file (magic starts {raw[:2].hex()}, expected 0000)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise _fail(p, f"unknown idx data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _fail(p, f"truncated idx header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        kind = "truncated" if got < expected else "has trailing data"
        raise _fail(
            p, f"{kind}: payload is {got} bytes, header shape {tuple(dims)} needs {expected}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _find_idx(directory: Path, prefix: str, kind: str, ndim: int) -> Path:
    stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
    names = [stem + suffix for stem in stems for suffix in ("", ".gz")]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise _fail(directory, f"no {names[0]} or {names[1]} found")


def load_mnist_dir(
    directory: PathLike, split: str = "train", classes: Sequence[str] = MNIST_CLASSES
) -> RawData:
    """Read an MNIST-style directory of idx files (``train-*`` / ``t10k-*``, plain or .gz)."""
    d = Path(directory)
    check_split(split)
    if not d.is_dir():
        raise _fail(d, "idx dataset directory not found")
    prefix = "train" if split == "train" else "t10k"
    image_path = _find_idx(d, prefix, "images", 3)
    label_path = _find_idx(d, prefix, "labels", 1)
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise _fail(image_path, f"expected 3-d uint8 images, found {images.ndim}-d {images.dtype}")
    if labels.ndim != 1:
        raise _fail(label_path, f"expected 1-d labels, found {labels.ndim}-d")
    if len(labels) != len(images):
        raise _fail(
            label_path, f"{len(labels)} labels for {len(images)} images in {image_path.name}"
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise _fail(label_path, f"labels out of range 0..{len(classes) - 1}")
    return RawData(images[:, None, :, :].copy(), labels, list(classes))


# --------------------------------------------------------------------------- single images


def decode_image(
    data: bytes | PathLike,
    channels: int = 3,
    size: int | tuple[int, int] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode one image (bytes or a path) to uint8 (C, H, W); ``size`` resizes to (H, W).

    ``name`` is what an error message calls the image (defaults to the path).
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    label = name or (str(data) if not isinstance(data, bytes) else "<image bytes>")
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(source) as im:
            im.load()
            if im.mode != mode:
                im = im.convert(mode)
            if size is not None:
                h, w = (size, size) if isinstance(size, int) else size
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im)
    except FileNotFoundError as exc:
        raise _fail(label, "file not found") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _fail(label, f"cannot decode image ({_describe(exc)})") from exc
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.array(chw, order="C")  # Pillow's buffer is read-only: hand out a writable copy


def scan_image_folder(
    root: PathLike, extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> tuple[list[Path], np.ndarray, list[str]]:
    """List ``root/<class>/**/<image>`` files: (sorted files, int64 labels, sorted classes)."""
    r = Path(root)
    if not r.is_dir():
        raise _fail(r, "image folder not found")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    classes = sorted(p.name for p in r.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        found = sorted(
            p
            for p in (r / cls).rglob("*")
            if p.suffix.lower() in exts and p.is_file() and not p.name.startswith(".")
        )
        files.extend(found)
        labels.extend([index] * len(found))
    if not files:
        raise _fail(r, f"no images found under <class>/ subfolders (extensions: {sorted(exts)})")
    return files, np.asarray(labels, dtype=np.int64), classes


# --------------------------------------------------------------------------- image archives


def _open_decompressed(archive: Path) -> IO[bytes]:
    """Open ``archive`` through the decompressor its magic bytes call for."""
    with open(archive, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(archive, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(archive, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(archive, "rb")
    return open(archive, "rb")


class _TrackedStream:
    """A read-only stream that counts the bytes handed out and keeps the most recent ones.

    ``tarfile`` treats a cut-off header as the end of the archive and stops silently; knowing
    where the stream stands lets us check that iteration really ended on tar's zero block.
    """

    def __init__(self, raw: IO[bytes], keep: int = 4 * tarfile.RECORDSIZE) -> None:
        self.raw = raw
        self.position = 0
        self.tail = b""
        self.keep = keep

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.position += len(data)
        self.tail = (self.tail + data)[-self.keep :]
        return data

    def check_end(self, end_offset: int) -> None:
        """Raise unless a full zero block sits at ``end_offset``; also drains the stream so
        the decompressor verifies its checksum and notices a truncated file."""
        extra = b""
        while chunk := self.raw.read(1 << 20):
            if len(extra) < tarfile.BLOCKSIZE:
                extra += chunk[: tarfile.BLOCKSIZE]
        start = self.position - len(self.tail)
        if end_offset < start:
            raise tarfile.ReadError("cannot locate the end-of-archive marker")
        block = (self.tail + extra)[end_offset - start : end_offset - start + tarfile.BLOCKSIZE]
        if len(block) < tarfile.BLOCKSIZE or any(block):
            raise tarfile.ReadError(
                f"archive ends without an end-of-archive marker at {end_offset}"
            )


def _archive_members(archive: Path, split: str) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Stream ``<root>/<split>/<class>/<image>`` members out of a (compressed) tar archive.

    Streaming reads the archive once, front to back, which is what gzip is fast at.
    """
    members: list[tuple[str, str, bytes]] = []
    try:
        with _open_decompressed(archive) as raw:
            stream = _TrackedStream(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if not member.isfile():
                        continue
                    parts = PurePosixPath(member.name).parts
                    if len(parts) < 3 or parts[-3] != split or parts[-1].startswith("."):
                        continue
                    if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if len(data) != member.size:
                        raise tarfile.ReadError(f"member {member.name} is cut short")
                    members.append((member.name, parts[-2], data))
                stream.check_end(tar.offset)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise _fail(archive, f"truncated or corrupt archive ({_describe(exc)})") from exc
    if not members:
        raise _fail(archive, f"no images under <root>/{split}/<class>/ in the archive")
    members.sort(key=lambda m: m[0])
    classes = sorted({m[1] for m in members})
    return members, classes


def _decode_members(
    archive: Path, members: list[tuple[str, str, bytes]], classes: list[str]
) -> RawData:
    index = {c: i for i, c in enumerate(classes)}
    first = decode_image(members[0][2], name=f"{archive}: member {members[0][0]}")
    images = np.empty((len(members), *first.shape), dtype=np.uint8)
    for i, (name, _cls, data) in enumerate(members):
        arr = decode_image(data, name=f"{archive}: member {name}")
        if arr.shape != first.shape:
            raise _fail(
                f"{archive}: member {name}",
                f"image shape {arr.shape} differs from {first.shape} of the first image",
            )
        images[i] = arr
    labels = np.asarray([index[m[1]] for m in members], dtype=np.int64)
    return RawData(images, labels, classes)


def _cache_key(archive: Path) -> str:
    st = archive.stat()
    return json.dumps(
        {
            "version": _CACHE_VERSION,
            "path": str(archive.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        },
        sort_keys=True,
    )


def _read_cache(path: Path, key: str) -> RawData | None:
    """The cached arrays if the cache exists and was built from this exact archive, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            classes = [str(c) for c in z["classes"]]
            return RawData(z["images"], z["labels"].astype(np.int64), classes)
    except Exception:  # an unreadable cache is just a miss: it is rebuilt from the archive
        return None


def _write_cache(path: Path, key: str, data: RawData) -> None:
    write_npz_atomic(path, images=data.images, labels=data.labels,
                     classes=np.asarray(data.classes, dtype=str), key=np.asarray(key))


STALE_SECONDS = 24 * 3600  # a temp file this old was left by a run killed mid-write


def write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache atomically (temp file + rename), so a crash never leaves a half-written
    cache; temp files of the same cache older than a day (a SIGKILL mid-write cannot remove its
    own) are swept first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.stem}-"
    for stale in path.parent.glob(f"{prefix}*.npz.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink()
        except OSError:  # gone already, or another run's to remove
            pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".npz.tmp")
    with interrupts_deferred():  # a decode of minutes is worth the seconds its cache takes
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cached_decode(stem: str, split: str, cache_dir: PathLike | None = None) -> RawData | None:
    """The cached decode of an archive named ``stem`` (e.g. ``cifar10-jpg``) whatever directory
    it was read from, or None: a run from another working directory, where the data dir is not
    found, still has the images it decoded before."""
    path = _default_cache_dir(cache_dir) / stem / f"{split}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            text = str(z["key"])
        key = json.loads(text)
    except Exception:
        return None
    if not isinstance(key, dict) or key.get("version") != _CACHE_VERSION:
        return None
    return _read_cache(path, text)


def archive_cache_path(archive: PathLike, split: str, cache_dir: PathLike | None = None) -> Path:
    """Where the decoded arrays of ``archive``'s ``split`` are cached."""
    name = Path(archive).name
    for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _default_cache_dir(cache_dir) / name / f"{split}.npz"


def load_image_archive(
    archive: PathLike,
    split: str = "train",
    *,
    limit_per_class: int | None = None,
    cache: bool = True,
    cache_dir: PathLike | None = None,
) -> RawData:
    """Decode a tar(.gz) of ``<root>/<split>/<class>/<image>`` files into uint8 arrays.

    Decoding 50k JPEGs takes seconds, so the full decode of a split is cached as
    ``<cache_dir>/<archive stem>/<split>.npz``, keyed by the archive's path, size and mtime so a
    replaced archive is decoded afresh. ``limit_per_class`` decodes only the first images (by
    path) of each class, for quick checks; it neither reads nor writes the cache.
    """
    path = Path(archive)
    check_split(split)
    if not path.is_file():
        raise _fail(path, "archive not found")
    use_cache = cache and limit_per_class is None
    if use_cache:
        key = _cache_key(path)
        cache_path = archive_cache_path(path, split, cache_dir)
        cached = _read_cache(cache_path, key)
        if cached is not None:
            return cached
    members, classes = _archive_members(path, split)
    if limit_per_class is not None:
        if limit_per_class < 1:
            raise ConfigError(f"limit_per_class must be >= 1, got {limit_per_class}")
        counts: dict[str, int] = {}
        kept = []
        for member in members:
            if counts.get(member[1], 0) < limit_per_class:
                counts[member[1]] = counts.get(member[1], 0) + 1
                kept.append(member)
        members = kept
    data = _decode_members(path, members, classes)
    if use_cache:
        _write_cache(cache_path, key, data)
    return data


def load_cifar10_jpg(
    archive: PathLike,
    split: str = "train",
    *,
    limit_per_class: int | None = None,
    cache: bool = True,
    cache_dir: PathLike | None = None,
) -> RawData:
    """Read the CIFAR-10 JPEG archive (``cifar10-jpg/{train,test}/<class>/NNNN.jpg``).

    Sorted class folder names equal CIFAR-10's canonical label order, so labels match the
    official release.
    """
    data = load_image_archive(
        archive, split, limit_per_class=limit_per_class, cache=cache, cache_dir=cache_dir
    )
    if data.images.shape[1:] != (3, 32, 32):
        raise _fail(archive, f"images are {data.images.shape[1:]}, expected CIFAR-10's (3, 32, 32)")
    if tuple(data.classes) != CIFAR10_CLASSES:
        # a partial archive would silently train a 10-way head on fewer classes
        found = ", ".join(data.classes[:4]) + (", ..." if len(data.classes) > 4 else "")
        raise _fail(archive, f"the {split} split holds {len(data.classes)} class folders "
                             f"({found}), expected CIFAR-10's 10 ({', '.join(CIFAR10_CLASSES)})")
    return data
