"""The search report: ``report.md`` with two plots, ``result.json`` (every evaluation) and
``best.json`` (the architecture alone, ready for ``vitnas train``)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from vitnas.formatting import format_count, headless_pyplot, markdown_table
from vitnas.search.driver import SearchResult


def fitness_label(result: SearchResult) -> str:
    if result.ranker is not None:
        return "ranker score"
    if len(result.proxies) == 1:
        return f"{result.proxies[0]} score"
    return f"rank sum of {len(result.proxies)} proxies"


def progress_text(result: SearchResult) -> str | None:
    """Did evolution improve on its random start? (None for random search or one generation.)
    The evidence a user needs before trusting a budget: a search whose best came from
    generation 0 was a random search."""
    if result.config.algorithm != "evolution":
        return None
    best: dict[int, float] = {}
    for evaluation, value in zip(result.evaluations, result.fitness):
        if math.isfinite(value):
            generation = evaluation.candidate.generation
            best[generation] = max(best.get(generation, -math.inf), value)
    if len(best) < 2 or 0 not in best:
        return None
    start, final = best[0], max(best.values())
    found = min(g for g, v in best.items() if v == final)
    text = (f"the random start (generation 0) reached {fitness_label(result)} {start:.6g}; "
            f"the best, {final:.6g}, came in generation {found} of {max(best)}")
    if found == 0:
        text += ": no improvement on the random start (raise --budget or lower --population)"
    return text


def plot_best_per_generation(result: SearchResult, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    plt = headless_pyplot()

    by_generation: dict[int, list[float]] = {}
    for evaluation, value in zip(result.evaluations, result.fitness):
        if math.isfinite(value):
            by_generation.setdefault(evaluation.candidate.generation, []).append(value)
    generations = sorted(by_generation)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(generations, [statistics.median(by_generation[g]) for g in generations], "o",
            color="0.6", markersize=3, label="median of the generation")
    ax.plot(generations, [max(by_generation[g]) for g in generations], "^", color="tab:blue",
            markersize=4, label="best of the generation")
    ax.plot(sorted(set(e.candidate.generation for e in result.evaluations)),
            result.best_per_generation(), "-", color="tab:red", label="best so far")
    ax.set_xlabel("generation" if result.config.algorithm == "evolution"
                  else f"batch of {result.config.population}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(fitness_label(result))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_population(result: SearchResult, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    plt = headless_pyplot()

    points = [(e.candidate.params / 1e6, f, e.candidate.generation)
              for e, f in zip(result.evaluations, result.fitness) if math.isfinite(f)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if points:
        x, y, generation = zip(*points)
        scatter = ax.scatter(x, y, c=generation, cmap="viridis", s=10, alpha=0.8)
        fig.colorbar(scatter, ax=ax, label="generation", ticks=MaxNLocator(integer=True))
    fitness_of = {e.index: f for e, f in zip(result.evaluations, result.fitness)}
    front = [(e.candidate.params / 1e6, fitness_of[e.index]) for e in result.pareto_front
             if math.isfinite(fitness_of[e.index])]
    if front:
        ax.scatter(*zip(*front), facecolors="none", edgecolors="tab:red", s=40,
                   label="Pareto front")
    if result.best is not None:
        ax.scatter([result.best.candidate.params / 1e6], [fitness_of[result.best.index]],
                   marker="*", color="tab:red", s=200, label="chosen")
    window = result.config.constraints.params
    for end in (window.low, window.high):
        if end is not None:
            ax.axvline(end / 1e6, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(fitness_label(result))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _number(value: float | None) -> str:
    return "failed" if value is None else f"{value:.6g}"


def _score_text(scores: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {_number(value)}" for name, value in scores.items())


def markdown(result: SearchResult, data: dict[str, Any]) -> str:
    config, counts, timings = result.config, data["counts"], result.timings
    best = data["best"]
    infeasible = sum(counts["infeasible"].values())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["infeasible"].items())) or "none"
    per_evaluation = timings["evaluate"] / result.computed if result.computed else 0.0
    lines = [f"# vitnas search: {result.space.name}, {config.algorithm}, "
             f"{', '.join(result.proxies)}", ""]
    if not result.complete:
        lines += [f"**Partial (shard {result.execution['shard']}):** {result.pending} "
                  "candidates are scored by other shards; merge the stores and run again.", ""]
    if result.stopped:
        lines += [f"**Stopped early:** {result.stopped}.", ""]
    if best is not None:
        lines += [
            f"Chosen architecture: {format_count(best['params'])} params, "
            f"{format_count(best['flops'])} FLOPs; {_score_text(best['scores'])}.", "",
            "```json", json.dumps(best["arch"]), "```", ""]
    if result.ranker is not None:
        r = result.ranker
        lines += [f"Objective: the ranker `{r['file'] or 'given in Python'}` (`vitnas "
                  f"calibrate`: {r['metric']} of {r['benchmark']}, k = {r['k']}; "
                  f"{r['chosen']} model, leave-one-out tau "
                  f"prior {r['loo_tau_prior']:.3f}, fitted {r['loo_tau_fitted']:.3f}) over its "
                  f"features {', '.join(r['features'])}; fitness is its score.", ""]
    progress = progress_text(result)
    if progress:
        lines += [f"Progress: {progress}.", ""]
    lines += ["## Search", "", markdown_table([
        {"setting": "constraints", "value": f"params {config.constraints.params}, "
                                            f"FLOPs {config.constraints.flops}, latency (ms) "
                                            f"{config.constraints.latency_ms}"},
        {"setting": "proxies / aggregate", "value": f"{', '.join(result.proxies)} / "
                                                    f"{config.aggregate}"},
        {"setting": "budget / evaluated", "value": f"{config.budget} / {counts['evaluated']}"},
        {"setting": "computed / reused from the store",
         "value": f"{counts['computed']} / {counts['reused']}"},
        {"setting": "infeasible draws (rejected before scoring)",
         "value": f"{infeasible} ({reasons})"},
        {"setting": "duplicate draws (rejected)", "value": counts["duplicates"]},
        {"setting": "random draws inside the window",
         "value": f"{100 * counts['feasible_fraction']:.1f}%"},
        {"setting": "proxy batch", "value": f"{config.batch_size} x {config.dataset}, "
                                            f"seed {config.seed}"},
        {"setting": "execution", "value": f"{result.execution['backend']}, "
                                          f"{result.execution['workers']} worker(s) x "
                                          f"{result.execution['threads_per_worker']} thread(s)"},
    ], ["setting", "value"]), ""]
    lines += ["## Time per stage", "", markdown_table([
        {"stage": "setup (batch, window probe, backend)", "seconds": f"{timings['setup']:.2f}"},
        {"stage": "draw candidates and check constraints", "seconds": f"{timings['draw']:.2f}"},
        {"stage": "store I/O (look-ups and commits)", "seconds": f"{timings['store']:.2f}"},
        {"stage": "build models (summed over workers)", "seconds": f"{timings['build']:.2f}"},
        {"stage": "proxies (summed over workers)", "seconds": f"{timings['proxy']:.2f}"},
        {"stage": "scoring wall time", "seconds": f"{timings['evaluate']:.2f}"},
        {"stage": "total", "seconds": f"{timings['total']:.2f}"},
    ], ["stage", "seconds"]),
        "", f"Scoring wall time per computed evaluation: {per_evaluation:.3f} s.", ""]
    lines += ["## Plots", "", "![best score per generation](best_per_generation.png)", "",
              "![population in proxy-vs-params space](population.png)", ""]
    if best is not None:
        lines += ["## Chosen architecture, layer by layer", "", markdown_table(
            [{"layer": r["name"], "detail": r["detail"], "params": f"{r['params']:,}",
              "FLOPs": format_count(r["flops"])} for r in best["layers"]]
            + [{"layer": "total", "params": f"{best['params']:,}",
                "FLOPs": format_count(best["flops"])}],
            ["layer", "detail", "params", "FLOPs"]), ""]
    front = data["pareto_front"]
    if front:
        lines += [f"## Pareto front (proxies up, params and FLOPs down): {len(front)} "
                  "architectures", "", markdown_table(
                      [{"params": format_count(e["params"]), "FLOPs": format_count(e["flops"]),
                        "scores": _score_text(e["scores"]), "fitness": _number(e["fitness"]),
                        "arch": f"`{json.dumps(e['arch'])}`"} for e in front[:30]],
                      ["params", "FLOPs", "scores", "fitness", "arch"]), ""]
        if len(front) > 30:
            lines += [f"({len(front) - 30} more in result.json.)", ""]
    return "\n".join(lines)


def write_report(result: SearchResult, out_dir: str | Path) -> Path:
    """Write the report files into ``out_dir`` (created); returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.as_dict()
    (out / "result.json").write_text(json.dumps(data, indent=1) + "\n")
    if result.best is not None:
        (out / "best.json").write_text(json.dumps(result.best_arch) + "\n")
    plot_best_per_generation(result, out / "best_per_generation.png")
    plot_population(result, out / "population.png")
    path = out / "report.md"
    path.write_text(markdown(result, data))
    return path
