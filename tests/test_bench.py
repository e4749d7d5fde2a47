"""Benchmark files, the resumable ground-truth builder and the scoreboard."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import require_shared_file
from vitnas.bench import GroundTruthConfig, build_ground_truth, load_benchmark, plan_architectures
from vitnas.bench.correlate import (
    ScoreboardConfig,
    correlate,
    in_dev_split,
    judge,
    scoreboard_specs,
    split_indices,
)
from vitnas.bench.groundtruth import without_timing
from vitnas.bench.report import markdown_table, plot_scatter, plot_tau
from vitnas.cli import main
from vitnas.data import get_dataset
from vitnas.errors import ConfigError
from vitnas.proxies.shape import SHAPE_BASELINES
from vitnas.spaces import get_space
from vitnas.store import ScoreStore

SPACE = "autoformer-tiny-micro"
OPTIONS = {"patch_size": 8}


def tiny_config(n: int) -> GroundTruthConfig:
    return GroundTruthConfig(space=SPACE, n=n, space_options=OPTIONS, dataset="synthetic",
                             epochs=0.1, batch_size=32)


@pytest.fixture(scope="module")
def tiny_data():
    return get_dataset("synthetic", "train", n=320), get_dataset("synthetic", "test", n=64)


def write_benchmark(path, space, n, seed=0):
    """A benchmark whose accuracy is a noisy function of params (so params ranks it well)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        arch = space.sample(1000 + i)
        top1 = space.params(arch) / 1e4 + rng.normal(scale=0.5)
        records.append({"arch": space.to_json(arch), "top1": top1,
                        "other": None if i == 0 else 1.0})
    path.write_text(json.dumps(records))
    return path


# --- files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('"text"', "must be a JSON list of records"),
    ("[]", "holds no records"),
    ("[1]", "record 0 is not an object"),
    ('[{"top1": 1}]', 'record 0 has no "arch"'),
    ('[{"arch": {"hidden_dim": 7}, "top1": 1}]', "record 0:"),
    ('{"records": 3}', 'must hold a "records" list'),
    ('{"space_options": [8], "records": [{"arch": {}}]}', '"space_options" must be an object'),
    ("[" * 200_000, "nested too deeply"),
])
def test_malformed_benchmark_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bench.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_benchmark(str(path), space=SPACE)
    assert "\n" not in str(err.value)


def test_benchmark_cli_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text('[{"arch": {"depth": 99}}]')
    assert main(["bench", "correlate", "--benchmark", str(path), "--space", SPACE]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vitnas: error: benchmark file") and "\n" not in err
    assert main(["bench", "correlate", "--benchmark", str(tmp_path / "missing.json"),
                 "--space", SPACE]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_benchmark_listing_one_architecture_twice_is_refused(tmp_path, capsys):
    arch = get_space(SPACE).to_json(get_space(SPACE).sample(0))
    path = tmp_path / "bench.json"
    path.write_text(json.dumps([{"arch": arch, "top1": top1} for top1 in (30, 99, 1)]))
    assert main(["bench", "correlate", "--benchmark", str(path), "--space", SPACE]) == 2
    err = capsys.readouterr().err
    assert "record 1 repeats the architecture of record 0" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "argument --n: must be >= 1, got 0"),
    (["--n", "1", "--train-per-class", "0"], "argument --train-per-class: must be >= 1"),
    (["--n", "1", "--epochs", "-1"], "argument --epochs: must be > 0"),
    (["--n", "1", "--lr", "nan"], "argument --lr: must be > 0, got nan"),
    (["--n", "1", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["--n", "1", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_build_refuses_bad_settings_in_one_line_before_writing(tmp_path, capsys, argv, message):
    out = tmp_path / "bench.json"
    code = main(["bench", "build", SPACE, "--dataset", "synthetic", "--quiet", "--out", str(out),
                 *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_build_checks_the_output_is_writable_before_training(tmp_path, tiny_data):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    trained = []
    with pytest.raises(ConfigError, match="cannot write"):
        build_ground_truth(tiny_config(1), blocker / "bench.json", progress=False,
                           datasets=tiny_data, on_record=trained.append)
    assert trained == []


def test_plain_list_needs_a_space_and_metric_must_exist(tmp_path):
    path = write_benchmark(tmp_path / "b.json", get_space(SPACE), 4)
    with pytest.raises(ConfigError, match="pass --space"):
        load_benchmark(str(path))
    bench = load_benchmark(str(path), space=SPACE)
    assert bench.values("other")[0] is None
    with pytest.raises(ConfigError, match="no metric 'acc'"):
        bench.values("acc")


def test_nasbench201_is_built_in():
    require_shared_file("nasbench201/nb201_test_acc_200ep.csv")  # its accuracy table
    bench = load_benchmark("nasbench201", n=5, seed=1)
    assert len(bench.records) == 5
    assert set(bench.metrics()) >= {"cifar10", "cifar100", "ImageNet16-120"}
    record = bench.records[0]
    assert record.values["cifar10"] == bench.space.test_accuracy(record.arch, "cifar10")


# --- ground truth ---------------------------------------------------------------------------
def test_plan_is_prefix_stable_distinct_and_spread():
    space = get_space(SPACE, **OPTIONS)
    plan = plan_architectures(space, 12, seed=0, candidates=16)
    assert plan[:5] == plan_architectures(space, 5, seed=0, candidates=16)
    assert len({space.key(a) for a in plan}) == 12
    params = sorted(space.params(a) for a in plan)
    random_params = sorted(space.params(space.sample(i)) for i in range(12))
    assert params[-1] - params[0] > random_params[-1] - random_params[0]


def test_resumed_build_equals_uninterrupted(tmp_path, tiny_data):
    whole = build_ground_truth(tiny_config(3), tmp_path / "whole.json", progress=False,
                               datasets=tiny_data)

    class Killed(Exception):
        pass

    def die_after_first(record):
        raise Killed

    with pytest.raises(Killed):
        build_ground_truth(tiny_config(3), tmp_path / "resumed.json", progress=False,
                           datasets=tiny_data, on_record=die_after_first)
    partial = json.loads((tmp_path / "resumed.json").read_text())
    assert len(partial["records"]) == 1  # written before the next one started
    resumed = build_ground_truth(tiny_config(3), tmp_path / "resumed.json", progress=False,
                                 datasets=tiny_data)
    assert without_timing(resumed) == without_timing(whole)
    on_disk = json.loads((tmp_path / "resumed.json").read_text())
    assert without_timing(on_disk) == without_timing(whole)
    bench = load_benchmark(str(tmp_path / "resumed.json"))
    assert bench.space.patch_size == 8 and len(bench.records) == 3


def test_a_build_killed_mid_architecture_resumes_that_architecture(tmp_path, tiny_data,
                                                                   monkeypatch):
    import vitnas.train as train_module
    from vitnas.bench.groundtruth import slot_state_path

    def config(epochs):
        return GroundTruthConfig(space=SPACE, n=1, space_options=OPTIONS, dataset="synthetic",
                                 epochs=epochs, batch_size=32)

    whole = build_ground_truth(config(2), tmp_path / "whole.json", progress=False,
                               datasets=tiny_data)
    saved = train_module.save

    def killed_after_first_epoch(path, payload):
        saved(path, payload)
        if payload["epoch"] == 1:
            raise KeyboardInterrupt

    out, state = tmp_path / "run.json", slot_state_path(tmp_path / "run.json", 0)
    monkeypatch.setattr(train_module, "save", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        build_ground_truth(config(2), out, progress=False, datasets=tiny_data)
    assert state.is_file() and not out.exists()  # one epoch kept, no record yet
    monkeypatch.setattr(train_module, "save", saved)
    starts, fit = [], train_module.fit
    monkeypatch.setattr(train_module, "fit",
                        lambda *a, **k: starts.append(a[6].step) or fit(*a, **k))
    resumed = build_ground_truth(config(2), out, progress=False, datasets=tiny_data)
    assert starts == [10]  # from the kept epoch (10 steps), not from the start
    assert without_timing(resumed) == without_timing(whole) and not state.exists()
    monkeypatch.setattr(train_module, "fit", fit)

    other = tmp_path / "other.json"  # killed, then started over with another recipe
    monkeypatch.setattr(train_module, "save", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        build_ground_truth(config(2), other, progress=False, datasets=tiny_data)
    monkeypatch.setattr(train_module, "save", saved)
    fresh = build_ground_truth(config(3), tmp_path / "fresh.json", progress=False,
                               datasets=tiny_data)
    restarted = build_ground_truth(config(3), other, progress=False, datasets=tiny_data)
    assert without_timing(restarted)["records"] == without_timing(fresh)["records"]


def test_build_refuses_another_recipe(tmp_path, tiny_data):
    build_ground_truth(tiny_config(1), tmp_path / "gt.json", progress=False, datasets=tiny_data)
    other = GroundTruthConfig(space=SPACE, n=1, space_options=OPTIONS, dataset="synthetic",
                              epochs=0.2, batch_size=32)
    with pytest.raises(ConfigError, match="epochs"):
        build_ground_truth(other, tmp_path / "gt.json", progress=False, datasets=tiny_data)


# --- scoreboard -----------------------------------------------------------------------------
def test_specs_always_include_baselines_once():
    specs = scoreboard_specs(["nwot", "params", "vintk:sigma=10", "vintk"])
    assert specs == [*SHAPE_BASELINES, "nwot", "vintk"]
    everything = scoreboard_specs("all")
    assert len(everything) >= 30 and "vintk:mode=band" in everything
    assert "lga:epochs=1.0" in everything


def test_splits_are_disjoint_stable_and_cover(tmp_path):
    space = get_space(SPACE)
    bench = load_benchmark(str(write_benchmark(tmp_path / "b.json", space, 40)), space=SPACE)
    dev, test = split_indices(bench, "dev"), split_indices(bench, "test")
    assert sorted(dev + test) == list(range(40)) and not set(dev) & set(test)
    assert 8 < len(dev) < 32
    grown = load_benchmark(str(write_benchmark(tmp_path / "g.json", space, 50)), space=SPACE)
    keys = {space.key(bench.records[i].arch) for i in dev}
    grown_dev = {space.key(grown.records[i].arch) for i in split_indices(grown, "dev")}
    assert keys <= grown_dev


def test_dev_split_membership_is_pinned():
    # the committed dev boards were judged on this half: a changed hash moves every one
    assert [i for i in range(12) if in_dev_split(str(i), 0.5, 0)] == [3, 4, 7, 9, 10]


def test_correlate_ranks_params_first_and_reuses_the_store(tmp_path, monkeypatch):
    space = get_space(SPACE)
    bench = load_benchmark(str(write_benchmark(tmp_path / "b.json", space, 12)), space=SPACE)
    config = ScoreboardConfig(proxies=("nwot",), metric="top1", batch="gaussian", batch_size=4,
                              resamples=50)
    store = ScoreStore(tmp_path / "s.sqlite")
    board = correlate(bench, config, store)
    assert [r.proxy for r in board.rows] == [*SHAPE_BASELINES, "nwot"]
    params = board.row("params")
    assert params.kendall > 0.5 and params.failed == 0 and params.n == 12
    assert params.kendall_ci[0] <= params.kendall <= params.kendall_ci[1]
    rows = 12 * (len(SHAPE_BASELINES) + 1)  # every architecture, every baseline and nwot
    assert len(store) == rows
    from vitnas.proxies import get_proxy

    def never(self, model, ctx):
        raise AssertionError("a stored score was computed again")

    monkeypatch.setattr(type(get_proxy("nwot")), "compute", never)
    again = correlate(bench, config, store)
    assert len(store) == rows and again.row("nwot").kendall == board.row("nwot").kendall
    assert again.row("nwot").failed == 0
    monkeypatch.undo()
    assert "| **params** |" in markdown_table(board)
    plot_scatter(board, tmp_path / "scatter.png")
    plot_tau(board, tmp_path / "tau.png")
    assert (tmp_path / "scatter.png").stat().st_size > 1000
    assert (tmp_path / "tau.png").stat().st_size > 1000


def test_failed_scores_are_counted_not_replaced():
    config = ScoreboardConfig(proxies=(), metric="top1", resamples=20)
    score = np.array([1.0, 2.0, math.nan, 4.0, math.inf, 6.0])
    truth = np.arange(6.0)
    row = judge("x", score, truth, np.ones(6), config)
    assert row.failed == 2 and row.n == 4 and row.kendall == pytest.approx(1.0)


def test_correlate_cli_writes_table_json_and_plots(tmp_path, capsys):
    path = write_benchmark(tmp_path / "b.json", get_space(SPACE), 6)
    out = tmp_path / "board" / "b.json"
    code = main(["bench", "correlate", "--benchmark", str(path), "--space", SPACE,
                 "--proxies", "nwot", "--batch", "gaussian", "--batch-size", "4",
                 "--resamples", "40", "--db", str(tmp_path / "s.sqlite"), "--out", str(out),
                 "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "params" in printed and "tau 95% CI" in printed
    assert "only 6 architectures" in captured.err and "unreliable" in captured.err
    assert "Note: only 6 architectures" in out.with_suffix(".md").read_text()
    saved = json.loads(out.read_text())
    assert [r["proxy"] for r in saved["rows"]] == [*SHAPE_BASELINES, "nwot"]
    for suffix in (".md", "_scatter.png", "_tau.png"):
        assert (out.parent / ("b" + suffix if suffix == ".md" else "b" + suffix)).exists()
    from vitnas.bench.correlate import Scoreboard

    rebuilt = Scoreboard.from_dict(saved)
    assert rebuilt.row("nwot").kendall_ci == tuple(saved["rows"][-1]["kendall_ci"])
    saved.pop("command")
    assert json.loads(json.dumps(rebuilt.as_dict())) == saved


def test_plan_seed_retrains_the_same_architectures_under_another_seed(tmp_path, tiny_data):
    base = build_ground_truth(tiny_config(2), tmp_path / "a.json", progress=False,
                              datasets=tiny_data)
    repeat = GroundTruthConfig(space=SPACE, n=2, space_options=OPTIONS, dataset="synthetic",
                               epochs=0.1, batch_size=32, seed=1, plan_seed=0)
    again = build_ground_truth(repeat, tmp_path / "b.json", progress=False, datasets=tiny_data)
    assert [r["arch"] for r in again["records"]] == [r["arch"] for r in base["records"]]
    assert [r["final_loss"] for r in again["records"]] != [r["final_loss"]
                                                           for r in base["records"]]


def test_build_spells_space_options_like_every_command_and_prints_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "build", SPACE, "--dataset", "synthetic", "--quiet", "--out", str(out),
                 "--n", "1", "--epochs", "0.05", "--batch-size", "64", "--patch-size", "8",
                 "--space-options", "patch_size=4,pool=mean", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["architectures"] == 1 and summary["out"] == str(out)
    saved = json.loads(out.read_text())
    # the named flag wins over the same key in --space-options; other keys pass through
    assert saved["space_options"] == {"patch_size": 8, "pool": "mean"}


def test_scatter_axes_follow_the_scores_shape():
    from vitnas.bench.report import score_axis

    heavy = np.array([1e-3, 1.0, 1e10, 1e44])
    assert score_axis(heavy)[1] == "log"
    outliers = np.array([0.1, 0.2, 0.3, 0.25, 0.15, -1e9])
    x, axis = score_axis(outliers)
    assert axis == "rank" and sorted(x) == [1, 2, 3, 4, 5, 6]
    plain = np.array([-1.0, 0.5, 2.0, 3.0])
    assert score_axis(plain)[1] == "linear"


def test_scatter_of_a_constant_proxy_is_labelled_not_a_single_point(tmp_path):
    space = get_space(SPACE)
    bench = load_benchmark(str(write_benchmark(tmp_path / "b.json", space, 6)), space=SPACE)
    config = ScoreboardConfig(proxies=("linear_regions",), metric="top1", batch="gaussian",
                              batch_size=4, resamples=0)
    board = correlate(bench, config, ScoreStore(tmp_path / "s.sqlite"))
    board.scores["linear_regions"] = [2.0] * board.n  # a proxy that cannot tell them apart
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = []
    original = plt.Axes.text

    def spy(self, *args, **kwargs):
        texts.append(args[2])
        return original(self, *args, **kwargs)

    plt.Axes.text = spy
    try:
        plot_scatter(board, tmp_path / "scatter.png")
    finally:
        plt.Axes.text = original
    assert texts == ["constant score"]


def test_sharded_builds_merge_into_the_unsharded_file(tmp_path, tiny_data):
    from vitnas.bench.groundtruth import merge_ground_truths, without_timing

    whole = build_ground_truth(tiny_config(3), tmp_path / "whole.json", progress=False,
                               datasets=tiny_data)
    parts = [tmp_path / f"part{i}.json" for i in range(2)]
    for i, part in enumerate(parts):
        content = build_ground_truth(tiny_config(3), part, progress=False, datasets=tiny_data,
                                     shard=(i, 2))
        assert [r["plan_index"] for r in content["records"]] == [i, i + 2][: 2 - i]
    # a resumed shard recomputes nothing it finished
    trained = []
    build_ground_truth(tiny_config(3), parts[0], progress=False, datasets=tiny_data,
                       shard=(0, 2), on_record=trained.append)
    assert trained == []
    merged = merge_ground_truths(parts, tmp_path / "merged.json")
    strip = {"command"}
    assert {k: v for k, v in without_timing(merged).items() if k not in strip} == \
        {k: v for k, v in without_timing(whole).items() if k not in strip}
    with pytest.raises(ConfigError, match="shard 1/2 is missing"):
        merge_ground_truths(parts[:1], tmp_path / "gap.json")
    with pytest.raises(ConfigError, match="not the file of a sharded"):
        merge_ground_truths([tmp_path / "whole.json"], tmp_path / "bad.json")
