import json

import pytest
import torch

from vitnas.cli import main

TINY = ["--dataset", "synthetic", "--embed-dim", "16", "--depth", "1", "--num-heads", "2",
        "--holdout-per-class", "20", "--epochs", "1", "--batch-size", "64", "--threads", "1",
        "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """train -> label -> train-tla on synthetic data, once for the module."""
    folder = tmp_path_factory.mktemp("revit")
    revit, labels, tla = folder / "revit.pt", folder / "labels.pt", folder / "tla.pt"
    assert main(["revit", "train", "--out", str(revit), *TINY]) == 0
    assert main(["revit", "label", str(revit), "--out", str(labels)]) == 0
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(tla),
                 "--epochs", "2", "--threads", "1"]) == 0
    return folder, revit, labels, tla


def test_label_step_labels_exactly_the_held_out_images(pipeline):
    _, _, labels, _ = pipeline
    payload = torch.load(labels, weights_only=True)
    assert len(payload["indices"]) == 200  # 20 per class x 10 classes, never trained on
    assert payload["logits"].shape == (3, 200, 10)
    assert sum(payload["meta"]["histogram"]) == 200


def test_eval_writes_every_policy_with_costs_and_throughput(pipeline, capsys):
    folder, revit, _, tla = pipeline
    out = folder / "eval" / "eval.json"
    code, text, _ = run(capsys, "revit", "eval", revit, tla, "--out", out, "--repeats", "1",
                        "--threads", "1", "--quiet")
    assert code == 0 and "| TLA" in text and "| cascade" in text and "| oracle" in text
    record = json.loads(out.read_text())
    names = [p["name"] for p in record["measured"]]
    assert names[:3] == ["length 0 (16 tokens)", "length 1 (36 tokens)", "length 2 (64 tokens)"]
    tla = next(p for p in record["measured"] if p["name"] == "TLA")
    smallest = record["length_flops"][0] + record["assigner_flops"]
    assert tla["flops"] >= smallest  # the assigner's cost is in the TLA's row
    oracle = next(p for p in record["measured"] if p["name"] == "oracle")
    best_fixed = max(p["accuracy"] for p in record["measured"] if p["policy"] == "fixed")
    assert oracle["accuracy"] >= best_fixed
    for point in record["measured"]:
        assert point["images_per_second"] > 0
        assert abs(point["accuracy"] - point["cached_accuracy"]) <= 1.0
    assert out.with_suffix(".md").exists() and out.with_suffix(".png").stat().st_size > 0


def test_train_is_reproducible_from_its_seed(pipeline, tmp_path):
    _, revit, _, _ = pipeline
    again = tmp_path / "again.pt"
    assert main(["revit", "train", "--out", str(again), *TINY]) == 0
    first, second = (torch.load(p, weights_only=True)["state_dict"] for p in (revit, again))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_fold_models_give_out_of_fold_labels_for_every_image(tmp_path, capsys):
    models = []
    for fold in range(2):
        path = tmp_path / f"fold{fold}.pt"
        assert main(["revit", "train", "--out", str(path), "--fold", f"{fold}/2",
                     "--dataset", "synthetic", "--embed-dim", "16", "--depth", "1",
                     "--num-heads", "2", "--epochs", "0.2", "--threads", "1", "--quiet"]) == 0
        models.append(path)
    code, out, _ = run(capsys, "revit", "label", *models, "--out", tmp_path / "oof.pt")
    assert code == 0 and "1000 unseen training images labelled" in out
    code, _, err = run(capsys, "revit", "label", models[0], models[0], "--out",
                       tmp_path / "bad.pt")
    assert code == 2 and "overlap" in err


@pytest.mark.parametrize("argv, problem", [
    (["revit", "eval", "missing.pt", "missing-tla.pt"], "missing.pt: no such file"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--fractions", "0,1"],
     "fractions must lie in (0, 1]"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--img-size", "64"],
     "the ReViT config says 64 px"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--fold", "two/five"],
     "fold 'two/five' must be i/k"),
])
def test_bad_input_gives_one_line_errors(capsys, tmp_path, monkeypatch, argv, problem):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1


def test_a_file_of_the_wrong_kind_is_named_in_the_error(pipeline, capsys, tmp_path):
    _, revit, labels, _ = pipeline
    code, _, err = run(capsys, "revit", "eval", revit, labels)
    assert code == 2 and "expected a vitnas-token-length-assigner file" in err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "revit", "label", garbage, "--out", tmp_path / "l.pt")
    assert code == 2 and "not a readable vitnas file" in err


@pytest.mark.parametrize("payload, message", [
    ({"format": "vitnas-revit"}, "has no 'config'"),
    ({"format": "vitnas-revit", "config": {"embed_dim": "wide"}, "state_dict": {}, "meta": {}},
     "config cannot build a model"),
    ({"format": "vitnas-revit", "config": {"depth": -2}, "state_dict": {}, "meta": {}},
     "weights do not fit its ReViT config"),
])
def test_a_tampered_revit_checkpoint_is_one_line(capsys, tmp_path, payload, message):
    path = tmp_path / "revit.pt"
    torch.save(payload, path)
    code = main(["revit", "label", str(path), "--out", str(tmp_path / "labels.pt")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
