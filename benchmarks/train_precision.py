"""Training-step time of the default ReViT in float32 and under bf16 autocast, side by side.

    python benchmarks/train_precision.py [--threads 2] [--steps 8] [--modes distill,all]
        [--out results/train_precision.json]

Hardware: whatever runs it; the README's numbers come from the project's 2-core CPU machines:
an Intel Xeon with AMX-BF16, where bf16 autocast is what makes a 50-epoch ReViT fit in about an
hour (under a minute), and an AMD EPYC with AVX2 only, where torch emulates bf16 and a step is
16x slower than float32 (3 minutes). Each configuration runs ``--steps`` AdamW steps on one
fixed random batch (no data loading: the model's own cost); the median step after two warm-up
steps is reported, with the ratio to float32 measured in the same process. The two precisions
are interleaved step by step, so a neighbour's load hits both alike. ``--out`` also writes the
rows as JSON with the command, the commit and the processor model (the result depends on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from vitnas.cli.common import positive_int
from vitnas.errors import reported
from vitnas.formatting import dumps_strict
from vitnas.provenance import provenance
from vitnas.revit.model import ReViTConfig, build_revit
from vitnas.revit.training import revit_objective


def step_seconds(mode: str, batch: int, steps: int) -> dict[str, list[float]]:
    """Seconds of each training step (after two warm-up steps) for float32 and bf16,
    interleaved step by step."""
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1))
    runs = {}
    for precision in ("fp32", "bf16"):
        model = build_revit(ReViTConfig()).train()
        runs[precision] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3),
                           revit_objective("distill" if mode == "distill" else "all",
                                           model.num_lengths))
    times: dict[str, list[float]] = {p: [] for p in runs}
    for _ in range(steps + 2):
        for precision, (model, optimizer, objective) in runs.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = objective(model, x, y, 0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times[precision].append(time.perf_counter() - start)
    return {p: t[2:] for p, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--steps", type=positive_int, default=8)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--modes", default="distill,all",
                        help="ReViT objectives to time (every length per step in both)")
    parser.add_argument("--out", help="also write the rows as JSON here (with the command)")
    args = parser.parse_args()
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        parser.error(f"--out {args.out}: its folder does not exist")  # before minutes of timing
    torch.set_num_threads(args.threads)
    print(f"default ReViT (embed 96, depth 6, 16/36/64 tokens), batch {args.batch_size}, "
          f"{args.threads} thread(s), median of {args.steps} steps")
    print("| objective | fp32 ms/step | bf16 ms/step | bf16 speed-up [range over steps] | "
          "bf16 s per 45k-image epoch |")
    print("|---|---|---|---|---|")
    rows = []
    for mode in args.modes.split(","):
        steps = step_seconds(mode.strip(), args.batch_size, args.steps)
        seconds = {p: statistics.median(t) for p, t in steps.items()}
        # each step's float32 time over the bf16 step beside it
        ratios = [f / b for f, b in zip(steps["fp32"], steps["bf16"])]
        epoch = 45000 / args.batch_size * seconds["bf16"]
        print(f"| {mode} | {1000 * seconds['fp32']:.0f} | {1000 * seconds['bf16']:.0f} | "
              f"{seconds['fp32'] / seconds['bf16']:.2f}x [{min(ratios):.2f}, "
              f"{max(ratios):.2f}] | {epoch:.0f} |", flush=True)
        rows.append({"objective": mode.strip(), "fp32_ms": 1000 * seconds["fp32"],
                     "bf16_ms": 1000 * seconds["bf16"],
                     "bf16_speedup": seconds["fp32"] / seconds["bf16"],
                     "bf16_speedup_steps": ratios, "bf16_epoch_s": epoch,
                     "fp32_steps_s": steps["fp32"], "bf16_steps_s": steps["bf16"]})
    if args.out:
        command = "python benchmarks/train_precision.py " + " ".join(sys.argv[1:])
        record = {**provenance(command.strip()), "threads": args.threads, "steps": args.steps,
                  "batch_size": args.batch_size, "rows": rows}
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(dumps_strict(record, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(reported(main, "train_precision"))
