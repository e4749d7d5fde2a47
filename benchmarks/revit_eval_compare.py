"""Do runs of ``vitnas revit eval`` agree? Each ratio of one run against the other's interval,
and every run's rounds pooled.

    python benchmarks/revit_eval_compare.py results/revit/eval_cifar10_e50_i24.json \
        results/revit/eval_cifar10_e50_i24_rerun.json
    python benchmarks/revit_eval_compare.py --pool results/revit/eval_scaled_ft20.json \
        results/revit/eval_scaled_ft20_rerun.json results/revit/eval_scaled_ft20_quiet.json

Two runs: for every policy both measured, and every ratio they report with an interval (the
throughput against the fixed-length curve and against the simple peers' curve), prints both
runs' medians and intervals and whether each median lies inside the other run's interval (the
reproducibility check of issue #24). Accuracies must agree exactly (same weights, same images).
A merged peer (``+ ToMe``) also has its ratio to ToMe's curve compared and pooled.

A policy at or above the most accurate fixed length has no equal-accuracy point on the curve:
its ratio is the bound cost(most accurate fixed length) / cost(policy), which moves with that
one length's timing from run to run. Those rows are marked ``bound`` and judged apart: the
exit code is 1 when an equal-accuracy ratio falls outside the other run's interval (or an
accuracy differs), and bound rows that disagree are reported but do not decide it. An interval
end the run could not compute (its bootstrap left the curve's range) is open on that side.

``--pool`` (two or more runs): per policy measured in every run (a run made without
``--merge-rates`` has no merged peers; the policies all runs share are pooled), the median of
every run's per-round ratios and a 95% interval from a two-level bootstrap (runs, then rounds
within each drawn run), so the spread between runs, which one run's interval cannot see, is
inside it. The rounds are the only resampled unit: a single run's interval also resamples test
images, which the JSON does not keep per image; a round without a ratio (its point outside the
curve's range) is left out and counted. Runtime: about 20 s for ``--pool``, instant otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from vitnas.errors import reported

RATIOS = ("throughput_vs_fixed_curve", "throughput_vs_simple_peers", "throughput_vs_ToMe")


def ratio(name: str, entry: dict, key: str) -> dict | None:
    """One ratio summary of policy ``name``'s comparison entry; ``throughput_vs_ToMe`` is a
    merged peer's ratio to ToMe's curve (its ``throughput_vs`` -> ``ToMe``; the learned
    policies' per-family ratios are not pooled), the others are top-level keys."""
    if key == "throughput_vs_ToMe":
        return entry.get("throughput_vs", {}).get("ToMe") if "+ ToMe" in name else None
    return entry.get(key)
POOL_RESAMPLES = 10000


def inside(value: float | None, interval: list | None) -> bool | None:
    """Whether ``value`` lies in ``interval``; an end given as None is open (the bootstrap
    fell outside the curve's range on that side), so only the other end can exclude it."""
    if value is None or not interval or (interval[0] is None and interval[1] is None):
        return None
    low = -float("inf") if interval[0] is None else interval[0]
    high = float("inf") if interval[1] is None else interval[1]
    return low <= value <= high


def top_fixed_accuracy(run: dict) -> float:
    return max(point["accuracy"] for point in run["curves"]["fixed"])


def is_bound(policy: dict, run: dict) -> bool:
    """At or above the most accurate fixed length: its ratio is a bound, not a curve ratio."""
    return policy["accuracy"] >= top_fixed_accuracy(run)


def compare(first: dict, second: dict) -> tuple[list[dict], bool]:
    rows, agree = [], True
    for name, a in first["comparisons"].items():
        b = second["comparisons"].get(name)
        if not isinstance(a, dict) or not isinstance(b, dict) or "accuracy" not in a:
            continue
        if a["accuracy"] != b["accuracy"]:
            agree = False
        bound = is_bound(a, first)
        for key in RATIOS:
            ra, rb = ratio(name, a, key), ratio(name, b, key)
            if ra is None or rb is None:
                continue
            both = (inside(ra["ratio"], rb["ci"]), inside(rb["ratio"], ra["ci"]))
            if not bound:
                agree &= all(v is not False for v in both)
            rows.append({"policy": name, "ratio": key, "first": ra, "second": rb,
                         "first_in_second": both[0], "second_in_first": both[1],
                         "accuracy": [a["accuracy"], b["accuracy"]], "bound": bound})
    return rows, agree


def pooled(runs: list[dict], seed: int = 0) -> list[dict]:
    """Per policy and ratio in every run: the median of all per-round ratios and a two-level
    bootstrap interval (runs with replacement, then rounds within each drawn run)."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, first in runs[0]["comparisons"].items():
        if not isinstance(first, dict) or "accuracy" not in first:
            continue
        entries = [run["comparisons"].get(name) for run in runs]
        if any(not isinstance(e, dict) for e in entries):
            continue
        for key in RATIOS:
            summaries = [ratio(name, e, key) for e in entries]
            given = [e.get("per_round") for e in summaries if e is not None]
            # a round without a ratio (its point fell outside the curve's range) is left out
            rounds = [np.asarray([v for v in r if v is not None], dtype=float)
                      for r in given if r]
            if len(rounds) != len(runs) or any(len(r) == 0 for r in rounds):
                continue
            medians = np.empty(POOL_RESAMPLES)
            for i in range(POOL_RESAMPLES):
                drawn = rng.integers(0, len(rounds), size=len(rounds))
                medians[i] = np.median(np.concatenate(
                    [rng.choice(rounds[d], size=len(rounds[d])) for d in drawn]))
            rows.append({"policy": name, "ratio": key, "runs": len(rounds),
                         "median": float(np.median(np.concatenate(rounds))),
                         "ci": [float(np.percentile(medians, 2.5)),
                                float(np.percentile(medians, 97.5))],
                         "run_medians": [e["ratio"] for e in summaries],
                         "rounds_without_ratio": sum(r.count(None) for r in given),
                         "accuracy": first["accuracy"], "bound": is_bound(first, runs[0])})
    return rows


def _text(summary: dict) -> str:
    low, high = summary["ci"]
    return (f"{summary['ratio']}x [{low}, {high}]" if summary["ratio"] is not None
            else "n/a")


def _print_pairs(rows: list[dict], agree: bool) -> None:
    print("| policy | ratio | first run | second run | each inside the other's interval |")
    print("|---|---|---|---|---|")
    bound_disagree = 0
    for row in rows:
        pair = (row["first_in_second"], row["second_in_first"])
        verdict = "**no**" if False in pair else "n/a" if pair == (None, None) else "yes"
        if row["bound"]:
            bound_disagree += verdict == "**no**"
            verdict += " (bound)"
        print(f"| {row['policy']} | {row['ratio'].replace('throughput_vs_', 'vs ')} | "
              f"{_text(row['first'])} | {_text(row['second'])} | {verdict} |")
    if bound_disagree:
        print(f"{bound_disagree} bound row(s) disagree: at or above the most accurate fixed "
              f"length the ratio is that length's cost over the policy's (use --pool)")
    print("the two runs agree at equal accuracy" if agree else
          "the two runs DISAGREE (see the rows marked no without '(bound)', or an accuracy "
          "that differs)")


def _print_pool(rows: list[dict]) -> None:
    print("| policy | top-1 (%) | ratio | pooled median [95%, runs and rounds] | run medians |")
    print("|---|---|---|---|---|")
    for row in rows:
        label = row["policy"] + (" (bound)" if row["bound"] else "")
        if row["rounds_without_ratio"]:
            label += f" ({row['rounds_without_ratio']} round(s) without a ratio left out)"
        print(f"| {label} | {row['accuracy']} | {row['ratio'].replace('throughput_vs_', 'vs ')} "
              f"| {row['median']:.3f}x [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}] | "
              + " / ".join(f"{m}x" for m in row["run_medians"]) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="eval JSONs of one command")
    parser.add_argument("--pool", action="store_true",
                        help="pool every run's rounds (two or more runs)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2 or (len(args.runs) > 2 and not args.pool):
        print("error: compare two runs, or --pool two or more", file=sys.stderr)
        return 2
    try:
        runs = []
        for path in args.runs:
            with open(path) as handle:
                runs.append(json.load(handle))
        accuracies = [{n: c["accuracy"] for n, c in run["comparisons"].items()
                       if isinstance(c, dict) and "accuracy" in c} for run in runs]
        curves = [run["curves"]["fixed"] for run in runs]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: not an eval JSON of `vitnas revit eval`: {error}", file=sys.stderr)
        return 2
    if args.pool:
        shared = set.intersection(*(set(a) for a in accuracies))
        if any({n: a[n] for n in shared} != {n: accuracies[0][n] for n in shared}
               for a in accuracies) or any(
                [p["accuracy"] for p in c] != [p["accuracy"] for p in curves[0]]
                for c in curves):
            print("error: the runs' accuracies differ: not one command's runs", file=sys.stderr)
            return 2
        _print_pool(pooled(runs))
        return 0
    rows, agree = compare(runs[0], runs[1])
    _print_pairs(rows, agree)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(reported(main, "revit_eval_compare"))
