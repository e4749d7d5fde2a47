"""The scale-varied pasted-object classification task (``scaled-fashion``)."""

import math

import numpy as np
import pytest
import torch

from conftest import require_shared_file
from vitnas.cli import main
from vitnas.data import get_dataset
from vitnas.data.scaled import ScaledRecipe, object_side, scaled_objects, scaled_scenes
from vitnas.errors import ConfigError


def square_objects(classes=10, per_class=3):
    """Grey objects whose filled width says their class (class c: a bar 3 + 2c px wide)."""
    objects = np.zeros((classes * per_class, 28, 28), dtype=np.uint8)
    labels = np.arange(classes * per_class) % classes
    for i, c in enumerate(labels):
        objects[i, 2:26, 2:5 + 2 * c] = 255
    return objects, labels


@pytest.fixture
def fake_sources(monkeypatch, tmp_path):
    """Tiny generated CIFAR-10 scenes and objects instead of the real files."""
    from vitnas.data import ArrayDataset

    monkeypatch.setenv("VITNAS_CACHE_DIR", str(tmp_path / "cache"))
    objects, labels = square_objects()
    real = get_dataset

    def fake(name, split="train", data_dir=None, **kwargs):
        if name == "cifar10":
            rng = np.random.default_rng(0 if split == "train" else 1)
            return ArrayDataset(rng.integers(0, 40, (20, 3, 32, 32), dtype=np.uint8),
                                np.arange(20) % 10)
        if name == "fashion-mnist":
            return ArrayDataset(objects[:, None], labels)
        return real(name, split, data_dir, **kwargs)

    monkeypatch.setattr("vitnas.data.datasets.get_dataset", fake)
    return tmp_path


def test_sides_follow_the_scale_law_from_a_few_pixels_to_the_full_frame():
    rng = np.random.default_rng(0)
    log = np.array([object_side(ScaledRecipe(), rng) for _ in range(4000)])
    assert log.min() == 6 and log.max() == 64
    # log-uniform: as many objects below the geometric middle of [6, 65) as above it
    assert abs((log < math.sqrt(6 * 65)).mean() - 0.5) < 0.03
    uniform = np.array([object_side(ScaledRecipe(scale_law="uniform"), rng)
                        for _ in range(4000)])
    assert abs(uniform.mean() - 35.0) < 1.0 and uniform.min() == 6 and uniform.max() == 64
    with pytest.raises(ConfigError, match="scale_law"):
        ScaledRecipe(scale_law="linear").check()
    with pytest.raises(ConfigError, match="under 2 pixels"):
        ScaledRecipe(min_scale=0.01).check()


def test_each_scene_shows_one_object_of_its_label_at_its_drawn_size():
    objects, labels = square_objects()
    backgrounds = np.zeros((5, 3, 32, 32), dtype=np.uint8)  # black scenes: the object shows
    images, scene_labels, sides = scaled_scenes(backgrounds, objects, labels, 40,
                                                ScaledRecipe(size=64, min_scale=0.5))
    assert images.shape == (40, 3, 64, 64) and scene_labels.tolist() == [i % 10 for i in
                                                                           range(40)]
    for image, label, side in zip(images, scene_labels, sides):
        rows, cols = np.nonzero(image.max(axis=0))
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert height <= side and abs(height - side * 24 / 28) <= 2  # the bar's height
        assert width == pytest.approx(side * (3 + 2 * label) / 28, abs=2)  # its class's width


def test_classes_are_balanced_and_a_smaller_set_is_the_start_of_a_larger_one(fake_sources):
    small = scaled_objects("train", limit_per_class=2)
    large = scaled_objects("train", n=50, cache=False)
    assert torch.bincount(small.labels).tolist() == [2] * 10
    assert torch.equal(small.images, large.images[:20])
    assert torch.equal(small.object_sides, large.object_sides[:20])
    again = scaled_objects("train", limit_per_class=2)  # from the cache
    assert torch.equal(small.images, again.images)
    assert len(list((fake_sources / "cache" / "scaled").glob("*.npz"))) == 1
    test = scaled_objects("test", limit_per_class=2)
    assert not torch.equal(small.images, test.images)  # other scenes, not a copy


def test_registered_as_a_64_px_classification_dataset(fake_sources):
    data = get_dataset("scaled-fashion", split="test", limit_per_class=3)
    assert data.image_shape == (3, 64, 64) and data.num_classes == 10 and len(data) == 30
    assert data.classes[0] == "T-shirt/top" and data.mean[0] == pytest.approx(0.4914, abs=1e-3)
    with pytest.raises(ConfigError, match="min_scale"):
        get_dataset("scaled-fashion", split="test", limit_per_class=1, min_scale=2.0)


def test_revit_trains_and_labels_on_the_scaled_task_at_64_px(fake_sources, monkeypatch, capsys):
    from vitnas.revit import pipeline

    real = pipeline._dataset
    monkeypatch.setattr(pipeline, "_dataset", lambda name, split, data_dir, per_class:
                        real(name, split, data_dir, per_class or 5))  # a 50-image test split
    revit, labels = fake_sources / "revit.pt", fake_sources / "labels.pt"
    assert main(["revit", "train", "--dataset", "scaled-fashion", "--img-size", "64",
                 "--patch-size", "8", "--embed-dim", "16", "--depth", "1", "--num-heads", "2",
                 "--train-per-class", "12", "--holdout-per-class", "4", "--epochs", "1",
                 "--batch-size", "40", "--threads", "1", "--quiet", "--out", str(revit)]) == 0
    assert "16 tokens" in capsys.readouterr().out  # 64 px, patch 8: 4x4, 6x6, 8x8 tokens
    assert main(["revit", "label", str(revit), "--out", str(labels), "--threads", "1"]) == 0
    payload = torch.load(labels, weights_only=True)
    assert payload["logits"].shape == (3, 40, 10)
    assert payload["meta"]["dataset"] == "scaled-fashion"


def test_the_real_task_builds_from_the_shared_files():
    require_shared_file("fashion-mnist")
    require_shared_file("cifar10-jpg.tar.gz")
    data = get_dataset("scaled-fashion", split="test", limit_per_class=2)
    assert data.image_shape == (3, 64, 64) and torch.bincount(data.labels).tolist() == [2] * 10
    assert int(data.object_sides.min()) >= 6 and int(data.object_sides.max()) <= 64
