"""``benchmarks/shape_tilt.py``: tilted size counts judged against the committed boards."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tilt():
    return benchmark_script("shape_tilt")


class FakeTask:
    def __init__(self, params, depth, width):
        self.features = {"params": np.array(params, float), "depth": np.array(depth, float),
                         "width": np.array(width, float)}


def test_a_depth_tilt_reorders_equal_sized_models_and_a_width_tilt_the_other_way(tilt):
    task = FakeTask(params=[1e6, 1e6, 2e6], depth=[12, 14, 12], width=[240, 192, 240])
    assert np.argsort(tilt.tilted(task, "depth", 0.0))[-1] == 2
    deeper = tilt.tilted(task, "depth", 0.1)
    assert deeper[1] > deeper[0]
    narrower = tilt.tilted(task, "width", -1.0)
    assert narrower[1] > narrower[0]
    assert tilt.tilted(task, "width", 1.0)[0] > tilt.tilted(task, "width", 1.0)[1]


def test_the_zero_tilt_reproduces_the_boards_params_gap_and_dev_keeps_params(tilt, monkeypatch,
                                                                                 tmp_path):
    monkeypatch.chdir(ROOT)
    assert tilt.main(["--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "shape_tilt.json").read_text())
    assert result["chosen"] == "params"
    # the scoreboard's own default numbers (selection.json), computed by another script
    selection = json.loads((ROOT / "results/vitbench101/selection.json").read_text())
    board = selection["default_numbers"]["vit-bench-101-autoformer/c100_kd_acc/test"]
    row = result["test_written_after_choice"]["autoformer test"]["params"]
    assert row["labels"]["c100_kd_acc"]["gap"] == pytest.approx(board["delta_vs_shape"], abs=1e-9)
    assert result["dev"]["params"]["worst_gap"] == pytest.approx(selection["default_worst_gap"],
                                                                 abs=1e-9)
