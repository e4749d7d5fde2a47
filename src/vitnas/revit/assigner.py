"""The Token-Length Assigner (TLA): a tiny model that picks, before ReViT runs, the token length
an image gets.

The paper only says it is lightweight and trained on "smallest correct length" labels. Those
labels are noisy (a tiny logit change flips them), skewed (most images get the shortest length)
and predicted from a 16 px thumbnail. Each remedy is a named option of :class:`AssignerConfig`:

- ``target`` -- what the assigner learns:
  ``hard`` (default, the paper's): the smallest correct length, K-way cross-entropy;
  ``margin``: the same label softened by the ReViT's margins: length k is "sufficient" with
  probability c_k = sigmoid(margin_k / T) (margin = true-class logit minus the best other), and
  the soft label is P(first sufficient length = k) = c_k prod_{j<k} (1 - c_j);
  ``correct``: K independent heads, P(length k predicts correctly), binary cross-entropy;
  ``loss``: K heads regressing each length's true-class probability exp(-CE_k) (the per-length
  loss), binary cross-entropy with soft targets.
- ``features`` -- what it sees: ``pixels`` (a three-stage CNN on the image downsampled to
  ``input_size``), ``stats`` (cheap statistics of the full-resolution image: per-channel mean
  and standard deviation, edge energy, and the detail each shorter length's resize loses,
  mean (x - up(down(x)))^2), or ``both``; or ``coarse``: the ReViT's own shortest-length
  pass (its softmax, the same sorted, entropy and top-2 margin, :func:`coarse_features`),
  read by a small MLP. A ``coarse`` assigner is a learned router, not a pre-filter: every
  image pays the shortest pass, the router keeps its answer or sends the image straight to
  the length it predicts (skipping the ones between, which a cascade pays for), and it can
  learn which confusions more tokens fix and which images no length saves.
- class weighting is a training argument (:func:`train_assigner`'s ``sample_weights``, built by
  :func:`sample_weights`): ``balanced`` (inverse label frequency) or ``stakes`` (images whose
  lengths disagree on correctness count fully, the rest -- all right or all wrong, whose label
  says nothing about routing -- a quarter).

Decision rules, each with one accuracy/cost knob (:meth:`TokenLengthAssigner.route`):
``hard``/``margin`` take the smallest length whose cumulative probability reaches tau (argmax
without a knob; larger tau, longer lengths); ``correct``/``loss`` have calibrated per-length
probabilities p_k (Platt scaling fitted on cross-fitted predictions) and take
argmax_k p_k - lambda * cost_k / cost_longest, the Lagrangian of "most expected correct answers
for the FLOPs" (larger lambda, shorter lengths). Every FLOP of the assigner, statistics
included, is counted in every comparison (:meth:`TokenLengthAssigner.flops`).
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

TARGETS = ("hard", "margin", "correct", "loss")
FEATURES = ("pixels", "stats", "both", "coarse")
WEIGHTINGS = ("none", "balanced", "stakes")
PER_LENGTH_TARGETS = ("correct", "loss")  # sigmoid heads, Lagrangian rule
STAKES_FLOOR = 0.25
STATS_HIDDEN = 64
MIN_INPUT_SIZE = 4  # the smallest thumbnail a 3x3 CNN reads
TRAIN_BATCH = 128  # train_assigner's batch
PREDICT_BATCH = 1024  # evaluate.assigner_logits' batch


@dataclass(frozen=True)
class AssignerConfig:
    num_lengths: int = 3
    input_size: int = 16
    widths: tuple[int, ...] = (16, 32, 64)
    in_chans: int = 3
    target: str = "hard"
    features: str = "pixels"
    image_size: int = 32  # the full-resolution input the statistics are computed on
    detail_sizes: tuple[int, ...] = ()  # input sizes of the shorter lengths (stats features)
    costs: tuple[float, ...] = ()  # FLOPs of each length relative to the longest (Lagrangian)
    num_classes: int = 10  # the ReViT's classes (``coarse`` reads its logits)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"assigner target {self.target!r} is not one of "
                              f"{', '.join(TARGETS)}")
        if self.features not in FEATURES:
            raise ConfigError(f"assigner features {self.features!r} are not one of "
                              f"{', '.join(FEATURES)}")
        if self.costs and len(self.costs) != self.num_lengths:
            raise ConfigError(f"assigner costs need one entry per length ({self.num_lengths})")

    @property
    def per_length(self) -> bool:
        return self.target in PER_LENGTH_TARGETS

    @property
    def reads_coarse_pass(self) -> bool:
        """Whether the assigner's input is the ReViT's shortest-length logits, not the image."""
        return self.features == "coarse"

    @property
    def num_coarse(self) -> int:
        return 2 * self.num_classes + 2

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AssignerConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"assigner config has unknown field(s) {', '.join(unknown)}")
        values = dict(data)
        for key in ("widths", "detail_sizes", "costs"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def assigner_bytes(config: AssignerConfig, batch_size: int = TRAIN_BATCH,
                   predict_batch: int = PREDICT_BATCH) -> float:
    """A lower bound of the CNN's memory while it trains or predicts: float32 weights,
    gradients and AdamW's two moments, plus every stage's convolution and normalisation
    outputs of a training batch (the backward pass keeps them), or of the largest stage for a
    prediction batch. Refusing past it beats minutes of swapping before an out-of-memory."""
    if config.features not in ("pixels", "both"):
        return 0.0
    size, channels, weights, kept, largest = config.input_size, config.in_chans, 0.0, 0.0, 0.0
    for stage, width in enumerate(config.widths):
        if stage:
            size = (size - 1) // 2 + 1
        weights += float(channels) * width * 9 + 2 * width
        outputs = 2.0 * width * size * size * 4  # convolution and normalisation, float32
        kept += outputs
        largest = max(largest, outputs)
        channels = width
    weights += float(channels) * config.num_lengths
    return weights * 4 * 4 + max(batch_size * kept, predict_batch * largest)


def image_statistics(x: torch.Tensor, detail_sizes: Sequence[int]) -> torch.Tensor:
    """(B, 3C + len(detail_sizes)) cheap statistics of a normalised batch (B, C, H, W):
    per-channel mean, standard deviation and edge energy (mean |dx| + |dy|), and for each
    shorter length's input size s the log of the detail its resize removes,
    mean (x - up(down(x, s)))^2."""
    mean = x.mean(dim=(2, 3))
    std = x.std(dim=(2, 3))
    edges = ((x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(2, 3))
             + (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3)))
    parts = [mean, std, edges]
    size = x.shape[-1]
    for s in detail_sizes:
        down = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                             antialias=s < size)
        up = F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False)
        parts.append((x - up).pow(2).mean(dim=(1, 2, 3)).add(1e-6).log().unsqueeze(1))
    return torch.cat(parts, dim=1)


def coarse_features(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2C + 2) features of the shortest pass's logits (B, C): the softmax (which classes
    it hesitates between), the softmax sorted (how sure, whatever the class), its entropy,
    and the top-2 log-probability margin."""
    log_probs = logits.float().log_softmax(dim=-1)
    probs = log_probs.exp()
    ordered = probs.sort(dim=-1, descending=True).values
    entropy = -(probs * log_probs).sum(dim=-1, keepdim=True)
    top2 = log_probs.topk(2, dim=-1).values
    return torch.cat([probs, ordered, entropy, top2[:, :1] - top2[:, 1:]], dim=1)


class TokenLengthAssigner(nn.Module):
    """K outputs per image: length logits (``hard``/``margin``) or per-length correctness
    logits (``correct``/``loss``), from a CNN on a thumbnail, image statistics, both, or (for
    ``coarse``) the ReViT's shortest-length logits, which are then its input ``x`` (B, C)."""

    def __init__(self, config: AssignerConfig = AssignerConfig()) -> None:
        super().__init__()
        if config.num_lengths < 2:
            raise ConfigError(f"the assigner chooses between token lengths: it needs a ReViT "
                              f"of at least two, got {config.num_lengths}")
        if config.input_size < MIN_INPUT_SIZE:
            raise ConfigError(f"--input-size must be >= {MIN_INPUT_SIZE} (the CNN's thumbnail "
                              f"in pixels), got {config.input_size}")
        if not config.widths:
            raise ConfigError("--widths is empty: the CNN needs at least one stage width")
        self.config = config
        width = 0
        self.features = None
        if config.features in ("pixels", "both"):
            layers: list[nn.Module] = []
            channels = config.in_chans
            for stage, stage_width in enumerate(config.widths):
                stride = 1 if stage == 0 else 2
                layers += [nn.Conv2d(channels, stage_width, 3, stride=stride, padding=1,
                                     bias=False),
                           nn.BatchNorm2d(stage_width), nn.ReLU(inplace=True)]
                channels = stage_width
            self.features = nn.Sequential(*layers)
            width += channels
        self.stats_norm = None
        if config.features in ("stats", "both"):
            self.stats_norm = nn.BatchNorm1d(self.num_stats)
            width += self.num_stats
        self.coarse_norm = None
        if config.reads_coarse_pass:
            self.coarse_norm = nn.BatchNorm1d(config.num_coarse)
            width += config.num_coarse
        if config.features in ("stats", "coarse"):  # no CNN: a small MLP, not a linear model
            self.head = nn.Sequential(nn.Linear(width, STATS_HIDDEN), nn.ReLU(inplace=True),
                                      nn.Linear(STATS_HIDDEN, config.num_lengths))
        else:
            self.head = nn.Linear(width, config.num_lengths)
        # Platt scaling of per-length heads: p_k = sigmoid(scale_k * z_k + shift_k)
        self.register_buffer("platt_scale", torch.ones(config.num_lengths))
        self.register_buffer("platt_shift", torch.zeros(config.num_lengths))

    @property
    def num_stats(self) -> int:
        return 3 * self.config.in_chans + len(self.config.detail_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coarse_norm is not None:
            return self.head(self.coarse_norm(coarse_features(x)))
        parts = []
        if self.features is not None:
            size = self.config.input_size
            thumb = x
            if x.shape[-1] != size or x.shape[-2] != size:
                thumb = F.interpolate(x, size=(size, size), mode="bilinear",
                                      align_corners=False, antialias=size < x.shape[-1])
            parts.append(self.features(thumb).mean(dim=(2, 3)))
        if self.stats_norm is not None:
            parts.append(self.stats_norm(image_statistics(x, self.config.detail_sizes)))
        return self.head(torch.cat(parts, dim=1))  # (B, K)

    def flops(self) -> int:
        """FLOPs per image: 2 x MACs of the convolutions and the head, plus for statistics an
        operation count per input value (mean 1, deviation 2, edges 4, and per detail size 13:
        a bilinear down- and upsample, difference, square, sum); the thumbnail resize is not
        counted, as ReViT's own input resize is not. For ``coarse``: 8 operations per class
        for the features (softmax, sort, entropy), the normalisation and the MLP; the shortest
        pass it reads is charged by :meth:`spent`, not here."""
        config = self.config
        total, width = 0, 0
        if self.features is not None:
            size, channels = config.input_size, config.in_chans
            for stage, stage_width in enumerate(config.widths):
                if stage:
                    size = (size - 1) // 2 + 1
                total += conv_cost((size, size), channels, stage_width, 3, bias=False)[1]
                channels = stage_width
            width += channels
        if self.stats_norm is not None:
            values = config.in_chans * config.image_size**2
            total += values * (7 + 13 * len(config.detail_sizes)) + 2 * self.num_stats
            width += self.num_stats
        if config.reads_coarse_pass:
            width = config.num_coarse
            total += 8 * config.num_classes + 2 * width
        if config.features in ("stats", "coarse"):
            return total + 2 * (width * STATS_HIDDEN + STATS_HIDDEN * config.num_lengths)
        return total + 2 * width * config.num_lengths

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-length probabilities (B, K): P(label = k) for ``hard``/``margin``, the calibrated
        P(length k is correct) for ``correct``/``loss``."""
        if self.config.per_length:
            return torch.sigmoid(logits.float() * self.platt_scale + self.platt_shift)
        return logits.float().softmax(dim=-1)

    def route(self, logits: torch.Tensor, knob: float | None = None) -> torch.Tensor:
        """Length index (B,) from assigner outputs under the target's decision rule."""
        if self.config.per_length:
            return decide_lagrangian(self.probabilities(logits), knob or 0.0, self.relative_costs())
        return decide(logits, knob)

    def relative_costs(self) -> torch.Tensor:
        """What choosing each length adds, relative to the longest. A ``coarse`` router has
        already paid the shortest pass: keeping it costs nothing more, any other length its
        own full cost."""
        count = self.config.num_lengths
        if self.config.costs:
            costs = torch.tensor(self.config.costs, dtype=torch.float32)
        else:
            costs = torch.arange(1, count + 1, dtype=torch.float32) / count
        if self.config.reads_coarse_pass:
            costs[0] = 0.0
        return costs

    def spent(self, length_flops: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        """FLOPs per image (B,) of running each image at ``route`` under this assigner: the
        assigner, the chosen length, and for ``coarse`` the shortest pass every image pays
        (once: an image kept at the shortest length reuses it)."""
        chosen = length_flops[route]
        if self.config.reads_coarse_pass:
            chosen = torch.where(route > 0, chosen + length_flops[0], chosen)
        return chosen + self.flops()

    @torch.no_grad()
    def assign(self, x: torch.Tensor, knob: float | None = None) -> torch.Tensor:
        """Length index (B,) for each image of a normalised batch."""
        return self.route(self(x), knob)

    def needs_more_score(self, logits: torch.Tensor) -> torch.Tensor:
        """How strongly the assigner says the shortest length is not enough (for ROC AUC):
        1 - P(label = shortest), or max_{k>0} p_k - p_0 for per-length heads."""
        probs = self.probabilities(logits)
        if self.config.per_length:
            return probs[:, 1:].amax(dim=1) - probs[:, 0]
        return 1.0 - probs[:, 0]

    def predicted_label(self, logits: torch.Tensor, fallback: int) -> torch.Tensor:
        """The smallest-correct label the outputs imply: argmax for ``hard``/``margin``; the
        smallest length with p_k >= 0.5 for per-length heads (``fallback`` when none is)."""
        if not self.config.per_length:
            return logits.argmax(dim=-1)
        sure = self.probabilities(logits) >= 0.5
        first = sure.to(torch.int8).argmax(dim=1)
        return torch.where(sure.any(dim=1), first, torch.full_like(first, fallback))


def decide(logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """The cumulative rule on length logits (B, K): argmax without a threshold, else the
    smallest length k whose cumulative probability P(label <= k) reaches ``threshold``."""
    if threshold is None:
        return logits.argmax(dim=-1)
    if not 0 < threshold <= 1:
        raise ConfigError(f"assigner threshold must lie in (0, 1], got {threshold}")
    cumulative = logits.float().softmax(dim=-1).cumsum(dim=-1)
    cumulative[:, -1] = 1.0  # guard against rounding: the longest length always qualifies
    return (cumulative < threshold - 1e-9).sum(dim=-1).clamp_max(logits.shape[-1] - 1)


def decide_lagrangian(probabilities: torch.Tensor, price: float, relative_costs: torch.Tensor
                      ) -> torch.Tensor:
    """argmax_k p_k - price * relative_cost_k over per-length correctness probabilities
    (B, K); ties go to the shorter length. ``price`` 0 maximises the expected accuracy."""
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"assigner price (lambda) must be a number >= 0, got {price}")
    utility = probabilities.float() - price * relative_costs.to(probabilities.device)
    return utility.argmax(dim=-1)


def knob_grid(config: AssignerConfig) -> list[float | None]:
    """The knob values a sweep or a calibration tries: cumulative thresholds in (0, 1] for
    ``hard``/``margin``, prices lambda >= 0 for per-length heads."""
    if config.per_length:
        return [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                0.5, 1.0]
    return [None, *thresholds_grid()]


def soft_targets(logits: torch.Tensor, targets: torch.Tensor, target: str, policy: str,
                 temperature: float = 1.0) -> torch.Tensor:
    """Training targets (N, K) of a soft ``target`` from every length's ReViT logits
    (K, N, C) and the true classes (N,): ``margin`` (soft smallest-sufficient label; the
    probability that no length suffices goes to the ``policy`` length, or is dropped by
    renormalising), ``correct`` (0/1 correctness) or ``loss`` (true-class probability)."""
    logits = logits.float()
    true = logits.gather(2, targets.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2)
    if target == "correct":
        return (logits.argmax(dim=2) == targets.unsqueeze(0)).float().T
    if target == "loss":
        return logits.softmax(dim=2).gather(
            2, targets.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2).T
    if target != "margin":
        raise ConfigError(f"no soft targets for assigner target {target!r}")
    if not temperature > 0:
        raise ConfigError(f"margin temperature must be > 0, got {temperature}")
    others = logits.scatter(2, targets.view(1, -1, 1).expand(logits.shape[0], -1, 1),
                            float("-inf")).amax(dim=2)
    sufficient = torch.sigmoid((true - others) / temperature)  # (K, N)
    not_yet = torch.cumprod(1 - sufficient, dim=0)
    first = sufficient * torch.cat([torch.ones_like(not_yet[:1]), not_yet[:-1]])
    soft = first.T.clone()  # (N, K)
    remainder = not_yet[-1]
    if policy == "largest":
        soft[:, -1] += remainder
    elif policy == "smallest":
        soft[:, 0] += remainder
    else:
        soft = soft / soft.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return soft


def sample_weights(weighting: str, labels: torch.Tensor, correct: torch.Tensor,
                   num_lengths: int) -> torch.Tensor:
    """Per-image training weights (N,): ``none`` (ones), ``balanced`` (inverse frequency of
    the hard label), ``stakes`` (1 where the lengths disagree on correctness, else
    :data:`STAKES_FLOOR`). ``correct`` is (K, N)."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"assigner weighting {weighting!r} is not one of "
                          f"{', '.join(WEIGHTINGS)}")
    if weighting == "none":
        return torch.ones(len(labels))
    if weighting == "balanced":
        kept = labels.clamp_min(0)
        counts = torch.bincount(kept, minlength=num_lengths).float().clamp_min(1)
        return (len(labels) / (num_lengths * counts))[kept]
    disagree = correct.any(dim=0) & ~correct.all(dim=0)
    return torch.where(disagree, 1.0, STAKES_FLOOR)


@dataclass
class AssignerTrainResult:
    seconds: float
    steps: int
    train_accuracy: float  # on the hard labels given (argmax / implied label), -1 if none
    final_loss: float


def train_assigner(
    assigner: TokenLengthAssigner,
    images: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 30,
    batch_size: int = TRAIN_BATCH,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    weights: torch.Tensor | None = None,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> AssignerTrainResult:
    """Train on normalised images (N, C, H, W). ``targets``: hard labels (N,) for ``hard``
    (-1 = dropped, skipped), soft targets (N, K) otherwise (:func:`soft_targets`). ``weights``:
    per-image loss weights (:func:`sample_weights`). AdamW with warmup and cosine decay, crop +
    flip augmentation. ``labels`` (hard, for the reported fit accuracy) default to ``targets``
    when those are hard."""
    hard = targets.ndim == 1
    if hard != (assigner.config.target == "hard"):
        raise ConfigError(f"assigner target {assigner.config.target!r} needs "
                          f"{'hard labels (N,)' if not hard else 'soft targets (N, K)'}")
    keep = targets >= 0 if hard else torch.ones(len(targets), dtype=torch.bool)
    labels = targets if labels is None and hard else labels
    images, targets = images[keep], targets[keep]
    weights = torch.ones(len(keep)) if weights is None else weights.float()
    weights = weights[keep]
    if labels is not None:
        labels = labels[keep]
    if len(targets) < 2:
        raise ConfigError("the assigner needs at least two labelled images")
    schedule = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr)
    steps_per_epoch = max(1, math.ceil(len(targets) / batch_size))
    total = epochs * steps_per_epoch
    size = images.shape[-1]
    augment = (Compose([RandomCrop(size, padding=max(1, size // 8)), RandomHorizontalFlip()])
               if images.ndim == 4 else Compose([]))  # coarse logits: nothing to augment
    optimizer = torch.optim.AdamW(assigner.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    target_kind = assigner.config.target
    start, step, loss = time.perf_counter(), 0, torch.zeros(())
    assigner.train()
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for begin in range(0, len(targets), batch_size):
            idx = order[begin:begin + batch_size]
            if len(idx) < 2:
                continue
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, schedule)
            out = assigner(augment(images[idx], generator))
            if target_kind == "hard":
                per_image = F.cross_entropy(out, targets[idx], reduction="none")
            elif target_kind == "margin":
                per_image = -(targets[idx] * out.log_softmax(dim=-1)).sum(dim=-1)
            else:
                per_image = F.binary_cross_entropy_with_logits(
                    out, targets[idx], reduction="none").sum(dim=-1)
            w = weights[idx]
            loss = (per_image * w).sum() / w.sum().clamp_min(1e-12)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    assigner.eval()
    accuracy = -1.0
    if labels is not None:
        with torch.no_grad():
            outputs = torch.cat([assigner(images[i:i + 512]) for i in range(0, len(images), 512)])
        predicted = assigner.predicted_label(outputs, assigner.config.num_lengths - 1)
        accuracy = round(100.0 * float((predicted == labels).float().mean()), 2)
    return AssignerTrainResult(time.perf_counter() - start, step, accuracy, float(loss.detach()))


def fit_platt(assigner: TokenLengthAssigner, logits: torch.Tensor, correct: torch.Tensor,
              steps: int = 200) -> list[tuple[float, float]]:
    """Platt scaling of per-length heads on held-out outputs (N, K) and the 0/1 correctness
    (K, N) they predict: per length, p = sigmoid(a z + b) fitted by binary cross-entropy
    (LBFGS). Stored in the assigner's buffers; returns [(a, b)] per length."""
    if not assigner.config.per_length:
        return []
    z, y = logits.float().detach(), correct.float().T
    scale = torch.ones(z.shape[1], requires_grad=True)
    shift = torch.zeros(z.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([scale, shift], lr=0.5, max_iter=steps,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z * scale + shift, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        assigner.platt_scale.copy_(scale.detach())
        assigner.platt_shift.copy_(shift.detach())
    return [(round(float(a), 4), round(float(b), 4))
            for a, b in zip(scale.detach(), shift.detach())]


def thresholds_grid(points: int = 21) -> Sequence[float]:
    """The thresholds a curve sweeps: evenly spaced in (0, 1]."""
    return [round((i + 1) / points, 4) for i in range(points)]
