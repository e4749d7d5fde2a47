"""NTK speed: the hooks kernel, the torch.func kernel and the naive loop against the floor.

Command:  python benchmarks/ntk_speed.py --img 224 [--batch 16,32] [--repeats 3] [--threads 2]
          [--out results/ntk_speed.json]
Hardware: any CPU (2 cores: about 25 minutes at 224 px, most of it the loop); a GPU if present.
Expected: the hooks kernel within 2x of one batched forward+backward of the same N images (the
floor: what any method must pay), equal to the naive per-sample loop to 1e-5 relative.
Timings are medians of ``--repeats`` interleaved rounds after one warm-up round, so a machine
shared with other work slows every method alike (the loop: one run unless ``--loop-repeats``).
Peak memory: on CUDA the allocator's peak; on CPU the peak resident set size (VmHWM, Linux) that
one run of the method adds in a fresh process after building the model and batch
(``--peak-of``), so one method's peak never hides another's. The output is a Markdown table;
``--out`` also writes it as JSON with the command, the commit and the processor model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from vitnas.cli.common import positive_int, positive_ints
from vitnas.errors import reported
from vitnas.formatting import dumps_strict
from vitnas.provenance import provenance
from vitnas.proxies.kernel import KernelSpec, empirical_ntk
from vitnas.spaces import get_space

METHODS = ("floor", "hooks", "batched", "loop")
VARIANTS = {"embed/mean": {"qkv": "embed", "pool": "mean"}, "per_head/cls": {}}


def status_mb(field: str) -> float:
    """VmRSS or VmHWM (the peak) of this process, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def setup(args, variant: str, n: int):
    space = get_space(args.space, img_size=args.img, **VARIANTS[variant])
    arch = space.sample(0)
    model = space.build(arch, seed=0).train().to(args.device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, space.in_chans, args.img, args.img, generator=generator).to(args.device)
    y = torch.randint(0, space.num_classes, (n,), generator=generator).to(args.device)

    def floor() -> None:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    def kernel(method: str):
        return lambda: empirical_ntk(model, x, y, KernelSpec(method=method))

    fns = {"floor": floor, **{m: kernel(m) for m in METHODS[1:]}}
    return space, arch, fns


def peak_of(args) -> None:
    """Child mode: print the peak memory (MB) one run of ``--peak-of`` adds."""
    _, _, fns = setup(args, args.variant, args.peak_n)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fns[args.peak_of]()
        torch.cuda.synchronize()
        print((torch.cuda.max_memory_allocated() - base) / 2**20)
        return
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak to the current resident set size
    base = status_mb("VmRSS")
    fns[args.peak_of]()
    print(status_mb("VmHWM") - base)


def measured_peak(args, variant: str, n: int, method: str) -> float:
    command = [sys.executable, __file__, "--space", args.space, "--img", str(args.img),
               "--threads", str(args.threads), "--device", args.device, "--variant", variant,
               "--peak-of", method, "--peak-n", str(n)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.split()[-1])


def timed_rounds(fns: dict, methods: list[str], repeats: int, sync, once: tuple = ()):
    """One warm-up round, then ``repeats`` rounds with the methods interleaved; the times and
    each method's last result. Methods in ``once`` run in the last round only."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    results = {}
    for round_index in range(repeats + 1):
        for method in methods:
            if method in once and round_index < repeats:
                continue
            start = time.perf_counter()
            results[method] = fns[method]()
            sync()
            if round_index:
                times[method].append(time.perf_counter() - start)
    return times, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="autoformer-tiny")
    parser.add_argument("--img", "--img-size", dest="img", type=positive_int, default=224)
    parser.add_argument("--batch", type=positive_ints, default="16,32", help="comma-separated N")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--loop-max", type=int, default=32, help="largest N the loop runs at")
    parser.add_argument("--loop-repeats", action="store_true",
                        help="time the loop like the others (default: one run, no warm-up: it "
                             "uses no torch.func; the slowest by far)")
    parser.add_argument("--no-peak", action="store_true", help="skip the memory processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="also write the rows as JSON here (with the command)")
    parser.add_argument("--variant", default="embed/mean", help=argparse.SUPPRESS)
    parser.add_argument("--peak-of", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--peak-n", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        parser.error(f"--out {args.out}: its folder does not exist")  # before minutes of timing
    torch.set_num_threads(args.threads)
    if args.peak_of:
        peak_of(args)
        return
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{args.space} at {args.img}x{args.img} on {device}, torch threads "
          f"{torch.get_num_threads()}, median of {args.repeats} interleaved rounds after a "
          f"warm-up\n")
    print("| model (qkv/pool) | params | N | method | median s | / floor [range over rounds] | "
          "peak MB | max rel. diff vs loop |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for variant in args.variants.split(","):
        for n in args.batch:
            space, arch, fns = setup(args, variant, n)
            methods = [m for m in METHODS if m != "loop" or n <= args.loop_max]
            once = () if args.loop_repeats else ("loop",)
            times, kernels = timed_rounds(fns, methods, args.repeats, sync, once)
            floor = statistics.median(times["floor"])
            for method in methods:
                seconds = statistics.median(times[method])
                # each round's time over the same round's floor (a neighbour's load hits both);
                # a method run once is compared with the floor's median
                ratios = ([t / f for t, f in zip(times[method], times["floor"])]
                          if len(times[method]) == len(times["floor"]) else [seconds / floor])
                peak = "-" if args.no_peak else f"{measured_peak(args, variant, n, method):.0f}"
                diff = "-"
                if method != "floor" and "loop" in kernels:
                    reference = kernels["loop"]
                    error = (kernels[method] - reference).abs().max() / reference.abs().max()
                    diff = f"{float(error):.1e}"
                print(f"| {variant} | {space.params(arch) / 1e6:.1f}M | {n} | {method} | "
                      f"{seconds:.2f} | {seconds / floor:.2f}x [{min(ratios):.2f}, "
                      f"{max(ratios):.2f}] | {peak} | {diff} |", flush=True)
                rows.append({"variant": variant, "params": space.params(arch), "n": n,
                             "method": method, "median_s": seconds, "rounds_s": times[method],
                             "over_floor": seconds / floor, "over_floor_rounds": ratios,
                             "peak_mb": None if peak == "-" else float(peak),
                             "max_rel_diff_vs_loop": None if diff == "-" else float(diff)})
    if args.out:
        command = "python benchmarks/ntk_speed.py " + " ".join(sys.argv[1:])
        record = {**provenance(command.strip()), "space": args.space, "img_size": args.img,
                  "device": device, "threads": torch.get_num_threads(),
                  "repeats": args.repeats, "rows": rows}
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(dumps_strict(record, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(reported(main, "ntk_speed"))
