"""Do two runs of ``vitnas revit eval`` agree? Each ratio of one run against the other's
interval.

    python benchmarks/revit_eval_compare.py results/revit/eval_cifar10_e50_i24.json \
        results/revit/eval_cifar10_e50_i24_rerun.json

For every policy both runs measured, and for every ratio they report with an interval (the
throughput against the fixed-length curve and against the simple peers' curve), prints both
runs' medians and intervals and whether each median lies inside the other run's interval (the
reproducibility check of issue #24). Accuracies must agree exactly (same weights, same images).
Exit code 1 when some ratio falls outside the other run's interval. Runtime: instant.
"""

from __future__ import annotations

import argparse
import json
import sys

RATIOS = ("throughput_vs_fixed_curve", "throughput_vs_simple_peers")


def inside(value: float | None, interval: list | None) -> bool | None:
    if value is None or not interval or interval[0] is None or interval[1] is None:
        return None
    return interval[0] <= value <= interval[1]


def compare(first: dict, second: dict) -> tuple[list[dict], bool]:
    rows, agree = [], True
    for name, a in first["comparisons"].items():
        b = second["comparisons"].get(name)
        if not isinstance(a, dict) or not isinstance(b, dict) or "accuracy" not in a:
            continue
        if a["accuracy"] != b["accuracy"]:
            agree = False
        for key in RATIOS:
            if key not in a or key not in b:
                continue
            ra, rb = a[key], b[key]
            both = (inside(ra["ratio"], rb["ci"]), inside(rb["ratio"], ra["ci"]))
            agree &= all(v is not False for v in both)
            rows.append({"policy": name, "ratio": key, "first": ra, "second": rb,
                         "first_in_second": both[0], "second_in_first": both[1],
                         "accuracy": [a["accuracy"], b["accuracy"]]})
    return rows, agree


def _text(summary: dict) -> str:
    low, high = summary["ci"]
    return (f"{summary['ratio']}x [{low}, {high}]" if summary["ratio"] is not None
            else "n/a")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    try:
        with open(args.first) as a, open(args.second) as b:
            first, second = json.load(a), json.load(b)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows, agree = compare(first, second)
    print("| policy | ratio | first run | second run | each inside the other's interval |")
    print("|---|---|---|---|---|")
    for row in rows:
        verdict = {(True, True): "yes", (None, None): "n/a"}.get(
            (row["first_in_second"], row["second_in_first"]), "**no**")
        print(f"| {row['policy']} | {row['ratio'].replace('throughput_vs_', 'vs ')} | "
              f"{_text(row['first'])} | {_text(row['second'])} | {verdict} |")
    print("the two runs agree" if agree else "the two runs DISAGREE (see the rows marked no, or "
          "an accuracy that differs)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
