"""Accuracy vs FLOPs vs measured throughput of every way to run one ReViT, and whether a
learned policy beats the simple ones.

Policies, all on the same weights: the fixed token lengths, including the intermediate grids
the trained ones do not cover (the resize route runs any grid); one or more TLAs at their
calibrated knobs (a router on the shortest pass, ``features='coarse'``, charged that pass for
every image); the oracle (each image at its smallest correct length: the ceiling); and the
simple peers, none of them trained: the confidence-skip rule and the fair cascade
(:mod:`vitnas.revit.peers`, per-exit thresholds and the skip), the plain shared-threshold
cascade, and token merging (:mod:`vitnas.revit.tome`) at several merge rates. With a pool
that holds merged passes (``Pool.merged``), confidence-skip and the fair cascade also run
merged (``"<kind> + ToMe"``), their per-length rates chosen on the pool with the thresholds:
do the two kinds of saving stack, and does the stack beat ToMe alone?

Test seen once: every threshold of every peer is chosen on the labelled pool (held-out
training images the ReViT never saw, :class:`Pool`): the cheapest rule within ``max_loss``
points of the full length's pool accuracy (the tolerance the TLAs were calibrated with), and,
for each TLA, the cheapest rule at least as accurate on the pool as that TLA's cross-fitted pool
accuracy. ToMe's rates are a fixed list. The test split is then run once per operating point.

Throughput: every operating point runs end to end over the whole test set, the points
interleaved in a freshly shuffled order in each of ``repeats`` (>= 5 by default) rounds, each
batch timed. A ratio at equal accuracy is taken per round against the curve measured in the
same round and the median over rounds reported, with a bootstrap interval over rounds and
test images (:class:`vitnas.revit.metrics.TimingBootstrap`); the FLOPs ratio, deterministic,
stands beside it. Curves are mixture hulls (:mod:`vitnas.revit.metrics`): the fixed-length
curve, each peer's (its points and the fixed lengths), and the simple peers' curve (every
fixed length and every peer point together): a learned policy's claim stands only where the
lower end of its interval against that curve is above 1.0x.

Accuracy and FLOPs of the sweeps (drawn, never used to choose) come from cached predictions
(every length's logits on every test image and the assigner's logits); a sweep is placed on the
throughput axis by a time model fitted on the measured fixed lengths.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from vitnas.errors import ConfigError
from vitnas.revit.assigner import (
    PREDICT_BATCH,
    AssignerConfig,
    TokenLengthAssigner,
    knob_grid,
)
from vitnas.revit.inference import (
    AdaptiveOutput,
    bucketed_predict,
    cascade_predict,
    lengths_flops,
    predict_at,
    skip_predict,
)
from vitnas.revit.labels import correct_by_length, token_length_labels
from vitnas.revit.metrics import TimingBootstrap, mixture_frontier
from vitnas.revit.model import ResizableViT
from vitnas.revit.peers import (
    CascadeRule,
    SkipRule,
    merged_kind,
    neighbours,
    rule_from_dict,
    rule_grid,
    rule_outcome,
    shared_cascade,
    with_merge,
)
from vitnas.revit.tome import check_rates, tome_flops, tome_forward, tome_logits
from vitnas.revit.training import logits_by_length

CASCADE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
                0.925, 0.95, 0.97, 0.99, 1.0)
TOME_RATES = (2, 4, 6, 8, 10)
PEER_KINDS = ("confidence-skip", "fair cascade", "cascade")  # rules chosen on the pool
MERGED_KINDS = ("confidence-skip", "fair cascade")  # also run merged when the pool allows
FAMILIES = {"confidence-skip": "confidence-skip", "fair cascade": "fair cascade",
            "cascade": "cascade", "tome": "ToMe",
            **{merged_kind(k): merged_kind(k) for k in MERGED_KINDS}}  # policy -> family
MERGED_POLICIES = frozenset(merged_kind(k) for k in MERGED_KINDS)
DEFAULT_REPEATS = 5


@dataclass
class OperatingPoint:
    """Accuracy (%) and mean FLOPs per image of one policy at one knob value, with the share of
    images that ended at each length."""

    policy: str
    knob: float | None
    accuracy: float
    flops: float
    shares: list[float]
    seconds_per_image: float | None = None  # time model (filled in by the evaluation)
    rule: dict | None = None  # a simple peer's thresholds (:mod:`vitnas.revit.peers`)

    def as_dict(self) -> dict:
        return asdict(self)


def _shares(length: torch.Tensor, count: int) -> list[float]:
    return [round(v, 4) for v in (torch.bincount(length, minlength=count).float()
                                  / max(1, len(length))).tolist()]


def _point(policy: str, knob: float | None, correct: torch.Tensor, flops: torch.Tensor,
           length: torch.Tensor, count: int) -> OperatingPoint:
    return OperatingPoint(policy, knob, round(100.0 * float(correct.float().mean()), 2),
                          float(flops.double().mean()), _shares(length, count))


def routed_point(policy: str, knob: float | None, correct: torch.Tensor, costs: torch.Tensor,
                 route: torch.Tensor, extra: int = 0) -> OperatingPoint:
    """Each image n runs only at length route[n] (TLA, oracle, fixed)."""
    hit = correct[route, torch.arange(correct.shape[1])]
    return _point(policy, knob, hit, costs[route] + extra, route, correct.shape[0])


def cascade_point(knob: float, logits: torch.Tensor, correct: torch.Tensor,
                  costs: torch.Tensor) -> OperatingPoint:
    """What :func:`cascade_predict` gives at threshold ``knob``, from cached logits (K, N, C)."""
    count, n = correct.shape
    confident = logits.float().softmax(-1).amax(-1) >= knob  # (K, N)
    confident[-1] = True
    exit_at = confident.to(torch.int8).argmax(0).to(torch.int64)
    spent = torch.cumsum(costs, 0)[exit_at]
    return _point("cascade", knob, correct[exit_at, torch.arange(n)], spent, exit_at, count)


def assigned_point(knob: float | None, correct: torch.Tensor, costs: torch.Tensor,
                   assigner: TokenLengthAssigner, outputs: torch.Tensor) -> OperatingPoint:
    """Each image n at the length the assigner's ``outputs`` choose under ``knob``, charged
    what the assigner spends (:meth:`TokenLengthAssigner.spent`: a router that reads the
    shortest pass pays it for every image)."""
    route = assigner.route(outputs, knob)
    hit = correct[route, torch.arange(correct.shape[1])]
    return _point("tla", knob, hit, assigner.spent(costs, route), route, correct.shape[0])


def assigner_inputs(config: AssignerConfig, images: torch.Tensor, logits: torch.Tensor
                    ) -> torch.Tensor:
    """What the assigner reads: the images, or (``coarse``) the shortest length's logits
    (``logits`` is every length's, (K, N, C))."""
    return logits[0].float() if config.reads_coarse_pass else images


def routed_seconds(shares: Sequence[float], length_time: torch.Tensor, extra: float = 0.0,
                   coarse: bool = False) -> float:
    """Seconds per image of a routed policy: sum_k share_k t_k plus the assigner (``extra``);
    a router on the shortest pass also runs it for every image that leaves it."""
    share = torch.tensor(shares, dtype=torch.float64)
    seconds = float(share @ length_time) + extra
    if coarse:
        seconds += float(1.0 - share[0]) * float(length_time[0])
    return seconds


def calibrate(points: Sequence[OperatingPoint], full_accuracy: float, max_loss: float
              ) -> OperatingPoint:
    """The cheapest point within ``max_loss`` points of ``full_accuracy`` (else the most
    accurate one)."""
    within = [p for p in points if p.accuracy >= full_accuracy - max_loss - 1e-9]
    if within:
        return min(within, key=lambda p: (p.flops, -p.accuracy))
    return max(points, key=lambda p: (p.accuracy, -p.flops))


@torch.no_grad()
def assigner_logits(assigner: TokenLengthAssigner, images: torch.Tensor,
                    batch_size: int = PREDICT_BATCH) -> torch.Tensor:
    assigner.eval()
    return torch.cat([assigner(images[i:i + batch_size]).float()
                      for i in range(0, len(images), batch_size)])


def rule_point(rule: SkipRule | CascadeRule, confidence: torch.Tensor, correct: torch.Tensor,
               costs: torch.Tensor, policy: str | None = None) -> OperatingPoint:
    """What a simple peer's rule gives from cached top probabilities (K, N); ``policy`` names
    its kind (default the rule's, merged or plain)."""
    hit, spent, length = rule_outcome(rule, confidence, correct, costs)
    point = _point(policy or rule.policy, None, hit, spent, length, correct.shape[0])
    point.rule = rule.as_dict()
    return point


def _peer_run(model: ResizableViT, rule: SkipRule | CascadeRule
              ) -> Callable[[torch.Tensor, int], AdaptiveOutput]:
    if isinstance(rule, SkipRule):
        return lambda x, _: skip_predict(model, x, rule.thresholds, rule.merge)
    return lambda x, _: cascade_predict(model, x, rule.exit, rule.skip, rule.merge)


def pareto(points: Sequence[OperatingPoint]) -> list[int]:
    """Indices of the points no other point beats on both FLOPs and accuracy, cheapest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i].flops, -points[i].accuracy))
    kept, best = [], float("-inf")
    for i in order:
        if points[i].accuracy > best:
            kept.append(i)
            best = points[i].accuracy
    return kept


def top_probability(logits: torch.Tensor) -> torch.Tensor:
    """(K, N) top softmax probability of every length's logits (K, N, C)."""
    return logits.float().softmax(-1).amax(-1)


@dataclass
class Pool:
    """The labelled pool every peer's threshold is chosen on: held-out training images the
    ReViT never saw, with every trained length's logits (a ``revit label`` file)."""

    logits: torch.Tensor  # (K, N, C)
    targets: torch.Tensor  # (N,)
    max_loss: float = 1.0
    source: str | None = None
    # (length, ToMe rate) -> logits (N, C) and FLOPs per image of that merged pass
    merged: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    merged_flops: dict[tuple[int, int], int] = field(default_factory=dict)

    def merge_options(self) -> list[tuple[int, ...]]:
        """Every per-length choice of ToMe rate the merged passes allow (some merging)."""
        count = self.logits.shape[0]
        rates = [sorted({0} | {r for k, r in self.merged if k == length})
                 for length in range(count)]
        return [combo for combo in itertools.product(*rates) if any(combo)]

    @property
    def correct(self) -> torch.Tensor:
        return correct_by_length(self.logits.float(), self.targets)

    @property
    def full_accuracy(self) -> float:
        return round(100.0 * float(self.correct[-1].float().mean()), 2)


@dataclass
class PeerChoice:
    """A simple peer's rule as chosen on the pool, and why."""

    name: str
    kind: str  # confidence-skip, fair cascade or cascade (the shared threshold)
    rule: SkipRule | CascadeRule
    pool_point: OperatingPoint | None
    chosen_for: list[str]


def merged_view(logits: torch.Tensor, costs: torch.Tensor,
                merged: dict[tuple[int, int], torch.Tensor],
                merged_flops: dict[tuple[int, int], int], merge: Sequence[int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-length logits (K, N, C) and FLOPs (K,) when length k merges ``merge[k]`` tokens per
    block (0 or an empty ``merge``: the plain pass)."""
    if not any(merge):
        return logits, costs
    return (torch.stack([logits[k] if r == 0 else merged[k, r].to(logits.dtype)
                         for k, r in enumerate(merge)]),
            torch.tensor([int(costs[k]) if r == 0 else int(merged_flops[k, r])
                          for k, r in enumerate(merge)], dtype=torch.int64))


def _rule_points(kind: str, rules: list[SkipRule | CascadeRule], confidence: torch.Tensor,
                 correct: torch.Tensor, costs: torch.Tensor, policy: str
                 ) -> list[OperatingPoint]:
    """``rules`` on the pool, then one round of single-threshold moves around their front
    (matters where the grid was thinned, four or more lengths; elsewhere every move is already
    in the grid; never for the plain cascade, whose grid is one shared threshold)."""
    points = [rule_point(rule, confidence, correct, costs, policy) for rule in rules]
    tried = set(rules)
    for i in pareto(points) if kind != "cascade" else ():
        for rule in neighbours(rule_from_dict(points[i].rule)):
            if rule not in tried:
                tried.add(rule)
                points.append(rule_point(rule, confidence, correct, costs, policy))
    return points


def choose_peers(pool: Pool, costs: torch.Tensor, targets: dict[str, float],
                 kinds: Sequence[str] = PEER_KINDS,
                 shared_threshold: float | None = None
                 ) -> tuple[list[PeerChoice], dict[str, list[OperatingPoint]]]:
    """Each peer kind's rules on the pool: the cheapest within ``pool.max_loss`` points of the
    full length there, and for each entry of ``targets`` (a TLA's label -> its cross-fitted pool
    accuracy) the cheapest at least that accurate (else the most accurate). Returns the
    choices (identical rules merged) and each kind's Pareto-optimal pool points (for the
    drawn sweeps). ``shared_threshold`` overrides the plain cascade's calibrated threshold.
    When the pool holds merged passes, each of :data:`MERGED_KINDS` is also searched over
    every per-length ToMe rate (:meth:`Pool.merge_options`) as its own kind."""
    confidence, correct = top_probability(pool.logits), pool.correct
    if confidence.shape[0] != len(costs):
        raise ConfigError(f"the pool has {confidence.shape[0]} token lengths, the ReViT "
                          f"{len(costs)}")
    full = pool.full_accuracy
    choices: list[PeerChoice] = []
    frontiers: dict[str, list[OperatingPoint]] = {}
    searches = [(kind, kind, [()]) for kind in kinds]
    if pool.merged:
        options = pool.merge_options()
        searches += [(kind, merged_kind(kind), options) for kind in MERGED_KINDS
                     if kind in kinds]
    for kind, policy, merges in searches:
        points = []
        for merge in merges:
            logits, spent = merged_view(pool.logits, costs, pool.merged, pool.merged_flops,
                                        merge)
            rules = with_merge(rule_grid(kind, len(costs)), merge)
            points += _rule_points(kind, rules, top_probability(logits),
                                   correct_by_length(logits.float(), pool.targets), spent, policy)
        frontiers[policy] = [points[i] for i in pareto(points)]
        wanted = [(policy, f"within {pool.max_loss:g} points of the full length on the pool",
                   calibrate(points, full, pool.max_loss))]
        if kind == "cascade" and shared_threshold is not None:
            rule = shared_cascade(shared_threshold, len(costs))
            wanted = [(kind, f"threshold {shared_threshold:g} given",
                       rule_point(rule, confidence, correct, costs, kind))]
        for label, accuracy in targets.items():
            reaching = [p for p in points if p.accuracy >= accuracy - 1e-9]
            point = (min(reaching, key=lambda p: (p.flops, -p.accuracy)) if reaching
                     else max(points, key=lambda p: (p.accuracy, -p.flops)))
            wanted.append((f"{policy} at {label} accuracy",
                           f"at least {label}'s pool accuracy {accuracy:.2f}%", point))
        mine: list[PeerChoice] = []
        for name, reason, point in wanted:
            same = next((c for c in mine if c.pool_point.rule == point.rule), None)
            if same is not None:
                same.chosen_for.append(reason)
                continue
            mine.append(PeerChoice(name, policy, rule_from_dict(point.rule), point, [reason]))
        choices += mine
    return choices, frontiers


@torch.no_grad()
def timed_run(fn: Callable[[torch.Tensor, int], AdaptiveOutput | torch.Tensor],
              images: torch.Tensor, batch_size: int
              ) -> tuple[list[float], torch.Tensor, torch.Tensor | None]:
    """Seconds of each batch of ``fn(batch, offset)`` over ``images``, its predictions, and
    its per-image FLOPs when it reports them."""
    batch_seconds, predictions, flops = [], [], []
    for i in range(0, len(images), batch_size):
        start = time.perf_counter()
        out = fn(images[i:i + batch_size], i)
        logits = out.logits if isinstance(out, AdaptiveOutput) else out
        predicted = logits.argmax(-1).cpu()
        if images.is_cuda:
            torch.cuda.synchronize()
        batch_seconds.append(time.perf_counter() - start)
        predictions.append(predicted)
        if isinstance(out, AdaptiveOutput):
            flops.append(out.flops.cpu())
    return batch_seconds, torch.cat(predictions), torch.cat(flops) if flops else None


@dataclass
class MeasuredPoint:
    name: str
    policy: str
    knob: float | None
    accuracy: float  # of the end-to-end run
    cached_accuracy: float  # from the cached per-length logits (equal up to float ties)
    flops: float
    images_per_second: float  # 1 / the median over rounds of seconds per image
    speedup: float  # throughput / the full length's throughput
    accuracy_delta: float  # accuracy - the full length's accuracy (points)
    shares: list[float]
    seconds: list[float] = field(default_factory=list)  # per round, the whole test set
    modelled_images_per_second: float | None = None  # the time model's estimate
    rule: dict | None = None  # a peer's thresholds, or ToMe's rate
    pool_accuracy: float | None = None  # where it was chosen (peers: in-sample on the pool)
    pool_flops: float | None = None
    chosen_for: list[str] = field(default_factory=list)
    batch_seconds: list[list[float]] = field(default_factory=list)  # (rounds, batches)


@dataclass
class ReViTEvaluation:
    lengths: list[dict]
    length_flops: list[int]
    assigner_flops: int | dict[str, int]
    test_images: int
    batch_size: int
    repeats: int
    threads: int
    measured: list[MeasuredPoint]
    curves: dict[str, list[OperatingPoint]]
    label_histogram: list[int]
    calibration: dict
    fixed_grids: list[int] = field(default_factory=list)
    time_model: dict = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)
    pool: dict = field(default_factory=dict)
    resamples: int = 0
    seed: int = 0
    tome_rates: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReViTEvaluation:
        """Back from :meth:`as_dict` (or an eval JSON), e.g. to redraw its table and plot."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["measured"] = [MeasuredPoint(**p) for p in data["measured"]]
        fields["curves"] = {k: [OperatingPoint(**p) for p in v]
                            for k, v in data["curves"].items()}
        return cls(**fields)


def tla_name(name: str, count: int) -> str:
    return "TLA" if count == 1 else f"TLA {name}"


def fixed_name(tokens: int) -> str:
    return f"fixed {tokens} tokens"


def tome_name(rate: int) -> str:
    return f"ToMe r={rate}"


@dataclass
class _Runner:
    policy: str
    run: Callable[[torch.Tensor, int], AdaptiveOutput | torch.Tensor]
    expected: OperatingPoint | None = None  # from the cached logits
    knob: float | None = None
    rule: dict | None = None
    pool_point: OperatingPoint | None = None
    chosen_for: list[str] = field(default_factory=list)
    flops: float | None = None  # per image, for runs that return plain logits


@torch.no_grad()
def evaluate_revit(
    model: ResizableViT,
    assigners: Sequence[tuple[str, TokenLengthAssigner, float | None]],
    images: torch.Tensor,
    targets: torch.Tensor,
    cascade_threshold: float | None = None,
    batch_size: int = 256,
    repeats: int = DEFAULT_REPEATS,
    none_correct: str = "largest",
    calibration: dict | None = None,
    progress: Callable[[str], None] | None = None,
    fixed_model: ResizableViT | None = None,
    pool: Pool | None = None,
    pool_accuracy: dict[str, float] | None = None,
    tome_rates: Sequence[int] = TOME_RATES,
    resamples: int = 1000,
    seed: int = 0,
) -> ReViTEvaluation:
    """Every policy on normalised ``images`` (N, C, H, W) with labels ``targets``.

    ``assigners``: (name, assigner, knob) for each TLA to compare; ``pool_accuracy``: each
    one's cross-fitted pool accuracy (name -> %), which its matched peers must reach on the
    pool. ``pool``: where the peers' thresholds are chosen (without one, only the plain cascade
    at ``cascade_threshold`` and ToMe run). ``fixed_model``: the same weights at every fixed
    grid to measure (it must include the trained grids of ``model``); by default the trained
    lengths only. ``repeats``: interleaved timing rounds; ``resamples``: bootstrap draws.
    """
    if repeats < 1:
        raise ConfigError(f"need at least one timing round, got repeats={repeats}")
    count = model.num_lengths
    check_rates(model, tome_rates, count - 1)
    model.eval()
    fixed_model = (fixed_model or model).eval()
    targets = targets.cpu()
    costs = lengths_flops(model)
    logits = logits_by_length(model, images, batch_size)
    correct = correct_by_length(logits, targets)
    fixed_index = {length.grid: i for i, length in enumerate(fixed_model.lengths)}
    missing = [length.grid for length in model.lengths if length.grid not in fixed_index]
    if missing:
        raise ValueError(f"the fixed-length model lacks the trained grids {missing}")
    fixed_logits = logits_by_length(fixed_model, images, batch_size)
    fixed_correct = correct_by_length(fixed_logits, targets)
    fixed_costs = lengths_flops(fixed_model)
    oracle_route = token_length_labels(correct, none_correct)
    oracle_route = torch.where(oracle_route < 0, count - 1, oracle_route)
    n = len(targets)

    curves: dict[str, list[OperatingPoint]] = {
        "fixed": [_point("fixed", float(length.tokens), fixed_correct[g], fixed_costs[g]
                         .expand(n), torch.zeros(n, dtype=torch.int64), 1)
                  for g, length in enumerate(fixed_model.lengths)],
        "cascade": [cascade_point(t, logits, correct, costs) for t in CASCADE_GRID],
        "oracle": [routed_point("oracle", None, correct, costs, oracle_route)],
    }
    for point, length in zip(curves["fixed"], fixed_model.lengths):
        point.shares = [1.0 if length.grid == trained.grid else 0.0 for trained in model.lengths]
    tla_outputs = {name: assigner_logits(assigner, assigner_inputs(assigner.config, images, logits))
                   .cpu() for name, assigner, _ in assigners}
    for name, assigner, _ in assigners:
        curves[f"tla:{name}"] = [assigned_point(knob, correct, costs, assigner, tla_outputs[name])
                                 for knob in knob_grid(assigner.config)]

    runners: dict[str, _Runner] = {}
    for g, length in enumerate(fixed_model.lengths):
        runners[fixed_name(length.tokens)] = _Runner(
            "fixed", lambda x, _, g=g: predict_at(fixed_model, x, g), curves["fixed"][g])
    labels = {tla_name(name, len(assigners)): name for name, _, _ in assigners}
    for name, assigner, knob in assigners:
        runners[tla_name(name, len(assigners))] = _Runner(
            "tla", lambda x, _, a=assigner, k=knob: bucketed_predict(model, a, x, k),
            assigned_point(knob, correct, costs, assigner, tla_outputs[name]), knob=knob)
    runners["oracle"] = _Runner(
        "oracle", lambda x, at: predict_at(model, x, oracle_route[at:at + len(x)]),
        curves["oracle"][0])

    peers: list[PeerChoice] = []
    merged: dict[tuple[int, int], torch.Tensor] = {}  # the merged passes on test
    if pool is not None and pool.merged:
        merged = {(k, r): tome_logits(model, images, r, k, batch_size) for k, r in pool.merged}

    def rule_on_test(rule: SkipRule | CascadeRule, policy: str) -> OperatingPoint:
        view, spent = merged_view(logits, costs, merged, pool.merged_flops if pool else {},
                                  rule.merge)
        return rule_point(rule, top_probability(view), correct_by_length(view.float(), targets),
                          spent, policy)

    if pool is not None:
        wanted = {label: (pool_accuracy or {}).get(name) for label, name in labels.items()}
        peers, frontiers = choose_peers(pool, costs, {k: v for k, v in wanted.items()
                                                      if v is not None},
                                        shared_threshold=cascade_threshold)
        for kind in ("confidence-skip", "fair cascade",
                     *(merged_kind(k) for k in MERGED_KINDS if merged)):
            curves[kind] = [rule_on_test(rule_from_dict(p.rule), kind) for p in frontiers[kind]]
    else:
        threshold = 0.9 if cascade_threshold is None else cascade_threshold
        rule = shared_cascade(threshold, count)
        peers = [PeerChoice("cascade", "cascade", rule, None,
                            [f"threshold {threshold:g} given (no pool)"])]
    for choice in peers:
        rule = choice.rule
        expected = rule_on_test(rule, choice.kind)
        knob = rule.exit[0] if choice.kind == "cascade" else None
        runners[choice.name] = _Runner(choice.kind, _peer_run(model, rule), expected, knob=knob,
                                       rule=rule.as_dict(), pool_point=choice.pool_point,
                                       chosen_for=choice.chosen_for)
    for rate in tome_rates:
        runners[tome_name(rate)] = _Runner(
            "tome", lambda x, _, r=rate: tome_forward(model, x, r, length=count - 1),
            rule={"kind": "ToMe", "r": rate, "length": count - 1},
            flops=tome_flops(model, rate, length=count - 1))
    shortest = logits[0].float()
    alone = {f"assigner {name}": (
        (lambda x, at, a=assigner: a(shortest[at:at + len(x)].to(x.device)))
        if assigner.config.reads_coarse_pass else (lambda x, _, a=assigner: a(x)))
        for name, assigner, _ in assigners}

    timed = {**{name: r.run for name, r in runners.items()}, **alone}
    batch_seconds: dict[str, list[list[float]]] = {name: [] for name in timed}
    predictions: dict[str, torch.Tensor] = {}
    per_image_flops: dict[str, torch.Tensor | None] = {}
    for run in timed.values():  # warm-up: caches, allocator, every code path once
        timed_run(run, images[:batch_size], batch_size)
    generator = torch.Generator().manual_seed(seed)
    names = list(timed)
    for round_index in range(repeats):
        for i in torch.randperm(len(names), generator=generator).tolist():
            name = names[i]
            seconds, predicted, flops = timed_run(timed[name], images, batch_size)
            batch_seconds[name].append(seconds)
            if name not in predictions:
                predictions[name], per_image_flops[name] = predicted, flops
            if progress:
                progress(f"round {round_index + 1}/{repeats} {name}: {sum(seconds):.2f} s")

    per_image = {name: statistics.median(sum(s) for s in rounds) / n
                 for name, rounds in batch_seconds.items()}
    length_time = torch.tensor([per_image[fixed_name(length.tokens)] for length in model.lengths],
                               dtype=torch.float64)
    assigner_time = {name: per_image[f"assigner {name}"] for name, _, _ in assigners}
    coarse = {name for name, assigner, _ in assigners if assigner.config.reads_coarse_pass}
    model_time = _time_model(curves, logits, length_time, assigner_time, coarse)
    full_name = fixed_name(model.lengths[-1].tokens)
    full_correct = predictions[full_name] == targets
    measured, outcome, spent = [], [], []
    for name, runner in runners.items():
        hit = predictions[name] == targets
        flops = per_image_flops[name]
        if flops is None:
            flops = torch.full((n,), float(runner.flops if runner.flops is not None
                                           else runner.expected.flops), dtype=torch.float64)
        accuracy = round(100.0 * float(hit.float().mean()), 2)
        expected = runner.expected
        modelled = None
        if runner.policy in ("tla", "oracle"):
            tla = labels.get(name)
            extra = assigner_time[tla] if runner.policy == "tla" else 0.0
            modelled = 1.0 / routed_seconds(expected.shares, length_time, extra, tla in coarse)
        elif runner.policy == "cascade" and runner.knob is not None:
            modelled = 1.0 / _cascade_time(runner.knob, logits, length_time)
        measured.append(MeasuredPoint(
            name=name, policy=runner.policy, knob=runner.knob, accuracy=accuracy,
            cached_accuracy=accuracy if expected is None else expected.accuracy,
            flops=float(flops.double().mean()),
            images_per_second=round(1.0 / per_image[name], 1),
            speedup=round(per_image[full_name] / per_image[name], 3),
            accuracy_delta=round(accuracy - 100.0 * float(full_correct.float().mean()), 2),
            shares=[] if expected is None else expected.shares,
            seconds=[round(sum(s), 4) for s in batch_seconds[name]],
            modelled_images_per_second=None if modelled is None else round(modelled, 1),
            rule=runner.rule,
            pool_accuracy=None if runner.pool_point is None else runner.pool_point.accuracy,
            pool_flops=None if runner.pool_point is None else runner.pool_point.flops,
            chosen_for=runner.chosen_for,
            batch_seconds=[[round(s, 6) for s in rounds] for rounds in batch_seconds[name]]))
        outcome.append(hit)
        spent.append(flops.double())
    starts = list(range(0, n, batch_size))
    batch_of = torch.arange(n) // batch_size
    sizes = torch.tensor([min(batch_size, n - s) for s in starts], dtype=torch.float64)
    seconds = torch.stack([torch.tensor(p.batch_seconds, dtype=torch.float64)[:, batch_of]
                           / sizes[batch_of] for p in measured])  # (P, R, N)
    bootstrap = TimingBootstrap(seconds, torch.stack(outcome), torch.stack(spent), resamples, seed)
    comparisons = _compare(measured, bootstrap, runners)
    comparisons["fixed_frontier"] = [[round(c, 9), a] for c, a in mixture_frontier(
        [(1.0 / p.images_per_second, p.accuracy) for p in measured if p.policy == "fixed"])]
    for point in curves["fixed"]:
        point.seconds_per_image = per_image[fixed_name(int(point.knob))]
    histogram = torch.bincount(oracle_route, minlength=count).tolist()
    return ReViTEvaluation(
        lengths=[length.as_dict() for length in model.lengths],
        length_flops=costs.tolist(),
        assigner_flops=({name: a.flops() for name, a, _ in assigners} if len(assigners) != 1
                        else assigners[0][1].flops()),
        test_images=n, batch_size=batch_size, repeats=repeats,
        threads=torch.get_num_threads(), measured=measured, curves=curves,
        label_histogram=histogram, calibration=calibration or {},
        fixed_grids=[length.grid for length in fixed_model.lengths],
        time_model={"seconds_per_image_by_length": [round(float(t), 9) for t in length_time],
                    "assigner_seconds_per_image": {k: round(v, 9)
                                                   for k, v in assigner_time.items()},
                    "note": model_time},
        comparisons=comparisons,
        pool={} if pool is None else {"source": pool.source, "images": len(pool.targets),
                                      "full_length_accuracy": pool.full_accuracy,
                                      "max_loss": pool.max_loss,
                                      "tla_pool_accuracy": pool_accuracy or {}},
        resamples=resamples, seed=seed, tome_rates=list(tome_rates))


def _cascade_time(knob: float, logits: torch.Tensor, length_time: torch.Tensor) -> float:
    """Seconds per image of a cascade: every image pays each length it reaches."""
    confident = logits.float().softmax(-1).amax(-1) >= knob  # (K, N)
    confident[-1] = True
    exit_at = confident.to(torch.int8).argmax(0)
    reach = torch.stack([(exit_at >= k).double().mean() for k in range(len(length_time))])
    return float(reach @ length_time)


def _time_model(curves: dict[str, list[OperatingPoint]], logits: torch.Tensor,
                length_time: torch.Tensor, assigner_time: dict[str, float],
                coarse: set[str]) -> str:
    """Fill in the modelled seconds per image of the TLA and cascade sweeps (drawn only)."""
    for key, points in curves.items():
        for point in points:
            if key == "cascade":
                point.seconds_per_image = _cascade_time(point.knob, logits, length_time)
            elif key.startswith("tla:"):
                name = key.removeprefix("tla:")
                point.seconds_per_image = routed_seconds(
                    point.shares, length_time, assigner_time.get(name, 0.0), name in coarse)
    return ("routed policies: sum_k share_k t_k (+ the assigner alone; + t_0 for every image "
            "a router on the shortest pass sends on); cascade: sum_k P(reach k) t_k; t_k "
            "measured per trained length; for drawing the sweeps only, never for a ratio")


def _verdict(entry: dict) -> str:
    versus = entry["throughput_vs_simple_peers"]
    low = versus["ci"][0]
    if versus["ratio"] is None:
        return ("no simple peer point reaches its accuracy at a lower cost: no comparison at "
                "equal accuracy")
    if low is not None and low > 1.0:
        return "claim stands: its interval against the simple peers' curve is above 1.0x"
    return "a simple peer is as good: the interval against the simple peers' curve reaches 1.0x"


def _compare(measured: list[MeasuredPoint], bootstrap: TimingBootstrap,
             runners: dict[str, _Runner]) -> dict:
    """Every non-fixed point against the fixed-length curve (throughput with its interval,
    FLOPs beside it); each TLA and the oracle also against every simple peer's curve, the
    simple peers' curve (all of them and the fixed lengths), and the peers chosen on the pool
    to match it. A merged peer (``"<kind> + ToMe"``) also stands against the other simple
    peers' curve (every unmerged peer, ToMe and the fixed lengths) and ToMe's alone: what
    stacking the two savings adds to either."""
    index = {p.name: i for i, p in enumerate(measured)}
    fixed = [i for i, p in enumerate(measured) if p.policy == "fixed"]
    families: dict[str, list[int]] = {}
    for i, p in enumerate(measured):
        if p.policy in FAMILIES:
            families.setdefault(FAMILIES[p.policy], []).append(i)
    simple = fixed + [i for members in families.values() for i in members]
    result: dict = {"simple_peers": [measured[i].name for i in simple if i not in fixed],
                    "rounds": len(measured[0].seconds) if measured else 0,
                    "resamples": bootstrap.resamples}
    for i, point in enumerate(measured):
        if point.policy == "fixed":
            continue
        entry = {"accuracy": point.accuracy, "accuracy_ci": bootstrap.accuracy_interval(i),
                 "images_per_second": point.images_per_second,
                 "throughput_vs_fixed_curve": bootstrap.versus_curve(i, fixed),
                 "flops_ratio_vs_fixed": bootstrap.flops_versus_curve(i, fixed)}
        if point.policy in MERGED_POLICIES:
            unmerged = [j for j in simple if measured[j].policy not in MERGED_POLICIES]
            tome = fixed + families.get("ToMe", [])
            entry["throughput_vs_simple_peers"] = bootstrap.versus_curve(i, unmerged)
            entry["flops_ratio_vs_simple_peers"] = bootstrap.flops_versus_curve(i, unmerged)
            entry["throughput_vs"] = {"ToMe": bootstrap.versus_curve(i, tome)}
            entry["flops_ratio_vs"] = {"ToMe": bootstrap.flops_versus_curve(i, tome)}
        if point.policy in ("tla", "oracle"):
            entry["throughput_vs_simple_peers"] = bootstrap.versus_curve(i, simple)
            entry["flops_ratio_vs_simple_peers"] = bootstrap.flops_versus_curve(i, simple)
            entry["throughput_vs"] = {family: bootstrap.versus_curve(i, fixed + members)
                                      for family, members in families.items()}
            entry["flops_ratio_vs"] = {family: bootstrap.flops_versus_curve(i, fixed + members)
                                       for family, members in families.items()}
        if point.policy == "tla":
            entry["matched"] = {other: bootstrap.versus_policy(i, index[other])
                                for other, runner in runners.items()
                                if any(point.name in reason for reason in runner.chosen_for)}
            entry["verdict"] = _verdict(entry)
        result[point.name] = entry
    return result


def _ratio_text(summary: dict | float | None) -> str:
    if isinstance(summary, (int, float)):  # an eval JSON from before issue #24: one median
        return f"{summary:.2f}x"
    if not summary or summary.get("ratio") is None:
        return "n/a"
    low, high = summary["ci"]
    span = "" if low is None and high is None else (
        f" [{'n/a' if low is None else f'{low:.2f}'}, {'n/a' if high is None else f'{high:.2f}'}]")
    return f"{summary['ratio']:.2f}x{span}"


def _merge_text(rule: dict) -> str:
    merge = rule.get("merge")
    return f"; ToMe r {' / '.join(map(str, merge))}" if merge else ""


def markdown_table(evaluation: ReViTEvaluation) -> str:
    rounds = evaluation.repeats
    lines = ["| policy | chosen on the pool | top-1 (%) [95% CI] | vs full (points) | "
             "MFLOPs / image | FLOPs ratio vs fixed curve | images/s (median of "
             f"{rounds}) | throughput vs fixed-length curve [95% CI] | vs simple peers' curve "
             "[95% CI] | share per length (short to long) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in evaluation.measured:
        entry = evaluation.comparisons.get(p.name, {})
        knob = ""
        if p.rule and p.rule.get("kind") == "ToMe":
            knob = ""
        elif p.rule and "thresholds" in p.rule:
            knob = (f" ({' / '.join(f'{t:g}' for t in p.rule['thresholds'])}"
                    + _merge_text(p.rule) + ")")
        elif p.rule:
            knob = (f" (exit {' / '.join(f'{t:g}' for t in p.rule['exit'])}"
                    + (f", skip below {p.rule['skip'][0]:g}" if any(p.rule["skip"]) else "")
                    + _merge_text(p.rule) + ")")
        elif p.knob is not None and p.policy != "fixed":
            knob = f" (knob {p.knob:g})"
        pool = "" if p.pool_accuracy is None else f"{p.pool_accuracy:.2f}% on the pool"
        ci = entry.get("accuracy_ci")
        accuracy = f"{p.accuracy:.2f}" + ("" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]")
        shares = (" / ".join(f"{100 * s:.0f}%" for s in p.shares) if sum(p.shares) > 0
                  else "(an untrained grid)" if p.policy == "fixed" else "")
        if p.policy == "fixed":
            on_hull = any(abs(1.0 / p.images_per_second - cost) < 1e-9 and accuracy_ == p.accuracy
                          for cost, accuracy_ in evaluation.comparisons.get("fixed_frontier", []))
            throughput = "on the curve" if on_hull else "below it (a mixture of others beats it)"
            flops_ratio = ""
        else:
            throughput = _ratio_text(entry.get("throughput_vs_fixed_curve"))
            flops_ratio = _ratio_text({**entry.get("flops_ratio_vs_fixed", {}), "ci": [None, None]}
                                      if entry.get("flops_ratio_vs_fixed") else None)
        peers = _ratio_text(entry.get("throughput_vs_simple_peers"))
        lines.append(f"| {p.name}{knob} | {pool} | {accuracy} | {p.accuracy_delta:+.2f} | "
                     f"{p.flops / 1e6:.2f} | {flops_ratio} | {p.images_per_second:.0f} | "
                     f"{throughput} | {peers if entry.get('throughput_vs_simple_peers') else ''}"
                     f" | {shares} |")
    return "\n".join(lines)


def comparison_lines(evaluation: ReViTEvaluation) -> list[str]:
    """One line per TLA: its ratios to the fixed-length curve and to the simple peers at equal
    accuracy with their intervals, the matched peers, the verdict; the oracle's headroom."""
    lines = []
    for name, entry in evaluation.comparisons.items():
        if not isinstance(entry, dict) or "verdict" not in entry:
            continue
        families = "; ".join(f"{family} {_ratio_text(value)}"
                             for family, value in entry.get("throughput_vs", {}).items())
        matched = "; ".join(
            f"{other}: {_ratio_text(value['throughput_ratio'])} its throughput at "
            f"{value['accuracy_difference']['points']:+.2f} points "
            f"[{value['accuracy_difference']['ci'][0]:+.2f}, "
            f"{value['accuracy_difference']['ci'][1]:+.2f}]"
            for other, value in entry.get("matched", {}).items())
        lines.append(
            f"{name}: {entry['accuracy']:.2f}% at {entry['images_per_second']:.0f} images/s; "
            f"throughput {_ratio_text(entry['throughput_vs_fixed_curve'])} the fixed-length "
            f"curve (FLOPs {_ratio_text({**entry['flops_ratio_vs_fixed'], 'ci': [None, None]})})"
            f", {_ratio_text(entry['throughput_vs_simple_peers'])} the simple peers' curve at "
            f"equal accuracy: {entry['verdict']}"
            + (f". Per peer (with the fixed lengths): {families}" if families else "")
            + (f". Against the peers chosen on the pool to match it: {matched}" if matched
               else ""))
    oracle = evaluation.comparisons.get("oracle")
    if oracle:
        lines.append(f"oracle (headroom): {oracle['accuracy']:.2f}% at "
                     f"{oracle['images_per_second']:.0f} images/s = "
                     f"{_ratio_text(oracle['throughput_vs_fixed_curve'])} the fixed-length curve")
    return lines


MARKERS = {"fixed": "k^", "tla": "D", "oracle": "r*", "cascade": "s", "fair cascade": "P",
           "confidence-skip": "v", "tome": "X", merged_kind("fair cascade"): "p",
           merged_kind("confidence-skip"): "<"}
PEER_COLOURS = {"cascade": "tab:purple", "fair cascade": "tab:pink",
                "confidence-skip": "tab:cyan", "tome": "tab:olive",
                merged_kind("fair cascade"): "tab:red", merged_kind("confidence-skip"): "tab:blue"}


def plot(evaluation: ReViTEvaluation, path: str) -> None:
    """Accuracy vs MFLOPs and accuracy vs images/s: the fixed-length curve (every grid, and the
    hull a mixture of lengths reaches), the TLA and peer sweeps (drawn from cached
    predictions; the peers' sweeps are their Pareto rules on the pool), ToMe's rates, the
    measured points and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    sweeps = [k for k in evaluation.curves if k.startswith("tla:")] + [
        k for k in ("cascade", "confidence-skip", "fair cascade",
                    *(merged_kind(k) for k in MERGED_KINDS)) if k in evaluation.curves]
    for key in sweeps:
        points = sorted(evaluation.curves[key], key=lambda p: p.flops)
        label = f"{key.replace('tla:', 'TLA ')} sweep"
        style = "o-" if key.startswith("tla:") else "s-"
        left.plot([p.flops / 1e6 for p in points], [p.accuracy for p in points], style,
                  markersize=3, label=label, alpha=0.8)
        timed = [p for p in points if p.seconds_per_image]
        if timed:
            right.plot([1.0 / p.seconds_per_image for p in timed], [p.accuracy for p in timed],
                       style, markersize=3, label=f"{label} (time model)", alpha=0.6)
    fixed = sorted(evaluation.curves["fixed"], key=lambda p: p.flops)
    left.plot([p.flops / 1e6 for p in fixed], [p.accuracy for p in fixed], "k^--",
              label="fixed lengths")
    for p in fixed:
        left.annotate(f"{p.knob:g}", (p.flops / 1e6, p.accuracy), fontsize=7,
                      xytext=(3, -9), textcoords="offset points")
    tome = sorted((p for p in evaluation.measured if p.policy == "tome"), key=lambda p: p.flops)
    if tome:
        left.plot([p.flops / 1e6 for p in tome], [p.accuracy for p in tome], "X-",
                  label="ToMe at the full length")
    hull = evaluation.comparisons.get("fixed_frontier", [])
    right.plot([1.0 / c for c, _ in hull], [a for _, a in hull], "k--",
               label="fixed-length curve (mixtures)")
    oracle = evaluation.curves["oracle"][0]
    left.plot([oracle.flops / 1e6], [oracle.accuracy], "r*", markersize=12, label="oracle")
    labelled: set[str] = set()
    for p in evaluation.measured:
        marker = MARKERS.get(p.policy, "o")
        family = {"tome": "ToMe", "tla": None, "fixed": None, "oracle": None}.get(p.policy,
                                                                                  p.policy)
        colour = {} if family is None else {"color": PEER_COLOURS.get(p.policy, "grey")}
        right.plot([p.images_per_second], [p.accuracy], marker, markersize=8,
                   markeredgecolor="black", **colour,
                   label=None if family is None or family in labelled else f"{family} (measured)")
        if family is not None:
            labelled.add(family)
        else:  # the peers are told apart by marker (legend); the rest by name
            right.annotate(p.name, (p.images_per_second, p.accuracy), fontsize=6,
                           xytext=(4, 4), textcoords="offset points")
    left.set_xlabel("MFLOPs per image (assigner included)")
    right.set_xlabel(f"images/s (markers measured end to end, median of {evaluation.repeats} "
                     f"rounds; batch {evaluation.batch_size}, {evaluation.threads} "
                     f"thread{'s' if evaluation.threads != 1 else ''})")
    for axis in (left, right):
        axis.set_ylabel("top-1 (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    figure.suptitle("ReViT: every inference policy against the fixed-length curve and the "
                    "simple peers")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
