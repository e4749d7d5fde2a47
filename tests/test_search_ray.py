"""The Ray backend (an optional extra) returns exactly the local backend's scores."""

import pytest

from vitnas.search import Constraints, EvolutionConfig, SearchConfig, parse_window, run_search

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error")
    yield
    ray.shutdown()


def test_ray_backend_returns_the_same_scores_as_the_local_one(local_ray):
    config = SearchConfig(
        proxies=("nwot",), budget=8, population=4, dataset="gaussian", batch_size=4,
        constraints=Constraints(params=parse_window("0.4M:0.5M", "params")),
        evolution=EvolutionConfig(parents=2, mutations=1, crossovers=1))
    on_ray = run_search("autoformer-tiny-micro", config, store=":memory:", workers=2, threads=1,
                        backend="ray")
    local = run_search("autoformer-tiny-micro", config, store=":memory:", threads=1)
    assert [(e.candidate.key, e.scores) for e in on_ray.evaluations] == [
        (e.candidate.key, e.scores) for e in local.evaluations]
    assert on_ray.best_arch == local.best_arch
    assert ray.is_initialized()  # a Ray instance the caller started is left running
