"""Kendall tau of every proxy against NAS-Bench-201 CIFAR-10 200-epoch test accuracy.

Command:  python benchmarks/nb201_kendall.py [--limit 60] [--batch-size 16] \
              [--out results/nb201_kendall.jsonl]
Cells:    the 725 cells of NASLib's zero-cost subset (../shared/data/nasbench201), in file order,
          so results line up with benchmarks/naslib_crosscheck.py.
Hardware: one CPU core: ~10 s per cell with every proxy at N=16 (NB201 kernels couple samples
          through BatchNorm, so each kernel costs N backward passes of the batch).
Expected: the known CNN behaviour: NTK condition number clearly informative (TE-NAS), params and
          FLOPs strong baselines. The run is resumable: finished cells are appended to --out with
          their batch size and seed, and skipped when it is started again with the same ones
          (only the proxies a cell lacks are scored; other settings are never mixed in).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from vitnas.errors import ConfigError, reported
from vitnas.paths import find_data_file
from vitnas.proxies import expand_proxy_specs, score_architecture
from vitnas.proxies.scoring import proxy_batch
from vitnas.spaces import get_space

OPS_BY_INDEX = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")


def naslib_cells(data_dir: str | None) -> list[str]:
    """NB201 strings of NASLib's 725 CIFAR-10 cells, in file order."""
    path = find_data_file("nasbench201/naslib_zc_subset725.json", data_dir)
    cells = []
    for record in json.loads(path.read_text())["cifar10"].values():
        o = [OPS_BY_INDEX[int(i)] for i in record["arch"].strip("()").split(",")]
        cells.append(f"|{o[0]}~0|+|{o[1]}~0|{o[3]}~1|+|{o[2]}~0|{o[4]}~1|{o[5]}~2|")
    return cells


def merge_record(done: dict, record: dict) -> None:
    """Later lines of a cell add to (or replace) its earlier scores."""
    kept = done.setdefault(record["arch"], {"accuracy": record["accuracy"], "scores": {},
                                            "seconds": {}})
    kept["scores"].update(record["scores"])
    kept["seconds"].update(record["seconds"])


def read_done(out: Path, batch_size: int, seed: int) -> dict:
    """The cells already scored at this batch size and seed (other settings in the same file
    are kept but never mixed in). A last line cut short by a kill is dropped, and the file
    truncated to its last whole line so that appending continues cleanly."""
    if not out.exists():
        return {}
    text = out.read_text()
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            print(f"note: dropped the unfinished last line of {out} (a run killed mid-write)")
            lines = lines[:-1]
            out.write_text("".join(line + "\n" for line in lines))
    done: dict = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{out} line {number} is not JSON; use another --out") from None
        if not isinstance(record, dict) or "batch_size" not in record or "seed" not in record:
            raise ConfigError(f"{out} line {number} does not say its batch size and seed; "
                              f"use another --out")
        if (record["batch_size"], record["seed"]) == (batch_size, seed):
            merge_record(done, record)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxies", default="registered,vintk:mode=band,vintk:mode=align")
    parser.add_argument("--out", default="results/nb201_kendall.jsonl")
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = expand_proxy_specs(args.proxies)
    space = get_space("nasbench201", data_dir=args.data_dir)
    x, y = proxy_batch("cifar10", args.batch_size, 32, seed=args.seed, data_dir=args.data_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, args.batch_size, args.seed)
    cells = naslib_cells(args.data_dir)[: args.limit]
    start = time.perf_counter()
    with out.open("a") as handle:
        for i, cell in enumerate(cells):
            have = done.get(cell, {"scores": {}})["scores"]
            missing = [spec for spec in specs if spec not in have]
            if not missing:
                continue
            arch = space.parse(cell)
            results = score_architecture(space, arch, missing, x, y, seed=args.seed)
            record = {"arch": cell, "batch_size": args.batch_size, "seed": args.seed,
                      "accuracy": space.test_accuracy(arch, "cifar10"),
                      "scores": {r.proxy: r.score for r in results},
                      "seconds": {r.proxy: r.seconds for r in results}}
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            merge_record(done, record)
            print(f"[{i + 1}/{len(cells)}] {time.perf_counter() - start:.0f}s", flush=True)
    records = [done[c] for c in cells if c in done]
    accuracy = np.array([r["accuracy"] for r in records])
    print(f"\nKendall tau-b vs NB201 CIFAR-10 200-epoch test accuracy, {len(records)} cells, "
          f"batch {args.batch_size}, seed {args.seed}")
    print(f"{'proxy':36s} {'tau':>7s} {'failed':>7s} {'s/cell':>7s}")
    rows = []
    for spec in specs:
        scores = np.array([r["scores"][spec] for r in records], dtype=float)
        finite = np.isfinite(scores)
        tau = math.nan
        if finite.sum() > 2:
            tau = kendalltau(scores[finite], accuracy[finite]).statistic
        seconds = float(np.mean([r["seconds"][spec] for r in records]))
        rows.append((spec, tau, int((~finite).sum()), seconds))
    for spec, tau, failed, seconds in sorted(rows, key=lambda r: -np.nan_to_num(r[1], nan=-9)):
        print(f"{spec:36s} {tau:7.3f} {failed:7d} {seconds:7.2f}")


if __name__ == "__main__":
    sys.exit(reported(main, "nb201_kendall"))
