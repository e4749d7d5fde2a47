"""ViT-Bench-101 built in, the Auto-Prox-format importer, and the restricted torch-file reader."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections import OrderedDict

import pytest
import torch

from vitnas.bench.catalog import builtin_benchmarks, load_benchmark
from vitnas.bench.torchfile import read_torch_pickle
from vitnas.bench.vitbench101 import BUILTINS, builtin_path, import_autoprox, load_builtin
from vitnas.cli import main
from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import count_params
from vitnas.spaces import get_space

AUTOFORMER_ARCH = {"hidden_dim": 192, "depth": 12, "mlp_ratio": [4.0] * 12, "num_heads": [3] * 12}
PIT_ARCH = {"base_dim": 16, "mlp_ratio": 4, "depth": [1, 4, 2], "num_heads": [2, 4, 8]}
LABELS = ("c100_base_acc", "c100_kd_acc", "flower_base_acc", "flower_kd_acc",
          "chaoyang_base_acc", "chaoyang_kd_acc")


def record(arch: dict, acc: float) -> dict:
    return {"arch": arch, **{label: acc + i for i, label in enumerate(LABELS)}}


def write_torch_zip(path, payload: bytes) -> None:
    """The layout torch.save writes: one folder with data.pkl and version."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


class WritesMarker:
    """Pickles to a call of ``exec`` that creates a marker file when unpickled."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


# --- importer ----------------------------------------------------------------------------------
def test_import_reads_a_file_written_by_torch_save_with_autoprox_options(tmp_path):
    path = tmp_path / "mine.pth"
    arch2 = {**AUTOFORMER_ARCH, "hidden_dim": 240}
    torch.save([record(AUTOFORMER_ARCH, 70.0), OrderedDict(record(arch2, 75.0))], path)
    bench = import_autoprox(path)
    assert bench.name == "mine"
    assert bench.space.name == "autoformer-tiny"
    assert (bench.space.qkv, bench.space.pool, bench.space.cls_token) == ("embed", "mean", True)
    assert (bench.space.img_size, bench.space.patch_size, bench.space.num_classes) == (224, 16, 100)
    assert bench.metrics() == list(LABELS)
    assert bench.values("c100_kd_acc") == [71.0, 76.0]
    assert [r.arch.hidden_dim for r in bench.records] == [192, 240]
    assert bench.meta["metric"] == "c100_kd_acc"


def test_import_tells_pit_from_the_arch_keys_and_options_override(tmp_path):
    path = tmp_path / "pit.pth"
    torch.save([record(PIT_ARCH, 60.0)], path)
    bench = load_benchmark(str(path), space_options={"num_classes": 102})
    assert bench.space.name == "pit-tiny"
    assert (bench.space.stride, bench.space.pool, bench.space.num_classes) == (8, "cls", 102)


def test_import_rejects_an_arch_outside_the_space_naming_the_record(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save([record(PIT_ARCH, 60.0), record({**PIT_ARCH, "base_dim": 17}, 61.0)], path)
    with pytest.raises(ConfigError, match=r"record 1: base_dim 17 is not in"):
        import_autoprox(path)


def test_import_needs_a_list_of_records(tmp_path):
    path = tmp_path / "dict.pth"
    torch.save({"arch": PIT_ARCH}, path)
    with pytest.raises(ConfigError, match="must hold a list of records"):
        import_autoprox(path)


def test_import_converts_to_json_that_loads_back(tmp_path):
    path, out = tmp_path / "pit.pth", tmp_path / "pit.json"
    torch.save([record(PIT_ARCH, 60.0)], path)
    assert main(["bench", "import", str(path), "--out", str(out)]) == 0
    content = json.loads(out.read_text())
    assert content["space"] == "pit-tiny" and content["space_options"]["stride"] == 8
    again = load_benchmark(str(out))
    assert again.space.to_json(again.records[0].arch) == PIT_ARCH
    assert again.values("c100_kd_acc") == [61.0]


# --- the restricted reader -----------------------------------------------------------------------
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    payload = pickle.dumps([{"arch": WritesMarker(marker)}])
    pickle.loads(payload)  # the payload is live: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.pth"
    write_torch_zip(path, payload)
    with pytest.raises(ConfigError, match=r"refers to builtins\.exec"):
        read_torch_pickle(path)
    assert main(["bench", "import", str(path), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "builtins.exec" in err
    assert not marker.exists()
    assert not (tmp_path / "x.json").exists()


def test_tensors_are_refused(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save([{"arch": PIT_ARCH, "c100_kd_acc": torch.tensor(1.0)}], path)
    with pytest.raises(ConfigError, match="refers to torch"):
        read_torch_pickle(path)


@pytest.mark.parametrize("damage", ["not_zip", "truncated", "no_data_pkl", "bad_pickle"])
def test_corrupt_file_is_one_line_and_exit_2(tmp_path, capsys, damage):
    path = tmp_path / "broken.pth"
    if damage == "not_zip":
        path.write_text("hello")
    elif damage == "truncated":
        torch.save([record(PIT_ARCH, 60.0)], path)
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "no_data_pkl":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/version", "3\n")
    else:
        write_torch_zip(path, pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(ConfigError, match="broken.pth"):
        read_torch_pickle(path)
    code = main(["bench", "correlate", "--benchmark", str(path), "--proxies", "params"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "broken.pth" in err


# --- the bundled benchmarks ----------------------------------------------------------------------
SHA256 = {
    "vit-bench-101-autoformer": "712ad277546d9f7f565ce07885be7e0b98dcd8d0724fdd1120f595b517436eca",
    "vit-bench-101-pit": "bdda89841d4105f99ab759e3243e7a2402929ba7a8430dac12a50256aa533bb2",
}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_bundled_benchmark_loads_unmodified_with_its_licence(name):
    path = builtin_path(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name]
    assert "Apache License" in (path.parent / "LICENSE").read_text()
    assert "Auto-Prox" in (path.parent / "NOTICE").read_text()
    bench = load_benchmark(name)
    assert bench.name == name and len(bench.records) == 100
    assert bench.metrics() == list(BUILTINS[name].labels)
    assert all(v is not None for label in bench.metrics() for v in bench.values(label))
    assert len({bench.space.key(r.arch) for r in bench.records}) == 100


# First record of each file, counted by hand from Auto-Prox's pycls/models/auto code:
# AutoFormerSub (cls token + 197 position rows, qkv = embed dim, mean of patch tokens) and PiT
# (27x27 grid, class token, depthwise pooling conv + cls Linear), 100-class heads.
AUTOPROX_PARAMS = {"vit-bench-101-autoformer": 5_321_956, "vit-bench-101-pit": 893_828}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_bundled_model_counts_match_autoprox(name):
    bench = load_builtin(name)
    with torch.device("meta"):  # shapes only: counting needs no initialised weights
        model = bench.space.build(bench.records[0].arch)
    assert count_params(model) == bench.space.params(bench.records[0].arch)
    assert count_params(model) == AUTOPROX_PARAMS[name]


def autoprox_autoformer_params(arch: dict, classes: int = 100) -> int:
    """Auto-Prox's AutoFormerSub at 224 px, patch 16: conv patch embedding, class token,
    197 position rows, blocks with qkv = 3 x embed (bias), projection, MLP int(D x ratio)."""
    dim = arch["hidden_dim"]
    total = 3 * 16 * 16 * dim + dim + 197 * dim + dim
    for ratio in arch["mlp_ratio"][: arch["depth"]]:
        hidden = int(dim * ratio)
        total += 4 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim + 2 * dim * hidden
        total += hidden + dim
    return total + 2 * dim + dim * classes + classes


def autoprox_pit_params(arch: dict, classes: int = 100) -> int:
    """Auto-Prox's PiT at 224 px, patch 16, stride 8 (27x27 grid): class token; between
    stages a depthwise 3x3 conv (groups = in width) and a Linear for the class token."""
    widths = [arch["base_dim"] * h for h in arch["num_heads"]]
    total = 3 * 16 * 16 * widths[0] + widths[0] + widths[0] * 27 * 27 + widths[0]
    for s, width in enumerate(widths):
        hidden = int(width * arch["mlp_ratio"])
        block = 4 * width + 4 * width * width + 4 * width + 2 * width * hidden + hidden + width
        total += arch["depth"][s] * block
        if s < 2:
            out = widths[s + 1]
            total += out * 9 + out + width * out + out  # conv: 1 input channel per group
    return total + 2 * widths[2] + widths[2] * classes + classes


@pytest.mark.parametrize("name, count", [("vit-bench-101-autoformer", autoprox_autoformer_params),
                                         ("vit-bench-101-pit", autoprox_pit_params)])
def test_every_bundled_arch_counts_as_autoprox_builds_it(name, count):
    bench = load_builtin(name)
    for r in bench.records:
        assert bench.space.params(r.arch) == count(bench.space.to_json(r.arch))


def test_smallest_bundled_pit_runs_at_224_px():
    bench = load_builtin("vit-bench-101-pit")
    arch = min((r.arch for r in bench.records), key=bench.space.params)
    with torch.no_grad():
        logits = bench.space.build(arch).eval()(bench.space.example_input(1))
    assert logits.shape == (1, 100)


def test_builtin_benchmark_refuses_another_space():
    with pytest.raises(ConfigError, match="belongs to space pit-tiny"):
        load_benchmark("vit-bench-101-pit", space="autoformer-tiny")


def test_bench_list_names_every_builtin_with_labels_and_source(capsys):
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("nasbench201", "vit-bench-101-autoformer", "vit-bench-101-pit"):
        assert name in out
    assert "imagenet_super_acc" in out and "Apache-2.0" in out and "Auto-Prox" in out
    assert main(["bench", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == builtin_benchmarks()
    assert {r["name"]: r["size"] for r in rows}["vit-bench-101-pit"] == 100


# --- the AutoFormer option that matches Auto-Prox's subnet ---------------------------------------
def test_mean_pool_with_class_token_ignores_the_token_in_the_head():
    space = get_space("autoformer-tiny-micro", pool="mean", cls_token="true")
    plain = get_space("autoformer-tiny-micro", pool="mean")
    arch = space.sample(0)
    assert space.params(arch) - plain.params(arch) == 2 * arch.hidden_dim
    model = space.build(arch)
    features = model.forward_features(space.example_input(2))
    assert features.shape[1] == (space.img_size // space.patch_size) ** 2 + 1
    changed = features.clone()
    changed[:, 0] += 5.0
    assert torch.equal(model.forward_head(features), model.forward_head(changed))
    assert space.key(arch) == plain.key(arch)


def test_class_pooling_without_a_class_token_is_refused():
    with pytest.raises(ArchitectureError, match="needs cls_token"):
        get_space("autoformer-tiny", pool="cls", cls_token=False)
    with pytest.raises(ArchitectureError, match="true or false"):
        get_space("autoformer-tiny", pool="mean", cls_token="maybe")
