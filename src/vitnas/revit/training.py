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
smoothing, crop + flip).

Token-length labels must come from images the ReViT did not train on, or its training fit makes
every short length look sufficient. :func:`holdout_split` reserves a class-balanced held-out
part of the training set (the default), :func:`fold_split` one fold of k (out-of-fold labels: k
models, every training image labelled once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.data import ArrayDataset, Normalize, iterate_batches
from vitnas.data.loader import balanced_indices
from vitnas.errors import ConfigError
from vitnas.revit.model import ResizableViT
from vitnas.train import TrainConfig, train_model

TRAINING_MODES = ("random", "all", "distill")


def revit_objective(mode: str, num_lengths: int, seed: int = 0, temperature: float = 1.0
                    ) -> Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """The loss ``(model, x, y, label_smoothing) -> scalar`` of a training ``mode``."""
    if mode not in TRAINING_MODES:
        raise ConfigError(f"ReViT training mode {mode!r} is not one of "
                          f"{', '.join(TRAINING_MODES)}")
    generator = torch.Generator().manual_seed(seed)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothing: float
             ) -> torch.Tensor:
        if mode == "random":
            index = int(torch.randint(num_lengths, (1,), generator=generator))
            return F.cross_entropy(model(x, length=index), y, label_smoothing=smoothing)
        longest = model(x, length=num_lengths - 1)
        total = F.cross_entropy(longest, y, label_smoothing=smoothing)
        teacher = F.softmax(longest.detach().float() / temperature, dim=-1)
        for index in range(num_lengths - 1):
            logits = model(x, length=index)
            total = total + F.cross_entropy(logits, y, label_smoothing=smoothing)
            if mode == "distill":
                student = F.log_softmax(logits.float() / temperature, dim=-1)
                total = total + F.kl_div(student, teacher, reduction="batchmean") * temperature**2
        return total

    return loss


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
            raise ConfigError(f"holdout needs per_class >= 1, got {self.per_class}")

    @classmethod
    def parse_fold(cls, text: str, seed: int = 0) -> SplitSpec:
        """``"i/k"`` -> fold i of k."""
        fold, slash, folds = text.partition("/")
        if not (slash and fold.strip().isdigit() and folds.strip().isdigit()):
            raise ConfigError(f"fold {text!r} must be i/k with 0 <= i < k, e.g. 0/5")
        return cls("fold", fold=int(fold), folds=int(folds), seed=seed)

    def unseen(self, labels: torch.Tensor) -> torch.Tensor:
        """Sorted indices of the images this split leaves out of ReViT training."""
        if self.kind == "holdout":
            classes = len(torch.unique(labels))
            n = min(len(labels) - 1, self.per_class * classes)
            return torch.sort(balanced_indices(labels, n, self.seed)).values
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


@dataclass
class ReViTTrainResult:
    mode: str
    seconds: float
    steps: int
    final_loss: float
    top1: list[float]  # per token length on the evaluation set, shortest first


def train_revit(
    model: ResizableViT,
    train_set: ArrayDataset,
    config: TrainConfig | None = None,
    mode: str = "distill",
    eval_set=None,
    progress: bool = False,
) -> ReViTTrainResult:
    """Train ``model`` in place at all its lengths; top-1 per length on ``eval_set``."""
    config = config or TrainConfig()
    start = time.perf_counter()
    objective = revit_objective(mode, model.num_lengths, config.seed)
    result = train_model(model, train_set, config, progress=progress, loss_fn=objective)
    top1: list[float] = []
    if eval_set is not None:
        logits = predict_lengths(model, eval_set)
        top1 = [round(100.0 * float((k.argmax(1) == eval_set.labels).float().mean()), 2)
                for k in logits]
    tail = result.losses[-20:]
    return ReViTTrainResult(mode, time.perf_counter() - start, result.steps,
                            sum(tail) / max(1, len(tail)), top1)
