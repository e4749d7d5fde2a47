"""Accuracy vs FLOPs vs measured throughput of every way to run one ReViT.

Policies: each fixed token length; the TLA (bucketed inference) at its calibrated threshold and
along a threshold sweep; the oracle (each image at its true token-length label: the ceiling a
perfect assigner reaches); the DVT-style confidence cascade at its calibrated threshold and
along a sweep.

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

from vitnas.revit.assigner import TokenLengthAssigner, decide, thresholds_grid
from vitnas.revit.inference import (
    AdaptiveOutput,
    bucketed_predict,
    cascade_predict,
    lengths_flops,
    predict_at,
)
from vitnas.revit.labels import correct_by_length, token_length_labels
from vitnas.revit.model import ResizableViT
from vitnas.revit.training import logits_by_length

CASCADE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97,
                0.99, 1.0)


@dataclass
class OperatingPoint:
    """Accuracy (%) and mean FLOPs per image of one policy at one knob value, with the share of
    images that ended at each length."""

    policy: str
    knob: float | None
    accuracy: float
    flops: float
    shares: list[float]

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


def tla_point(knob: float | None, assigner_logits: torch.Tensor, correct: torch.Tensor,
              costs: torch.Tensor, assigner_flops: int) -> OperatingPoint:
    return routed_point("tla", knob, correct, costs, decide(assigner_logits, knob), assigner_flops)


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
def timed_run(fn: Callable[[torch.Tensor, int], AdaptiveOutput], images: torch.Tensor,
              batch_size: int) -> tuple[float, torch.Tensor]:
    """Seconds to run ``fn(batch, offset)`` over ``images`` in batches, and its predictions."""
    start = time.perf_counter()
    predictions = [fn(images[i:i + batch_size], i).logits.argmax(-1).cpu()
                   for i in range(0, len(images), batch_size)]
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


@dataclass
class ReViTEvaluation:
    lengths: list[dict]
    length_flops: list[int]
    assigner_flops: int
    test_images: int
    batch_size: int
    repeats: int
    threads: int
    measured: list[MeasuredPoint]
    curves: dict[str, list[OperatingPoint]]
    label_histogram: list[int]
    calibration: dict

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate_revit(
    model: ResizableViT,
    assigner: TokenLengthAssigner,
    images: torch.Tensor,
    targets: torch.Tensor,
    tla_threshold: float | None,
    cascade_threshold: float,
    batch_size: int = 256,
    repeats: int = 3,
    none_correct: str = "largest",
    calibration: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReViTEvaluation:
    """Every policy on normalised ``images`` (N, C, H, W) with labels ``targets``."""
    model.eval()
    assigner.eval()
    count = model.num_lengths
    costs = lengths_flops(model)
    logits = logits_by_length(model, images, batch_size)
    correct = correct_by_length(logits, targets.cpu())
    tla_logits = assigner_logits(assigner, images).cpu()
    oracle_route = token_length_labels(correct, none_correct)
    oracle_route = torch.where(oracle_route < 0, count - 1, oracle_route)

    curves = {
        "fixed": [routed_point("fixed", k, correct, costs, torch.full_like(oracle_route, k))
                  for k in range(count)],
        "tla": [tla_point(None, tla_logits, correct, costs, assigner.flops())]
        + [tla_point(t, tla_logits, correct, costs, assigner.flops()) for t in thresholds_grid()],
        "cascade": [cascade_point(t, logits, correct, costs) for t in CASCADE_GRID],
        "oracle": [routed_point("oracle", None, correct, costs, oracle_route)],
    }
    expected = {
        f"length {k} ({model.lengths[k].tokens} tokens)": curves["fixed"][k] for k in range(count)
    }
    expected["TLA"] = tla_point(tla_threshold, tla_logits, correct, costs, assigner.flops())
    expected["oracle"] = curves["oracle"][0]
    expected["cascade"] = cascade_point(cascade_threshold, logits, correct, costs)
    # each runner maps (batch, offset of the batch in the test set) to its output
    runners: dict[str, Callable[[torch.Tensor, int], AdaptiveOutput]] = {
        f"length {k} ({model.lengths[k].tokens} tokens)":
            (lambda x, _, k=k: predict_at(model, x, k))
        for k in range(count)
    }
    runners["TLA"] = lambda x, _: bucketed_predict(model, assigner, x, tla_threshold)
    runners["oracle"] = lambda x, at: predict_at(model, x, oracle_route[at:at + len(x)])
    runners["cascade"] = lambda x, _: cascade_predict(model, x, cascade_threshold)

    seconds: dict[str, list[float]] = {name: [] for name in runners}
    end_to_end: dict[str, float] = {}
    timed_run(runners[next(iter(runners))], images[:batch_size], batch_size)  # warm-up
    for round_index in range(repeats):
        for name, runner in runners.items():
            elapsed, predicted = timed_run(runner, images, batch_size)
            seconds[name].append(elapsed)
            end_to_end[name] = round(100.0 * float((predicted == targets.cpu()).float().mean()), 2)
            if progress:
                progress(f"round {round_index + 1}/{repeats} {name}: {elapsed:.2f} s")

    full_name = f"length {count - 1} ({model.lengths[-1].tokens} tokens)"
    rate = {name: len(images) / statistics.median(values) for name, values in seconds.items()}
    measured = [
        MeasuredPoint(
            name=name, policy=point.policy, knob=point.knob, accuracy=end_to_end[name],
            cached_accuracy=point.accuracy, flops=point.flops,
            images_per_second=round(rate[name], 1),
            speedup=round(rate[name] / rate[full_name], 3),
            accuracy_delta=round(end_to_end[name] - end_to_end[full_name], 2),
            shares=point.shares, seconds=[round(s, 3) for s in seconds[name]])
        for name, point in expected.items()
    ]
    histogram = torch.bincount(oracle_route, minlength=count).tolist()
    return ReViTEvaluation(
        lengths=[length.as_dict() for length in model.lengths],
        length_flops=costs.tolist(), assigner_flops=assigner.flops(),
        test_images=len(images), batch_size=batch_size, repeats=repeats,
        threads=torch.get_num_threads(), measured=measured, curves=curves,
        label_histogram=histogram, calibration=calibration or {})


def markdown_table(evaluation: ReViTEvaluation) -> str:
    lines = ["| policy | top-1 (%) | vs full (points) | MFLOPs / image | images/s | "
             "throughput vs full | share per length (short to long) |",
             "|---|---|---|---|---|---|---|"]
    for p in evaluation.measured:
        knob = "" if p.knob is None or p.policy == "fixed" else f" (knob {p.knob:g})"
        shares = " / ".join(f"{100 * s:.0f}%" for s in p.shares)
        lines.append(f"| {p.name}{knob} | {p.accuracy:.2f} | {p.accuracy_delta:+.2f} | "
                     f"{p.flops / 1e6:.2f} | {p.images_per_second:.0f} | {p.speedup:.2f}x | "
                     f"{shares} |")
    return "\n".join(lines)


def plot(evaluation: ReViTEvaluation, path: str) -> None:
    """Accuracy vs MFLOPs (the sweeps as curves) and accuracy vs measured images/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("tla", "o-"), ("cascade", "s-")):
        points = sorted(evaluation.curves[name][1:] if name == "tla" else evaluation.curves[name],
                        key=lambda p: p.flops)
        left.plot([p.flops / 1e6 for p in points], [p.accuracy for p in points], style,
                  markersize=3, label=f"{'TLA' if name == 'tla' else 'cascade'} sweep")
    fixed = evaluation.curves["fixed"]
    left.plot([p.flops / 1e6 for p in fixed], [p.accuracy for p in fixed], "k^--",
              label="fixed lengths")
    oracle = evaluation.curves["oracle"][0]
    left.plot([oracle.flops / 1e6], [oracle.accuracy], "r*", markersize=12, label="oracle")
    left.set_xlabel("MFLOPs per image (TLA included)")
    left.set_ylabel("top-1 (%)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for p in evaluation.measured:
        marker = {"fixed": "k^", "tla": "o", "oracle": "r*", "cascade": "s"}[p.policy]
        right.plot([p.images_per_second], [p.accuracy], marker, markersize=9)
        right.annotate(p.name, (p.images_per_second, p.accuracy), fontsize=7,
                       xytext=(4, 4), textcoords="offset points")
    right.set_xlabel(f"measured images/s (batch {evaluation.batch_size}, "
                     f"{evaluation.threads} threads)")
    right.set_ylabel("top-1 (%)")
    right.grid(alpha=0.3)
    figure.suptitle("ReViT: accuracy vs cost of every inference policy")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
