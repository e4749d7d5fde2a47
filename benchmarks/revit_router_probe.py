"""Can anything read "needs more tokens" better than the short pass's own confidence?

    python benchmarks/revit_router_probe.py results/revit/labels_cifar10_e50.pt \
        --revit results/revit/revit_cifar10_e50.pt --router results/revit/router_e50_hard.pt

Two questions the #16 study left, answered on the labelled pool (held-out training images, the
dev set; never the test set), all out of fold (5 folds, the same split for every probe):

1. **Signal.** ROC AUC of "the shortest length is wrong" from: the ReViT's top softmax
   probability at the shortest length (what the cascade thresholds), a small MLP on the
   router's coarse features (softmax, sorted softmax, entropy, margin), an MLP on the shortest
   pass's pooled embedding, and both. A richer input only helps a router if it beats the
   confidence the cascade already has for free.
2. **Second look.** The router sends an image to one length; the cascade can stop after the
   middle one and escalate. A hybrid (router first, then a confidence check at the length it
   chose, escalating to the longest) is scored over (router knob x escalation threshold) on
   FLOPs, against the fixed-length curve and the cascade sweep at equal accuracy.

Expected runtime on 2 CPU cores: about a minute. Writes nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from vitnas.errors import ConfigError, VitnasError, reported
from vitnas.revit import artifacts
from vitnas.revit.assigner import coarse_features, knob_grid, train_assigner
from vitnas.revit.evaluate import CASCADE_GRID, assigner_logits, cascade_point
from vitnas.revit.inference import lengths_flops
from vitnas.revit.labels import correct_by_length
from vitnas.revit.metrics import mixture_frontier, ratio_at_equal_accuracy, roc_auc
from vitnas.revit.pipeline import _dataset, _fresh_assigner, _normalised

ESCALATION_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def probe_scores(inputs: torch.Tensor, target: torch.Tensor, folds: list[torch.Tensor],
                 epochs: int, seed: int) -> torch.Tensor:
    """Out-of-fold logits of a 64-unit MLP (standardised inputs, dropout, AdamW) for a binary
    target: the same capacity as the router, on any feature vector."""
    scores = torch.empty(len(target))
    for part in folds:
        keep = torch.ones(len(target), dtype=torch.bool)
        keep[part] = False
        mean, std = inputs[keep].mean(0), inputs[keep].std(0) + 1e-6
        z = (inputs - mean) / std
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = nn.Sequential(nn.Linear(inputs.shape[1], 64), nn.ReLU(), nn.Dropout(0.2),
                                nn.Linear(64, 1))
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
            rows = torch.nonzero(keep).flatten()
            for _ in range(epochs):
                net.train()
                for batch in rows[torch.randperm(len(rows), generator=generator)].split(256):
                    optimizer.zero_grad()
                    nn.functional.binary_cross_entropy_with_logits(
                        net(z[batch]).squeeze(1), target[batch]).backward()
                    optimizer.step()
        net.eval()
        with torch.no_grad():
            scores[part] = net(z[part]).squeeze(1)
    return scores


def hybrid_point(route: torch.Tensor, confidence: torch.Tensor, threshold: float,
                 correct: torch.Tensor, costs: torch.Tensor) -> tuple[float, float]:
    """(accuracy %, mean FLOPs) when the router's route runs (the shortest pass for all, as
    the router reads it), and an image routed to a middle length escalates to the longest
    when its top probability there is below ``threshold``."""
    count, n = correct.shape
    final = route.clone()
    spent = costs[0].expand(n).clone() + torch.where(route > 0, costs[route], 0)
    for length in range(1, count - 1):
        escalate = (route == length) & (confidence[length] < threshold)
        final[escalate] = count - 1
        spent[escalate] += costs[-1]
    hit = correct[final, torch.arange(n)]
    return 100.0 * float(hit.float().mean()), float(spent.double().mean())


def main() -> int:
    try:
        return probe()
    except VitnasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def probe() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels")
    parser.add_argument("--revit", required=True)
    parser.add_argument("--router", required=True, help="a features='coarse' assigner file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60, help="MLP probe epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.folds < 2 or args.epochs < 1 or args.threads < 1:
        raise ConfigError(f"need --folds >= 2, --epochs >= 1 and --threads >= 1, got "
                          f"{args.folds}, {args.epochs}, {args.threads}")
    torch.set_num_threads(args.threads)

    payload = artifacts.load_labels(args.labels)
    meta = payload["meta"]
    logits, targets, labels = payload["logits"].float(), payload["targets"], payload["labels"]
    model, _, _ = artifacts.load_revit(args.revit)
    router, _ = artifacts.load_assigner(args.router)
    if not router.config.reads_coarse_pass:
        print(f"error: {args.router} is not a coarse-pass router", file=sys.stderr)
        return 2
    model.eval()
    count, n = logits.shape[:2]
    costs = lengths_flops(model)
    correct = correct_by_length(logits, targets)
    decidable = correct.any(dim=0)
    wrong_short = ~correct[0]
    folds = list(torch.tensor_split(
        torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)), args.folds))

    images = _normalised(_dataset(meta["dataset"], "train", None, meta["train_per_class"]),
                         payload["indices"])
    with torch.no_grad():
        features = torch.cat([model.features_at(model.prepare(chunk, 0), 0)
                              for chunk in images.split(500)])
    pooled = features[:, 0] if model.pool == "cls" else features[:, 1:].mean(1)
    coarse = coarse_features(logits[0])
    confidence = logits.softmax(-1).amax(-1)  # (K, N)
    signals = {
        "ReViT short-pass confidence (the cascade's signal)": 1.0 - confidence[0],
        "MLP on the coarse features (the router's input)": None,
        f"MLP on the short pass's pooled embedding ({pooled.shape[1]} dims)": None,
        "MLP on embedding + coarse features": None,
    }
    inputs = [coarse, pooled, torch.cat([pooled, coarse], 1)]
    for name, values in zip(list(signals)[1:], inputs):
        signals[name] = probe_scores(values, wrong_short.float(), folds, args.epochs, args.seed)
    aucs = {name: round(roc_auc(score[decidable], wrong_short[decidable]), 4)
            for name, score in signals.items()}
    print(f"{n} labelled pool images, {args.folds} folds; 'shortest length wrong' ROC AUC "
          f"(images some length gets right):")
    for name, auc in aucs.items():
        print(f"  {auc:.3f}  {name}")

    out_of_fold = torch.empty(n, count)
    for part in folds:
        keep = torch.ones(n, dtype=torch.bool)
        keep[part] = False
        helper = _fresh_assigner(router.config, args.seed)
        train_assigner(helper, logits[0][keep], labels[keep], epochs=30, seed=args.seed,
                       labels=labels[keep])
        out_of_fold[part] = assigner_logits(helper, logits[0][part])
    fixed = mixture_frontier([(float(costs[k]), 100.0 * float(correct[k].float().mean()))
                              for k in range(count)])
    cascade = mixture_frontier([(p.flops, p.accuracy) for p in
                                (cascade_point(t, logits, correct, costs) for t in CASCADE_GRID)])
    rows = []
    for knob in knob_grid(router.config):
        route = router.route(out_of_fold, knob)
        for threshold in ESCALATION_GRID:
            accuracy, flops = hybrid_point(route, confidence, threshold, correct, costs)
            rows.append({"knob": knob, "escalate_below": threshold, "accuracy": round(accuracy, 2),
                         "mflops": round(flops / 1e6, 2),
                         "vs_fixed": ratio_at_equal_accuracy(fixed, flops, accuracy),
                         "vs_cascade": ratio_at_equal_accuracy(cascade, flops, accuracy)})
    full = 100.0 * float(correct[-1].float().mean())
    print(f"\nrouter + second look on the pool (full length {full:.2f}%), within 1 point of it; "
          f"FLOPs ratio at equal accuracy (> 1: cheaper):")
    print("| router knob | escalate below | top-1 (%) | MFLOPs | vs fixed curve | vs cascade |")
    print("|---|---|---|---|---|---|")
    near = [r for r in rows if r["accuracy"] >= full - 1.0 and r["vs_cascade"] is not None]
    for plain in (True, False):  # the router alone, then its best second look per knob
        for knob in sorted({r["knob"] for r in near}):
            group = [r for r in near if r["knob"] == knob
                     and (r["escalate_below"] == 0.0) == plain]
            if group:
                best = max(group, key=lambda r: r["vs_cascade"])
                print(f"| {knob:.4f} | {best['escalate_below'] if not plain else '(none)'} | "
                      f"{best['accuracy']:.2f} | {best['mflops']:.1f} | "
                      f"{best['vs_fixed']:.2f}x | {best['vs_cascade']:.2f}x |")
    if args.out:
        command = "python " + " ".join(sys.argv)
        with open(args.out, "w") as handle:
            json.dump({"command": command, "auc": aucs, "hybrid": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(reported(main, "revit_router_probe"))
