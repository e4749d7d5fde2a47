import json
import subprocess
import sys

import pytest

from vitnas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_table_and_json(capsys):
    code, out, _ = run(capsys, "spaces")
    assert code == 0 and "autoformer-tiny-micro" in out and "nasbench201" in out
    code, out, _ = run(capsys, "spaces", "--json")
    names = [s["name"] for s in json.loads(out)]
    assert "pit-small" in names


def test_sample_writes_json_lines_with_counts(capsys):
    code, out, _ = run(capsys, "sample", "autoformer-tiny", "-n", "200", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 200
    assert all(5_100_196 <= r["params"] <= 10_192_852 and r["flops"] > 0 for r in records)


def test_sample_is_seeded(capsys):
    _, first, _ = run(capsys, "sample", "pit-tiny-micro", "-n", "3", "--seed", "5")
    _, second, _ = run(capsys, "sample", "pit-tiny-micro", "-n", "3", "--seed", "5")
    _, other, _ = run(capsys, "sample", "pit-tiny-micro", "-n", "3", "--seed", "6")
    assert first == second != other


def test_info_table_json_and_check(capsys, tmp_path):
    arch = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    code, out, _ = run(capsys, "info", "autoformer-tiny-micro", str(path))
    assert code == 0 and "block11" in out and "total" in out
    code, out, _ = run(capsys, "info", "autoformer-tiny-micro", str(path), "--json", "--check")
    result = json.loads(out)
    assert result["params"] == result["counted_params"]
    assert result["flops"] == result["measured_flops"]
    assert len(result["layers"]) == 12 + 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "autoformer-tiny",
          '{"hidden_dim": 192, "depth": 99, "mlp_ratio": [4], "num_heads": [3]}'], "depth 99"),
        (["info", "autoformer-tiny",
          '{"hidden_dim": 192, "depth": 12, "mlp_ratio": [4], "num_heads": [3]}'],
         "mlp_ratio has 1 entries"),
        (["info", "nasbench201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
         "unknown op 'conv'"),
        (["info", "pit-tiny", "{not json"], "not valid JSON"),
        (["info", "pit-tiny", "missing-file.json"], "not found"),
        (["sample", "no-such-space"], "unknown search space"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_entry_point_exit_code():
    result = subprocess.run(
        [sys.executable, "-m", "vitnas.cli", "info", "autoformer-tiny", '{"depth": 99}'],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("vitnas: error:") and "Traceback" not in result.stderr


def test_proxies_listing(capsys):
    code, out, _ = run(capsys, "proxies")
    assert code == 0 and "vintk" in out and "ntk_cond" in out and "lower" in out
    code, out, _ = run(capsys, "proxies", "--json")
    assert {"proxy", "direction", "cost", "reference"} <= set(json.loads(out)[0])


def test_score_command_json(capsys):
    arch = '{"hidden_dim": 48, "depth": 12, "mlp_ratio": [4], "num_heads": [3]}'
    arch = arch.replace("[4]", str([4] * 12)).replace("[3]", str([3] * 12))
    code, out, _ = run(capsys, "score", "autoformer-tiny-micro", arch, "--img-size", "16",
                       "--proxy", "vintk:mode=band,params,dss", "--dataset", "gaussian",
                       "--batch-size", "8", "--json")
    result = json.loads(out)
    assert code == 0
    assert [r["proxy"] for r in result["results"]] == ["vintk:mode=band", "params", "dss"]


def test_score_unknown_proxy_is_a_one_line_error(capsys):
    code, _, err = run(capsys, "score", "nasbench201", "0", "--proxy", "magic")
    assert code == 2 and "unknown proxy 'magic'" in err and err.count("\n") == 1


def test_demo_on_synthetic_data(capsys):
    code, out, _ = run(capsys, "demo", "-n", "2", "--dataset", "synthetic", "--batch-size", "8",
                       "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2 and "vintk" in rows[0]["scores"]
