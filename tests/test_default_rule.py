"""``benchmarks/default_rule.py``: which labels choose the zero-shot default, judged where
nothing was chosen."""

import json
from pathlib import Path

import pytest

from conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rule():
    return benchmark_script("default_rule")


def test_a_rows_worst_gap_is_its_largest_shortfall_against_each_boards_reference(rule):
    boards = [({"params": 0.5, "depth": 0.7, "nwot": 0.6}, "depth"),
              ({"params": 0.8, "depth": 0.2, "nwot": 0.3}, "params")]
    chosen = rule.worst_gaps(boards)
    assert chosen["params"] == pytest.approx(-0.2) and chosen["nwot"] == pytest.approx(-0.5)
    assert rule.worst_gaps(boards, "params")["depth"] == pytest.approx(-0.6)
    # a row missing from one board does not compete
    assert "nwot" not in rule.worst_gaps([boards[0], ({"params": 0.1, "depth": 0.2}, "depth")])


def test_the_kd_rule_reproduces_the_committed_default(rule, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert rule.main(["--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "default_rule.json").read_text())
    selection = json.loads((ROOT / "results/vitbench101/selection.json").read_text())
    kd = result["choices"]["kd"]
    assert kd["chosen"] == selection["default"]
    assert kd["dev_worst_gap"] == pytest.approx(selection["default_worst_gap"])
    assert result["written_after_test"] is True
