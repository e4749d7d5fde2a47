import json
import math

import pytest
import torch

from vitnas.cli import main
from vitnas.store import ScoreStore

SMALL = ["--proxy", "params,nwot", "--params", "0.4M:0.5M", "--budget", "8", "--population", "4",
         "--parents", "2", "--mutations", "1", "--crossovers", "1", "--dataset", "gaussian",
         "--batch-size", "4", "--threads", "1", "--quiet"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_prints_the_best_architecture_and_writes_the_report(capsys, tmp_path):
    out_dir, db = tmp_path / "report", tmp_path / "scores.sqlite"
    code, out, _ = run(capsys, "search", "autoformer-tiny-micro", *SMALL, "--db", str(db),
                       "--out", str(out_dir))
    assert code == 0
    arch = json.loads(out.splitlines()[0])
    assert json.loads((out_dir / "best.json").read_text()) == arch
    assert "8 evaluated (8 computed, 0 from the store)" in out and "report.md" in out
    code, out, _ = run(capsys, "search", "autoformer-tiny-micro", *SMALL, "--db", str(db),
                       "--out", str(out_dir), "--json")
    result = json.loads(out)
    assert result["best"]["arch"] == arch and result["counts"]["reused"] == 8
    assert 0.4e6 <= result["best"]["params"] <= 0.5e6


def test_shard_runs_report_what_is_left_and_merge_joins_their_stores(capsys, tmp_path):
    shards = [tmp_path / f"shard{i}.sqlite" for i in range(2)]
    for i, db in enumerate(shards):
        code, out, _ = run(capsys, "search", "autoformer-tiny-micro", *SMALL[:8],
                           *SMALL[14:], "--algo", "random", "--proxy", "params", "--shard",
                           f"{i}/2", "--db", str(db))
        assert code == 0 and "4 left to the other shards" in out
    merged = tmp_path / "merged.sqlite"
    code, out, _ = run(capsys, "merge", str(merged), *map(str, shards))
    assert code == 0 and f"{merged}: 8 rows" in out
    with ScoreStore(merged) as store:
        assert len(store) == 8
    code, out, _ = run(capsys, "merge", str(merged), *map(str, shards), "--json")
    assert code == 0 and json.loads(out) == {"out": str(merged), "rows": 8,
                                             "new_rows": {str(s): 0 for s in shards},
                                             "clashing_rows": {str(s): 0 for s in shards}}


@pytest.mark.parametrize("argv, message", [
    (["--params", "5M:abc"], "params window '5M:abc': 'abc' is not a number"),
    (["--proxy", "nope"], "unknown proxy 'nope'"),
    (["--algo", "annealing"], "unknown search algorithm 'annealing'"),
    (["--shard", "3/2"], "shard '3/2' must be i/n"),
    (["--shard", "\u00b2/4"], "must be i/n"),  # a superscript two is a digit to str.isdigit
    (["--shard", "0/100000000000000000000"], "n <= 100,000"),
    (["--backend", "mpi"], "unknown backend 'mpi'"),
    (["--params", "5M:6M"], "no architecture of autoformer-tiny-micro"),
    (["--latency", ":0.000001"], "latency window :1e-06 ms is out of reach"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    pytest.param(["--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    # numbers Python's int() reads but no one types: Arabic-Indic four, 1_0, fullwidth one
    (["--batch-size", "\u0664"], "argument --batch-size: '\u0664' is not an integer"),
    (["--seed", "1_0"], "argument --seed: '1_0' is not an integer"),
    (["--budget", "\uff11"], "is not an integer"),
    (["--params", ":1e999"], "'1e999' is past the float range"),
    (["--ranker", ""], "argument --ranker: is empty"),  # not "no ranker, search by params"
    (["--params", " "], "argument --params: is empty"),
    (["--algo", "random", "--mutations", "3"], "--mutations only tune evolution"),
    (["--algo", "random", "--parents", "2", "--layer-prob", "0.5"],
     "--parents, --layer-prob only tune evolution; --algo random does not read them"),
])
def test_search_errors_are_one_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "search", "autoformer-tiny-micro", "--dataset", "gaussian",
                         "--db", str(tmp_path / "s.sqlite"), "--quiet", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_merge_of_a_missing_store_is_an_error(capsys, tmp_path):
    code, _, err = run(capsys, "merge", str(tmp_path / "out.sqlite"), str(tmp_path / "no.sqlite"))
    assert code == 2 and "not found" in err


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_reports_test_top1(capsys, restore_threads, monkeypatch):
    from vitnas.data import get_dataset
    from vitnas.search import retrain

    evaluated = []
    original = retrain.evaluate

    def recording(model, dataset, *args, **kwargs):
        evaluated.append((dataset, original(model, dataset, *args, **kwargs)))
        return evaluated[-1][1]

    monkeypatch.setattr(retrain, "evaluate", recording)
    arch = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12}
    code, out, _ = run(capsys, "train", "autoformer-tiny-micro", json.dumps(arch),
                       "--patch-size", "8", "--dataset", "synthetic", "--epochs", "0.1",
                       "--batch-size", "50", "--device", "cpu", "--threads", "1", "--quiet",
                       "--json")
    result = json.loads(out)
    assert code == 0 and result["steps"] == 2
    # the number printed is the one evaluation, made on the test split
    (dataset, top1), = evaluated
    assert result["top1"] == pytest.approx(top1)
    assert torch.equal(dataset.images, get_dataset("synthetic", "test").images)


def test_a_search_where_every_candidate_scores_nan_fails_clearly(capsys, tmp_path, monkeypatch):
    from vitnas.proxies import get_proxy

    monkeypatch.setattr(type(get_proxy("l2_norm")), "compute", lambda self, model, ctx: math.nan)
    out_dir = tmp_path / "report"
    code, _, err = run(capsys, "search", "autoformer-tiny-micro", *SMALL, "--proxy", "l2_norm",
                       "--db", str(tmp_path / "s.sqlite"), "--out", str(out_dir))
    assert code == 2 and "every one of the 8 candidates scored NaN" in err
    assert len(err.strip().splitlines()) == 1 and (out_dir / "report.md").exists()


def test_silent_phases_say_what_runs_and_the_budget_gets_an_estimate(capsys, tmp_path):
    loud = [a for a in SMALL if a != "--quiet"]
    code, out, err = run(capsys, "search", "autoformer-tiny-micro", *loud,
                         "--db", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "r"))
    assert code == 0
    assert "checking that the budget windows can be met" in err
    assert "building the proxy batch: 4 gaussian images at 32 px" in err
    assert "the first architecture took" in err and "the budget of 8 needs about" in err
    # a rerun computes nothing, so it has nothing to estimate
    code, out, err = run(capsys, "search", "autoformer-tiny-micro", *loud,
                         "--db", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "r"))
    assert code == 0 and "the first architecture took" not in err


def test_format_duration_reads_like_a_plan():
    from vitnas.search.driver import format_duration

    assert [format_duration(s) for s in (5, 75, 600, 5400, 36000)] == [
        "5 s", "75 s", "10.0 min", "1.5 h", "10.0 h"]


def test_search_says_which_objective_it_used_and_why(capsys, tmp_path):
    from vitnas.recommended import DEFAULT_SEARCH_PROXY

    default = [a for a in SMALL if a not in ("--proxy", "params,nwot")]
    code, out, _ = run(capsys, "search", "autoformer-tiny-micro", *default, "--db",
                       str(tmp_path / "a.sqlite"), "--out", str(tmp_path / "a"))
    assert code == 0
    assert f"objective: {DEFAULT_SEARCH_PROXY} (the default objective" in out
    assert "selection.json" in out
    code, out, _ = run(capsys, "search", "autoformer-tiny-micro", *SMALL, "--aggregate", "rank",
                       "--db", str(tmp_path / "b.sqlite"), "--out", str(tmp_path / "b"))
    assert "objective: params, nwot (--proxy, combined by --aggregate rank)" in out
