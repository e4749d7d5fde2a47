"""Why the Token-Length Assigner learns only the label prior, and which remedy helps.

Command (the committed study, CIFAR-10, on this project's 2-core CPU, 1 thread; about 1-2 min
per CNN variant and seconds per statistics-only variant at the defaults below):

    python benchmarks/revit_assigner_study.py results/revit/labels_cifar10_ft.pt \
        --revit results/revit/revit_cifar10_ft.pt --out results/revit/assigner_study.json

Every variant is one named option set of ``vitnas revit train-tla`` (``--target``,
``--features``, ``--weighting``, ``--input-size``), cross-fitted over the labelled pool exactly
as train-tla calibrates (no final fit, nothing saved but the report). Per variant: out-of-fold
label accuracy minus the majority-label share with a paired bootstrap 95% interval, the ROC AUC
of "needs more tokens" (the shortest length is wrong, a longer one right) with its interval,
beside the AUC of the ReViT's own shortest-pass confidence (what a cascade sees), and the
calibrated TLA point on the pool (accuracy within ``--max-loss`` of the full length) with its
FLOPs ratio against the fixed-length curve at equal accuracy.

Resumable: the JSON is rewritten (atomically) after every variant, and variants already in it
are skipped, so a killed study continues where it stopped; a JSON of other settings (labels,
ReViT, epochs, folds, max loss, bootstrap, seed) is refused rather than mixed in. ``--smoke``
runs two variants for one epoch on two folds (a CI-sized check). Expected result: no variant is
far above the prior; the AUC of the statistics/per-length variants is where any signal shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from vitnas.errors import ConfigError, reported

VARIANTS: dict[str, dict] = {
    "hard/pixels (paper)": {},
    "hard/pixels/balanced": {"weighting": "balanced"},
    "hard/pixels/stakes": {"weighting": "stakes"},
    "hard/pixels 32px": {"input_size": 32},
    "margin/pixels": {"target": "margin"},
    "correct/pixels": {"target": "correct"},
    "loss/pixels": {"target": "loss"},
    "hard/stats": {"features": "stats"},
    "margin/stats": {"target": "margin", "features": "stats"},
    "correct/stats": {"target": "correct", "features": "stats"},
    "loss/stats": {"target": "loss", "features": "stats"},
    "correct/both": {"target": "correct", "features": "both"},
    "hard/coarse (router)": {"target": "hard", "features": "coarse"},
    "margin/coarse (router)": {"target": "margin", "features": "coarse"},
    "correct/coarse (router)": {"target": "correct", "features": "coarse"},
}


def row(name: str, summary: dict) -> dict:
    report, calibration = summary["out_of_fold"], summary["calibration"]
    tla = calibration["tla"]
    return {
        "variant": name, "target": summary["target"], "features": summary["features"],
        "weighting": summary["weighting"], "input_size": summary["input_size"],
        "assigner_flops": summary["flops"], "cross_fit_seconds": summary["cross_fit_seconds"],
        "oof_accuracy": report["accuracy"], "majority_share": report["majority_share"],
        "accuracy_minus_prior": report["accuracy_minus_prior"],
        "accuracy_minus_prior_ci": report["accuracy_minus_prior_ci"],
        "needs_more_auc": report["needs_more_auc"],
        "needs_more_auc_ci": report["needs_more_auc_ci"],
        "reference_auc": report.get("reference_auc"),
        "tla_knob": tla["knob"], "tla_accuracy": tla["accuracy"], "tla_flops": tla["flops"],
        "tla_flops_ratio_vs_fixed": tla["flops_ratio_vs_fixed"],
        "best_sweep_flops_ratio_vs_fixed": calibration["best_tla_flops_ratio_vs_fixed"],
        "cascade": calibration["cascade"], "full_length_accuracy":
            calibration["full_length_accuracy"], "summary": summary,
    }


def markdown(rows: list[dict], command: str) -> str:
    lines = [f"Made by `{command}`", "",
             "| variant | MFLOPs | OOF label acc. (%) | majority share (%) | acc. - prior "
             "[95% CI] | needs-more AUC [95% CI] | ReViT short-pass AUC | calibrated TLA on "
             "the pool | FLOPs ratio vs fixed curve | best knob's ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["accuracy_minus_prior_ci"]
        auc_low, auc_high = r["needs_more_auc_ci"]
        ratio = r["tla_flops_ratio_vs_fixed"]
        flops = f"{r['assigner_flops'] / 1e6:.2f}"
        if r["features"] == "coarse":  # a router reads the shortest pass, which it pays for
            flops = f"{r['assigner_flops'] / 1e6:.3f} + the shortest pass"
        lines.append(
            f"| {r['variant']} | {flops} | {r['oof_accuracy']:.2f} | "
            f"{r['majority_share']:.2f} | {r['accuracy_minus_prior']:+.2f} "
            f"[{low:+.2f}, {high:+.2f}] | {r['needs_more_auc']:.3f} "
            f"[{auc_low:.3f}, {auc_high:.3f}] | {r['reference_auc']:.3f} | "
            f"{r['tla_accuracy']:.2f}% at {r['tla_flops'] / 1e6:.1f} MFLOPs | "
            + ("above" if ratio is None else f"{ratio:.2f}x")
            + f" | {r['best_sweep_flops_ratio_vs_fixed']} |")
    if rows:
        cascade = rows[0]["cascade"]
        lines += ["", f"Full length on the pool: {rows[0]['full_length_accuracy']:.2f}%; the "
                      f"cascade calibrated the same way: {cascade['accuracy']:.2f}% at "
                      f"{cascade['flops'] / 1e6:.1f} MFLOPs (FLOPs ratio vs fixed curve "
                      f"{cascade['flops_ratio_vs_fixed']})."]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", help="labels file from `vitnas revit label`")
    parser.add_argument("--revit", required=True, help="the ReViT the labels came from")
    parser.add_argument("--out", required=True, help="JSON to write (a .md table beside it)")
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-loss", type=float, default=1.0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="two variants, 1 epoch, 2 folds")
    args = parser.parse_args()

    from vitnas.revit.pipeline import assigner_step

    torch.set_num_threads(args.threads)
    names = list(VARIANTS) if not args.variants else [v.strip() for v in args.variants.split(",")]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    epochs, folds = (1, 2) if args.smoke else (args.epochs, args.folds)
    if args.smoke:
        names = names[:1] + ["hard/stats"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    settings = {"labels": args.labels, "revit": args.revit, "epochs": epochs, "folds": folds,
                "max_loss": args.max_loss, "bootstrap": args.bootstrap, "seed": args.seed}
    done: dict[str, dict] = {}
    if out.exists():
        previous = json.loads(out.read_text())
        differ = [f"{key} {previous[key]!r} (now {value!r})" for key, value in settings.items()
                  if key in previous and previous[key] != value]
        if differ:  # a kept row of other settings would pass for one of these
            raise ConfigError(f"{out} holds a study with {', '.join(differ)}; use another "
                              f"--out, or the same settings to resume it")
        done = {r["variant"]: r for r in previous.get("rows", [])}
    for name in names:
        if name in done:
            print(f"{name}: already in {out}, skipped", flush=True)
            continue
        start = time.perf_counter()
        options = {"target": "hard", "features": "pixels", "weighting": "none",
                   "input_size": 16, **VARIANTS[name]}
        summary = assigner_step(args.labels, args.revit, None, options["input_size"],
                                epochs=epochs, folds=folds, max_loss=args.max_loss,
                                weighting=options["weighting"], seed=args.seed,
                                target=options["target"], features=options["features"],
                                resamples=args.bootstrap, command=command)
        done[name] = row(name, summary)
        rows = [done[n] for n in VARIANTS if n in done]
        record = {"command": command, **settings, "threads": args.threads, "rows": rows}
        write_atomic(out, json.dumps(record, indent=1) + "\n")
        write_atomic(out.with_suffix(".md"), markdown(rows, command))
        r = done[name]
        print(f"{name}: OOF {r['oof_accuracy']:.2f}% vs prior {r['majority_share']:.2f}% "
              f"({r['accuracy_minus_prior']:+.2f} {r['accuracy_minus_prior_ci']}), AUC "
              f"{r['needs_more_auc']:.3f} {r['needs_more_auc_ci']} (ReViT short pass "
              f"{r['reference_auc']:.3f}); TLA {r['tla_accuracy']:.2f}% at "
              f"{r['tla_flops'] / 1e6:.1f} MFLOPs, ratio vs fixed {r['tla_flops_ratio_vs_fixed']}"
              f" [{time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    sys.exit(reported(main, "revit_assigner_study"))
