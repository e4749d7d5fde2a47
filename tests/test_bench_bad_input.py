"""Bad input to `vitnas bench` (build, merge, import, correlate): one line on stderr and exit
code 2, refused before any work, no input overwritten, no hang and no warning spam."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from conftest import one_line_error
from vitnas.bench import GroundTruthConfig, build_ground_truth, load_benchmark, plan_architectures
from vitnas.bench.files import Benchmark, BenchmarkRecord
from vitnas.bench.stats import (
    budget_regret,
    kendall_tau_b,
    pearson,
    random_pick_regret,
    spearman_rho,
)
from vitnas.cli import main
from vitnas.data import get_dataset
from vitnas.errors import ConfigError
from vitnas.spaces import get_space

SPACE = "autoformer-tiny-micro"
# cheap scoring, so a check that fails to refuse still ends soon
CHEAP = ("--proxies", "params", "--batch", "gaussian", "--batch-size", "4", "--resamples", "40",
         "--quiet")


def write_records(path, labels, **header):
    space = get_space(SPACE)
    records = [{"arch": space.to_json(space.sample(i)), "top1": label}
               for i, label in enumerate(labels)]
    path.write_text(json.dumps({**header, "records": records} if header else records))
    return path


# --- 1. an output is never one of the inputs -----------------------------------------------
def test_import_refuses_to_write_over_the_file_it_imports(tmp_path, capsys):
    source = tmp_path / "gt.pth"
    source.write_bytes(b"not touched")
    err = one_line_error(capsys, "bench", "import", source, "--out", source)
    assert "also an input" in err and source.read_bytes() == b"not touched"


def test_merge_refuses_to_write_over_a_shard(tmp_path, capsys):
    shards = [tmp_path / f"sh{i}.json" for i in range(2)]
    for shard in shards:
        shard.write_text("{}")
    err = one_line_error(capsys, "bench", "merge", shards[0], *shards)
    assert "also an input" in err and shards[0].read_text() == "{}"


def test_correlate_refuses_outputs_that_are_its_inputs(tmp_path, capsys):
    bench = write_records(tmp_path / "b.json", [1, 2, 3], space=SPACE)
    before = bench.read_text()
    db = ("--db", tmp_path / "s.sqlite")
    assert "--out" in one_line_error(capsys, "bench", "correlate", "--benchmark", bench,
                                     "--out", bench, *CHEAP, *db)
    assert "--db" in one_line_error(capsys, "bench", "correlate", "--benchmark", bench,
                                    "--db", bench, *CHEAP)
    table = tmp_path / "board.md"  # the .md written beside --out board.json
    table.write_text(before)
    assert "board.md is also an input" in one_line_error(
        capsys, "bench", "correlate", "--benchmark", table, "--out", tmp_path / "board.json",
        *CHEAP, *db)
    assert "would overwrite it" in one_line_error(
        capsys, "bench", "correlate", "--benchmark", bench, "--out", tmp_path / "x.md",
        *CHEAP, *db)
    assert bench.read_text() == before and table.read_text() == before


# --- 2. unreadable numbers and mistyped header fields --------------------------------------
@pytest.mark.parametrize("header, message", [
    ({"space": ["x"]}, '"space" must name a search space'),
    ({"space": SPACE, "space_options": {"patch_size": [8]}}, '"space_options" \'patch_size\''),
    ({"space": SPACE, "metric": ["top1"]}, '"metric" must name a record field'),
    ({"space": SPACE, "format": "vitnas-benchmark", "version": 2},
     "is benchmark format version 2; this vitnas reads version 1"),
    ({"space": SPACE, "format": "vitnas-benchmark", "version": "1"}, "format version '1'"),
])
def test_mistyped_benchmark_header_fields_are_one_line(tmp_path, capsys, header, message):
    path = write_records(tmp_path / "b.json", [1, 2, 3], **header)
    with pytest.raises(ConfigError, match=message):
        load_benchmark(str(path))
    assert message in one_line_error(capsys, "bench", "correlate", "--benchmark", path, *CHEAP,
                                     "--db", tmp_path / "s.sqlite")


def test_an_integer_too_long_to_read_is_one_line(tmp_path, capsys):
    path = write_records(tmp_path / "b.json", [1, 2, 3], space=SPACE)
    path.write_text(path.read_text().replace('"top1": 1', '"top1": ' + "9" * 5000))
    err = one_line_error(capsys, "bench", "correlate", "--benchmark", path, *CHEAP,
                         "--db", tmp_path / "s.sqlite")
    assert "b.json cannot be read: Exceeds the limit (4300 digits)" in err
    shard = tmp_path / "sh0.json"
    shard.write_text('{"shard": "0/1", "n": ' + "9" * 5000 + "}")
    assert "cannot be read" in one_line_error(capsys, "bench", "merge", tmp_path / "m.json",
                                              shard)
    # a pickle can hold one (no text to convert): import refuses to write it, correlate to
    # rank by it, and neither crashes on its repr
    import torch

    from vitnas.bench.torchfile import read_torch_pickle
    from vitnas.bench.vitbench101 import builtin_path

    rows = [dict(row) for row in read_torch_pickle(builtin_path("vit-bench-101-pit"))[:3]]
    rows[0]["c100_kd_acc"] = 10**5000
    source = tmp_path / "big.pth"
    torch.save(rows, source)
    err = one_line_error(capsys, "bench", "import", source, "--out", tmp_path / "big.json")
    assert "a value JSON cannot write (Exceeds the limit (4300 digits)" in err
    assert not (tmp_path / "big.json").exists()
    space = get_space(SPACE)
    bench = Benchmark("b", space, [BenchmarkRecord(space.sample(0), {"top1": 10**5000})])
    with pytest.raises(ConfigError, match="digits, not a number a float can hold"):
        bench.values("top1")


# --- 3. and 4. a shard that gets nothing, an n that cannot be planned -----------------------
def test_build_refuses_a_shard_that_gets_no_architecture(tmp_path, capsys):
    out = tmp_path / "bb.json"
    err = one_line_error(capsys, "bench", "build", SPACE, "--n", 2, "--shard", "3/5",
                         "--dataset", "synthetic", "--dataset-options", "n=20", "--epochs", 1,
                         "--quiet", "--out", out)
    assert "shard 3/5 gets no architecture" in err and "at most 2 shards" in err
    assert not out.exists()


def test_build_refuses_an_n_it_cannot_plan_before_any_loop(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bb.json"
    err = one_line_error(capsys, "bench", "build", SPACE, "--n", 10**11, "--dataset",
                         "synthetic", "--epochs", 1, "--quiet", "--out", out)
    assert "at most 100,000" in err and not out.exists()
    space = get_space(SPACE)
    monkeypatch.setattr(space, "size", lambda: 3)
    with pytest.raises(ConfigError, match="holds 3 distinct architectures"):
        plan_architectures(space, 4)


# --- 5. merge needs every shard of one plan, once ------------------------------------------
@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The two shards of a 3-architecture plan: shard 0/2 holds slots 0 and 2, 1/2 slot 1."""
    root = tmp_path_factory.mktemp("shards")
    data = get_dataset("synthetic", "train", n=40), get_dataset("synthetic", "test", n=20)
    config = GroundTruthConfig(space=SPACE, n=3, dataset="synthetic", epochs=0.1, batch_size=32)
    paths = [root / f"sh{i}.json" for i in range(2)]
    for i, path in enumerate(paths):
        build_ground_truth(config, path, progress=False, datasets=data, shard=(i, 2))
    return [json.loads(path.read_text()) for path in paths]


def edited(tmp_path, content, name, **changes):
    path = tmp_path / name
    path.write_text(json.dumps({**content, **changes}))
    return path


def test_merge_of_every_shard_writes_the_plan(tmp_path, capsys, shards):
    paths = [edited(tmp_path, content, f"sh{i}.json") for i, content in enumerate(shards)]
    assert main(["bench", "merge", str(tmp_path / "m.json"), *map(str, paths)]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["n"] == 3 and len(merged["records"]) == 3


def test_a_missing_label_merges_as_null_never_a_bare_nan(tmp_path, capsys, shards):
    # a diverged run's NaN label: strict JSON readers (jq, browsers) refuse a bare NaN token
    first, second = (json.loads(json.dumps(s)) for s in shards)
    label = next(k for k, v in first["records"][0].items() if isinstance(v, float))
    first["records"][0][label] = math.nan
    paths = [edited(tmp_path, content, f"sh{i}.json") for i, content in enumerate((first, second))]
    assert main(["bench", "merge", str(tmp_path / "m.json"), *map(str, paths)]) == 0
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and json.loads(text)["records"][0][label] is None


@pytest.mark.parametrize("change, message", [
    ("missing", "shard 1/2 is missing: merge needs the files of all 2 shards"),
    ("twice", "are both shard 0/2; give each shard once"),
    ("empty", "holds no records, but n 3 plans slot 1 for it"),
    ("three", "is shard 1/3 of n 3, but"),
    ("n", "is shard 1/2 of n 4, but"),
    ("bogus shard", '"shard" must be i/k with 0 <= i < k, like "0/2", not \'x\''),
    ("negative n", '"n" must be the number of planned architectures, 1 to 100,000, not -1'),
    ("boolean n", '"n" must be the number of planned architectures, 1 to 100,000, not True'),
    ("wrong slot", "a record has plan_index 2, not a slot of shard 1/2"),
    ("gap", "plan slot 2 is in no shard"),
    ("recipe", "differs from"),
])
def test_merge_refuses_a_partial_or_mixed_set_of_shards(tmp_path, capsys, shards, change,
                                                        message):
    first, second = shards
    one = dict(second["records"][0])
    files = {
        "missing": [first],
        "twice": [first, first, second],
        "empty": [first, {**second, "records": []}],
        "three": [first, {**second, "shard": "1/3"}],
        "n": [first, {**second, "n": 4}],
        "bogus shard": [first, {**second, "shard": "x"}],
        "negative n": [first, {**second, "n": -1}],
        "boolean n": [first, {**second, "n": True}],
        "wrong slot": [first, {**second, "records": [{**one, "plan_index": 2}]}],
        "gap": [{**first, "records": first["records"][:1]}, second],
        "recipe": [first, {**second, "recipe": {**second["recipe"], "lr": 1.0}}],
    }[change]
    paths = [edited(tmp_path, content, f"in{i}.json") for i, content in enumerate(files)]
    out = tmp_path / "m.json"
    assert message in one_line_error(capsys, "bench", "merge", out, *paths)
    assert not out.exists()


# --- 6. labels near the float limit ---------------------------------------------------------
def test_statistics_of_labels_near_the_float_limit_do_not_overflow():
    rng = np.random.default_rng(0)
    score, size = rng.normal(size=30), rng.permutation(30).astype(float)
    unit = rng.normal(size=30)
    huge = unit * 1e307  # any difference of two of them overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for statistic in (kendall_tau_b, spearman_rho, pearson):
            assert statistic(score, huge) == pytest.approx(statistic(score, unit))
        assert budget_regret(score, huge, size) / 1e307 == \
            pytest.approx(budget_regret(score, unit, size))
        assert random_pick_regret(huge, size) / 1e307 == \
            pytest.approx(random_pick_regret(unit, size))


def test_correlate_refuses_labels_spread_past_the_float_range(tmp_path, capsys):
    path = write_records(tmp_path / "b.json", [1e308, -1e308, 5.0, 1e307, -3.0], space=SPACE)
    err = one_line_error(capsys, "bench", "correlate", "--benchmark", path, *CHEAP,
                         "--db", tmp_path / "s.sqlite")
    assert "span -1e+308..1e+308, more than a float holds" in err


def test_correlate_of_huge_labels_prints_no_warnings(tmp_path, capsys):
    path = write_records(tmp_path / "b.json", [1e308 - i * 1e306 for i in range(5)],
                         space=SPACE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["bench", "correlate", "--benchmark", str(path), *CHEAP,
                     "--db", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "board.json")])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "board_scatter.png").exists()
    assert all(line.startswith("note:") for line in err.strip().splitlines()), err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in caught]


# --- 7. an empty --metric -------------------------------------------------------------------
def test_correlate_refuses_an_empty_metric(tmp_path, capsys):
    path = write_records(tmp_path / "b.json", [1, 2, 3], space=SPACE)
    assert "--metric is empty" in one_line_error(capsys, "bench", "correlate", "--benchmark",
                                                 path, "--metric", "", *CHEAP,
                                                 "--db", tmp_path / "s.sqlite")


def test_correlate_refuses_the_benchmark_as_its_own_second_seed(tmp_path, capsys):
    path = write_records(tmp_path / "b.json", [1, 2, 3, 4], space=SPACE)
    line = one_line_error(capsys, "bench", "correlate", "--benchmark", path, "--second-seed",
                          path, *CHEAP, "--db", tmp_path / "s.sqlite")
    assert "is the benchmark itself" in line and not (tmp_path / "s.sqlite").exists()


def test_correlate_says_how_many_architectures_it_leaves_out_for_want_of_a_label(tmp_path,
                                                                                 capsys):
    path = write_records(tmp_path / "b.json", [1.0, None, 3.0, 4.0, 2.0], space=SPACE)
    code = main(["bench", "correlate", "--benchmark", str(path), *CHEAP,
                 "--db", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert code == 0 and "note: 1 of 5 architectures have no finite top1" in err


@pytest.mark.parametrize("labels", [[1.0], [1.0, 2.0], [1.0, None, 2.0]])
def test_correlate_names_too_few_labels_before_asking_whether_they_vary(tmp_path, capsys,
                                                                        labels):
    path = write_records(tmp_path / "b.json", labels, space=SPACE)
    line = one_line_error(capsys, "bench", "correlate", "--benchmark", path, *CHEAP,
                          "--db", tmp_path / "s.sqlite")
    assert "a ranking needs at least 3" in line


def test_a_small_board_without_intervals_carries_no_interval_caveat():
    from vitnas.bench.correlate import Scoreboard

    board = Scoreboard("b", "s", "top1", "all", 5, [], {"resamples": 1000})
    assert board.caveats() and "bootstrap intervals" in board.caveats()[0]
    assert Scoreboard("b", "s", "top1", "all", 5, [], {"resamples": 0}).caveats() == []
