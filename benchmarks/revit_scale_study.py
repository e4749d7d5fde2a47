"""Does the needed token length follow the object's size? Labels of the scale-varied task by
object side.

    python benchmarks/revit_scale_study.py results/revit/labels_scaled_e50.pt \
        --out results/revit/scale_study_e50.json

Reads a ``vitnas revit label`` file of a ReViT trained on ``scaled-fashion`` (one object per
scene, side 6-64 px), rebuilds the dataset (cached) to get each labelled image's object side,
and prints per side bin: images, each length's accuracy and the share of smallest-correct
labels per length. If the task works as intended, small objects need the long lengths and
large ones the short. Runtime: seconds (the dataset comes from the cache after the first build).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from vitnas.data import get_dataset
from vitnas.errors import VitnasError, reported
from vitnas.revit import artifacts
from vitnas.revit.labels import correct_by_length

BINS = (6, 8, 12, 16, 24, 32, 48, 65)


def study(labels_path: str, data_dir: str | None = None) -> dict:
    payload = artifacts.load_labels(labels_path)
    meta = payload["meta"]
    if not str(meta["dataset"]).startswith("scaled-"):
        raise VitnasError(f"{labels_path}: labels of {meta['dataset']}, not a scaled-* dataset")
    options = {"limit_per_class": meta["train_per_class"]} if meta["train_per_class"] else {}
    train = get_dataset(meta["dataset"], split="train", data_dir=data_dir, **options)
    sides = train.object_sides[payload["indices"]]
    correct = correct_by_length(payload["logits"].float(), payload["targets"])
    labels = payload["labels"]
    count = correct.shape[0]
    rows = []
    for low, high in zip(BINS, BINS[1:]):
        members = (sides >= low) & (sides < high)
        n = int(members.sum())
        kept = labels[members]
        kept = kept[kept >= 0]
        rows.append({
            "side_px": [low, high - 1], "images": n,
            "accuracy_by_length": [round(100.0 * float(c[members].float().mean()), 2) if n
                                   else None for c in correct],
            "label_share": [round(100.0 * float((kept == k).float().mean()), 2) if len(kept)
                            else None for k in range(count)],
        })
    return {"labels": labels_path, "dataset": meta["dataset"],
            "lengths": [length["tokens"] for length in meta["lengths"]], "bins": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", help="a vitnas revit label file of a scaled-* ReViT")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="write the table as JSON")
    args = parser.parse_args()
    try:
        result = study(args.labels, args.data_dir)
    except VitnasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tokens = result["lengths"]
    print("| object side (px) | images | "
          + " | ".join(f"top-1 at {t} tokens" for t in tokens) + " | "
          + " | ".join(f"label {t}" for t in tokens) + " |")
    print("|---|---|" + "---|" * (2 * len(tokens)))
    for row in result["bins"]:
        cells = [f"{row['side_px'][0]}-{row['side_px'][1]}", str(row["images"])]
        cells += ["-" if v is None else f"{v:.1f}%" for v in row["accuracy_by_length"]]
        cells += ["-" if v is None else f"{v:.0f}%" for v in row["label_share"]]
        print("| " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"command": "python " + " ".join(sys.argv), **result}, handle, indent=1)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(reported(main, "revit_scale_study"))
