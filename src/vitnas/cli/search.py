"""`vitnas search`, `train`, `export`, `merge`: the main job, training its answer, keeping it."""

from __future__ import annotations

import argparse
import json

from vitnas.cli.common import (
    add_space_options,
    check_batch,
    check_memory,
    default_device,
    given,
    learning_rate,
    nonnegative_float,
    nonnegative_int,
    parse_options,
    positive_int,
    probability,
    read_architecture,
    say,
    search_budget,
    seed,
    space_from_args,
    space_options,
    training_epochs,
    writable,
)
from vitnas.formatting import human
from vitnas.paths import not_a_file
from vitnas.recommended import DEFAULT_SEARCH_PROXY, DEFAULT_SEARCH_REASON


def cmd_search(args: argparse.Namespace) -> None:
    import math

    from vitnas.errors import ConfigError
    from vitnas.proxies import resolve_proxies
    from vitnas.search import (
        Constraints,
        EvolutionConfig,
        SearchConfig,
        parse_shard,
        parse_window,
        run_search,
    )
    from vitnas.search.report import progress_text, write_report
    from vitnas.search.retrain import train_command
    from vitnas.store import default_store_path

    evolution_only = [flag for flag, value in (
        ("--parents", args.parents), ("--mutations", args.mutations),
        ("--crossovers", args.crossovers), ("--layer-prob", args.layer_prob),
        ("--structure-prob", args.structure_prob)) if value is not None]
    if args.algo == "random" and evolution_only:
        raise ConfigError(f"{', '.join(evolution_only)} only tune evolution; --algo random "
                          f"does not read {'it' if len(evolution_only) == 1 else 'them'}")
    if args.parents is not None and args.parents > args.population:
        raise ConfigError(f"--parents {args.parents} exceeds --population {args.population}: "
                          f"the parents are the best of a population")
    parents = 10 if args.parents is None else args.parents  # AutoFormer's top 10
    space = space_from_args(args)
    constraints = Constraints(parse_window(args.params, "params"),
                              parse_window(args.flops, "FLOPs"),
                              parse_window(args.latency, "latency (ms)"))
    if args.ranker and args.proxy is not None:
        raise ConfigError("--ranker replaces --proxy (the ranker's features are what gets "
                          "scored); give one of them")
    proxy = DEFAULT_SEARCH_PROXY if args.proxy is None else args.proxy
    resolved = resolve_proxies(proxy)
    check_batch(resolved, args.batch_size)
    proxies = tuple(p.spec for p in resolved)
    ranker = None
    if args.ranker:  # the calibrated objective replaces --proxy and --aggregate
        from vitnas.calibrate import load_ranker
        from vitnas.search.ranked import batch_mismatch, space_mismatch

        ranker = load_ranker(args.ranker)
        proxies = ranker.feature_specs
        for note in (batch_mismatch(ranker, args.dataset, args.batch_size, args.seed),
                     space_mismatch(ranker, space.name)):
            if note:
                say(note)
    config = SearchConfig(
        proxies=proxies, algorithm=args.algo, budget=args.budget,
        seed=args.seed, constraints=constraints, aggregate=args.aggregate, dataset=args.dataset,
        batch_size=args.batch_size, population=args.population,
        evolution=EvolutionConfig.for_population(
            args.population, args.mutations, args.crossovers, parents=parents,
            **{name: rate for name, rate in (("layer_prob", args.layer_prob),
                                             ("structure_prob", args.structure_prob))
               if rate is not None}))
    out = (f"runs/search/{space.name}-{config.algorithm}-seed{config.seed}"
           if args.out is None else args.out)
    writable(out, "--out", directory=True)  # before the work, not after it
    writable(args.db, "--db")
    check_memory(space, args.batch_size)
    result = run_search(space, config, store=args.db or default_store_path(),
                        workers=args.workers, threads=args.threads, backend=args.backend,
                        address=args.address, gpus=args.gpus_per_worker, device=args.device,
                        shard=parse_shard(args.shard), progress=not args.quiet,
                        status=None if args.quiet else say, data_dir=args.data_dir,
                        ranker=ranker)
    if not result.complete:
        print(f"shard {args.shard}: {result.computed} computed, {result.reused} reused, "
              f"{result.pending} left to the other shards; merge the stores "
              f"(vitnas merge) and run again to continue")
        return
    report = write_report(result, out)
    if result.evaluations and not any(all(math.isfinite(s) for s in e.scores)
                                      for e in result.evaluations):
        raise ConfigError(f"every one of the {len(result.evaluations)} candidates scored NaN "
                          f"under --proxy {proxy} on {space.name} (`vitnas score` shows the "
                          f"proxy's warnings), so no architecture was chosen; the evaluations "
                          f"are kept in {report.parent}")
    if args.json:
        data = {k: v for k, v in result.as_dict().items() if k != "evaluations"}
        print(json.dumps({**data, "report": str(report)}, indent=1))
        return
    best, infeasible = result.best, sum(result.infeasible.values())
    scores = ", ".join(f"{p} {s:.6g}" for p, s in zip(result.proxies, best.scores))
    print(json.dumps(result.best_arch))
    print(f"{space.name}: {human(best.candidate.params)} params, {human(best.candidate.flops)} "
          f"FLOPs; {scores}")
    if ranker is not None:
        print(f"objective: ranker {args.ranker} ({ranker.meta.get('metric', 'label')}, "
              f"{ranker.chosen} model), best score {result.record(best)['fitness']:.4g}")
    elif proxy == DEFAULT_SEARCH_PROXY:
        print(f"objective: {DEFAULT_SEARCH_PROXY} ({DEFAULT_SEARCH_REASON})")
    else:
        print(f"objective: {', '.join(proxies)} (--proxy"
              + (f", combined by --aggregate {args.aggregate})" if len(proxies) > 1 else ")"))
    print(f"{len(result.evaluations)} evaluated ({result.computed} computed, {result.reused} "
          f"from the store), {infeasible} infeasible draws rejected before scoring, "
          f"{result.timings['total']:.1f} s")
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    progress = progress_text(result)
    if progress:
        print(progress)
    print(f"report: {report}")
    print("next: " + train_command(space, report.parent / "best.json", args.dataset,
                                   space_options(args), data_dir=args.data_dir))


def cmd_train(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.checkpoint import state_path_for
    from vitnas.errors import ConfigError
    from vitnas.search.retrain import train_architecture
    from vitnas.train import TrainConfig

    set_threads(args.threads)
    writable(args.out, "--out")  # before the training, not after it
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out (the training state is kept beside it)")
    state_path = state_path_for(args.out) if args.out else None
    space = space_from_args(args)
    arch = read_architecture(space, args.arch)
    check_memory(space, args.batch_size, arch, default_device(args), training=True)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed)
    result = train_architecture(space, arch, args.dataset, config, args.train_per_class,
                                default_device(args), args.data_dir, progress=not args.quiet,
                                status=None if args.quiet else say,
                                dataset_options=parse_options(args.dataset_options),
                                state_path=state_path, resume=args.resume)
    record = {"space": space.name, "arch": space.to_json(arch), "dataset": args.dataset,
              "epochs": args.epochs, "train_per_class": args.train_per_class,
              "top1": result.top1, **result.metrics, "steps": result.steps,
              "seconds": round(result.seconds, 2), "resumed_from_step": result.resumed_from}
    if args.out:
        from vitnas.trained import save_trained

        save_trained(args.out, result.model, space, arch, space_options(args), record)
        record["out"] = args.out
        state_path.unlink(missing_ok=True)  # the model is saved: nothing left to resume
    if args.json:
        print(json.dumps(record, indent=1))
        return
    scores = ", ".join(f"{'top-1' if k == 'top1' else k} {v:.2f}%"
                       for k, v in result.metrics.items() if isinstance(v, float))
    print(f"{space.name}: {scores} on the {args.dataset} test split after "
          f"{args.epochs:g} epochs ({result.steps} steps, {result.seconds:.0f} s)")
    if "iou_per_class" in result.metrics:  # '-': a class in neither labels nor predictions
        print("IoU per class (%): " + " ".join("-" if v is None else f"{v:.1f}"
                                               for v in result.metrics["iou_per_class"]))
    if args.out:
        print(f"saved {args.out} (load: vitnas.trained.load_trained; deploy: vitnas export "
              f"{args.out} model.pt2)")


def cmd_export(args: argparse.Namespace) -> None:
    from vitnas.trained import export_trained

    out = export_trained(args.model, args.out, batch_size=args.batch_size)
    batch = "any batch" if args.batch_size is None else f"batch {args.batch_size}"
    print(f"{out}: torch.export program of {args.model} ({batch}); load with "
          f"torch.export.load({str(out)!r}).module()")


def cmd_merge(args: argparse.Namespace) -> None:

    from vitnas.errors import ConfigError
    from vitnas.store import ScoreStore

    writable(args.out, "output store", inputs=args.inputs)
    rows = {}
    for source in args.inputs:  # every input read before the output is created
        if problem := not_a_file(source):
            raise ConfigError(f"score store {source} {problem}")
        with ScoreStore(source, readonly=True) as store:
            rows[source] = store.rows()
    with ScoreStore(args.out) as store:
        added, clashes = {}, {}
        for source, stored in rows.items():
            clashes[source] = store.clashes(stored)
            added[source] = store.put(stored)
            if clashes[source]:
                say(f"{source}: {clashes[source]} rows give another score for a key already "
                    f"merged (kept the first); scores are deterministic, so these stores were "
                    f"made differently (vitnas version, machine)")
        total = len(store)
    if args.json:
        print(json.dumps({"out": args.out, "rows": total, "new_rows": added,
                          "clashing_rows": clashes}, indent=1))
        return
    for source, count in added.items():
        print(f"{source}: {count} new rows")
    print(f"{args.out}: {total} rows")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    p = sub.add_parser("search", help="the best architecture for a budget, without training "
                                      "(resumable: every evaluation is kept in the store)")
    add_space_options(p)
    p.add_argument("--proxy",
                   help="proxy spec, or a comma list combined by --aggregate (default "
                        f"{DEFAULT_SEARCH_PROXY}: on ViT-Bench-101's dev half no training-free "
                        "proxy beat it on its worst task)")
    p.add_argument("--ranker", type=given,
                   help="a ranker JSON from `vitnas calibrate` as the objective: "
                        "candidates are scored with its features and ranked by it "
                        "(replaces --proxy and --aggregate)")
    p.add_argument("--params", type=given,
                   help="parameter window LOW:HIGH, e.g. 5M:6M (a side may be empty)")
    p.add_argument("--flops", type=given, help="FLOPs window LOW:HIGH, e.g. :1.5G")
    p.add_argument("--latency", type=given,
                   help="measured batch-1 latency window in ms, e.g. :20 "
                        "(machine-dependent, so not reproducible elsewhere)")
    p.add_argument("--budget", type=search_budget, default=1000, help="evaluations (default 1000)")
    p.add_argument("--algo", default="evolution", help="evolution (default) or random")
    p.add_argument("--aggregate", default="rank",
                   help="several proxies: rank (sum of ranks, default) or pareto (proxies up, "
                        "params and FLOPs down)")
    p.add_argument("--dataset", default="cifar10",
                   help="proxy batch source: a dataset name or 'gaussian' (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=seed, default=0,
                   help="scoring seed (init, batch, proxies) and root of every candidate's seed")
    group = p.add_argument_group("evolution (AutoFormer's defaults)")
    group.add_argument("--population", type=positive_int, default=50)
    group.add_argument("--parents", type=positive_int,
                       help="top-k of everything scored kept as parents, at most "
                            "--population (default 10)")
    group.add_argument("--mutations", type=nonnegative_int,
                       help="per generation (default population / 2)")
    group.add_argument("--crossovers", type=nonnegative_int,
                       help="per generation (default population / 2)")
    group.add_argument("--layer-prob", type=probability,
                       help="per-layer mutation rate (default 0.2)")
    group.add_argument("--structure-prob", type=probability,
                       help="depth and width mutation rate (default 0.4)")
    group = p.add_argument_group("execution (never changes the answer)")
    group.add_argument("--workers", type=positive_int, default=1,
                       help="parallel workers (default 1; use one per core)")
    group.add_argument("--threads", type=positive_int, default=1,
                       help="torch threads per worker (default 1; scores are bitwise equal "
                            "across runs with equal threads per worker)")
    group.add_argument("--backend", default="local", help="local (process pool) or ray")
    group.add_argument("--address", type=given, help="Ray cluster address (ray backend)")
    group.add_argument("--gpus-per-worker", type=nonnegative_float, default=0,
                       help="Ray GPUs per worker, >= 0 (a fraction shares a GPU; ray backend; "
                            "scores on cuda)")
    group.add_argument("--device", default="cpu", help="where local workers score (cpu, cuda)")
    group.add_argument("--shard", type=given,
                       help="i/n: score only candidates i mod n, for `vitnas merge`")
    group.add_argument("--db", help="score store (default: ~/.cache/vitnas/scores.sqlite)")
    p.add_argument("--out", help="report directory (default runs/search/SPACE-ALGO-seedSEED)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("train", help="train an architecture from scratch with the shared "
                                     "recipe and report test top-1 (segmentation: mIoU)")
    add_space_options(p)
    p.add_argument("arch", help="architecture JSON file (e.g. a search's best.json), '-' for "
                                "stdin, or inline JSON")
    p.add_argument("--dataset", default="cifar10",
                   help="training data (default cifar10; segmentation: paste-fashion, ...)")
    p.add_argument("--dataset-options", help="key=value pairs for the dataset, e.g. 'n=5000'")
    p.add_argument("--epochs", type=training_epochs, default=10, help="epochs (default 10)")
    p.add_argument("--train-per-class", type=positive_int,
                   help="first K training images per class (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=learning_rate, default=1e-3)
    p.add_argument("--seed", type=seed, default=0, help="init and data-order seed")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--out", help="save the trained model here (.pt: weights, architecture and "
                                 "space options; see `vitnas export`); the training state is "
                                 "kept after every epoch in model.state.pt for --out model.pt, "
                                 "until the model is saved")
    p.add_argument("--resume", action="store_true",
                   help="continue from that state when it exists (needs --out)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a model saved by `vitnas train --out` as a "
                                      "torch.export program (.pt2) that runs without vitnas")
    p.add_argument("model", help="trained model (.pt) from `vitnas train --out`")
    p.add_argument("out", type=given, help="program to write (.pt2)")
    p.add_argument("--batch-size", type=positive_int,
                   help="fix the program's batch size (default: any batch from 1 to 65,536)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("merge", help="merge score stores (e.g. from --shard runs) into one")
    p.add_argument("out", type=given, help="store to create or extend")
    p.add_argument("inputs", nargs="+", help="stores to copy rows from")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_merge)
