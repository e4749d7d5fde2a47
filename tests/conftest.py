"""Shared test setup: where the real data lives, and a fixed torch thread count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("VITNAS_DATA_DIR", str(SHARED_DATA))
torch.set_num_threads(min(2, os.cpu_count() or 1))


def benchmark_script(name: str):
    """A script of ``benchmarks/`` imported as a module (they are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_shared_file(relative: str) -> Path:
    """Path of a real data file; skip when absent, except under CI where it must exist."""
    path = Path(os.environ["VITNAS_DATA_DIR"]) / relative
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data file {path} is missing in CI")
        pytest.skip(f"shared data file {path} not available")
    return path


@pytest.fixture
def shared_data_dir() -> Path:
    return Path(os.environ["VITNAS_DATA_DIR"])


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: with a second thread, synchronisation dominates (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def proxy_context(inputs, labels=None, classes=2, seed=0):
    """A proxy context on ``inputs`` whose labels default to class 0."""
    from vitnas.proxies import ProxyContext

    labels = torch.zeros(len(inputs), dtype=torch.long) if labels is None else labels
    return ProxyContext(inputs, labels, classes, seed)



def one_line_error(capsys, *argv) -> str:
    """Run the CLI on ``argv`` and return its one error line, asserting exit code 2 and
    nothing else on stderr (the project's bad-input contract)."""
    from vitnas.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    return lines[0]
