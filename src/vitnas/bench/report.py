"""Scoreboard output: the text table and the two PNGs (score-vs-accuracy scatter per proxy; Kendall
tau with its bootstrap interval per proxy beside its gain over #params with the paired interval,
baselines highlighted). The table adds what a proxy knows beyond size and shape: tau within params
strata, partial tau given params, the budget regret, tau against the board's shape baseline,
partial tau given (#params, depth, width), tau within each depth, and a random-pick reference
row for the regret."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vitnas.bench.correlate import BASELINES, Scoreboard
from vitnas.bench.stats import rankdata
from vitnas.errors import ConfigError
from vitnas.formatting import headless_pyplot
from vitnas.formatting import markdown_table as format_markdown


def _fmt(value: float, digits: int = 3) -> str:
    """A statistic, or "-" where it is undefined (the partial tau of params given params, a
    shape row given the shape it is part of): a table never prints NaN, nor 300 digits (a
    regret in the units of huge labels)."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"


def _ci(interval: tuple[float, float], missing: str = "-") -> str:
    """``[low, high]``; ``missing`` where there is no interval (``--resamples 0``, too few
    architectures): never a NaN interval."""
    if not all(math.isfinite(v) for v in interval):
        return missing
    return f"[{_fmt(interval[0], 2)}, {_fmt(interval[1], 2)}]"


RANDOM = "random pick"


def table_rows(board: Scoreboard) -> list[dict[str, str]]:
    """One row per proxy, sorted by Kendall tau (non-finite last), then the random pick's regret
    (the reference a proxy's regret must beat)."""
    ordered = sorted(board.rows, key=lambda r: -r.kendall if math.isfinite(r.kendall) else 9)
    level = int(round(board.config["level"] * 100))
    top = f"{board.config['top_fraction'] * 100:.3g}"  # 10, 2.5 or 1e-07, never a false 0
    strata = board.config.get("strata", 5)
    window = int(round(board.config.get("regret_window", 0.2) * 100))
    shape = board.shape_baseline or "shape"
    rows = [{
        "proxy": r.proxy,
        "tau": _fmt(r.kendall),
        f"tau {level}% CI": _ci(r.kendall_ci),
        "rho": _fmt(r.spearman),
        f"rho {level}% CI": _ci(r.spearman_ci),
        "pearson": _fmt(r.pearson),
        f"top-{top}%": _fmt(r.top_precision, 2),
        f"tau in {strata} params strata": _fmt(r.within_strata_kendall),
        "partial tau given params": _fmt(r.partial_kendall),
        f"regret ({window}% windows)": _fmt(r.regret, 2),
        f"tau - tau(params) [{level}% paired CI]": f"{_fmt(r.delta_kendall)} "
                                                   f"{_ci(r.delta_kendall_ci, '')}".strip(),
        f"tau - tau({shape}) [{level}% paired CI]": f"{_fmt(r.delta_shape_kendall)} "
                                                    f"{_ci(r.delta_shape_kendall_ci, '')}".strip(),
        "partial tau given shape": _fmt(r.partial_kendall_shape),
        "tau within depth": _fmt(r.within_depth_kendall),
        "s/arch": _fmt(r.seconds, 3),
        "failed": str(r.failed),
    } for r in ordered]
    if math.isfinite(board.random_regret):
        reference = dict.fromkeys(rows[0], "-")
        reference["proxy"] = RANDOM
        reference[f"regret ({window}% windows)"] = _fmt(board.random_regret, 2)
        rows.append(reference)
    return rows


def markdown_table(board: Scoreboard) -> str:
    rows = [{**row, "proxy": f"**{row['proxy']}**"} if row["proxy"] in (*BASELINES, RANDOM)
            else row for row in table_rows(board)]
    lines = [format_markdown(rows, list(rows[0]))]
    if board.shape_baseline:
        lines.append(f"\nShape baseline: {board.shape_baseline} ({board.shape_baseline_rule}); "
                     "partial tau given shape: Kendall tau of the residual ranks after both are "
                     "regressed on the ranks of (#params, depth, width); a curved shape count "
                     "(logsize, depth>params) keeps a small residual of its own.")
    if board.reliability:
        lines.append("\n" + reliability_line(board))
    lines += [f"\nNote: {caveat}." for caveat in board.caveats()]
    return "\n".join(lines)


def reliability_line(board: Scoreboard) -> str:
    """One sentence on how far the ground truth can rank anything: the seed-vs-seed tau with
    its interval and the noise ceiling, and "at noise" when the tau is below
    ``noise.AT_NOISE`` (then no tau difference on this board means a proxy is better)."""
    from vitnas.bench.noise import AT_NOISE

    r = board.reliability or {}
    level = int(round(board.config.get("level", 0.95) * 100))
    interval = _ci(tuple(r.get("seed_kendall_ci") or (math.nan, math.nan)), "")
    line = (f"Reliability: seed-vs-seed Kendall tau {_fmt(_number(r.get('seed_kendall')))}"
            + (f" [{level}% CI {interval[1:-1]}]" if interval else "")
            + f" on {r.get('pairs', 0)} architectures trained twice; noise ceiling (a perfect "
            f"proxy's expected tau) {_fmt(_number(r.get('ceiling')))}.")
    if board.at_noise:
        line += (f" **At noise**: below {AT_NOISE:g} two trainings disagree too often for "
                 "this board to tell proxies apart.")
    return line


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def score_axis(score: np.ndarray) -> tuple[np.ndarray, str]:
    """How to show finite scores on an x axis: ``linear``; ``log`` for positive scores spanning
    more than three decades (synflow reaches 1e44); ``rank`` when a few outliers would squeeze
    the rest into one pixel column (the rank is what Kendall tau sees anyway)."""
    score = np.asarray(score, dtype=float)
    low, high = score.min(), score.max()
    if max(abs(low), abs(high)) >= HUGE:  # no matplotlib axis spans it
        return rankdata(score), "rank"
    if low > 0 and high / low > 1e3:
        return score, "log"
    q1, q3 = np.percentile(score, [25, 75])
    if high - low > 20 * (q3 - q1):
        return rankdata(score), "rank"
    return score, "linear"


HUGE = 1e100  # matplotlib's linear axis overflows on values near the float limit


def plot_units(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Values a linear axis can draw, and the factor to name on it: labels of 1e308 are drawn
    as 1.0 "x 1e308" (matplotlib's tick search overflows on the raw numbers)."""
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if len(finite) else 0.0
    if largest < HUGE:
        return values, ""
    exponent = math.floor(math.log10(largest))
    return values / 10.0**exponent, f" x 1e{exponent}"


def plot_scatter(board: Scoreboard, path: str | Path) -> None:
    # labels or scores near the float limit (1e308) overflow inside matplotlib's tick
    # formatting and in score_axis' spreads; the points drawn are the same without the warning
    with np.errstate(over="ignore", invalid="ignore"):
        _plot_scatter(board, path)


def _plot_scatter(board: Scoreboard, path: str | Path) -> None:
    plt = headless_pyplot()

    rows = board.rows
    cols = 6
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(3 * cols, 2.6 * lines), squeeze=False)
    accuracy, unit = plot_units(np.array(board.accuracy, dtype=float))
    for ax, row in zip(axes.flat, rows):
        score = np.array(board.scores[row.proxy])
        finite = np.isfinite(score)
        ax.set_title(f"{row.proxy}\ntau={_fmt(row.kendall, 2)}", fontsize=7)
        ax.tick_params(labelsize=6)
        if len(np.unique(score[finite])) < 2:  # one point says nothing: say why instead
            ax.text(0.5, 0.5, "no finite scores" if not finite.any() else "constant score",
                    ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_xticks([])
            continue
        x, axis = score_axis(score[finite])
        ax.scatter(x, accuracy[finite], s=8,
                   color="tab:gray" if row.proxy in BASELINES else "tab:blue")
        if axis == "log":
            ax.set_xscale("log")
        elif axis == "rank":
            ax.set_xlabel("score rank (heavy-tailed)", fontsize=6)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"{board.benchmark} ({board.space}), {board.metric}, split {board.split}, "
                 f"n={board.n}: proxy score (x) vs accuracy (y{unit})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tau(board: Scoreboard, path: str | Path) -> None:
    plt = headless_pyplot()

    rows = sorted([r for r in board.rows if math.isfinite(r.kendall)], key=lambda r: r.kendall)
    with_delta = any(math.isfinite(r.delta_kendall) for r in rows)
    fig, axes = plt.subplots(1, 2 if with_delta else 1, sharey=True, squeeze=False,
                             figsize=(11 if with_delta else 7, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    colours = ["tab:gray" if r.proxy in BASELINES else
               "tab:green" if r.proxy.startswith("ens:") else
               "tab:orange" if r.proxy.startswith("vintk") else "tab:blue" for r in rows]
    level = int(round(board.config["level"] * 100))
    panels = [("kendall", f"Kendall tau-b vs {board.metric} ({level}% bootstrap CI)")]
    if with_delta:
        panels.append(("delta_kendall", f"tau - tau(params) ({level}% paired bootstrap CI)"))
    for ax, (name, label) in zip(axes[0], panels):
        value = np.array([getattr(r, name) for r in rows])
        low = np.array([getattr(r, name + "_ci")[0] for r in rows])
        high = np.array([getattr(r, name + "_ci")[1] for r in rows])
        ax.barh(y, np.nan_to_num(value), color=colours)
        # a percentile interval need not contain its estimate, so it is drawn from low to
        # high (an error bar around the value cannot show that)
        shown = np.isfinite(low) & np.isfinite(high)
        ax.hlines(y[shown], low[shown], high[shown], color="black", linewidth=0.8)
        ax.plot(np.r_[low[shown], high[shown]], np.r_[y[shown], y[shown]], "|", color="black",
                markersize=4)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel(label, fontsize=8)
    ax = axes[0][0]
    ax.set_yticks(y, [r.proxy for r in rows], fontsize=7)
    for baseline in BASELINES:
        match = [r.kendall for r in rows if r.proxy == baseline]
        if match:
            ax.axvline(match[0], color="tab:gray", linestyle="--", linewidth=0.8)
    fig.suptitle(f"{board.benchmark}, split {board.split}, n={board.n} "
                 "(grey: params/FLOPs, orange: ViNTK, green: ensembles)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scoreboard_paths(out: str | Path) -> tuple[Path, Path, Path, Path]:
    """The files ``write_scoreboard`` writes for ``out``: the JSON, the ``.md`` table and the
    ``_scatter`` / ``_tau`` PNGs; refused when one would overwrite another."""
    out = Path(out)
    paths = (out, out.with_suffix(".md"), out.with_name(out.stem + "_scatter.png"),
             out.with_name(out.stem + "_tau.png"))
    if len(set(paths)) < len(paths):
        raise ConfigError(f"--out {out}: its .md table would overwrite it; name a .json file")
    return paths


def write_scoreboard(board: Scoreboard, out: str | Path, command: str | None = None) -> Path:
    """``out`` (JSON with the command that made it), beside it ``.md`` (the table) and the
    ``_scatter`` / ``_tau`` PNGs."""
    import json

    out, table, scatter, taus = scoreboard_paths(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**board.as_dict(), "command": command}, indent=1) + "\n")
    table.write_text(markdown_table(board) + "\n")
    plot_scatter(board, scatter)
    plot_tau(board, taus)
    return out
