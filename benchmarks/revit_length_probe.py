"""Which token lengths should an adaptive policy route among? A pool-only probe (no test).

    python benchmarks/revit_length_probe.py results/revit/labels_scaled_e30.pt \
        --revit results/revit/revit_scaled_e30.pt --out results/revit/length_probe_scaled_e30.json

Hardware: the project's 2-core CPU. Expected runtime: about a minute (the labelled pool at
every grid from the shortest to the native one, one pass each; 16 s here). Expected result
on ``scaled-fashion``: no set of lengths beats the trained 16 / 36 / 64 for confidence-skip
(1.15x the curve's FLOPs at most); on the pool 64 tokens lead 49 by 1.1 points.

Reads the labelled pool of a ``vitnas revit label`` file (images the ReViT never trained on,
the pool every threshold is chosen on), runs it at every grid, and for each candidate set of
lengths reports, by FLOPs only (deterministic; no wall clock): the oracle (each image at its
smallest correct length in the set) and the cheapest confidence-skip rule whose pool accuracy
is within ``--max-loss`` points of the best fixed length, each as a FLOPs ratio against the
fixed-length mixture curve of every grid at equal accuracy (> 1: above it; a point more
accurate than the whole curve gets the lower bound top cost / its cost). Nothing here
touches the test split: it says which lengths a next ReViT or router should use, and the test
claim would be made by ``vitnas revit eval`` after that choice.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import torch

from vitnas.data import get_dataset
from vitnas.errors import ConfigError, VitnasError, reported
from vitnas.revit import artifacts
from vitnas.revit.inference import lengths_flops
from vitnas.revit.labels import correct_by_length
from vitnas.revit.metrics import curve_ratio
from vitnas.revit.model import with_grids
from vitnas.revit.peers import CascadeRule, SkipRule, neighbours, rule_grid, rule_outcome
from vitnas.revit.training import predict_lengths, subset

# the simple peers tried on each set of lengths (thresholds on the pool, as ``revit eval``)
RULE_KINDS = {"confidence_skip": SkipRule.kind, "fair_cascade": CascadeRule.kind}


def probe(labels_path: str, revit_path: str, max_loss: float, data_dir: str | None,
          shortest_grid: int | None = None, sets: list[tuple[int, ...]] | None = None) -> dict:
    payload = artifacts.load_labels(labels_path)
    meta = payload["meta"]
    model, config, revit_meta = artifacts.load_revit(revit_path)
    native = config.lengths()[-1].grid
    shortest = config.lengths()[0].grid if shortest_grid is None else shortest_grid
    if not 1 <= shortest <= native:
        raise ConfigError(f"--shortest-grid must be between 1 and the native grid {native}")
    grids = list(range(shortest, native + 1))
    probe_model = with_grids(model, config, grids)
    options = {"limit_per_class": meta["train_per_class"]} if meta["train_per_class"] else {}
    train = get_dataset(meta["dataset"], split="train", data_dir=data_dir, **options)
    pool = subset(train, payload["indices"])
    logits = predict_lengths(probe_model, pool, batch_size=256)  # (K, N, C)
    correct = correct_by_length(logits, pool.labels)
    confidence = logits.softmax(-1).amax(-1)
    costs = lengths_flops(probe_model)
    fixed = [(float(costs[k]), 100.0 * float(correct[k].float().mean())) for k in range(len(grids))]
    best_fixed = max(accuracy for _, accuracy in fixed)

    rows = []
    tokens = [g * g for g in grids]
    if sets is None:  # every policy starts from the shortest pass
        candidates = [list(chosen) for size in (2, 3)
                      for chosen in itertools.combinations(range(len(grids)), size)
                      if chosen[0] == 0]
    else:
        unknown = sorted({t for chosen in sets for t in chosen} - set(tokens))
        if unknown:
            raise ConfigError(f"--sets names token counts {unknown}; the grids here give "
                              f"{tokens}")
        candidates = [sorted(tokens.index(t) for t in chosen) for chosen in sets]
    for index in candidates:
        right, cost = correct[index], costs[index]
        smallest = right.float().argmax(0)  # first correct length (0 when none is)
        oracle_cost = float(cost[smallest].double().mean())
        oracle_accuracy = 100.0 * float(right.any(0).float().mean())
        row = {"tokens": [tokens[k] for k in index],
               "oracle": {"accuracy": round(oracle_accuracy, 2), "mflops": oracle_cost / 1e6,
                          "flops_ratio": curve_ratio(fixed, oracle_cost, oracle_accuracy)}}
        for name, kind in RULE_KINDS.items():
            best, tried = None, set()
            # the grid (thinned with four or more lengths), then single-threshold moves from
            # the best rule on the full grid until none is cheaper
            candidates = rule_grid(kind, len(index))
            while candidates:
                improved = False
                for rule in candidates:
                    tried.add(rule)
                    ok, spent, _ = rule_outcome(rule, confidence[index], right, cost)
                    accuracy = 100.0 * float(ok.float().mean())
                    flops = float(spent.double().mean())
                    if accuracy >= best_fixed - max_loss and (best is None or flops < best[1]):
                        best, improved = (rule, flops, accuracy), True
                candidates = ([r for r in neighbours(best[0]) if r not in tried]
                              if improved else [])
            row[name] = None if best is None else {
                **best[0].as_dict(), "accuracy": round(best[2], 2), "mflops": best[1] / 1e6,
                "flops_ratio": curve_ratio(fixed, best[1], best[2])}
        rows.append(row)
    return {"labels": labels_path, "revit": revit_path, "dataset": meta["dataset"],
            "pool_images": int(correct.shape[1]), "max_loss": max_loss,
            "fixed": [{"tokens": t, "mflops": c / 1e6, "accuracy": round(a, 2)}
                      for t, (c, a) in zip(tokens, fixed)],
            "trained_tokens": [length.grid ** 2 for length in config.lengths()],
            "sets": rows, "test_split_used": False,
            "revit_test_top1": revit_meta.get("test_top1")}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels")
    parser.add_argument("--revit", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-loss", type=float, default=1.0)
    parser.add_argument("--shortest-grid", type=int,
                        help="start the grids here (default: the shortest trained one); a "
                             "shorter, untrained grid asks whether a next ReViT should train it")
    parser.add_argument("--sets", help="only these sets of token counts, e.g. "
                        "'9/16/36/64,16/36/64' (default: every set of 2 or 3 starting at the "
                        "shortest grid)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    if not args.max_loss >= 0 or args.threads < 1:
        print("revit_length_probe: --max-loss must be >= 0 and --threads >= 1", file=sys.stderr)
        return 2
    try:
        sets = None if args.sets is None else [
            tuple(int(t) for t in chosen.split("/")) for chosen in args.sets.split(",")]
    except ValueError:
        print(f"revit_length_probe: --sets wants token counts like 9/16/36/64, got "
              f"{args.sets!r}", file=sys.stderr)
        return 2
    if sets is not None and any(len(chosen) < 2 or len(set(chosen)) != len(chosen)
                                for chosen in sets):
        print("revit_length_probe: each of --sets needs >= 2 distinct token counts",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        result = probe(args.labels, args.revit, args.max_loss, args.data_dir,
                       args.shortest_grid, sets)
    except VitnasError as err:
        print(f"revit_length_probe: {err}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["command"] = "python benchmarks/revit_length_probe.py " + " ".join(argv)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print("fixed: " + ", ".join(f"{f['tokens']} tokens {f['accuracy']}% @ {f['mflops']:.1f} MFLOPs"
                                for f in result["fixed"]))
    print("| lengths | oracle top-1 | oracle FLOPs ratio | skip rule top-1 | skip FLOPs ratio "
          "| fair cascade top-1 | fair cascade FLOPs ratio |")
    print("|---|---|---|---|---|---|---|")

    def cells(rule: dict | None) -> str:
        return f"{rule['accuracy']} | {rule['flops_ratio']:.2f}x" if rule else "- | -"

    for row in sorted(result["sets"], key=lambda r: -max(
            (r[name] or {}).get("flops_ratio", 0.0) for name in RULE_KINDS)):
        print(f"| {' / '.join(map(str, row['tokens']))} | {row['oracle']['accuracy']} | "
              f"{row['oracle']['flops_ratio']:.2f}x | {cells(row['confidence_skip'])} | "
              f"{cells(row['fair_cascade'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(reported(lambda: main(sys.argv[1:]), "revit_length_probe"))
