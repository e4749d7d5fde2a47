"""Failure classes closed where input enters (issue #25): each bad input is one line on stderr
and exit code 2, refused before any work, with nothing lost and no input overwritten."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import socket
import sqlite3
import threading
import time

import pytest
import torch

from conftest import one_line_error, proxy_context
from vitnas.bench.files import parse_benchmark
from vitnas.cli import build_parser, main
from vitnas.cli.common import parse_options, usable_cores
from vitnas.errors import ConfigError, DatasetError
from vitnas.models.nb201 import EDGES, OPS
from vitnas.proxies import PROXIES, get_proxy
from vitnas.proxies.scoring import proxy_batch
from vitnas.search.runner import check_ray_address
from vitnas.spaces import get_space
from vitnas.spaces.nasbench201 import DATASET_COLUMNS, load_table
from vitnas.store import ScoreKey, ScoreStore, StoredScore
from vitnas.trained import load_trained, save_trained

SPACE = "autoformer-tiny-micro"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(get_space(SPACE).to_json(get_space(SPACE).sample(0))))
    return path


@pytest.fixture
def trained(tmp_path):
    space = get_space(SPACE)
    arch = space.sample(0)
    path = tmp_path / "model.pt"
    save_trained(path, space.build(arch, seed=0), space, arch, {}, {"top1": 10.0})
    return path


# --- numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["score", SPACE, "{}", "--seed", str(2**63)], "argument --seed: must be <= 2^63-1"),
    (["score", SPACE, "{}", "--seed", "-1"], "argument --seed: must be >= 0"),
    (["sample", SPACE, "--seed", "1e400"], "argument --seed: '1e400' is not an integer"),
    (["search", SPACE, "--parents", "20", "--population", "4"],
     "--parents 20 exceeds --population 4"),
    (["search", SPACE, "--layer-prob", "nan"], "--layer-prob: must be >= 0, got nan"),
    (["search", SPACE, "--gpus-per-worker", "-1"], "--gpus-per-worker: must be >= 0"),
    (["search", SPACE, "--budget", "1e400"], "--budget: '1e400' is not an integer"),
    (["bench", "correlate", "--benchmark", "x.json", "--top-fraction", "nan"],
     "--top-fraction: must be > 0, got nan"),
    (["bench", "correlate", "--benchmark", "x.json", "--top-fraction", "-0.1"],
     "--top-fraction: must be > 0"),
    (["bench", "correlate", "--benchmark", "x.json", "--top-fraction", "1.5"],
     "--top-fraction: must be <= 1"),
    (["bench", "correlate", "--benchmark", "x.json", "--resamples", "5000000"],
     "--resamples: must be <= 100,000"),
    (["bench", "correlate", "--benchmark", "x.json", "--resamples", "1"],
     "--resamples: must be 0 (no intervals) or at least 40"),
    (["bench", "correlate", "--benchmark", "x.json", "--sample-seed", "5"],
     "--sample-seed picks --limit's subset"),
    (["bench", "correlate", "--benchmark", "x.json", "--dev-fraction", "0.3"],
     "--dev-fraction sizes the dev half of --split dev or test"),
    (["calibrate", "x.json", "--out", "r.json", "--seed", "5"], "--seed picks --limit's subset"),
    (["bench", "correlate", "--benchmark", "x.json", "--proxies", ""], "--proxies '' names no"),
    (["bench", "correlate", "--benchmark", "x.json", "--proxies", " , "], "names no proxy"),
    (["revit", "eval", "r.pt", "t.pt", "--repeats", "0"], "--repeats: must be >= 1"),
    (["revit", "eval", "r.pt", "t.pt", "--test-per-class", "0"], "--test-per-class: must be"),
    (["revit", "eval", "r.pt", "t.pt", "--cascade-threshold", "nan"], "must be >= 0, got nan"),
    (["revit", "eval", "r.pt", "t.pt", "--cascade-threshold", "2"], "must be <= 1"),
    (["revit", "eval", "r.pt", "t.pt", "--tla-threshold", "inf"], "must be a finite number"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--widths", "0"],
     "--widths: must be >= 1"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--widths", "16,3.5"],
     "--widths: '3.5' is not an integer"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--folds", "1"],
     "--folds: must be >= 2"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--folds", "1000"],
     "--folds: must be <= 20"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--max-loss", "nan"],
     "--max-loss: must be >= 0, got nan"),
    (["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt", "--bootstrap", "-1"],
     "--bootstrap: must be >= 0"),
    (["revit", "train", "--out", "r.pt", "--grids", "4.5,8"], "--grids: '4.5' is not an integer"),
    (["revit", "train", "--out", "r.pt", "--fractions", "0.5,2"], "--fractions: must be <= 1"),
    (["revit", "train", "--out", "r.pt", "--grids", "4,8,4"], "4 given more than once in '4,8"),
    (["revit", "train", "--out", "r.pt", "--fractions", "0.5,1,0.5"], "0.5 given more than once"),
    (["revit", "eval", "r.pt", "t.pt", "--tome-rates", "2,2"], "2 given more than once in '2"),
    (["revit", "eval", "r.pt", "t.pt", "--fixed-grids", "3,3"], "3 given more than once"),
    (["search", SPACE, "--budget", str(10**20)], "--budget: must be <= 1,000,000,000"),
    (["train", SPACE, "{}", "--epochs", "1e9"], "--epochs: must be <= 100,000"),
    (["bench", "build", SPACE, "--out", "gt.json", "--epochs", "99999999"], "must be <= 100,000"),
    (["sample", SPACE, "--num-classes", "1"], "num_classes must be at least 2"),
    (["sample", SPACE, "--img-size", str(2**31)], "img_size 2,147,483,648 is past the ceiling"),
    (["info", "pit-tiny-micro", "{}", "--in-chans", "5000"], "in_chans 5,000 is past the ceil"),
    (["sample", "s3-tiny-micro", "--num-classes", "2000000"], "num_classes 2,000,000 is past"),
])
def test_numbers_out_of_range_are_refused_where_they_are_parsed(capsys, tmp_path, monkeypatch,
                                                                argv, message):
    monkeypatch.chdir(tmp_path)
    assert message in one_line_error(capsys, *argv)


def test_gpus_per_worker_without_ray_are_refused_before_any_data(capsys, tmp_path):
    """GPUs per worker are Ray's; the local backend refuses them before the proxy batch is
    built: with no data to build it from, the one line is still about the backend (a dataset
    error would mean the data came first; a CUDA one, the wrong reason)."""
    line = one_line_error(capsys, "search", SPACE, "--gpus-per-worker", "0.5", "--budget", "5",
                          "--dataset", "cifar10", "--data-dir", tmp_path, "--quiet",
                          "--db", tmp_path / "s.sqlite", "--out", tmp_path / "run")
    assert "GPUs per worker apply to the ray backend only" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_before_any_data(capsys, tmp_path):
    line = one_line_error(capsys, "search", SPACE, "--device", "cuda", "--budget", "5",
                          "--dataset", "cifar10", "--data-dir", tmp_path, "--quiet",
                          "--db", tmp_path / "s.sqlite", "--out", tmp_path / "run")
    assert "CUDA is not available" in line


def test_sizes_that_cannot_fit_are_estimated_and_refused_before_allocating(capsys, arch_file):
    for argv in (["--img-size", "16384"], ["--batch-size", "40000000"]):
        start = time.perf_counter()
        line = one_line_error(capsys, "score", SPACE, arch_file, "--proxy", "params",
                              "--dataset", "gaussian", *argv)
        assert "of memory" in line and "GiB" in line and time.perf_counter() - start < 10
    line = one_line_error(capsys, "info", SPACE, arch_file, "--check", "--img-size", "16384",
                          "--patch-size", "1")
    assert "of memory" in line


@pytest.mark.parametrize("argv, message", [
    (["--embed-dim", "100", "--num-heads", "3"], "embed dim 100 is not divisible by 3 heads"),
    (["--embed-dim", "96", "--num-heads", "5"], "embed dim 96 is not divisible by 5 heads"),
    (["--embed-dim", "10", "--num-heads", "4"], "not divisible by 4 heads"),
])
def test_revit_shapes_the_heads_do_not_divide_are_refused_before_training(capsys, tmp_path,
                                                                          argv, message):
    start = time.perf_counter()
    line = one_line_error(capsys, "revit", "train", "--out", str(tmp_path / "r.pt"),
                          "--dataset", "synthetic", "--epochs", "1", *argv)
    assert message in line and time.perf_counter() - start < 30
    assert not (tmp_path / "r.pt").exists()


def test_a_model_with_fewer_classes_than_the_dataset_is_refused(capsys, arch_file):
    line = one_line_error(capsys, "score", SPACE, arch_file, "--proxy", "params",
                          "--dataset", "synthetic", "--num-classes", "3", "--batch-size", "4")
    assert "10 classes" in line and "--num-classes 10" in line


@pytest.mark.parametrize("options, message", [
    ("noise=nan", "option noise must be a finite number, got 'nan'"),
    ("n=abc", "option n must be an integer, got 'abc'"),
    ("n=2.5", "option n must be an integer, got 2.5"),
])
def test_dataset_options_of_the_wrong_type_are_named(capsys, arch_file, options, message):
    line = one_line_error(capsys, "train", SPACE, arch_file, "--dataset", "synthetic",
                          "--dataset-options", options, "--epochs", "1", "--quiet")
    assert message in line


@pytest.mark.parametrize("option, value, message", [
    ("--fixed-grids", "4.5", "--fixed-grids: '4.5' is not an integer"),
    ("--fixed-grids", "nan", "--fixed-grids: 'nan' is not an integer"),
    ("--fixed-grids", "", "--fixed-grids: expected comma-separated integers >= 1, got ''"),
    ("--fixed-grids", "-1", "--fixed-grids: must be >= 1, got -1"),
    ("--fixed-grids", "4,,8", "expected comma-separated integers >= 1"),
    ("--tome-rates", "4.5", "--tome-rates: '4.5' is not an integer"),
    ("--tome-rates", "nan", "--tome-rates: 'nan' is not an integer"),
    ("--tome-rates", "-1", "--tome-rates: must be >= 1, got -1"),
    ("--tome-rates", "2,0", "--tome-rates: must be >= 1, got 0"),
    ("--tome-rates", " , ", "expected comma-separated integers >= 1"),
])
def test_revit_eval_grids_and_rates_are_whole_positive_numbers(capsys, option, value, message):
    assert message in one_line_error(capsys, "revit", "eval", "r.pt", "t.pt", option, value)


def test_revit_eval_grids_and_rates_parse_once_into_whole_numbers():
    parse = build_parser().parse_args
    args = parse(["revit", "eval", "r.pt", "t.pt"])
    assert args.tome_rates == (2, 4, 6, 8, 10) and args.fixed_grids is None
    args = parse(["revit", "eval", "r.pt", "t.pt", "--tome-rates", "", "--fixed-grids", "3, 4,8"])
    assert args.tome_rates == () and args.fixed_grids == (3, 4, 8)  # '' is "no ToMe rates"
    # stage widths may repeat (a list of layers, not a set of settings like grids and rates)
    args = parse(["revit", "train-tla", "l.pt", "--revit", "r.pt", "--out", "o.pt",
                  "--widths", "16,16,32"])
    assert args.widths == (16, 16, 32)


@pytest.mark.parametrize("argv", [
    ["search", SPACE, "--threads", "0"],
    ["search", SPACE, "--threads", "-3"],
    ["train", SPACE, "{}", "--threads", "0"],
    ["bench", "correlate", "--benchmark", "x.json", "--threads", "-1"],
    ["revit", "eval", "r.pt", "t.pt", "--threads", "0"],
    ["calibrate", "--benchmark", "x.json", "--out", "r.json", "--threads", "0"],
])
def test_threads_below_one_are_refused(capsys, argv):
    assert "argument --threads: must be >= 1" in one_line_error(capsys, *argv)


def test_absurd_threads_are_capped_at_the_cores_and_the_cap_is_said(capsys, tmp_path,
                                                                    arch_file):
    cores, before = usable_cores(), torch.get_num_threads()
    try:
        code, _, err = run(capsys, "search", SPACE, "--proxy", "params", "--budget", "2",
                           "--population", "2", "--dataset", "gaussian", "--batch-size", "2",
                           "--threads", str(10**9), "--quiet", "--out", tmp_path / "run",
                           "--db", tmp_path / "s.sqlite")
        assert code == 0 and f"--threads 1000000000 capped at {cores}" in err
        code, _, err = run(capsys, "train", SPACE, arch_file, "--dataset", "synthetic",
                           "--dataset-options", "n=8", "--epochs", "1", "--batch-size", "8",
                           "--device", "cpu", "--threads", str(10**9), "--quiet")
        assert code == 0 and f"--threads 1000000000 capped at {cores}" in err
        assert torch.get_num_threads() == cores  # what train set, not a billion
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def segmentation_arch(tmp_path):
    space = get_space("s3-tiny-micro", task="segmentation", num_classes=11, img_size=16)
    path = tmp_path / "seg.json"
    path.write_text(json.dumps(space.to_json(space.sample(0))))
    return path


@pytest.mark.parametrize("dataset, options, message", [
    ("paste-fashion", "noise=nan", "does not take option(s) noise"),
    ("paste-fashion", "threshold=nan", "option threshold must be a finite number, got 'nan'"),
    ("paste-fashion", "n=abc", "option n must be an integer, got 'abc'"),
    ("paste-fashion", "n=-5", "needs option n >= 1 images, got -5"),
    ("paste-fashion", "size=0", "option size must be >= 8 pixels, got 0"),
    ("paste-mnist", "min_scale=big", "option min_scale must be a finite number, got 'big'"),
    ("ade20k", "size=0", "'ade20k' option size must be >= 1, got 0"),
    ("ade20k", "fit=bogus", "'ade20k' option fit 'bogus' is not one of squash, crop"),
    ("cityscapes", "limit=0", "'cityscapes' option limit must be >= 1"),
    ("cityscapes", "size=2.5", "option size must be an integer, got 2.5"),
])
def test_segmentation_dataset_options_of_the_wrong_type_or_value_are_named(
        capsys, segmentation_arch, dataset, options, message):
    line = one_line_error(capsys, "train", "s3-tiny-micro", segmentation_arch, "--task",
                          "segmentation", "--num-classes", "11", "--img-size", "16",
                          "--dataset", dataset, "--dataset-options", options, "--quiet")
    assert message in line


def test_workers_are_capped_at_the_cores_and_the_cap_is_said(capsys, tmp_path):
    code, _, err = run(capsys, "search", SPACE, "--proxy", "params", "--budget", "2",
                       "--population", "2", "--dataset", "gaussian", "--batch-size", "2",
                       "--workers", "1000", "--quiet", "--out", tmp_path / "run",
                       "--db", tmp_path / "s.sqlite")
    assert code == 0 and "--workers 1000 capped at" in err


# --- degenerate batches -----------------------------------------------------------------------
def test_proxies_that_compare_samples_say_a_batch_of_one_is_too_small(capsys, arch_file):
    needy = [name for name in PROXIES.names() if get_proxy(name).min_batch > 1]
    assert {"jacov", "ntk_cond", "ntk_eigen", "vintk", "nwot", "zico", "lswag"} <= set(needy)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.ReLU(),
                                torch.nn.Linear(4, 2))
    ctx = proxy_context(torch.randn(1, 3, 2, 2))
    for name in ("jacov", "ntk_cond", "ntk_eigen"):
        result = get_proxy(name)(model, proxy_context(torch.randn(1, 3, 2, 2)))
        assert math.isnan(result.raw) and "at least 2 samples, got 1" in result.warnings[0]
    assert math.isfinite(get_proxy("grad_norm")(model, ctx).raw)  # needs one sample only
    line = one_line_error(capsys, "score", SPACE, arch_file, "--proxy", "params,jacov,ntk_cond",
                          "--dataset", "gaussian", "--batch-size", "1")
    assert "--batch-size 1 is too small for jacov, ntk_cond" in line


# --- paths ----------------------------------------------------------------------------------
def test_outputs_that_cannot_be_written_are_refused_before_any_work(capsys, tmp_path, arch_file,
                                                                     trained):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    a_dir = tmp_path / "folder"
    a_dir.mkdir()
    cases = [
        (["search", SPACE, "--out", a_file, "--db", tmp_path / "s.sqlite"], "is a file"),
        (["search", SPACE, "--out", a_file / "run", "--db", tmp_path / "s.sqlite"],
         f"{a_file} is a file"),
        (["search", SPACE, "--out", tmp_path / "run", "--db", a_dir], "is a directory"),
        (["search", SPACE, "--out", tmp_path / "run", "--db", a_file / "s.sqlite"], "is a file"),
        (["train", SPACE, arch_file, "--out", a_dir, "--dataset", "synthetic"], "is a directory"),
        (["export", trained, a_file / "m.pt2"], "is a file"),
        (["merge", a_file / "out.sqlite", tmp_path / "in.sqlite"], "is a file"),
        (["bench", "correlate", "--benchmark", "x.json", "--out", a_dir], "is a directory"),
        (["revit", "train", "--out", a_file / "r.pt", "--dataset", "synthetic"], "is a file"),
        (["revit", "eval", "r.pt", "t.pt", "--out", a_dir], "is a directory"),
    ]
    for argv, message in cases:
        assert message in one_line_error(capsys, *argv), argv
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "run").exists()


def test_a_cache_directory_that_is_a_file_is_one_line(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("x")
    monkeypatch.setenv("VITNAS_CACHE_DIR", str(blocker))
    line = one_line_error(capsys, "search", SPACE, "--out", tmp_path / "run")
    assert "$VITNAS_CACHE_DIR" in line and "is a file" in line


# --- nothing lost, nothing overwritten ---------------------------------------------------------
def test_export_never_overwrites_its_input(capsys, trained):
    before = trained.read_bytes()
    assert "is also an input of this command" in one_line_error(capsys, "export", trained, trained)
    assert trained.read_bytes() == before


def test_a_checkpoint_with_flipped_bytes_is_named_as_damaged(capsys, tmp_path, trained):
    weights = torch.load(trained, weights_only=True)["state_dict"]
    raw = max(weights.values(), key=lambda t: t.numel()).contiguous().numpy().tobytes()[:64]
    data = bytearray(trained.read_bytes())
    at = data.find(raw)
    assert at > 0
    data[at + 3] ^= 0x40
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="damaged"):
        load_trained(damaged)
    assert "is damaged" in one_line_error(capsys, "export", damaged, tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()


def test_an_empty_or_foreign_model_file_is_one_line(capsys, tmp_path, trained):
    empty, foreign = tmp_path / "empty.pt", tmp_path / "foreign.pt"
    empty.write_bytes(b"")
    foreign.write_bytes(b"not a checkpoint at all" * 10)
    assert "is empty" in one_line_error(capsys, "export", empty, tmp_path / "a.pt2")
    assert "torch.load failed" in one_line_error(capsys, "export", foreign, tmp_path / "b.pt2")
    assert "is an empty name" in one_line_error(capsys, "export", "", tmp_path / "c.pt2")
    assert "is an empty name" in one_line_error(capsys, "info", SPACE, "")


def test_a_checkpoint_from_before_the_checksum_still_loads(tmp_path, trained):
    checkpoint = torch.load(trained, weights_only=True)
    assert len(checkpoint.pop("sha256")) == 64
    old = tmp_path / "old.pt"
    torch.save(checkpoint, old)
    assert load_trained(old).meta == {"top1": 10.0}


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("arch"), "holds no architecture"),
    (lambda c: c.update(version=99), "version 99 is not one this vitnas reads"),
    (lambda c: c.update(version="1"), "version '1' is not one"),
    (lambda c: c.update(version=True), "version True is not one"),
    (lambda c: c.update(state_dict={"w": "text"}), "something other than named tensors"),
    (lambda c: c.update(state_dict={**c["state_dict"], 7: torch.zeros(1)}),
     "something other than named tensors"),
    (lambda c: [c.pop("sha256"), next(iter(c["state_dict"].values())).fill_(math.nan)],
     "weights hold NaN"),
    (lambda c: [c.pop("sha256"), next(iter(c["state_dict"].values())).fill_(math.inf)],
     "weights hold NaN or infinity"),
    (lambda c: c.update(meta="a string"), "'meta' is missing or not a dict"),
])
def test_a_model_file_that_is_not_ours_is_refused_by_its_format(tmp_path, trained, change,
                                                                message):
    checkpoint = torch.load(trained, weights_only=True)
    change(checkpoint)
    path = tmp_path / "tampered.pt"
    torch.save(checkpoint, path)
    with pytest.raises(ConfigError, match=message):
        load_trained(path)


def _store(path, rows=1):
    with ScoreStore(path) as store:
        store.put([StoredScore(ScoreKey("s", f'{{"a":{i}}}', "nwot", 0, "b"), i, i, 0.1)
                   for i in range(rows)])
    return path


def test_merge_reads_its_inputs_and_writes_only_its_output(capsys, tmp_path):
    first, second = _store(tmp_path / "a.sqlite", 2), _store(tmp_path / "b.sqlite", 3)
    before = first.read_bytes(), second.read_bytes()
    assert "is also an input of this command" in one_line_error(capsys, "merge", first, second,
                                                            first)
    code, out, _ = run(capsys, "merge", tmp_path / "all.sqlite", first, second)
    assert code == 0 and "3 rows" in out
    assert (first.read_bytes(), second.read_bytes()) == before


def test_merge_says_when_two_stores_disagree_on_a_score(capsys, tmp_path):
    first = _store(tmp_path / "a.sqlite", 2)
    other = tmp_path / "b.sqlite"
    with ScoreStore(other) as store:  # key 1 scored differently elsewhere, key 2 new
        store.put([StoredScore(ScoreKey("s", f'{{"a":{i}}}', "nwot", 0, "b"), 9.0, 9.0, 0.1)
                   for i in (1, 2)])
    code, out, err = run(capsys, "merge", tmp_path / "all.sqlite", first, other)
    assert code == 0 and "3 rows" in out
    assert f"{other}: 1 rows give another score" in err and str(first) not in err


# --- stores and files that are not ours, or are damaged ---------------------------------------
def _foreign(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    db.commit()
    db.close()
    return path


def test_a_foreign_sqlite_file_is_never_written(capsys, tmp_path):
    foreign = _foreign(tmp_path / "accounts.sqlite")
    before = foreign.read_bytes()
    for argv in (["merge", foreign, _store(tmp_path / "in.sqlite")],
                 ["merge", tmp_path / "out.sqlite", foreign],
                 ["search", SPACE, "--proxy", "params", "--dataset", "gaussian", "--budget", "2",
                  "--db", foreign, "--out", tmp_path / "run", "--quiet"]):
        assert "not a vitnas score store" in one_line_error(capsys, *argv)
    assert foreign.read_bytes() == before


def test_a_damaged_store_is_named_as_damaged_by_merge(capsys, tmp_path):
    store = _store(tmp_path / "in.sqlite")
    db = sqlite3.connect(store)
    db.execute("UPDATE scores SET warnings = '{broken'")
    db.commit()
    db.close()
    line = one_line_error(capsys, "merge", tmp_path / "out.sqlite", store)
    assert "is damaged" in line and "warnings" in line
    assert not (tmp_path / "out.sqlite").exists()  # every input is read before the output
    assert "not found" in one_line_error(capsys, "merge", tmp_path / "out.sqlite",
                                         _store(tmp_path / "fine.sqlite"), tmp_path / "no.sqlite")
    assert not (tmp_path / "out.sqlite").exists()


@pytest.mark.parametrize("argv, message", [
    (["info", SPACE, '{"depth": 12, "depth": 13}'], "gives the key 'depth' twice"),
    (["info", SPACE, '{"depth": 1' + "0" * 5000 + "}"], "cannot be read"),
    (["score", SPACE, "{arch}", "--proxy", "vintk:sigma=1,sigma=2", "--dataset", "gaussian"],
     "'sigma' is given twice"),
    (["score", SPACE, "{arch}", "--proxy", "lswag:splits=64", "--dataset", "gaussian",
      "--batch-size", "8"], "too small for lswag:splits=64"),
    (["calibrate", "b.json", "--space-options", "img_size=32,img_size=64", "--out", "r.json"],
     "'img_size' is given twice"),
    (["calibrate", "b.json", "--space", SPACE, "--space-options", "img_size=abc", "--out",
      "r.json"], "option img_size must be int, got str 'abc'"),
    (["demo", "--dataset", "gaussian", "--batch-size", "1"], "too small for"),
    (["search", SPACE, "--budget", "2", "--out", ""], "--out is empty"),
    (["proxies", ""], "unknown proxy ''"),
    (["info", SPACE, "a" * 300], "File name too long"),  # an input no check named
    (["export", "a" * 300, "m.pt2"], "File name too long"),
    (["search", SPACE, "--budget", "2", "--out", "a" * 300], "cannot be a path here"),
    (["sample", SPACE, "-n", "1", "--data-dir", "."], "--data-dir is read only for nasbench201"),
    (["info", SPACE, "{arch}", "--data-dir", "."], f"{SPACE} reads no data: leave it out"),
    (["score", SPACE, "{arch}", "--proxy", "lga:dataset=fashion-mnist", "--dataset",
      "gaussian"], "lga with epochs=0 does not read dataset=fashion-mnist: leave it out"),
])
def test_malformed_values_are_refused_in_one_line(capsys, tmp_path, monkeypatch, arch_file, argv,
                                                  message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps({"records": [
        {"arch": get_space(SPACE).to_json(get_space(SPACE).sample(i)), "top1": i}
        for i in range(6)]}))
    argv = [str(arch_file) if a == "{arch}" else a for a in argv]
    assert message in one_line_error(capsys, *argv)


@pytest.mark.parametrize("values, message", [
    ([70.0, 70.0, 70.0], "does not vary (every architecture has 70)"),
    ([70.0, "high", 71.0], "record 1 has top1 = 'high', not a number"),
    ([70.0, 10**400, 71.0], "not a number a float can hold"),
])
def test_benchmark_labels_that_cannot_be_ranked_are_named(capsys, tmp_path, values, message):
    space = get_space(SPACE)
    records = [{"arch": space.to_json(space.sample(i)), "top1": v} for i, v in enumerate(values)]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"space": SPACE, "metric": "top1", "records": records}))
    assert parse_benchmark(json.loads(path.read_text()), str(path)).records
    line = one_line_error(capsys, "bench", "correlate", "--benchmark", path, "--proxies",
                          "params", "--db", tmp_path / "s.sqlite", "--quiet")
    assert message in line


def _nb201_table(path, change=None):
    rows = [{"ArchitectureString": "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops),
             **{column: 50.0 for column in DATASET_COLUMNS.values()}}
            for ops in itertools.product(OPS, repeat=len(EDGES))]
    if change:
        change(rows)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    load_table.cache_clear()
    return path


def test_a_good_nb201_table_loads(tmp_path):
    assert len(load_table(_nb201_table(tmp_path / "t.csv")).strings) == 15625


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows[7].update({DATASET_COLUMNS["cifar10"]: "1e999"}), "row 9 has cifar10"),
    (lambda rows: rows[7].update({DATASET_COLUMNS["cifar100"]: "nan"}), "not a percentage"),
    (lambda rows: rows[3].update({DATASET_COLUMNS["cifar10"]: "ninety"}), "non-numeric"),
    (lambda rows: rows[5].update(ArchitectureString=rows[4]["ArchitectureString"]),
     "row 7 repeats the cell of row 6"),
    (lambda rows: rows[2].update(ArchitectureString="|conv~0|"), "row 4"),
])
def test_an_nb201_table_with_bad_rows_is_refused(tmp_path, change, message):
    with pytest.raises(DatasetError, match=message):
        load_table(_nb201_table(tmp_path / "t.csv", change))


def test_a_binary_nb201_table_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(bytes(range(256)) * 8)
    load_table.cache_clear()
    with pytest.raises(DatasetError, match="not a CSV text file"):
        load_table(path)


# --- ray: every case one line, quickly ---------------------------------------------------------
@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "nothing answers at Ray address 127.0.0.1:1"),
    ("auto", "cannot start or join Ray at auto"),
    ("host:port", "is not host:port"),
    ("host:\u00b2", "is not host:port"),  # a superscript two passes str.isdigit alone
    ("ray://127.0.0.1:1", "cannot start or join Ray at ray://127.0.0.1:1"),
])
def test_a_ray_cluster_that_cannot_be_reached_is_one_line_and_quick(capsys, tmp_path, address,
                                                                     message):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is running in this process")
    start = time.perf_counter()
    line = one_line_error(capsys, "search", SPACE, "--proxy", "params", "--budget", "2",
                          "--dataset", "gaussian", "--backend", "ray", "--address", address,
                          "--db", tmp_path / "s.sqlite", "--out", tmp_path / "run", "--quiet")
    assert message in line and time.perf_counter() - start < 30


def _closed_port() -> int:
    """A local port nothing listens on: bound, read, closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _listener(greeting: bytes | None):
    """A local port that accepts connections and says nothing (``greeting`` None) or says
    ``greeting`` and nothing more: open, but no Ray cluster."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except OSError:
                continue
            accepted.append(connection)
            if greeting:
                connection.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


RAY_DEAD_ENDS = [(None, "nothing answers at Ray address"),
                 (b"", "accepts connections but said nothing within"),
                 (b"SSH-2.0-OpenSSH_9.6\r\n", "accepts connections but did not answer as gRPC")]


@contextlib.contextmanager
def _dead_end(greeting: bytes | None):
    """An address where no Ray is: a closed port (None), a silent listener (b""), or one that
    speaks another protocol."""
    if greeting is None:
        yield f"127.0.0.1:{_closed_port()}"
        return
    with _listener(greeting or None) as address:
        yield address


@pytest.mark.parametrize("greeting, message", RAY_DEAD_ENDS)
def test_a_ray_address_closed_or_open_but_not_ray_is_refused_within_the_timeout(greeting,
                                                                                message):
    """Ray itself retries such addresses for minutes; the probe needs no Ray installed."""
    with _dead_end(greeting) as address:
        start = time.perf_counter()
        with pytest.raises(ConfigError, match=message):
            check_ray_address(address, timeout=1.0)
        assert time.perf_counter() - start < 3


@pytest.mark.parametrize("greeting, message", RAY_DEAD_ENDS)
def test_a_ray_address_closed_or_open_but_not_ray_is_one_line_in_seconds(capsys, tmp_path,
                                                                         greeting, message):
    ray = pytest.importorskip("ray", reason="the ray backend needs Ray (pip install ray)")
    if ray.is_initialized():
        pytest.skip("a Ray instance is running in this process")
    with _dead_end(greeting) as address:
        start = time.perf_counter()
        line = one_line_error(capsys, "search", SPACE, "--proxy", "params", "--budget", "2",
                              "--dataset", "gaussian", "--backend", "ray", "--address",
                              address, "--db", tmp_path / "s.sqlite", "--out", tmp_path / "run",
                              "--quiet")
        assert message in line and address in line and time.perf_counter() - start < 15


# --- long quiet work: what a user must read stays on screen -------------------------------------
def test_info_says_where_its_architecture_came_from(capsys, arch_file):
    code, out, _ = run(capsys, "info", SPACE, arch_file)
    assert code == 0 and f"(from file {arch_file})" in out.splitlines()[0]
    code, out, _ = run(capsys, "info", SPACE, arch_file.read_text(), "--json")
    assert json.loads(out)["source"] == "the command line"


def test_option_lists_read_numbers_written_in_ascii_only():
    # a look-alike digit or an underscore stays text, so the option that reads it refuses it
    # by name instead of taking another number
    assert parse_options("a=+3,b=-4,c=1.5,d=\u0663,e=1_0,f=\u0660.\u0665,g=x") == {
        "a": 3, "b": -4, "c": 1.5, "d": "\u0663", "e": "1_0", "f": "\u0660.\u0665", "g": "x"}


# --- a batch the models cannot take, and input no check named (audit of 2026-12-08) ---------
def test_the_proxy_batch_and_the_models_must_agree_on_the_task(capsys, segmentation_arch,
                                                               arch_file):
    """A classifier's loss on label maps (or the reverse) failed deep inside snip."""
    seg = ("score", "s3-tiny-micro", segmentation_arch, "--task", "segmentation",
           "--num-classes", "11", "--img-size", "16", "--proxy", "snip", "--batch-size", "2")
    assert "has one label per image" in one_line_error(capsys, *seg, "--dataset", "cifar10")
    assert "paste-fashion is a segmentation dataset but the models are classifiers" in \
        one_line_error(capsys, "score", SPACE, arch_file, "--num-classes", "11", "--proxy",
                       "snip", "--dataset", "paste-fashion", "--batch-size", "2")
    code, out, _ = run(capsys, *seg, "--dataset", "gaussian", "--json")  # random label maps
    assert code == 0 and math.isfinite(json.loads(out)["results"][0]["score"])
    _, labels = proxy_batch("gaussian", 2, 16, num_classes=11, task="segmentation")
    assert labels.shape == (2, 16, 16) and int(labels.max()) < 11


def _bench_file(tmp_path, labels):
    space = get_space(SPACE)
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"space": SPACE, "records": [
        {"arch": space.to_json(space.sample(i)), "top1": v} for i, v in enumerate(labels)]}))
    return path


@pytest.mark.parametrize("argv, message", [
    (["--split", "all", "--resamples", "0", "--split-seed", "5"], "--split-seed seeds the"),
    (["--limit", "100"], "holds 12 architectures; cannot take 100"),
])
def test_correlate_options_that_would_be_silently_unused_are_refused(capsys, tmp_path, argv,
                                                                      message):
    path = _bench_file(tmp_path, [50 + i for i in range(12)])
    assert message in one_line_error(capsys, "bench", "correlate", "--benchmark", path,
                                     "--proxies", "params", "--db", tmp_path / "s.sqlite",
                                     "--quiet", *argv)


def test_labels_that_vary_in_the_file_but_not_on_the_split_are_named(capsys, tmp_path):
    from vitnas.bench import load_benchmark
    from vitnas.bench.correlate import split_indices

    bench = load_benchmark(str(_bench_file(tmp_path, [0] * 12)))
    dev = set(split_indices(bench, "dev", 0.5, 0))
    path = _bench_file(tmp_path, [70 if i in dev else 60 + i for i in range(12)])
    line = one_line_error(capsys, "bench", "correlate", "--benchmark", path, "--proxies",
                          "params", "--split", "dev", "--db", tmp_path / "s.sqlite", "--quiet")
    assert "does not vary on the dev split" in line and "every architecture has 70" in line
    path = _bench_file(tmp_path, ["high"] * 3 + [None] * 3)
    assert "no record gives top1 a number (e.g. 'high')" in one_line_error(
        capsys, "bench", "correlate", "--benchmark", path, "--proxies", "params", "--db",
        tmp_path / "s.sqlite", "--quiet")


@pytest.mark.parametrize("argv, message", [
    (["info", SPACE, '{"arch": {arch}, "hidden_dim": 60}'], "and hidden_dim beside it"),
    (["info", SPACE, "{heads}"], "num_heads[0] must be an integer in autoformer-tiny-micro"),
    (["info", SPACE, "null"], "architecture must be a JSON object"),
    (["info", "s3-tiny-micro", '{"depth": [1]}', "--patch-size", "64"],
     "patch size 64 exceeds image size 32"),
    (["export", "model.pt", ""], "argument out: is empty"),
    (["merge", "", "a.sqlite"], "argument out: is empty"),
])
def test_architectures_and_paths_no_check_named_are_refused(capsys, tmp_path, monkeypatch,
                                                            argv, message):
    monkeypatch.chdir(tmp_path)
    arch = get_space(SPACE).to_json(get_space(SPACE).sample(0))
    heads = {**arch, "num_heads": [float(h) for h in arch["num_heads"]]}
    argv = [a.replace("{arch}", json.dumps(arch)).replace("{heads}", json.dumps(heads))
            for a in argv]
    assert message in one_line_error(capsys, *argv)
