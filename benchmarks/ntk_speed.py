"""NTK speed: batched (torch.func) vs naive per-sample loop vs the floor, side by side.

Command:  python benchmarks/ntk_speed.py [--space autoformer-tiny] [--batch 32] [--repeats 3]
Hardware: any CPU (2 cores here); ~1 minute.
Expected: the batched kernel is at least 2x faster than the naive loop, and within a small
factor of one batched forward+backward of the same N (the floor: what any method must pay).
Peak memory is the process's peak resident set size after each stage (CPU) or the CUDA peak.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from vitnas.proxies.kernel import KernelSpec, empirical_ntk
from vitnas.spaces import get_space


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (torch.func builds its transforms on first use)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="autoformer-tiny")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = get_space(args.space, img_size=args.img_size)
    arch = space.sample(0)
    model = space.build(arch, seed=0).train()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, space.in_chans, args.img_size, args.img_size, generator=generator)
    y = torch.randint(0, space.num_classes, (args.batch,), generator=generator)
    print(f"{args.space} at {args.img_size}x{args.img_size}, N={args.batch}, "
          f"{space.params(arch):,} params, torch threads {torch.get_num_threads()}")

    def floor() -> None:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    rows = []
    for label, fn in (
        ("floor: one batched forward+backward", floor),
        ("NTK batched (torch.func)", lambda: empirical_ntk(model, x, y, KernelSpec())),
        ("NTK naive per-sample loop", lambda: empirical_ntk(model, x, y,
                                                            KernelSpec(method="loop"))),
    ):
        seconds = timed(fn, args.repeats)
        rows.append((label, seconds, peak_memory_mb()))
        print(f"  {label:38s} {seconds:8.3f} s   peak memory {rows[-1][2]:8.0f} MB")
    batched, loop = rows[1][1], rows[2][1]
    agreement = (empirical_ntk(model, x, y) - empirical_ntk(model, x, y, KernelSpec(method="loop")))
    reference = empirical_ntk(model, x, y, KernelSpec(method="loop")).abs().max()
    print(f"  speed-up batched vs loop: {loop / batched:.2f}x; batched / floor: "
          f"{batched / rows[0][1]:.1f}x; max relative difference "
          f"{float(agreement.abs().max() / reference):.1e}")


if __name__ == "__main__":
    main()
