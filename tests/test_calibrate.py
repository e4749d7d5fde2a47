"""Calibration to the user's task: the ranker's shrinkage toward #params, its leave-one-out
evidence, its file format, `vitnas calibrate` and `vitnas search --ranker`."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from vitnas.bench.stats import kendall_tau_b
from vitnas.calibrate import (
    META_TYPES,
    Ranker,
    RankerFeature,
    fit_ranker,
    load_ranker,
    loo_predictions,
    paired_evidence,
    ranker_from_dict,
    save_ranker,
)
from vitnas.cli import main
from vitnas.errors import ConfigError
from vitnas.spaces import get_space

SPACE = "autoformer-tiny-micro"


def shapes(n: int, seed: int) -> dict[str, np.ndarray]:
    """n architectures whose size grows with depth and with width squared (as a ViT's does),
    depth and width drawn independently."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(4, 13, size=n).astype(float)
    width = rng.choice([64.0, 96.0, 128.0, 160.0, 192.0], size=n)
    params = depth * width**2 * rng.uniform(0.9, 1.1, size=n)
    return {"params": params, "depth": depth, "width": width}


def held_out_tau(ranker: Ranker, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
    values = np.column_stack([features[s] for s in ranker.feature_specs])
    return kendall_tau_b(ranker.score_rows(values), labels)


# --- shrinkage ------------------------------------------------------------------------------
def test_a_width_driven_label_with_many_labels_leaves_the_prior_and_ranks_better():
    train, test = shapes(40, 0), shapes(200, 1)
    label = lambda f, seed: f["width"] + np.random.default_rng(seed).normal(0, 5, len(f["width"]))  # noqa: E731
    ranker = fit_ranker(train, label(train, 2))
    assert ranker.chosen == "fitted" and ranker.evidence >= ranker.threshold
    assert ranker.loo_tau_fitted > ranker.loo_tau_prior
    weights = {f.spec: f.weight for f in ranker.features}
    assert weights["width"] > weights["params"] and weights["width"] > weights["depth"]
    truth = label(test, 3)
    assert held_out_tau(ranker, test, truth) > kendall_tau_b(test["params"], truth) + 0.08


def test_a_label_that_is_params_plus_noise_keeps_the_prior():
    kept = 0
    for seed in range(5):
        train = shapes(10, 10 + seed)
        rng = np.random.default_rng(seed)
        ranker = fit_ranker(train, np.log(train["params"]) + rng.normal(0, 0.3, 10))
        kept += ranker.chosen == "prior"
        if ranker.chosen == "prior":
            assert [f.weight for f in ranker.features] == [1.0, 0.0, 0.0]
            test = shapes(30, 99)
            assert ranker.score_rows(np.column_stack([test[s] for s in ranker.feature_specs])) \
                == pytest.approx(np.log(test["params"]) / ranker.features[0].scale
                                 - ranker.features[0].mean / ranker.features[0].scale)
    assert kept >= 4


def test_ten_labels_that_rank_params_backwards_by_chance_never_flip_it(tmp_path):
    """A noisy label whose k happen to rank #params backwards: a weight may vanish, never turn
    negative (a reversed prior is the costliest mistake)."""
    train = shapes(10, 5)
    labels = -np.log(train["params"])
    ranker = fit_ranker(train, labels, threshold=-100.0)
    assert all(f.fitted_weight >= 0 for f in ranker.features)
    assert ranker.rho < 0
    if not any(f.fitted_weight for f in ranker.features):  # every weight vanished
        assert ranker.chosen == "prior"  # a model ranking all alike is never the objective
    again = load_ranker(save_ranker(ranker, tmp_path / "r.json"))  # strict JSON, even for NaN
    assert again.chosen == ranker.chosen and again.rho == ranker.rho


# --- leave-one-out evidence -----------------------------------------------------------------
def test_labels_near_the_float_limit_count_only_by_their_order():
    train = shapes(12, 5)
    order = np.log(train["depth"]) + 0.5 * np.log(train["params"])
    huge = np.where(order > np.median(order), 1.0, -1.0) * 1e308 * np.abs(np.tanh(order - 11))
    plain = fit_ranker(train, np.argsort(np.argsort(huge)).astype(float)).as_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        assert fit_ranker(train, huge).as_dict() == plain


def test_paired_evidence_counts_the_pairs_the_rankings_order_differently():
    labels = np.array([1.0, 2.0, 3.0, 4.0])
    # the reference gets the pair (0, 1) wrong, the candidate every pair right: one pair,
    # difference 2, evidence 2 / sqrt(4)
    assert paired_evidence(np.array([1.0, 2, 3, 4]), np.array([2.0, 1, 3, 4]), labels) == 1.0
    # against a reversed reference: five pairs won (difference 2 each), the sixth wrong in
    # both (difference 0): 10 / sqrt(5 * 4)
    assert paired_evidence(np.array([2.0, 1, 3, 4]), np.array([4.0, 3, 2, 1]), labels) == \
        pytest.approx(10 / math.sqrt(20))
    # and the other way round: the same evidence, negative
    assert paired_evidence(np.array([4.0, 3, 2, 1]), np.array([2.0, 1, 3, 4]), labels) == \
        pytest.approx(-10 / math.sqrt(20))
    assert paired_evidence(labels, labels, labels) == 0.0


def test_leave_one_out_repeats_the_whole_fit_without_each_architecture():
    """With the prior as the only feature the fit has no correction: each left-out
    architecture is scored rho * z by the standardisation and rho of the other k - 1, which
    this test computes by hand."""
    params = np.array([2.0, 4.0, 8.0, 16.0, 32.0])
    labels = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    expected = []
    for i in range(5):
        rest = np.delete(np.arange(5), i)
        logs = np.log(params[rest])  # 4 values, equally spaced by log 2
        z = (logs - logs.mean()) / logs.std()
        ranks = np.argsort(np.argsort(labels[rest])) + 1.0
        t = (ranks - 2.5) / math.sqrt(1.25)
        rho = float(np.mean(t * z))
        expected.append(rho * (math.log(params[i]) - logs.mean()) / logs.std())
    got = loo_predictions(params[:, None], labels, ["log"], 0, np.array([1e9]))
    assert got[0] == pytest.approx(expected, abs=1e-6)
    ranker = fit_ranker({"params": params}, labels)
    assert ranker.loo_tau_prior == pytest.approx(0.6)  # 8 concordant, 2 discordant of 10


def test_ridge_strengths_that_rank_alike_go_to_the_strongest():
    # one feature: every strength gives the same leave-one-out ranking, so the taus tie
    ranker = fit_ranker({"params": [2, 4, 8, 16, 32]}, [1, 3, 2, 5, 4])
    assert ranker.alpha == 10.0


def test_evidence_exactly_at_the_threshold_chooses_the_fitted_model():
    train = shapes(40, 0)
    labels = train["width"] + np.random.default_rng(2).normal(0, 5, 40)
    ranker = fit_ranker(train, labels)
    assert ranker.evidence > 0 and ranker.loo_tau_fitted > ranker.loo_tau_prior
    assert fit_ranker(train, labels, threshold=ranker.evidence).chosen == "fitted"


def test_a_backwards_prior_is_shrunk_toward_zero_not_toward_its_negative_slope():
    """Where #params ranks the k backwards (rho < 0) the prior's centre is 0: with both
    weights positive the fit is then plain ridge, (Z^T Z + alpha k I)^-1 Z^T t, by hand."""
    train = shapes(12, 2)
    negw = -np.log(train["width"])  # negative everywhere: the identity transform
    labels = np.log(train["params"]) + 2.6 * negw
    ranker = fit_ranker({"params": train["params"], "negw": negw}, labels, threshold=-100.0,
                        alphas=(0.3,))
    assert ranker.rho < 0
    z = np.column_stack([np.log(train["params"]), negw])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    ranks = np.argsort(np.argsort(labels)) + 1.0
    target = (ranks - ranks.mean()) / ranks.std()
    expected = np.linalg.solve(z.T @ z + 0.3 * 12 * np.eye(2), z.T @ target)
    weights = [f.fitted_weight for f in ranker.features]
    assert weights == pytest.approx(expected, abs=1e-6)
    assert weights == pytest.approx([0.1250, 0.6757], abs=1e-3)


# --- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("features, labels, message", [
    ({"params": [1, 2, 3]}, [1, 2, 3], "at least 4"),
    ({"params": [1, 2, 3, 4]}, [5, 5, 5, 5], "label is constant"),
    ({"params": [1, 2, 3, 4], "nwot": [1, math.nan, 2, 3]}, [1, 2, 3, 4], "nwot is NaN"),
    ({"depth": [1, 2, 3, 4]}, [1, 2, 3, 4], "must include the prior 'params'"),
    ({"params": [1, 1, 1, 1], "depth": [1, 2, 3, 4]}, [1, 2, 3, 4], "prior params is constant"),
    ({"params": [1, 2, 3, 4]}, [1, 2, math.nan, 4], "NaN or infinite"),
    ({"params": [1, 2, 3]}, [1, 2, 3, 4], "3 values for 4 labels"),
    ({"params": [1, 2, 3, 4]}, [1, 2, 4, 3], None),
])
def test_bad_calibration_input_is_a_one_line_config_error(features, labels, message):
    with pytest.raises(ConfigError, match=message or "threshold must be finite") as err:
        fit_ranker(features, labels, **({} if message else {"threshold": math.inf}))
    assert "\n" not in str(err.value)


# --- files ----------------------------------------------------------------------------------
def test_a_saved_ranker_loads_back_and_scores_the_same(tmp_path):
    train = shapes(30, 7)
    ranker = fit_ranker(train, train["width"] * 0.01 + np.log(train["params"]),
                        meta={"metric": "top1"})
    path = save_ranker(ranker, tmp_path / "r.json")
    again = load_ranker(path)
    assert again == ranker and again.path == str(path)
    test = shapes(20, 8)
    values = np.column_stack([test[s] for s in ranker.feature_specs])
    assert np.array_equal(again.score_rows(values), ranker.score_rows(values))
    one = {s: float(test[s][0]) for s in ranker.feature_specs}
    assert again.score(one) == ranker.score_rows(values)[0]


def test_a_value_below_a_log_feature_domain_ranks_last_and_nan_is_refused():
    train = shapes(10, 3)
    ranker = fit_ranker(train, np.log(train["params"]))
    assert ranker.score({"params": 0.0, "depth": 3.0, "width": 64.0}) == -math.inf
    assert ranker.score({"params": 10.0, "depth": math.nan, "width": 64.0}) > -math.inf
    rows = np.array([[10.0, 3.0, 64.0], [math.nan, 3.0, 64.0]])
    scores = ranker.score_rows(rows)
    assert math.isfinite(scores[0]) and math.isnan(scores[1])
    with pytest.raises(ConfigError, match="params are NaN"):
        ranker.score({"params": math.nan, "depth": 3.0, "width": 64.0})
    with pytest.raises(ConfigError, match="needs features width"):
        ranker.score({"params": 1.0, "depth": 3.0})


@pytest.mark.parametrize("edit, message", [
    (lambda d: "not json {", "not valid JSON"),
    (lambda d: {**d, "format": "other"}, "not a vitnas ranker"),
    (lambda d: {**d, "version": 99}, "version 99"),
    (lambda d: {**d, "features": []}, "non-empty list"),
    (lambda d: {**d, "chosen": "both"}, "\"chosen\" must be"),
    (lambda d: {**d, "k": 2}, "\"k\" must be an integer"),
    (lambda d: {**d, "prior": "flops"}, "the prior 'flops' is not among"),
    (lambda d: {**d, "features": [{**d["features"][0], "weight": "x"}]}, "'weight' must be"),
    (lambda d: {**d, "features": [{**d["features"][0], "scale": 0}]}, "scale > 0"),
    (lambda d: {**d, "features": [{**d["features"][0], "transform": "exp"}]}, "transform 'exp'"),
    (lambda d: {**d, "features": d["features"] * 2}, "listed twice"),
    (lambda d: {**d, "version": True}, "version True"),
    (lambda d: {**d, "features": [{**d["features"][0], "weight": 1e308}]}, "weight beyond"),
    (lambda d: {**d, "features": [{**f, "weight": 0.0} for f in d["features"]]},
     "every weight is zero"),
    (lambda d: {**d, "features": [{**d["features"][0], "scale": 1e-300}]}, "scale > 0"),
    (lambda d: json.dumps(d)[:-1] + ', "k": 10}', "gives the key 'k' twice"),
    (lambda d: json.dumps(d)[:-1] + ', "k2": 1' + "0" * 5000 + "}", "cannot be read"),
    (lambda d: {**d, "meta": []}, "\"meta\" must be an object"),
    (lambda d: {**d, "meta": {"metric": 3}}, "meta \"metric\" must be a non-empty string"),
    (lambda d: {**d, "meta": {"batch": ""}}, "meta \"batch\" must be a non-empty string"),
    (lambda d: {**d, "meta": {"batch_size": 32.5}}, "meta \"batch_size\" must be a whole"),
    (lambda d: {**d, "meta": {"batch_size": 0}}, "meta \"batch_size\" must be >= 1"),
    (lambda d: {**d, "meta": {"seed": True}}, "meta \"seed\" must be a whole number"),
    (lambda d: {**d, "meta": {"seed": -1}}, "meta \"seed\" must be an integer in 0..2"),
    # a hand edit that leaves the file saying one model and weighing by another
    (lambda d: {**d, "chosen": "prior", "features": [{**f, "weight": 0.5}
                                                     for f in d["features"]]},
     "not the prior model it says it chose"),
    (lambda d: {**d, "chosen": "fitted", "features": [{**f, "weight": f["fitted_weight"] + 1}
                                                      for f in d["features"]]},
     "not the fitted model it says it chose"),
    (lambda d: {**d, "k": 10**30}, "\"k\" must be an integer from 4"),
    (lambda d: {**d, "alpha": -5}, "\"alpha\" \\(the ridge strength\\) must be >= 0"),
    (lambda d: {**d, "features": [{**d["features"][0], "spec": " params "}]},
     "feature ' params ' is not written as vitnas writes it \\('params'\\)"),
    (lambda d: {**d, "features": [{**d["features"][0], "spec": "nosuchproxy"}]},
     "unknown proxy 'nosuchproxy'"),
])
def test_bad_ranker_files_are_refused_in_one_line(tmp_path, edit, message):
    train = shapes(10, 4)
    data = fit_ranker(train, np.log(train["params"])).as_dict()
    edited = edit(json.loads(json.dumps(data)))
    path = tmp_path / "bad.json"
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(ConfigError, match=message) as err:
        load_ranker(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_ranker(tmp_path / "missing.json")


@pytest.mark.parametrize("key", sorted(META_TYPES))
def test_every_recorded_meta_field_is_checked_by_type(tmp_path, key):
    train = shapes(10, 4)
    data = fit_ranker(train, np.log(train["params"])).as_dict()
    data["meta"] = {key: [1]}  # neither a string nor a whole number
    with pytest.raises(ConfigError, match=f"meta \"{key}\" must be a"):
        ranker_from_dict(data)


def test_a_rankers_own_notes_in_meta_are_kept():
    """Keys beyond what calibrate records are the user's notes: loaded as they are."""
    train = shapes(10, 4)
    data = fit_ranker(train, np.log(train["params"]), meta={"seed": 3}).as_dict()
    data["meta"]["note"] = {"trained on": "my 12 runs"}
    assert ranker_from_dict(data).meta == {"seed": 3, "note": {"trained on": "my 12 runs"}}


# --- the commands ---------------------------------------------------------------------------
def depth_benchmark(path, n=12):
    """A tiny benchmark of the micro space whose label follows depth (here about unrelated
    to #params, which follows the width)."""
    space = get_space(SPACE)
    records = []
    for i in range(n):
        arch = space.sample(2000 + i)
        records.append({"arch": space.to_json(arch), "top1": float(space.shape(arch).depth)
                        + 0.01 * i})
    path.write_text(json.dumps({"space": SPACE, "records": records}))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_calibrate_cli_fits_saves_and_reports_the_choice(capsys, tmp_path):
    bench, out = depth_benchmark(tmp_path / "b.json"), tmp_path / "ranker.json"
    code, printed, _ = run(capsys, "calibrate", str(bench), "--metric", "top1", "--features",
                           "depth,width", "--batch", "gaussian", "--batch-size", "4",
                           "--db", str(tmp_path / "s.sqlite"), "--out", str(out), "--quiet")
    assert code == 0
    assert "leave-one-out Kendall tau on the 12" in printed and "chosen: fitted" in printed
    ranker = load_ranker(out)
    assert ranker.feature_specs == ("params", "depth", "width") and ranker.k == 12
    assert ranker.meta["metric"] == "top1" and ranker.meta["batch_size"] == 4
    code, printed, _ = run(capsys, "calibrate", str(bench), "--metric", "top1", "--limit", "6",
                           "--batch", "gaussian", "--batch-size", "4", "--db",
                           str(tmp_path / "s.sqlite"), "--out", str(out), "--json", "--quiet")
    assert code == 0 and json.loads(printed)["k"] == 6


@pytest.mark.parametrize("argv, message", [
    (["--metric", "nope"], "has no metric 'nope'"),
    (["--metric", "top1", "--limit", "3"], "at least 4"),
    (["--metric", "top1", "--features", "no_such_proxy"], "unknown proxy"),
])
def test_calibrate_cli_errors_are_one_line(capsys, tmp_path, argv, message):
    bench = depth_benchmark(tmp_path / "b.json")
    code, _, err = run(capsys, "calibrate", str(bench), *argv, "--batch", "gaussian",
                       "--batch-size", "4", "--db", str(tmp_path / "s.sqlite"), "--out",
                       str(tmp_path / "r.json"), "--quiet")
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--metric", ""], "--metric is empty"),
    (["--metric", "top1", "--features", " "], "--features is empty"),
    (["--metric", "top1", "--db", ""], "--db is empty"),
    (["--metric", "top1", "--score-seed", "-1"], "--score-seed: must be >= 0"),
    (["--metric", "top1", "--out", "{bench}"], "is also an input of this command"),
])
def test_calibrate_refuses_empty_options_and_writing_over_its_benchmark(capsys, tmp_path, argv,
                                                                        message):
    bench = depth_benchmark(tmp_path / "b.json")
    before = bench.read_bytes()
    argv = [a.replace("{bench}", str(bench)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "r.json")]
    code, _, err = run(capsys, "calibrate", str(bench), *argv, "--batch", "gaussian",
                       "--batch-size", "4", "--quiet")
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert bench.read_bytes() == before and not (tmp_path / "r.json").exists()


SEARCH = ["--params", "0.3M:0.6M", "--budget", "8", "--population", "4", "--parents", "2",
          "--mutations", "1", "--crossovers", "1", "--dataset", "gaussian", "--batch-size", "4",
          "--threads", "1", "--quiet"]


def smallest_first(tmp_path) -> str:
    """A ranker by hand that prefers the fewest parameters: the opposite of a rank sum."""
    ranker = Ranker(features=[RankerFeature("params", "log", 13.0, 0.5, -1.0, -1.0),
                              RankerFeature("width", "log", 4.0, 0.3, 0.0, 0.0)],
                    prior="params", chosen="fitted", k=10, alpha=1.0, rho=0.5,
                    loo_tau_prior=0.1, loo_tau_fitted=0.5, evidence=3.0, threshold=1.0,
                    meta={"metric": "top1", "batch": "gaussian", "batch_size": 4, "seed": 0})
    return str(save_ranker(ranker, tmp_path / "small.json"))


def test_search_with_a_ranker_ranks_by_it_and_says_so(capsys, tmp_path):
    path, out_dir = smallest_first(tmp_path), tmp_path / "report"
    code, printed, _ = run(capsys, "search", SPACE, "--ranker", path, *SEARCH, "--db",
                           str(tmp_path / "s.sqlite"), "--out", str(out_dir))
    assert code == 0 and f"objective: ranker {path}" in printed
    result = json.loads((out_dir / "result.json").read_text())
    assert result["ranker"]["file"] == path and result["proxies"] == ["params", "width"]
    smallest = min(result["evaluations"], key=lambda e: e["params"])
    assert result["best"]["params"] == smallest["params"]
    ranker = load_ranker(path)
    assert result["best"]["fitness"] == pytest.approx(ranker.score(result["best"]["scores"]))
    assert f"Objective: the ranker `{path}`" in (out_dir / "report.md").read_text()


def test_a_plain_list_of_your_own_models_calibrates_and_searches(capsys, tmp_path):
    """The README's path for a user's own runs: a bare JSON list (no space in the file, the
    label under the user's name, one record unlabelled), then a search by the ranker."""
    space = get_space(SPACE)
    records = [{"arch": space.to_json(space.sample(3000 + i)), "my acc": 50.0 + i}
               for i in range(9)]
    records.append({"arch": space.to_json(space.sample(3100)), "my acc": None})
    bench, out = tmp_path / "mine.json", tmp_path / "ranker.json"
    bench.write_text(json.dumps(records))
    code, printed, err = run(capsys, "calibrate", str(bench), "--space", SPACE, "--metric",
                             "my acc", "--batch", "gaussian", "--batch-size", "4", "--db",
                             str(tmp_path / "s.sqlite"), "--out", str(out), "--quiet")
    assert code == 0 and "leave-one-out Kendall tau on the 9" in printed
    assert "1 of the 10 architectures have no finite my acc" in err  # said, not silent
    assert load_ranker(out).meta == {"benchmark": "mine", "metric": "my acc", "space": SPACE,
                                     "batch": "gaussian", "batch_size": 4, "seed": 0}
    code, printed, _ = run(capsys, "search", SPACE, "--ranker", str(out), *SEARCH, "--db",
                           str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "report"))
    assert code == 0 and f"objective: ranker {out} (my acc" in printed


def test_search_with_a_missing_or_bad_ranker_fails_in_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "search", SPACE, "--ranker", str(tmp_path / "none.json"),
                       *SEARCH, "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "not found" in err and err.count("\n") == 1
    code, _, err = run(capsys, "search", SPACE, "--ranker", smallest_first(tmp_path), *SEARCH,
                       "--aggregate", "pareto", "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "cannot be combined" in err
    code, _, err = run(capsys, "search", SPACE, "--ranker", smallest_first(tmp_path), *SEARCH,
                       "--proxy", "nwot", "--db", str(tmp_path / "s.sqlite"))
    assert code == 2 and "--ranker replaces --proxy" in err and err.count("\n") == 1


def test_a_ranker_from_another_family_of_spaces_is_noted_and_another_size_is_not():
    from vitnas.search.ranked import space_mismatch

    ranker = fit_ranker(shapes(10, 4), np.log(shapes(10, 4)["params"]),
                        meta={"space": "pit-tiny"})
    assert "fitted on pit-tiny" in space_mismatch(ranker, "autoformer-tiny-micro")
    assert space_mismatch(ranker, "pit-tiny-micro") is None
    ranker.meta = {}
    assert space_mismatch(ranker, "autoformer-tiny-micro") is None
