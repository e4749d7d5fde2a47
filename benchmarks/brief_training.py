"""Brief training on trained ViTs: Kendall tau against seconds per architecture (issue 23).

    python benchmarks/brief_training.py [--split dev] [--checkpoints 25,50,100]
        [--metrics val_acc,val_loss,train_loss,lga] [--workers 2] [--db runs/brief.sqlite]
        [--out results/brief] [--smoke]

Hardware: the project's 2-core CPU machine. Expected runtime: each AutoFormer-T candidate of
ViT-Bench-101 trains once at 32 px with 8 px patches (16 tokens), batch 64, to the largest
checkpoint (about 0.3-0.5 s per step on one thread), and every metric is read at every
checkpoint; the 47 dev architectures take 30-60 minutes on two worker processes. Every
architecture's readings land in the score store as ``brief:steps=k,metric=m`` rows (the same
keys a scoreboard uses, so ``vitnas bench correlate --proxies brief:steps=50`` reuses them), so
a killed run resumes where it stopped. Expected result: whether a minute of training ranks the
trained ViTs better than the shape baselines.

Writes ``OUT/brief_<split>.json`` (every brief row, the zero-cost rows and shape baselines of the
committed scoreboard on the same architectures, each with its tau on every KD label and its
seconds per architecture) and ``OUT/brief_<split>.png`` (tau against seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vitnas.bench import load_benchmark
from vitnas.bench.correlate import SHAPE_COLUMNS, shape_matrix, split_indices
from vitnas.bench.stats import bootstrap_interval, kendall_tau_b, partial_kendall_given
from vitnas.errors import reported
from vitnas.formatting import dumps_strict
from vitnas.proxies.base import ProxyContext
from vitnas.proxies.brief import METRICS, train_with_checkpoints
from vitnas.proxies.scoring import proxy_batch
from vitnas.proxies.shape import is_baseline
from vitnas.proxies.spec import get_proxy
from vitnas.store import ScoreKey, ScoreStore, StoredScore, batch_identity, space_identity

BENCH = "vit-bench-101-autoformer"
LABELS = ("c100_kd_acc", "flower_kd_acc", "chaoyang_kd_acc")
BATCH, BATCH_SIZE, SEED = "cifar10", 16, 0  # the scoreboard's proxy batch (the store's key)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="dev", choices=("dev", "test", "all"))
    p.add_argument("--checkpoints", default="25,50,100")
    p.add_argument("--metrics", default=",".join(METRICS))
    p.add_argument("--options", default="", help="brief options, e.g. patch_size=4,lr=1e-3")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--db", default="runs/brief.sqlite")
    p.add_argument("--out", default="results/brief")
    p.add_argument("--board", default="results/vitbench101/autoformer_{label}_{split}.json",
                   help="committed scoreboards whose rows stand beside brief training")
    p.add_argument("--limit", type=int, default=0, help="first N architectures only")
    p.add_argument("--smoke", action="store_true", help="3 architectures, checkpoints 2,4")
    return p.parse_args(argv)


def spec_of(base: str, steps: int, metric: str) -> str:
    options = ",".join(filter(None, [f"steps={steps}", f"metric={metric}", base]))
    return get_proxy(f"brief:{options}").spec


def train_one(job: tuple) -> tuple[int, list]:
    """One architecture in a worker process (one thread): every checkpoint, every metric."""
    import torch

    index, arch_json, options, checkpoints, metrics = job
    torch.set_num_threads(1)
    bench = load_benchmark(BENCH)
    space = bench.space
    config = get_proxy(f"brief:{options}" if options else "brief").config
    ctx = ProxyContext(torch.zeros(1), torch.zeros(1, dtype=torch.long), space.num_classes,
                       SEED, space, space.validate(arch_json))
    return index, train_with_checkpoints(ctx, config, checkpoints, metrics)


def run(args: argparse.Namespace) -> dict:
    checkpoints = [2, 4] if args.smoke else [int(c) for c in args.checkpoints.split(",")]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    bench = load_benchmark(BENCH)
    space = bench.space
    indices = split_indices(bench, args.split)
    if args.smoke:
        indices = indices[:3]
    elif args.limit:
        indices = indices[:args.limit]
    x, y = proxy_batch(BATCH, BATCH_SIZE, space.img_size, space.in_chans, space.num_classes, SEED)
    batch_id, space_id = batch_identity(x, y), space_identity(space)
    specs = {(k, m): spec_of(args.options, k, m) for k in checkpoints for m in metrics}
    full = {key: get_proxy(spec).full_spec for key, spec in specs.items()}
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = ScoreStore(args.db)

    def key(i: int, k: int, m: str) -> ScoreKey:
        return ScoreKey(space_id, space.key(bench.records[i].arch), full[(k, m)], SEED, batch_id)

    todo = [i for i in indices if any(store.get(key(i, k, m)) is None for (k, m) in specs)]
    print(f"{len(indices) - len(todo)} of {len(indices)} architectures already in {args.db}; "
          f"training {len(todo)}", file=sys.stderr)
    jobs = [(i, space.to_json(bench.records[i].arch), args.options, checkpoints, metrics)
            for i in todo]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for done, (i, readings) in enumerate(pool.map(train_one, jobs), 1):
            store.put(StoredScore(key(i, c.steps, m), c.values[m], c.values[m], c.seconds[m], ())
                      for c in readings for m in metrics)
            print(f"[{done}/{len(jobs)}] architecture {i}: "
                  + ", ".join(f"{c.steps} steps {max(c.seconds.values()):.0f} s val_acc "
                              f"{c.values.get('val_acc', math.nan):.1f}" for c in readings)
                  + f" ({time.perf_counter() - started:.0f} s so far)", file=sys.stderr)

    rows = []
    for (k, m), spec in specs.items():
        found = [store.get(key(i, k, m)) for i in indices]
        rows.append({"proxy": spec, "kind": "brief", "steps": k, "metric": m,
                     "scores": [f.score for f in found],
                     "seconds": float(np.mean([f.seconds for f in found]))})
    store.close()
    return {"indices": indices, "rows": rows, "checkpoints": checkpoints, "metrics": metrics}


def judged(study: dict, args: argparse.Namespace) -> dict:
    """Every brief row beside the committed board's rows on the same architectures, with its
    partial tau given shape: a reading that ranks backwards may still know something the
    counts do not, and a calibrator could use that."""
    bench = load_benchmark(BENCH)
    keys = [bench.space.key(bench.records[i].arch) for i in study["indices"]]
    shape = shape_matrix(bench.space, [bench.records[i].arch for i in study["indices"]])
    result = {"benchmark": BENCH, "split": args.split, "n": len(keys), "labels": {},
              "partial_given": list(SHAPE_COLUMNS)}
    board_rows: dict[str, dict] = {}
    for label in LABELS:
        truth = np.array([bench.values(label)[i] for i in study["indices"]], float)
        path = Path(args.board.format(label=label, split=args.split))
        rows = [dict(r) for r in study["rows"]]
        if path.is_file():
            board = json.loads(path.read_text())
            where = {k: j for j, k in enumerate(board["keys"])}
            if all(k in where for k in keys):
                seconds = {r["proxy"]: r["seconds"] for r in board["rows"]}
                for name, scores in board["scores"].items():
                    rows.append({"proxy": name, "kind": "board", "seconds": seconds.get(name),
                                 "scores": [scores[where[k]] for k in keys]})
        out = {}
        for row in rows:
            s = np.array([math.nan if v is None else v for v in row["scores"]], float)
            ok = np.isfinite(s)
            tau = kendall_tau_b(s[ok], truth[ok])
            ci = bootstrap_interval(s[ok], truth[ok], kendall_tau_b, 1000, 0.95, 0)
            z = shape[ok]
            partial = partial_kendall_given(s[ok], truth[ok], z)
            out[row["proxy"]] = {"kendall": tau, "kendall_ci": [ci.low, ci.high],
                                 # None where nothing is left beyond shape (params itself)
                                 "partial_shape": partial if math.isfinite(partial) else None,
                                 "seconds": row["seconds"], "kind": row["kind"]}
            if row["kind"] == "brief":
                # resampled architectures carry their shape along: the statistic gets indices
                at = np.arange(len(z))
                partial_ci = bootstrap_interval(
                    at, at, lambda a, _b, s=s[ok], t=truth[ok], z=z: partial_kendall_given(
                        s[a.astype(int)], t[a.astype(int)], z[a.astype(int)]), 1000, 0.95, 0)
                out[row["proxy"]]["partial_shape_ci"] = [partial_ci.low, partial_ci.high]
            board_rows.setdefault(row["proxy"], row)
        result["labels"][label] = out
    return result


def plot(result: dict, path: Path) -> None:
    from vitnas.formatting import headless_pyplot

    plt = headless_pyplot()
    labels = list(result["labels"])
    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 4), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for name, row in result["labels"][label].items():
            # the shape baselines are counts: drawn at the axis' floor
            seconds = 0.0 if row["seconds"] is None and is_baseline(name) else row["seconds"]
            if seconds is None or not math.isfinite(row["kendall"]):
                continue
            brief = row["kind"] == "brief"
            ax.scatter(max(seconds, 1e-3), row["kendall"], s=14,
                       c="tab:red" if brief else "tab:blue" if ":" in name or "+" in name
                       else "tab:gray", marker="o" if brief else ".")
            if brief or name in ("params", "logsize", "depth>params", "lswag", "depth", "width"):
                ax.annotate(name.replace("brief:", ""), (max(seconds, 1e-3), row["kendall"]),
                            fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per architecture (this machine)")
        ax.set_ylabel("Kendall tau")
        ax.set_title(f"{label} ({result['split']}, n={result['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    study = run(args)
    result = judged(study, args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result.update(command="python benchmarks/brief_training.py " + " ".join(argv),
                  commit=commit, checkpoints=study["checkpoints"], metrics=study["metrics"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"brief_{args.split}" + ("_smoke" if args.smoke else "")
    (out / f"{name}.json").write_text(dumps_strict(result, indent=1, default=float) + "\n")
    plot(result, out / f"{name}.png")
    for label, rows in result["labels"].items():
        best = sorted(rows.items(), key=lambda kv: -np.nan_to_num(kv[1]["kendall"], nan=-9))
        print(f"{label}: " + ", ".join(f"{n} {r['kendall']:.3f}" for n, r in best[:8]))


if __name__ == "__main__":
    sys.exit(reported(lambda: main(sys.argv[1:]), "brief_training"))
