"""Every benchmark by name or path: the built-ins (NAS-Bench-201, ViT-Bench-101) and files
(plain or ``vitnas bench build`` JSON, ViT-Bench-101-style ``.pth``)."""

from __future__ import annotations

import random
from typing import Any

from vitnas.bench import vitbench101
from vitnas.bench.files import (
    NB201_CELLS,
    NB201_METRICS,
    Benchmark,
    nasbench201_benchmark,
    parse_benchmark,
    read_benchmark_json,
)
from vitnas.errors import ConfigError


def builtin_benchmarks() -> list[dict[str, Any]]:
    """Every built-in benchmark with its space, size, labels and source (``vitnas bench list``)."""
    rows = [{"name": "nasbench201", "space": "nasbench201", "size": NB201_CELLS,
             "labels": list(NB201_METRICS),
             "source": "NAS-Bench-201 200-epoch test accuracy (NATS-Bench topology), read from "
                       "the data directory", "licence": "not bundled"}]
    for entry in vitbench101.BUILTINS.values():
        rows.append({"name": entry.name, "space": entry.space, "size": entry.records,
                     "labels": list(entry.labels), "source": vitbench101.SOURCE,
                     "licence": vitbench101.LICENSE + " (bundled, NOTICE beside the file)"})
    return rows


def load_benchmark(source: str, space: str | None = None,
                   space_options: dict[str, Any] | None = None, n: int | None = None,
                   seed: int = 0, data_dir: str | None = None) -> Benchmark:
    """A benchmark from a file path (JSON, or a ViT-Bench-101-style ``.pth``), or a built-in
    name (``nasbench201``, ``vit-bench-101-autoformer``, ``vit-bench-101-pit``)."""
    if source == "nasbench201":
        if space not in (None, "nasbench201"):
            raise ConfigError(f"the nasbench201 benchmark belongs to space nasbench201, "
                              f"not {space}")
        return nasbench201_benchmark(n, seed, data_dir)
    if source in vitbench101.BUILTINS:
        bench = vitbench101.load_builtin(source, space, space_options)
    elif str(source).endswith(".pth"):
        bench = vitbench101.import_autoprox(source, space, space_options)
    else:
        bench = parse_benchmark(read_benchmark_json(source), str(source), space, space_options)
    if n is not None and n > len(bench.records):  # as nasbench201 says: never a silent clamp
        raise ConfigError(f"{bench.name} holds {len(bench.records)} architectures; cannot take "
                          f"{n}")
    if n is not None and n < len(bench.records):
        keep = sorted(random.Random(seed).sample(range(len(bench.records)), n))
        bench.records = [bench.records[i] for i in keep]
    return bench
