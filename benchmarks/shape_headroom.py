"""How much could any training-based signal add beyond shape on ViT-Bench-101? (issue 23)

    python benchmarks/shape_headroom.py [--draws 200] [--ks 10,20] [--out results/calibration]

Hardware: the project's 2-core CPU machine, one process. Expected runtime: about 2 minutes.
It reads only the committed ViT-Bench-101 boards (``results/vitbench101/``) and the cached
shape counts (``results/calibration/shape_features.json``), like
``calibration_simulation.py``, whose tasks, draws and calibrator it reuses, so the ``params``
rows here equal that simulation's.

Why: issue 23's goal asks a k = 10 calibration to beat #params by >= 0.05 tau on every KD label,
which on width-driven labels needs information beyond shape, and brief training was the
candidate. This asks the question from the other end: give the calibrator a signal no proxy can
beat, **the same architecture's accuracy after a full training run**, and see what it adds.
ViT-Bench-101 has such signals for free: each architecture was trained on each dataset under two
recipes (plain, ``*_base_acc``, and distilled, ``*_kd_acc``), so for a KD label the plain run on
the same data is a second full training of the same network on the same task, only under another
recipe; the other datasets' KD runs are full trainings on another task; and AutoFormer's
``imagenet_super_acc`` (weights inherited from a trained supernet) is what one-shot NAS reads.
A brief-training proxy is a cheaper, noisier version of such a run, so where even the full run
adds nothing beyond #params, no brief training can be expected to.

For every space (AutoFormer 100, PiT 100) and KD label, and every signal: its Kendall tau with
the label (95% bootstrap over architectures), its paired difference to #params, its partial tau
given shape (#params, depth, width ranks; ``vitnas.bench.stats.partial_kendall_given``), and the
k-draw calibration (``vitnas.calibrate.fit_ranker`` on the shape features plus the signal, the
simulation's threshold) as mean tau difference to #params with its 2.5/97.5 percentiles over
draws; also the calibrator fitted on all 100 (its leave-one-out tau), the most that a linear
ranking of shape + signal reaches. Signals are read as given, not chosen: nothing is tuned here.

Writes ``OUT/headroom.json`` (every number, the command, the git commit) and ``OUT/headroom.md``.
Expected result: the full run under the other recipe ranks the KD label *worse* than #params on
every label of both spaces; as a calibration feature at k = 10 it adds >= +0.05 over the shape
calibrator only on AutoFormer C100 KD, so on the width-driven labels the goal asks for more
than a second full training run of each candidate supplies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibration_simulation as sim  # noqa: E402  (a sibling script: its tasks and draws)

from vitnas.bench.stats import (  # noqa: E402
    bootstrap_interval,
    kendall_tau_b,
    paired_bootstrap_difference,
    partial_kendall_given,
    rankdata,
)
from vitnas.calibrate import fit_ranker  # noqa: E402
from vitnas.errors import reported
from vitnas.proxies.shape import SHAPE_BASELINES  # noqa: E402

DATASETS = ("c100", "flower", "chaoyang")
RESAMPLES = 1000


def signals_for(space: str, label: str) -> dict[str, str]:
    """Signal name -> the board label it is read from: every other label of the same
    architectures (each a full training run), the other recipe on the same data first."""
    dataset = label.split("_")[0]
    out = {f"{dataset} plain run (same data, other recipe)": f"{dataset}_base_acc"}
    for other in DATASETS:
        if other != dataset:
            out[f"{other} KD run (other data)"] = f"{other}_kd_acc"
    if space == "autoformer":
        out["ImageNet supernet-inherited accuracy"] = "imagenet_super_acc"
    return out


def aligned_labels(task: sim.Task, label: str, shapes: dict) -> np.ndarray:
    """``label``'s values in ``task``'s architecture order (boards share keys per split)."""
    other = sim.Task(task.space, label, shapes)
    if other.keys != task.keys:
        raise SystemExit(f"shape_headroom: the {task.space} boards of {task.label} and {label} "
                         f"list different architectures")
    return other.labels


def shape_covariates(task: sim.Task) -> np.ndarray:
    return np.column_stack([task.features[name] for name in ("params", "depth", "width")])


def calibration_gain(task: sim.Task, specs: tuple[str, ...], k: int, draws: int, seed: int,
                     threshold: float) -> dict:
    """Mean tau difference to #params (with percentiles over draws) of the calibrator on
    ``specs``, and how often it left the prior."""
    result = sim.simulate(task, k, draws, seed, {
        "params": sim.methods_for(0.0, (), None)["params"],
        "calibrated": lambda t, tr, re: sim.calibrated(t, tr, re, specs, threshold)})
    row = sim.summarise(result)["calibrated"]
    return {key: row[key] for key in ("mean", "diff_mean", "diff_low", "diff_high",
                                      "fitted_fraction")}


def full_fit(task: sim.Task, specs: tuple[str, ...]) -> dict:
    """The calibrator fitted on every architecture: leave-one-out taus of #params and the fit."""
    ranker = fit_ranker({s: task.features[s] for s in specs}, task.labels, threshold=0.0)
    return {"loo_tau_params": ranker.loo_tau_prior, "loo_tau_fitted": ranker.loo_tau_fitted,
            "gain": ranker.loo_tau_fitted - ranker.loo_tau_prior}


def rank_ols_loo(task: sim.Task, extra: np.ndarray | None = None) -> float:
    """Leave-one-out Kendall tau of an unconstrained least-squares fit of the label's ranks on
    the ranks of #params, depth and width (and ``extra``): a check that does not depend on the
    calibrator's transforms, sign constraint or prior."""
    columns = [rankdata(task.features[name]) for name in ("params", "depth", "width")]
    if extra is not None:
        columns.append(rankdata(extra))
    design = np.column_stack([np.ones(len(task)), *columns])
    target = rankdata(task.labels)
    predicted = np.empty(len(task))
    for i in range(len(task)):
        keep = np.arange(len(task)) != i
        weights, *_ = np.linalg.lstsq(design[keep], target[keep], rcond=None)
        predicted[i] = design[i] @ weights
    return kendall_tau_b(predicted, task.labels)


def measure(task: sim.Task, shapes: dict, ks: tuple[int, ...], draws: int, seed: int,
            threshold: float) -> dict:
    labels, params = task.labels, task.features["params"]
    covariates = shape_covariates(task)
    shape_taus = {s: kendall_tau_b(task.features[s], labels) for s in SHAPE_BASELINES}
    hindsight = max(shape_taus, key=lambda s: shape_taus[s])
    row: dict = {
        "n": len(task), "params_tau": shape_taus["params"],
        "best_shape_in_hindsight": {"name": hindsight, "tau": shape_taus[hindsight]},
        "shape_calibrator": {str(k): calibration_gain(task, sim.SHAPE_FEATURES, k, draws, seed,
                                                      threshold) for k in ks},
        "shape_calibrator_all": full_fit(task, sim.SHAPE_FEATURES),
        "rank_ols_loo_shape": rank_ols_loo(task),
        "signals": {},
    }
    for name, source in signals_for(task.space, task.label).items():
        values = aligned_labels(task, source, shapes)
        spec = f"signal:{source}"
        task.features[spec] = values
        specs = sim.SHAPE_FEATURES + (spec,)
        interval = bootstrap_interval(values, labels, kendall_tau_b, RESAMPLES)
        difference = paired_bootstrap_difference(values, params, labels, resamples=RESAMPLES)
        partial_interval = bootstrap_interval(
            np.arange(len(labels)), labels,
            lambda idx, y, values=values: partial_kendall_given(
                values[idx.astype(int)], y, covariates[idx.astype(int)]), RESAMPLES)
        row["signals"][name] = {
            "label": source,
            "tau": kendall_tau_b(values, labels), "tau_low": interval.low,
            "tau_high": interval.high,
            "minus_params": kendall_tau_b(values, labels) - shape_taus["params"],
            "minus_params_low": difference.low, "minus_params_high": difference.high,
            "partial_given_shape": partial_kendall_given(values, labels, covariates),
            "partial_low": partial_interval.low, "partial_high": partial_interval.high,
            "calibrated": {str(k): calibration_gain(task, specs, k, draws, seed, threshold)
                           for k in ks},
            "calibrated_all": full_fit(task, specs),
            "rank_ols_loo": rank_ols_loo(task, values),
        }
        del task.features[spec]
        measured = row["signals"][name]
        print(f"{task.space} {task.label} <- {source}: tau {measured['tau']:.3f}, k={ks[0]} "
              f"calibrated {measured['calibrated'][str(ks[0])]['diff_mean']:+.3f} over params",
              file=sys.stderr)
    return row


def markdown(result: dict) -> str:
    ks = result["ks"]
    k = str(ks[0])
    lines = [
        "# Headroom beyond shape on ViT-Bench-101 (issue 23)", "",
        f"`{result['command']}` (commit {result['commit']}, {result['wall_seconds']:.0f} s)", "",
        "Each signal is a *full training run* of the same architecture (another recipe, another "
        "dataset, or supernet-inherited weights): more than any brief-training or zero-cost "
        "proxy can know. tau: Kendall tau with the KD label [95% bootstrap over architectures]; "
        "- params: paired difference; partial: tau given #params, depth and width ranks; "
        f"calibrated k = {k}: shape features + the signal, mean tau difference to #params "
        f"[2.5, 97.5 percentiles over {result['draws']} draws] (the shape-only calibrator's in "
        "the header row); all 100: the calibrator fitted on every architecture, leave-one-out "
        "tau minus #params'; rank OLS: an unconstrained least-squares fit of the label's ranks "
        "on the ranks of #params, depth, width and the signal, its leave-one-out tau (beside "
        "the same fit without the signal, in the header).", ""]
    for name, row in result["tables"].items():
        shape = row["shape_calibrator"][k]
        best = row["best_shape_in_hindsight"]
        lines += [f"## {name} (n = {row['n']}): #params {row['params_tau']:.3f}, best shape in "
                  f"hindsight {best['name']} {best['tau']:.3f}; shape calibrator k = {k} "
                  f"{shape['diff_mean']:+.3f} [{shape['diff_low']:+.2f}, "
                  f"{shape['diff_high']:+.2f}], all 100 "
                  f"{row['shape_calibrator_all']['gain']:+.3f}; rank OLS on #params, depth, width "
                  f"(leave-one-out) {row['rank_ols_loo_shape']:.3f}", "",
                  f"| signal (full training run) | tau [95%] | - params [95%] | partial given "
                  f"shape [95%] | calibrated k = {k}, - params | all 100, - params | rank OLS "
                  f"+ signal (leave-one-out) |",
                  "|---|---|---|---|---|---|---|"]
        for signal, s in row["signals"].items():
            c = s["calibrated"][k]
            lines.append(
                f"| {signal} | {s['tau']:.3f} [{s['tau_low']:.2f}, {s['tau_high']:.2f}] | "
                f"{s['minus_params']:+.3f} [{s['minus_params_low']:+.2f}, "
                f"{s['minus_params_high']:+.2f}] | {s['partial_given_shape']:+.3f} "
                f"[{s['partial_low']:+.2f}, {s['partial_high']:+.2f}] | {c['diff_mean']:+.3f} "
                f"[{c['diff_low']:+.2f}, {c['diff_high']:+.2f}] | "
                f"{s['calibrated_all']['gain']:+.3f} | {s['rank_ols_loo']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--ks", default="10,20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes", default="results/calibration/shape_features.json")
    p.add_argument("--tuning", default="results/calibration/tuning.json",
                   help="the simulation's dev tuning: its evidence threshold is used here")
    p.add_argument("--out", default="results/calibration")
    args = p.parse_args(argv)
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        print(f"shape_headroom: --ks wants integers, got {args.ks!r}", file=sys.stderr)
        return 2
    if args.draws < 1 or not ks or min(ks) < 3:
        print("shape_headroom: --draws must be >= 1 and every k >= 3", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        shapes = sim.shape_features(Path(args.shapes))
        threshold = float(json.loads(Path(args.tuning).read_text())["threshold"])
        tasks = [sim.Task(space, label, shapes) for space in sim.SPACES
                 for label in sim.KD_LABELS]
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"shape_headroom: cannot read the boards, shape counts or tuning: "
              f"{type(err).__name__}: {err}",
              file=sys.stderr)
        return 2
    tables = {f"{task.space} {task.label}": measure(task, shapes, ks, args.draws, args.seed,
                                                    threshold) for task in tasks}
    result = {"command": " ".join(["python benchmarks/shape_headroom.py", *argv]),
              "commit": sim.git_commit(), "draws": args.draws, "ks": list(ks),
              "seed": args.seed, "threshold": threshold,
              "shape_features": list(sim.SHAPE_FEATURES), "tables": tables,
              "wall_seconds": time.perf_counter() - started}
    sim.write_report(Path(args.out), "headroom", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(reported(main, "shape_headroom"))
