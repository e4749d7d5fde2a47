"""The ``vitnas`` command line: parse arguments, call one library function, format the result.

Every ``VitnasError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from collections.abc import Sequence
from typing import Any

from vitnas import __version__
from vitnas.errors import VitnasError
from vitnas.formatting import human, text_table
from vitnas.recommended import DEFAULT_SEARCH_PROXY

# torch and the spaces are imported inside the commands, so `vitnas --help` stays instant


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    print(text_table(rows, columns))


def read_architecture(space, spec: str):
    from vitnas.spaces.base import read_architecture

    return read_architecture(space, spec)


def default_device(args: argparse.Namespace) -> str:
    """``--device``, else cuda when this machine has it."""
    if args.device:
        return args.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


MAIN_JOB = "vitnas search autoformer-tiny-micro --params 0.4M:0.5M --budget 100 --workers 2"


def say(message: str) -> None:
    """A status line for a silent phase; on stderr, so stdout stays the result."""
    print(message, file=sys.stderr, flush=True)


def space_options(args: argparse.Namespace) -> dict[str, Any]:
    """The space options given on the command line (unset ones left out): --space-options'
    pairs where a command has it, overridden by the named flags."""
    options = dict(img_size=args.img_size, patch_size=args.patch_size, in_chans=args.in_chans,
                   num_classes=args.num_classes, pool=args.pool, qkv=args.qkv,
                   cls_token=args.cls_token, task=args.task)
    pairs = parse_options(getattr(args, "space_options", None))
    return {**pairs, **{k: v for k, v in options.items() if v is not None}}


def space_from_args(args: argparse.Namespace):
    from vitnas.spaces import get_space

    # only NAS-Bench-201 reads data (its accuracy table); other spaces take no data_dir
    return get_space(args.space, **space_options(args),
                     data_dir=args.data_dir if args.space == "nasbench201" else None)


# --- commands ---------------------------------------------------------------------------------
def cmd_spaces(args: argparse.Namespace) -> None:
    from vitnas.spaces import get_space, list_spaces

    described = [get_space(name).describe() for name in list_spaces()]
    if args.json:
        print(json.dumps(described, indent=2))
        return
    rows = [
        {
            "space": d["name"],
            "family": d["family"],
            "image": d["img_size"],
            "patch": d.get("patch_size", "-"),
            "classes": d["num_classes"],
            "architectures": f"{d['size']:,}",
        }
        for d in described
    ]
    print_table(rows, ["space", "family", "image", "patch", "classes", "architectures"])


def cmd_sample(args: argparse.Namespace) -> None:
    space = space_from_args(args)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        record = {"arch": space.to_json(arch), "params": space.params(arch),
                  "flops": space.flops(arch)}
        print(json.dumps(record))


def cmd_info(args: argparse.Namespace) -> None:
    space = space_from_args(args)
    arch = read_architecture(space, args.arch)
    rows = space.layer_costs(arch)
    result: dict[str, Any] = {
        "space": space.name,
        "arch": space.to_json(arch),
        "params": space.params(arch),
        "flops": space.flops(arch),
        "layers": [dataclasses.asdict(r) for r in rows],
    }
    if args.check:
        from vitnas.flops import count_params, measured_flops

        model = space.build(arch)
        result["counted_params"] = count_params(model)
        result["measured_flops"] = measured_flops(model, space.example_input(1))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{space.name}: {json.dumps(result['arch'])}")
    print_table(
        [{"layer": r.name, "detail": r.detail, "params": f"{r.params:,}", "flops": human(r.flops)}
         for r in rows]
        + [{"layer": "total", "params": f"{result['params']:,}", "flops": human(result["flops"])}],
        ["layer", "detail", "params", "flops"],
    )
    if args.check:
        print(f"check: counted params {result['counted_params']:,}, "
              f"measured FLOPs {human(result['measured_flops'])}")


def cmd_proxies(args: argparse.Namespace) -> None:
    from vitnas.proxies import PROXIES

    if args.name:
        cmd_proxy_options(PROXIES.get(args.name), args)
        return
    rows = []
    for name in PROXIES.names():
        cls = PROXIES.get(name)
        options = [f.name for f in dataclasses.fields(cls.Config)]
        rows.append({"proxy": name, "direction": "higher" if cls.direction > 0 else "lower",
                     "cost": cls.cost, "reference": cls.reference, "options": options})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_table(rows, ["proxy", "direction", "cost", "reference"])
    print("\n'direction' is the raw value's better side; reported scores are normalised so "
          "higher is always better.")


def cmd_proxy_options(cls: Any, args: argparse.Namespace) -> None:
    """One proxy: what it is and every option of its spec string, with defaults."""
    options = [{"option": f.name, "type": getattr(f.type, "__name__", str(f.type)),
                "default": f.default} for f in dataclasses.fields(cls.Config)]
    module = sys.modules[cls.__module__]
    summary = (cls.__doc__ or module.__doc__ or "").strip().split("\n\n")[0]
    if args.json:
        print(json.dumps({"proxy": cls.name, "reference": cls.reference, "cost": cls.cost,
                          "direction": "higher" if cls.direction > 0 else "lower",
                          "summary": summary, "options": options}, indent=1))
        return
    print(f"{cls.name}: {cls.reference} (cost {cls.cost}; raw value "
          f"{'higher' if cls.direction > 0 else 'lower'} is better)")
    if summary:
        print(summary)
    if options:
        print()
        print_table(options, ["option", "type", "default"])
        example = ",".join(f"{o['option']}={o['default']}" for o in options[:2])
        print(f"\nset options in the spec: --proxy {cls.name}:{example}")


def cmd_score(args: argparse.Namespace) -> None:
    from vitnas.errors import ConfigError
    from vitnas.proxies import resolve_proxies, score_architecture
    from vitnas.proxies.scoring import proxy_batch

    # the proxy list first: a typo is reported before any data file is looked for
    proxies = resolve_proxies(args.proxy)
    if not proxies:
        raise ConfigError(f"--proxy {args.proxy!r} names no proxy; e.g. --proxy vintk (see "
                          "`vitnas proxies`)")
    space = space_from_args(args)
    arch = read_architecture(space, args.arch)
    x, y = proxy_batch(args.dataset, args.batch_size, space.img_size, space.in_chans,
                       space.num_classes, args.seed, args.data_dir)
    results = score_architecture(space, arch, proxies, x, y, seed=args.seed)
    if args.json:
        print(json.dumps({"space": space.name, "arch": space.to_json(arch), "seed": args.seed,
                          "dataset": args.dataset, "batch_size": args.batch_size,
                          "results": [r.as_dict() for r in results]}, indent=2))
        return
    print_table(
        [{"proxy": r.proxy, "score": f"{r.score:.6g}", "raw": f"{r.raw:.6g}",
          "seconds": f"{r.seconds:.3f}", "warnings": "; ".join(r.warnings)} for r in results],
        ["proxy", "score", "raw", "seconds", "warnings"],
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from vitnas.demo import run_demo

    rows = run_demo(count=args.n, dataset=args.dataset, batch_size=args.batch_size,
                    seed=args.seed, data_dir=args.data_dir, status=say)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    names = list(rows[0].scores)
    print(f"autoformer-tiny-micro: {len(rows)} sampled architectures scored on one "
          f"{args.dataset} batch of {args.batch_size} (higher score = predicted better)")
    table = []
    for i, row in enumerate(rows):
        entry = {"#": i, "depth": row.arch["depth"], "embed": row.arch["hidden_dim"]}
        entry.update({n: f"{row.scores[n]:.4g}" for n in names})
        entry["seconds"] = f"{row.seconds:.1f}"
        table.append(entry)
    print_table(table, ["#", "depth", "embed", *names, "seconds"])


def parse_options(text: str | None) -> dict[str, Any]:
    """``patch_size=8,pool=mean,scale=0.5`` -> {"patch_size": 8, "pool": "mean", "scale": 0.5}
    (ints, then finite floats, where they parse; text otherwise)."""
    import math

    from vitnas.errors import ConfigError

    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {item!r} is not key=value")
        value = value.strip()
        if value.lstrip("-").isdigit():
            out[key.strip()] = int(value)
            continue
        try:
            number = float(value)
            out[key.strip()] = number if math.isfinite(number) else value
        except ValueError:
            out[key.strip()] = value
    return out


def cmd_bench_build(args: argparse.Namespace) -> None:
    from vitnas.bench import GroundTruthConfig, build_ground_truth
    from vitnas.bench.groundtruth import set_threads

    set_threads(args.threads)
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
    hours = sum(r["train_seconds"] for r in records) / 3600
    values = [r[metric] for r in records]
    if args.json:
        print(json.dumps({"out": args.out, "architectures": len(records), "metric": metric,
                          f"{metric}_min": min(values), f"{metric}_max": max(values),
                          "training_hours": hours}, indent=1))
        return
    print(f"{args.out}: {len(records)} architectures, {metric} {min(values):.2f}.."
          f"{max(values):.2f}%, {hours:.2f} training hours")


def cmd_bench_merge(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import merge_ground_truths

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

    bench = import_autoprox(args.file, args.space, space_options(args))
    save_json(bench, args.out)
    print(f"{args.out}: {len(bench.records)} architectures of {bench.space.name}, labels "
          f"{', '.join(bench.metrics())}")


def cmd_bench_correlate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vitnas.bench import load_benchmark
    from vitnas.bench.correlate import ScoreboardConfig, correlate
    from vitnas.bench.report import markdown_table, plot_scatter, plot_tau, table_rows
    from vitnas.store import ScoreStore, default_store_path

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = load_benchmark(args.benchmark, space=args.space,
                           space_options=space_options(args), n=args.limit,
                           seed=args.sample_seed, data_dir=args.data_dir)
    metric = args.metric or bench.meta.get("metric") or "top1"
    config = ScoreboardConfig(
        proxies=(args.proxies,), metric=metric, batch=args.batch,
        batch_size=args.batch_size, seed=args.seed, split=args.split,
        dev_fraction=args.dev_fraction, split_seed=args.split_seed, resamples=args.resamples,
        top_fraction=args.top_fraction)
    with ScoreStore(args.db or default_store_path()) as store:
        board = correlate(bench, config, store, data_dir=args.data_dir, progress=not args.quiet,
                          workers=args.workers, threads=args.threads, backend=args.backend,
                          address=args.address)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**board.as_dict(), "command": "vitnas " +
                                   " ".join(sys.argv[1:])}, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown_table(board) + "\n")
        plot_scatter(board, out.with_name(out.stem + "_scatter.png"))
        plot_tau(board, out.with_name(out.stem + "_tau.png"))
    for caveat in board.caveats():
        print(f"note: {caveat}", file=sys.stderr)
    if args.json:
        print(json.dumps(board.as_dict(), indent=1))
        return
    print(f"{board.benchmark} ({board.space}), metric {board.metric}, split {board.split}: "
          f"{board.n} architectures, {len(board.rows)} proxies")
    rows = table_rows(board)
    print_table(rows, list(rows[0]))
    vintk = [r for r in board.rows if r.proxy.startswith("vintk")]
    if vintk:
        best = board.best("vintk")
        print(f"best ViNTK variant on this split: {best.proxy} (tau {best.kendall:.3f}); "
              f"params tau {board.row('params').kendall:.3f}, "
              f"FLOPs tau {board.row('flops').kendall:.3f}")


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
    from vitnas.store import default_store_path

    space = space_from_args(args)
    constraints = Constraints(parse_window(args.params, "params"),
                              parse_window(args.flops, "FLOPs"),
                              parse_window(args.latency, "latency (ms)"))
    proxies = tuple(p.spec for p in resolve_proxies(args.proxy))
    config = SearchConfig(
        proxies=proxies, algorithm=args.algo, budget=args.budget,
        seed=args.seed, constraints=constraints, aggregate=args.aggregate, dataset=args.dataset,
        batch_size=args.batch_size, population=args.population,
        evolution=EvolutionConfig(
            parents=args.parents,
            mutations=args.population // 2 if args.mutations is None else args.mutations,
            crossovers=args.population // 2 if args.crossovers is None else args.crossovers,
            layer_prob=args.layer_prob, structure_prob=args.structure_prob))
    result = run_search(space, config, store=args.db or default_store_path(),
                        workers=args.workers, threads=args.threads, backend=args.backend,
                        address=args.address, gpus=args.gpus_per_worker, device=args.device,
                        shard=parse_shard(args.shard), progress=not args.quiet,
                        status=None if args.quiet else say, data_dir=args.data_dir)
    if not result.complete:
        print(f"shard {args.shard}: {result.computed} computed, {result.reused} reused, "
              f"{result.pending} left to the other shards; merge the stores "
              f"(vitnas merge) and run again to continue")
        return
    out = args.out or f"runs/search/{space.name}-{config.algorithm}-seed{config.seed}"
    report = write_report(result, out)
    if result.evaluations and not any(all(math.isfinite(s) for s in e.scores)
                                      for e in result.evaluations):
        raise ConfigError(f"every one of the {len(result.evaluations)} candidates scored NaN "
                          f"under --proxy {args.proxy} on {space.name} (`vitnas score` shows the "
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
    print(f"{len(result.evaluations)} evaluated ({result.computed} computed, {result.reused} "
          f"from the store), {infeasible} infeasible draws rejected before scoring, "
          f"{result.timings['total']:.1f} s")
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    progress = progress_text(result)
    if progress:
        print(progress)
    print(f"report: {report}")
    print(f"next: vitnas train {space.name} {report.parent / 'best.json'} --dataset cifar10 "
          "--epochs 10")


def cmd_train(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.search.retrain import train_architecture
    from vitnas.train import TrainConfig

    set_threads(args.threads)
    space = space_from_args(args)
    arch = read_architecture(space, args.arch)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed)
    result = train_architecture(space, arch, args.dataset, config, args.train_per_class,
                                default_device(args), args.data_dir, progress=not args.quiet,
                                status=None if args.quiet else say,
                                dataset_options=parse_options(args.dataset_options))
    record = {"space": space.name, "arch": space.to_json(arch), "dataset": args.dataset,
              "epochs": args.epochs, "train_per_class": args.train_per_class,
              "top1": result.top1, **result.metrics, "steps": result.steps,
              "seconds": round(result.seconds, 2)}
    if args.out:
        from vitnas.trained import save_trained

        save_trained(args.out, result.model, space, arch, space_options(args), record)
        record["out"] = args.out
    if args.json:
        print(json.dumps(record, indent=1))
        return
    scores = ", ".join(f"{'top-1' if k == 'top1' else k} {v:.2f}%"
                       for k, v in result.metrics.items())
    print(f"{space.name}: {scores} on the {args.dataset} test split after "
          f"{args.epochs:g} epochs ({result.steps} steps, {result.seconds:.0f} s)")
    if args.out:
        print(f"saved {args.out} (load: vitnas.trained.load_trained; deploy: vitnas export "
              f"{args.out} model.pt2)")


def cmd_export(args: argparse.Namespace) -> None:
    from vitnas.trained import export_trained

    out = export_trained(args.model, args.out, batch_size=args.batch_size)
    print(f"{out}: torch.export program of {args.model} (batch {args.batch_size}); load with "
          f"torch.export.load({str(out)!r}).module()")


def cmd_merge(args: argparse.Namespace) -> None:
    from vitnas.store import ScoreStore

    with ScoreStore(args.out) as store:
        added = {source: store.merge(source) for source in args.inputs}
        total = len(store)
    if args.json:
        print(json.dumps({"out": args.out, "rows": total, "new_rows": added}, indent=1))
        return
    for source, count in added.items():
        print(f"{source}: {count} new rows")
    print(f"{args.out}: {total} rows")


def _floats(text: str | None) -> tuple[float, ...] | None:
    from vitnas.errors import ConfigError

    if not text:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from exc


def _revit_config(args: argparse.Namespace):
    """The ReViT shape: a searched architecture (--arch/--arch-file in --space) or the flags."""
    from vitnas.errors import ConfigError
    from vitnas.revit.model import ReViTConfig, config_from_arch

    grids = _floats(args.grids)
    lengths = dict(route=args.route, fractions=_floats(args.fractions) or (0.25, 0.5, 1.0),
                   grids=None if grids is None else tuple(int(g) for g in grids))
    shape = {"embed_dim": 96, "depth": 6, "num_heads": 3, "mlp_ratio": 2.0}
    spec = args.arch if args.arch is not None else args.arch_file
    if args.arch is not None and args.arch_file is not None:
        raise ConfigError("give --arch or --arch-file, not both")
    if spec is None:
        if args.space:
            raise ConfigError("--space needs an architecture: --arch JSON or --arch-file PATH")
        return ReViTConfig(img_size=args.img_size or 32, patch_size=args.patch_size or 4,
                           num_classes=args.num_classes or 10, **lengths,
                           **{k: getattr(args, k) or v for k, v in shape.items()})
    given = [f"--{k.replace('_', '-')}" for k in shape if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} cannot be combined with an architecture; "
                          f"the architecture sets the shape")
    from vitnas.spaces import get_space
    from vitnas.spaces.base import read_architecture

    space_name = args.space or "autoformer-tiny-micro"
    options = {"img_size": args.img_size, "patch_size": args.patch_size,
               "num_classes": args.num_classes}
    arch = read_architecture(get_space(space_name, **options), spec)
    return config_from_arch(space_name, arch, **lengths, **options)


def cmd_revit_train(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.revit.pipeline import state_path_for, train_step
    from vitnas.revit.training import SplitSpec
    from vitnas.train import TrainConfig

    set_threads(args.threads)
    config = _revit_config(args)
    if args.fold:
        split = SplitSpec.parse_fold(args.fold, args.split_seed)
    else:
        split = SplitSpec("holdout", per_class=args.holdout_per_class, seed=args.split_seed)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed)
    meta = train_step(config, args.out, args.dataset, train_config, args.mode, split,
                      args.train_per_class, args.data_dir, default_device(args),
                      progress=not args.quiet, resume=args.resume, init_from=args.init_from,
                      command=_command_line(args))
    if args.json:
        print(json.dumps(meta, indent=1))
        return
    lengths = meta["lengths"]["lengths"]
    resumed = ("" if meta["resumed_from_step"] is None
               else f", resumed at step {meta['resumed_from_step']}")
    print(f"{args.out}: ReViT trained on {meta['train_images']} images ({args.mode}, "
          f"{meta['steps']} steps, {meta['seconds']:.0f} s{resumed}; state in "
          f"{state_path_for(args.out)}); test top-1 by length: " + ", ".join(
              f"{length['tokens']} tokens {top1:.2f}%"
              for length, top1 in zip(lengths, meta["test_top1"])))


def _command_line(args: argparse.Namespace) -> str:
    """The command that is running, for the files it writes: the process's own arguments when
    it is the ``vitnas`` program, else (``main([...])`` from Python) rebuilt from ``args``."""
    import shlex
    from pathlib import Path

    program = Path(sys.argv[0])
    if program.name == "vitnas" or program.parts[-2:] == ("vitnas", "__main__.py"):
        return "vitnas " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    positional = {"label": ["models"], "train-tla": ["labels"], "eval": ["revit", "tla"]}
    names = positional.get(args.revit_command, [])
    words = ["vitnas", "revit", args.revit_command]
    for name in names:
        value = getattr(args, name)
        words += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    for key, value in vars(args).items():
        if key in names or key in ("func", "command", "revit_command") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def cmd_revit_label(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.revit.pipeline import label_step

    set_threads(args.threads)
    summary = label_step(args.models, args.out, args.none_correct, args.data_dir,
                         command=_command_line(args))
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{args.out}: {summary['images']} unseen training images labelled; accuracy by length "
          f"{summary['accuracy_by_length']}; labels per length (short to long) "
          f"{summary['histogram']}; {summary['none_correct']} with no correct length "
          f"(policy {summary['policy']})")


def cmd_revit_train_tla(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.errors import ConfigError
    from vitnas.revit.pipeline import assigner_step

    set_threads(args.threads)
    widths = tuple(int(w) for w in _floats(args.widths) or (16, 32, 64))
    if args.balance and args.weighting not in (None, "balanced"):
        raise ConfigError(f"--balance means --weighting balanced, not {args.weighting}")
    weighting = "balanced" if args.balance else (args.weighting or "none")
    summary = assigner_step(args.labels, args.revit, args.out, args.input_size, widths,
                            args.epochs, args.folds, args.max_loss, weighting, args.seed,
                            args.data_dir, args.target, args.features, args.temperature,
                            args.bootstrap, command=_command_line(args))
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    calibration, oof = summary["calibration"], summary["out_of_fold"]
    low, high = oof["accuracy_minus_prior_ci"]
    auc_low, auc_high = oof["needs_more_auc_ci"]
    print(f"{args.out}: TLA ({args.target}, {args.features}, weighting {weighting}; "
          f"{human(summary['flops'])}FLOPs) trained on {summary['images']} labelled images")
    print(f"  out-of-fold label accuracy {oof['accuracy']:.2f}% vs majority share "
          f"{oof['majority_share']:.2f}%: {oof['accuracy_minus_prior']:+.2f} points "
          f"[95% CI {low:+.2f}, {high:+.2f}]; needs-more-tokens ROC AUC "
          f"{oof['needs_more_auc']:.3f} [{auc_low:.3f}, {auc_high:.3f}] "
          f"(ReViT's own short-pass confidence: {oof.get('reference_auc', float('nan')):.3f})")
    for name in ("tla", "cascade"):
        point, ratio = calibration[name], calibration[name]["flops_ratio_vs_fixed"]
        print(f"  {name}: knob {point['knob']} -> {point['accuracy']:.2f}% at "
              f"{point['flops'] / 1e6:.1f} MFLOPs on the pool, "
              + ("more accurate than every fixed length" if ratio is None else
                 f"FLOPs ratio {ratio:.2f}x against the fixed-length curve at equal accuracy "
                 f"(> 1: above it)"))
    print(f"  (full length {calibration['full_length_accuracy']:.2f}% on the pool; calibrated "
          f"for <= {args.max_loss:g} points below it)")


def cmd_revit_eval(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.revit.evaluate import comparison_lines, markdown_table
    from vitnas.revit.pipeline import eval_step

    set_threads(args.threads)
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    grids = _floats(args.fixed_grids)
    evaluation = eval_step(args.revit, args.tla, args.out, args.data_dir, args.batch_size,
                           args.repeats, args.test_per_class, args.tla_threshold,
                           args.cascade_threshold, args.none_correct, progress,
                           None if grids is None else [int(g) for g in grids],
                           command=_command_line(args))
    if args.json:
        print(json.dumps(evaluation.as_dict(), indent=1))
        return
    print(f"{evaluation.test_images} test images, batch {evaluation.batch_size}, "
          f"{evaluation.threads} threads, median of {evaluation.repeats} interleaved rounds; "
          f"assigner FLOPs per image counted in its rows")
    print(markdown_table(evaluation))
    for line in comparison_lines(evaluation):
        print(line)
    if args.out:
        print(f"wrote {args.out} (+ .md, .png)")


# --- parser -----------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line on stderr, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type, low: float, inclusive: bool = True) -> Any:
    import math

    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}, "
                                         f"got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _number(text, int, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (0 switches a count off, e.g. bootstrap resamples)."""
    return _number(text, int, 0)


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _number(text, float, 0, inclusive=False)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {text}")
    return value


def smoothing(text: str) -> float:
    """An argparse type: a label smoothing, 0 <= value < 1."""
    value = _number(text, float, 0, inclusive=True)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (epochs, learning rates)."""
    return _number(text, float, 0, inclusive=False)


def add_space_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search space name (see `vitnas spaces`)")
    add_space_flags(parser)
    parser.add_argument("--data-dir", help="shared data directory (default: $VITNAS_DATA_DIR, "
                                           "./data, ./shared/data, ../shared/data)")


def add_space_flags(parser: argparse.ArgumentParser, more: bool = False) -> None:
    """The space options every command spells the same way; ``more`` adds --space-options for
    any other key=value option of a space."""
    group = parser.add_argument_group("space options (defaults depend on the space)")
    group.add_argument("--img-size", type=positive_int, help="input resolution")
    group.add_argument("--patch-size", type=positive_int, help="patch size (ViT spaces)")
    group.add_argument("--in-chans", type=positive_int, help="input channels (default 3)")
    group.add_argument("--num-classes", type=positive_int, help="number of classes")
    group.add_argument("--pool", choices=["cls", "mean"], help="class token or mean pooling (ViTs)")
    group.add_argument("--task", choices=["classification", "segmentation"],
                       help="hierarchical (s3-*) spaces: a classifier, or the backbone with the "
                            "FPN decoder's per-pixel logits")
    group.add_argument("--qkv", choices=["per_head", "embed"],
                       help="AutoFormer qkv width: heads x 64 (per_head) or embed dim")
    group.add_argument("--cls-token", choices=["true", "false"],
                       help="AutoFormer: keep a class token with --pool mean (as Auto-Prox's "
                            "ViT-Bench-101 models)")
    if more:
        group.add_argument("--space-options", help="any other space option as key=value pairs, "
                                                   "e.g. 'stride=8' (the flags above win)")


NONE_CORRECT = ("largest", "smallest", "drop")  # vitnas.revit.labels, without importing torch


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads")
    parser.add_argument("--data-dir", help="shared data directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vitnas", description="Training-free NAS for Vision Transformers.",
                    epilog=f"the main job (as in the README): {MAIN_JOB}")
    parser.add_argument("--version", action="version", version=f"vitnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="sample architectures (JSON lines with params and FLOPs)")
    add_space_options(p)
    p.add_argument("-n", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--json", action="store_true", help="accepted for uniformity: the output is "
                                                      "always JSON lines")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("info", help="params, FLOPs and layer table of one architecture")
    add_space_options(p)
    p.add_argument("arch", help="architecture JSON file, '-' for stdin, or inline JSON")
    p.add_argument("--check", action="store_true",
                   help="also build the model: counted params and measured FLOPs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("proxies", help="list the training-free proxies, or one proxy's options")
    p.add_argument("name", nargs="?", help="a proxy: show what it is and its options")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_proxies)

    p = sub.add_parser("score", help="score one architecture with training-free proxies")
    add_space_options(p)
    p.add_argument("arch", help="architecture JSON file, '-' for stdin, or inline JSON")
    p.add_argument("--proxy", default="vintk,ntk_cond,params,flops",
                   help="comma list of proxy specs, e.g. 'vintk:sigma=10,mode=band,dss'; aliases: "
                        "'registered' (every proxy at its defaults), 'vintk-variants', 'all' "
                        "(both, and LGA after 1 epoch)")
    p.add_argument("--dataset", default="cifar10",
                   help="batch source: a dataset name (cifar10, synthetic, ...) or 'gaussian'")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=int, default=0, help="init, batch and proxy seed (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("demo", help="a one-minute tour: sample and score a few AutoFormer-T "
                                    "(micro) architectures on real CIFAR-10 with the headline "
                                    "proxies")
    p.add_argument("-n", type=positive_int, default=5, help="architectures (default 5)")
    p.add_argument("--dataset", default="cifar10", help="batch source (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("search", help="the best architecture for a budget, without training "
                                      "(resumable: every evaluation is kept in the store)")
    add_space_options(p)
    p.add_argument("--proxy", default=DEFAULT_SEARCH_PROXY,
                   help="proxy spec, or a comma list combined by --aggregate (default "
                        f"{DEFAULT_SEARCH_PROXY}: the best on ViT-Bench-101's dev half)")
    p.add_argument("--params", help="parameter window LOW:HIGH, e.g. 5M:6M (a side may be empty)")
    p.add_argument("--flops", help="FLOPs window LOW:HIGH, e.g. :1.5G")
    p.add_argument("--latency", help="measured batch-1 latency window in ms, e.g. :20 "
                                     "(machine-dependent, so not reproducible elsewhere)")
    p.add_argument("--budget", type=positive_int, default=1000, help="evaluations (default 1000)")
    p.add_argument("--algo", default="evolution", help="evolution (default) or random")
    p.add_argument("--aggregate", default="rank",
                   help="several proxies: rank (sum of ranks, default) or pareto (proxies up, "
                        "params and FLOPs down)")
    p.add_argument("--dataset", default="cifar10",
                   help="proxy batch source: a dataset name or 'gaussian' (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=int, default=0,
                   help="scoring seed (init, batch, proxies) and root of every candidate's seed")
    group = p.add_argument_group("evolution (AutoFormer's defaults)")
    group.add_argument("--population", type=positive_int, default=50)
    group.add_argument("--parents", type=positive_int, default=10, help="top-k kept as parents")
    group.add_argument("--mutations", type=nonnegative_int,
                       help="per generation (default population / 2)")
    group.add_argument("--crossovers", type=nonnegative_int,
                       help="per generation (default population / 2)")
    group.add_argument("--layer-prob", type=float, default=0.2, help="per-layer mutation rate")
    group.add_argument("--structure-prob", type=float, default=0.4,
                       help="depth and width mutation rate")
    group = p.add_argument_group("execution (never changes the answer)")
    group.add_argument("--workers", type=positive_int, default=1,
                       help="parallel workers (default 1; use one per core)")
    group.add_argument("--threads", type=positive_int, default=1,
                       help="torch threads per worker (default 1; scores are bitwise equal "
                            "across runs with equal threads per worker)")
    group.add_argument("--backend", default="local", help="local (process pool) or ray")
    group.add_argument("--address", help="Ray cluster address (ray backend)")
    group.add_argument("--gpus-per-worker", type=float, default=0,
                       help="Ray GPUs per worker (ray backend; scores on cuda)")
    group.add_argument("--device", default="cpu", help="where local workers score (cpu, cuda)")
    group.add_argument("--shard", help="i/n: score only candidates i mod n, for `vitnas merge`")
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
    p.add_argument("--epochs", type=positive_float, default=10, help="epochs (default 10)")
    p.add_argument("--train-per-class", type=positive_int,
                   help="first K training images per class (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0, help="init and data-order seed")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--out", help="save the trained model here (.pt: weights, architecture and "
                                 "space options; see `vitnas export`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a model saved by `vitnas train --out` as a "
                                      "torch.export program (.pt2) that runs without vitnas")
    p.add_argument("model", help="trained model (.pt) from `vitnas train --out`")
    p.add_argument("out", help="program to write (.pt2)")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="the program's fixed batch size (default 1)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("merge", help="merge score stores (e.g. from --shard runs) into one")
    p.add_argument("out", help="store to create or extend")
    p.add_argument("inputs", nargs="+", help="stores to copy rows from")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_merge)

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
    p.add_argument("--epochs", type=positive_float, default=3,
                   help="epochs per architecture (default 3)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--label-smoothing", type=smoothing, default=0.1,
                   help="label smoothing of the cross-entropy (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="plan, init and data-order seed")
    p.add_argument("--plan-seed", type=int,
                   help="plan with this seed instead (retrain the same architectures under "
                        "another --seed to measure training noise)")
    p.add_argument("--out", required=True, help="benchmark JSON file (created or extended)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard", help="i/k: train plan slots i, i+k, ... only (one process per "
                                   "core; then `vitnas bench merge`)")
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
    p.add_argument("--proxies", default="all",
                   help="comma list of proxy specs; 'all' = every proxy, every ViNTK variant "
                        "and LGA after 1 epoch; 'registered' = every proxy at its defaults; "
                        "params and FLOPs are always added")
    p.add_argument("--split", choices=["dev", "test", "all"], default="all")
    p.add_argument("--dev-fraction", type=fraction, default=0.5)
    p.add_argument("--split-seed", type=int, default=0, help="seeds the split and the bootstrap")
    p.add_argument("--limit", type=positive_int,
                   help="score a seeded random subset of N architectures")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of --limit's subset")
    p.add_argument("--batch", default="cifar10", help="proxy batch source (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=int, default=0, help="init, batch and proxy seed")
    p.add_argument("--resamples", type=nonnegative_int, default=1000,
                   help="bootstrap resamples (0: no intervals)")
    p.add_argument("--top-fraction", type=float, default=0.1, help="top-k precision fraction")
    p.add_argument("--db", help="score store (default: the cache dir's scores.sqlite)")
    p.add_argument("--out", help="write JSON here, plus .md table and _scatter/_tau PNGs")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel scoring workers, as in `vitnas search` (default 1)")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads per worker (default: all for one worker, 1 for several)")
    p.add_argument("--backend", default="local", help="local (process pool) or ray")
    p.add_argument("--address", help="Ray cluster address (ray backend)")
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench_correlate)
    revit = sub.add_parser("revit", help="adaptive token length: ReViT, labels, the "
                                         "Token-Length Assigner, evaluation")
    revit_sub = revit.add_subparsers(dest="revit_command", required=True, metavar="STEP")
    p = revit_sub.add_parser("train", help="train one ViT for several token lengths")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--img-size", type=positive_int, help="input size (default 32)")
    p.add_argument("--patch-size", type=positive_int, help="patch size (default 4)")
    p.add_argument("--embed-dim", type=positive_int, help="embedding dim (default 96)")
    p.add_argument("--depth", type=positive_int, help="layers (default 6)")
    p.add_argument("--num-heads", type=positive_int, help="heads per layer (default 3)")
    p.add_argument("--mlp-ratio", type=positive_float, help="MLP ratio (default 2)")
    p.add_argument("--num-classes", type=positive_int, help="classes (default 10)")
    p.add_argument("--space", help="AutoFormer-family space of --arch (default "
                                   "autoformer-tiny-micro)")
    p.add_argument("--arch", help="a searched architecture as JSON (or a file path), e.g. the "
                                  "winner of `vitnas search`; replaces the shape flags")
    p.add_argument("--arch-file", help="the architecture as a JSON file")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT.state.pt (saved after every epoch) when it exists")
    p.add_argument("--init-from", help="start from this ReViT checkpoint's weights (same shape "
                                       "and split) with a fresh schedule")
    p.add_argument("--route", choices=["resize", "patch"], default="resize",
                   help="change length by resizing the image (default) or the patch")
    p.add_argument("--fractions", help="token shares, e.g. '0.25,0.5,1' (the default)")
    p.add_argument("--grids", help="token grids instead, e.g. '4,6,8'")
    p.add_argument("--mode", choices=["random", "all", "distill"], default="distill",
                   help="one random length per step, all lengths (summed CE), or all lengths "
                        "with distillation from the longest (default)")
    p.add_argument("--holdout-per-class", type=int, default=500,
                   help="training images per class kept unseen for labelling (default 500)")
    p.add_argument("--fold", help="'i/k': leave fold i of k unseen instead (out-of-fold labels)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--train-per-class", type=positive_int, help="first K training images per class")
    p.add_argument("--epochs", type=positive_float, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_revit_train)

    p = revit_sub.add_parser("label", help="token-length labels of the images each ReViT did "
                                           "not train on")
    p.add_argument("models", nargs="+", help="ReViT checkpoint(s): one holdout model, or the k "
                                             "models of a fold split")
    p.add_argument("--out", required=True, help="labels file to write (.pt)")
    p.add_argument("--none-correct", choices=NONE_CORRECT, default="largest",
                   help="label of images no length gets right (default largest)")
    add_run_options(p)
    p.set_defaults(func=cmd_revit_label)

    p = revit_sub.add_parser("train-tla", help="train the Token-Length Assigner and calibrate "
                                               "the adaptive policies")
    p.add_argument("labels", help="labels file from `vitnas revit label`")
    p.add_argument("--revit", required=True, help="the ReViT checkpoint to deploy (its costs)")
    p.add_argument("--out", required=True, help="assigner checkpoint to write (.pt)")
    p.add_argument("--input-size", type=positive_int, default=16,
                   help="TLA thumbnail resolution (default 16)")
    p.add_argument("--widths", help="TLA stage widths (default '16,32,64')")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--folds", type=int, default=5,
                   help="cross-fitting folds for the calibration (default 5)")
    p.add_argument("--max-loss", type=float, default=1.0,
                   help="calibrate for at most this many points below the full length")
    p.add_argument("--target", choices=["hard", "margin", "correct", "loss"], default="hard",
                   help="what the TLA learns: the smallest correct length (hard, default), "
                        "that label softened by the ReViT's margins (margin), per-length "
                        "correctness (correct) or per-length true-class probability (loss)")
    p.add_argument("--features", choices=["pixels", "stats", "both"], default="pixels",
                   help="CNN on the thumbnail (default), cheap image statistics, or both")
    p.add_argument("--temperature", type=positive_float, default=1.0,
                   help="margin temperature of --target margin (logit units, default 1)")
    p.add_argument("--weighting", choices=["none", "balanced", "stakes"],
                   help="per-image loss weights: none (default), inverse label frequency, or "
                        "full weight only where the lengths disagree on correctness")
    p.add_argument("--balance", action="store_true", help="same as --weighting balanced")
    p.add_argument("--bootstrap", type=nonnegative_int, default=1000,
                   help="bootstrap resamples of the out-of-fold intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    add_run_options(p)
    p.set_defaults(func=cmd_revit_train_tla)

    p = revit_sub.add_parser("eval", help="accuracy, FLOPs and measured throughput of every "
                                          "policy in one run")
    p.add_argument("revit", help="ReViT checkpoint")
    p.add_argument("tla", nargs="+", help="assigner checkpoint(s), compared in one run")
    p.add_argument("--out", help="JSON to write, with a .md table and a .png plot beside it")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--test-per-class", type=int, help="first K test images per class")
    p.add_argument("--tla-threshold", type=float, help="override the calibrated TLA threshold")
    p.add_argument("--cascade-threshold", type=float,
                   help="override the calibrated cascade threshold")
    p.add_argument("--none-correct", choices=NONE_CORRECT, default="largest",
                   help="oracle route of images no length gets right")
    p.add_argument("--fixed-grids", help="fixed token grids to measure, e.g. '3,4,5,6,7,8' "
                                         "(default: every grid from the shortest trained one "
                                         "to the native one)")
    add_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no per-round timing lines")
    p.set_defaults(func=cmd_revit_eval)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a one-line usage error
        return stop.code if isinstance(stop.code, int) else 0
    try:
        args.func(args)
    except VitnasError as err:
        print(f"vitnas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
