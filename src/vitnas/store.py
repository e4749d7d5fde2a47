"""The score store: every proxy evaluation, keyed by what determines it, in embedded SQLite.

Key: (space identity, architecture, full proxy config, seed, data batch). A score is a function
of exactly these (the determinism contract of ``vitnas.proxies.scoring``), so a stored row is
never recomputed, and the scoreboard and the search share one cache. Rows are committed as they
are written, so a process killed with SIGKILL loses at most the evaluation it was running.
One writer at a time (the driver); readers may run beside it (WAL journal). For many machines,
shard the work and ``merge`` the files, or put the same schema on a server database.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitnas.errors import ConfigError
from vitnas.paths import not_a_file

COLUMNS = ("space", "arch", "proxy", "seed", "batch", "score", "raw", "seconds", "warnings",
           "created")
SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    space TEXT NOT NULL,
    arch TEXT NOT NULL,
    proxy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    batch TEXT NOT NULL,
    score REAL,
    raw REAL,
    seconds REAL NOT NULL,
    warnings TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (space, arch, proxy, seed, batch)
)
"""


def space_identity(space: Any) -> str:
    """Space name plus a digest of everything that shapes its models (image, patch, classes,
    choices): the same architecture JSON in a 32 px and a 224 px space scores differently."""
    described = json.dumps(space.describe(), sort_keys=True, default=str)
    return f"{space.name}@{hashlib.sha256(described.encode()).hexdigest()[:12]}"


def batch_identity(inputs: torch.Tensor, labels: torch.Tensor) -> str:
    """Digest of the exact tensors a proxy saw."""
    digest = hashlib.sha256()
    for tensor in (inputs, labels):
        t = tensor.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ScoreKey:
    space: str
    arch: str
    proxy: str
    seed: int
    batch: str


@dataclass(frozen=True)
class StoredScore:
    key: ScoreKey
    score: float
    raw: float
    seconds: float
    warnings: tuple[str, ...] = ()


def _nan_to_null(value: float) -> float | None:
    return value if math.isfinite(value) else None


# "VNAS" in the SQLite header: a file vitnas created (older stores carry 0 until next opened)
APPLICATION_ID = 0x564E4153


class ScoreStore:
    """``ScoreStore(path)``; ``":memory:"`` for a throwaway store. ``readonly=True`` opens an
    existing store without writing anything to it (the inputs of ``merge``).

    A file that is not a vitnas store (another SQLite database, another ``scores`` table, a
    file stamped by another application), a damaged one, and one this process cannot write
    are refused when opened, before any work, with one ``ConfigError``."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        try:
            if readonly:
                if problem := not_a_file(self.path):
                    raise ConfigError(f"score store {self.path} {problem}")
                # no journal beside it: immutable, so not even -wal/-shm files are created
                quiet = "" if Path(self.path + "-wal").exists() else "&immutable=1"
                self.db = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro{quiet}",
                                          uri=True, timeout=60)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=60)
            self._check_ours()
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute(SCHEMA)
                # a write at once: a read-only file fails here, not after the work
                self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self.db.commit()
        except ConfigError:
            self._close_quietly()
            raise
        except (OSError, sqlite3.Error) as err:
            self._close_quietly()
            what = ("cannot be written" if "readonly" in str(err)
                    else "is damaged or not a SQLite database")
            raise ConfigError(f"score store {self.path} {what} ({err})") from None

    def _check_ours(self) -> None:
        """Refuse a database vitnas did not make, by its header stamp and its schema."""
        stamp = self.db.execute("PRAGMA application_id").fetchone()[0]
        if stamp not in (0, APPLICATION_ID):
            raise ConfigError(f"score store {self.path} belongs to another application "
                              f"(SQLite application_id {stamp:#x}); name a vitnas store")
        tables = [row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")]
        if tables and "scores" not in tables:
            raise ConfigError(f"score store {self.path} is another SQLite database (tables: "
                              f"{', '.join(sorted(tables)[:5])}), not a vitnas score store; "
                              f"name a new file")
        if "scores" in tables:
            columns = tuple(row[1] for row in self.db.execute("PRAGMA table_info(scores)"))
            if columns != COLUMNS:
                raise ConfigError(f"score store {self.path} has a 'scores' table that is not a "
                                  f"vitnas score store (columns {', '.join(columns)}; expected "
                                  f"{', '.join(COLUMNS)})")
        if self.path != ":memory:":
            verdict = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise ConfigError(f"score store {self.path} is damaged ({verdict})")

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"score store {self.path} is damaged ({err})") from None

    def _row(self, key: ScoreKey, score: Any, raw: Any, seconds: Any,
             warnings: Any) -> StoredScore:
        """A stored row, checked: a number where a number belongs, warnings a JSON list."""
        def number(value: Any, nullable: bool = True) -> float:
            if value is None and nullable:
                return math.nan
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            raise ConfigError(f"score store {self.path} is damaged: {key.proxy} on "
                              f"{key.arch[:40]} holds {value!r} where a number belongs")

        try:
            notes = json.loads(warnings)
        except (TypeError, ValueError):
            notes = None
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ConfigError(f"score store {self.path} is damaged: the warnings of {key.proxy} "
                              f"on {key.arch[:40]} are not a JSON list of text")
        return StoredScore(key, number(score), number(raw), number(seconds, False),
                           tuple(notes))

    def get(self, key: ScoreKey) -> StoredScore | None:
        rows = self._query(
            "SELECT score, raw, seconds, warnings FROM scores WHERE space=? AND arch=? AND "
            "proxy=? AND seed=? AND batch=?",
            (key.space, key.arch, key.proxy, key.seed, key.batch))
        return self._row(key, *rows[0]) if rows else None

    def put(self, rows: Iterable[StoredScore]) -> int:
        """Insert rows not yet stored (first write wins: a score never changes) and commit."""
        if self.readonly:
            raise ConfigError(f"score store {self.path} was opened read-only")
        before = self.db.total_changes
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.key.space, r.key.arch, r.key.proxy, r.key.seed, r.key.batch,
                  _nan_to_null(r.score), _nan_to_null(r.raw), r.seconds,
                  json.dumps(list(r.warnings)), time.time()) for r in rows])
            self.db.commit()
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"score store {self.path} cannot be written ({err}); every "
                              f"score committed before this one is kept") from None
        return self.db.total_changes - before

    def clashes(self, rows: Iterable[StoredScore]) -> int:
        """How many of ``rows`` this store already holds under the same key with another
        score. Scores are deterministic, so a clash means two stores were made differently
        (another vitnas version, another machine's kernels); ``put`` keeps the first."""
        count = 0
        for row in rows:
            stored = self.get(row.key)
            if stored is not None and _nan_to_null(stored.score) != _nan_to_null(row.score):
                count += 1
        return count

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM scores")[0][0]

    def rows(self) -> list[StoredScore]:
        return [self._row(ScoreKey(space, arch, proxy, seed, batch), score, raw, seconds,
                          warnings)
                for space, arch, proxy, seed, batch, score, raw, seconds, warnings
                in self._query("SELECT space, arch, proxy, seed, batch, score, raw, seconds, "
                               "warnings FROM scores ORDER BY space, arch, proxy, seed, batch")]

    def merge(self, other: str | Path) -> int:
        """Copy the rows of another store file into this one (read, never written); returns
        how many were new."""
        if problem := not_a_file(other):
            raise ConfigError(f"score store {other} {problem}")
        if Path(other).resolve() == Path(self.path).resolve():
            raise ConfigError(f"score store {other} cannot be merged into itself")
        with ScoreStore(other, readonly=True) as source:
            return self.put(source.rows())


def default_store_path() -> Path:
    from vitnas.paths import cache_dir

    return cache_dir() / "scores.sqlite"
