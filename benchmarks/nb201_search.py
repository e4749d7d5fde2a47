"""NAS-Bench-201 CIFAR-10: evolution with the best measured proxy vs random search with the same
proxy and budget, over several seeds; the found cells' 200-epoch test accuracy.

Command:  python benchmarks/nb201_search.py            (writes results/nb201_search.json)
          python benchmarks/nb201_search.py --smoke    (a CPU minute; prints only)
Hardware: the project's 2-core CPU machine (2 workers x 1 thread); NASWOT on a CIFAR-10 batch of
          32 costs about 0.25 s per cell, so 5 seeds x 2 searches x 1000 evaluations (random and
          evolution share their overlap through the store) take about 25-40 minutes.
Expected: published training-free NAS reaches about 93-94% on NB201 CIFAR-10 (the optimum is
          94.37%); evolution should match or beat random search at the same budget.

Besides the two searches, each seed reports two references that need no search: a uniformly
random cell (what no proxy gives), and the best cell among random search's candidates by true
accuracy (what a perfect proxy would pick from the same draws).
NASWOT is the default proxy: it has the highest Kendall tau on NB201 in the README's table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from vitnas.errors import reported
from vitnas.search import EvolutionConfig, SearchConfig, run_search
from vitnas.spaces import get_space
from vitnas.store import default_store_path

OPTIMUM = 94.37


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(values), 3),
            "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proxy", default="nwot")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--parents", type=int, default=10)
    parser.add_argument("--dataset", default="cifar10", help="proxy batch source")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--db", help="score store (default: the vitnas cache, so reruns are free)")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", help="JSON result file (default results/nb201_search.json; "
                                      "none with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="a CPU-minute version")
    args = parser.parse_args()
    if args.smoke:
        args.budget, args.seeds, args.population, args.parents, args.batch_size = 20, 2, 10, 3, 8
    out = args.out or (None if args.smoke else "results/nb201_search.json")
    space = get_space("nasbench201", data_dir=args.data_dir)
    table = space.table()

    rows: dict[str, list[float]] = {"evolution": [], "random search": [],
                                    "random cell (no proxy)": [],
                                    "best of random search's candidates (oracle)": []}
    per_seed = []
    for seed in range(args.seeds):
        found = {}
        for algorithm in ("evolution", "random"):
            config = SearchConfig(
                proxies=(args.proxy,), algorithm=algorithm, budget=args.budget, seed=seed,
                dataset=args.dataset, batch_size=args.batch_size, population=args.population,
                evolution=EvolutionConfig(parents=args.parents, mutations=args.population // 2,
                                          crossovers=args.population // 2))
            found[algorithm] = run_search(space, config, store=args.db or default_store_path(),
                                          workers=args.workers, threads=args.threads,
                                          data_dir=args.data_dir)
        accuracy = {name: space.test_accuracy(result.best.candidate.arch)
                    for name, result in found.items()}
        oracle = max(space.test_accuracy(e.candidate.arch) for e in found["random"].evaluations)
        uniform = float(table.accuracy["cifar10"][random.Random(seed).randrange(len(
            table.strings))])
        rows["evolution"].append(accuracy["evolution"])
        rows["random search"].append(accuracy["random"])
        rows["random cell (no proxy)"].append(uniform)
        rows["best of random search's candidates (oracle)"].append(oracle)
        per_seed.append({
            "seed": seed,
            "evolution": {"arch": found["evolution"].best_arch, "test_accuracy": accuracy[
                "evolution"], "computed": found["evolution"].computed},
            "random": {"arch": found["random"].best_arch, "test_accuracy": accuracy["random"],
                       "computed": found["random"].computed},
            "random_cell_accuracy": uniform, "oracle_accuracy": oracle,
        })
        print(f"seed {seed}: evolution {accuracy['evolution']:.2f}%, random search "
              f"{accuracy['random']:.2f}%, random cell {uniform:.2f}%, oracle {oracle:.2f}%",
              flush=True)

    results = {name: summary(values) for name, values in rows.items()}
    print(f"\nNAS-Bench-201 CIFAR-10 test accuracy (200 epochs) of the found cell, {args.proxy}, "
          f"budget {args.budget}, {args.seeds} seeds (optimum {OPTIMUM}%)")
    width = max(map(len, results))
    for name, stats in results.items():
        print(f"  {name.ljust(width)}  {stats['mean']:.2f} +- {stats['std']:.2f}")
    if out:
        record = {"command": "python " + " ".join(sys.argv),
                  "settings": {k: v for k, v in vars(args).items() if k not in ("out", "smoke")},
                  "optimum": OPTIMUM, "results": results, "per_seed": per_seed}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(reported(main, "nb201_search"))
