import json
import signal
import subprocess
import sys
import time

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
    code, text, _ = run(capsys, "revit", "eval", revit, tla, "--out", out, "--repeats", "2",
                        "--bootstrap", "50", "--tome-rates", "4,8", "--threads", "1", "--quiet")
    assert code == 0 and "| TLA" in text and "| cascade" in text and "| oracle" in text
    assert "| confidence-skip" in text and "| fair cascade" in text and "| ToMe r=8" in text
    assert "the fixed-length curve" in text and "simple peers' curve" in text
    record = json.loads(out.read_text())
    names = [p["name"] for p in record["measured"]]
    # the intermediate grids 5 and 7 are measured too (the resize route runs any grid)
    assert names[:5] == [f"fixed {t} tokens" for t in (16, 25, 36, 49, 64)]
    assert record["command"].startswith("vitnas revit eval")
    assert len(record["git"]["commit"]) == 40  # which source produced it
    assert record["pool"]["source"] == str(pipeline[2])  # the TLA's labels: chosen there
    tla = next(p for p in record["measured"] if p["name"] == "TLA")
    smallest = record["length_flops"][0] + record["assigner_flops"]
    assert tla["flops"] >= smallest  # the assigner's cost is in the TLA's row
    entry = record["comparisons"]["TLA"]
    for key in ("throughput_vs_fixed_curve", "throughput_vs_simple_peers"):
        assert len(entry[key]["per_round"]) == 2 and len(entry[key]["ci"]) == 2
    assert set(entry["throughput_vs"]) == {"confidence-skip", "fair cascade", "cascade", "ToMe"}
    assert entry["matched"] and entry["verdict"]
    for point in record["measured"]:
        assert len(point["seconds"]) == 2 and len(point["batch_seconds"][0]) == 1
        if point["policy"] in ("confidence-skip", "fair cascade", "cascade"):
            assert point["pool_accuracy"] is not None and point["chosen_for"]
    oracle = next(p for p in record["measured"] if p["name"] == "oracle")
    best_fixed = max(p["accuracy"] for p in record["measured"] if p["policy"] == "fixed")
    assert oracle["accuracy"] >= best_fixed
    for point in record["measured"]:
        assert point["images_per_second"] > 0
        assert point["accuracy"] == point["cached_accuracy"]
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
     "argument --fractions: must be > 0, got 0"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--img-size", "64"],
     "the ReViT config says 64 px"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--fold", "two/five"],
     "fold 'two/five' must be i/k"),
    (["revit", "train", "--out", "x.pt", "--dataset", "synthetic", "--fold", "\u00b2/5"],
     "must be i/k"),
    (["revit", "eval", "r.pt", "t.pt", "--merge-rates", "two"], "argument --merge-rates"),
    (["revit", "eval", "r.pt", "t.pt", "--merge-rates", "2,0"], "argument --merge-rates"),
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


@pytest.mark.parametrize("older_file", [False, True])
def test_peers_are_never_chosen_on_a_pool_another_revit_labelled(pipeline, capsys, tmp_path,
                                                                  older_file):
    from vitnas.revit import artifacts

    _, revit, labels, tla = pipeline
    payload = torch.load(labels, weights_only=True)
    payload["meta"]["models"] = [str(tmp_path / "another.pt")]
    if older_file:  # from before the weights digests: matched by the paths it names
        del payload["meta"]["model_digests"]
    else:
        payload["meta"]["model_digests"] = ["0" * 64]
    other = tmp_path / "other_labels.pt"
    artifacts.save(other, payload)
    code, _, err = run(capsys, "revit", "eval", revit, tla, "--pool", other, "--repeats", "1")
    assert code == 2 and "labelled by" in err and len(err.strip().splitlines()) == 1
    assert ("another file" if older_file else "other weights") in err


@pytest.mark.parametrize("payload, message", [
    ({"format": "vitnas-revit"}, "has no 'config'"),
    ({"format": "vitnas-revit", "config": {"embed_dim": "wide"}, "state_dict": {}, "meta": {}},
     "config cannot build a model"),
    ({"format": "vitnas-revit", "config": {"depth": -2}, "state_dict": {}, "meta": {}},
     "config cannot build a model (ReViT depth must be a whole number >= 1"),
    ({"format": "vitnas-revit", "config": {"embed_dim": 100}, "state_dict": {}, "meta": {}},
     "not divisible by 3 heads"),
    ({"format": "vitnas-revit", "config": {"depth": 2}, "state_dict": {}, "meta": {}},
     "weights do not fit its ReViT config"),
])
def test_a_tampered_revit_checkpoint_is_one_line(capsys, tmp_path, payload, message):
    path = tmp_path / "revit.pt"
    torch.save(payload, path)
    code = main(["revit", "label", str(path), "--out", str(tmp_path / "labels.pt")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


SMALL = ["--dataset", "synthetic", "--embed-dim", "16", "--depth", "1", "--num-heads", "2",
         "--holdout-per-class", "20", "--batch-size", "32", "--threads", "1", "--quiet"]


def test_resume_after_sigkill_mid_run_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    killed, state = tmp_path / "killed.pt", tmp_path / "killed.state.pt"
    epochs = 12  # 12 steps each (400 training images, batch 32): the kill lands mid-run
    argv = ["revit", "train", *SMALL, "--holdout-per-class", "60", "--epochs", str(epochs)]
    process = subprocess.Popen([sys.executable, "-m", "vitnas", *argv, "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-500:]
    assert not killed.exists()  # it died mid-run, after at least one epoch's state
    saved = torch.load(state, weights_only=True)
    assert 1 <= saved["epoch"] < epochs
    assert main([*argv, "--out", str(killed), "--resume"]) == 0
    resumed = torch.load(killed, weights_only=True)
    assert resumed["meta"]["resumed_from_step"] >= saved["step"]
    straight = tmp_path / "straight.pt"
    assert main([*argv, "--out", str(straight)]) == 0
    reference = torch.load(straight, weights_only=True)
    assert reference["meta"]["resumed_from_step"] is None
    for key, value in reference["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][key], value, atol=1e-6), key
    assert resumed["meta"]["steps"] == reference["meta"]["steps"]
    # the training curve spans both sittings: one mean loss per epoch, equal to the straight run's
    assert len(resumed["meta"]["epoch_losses"]) == epochs
    assert resumed["meta"]["epoch_losses"] == pytest.approx(reference["meta"]["epoch_losses"],
                                                            abs=1e-3)


def test_resume_refuses_the_state_of_another_run(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert main(["revit", "train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    code, _, err = run(capsys, "revit", "train", *SMALL, "--epochs", "1", "--lr", "0.01",
                       "--out", out, "--resume")
    assert code == 2 and "recipe.lr was 0.001, now 0.01" in err
    assert len(err.strip().splitlines()) == 1


MICRO_ARCH = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [3.5] * 12, "num_heads": [3] * 12}


def test_a_searched_architecture_goes_through_train_label_train_tla_eval(tmp_path, capsys):
    arch_file = tmp_path / "best.json"
    arch_file.write_text(json.dumps({"arch": MICRO_ARCH, "score": 1.0}))  # a search record
    revit, labels, tla = tmp_path / "revit.pt", tmp_path / "labels.pt", tmp_path / "tla.pt"
    assert main(["revit", "train", "--out", str(revit), "--space", "autoformer-tiny-micro",
                 "--arch-file", str(arch_file), "--dataset", "synthetic", "--epochs", "0.1",
                 "--holdout-per-class", "10", "--threads", "1", "--quiet"]) == 0
    checkpoint = torch.load(revit, weights_only=True)
    assert checkpoint["config"]["arch"] == MICRO_ARCH
    assert checkpoint["config"]["head_dim"] == 16 and checkpoint["config"]["embed_dim"] == 48
    assert main(["revit", "label", str(revit), "--out", str(labels), "--threads", "1"]) == 0
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(tla),
                 "--epochs", "1", "--folds", "2", "--bootstrap", "40", "--threads", "1"]) == 0
    code, text, _ = run(capsys, "revit", "eval", revit, tla, "--repeats", "1", "--bootstrap",
                        "50", "--fixed-grids", "4,8", "--threads", "1", "--quiet")
    assert code == 0 and "| TLA" in text and "fixed 64 tokens" in text


@pytest.mark.parametrize("target, features, weighting", [
    ("margin", "both", "stakes"), ("correct", "stats", "balanced"), ("loss", "pixels", "none")])
def test_every_assigner_option_trains_calibrates_and_reports_against_the_prior(
        pipeline, tmp_path, target, features, weighting, capsys):
    _, revit, labels, _ = pipeline
    out = tmp_path / "tla.pt"
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(out),
                 "--target", target, "--features", features, "--weighting", weighting,
                 "--epochs", "1", "--folds", "2", "--bootstrap", "40", "--threads", "1"]) == 0
    assert "cross-fitting: fold 2/2 trained" in capsys.readouterr().err  # never minutes of silence
    meta = torch.load(out, weights_only=True)["meta"]
    report = meta["out_of_fold"]
    assert report["images"] == 200 and len(report["accuracy_minus_prior_ci"]) == 2
    # the AUC's populations recomputed from the labels file: "needs more" = the shortest length
    # is wrong and a longer one right, among images some length gets right
    payload = torch.load(labels, weights_only=True)
    correct = payload["logits"].argmax(-1) == payload["targets"]
    decidable = correct.any(dim=0)
    assert report["needs_more_decidable"] == int(decidable.sum())
    assert report["needs_more_positives"] == int((~correct[0] & decidable).sum())
    # the reference score (1 - the short pass's confidence) by a hand Mann-Whitney U
    short = 1 - payload["logits"][0].float().softmax(-1).amax(-1)
    positive = (~correct[0] & decidable)[decidable]
    scores = short[decidable]
    pos, neg = scores[positive], scores[~positive]
    if len(pos) and len(neg):
        wins = (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :])
        assert report["reference_auc"] == pytest.approx(float(wins.mean()), abs=1e-4)
        low, high = report["needs_more_auc_ci"]
        assert 0 <= low <= high <= 1
    assert meta["calibration"]["tla"]["flops"] > 0
    assert meta["command"].startswith("vitnas revit train-tla")


def test_eval_with_merge_rates_chooses_merged_peers_on_the_pool(pipeline, capsys, tmp_path):
    from vitnas.revit import artifacts

    _, revit, labels, tla = pipeline
    out = tmp_path / "merged.json"
    code, text, _ = run(capsys, "revit", "eval", revit, tla, "--out", out, "--repeats", "1",
                        "--bootstrap", "40", "--tome-rates", "2", "--merge-rates", "2,4",
                        "--threads", "1", "--quiet")
    assert code == 0 and "| fair cascade + ToMe" in text and "| confidence-skip + ToMe" in text
    record = json.loads(out.read_text())
    merged = [p for p in record["measured"] if p["policy"].endswith("+ ToMe")]
    assert merged
    for point in merged:
        assert point["rule"]["merge"][0] == 0 and set(point["rule"]["merge"][1:]) <= {0, 2, 4}
        assert point["pool_accuracy"] is not None and point["chosen_for"]
        assert "ToMe" in record["comparisons"][point["name"]]["throughput_vs"]
    # a pool whose labels no longer match its images cannot run merged passes
    payload = torch.load(labels, weights_only=True)
    payload["targets"] = (payload["targets"] + 1) % 10
    shifted = tmp_path / "shifted.pt"
    artifacts.save(shifted, payload)
    code, _, err = run(capsys, "revit", "eval", revit, tla, "--pool", shifted, "--merge-rates",
                       "2", "--repeats", "1", "--threads", "1", "--quiet")
    assert code == 2 and "do not match its labels" in err and len(err.strip().splitlines()) == 1


def test_the_eval_json_records_the_commit_the_run_started_from(pipeline, tmp_path,
                                                               monkeypatch):
    from vitnas.revit import pipeline as steps

    _, revit, _, tla = pipeline
    calls = []
    states = iter([{"commit": "a" * 40, "dirty": False, "changed": []},
                   {"commit": "b" * 40, "dirty": True, "changed": ["x.py"]}])
    monkeypatch.setattr(steps, "git_revision", lambda: calls.append("git") or next(states))
    measure = steps.evaluate_revit
    monkeypatch.setattr(steps, "evaluate_revit",
                        lambda *a, **k: calls.append("measure") or measure(*a, **k))
    out = tmp_path / "eval.json"
    steps.eval_step(revit, tla, out, repeats=1, tome_rates=(), resamples=0)
    assert calls == ["git", "measure"]
    assert json.loads(out.read_text())["git"]["commit"] == "a" * 40


def test_a_router_on_the_shortest_pass_trains_and_is_evaluated_end_to_end(
        pipeline, tmp_path, capsys):
    _, revit, labels, _ = pipeline
    router = tmp_path / "router.pt"
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(router),
                 "--target", "correct", "--features", "coarse", "--epochs", "2", "--folds", "2",
                 "--bootstrap", "40", "--threads", "1"]) == 0
    meta = torch.load(router, weights_only=True)["meta"]
    assert meta["features"] == "coarse" and meta["out_of_fold"]["images"] == 200
    out = tmp_path / "eval.json"
    code, text, _ = run(capsys, "revit", "eval", revit, router, "--out", out, "--repeats", "1",
                        "--bootstrap", "40", "--tome-rates", "", "--threads", "1", "--quiet")
    assert code == 0 and "| TLA" in text
    record = json.loads(out.read_text())
    point = next(p for p in record["measured"] if p["name"] == "TLA")
    # every image pays the shortest pass, and the cached replay equals the end-to-end run
    assert point["flops"] >= record["length_flops"][0] + record["assigner_flops"]
    assert point["accuracy"] == point["cached_accuracy"]
    sweep = record["curves"]["tla:router"]
    assert all(p["flops"] >= record["length_flops"][0] for p in sweep)


@pytest.mark.parametrize("argv, problem", [
    (["--arch", "{not json"], "not valid JSON"),
    (["--arch", json.dumps(MICRO_ARCH), "--embed-dim", "64"], "cannot be combined"),
    (["--space", "nasbench201", "--arch", "0"], "AutoFormer-family"),
    (["--space", "autoformer-tiny-micro"], "--space needs an architecture"),
    (["--arch", json.dumps({**MICRO_ARCH, "depth": 99})], "depth"),
])
def test_bad_architectures_are_one_line_errors(capsys, tmp_path, argv, problem):
    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", "--dataset",
                       "synthetic", *argv)
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1


def test_an_assigner_file_from_before_the_new_options_still_loads(pipeline, tmp_path):
    from vitnas.revit import artifacts

    _, _, _, tla = pipeline
    payload = torch.load(tla, weights_only=True)
    for key in ("platt_scale", "platt_shift"):
        del payload["state_dict"][key]
    for key in ("target", "features", "image_size", "detail_sizes", "costs"):
        del payload["config"][key]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assigner, _ = artifacts.load_assigner(old)
    assert assigner.config.target == "hard" and assigner.config.features == "pixels"


def test_the_cli_choice_lists_match_the_library():
    from vitnas.cli import revit as cli_revit
    from vitnas.revit.assigner import MIN_INPUT_SIZE, AssignerConfig
    from vitnas.revit.labels import NONE_CORRECT_POLICIES
    from vitnas.train import PRECISIONS
    assert cli_revit.NONE_CORRECT == NONE_CORRECT_POLICIES
    assert cli_revit.PRECISIONS == PRECISIONS
    assert cli_revit.MIN_INPUT_SIZE == MIN_INPUT_SIZE
    defaults = AssignerConfig()
    assert (cli_revit.DEFAULT_INPUT_SIZE, cli_revit.DEFAULT_WIDTHS) == (defaults.input_size,
                                                                        defaults.widths)


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["revit", "label", "{revit}", "--out", "{revit}"],
    ["revit", "train-tla", "{labels}", "--revit", "{revit}", "--out", "{labels}"],
    ["revit", "train-tla", "{labels}", "--revit", "{revit}", "--out", "{revit}"],
    ["revit", "eval", "{revit}", "{tla}", "--out", "{revit}"],
    ["revit", "eval", "{revit}", "{tla}", "--out", "{tla}"],
    ["revit", "eval", "{revit}", "{tla}", "--out", "{labels}"],  # the pool no flag named
    ["revit", "train", "--out", "{revit}", "--init-from", "{revit}", *TINY],
])
def test_an_output_that_is_an_input_is_refused_before_any_work(pipeline, capsys, argv):
    _, revit, labels, tla = pipeline
    files = {"revit": revit, "labels": labels, "tla": tla}
    before = {name: path.read_bytes() for name, path in files.items()}
    code, _, err = run(capsys, *[a.format(**files) for a in argv])
    assert code == 2 and "is also an input of this command" in err and one_line(err)
    assert all(path.read_bytes() == before[name] for name, path in files.items())


def test_the_eval_reports_siblings_never_overwrite_an_input(pipeline, capsys, tmp_path):
    _, revit, labels, tla = pipeline
    table = tmp_path / "report.md"  # the ReViT under the name of --out report.json's table
    table.write_bytes(revit.read_bytes())
    code, _, err = run(capsys, "revit", "eval", table, tla, "--pool", labels, "--out",
                       tmp_path / "report.json")
    assert code == 2 and "--out's .md sibling" in err and "is also an input" in err
    assert table.read_bytes() == revit.read_bytes() and one_line(err)
    code, _, err = run(capsys, "revit", "eval", revit, tla, "--out", tmp_path / "report.md")
    assert code == 2 and "cannot end in .md" in err and one_line(err)


@pytest.mark.parametrize("option, rates, problem", [
    ("--tome-rates", "4,1000", "ToMe rate r=1000 cannot be applied at 64 tokens"),
    ("--tome-rates", "33", "the largest usable rate there is 32"),
    ("--merge-rates", "2,19", "merge rate r=19 cannot be applied at 36 tokens"),
])
def test_a_merge_rate_that_cannot_be_applied_is_refused_naming_the_largest(
        pipeline, capsys, option, rates, problem):
    _, revit, _, tla = pipeline
    code, _, err = run(capsys, "revit", "eval", revit, tla, option, rates, "--repeats", "1",
                       "--threads", "1", "--quiet")
    assert code == 2 and problem in err and one_line(err)


def test_the_largest_tome_rate_runs_and_is_reported_as_itself(pipeline, capsys):
    _, revit, _, tla = pipeline
    code, text, _ = run(capsys, "revit", "eval", revit, tla, "--tome-rates", "32", "--repeats",
                        "1", "--bootstrap", "0", "--threads", "1", "--quiet")
    assert code == 0 and "| ToMe r=32 " in text


def test_an_architecture_file_with_a_huge_integer_is_one_line_naming_it(capsys, tmp_path):
    arch_file = tmp_path / "huge.json"
    arch_file.write_text('{"hidden_dim": ' + "9" * 5000 + "}")
    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", "--dataset",
                       "synthetic", "--arch-file", arch_file)
    assert code == 2 and str(arch_file) in err and "4300" in err and one_line(err)


@pytest.mark.parametrize("argv, problem", [
    (["--fold", ""], "--fold is empty"),
    (["--space", ""], "--space is empty"),
    (["--init-from", ""], "--init-from is empty"),
    (["--fold", "5000/10000"], "1000 training images cannot fill 10000 folds"),
    (["--mlp-ratio", "0.0001"], "hidden layer of 1 to 16,777,216 units"),
    (["--device", "foo"], "unknown device 'foo'"),
    (["--lr", "1e300"], "argument --lr: must be <= 10"),
    (["--epochs", "1e300"], "argument --epochs: must be <= 10,000"),
    # far past any machine's memory: refused at once, before any data loads or model builds
    (["--embed-dim", "600000", "--num-heads", "1"], "of memory; this machine's RAM is"),
    (["--depth", "9000", "--embed-dim", "20000", "--num-heads", "1"],
     "of memory; this machine's RAM is"),
    # past any ViT: refused before a per-layer list is built or a layer's shape overflows
    (["--depth", "10000000000"], "ReViT depth must be at most 10,000"),
    (["--embed-dim", "100000000000000000000"], "ReViT embed_dim must be at most 16,777,216"),
    (["--mlp-ratio", "1e300"], "hidden layer of 1 to 16,777,216 units"),
    (["--batch-size", "1000000000"], "of memory; this machine's RAM is"),
])
def test_bad_train_options_are_one_line_errors(capsys, tmp_path, argv, problem):
    tiny = TINY
    if "--fold" in argv:  # a fold replaces the held-out images (the two exclude each other)
        at = TINY.index("--holdout-per-class")
        tiny = TINY[:at] + TINY[at + 2:]
    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", *tiny, *argv)
    assert code == 2 and problem in err and one_line(err)
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("argv, problem", [
    (["--fold", "0/2", "--holdout-per-class", "5"], "not allowed with argument --fold"),
    (["--fractions", "0.5,1", "--grids", "4,8"], "not allowed with argument --fractions"),
])
def test_options_that_exclude_each_other_are_refused_not_dropped(capsys, tmp_path, argv,
                                                                  problem):
    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", *argv)
    assert code == 2 and problem in err and one_line(err)


def test_a_diverged_training_writes_no_checkpoint(tmp_path):
    """The CLI caps --lr at 10, which a tiny ReViT survives; the library takes any rate."""
    from vitnas.errors import ConfigError
    from vitnas.revit.model import ReViTConfig
    from vitnas.revit.pipeline import train_step
    from vitnas.revit.training import SplitSpec
    from vitnas.train import TrainConfig

    out = tmp_path / "x.pt"
    with pytest.raises(ConfigError, match="training diverged"):
        train_step(ReViTConfig(embed_dim=16, depth=1, num_heads=2), out, "synthetic",
                   TrainConfig(epochs=1, batch_size=64, lr=1e37),
                   split=SplitSpec("holdout", per_class=20))
    assert not out.exists()


@pytest.mark.parametrize("argv, problem", [
    (["revit", "train-tla", "{labels}", "--revit", "{revit}", "--out", "t.pt", "--epochs",
      "1000000000000"], "argument --epochs: must be <= 10,000"),
    (["revit", "eval", "{revit}", "{tla}", "--repeats", "1000000000"],
     "argument --repeats: must be <= 1,000"),
    (["revit", "eval", "{revit}", "{tla}", "--pool", ""], "--pool is empty"),
    (["revit", "label", "", "--out", "l.pt"], "an input file name is empty"),
    (["revit", "train-tla", "{labels}", "--revit", "", "--out", "t.pt"],
     "an input file name is empty"),
])
def test_bad_counts_and_empty_names_are_one_line_errors(pipeline, capsys, tmp_path,
                                                        monkeypatch, argv, problem):
    _, revit, labels, tla = pipeline
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *[a.format(revit=revit, labels=labels, tla=tla) for a in argv])
    assert code == 2 and problem in err and one_line(err)


def test_a_revit_of_other_token_lengths_is_refused_by_train_tla_and_eval(pipeline, capsys,
                                                                        tmp_path):
    from vitnas.revit import artifacts

    _, revit, labels, tla = pipeline
    other = tmp_path / "other.pt"
    assert main(["revit", "train", "--out", str(other), *TINY, "--grids", "3,5,8"]) == 0
    code, _, err = run(capsys, "revit", "train-tla", labels, "--revit", other, "--out",
                       tmp_path / "t.pt", "--threads", "1")
    assert code == 2 and "labels token lengths [16, 36, 64]" in err and one_line(err)
    # an assigner trained for the 3,5,8 ReViT (its recorded input sizes), on this one's pool
    payload = torch.load(tla, weights_only=True)
    payload["config"]["detail_sizes"] = [12, 20]
    foreign = tmp_path / "foreign.pt"
    artifacts.save(foreign, payload)
    code, _, err = run(capsys, "revit", "eval", revit, foreign, "--repeats", "1", "--quiet")
    assert code == 2 and "was trained for a ReViT whose shorter lengths" in err
    assert one_line(err)


TLA_QUICK = ["--epochs", "1", "--folds", "2", "--bootstrap", "40", "--threads", "1"]


@pytest.mark.parametrize("argv, problem", [
    # a typo'd size ran for minutes through gigabytes, or failed naming flags train-tla lacks
    (["--widths", "100000"], "argument --widths: each stage width must be <= 512"),
    (["--widths", "16,100000000"], "argument --widths: each stage width must be <= 512"),
    (["--widths", ",".join(["8"] * 17)], "argument --widths: at most 16 stages, got 17"),
    (["--input-size", "100000"], "argument --input-size: must be <= 16,384"),
    (["--input-size", "64"], "--input-size 64 is larger than the 32 px images of synthetic"),
    (["--input-size", "1"], "argument --input-size: must be >= 4"),
    (["--input-size", "0"], "argument --input-size: must be >= 1"),
])
def test_assigner_sizes_past_any_use_are_refused_at_once(pipeline, capsys, tmp_path, argv,
                                                         problem):
    _, revit, labels, _ = pipeline
    started = time.perf_counter()
    code, _, err = run(capsys, "revit", "train-tla", labels, "--revit", revit, "--out",
                       tmp_path / "t.pt", *TLA_QUICK, *argv)
    assert code == 2 and problem in err and one_line(err)
    assert time.perf_counter() - started < 30 and not (tmp_path / "t.pt").exists()


def test_an_assigner_too_large_for_the_memory_is_refused_before_it_is_built(
        pipeline, monkeypatch, tmp_path):
    from vitnas import device
    from vitnas.errors import ConfigError
    from vitnas.revit.assigner import AssignerConfig, assigner_bytes
    from vitnas.revit.pipeline import assigner_step

    _, revit, labels, _ = pipeline
    small, wide = AssignerConfig(), AssignerConfig(widths=(512, 512, 512), input_size=32)
    assert 0 < assigner_bytes(small) < assigner_bytes(wide)
    assert assigner_bytes(AssignerConfig(features="coarse")) == 0  # no CNN to hold
    assert assigner_bytes(wide) > 2**30
    monkeypatch.setattr(device, "memory_bytes", lambda name="cpu": 2**30)  # the data fits
    with pytest.raises(ConfigError, match="an assigner CNN of --widths 512,512,512 on a 32 px "
                                          "thumbnail needs at least"):
        assigner_step(labels, revit, tmp_path / "t.pt", input_size=32, widths=(512, 512, 512),
                      epochs=1, folds=2)


@pytest.mark.parametrize("argv, problem", [
    (["--temperature", "5"], "--temperature only softens --target margin; --target hard"),
    (["--temperature", "1", "--target", "correct"], "--target correct does not read it"),
    (["--features", "coarse", "--input-size", "8"],
     "--input-size shapes the thumbnail CNN of --features pixels or both; --features coarse"),
    (["--features", "stats", "--widths", "8,8"], "--widths shapes the thumbnail CNN"),
    (["--features", "stats", "--widths", "8", "--input-size", "8"],
     "--input-size and --widths shape the thumbnail CNN"),
])
def test_options_the_chosen_assigner_never_reads_are_refused(pipeline, capsys, tmp_path, argv,
                                                             problem):
    _, revit, labels, _ = pipeline
    code, _, err = run(capsys, "revit", "train-tla", labels, "--revit", revit, "--out",
                       tmp_path / "t.pt", *TLA_QUICK, *argv)
    assert code == 2 and problem in err and one_line(err)


def test_unset_assigner_options_keep_their_defaults(pipeline, tmp_path):
    _, revit, labels, _ = pipeline
    out = tmp_path / "margin.pt"
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(out),
                 "--target", "margin", "--temperature", "2", *TLA_QUICK]) == 0
    meta = torch.load(out, weights_only=True)["meta"]
    assert (meta["temperature"], meta["input_size"], meta["widths"]) == (2.0, 16, [16, 32, 64])
    out = tmp_path / "stats.pt"
    assert main(["revit", "train-tla", str(labels), "--revit", str(revit), "--out", str(out),
                 "--features", "stats", *TLA_QUICK]) == 0
    meta = torch.load(out, weights_only=True)["meta"]
    assert (meta["temperature"], meta["input_size"], meta["widths"]) == (1.0, 16, [16, 32, 64])


def test_files_name_their_models_by_weights_not_by_relative_paths(pipeline, capsys, tmp_path,
                                                                   monkeypatch):
    from vitnas.revit import artifacts

    folder, revit, labels, tla = pipeline
    meta = torch.load(labels, weights_only=True)["meta"]
    model = artifacts.load_revit(revit)[0]
    assert meta["models"] == [str(revit.resolve())]
    assert meta["model_digests"] == [torch.load(revit, weights_only=True)["digest"]]
    assert meta["model_digests"] == [artifacts.model_identity(model)]
    assigner_meta = torch.load(tla, weights_only=True)["meta"]
    assert assigner_meta["labels"] == str(labels.resolve())
    assert assigner_meta["revit_digest"] == meta["model_digests"][0]
    # another directory with another model under the same name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["revit", "train", "--out", str(elsewhere / "revit.pt"), *TINY, "--seed",
                 "1"]) == 0
    monkeypatch.chdir(elsewhere)
    code, _, err = run(capsys, "revit", "train-tla", labels, "--revit", "revit.pt", "--out",
                       "t.pt", *TLA_QUICK)
    assert code == 2 and one_line(err)
    assert f"{labels} was labelled by {revit.resolve()}, not by revit.pt" in err
    code, _, err = run(capsys, "revit", "eval", "revit.pt", tla, "--repeats", "1", "--quiet")
    assert code == 2 and one_line(err)
    assert f"{tla} was trained for the ReViT {revit.resolve()}, not for revit.pt" in err
    # the right files by another relative path: accepted, and the default pool is found
    monkeypatch.chdir(folder.parent)
    labels_here, revit_here = (f"{folder.name}/{path.name}" for path in (labels, revit))
    out = elsewhere / "t.pt"
    assert main(["revit", "train-tla", labels_here, "--revit", revit_here, "--out", str(out),
                 *TLA_QUICK]) == 0
    code, _, err = run(capsys, "revit", "eval", revit_here, out, "--repeats", "1",
                       "--bootstrap", "0", "--tome-rates", "", "--threads", "1", "--quiet")
    assert code == 0, err


def test_an_assigner_whose_labels_moved_asks_for_the_pool(pipeline, capsys, tmp_path):
    from vitnas.revit import artifacts

    _, revit, _, tla = pipeline
    payload = torch.load(tla, weights_only=True)
    payload["meta"]["labels"] = str(tmp_path / "gone" / "labels.pt")
    moved = tmp_path / "moved.pt"
    artifacts.save(moved, payload)
    code, _, err = run(capsys, "revit", "eval", revit, moved, "--repeats", "1", "--quiet")
    assert code == 2 and "which is not there (moved?); give the pool with --pool" in err
    assert one_line(err)


def test_files_from_before_the_digests_still_work(pipeline, capsys, tmp_path):
    from vitnas.revit import artifacts

    _, revit, labels, tla = pipeline
    old_labels = torch.load(labels, weights_only=True)
    del old_labels["meta"]["model_digests"]
    old_labels["meta"]["models"] = [str(revit)]
    artifacts.save(tmp_path / "labels.pt", old_labels)
    old_tla = torch.load(tla, weights_only=True)
    del old_tla["meta"]["revit_digest"]
    old_tla["meta"]["labels"] = str(tmp_path / "labels.pt")
    artifacts.save(tmp_path / "tla.pt", old_tla)
    assert main(["revit", "train-tla", str(tmp_path / "labels.pt"), "--revit", str(revit),
                 "--out", str(tmp_path / "again.pt"), *TLA_QUICK]) == 0
    code, _, err = run(capsys, "revit", "eval", revit, tmp_path / "tla.pt", "--repeats", "1",
                       "--bootstrap", "0", "--tome-rates", "", "--threads", "1", "--quiet")
    assert code == 0, err


def test_fractions_that_round_to_one_grid_are_refused_naming_them(capsys, tmp_path):
    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", *TINY,
                       "--fractions", "0.01,0.02,1")
    assert code == 2 and one_line(err) and not (tmp_path / "x.pt").exists()
    assert "--fractions 0.01, 0.02 round to the same 1x1 token grid" in err


def test_a_checkpoint_trained_with_fractions_of_one_grid_still_loads(tmp_path):
    from vitnas.revit import artifacts
    from vitnas.revit.model import ReViTConfig, build_revit

    config = ReViTConfig(embed_dim=16, depth=1, num_heads=2, fractions=(0.01, 0.02, 1.0))
    artifacts.save_revit(tmp_path / "old.pt", build_revit(config), config, {})
    model, _, _ = artifacts.load_revit(tmp_path / "old.pt")
    assert [length.grid for length in model.lengths] == [1, 8]


def test_labels_need_every_fold_of_one_split(pipeline, capsys, tmp_path):
    _, revit, _, _ = pipeline
    fold = ["revit", "train", "--dataset", "synthetic", "--embed-dim", "16", "--depth", "1",
            "--num-heads", "2", "--epochs", "0.2", "--threads", "1", "--quiet"]
    one, other_seed = tmp_path / "fold1.pt", tmp_path / "fold0-seed3.pt"
    assert main([*fold, "--out", str(one), "--fold", "1/3"]) == 0
    assert main([*fold, "--out", str(other_seed), "--fold", "0/3", "--split-seed", "3"]) == 0
    for models, problem in [
        ([one], "out-of-fold labels need all 3 folds of split seed 0; fold(s) 0, 2 missing"),
        ([one, other_seed], "is fold 0/3 of split seed 3"),
        ([one, revit], "kept a holdout unseen"),
        ([one, one], "fold 1/3 is given 2 times"),
    ]:
        code, _, err = run(capsys, "revit", "label", *models, "--out", tmp_path / "l.pt")
        assert code == 2 and problem in err and one_line(err), err
        assert not (tmp_path / "l.pt").exists()


def test_counts_and_sizes_without_meaning_name_their_flag(capsys, tmp_path):
    from vitnas.errors import ConfigError
    from vitnas.revit.assigner import AssignerConfig, TokenLengthAssigner
    from vitnas.revit.training import SplitSpec

    code, _, err = run(capsys, "revit", "train", "--out", tmp_path / "x.pt", "--dataset",
                       "synthetic", "--holdout-per-class", "0")
    assert code == 2 and "argument --holdout-per-class: must be >= 1, got 0" in err
    with pytest.raises(ConfigError, match="--holdout-per-class must be >= 1"):
        SplitSpec("holdout", per_class=0)
    for config, problem in [(AssignerConfig(num_lengths=1), "at least two, got 1"),
                            (AssignerConfig(input_size=2), "--input-size must be >= 4"),
                            (AssignerConfig(widths=()), "--widths is empty")]:
        with pytest.raises(ConfigError, match=problem):
            TokenLengthAssigner(config)


def test_a_foreign_pickle_is_one_line_without_torch_warnings(capsys, tmp_path):
    import pickle
    import warnings

    path = tmp_path / "pickle.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(capsys, "revit", "label", path, "--out", tmp_path / "x.pt")
    assert code == 2 and "not a readable vitnas file" in err and one_line(err)
    assert not caught, [str(w.message) for w in caught]
