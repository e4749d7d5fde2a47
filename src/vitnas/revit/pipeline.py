"""The four steps of the adaptive-token-length pipeline, one function each (the CLI's
``vitnas revit train | label | train-tla | eval``), passing files between them.

1. :func:`train_step`: train a ReViT on the training split minus the images its
   :class:`SplitSpec` leaves unseen (a held-out set, or one fold of k).
2. :func:`label_step`: each ReViT labels the images it never saw (several fold models give
   out-of-fold labels for the whole pool); the label is the smallest correct token length.
3. :func:`assigner_step`: train the TLA on the labelled pool and calibrate the TLA's threshold
   and the cascade's on cross-fitted predictions over that pool, for at most ``max_loss``
   points below the full length's accuracy there.
4. :func:`eval_step`: every policy on the test split, in one run (:mod:`vitnas.revit.evaluate`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vitnas.data import Normalize, get_dataset
from vitnas.device import check_device
from vitnas.errors import ConfigError
from vitnas.revit import artifacts
from vitnas.revit.assigner import (
    AssignerConfig,
    TokenLengthAssigner,
    thresholds_grid,
    train_assigner,
)
from vitnas.revit.evaluate import (
    CASCADE_GRID,
    ReViTEvaluation,
    assigner_logits,
    calibrate,
    cascade_point,
    evaluate_revit,
    markdown_table,
    plot,
    tla_point,
)
from vitnas.revit.inference import lengths_flops
from vitnas.revit.labels import correct_by_length, label_histogram, token_length_labels
from vitnas.revit.model import ReViTConfig, build_revit
from vitnas.revit.training import SplitSpec, predict_lengths, subset, train_revit
from vitnas.train import TrainConfig


def _dataset(name: str, split: str, data_dir: str | None, per_class: int | None):
    options = {"limit_per_class": per_class} if per_class else {}
    return get_dataset(name, split=split, data_dir=data_dir, **options)


def _normalised(dataset, indices: torch.Tensor | None = None) -> torch.Tensor:
    images = dataset.images if indices is None else dataset.images[indices]
    return Normalize(dataset.mean, dataset.std)(images.float().div_(255.0))


def train_step(
    config: ReViTConfig,
    out: str | Path,
    dataset: str = "cifar10",
    train_config: TrainConfig | None = None,
    mode: str = "distill",
    split: SplitSpec | None = None,
    train_per_class: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Train and save a ReViT; returns the checkpoint's metadata (top-1 per length on test)."""
    train_config = train_config or TrainConfig()
    train_config.check()
    check_device(device)
    if train_per_class is not None and train_per_class < 1:
        raise ConfigError(f"train_per_class must be >= 1 (or unset for all images), got "
                          f"{train_per_class}")
    split = split or SplitSpec()
    train_set = _dataset(dataset, "train", data_dir, train_per_class)
    test_set = _dataset(dataset, "test", data_dir, None)
    if train_set.image_shape[-1] != config.img_size or train_set.num_classes != config.num_classes:
        raise ConfigError(f"{dataset} has {train_set.image_shape[-1]} px images and "
                          f"{train_set.num_classes} classes; the ReViT config says "
                          f"{config.img_size} px and {config.num_classes} classes")
    seen = split.seen(train_set.labels)
    model = build_revit(config, seed=train_config.seed).to(device)
    result = train_revit(model, subset(train_set, seen), train_config, mode, test_set, progress)
    meta = {
        "dataset": dataset, "train_per_class": train_per_class, "split": split.as_dict(),
        "train_images": len(seen), "recipe": {**vars(train_config), "mode": mode},
        "seconds": round(result.seconds, 1), "steps": result.steps,
        "final_loss": round(result.final_loss, 4), "test_top1": result.top1,
        "threads": torch.get_num_threads(), "device": device, "lengths": model.describe(),
    }
    artifacts.save_revit(out, model, config, meta)
    return meta


def label_step(models: Sequence[str | Path], out: str | Path, policy: str = "largest",
               data_dir: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Label every training image that one of ``models`` did not train on."""
    if not models:
        raise ConfigError("label needs at least one ReViT checkpoint")
    pool_indices, pool_logits, lengths, source, train_set = [], [], None, None, None
    for path in models:
        model, config, meta = artifacts.load_revit(path)
        key = (meta["dataset"], meta["train_per_class"])
        if source not in (None, key) or lengths not in (None, config.lengths()):
            raise ConfigError(f"{path}: trained on other data or token lengths than "
                              f"{models[0]}")
        source, lengths = key, config.lengths()
        if train_set is None:  # every model shares it (checked above): load it once
            train_set = _dataset(meta["dataset"], "train", data_dir, meta["train_per_class"])
        unseen = SplitSpec(**meta["split"]).unseen(train_set.labels)
        pool_indices.append(unseen)
        pool_logits.append(predict_lengths(model, subset(train_set, unseen), batch_size))
    indices = torch.cat(pool_indices)
    if len(torch.unique(indices)) != len(indices):
        raise ConfigError("the checkpoints' unseen images overlap; give one holdout model or "
                          "the k models of one fold split")
    order = torch.argsort(indices)
    indices, logits = indices[order], torch.cat(pool_logits, dim=1)[:, order]
    targets = train_set.labels[indices]
    correct = correct_by_length(logits, targets)
    labels = token_length_labels(correct, policy)
    summary = {
        "dataset": source[0], "train_per_class": source[1], "policy": policy,
        "models": [str(p) for p in models], "images": len(indices),
        "lengths": [length.as_dict() for length in lengths],
        "accuracy_by_length": [round(100.0 * float(c.float().mean()), 2) for c in correct],
        "none_correct": int((~correct.any(0)).sum()),
        "histogram": label_histogram(labels, len(lengths)),
    }
    artifacts.save_labels(out, {"indices": indices, "logits": logits.half(),
                                "targets": targets, "labels": labels, "meta": summary})
    return summary


def _fresh_assigner(config: AssignerConfig, seed: int) -> TokenLengthAssigner:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TokenLengthAssigner(config)


def assigner_step(
    labels_path: str | Path,
    revit_path: str | Path,
    out: str | Path,
    input_size: int = 16,
    widths: tuple[int, ...] = (16, 32, 64),
    epochs: int = 30,
    folds: int = 5,
    max_loss: float = 1.0,
    balance: bool = False,
    seed: int = 0,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Train the TLA on every labelled image and calibrate both adaptive policies.

    Calibration needs assigner predictions on images the assigner did not train on, so it is
    cross-fitted: ``folds`` assigners, each trained on the other folds, predict their own fold,
    and the knobs are chosen on those out-of-fold predictions over the whole labelled pool (a
    single 20% validation split was too noisy to hold a 1-point accuracy budget). The deployed
    assigner is then trained on all labelled images. The ReViT to deploy (``revit_path``) gives
    the per-length FLOPs the calibration minimises.
    """
    if folds < 2:
        raise ConfigError(f"calibration needs folds >= 2, got {folds}")
    payload = artifacts.load_labels(labels_path)
    meta = payload["meta"]
    train_set = _dataset(meta["dataset"], "train", data_dir, meta["train_per_class"])
    indices, labels, targets = payload["indices"], payload["labels"], payload["targets"]
    logits = payload["logits"].float()
    count = logits.shape[0]
    config = AssignerConfig(num_lengths=count, input_size=input_size, widths=tuple(widths),
                            in_chans=train_set.channels)
    model, _, _ = artifacts.load_revit(revit_path)
    if model.num_lengths != count:
        raise ConfigError(f"{revit_path} has {model.num_lengths} token lengths, the labels "
                          f"{count}")
    images = _normalised(train_set, indices)

    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    out_of_fold = torch.empty(len(indices), count)
    for part in torch.tensor_split(order, folds):
        keep = torch.ones(len(indices), dtype=torch.bool)
        keep[part] = False
        helper = _fresh_assigner(config, seed)
        train_assigner(helper, images[keep], labels[keep], epochs=epochs, balance=balance,
                       seed=seed)
        out_of_fold[part] = assigner_logits(helper, images[part])
    assigner = _fresh_assigner(config, seed)
    fit_result = train_assigner(assigner, images, labels, epochs=epochs, balance=balance,
                                seed=seed)

    costs = lengths_flops(model)
    correct = correct_by_length(logits, targets)
    full = round(100.0 * float(correct[-1].float().mean()), 2)
    tla_points = [tla_point(t, out_of_fold, correct, costs, assigner.flops())
                  for t in (None, *thresholds_grid())]
    cascade_points = [cascade_point(t, logits, correct, costs) for t in CASCADE_GRID]
    tla_choice = calibrate(tla_points, full, max_loss)
    cascade_choice = calibrate(cascade_points, full, max_loss)
    calibration = {
        "images": len(indices), "folds": folds, "full_length_accuracy": full,
        "max_loss": max_loss, "tla_threshold": tla_choice.knob, "tla": tla_choice.as_dict(),
        "cascade_threshold": cascade_choice.knob, "cascade": cascade_choice.as_dict(),
    }
    labelled = labels >= 0
    hits = (out_of_fold.argmax(-1) == labels)[labelled]
    summary = {
        "labels": str(labels_path), "revit": str(revit_path), "images": len(indices),
        "epochs": epochs, "balance": balance, "seed": seed,
        "seconds": round(fit_result.seconds, 1), "fit_accuracy": fit_result.train_accuracy,
        "out_of_fold_accuracy": round(100.0 * float(hits.float().mean()), 2),
        "flops": assigner.flops(), "calibration": calibration,
        "label_histogram": label_histogram(labels, count),
    }
    artifacts.save_assigner(out, assigner, summary)
    return summary


def eval_step(
    revit_path: str | Path,
    assigner_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | None = None,
    batch_size: int = 256,
    repeats: int = 3,
    test_limit: int | None = None,
    tla_threshold: float | None = None,
    cascade_threshold: float | None = None,
    none_correct: str = "largest",
    progress=None,
) -> ReViTEvaluation:
    """Every policy on the test split; writes ``out`` (.json) with a .md table and a .png."""
    model, _, meta = artifacts.load_revit(revit_path)
    assigner, assigner_meta = artifacts.load_assigner(assigner_path)
    if assigner.config.num_lengths != model.num_lengths:
        raise ConfigError(f"{assigner_path} assigns {assigner.config.num_lengths} lengths, "
                          f"{revit_path} has {model.num_lengths}")
    calibration = assigner_meta.get("calibration", {})
    if tla_threshold is None:
        tla_threshold = calibration.get("tla_threshold")
    if cascade_threshold is None:
        cascade_threshold = calibration.get("cascade_threshold", 0.9)
    test_set = _dataset(meta["dataset"], "test", data_dir, test_limit)
    images = _normalised(test_set)
    start = time.perf_counter()
    evaluation = evaluate_revit(model, assigner, images, test_set.labels, tla_threshold,
                                cascade_threshold, batch_size, repeats, none_correct,
                                calibration, progress)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {"revit": str(revit_path), "assigner": str(assigner_path),
                  "revit_meta": meta, "assigner_meta": assigner_meta,
                  "seconds": round(time.perf_counter() - start, 1), **evaluation.as_dict()}
        out.write_text(json.dumps(record, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown_table(evaluation) + "\n")
        plot(evaluation, str(out.with_suffix(".png")))
    return evaluation
