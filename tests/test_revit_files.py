"""ReViT, labels and assigner files that exist but are wrong: one clear error, never a run."""

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.revit import artifacts
from vitnas.revit.assigner import AssignerConfig, TokenLengthAssigner


@pytest.fixture()
def assigner_file(tmp_path):
    torch.manual_seed(0)
    assigner = TokenLengthAssigner(AssignerConfig.from_dict({}))
    path = tmp_path / "tla.pt"
    artifacts.save_assigner(path, assigner, {"note": "ok"})
    return path


def rewrite(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def test_a_saved_assigner_loads_back_with_its_meta(assigner_file):
    _, meta = artifacts.load_assigner(assigner_file)
    assert meta == {"note": "ok"}


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(meta="a string"), "'meta' is a str"),
    (lambda p: p.update(meta=[]), "'meta' is a list"),
    (lambda p: p.update(config="{}"), "'config' is a str"),
    (lambda p: p.pop("meta"), "has no 'meta'"),
    (lambda p: p.pop("config"), "has no 'config'"),
    (lambda p: p["state_dict"].update({next(iter(p["state_dict"])): "x"}),
     "other than named tensors"),
])
def test_wrong_contents_are_refused(assigner_file, change, message):
    rewrite(assigner_file, change)
    with pytest.raises(ConfigError, match=message):
        artifacts.load_assigner(assigner_file)


def test_flipped_weights_are_named_as_damaged(assigner_file):
    def flip(payload):
        weights = payload["state_dict"]
        name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel())
        weights[name] = weights[name].clone()
        weights[name].view(-1)[0] += 1.0

    rewrite(assigner_file, flip)
    with pytest.raises(ConfigError, match="damaged"):
        artifacts.load_assigner(assigner_file)


def test_a_file_from_before_the_checksum_still_loads(assigner_file):
    rewrite(assigner_file, lambda p: p.pop("digest"))
    assert artifacts.load_assigner(assigner_file)[1] == {"note": "ok"}


def labels_payload(n=5, lengths=3, classes=4):
    return {"indices": torch.arange(n), "logits": torch.zeros(lengths, n, classes),
            "targets": torch.zeros(n, dtype=torch.long), "labels": torch.zeros(n, dtype=torch.long),
            "meta": {}}


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(labels=[0, 0, 0, 0, 0]), "'labels' is a list"),
    (lambda p: p.update(targets=torch.zeros(4, dtype=torch.long)), "disagree in size"),
    (lambda p: p.update(logits=torch.zeros(5, 4)), "disagree in size"),
    (lambda p: p.update(logits=torch.zeros(3, 6, 4)), "disagree in size"),
    (lambda p: p.update(meta="x"), "'meta' is not a mapping"),
    (lambda p: p.pop("indices"), "has no 'indices'"),
])
def test_tampered_labels_files_are_refused(tmp_path, change, message):
    payload = labels_payload()
    change(payload)
    path = tmp_path / "labels.pt"
    artifacts.save_labels(path, payload)
    with pytest.raises(ConfigError, match=message):
        artifacts.load_labels(path)


def test_a_well_formed_labels_file_loads(tmp_path):
    path = tmp_path / "labels.pt"
    artifacts.save_labels(path, labels_payload())
    assert artifacts.load_labels(path)["logits"].shape == (3, 5, 4)
