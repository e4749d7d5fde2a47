"""Cross-check the classic zero-cost proxies against NASLib's reference scores on NAS-Bench-201.

Command (the bar of the issue)::

    python benchmarks/naslib_crosscheck.py \
        [--limit N] [--batch-size 32] [--out results/naslib_crosscheck.json] [--smoke]

Reads ``<data dir>/nasbench201/naslib_zc_subset725.json`` (NASLib's zero-cost benchmark, 725
cells), takes the ``cifar10`` entries, builds each cell with ``vitnas`` (seed 0, PyTorch default
init, train mode) and scores it with our proxies on ONE fixed, class-balanced, normalised
CIFAR-10 train batch. For every proxy it prints the Spearman rho between our scores and
NASLib's on the same cells, and the Kendall tau of our scores (and of NASLib's, for reference)
against the NB201 CIFAR-10 200-epoch test accuracy.

Batch size: NASLib's zero-cost configs default to ``batch_size: 32`` with one batch
(``ZeroCost``: dataload "random", 1 batch), and its file confirms it: jacov is at most -N for a
batch of N (every term log(v + k) + 1/(v + k) >= 1), and the largest jacov in the file is
-32.23, impossible for N = 64. So 32 is the default here.

Non-finite scores (NASLib stores NaN as -1e8; nwot can be -inf) are ranked last on both sides;
the file keeps them as the strings "nan", "inf", "-inf" (strict JSON), null where NASLib has no
score.
Cells are visited in a seeded shuffle of the file, so ``--limit N`` is a random subset. Scores
are written to ``--out`` after every cell; re-running with the same settings resumes (other
settings are refused unless ``--fresh``).

Hardware / runtime (measured): 1 CPU thread (torch.set_num_threads(1)) of a shared 2-core
x86_64 machine, torch 2.13 CPU: 2.8 s per cell for all eleven proxies (GraSP's double backward
through BatchNorm 0.8 s of it), so all 725 cells take 34 min; ``--ceiling 150`` adds 7 min;
``--smoke`` (10 cells) takes about 30 s.

Result (``--ceiling 150``, 725 cells, batch 32, seed 0; the run is in
results/naslib_crosscheck.json). rho: Spearman vs NASLib; tau: Kendall vs NB201 CIFAR-10 test
accuracy; seed0/1: Spearman between our seed-0 and seed-1 scores (other init, other batch) on
150 cells, i.e. how well two independent draws of the same estimator can agree::

    proxy      rho vs NASLib  target  tau ours  tau NASLib  rho seed0/1
    synflow            0.999     0.9     0.576       0.575        0.999
    snip               0.985     0.8     0.474       0.481        0.988
    grasp              0.712     0.8     0.393       0.405        0.682   MISS (noise ceiling)
    fisher             0.975     0.8     0.389       0.404        0.975
    grad_norm          0.984     0.8     0.470       0.476        0.986
    jacov              0.921     0.8     0.532       0.558        0.915
    nwot               0.994     0.8     0.609       0.611        0.995
    zen                    -       -     0.260           -        0.999
    l2_norm            0.946       -     0.568       0.542        0.937
    params             1.000     0.9     0.598       0.598        1.000
    flops              0.996     0.9     0.598       0.558        1.000

GraSP misses 0.8 because its NB201 ranking is dominated by the random draw, not by a
convention: two draws of our own implementation agree only to 0.68, NASLib's file is one more
independent draw (its own init and augmented batch), and 0.71 is at that ceiling; its Kendall
tau against accuracy equals NASLib's (0.39 vs 0.41). flops: NASLib's counter also counts
pooling and BatchNorm, ours only convolutions and linear layers (same ranks as params on NB201).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import vitnas.proxies.zero_cost  # noqa: F401  (registers the proxies)
from vitnas.data import Normalize, fixed_batch, get_dataset
from vitnas.errors import ConfigError, reported
from vitnas.formatting import dumps_strict, from_nonfinite_word, nonfinite_word
from vitnas.paths import find_data_file
from vitnas.proxies import score_architecture
from vitnas.spaces import get_space

REFERENCE_FILE = "nasbench201/naslib_zc_subset725.json"
PROXIES = ("synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "zen",
           "l2_norm", "params", "flops")
# Spearman targets against NASLib (zen has no NASLib reference in the file).
TARGETS = {"synflow": 0.9, "params": 0.9, "flops": 0.9, "snip": 0.8, "grad_norm": 0.8,
           "nwot": 0.8, "fisher": 0.8, "grasp": 0.8, "jacov": 0.8}
# NASLib's op indices, and the edge order of its 6-tuple: (1,2),(1,3),(1,4),(2,3),(2,4),(3,4).
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")


def naslib_to_string(arch: tuple[int, ...]) -> str:
    o = [NASLIB_OPS[i] for i in arch]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[3]}~1|+|{o[2]}~0|{o[4]}~1|{o[5]}~2|"


def rank_ready(values: list[float]) -> np.ndarray:
    """Non-finite and NASLib's -1e8 failure marker become the lowest value (ranked last)."""
    arr = np.array(values, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr <= -1e8)
    if bad.all():
        return np.zeros_like(arr)
    low = arr[~bad].min()
    arr[bad] = low - 1.0 - abs(low)
    return arr


def summarise(cells: dict, proxies: list[str]) -> dict:
    summary = {}
    for proxy in proxies:
        ours, ref, acc, ref_acc = [], [], [], []
        for cell in cells.values():
            if proxy not in cell["ours"]:
                continue
            acc.append(cell["test_accuracy"])
            ours_value = cell["ours"][proxy]
            ours.append(ours_value)
            if cell["naslib"].get(proxy) is not None:
                ref.append((ours_value, cell["naslib"][proxy]))
                ref_acc.append((cell["naslib"][proxy], cell["test_accuracy"]))
        row: dict = {"cells": len(ours)}
        if len(ours) >= 3:
            row["kendall_vs_test_acc"] = float(stats.kendalltau(rank_ready(ours), acc)[0])
            row["non_finite"] = int(sum(not math.isfinite(v) for v in ours))
        if len(ref) >= 3:
            a, b = zip(*ref)
            row["spearman_vs_naslib"] = float(stats.spearmanr(rank_ready(a), rank_ready(b))[0])
            row["naslib_cells"] = len(ref)
            r, t = zip(*ref_acc)
            row["naslib_kendall_vs_test_acc"] = float(stats.kendalltau(rank_ready(r), t)[0])
        pairs = [(c["ours"][proxy], c["ours_alt_seed"][proxy]) for c in cells.values()
                 if proxy in c.get("ours_alt_seed", {}) and proxy in c["ours"]]
        if len(pairs) >= 3:
            a, b = zip(*pairs)
            row["seed_to_seed_spearman"] = float(stats.spearmanr(rank_ready(a), rank_ready(b))[0])
            row["seed_to_seed_cells"] = len(pairs)
        if proxy in TARGETS:
            row["target"] = TARGETS[proxy]
            rho = row.get("spearman_vs_naslib")
            row["meets_target"] = rho is not None and rho >= TARGETS[proxy]
        summary[proxy] = row
    return summary


def print_table(summary: dict, seconds_per_cell: float | None, n: int) -> None:
    print(f"\n{n} cells" + (f", {seconds_per_cell:.2f} s per cell" if seconds_per_cell else ""))
    print(f"{'proxy':<10} {'rho vs NASLib':>13} {'target':>7} {'tau ours':>9} {'tau NASLib':>10}"
          f" {'rho seed0/1':>11}")
    for proxy, row in summary.items():
        rho = row.get("spearman_vs_naslib")
        target = row.get("target")
        mark = "" if target is None else ("  ok" if row.get("meets_target") else "  MISS")
        print(
            f"{proxy:<10} {'-' if rho is None else f'{rho:.3f}':>13} "
            f"{'-' if target is None else f'{target:.1f}':>7} "
            f"{row.get('kendall_vs_test_acc', float('nan')):>9.3f} "
            f"{row.get('naslib_kendall_vs_test_acc', float('nan')):>10.3f}"
            f" {row.get('seed_to_seed_spearman', float('nan')):>11.3f}{mark}"
        )


def cell_count(cells: dict) -> int:
    return sum("ours_alt_seed" in c for c in cells.values())


# a cell's scores keep non-finite values as these strings: strict JSON has no NaN or infinity,
# and here they differ from null (NASLib gave no score) and from each other (nwot's -inf ranks
# last on purpose); the resume reads them back
SCORE_FIELDS = ("ours", "naslib", "ours_alt_seed")


def encode_cell(cell: dict) -> dict:
    return {k: ({p: nonfinite_word(v) for p, v in cell[k].items()} if k in SCORE_FIELDS else v)
            for k, v in cell.items()}


def decode_cell(cell: dict) -> dict:
    return {k: ({p: from_nonfinite_word(v) for p, v in cell[k].items()} if k in SCORE_FIELDS
                else v)
            for k, v in cell.items()}


def write_json(path: Path, payload: dict) -> None:
    """Indented header, one line per cell (compact but diffable); strict JSON; atomic
    replace."""
    head = {k: v for k, v in payload.items() if k != "cells"}
    text = dumps_strict(head, indent=1)[:-2] + ',\n "cells": {\n'
    text += ",\n".join(
        f"  {json.dumps(key)}: "
        f"{json.dumps(encode_cell(cell), separators=(',', ':'), allow_nan=False)}"
        for key, cell in payload["cells"].items()
    )
    text += "\n }\n}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="score N cells (random subset)")
    parser.add_argument("--smoke", action="store_true",
                        help="quick check: 10 cells, no file unless --out")
    parser.add_argument("--batch-size", type=int, default=32, help="proxy batch size (NASLib: 32)")
    parser.add_argument("--seed", type=int, default=0, help="model init, batch and proxy seed")
    parser.add_argument("--proxies", default=",".join(PROXIES), help="comma list of proxies")
    parser.add_argument("--out", default=None,
                        help="result JSON (default results/naslib_crosscheck.json)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--data-dir", default=None, help="data dir (default $VITNAS_DATA_DIR)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing --out file")
    parser.add_argument("--ceiling", type=int, default=0, metavar="N",
                        help="also score the first N cells with seed+1 (noise ceiling)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    limit = 10 if args.smoke and args.limit is None else args.limit
    default_out = None if args.smoke else Path("results/naslib_crosscheck.json")
    out = Path(args.out) if args.out else default_out

    settings = {"batch_size": args.batch_size, "seed": args.seed, "dataset": "cifar10",
                "batch": "fixed_batch(cifar10 train, class-balanced, normalised)"}
    cells: dict = {}
    if out is not None and out.exists() and not args.fresh:
        previous = json.loads(out.read_text())
        if previous.get("settings") != settings:  # never overwritten without a word
            raise ConfigError(f"{out} holds cells scored with other settings "
                              f"({previous.get('settings')}); pass --fresh to start it over, "
                              f"or another --out")
        cells = {key: decode_cell(cell) for key, cell in previous.get("cells", {}).items()}
        print(f"resuming: {len(cells)} cells already in {out}")

    reference = json.loads(find_data_file(REFERENCE_FILE, args.data_dir).read_text())["cifar10"]
    keys = sorted(reference)
    random.Random(0).shuffle(keys)  # fixed order: every --limit run is a prefix of it
    if limit is not None:
        keys = keys[:limit]

    space = get_space("nasbench201", data_dir=args.data_dir)
    dataset = get_dataset("cifar10", split="train", data_dir=args.data_dir)
    inputs, labels = fixed_batch(dataset, args.batch_size, seed=args.seed,
                                 transform=Normalize.for_dataset(dataset))

    meta = {
        "command": " ".join(["naslib_crosscheck.py", *(sys.argv[1:] if argv is None else argv)]),
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "reference": REFERENCE_FILE,
    }

    def payload(seconds_per_cell: float | None) -> dict:
        return {"settings": settings, "meta": {**meta, "seconds_per_cell": seconds_per_cell},
                "summary": summarise(cells, proxies), "cells": cells}

    started, scored = time.perf_counter(), 0
    for i, key in enumerate(keys):
        entry = reference[key]
        if key in cells and all(p in cells[key]["ours"] for p in proxies):
            continue
        arch = space.from_json(naslib_to_string(ast.literal_eval(key)))
        cell_start = time.perf_counter()
        results = score_architecture(space, arch, proxies, inputs, labels, seed=args.seed)
        cells[key] = {
            "arch": arch.string,
            "test_accuracy": space.test_accuracy(arch, "cifar10"),
            "naslib_val_accuracy": entry.get("val_accuracy"),
            "ours": {r.proxy: r.raw for r in results},
            "seconds": {r.proxy: r.seconds for r in results},
            "warnings": sorted({w for r in results for w in r.warnings}),
            "cell_seconds": time.perf_counter() - cell_start,
            "naslib": {p: entry[p]["score"] if p in entry else None for p in proxies},
        }
        scored += 1
        rate = (time.perf_counter() - started) / scored
        if out is not None:  # after every cell: a kill loses at most the cell in progress
            write_json(out, payload(rate))
        if scored % 10 == 0:
            print(f"{i + 1}/{len(keys)} cells, {rate:.2f} s/cell", flush=True)

    # noise ceiling: another init, another batch, another proxy seed, as NASLib's run differs
    alt_batch = fixed_batch(dataset, args.batch_size, seed=args.seed + 1,
                            transform=Normalize.for_dataset(dataset))
    for key in keys[: args.ceiling]:
        cell = cells[key]
        if all(p in cell.get("ours_alt_seed", {}) for p in proxies):
            continue
        arch = space.from_json(cell["arch"])
        results = score_architecture(space, arch, proxies, *alt_batch, seed=args.seed + 1)
        cell["ours_alt_seed"] = {r.proxy: r.raw for r in results}
        scored += 1
        if out is not None:
            write_json(out, payload(None))
        if scored % 10 == 0:
            print(f"noise ceiling: {cell_count(cells)} cells re-scored", flush=True)

    timed = [c["cell_seconds"] for c in cells.values() if "cell_seconds" in c]
    seconds_per_cell = float(np.mean(timed)) if timed else None
    if out is not None:
        write_json(out, payload(seconds_per_cell))
        print(f"wrote {out}")
    print_table(summarise(cells, proxies), seconds_per_cell, len(cells))
    return 0


if __name__ == "__main__":
    sys.exit(reported(main, "naslib_crosscheck"))
