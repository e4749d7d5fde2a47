"""Training-free search of a segmentation backbone: the ground truth, its noise, the scoreboard,
and one searched backbone trained and compared with the best of its window.

    python benchmarks/segmentation_study.py [--workers 2] [--out results/segmentation] [--smoke]

Hardware: the project's 2-core CPU machine (no GPU). Expected runtime: after the ground truth
exists (below), about 15-25 min: scoring the micro S3 backbones with every proxy (the score store
keeps each score, so a re-run only judges), one 200-evaluation search and one training run
(``--skip-search`` judges the board only: about 4 min for 24 backbones with 2 workers).
Expected result: the segmentation tables in the README.

The ground truth, about 2.3 h per seed: 24 backbones of ``s3-wide-micro`` (the wide-range preset),
trained 12 epochs under seed 0 and again under seed 1, one lane per core (``bench build``
resumes; a larger ``--n`` extends the same plan):

    COMMON="s3-wide-micro --task segmentation --num-classes 11 --dataset paste-fashion \\
        --dataset-options n=5000 --epochs 12 --batch-size 64 --lr 2e-3 --label-smoothing 0 \\
        --threads 1 --quiet --plan-seed 0 --n 24"
    vitnas bench build $COMMON --seed 0 --out results/groundtruth/s3segw.json
    vitnas bench build $COMMON --seed 1 --out results/groundtruth/s3segw_seed1.json

The first ground truth (``--ground-truth s3seg``: 40 ``s3-tiny-micro`` backbones at 6 epochs,
8 under the second seed) is kept, at noise; its commands are in ``results/README.md``.

Protocol: nothing is chosen here. The proxies run at the defaults chosen on ViT-Bench-101's
AutoFormer dev half (the search default of ``vitnas.recommended`` and the ViNTK default), so
every number below is a claim on data no choice saw. Every proxy sees one fixed batch of 16
pasted scenes (seed 0) with their label maps; dense outputs are scalarised as
``vitnas.proxies.targets`` documents. The noise ceiling is ``vitnas.bench.noise`` on the
architectures trained under two seeds; the board records that reliability (seed tau, its
interval, the ceiling) and says "at noise" when the seed tau is below 0.5.
The search runs the default proxy in the params window holding the middle fifth of the ground
truth, trains its pick with the ground truth's recipe, and compares its mIoU with the best,
the median and the worst architecture of the ground truth in that window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vitnas.bench import load_benchmark
from vitnas.bench.correlate import ScoreboardConfig, correlate
from vitnas.bench.groundtruth import merge_ground_truths
from vitnas.bench.noise import noise_ceiling, paired_seeds
from vitnas.bench.report import markdown_table, reliability_line, write_scoreboard
from vitnas.bench.stats import kendall_tau_b
from vitnas.errors import VitnasError, reported
from vitnas.formatting import dumps_strict
from vitnas.recommended import DEFAULT_SEARCH_PROXY
from vitnas.store import ScoreStore

GT = Path("results/groundtruth")
METRIC = "miou"
BATCH, BATCH_SIZE = "paste-fashion", 16
PROXIES = ("registered", "vintk:mode=joint", "vintk:mode=band", "vintk:mode=learn",
           "ntk_cond:params=all", "ntk_trace:outputs=scalar", "swap:unit=channel",
           "token_entropy:estimator=spectral", "meco:opt_channels=8",
           "ens:nwot+params", "ens:vintk+params", "ens:lswag+params",
           "logrank:aznas_trainability+aznas_expressivity+aznas_complexity")
SMOKE_PROXIES = ("params", "nwot", "lswag", "vintk", "ntk_cond")


def merged(prefix: str) -> Path:
    """The merged file of ``prefix``'s shards (merged again whenever a shard is newer)."""
    out = GT / f"{prefix}.json"
    shards = sorted(GT.glob(f"{prefix}_shard*.json"))
    if shards and (not out.exists() or max(p.stat().st_mtime for p in shards) >
                   out.stat().st_mtime):
        merge_ground_truths(shards, out)
    return out


def window_of(params: list[float]) -> tuple[float, float]:
    """The params window holding the middle fifth of the ground truth (40th-60th percentile)."""
    low, high = np.percentile(params, [40, 60])
    return float(low), float(high)


def search_and_train(bench, out: Path, budget: int, workers: int) -> dict:
    from vitnas.bench.groundtruth import GroundTruthConfig, load_training_data
    from vitnas.search import Constraints, EvolutionConfig, SearchConfig, Window, run_search
    from vitnas.train import train_model

    recipe = {k: v for k, v in bench.meta["recipe"].items()}
    config = GroundTruthConfig(**{**recipe, "n": 1})
    params = [bench.space.params(r.arch) for r in bench.records]
    low, high = window_of(params)
    inside = [(bench.space.params(r.arch), v, r.arch) for r, v in
              zip(bench.records, bench.values(METRIC)) if low <= bench.space.params(r.arch) <= high]
    search = run_search(bench.space, SearchConfig(
        proxies=(DEFAULT_SEARCH_PROXY,), budget=budget, population=20, dataset=BATCH,
        batch_size=BATCH_SIZE, constraints=Constraints(params=Window(low, high)),
        evolution=EvolutionConfig.for_population(20)),
        store="runs/segmentation_search.sqlite", workers=workers)
    train, test = load_training_data(config)
    model = bench.space.build(search.best.candidate.arch, seed=config.seed)
    start = time.perf_counter()
    result = train_model(model, train, config.train_config(), eval_set=test)
    values = sorted(v for _, v, _ in inside)
    return {
        "window_params": [low, high],
        "search": {"proxy": DEFAULT_SEARCH_PROXY, "budget": budget, "population": 20,
                   "arch": search.best_arch, "params": search.best.candidate.params,
                   "flops": search.best.candidate.flops, "search_seconds":
                   round(search.timings["total"], 1)},
        "searched_miou": round(result.metrics[METRIC], 2),
        "searched_pixel_acc": round(result.metrics["pixel_acc"], 2),
        "searched_macc": round(result.metrics["macc"], 2),
        "searched_iou_per_class": [None if v is None else round(v, 2)
                                   for v in result.metrics["iou_per_class"]],
        "train_seconds": round(time.perf_counter() - start, 1),
        "ground_truth_in_window": {"n": len(values), "best": max(values),
                                   "median": statistics.median(values), "worst": min(values)},
        "searched_arch_in_ground_truth": any(a == search.best_arch for _, _, a in inside),
    }


HEADLINE = tuple(dict.fromkeys(("params", "flops", DEFAULT_SEARCH_PROXY, "lswag", "vintk",
                                "ntk_cond", "ntk_trace", "lga", "dss", "nwot")))


def _or_dash(value: float) -> str:
    """A partial tau, or "-" where it is undefined (a shape row given its own shape)."""
    return f"{value:.3f}" if np.isfinite(value) else "-"


def readme_table(board) -> str:
    """The README's table: the headline proxies, then the five best others by tau, each beside
    #params and the board's best shape baseline (named in the header)."""
    rows = {r.proxy: r for r in board.rows}
    others = sorted((r for r in board.rows if r.proxy not in HEADLINE and np.isfinite(r.kendall)),
                    key=lambda r: -r.kendall)[:5]
    chosen = [rows[name] for name in HEADLINE if name in rows] + others

    def ci(pair) -> str:
        return f"[{pair[0]:.2f}, {pair[1]:.2f}]"

    lines = ["| proxy | Kendall tau [95% CI] | tau - tau(params) [paired CI] | tau - tau("
             f"{board.shape_baseline}) [paired CI] | partial tau given shape | s/arch |",
             "|---|---|---|---|---|---|"]
    for r in chosen:
        lines.append(f"| {r.proxy} | {r.kendall:.3f} {ci(r.kendall_ci)} | "
                     f"{r.delta_kendall:+.3f} {ci(r.delta_kendall_ci)} | "
                     f"{r.delta_shape_kendall:+.3f} {ci(r.delta_shape_kendall_ci)} | "
                     f"{_or_dash(r.partial_kendall_shape)} | {r.seconds:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/segmentation")
    parser.add_argument("--db", default="runs/segmentation.sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--ground-truth", default="s3segw",
                        help="prefix of the ground truth's shard files in results/groundtruth "
                             "(s3segw: the wide-range one; s3seg: the first, at noise)")
    parser.add_argument("--smoke", action="store_true", help="a few proxies, a tiny search")
    parser.add_argument("--skip-search", action="store_true",
                        help="judge the board only: no search, no training of its pick")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(sys.argv)

    try:
        bench = load_benchmark(str(merged(args.ground_truth)))
        repeat = load_benchmark(str(merged(f"{args.ground_truth}_seed1")))
    except VitnasError as err:
        print(f"segmentation_study: {err}", file=sys.stderr)
        return 2
    _, first, second = paired_seeds(bench, repeat, METRIC)
    seed_tau = kendall_tau_b(first, second)
    noise = {"architectures_twice": len(first), "seed_vs_seed_tau": round(seed_tau, 3),
             "ceiling_one_seed": round(noise_ceiling(seed_tau, 1), 3),
             "miou_range": [min(bench.values(METRIC)), max(bench.values(METRIC))],
             "mean_abs_seed_difference": round(float(np.mean(np.abs(first - second))), 2)}

    proxies = SMOKE_PROXIES if args.smoke else PROXIES
    config = ScoreboardConfig(proxies=tuple(proxies), metric=METRIC, batch=BATCH,
                              batch_size=BATCH_SIZE, split="all", resamples=1000)
    with ScoreStore(args.db) as store:  # the second seed: the board's reliability line
        board = correlate(bench, config, store, progress=True, workers=args.workers,
                          repeat=repeat)
    write_scoreboard(board, out / "board.json", command)

    found = (None if args.skip_search else
             search_and_train(bench, out, 20 if args.smoke else args.budget, args.workers))
    summary = {"command": command, "noise": noise, "search": found,
               "taus": {r.proxy: round(r.kendall, 3) for r in board.rows}}
    (out / "summary.json").write_text(dumps_strict(summary, indent=1) + "\n")
    (out / "summary.md").write_text(readme_table(board) + "\n\n" + reliability_line(board)
                                    + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "taus"}, indent=1))
    print(markdown_table(board))
    return 0


if __name__ == "__main__":
    sys.exit(reported(main, "segmentation_study"))
