"""Combine committed scoreboards into the README's two comparison tables.

    python benchmarks/scoreboard_summary.py [--dir results/scoreboard] [--out summary.md]

Reads the JSON files `vitnas bench correlate --out` wrote (no scoring happens here) and prints:
1. NAS-Bench-201: Kendall tau per proxy on CIFAR-10, CIFAR-100 and ImageNet16-120, with CIs;
2. CNN vs ViT: each proxy's tau on NAS-Bench-201 CIFAR-10 beside its tau on the ViT ground
   truth (dev, test and all), the paper's starting point (NTK ranks CNNs, not ViTs);
3. beyond size on the ViT test split: tau within params quintiles, partial tau given params,
   budget regret (20% params windows; random pick as reference), tau - tau(params) with a paired
   bootstrap interval, judged again from the stored per-architecture scores;
4. with --repeat A.json B.json (A the ground truth the ViT boards were scored on): the training
   noise. Tau between the two seeds, and the ceiling it implies for a perfect proxy judged against
   one seed and against the mean of both (bivariate-normal noise model, vitnas.bench.noise);
5. claims on the test split only: paired bootstrap intervals of tau differences (ViNTK vs the
   plain NTK and vs #params, and the ViNTK variant best on dev), against seed 0 and, with
   --repeat, against the mean of both seeds on the architectures trained twice.
Runtime: about 15 CPU seconds (1000 bootstrap resamples of every row).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from vitnas.bench import load_benchmark
from vitnas.bench.correlate import Scoreboard, rejudge, split_indices
from vitnas.bench.noise import average_seeds, noise_ceiling, paired_seeds, simulate_noise_ceiling
from vitnas.bench.stats import (
    bootstrap_interval,
    kendall_tau_b,
    paired_bootstrap_difference,
    spearman_rho,
)
from vitnas.errors import reported

NB201 = (("cifar10", "nb201_cifar10.json"), ("cifar100", "nb201_cifar100.json"),
         ("ImageNet16-120", "nb201_imagenet16.json"))
VIT = (("dev", "vit_dev.json"), ("test", "vit_test.json"), ("all", "vit_all.json"))
# (proxy, reference) pairs whose tau difference the README claims something about
CLAIMS = (("vintk", "ntk_cond"), ("vintk", "params"), ("ntk_cond", "params"))


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


def fmt(value: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{digits}f}"


def beyond_size(board: Scoreboard) -> str:
    """Every row of a scoreboard judged again with the beyond-size columns, by tau."""
    rows = sorted(board.rows, key=lambda r: -r.kendall if math.isfinite(r.kendall) else 9)
    body = [[r.proxy, f"{fmt(r.kendall)} [{fmt(r.kendall_ci[0], 2)}, {fmt(r.kendall_ci[1], 2)}]",
             fmt(r.within_strata_kendall), fmt(r.partial_kendall), fmt(r.regret, 2),
             f"{fmt(r.delta_kendall)} [{fmt(r.delta_kendall_ci[0], 2)}, "
             f"{fmt(r.delta_kendall_ci[1], 2)}]"] for r in rows]
    body.append(["random pick", "-", "-", "-", fmt(board.random_regret, 2), "-"])
    return table(["proxy", "tau [95% CI]", "tau in params quintiles", "partial tau given params",
                  "regret (points)", "tau - tau(params) [95% paired CI]"], body)


def board_indices(board: Scoreboard, bench) -> list[int]:
    """Indices into ``bench`` of the board's architectures, in its order (files written before
    the board stored its keys are matched through the split, checked against the accuracies)."""
    if board.keys:
        where = {bench.space.key(r.arch): i for i, r in enumerate(bench.records)}
        return [where[k] for k in board.keys]
    values = bench.values(board.metric)
    indices = [i for i in split_indices(bench, board.split, board.config["dev_fraction"],
                                        board.config["split_seed"]) if values[i] is not None]
    if [values[i] for i in indices] != board.accuracy:
        raise SystemExit(f"{bench.name} is not the ground truth the {board.split} board scored")
    return indices


def noise_report(first: Path, second: Path) -> tuple[str, float]:
    """Seed-vs-seed agreement and the ceiling it implies; returns the text and the seed tau."""
    a, b = load_benchmark(str(first)), load_benchmark(str(second))
    metric = a.meta.get("metric", "top1")
    _, x, y = paired_seeds(a, b, metric)
    tau = kendall_tau_b(x, y)
    interval = bootstrap_interval(x, y, kendall_tau_b, 1000, 0.95, 0)
    gap = np.abs(x - y)
    spread = [v for v in a.values(metric) if v is not None]
    one, two = noise_ceiling(tau), noise_ceiling(tau, seeds=2)
    simulated, _ = simulate_noise_ceiling(tau, n=len(x), trials=1000, seed=0)

    def band(seeds: int) -> str:
        return (f"[{noise_ceiling(interval.low, seeds):.2f}, "
                f"{noise_ceiling(interval.high, seeds):.2f}]")

    text = (f"Training noise: {len(x)} architectures trained under two seeds agree at Kendall tau "
            f"{tau:.3f} [{interval.low:.2f}, {interval.high:.2f}], Spearman "
            f"{spearman_rho(x, y):.3f}; mean |top-1 difference| {gap.mean():.2f} points "
            f"(max {gap.max():.2f}); top-1 spread across the ground truth "
            f"{min(spread):.2f}..{max(spread):.2f}%.\n"
            f"That agreement is not the ceiling. With independent seed noise (bivariate-normal "
            f"model, vitnas.bench.noise) a perfect proxy reaches Kendall tau {one:.3f} "
            f"{band(1)} against one seed (Monte Carlo at n={len(x)}: {simulated:.3f}) and "
            f"{two:.3f} {band(2)} against the mean of both seeds (brackets: the seed tau's "
            f"interval carried through).")
    return text, tau


def claims(board: Scoreboard, dev: Scoreboard | None, label: str) -> list[list[str]]:
    """Paired bootstrap rows of tau(proxy) - tau(reference) on one board."""
    pairs = list(CLAIMS)
    if dev is not None:
        variants = [r for r in dev.rows if r.proxy.startswith("vintk") and
                    math.isfinite(r.kendall)]
        if variants:
            chosen = max(variants, key=lambda r: r.kendall).proxy
            pairs += [p for p in ((chosen, "ntk_cond"), (chosen, "params")) if p not in pairs]
    truth = np.asarray(board.accuracy)
    out = []
    for proxy, reference in pairs:
        if proxy not in board.scores or reference not in board.scores:
            continue
        first, second = np.asarray(board.scores[proxy]), np.asarray(board.scores[reference])
        both = np.isfinite(first) & np.isfinite(second)
        f, s, t = first[both], second[both], truth[both]
        interval = paired_bootstrap_difference(f, s, t, kendall_tau_b, 1000, 0.95, 0)
        out.append([f"{proxy} - {reference}", label, str(int(both.sum())),
                    f"{kendall_tau_b(f, t):.3f}", f"{kendall_tau_b(s, t):.3f}",
                    f"{kendall_tau_b(f, t) - kendall_tau_b(s, t):+.3f}",
                    f"[{interval.low:+.2f}, {interval.high:+.2f}]",
                    "yes" if interval.low > 0 or interval.high < 0 else "no"])
    return out


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
    test = Scoreboard.from_dict(vit["test"]) if vit["test"] is not None else None
    dev = Scoreboard.from_dict(vit["dev"]) if vit["dev"] is not None else None
    if test is not None:
        test = rejudge(test)
        parts.append(f"\nBeyond size, ViT test split ({test.n} architectures, seed-0 top-1): "
                     "what each proxy knows that #params does not\n")
        parts.append(beyond_size(test))
    seed_tau = None
    if args.repeat:
        text, seed_tau = noise_report(*map(Path, args.repeat))
        parts.append("\n" + text)
    if test is not None:
        rows = claims(test, dev, f"seed 0 (ceiling {noise_ceiling(seed_tau):.2f})"
                      if seed_tau is not None else "seed 0")
        if args.repeat:
            first, second = (load_benchmark(p) for p in args.repeat)
            indices = board_indices(test, first)
            averaged = average_seeds(first, second, test.metric)
            target = averaged.values(test.metric)
            twice = [j for j, i in enumerate(indices)
                     if averaged.records[i].values[f"{test.metric}_seeds"] == 2]
            one, two = noise_ceiling(seed_tau), noise_ceiling(seed_tau, 2)
            mixed = rejudge(test, truth=[target[i] for i in indices])
            rows += claims(mixed, dev, f"mean of 2 seeds where both, else seed 0 "
                                       f"(ceiling {one:.2f}-{two:.2f})")
            mean_board = rejudge(test, truth=[target[i] for i in indices], keep=twice)
            rows += claims(mean_board, dev, f"mean of 2 seeds, trained twice only "
                                            f"(ceiling {two:.2f})")
        parts.append("\nClaims on the ViT test split only (the dev split chose the defaults): "
                     "Kendall tau difference with a paired bootstrap 95% interval "
                     "(1000 resamples of the same architectures for both)\n")
        parts.append(table(["proxy - reference", "target", "n", "tau proxy", "tau reference",
                            "difference", "95% paired CI", "excludes 0"], rows))
    text = "\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(reported(main, "scoreboard_summary"))
