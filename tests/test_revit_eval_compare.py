"""``benchmarks/revit_eval_compare.py``: runs of one ``revit eval`` command compared and pooled,
including runs made with and without the merged peers."""

import json

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def compare():
    return benchmark_script("revit_eval_compare")


def summary(per_round):
    ordered = sorted(per_round)
    return {"ratio": ordered[len(ordered) // 2], "ci": [ordered[0], ordered[-1]],
            "per_round": per_round}


def run(shift, merged=True):
    comparisons = {"fair cascade": {"accuracy": 66.3, "throughput_vs_fixed_curve": summary(
        [1.1 + shift, 1.2 + shift, 1.15 + shift])}}
    if merged:
        comparisons["confidence-skip + ToMe"] = {
            "accuracy": 66.9, "throughput_vs_fixed_curve": summary([1.3 + shift, 1.4, 1.35]),
            "throughput_vs_simple_peers": summary([1.0, 1.1 + shift, 1.2]),
            "throughput_vs": {"ToMe": summary([1.2, 1.25 + shift, 1.3])}}
    return {"comparisons": comparisons, "curves": {"fixed": [{"accuracy": 67.1}]}}


def test_pooling_keeps_the_policies_every_run_has_and_the_merged_ratio_to_tome(compare):
    rows = compare.pooled([run(0.0), run(0.02), run(0.01, merged=False)])
    assert {(r["policy"], r["ratio"]) for r in rows} == {
        ("fair cascade", "throughput_vs_fixed_curve")}
    rows = compare.pooled([run(0.0), run(0.02)])
    keys = {(r["policy"], r["ratio"]) for r in rows}
    assert ("confidence-skip + ToMe", "throughput_vs_ToMe") in keys
    tome = next(r for r in rows if r["ratio"] == "throughput_vs_ToMe")
    assert tome["run_medians"] == [1.25, 1.27] and tome["median"] == pytest.approx(1.26)
    assert tome["ci"][0] <= tome["median"] <= tome["ci"][1]


def test_the_pooled_ratio_is_the_median_of_every_round_not_of_the_run_medians(compare):
    def one(per_round):
        return {"comparisons": {"fair cascade": {
            "accuracy": 66.3, "throughput_vs_fixed_curve": summary(per_round)}},
            "curves": {"fixed": [{"accuracy": 67.1}]}}

    # rounds 1.0, 1.0, 1.5, 1.6, 1.7, 2.0: median 1.55 (the run medians' median is 1.3)
    row, = compare.pooled([one([1.0, 1.0, 2.0]), one([1.5, 1.6, 1.7])])
    assert row["median"] == pytest.approx(1.55) and row["run_medians"] == [1.0, 1.6]
    assert 1.0 <= row["ci"][0] < 1.55 < row["ci"][1] <= 2.0


def test_the_cli_pools_runs_with_and_without_merged_peers_and_refuses_other_weights(
        compare, tmp_path, capsys):
    paths = []
    for i, data in enumerate([run(0.0), run(0.02), run(0.01, merged=False)]):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(data))
    assert compare.main(["--pool", *map(str, paths)]) == 0
    assert "| fair cascade | 66.3 | vs fixed_curve |" in capsys.readouterr().out
    other = run(0.0)
    other["comparisons"]["fair cascade"]["accuracy"] = 60.0
    paths[2].write_text(json.dumps(other))
    assert compare.main(["--pool", *map(str, paths)]) == 2
    assert "accuracies differ" in capsys.readouterr().err
