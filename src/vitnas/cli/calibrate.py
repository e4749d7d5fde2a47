"""`vitnas calibrate`: fit a ranker to k trained architectures of the user's task."""

from __future__ import annotations

import argparse
import json

from vitnas.cli.common import add_space_flags, positive_int, say, seed, space_options, writable


def cmd_calibrate(args: argparse.Namespace) -> None:
    from vitnas.bench import load_benchmark
    from vitnas.calibrate import DEFAULT_FEATURES, calibrate_benchmark, save_ranker
    from vitnas.errors import ConfigError
    from vitnas.store import ScoreStore, default_store_path

    for option in ("metric", "features"):  # given but empty is a mistake, not the default
        if getattr(args, option) is not None and not getattr(args, option).strip():
            raise ConfigError(f"--{option} is empty; leave it out for the default")
    if args.seed is not None and args.limit is None:
        raise ConfigError("--seed picks --limit's subset; without --limit every architecture "
                          "is used, so give both or neither")
    writable(args.out, "--out", inputs=[args.benchmark])
    writable(args.db, "--db")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = load_benchmark(args.benchmark, space=args.space, space_options=space_options(args),
                           n=args.limit, seed=args.seed or 0, data_dir=args.data_dir)
    metric = args.metric or bench.meta.get("metric") or "top1"
    features = args.features or list(DEFAULT_FEATURES)
    with ScoreStore(args.db if args.db is not None else default_store_path()) as store:
        ranker = calibrate_benchmark(
            bench, metric, features, store, batch=args.batch,
            batch_size=args.batch_size, seed=args.score_seed, data_dir=args.data_dir,
            progress=not args.quiet, workers=args.workers, threads=args.threads)
    save_ranker(ranker, args.out)
    if left_out := len(bench.records) - ranker.k:
        say(f"{left_out} of the {len(bench.records)} architectures have no finite {metric} "
            f"(missing, null, NaN or infinite) and were left out")
    if args.json:
        print(json.dumps({**ranker.as_dict(), "out": args.out}, indent=1))
        return
    print(f"{bench.name}, {metric}: {ranker.k} architectures, features "
          f"{', '.join(ranker.feature_specs)}")
    print(f"leave-one-out Kendall tau on the {ranker.k}: prior ({ranker.prior}) "
          f"{ranker.loo_tau_prior:.3f}, fitted {ranker.loo_tau_fitted:.3f} (ridge alpha "
          f"{ranker.alpha:g} x k); evidence {ranker.evidence:.2f} against threshold "
          f"{ranker.threshold:g}")
    if ranker.chosen == "fitted":
        weights = ", ".join(f"{f.spec} {f.weight:+.3f}" for f in ranker.features)
        print(f"chosen: fitted (weights on standardised features: {weights})")
    else:
        print(f"chosen: prior, {ranker.prior} alone (the k labels do not clearly say otherwise)")
    print(f"saved {args.out}; search with it: vitnas search SPACE --ranker {args.out}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    p = sub.add_parser("calibrate", help="fit a ranker to trained architectures of your task "
                                         "(shrunk toward #params), for `search --ranker`")
    p.add_argument("benchmark", help="benchmark JSON or ViT-Bench-101-style .pth file, or a "
                                     "built-in name (see `vitnas bench list`)")
    p.add_argument("--metric", help="label to rank by (default: the file's; e.g. c100_kd_acc)")
    p.add_argument("--features",
                   help="comma list of proxy specs the ranker may use; params, the prior, is "
                        "always added (default: vitnas.calibrate.DEFAULT_FEATURES, the free "
                        "shape counts); proxies such as nwot are scored through the store")
    p.add_argument("--limit", type=positive_int,
                   help="calibrate on a seeded random subset of K architectures")
    p.add_argument("--seed", type=seed, help="seed of --limit's subset (default 0)")
    p.add_argument("--space", help="search space (needed when the file does not name one)")
    add_space_flags(p, more=True)
    p.add_argument("--batch", default="cifar10", help="proxy batch source (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32; search with the same)")
    p.add_argument("--score-seed", type=seed, default=0,
                   help="init, batch and proxy seed of the feature scores (default 0)")
    p.add_argument("--db", help="score store (default: the cache dir's scores.sqlite)")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel scoring workers")
    p.add_argument("--threads", type=positive_int, help="torch threads per worker")
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--out", required=True, help="ranker JSON file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_calibrate)
