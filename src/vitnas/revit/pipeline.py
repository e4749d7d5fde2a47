"""The four steps of the adaptive-token-length pipeline, one function each (the CLI's
``vitnas revit train | label | train-tla | eval``), passing files between them.

1. :func:`train_step`: train a ReViT on the training split minus the images its
   :class:`SplitSpec` leaves unseen (a held-out set, or one fold of k).
2. :func:`label_step`: each ReViT labels the images it never saw (several fold models give
   out-of-fold labels for the whole pool); the label is the smallest correct token length.
3. :func:`assigner_step`: train the TLA on the labelled pool and calibrate the TLA's threshold
   and the cascade's on cross-fitted predictions over that pool, for at most ``max_loss``
   points below the full length's accuracy there.
4. :func:`eval_step`: every policy and the simple peers (their thresholds chosen on the
   labelled pool) on the test split, timed in interleaved rounds (:mod:`vitnas.revit.evaluate`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vitnas.checkpoint import state_path_for
from vitnas.data import Normalize, get_dataset
from vitnas.device import check_device, check_fits
from vitnas.errors import ConfigError
from vitnas.paths import check_writable
from vitnas.revit import artifacts
from vitnas.revit.assigner import (
    AssignerConfig,
    TokenLengthAssigner,
    assigner_bytes,
    fit_platt,
    knob_grid,
    sample_weights,
    soft_targets,
    train_assigner,
)
from vitnas.revit.evaluate import (
    CASCADE_GRID,
    DEFAULT_REPEATS,
    TOME_RATES,
    Pool,
    ReViTEvaluation,
    assigned_point,
    assigner_inputs,
    assigner_logits,
    calibrate,
    cascade_point,
    comparison_lines,
    evaluate_revit,
    markdown_table,
    plot,
    routed_point,
)
from vitnas.revit.inference import lengths_flops
from vitnas.revit.labels import correct_by_length, label_histogram, token_length_labels
from vitnas.revit.metrics import label_report, mixture_frontier, ratio_at_equal_accuracy
from vitnas.revit.model import (
    ResizableViT,
    ReViTConfig,
    build_revit,
    training_bytes,
    with_grids,
)
from vitnas.revit.tome import check_rates, tome_flops, tome_logits
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
    resume: bool = False,
    init_from: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train and save a ReViT; returns the checkpoint's metadata (top-1 per length on test).

    The training state is saved after every epoch to :func:`state_path_for` ``(out)``;
    ``resume`` continues from it (see :func:`vitnas.revit.training.fit_resumable`).
    ``init_from`` starts from another ReViT checkpoint's weights (same shape, same unseen
    images, so its labels stay clean) with a fresh optimizer and schedule: a warm start.
    """
    train_config = train_config or TrainConfig()
    train_config.check()
    if 10 * train_config.lr > torch.finfo(torch.float32).max:  # AdamW's first step: lr / 0.1
        raise ConfigError(f"learning rate {train_config.lr:g} overflows the float32 weights' "
                          f"AdamW steps (at most 3.4e37); use a learning rate like 1e-3")
    config.check_lengths()  # a bad token-length grid fails before any data loads
    check_device(device)
    check_fits(training_bytes(config, train_config.batch_size),
               f"a ReViT of depth {config.depth} and width {config.embed_dim} trained at "
               f"batch size {train_config.batch_size}", device)
    if train_per_class is not None and train_per_class < 1:
        raise ConfigError(f"train_per_class must be >= 1 (or unset for all images), got "
                          f"{train_per_class}")
    split = split or SplitSpec()
    train_set = _dataset(dataset, "train", data_dir, train_per_class)
    test_set = _dataset(dataset, "test", data_dir, None)
    if (train_set.image_shape[-1] != config.img_size or train_set.num_classes != config.num_classes
            or train_set.channels != config.in_chans):
        raise ConfigError(f"{dataset} has {train_set.image_shape[-1]} px images with "
                          f"{train_set.channels} channels and {train_set.num_classes} classes; "
                          f"the ReViT config says {config.img_size} px, {config.in_chans} "
                          f"channels and {config.num_classes} classes")
    seen = split.seen(train_set.labels)
    model = build_revit(config, seed=train_config.seed).to(device)
    init = None
    if init_from is not None:
        start, start_config, start_meta = artifacts.load_revit(init_from)
        if replace(start_config, route=config.route, fractions=config.fractions,
                   grids=config.grids, space=config.space, arch=config.arch) != config:
            raise ConfigError(f"{init_from}: its ViT shape differs from this run's; --init-from "
                              f"needs the same embed dim, depth, heads, MLP ratios and patch")
        if (start_meta.get("dataset"), start_meta.get("train_per_class"),
                start_meta.get("split")) != (dataset, train_per_class, split.as_dict()):
            raise ConfigError(f"{init_from}: trained on other data or another split; its "
                              f"held-out images would not be unseen")
        model.load_state_dict(start.state_dict())
        init = {"path": str(init_from), "recipe": start_meta.get("recipe"),
                "test_top1": start_meta.get("test_top1")}
    identity = {"config": config.as_dict(), "recipe": vars(train_config), "dataset": dataset,
                "train_per_class": train_per_class, "split": split.as_dict(), "init_from": init}
    result = train_revit(model, subset(train_set, seen), train_config, mode, test_set, progress,
                         state_path_for(out), resume, identity)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise ConfigError(f"training diverged: the weights are not finite after {result.steps} "
                          f"steps (final loss {result.final_loss}); {out} not written; lower "
                          f"--lr (now {train_config.lr:g})")
    meta = {
        "dataset": dataset, "train_per_class": train_per_class, "split": split.as_dict(),
        "train_images": len(seen), "recipe": {**vars(train_config), "mode": mode},
        "init_from": init, "resumed_from_step": result.resumed_from,
        "seconds": round(result.seconds, 1), "steps": result.steps,
        "final_loss": round(result.final_loss, 4), "epoch_losses": result.epoch_losses,
        "test_top1": result.top1,
        "threads": torch.get_num_threads(), "device": device, "lengths": model.describe(),
        "command": command,
    }
    artifacts.save_revit(out, model, config, meta)
    return meta


def check_fold_set(models: Sequence[str | Path], splits: Sequence[SplitSpec]) -> None:
    """Refuse fold models that are not one whole fold split (the same k and split seed, each
    fold once): a missing fold would leave its images out of the pool without a word."""
    folds = [(path, split) for path, split in zip(models, splits) if split.kind == "fold"]
    if not folds:
        return
    if len(folds) != len(models):
        holdout = next(path for path, split in zip(models, splits) if split.kind != "fold")
        raise ConfigError(f"{holdout} kept a holdout unseen, {folds[0][0]} a fold; give one "
                          f"holdout model or the k models of one fold split")
    first_path, first = folds[0]
    for path, split in folds[1:]:
        if (split.folds, split.seed) != (first.folds, first.seed):
            raise ConfigError(f"{path} is fold {split.fold}/{split.folds} of split seed "
                              f"{split.seed}, {first_path} fold {first.fold}/{first.folds} of "
                              f"split seed {first.seed}; give the k models of one fold split "
                              f"(the same --fold k and --split-seed)")
    given: dict[int, list[str]] = {}
    for path, split in folds:
        given.setdefault(split.fold, []).append(str(path))
    for fold, paths in sorted(given.items()):
        if len(paths) > 1:
            raise ConfigError(f"fold {fold}/{first.folds} is given {len(paths)} times "
                              f"({', '.join(paths)}): the checkpoints' unseen images overlap")
    missing = [fold for fold in range(first.folds) if fold not in given]
    if missing:
        raise ConfigError(f"out-of-fold labels need all {first.folds} folds of split seed "
                          f"{first.seed}; fold(s) {', '.join(map(str, missing))} missing (given "
                          f"{', '.join(f'{p} = fold {s.fold}' for p, s in folds)}); train "
                          f"them with --fold i/{first.folds} --split-seed {first.seed}")


def label_step(models: Sequence[str | Path], out: str | Path, policy: str = "largest",
               data_dir: str | None = None, batch_size: int = 256,
               command: str | None = None) -> dict[str, Any]:
    """Label every training image that one of ``models`` did not train on."""
    if not models:
        raise ConfigError("label needs at least one ReViT checkpoint")
    loaded, lengths, source = [], None, None
    for path in models:
        model, config, meta = artifacts.load_revit(path)
        key = (meta["dataset"], meta["train_per_class"])
        if source not in (None, key) or lengths not in (None, config.lengths()):
            raise ConfigError(f"{path}: trained on other data or token lengths than "
                              f"{models[0]}")
        source, lengths = key, config.lengths()
        loaded.append((model, SplitSpec(**meta["split"])))
    check_fold_set(models, [split for _, split in loaded])  # before any image is predicted
    train_set = _dataset(source[0], "train", data_dir, source[1])  # every model's (above)
    pool_indices, pool_logits = [], []
    for model, split in loaded:
        unseen = split.unseen(train_set.labels)
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
        "models": [artifacts.shown_path(p) for p in models],
        "model_digests": [artifacts.model_identity(model) for model, _ in loaded],
        "images": len(indices),
        "lengths": [length.as_dict() for length in lengths],
        "accuracy_by_length": [round(100.0 * float(c.float().mean()), 2) for c in correct],
        "none_correct": int((~correct.any(0)).sum()),
        "histogram": label_histogram(labels, len(lengths)), "command": command,
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
    out: str | Path | None,
    input_size: int = 16,
    widths: tuple[int, ...] = (16, 32, 64),
    epochs: int = 30,
    folds: int = 5,
    max_loss: float = 1.0,
    weighting: str = "none",
    seed: int = 0,
    data_dir: str | None = None,
    target: str = "hard",
    features: str = "pixels",
    temperature: float = 1.0,
    resamples: int = 1000,
    command: str | None = None,
    status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the TLA on every labelled image, calibrate both adaptive policies, and report
    whether the assigner learned more than the label prior. ``status`` hears each fold (the
    cross-fitting is minutes of silence otherwise).

    Calibration needs assigner predictions on images the assigner did not train on, so it is
    cross-fitted: ``folds`` assigners, each trained on the other folds, predict their own fold,
    and the knobs (and, for per-length heads, the Platt scaling) are chosen on those
    out-of-fold predictions over the whole labelled pool (a single 20% validation split was too
    noisy to hold a 1-point accuracy budget). The same predictions give the out-of-fold label
    accuracy against the majority-label prior and the ROC AUC of "needs more tokens", both with
    bootstrap intervals (``resamples``), and the FLOPs ratio against the fixed-length curve at
    equal accuracy on the pool. The deployed assigner is then trained on all labelled images
    (skipped when ``out`` is None: a study that only compares options).
    """
    if folds < 2:
        raise ConfigError(f"calibration needs folds >= 2, got {folds}")
    if epochs < 1:
        raise ConfigError(f"assigner epochs must be >= 1, got {epochs}")
    payload = artifacts.load_labels(labels_path)
    meta = payload["meta"]
    policy = meta.get("policy", "largest")
    train_set = _dataset(meta["dataset"], "train", data_dir, meta["train_per_class"])
    indices, labels, targets = payload["indices"], payload["labels"], payload["targets"]
    logits = payload["logits"].float()
    count = logits.shape[0]
    model, _, revit_meta = artifacts.load_revit(revit_path)
    if model.num_lengths != count:
        raise ConfigError(f"{revit_path} has {model.num_lengths} token lengths, the labels "
                          f"{count}")
    labelled = [length.get("tokens") for length in meta.get("lengths", [])]
    if labelled and labelled != [length.tokens for length in model.lengths]:
        raise ConfigError(f"{labels_path} labels token lengths {labelled}, {revit_path} runs "
                          f"{[length.tokens for length in model.lengths]}; give the ReViT of "
                          f"these token lengths")
    if revit_meta.get("dataset") not in (None, meta["dataset"]):
        raise ConfigError(f"{labels_path} labels {meta['dataset']} images, {revit_path} was "
                          f"trained on {revit_meta['dataset']}")
    identity = artifacts.model_identity(model)
    if labelled_by(meta, identity) is False:
        raise ConfigError(f"{labels_path} was labelled by {_models(meta)}, not by {revit_path} "
                          f"(other weights); train the assigner on the labels of the ReViT it "
                          f"will route for")
    image_size = train_set.image_shape[-1]
    if features in ("pixels", "both") and input_size > image_size:
        raise ConfigError(f"--input-size {input_size} is larger than the {image_size} px images "
                          f"of {meta['dataset']}: the thumbnail is a downsample of them (at "
                          f"most {image_size})")
    costs = lengths_flops(model)
    config = AssignerConfig(
        num_lengths=count, input_size=input_size, widths=tuple(widths),
        in_chans=train_set.channels, target=target, features=features,
        image_size=image_size,
        detail_sizes=_detail_sizes(model),
        costs=tuple(round(float(c) / float(costs[-1]), 6) for c in costs),
        num_classes=logits.shape[-1])
    check_fits(assigner_bytes(config), f"an assigner CNN of --widths "
               f"{','.join(map(str, widths))} on a {input_size} px thumbnail", "cpu")
    images = assigner_inputs(config, _normalised(train_set, indices), logits)
    correct = correct_by_length(logits, targets)
    fit_targets = labels if target == "hard" else soft_targets(logits, targets, target, policy,
                                                               temperature)
    weights = sample_weights(weighting, labels, correct, count)

    def fit(keep: torch.Tensor) -> tuple[TokenLengthAssigner, Any]:
        helper = _fresh_assigner(config, seed)
        result = train_assigner(helper, images[keep], fit_targets[keep], epochs=epochs,
                                weights=weights[keep], seed=seed, labels=labels[keep])
        return helper, result

    start = time.perf_counter()
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    out_of_fold = torch.empty(len(indices), count)
    for fold, part in enumerate(torch.tensor_split(order, folds)):
        keep = torch.ones(len(indices), dtype=torch.bool)
        keep[part] = False
        helper, _ = fit(keep)
        out_of_fold[part] = assigner_logits(helper, images[part])
        if status is not None:
            status(f"cross-fitting: fold {fold + 1}/{folds} trained "
                   f"({time.perf_counter() - start:.0f} s so far)")
    cross_fit_seconds = time.perf_counter() - start
    # the deployed assigner (or, in a study, a probe carrying the config and calibration)
    assigner, fit_result = (fit(torch.ones(len(indices), dtype=torch.bool)) if out is not None
                            else (_fresh_assigner(config, seed), None))
    platt = fit_platt(assigner, out_of_fold, correct)

    full = round(100.0 * float(correct[-1].float().mean()), 2)
    tla_points = [assigned_point(knob, correct, costs, assigner, out_of_fold)
                  for knob in knob_grid(config)]
    cascade_points = [cascade_point(t, logits, correct, costs) for t in CASCADE_GRID]
    tla_choice = calibrate(tla_points, full, max_loss)
    cascade_choice = calibrate(cascade_points, full, max_loss)
    fixed = [routed_point("fixed", k, correct, costs, torch.full((len(indices),), k))
             for k in range(count)]
    frontier = mixture_frontier([(p.flops, p.accuracy) for p in fixed])
    cascade_frontier = mixture_frontier([(p.flops, p.accuracy) for p in cascade_points])

    def ratios(point) -> dict[str, float | None]:
        versus_fixed = ratio_at_equal_accuracy(frontier, point.flops, point.accuracy)
        versus_cascade = ratio_at_equal_accuracy(cascade_frontier, point.flops, point.accuracy)
        return {"flops_ratio_vs_fixed": None if versus_fixed is None else round(versus_fixed, 4),
                "flops_ratio_vs_cascade":
                    None if versus_cascade is None else round(versus_cascade, 4)}

    calibration = {
        "images": len(indices), "folds": folds, "full_length_accuracy": full,
        "max_loss": max_loss, "tla_threshold": tla_choice.knob,
        "tla": {**tla_choice.as_dict(), **ratios(tla_choice)},
        "cascade_threshold": cascade_choice.knob,
        "cascade": {**cascade_choice.as_dict(), **ratios(cascade_choice)},
        "best_tla_flops_ratio_vs_fixed": max(
            (r for r in (ratios(p)["flops_ratio_vs_fixed"] for p in tla_points) if r),
            default=None),
        "platt": platt,
    }
    fallback = {"largest": count - 1, "smallest": 0}.get(policy, count - 1)
    decidable = correct.any(dim=0)
    positive = ~correct[0] & decidable
    short_confidence = logits[0].softmax(-1).amax(-1)
    report = label_report(assigner.predicted_label(out_of_fold, fallback), labels,
                          assigner.needs_more_score(out_of_fold), positive, decidable,
                          reference_score=1.0 - short_confidence, resamples=resamples, seed=seed)
    summary = {
        "labels": artifacts.shown_path(labels_path), "revit": artifacts.shown_path(revit_path),
        "revit_digest": identity, "images": len(indices),
        "policy": policy, "target": target, "features": features, "weighting": weighting,
        "temperature": temperature, "input_size": input_size, "widths": list(widths),
        "epochs": epochs, "seed": seed, "cross_fit_seconds": round(cross_fit_seconds, 1),
        "seconds": None if fit_result is None else round(fit_result.seconds, 1),
        "fit_accuracy": None if fit_result is None else fit_result.train_accuracy,
        "out_of_fold_accuracy": report["accuracy"], "out_of_fold": report,
        "flops": assigner.flops(), "calibration": calibration,
        "label_histogram": label_histogram(labels, count), "threads": torch.get_num_threads(),
        "command": command,
    }
    if out is not None:
        artifacts.save_assigner(out, assigner, summary)
    return summary


def git_revision() -> dict[str, Any]:
    """The commit of the source tree this package runs from, and whether tracked files differ
    from it (the files listed): what an eval JSON says produced it."""
    root = Path(__file__).resolve().parents[3]

    def git(*words: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *words], capture_output=True,
                                  text=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "changed": []}
    changed = [line[3:] for line in (git("status", "--porcelain", "--untracked-files=no")
                                     or "").splitlines()]
    return {"commit": commit, "dirty": bool(changed), "changed": changed[:50]}


def labelled_by(labels_meta: dict[str, Any], identity: str) -> bool | None:
    """Whether the ReViT of weights digest ``identity`` (:func:`artifacts.model_identity`)
    labelled a labels file; None for a file from before the digests were recorded."""
    digests = labels_meta.get("model_digests")
    return identity in digests if isinstance(digests, list) else None


def _models(labels_meta: dict[str, Any]) -> str:
    return ", ".join(map(str, labels_meta.get("models", []))) or "another ReViT"


def load_pool(path: str | Path, revit_path: str | Path, lengths: int, max_loss: float,
              identity: str | None = None) -> Pool:
    """The labelled pool of ``path`` (a ``revit label`` file of the ReViT at ``revit_path``,
    whose weights digest is ``identity``). A file from before the digests were recorded is
    matched by the paths it names, resolved from here."""
    payload = artifacts.load_labels(path)
    logits = payload["logits"].float()
    if logits.ndim != 3 or logits.shape[0] != lengths:
        raise ConfigError(f"{path}: the pool has logits of shape {tuple(logits.shape)}, the "
                          f"ReViT {lengths} token lengths")
    meta = payload["meta"]
    known = None if identity is None else labelled_by(meta, identity)
    differs = "other weights"
    if known is None:
        models = [Path(m).resolve() for m in meta.get("models", [])]
        known = not models or Path(revit_path).resolve() in models
        differs = "another file"
    if not known:
        raise ConfigError(f"{path}: labelled by {_models(meta)}, not by {revit_path} "
                          f"({differs}); the peers' thresholds must be chosen on this ReViT's "
                          f"pool (give --pool)")
    return Pool(logits, payload["targets"], max_loss, str(path))


def check_merge_rates(model: ResizableViT, rates: Sequence[int]) -> None:
    """Refuse merge rates that :func:`merge_pool` cannot apply at every length it merges (all
    but the shortest): a rule would name a rate its passes clip."""
    if rates and model.num_lengths < 2:
        raise ConfigError("merge rates need a ReViT with at least two token lengths (the "
                          "shortest pass is never merged); this one has one")
    if rates:
        check_rates(model, rates, 1, what="merge rate")


@torch.no_grad()
def merge_pool(pool: Pool, path: str | Path, model: ResizableViT, rates: Sequence[int],
               data_dir: str | None = None, batch_size: int = 256) -> Pool:
    """``pool`` with every length but the shortest also run merged at each ToMe rate in
    ``rates`` (the pool's images rebuilt from the labels file's dataset and indices). The
    shortest pass stays plain: its confidence is what the rules route on, and merging 16
    tokens saves little."""
    check_merge_rates(model, rates)
    payload = artifacts.load_labels(path)
    meta = payload["meta"]
    train = _dataset(meta["dataset"], "train", data_dir, meta.get("train_per_class"))
    indices = payload["indices"]
    if int(indices.max()) >= len(train.labels) or not torch.equal(
            train.labels[indices].cpu(), pool.targets.cpu()):
        raise ConfigError(f"{path}: the pool's images do not match its labels in "
                          f"{meta['dataset']} here (another data directory or version?)")
    images = _normalised(train, indices)
    model.eval()
    for length in range(1, model.num_lengths):
        for rate in rates:
            pool.merged[length, rate] = tome_logits(model, images, rate, length, batch_size)
            pool.merged_flops[length, rate] = tome_flops(model, rate, length=length)
    return pool


def _detail_sizes(model: ResizableViT) -> tuple[int, ...]:
    """The input sizes of ``model``'s shorter lengths, as an assigner trained for it records."""
    return tuple(length.grid * model.native_patch for length in model.lengths[:-1])


def _check_assigner_fits(path: str | Path, assigner: TokenLengthAssigner,
                         revit_path: str | Path, model: ResizableViT) -> None:
    """Refuse an assigner trained for a ReViT of other token lengths or classes: its routes
    would name lengths this one does not run (files from before these fields pass)."""
    config = assigner.config
    if config.detail_sizes and tuple(config.detail_sizes) != _detail_sizes(model):
        raise ConfigError(f"{path} was trained for a ReViT whose shorter lengths take "
                          f"{list(config.detail_sizes)} px inputs, {revit_path} takes "
                          f"{list(_detail_sizes(model))}; train the assigner on this ReViT's "
                          f"labels")
    classes = model.head.out_features
    if config.reads_coarse_pass and config.num_classes != classes:
        raise ConfigError(f"{path} routes on {config.num_classes} class scores, {revit_path} "
                          f"gives {classes}")


def check_report_paths(out: str | Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an eval report ``out`` (.json) whose own path or its .md and .png siblings cannot
    be written or are one of ``inputs`` (``--out revit.pt`` would replace the ReViT it measured
    with the report); ``out`` ending in .md or .png would be overwritten by its sibling."""
    out = Path(out)
    if out.suffix.lower() in (".md", ".png"):
        raise ConfigError(f"--out {out}: the JSON report cannot end in {out.suffix}; its .md "
                          f"table and .png plot are written beside it (e.g. --out "
                          f"{out.with_suffix('.json')})")
    check_writable(out, "--out", inputs=inputs)
    for suffix in (".md", ".png"):
        check_writable(out.with_suffix(suffix), f"--out's {suffix} sibling", inputs=inputs)


def eval_step(
    revit_path: str | Path,
    assigner_paths: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    data_dir: str | None = None,
    batch_size: int = 256,
    repeats: int = DEFAULT_REPEATS,
    test_limit: int | None = None,
    tla_threshold: float | None = None,
    cascade_threshold: float | None = None,
    none_correct: str = "largest",
    progress=None,
    fixed_grids: Sequence[int] | None = None,
    command: str | None = None,
    pool_path: str | Path | None = None,
    tome_rates: Sequence[int] = TOME_RATES,
    resamples: int = 1000,
    seed: int = 0,
    max_loss: float | None = None,
    merge_rates: Sequence[int] = (),
) -> ReViTEvaluation:
    """Every policy on the test split; writes ``out`` (.json) with a .md table and a .png.

    ``assigner_paths``: one or more TLAs (each at its calibrated knob, or ``tla_threshold``).
    ``pool_path``: the labelled pool the peers' thresholds are chosen on (default: the labels
    file the first TLA was trained on); ``max_loss`` their tolerance (default the TLA's).
    ``fixed_grids``: the fixed lengths to measure; by default every grid from the shortest
    trained one to the native one (the trained grids are always included). ``merge_rates``:
    ToMe rates the merged peers may use at each length but the shortest (:func:`merge_pool`;
    none by default). The JSON records the command and the git commit that produced it: the
    tree as the run started, the code that ran (a commit made while a 20-minute evaluation runs
    is not its source).
    """
    revision = git_revision() if out is not None else None
    if isinstance(assigner_paths, (str, Path)):
        assigner_paths = [assigner_paths]
    if resamples < 0:
        raise ConfigError(f"bootstrap resamples must be >= 0, got {resamples}")
    model, config, meta = artifacts.load_revit(revit_path)
    identity = artifacts.model_identity(model)
    check_rates(model, tome_rates, model.num_lengths - 1)  # before any pass runs
    check_merge_rates(model, merge_rates)
    assigners, metas, pool_accuracy = [], {}, {}
    for path in assigner_paths:
        assigner, assigner_meta = artifacts.load_assigner(path)
        trained_for = assigner_meta.get("revit_digest")  # None: a file from before digests
        if trained_for is not None and trained_for != identity:
            raise ConfigError(f"{path} was trained for the ReViT "
                              f"{assigner_meta.get('revit', 'of other weights')}, not for "
                              f"{revit_path} (other weights); evaluate it with that ReViT, or "
                              f"train an assigner on this one's labels")
        if assigner.config.num_lengths != model.num_lengths:
            raise ConfigError(f"{path} assigns {assigner.config.num_lengths} lengths, "
                              f"{revit_path} has {model.num_lengths}")
        name = Path(path).stem
        if name in metas:
            raise ConfigError(f"two assigners are named {name}; give files distinct names")
        knob = tla_threshold
        tla_calibration = assigner_meta.get("calibration", {})
        if knob is None:
            knob = tla_calibration.get("tla_threshold")
            accuracy = tla_calibration.get("tla", {}).get("accuracy")
            if accuracy is not None:
                pool_accuracy[name] = float(accuracy)
        _check_assigner_fits(path, assigner, revit_path, model)
        assigners.append((name, assigner, knob))
        metas[name] = assigner_meta
    first = next(iter(metas.values()))
    calibration = first.get("calibration", {})
    if pool_path is None:
        pool_path = first.get("labels")
        if pool_path is None:
            raise ConfigError(f"{assigner_paths[0]} does not say which labels it was trained "
                              f"on; give the pool with --pool labels.pt")
        if not Path(pool_path).exists():
            raise ConfigError(f"{assigner_paths[0]} was trained on {pool_path}, which is not "
                              f"there (moved?); give the pool with --pool labels.pt")
    if out is not None:  # the default pool is an input too, though no flag named it
        check_report_paths(out, [revit_path, *assigner_paths, pool_path])
    pool = load_pool(pool_path, revit_path, model.num_lengths,
                     calibration.get("max_loss", 1.0) if max_loss is None else max_loss,
                     identity)
    if merge_rates:
        pool = merge_pool(pool, pool_path, model, merge_rates, data_dir, batch_size)
    trained = [length.grid for length in model.lengths]
    grids = sorted(set(range(trained[0], trained[-1] + 1) if fixed_grids is None
                       else fixed_grids) | set(trained))
    if grids[0] < 1 or grids[-1] > model.native_grid:
        raise ConfigError(f"fixed grids {grids} must lie in 1..{model.native_grid}")
    fixed_model = with_grids(model, config, grids)
    test_set = _dataset(meta["dataset"], "test", data_dir, test_limit)
    images = _normalised(test_set)
    start = time.perf_counter()
    evaluation = evaluate_revit(model, assigners, images, test_set.labels, cascade_threshold,
                                batch_size, repeats, none_correct, calibration, progress,
                                fixed_model, pool, pool_accuracy, tome_rates, resamples, seed)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {"command": command, "git": revision, "revit": str(revit_path),
                  "assigners": [str(p) for p in assigner_paths], "revit_meta": meta,
                  "assigner_meta": metas, "seconds": round(time.perf_counter() - start, 1),
                  **evaluation.as_dict()}
        out.write_text(json.dumps(record, indent=1) + "\n")
        git = record["git"]
        made = (f"Made by `{command}` at commit {git['commit']}"
                + (" (with uncommitted changes)" if git["dirty"] else "") + "\n\n"
                if command else "")
        out.with_suffix(".md").write_text(
            made + markdown_table(evaluation)
            + "\n\n" + "\n".join(f"- {line}" for line in comparison_lines(evaluation)) + "\n")
        plot(evaluation, str(out.with_suffix(".png")))
    return evaluation
