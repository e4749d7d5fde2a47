"""Training one ReViT for all its token lengths, and the data split its labels need.

The paper does not publish its recipe, so three objectives are offered (``mode``):

- ``random``: one token length drawn per step, plain cross-entropy (FlexiViT's recipe); the
  cheapest, each length sees a third of the steps.
- ``all``: every length on the same batch, the unweighted sum of cross-entropies (DVT's verified
  objective for its exits).
- ``distill`` (default): every length; the longest learns from the labels, each shorter one from
  the labels plus the KL divergence to the longest's detached prediction (BigNAS / slimmable
  in-place distillation), which pulls short-length decisions towards the full model's.

Everything else is the shared recipe of :mod:`vitnas.train` (AdamW, warmup + cosine, label
smoothing, crop + flip), run by :func:`fit_resumable`, which also saves a training state after
every epoch so a long CPU run can span several sittings (``vitnas revit train --resume``).

Token-length labels must come from images the ReViT did not train on, or its training fit makes
every short length look sufficient. :func:`holdout_split` reserves a class-balanced held-out
part of the training set (the default), :func:`fold_split` one fold of k (out-of-fold labels: k
models, every training image labelled once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.data import ArrayDataset, Normalize, iterate_batches
from vitnas.data.loader import balanced_indices
from vitnas.errors import ConfigError
from vitnas.grammar import plain_digits
from vitnas.revit.model import ResizableViT
from vitnas.train import TrainConfig, total_steps, train_model

TRAINING_MODES = ("random", "all", "distill")


class ReViTObjective:
    """The loss ``(model, x, y, label_smoothing) -> scalar`` of a training ``mode``; its own
    ``generator`` (``random`` mode's length draws) is part of a resumable training state."""

    def __init__(self, mode: str, num_lengths: int, seed: int = 0,
                 temperature: float = 1.0) -> None:
        if mode not in TRAINING_MODES:
            raise ConfigError(f"ReViT training mode {mode!r} is not one of "
                              f"{', '.join(TRAINING_MODES)}")
        self.mode, self.num_lengths, self.temperature = mode, num_lengths, temperature
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothing: float
                 ) -> torch.Tensor:
        count, temperature = self.num_lengths, self.temperature
        if self.mode == "random":
            index = int(torch.randint(count, (1,), generator=self.generator))
            return F.cross_entropy(model(x, length=index), y, label_smoothing=smoothing)
        longest = model(x, length=count - 1)
        total = F.cross_entropy(longest, y, label_smoothing=smoothing)
        teacher = F.softmax(longest.detach().float() / temperature, dim=-1)
        for index in range(count - 1):
            logits = model(x, length=index)
            total = total + F.cross_entropy(logits, y, label_smoothing=smoothing)
            if self.mode == "distill":
                student = F.log_softmax(logits.float() / temperature, dim=-1)
                total = total + F.kl_div(student, teacher, reduction="batchmean") * temperature**2
        return total


def revit_objective(mode: str, num_lengths: int, seed: int = 0, temperature: float = 1.0
                    ) -> ReViTObjective:
    """The loss ``(model, x, y, label_smoothing) -> scalar`` of a training ``mode``."""
    return ReViTObjective(mode, num_lengths, seed, temperature)


@dataclass(frozen=True)
class SplitSpec:
    """Which training images a ReViT leaves out, so that labels come from unseen images.

    ``kind='holdout'``: ``per_class`` images of each class (class-balanced, seeded);
    ``kind='fold'``: fold ``fold`` of ``folds`` (a seeded permutation cut into equal parts).
    """

    kind: str = "holdout"
    per_class: int = 500
    fold: int = 0
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("holdout", "fold"):
            raise ConfigError(f"split kind {self.kind!r} is not 'holdout' or 'fold'")
        if self.kind == "fold" and not (self.folds >= 2 and 0 <= self.fold < self.folds):
            raise ConfigError(f"fold {self.fold}/{self.folds} needs folds >= 2 and "
                              f"0 <= fold < folds")
        if self.kind == "holdout" and self.per_class < 1:
            raise ConfigError(f"--holdout-per-class must be >= 1 (the images of each class "
                              f"kept unseen for labelling), got {self.per_class}")

    @classmethod
    def parse_fold(cls, text: str, seed: int = 0) -> SplitSpec:
        """``"i/k"`` -> fold i of k."""
        fold, slash, folds = text.partition("/")
        if not (slash and all(plain_digits(p.strip()) for p in (fold, folds))):
            raise ConfigError(f"fold {text!r} must be i/k with 0 <= i < k, e.g. 0/5")
        return cls("fold", fold=int(fold), folds=int(folds), seed=seed)

    def unseen(self, labels: torch.Tensor) -> torch.Tensor:
        """Sorted indices of the images this split leaves out of ReViT training."""
        if self.kind == "holdout":
            counts = torch.unique(labels, return_counts=True)[1]
            if self.per_class >= int(counts.min()):
                raise ConfigError(f"a holdout of {self.per_class} images per class leaves "
                                  f"no training image of the smallest class "
                                  f"({int(counts.min())} images); lower --holdout-per-class "
                                  f"or raise --train-per-class")
            n = self.per_class * len(counts)
            return torch.sort(balanced_indices(labels, n, self.seed)).values
        if self.folds > len(labels):
            raise ConfigError(f"fold {self.fold}/{self.folds}: {len(labels)} training images "
                              f"cannot fill {self.folds} folds (some would be empty); use at "
                              f"most {len(labels)} folds")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        return torch.sort(torch.tensor_split(order, self.folds)[self.fold]).values

    def seen(self, labels: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(len(labels), dtype=torch.bool)
        mask[self.unseen(labels)] = False
        return torch.nonzero(mask).flatten()

    def as_dict(self) -> dict:
        return asdict(self)


def subset(dataset: ArrayDataset, indices: torch.Tensor) -> ArrayDataset:
    """An in-memory subset keeping the parent's classes and normalisation constants."""
    return ArrayDataset(dataset.images[indices], dataset.labels[indices], dataset.classes,
                        mean=dataset.mean, std=dataset.std, name=dataset.name)


@torch.no_grad()
def logits_by_length(model: ResizableViT, images: torch.Tensor, batch_size: int = 256
                     ) -> torch.Tensor:
    """Logits (K, N, C) of every token length on already normalised ``images`` (N, C, H, W)."""
    return torch.stack([torch.cat([model(images[i:i + batch_size], length=k).float().cpu()
                                   for i in range(0, len(images), batch_size)])
                        for k in range(model.num_lengths)])


@torch.no_grad()
def predict_lengths(model: ResizableViT, dataset, batch_size: int = 256) -> torch.Tensor:
    """Logits (K, N, C) of every token length on every image of ``dataset`` (no augmentation,
    the dataset's normalisation), in dataset order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    normalise = Normalize(dataset.mean, dataset.std)
    parts = [logits_by_length(model, x.to(device), batch_size)
             for x, _ in iterate_batches(dataset, batch_size, shuffle=False, transform=normalise)]
    model.train(was_training)
    return torch.cat(parts, dim=1)


STATE_FORMAT = "vitnas-revit-training-state"


@dataclass
class FitResult:
    steps: int
    total_steps: int
    epochs_done: int
    losses: list[float]
    seconds: float  # training time summed over every sitting
    resumed_from: int | None  # the step a resumed run started at


def fit_resumable(
    model: ResizableViT,
    train_set: ArrayDataset,
    config: TrainConfig,
    objective: ReViTObjective,
    state_path: str | Path | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
    progress: bool = False,
) -> FitResult:
    """:func:`vitnas.train.train_model` with the ReViT ``objective`` as its loss (the shared
    recipe: same batches, augmentation and schedule step for step), its training state saved
    atomically after every epoch: weights, optimizer moments, step and epoch (the learning rate
    is a function of the step), the objective's generator, the losses so far.

    ``resume`` continues from ``state_path`` when it exists (a fresh start otherwise, so one
    command serves every sitting); every epoch's batch order and augmentation are seeded by
    ``seed + epoch``, so a run killed at any moment and resumed from its last epoch gives the
    weights of a run that was never interrupted. A state saved for another run (``identity``:
    config, recipe, data) is refused.
    """
    generator = objective.generator
    result = train_model(model, train_set, config, progress=progress, loss_fn=objective,
                         state_path=state_path, resume=resume, identity=identity,
                         state_format=STATE_FORMAT,
                         extra_state=(generator.get_state, generator.set_state))
    return FitResult(result.steps, total_steps(train_set, config)[0], result.epochs,
                     result.losses, result.seconds, result.resumed_from)


@dataclass
class ReViTTrainResult:
    mode: str
    seconds: float
    steps: int
    final_loss: float
    top1: list[float]  # per token length on the evaluation set, shortest first
    resumed_from: int | None = None
    epoch_losses: list[float] = field(default_factory=list)  # the training curve


def epoch_means(losses: Sequence[float], epochs: int) -> list[float]:
    """Mean step loss of each epoch (the steps split evenly): the curve a long run commits."""
    if epochs < 1 or not losses:
        return []
    return [round(float(chunk.mean()), 4)
            for chunk in torch.tensor(list(losses), dtype=torch.float64).tensor_split(epochs)]


def train_revit(
    model: ResizableViT,
    train_set: ArrayDataset,
    config: TrainConfig | None = None,
    mode: str = "distill",
    eval_set=None,
    progress: bool = False,
    state_path: str | Path | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
) -> ReViTTrainResult:
    """Train ``model`` in place at all its lengths (resumable: :func:`fit_resumable`); top-1
    per length on ``eval_set``."""
    config = config or TrainConfig()
    objective = revit_objective(mode, model.num_lengths, config.seed)
    fit = fit_resumable(model, train_set, config, objective, state_path, resume,
                        {**(identity or {}), "mode": mode}, progress)
    top1: list[float] = []
    if eval_set is not None:
        logits = predict_lengths(model, eval_set)
        top1 = [round(100.0 * float((k.argmax(1) == eval_set.labels).float().mean()), 2)
                for k in logits]
    tail = fit.losses[-20:]
    model.eval()
    return ReViTTrainResult(mode, fit.seconds, fit.steps, sum(tail) / max(1, len(tail)), top1,
                            fit.resumed_from, epoch_means(fit.losses, fit.epochs_done))
