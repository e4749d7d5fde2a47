"""Bad dataset options are one ConfigError line naming the option, before any data is made:
never a numpy traceback, a run on terabytes of images, or a "false" read as true."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vitnas.data import ArrayDataset, SyntheticDataset, get_dataset, training_splits
from vitnas.data import datasets as datasets_module
from vitnas.data.segmentation import get_segmentation_dataset
from vitnas.errors import ConfigError


@pytest.fixture
def flagged_dataset(monkeypatch):
    """A registered dataset with a true/false option and a per-class limit, which records the
    options it was called with (no files, nothing cached)."""
    calls: list[dict] = []

    def factory(split, data_dir, *, cache: bool = True, limit_per_class: int | None = None):
        calls.append({"split": split, "cache": cache, "limit_per_class": limit_per_class})
        per_class = limit_per_class or 5
        labels = np.repeat(np.arange(2), per_class)
        return ArrayDataset(np.zeros((len(labels), 1, 4, 4), np.uint8), labels, ["a", "b"])

    monkeypatch.setitem(datasets_module._REGISTRY, "flagged",
                        datasets_module._Entry(factory, "a test dataset"))
    return calls


@pytest.mark.parametrize("options, message", [
    ({"seed": -1}, "option seed must be an integer in 0..2^63-1, got -1"),
    ({"seed": 2**64}, "option seed must be an integer in 0..2^63-1"),
    ({"noise": -1}, "option noise (the noise's standard deviation) must be >= 0, got -1"),
])
def test_synthetic_refuses_a_seed_out_of_range_and_negative_noise(options, message):
    with pytest.raises(ConfigError) as caught:
        get_dataset("synthetic", n=10, **options)
    assert message in str(caught.value)
    with pytest.raises(ConfigError):
        SyntheticDataset(10, **options)


def test_synthetic_refuses_more_images_than_memory_before_making_any():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"option n=1,000,000,000 \(3x32x32 images\) needs at "
                                          r"least [\d,.]+ GiB of memory"):
        get_dataset("synthetic", n=10**9)
    with pytest.raises(ConfigError, match="needs at least"):
        get_dataset("synthetic", n=1, image_size=10**6)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("text, value", [
    ("false", False), ("False", False), ("0", False), (0, False), (False, False),
    ("true", True), ("TRUE", True), ("1", True), (1, True), (True, True),
])
def test_true_false_options_are_read_as_booleans(flagged_dataset, text, value):
    get_dataset("flagged", cache=text)
    assert flagged_dataset[-1]["cache"] is value


@pytest.mark.parametrize("text", ["flase", "no thanks", 2, 0.5, ""])
def test_a_true_false_option_of_another_value_is_named(flagged_dataset, text):
    with pytest.raises(ConfigError, match=f"dataset 'flagged' option cache must be true or false "
                                          f"\\(or 1 or 0\\), got {text!r}"):
        get_dataset("flagged", cache=text)
    assert flagged_dataset == []


def test_a_segmentation_dataset_reads_its_true_false_options_too():
    with pytest.raises(ConfigError, match="option cache must be true or false"):
        get_segmentation_dataset("paste-fashion", n=4, cache="nope")


def test_train_per_class_limits_the_training_split_only(flagged_dataset):
    train, test = training_splits("flagged", train_per_class=2)
    assert (len(train), len(test)) == (4, 10)
    assert [c["limit_per_class"] for c in flagged_dataset] == [2, None]


@pytest.mark.parametrize("train_per_class, message", [
    (None, "--dataset-options limit_per_class=1 would limit the test split too; use "
           "--train-per-class 1 instead"),
    (2, "--dataset-options limit_per_class=1 and --train-per-class 2 both limit the images per "
        "class; give --train-per-class alone"),
])
def test_limit_per_class_as_a_dataset_option_is_refused_for_the_flag(
        flagged_dataset, train_per_class, message):
    with pytest.raises(ConfigError) as caught:
        training_splits("flagged", train_per_class=train_per_class,
                        options={"limit_per_class": 1})
    assert message in str(caught.value) and flagged_dataset == []


def test_a_dataset_without_a_per_class_limit_names_the_flag():
    with pytest.raises(ConfigError, match="dataset 'synthetic' cannot limit the images per "
                                          "class: leave out --train-per-class"):
        training_splits("synthetic", train_per_class=2, options={"n": 20})


def test_imagefolder_without_a_path_says_how_to_give_one():
    with pytest.raises(ConfigError, match="given as --dataset-options path=DIR; a command "
                                          "without --dataset-options cannot read"):
        get_dataset("imagefolder")
