"""The NAS-Bench-201 cell space, with its 15,625 trained accuracies as built-in ground truth.

An architecture is the 6 edge operations of the cell, written as the standard string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` or given as a benchmark index (row of the table in
``<data dir>/nasbench201/nb201_test_acc_200ep.csv``; the data dir is configurable, see
``vitnas.paths``). Counting follows the benchmark network: 3x3 stem, 5 cells per stage at
C = 16/32/64, residual reductions, BatchNorm with affine parameters.
"""

from __future__ import annotations

import csv
import functools
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vitnas.errors import ArchitectureError, DatasetError
from vitnas.flops import LayerCost, conv_cost, linear_cost
from vitnas.grammar import plain_digits
from vitnas.models.nb201 import EDGES, OPS, NB201Network
from vitnas.paths import find_data_file
from vitnas.spaces.base import SPACES, SearchSpace, Shape, as_rng, build_seeded

TABLE_FILE = "nasbench201/nb201_test_acc_200ep.csv"
DATASET_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}
NUM_ARCHS = len(OPS) ** len(EDGES)
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d)$", re.ASCII)


@dataclass(frozen=True)
class NB201Arch:
    ops: tuple[str, ...]

    @property
    def string(self) -> str:
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def parse_arch_string(text: str) -> NB201Arch:
    """Parse the standard NAS-Bench-201 string, checking every op and input index."""
    shape = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ArchitectureError(f"NAS-Bench-201 string must have 3 nodes like {shape}: {text!r}")
    ops = []
    for target, node in enumerate(nodes, start=1):
        tokens = node.split("|")[1:-1]  # "|a|b|" -> a, b; an empty "||" is an empty edge
        if len(tokens) != target or not (node.startswith("|") and node.endswith("|")):
            raise ArchitectureError(
                f"node {target} of NAS-Bench-201 string needs {target} edge(s) like {shape}: "
                f"{text!r}"
            )
        for source, token in enumerate(tokens):
            match = _TOKEN.match(token)
            if not match or int(match.group(2)) != source:
                raise ArchitectureError(f"malformed edge {token!r} in NAS-Bench-201 string")
            if match.group(1) not in OPS:
                raise ArchitectureError(
                    f"unknown op {match.group(1)!r} in NAS-Bench-201 string "
                    f"(expected one of {', '.join(OPS)})"
                )
            ops.append(match.group(1))
    return NB201Arch(tuple(ops))


@dataclass(frozen=True)
class NB201Table:
    """Seed-averaged 200-epoch test accuracies of every cell, by benchmark index."""

    strings: tuple[str, ...]
    accuracy: dict[str, np.ndarray]
    index: dict[str, int]


@functools.lru_cache(maxsize=4)
def load_table(path: Path) -> NB201Table:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise DatasetError(f"cannot read NAS-Bench-201 table {path}: {err.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"NAS-Bench-201 table {path} is not a CSV text file ({err})"
                           ) from None
    missing = [c for c in (*DATASET_COLUMNS.values(), "ArchitectureString")
               if rows and c not in rows[0]]
    if len(rows) != NUM_ARCHS or missing:
        raise DatasetError(
            f"NAS-Bench-201 table {path} is malformed: {len(rows)} rows (expected {NUM_ARCHS})"
            + (f", missing columns {', '.join(missing)}" if missing else "")
        )
    try:
        accuracy = {
            name: np.array([float(r[column]) for r in rows])
            for name, column in DATASET_COLUMNS.items()
        }
    except (ValueError, TypeError):
        raise DatasetError(f"NAS-Bench-201 table {path} has a non-numeric accuracy") from None
    for name, values in accuracy.items():
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 100))
        if len(bad):
            raise DatasetError(f"NAS-Bench-201 table {path}: row {bad[0] + 2} has {name} "
                               f"accuracy {values[bad[0]]!r}, not a percentage in [0, 100]")
    strings = tuple(r["ArchitectureString"] for r in rows)
    index: dict[str, int] = {}
    for i, text in enumerate(strings):
        try:
            parse_arch_string(text)
        except ArchitectureError as err:
            raise DatasetError(f"NAS-Bench-201 table {path}: row {i + 2}: {err}") from None
        if text in index:
            raise DatasetError(f"NAS-Bench-201 table {path}: row {i + 2} repeats the cell of "
                               f"row {index[text] + 2}")
        index[text] = i
    return NB201Table(strings, accuracy, index)


class NASBench201Space(SearchSpace):
    name = "nasbench201"
    default_img_size = 32
    default_num_classes = 10

    def __init__(
        self,
        *,
        img_size: int | None = None,
        in_chans: int = 3,
        num_classes: int | None = None,
        channels: int = 16,
        cells_per_stage: int = 5,
        data_dir: str | None = None,
    ) -> None:
        super().__init__(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        if self.img_size % 4:
            raise ArchitectureError(
                f"nasbench201: image size {self.img_size} must be a multiple of 4"
            )
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.data_dir = data_dir

    # --- benchmark ----------------------------------------------------------------------------
    def table(self) -> NB201Table:
        return load_table(find_data_file(TABLE_FILE, self.data_dir).resolve())

    def arch_at(self, index: int) -> NB201Arch:
        if not 0 <= index < NUM_ARCHS:
            raise ArchitectureError(f"NAS-Bench-201 index {index} is not in 0..{NUM_ARCHS - 1}")
        return parse_arch_string(self.table().strings[index])

    def index_of(self, arch: NB201Arch) -> int:
        return self.table().index[arch.string]

    def test_accuracy(self, arch: NB201Arch, dataset: str = "cifar10") -> float:
        """200-epoch test accuracy (%) of ``arch`` on cifar10, cifar100 or ImageNet16-120."""
        if dataset not in DATASET_COLUMNS:
            raise ArchitectureError(
                f"unknown NAS-Bench-201 dataset {dataset!r}; "
                f"choose from {', '.join(DATASET_COLUMNS)}"
            )
        return float(self.table().accuracy[dataset][self.index_of(arch)])

    # --- JSON ---------------------------------------------------------------------------------
    def from_json(self, obj: Any) -> NB201Arch:
        if isinstance(obj, bool):
            raise ArchitectureError("a NAS-Bench-201 architecture is a string or an index")
        if isinstance(obj, int):
            return self.arch_at(obj)
        if isinstance(obj, str):
            return parse_arch_string(obj)
        if isinstance(obj, dict) and set(obj) == {"arch"}:
            return self.from_json(obj["arch"])
        raise ArchitectureError("a NAS-Bench-201 architecture is a string like "
                                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or a benchmark index")

    def to_json(self, arch: NB201Arch) -> str:
        return arch.string

    def parse(self, text: str) -> NB201Arch:
        """Also accepts the bare string or index, not only their JSON forms."""
        stripped = text.strip()
        if stripped.startswith("|"):
            return parse_arch_string(stripped)
        if plain_digits(stripped):
            return self.arch_at(int(stripped))
        return super().parse(text)

    # --- variation ----------------------------------------------------------------------------
    def sample(self, seed: int | random.Random | None = None) -> NB201Arch:
        rng = as_rng(seed)
        return NB201Arch(tuple(rng.choice(OPS) for _ in EDGES))

    def mutate(
        self, arch: NB201Arch, seed: int | random.Random | None = None, **_: float
    ) -> NB201Arch:
        """Regularized-evolution mutation: one random edge gets a different operation."""
        rng = as_rng(seed)
        ops = list(arch.ops)
        edge = rng.randrange(len(ops))
        ops[edge] = rng.choice([op for op in OPS if op != ops[edge]])
        return NB201Arch(tuple(ops))

    def crossover(
        self, a: NB201Arch, b: NB201Arch, seed: int | random.Random | None = None
    ) -> NB201Arch:
        rng = as_rng(seed)
        return NB201Arch(tuple(rng.choice(pair) for pair in zip(a.ops, b.ops)))

    # --- counting and building ----------------------------------------------------------------
    def shape(self, arch: Any) -> Shape:
        """The cell's analogue of a ViT's shape: depth is the most convolutions on one path
        from the cell's input to its output (a path through ``none`` does not exist), width
        the number of convolution edges."""
        arch = self._as_arch(arch)
        longest = {0: 0}
        for (start, end), op in zip(EDGES, arch.ops):
            if op != "none" and start in longest:
                step = longest[start] + ("conv" in op)
                longest[end] = max(longest.get(end, step), step)
        return Shape(longest.get(3, 0), sum("conv" in op for op in arch.ops))

    def layer_costs(self, arch: NB201Arch) -> list[LayerCost]:
        size, width = self.img_size, self.channels
        conv_p, conv_f = conv_cost((size, size), self.in_chans, width, 3, bias=False)
        rows = [LayerCost("stem", f"conv3x3 {self.in_chans}->{width} + BN",
                          conv_p + 2 * width, conv_f)]
        for stage in range(3):
            if stage:
                size //= 2
                p_a, f_a = conv_cost((size, size), width, 2 * width, 3, bias=False)
                p_b, f_b = conv_cost((size, size), 2 * width, 2 * width, 3, bias=False)
                p_d, f_d = conv_cost((size, size), width, 2 * width, 1, bias=False)
                rows.append(LayerCost(
                    f"reduction{stage}", f"residual block {width}->{2 * width}, stride 2",
                    p_a + p_b + p_d + 2 * 2 * (2 * width), f_a + f_b + f_d,
                ))
                width *= 2
            params = flops = 0
            for op in arch.ops:
                if op in ("nor_conv_1x1", "nor_conv_3x3"):
                    kernel = 1 if op == "nor_conv_1x1" else 3
                    p, f = conv_cost((size, size), width, width, kernel, bias=False)
                    params, flops = params + p + 2 * width, flops + f
            rows.append(LayerCost(
                f"stage{stage}", f"{self.cells_per_stage} cells, C={width}, {size}x{size}",
                self.cells_per_stage * params, self.cells_per_stage * flops,
            ))
        rows.append(LayerCost("lastact", f"BN {width} + ReLU", 2 * width, 0))
        rows.append(LayerCost("head", f"linear {width}->{self.num_classes}",
                              *linear_cost(1, width, self.num_classes)))
        return rows

    def build(self, arch: NB201Arch, seed: int = 0) -> nn.Module:
        """PyTorch's default initialisation (the benchmark's), seeded."""
        arch = self.validate(arch)
        return build_seeded(
            lambda: NB201Network(
                arch.ops,
                channels=self.channels,
                cells_per_stage=self.cells_per_stage,
                in_chans=self.in_chans,
                num_classes=self.num_classes,
            ),
            seed,
        )

    def size(self) -> int:
        return NUM_ARCHS

    def choices(self) -> dict[str, Any]:
        return {
            "family": "nasbench201",
            "ops (per edge, 6 edges)": list(OPS),
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
        }


SPACES.register("nasbench201", NASBench201Space)
