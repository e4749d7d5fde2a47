"""Resumable benchmark scripts never pass another run's results off as this one's: a file of
other settings is kept apart or refused, and a line cut short by a kill is dropped."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import benchmark_script
from vitnas.errors import ConfigError, reported


def line(cell: str, batch_size: int, scores: dict, seed: int = 0) -> str:
    return json.dumps({"arch": cell, "batch_size": batch_size, "seed": seed, "accuracy": 90.0,
                       "scores": scores, "seconds": {k: 0.1 for k in scores}}) + "\n"


def test_nb201_kendall_reuses_only_cells_of_its_own_batch_and_seed(tmp_path):
    kendall = benchmark_script("nb201_kendall")
    out = tmp_path / "k.jsonl"
    out.write_text(line("a", 8, {"nwot": 1.0, "synflow": 2.0}) + line("a", 16, {"nwot": 5.0})
                   + line("b", 16, {"nwot": 6.0}) + line("a", 16, {"params": 7.0}, seed=1)
                   + line("a", 16, {"params": 3.0}))
    done = kendall.read_done(out, 16, 0)
    assert done["a"]["scores"] == {"nwot": 5.0, "params": 3.0}  # later lines add, never batch 8
    assert set(done) == {"a", "b"} and kendall.read_done(out, 8, 0)["a"]["scores"] == {
        "nwot": 1.0, "synflow": 2.0}


def test_nb201_kendall_drops_a_line_cut_short_and_refuses_a_broken_file(tmp_path, capsys):
    kendall = benchmark_script("nb201_kendall")
    out = tmp_path / "k.jsonl"
    whole = line("a", 16, {"nwot": 5.0})
    out.write_text(whole + line("b", 16, {"nwot": 6.0})[:30])  # killed mid-write
    assert set(kendall.read_done(out, 16, 0)) == {"a"}
    assert out.read_text() == whole and "unfinished last line" in capsys.readouterr().out
    out.write_text("not json\n" + whole)
    with pytest.raises(ConfigError, match="line 1 is not JSON"):
        kendall.read_done(out, 16, 0)
    out.write_text(json.dumps({"arch": "a", "scores": {}}) + "\n")  # no settings: refused
    with pytest.raises(ConfigError, match="does not say its batch size and seed"):
        kendall.read_done(out, 16, 0)


def test_the_assigner_study_refuses_a_file_of_other_settings(tmp_path, monkeypatch, capsys):
    study = benchmark_script("revit_assigner_study")
    out = tmp_path / "study.json"
    out.write_text(json.dumps({"labels": "l.pt", "revit": "r.pt", "epochs": 1, "folds": 3,
                               "rows": [{"variant": "hard/stats"}]}))
    monkeypatch.setattr(sys, "argv", ["revit_assigner_study.py", "l.pt", "--revit", "r.pt",
                                      "--epochs", "2", "--folds", "2", "--out", str(out)])
    assert reported(study.main, "revit_assigner_study") == 2
    err = capsys.readouterr().err
    assert "epochs 1 (now 2), folds 3 (now 2)" in err and err.count("\n") == 1
    assert json.loads(out.read_text())["epochs"] == 1  # left as it was


def test_an_interrupted_script_says_one_line_and_exits_130(capsys):
    def interrupted() -> None:
        raise KeyboardInterrupt

    assert reported(interrupted, "some_study") == 130
    assert capsys.readouterr().err == "some_study: interrupted\n"


def test_naslib_crosscheck_refuses_cells_of_other_settings_unless_fresh(tmp_path):
    crosscheck = benchmark_script("naslib_crosscheck")
    out = tmp_path / "x.json"
    out.write_text(json.dumps({"settings": {"batch_size": 8, "seed": 0}, "cells": {}}))
    with pytest.raises(ConfigError, match="other settings .* pass --fresh"):
        crosscheck.main(["--out", str(out), "--batch-size", "16", "--data-dir",
                         str(tmp_path)])
    assert json.loads(out.read_text())["settings"]["batch_size"] == 8


def test_a_bare_out_of_memory_error_is_still_one_line(capsys):
    def exhausted() -> None:
        raise MemoryError  # what a failed allocation in Python raises: no message

    assert reported(exhausted, "vitnas") == 2
    assert capsys.readouterr().err == ("vitnas: error: out of memory (MemoryError); try a "
                                       "smaller batch, image or model\n")
