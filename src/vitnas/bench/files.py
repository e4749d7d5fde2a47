"""Benchmark files: architectures with their trained accuracies.

A benchmark file is either the plain form, a JSON list of records
``{"arch": {...}, "<metric>": float | null, ...}``, or the form ``vitnas bench build`` writes,
an object with the same list under ``"records"`` plus the space, its options and the recipe that
produced the numbers. NAS-Bench-201 is built in (``nasbench201_benchmark``), and so is
ViT-Bench-101 (``vitnas.bench.vitbench101``, which also reads ``.pth`` files of its format);
``vitnas.bench.catalog`` lists them all and loads any of them by name or path.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.formatting import loads_strict
from vitnas.paths import not_a_file
from vitnas.spaces import get_space
from vitnas.spaces.base import SearchSpace

FORMAT = "vitnas-benchmark"
VERSION = 1  # what groundtruth and the ViT-Bench-101 import write; a file may omit it
RESERVED = ("arch",)


@dataclass
class BenchmarkRecord:
    arch: Any
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Benchmark:
    """Records of one space; ``meta`` keeps the recipe and space options for the report."""

    name: str
    space: SearchSpace
    records: list[BenchmarkRecord]
    meta: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> list[str]:
        """Fields that hold a number in at least one record (candidate ``--metric`` values)."""
        names: dict[str, None] = {}
        for record in self.records:
            for key, value in record.values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    names[key] = None
        return list(names)

    def values(self, metric: str) -> list[float | None]:
        if metric not in self.metrics():
            given = [r.values[metric] for r in self.records if metric in r.values]
            if given:  # the field is there, but no record gives it a number
                raise ConfigError(f"benchmark {self.name}: no record gives {metric} a number "
                                  f"(e.g. {shown(given[0])})")
            raise ConfigError(f"benchmark {self.name} has no metric {metric!r} "
                              f"(it has: {', '.join(self.metrics()) or 'none'})")
        out = []
        for i, record in enumerate(self.records):
            value = record.values.get(metric)
            if value is None:
                out.append(None)
                continue
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError
                number = float(value)
            except (ValueError, OverflowError):
                raise ConfigError(f"benchmark {self.name}: record {i} has {metric} = "
                                  f"{shown(value)}, not a number a float can hold") from None
            out.append(number if math.isfinite(number) else None)
        return out


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"benchmark file {path}: {message}")


def shown(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters for a message; an integer too long to print
    (over Python's 4300 digits) is described instead."""
    try:
        text = repr(value)
    except ValueError:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    return text if len(text) < width else text[:width - 3] + "..."


SCALARS = (str, int, float, bool, type(None))


def _check_meta(meta: dict[str, Any], path: str) -> None:
    """The header fields a benchmark is read by must have their JSON types (a list where the
    space's name belongs is refused here, not deep inside the space registry)."""
    if "space" in meta and meta["space"] is not None and (
            not isinstance(meta["space"], str) or not meta["space"].strip()):
        raise _fail(path, f'"space" must name a search space, like "autoformer-tiny", not '
                          f"{shown(meta['space'])}")
    options = meta.get("space_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _fail(path, '"space_options" must be an object like {"patch_size": 8}')
        for key, value in options.items():
            if not isinstance(key, str) or not isinstance(value, SCALARS):
                raise _fail(path, f'"space_options" {shown(key)} must be a string, number, '
                                  f"true/false or null, not {shown(value)}")
    if meta.get("format") == FORMAT and "version" in meta and (
            type(meta["version"]) is not int or meta["version"] != VERSION):
        raise _fail(path, f"is benchmark format version {shown(meta['version'])}; this vitnas "
                          f"reads version {VERSION}")
    if "metric" in meta and meta["metric"] is not None and (
            not isinstance(meta["metric"], str) or not meta["metric"].strip()):
        raise _fail(path, f'"metric" must name a record field, like "top1", not '
                          f"{shown(meta['metric'])}")


def parse_benchmark(obj: Any, path: str, space_name: str | None = None,
                    space_options: dict[str, Any] | None = None) -> Benchmark:
    """Validate the parsed JSON of a benchmark file; every problem is one ``ConfigError`` line
    naming the file and the record."""
    meta: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not isinstance(obj.get("records"), list):
            raise _fail(path, 'an object must hold a "records" list')
        meta = {k: v for k, v in obj.items() if k != "records"}
        rows = obj["records"]
    elif isinstance(obj, list):
        rows = obj
    else:
        raise _fail(path, "must be a JSON list of records or an object with \"records\"")
    _check_meta(meta, path)
    file_space = meta.get("space")
    if space_name and file_space and space_name != file_space:
        raise _fail(path, f"was built for space {file_space}, not {space_name}")
    name = space_name or file_space
    if not name:
        raise _fail(path, "does not name its space; pass --space")
    file_options = meta.get("space_options") or {}
    space = get_space(name, **{**file_options, **(space_options or {})})
    records = []
    first_seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _fail(path, f"record {i} is not an object")
        if "arch" not in row:
            raise _fail(path, f'record {i} has no "arch"')
        try:
            arch = space.from_json(row["arch"])
        except ArchitectureError as err:
            raise _fail(path, f"record {i}: {err}") from None
        key = space.key(arch)
        if key in first_seen:
            raise _fail(path, f"record {i} repeats the architecture of record "
                              f"{first_seen[key]}; keep one record per architecture")
        first_seen[key] = i
        values = {}
        for key, value in row.items():
            if key in RESERVED:
                continue
            if isinstance(value, bool) or not (value is None or isinstance(value, (int, float,
                                                                                  str, dict,
                                                                                  list))):
                raise _fail(path, f"record {i} field {shown(key)} has an unreadable value "
                                  f"{shown(value)}")
            values[key] = value
        records.append(BenchmarkRecord(arch, values))
    if not records:
        raise _fail(path, "holds no records")
    return Benchmark(Path(path).stem, space, records, meta)


def read_benchmark_json(path: str | Path) -> Any:
    if not str(path).strip():
        raise ConfigError("a benchmark file name is empty; name a JSON file")
    path = Path(path)
    if problem := not_a_file(path):
        raise ConfigError(f"benchmark file {path} {problem}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read benchmark file {path}: {err}") from None
    return loads_strict(text, f"benchmark file {path}")


def nasbench201_benchmark(n: int | None = None, seed: int = 0,
                          data_dir: str | None = None) -> Benchmark:
    """NAS-Bench-201 with its three 200-epoch test accuracies per cell; ``n`` draws a seeded
    random subset of the 15,625 cells (scoring all of them costs hours on a CPU)."""
    space = get_space("nasbench201", data_dir=data_dir)
    total = len(space.table().strings)
    indices = list(range(total))
    if n is not None:
        if not 0 < n <= total:
            raise ConfigError(f"nasbench201 holds {total} cells; cannot take {n}")
        indices = sorted(random.Random(seed).sample(indices, n))
    records = []
    for i in indices:
        arch = space.arch_at(i)
        values = {"index": i}
        for dataset in NB201_METRICS:
            values[dataset] = space.test_accuracy(arch, dataset)
        records.append(BenchmarkRecord(arch, values))
    meta = {"space": "nasbench201", "source": "NAS-Bench-201 200-epoch test accuracy",
            "sample": {"n": n, "seed": seed}}
    return Benchmark("nasbench201", space, records, meta)


NB201_METRICS = ("cifar10", "cifar100", "ImageNet16-120")
NB201_CELLS = 15625
