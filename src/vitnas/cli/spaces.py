"""`vitnas spaces`, `sample`, `info`: what can be searched, and one architecture's counts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from typing import Any

from vitnas.cli.common import (
    add_space_options,
    check_memory,
    positive_int,
    print_table,
    read_architecture,
    seed,
    space_from_args,
)
from vitnas.formatting import human


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
    space = space_from_args(args, command_reads_data=False)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = space.sample(rng)
        record = {"arch": space.to_json(arch), "params": space.params(arch),
                  "flops": space.flops(arch)}
        print(json.dumps(record))


def cmd_info(args: argparse.Namespace) -> None:
    space = space_from_args(args, command_reads_data=False)
    arch = read_architecture(space, args.arch)
    rows = space.layer_costs(arch)
    result: dict[str, Any] = {
        "space": space.name,
        "source": _source(args.arch),
        "arch": space.to_json(arch),
        "params": space.params(arch),
        "flops": space.flops(arch),
        "layers": [dataclasses.asdict(r) for r in rows],
    }
    if args.check:
        from vitnas.flops import count_params, measured_flops

        check_memory(space, 1, arch)
        model = space.build(arch)
        result["counted_params"] = count_params(model)
        result["measured_flops"] = measured_flops(model, space.example_input(1))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{space.name}: {json.dumps(result['arch'])} (from {result['source']})")
    print_table(
        [{"layer": r.name, "detail": r.detail, "params": f"{r.params:,}", "flops": human(r.flops)}
         for r in rows]
        + [{"layer": "total", "params": f"{result['params']:,}", "flops": human(result["flops"])}],
        ["layer", "detail", "params", "flops"],
    )
    if args.check:
        print(f"check: counted params {result['counted_params']:,}, "
              f"measured FLOPs {human(result['measured_flops'])}")


def _source(spec: str) -> str:
    """Where ``info``'s architecture came from (``read_architecture``'s rule): stdin, the
    command line, or a file."""
    from vitnas.spaces.base import INDEX

    if spec == "-":
        return "stdin"
    stripped = spec.strip()
    if stripped[:1] in ("{", "[", "|", '"') or INDEX.fullmatch(stripped):
        return "the command line"
    return f"file {spec}"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="sample architectures (JSON lines with params and FLOPs)")
    add_space_options(p)
    p.add_argument("-n", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed (default 0)")
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
