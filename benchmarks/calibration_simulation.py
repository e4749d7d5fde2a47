"""Calibration to the user's task, simulated on ViT-Bench-101 (issue 23, item 4).

    python benchmarks/calibration_simulation.py [--draws 200] [--ks 5,10,20] [--labels all]
        [--out results/calibration] [--smoke]

Hardware: the project's 2-core CPU machine, one process. Expected runtime: about 6 minutes
beside another job (2.6 min for the tables, the dev tuning as much again). It reads only the
committed scoreboards (``results/vitbench101/``) and the shape counts of the 200 architectures,
cached in ``results/calibration/shape_features.json`` (``--shapes``; remaking it builds every
model at 224 px, about 3 minutes). ``--smoke``: 5 draws, k = 5 and 10, the CIFAR-100 KD label,
no tuning (threshold 1, nwot), into ``runs/calibration_smoke``: seconds.

What it measures: a user has k trained architectures with a label; which ranking of the other
architectures is best? For every space (AutoFormer: its dev and test boards merged, 100
architectures; PiT: 100) and every label, ``--draws`` seeded draws of k architectures; each
method sees the k labels only and is judged by Kendall tau on the remaining architectures:
- ``params``: #params (the prior);
- ``k-picked shape``: the shape baseline (params, flops, depth, width, logsize, depth>params)
  with the best tau on the k (ties: that order);
- ``default``: the zero-shot search default (``vitnas.recommended.DEFAULT_SEARCH_PROXY``);
- ``calibrated (shape)``: ``vitnas.calibrate.fit_ranker`` on params, flops, depth, width,
  logsize;
- ``calibrated (shape+...)``: the same plus the cheap proxies the dev tuning chose (or, when
  none earned its place, the best single one on dev, for the record).
Each row: mean tau, its 2.5/97.5 percentiles over draws, the mean difference to params with its
percentile interval, how often it ranked worse than params, and how often the calibrator left
the prior; a threshold-sensitivity table shows what other evidence thresholds would have given
(the fitted models do not depend on the threshold, only the choice does).

Choices are made on the AutoFormer dev half only (47 architectures, the three KD labels, k = 10,
draws from the dev half judged on the rest of the dev half; ``RULE``): first the evidence
threshold of the shape calibrator, then proxy features, added greedily from ``PROXY_POOL``.
``OUT/tuning.json`` records that search.

Transfer: a calibrator fitted on all 100 architectures of one KD label ranks the others (both
spaces), beside #params on the target.

Brief training (optional): when ``--brief-db`` holds complete ``brief:`` rows for the AutoFormer
dev architectures (``benchmarks/brief_training.py``), a dev-only simulation adds them as
features; otherwise the tables say it was skipped.

Writes ``OUT/simulation.json`` (every number, the command and the git commit) and
``OUT/simulation.md`` (the tables). Expected result (k = 10, KD labels): the calibrator is never
more than 0.01 below #params, +0.13 on AutoFormer CIFAR-100 KD, within 0.01 of #params on the
other five; the k-picked shape loses up to 0.03 to #params where width or size drives accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from vitnas.bench.stats import kendall_tau_b
from vitnas.calibrate import fit_ranker
from vitnas.errors import ConfigError, reported
from vitnas.formatting import dumps_strict
from vitnas.provenance import git_commit
from vitnas.proxies.shape import SHAPE_BASELINES
from vitnas.recommended import DEFAULT_SEARCH_PROXY

BOARDS = Path("results/vitbench101")
SPACES = {"autoformer": ("vit-bench-101-autoformer", ("dev", "test")),
          "pit": ("vit-bench-101-pit", ("all",))}
KD_LABELS = ("c100_kd_acc", "flower_kd_acc", "chaoyang_kd_acc")
BASE_LABELS = ("c100_base_acc", "flower_base_acc", "chaoyang_base_acc")
SHAPE_FEATURES = ("params", "flops", "depth", "width", "logsize")
# cheap proxies the dev tuning may add (each under 3 s per architecture at 224 px here, and
# scored on both spaces' boards); lswag, the search default, is in the pool too (6 s). These are
# committed boards' row names: "swap:unit=channel" is one initialisation, "lswag" every layer and
# "meco:opt_channels=8" the tagged, channel-major MeCo (the defaults when the boards were scored).
# Added later (selection.json's added_after_test): today's defaults "meco" (the authors'
# reading, under 1 s) and "swap" (32 initialisations: 35-55 s per architecture here, not cheap,
# in the pool so that the record says whether the faithful SWAP would earn a feature)
PROXY_POOL = ("nwot", "l2_norm", "swap:unit=channel", "synflow", "zico", "lswag", "snip", "zen",
              "jacov", "grad_norm", "dss", "meco:opt_channels=8", "aznas_expressivity",
              "token_entropy:estimator=spectral", "meco", "swap")
THRESHOLDS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, math.inf)
NEVER = 1e12  # a finite threshold no evidence reaches: the library's way to keep the prior
TUNING_K = 10
MAX_PROXIES = 3
SAFETY = 0.005  # a setting is acceptable when no dev label loses more than this to params
TIE = 0.002  # mean gains this close are a tie, won by the stricter threshold
GREEDY_STEP = 0.005  # a proxy joins when it raises the mean gain by this much
RULE = (f"k = {TUNING_K} on the AutoFormer dev half, gains are mean tau differences to params "
        f"over the three KD labels. Threshold: among those with every label's gain >= "
        f"-{SAFETY}, the highest mean gain (within {TIE}: the strictest). Proxies: greedily "
        f"the one that most raises the mean gain (every label >= -{SAFETY}), while it adds >= "
        f"{GREEDY_STEP}, at most {MAX_PROXIES}.")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--ks", default="5,10,20")
    p.add_argument("--labels", default="all", choices=("kd", "all"),
                   help="kd: the three KD labels; all: the base labels too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="default results/calibration (--smoke: runs/calibration_smoke, "
                                 "so a smoke run never overwrites the committed tables)")
    p.add_argument("--brief-db", default="runs/brief.sqlite")
    p.add_argument("--shapes", default="results/calibration/shape_features.json",
                   help="cache of the architectures' shape counts (made when missing)")
    p.add_argument("--threshold", type=float,
                   help="skip the dev tuning: use this evidence threshold ...")
    p.add_argument("--proxies", help="... and these proxy features (comma list, '' for none; "
                                     "default nwot)")
    p.add_argument("--smoke", action="store_true")
    return p.parse_args(argv)


# --- data -----------------------------------------------------------------------------------
def shape_features(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Shape counts of every architecture on the boards, computed once and cached."""
    if path.exists():
        return json.loads(path.read_text())
    from vitnas.bench import load_benchmark
    from vitnas.proxies.shape import log_size

    cache: dict[str, dict[str, dict[str, float]]] = {}
    for name, (bench_name, splits) in SPACES.items():
        space = load_benchmark(bench_name).space
        keys = [k for split in splits for k in read_board(name, "c100_kd_acc", split)["keys"]]
        cache[name] = {}
        for key in keys:
            arch = space.validate(json.loads(key))
            shape = space.shape(arch)
            cache[name][key] = {"params": float(space.params(arch)),
                                "flops": float(space.flops(arch)), "depth": float(shape.depth),
                                "width": float(shape.width),
                                "logsize": log_size(space.build(arch))}
        print(f"shape counts of {len(keys)} {name} architectures computed", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cache, indent=1) + "\n")
    return cache


def read_board(space: str, label: str, split: str) -> dict:
    return json.loads((BOARDS / f"{space}_{label}_{split}.json").read_text())


class Task:
    """One space and label: the architectures' keys, labels and every feature's scores."""

    def __init__(self, space: str, label: str, shapes: dict, splits: tuple[str, ...] | None = None):
        self.space, self.label = space, label
        keys, accuracy, scores = [], [], {}
        for split in splits or SPACES[space][1]:
            board = read_board(space, label, split)
            keys += board["keys"]
            accuracy += board["accuracy"]
            for spec, values in board["scores"].items():
                scores.setdefault(spec, []).extend(values)
        self.keys = keys
        self.labels = np.array(accuracy, dtype=float)
        self.features = {spec: np.array(v, dtype=float) for spec, v in scores.items()}
        for name in ("depth", "width", "logsize"):
            self.features[name] = np.array([shapes[space][k][name] for k in keys])
        self.features["depth>params"] = self.features["depth"] * 1e12 + self.features["params"]

    def __len__(self) -> int:
        return len(self.labels)


# --- one draw -------------------------------------------------------------------------------
def tau(score: np.ndarray, labels: np.ndarray) -> float:
    finite = np.isfinite(score)
    return kendall_tau_b(score[finite], labels[finite])


def picked_shape(task: Task, train: np.ndarray) -> str:
    """The shape baseline with the best tau on the k (ties: ``SHAPE_BASELINES`` order)."""
    taus = [tau(task.features[s][train], task.labels[train]) for s in SHAPE_BASELINES]
    taus = [-math.inf if math.isnan(t) else t for t in taus]
    return SHAPE_BASELINES[int(np.argmax(taus))]


def calibrated(task: Task, train: np.ndarray, rest: np.ndarray, specs: tuple[str, ...],
               threshold: float) -> dict:
    """Fit on the k, judge on the rest; also what any other threshold would have given (the
    fitted model does not depend on the threshold, only the choice does)."""
    ranker = fit_ranker({s: task.features[s][train] for s in specs}, task.labels[train],
                        threshold=min(threshold, NEVER))
    values = np.column_stack([task.features[s][rest] for s in ranker.feature_specs])
    return {"tau": tau(ranker.score_rows(values), task.labels[rest]), "chosen": ranker.chosen,
            "evidence": ranker.evidence,
            "eligible": bool(ranker.loo_tau_fitted > ranker.loo_tau_prior),
            "fitted_tau": tau(ranker.score_rows(values, "fitted"), task.labels[rest])}


def at_threshold(data: dict, params: np.ndarray, threshold: float) -> np.ndarray:
    """The calibrator's taus over draws had it used ``threshold``."""
    use = (np.array(data["evidence"]) >= threshold) & np.array(data["eligible"])
    return np.where(use, np.array(data["fitted_tau"]), params)


def draws(n: int, k: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` seeded draws of k of n indices (the same for every label of a space)."""
    rng = np.random.default_rng([seed, k, n])
    return [np.sort(rng.choice(n, size=k, replace=False)) for _ in range(count)]


def simulate(task: Task, k: int, count: int, seed: int, methods: dict) -> dict[str, dict]:
    """Per method, per draw: what the method reports (its tau on the rest, a calibrator's
    choice and evidence, the shape a k-picked row picked)."""
    out: dict[str, dict] = {name: {} for name in methods}
    everything = np.arange(len(task))
    for train in draws(len(task), k, count, seed):
        rest = np.setdiff1d(everything, train)
        for name, method in methods.items():
            for key, value in method(task, train, rest).items():
                out[name].setdefault(key, []).append(value)
    return out


def methods_for(threshold: float, proxies: tuple[str, ...], default: str | None) -> dict:
    def fixed(spec):
        return lambda task, train, rest: {"tau": tau(task.features[spec][rest],
                                                     task.labels[rest])}

    def picked(task, train, rest):
        spec = picked_shape(task, train)
        return {"tau": tau(task.features[spec][rest], task.labels[rest]), "picked": spec}

    methods = {"params": fixed("params"), "k-picked shape": picked}
    if default:
        methods["default (" + default + ")"] = fixed(default)
    methods["calibrated (shape)"] = (
        lambda task, train, rest: calibrated(task, train, rest, SHAPE_FEATURES, threshold))
    if proxies:
        specs = SHAPE_FEATURES + proxies
        methods[f"calibrated (shape+{'+'.join(proxies)})"] = (
            lambda task, train, rest: calibrated(task, train, rest, specs, threshold))
    return methods


def summarise(per_method: dict[str, dict]) -> dict[str, dict]:
    base = np.array(per_method["params"]["tau"])
    out = {}
    for name, data in per_method.items():
        values = np.array(data["tau"])
        diff = values - base
        row = {
            "mean": float(np.nanmean(values)),
            "low": float(np.nanpercentile(values, 2.5)),
            "high": float(np.nanpercentile(values, 97.5)),
            "diff_mean": float(np.nanmean(diff)),
            "diff_low": float(np.nanpercentile(diff, 2.5)),
            "diff_high": float(np.nanpercentile(diff, 97.5)),
            "below_params_fraction": float(np.mean(diff < 0)),
            "taus": [round(float(v), 5) for v in values],
        }
        if "chosen" in data:
            row["fitted_fraction"] = float(np.mean([c == "fitted" for c in data["chosen"]]))
            row["threshold_sensitivity"] = {
                str(t): float(np.nanmean(at_threshold(data, base, t) - base))
                for t in THRESHOLDS}
        if "picked" in data:
            row["picked"] = {s: data["picked"].count(s) for s in SHAPE_BASELINES
                             if s in data["picked"]}
        out[name] = row
    return out


# --- dev tuning -----------------------------------------------------------------------------
def dev_gains(tasks: list[Task], count: int, seed: int, specs: tuple[str, ...],
              thresholds: tuple[float, ...]) -> dict[float, dict[str, float]]:
    """Per threshold, the calibrator's mean gain over params per label at k = ``TUNING_K``
    (one set of fits serves every threshold)."""
    gains: dict[float, dict[str, float]] = {t: {} for t in thresholds}
    for task in tasks:
        result = simulate(task, TUNING_K, count, seed, {
            "params": methods_for(0.0, (), None)["params"],
            "cal": lambda t, tr, re: calibrated(t, tr, re, specs, 0.0)})
        base = np.array(result["params"]["tau"])
        for threshold in thresholds:
            gains[threshold][task.label] = float(np.nanmean(
                at_threshold(result["cal"], base, threshold) - base))
    return gains


def trial(gains: dict[str, float]) -> dict:
    return {"mean": float(np.mean(list(gains.values()))), "worst": min(gains.values()),
            "gains": gains}


def acceptable(entry: dict) -> bool:
    return entry["worst"] >= -SAFETY


def tune(shapes: dict, count: int, seed: int) -> dict:
    """Threshold, then proxies, on the AutoFormer dev half only (see the module docstring)."""
    tasks = [Task("autoformer", label, shapes, ("dev",)) for label in KD_LABELS]
    record: dict = {"k": TUNING_K, "draws": count, "split": "autoformer dev",
                    "rule": RULE, "thresholds": {}}
    for threshold, gains in dev_gains(tasks, count, seed, SHAPE_FEATURES, THRESHOLDS).items():
        entry = record["thresholds"][str(threshold)] = trial(gains)
        print(f"tuning: threshold {threshold}: mean gain {entry['mean']:+.3f}, worst label "
              f"{entry['worst']:+.3f}", file=sys.stderr)
    safe = {float(t): e for t, e in record["thresholds"].items() if acceptable(e)}
    top = max(e["mean"] for e in safe.values())
    threshold = max(t for t, e in safe.items() if e["mean"] >= top - TIE)
    chosen: tuple[str, ...] = ()
    current = safe[threshold]["mean"]
    record["greedy"] = []
    while len(chosen) < MAX_PROXIES:
        trials = {proxy: trial(dev_gains(tasks, count, seed, SHAPE_FEATURES + chosen + (proxy,),
                                         (threshold,))[threshold])
                  for proxy in PROXY_POOL if proxy not in chosen}
        candidates = [p for p in trials if acceptable(trials[p])] or list(trials)
        pick = max(candidates, key=lambda p: trials[p]["mean"])
        record["greedy"].append({"with": list(chosen), "trials": trials, "pick": pick})
        print(f"tuning: + {pick}: mean gain {trials[pick]['mean']:+.3f} (was {current:+.3f})",
              file=sys.stderr)
        if trials[pick]["mean"] < current + GREEDY_STEP or not acceptable(trials[pick]):
            break
        chosen, current = chosen + (pick,), trials[pick]["mean"]
    # no proxy earned its place: the shape+proxies row shows the best single one, for the record
    shown = chosen or (record["greedy"][0]["pick"],)
    record.update(threshold=threshold, proxies=list(chosen), shown_proxies=list(shown),
                  mean_gain=current)
    return record


# --- transfer and brief ---------------------------------------------------------------------
def transfer(tasks: list[Task], proxies: tuple[str, ...], threshold: float) -> list[dict]:
    rows = []
    for specs, name in ((SHAPE_FEATURES, "shape"), (SHAPE_FEATURES + proxies, "shape+proxies")):
        if name == "shape+proxies" and not proxies:
            continue
        for source in tasks:
            ranker = fit_ranker({s: source.features[s] for s in specs}, source.labels,
                                threshold=min(threshold, NEVER))
            row = {"features": name, "source": f"{source.space} {source.label}",
                   "chosen": ranker.chosen, "targets": {}}
            for target in tasks:
                values = np.column_stack([target.features[s] for s in ranker.feature_specs])
                fitted = tau(ranker.score_rows(values, "fitted"), target.labels)
                row["targets"][f"{target.space} {target.label}"] = {
                    "tau": tau(ranker.score_rows(values), target.labels), "fitted_tau": fitted,
                    "params": tau(target.features["params"], target.labels)}
            rows.append(row)
    return rows


def brief_features(task: Task, db: str) -> dict[str, np.ndarray]:
    """``brief:`` rows of the dev architectures from the brief-training store (keyed as
    ``benchmarks/brief_training.py`` writes them); empty when absent or incomplete."""
    if not Path(db).exists():
        return {}
    from vitnas.bench import load_benchmark
    from vitnas.proxies.scoring import proxy_batch
    from vitnas.store import ScoreStore, batch_identity, space_identity

    space = load_benchmark(SPACES["autoformer"][0]).space
    x, y = proxy_batch("cifar10", 16, space.img_size, space.in_chans, space.num_classes, 0)
    batch_id, space_id = batch_identity(x, y), space_identity(space)
    with ScoreStore(db, readonly=True) as store:  # the study may be writing it
        rows = [r for r in store.rows() if r.key.proxy.startswith("brief")
                and r.key.space == space_id and r.key.batch == batch_id and r.key.seed == 0]
    by_spec: dict[str, dict[str, float]] = {}
    for r in rows:
        by_spec.setdefault(r.key.proxy, {})[r.key.arch] = r.score
    wanted = [space.key(space.validate(json.loads(k))) for k in task.keys]
    out = {}
    for spec, values in sorted(by_spec.items()):
        column = np.array([values.get(k, math.nan) for k in wanted], dtype=float)
        if np.isfinite(column).all():
            out[spec] = column
    return out


# --- report ---------------------------------------------------------------------------------
def fmt(row: dict, diff: bool = True) -> str:
    text = f"{row['mean']:.3f} [{row['low']:.2f}, {row['high']:.2f}]"
    if diff:
        text += f" | {row['diff_mean']:+.3f} [{row['diff_low']:+.2f}, {row['diff_high']:+.2f}]"
    return text


def markdown(result: dict) -> str:
    lines = [f"# Calibration simulation (issue 23, item 4)\n\n`{result['command']}` "
             f"(commit {result['commit']}, {result['wall_seconds'] / 60:.1f} min)\n",
             f"{result['draws']} seeded draws of k architectures per space; every method sees "
             "the k labels only; Kendall tau on the remaining architectures: mean "
             "[2.5, 97.5 percentiles over draws] | mean difference to params [percentiles]; "
             "`below params`: the fraction of draws where the method ranked the rest worse "
             "than params; `left prior`: the fraction where the calibrator used its fitted "
             "model; the k-picked row lists how often it picked each shape baseline. "
             "AutoFormer: dev + test boards (100 architectures), PiT: 100.\n",
             f"Chosen on the AutoFormer dev half only (k = {TUNING_K}; `tuning.json`): "
             f"evidence threshold {result['threshold']:g}; proxy features that earned their "
             f"place: {', '.join(result['proxies']) or 'none'}"
             + ("" if result["proxies"] == result["shown_proxies"] else
                f" (the shape+proxies row shows the best single one on dev, "
                f"{', '.join(result['shown_proxies'])}, for the record)")
             + f". Shape features: {', '.join(SHAPE_FEATURES)}.\n"]
    lines += ["## Headline: k = 10, every KD label\n"]
    names = list(next(iter(result["tables"].values()))["10"]) if "10" in next(
        iter(result["tables"].values())) else []
    if names:
        lines.append("| space / label | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for task, table in result["tables"].items():
            if "kd" not in task or "10" not in table:
                continue
            row = table["10"]
            lines.append(f"| {task} | " + " | ".join(
                f"{row[n]['mean']:.3f} ({row[n]['diff_mean']:+.3f})" for n in names) + " |")
        lines.append("\n(mean tau, in brackets its mean difference to params)\n")
    lines += ["## Threshold sensitivity at k = 10 (measured after the choice, not used for it)\n",
              "Mean tau difference to params of each calibrator had it used another evidence "
              "threshold (the fitted models are the same; only the choice moves).\n"]
    header = [str(t) for t in THRESHOLDS]
    lines += ["| space / label, calibrator | " + " | ".join(header) + " |",
              "|---" * (len(header) + 1) + "|"]
    for task, table in result["tables"].items():
        for name, row in table.get("10", {}).items():
            if "threshold_sensitivity" in row:
                lines.append(f"| {task}, {name} | " + " | ".join(
                    f"{row['threshold_sensitivity'][t]:+.3f}" for t in header) + " |")
    lines.append("")
    for task, table in result["tables"].items():
        lines += [f"## {task}\n"]
        for k, rows in table.items():
            lines += [f"k = {k}:\n",
                      "| method | tau [95%] | - params [95%] | below params | left prior |",
                      "|---|---|---|---|---|"]
            for name, row in rows.items():
                left = f"{row['fitted_fraction']:.2f}" if "fitted_fraction" in row else ""
                if "picked" in row:
                    name += " (" + ", ".join(f"{s} {n}" for s, n in sorted(
                        row["picked"].items(), key=lambda item: -item[1])) + ")"
                lines.append(f"| {name} | {fmt(row)} | {row['below_params_fraction']:.2f} | "
                             f"{left} |")
            lines.append("")
    lines += ["## Transfer: fitted on all architectures of one label, ranking another\n",
              "tau of the calibrator (chosen model) on the target; in brackets #params on the "
              "target.\n"]
    for features in ("shape", "shape+proxies"):
        rows = [r for r in result["transfer"] if r["features"] == features]
        if not rows:
            continue
        targets = list(rows[0]["targets"])
        lines += [f"Features: {features}.\n", "| source (chosen) | " + " | ".join(targets) + " |",
                  "|---" * (len(targets) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r['source']} ({r['chosen']}) | " + " | ".join(
                f"{r['targets'][t]['tau']:.3f} ({r['targets'][t]['params']:.3f})"
                for t in targets) + " |")
        lines.append("")
    brief = result.get("brief")
    if brief:
        lines += ["## Brief training as features (AutoFormer dev half only, 47 architectures)\n",
                  f"Features: {', '.join(brief['features'])}.\n"]
        for task, table in brief["tables"].items():
            lines += [f"### {task}\n"]
            for k, rows in table.items():
                lines += [f"k = {k}:\n", "| method | tau [95%] | - params [95%] | left prior |",
                          "|---|---|---|---|"]
                for name, row in rows.items():
                    left = f"{row['fitted_fraction']:.2f}" if "fitted_fraction" in row else ""
                    lines.append(f"| {name} | {fmt(row)} | {left} |")
                lines.append("")
    elif result.get("brief_note"):
        lines += ["## Brief training\n", result["brief_note"] + "\n"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out or ("runs/calibration_smoke" if args.smoke else "results/calibration"))
    ks = (5, 10) if args.smoke else tuple(int(k) for k in args.ks.split(","))
    count = 5 if args.smoke else args.draws
    labels = (KD_LABELS[:1] if args.smoke else
              KD_LABELS + (BASE_LABELS if args.labels == "all" else ()))
    shapes = shape_features(Path(args.shapes))
    if args.threshold is not None or args.smoke:
        given = [p for p in (args.proxies if args.proxies is not None else "nwot").split(",")
                 if p]
        tuning = {"threshold": 1.0 if args.threshold is None else args.threshold,
                  "proxies": given, "shown_proxies": given, "note": "given, not tuned"}
    else:
        tuning = tune(shapes, count, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        command = " ".join(["python benchmarks/calibration_simulation.py", *argv])
        (out / "tuning.json").write_text(json.dumps({"command": command, **tuning}, indent=1)
                                         + "\n")
    threshold, proxies = tuning["threshold"], tuple(tuning["shown_proxies"])
    tasks = [Task(space, label, shapes) for space in SPACES for label in labels]
    default = DEFAULT_SEARCH_PROXY
    for task in tasks:
        if default not in task.features:
            raise ConfigError(f"the search default {default} has no scores on the "
                              f"{task.space} {task.label} board")
    methods = methods_for(threshold, proxies, default)
    tables: dict[str, dict] = {}
    for task in tasks:
        name = f"{task.space} {task.label}"
        tables[name] = {}
        for k in ks:
            tables[name][str(k)] = summarise(simulate(task, k, count, args.seed, methods))
            row = tables[name][str(k)]
            print(f"{name} k={k}: " + ", ".join(f"{m} {r['mean']:.3f} ({r['diff_mean']:+.3f})"
                                                for m, r in row.items()), file=sys.stderr)
    kd_tasks = [t for t in tasks if t.label in KD_LABELS]
    result = {
        "command": " ".join(["python benchmarks/calibration_simulation.py", *argv]),
        "commit": git_commit(), "draws": count, "ks": list(ks), "seed": args.seed,
        "threshold": threshold, "proxies": tuning["proxies"], "shown_proxies": list(proxies),
        "default": default,
        "shape_features": list(SHAPE_FEATURES), "tuning": tuning, "tables": tables,
        "transfer": transfer(kd_tasks, proxies, threshold),
    }
    dev = Task("autoformer", KD_LABELS[0], shapes, ("dev",))
    brief = brief_features(dev, args.brief_db)
    if brief:
        specs = tuple(brief)
        brief_tables = {}
        for label in labels if args.smoke else KD_LABELS:
            task = Task("autoformer", label, shapes, ("dev",))
            task.features.update(brief)
            brief_methods = methods_for(threshold, proxies, default)
            for name, chosen in (("calibrated (shape+brief)", SHAPE_FEATURES + specs),
                                 ("calibrated (shape+proxies+brief)",
                                  SHAPE_FEATURES + proxies + specs)):
                brief_methods[name] = (lambda t, tr, re, chosen=chosen:
                                       calibrated(t, tr, re, chosen, threshold))
            for spec in specs:
                brief_methods[spec] = (lambda t, tr, re, spec=spec:
                                       {"tau": tau(t.features[spec][re], t.labels[re])})
            brief_tables[f"autoformer dev {label}"] = {
                str(k): summarise(simulate(task, k, count, args.seed, brief_methods))
                for k in ks if k < len(task) - 5}
        result["brief"] = {"features": list(specs), "tables": brief_tables}
    else:
        result["brief_note"] = (f"no complete brief-training rows for the AutoFormer dev "
                                f"architectures in {args.brief_db}: skipped")
    result["wall_seconds"] = time.perf_counter() - started
    write_report(out, "simulation", result, markdown(result))
    return 0


def write_report(out: Path, name: str, result: dict, table: str) -> None:
    """``OUT/NAME.json`` (strict JSON: null where a number is undefined) and ``OUT/NAME.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(dumps_strict(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(table)
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')} "
          f"({result['wall_seconds'] / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(reported(main, "calibration_simulation"))
