"""`vitnas proxies`, `score`, `demo`: the training-free proxies and scoring one architecture."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from vitnas.cli.common import (
    add_space_options,
    check_batch,
    check_memory,
    positive_int,
    print_table,
    read_architecture,
    say,
    seed,
    space_from_args,
)


def cmd_proxies(args: argparse.Namespace) -> None:
    from vitnas.proxies import PROXIES

    if args.name is not None:
        cmd_proxy_options(PROXIES.get(args.name), args)
        return
    rows = []
    for name in PROXIES.names():
        cls = PROXIES.get(name)
        options = [f.name for f in dataclasses.fields(cls.Config)]
        rows.append({"proxy": name, "direction": "higher" if cls.direction > 0 else "lower",
                     "cost": cls.cost, "baseline": "baseline" if cls.baseline else "",
                     "reference": cls.reference, "options": options})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print_table(rows, ["proxy", "direction", "cost", "baseline", "reference"])
    print("\n'direction' is the raw value's better side; reported scores are normalised so "
          "higher is always better. A 'baseline' counts the architecture's size or shape: a "
          "proxy adds information only where it beats the best of them.")


def _shown(most: float | None) -> str:
    """A ceiling as a table shows it: 65,536; 1e+06; - for none."""
    if most is None:
        return "-"
    return f"{most:,}" if isinstance(most, int) else f"{most:g}"


def cmd_proxy_options(cls: Any, args: argparse.Namespace) -> None:
    """One proxy: what it is and every option of its spec string, with defaults and the
    ceilings a spec may not pass."""
    readers = cls.Config.readers() if hasattr(cls.Config, "readers") else {}
    options = [{"option": f.name, "type": getattr(f.type, "__name__", str(f.type)),
                "default": f.default, "ceiling": f.metadata.get("max"),
                **({"read when": readers[f.name]} if readers else {})}
               for f in dataclasses.fields(cls.Config)]
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
        print_table([{**o, "ceiling": _shown(o["ceiling"])} for o in options],
                    ["option", "type", "default", "ceiling", *(["read when"] if readers else [])])
        if readers:
            print("\n'read when': the settings in which an option is read (in some setting of "
                  "the others); an option the spec does not read is refused when set away from "
                  "its default.")
        example = ",".join(f"{o['option']}={o['default']}" for o in options[:2])
        print(f"\nset options in the spec: --proxy {cls.name}:{example}")


def cmd_score(args: argparse.Namespace) -> None:
    from vitnas.errors import ConfigError
    from vitnas.proxies import resolve_proxies, score_architecture
    from vitnas.proxies.scoring import proxy_batch, space_task

    # the proxy list first: a typo is reported before any data file is looked for
    proxies = resolve_proxies(args.proxy)
    if not proxies:
        raise ConfigError(f"--proxy {args.proxy!r} names no proxy; e.g. --proxy vintk (see "
                          "`vitnas proxies`)")
    check_batch(proxies, args.batch_size)
    space = space_from_args(args)
    arch = read_architecture(space, args.arch)
    check_memory(space, args.batch_size, arch)
    x, y = proxy_batch(args.dataset, args.batch_size, space.img_size, space.in_chans,
                       space.num_classes, args.seed, args.data_dir, space_task(space))
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
    from vitnas.demo import DEMO_PROXIES, run_demo
    from vitnas.proxies.spec import resolve_proxies

    check_batch(resolve_proxies(DEMO_PROXIES), args.batch_size)
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    p = sub.add_parser("proxies", help="list the training-free proxies, or one proxy's options")
    p.add_argument("name", nargs="?", help="a proxy: show what it is and its options")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_proxies)

    p = sub.add_parser("score", help="score one architecture with training-free proxies")
    add_space_options(p)
    p.add_argument("arch", help="architecture JSON file, '-' for stdin, or inline JSON")
    p.add_argument("--proxy", default="vintk,ntk_cond,params,flops",
                   help="comma list of proxy specs, e.g. 'vintk:mode=band,cutoff=0.5,dss'; "
                        "aliases: "
                        "'registered' (every proxy at its defaults), 'vintk-variants', 'all' "
                        "(both, and LGA after 1 epoch)")
    p.add_argument("--dataset", default="cifar10",
                   help="batch source: a dataset name (cifar10, synthetic, ...) or 'gaussian'")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=seed, default=0, help="init, batch and proxy seed (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("demo", help="a one-minute tour: sample and score a few AutoFormer-T "
                                    "(micro) architectures on real CIFAR-10 with the headline "
                                    "proxies")
    p.add_argument("-n", type=positive_int, default=5, help="architectures (default 5)")
    p.add_argument("--dataset", default="cifar10", help="batch source (default cifar10)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="proxy batch size (default 32)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--data-dir", help="shared data directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_demo)
