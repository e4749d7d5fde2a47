"""`vitnas train` with dataset options beside --train-per-class: one line and exit code 2,
refused before any data is read, never a TypeError or a score on a limited test split."""

from __future__ import annotations

import json

import pytest

from vitnas.cli import main
from vitnas.spaces import get_space

SPACE = "autoformer-tiny-micro"


@pytest.fixture
def arch_file(tmp_path):
    space = get_space(SPACE)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(space.to_json(space.sample(0))))
    return path


@pytest.mark.parametrize("extra, message", [
    ([], "--dataset-options limit_per_class=1 would limit the test split too; use "
         "--train-per-class 1 instead"),
    (["--train-per-class", "2"], "--dataset-options limit_per_class=1 and --train-per-class 2 "
                                 "both limit the images per class"),
])
def test_train_refuses_limit_per_class_as_a_dataset_option(capsys, arch_file, extra, message):
    code = main(["train", SPACE, str(arch_file), "--dataset", "cifar10", "--dataset-options",
                 "limit_per_class=1", *extra, "--epochs", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_train_names_the_flag_a_dataset_cannot_limit_by(capsys, arch_file):
    code = main(["train", SPACE, str(arch_file), "--dataset", "synthetic", "--train-per-class",
                 "2", "--epochs", "1", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "cannot limit the images per class: leave out --train-per-class" in lines[0]
