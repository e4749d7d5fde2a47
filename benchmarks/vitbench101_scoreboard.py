"""The ViT-Bench-101 scoreboard: every proxy, the peers and the ViNTK grid, on trained ViTs.

    python benchmarks/vitbench101_scoreboard.py [--db runs/vb101.sqlite] [--workers 2]
        [--out results/vitbench101] [--proxies LIST] [--smoke]

Hardware: the project's 2-core CPU machine (no GPU). Expected runtime: the first run scores 200
architectures at 224 px (about 10-40 s per architecture for the whole list, so one to two hours);
every score lands in the score store, so a re-run (or a run with more proxies) only computes
what is new and the judging alone takes a few minutes. Expected result: the tables in the README.

Protocol (choose on dev, claim on test):
- ``vit-bench-101-autoformer`` is split into dev and test halves by a seeded hash of each
  architecture (``split_seed`` 0, the scoreboard's split). Everything is *chosen* on the dev half
  with the primary label (CIFAR-100 with distillation, ``c100_kd_acc``): the recommended search
  default (best dev Kendall tau over every proxy and named ensemble, the baselines excluded) and
  the ViNTK default (best dev tau among ``vintk`` rows).
- Claims are made on the test half and on ``vit-bench-101-pit`` (a second space, never used for
  choosing), every label, with bootstrap intervals, beyond-size columns and regret.
- Every proxy sees one fixed CIFAR-10 batch (16 images, seed 0) upsampled to 224 px, and each
  model is built as it was trained (``vitnas bench list``).

Writes ``OUT/<bench>_<label>_<split>.json`` (+ ``.md``) for every combination, the PNGs of the
primary ones, ``OUT/summary.md`` (the README's tables) and ``OUT/selection.json`` (what dev chose).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from vitnas.bench import load_benchmark
from vitnas.bench.correlate import Scoreboard, ScoreboardConfig, correlate
from vitnas.bench.report import markdown_table, plot_scatter, plot_tau
from vitnas.proxies.vintk import VARIANTS_V2
from vitnas.store import ScoreStore

PRIMARY = "c100_kd_acc"
LABELS = ("c100_kd_acc", "c100_base_acc", "flower_kd_acc", "flower_base_acc", "chaoyang_kd_acc",
          "chaoyang_base_acc", "imagenet_super_acc")
AUTOFORMER, PIT = "vit-bench-101-autoformer", "vit-bench-101-pit"
BATCH_SIZE = 16

CHEAP = ("nwot", "dss", "synflow", "zen", "snip", "grad_norm", "jacov", "l2_norm", "fisher",
         "grasp", "linear_regions")
PEERS = ("autoprox", "token_entropy", "token_entropy:estimator=spectral", "swap:unit=channel",
         "lswag", "meco:opt_channels=8", "meco:layout=tokens,layers=all", "zico",
         "aznas_trainability", "aznas_expressivity", "aznas_progressivity", "aznas_complexity")
# ntk_trace's NASI default (multi-output, ~5 min per architecture here) is left out: the
# logit-sum trace stands for it
NTK = ("ntk_cond", "ntk_cond:params=all", "ntk_trace:outputs=scalar", "ntk_eigen",
       "ntk_frobenius", "ntk_regression", "lga", "lga:params=all")
ENSEMBLES = ("ens:nwot+params", "ens:nwot+flops", "ens:vintk+params", "ens:dss+params",
             "ens:token_entropy+params", "ens:zen+params",
             "logrank:aznas_trainability+aznas_expressivity+aznas_complexity",
             "logrank:aznas_trainability+aznas_expressivity+aznas_progressivity"
             "+aznas_complexity")
# AutoFormer (where dev chooses) gets the whole ViNTK grid and ntk_mgm; PiT (a claim) gets the
# rest, the size-aware V2 variants that need no pixel encoding, and whatever dev chose
DEFAULT_PROXIES = (*CHEAP, *PEERS, *NTK, "ntk_mgm", "vintk-variants", *ENSEMBLES)
PIT_PROXIES = (*CHEAP, *PEERS, *NTK, "vintk", "vintk:mode=joint,combine=sum",
               *(v for v in VARIANTS_V2 if "encode=pixel" not in v),
               *(e for e in ENSEMBLES if "vintk" not in e), "ens:vintk+params")
SMOKE_PROXIES = ("nwot", "synflow", "ens:nwot+params")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default="runs/vb101.sqlite", help="score store (a cache)")
    p.add_argument("--out", default="results/vitbench101")
    p.add_argument("--proxies", default=",".join(DEFAULT_PROXIES),
                   help="scored and judged on AutoFormer (dev chooses among these)")
    p.add_argument("--pit-proxies", default=",".join(PIT_PROXIES),
                   help="scored and judged on PiT, plus what dev chose")
    p.add_argument("--workers", type=int, default=1, help="scoring processes (1 thread each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the driver")
    p.add_argument("--labels", default=",".join(LABELS))
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--smoke", action="store_true",
                   help="3 proxies, 12 architectures per benchmark, 50 resamples (CI-sized)")
    return p.parse_args(argv)


def board_path(out: Path, bench: str, label: str, split: str) -> Path:
    return out / f"{bench.replace('vit-bench-101-', '')}_{label}_{split}.json"


def write_board(board: Scoreboard, path: Path, command: str, plots: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**board.as_dict(), "command": command}, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown_table(board) + "\n")
    if plots:
        plot_scatter(board, path.with_name(path.stem + "_scatter.png"))
        plot_tau(board, path.with_name(path.stem + "_tau.png"))


def best_row(board: Scoreboard, keep) -> str | None:
    rows = [r for r in board.rows if keep(r.proxy) and math.isfinite(r.kendall)]
    return max(rows, key=lambda r: r.kendall).proxy if rows else None


def fmt_tau(board: Scoreboard | None, proxy: str, ci: bool = False, delta: bool = False) -> str:
    if board is None:
        return "-"
    try:
        row = board.row(proxy)
    except Exception:
        return "-"
    value, interval = ((row.delta_kendall, row.delta_kendall_ci) if delta
                       else (row.kendall, row.kendall_ci))
    if not math.isfinite(value):
        return f"n/a ({row.failed} failed)" if row.failed else "n/a"
    text = f"{value:+.3f}" if delta else f"{value:.3f}"
    if ci and all(math.isfinite(v) for v in interval):
        text += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
    return text


def summary(boards: dict, selection: dict, labels: list[str], command: str, wall: float) -> str:
    dev = boards[(AUTOFORMER, PRIMARY, "dev")]
    test = boards[(AUTOFORMER, PRIMARY, "test")]
    pit_kd = boards.get((PIT, PRIMARY, "all"))
    pit_base = boards.get((PIT, "c100_base_acc", "all"))
    order = sorted((r.proxy for r in dev.rows),
                   key=lambda p: -dev.row(p).kendall if math.isfinite(dev.row(p).kendall) else 9)
    lines = [f"# ViT-Bench-101 scoreboard\n\n`{command}` ({wall / 60:.1f} min wall, this run)\n",
             f"Chosen on the AutoFormer dev half ({dev.n} architectures, {PRIMARY}): recommended "
             f"search default **{selection['default']}**, best ViNTK variant "
             f"**{selection['vintk']}**.\n",
             "## Primary label (CIFAR-100 KD): dev (chooses), test and PiT (claims)\n",
             f"| proxy | AF dev ({dev.n}) | AF test ({test.n}) [95% CI] | AF test tau - "
             "tau(params) [paired CI] | AF test tau in params quintiles | AF test partial tau | "
             "AF test regret (points) | PiT C100 KD [CI] | PiT KD - params | PiT C100 base | "
             "PiT base - params | s/arch |",
             "|" + "---|" * 12]
    for proxy in order:
        t = test.row(proxy)
        name = f"**{proxy}**" if proxy in ("params", "flops") else proxy
        lines.append(
            f"| {name} | {fmt_tau(dev, proxy)} | {fmt_tau(test, proxy, ci=True)} | "
            f"{fmt_tau(test, proxy, ci=True, delta=True)} | "
            f"{t.within_strata_kendall:.3f} | {t.partial_kendall:.3f} | {t.regret:.2f} | "
            f"{fmt_tau(pit_kd, proxy, ci=True)} | {fmt_tau(pit_kd, proxy, delta=True)} | "
            f"{fmt_tau(pit_base, proxy)} | {fmt_tau(pit_base, proxy, delta=True)} | "
            f"{t.seconds:.2f} |")
    lines.append(f"| random pick | - | - | - | - | - | {test.random_regret:.2f} | - | - | - | - "
                 f"| - |")
    headline = [p for p in ("params", "flops", selection["default"], selection["vintk"], "vintk")
                if p and p in order]
    headline += [p for p in order[:6] if p not in headline]
    lines += ["\n## Every label: Kendall tau on the AutoFormer test half and on PiT (all 100)\n",
              "| proxy | " + " | ".join(f"AF {lab}" for lab in labels) + " | "
              + " | ".join(f"PiT {lab}" for lab in labels if lab != "imagenet_super_acc")
              + " |", "|" + "---|" * (1 + 2 * len(labels) - ("imagenet_super_acc" in labels))]
    for proxy in dict.fromkeys(headline):
        cells = [fmt_tau(boards.get((AUTOFORMER, lab, "test")), proxy) for lab in labels]
        cells += [fmt_tau(boards.get((PIT, lab, "all")), proxy) for lab in labels
                  if lab != "imagenet_super_acc"]
        lines.append(f"| {proxy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    command = "python benchmarks/vitbench101_scoreboard.py " + " ".join(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    proxies = SMOKE_PROXIES if args.smoke else tuple(args.proxies.split(","))
    labels = [label for label in args.labels.split(",") if label]
    resamples = 50 if args.smoke else args.resamples
    out = Path(args.out)
    start = time.perf_counter()
    boards: dict[tuple[str, str, str], Scoreboard] = {}

    def judge_everywhere(name: str, splits: tuple[str, ...], specs: tuple[str, ...]) -> None:
        bench = load_benchmark(name, n=12 if args.smoke else None)
        # one scoring pass over every architecture; the splits and labels below are cached
        first = ScoreboardConfig(proxies=specs, metric=PRIMARY, batch_size=BATCH_SIZE,
                                 split="all", resamples=0)
        correlate(bench, first, store, workers=args.workers)
        print(f"{name}: scored ({time.perf_counter() - start:.0f} s so far)", flush=True)
        for label in labels:
            if label not in bench.metrics():
                continue
            for split in splits:
                config = ScoreboardConfig(proxies=specs, metric=label, batch_size=BATCH_SIZE,
                                          split=split, resamples=resamples)
                board = correlate(bench, config, store)
                boards[(name, label, split)] = board
                primary = label == PRIMARY or (name == PIT and label == "c100_base_acc")
                write_board(board, board_path(out, name, label, split), command, primary)

    with ScoreStore(args.db) as store:
        judge_everywhere(AUTOFORMER, ("dev", "test"), proxies)
        dev = boards[(AUTOFORMER, PRIMARY, "dev")]
        selection = {
            "rule": f"highest Kendall tau on the {AUTOFORMER} dev half, label {PRIMARY}",
            "default": best_row(dev, lambda p: p not in ("params", "flops")),
            "vintk": best_row(dev, lambda p: p.split(":")[0] == "vintk"),
            "command": command,
        }
        pit = SMOKE_PROXIES if args.smoke else tuple(args.pit_proxies.split(","))
        chosen = tuple(p for p in (selection["default"], selection["vintk"]) if p)
        judge_everywhere(PIT, ("all",), tuple(dict.fromkeys((*pit, *chosen))))
    for key in ("default", "vintk"):
        proxy = selection[key]
        if proxy is None:
            continue
        selection[f"{key}_numbers"] = {
            f"{b}/{lab}/{s}": {"tau": board.row(proxy).kendall,
                               "delta_vs_params": board.row(proxy).delta_kendall,
                               "delta_ci": board.row(proxy).delta_kendall_ci}
            for (b, lab, s), board in boards.items() if lab in (PRIMARY, "c100_base_acc")}
    wall = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps(selection, indent=1) + "\n")
    (out / "summary.md").write_text(summary(boards, selection, labels, command, wall))
    print((out / "summary.md").read_text())
    print(f"wall time {wall:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
