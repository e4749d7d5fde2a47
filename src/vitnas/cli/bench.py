"""`vitnas bench build|merge|list|import|correlate`: ground truth and the proxy scoreboard."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vitnas.cli.common import (
    add_space_flags,
    default_device,
    fraction,
    given,
    learning_rate,
    parse_options,
    positive_int,
    print_table,
    resamples,
    say,
    seed,
    share,
    smoothing,
    space_options,
    training_epochs,
    writable,
)


def cmd_bench_build(args: argparse.Namespace) -> None:
    from vitnas.bench import GroundTruthConfig, build_ground_truth
    from vitnas.bench.groundtruth import set_threads

    set_threads(args.threads)
    writable(args.out, "--out")
    config = GroundTruthConfig(
        space=args.space, n=args.n, space_options=space_options(args),
        dataset=args.dataset, dataset_options=parse_options(args.dataset_options),
        train_per_class=args.train_per_class, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, label_smoothing=args.label_smoothing, seed=args.seed,
        plan_seed=args.plan_seed)
    command = "vitnas " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    from vitnas.search import parse_shard

    content = build_ground_truth(config, args.out, data_dir=args.data_dir,
                                 device=default_device(args), progress=not args.quiet,
                                 command=command, shard=parse_shard(args.shard))
    records, metric = content["records"], content["metric"]
    hours = sum(r.get("train_seconds") or 0 for r in records) / 3600
    values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
    low, high = (min(values), max(values)) if values else (None, None)
    if args.json:
        print(json.dumps({"out": args.out, "architectures": len(records), "metric": metric,
                          f"{metric}_min": low, f"{metric}_max": high,
                          "training_hours": hours}, indent=1))
        return
    spread = f"{metric} {low:.2f}..{high:.2f}%" if values else f"no {metric} yet"
    print(f"{args.out}: {len(records)} architectures, {spread}, {hours:.2f} training hours")


def cmd_bench_merge(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import merge_ground_truths

    writable(args.out, "output file", inputs=args.inputs)
    content = merge_ground_truths(args.inputs, args.out)
    if args.json:
        print(json.dumps({"out": args.out, "architectures": len(content["records"])}, indent=1))
        return
    print(f"{args.out}: {len(content['records'])} architectures from {len(args.inputs)} shards")


def cmd_bench_list(args: argparse.Namespace) -> None:
    from vitnas.bench.catalog import builtin_benchmarks

    rows = builtin_benchmarks()
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(f"{row['name']}  ({row['space']}, {row['size']:,} architectures)")
        print(f"  labels:  {', '.join(row['labels'])}")
        print(f"  source:  {row['source']}")
        print(f"  licence: {row['licence']}")


def cmd_bench_import(args: argparse.Namespace) -> None:
    from vitnas.bench.vitbench101 import import_autoprox, save_json

    writable(args.out, "--out", inputs=[args.file])
    bench = import_autoprox(args.file, args.space, space_options(args))
    save_json(bench, args.out)
    print(f"{args.out}: {len(bench.records)} architectures of {bench.space.name}, labels "
          f"{', '.join(bench.metrics())}")


def cmd_bench_correlate(args: argparse.Namespace) -> None:
    from vitnas.bench import load_benchmark
    from vitnas.bench.correlate import ScoreboardConfig, correlate
    from vitnas.bench.report import (
        reliability_line,
        scoreboard_paths,
        table_rows,
        write_scoreboard,
    )
    from vitnas.device import check_fits
    from vitnas.errors import ConfigError
    from vitnas.store import ScoreStore, default_store_path

    if not any(item.strip() for item in args.proxies.split(",")):
        raise ConfigError(f"--proxies {args.proxies!r} names no proxy; e.g. --proxies nwot,zen "
                          f"or --proxies registered (params and FLOPs are always added)")
    if args.metric is not None and not args.metric.strip():
        raise ConfigError("--metric is empty; name a label of the benchmark (e.g. top1), or "
                          "leave --metric out for the file's own")
    inputs = [args.benchmark, args.second_seed]
    if args.second_seed is not None and Path(args.second_seed).is_file() and \
            Path(args.benchmark).is_file() and os.path.samefile(args.benchmark, args.second_seed):
        raise ConfigError(f"--second-seed {args.second_seed} is the benchmark itself: a seed "
                          f"compared with itself always agrees; give the second training run")
    if args.sample_seed is not None and args.limit is None:
        raise ConfigError("--sample-seed picks --limit's subset; without --limit every "
                          "architecture is used, so give both or neither")
    if args.split_seed is not None and args.split == "all" and args.resamples == 0:
        raise ConfigError("--split-seed seeds the dev/test split and the bootstrap; --split all "
                          "with --resamples 0 has neither, so leave it out")
    if args.dev_fraction is not None and args.split == "all":
        raise ConfigError("--dev-fraction sizes the dev half of --split dev or test; --split "
                          "all uses every architecture")
    writable(args.out, "--out", inputs=[*inputs, args.db])  # before the scoring, not after it
    for path in scoreboard_paths(args.out)[1:] if args.out else ():
        writable(str(path), "--out's companion file", inputs=[*inputs, args.db])
    writable(args.db, "--db", inputs=inputs)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = load_benchmark(args.benchmark, space=args.space,
                           space_options=space_options(args), n=args.limit,
                           seed=args.sample_seed or 0, data_dir=args.data_dir)
    metric = args.metric or bench.meta.get("metric") or "top1"
    repeat = None if args.second_seed is None else load_benchmark(
        args.second_seed, space=args.space, space_options=space_options(args),
        data_dir=args.data_dir)
    values = bench.values(metric)
    labelled = len(values) - values.count(None)
    if labelled < 3:  # before "does not vary", which one or two labels say by accident
        raise ConfigError(f"{bench.name} has {labelled} architecture(s) with a finite {metric}; "
                          f"a ranking needs at least 3")
    labels = {v for v in values if v is not None}
    if labels and None in values:
        say(f"note: {values.count(None)} of {len(values)} architectures have no finite "
            f"{metric} (missing, null, NaN or infinite); they are left out")
    if len(labels) < 2:
        raise ConfigError(f"the label {metric} of {bench.name} does not vary (" + (
            f"every architecture has {labels.pop():g}" if labels else "no finite value")
            + "): no ranking to correlate with; choose another --metric")
    # the bootstrap draws resamples x architectures indices at once
    check_fits(16.0 * args.resamples * len(bench.records), f"--resamples {args.resamples}")
    config = ScoreboardConfig(
        proxies=(args.proxies,), metric=metric, batch=args.batch,
        batch_size=args.batch_size, seed=args.seed, split=args.split,
        split_seed=args.split_seed or 0, resamples=args.resamples, top_fraction=args.top_fraction,
        **({} if args.dev_fraction is None else {"dev_fraction": args.dev_fraction}))
    with ScoreStore(args.db or default_store_path()) as store:
        board = correlate(bench, config, store, data_dir=args.data_dir, progress=not args.quiet,
                          workers=args.workers, threads=args.threads, backend=args.backend,
                          address=args.address, repeat=repeat)
    if args.out:
        write_scoreboard(board, args.out, "vitnas " + " ".join(sys.argv[1:]))
    for caveat in board.caveats():
        print(f"note: {caveat}", file=sys.stderr)
    if args.json:
        print(json.dumps(board.as_dict(), indent=1))
        return
    print(f"{board.benchmark} ({board.space}), metric {board.metric}, split {board.split}: "
          f"{board.n} architectures, {len(board.rows)} proxies")
    rows = table_rows(board)
    print_table(rows, list(rows[0]))
    if board.reliability:
        print(reliability_line(board).replace("**", ""))
    vintk = [r for r in board.rows if r.proxy.startswith("vintk")]
    if vintk:
        best = board.best("vintk")
        print(f"best ViNTK variant on this split: {best.proxy} (tau {best.kendall:.3f}); "
              f"params tau {board.row('params').kendall:.3f}, "
              f"FLOPs tau {board.row('flops').kendall:.3f}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    bench = sub.add_parser("bench", help="ground truth and the proxy scoreboard")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="STEP")
    p = bench_sub.add_parser("build", help="train sampled architectures into a benchmark file "
                                           "(resumable: finished ones are kept)")
    p.add_argument("space", help="search space name")
    add_space_flags(p, more=True)
    p.add_argument("--n", type=positive_int, required=True, help="architectures in the file")
    p.add_argument("--dataset", default="cifar10",
                   help="training data (default cifar10; segmentation: paste-fashion, "
                        "paste-mnist, ade20k, cityscapes with --task segmentation)")
    p.add_argument("--dataset-options", help="key=value pairs for the dataset, e.g. 'n=5000' "
                                             "for a pasted segmentation set")
    p.add_argument("--train-per-class", type=positive_int,
                   help="first K training images per class (default: all)")
    p.add_argument("--epochs", type=training_epochs, default=3,
                   help="epochs per architecture (default 3)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=learning_rate, default=1e-3)
    p.add_argument("--label-smoothing", type=smoothing, default=0.1,
                   help="label smoothing of the cross-entropy (default 0.1)")
    p.add_argument("--seed", type=seed, default=0, help="plan, init and data-order seed")
    p.add_argument("--plan-seed", type=seed,
                   help="plan with this seed instead (retrain the same architectures under "
                        "another --seed to measure training noise)")
    p.add_argument("--out", required=True, help="benchmark JSON file (created or extended)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard", type=given,
                   help="i/k: train plan slots i, i+k, ... only (one process per core; then "
                        "`vitnas bench merge`)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_bench_build)

    p = bench_sub.add_parser("merge", help="join the files of `bench build --shard i/k` runs "
                                           "into one ground truth")
    p.add_argument("out", help="benchmark JSON file to write")
    p.add_argument("inputs", nargs="+", help="the shards' files")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_bench_merge)

    p = bench_sub.add_parser("list", help="the built-in benchmarks: size, labels, source")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench_list)

    p = bench_sub.add_parser("import", help="convert a ViT-Bench-101-style .pth file (Auto-Prox "
                                            "format) into a benchmark JSON file")
    p.add_argument("file", help="the .pth file (read without running any code in it)")
    p.add_argument("--space", help="search space (default: told from the arch keys, "
                                   "autoformer-tiny or pit-tiny)")
    add_space_flags(p, more=True)
    p.add_argument("--out", required=True, help="benchmark JSON file to write")
    p.set_defaults(func=cmd_bench_import)

    p = bench_sub.add_parser("correlate", help="the proxy scoreboard: rank correlation of each "
                                               "proxy with trained accuracy, with bootstrap CIs")
    p.add_argument("--benchmark", required=True,
                   help="benchmark JSON or ViT-Bench-101-style .pth file, or a built-in name "
                        "(nasbench201, vit-bench-101-autoformer, vit-bench-101-pit; see "
                        "`vitnas bench list`)")
    p.add_argument("--space", help="search space (needed when the file does not name one)")
    add_space_flags(p, more=True)
    p.add_argument("--metric", help="accuracy field (default: the file's; nasbench201: cifar10, "
                                    "cifar100 or ImageNet16-120)")
    p.add_argument("--second-seed", help="the same architectures (or some) trained again under "
                                         "another seed: the board records the ground truth's "
                                         "reliability and marks it 'at noise' below tau 0.5")
    p.add_argument("--proxies", default="all",
                   help="comma list of proxy specs; 'all' = every proxy, every ViNTK variant "
                        "and LGA after 1 epoch; 'registered' = every proxy at its defaults; "
                        "params and FLOPs are always added")
    p.add_argument("--split", choices=["dev", "test", "all"], default="all")
    p.add_argument("--dev-fraction", type=fraction,
                   help="share of architectures in the dev half (default 0.5; dev/test only)")
    p.add_argument("--split-seed", type=seed,
                   help="seeds the split and the bootstrap (default 0)")
    p.add_argument("--limit", type=positive_int,
                   help="score a seeded random subset of N architectures")
    p.add_argument("--sample-seed", type=seed, help="seed of --limit's subset (default 0)")
    p.add_argument("--batch", default="cifar10", help="proxy batch source (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=seed, default=0, help="init, batch and proxy seed")
    p.add_argument("--resamples", type=resamples, default=1000,
                   help="bootstrap resamples (0: no intervals; else 40 to 100,000)")
    p.add_argument("--top-fraction", type=share, default=0.1,
                   help="top-k precision fraction, in (0, 1] (default 0.1)")
    p.add_argument("--db", help="score store (default: the cache dir's scores.sqlite)")
    p.add_argument("--out", help="write JSON here, plus .md table and _scatter/_tau PNGs")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel scoring workers, as in `vitnas search` (default 1)")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads per worker (default: all for one worker, 1 for several)")
    p.add_argument("--backend", default="local", help="local (process pool) or ray")
    p.add_argument("--address", type=given, help="Ray cluster address (ray backend)")
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench_correlate)
