import json
import math
import signal
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
    assert "15,625" in out and "e+" not in out  # counts in full, never 1.56e+04
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
    # --img-size reaches the model: its position embedding has (16 / patch)^2 + 1 rows
    from vitnas.spaces import get_space

    small, default = (get_space("autoformer-tiny-micro", **options)
                      for options in ({"img_size": 16}, {}))
    parsed = small.from_json(json.loads(arch))
    assert small.params(parsed) != default.params(parsed)
    assert result["results"][1]["score"] == small.params(parsed)
    assert all(math.isfinite(r["score"]) for r in result["results"])


def test_score_unknown_proxy_is_a_one_line_error(capsys):
    code, _, err = run(capsys, "score", "nasbench201", "0", "--proxy", "magic")
    assert code == 2 and "unknown proxy 'magic'" in err and err.count("\n") == 1


def test_demo_on_synthetic_data(capsys):
    code, out, _ = run(capsys, "demo", "-n", "2", "--dataset", "synthetic", "--batch-size", "8",
                       "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2 and "vintk" in rows[0]["scores"]


def test_demo_with_an_unknown_dataset_says_only_the_error(capsys):
    """The one line is the error: no status line about building a batch it cannot build."""
    code, out, err = run(capsys, "demo", "--dataset", "nosuch")
    assert code == 2 and out == ""
    assert err.startswith("vitnas: error: unknown dataset 'nosuch'") and err.count("\n") == 1
    assert "gaussian" in err and "paste-fashion" in err


ARCH = json.dumps({"hidden_dim": 48, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12})


@pytest.mark.parametrize("argv, message", [
    (["sample", "pit-tiny-micro", "-n", "-3"], "argument -n: must be >= 1, got -3"),
    (["info", "autoformer-tiny", "--img-size", "0", ARCH], "argument --img-size: must be >= 1"),
    (["info", "autoformer-tiny", "--patch-size", "0", ARCH], "argument --patch-size"),
    (["info", "autoformer-tiny-micro", "--patch-size", "x", ARCH], "'x' is not an integer"),
    (["info", "pit-tiny", "[" * 200_000], "nested too deeply"),
    (["score", "nasbench201", "0", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["score", "nasbench201", "0", "--batch-size", "-1"], "argument --batch-size: must be >= 1"),
    (["score", "nasbench201", "0", "--proxy", ""], "names no proxy"),
    (["score", "autoformer-tiny-micro", ARCH, "--proxy", "vintk:sigma=nan"], "finite float"),
    (["score", "autoformer-tiny-micro", ARCH, "--proxy", "vintk:sigma=inf"], "finite float"),
    (["score", "autoformer-tiny-micro", ARCH, "--proxy", "vintk:mode=band,sigma=3"],
     "does not read sigma=3.0"),
    (["train", "autoformer-tiny-micro", ARCH, "--lr", "nan"], "argument --lr: must be > 0"),
    (["train", "autoformer-tiny-micro", ARCH, "--batch-size", "0"], "argument --batch-size"),
    (["train", "autoformer-tiny-micro", ARCH, "--epochs", "0"], "argument --epochs: must be > 0"),
    (["train", "autoformer-tiny-micro", ARCH, "--resume"], "--resume needs --out"),
    (["train", "autoformer-tiny-micro", ARCH, "--epochs", "-1"], "argument --epochs"),
    (["train", "autoformer-tiny-micro", ARCH, "--train-per-class", "0"], "--train-per-class"),
    (["train", "autoformer-tiny-micro", ARCH, "--dataset", "synthetic", "--device", "tpu"],
     "unknown device 'tpu'"),
    (["revit", "train", "--out", "x.pt", "--epochs", "0"], "argument --epochs: must be > 0"),
    (["proxies", "magic"], "unknown proxy 'magic'"),
    (["bench", "correlate", "--benchmark", "vit-bench-101-pit", "--dev-fraction", "2"],
     "argument --dev-fraction: must be < 1"),
    (["bench", "correlate", "--benchmark", "vit-bench-101-pit", "--resamples", "-1"],
     "argument --resamples: must be >= 0"),
    (["bench", "correlate", "--benchmark", "vit-bench-101-pit", "--limit", "0"],
     "argument --limit: must be >= 1"),
    (["search", "pit-tiny-micro", "--workers", "0"], "argument --workers: must be >= 1"),
])
def test_malformed_numbers_and_names_give_one_line_and_exit_code_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_sizes_of_zero_are_errors_not_defaults():
    from vitnas.errors import ConfigError
    from vitnas.spaces import get_space

    for options in ({"img_size": 0}, {"patch_size": 0}, {"num_classes": 0}):
        with pytest.raises(ConfigError, match="positive"):
            get_space("autoformer-tiny-micro", **options)
    with pytest.raises(ConfigError, match="positive"):
        get_space("pit-tiny-micro", patch_size=0)


@pytest.mark.parametrize("command", ["info", "score", "train"])
def test_a_line_of_sample_feeds_info_score_and_train(capsys, command):
    _, line, _ = run(capsys, "sample", "autoformer-tiny-micro", "-n", "1", "--patch-size", "8")
    options = {"info": ["--json"],
               "score": ["--proxy", "params", "--dataset", "gaussian", "--json"],
               "train": ["--dataset", "synthetic", "--epochs", "0.05", "--batch-size", "50",
                         "--device", "cpu", "--quiet", "--json"]}[command]
    code, out, err = run(capsys, command, "autoformer-tiny-micro", "--patch-size", "8",
                         line.strip(), *options)
    assert code == 0, err
    assert json.loads(out)["arch"] == json.loads(line)["arch"]


def test_train_on_a_set_smaller_than_one_batch_finishes(capsys):
    def handler(signum, frame):
        raise TimeoutError("training a set smaller than one batch hangs")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.alarm(60)
    try:  # synthetic's training split holds 1,000 images: fewer than one batch of 2,000
        code, out, err = run(capsys, "train", "autoformer-tiny-micro", ARCH, "--patch-size", "8",
                             "--dataset", "synthetic", "--epochs", "1", "--batch-size", "2000",
                             "--device", "cpu", "--quiet", "--json")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 0, err
    assert json.loads(out)["steps"] == 1


def test_train_says_when_it_evaluates(capsys):
    code, out, err = run(capsys, "train", "autoformer-tiny-micro", ARCH, "--patch-size", "8",
                         "--dataset", "synthetic", "--epochs", "0.05", "--batch-size", "100",
                         "--device", "cpu", "--json")
    assert code == 0, err
    assert "loading synthetic" in err and "evaluating on the 200 synthetic test images" in err
    assert json.loads(out)["top1"] is not None


def test_version_module_entry_point_and_a_help_that_does_not_load_torch():
    result = subprocess.run([sys.executable, "-m", "vitnas", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("vitnas ")
    probe = ("import sys, vitnas.cli; vitnas.cli.build_parser(); "
             "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_proxies_with_a_name_lists_its_options(capsys):
    code, out, _ = run(capsys, "proxies", "vintk")
    assert code == 0 and "sigma" in out and "10.0" in out and "--proxy vintk:" in out
    code, out, _ = run(capsys, "proxies", "vintk", "--json")
    options = {o["option"]: o["default"] for o in json.loads(out)["options"]}
    assert options["sigma"] == 10.0 and options["mode"] == "view" and options["combine"] == "high"
    read_when = {o["option"]: o["read when"] for o in json.loads(out)["options"]}
    assert read_when["ridge"] == "mode=learn" and "read when" in run(capsys, "proxies", "vintk")[1]
    code, out, _ = run(capsys, "proxies", "zen", "--json")  # a proxy without modes: no column
    assert code == 0 and all("read when" not in o for o in json.loads(out)["options"])


def test_help_and_readme_name_the_same_main_job(capsys):
    from pathlib import Path

    from vitnas.cli import MAIN_JOB

    assert main(["--help"]) == 0
    assert MAIN_JOB in " ".join(capsys.readouterr().out.split())
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert MAIN_JOB in readme.read_text()
