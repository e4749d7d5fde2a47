"""Readers of the official CIFAR pickles and MNIST idx files, on tiny files written here."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from vitnas.data import (
    get_dataset,
    load_cifar10_pickles,
    load_cifar100_pickles,
    load_mnist_dir,
    read_idx,
)
from vitnas.data.formats import CIFAR10_CLASSES
from vitnas.errors import ConfigError, DatasetError


def _assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# --------------------------------------------------------------------------- CIFAR writers


def _dump(path: Path, obj: object) -> None:
    # Protocol 2 with bytes keys is what the official (Python 2) files contain.
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _cifar_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4, test: int = 3, seed: int = 0) -> dict:
    """Write a miniature cifar-10-batches-py; return the arrays written per split."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    _dump(
        d / "batches.meta",
        {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_cases_per_batch": per_batch,
            b"num_vis": 3072,
        },
    )
    written = {"train": ([], []), "test": ([], [])}
    names = [(f"data_batch_{i}", "train", per_batch) for i in range(1, 6)]
    for name, split, n in [*names, ("test_batch", "test", test)]:
        images = _cifar_images(rng, n)
        labels = rng.integers(0, 10, size=n).tolist()
        _dump(
            d / name,
            {
                b"batch_label": name.encode(),
                b"labels": labels,
                b"data": images.reshape(n, 3072),
                b"filenames": [b"x.png"] * n,
            },
        )
        written[split][0].append(images)
        written[split][1].extend(labels)
    return {k: (np.concatenate(v[0]), np.asarray(v[1])) for k, v in written.items()}


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    _dump(
        d / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = _cifar_images(rng, n)
        fine = rng.integers(0, 100, size=n).tolist()
        coarse = rng.integers(0, 20, size=n).tolist()
        _dump(
            d / split,
            {
                b"data": images.reshape(n, 3072),
                b"fine_labels": fine,
                b"coarse_labels": coarse,
                b"filenames": [b"x.png"] * n,
            },
        )
        written[split] = (images, np.asarray(fine), np.asarray(coarse))
    return written


def test_cifar10_pickles_read_back_exactly(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    for split in ("train", "test"):
        data = load_cifar10_pickles(tmp_path / "cifar-10-batches-py", split)
        np.testing.assert_array_equal(data.images, written[split][0])
        np.testing.assert_array_equal(data.labels, written[split][1])
        assert data.images.dtype == np.uint8 and data.labels.dtype == np.int64
        assert data.classes == list(CIFAR10_CLASSES)
    assert len(load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "train").labels) == 20


def test_cifar10_pickle_written_by_python3_with_str_keys_is_accepted(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    d = tmp_path / "cifar-10-batches-py"
    images = np.zeros((2, 3072), dtype=np.uint8)
    d.joinpath("test_batch").write_bytes(pickle.dumps({"data": images, "labels": [1, 2]}))
    data = load_cifar10_pickles(d, "test")
    assert data.labels.tolist() == [1, 2]


def test_cifar100_pickles_read_fine_and_coarse_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path)
    d = tmp_path / "cifar-100-python"
    for split in ("train", "test"):
        fine = load_cifar100_pickles(d, split)
        np.testing.assert_array_equal(fine.images, written[split][0])
        np.testing.assert_array_equal(fine.labels, written[split][1])
        assert len(fine.classes) == 100 and fine.classes[7] == "fine7"
        coarse = load_cifar100_pickles(d, split, label_mode="coarse")
        np.testing.assert_array_equal(coarse.labels, written[split][2])
        assert len(coarse.classes) == 20


def test_cifar100_rejects_unknown_label_mode(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    with pytest.raises(ConfigError):
        load_cifar100_pickles(tmp_path / "cifar-100-python", label_mode="medium")


def test_truncated_cifar_pickle_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DatasetError) as exc:
        load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "train")
    _assert_one_line_naming(exc, batch)


def test_cifar_data_of_wrong_length_is_rejected(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(batch, {b"data": np.zeros((3, 3000), dtype=np.uint8), b"labels": [0, 1, 2]})
    with pytest.raises(DatasetError, match="3 x 3072") as exc:
        load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "test")
    _assert_one_line_naming(exc, batch)


def test_cifar_labels_out_of_range_are_rejected(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(batch, {b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [10]})
    with pytest.raises(DatasetError, match="out of range"):
        load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "test")


def test_missing_cifar_batch_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_5"
    missing.unlink()
    with pytest.raises(DatasetError, match="not found") as exc:
        load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "train")
    _assert_one_line_naming(exc, missing)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DatasetError, match="refusing") as exc:
        load_cifar10_pickles(tmp_path / "cifar-10-batches-py", "test")
    _assert_one_line_naming(exc, batch)


def test_registry_prefers_official_cifar10_pickles_in_the_data_dir(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    ds = get_dataset("cifar10", split="test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.images.numpy(), written["test"][0])
    assert (ds.num_classes, ds.image_size, ds.channels) == (10, 32, 3)
    assert ds.mean == pytest.approx((0.4914, 0.4822, 0.4465))


def test_registry_reads_cifar100_from_the_data_dir(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    ds = get_dataset("cifar100", split="train", data_dir=tmp_path, label_mode="coarse")
    assert ds.num_classes == 20 and len(ds) == 6


# --------------------------------------------------------------------------- idx writers


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(d: Path, n_train: int = 7, n_test: int = 5, gz: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for kind, arr, ndim in (("images", images, 3), ("labels", labels, 1)):
            payload = idx_bytes(arr)
            name = f"{prefix}-{kind}-idx{ndim}-ubyte"
            if gz:
                (d / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (d / name).write_bytes(payload)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 70000], dtype=np.int32),
        np.array([[1.5, -2.25]], dtype=np.float32),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_read_back_exactly(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    payload = idx_bytes(array)
    path = tmp_path / "x-idx"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype and out.shape == array.shape


@pytest.mark.parametrize("cut", [2, 9, 100])
def test_truncated_idx_is_a_one_line_error_naming_the_file(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))[:cut])
    with pytest.raises(DatasetError) as exc:
        read_idx(path)
    _assert_one_line_naming(exc, path)


def test_idx_with_trailing_bytes_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="trailing"):
        read_idx(path)


def test_idx_with_bad_magic_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="not an idx file") as exc:
        read_idx(path)
    _assert_one_line_naming(exc, path)


def test_truncated_gzip_idx_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="gzip") as exc:
        read_idx(path)
    _assert_one_line_naming(exc, path)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_dir_reads_both_splits(tmp_path: Path, gz: bool) -> None:
    written = write_mnist(tmp_path / "mnist", gz=gz)
    for split in ("train", "test"):
        data = load_mnist_dir(tmp_path / "mnist", split)
        np.testing.assert_array_equal(data.images[:, 0], written[split][0])
        np.testing.assert_array_equal(data.labels, written[split][1])
        assert data.images.shape[1] == 1 and data.labels.dtype == np.int64


def test_mnist_dir_with_mismatched_counts_names_the_label_file(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist", gz=False)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(DatasetError, match="4 labels for 5 images") as exc:
        load_mnist_dir(tmp_path / "mnist", "test")
    _assert_one_line_naming(exc, labels)


def test_mnist_dir_without_files_says_which_file_is_missing(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_mnist_dir(tmp_path / "mnist", "train")


def test_registry_finds_mnist_and_fashion_mnist(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    write_mnist(tmp_path / "elsewhere", seed=1)
    mnist = get_dataset("mnist", split="test", data_dir=tmp_path)
    assert (len(mnist), mnist.channels, mnist.image_size, mnist.num_classes) == (5, 1, 28, 10)
    fashion = get_dataset("fashion_mnist", path=tmp_path / "elsewhere", limit_per_class=1)
    assert fashion.classes[0] == "T-shirt/top"
    assert len(fashion) == len(set(fashion.labels.tolist()))
    assert fashion.mean == pytest.approx((0.2860,))


def test_a_cache_is_written_whole_and_a_day_old_temp_file_of_it_is_swept(tmp_path, monkeypatch):
    import os
    import time

    from vitnas.data import formats

    path = tmp_path / "train.npz"
    stale, fresh = tmp_path / ".train-old.npz.tmp", tmp_path / ".train-now.npz.tmp"
    other = tmp_path / ".test-old.npz.tmp"  # another cache's: its own writer sweeps it
    for leftover in (stale, fresh, other):  # what a run killed mid-write leaves
        leftover.write_bytes(b"half")
    day_ago = time.time() - formats.STALE_SECONDS - 60
    for old in (stale, other):
        os.utime(old, (day_ago, day_ago))
    formats.write_npz_atomic(path, images=np.zeros((2, 3)))
    assert not stale.exists() and fresh.exists()  # a recent one may be another run's
    assert other.exists()
    other.unlink()
    with np.load(path) as z:
        assert z["images"].shape == (2, 3)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        formats.write_npz_atomic(tmp_path / "test.npz", images=np.zeros(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".train-now.npz.tmp", "train.npz"]
