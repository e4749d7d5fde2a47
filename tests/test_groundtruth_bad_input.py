"""Bad input to `vitnas bench build|merge|import`: one line on stderr and exit code 2, and a file
made with other settings or holding text for a label is refused, never silently extended."""

from __future__ import annotations

import json
import math

import pytest

from conftest import one_line_error
from vitnas.bench import GroundTruthConfig, build_ground_truth
from vitnas.cli import main
from vitnas.data import get_dataset
from vitnas.errors import ConfigError

SPACE = "autoformer-tiny-micro"
OPTIONS = {"img_size": 8, "patch_size": 4}


def tiny_config(n: int, **changes) -> GroundTruthConfig:
    return GroundTruthConfig(space=SPACE, n=n, space_options=OPTIONS, dataset="synthetic",
                             epochs=0.1, batch_size=8, **changes)


@pytest.fixture(scope="module")
def tiny_data():
    return (get_dataset("synthetic", "train", n=20, image_size=8),
            get_dataset("synthetic", "test", n=10, image_size=8))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_data):
    """The content of a finished two-architecture build."""
    path = tmp_path_factory.mktemp("built") / "gt.json"
    build_ground_truth(tiny_config(2), path, progress=False, datasets=tiny_data)
    return json.loads(path.read_text())


@pytest.mark.parametrize("extra, message", [
    ([], "--dataset-options limit_per_class=1 would limit the test split too; use "
         "--train-per-class 1 instead"),
    (["--train-per-class", "2"], "--dataset-options limit_per_class=1 and --train-per-class 2 "
                                 "both limit the images per class"),
])
def test_build_refuses_limit_per_class_as_a_dataset_option(tmp_path, capsys, extra, message):
    out = tmp_path / "gt.json"
    line = one_line_error(capsys, "bench", "build", SPACE, "--n", 1, "--dataset", "cifar10",
                          "--dataset-options", "limit_per_class=1", *extra, "--epochs", 1,
                          "--quiet", "--out", out)
    assert message in line and not out.exists()


def test_a_resumed_build_refuses_an_n_below_the_architectures_it_holds(tmp_path, tiny_data,
                                                                        built):
    out = tmp_path / "gt.json"
    out.write_text(json.dumps(built))
    with pytest.raises(ConfigError, match=r"holds 2 architectures \(plan slots up to 1\), more "
                                          r"than --n 1 plans.*pass --n 2 or more"):
        build_ground_truth(tiny_config(1), out, progress=False, datasets=tiny_data)
    assert json.loads(out.read_text()) == built


def test_a_resumed_build_refuses_a_label_that_is_not_a_number(tmp_path, tiny_data, built):
    content = json.loads(json.dumps(built))
    content["records"][1]["top1"] = "abc"
    out = tmp_path / "gt.json"
    out.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="gt.json: record 1 has top1 'abc', not a number"):
        build_ground_truth(tiny_config(3), out, progress=False, datasets=tiny_data)


def shard_files(tmp_path, built, label=None):
    """The two shards of the 2-architecture plan, cut from the unsharded file (shard i/2 holds
    slot i); ``label`` replaces shard 1's top1."""
    paths = []
    for index, record in enumerate(built["records"]):
        record = {"plan_index": index, **record}
        if index == 1 and label is not None:
            record["top1"] = label
        path = tmp_path / f"s{index}.json"
        path.write_text(json.dumps({**built, "shard": f"{index}/2", "records": [record]}))
        paths.append(path)
    return paths


def test_merge_of_clean_shards_writes_the_plan(tmp_path, capsys, built):
    out = tmp_path / "out.json"
    assert main(["bench", "merge", str(out), *map(str, shard_files(tmp_path, built))]) == 0
    assert json.loads(out.read_text())["records"] == built["records"]


@pytest.mark.parametrize("label, shown", [("abc", "'abc'"), ({"a": 1}, "{'a': 1}"),
                                          ([1, "x"], "[1, 'x']"), ([None, "1"], "[None, '1']")])
def test_merge_refuses_a_label_that_is_not_a_number(tmp_path, capsys, built, label, shown):
    paths = shard_files(tmp_path, built, label)
    out = tmp_path / "out.json"
    line = one_line_error(capsys, "bench", "merge", out, *paths)
    assert f"s1.json: record 0 has top1 {shown}, not a number" in line and not out.exists()


def test_import_writes_a_nan_label_as_null(tmp_path, capsys):
    import torch

    from vitnas.bench.torchfile import read_torch_pickle
    from vitnas.bench.vitbench101 import builtin_path

    rows = [dict(row) for row in read_torch_pickle(builtin_path("vit-bench-101-pit"))[:3]]
    rows[0]["c100_kd_acc"] = math.nan
    source, out = tmp_path / "nan.pth", tmp_path / "nan.json"
    torch.save(rows, source)
    assert main(["bench", "import", str(source), "--out", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text
    assert json.loads(text, parse_constant=pytest.fail)["records"][0]["c100_kd_acc"] is None
