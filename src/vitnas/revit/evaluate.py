"""Accuracy vs FLOPs vs measured throughput of every way to run one ReViT.

Policies: the fixed token lengths, including the intermediate grids the trained ones do not
cover (the resize route runs any grid); one or more TLAs (bucketed inference) at their
calibrated knobs and along knob sweeps, a router on the shortest pass (``features='coarse'``)
charged that pass for every image; the oracle (each image at its true token-length label:
the ceiling a perfect assigner reaches); the DVT-style confidence cascade at its calibrated
threshold, at the cheapest threshold at least as accurate as each TLA, and along a sweep.

An adaptive policy counts only above the fixed-length curve: the upper concave hull of the
fixed lengths in (seconds per image, accuracy), which mixing two lengths over the images
reaches (:mod:`vitnas.revit.metrics`). The report gives each TLA's throughput ratio against that
curve and against the cascade at the TLA's own accuracy. Sweeps are placed on the throughput
axis by a time model fitted on the measured runs (seconds per image of each length, and of the
assigner alone; a policy's time = the sum over lengths of the share of images that pass
through each, plus the assigner); the headline points are measured end to end.

Accuracy and FLOPs of the sweeps come from cached predictions (every length's logits on every
test image and the assigner's logits), which give what bucketed inference returns (the tests
check that; a sub-batch can differ in the last float bits, so the measured points report the
end-to-end run's own accuracy beside the cached one). Throughput is measured by running each
operating point end to end over the whole test set in the same process, the policies
interleaved over ``repeats`` rounds, the median kept. Knobs are calibrated on held-out training
images, never on the test set: :func:`calibrate` picks the cheapest knob whose held-out accuracy
stays within ``max_loss`` points of the full length's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from vitnas.revit.assigner import AssignerConfig, TokenLengthAssigner, knob_grid
from vitnas.revit.inference import (
    AdaptiveOutput,
    bucketed_predict,
    cascade_predict,
    lengths_flops,
    predict_at,
)
from vitnas.revit.labels import correct_by_length, token_length_labels
from vitnas.revit.metrics import mixture_frontier, ratio_at_equal_accuracy
from vitnas.revit.model import ResizableViT
from vitnas.revit.training import logits_by_length

CASCADE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
                0.925, 0.95, 0.97, 0.99, 1.0)


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
                    batch_size: int = 1024) -> torch.Tensor:
    assigner.eval()
    return torch.cat([assigner(images[i:i + batch_size]).float()
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def timed_run(fn: Callable[[torch.Tensor, int], AdaptiveOutput | torch.Tensor],
              images: torch.Tensor, batch_size: int) -> tuple[float, torch.Tensor]:
    """Seconds to run ``fn(batch, offset)`` over ``images`` in batches, and its predictions."""
    start = time.perf_counter()
    predictions = []
    for i in range(0, len(images), batch_size):
        out = fn(images[i:i + batch_size], i)
        logits = out.logits if isinstance(out, AdaptiveOutput) else out
        predictions.append(logits.argmax(-1).cpu())
    if images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(predictions)


@dataclass
class MeasuredPoint:
    name: str
    policy: str
    knob: float | None
    accuracy: float  # of the end-to-end run
    cached_accuracy: float  # from the cached per-length logits (equal up to float ties)
    flops: float
    images_per_second: float
    speedup: float  # throughput / the full length's throughput
    accuracy_delta: float  # accuracy - the full length's accuracy (points)
    shares: list[float]
    seconds: list[float] = field(default_factory=list)
    modelled_images_per_second: float | None = None  # the time model's estimate


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


@torch.no_grad()
def evaluate_revit(
    model: ResizableViT,
    assigners: Sequence[tuple[str, TokenLengthAssigner, float | None]],
    images: torch.Tensor,
    targets: torch.Tensor,
    cascade_threshold: float,
    batch_size: int = 256,
    repeats: int = 3,
    none_correct: str = "largest",
    calibration: dict | None = None,
    progress: Callable[[str], None] | None = None,
    fixed_model: ResizableViT | None = None,
) -> ReViTEvaluation:
    """Every policy on normalised ``images`` (N, C, H, W) with labels ``targets``.

    ``assigners``: (name, assigner, knob) for each TLA to compare. ``fixed_model``: the same
    weights at every fixed grid to measure (it must include the trained grids of ``model``);
    by default the trained lengths only.
    """
    model.eval()
    fixed_model = (fixed_model or model).eval()
    targets = targets.cpu()
    count = model.num_lengths
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

    curves: dict[str, list[OperatingPoint]] = {
        "fixed": [_point("fixed", float(length.tokens), fixed_correct[g], fixed_costs[g]
                         .expand(len(targets)), torch.zeros(len(targets), dtype=torch.int64), 1)
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

    expected: dict[str, OperatingPoint] = {
        fixed_name(length.tokens): curves["fixed"][g]
        for g, length in enumerate(fixed_model.lengths)}
    runners: dict[str, Callable] = {
        fixed_name(length.tokens): (lambda x, _, g=g: predict_at(fixed_model, x, g))
        for g, length in enumerate(fixed_model.lengths)}
    for name, assigner, knob in assigners:
        label = tla_name(name, len(assigners))
        expected[label] = assigned_point(knob, correct, costs, assigner, tla_outputs[name])
        runners[label] = (lambda x, _, a=assigner, k=knob: bucketed_predict(model, a, x, k))
    expected["oracle"] = curves["oracle"][0]
    runners["oracle"] = lambda x, at: predict_at(model, x, oracle_route[at:at + len(x)])
    expected["cascade"] = cascade_point(cascade_threshold, logits, correct, costs)
    runners["cascade"] = lambda x, _: cascade_predict(model, x, cascade_threshold)
    # each assigner meets the cascade measured end to end at the cheapest threshold that is
    # at least as accurate (from the cached sweep), not only through the time model
    cascade_for: dict[str, str] = {}
    by_knob = {cascade_threshold: "cascade"}
    for name, _, _ in assigners:
        label = tla_name(name, len(assigners))
        reaching = [p for p in curves["cascade"] if p.accuracy >= expected[label].accuracy]
        matched = (min(reaching, key=lambda p: p.flops) if reaching
                   else max(curves["cascade"], key=lambda p: p.accuracy))
        if matched.knob not in by_knob:
            runner = f"cascade at {label} accuracy"
            by_knob[matched.knob] = runner
            expected[runner] = matched
            runners[runner] = lambda x, _, t=matched.knob: cascade_predict(model, x, t)
        cascade_for[label] = by_knob[matched.knob]
    shortest = logits[0].float()
    alone = {f"assigner {name}": (
        (lambda x, at, a=assigner: a(shortest[at:at + len(x)].to(x.device)))
        if assigner.config.reads_coarse_pass else (lambda x, _, a=assigner: a(x)))
        for name, assigner, _ in assigners}

    seconds: dict[str, list[float]] = {name: [] for name in [*runners, *alone]}
    end_to_end: dict[str, float] = {}
    timed_run(runners[next(iter(runners))], images[:batch_size], batch_size)  # warm-up
    for round_index in range(repeats):
        for name, runner in [*runners.items(), *alone.items()]:
            elapsed, predicted = timed_run(runner, images, batch_size)
            seconds[name].append(elapsed)
            end_to_end[name] = round(100.0 * float((predicted == targets).float().mean()), 2)
            if progress:
                progress(f"round {round_index + 1}/{repeats} {name}: {elapsed:.2f} s")

    n = len(images)
    per_image = {name: statistics.median(values) / n for name, values in seconds.items()}
    length_time = torch.tensor([per_image[fixed_name(length.tokens)] for length in model.lengths],
                               dtype=torch.float64)
    assigner_time = {name: per_image[f"assigner {name}"] for name, _, _ in assigners}
    coarse = {name for name, assigner, _ in assigners if assigner.config.reads_coarse_pass}
    model_time = _time_model(curves, logits, length_time, assigner_time, coarse)
    full_name = fixed_name(model.lengths[-1].tokens)
    rate = {name: 1.0 / per_image[name] for name in runners}
    labels = {tla_name(name, len(assigners)): name for name, _, _ in assigners}
    measured = []
    for name, point in expected.items():
        modelled = None
        if point.policy in ("tla", "oracle"):
            tla = labels.get(name)
            extra = assigner_time[tla] if point.policy == "tla" else 0.0
            modelled = 1.0 / routed_seconds(point.shares, length_time, extra, tla in coarse)
        elif point.policy == "cascade":
            modelled = 1.0 / _cascade_time(point.knob, logits, length_time)
        measured.append(MeasuredPoint(
            name=name, policy=point.policy, knob=point.knob, accuracy=end_to_end[name],
            cached_accuracy=point.accuracy, flops=point.flops,
            images_per_second=round(rate[name], 1),
            speedup=round(rate[name] / rate[full_name], 3),
            accuracy_delta=round(end_to_end[name] - end_to_end[full_name], 2),
            shares=point.shares, seconds=[round(s, 3) for s in seconds[name]],
            modelled_images_per_second=None if modelled is None else round(modelled, 1)))
    comparisons = _compare(measured, curves, assigners, cascade_for)
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
        comparisons=comparisons)


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
    """Fill in every curve point's modelled seconds per image."""
    for key, points in curves.items():
        for point in points:
            if key == "fixed":
                continue  # measured directly below
            if key == "cascade":
                point.seconds_per_image = _cascade_time(point.knob, logits, length_time)
            else:
                name = key.removeprefix("tla:")
                point.seconds_per_image = routed_seconds(
                    point.shares, length_time, assigner_time.get(name, 0.0), name in coarse)
    return ("routed policies: sum_k share_k t_k (+ the assigner alone; + t_0 for every image "
            "a router on the shortest pass sends on); cascade: sum_k P(reach k) t_k; t_k "
            "measured per trained length")


def _compare(measured: list[MeasuredPoint], curves: dict[str, list[OperatingPoint]],
             assigners: Sequence, cascade_for: dict[str, str]) -> dict:
    """Throughput ratios at equal accuracy: each TLA (measured) against the fixed-length curve
    (measured) and the cascade (measured at matched accuracy; the whole cascade sweep through
    the time model); the oracle as headroom; the best point of each sweep."""
    by_name = {p.name: p for p in measured}
    fixed = [(1.0 / p.images_per_second, p.accuracy) for p in measured if p.policy == "fixed"]
    for point in curves["fixed"]:
        tokens = int(point.knob)
        point.seconds_per_image = 1.0 / by_name[fixed_name(tokens)].images_per_second
    frontier = mixture_frontier(fixed)
    cascade_frontier = mixture_frontier([(p.seconds_per_image, p.accuracy)
                                         for p in curves["cascade"]])

    def versus(cost: float, accuracy: float, curve) -> float | None:
        ratio = ratio_at_equal_accuracy(curve, cost, accuracy)
        return None if ratio is None else round(ratio, 3)

    result: dict = {"fixed_frontier": [[round(c, 9), a] for c, a in frontier]}
    for point in measured:
        if point.policy in ("fixed",):
            continue
        cost = 1.0 / point.images_per_second
        # the cascade sweep is placed by the time model, so the policy meets it on that model
        # too (measured mixtures run faster than modelled: measured-vs-modelled flatters)
        modelled = (1.0 / point.modelled_images_per_second if point.modelled_images_per_second
                    else cost)
        entry = {"accuracy": point.accuracy, "images_per_second": point.images_per_second,
                 "throughput_vs_fixed_curve": versus(cost, point.accuracy, frontier),
                 "throughput_vs_cascade_curve": versus(modelled, point.accuracy,
                                                       cascade_frontier)}
        result[point.name] = entry
    for name, _, _ in assigners:
        label = tla_name(name, len(assigners))
        tla = by_name[label]
        matched = by_name.get(cascade_for.get(label, "cascade"))
        if matched is not None:
            result[label]["cascade_matched"] = {
                "cascade": matched.name, "cascade_accuracy": matched.accuracy,
                "throughput_ratio": round(tla.images_per_second / matched.images_per_second, 3)}
        sweep = [(p.accuracy, ratio_at_equal_accuracy(frontier, p.seconds_per_image, p.accuracy))
                 for p in curves[f"tla:{name}"]]
        best = max((r for _, r in sweep if r is not None), default=None)
        result[label]["best_sweep_ratio_vs_fixed"] = None if best is None else round(best, 3)
    sweep = [ratio_at_equal_accuracy(frontier, p.seconds_per_image, p.accuracy)
             for p in curves["cascade"]]
    best = max((r for r in sweep if r is not None), default=None)
    result["cascade_best_sweep_ratio_vs_fixed"] = None if best is None else round(best, 3)
    return result


def markdown_table(evaluation: ReViTEvaluation) -> str:
    lines = ["| policy | top-1 (%) | vs full (points) | MFLOPs / image | images/s | "
             "throughput vs full | vs fixed-length curve at equal accuracy | "
             "share per length (short to long) |",
             "|---|---|---|---|---|---|---|---|"]
    for p in evaluation.measured:
        knob = "" if p.knob is None or p.policy == "fixed" else f" (knob {p.knob:g})"
        shares = (" / ".join(f"{100 * s:.0f}%" for s in p.shares) if sum(p.shares) > 0
                  else "(an untrained grid)")
        ratio = evaluation.comparisons.get(p.name, {}).get("throughput_vs_fixed_curve", "")
        if p.policy == "fixed":
            on_hull = any(abs(1.0 / p.images_per_second - cost) < 1e-9 and accuracy == p.accuracy
                          for cost, accuracy in evaluation.comparisons.get("fixed_frontier", []))
            ratio = "on the curve" if on_hull else "below it (a mixture of others beats it)"
        elif ratio is None:
            ratio = "above every fixed length"
        elif ratio != "":
            ratio = f"{ratio:.2f}x"
        lines.append(f"| {p.name}{knob} | {p.accuracy:.2f} | {p.accuracy_delta:+.2f} | "
                     f"{p.flops / 1e6:.2f} | {p.images_per_second:.0f} | {p.speedup:.2f}x | "
                     f"{ratio} | {shares} |")
    return "\n".join(lines)


def comparison_lines(evaluation: ReViTEvaluation) -> list[str]:
    """One line per TLA: its ratio to the fixed-length curve and to the cascade at equal
    accuracy, and the oracle's headroom."""
    lines = []
    for name, entry in evaluation.comparisons.items():
        if not name.startswith("TLA"):
            continue
        ratio = entry["throughput_vs_fixed_curve"]
        matched = entry.get("cascade_matched", {})
        lines.append(
            f"{name}: {entry['accuracy']:.2f}% at {entry['images_per_second']:.0f} images/s = "
            + ("above every fixed length" if ratio is None else
               f"{ratio:.2f}x the fixed-length curve's throughput at equal accuracy")
            + (f"; {matched['throughput_ratio']:.2f}x the measured cascade's (at "
               f"{matched['cascade_accuracy']:.2f}%)" if matched else "")
            + (f", {entry['throughput_vs_cascade_curve']:.2f}x the cascade sweep's at equal "
               f"accuracy (both on the time model)" if entry.get("throughput_vs_cascade_curve")
               else "")
            + f"; best knob of its sweep {entry['best_sweep_ratio_vs_fixed']}x the fixed curve")
    oracle = evaluation.comparisons.get("oracle")
    if oracle:
        ratio = oracle["throughput_vs_fixed_curve"]
        lines.append(f"oracle (headroom): {oracle['accuracy']:.2f}% at "
                     f"{oracle['images_per_second']:.0f} images/s"
                     + ("" if ratio is None else f" = {ratio:.2f}x the fixed-length curve"))
    return lines


def plot(evaluation: ReViTEvaluation, path: str) -> None:
    """Accuracy vs MFLOPs and accuracy vs images/s, with the fixed-length curve (every grid,
    and the hull a mixture of lengths reaches), every TLA and cascade sweep, the measured
    points and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    sweeps = [k for k in evaluation.curves if k.startswith("tla:")] + ["cascade"]
    for key in sweeps:
        points = sorted(evaluation.curves[key], key=lambda p: p.flops)
        label = "cascade sweep" if key == "cascade" else f"{key.replace('tla:', 'TLA ')} sweep"
        style = "s-" if key == "cascade" else "o-"
        left.plot([p.flops / 1e6 for p in points], [p.accuracy for p in points], style,
                  markersize=3, label=label, alpha=0.8)
        timed = [p for p in points if p.seconds_per_image]
        right.plot([1.0 / p.seconds_per_image for p in timed], [p.accuracy for p in timed],
                   style, markersize=3, label=f"{label} (time model)", alpha=0.8)
    fixed = sorted(evaluation.curves["fixed"], key=lambda p: p.flops)
    left.plot([p.flops / 1e6 for p in fixed], [p.accuracy for p in fixed], "k^--",
              label="fixed lengths")
    for p in fixed:
        left.annotate(f"{p.knob:g}", (p.flops / 1e6, p.accuracy), fontsize=7,
                      xytext=(3, -9), textcoords="offset points")
    hull = evaluation.comparisons.get("fixed_frontier", [])
    right.plot([1.0 / c for c, _ in hull], [a for _, a in hull], "k--",
               label="fixed-length curve (mixtures)")
    oracle = evaluation.curves["oracle"][0]
    left.plot([oracle.flops / 1e6], [oracle.accuracy], "r*", markersize=12, label="oracle")
    for p in evaluation.measured:
        marker = {"fixed": "k^", "tla": "D", "oracle": "r*", "cascade": "s"}[p.policy]
        right.plot([p.images_per_second], [p.accuracy], marker, markersize=8,
                   markeredgecolor="black")
        right.annotate(p.name, (p.images_per_second, p.accuracy), fontsize=7,
                       xytext=(4, 4), textcoords="offset points")
    left.set_xlabel("MFLOPs per image (assigner included)")
    right.set_xlabel(f"images/s (markers measured end to end; batch {evaluation.batch_size}, "
                     f"{evaluation.threads} thread{'s' if evaluation.threads != 1 else ''})")
    for axis in (left, right):
        axis.set_ylabel("top-1 (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("ReViT: every inference policy against the fixed-length curve")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
