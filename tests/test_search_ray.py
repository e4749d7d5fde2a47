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


@pytest.mark.parametrize("options, message", [
    ({"gpus": 1.0}, "asks for more GPUs than the Ray cluster has"),
    ({"gpus": 0.5}, "asks for more GPUs than the Ray cluster has"),
    ({"threads": 1000}, "asks for more CPUs per worker than the Ray cluster has"),
])
def test_what_the_cluster_cannot_run_is_refused_up_front_not_waited_on(local_ray, options,
                                                                      message):
    from vitnas.errors import ConfigError

    if options.get("gpus") and ray.cluster_resources().get("GPU", 0) >= options["gpus"]:
        pytest.skip("this cluster has GPUs")
    config = SearchConfig(proxies=("params",), algorithm="random", budget=2, population=2,
                          dataset="gaussian", batch_size=2)
    with pytest.raises(ConfigError, match=message):
        run_search("autoformer-tiny-micro", config, store=":memory:", backend="ray",
                   **{"threads": 1, **options})
