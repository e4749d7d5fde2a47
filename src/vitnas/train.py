"""The shared trainer: one fixed, documented recipe used by LGA-after-k-epochs, ground-truth
builds and ``vitnas train``.

Recipe: AdamW (lr 1e-3, weight decay 0.05, betas 0.9/0.999), linear warmup then cosine decay per
step, label smoothing 0.1, random crop with 4-pixel padding and horizontal flip, normalisation
with the dataset's mean/std. bf16 autocast on a GPU; float32 on CPU unless
``precision='bf16'``. ``optimizer=sgd`` (with
``momentum``) and ``schedule=constant`` give other recipes, e.g. LGA's reference post-training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.checkpoint import (
    load_training_state,
    plain,
    restore_training_state,
    resumes,
    save,
)
from vitnas.data import Normalize, RandomCrop, RandomHorizontalFlip, Resize, iterate_batches
from vitnas.data.transforms import Compose
from vitnas.errors import ConfigError
from vitnas.formatting import progress_bar

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0
    optimizer: str = "adamw"  # or "sgd" (with momentum)
    momentum: float = 0.9  # sgd only
    schedule: str = "warmup_cosine"  # or "constant" (lr throughout)
    # "auto": bf16 autocast on a GPU, float32 on CPU (what every ground truth here used);
    # "bf16": autocast on any device (ReViT steps 1.48x faster on an AMX CPU, 16x slower on
    # an AVX2 one where torch emulates bf16, measured by benchmarks/train_precision.py);
    # "fp32": never
    precision: str = "auto"

    def check(self) -> None:
        """Refuse a recipe that cannot train: no steps, an empty batch, a NaN learning rate."""
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ConfigError(f"epochs must be a number > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be a number >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_fraction <= 1:
            raise ConfigError(f"warmup fraction must be in [0, 1], got {self.warmup_fraction}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer {self.optimizer!r} is not one of adamw, sgd")
        if self.schedule not in ("warmup_cosine", "constant"):
            raise ConfigError(f"schedule {self.schedule!r} is not one of warmup_cosine, constant")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of "
                              f"{', '.join(PRECISIONS)}")

    def autocast(self, device: torch.device) -> bool:
        """Whether steps on ``device`` run under bf16 autocast."""
        return self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda")

    def emulated_bf16(self, device: torch.device | str) -> bool:
        """bf16 autocast on a CPU that has no bf16 instructions: torch then emulates it, and a
        step is several times *slower* than float32 (``benchmarks/train_precision.py``), so a
        user who asked for bf16 to go faster should hear it before hours of training."""
        device = torch.device(device)
        return (self.autocast(device) and device.type == "cpu"
                and native_cpu_bf16() is False)


@dataclass
class TrainResult:
    top1: float | None  # classification; None for segmentation (see ``metrics``)
    seconds: float
    steps: int
    losses: list[float] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)  # the trained model itself
    # every test score: {"top1"} for classification; for segmentation {"miou", "pixel_acc",
    # "macc"} and the list "iou_per_class" (see ``vitnas.metrics.segmentation_scores``)
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None  # the step a resumed run started at
    epochs: int = 0  # epochs begun, over every sitting


STATE_FORMAT = "vitnas-training-state"


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    if config.schedule == "constant":
        return config.lr
    warmup = max(1, int(config.warmup_fraction * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: nn.Module, dataset, batch_size: int = 256,
             image_size: int | None = None, progress: bool = False) -> float:
    """Top-1 accuracy (%) on ``dataset``, resized to ``image_size`` when given; ``progress``
    shows a bar over the images (a full test split can take minutes on a CPU)."""
    device = _device_of(model)
    was_training = model.training
    model.eval()
    transform = Normalize(dataset.mean, dataset.std)
    if image_size and image_size != dataset.image_shape[-1]:
        transform = Compose([transform, Resize(image_size)])
    correct = total = 0
    with progress_bar(progress, total=len(dataset), unit="img", leave=False, desc="test") as bar:
        for x, y in iterate_batches(dataset, batch_size, shuffle=False, transform=transform):
            logits = model(x.to(device))
            correct += int((logits.argmax(1).cpu() == y).sum())
            total += len(y)
            bar.update(len(y))
    model.train(was_training)
    return 100.0 * correct / max(total, 1)


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, dataset, batch_size: int = 128,
                          image_size: int | None = None) -> dict[str, Any]:
    """mIoU, pixel accuracy, mAcc (%) and the per-class IoU over the whole split, from one
    confusion matrix (exact however it is batched); ignored pixels do not count. Scored at
    the label maps' resolution: a model trained at another resolution sees the images resized,
    and its logits are upsampled to the label maps before the argmax
    (``vitnas.metrics.predictions_at``)."""
    from vitnas.data.segmentation import IGNORE_INDEX, segmentation_batches
    from vitnas.metrics import confusion_matrix, predictions_at, segmentation_scores

    device = _device_of(model)
    was_training = model.training
    model.eval()
    confusion = torch.zeros(dataset.num_classes, dataset.num_classes, dtype=torch.int64)
    for x, y in segmentation_batches(dataset, batch_size, shuffle=False):
        if image_size and image_size != x.shape[-1]:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              align_corners=False)
        predicted = predictions_at(model(x.to(device)).float(), y.shape[-2:])
        confusion += confusion_matrix(predicted.cpu(), y, dataset.num_classes, IGNORE_INDEX)
    model.train(was_training)
    return segmentation_scores(confusion)


def is_segmentation(dataset) -> bool:
    """A dataset of label maps (``vitnas.data.segmentation.SegmentationDataset``)."""
    return hasattr(dataset, "masks")


Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]
Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass
class FitState:
    """Where a training loop stands: a resumed run starts from one (see ``fit``)."""

    step: int = 0
    epoch: int = 0
    losses: list[float] = field(default_factory=list)


def native_cpu_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), from the kernel's CPU
    flags; ``None`` where they cannot be read (not Linux)."""
    try:
        with open(cpuinfo) as handle:
            flags = {flag for line in handle if line.startswith("flags")
                     for flag in line.split(":", 1)[1].split()}
    except OSError:
        return None
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    total: int,
    batches: Batches,
    loss_fn: Loss,
    state: FitState | None = None,
    on_epoch: Callable[[FitState], None] | None = None,
    progress: bool = False,
) -> FitState:
    """The one training loop: ``total`` steps of ``loss_fn`` over ``batches(epoch)``, the
    learning rate a function of the step (``learning_rate``), bf16 autocast as
    ``config.precision`` says.
    ``on_epoch`` runs after each epoch (a resumable trainer saves its state there); a run
    continued from a saved ``state`` takes the same steps as one never interrupted, because
    every epoch's batches depend only on the epoch."""
    state = state or FitState()
    device = _device_of(model)
    autocast = config.autocast(device)
    model.train()
    with progress_bar(progress, total=total, initial=state.step, unit="step", leave=False) as bar:
        while state.step < total:
            for x, y in batches(state.epoch):
                if state.step >= total:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(state.step, total, config)
                x, y = x.to(device), y.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = loss_fn(model, x, y, config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                state.losses.append(float(loss.detach()))
                state.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{state.losses[-1]:.3f}", epoch=state.epoch)
            state.epoch += 1
            if on_epoch is not None:
                on_epoch(state)
    return state


def total_steps(train_set, config: TrainConfig) -> tuple[int, bool]:
    """The run's step count and whether to drop the ragged last batch: dropped, except when
    one batch is all there is (a set smaller than batch_size would otherwise yield no step at
    all and never finish)."""
    if len(train_set) == 0:
        raise ConfigError("the training set is empty")
    drop_last = len(train_set) >= config.batch_size
    steps_per_epoch = max(1, len(train_set) // config.batch_size)
    return max(1, int(round(config.epochs * steps_per_epoch))), drop_last


def classification_batches(train_set, config: TrainConfig, drop_last: bool,
                           image_size: int | None = None) -> Batches:
    """The recipe's batches: random crop (4-pixel zero padding) and flip, then normalisation,
    seeded by ``config.seed + epoch``."""
    normalise = Normalize(train_set.mean, train_set.std)
    size = train_set.image_shape[-1]
    resize = [Resize(image_size)] if image_size and image_size != size else []
    augment = Compose([RandomCrop(size, padding=4), RandomHorizontalFlip(), normalise, *resize])
    transform = augment if config.augment else Compose([normalise, *resize])
    return lambda epoch: iterate_batches(train_set, config.batch_size, seed=config.seed + epoch,
                                         transform=transform, drop_last=drop_last)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  label_smoothing: float) -> torch.Tensor:
    """Cross-entropy per image, or per labelled pixel for label maps (ignored pixels skipped)."""
    from vitnas.data.segmentation import IGNORE_INDEX

    return F.cross_entropy(model(x), y, ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)


def train_model(
    model: nn.Module,
    train_set,
    config: TrainConfig = TrainConfig(),
    eval_set=None,
    progress: bool = False,
    image_size: int | None = None,
    loss_fn: Loss | None = None,
    state_path: str | Path | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
    state_format: str = STATE_FORMAT,
    extra_state: tuple[Callable[[], Any], Callable[[Any], None]] | None = None,
) -> TrainResult:
    """Train ``model`` in place with the recipe above; evaluate on ``eval_set`` if given.
    ``image_size`` resizes the batches when the model expects another resolution. ``loss_fn``
    ``(model, x, y, label_smoothing) -> loss`` replaces the plain cross-entropy, so a model
    trained with another objective (ReViT's several token lengths) keeps the same recipe.

    A segmentation dataset (label maps) trains with the same recipe: the crop and flip move
    each image and its label map together, the loss is the per-pixel cross-entropy over the
    labelled pixels, and the result's ``metrics`` hold mIoU and pixel accuracy.

    ``state_path``: the training state (weights, optimizer moments, step, losses) is saved
    there after every epoch; ``resume`` continues from it when it exists, refused when it was
    saved for another run (``identity``: what makes the run, e.g. architecture, recipe, data).
    Every epoch's batches depend only on the epoch, so a resumed run ends with the weights of
    one never interrupted. ``extra_state`` (get, set) saves and restores what else the loss
    draws from (ReViT's objective keeps a generator), under ``state_format``."""
    config.check()
    total, drop_last = total_steps(train_set, config)
    dense = is_segmentation(train_set)
    if dense:
        from vitnas.data.segmentation import segmentation_batches

        def batches(epoch: int):
            return segmentation_batches(train_set, config.batch_size, seed=config.seed + epoch,
                                        augment=config.augment, drop_last=drop_last,
                                        size=image_size)
    else:
        batches = classification_batches(train_set, config, drop_last, image_size)
    optimizer = make_optimizer(model, config)
    identity = plain({**(identity or {}), "recipe": vars(config), "total_steps": total,
                      "train_images": len(train_set),
                      "bf16": config.autocast(_device_of(model))})  # what "auto" resolved to
    state, spent, resumed_from = FitState(), 0.0, None
    if resumes(state_path, resume):
        saved = load_training_state(state_path, identity, state_format)
        step, epoch, losses, spent = restore_training_state(state_path, saved, model,
                                                            optimizer, total)
        if extra_state is not None:
            try:
                extra_state[1](saved["extra"])
            except (KeyError, TypeError, ValueError, RuntimeError):
                raise ConfigError(f"{state_path}: damaged training state (its extra state); "
                                  f"drop --resume to start over") from None
        state, resumed_from = FitState(step, epoch, losses), step
    start = time.perf_counter()

    def save_state(state: FitState) -> None:
        if state_path is not None:
            extra = {} if extra_state is None else {"extra": extra_state[0]()}
            save(state_path, {"format": state_format, "identity": identity, "step": state.step,
                              "epoch": state.epoch, "losses": state.losses,
                              "seconds": spent + time.perf_counter() - start,
                              "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              **extra})

    state = fit(model, optimizer, config, total, batches, loss_fn or cross_entropy, state,
                save_state, progress)
    seconds = spent + time.perf_counter() - start
    result = TrainResult(None, seconds, state.step, state.losses, model,
                         resumed_from=resumed_from, epochs=state.epoch)
    if eval_set is None:
        return result
    if dense:
        result.metrics = evaluate_segmentation(model, eval_set, image_size=image_size)
    else:
        result.top1 = evaluate(model, eval_set, image_size=image_size)
        result.metrics = {"top1": result.top1}
    return result


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
