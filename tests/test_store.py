"""The SQLite score store and cached scoring."""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.proxies import get_proxy
from vitnas.proxies.scoring import proxy_batch, score_architecture, score_cached
from vitnas.spaces import get_space
from vitnas.store import (
    ScoreKey,
    ScoreStore,
    StoredScore,
    batch_identity,
    space_identity,
)

KEY = ScoreKey("space@x", '{"a":1}', "nwot", 0, "batch")


def test_put_get_first_write_wins_and_nan(tmp_path):
    path = tmp_path / "s.sqlite"
    with ScoreStore(path) as store:
        assert store.get(KEY) is None
        assert store.put([StoredScore(KEY, math.nan, math.nan, 0.5, ("w",))]) == 1
        assert store.put([StoredScore(KEY, 1.0, 1.0, 0.1)]) == 0
    with ScoreStore(path) as reopened:  # committed: survives the process
        row = reopened.get(KEY)
        assert math.isnan(row.score) and row.seconds == 0.5 and row.warnings == ("w",)
        assert len(reopened) == 1


def test_merge(tmp_path):
    other = ScoreKey("space@x", '{"a":2}', "nwot", 0, "batch")
    with ScoreStore(tmp_path / "a.sqlite") as a, ScoreStore(tmp_path / "b.sqlite") as b:
        a.put([StoredScore(KEY, 1.0, 1.0, 0.1)])
        b.put([StoredScore(KEY, 1.0, 1.0, 0.1), StoredScore(other, 2.0, 2.0, 0.1)])
        assert a.merge(tmp_path / "b.sqlite") == 1
        assert len(a) == 2


def test_corrupt_store_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="damaged or not a SQLite database"):
        ScoreStore(path)


def test_identities_separate_what_changes_scores():
    assert space_identity(get_space("autoformer-tiny-micro")) != space_identity(
        get_space("autoformer-tiny-micro", patch_size=8))
    x, y = proxy_batch("gaussian", 4, 32)
    assert batch_identity(x, y) == batch_identity(x.clone(), y.clone())
    assert batch_identity(x, y) != batch_identity(x + 1e-6, y)


def test_score_cached_computes_only_missing_and_matches_direct(monkeypatch):
    space = get_space("autoformer-tiny-micro", patch_size=8)
    arch = space.sample(0)
    x, y = proxy_batch("gaussian", 4, 32)
    store = ScoreStore(":memory:")
    first = score_cached(store, space, arch, ["params", "nwot"], x, y)
    direct = score_architecture(space, arch, ["params", "nwot"], x, y)
    assert [r.score for r in first] == [r.score for r in direct]
    calls = []
    original = score_architecture

    def counting(space, arch, proxies, *args, **kwargs):
        calls.append([p.spec for p in proxies])
        return original(space, arch, proxies, *args, **kwargs)

    monkeypatch.setattr("vitnas.proxies.scoring.score_architecture", counting)
    again = score_cached(store, space, arch, ["params", "nwot", "synflow"], x, y)
    assert calls == [["synflow"]]
    assert [r.score for r in again[:2]] == [r.score for r in first]
    assert len(store) == 3


def test_full_spec_is_independent_of_defaults():
    assert get_proxy("vintk").full_spec == get_proxy("vintk:sigma=10").full_spec
    assert "sigma=10" in get_proxy("vintk").full_spec
    assert get_proxy("params").full_spec == "params"


def test_the_proxy_batch_does_not_depend_on_the_thread_count():
    # a resized batch that changed with --threads would change every score and miss the cache
    previous = torch.get_num_threads()
    try:
        batches = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            batches.append(proxy_batch("synthetic", 16, 224, num_classes=10, seed=0))
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])
    assert torch.get_num_threads() == previous


def test_a_database_with_a_foreign_scores_table_is_one_clear_error(tmp_path):
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE scores (x INTEGER)")
    with pytest.raises(ConfigError, match="not a vitnas score store"):
        ScoreStore(path)


@pytest.mark.parametrize("images, labels", [(0, 0), (4, 3)])
def test_an_empty_or_mislabelled_batch_is_one_clear_error(images, labels):
    space = get_space("autoformer-tiny-micro", img_size=16, patch_size=4)
    x, y = torch.randn(images, 3, 16, 16), torch.zeros(labels, dtype=torch.long)
    with pytest.raises(ConfigError, match="at least one image and one label per image"):
        score_architecture(space, space.sample(0), ["synflow"], x, y)


# --- files that are not ours, or are damaged: refused when opened, one ConfigError each ---------
def _store_with_one_row(path):
    with ScoreStore(path) as store:
        store.put([StoredScore(KEY, 1.0, 2.0, 0.1, ("note",))])
    return path


def _tamper(path, sql):
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize("sql, message", [
    ("UPDATE scores SET warnings = 'not json'", "warnings .* not a JSON list"),
    ("UPDATE scores SET score = 'high'", "holds 'high' where a number belongs"),
    ("UPDATE scores SET raw = x'00ff'", "where a number belongs"),
])
def test_a_store_with_damaged_rows_is_named_as_damaged(tmp_path, sql, message):
    path = _store_with_one_row(tmp_path / "s.sqlite")
    _tamper(path, sql)
    with ScoreStore(path) as store, pytest.raises(ConfigError, match=f"damaged.*{message}"):
        store.get(KEY)
    with ScoreStore(path) as store, pytest.raises(ConfigError, match="damaged"):
        store.rows()


def test_a_store_with_corrupt_pages_is_refused_when_opened(tmp_path):
    path = tmp_path / "s.sqlite"
    with ScoreStore(path) as store:  # enough rows for several pages
        store.put([StoredScore(ScoreKey("s", f'{{"a":{i}}}', "nwot", 0, "b"), i, i, 0.1)
                   for i in range(2000)])
    data = bytearray(path.read_bytes())
    data[4096 * 3: 4096 * 3 + 2000] = b"\xff" * 2000  # a page in the middle
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="damaged"):
        ScoreStore(path)


@pytest.mark.parametrize("sql, message", [
    ("CREATE TABLE people (name TEXT)", "another SQLite database .*people"),
    ("CREATE TABLE scores (space TEXT, arch TEXT)", "not a vitnas score store"),
    ("PRAGMA application_id = 1234", "another application"),
])
def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path, sql, message):
    path = tmp_path / "foreign.sqlite"
    _tamper(path, sql)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=message):
        ScoreStore(path)
    assert path.read_bytes() == before  # no table written into it


def test_a_store_with_an_extra_column_is_refused(tmp_path):
    path = _store_with_one_row(tmp_path / "s.sqlite")
    _tamper(path, "ALTER TABLE scores ADD COLUMN extra TEXT")
    with pytest.raises(ConfigError, match="not a vitnas score store"):
        ScoreStore(path)


def test_merge_only_reads_its_inputs(tmp_path):
    source = _store_with_one_row(tmp_path / "in.sqlite")
    before = source.read_bytes()
    with ScoreStore(tmp_path / "out.sqlite") as out:
        assert out.merge(source) == 1
        with pytest.raises(ConfigError, match="into itself"):
            out.merge(tmp_path / "out.sqlite")
    assert source.read_bytes() == before
    assert not (tmp_path / "in.sqlite-wal").exists()
    with ScoreStore(source, readonly=True) as reader, pytest.raises(ConfigError, match="read"):
        reader.put([StoredScore(KEY, 1.0, 1.0, 0.1)])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes read-only files")
def test_a_read_only_store_is_refused_before_any_work(tmp_path):
    path = _store_with_one_row(tmp_path / "s.sqlite")
    path.chmod(0o444)
    with pytest.raises(ConfigError, match="cannot be written"):
        ScoreStore(path)


def test_a_store_opened_read_only_is_refused_as_unwritable(tmp_path, monkeypatch):
    # the chmod test above is skipped as root; opening with mode=ro needs no file modes
    path = _store_with_one_row(tmp_path / "s.sqlite")
    real = sqlite3.connect

    def read_only(name, *args, **kwargs):
        kwargs.pop("uri", None)
        return real(f"{Path(name).resolve().as_uri()}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(ConfigError, match="cannot be written"):
        ScoreStore(path)


def test_clashes_counts_only_a_different_score_and_nan_matches_nan():
    other = ScoreKey("space@x", '{"a":2}', "nwot", 0, "batch")
    store = ScoreStore(":memory:")
    store.put([StoredScore(KEY, 1.0, 1.0, 0.1), StoredScore(other, math.nan, math.nan, 0.1)])
    assert store.clashes([StoredScore(KEY, 2.0, 2.0, 0.1),
                          StoredScore(other, math.nan, math.nan, 0.1)]) == 1
    assert store.clashes([StoredScore(KEY, 1.0, 1.0, 0.1)]) == 0


def test_batch_identity_separates_the_same_bytes_in_another_shape():
    # a reshaped batch is another input to the model, so it must not share a cache row
    x, y = proxy_batch("gaussian", 4, 32)
    assert batch_identity(x, y) != batch_identity(x.reshape(4, 3, 16, 64), y)
