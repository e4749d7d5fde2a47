"""The training curve of a ReViT run: mean loss per epoch, from its training state.

    python benchmarks/revit_training_curve.py results/revit/revit_cifar10_e50.state.pt \
        --out results/revit/revit_cifar10_e50_curve.json

Checkpoints written since the curve was added carry it as ``meta["epoch_losses"]``; this reads
the per-step losses a ``vitnas revit train`` state file keeps (``OUT.state.pt``), so a run made
before that still gets its curve. Runtime: seconds.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from vitnas.errors import reported
from vitnas.revit.training import STATE_FORMAT, epoch_means


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state", help="a vitnas revit training state (OUT.state.pt)")
    parser.add_argument("--out", default=None, help="write the curve as JSON")
    args = parser.parse_args()
    try:
        state = torch.load(args.state, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one line
        print(f"error: {args.state}: not a readable training state ({error})", file=sys.stderr)
        return 2
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        print(f"error: {args.state}: expected a {STATE_FORMAT} file", file=sys.stderr)
        return 2
    epochs, recipe = int(state["epoch"]), state["identity"].get("recipe", {})
    curve = epoch_means(state["losses"], epochs)
    print(f"{epochs} epochs, {state['step']} steps, {state['seconds']:.0f} s; recipe {recipe}")
    print("| epoch | mean training loss |\n|---|---|")
    for epoch, loss in enumerate(curve, 1):
        print(f"| {epoch} | {loss:.4f} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"command": "python " + " ".join(sys.argv), "epochs": epochs,
                       "steps": state["step"], "seconds": round(state["seconds"], 1),
                       "recipe": recipe, "epoch_losses": curve}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(reported(main, "revit_training_curve"))
