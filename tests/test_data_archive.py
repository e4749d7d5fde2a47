"""The CIFAR-10 JPEG archive reader and its decode cache."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitnas.data import get_dataset, load_cifar10_jpg, load_image_archive
from vitnas.data.formats import archive_cache_path
from vitnas.errors import DatasetError

# CIFAR-10's classes, deliberately unsorted: labels follow sorted names
CLASSES = ("cat", "airplane", "dog", "truck", "bird", "ship", "frog", "horse", "deer", "automobile")
N = len(CLASSES)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's real cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VITNAS_CACHE_DIR", str(cache))
    return cache


def _png_bytes(color: tuple[int, int, int], size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(color: tuple[int, int, int], size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_archive(path: Path, per_class: int = 3, corrupt: str | None = None,
                 classes: tuple[str, ...] = CLASSES) -> Path:
    """A tiny tar.gz in the cifar10-jpg layout; class i's images have red channel 20*(i+1)."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("test", "train"):
            for cls in classes:
                label = sorted(CLASSES).index(cls)
                for k in range(per_class):
                    name = f"cifar10-jpg/{split}/{cls}/{k:04d}.jpg"
                    data = _jpeg_bytes((20 * (label + 1), 10 * k, 0))
                    if name == corrupt:
                        data = b"\xff\xd8 this is not really a jpeg"
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_labels_follow_sorted_class_folders(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz")
    data = load_cifar10_jpg(archive, "train")
    assert data.classes == sorted(CLASSES)
    assert data.images.shape == (3 * N, 3, 32, 32) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [c for c in range(N) for _ in range(3)]
    red = data.images[:, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, 20 * (data.labels + 1), atol=3)  # JPEG is lossy


def test_archive_cache_is_written_and_then_used_without_opening_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz")
    first = load_cifar10_jpg(archive, "test")
    cache = private_cache / "cifar10-jpg" / "test.npz"
    assert cache.is_file() and archive_cache_path(archive, "test") == cache
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]

    def no_archive(*args: object, **kwargs: object) -> None:
        raise AssertionError("archive opened despite a valid cache")

    monkeypatch.setattr(tarfile, "open", no_archive)
    second = load_cifar10_jpg(archive, "test")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.classes == second.classes


def test_changed_archive_is_decoded_again(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz", per_class=2)
    assert len(load_cifar10_jpg(archive, "train").labels) == 2 * N
    make_archive(archive, per_class=4)
    later = time.time() + 10  # make sure the mtime changes even on coarse filesystems
    os.utime(archive, (later, later))
    assert len(load_cifar10_jpg(archive, "train").labels) == 4 * N


def test_unreadable_cache_is_rebuilt(tmp_path: Path, private_cache: Path) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz")
    load_cifar10_jpg(archive, "train")
    cache = archive_cache_path(archive, "train")
    cache.write_bytes(b"garbage")
    assert len(load_cifar10_jpg(archive, "train").labels) == 3 * N
    assert cache.stat().st_size > 100


def test_limit_per_class_reads_first_images_and_skips_the_cache(
    tmp_path: Path, private_cache: Path
) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz")
    data = load_cifar10_jpg(archive, "train", limit_per_class=2)
    assert data.labels.tolist() == [c for c in range(N) for _ in range(2)]
    green = data.images[:, 1].mean(axis=(1, 2))
    np.testing.assert_allclose(green, [0, 10] * N, atol=3)  # images 0000 and 0001
    assert not (private_cache / "cifar10-jpg").exists()


def test_corrupt_member_is_named_in_a_one_line_error(tmp_path: Path) -> None:
    bad = "cifar10-jpg/train/dog/0001.jpg"
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz", corrupt=bad)
    with pytest.raises(DatasetError) as exc:
        load_cifar10_jpg(archive, "train")
    assert bad in str(exc.value) and str(archive) in str(exc.value)
    assert "\n" not in str(exc.value)
    assert len(load_cifar10_jpg(archive, "test").labels) == 3 * N  # the other split is fine


def test_truncated_archive_is_named_in_a_one_line_error(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz", per_class=6)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match="truncated or corrupt archive") as exc:
        load_cifar10_jpg(archive, "train")
    assert str(archive) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_archive_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_cifar10_jpg(tmp_path / "nope.tar.gz", "train")


def test_non_cifar_sized_images_are_rejected_by_the_cifar_reader(tmp_path: Path) -> None:
    archive = tmp_path / "pics.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for cls in ("a", "b"):
            data = _png_bytes((1, 2, 3), size=16)
            info = tarfile.TarInfo(f"pics/train/{cls}/0.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert load_image_archive(archive, "train").images.shape == (2, 3, 16, 16)
    with pytest.raises(DatasetError, match="expected CIFAR-10"):
        load_cifar10_jpg(archive, "train", cache=False)


def test_registry_falls_back_to_the_jpeg_archive(tmp_path: Path) -> None:
    make_archive(tmp_path / "cifar10-jpg.tar.gz")
    ds = get_dataset("cifar10", split="test", data_dir=tmp_path)
    assert ds.name == "cifar10" and len(ds) == 3 * N and ds.num_classes == N
    assert get_dataset("cifar10-jpg", split="test", data_dir=tmp_path).classes == ds.classes


# --------------------------------------------------------------------------- real data


def _shared_data_dir() -> Path:
    if os.environ.get("VITNAS_DATA_DIR"):
        return Path(os.environ["VITNAS_DATA_DIR"])
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.integration
def test_real_cifar10_jpeg_archive_decodes_plausibly() -> None:
    archive = _shared_data_dir() / "cifar10-jpg.tar.gz"
    if not archive.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{archive} missing on CI")
        pytest.skip(f"{archive} not available")
    start = time.perf_counter()
    data = load_cifar10_jpg(archive, "test", limit_per_class=20)
    print(f"decoded {len(data.labels)} real images in {time.perf_counter() - start:.2f}s")
    assert data.images.shape == (200, 3, 32, 32)
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and len(data.classes) == 10
    assert np.bincount(data.labels, minlength=10).tolist() == [20] * 10
    pixels = data.images.astype(np.float64) / 255.0
    mean = pixels.mean(axis=(0, 2, 3))
    std = pixels.std(axis=(0, 2, 3))
    assert np.all(np.abs(mean - [0.49, 0.48, 0.45]) < 0.08), mean
    assert np.all((std > 0.15) & (std < 0.35)), std
    assert len({img.tobytes() for img in data.images}) == 200  # no duplicated decodes


def test_a_cifar10_archive_with_missing_classes_is_one_line(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "cifar10-jpg.tar.gz", classes=("cat", "dog"))
    with pytest.raises(DatasetError, match="holds 2 class folders \\(cat, dog\\), expected "
                                           "CIFAR-10's 10") as info:
        load_cifar10_jpg(archive, "train", cache=False)
    assert "\n" not in str(info.value)
    # a generic image archive of two classes is fine
    assert load_image_archive(archive, "train", cache=False).classes == ["cat", "dog"]


def test_the_decoded_cache_is_found_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_archive(data_dir / "cifar10-jpg.tar.gz")
    first = get_dataset("cifar10", split="train", data_dir=data_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("VITNAS_DATA_DIR", raising=False)
    again = get_dataset("cifar10", split="train")
    np.testing.assert_array_equal(again.images, first.images)
    assert get_dataset("cifar10-jpg", split="train").classes == first.classes
    # a split never decoded is still the clear not-found error, as is an explicit data dir
    with pytest.raises(DatasetError, match="CIFAR-10 not found"):
        get_dataset("cifar10", split="test")
    with pytest.raises(DatasetError, match="not found"):
        get_dataset("cifar10", split="train", data_dir=elsewhere)
