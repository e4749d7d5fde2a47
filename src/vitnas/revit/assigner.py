"""The Token-Length Assigner (TLA): a tiny classifier that predicts, before ReViT runs, the
token length an image needs.

The paper only says it is lightweight. Here it is a three-stage CNN (3x3 convolutions, batch
norm, ReLU, stride 2 in the last two stages, global average pooling, a linear head) on the image
downsampled to ``input_size``, so its cost is a few percent of one ReViT pass; that cost is
counted in every comparison (:meth:`TokenLengthAssigner.flops`).

Decision rule, the accuracy/cost knob: ``threshold=None`` takes the argmax; a threshold tau in
(0, 1] takes the smallest length k whose cumulative probability P(label <= k) reaches tau, so a
larger tau sends more images to longer lengths (tau = 1 always picks the longest).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.data import RandomCrop, RandomHorizontalFlip
from vitnas.data.transforms import Compose
from vitnas.errors import ConfigError
from vitnas.flops import conv_cost
from vitnas.train import TrainConfig, learning_rate


@dataclass(frozen=True)
class AssignerConfig:
    num_lengths: int = 3
    input_size: int = 16
    widths: tuple[int, ...] = (16, 32, 64)
    in_chans: int = 3

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AssignerConfig:
        values = dict(data)
        values["widths"] = tuple(values.get("widths", cls.widths))
        return cls(**values)


class TokenLengthAssigner(nn.Module):
    """K-way length classifier on a downsampled, normalised image."""

    def __init__(self, config: AssignerConfig = AssignerConfig()) -> None:
        super().__init__()
        if config.num_lengths < 2 or config.input_size < 4 or not config.widths:
            raise ConfigError("the assigner needs >= 2 lengths, input_size >= 4 and widths")
        self.config = config
        layers: list[nn.Module] = []
        channels = config.in_chans
        for stage, width in enumerate(config.widths):
            stride = 1 if stage == 0 else 2
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, config.num_lengths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < x.shape[-1])
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, K)

    def flops(self) -> int:
        """FLOPs per image (2 x MACs of the convolutions and the head); resize not counted."""
        total, size, channels = 0, self.config.input_size, self.config.in_chans
        for stage, width in enumerate(self.config.widths):
            if stage:
                size = (size - 1) // 2 + 1
            total += conv_cost((size, size), channels, width, 3, bias=False)[1]
            channels = width
        return total + 2 * channels * self.config.num_lengths

    @torch.no_grad()
    def assign(self, x: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Length index (B,) for each image of a normalised batch."""
        return decide(self(x), threshold)


def decide(logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """The decision rule of the module docstring on assigner logits (B, K)."""
    if threshold is None:
        return logits.argmax(dim=-1)
    if not 0 < threshold <= 1:
        raise ConfigError(f"assigner threshold must lie in (0, 1], got {threshold}")
    cumulative = logits.float().softmax(dim=-1).cumsum(dim=-1)
    cumulative[:, -1] = 1.0  # guard against rounding: the longest length always qualifies
    return (cumulative < threshold - 1e-9).sum(dim=-1).clamp_max(logits.shape[-1] - 1)


@dataclass
class AssignerTrainResult:
    seconds: float
    steps: int
    train_accuracy: float
    class_weights: list[float]


def train_assigner(
    assigner: TokenLengthAssigner,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    balance: bool = False,
    seed: int = 0,
) -> AssignerTrainResult:
    """Cross-entropy on normalised images (N, C, H, W) and length labels (N,); labels of -1
    (dropped) are skipped. ``balance`` weights classes by inverse frequency. AdamW with warmup
    and cosine decay, crop + flip augmentation."""
    keep = labels >= 0
    images, labels = images[keep], labels[keep]
    if len(labels) < 2:
        raise ConfigError("the assigner needs at least two labelled images")
    num_lengths = assigner.config.num_lengths
    counts = torch.bincount(labels, minlength=num_lengths).float()
    weights = torch.ones(num_lengths)
    if balance:
        weights = torch.where(counts > 0, counts.sum() / (num_lengths * counts.clamp_min(1)), 0.)
    schedule = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr)
    steps_per_epoch = max(1, math.ceil(len(labels) / batch_size))
    total = epochs * steps_per_epoch
    size = images.shape[-1]
    augment = Compose([RandomCrop(size, padding=max(1, size // 8)), RandomHorizontalFlip()])
    optimizer = torch.optim.AdamW(assigner.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    start, step = time.perf_counter(), 0
    assigner.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for begin in range(0, len(labels), batch_size):
            idx = order[begin:begin + batch_size]
            if len(idx) < 2:
                continue
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, schedule)
            x = augment(images[idx], generator)
            loss = F.cross_entropy(assigner(x), labels[idx], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    assigner.eval()
    with torch.no_grad():
        predicted = torch.cat([assigner(images[i:i + 512]).argmax(-1)
                               for i in range(0, len(labels), 512)])
    accuracy = 100.0 * float((predicted == labels).float().mean())
    return AssignerTrainResult(time.perf_counter() - start, step, round(accuracy, 2),
                               [round(float(w), 4) for w in weights])


def thresholds_grid(points: int = 21) -> Sequence[float]:
    """The thresholds a curve sweeps: evenly spaced in (0, 1]."""
    return [round((i + 1) / points, 4) for i in range(points)]
