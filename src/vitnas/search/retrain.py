"""Train a found architecture from scratch with the shared recipe (``vitnas.train``): the check
that the search's answer is actually good."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vitnas.device import check_device
from vitnas.errors import ConfigError
from vitnas.spaces.base import SearchSpace
from vitnas.train import TrainConfig, TrainResult, evaluate, evaluate_segmentation, train_model


def train_architecture(
    space: SearchSpace,
    arch: Any,
    dataset: str = "cifar10",
    config: TrainConfig | None = None,
    train_per_class: int | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    progress: bool = False,
    status: Callable[[str], None] | None = None,
    dataset_options: dict[str, Any] | None = None,
    state_path: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Build ``arch`` with ``config.seed``, train it on the dataset's train split (the first
    ``train_per_class`` images per class, if given) and report top-1 on its test split.
    ``status`` hears the phases a progress bar does not show (loading, the test pass).
    ``state_path`` / ``resume``: the per-epoch training state, as in ``train_model``."""
    say = status or (lambda message: None)
    from vitnas.data import training_splits
    from vitnas.data.datasets import check_training_options
    from vitnas.data.segmentation import get_segmentation_dataset, is_segmentation_dataset

    config = config or TrainConfig()
    config.check()
    check_device(device)
    if train_per_class is not None and train_per_class < 1:
        raise ConfigError(f"train_per_class must be >= 1 (or unset for all images), got "
                          f"{train_per_class}")
    dense = is_segmentation_dataset(dataset)
    if not dense:  # refused before a line that says the data is loading
        check_training_options(dataset_options or {}, train_per_class)
    say(f"loading {dataset}")
    if dense:
        if train_per_class:
            raise ConfigError(f"{dataset} is a segmentation dataset: it has no classes per "
                              "image to limit")
        train, test = (get_segmentation_dataset(dataset, split=split, data_dir=data_dir,
                                                **(dataset_options or {}))
                       for split in ("train", "test"))
        if getattr(space, "task", "classification") != "segmentation":
            raise ConfigError(f"{dataset} is a segmentation dataset but {space.name} builds "
                              "classifiers (pass --task segmentation)")
    else:
        train, test = training_splits(dataset, data_dir, train_per_class, dataset_options)
    if train.num_classes != space.num_classes:
        raise ConfigError(f"{dataset} has {train.num_classes} classes but {space.name} builds "
                          f"{space.num_classes}-class heads (pass --num-classes "
                          f"{train.num_classes})")
    if train.channels != space.in_chans:
        raise ConfigError(f"{dataset} has {train.channels} channels but {space.name} expects "
                          f"{space.in_chans} (pass --in-chans {train.channels})")
    model = space.build(arch, seed=config.seed).to(device)
    identity = {"space": space.describe(), "arch": space.to_json(arch),
                "params": space.params(arch), "flops": space.flops(arch), "dataset": dataset,
                "dataset_options": dataset_options or {}, "train_per_class": train_per_class}
    result = train_model(model, train, config, progress=progress, image_size=space.img_size,
                         state_path=state_path, resume=resume, identity=identity)
    if result.resumed_from is not None:
        say(f"resumed at step {result.resumed_from:,} from {state_path}")
    say(f"trained {result.steps:,} steps in {result.seconds:.0f} s; evaluating on the "
        f"{len(test):,} {dataset} test images")
    if dense:
        result.metrics = evaluate_segmentation(model, test, image_size=space.img_size)
    else:
        result.top1 = evaluate(model, test, image_size=space.img_size, progress=progress)
        result.metrics = {"top1": result.top1}
    return result


def train_command(space: SearchSpace, arch_path: str | Path, search_dataset: str | None = None,
                  space_options: Mapping[str, Any] | None = None,
                  dataset_options: str | None = None, data_dir: str | None = None,
                  epochs: float = 10) -> str:
    """The ``vitnas train`` command that trains a search's winner on the task it was searched
    for: the space options the search was given (``--img-size 64`` ...), and for a
    segmentation backbone ``--task segmentation``, its ``--num-classes`` and a segmentation
    dataset (the search's proxy batch source where it is one, else paste-fashion); without
    them the suggestion would build and train a classifier. A proxy batch that is not a
    training set (``gaussian``) gives the task's default dataset."""
    from vitnas.data import list_datasets
    from vitnas.data.segmentation import is_segmentation_dataset

    options = dict(space_options or {})
    dense = getattr(space, "task", "classification") == "segmentation"
    name = (search_dataset or "").strip().lower()
    if dense:
        options.update(task="segmentation", num_classes=space.num_classes)
        dataset = search_dataset if name and is_segmentation_dataset(name) else "paste-fashion"
    else:
        dataset = search_dataset if name in list_datasets() else "cifar10"
    words = ["vitnas", "train", space.name, str(arch_path), "--dataset", dataset]
    if dataset_options and dataset == search_dataset:
        words += ["--dataset-options", dataset_options]
    for key, value in options.items():
        words += [f"--{key.replace('_', '-')}", str(value)]
    if data_dir:
        words += ["--data-dir", str(data_dir)]
    words += ["--epochs", f"{epochs:g}"]
    return " ".join(shlex.quote(w) for w in words)
