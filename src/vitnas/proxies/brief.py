"""Brief training: rank a candidate by what it learns in a few hundred cheap steps.

Mok et al. (CVPR 2022, the LGA paper) argue that metrics at initialisation are unreliable and
that label-gradient alignment after a little training ranks well; low-fidelity estimates (train
briefly, read the loss or the accuracy) are the classic answer. On trained ViTs the zero-cost
proxies track shape counts (issue 23), so this proxy pays for information a count cannot have.

The candidate keeps its depth, width, heads and MLP ratios but is rebuilt at low resolution
(``img_size`` px, ``patch_size`` px patches: 32 / 8 gives 16 tokens; PiT keeps its stride at
half the patch) with ``dataset``'s classes, and trained from the context's seed for ``steps``
AdamW steps. ``schedule`` is the learning rate over those steps:
- ``constant`` (the default): no schedule, so the first k steps of a longer run *are* a k-step
  run and ``train_with_checkpoints`` reads every budget from one training; the reading is a
  mid-training snapshot and moves with the last few steps' noise;
- ``warmup_cosine``: linear warmup over ``warmup`` of the budget, then cosine decay to zero, as
  a full training would end; each budget is then its own run (the budgets' costs add up), and
  the reading is taken where the rate has settled.

``metric`` is what is read after training:
- ``val_acc``: top-1 on ``eval_samples`` class-balanced images of the test split (held out);
- ``val_loss``: minus the cross-entropy on them;
- ``train_loss``: minus the mean training loss over the last ``window`` steps (every step of
  a run shorter than that: a quick ``steps=3`` needs no ``window`` of its own);
- ``lga``: label-gradient alignment (Mok et al.; their kernel over every weight but the
  classifier's) on the first ``lga_samples`` held-out images.

The model the caller built (at full resolution) is not trained: only its shape is used. Cost:
about ``steps`` optimizer steps of a ``(batch_size, tokens)`` batch, printed by
``benchmarks/brief_training.py`` per architecture.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import PROXIES, TRAINING, Proxy, ProxyContext, ceiling, read_when

METRICS = ("val_acc", "val_loss", "train_loss", "lga")
SCHEDULES = ("constant", "warmup_cosine")


# options read in one setting only: option -> (the option that decides, the value that reads it).
# ``window`` and ``lga_samples`` are not here: one run reads every metric
# (``train_with_checkpoints``, the brief-training study), whatever the config's own ``metric``.
BRIEF_CONDITIONS = {"warmup": ("schedule", "warmup_cosine")}


@dataclass(frozen=True)
class BriefConfig:
    steps: int = ceiling(100, 100_000)
    metric: str = "val_acc"
    img_size: int = ceiling(32, 1024)
    patch_size: int = ceiling(8, 1024)
    dataset: str = "cifar10"
    batch_size: int = ceiling(64, 4096)
    lr: float = ceiling(5e-4, 10.0)
    weight_decay: float = ceiling(0.05, 10.0)
    augment: bool = False
    eval_samples: int = 500
    window: int = ceiling(10, 100_000)
    lga_samples: int = ceiling(32, 4096)
    precision: str = "fp32"
    schedule: str = "constant"
    warmup: float = 0.1  # fraction of the budget; warmup_cosine only

    def check(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"brief metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if min(self.steps, self.img_size, self.patch_size, self.batch_size, self.window) < 1:
            raise ConfigError("brief needs steps, img_size, patch_size, batch_size and window "
                              ">= 1")
        if self.eval_samples < 2 or self.lga_samples < 2:
            raise ConfigError("brief needs eval_samples and lga_samples >= 2")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError("brief needs lr > 0 and weight_decay >= 0")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"brief precision {self.precision!r} is not one of fp32, bf16")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"brief schedule {self.schedule!r} is not one of "
                              f"{', '.join(SCHEDULES)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"brief warmup must be a fraction in [0, 1), got {self.warmup}")
        from vitnas.data.datasets import check_dataset_name

        check_dataset_name(self.dataset)

    def read_options(self) -> frozenset[str]:
        """``warmup`` is read by the warmup_cosine schedule only; set under the constant one it
        is refused (``base.unread_options``)."""
        unread = {option for option, (key, value) in BRIEF_CONDITIONS.items()
                  if getattr(self, key) != value}
        return frozenset(f.name for f in dataclasses.fields(self) if f.name not in unread)

    def setting(self) -> str:
        return f"metric={self.metric}, schedule={self.schedule}"

    @classmethod
    def readers(cls) -> dict[str, str]:
        return read_when(cls, {option: f"{key}={value}"
                               for option, (key, value) in BRIEF_CONDITIONS.items()})

    def training(self, seed: int):
        from vitnas.train import TrainConfig

        cosine = self.schedule == "warmup_cosine"
        return TrainConfig(epochs=1, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay,
                           warmup_fraction=self.warmup if cosine else 0.0,
                           label_smoothing=0.0, augment=self.augment, seed=seed,
                           schedule=self.schedule, precision=self.precision)


@functools.lru_cache(maxsize=4)
def _splits(dataset: str, eval_samples: int):
    """The training split and a class-balanced held-out slice of the test split (cached per
    process: a worker scores many architectures)."""
    from vitnas.data import balanced_indices, get_dataset

    train = get_dataset(dataset, split="train")
    test = get_dataset(dataset, split="test")
    if eval_samples > len(test):
        raise ConfigError(f"brief eval_samples {eval_samples} exceeds the {len(test)} test "
                          f"images of {dataset}")
    held = balanced_indices(torch.as_tensor(test.labels), eval_samples, 0)
    return train, test.subset(held)


def low_resolution_model(ctx: ProxyContext, config: BriefConfig, num_classes: int) -> nn.Module:
    """The candidate's shape at ``config.img_size`` px with ``num_classes`` outputs."""
    from vitnas.spaces.base import respaced

    ctx.require_architecture("brief")
    if getattr(ctx.space, "task", "classification") != "classification":
        raise ConfigError(f"brief trains classifiers; {ctx.space.name} is set up for "
                          f"{ctx.space.task}")
    small = respaced(ctx.space, img_size=config.img_size, patch_size=config.patch_size,
                     stride=None, num_classes=num_classes)
    return small.build(small.validate(ctx.space.to_json(ctx.arch)), seed=ctx.seed)


@torch.no_grad()
def held_out_metrics(model: nn.Module, held, image_size: int) -> tuple[float, float]:
    """(top-1 %, mean cross-entropy) on the held-out slice."""
    from vitnas.data.loader import iterate_batches
    from vitnas.data.transforms import Compose, Normalize, Resize

    was_training = model.training
    model.eval()
    transform = Normalize(held.mean, held.std)
    if image_size != held.image_shape[-1]:
        transform = Compose([transform, Resize(image_size)])
    correct, loss, total = 0, 0.0, 0
    for x, y in iterate_batches(held, 250, shuffle=False, transform=transform):
        logits = model(x).float()
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        total += len(y)
    model.train(was_training)
    return 100.0 * correct / total, loss / total


def held_out_lga(model: nn.Module, held, image_size: int, samples: int) -> float:
    from vitnas.data.loader import iterate_batches
    from vitnas.data.transforms import Compose, Normalize, Resize
    from vitnas.proxies.kernel import KernelSpec, empirical_ntk
    from vitnas.proxies.lga import label_gradient_alignment

    transform = Normalize(held.mean, held.std)
    if image_size != held.image_shape[-1]:
        transform = Compose([transform, Resize(image_size)])
    x, y = next(iter(iterate_batches(held, samples, shuffle=False, transform=transform)))
    was_training = model.training
    model.eval()
    theta = empirical_ntk(model, x, y, KernelSpec(params="weights_nohead"))
    model.train(was_training)
    return label_gradient_alignment(theta, y, "global")


@dataclass(frozen=True)
class Checkpoint:
    steps: int
    values: dict[str, float]  # metric -> raw value (higher is better for every metric)
    seconds: dict[str, float]  # metric -> training up to here plus that metric's own reading


def train_with_checkpoints(ctx: ProxyContext, config: BriefConfig, checkpoints: Sequence[int],
                           metrics: Sequence[str] = METRICS) -> list[Checkpoint]:
    """Read ``metrics`` after every budget in ``checkpoints``. Under the constant schedule one
    run to the largest budget reads them all; under a decaying one each budget is its own run.
    Each checkpoint's ``seconds`` counts only the training it needed and its own reading, so it
    is what a run with ``steps`` = that checkpoint and that metric costs."""
    wanted = sorted({int(k) for k in checkpoints})
    if not wanted or wanted[0] < 1:
        raise ConfigError("brief checkpoints must be positive step counts")
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"brief metric(s) {', '.join(unknown)} not in {', '.join(METRICS)}")
    if config.schedule == "constant":
        return _one_run(ctx, config, wanted, metrics)
    return [reading for budget in wanted for reading in _one_run(ctx, config, [budget], metrics)]


def _one_run(ctx: ProxyContext, config: BriefConfig, wanted: list[int],
             metrics: Sequence[str]) -> list[Checkpoint]:
    """One training to ``wanted[-1]`` steps (its schedule's length), read at every budget."""
    from vitnas.train import (
        FitState,
        classification_batches,
        cross_entropy,
        fit,
        make_optimizer,
    )

    train, held = _splits(config.dataset, config.eval_samples)
    recipe = config.training(ctx.seed)
    model = low_resolution_model(ctx, config, train.num_classes)
    base = classification_batches(train, recipe, True, config.img_size)
    progress = FitState()
    results: list[Checkpoint] = []
    reading = 0.0  # seconds spent reading so far, not charged to later checkpoints
    start = time.perf_counter()

    def read() -> None:
        nonlocal reading
        began = time.perf_counter()
        trained = began - start - reading
        values: dict[str, float] = {}
        seconds: dict[str, float] = {}

        def timed(names: Sequence[str], measure) -> None:
            if set(names) & set(metrics):
                tick = time.perf_counter()
                values.update(zip(names, measure()))
                seconds.update((n, trained + time.perf_counter() - tick) for n in names)

        def held_out() -> tuple[float, float]:
            top1, loss = held_out_metrics(model, held, config.img_size)
            return top1, -loss

        timed(("val_acc", "val_loss"), held_out)
        recent = progress.losses[-config.window:]
        timed(("train_loss",), lambda: [-sum(recent) / len(recent)])
        timed(("lga",), lambda: [held_out_lga(model, held, config.img_size,
                                              config.lga_samples)])
        results.append(Checkpoint(progress.step, {m: values[m] for m in metrics},
                                  {m: seconds[m] for m in metrics}))
        reading += time.perf_counter() - began

    def batches(epoch: int):
        # `fit` asks for the next batch only after its step is done, so here progress.step
        # counts the finished steps
        for batch in base(epoch):
            if progress.step in wanted[:-1] and all(r.steps != progress.step for r in results):
                read()
            yield batch

    fit(model, make_optimizer(model, recipe), recipe, wanted[-1], batches, cross_entropy,
        state=progress)
    read()
    return results


@PROXIES.register("brief")
class BriefTraining(Proxy):
    name = "brief"
    direction = 1
    cost = TRAINING
    reference = "low-fidelity training; LGA after training (Mok et al., CVPR 2022)"
    Config = BriefConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        (checkpoint,) = train_with_checkpoints(ctx, self.config, [self.config.steps],
                                               [self.config.metric])
        return checkpoint.values[self.config.metric]
