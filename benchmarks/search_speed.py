"""Search speed: a 1000-evaluation ViNTK evolutionary search on AutoFormer-T (micro), and
scoring throughput with 2 workers x 1 thread vs 1 worker x 1 thread vs 1 worker x 2 threads.

Command:  python benchmarks/search_speed.py            (writes results/search_speed.json)
          python benchmarks/search_speed.py --smoke    (a CPU minute; prints only)
Hardware: the project's 2-core CPU machine, nothing else running (the worker comparison needs
          both cores); about 20-30 minutes.
Expected: the search finishes in under 60 minutes; 2 workers of 1 thread score at least 1.6x
          as many architectures per second as 1 worker of 1 thread.

Every run scores into a fresh store, so nothing is served from a cache; the throughput runs all
score the same candidates (same config and seed), and the rate is computed evaluations per
second of scoring wall time (worker start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from vitnas.errors import reported
from vitnas.search import Constraints, EvolutionConfig, SearchConfig, parse_window, run_search

LAYOUTS = ((1, 1), (2, 1), (1, 2))  # (workers, threads per worker)


def search_config(args: argparse.Namespace, budget: int) -> SearchConfig:
    return SearchConfig(
        proxies=(args.proxy,), algorithm="evolution", budget=budget, seed=args.seed,
        constraints=Constraints(params=parse_window(args.params, "params")),
        dataset=args.dataset, batch_size=args.batch_size, population=args.population,
        evolution=EvolutionConfig(parents=args.parents, mutations=args.population // 2,
                                  crossovers=args.population // 2))


def timed_search(args: argparse.Namespace, budget: int, workers: int, threads: int,
                 folder: Path, progress: bool = False):
    store = folder / f"scores-{budget}-{workers}x{threads}.sqlite"
    return run_search(args.space, search_config(args, budget), store=store, workers=workers,
                      threads=threads, progress=progress, data_dir=args.data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="autoformer-tiny-micro")
    parser.add_argument("--proxy", default="vintk")
    parser.add_argument("--params", default="0.4M:0.5M", help="parameter window")
    parser.add_argument("--budget", type=int, default=1000, help="evaluations of the search")
    parser.add_argument("--throughput-budget", type=int, default=100,
                        help="evaluations per worker layout")
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--parents", type=int, default=10)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-workers", type=int, default=2)
    parser.add_argument("--search-threads", type=int, default=1)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", help="JSON result file (default results/search_speed.json; "
                                      "none with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="a CPU-minute version")
    args = parser.parse_args()
    if args.smoke:
        args.budget, args.throughput_budget, args.population, args.parents = 20, 8, 10, 3
        args.batch_size = 8
    out = args.out or (None if args.smoke else "results/search_speed.json")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        throughput = []
        for workers, threads in LAYOUTS:
            result = timed_search(args, args.throughput_budget, workers, threads, folder)
            seconds = result.timings["evaluate"]
            throughput.append({"workers": workers, "threads_per_worker": threads,
                               "evaluations": result.computed, "seconds": round(seconds, 2),
                               "evaluations_per_second": round(result.computed / seconds, 4)})
            print(f"{workers} worker(s) x {threads} thread(s): {result.computed} evaluations in "
                  f"{seconds:.1f} s = {result.computed / seconds:.3f} per second", flush=True)
        rate = {(t["workers"], t["threads_per_worker"]): t["evaluations_per_second"]
                for t in throughput}
        speedup_workers = rate[(2, 1)] / rate[(1, 1)]
        speedup_threads = rate[(1, 2)] / rate[(1, 1)]
        print(f"2 workers x 1 thread vs 1 x 1: {speedup_workers:.2f}x (target >= 1.6x); "
              f"1 worker x 2 threads vs 1 x 1: {speedup_threads:.2f}x", flush=True)

        start = time.perf_counter()
        result = timed_search(args, args.budget, args.search_workers, args.search_threads,
                              folder, progress=True)
        wall = time.perf_counter() - start
    per_evaluation = wall / max(1, result.computed)
    print(f"{args.budget}-evaluation {args.proxy} evolution on {args.space} (params "
          f"{args.params}, {args.search_workers} worker(s) x {args.search_threads} thread(s)): "
          f"{wall / 60:.1f} min, {per_evaluation:.2f} s per evaluation (target < 60 min); "
          f"{sum(result.infeasible.values())} infeasible draws rejected")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    print(f"best: {json.dumps(result.best_arch)} ({result.best.candidate.params:,} params, "
          f"{args.proxy} {result.best.scores[0]:.6g})")
    if out:
        record = {
            "command": "python " + " ".join(sys.argv),
            "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(),
                         "processor": platform.processor(), "torch": torch.__version__},
            "settings": {k: v for k, v in vars(args).items() if k not in ("out", "smoke")},
            "search": {"evaluations": result.computed, "wall_seconds": round(wall, 1),
                       "seconds_per_evaluation": round(per_evaluation, 3),
                       "timings": {k: round(v, 2) for k, v in result.timings.items()},
                       "infeasible": result.infeasible, "best_arch": result.best_arch,
                       "best_params": result.best.candidate.params,
                       "best_score": result.best.scores[0]},
            "throughput": throughput,
            "speedup_2_workers_vs_1": round(speedup_workers, 3),
            "speedup_2_threads_vs_1": round(speedup_threads, 3),
        }
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(reported(main, "search_speed"))
