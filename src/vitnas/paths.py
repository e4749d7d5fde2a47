"""Where vitnas finds shared data and keeps its caches.

Nothing is hard-coded: an explicit argument wins, then an environment variable,
then a short list of conventional places relative to the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitnas.errors import DatasetError

DATA_DIR_ENV = "VITNAS_DATA_DIR"
CACHE_DIR_ENV = "VITNAS_CACHE_DIR"
_CONVENTIONAL_DATA_DIRS = ("data", "shared/data", "../shared/data")


def data_dir_candidates(explicit: str | os.PathLike | None = None) -> list[Path]:
    """The data directories to try, in order of precedence."""
    if explicit is not None:
        return [Path(explicit).expanduser()]
    candidates = []
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]).expanduser())
    candidates.extend(Path.cwd() / rel for rel in _CONVENTIONAL_DATA_DIRS)
    return candidates


def find_data_file(relative: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Locate ``relative`` (e.g. ``nasbench201/nb201_test_acc_200ep.csv``) in the data dirs."""
    candidates = data_dir_candidates(data_dir)
    for root in candidates:
        path = root / relative
        if path.exists():
            return path
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"data file {relative!r} not found (looked in: {looked}); "
        f"pass --data-dir or set {DATA_DIR_ENV}"
    )


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache directory (created on demand): argument > $VITNAS_CACHE_DIR > ~/.cache/vitnas."""
    if explicit is not None:
        path = Path(explicit).expanduser()
    elif os.environ.get(CACHE_DIR_ENV):
        path = Path(os.environ[CACHE_DIR_ENV]).expanduser()
    else:
        path = Path.home() / ".cache" / "vitnas"
    path.mkdir(parents=True, exist_ok=True)
    return path
