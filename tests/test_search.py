import math
from dataclasses import dataclass

import numpy as np
import pytest
from torch import nn

from vitnas.errors import ConfigError
from vitnas.flops import LayerCost, linear_cost
from vitnas.search import (
    Constraints,
    EvolutionConfig,
    SearchConfig,
    Window,
    measure_latency_ms,
    parse_shard,
    parse_window,
    run_search,
)
from vitnas.search.aggregate import pareto_front, pareto_objectives, rank_sum, selection_order
from vitnas.search.constraints import Feasibility
from vitnas.search.report import write_report
from vitnas.spaces.base import SearchSpace, as_rng, build_seeded
from vitnas.store import ScoreStore


@dataclass(frozen=True)
class ToyArch:
    width: int


class ToySpace(SearchSpace):
    """Twelve one-hidden-layer MLPs: small enough to exhaust, cheap enough to score at once."""

    name = "toy"
    default_img_size = 4
    default_num_classes = 2
    widths = tuple(range(1, 13))

    def sample(self, seed=None):
        return ToyArch(as_rng(seed).choice(self.widths))

    def mutate(self, arch, seed=None, **rates):
        step = as_rng(seed).choice((-1, 1))
        return ToyArch(min(max(arch.width + step, 1), 12))

    def crossover(self, a, b, seed=None):
        return ToyArch(as_rng(seed).choice((a.width, b.width)))

    def from_json(self, obj):
        return ToyArch(int(obj["width"]))

    def to_json(self, arch):
        return {"width": arch.width}

    def layer_costs(self, arch):
        inputs = self.in_chans * self.img_size**2
        return [LayerCost("hidden", f"{inputs}->{arch.width}", *linear_cost(1, inputs, arch.width)),
                LayerCost("head", f"{arch.width}->2", *linear_cost(1, arch.width, 2))]

    def build(self, arch, seed=0):
        inputs = self.in_chans * self.img_size**2
        return build_seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(inputs, arch.width),
                                                  nn.ReLU(), nn.Linear(arch.width, 2)), seed)

    def choices(self):
        return {"width": list(self.widths)}

    def size(self):
        return len(self.widths)


def toy_config(**changes) -> SearchConfig:
    settings = dict(proxies=("params",), budget=8, population=4, dataset="gaussian",
                    batch_size=4, evolution=EvolutionConfig(parents=2, mutations=1, crossovers=1))
    return SearchConfig(**{**settings, **changes})


MICRO_WINDOW = Constraints(params=parse_window("0.4M:0.5M", "params"))


def micro_config(**changes) -> SearchConfig:
    settings = dict(proxies=("nwot",), budget=12, population=6, dataset="gaussian", batch_size=4,
                    constraints=MICRO_WINDOW,
                    evolution=EvolutionConfig(parents=2, mutations=2, crossovers=2))
    return SearchConfig(**{**settings, **changes})


def trajectory(result):
    return [(e.candidate.key, e.candidate.origin, e.scores) for e in result.evaluations]


# --- windows, shards, aggregation --------------------------------------------------------------
@pytest.mark.parametrize("text, low, high", [
    ("5M:6M", 5e6, 6e6), ("5m:", 5e6, None), (":1.5G", None, 1.5e9), ("300K:3e6", 3e5, 3e6),
])
def test_parse_window_reads_units_and_open_ends(text, low, high):
    assert parse_window(text, "params") == Window(low, high)
    assert parse_window(None, "params").unbounded


@pytest.mark.parametrize("text, message", [
    ("5M:abc", "'abc' is not a number"), ("5M", "must look like LOW:HIGH"), ("6M:5M", "is empty"),
])
def test_parse_window_rejects_bad_text(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_window(text, "params")


def test_a_window_holds_both_of_its_ends():
    # "5M:6M" is a closed interval: an architecture of exactly 5M or 6M params is inside
    window = parse_window("5M:6M", "params")
    assert 5e6 in window and 6e6 in window
    assert 4999999 not in window and 6000001 not in window


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("3/2", "2/2", "a/b", "2"):
        with pytest.raises(ConfigError, match="must be i/n"):
            parse_shard(bad)


def test_rank_sum_adds_per_proxy_ranks_and_ranks_nan_last():
    scores = np.array([[3.0, 10.0], [1.0, 30.0], [2.0, math.nan]])
    assert rank_sum(scores).tolist() == [3 + 2, 1 + 3, 2 + 1]


def test_pareto_front_and_pareto_selection_order():
    objectives = np.array([[1.0, -1.0], [2.0, -2.0], [0.5, -2.0], [2.0, -1.0]])
    assert pareto_front(objectives) == [3]
    scores = np.array([[1.0], [2.0], [0.5], [1.5]])
    params, flops, keys = [2, 2, 0.5, 1], [0, 0, 0, 0], list("abcd")
    # front: b (best score), d (fewer params than b), c (fewest params); a is behind d
    assert selection_order(scores, params, flops, keys, "pareto") == [1, 3, 2, 0]
    assert selection_order(scores, params, flops, keys, "rank") == [1, 3, 0, 2]


def test_a_size_proxy_does_not_make_every_architecture_pareto_optimal():
    params = np.array([1.0, 2.0, 3.0, 4.0])
    flops = np.array([1.0, 3.0, 2.0, 4.0])
    scores = np.column_stack([params, [0.1, 0.9, 0.2, 0.3]])
    # with params "up" against params "down", all four are trade-offs
    assert pareto_front(pareto_objectives(scores, params, flops)) == [0, 1, 2, 3]
    # named, the params column leaves the quality side: d is dominated by b
    front = pareto_front(pareto_objectives(scores, params, flops, ["params", "swap"]))
    assert front == [0, 1, 2]
    only_size = pareto_objectives(scores[:, :1], params, flops, ["params"])
    assert only_size.shape == (4, 2) and pareto_front(only_size) == [0]


# --- constraints -------------------------------------------------------------------------------
def test_feasibility_counts_rejections_by_reason_and_measures_latency_last():
    space = ToySpace()
    measured = []

    def fake_latency(space, arch):
        measured.append(arch.width)
        return float(arch.width)

    window = Constraints(params=Window(high=space.params(ToyArch(8))), latency_ms=Window(high=4))
    feasible = Feasibility(space, window, latency=fake_latency)
    assert [feasible(ToyArch(w)) for w in (2, 6, 10)] == [True, False, False]
    assert feasible.rejected == {"latency": 1, "params": 1} and measured == [2, 6]


@pytest.mark.parametrize("window, message", [
    (Window(high=0.5), "the cheapest of 200 feasible draws"),
    (Window(low=100), "the costliest of 200 feasible draws"),
])
def test_unreachable_latency_window_fails_after_two_measurements(window, message):
    space, measured = ToySpace(), []

    def fake_latency(space, arch):
        measured.append(arch.width)
        return float(arch.width)

    feasible = Feasibility(space, Constraints(latency_ms=window), latency=fake_latency)
    with pytest.raises(ConfigError, match=message):
        feasible.check_reachable(seed=0, probes=200)
    assert measured in ([1], [12])
    reachable = Feasibility(space, Constraints(latency_ms=Window(2, 11)), latency=fake_latency)
    assert reachable.check_reachable(seed=0, probes=200) == 1.0


def test_latency_window_measures_candidates_before_scoring(monkeypatch):
    from vitnas.search import driver

    space, measured = ToySpace(), []
    assert measure_latency_ms(space, ToyArch(3)) > 0

    def fake_latency(space, arch):  # a toy MLP's latency is noise: width stands in for ms
        measured.append(arch.width)
        return float(arch.width)

    class FakeClock(Feasibility):
        def __init__(self, space, constraints):
            super().__init__(space, constraints, latency=fake_latency)

    monkeypatch.setattr(driver, "Feasibility", FakeClock)
    result = run_search(space, toy_config(budget=4, constraints=Constraints(
        latency_ms=Window(high=6))), store=":memory:")
    scored = [e.candidate.arch.width for e in result.evaluations]
    assert len(scored) == 4 and max(scored) <= 6
    assert set(scored) <= set(measured)
    assert result.infeasible["latency"] > 0


def test_window_outside_the_space_fails_early_with_the_sampled_range():
    with pytest.raises(ConfigError, match="no architecture of autoformer-tiny-micro.*sampled"):
        run_search("autoformer-tiny-micro", micro_config(
            constraints=Constraints(params=parse_window("5M:6M", "params"))), store=":memory:")


def test_search_never_scores_or_returns_an_architecture_outside_the_window():
    result = run_search("autoformer-tiny-micro", micro_config(), store=":memory:", threads=1)
    space = result.space
    assert len(result.evaluations) == 12 and result.complete
    assert all(0.4e6 <= e.candidate.params <= 0.5e6 for e in result.evaluations)
    assert MICRO_WINDOW.violations(space, result.best.candidate.arch) == []
    assert result.infeasible["params"] > 0
    assert len({e.candidate.key for e in result.evaluations}) == 12


def test_exhausted_window_stops_early_with_a_reason():
    space = ToySpace()
    window = Constraints(params=Window(high=space.params(ToyArch(5))))
    result = run_search(space, toy_config(budget=20, constraints=window), store=":memory:")
    assert sorted(e.candidate.arch.width for e in result.evaluations) == [1, 2, 3, 4, 5]
    assert result.best.candidate.arch == ToyArch(5)
    assert "no unseen architecture" in result.stopped


# --- determinism, store, workers ---------------------------------------------------------------
def test_same_seed_same_result_and_another_seed_differs():
    config = micro_config(algorithm="random", budget=6)
    first = run_search("autoformer-tiny-micro", config, store=":memory:", threads=1)
    again = run_search("autoformer-tiny-micro", config, store=":memory:", threads=1)
    other = run_search("autoformer-tiny-micro", micro_config(algorithm="random", budget=6, seed=1),
                       store=":memory:", threads=1)
    assert trajectory(first) == trajectory(again)
    assert first.best_arch == again.best_arch
    assert trajectory(first) != trajectory(other)


def test_second_search_reuses_every_score_and_gives_the_same_answer(tmp_path):
    db = tmp_path / "scores.sqlite"
    config = toy_config(proxies=("params", "synflow"), budget=8)
    first = run_search(ToySpace(), config, store=db)
    second = run_search(ToySpace(), config, store=db)
    assert (first.computed, first.reused) == (8, 0)
    assert (second.computed, second.reused) == (0, 8)
    assert trajectory(first) == trajectory(second) and first.best_arch == second.best_arch
    with ScoreStore(db) as store:
        assert len(store) == 16


def test_two_worker_pool_gives_the_same_scores_as_one_worker():
    config = micro_config(budget=8, population=4, evolution=EvolutionConfig(parents=2, mutations=1,
                                                                    crossovers=1))
    serial = run_search("autoformer-tiny-micro", config, store=":memory:", workers=1, threads=1)
    pooled = run_search("autoformer-tiny-micro", config, store=":memory:", workers=2, threads=1)
    assert trajectory(serial) == trajectory(pooled)
    assert serial.best_arch == pooled.best_arch
    assert pooled.timings["build"] > 0 and pooled.timings["proxy"] > 0


@pytest.mark.parametrize("algorithm", ["random", "evolution"])
def test_shards_merged_round_by_round_reach_the_unsharded_answer(tmp_path, algorithm):
    config = toy_config(algorithm=algorithm, budget=9, population=3,
                        evolution=EvolutionConfig(parents=2, mutations=1, crossovers=1))
    reference = run_search(ToySpace(), config, store=":memory:")
    merged = tmp_path / "merged.sqlite"
    ScoreStore(merged).close()
    for _ in range(10):
        parts = []
        for i in range(2):
            part = tmp_path / f"shard{i}.sqlite"
            part.write_bytes(merged.read_bytes())
            parts.append(run_search(ToySpace(), config, store=part, shard=(i, 2)))
        with ScoreStore(merged) as store:
            for i in range(2):
                store.merge(tmp_path / f"shard{i}.sqlite")
        if all(p.complete for p in parts):
            break
        assert sum(p.pending for p in parts) > 0
    final = run_search(ToySpace(), config, store=merged)
    assert final.computed == 0 and trajectory(final) == trajectory(reference)


# --- algorithms --------------------------------------------------------------------------------
def test_evolution_follows_autoformer_slots_and_beats_its_first_generation():
    space = ToySpace()
    result = run_search(space, toy_config(budget=12, population=4), store=":memory:")
    origins = [(e.candidate.generation, e.candidate.origin) for e in result.evaluations]
    assert origins[:4] == [(0, "random")] * 4
    assert {o for g, o in origins if g > 0} <= {"mutation", "crossover", "random"}
    assert result.best.candidate.arch == ToyArch(12)
    curve = result.best_per_generation()
    assert curve == sorted(curve) and len(curve) == 3
    from vitnas.search.report import progress_text

    text = progress_text(result)
    assert text.startswith("the random start (generation 0) reached params score")
    assert f"came in generation {curve.index(curve[-1])} of 2" in text
    assert ("no improvement on the random start" in text) == (curve[0] == curve[-1])
    assert progress_text(run_search(space, toy_config(budget=4, population=4),
                                    store=":memory:")) is None  # one generation: nothing to say


class MarkedToySpace(ToySpace):
    """Mutants and children carry their origin in their width (1xx, 2xx), so each slot of a
    generation shows which operator filled it and from which parent."""

    def mutate(self, arch, seed=None, **rates):
        return ToyArch(100 + arch.width)

    def crossover(self, a, b, seed=None):
        return ToyArch(200 + a.width)


def test_evolution_fills_the_second_generation_slot_by_slot_from_the_top_parents():
    result = run_search(MarkedToySpace(), toy_config(budget=8, population=4), store=":memory:")
    first = [e.candidate.arch.width for e in result.evaluations if e.candidate.generation == 0]
    second = [(e.candidate.origin, e.candidate.arch.width) for e in result.evaluations
              if e.candidate.generation == 1]
    assert len(first) == 4 and [origin for origin, _ in second] == [
        "mutation", "crossover", "random", "random"]
    parents = sorted(first)[-2:]  # params rank the widest first
    assert second[0][1] - 100 in parents and second[1][1] - 200 in parents
    assert all(width in ToySpace.widths for _, width in second[2:])


def test_rank_aggregate_and_pareto_aggregate_pick_from_the_scored_set():
    space = ToySpace()
    ranked = run_search(space, toy_config(proxies=("params", "synflow")), store=":memory:")
    pareto = run_search(space, toy_config(proxies=("params", "synflow"), aggregate="pareto"),
                        store=":memory:")
    assert max(ranked.fitness) == ranked.fitness[ranked.evaluations.index(ranked.best)]
    assert pareto.best in pareto.pareto_front


def test_random_search_on_nasbench201_scores_distinct_cells():
    space_result = run_search("nasbench201", SearchConfig(
        proxies=("nwot",), algorithm="random", budget=6, population=3, dataset="gaussian",
        batch_size=4), store=":memory:", threads=1)
    keys = [e.candidate.key for e in space_result.evaluations]
    assert len(set(keys)) == 6 and space_result.best is not None


@pytest.mark.parametrize("changes, message", [
    ({"algorithm": "annealing"}, "unknown search algorithm 'annealing'"),
    ({"aggregate": "mean"}, "unknown aggregate 'mean'"),
    ({"proxies": ("nope",)}, "unknown proxy 'nope'"),
    ({"evolution": EvolutionConfig(mutations=3, crossovers=3)}, "exceed the population"),
    ({"budget": 0}, "at least 1"),
])
def test_bad_settings_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        run_search(ToySpace(), toy_config(**changes), store=":memory:")


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backend 'mpi'"):
        run_search(ToySpace(), toy_config(), store=":memory:", backend="mpi")


# --- report ------------------------------------------------------------------------------------
def test_report_has_markdown_plots_result_and_best_architecture(tmp_path):
    result = run_search(ToySpace(), toy_config(proxies=("params", "synflow")), store=":memory:")
    report = write_report(result, tmp_path / "report")
    text = report.read_text()
    for section in ("infeasible draws", "Time per stage", "store I/O", "layer by layer",
                    "Pareto front", "best_per_generation.png", "population.png"):
        assert section in text
    for name in ("best_per_generation.png", "population.png", "result.json", "best.json"):
        assert (report.parent / name).stat().st_size > 0
    assert ToySpace().parse((report.parent / "best.json").read_text()) == result.best.candidate.arch


def test_candidate_seeds_depend_only_on_position():
    from vitnas.search.candidates import candidate_rng

    seed, rng = candidate_rng("evolution", 0, 3, 7)
    again_seed, again = candidate_rng("evolution", 0, 3, 7)
    assert seed == again_seed and rng.random() == again.random()
    assert candidate_rng("evolution", 0, 3, 8)[0] != seed
