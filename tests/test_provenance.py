"""A result file's provenance: the commit (dirty or not) and the machine it ran on."""

import subprocess

import pytest

from vitnas.provenance import TIMING_FLAGS, git_commit, hardware, provenance


def _git(repo, *argv):
    subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "a.txt").write_text("one\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return tmp_path


def test_the_commit_says_when_the_code_that_ran_differs_from_it(repo):
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit(str(repo)) == head
    (repo / "a.txt").write_text("two\n")
    assert git_commit(str(repo)) == head + "-dirty"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path):
    assert git_commit(str(tmp_path)) == "unknown"


def test_a_record_names_the_command_and_the_processor():
    record = provenance("python benchmarks/x.py --out y.json")
    assert record["command"] == "python benchmarks/x.py --out y.json"
    assert record["hardware"] == hardware()
    assert record["hardware"]["processor"] and record["hardware"]["cores"] >= 1
    assert set(record["hardware"]["cpu_flags"]) <= set(TIMING_FLAGS)
    assert record["date"].endswith("UTC")
