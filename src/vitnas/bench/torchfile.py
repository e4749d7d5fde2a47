"""Read the pickle inside a ``torch.save`` zip file without running anything it names.

``torch.load`` unpickles, and unpickling can call any importable function (``os.system`` in a
``__reduce__``), so a benchmark someone sends must never go through a plain ``torch.load``.
Benchmark files such as ViT-Bench-101's hold only lists, dicts, strings and numbers, which
pickle builds with its own opcodes; this reader refuses every global except
``collections.OrderedDict`` and every persistent id (tensor storage), so the worst a hostile
file can do is be refused.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vitnas.errors import ConfigError
from vitnas.paths import not_a_file

MAX_PICKLE_BYTES = 64 * 2**20
ALLOWED_GLOBALS = {("collections", "OrderedDict"): OrderedDict}


class PlainUnpickler(pickle.Unpickler):
    """Unpickler that can build plain containers only (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refers to {module}.{name}; only plain lists, dicts, strings and numbers "
                "are read (nothing was run)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("holds tensor storage; only plain lists, dicts, strings "
                                     "and numbers are read")


def loads_plain(data: bytes) -> Any:
    """Unpickle ``data`` with ``PlainUnpickler``; any failure is ``pickle.UnpicklingError``."""
    try:
        return PlainUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except Exception as err:  # truncated or malformed streams raise many kinds
        raise pickle.UnpicklingError(f"is not a readable pickle ({type(err).__name__}: "
                                     f"{err})") from None


def read_torch_pickle(path: str | Path) -> Any:
    """The object a ``torch.save`` zip file holds, if it is made of plain containers only.

    Every problem (missing file, not a zip, no ``data.pkl``, a refused global) is one
    ``ConfigError`` line naming the file.
    """
    if problem := not_a_file(path):
        raise ConfigError(f"benchmark file {path} {problem}")
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist()
                       if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(members) != 1:
                raise ConfigError(f"benchmark file {path}: a torch file holds one */data.pkl, "
                                  f"this one holds {len(members)}")
            if archive.getinfo(members[0]).file_size > MAX_PICKLE_BYTES:
                raise ConfigError(f"benchmark file {path}: data.pkl is larger than "
                                  f"{MAX_PICKLE_BYTES // 2**20} MiB")
            data = archive.read(members[0])
    except ConfigError:
        raise
    except zipfile.BadZipFile:
        raise ConfigError(f"benchmark file {path} is not a torch zip file (torch.save of "
                          "torch >= 1.6)") from None
    except OSError as err:
        raise ConfigError(f"cannot read benchmark file {path}: {err}") from None
    except Exception as err:  # zlib.error, EOFError and other damage inside the zip
        raise ConfigError(f"benchmark file {path} is corrupt: {err}") from None
    try:
        return loads_plain(data)
    except pickle.UnpicklingError as err:
        raise ConfigError(f"benchmark file {path}: {err}") from None
