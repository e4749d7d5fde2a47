"""Scoreboard output: the text table and the two PNGs (score-vs-accuracy scatter per proxy; Kendall
tau with its bootstrap interval per proxy, baselines highlighted)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vitnas.bench.correlate import BASELINES, Scoreboard


def _fmt(value: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{digits}f}"


def _ci(interval: tuple[float, float]) -> str:
    return f"[{_fmt(interval[0], 2)}, {_fmt(interval[1], 2)}]"


def table_rows(board: Scoreboard) -> list[dict[str, str]]:
    """One row per proxy, sorted by Kendall tau (non-finite last)."""
    ordered = sorted(board.rows, key=lambda r: -r.kendall if math.isfinite(r.kendall) else 9)
    level = int(round(board.config["level"] * 100))
    top = int(round(board.config["top_fraction"] * 100))
    return [{
        "proxy": r.proxy,
        "tau": _fmt(r.kendall),
        f"tau {level}% CI": _ci(r.kendall_ci),
        "rho": _fmt(r.spearman),
        f"rho {level}% CI": _ci(r.spearman_ci),
        "pearson": _fmt(r.pearson),
        f"top-{top}%": _fmt(r.top_precision, 2),
        "s/arch": _fmt(r.seconds, 3),
        "failed": str(r.failed),
    } for r in ordered]


def markdown_table(board: Scoreboard) -> str:
    rows = table_rows(board)
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"**{row[c]}**" if c == "proxy" and row[c] in BASELINES else row[c]
                 for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_scatter(board: Scoreboard, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = board.rows
    cols = 6
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(3 * cols, 2.6 * lines), squeeze=False)
    accuracy = np.array(board.accuracy)
    for ax, row in zip(axes.flat, rows):
        score = np.array(board.scores[row.proxy])
        finite = np.isfinite(score)
        ax.scatter(score[finite], accuracy[finite], s=8,
                   color="tab:gray" if row.proxy in BASELINES else "tab:blue")
        ax.set_title(f"{row.proxy}\ntau={_fmt(row.kendall, 2)}", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"{board.benchmark} ({board.space}), {board.metric}, split {board.split}, "
                 f"n={board.n}: proxy score (x) vs accuracy (y)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tau(board: Scoreboard, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted([r for r in board.rows if math.isfinite(r.kendall)], key=lambda r: r.kendall)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    tau = np.array([r.kendall for r in rows])
    low = np.array([r.kendall_ci[0] for r in rows])
    high = np.array([r.kendall_ci[1] for r in rows])
    colours = ["tab:gray" if r.proxy in BASELINES else
               "tab:orange" if r.proxy.startswith("vintk") else "tab:blue" for r in rows]
    ax.barh(y, tau, color=colours,
            xerr=np.vstack([np.nan_to_num(tau - low), np.nan_to_num(high - tau)]), capsize=2)
    ax.set_yticks(y, [r.proxy for r in rows], fontsize=7)
    ax.axvline(0, color="black", linewidth=0.6)
    for baseline in BASELINES:
        match = [r.kendall for r in rows if r.proxy == baseline]
        if match:
            ax.axvline(match[0], color="tab:gray", linestyle="--", linewidth=0.8)
    level = int(round(board.config["level"] * 100))
    ax.set_xlabel(f"Kendall tau-b vs {board.metric} ({level}% bootstrap CI)")
    ax.set_title(f"{board.benchmark}, split {board.split}, n={board.n} "
                 "(grey: params/FLOPs, orange: ViNTK)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
