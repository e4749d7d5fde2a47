import json

import pytest
import torch

from vitnas.cli import main
from vitnas.data import SyntheticDataset
from vitnas.errors import ConfigError
from vitnas.spaces import get_space
from vitnas.train import TrainConfig, train_model
from vitnas.trained import MAX_EXPORT_BATCH, export_trained, load_trained, save_trained

ARCH = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12}


def test_saved_model_reloads_and_exports_with_equal_outputs(tmp_path):
    options = {"patch_size": 8, "img_size": 16, "num_classes": 4}
    space = get_space("autoformer-tiny-micro", **options)
    arch = space.validate(ARCH)
    result = train_model(space.build(arch, seed=1), SyntheticDataset(64, 4, 16, seed=0),
                         TrainConfig(epochs=1, batch_size=32))
    trained = result.model.eval()
    path = save_trained(tmp_path / "model.pt", trained, space, arch, options, {"top1": 50.0})
    x = space.example_input(1)

    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == space.to_json(arch) and raw["space_options"] == options
    loaded = load_trained(path)
    assert loaded.meta == {"top1": 50.0} and loaded.space.patch_size == 8
    with torch.no_grad():
        assert torch.equal(loaded.model(x), trained(x))
        exported = torch.export.load(export_trained(path, tmp_path / "model.pt2"))
        assert [(int(r.lower), int(r.upper)) for r in exported.range_constraints.values()] == [
            (1, MAX_EXPORT_BATCH)]  # the batch, and only the batch, is free within its bounds
        program = exported.module()
        for batch in (1, 3, 8):  # any batch by default
            x = space.example_input(batch)
            assert torch.allclose(program(x), trained(x), atol=1e-6)
        fixed = export_trained(path, tmp_path / "fixed.pt2", batch_size=4)
        program = torch.export.load(fixed).module()
        x = space.example_input(4)
        assert torch.allclose(program(x), trained(x), atol=1e-6)
        with pytest.raises(Exception, match="4"):  # a fixed batch is a guard of the program
            program(space.example_input(2))


def test_train_out_saves_a_model_that_export_turns_into_a_program(capsys, tmp_path):
    model, program = tmp_path / "runs" / "model.pt", tmp_path / "model.pt2"
    code = main(["train", "autoformer-tiny-micro", json.dumps(ARCH), "--patch-size", "8",
                 "--dataset", "synthetic", "--epochs", "0.05", "--batch-size", "50",
                 "--device", "cpu", "--quiet", "--json", "--out", str(model)])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["out"] == str(model)
    loaded = load_trained(model)
    assert loaded.meta["top1"] == record["top1"] and loaded.space.patch_size == 8
    assert record["resumed_from_step"] is None
    assert not (tmp_path / "runs" / "model.state.pt").exists()  # saved: nothing to resume
    assert main(["export", str(model), str(program)]) == 0
    assert f"({'any batch'})" in capsys.readouterr().out
    x = loaded.space.example_input(2)
    with torch.no_grad():
        assert torch.allclose(torch.export.load(program).module()(x), loaded.model(x), atol=1e-6)


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "is not a vitnas trained model"),
    ({"format": "other"}, "no format"),
    ({"format": "vitnas-trained-model", "space": "autoformer-tiny-micro"}, "'space_options'"),
])
def test_a_file_that_is_not_a_trained_model_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=message):
        load_trained(path)
    assert main(["export", str(path), str(tmp_path / "out.pt2")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
