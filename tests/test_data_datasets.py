"""ArrayDataset, SyntheticDataset, ImageFolder and the named-dataset registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitnas.data import (
    ArrayDataset,
    ImageFolder,
    Normalize,
    SyntheticDataset,
    get_dataset,
    list_datasets,
)
from vitnas.errors import ConfigError, DatasetError


def test_array_dataset_returns_float_images_in_unit_range_and_int_labels() -> None:
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2) * 10
    ds = ArrayDataset(images, [1, 0], ["a", "b"])
    x, y = ds[0]
    assert x.dtype == torch.float32 and y == 1 and isinstance(y, int)
    torch.testing.assert_close(x, images[0].float() / 255)
    assert (len(ds), ds.num_classes, ds.channels, ds.image_size) == (2, 2, 3, 2)


def test_array_dataset_applies_its_per_sample_transform() -> None:
    ds = ArrayDataset(np.full((1, 1, 2, 2), 255, np.uint8), [0], transform=lambda x: x * 2)
    assert torch.all(ds[0][0] == 2.0)


def test_array_dataset_computes_missing_normalisation_constants() -> None:
    images = np.zeros((4, 2, 3, 3), dtype=np.uint8)
    images[:, 1] = 255
    images[:2, 0] = 255
    ds = ArrayDataset(images, [0, 1, 0, 1])
    assert ds.mean == pytest.approx((0.5, 1.0))
    assert ds.std[0] == pytest.approx(0.5)


def test_array_dataset_rejects_bad_arrays() -> None:
    with pytest.raises(DatasetError, match="uint8"):
        ArrayDataset(np.zeros((2, 3, 4, 4), np.float32), [0, 1])
    with pytest.raises(DatasetError, match="2 labels for 3 images"):
        ArrayDataset(np.zeros((3, 3, 4, 4), np.uint8), [0, 1])
    with pytest.raises(DatasetError, match="out of range"):
        ArrayDataset(np.zeros((2, 3, 4, 4), np.uint8), [0, 2], ["a", "b"])


def test_subset_keeps_classes_and_statistics() -> None:
    ds = SyntheticDataset(50, num_classes=5)
    sub = ds.subset([3, 1])
    assert len(sub) == 2 and sub.classes == ds.classes and sub.mean == ds.mean
    assert torch.equal(sub.images[0], ds.images[3])


def test_synthetic_data_is_deterministic_per_seed() -> None:
    a, b, c = SyntheticDataset(64, seed=3), SyntheticDataset(64, seed=3), SyntheticDataset(64)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (64, 3, 32, 32) and a.labels.bincount().tolist() == [7] * 4 + [6] * 6


def test_synthetic_data_is_learnable_from_train_to_test() -> None:
    train = SyntheticDataset(200, num_classes=10, image_size=16, seed=1)
    test = SyntheticDataset(100, num_classes=10, image_size=16, seed=1, split="test")
    assert not torch.equal(train.images[:100], test.images)
    flat = train.images.flatten(1).float()
    centroids = torch.stack([flat[train.labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(test.images.flatten(1).float(), centroids).argmin(1)
    accuracy = (predicted == test.labels).float().mean().item()
    assert accuracy > 0.9  # chance is 0.1


def _save(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _make_folder(root: Path) -> None:
    _save(root / "zebra" / "b.png", (0, 0, 255))
    _save(root / "zebra" / "a.png", (0, 255, 0))
    _save(root / "ant" / "x.jpg", (255, 0, 0))
    _save(root / "ant" / "nested" / "y.bmp", (255, 255, 255))
    (root / "ant" / "notes.txt").write_text("not an image")


def test_image_folder_lists_sorted_classes_and_decodes_lazily(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["ant", "zebra"] and len(ds) == 4
    assert ds.labels.tolist() == [0, 0, 1, 1]
    assert [p.name for p in ds.files] == ["y.bmp", "x.jpg", "a.png", "b.png"]
    x, y = ds[2]
    assert y == 1 and x.shape == (3, 6, 8)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert ds.image_size == (6, 8) and ds.num_classes == 2 and len(ds.mean) == 3


def test_image_folder_resizes_and_converts_to_grayscale(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    ds = ImageFolder(tmp_path, size=4, channels=1)
    x, _ = ds[0]
    assert x.shape == (1, 4, 4) and ds.image_size == 4
    assert ds.to_array_dataset().images.shape == (4, 1, 4, 4)


def test_image_folder_names_a_corrupt_image(tmp_path: Path) -> None:
    _make_folder(tmp_path)
    bad = tmp_path / "zebra" / "c.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    ds = ImageFolder(tmp_path)
    with pytest.raises(DatasetError) as exc:
        ds[len(ds) - 1]
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_image_folder_names_a_truncated_png(tmp_path: Path) -> None:
    _save(tmp_path / "a" / "ok.png", (1, 2, 3), size=(64, 64))
    bad = tmp_path / "a" / "z.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:200])
    ds = ImageFolder(tmp_path)
    assert ds[0][0].shape == (3, 64, 64)  # the intact image still decodes
    with pytest.raises(DatasetError, match="cannot decode") as exc:
        ds[1]
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_image_folder_requires_equal_sizes_unless_resizing(tmp_path: Path) -> None:
    _save(tmp_path / "a" / "1.png", (0, 0, 0), size=(4, 4))
    _save(tmp_path / "a" / "2.png", (0, 0, 0), size=(5, 4))
    ds = ImageFolder(tmp_path)
    ds[0]
    with pytest.raises(DatasetError, match="pass size="):
        ds[1]
    assert ImageFolder(tmp_path, size=(3, 2))[1][0].shape == (3, 3, 2)


def test_image_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        ImageFolder(tmp_path)


def test_registry_lists_all_named_datasets() -> None:
    assert set(list_datasets()) == {
        "cifar10",
        "cifar10-jpg",
        "cifar100",
        "mnist",
        "fashion-mnist",
        "synthetic",
        "imagefolder",
        "scaled-fashion",
    }


def test_unknown_dataset_name_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="cifar10.*synthetic"):
        get_dataset("imagenet-1k")


def test_unknown_option_and_split_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not take option"):
        get_dataset("synthetic", colour="blue")
    with pytest.raises(ConfigError, match="unknown split"):
        get_dataset("synthetic", split="validation")


def test_registry_synthetic_exposes_dataset_properties() -> None:
    ds = get_dataset("synthetic", split="test", n=30, num_classes=3, image_size=8, channels=1)
    assert (len(ds), ds.num_classes, ds.image_size, ds.channels) == (30, 3, 8, 1)
    assert len(ds.mean) == 1 and len(ds.std) == 1
    assert Normalize.for_dataset(ds)(ds.images.float() / 255).mean().abs() < 0.2


def test_registry_imagefolder_needs_a_path_and_uses_split_subfolders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="path="):
        get_dataset("imagefolder")
    _make_folder(tmp_path / "test")
    ds = get_dataset("imagefolder", split="test", path=tmp_path, size=8)
    assert isinstance(ds, ImageFolder) and ds.classes == ["ant", "zebra"] and ds.image_size == 8


def test_missing_dataset_files_are_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        get_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="mnist"):
        get_dataset("mnist", data_dir=tmp_path)
