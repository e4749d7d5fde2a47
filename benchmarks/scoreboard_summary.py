"""Combine committed scoreboards into the README's two comparison tables.

    python benchmarks/scoreboard_summary.py [--dir results/scoreboard] [--out summary.md]

Reads the JSON files `vitnas bench correlate --out` wrote (no scoring happens here) and prints:
1. NAS-Bench-201: Kendall tau per proxy on CIFAR-10, CIFAR-100 and ImageNet16-120, with CIs;
2. CNN vs ViT: each proxy's tau on NAS-Bench-201 CIFAR-10 beside its tau on the ViT ground
   truth (dev, test and all), the paper's starting point (NTK ranks CNNs, not ViTs);
3. with --repeat A.json B.json: the training-noise ceiling, Kendall tau between two ground truths
   of the same architectures trained under different seeds (no proxy can rank better than the
   ground truth agrees with itself).
Runtime: under a second.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from vitnas.bench.stats import bootstrap_interval, kendall_tau_b, spearman_rho

NB201 = (("cifar10", "nb201_cifar10.json"), ("cifar100", "nb201_cifar100.json"),
         ("ImageNet16-120", "nb201_imagenet16.json"))
VIT = (("dev", "vit_dev.json"), ("test", "vit_test.json"), ("all", "vit_all.json"))


def load(directory: Path, name: str) -> dict | None:
    path = directory / name
    return json.loads(path.read_text()) if path.exists() else None


def cell(board: dict | None, proxy: str, with_ci: bool = True) -> str:
    if board is None:
        return "-"
    for row in board["rows"]:
        if row["proxy"] == proxy:
            tau, (low, high) = row["kendall"], row["kendall_ci"]
            if tau is None or not math.isfinite(tau):
                return f"n/a ({row['failed']} failed)"
            text = f"{tau:.3f}"
            if with_ci and low is not None and math.isfinite(low):
                text += f" [{low:.2f}, {high:.2f}]"
            return text
    return "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def noise_ceiling(first: Path, second: Path) -> str:
    """Kendall tau between the top-1 of the architectures two ground-truth files share."""
    a, b = (json.loads(Path(p).read_text())["records"] for p in (first, second))
    by_arch = {json.dumps(r["arch"], sort_keys=True): r["top1"] for r in a}
    pairs = [(by_arch[k], r["top1"]) for r in b
             if (k := json.dumps(r["arch"], sort_keys=True)) in by_arch]
    x, y = np.array(pairs).T
    interval = bootstrap_interval(x, y, kendall_tau_b, 1000, 0.95, 0)
    gap = np.abs(x - y)
    return (f"Training-noise ceiling: {len(pairs)} architectures trained under two seeds agree "
            f"at Kendall tau {kendall_tau_b(x, y):.3f} [{interval.low:.2f}, {interval.high:.2f}],"
            f" Spearman {spearman_rho(x, y):.3f}; mean |top-1 difference| {gap.mean():.2f} points"
            f" (max {gap.max():.2f}); top-1 spread across the ground truth "
            f"{min(r['top1'] for r in a):.2f}..{max(r['top1'] for r in a):.2f}%.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="results/scoreboard")
    parser.add_argument("--out", help="also write the tables to this Markdown file")
    parser.add_argument("--repeat", nargs=2, metavar="GROUND_TRUTH",
                        help="two ground truths of the same plan under different seeds")
    args = parser.parse_args()
    directory = Path(args.dir)
    nb = {name: load(directory, file) for name, file in NB201}
    vit = {name: load(directory, file) for name, file in VIT}
    parts = []
    base = nb["cifar10"]
    if base is not None:
        order = sorted(base["rows"], key=lambda r: -(r["kendall"] if r["kendall"] is not None
                                                     and math.isfinite(r["kendall"]) else -9))
        proxies = [r["proxy"] for r in order]
        parts.append(f"NAS-Bench-201, {base['n']} cells, Kendall tau-b [95% bootstrap CI]\n")
        parts.append(table(["proxy", *[n for n, _ in NB201]],
                           [[p, *[cell(nb[n], p) for n, _ in NB201]] for p in proxies]))
    if base is not None and vit["all"] is not None:
        vit_proxies = [r["proxy"] for r in vit["all"]["rows"]]
        common = [p for p in proxies if p in vit_proxies]
        parts.append("\nCNN (NAS-Bench-201 CIFAR-10) vs ViT ground truth, Kendall tau-b\n")
        parts.append(table(["proxy", "NB201 CIFAR-10", *[f"ViT {n}" for n, _ in VIT]],
                           [[p, cell(base, p, False), *[cell(vit[n], p) for n, _ in VIT]]
                            for p in common]))
    if args.repeat:
        parts.append("\n" + noise_ceiling(*map(Path, args.repeat)))
    text = "\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
