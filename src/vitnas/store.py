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


class ScoreStore:
    """``ScoreStore(path)``; ``":memory:"`` for a throwaway store."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)
            self.db.commit()
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(scores)")}
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(f"score store {self.path} is not a usable SQLite database: "
                              f"{err}") from None
        if missing := sorted(set(COLUMNS) - columns):
            self.db.close()
            raise ConfigError(f"score store {self.path} has a 'scores' table that is not a "
                              f"vitnas score store (no column {', '.join(missing)})")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get(self, key: ScoreKey) -> StoredScore | None:
        row = self.db.execute(
            "SELECT score, raw, seconds, warnings FROM scores WHERE space=? AND arch=? AND "
            "proxy=? AND seed=? AND batch=?",
            (key.space, key.arch, key.proxy, key.seed, key.batch)).fetchone()
        if row is None:
            return None
        score, raw, seconds, warnings = row
        return StoredScore(key, math.nan if score is None else score,
                           math.nan if raw is None else raw, seconds, tuple(json.loads(warnings)))

    def put(self, rows: Iterable[StoredScore]) -> int:
        """Insert rows not yet stored (first write wins: a score never changes) and commit."""
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.key.space, r.key.arch, r.key.proxy, r.key.seed, r.key.batch,
              _nan_to_null(r.score), _nan_to_null(r.raw), r.seconds, json.dumps(list(r.warnings)),
              time.time()) for r in rows])
        self.db.commit()
        return self.db.total_changes - before

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def rows(self) -> list[StoredScore]:
        out = []
        for space, arch, proxy, seed, batch, score, raw, seconds, warnings, _ in self.db.execute(
                "SELECT * FROM scores ORDER BY space, arch, proxy, seed, batch"):
            out.append(StoredScore(ScoreKey(space, arch, proxy, seed, batch),
                                   math.nan if score is None else score,
                                   math.nan if raw is None else raw, seconds,
                                   tuple(json.loads(warnings))))
        return out

    def merge(self, other: str | Path) -> int:
        """Copy the rows of another store file into this one; returns how many were new."""
        if not Path(other).is_file():
            raise ConfigError(f"score store {other} not found")
        with ScoreStore(other) as source:
            return self.put(source.rows())


def default_store_path() -> Path:
    from vitnas.paths import cache_dir

    return cache_dir() / "scores.sqlite"
