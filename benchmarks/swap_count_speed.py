"""SWAP's pattern count: the flat count of one-word patterns against the row-wise count it replaced.

    python benchmarks/swap_count_speed.py [--threads 1] [--rounds 5]
        [--out results/swap_count_speed.json]

Hardware: whatever runs it; the README's number comes from the project's 2-core CPU machine
(about a minute). One ViT-Bench-101 AutoFormer-T architecture (the benchmark's first, 9.7M
parameters) at 224 px sees one fixed batch of 16 random 224 px images; its MLP
activation patterns are recorded once (one forward pass, ``unit=position``: millions of
units), then both counts run on the same keys, interleaved round by round so a neighbour's
load hits both alike. ``swap`` at its default repeats this count for each of 32
initialisations, so the count's cost is most of SWAP's at 224 px. Prints the median seconds
of each, the ratio with its range over rounds, and checks the two counts agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from vitnas.cli.common import positive_int
from vitnas.errors import reported
from vitnas.formatting import dumps_strict
from vitnas.provenance import provenance
from vitnas.proxies.swap import activation_modules, count_patterns, record_pattern_keys


def row_wise_count(keys: list[torch.Tensor]) -> int:
    """The count before: every block's keys (length column included) unique by rows."""
    by_width: dict[int, list[torch.Tensor]] = {}
    for block in keys:
        by_width.setdefault(block.shape[1], []).append(block)
    return sum(int(torch.unique(torch.cat(blocks), dim=0).shape[0])
               for blocks in by_width.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from vitnas.bench import load_benchmark

    bench = load_benchmark("vit-bench-101-autoformer", n=1)
    space, arch = bench.space, bench.records[0].arch
    torch.manual_seed(0)
    model = space.build(arch).eval()
    images = torch.randn(16, 3, space.img_size, space.img_size,
                         generator=torch.Generator().manual_seed(0))
    keys = record_pattern_keys(model, images, activation_modules(model), "position")
    units = sum(block.shape[0] for block in keys)
    times: dict[str, list[float]] = {"row_wise": [], "flat": []}
    counts = {}
    for _ in range(args.rounds):
        for name, count in (("row_wise", row_wise_count), ("flat", count_patterns)):
            start = time.perf_counter()
            counts[name] = count(keys)
            times[name].append(time.perf_counter() - start)
    if counts["row_wise"] != counts["flat"]:
        raise SystemExit(f"the counts disagree: {counts}")
    ratios = [r / f for r, f in zip(times["row_wise"], times["flat"])]
    result = {
        **provenance("python benchmarks/swap_count_speed.py " + " ".join(sys.argv[1:])),
        "params": space.params(arch), "img_size": space.img_size, "units": units,
        "patterns": counts["flat"], "rounds": args.rounds, "threads": args.threads,
        "median_s": {k: statistics.median(v) for k, v in times.items()}, "seconds": times,
        "ratio_median": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
    }
    print(f"{space.params(arch):,} params at {space.img_size} px: {units:,} position units, "
          f"{counts['flat']:,} distinct patterns")
    median = result["median_s"]
    print(f"row-wise unique {median['row_wise']:.3f} s, flat {median['flat']:.3f} s "
          f"(medians of {args.rounds} interleaved rounds): {result['ratio_median']:.1f}x "
          f"[{min(ratios):.1f}, {max(ratios):.1f}]")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(dumps_strict(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(reported(main, "swap_count_speed"))
