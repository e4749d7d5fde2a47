"""The shared trainer: one fixed, documented recipe used by LGA-after-k-epochs, ground-truth
builds and ``vitnas train``.

Recipe: AdamW (lr 1e-3, weight decay 0.05, betas 0.9/0.999), linear warmup then cosine decay per
step, label smoothing 0.1, random crop with 4-pixel padding and horizontal flip, normalisation
with the dataset's mean/std. bf16 autocast on a GPU; float32 on CPU. ``optimizer=sgd`` (with
``momentum``) and ``schedule=constant`` give other recipes, e.g. LGA's reference post-training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.data import Normalize, RandomCrop, RandomHorizontalFlip, Resize, iterate_batches
from vitnas.data.transforms import Compose
from vitnas.errors import ConfigError


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


@dataclass
class TrainResult:
    top1: float | None
    seconds: float
    steps: int
    losses: list[float] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)  # the trained model itself


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
             image_size: int | None = None) -> float:
    """Top-1 accuracy (%) on ``dataset``, resized to ``image_size`` when given."""
    device = _device_of(model)
    was_training = model.training
    model.eval()
    transform = Normalize(dataset.mean, dataset.std)
    if image_size and image_size != dataset.image_shape[-1]:
        transform = Compose([transform, Resize(image_size)])
    correct = total = 0
    for x, y in iterate_batches(dataset, batch_size, shuffle=False, transform=transform):
        logits = model(x.to(device))
        correct += int((logits.argmax(1).cpu() == y).sum())
        total += len(y)
    model.train(was_training)
    return 100.0 * correct / max(total, 1)


def train_model(
    model: nn.Module,
    train_set,
    config: TrainConfig = TrainConfig(),
    eval_set=None,
    progress: bool = False,
    image_size: int | None = None,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` in place with the recipe above; evaluate on ``eval_set`` if given.
    ``image_size`` resizes the batches when the model expects another resolution. ``loss_fn``
    ``(model, x, y, label_smoothing) -> loss`` replaces the plain cross-entropy, so a model
    trained with another objective (ReViT's several token lengths) keeps the same recipe."""
    config.check()
    device = _device_of(model)
    normalise = Normalize(train_set.mean, train_set.std)
    if len(train_set) == 0:
        raise ConfigError("the training set is empty")
    # drop the ragged last batch, except when one batch is all there is (a set smaller than
    # batch_size would otherwise yield no step at all and never finish)
    drop_last = len(train_set) >= config.batch_size
    steps_per_epoch = max(1, len(train_set) // config.batch_size)
    total = max(1, int(round(config.epochs * steps_per_epoch)))
    size = train_set.image_shape[-1]
    resize = [Resize(image_size)] if image_size and image_size != size else []
    augment = Compose([RandomCrop(size, padding=4), RandomHorizontalFlip(), normalise, *resize])
    transform = augment if config.augment else Compose([normalise, *resize])
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                      weight_decay=config.weight_decay)
    autocast = device.type == "cuda"
    start = time.perf_counter()
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", leave=False)
    model.train()
    step, epoch = 0, 0
    while step < total:
        for x, y in iterate_batches(train_set, config.batch_size, seed=config.seed + epoch,
                                    transform=transform, drop_last=drop_last):
            if step >= total:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, config)
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = (loss_fn(model, x, y, config.label_smoothing) if loss_fn is not None
                        else F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        epoch += 1
    if bar is not None:
        bar.close()
    top1 = evaluate(model, eval_set, image_size=image_size) if eval_set is not None else None
    return TrainResult(top1, time.perf_counter() - start, step, losses, model)
