"""Give committed scoreboards the shape baselines and the beyond-shape columns, scoring nothing.

    python benchmarks/rejudge_boards.py BOARD.json [BOARD.json ...] [--shape-baseline NAME]
        [--resamples 1000] [--benchmark FILE] [--second-seed FILE]

Hardware: the project's 2-core CPU. Expected runtime: a minute or two per board (the shape
baselines are counts; ``logsize`` builds each model once). Expected result: every board gets
rows ``depth``, ``width``, ``logsize``, ``depth>params`` beside ``params`` and ``flops``, and every
row its tau - tau(shape baseline), partial tau given (#params, depth, width) and tau within
each depth.

A board written before boards listed their architectures (``keys``) is matched to its benchmark
again: the benchmark is loaded as the board's command loaded it (``--limit n`` draws the same
n records) and the match is accepted only if every architecture's #params equals the board's
stored ``params`` row, in order. The shape baseline is the one given (chosen on a dev split
elsewhere) or else the best on the board itself, and the JSON says which. Each board is
rewritten in place with its ``.md``; the ``rejudged`` field records this command.

``--second-seed FILE`` (a ground truth of some of the same architectures trained under another
seed) adds the board's reliability: the seed-vs-seed Kendall tau with its interval, the pairs,
the noise ceiling, and ``at_noise`` when that tau is below 0.5 (``vitnas.bench.noise``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vitnas.bench import load_benchmark
from vitnas.bench.correlate import (
    Scoreboard,
    ScoreboardConfig,
    rejudge,
    split_indices,
    with_shape_baselines,
)
from vitnas.bench.noise import seed_reliability
from vitnas.bench.report import markdown_table
from vitnas.errors import ConfigError, reported


def benchmark_of(board: Scoreboard, command: str, source: str | None = None):
    """The benchmark the board was judged on, with its records in the board's order."""
    limit = None
    words = command.split()
    if "--limit" in words:
        limit = int(words[words.index("--limit") + 1])
    bench = load_benchmark(source or board.benchmark, n=limit)
    config = board.config
    indices = split_indices(bench, board.split, config.get("dev_fraction", 0.5),
                            config.get("split_seed", 0))
    values = bench.values(board.metric)
    indices = [i for i in indices if values[i] is not None]
    return bench, [bench.records[i].arch for i in indices]


def with_keys(board: Scoreboard, command: str,
              source: str | None = None) -> tuple[Scoreboard, object]:
    bench, archs = benchmark_of(board, command, source)
    if board.keys:
        return board, bench.space
    stored = np.asarray(board.params or board.scores["params"], dtype=float)
    counts = np.array([bench.space.params(a) for a in archs], dtype=float)
    if len(counts) != len(stored) or not np.array_equal(counts, stored):
        raise ConfigError(f"{board.benchmark}: cannot match the board's architectures to the "
                          f"benchmark (the #params rows differ)")
    board.keys = [bench.space.key(a) for a in archs]
    return board, bench.space


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("boards", nargs="+")
    p.add_argument("--shape-baseline", default="", help="default: the best on each board")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--benchmark", help="the benchmark file, when the board names it otherwise")
    p.add_argument("--second-seed", help="the same architectures (some) trained under another "
                                         "seed: records the board's reliability")
    args = p.parse_args(argv)
    command = "python benchmarks/rejudge_boards.py " + " ".join(argv)
    for path in map(Path, args.boards):
        data = json.loads(path.read_text())
        board, space = with_keys(Scoreboard.from_dict(data), data.get("command", ""),
                                  args.benchmark)
        board = with_shape_baselines(board, space)
        fields = ScoreboardConfig.__dataclass_fields__
        config = ScoreboardConfig(**{
            **{k: v for k, v in board.config.items() if k in fields},
            "proxies": tuple(board.config["proxies"]), "resamples": args.resamples,
            "shape_baseline": args.shape_baseline})
        judged = rejudge(board, config=config)
        if args.second_seed:
            first, _ = benchmark_of(board, data.get("command", ""), args.benchmark)
            reliability = seed_reliability(first, load_benchmark(args.second_seed),
                                           board.metric, args.resamples)
            judged.at_noise = reliability.pop("at_noise")
            judged.reliability = reliability
        out = {**judged.as_dict(), "command": data.get("command", ""), "rejudged": command}
        path.write_text(json.dumps(out, indent=1) + "\n")
        path.with_suffix(".md").write_text(markdown_table(judged) + "\n")
        best = judged.row(judged.shape_baseline)
        print(f"{path}: shape baseline {judged.shape_baseline} ({judged.shape_baseline_rule}) "
              f"tau {best.kendall:.3f}; params {judged.row('params').kendall:.3f}")


if __name__ == "__main__":
    sys.exit(reported(lambda: main(sys.argv[1:]), "rejudge_boards"))
