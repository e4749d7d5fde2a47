"""ViT-Bench-101 built in (Auto-Prox, Wei et al., AAAI 2024), and an importer for files like it.

ViT-Bench-101 is trained ViT ground truth: 100 AutoFormer-T and 100 PiT-T subnets, each with
top-1 on CIFAR-100, Flowers and Chaoyang, trained plain (``*_base_acc``) and with feature
distillation from a ResNet-56 (``*_kd_acc``); AutoFormer also has ``imagenet_super_acc``, the
accuracy with weights inherited from a supernet. The KD labels are the primary ones (the
AutoFormer ``*_base_acc`` labels span about 2 points). The two files ship with vitnas,
unmodified, with their Apache-2.0 licence and a NOTICE (``bench/data/vit-bench-101/``).

A file is a ``torch.save`` of a list of ``{"arch": {...}, "<label>": float, ...}``; its arch
dicts already use our spaces' JSON form, so every record goes through the space's own
validation. It is read with ``vitnas.bench.torchfile`` (plain containers only), never with
``torch.load``.

A benchmark carries the options its models were trained with, so a proxy scores the model that
was trained (Auto-Prox's ``pycls/models/auto/``, configs ``configs/auto/``): 224 px, patch 16,
100 classes (the CIFAR-100 head; Flowers has 102 classes and Chaoyang 4: pass ``num_classes``
to score those heads), and

- AutoFormer (``AutoFormerSub``): qkv width = embedding dim (``qkv="embed"``), a class token
  that takes part in attention with its own position row, and a head on the mean of the patch
  tokens (``pool="mean", cls_token=True``). Parameter counts then equal Auto-Prox's exactly.
- PiT (``PiT``): patch 16, stride 8 (27x27, 14x14, 7x7 tokens), class-token head, head width =
  base_dim, qkv bias. Counts equal Auto-Prox's exactly: its pooling convolution is depthwise
  (``groups=in``), ours ``gcd(in, out)``, the same since no benchmark arch has fewer heads in a
  later stage.

Checked on all 200 archs against counts worked out by hand from Auto-Prox's code (the tests
repeat it): equal, AutoFormer 5,284,996..9,746,260 and PiT 156,612..29,472,420 parameters.
``pool="mean"`` without the class token would count 2 x embed dim (384..480) fewer; the default
``autoformer-tiny`` (64-wide heads, class-token head) differs by -462,240..+444,096.

Left different, none changes a parameter count: LayerNorm eps is 1e-6 in Auto-Prox (ours 1e-5);
Auto-Prox leaves its patch-embedding convolutions (and, in PiT, every Linear) at PyTorch's
default initialisation where ours uses truncated normal (std 0.02); its training used drop
path 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vitnas.bench.files import FORMAT, VERSION, Benchmark, parse_benchmark
from vitnas.bench.torchfile import read_torch_pickle
from vitnas.errors import ConfigError
from vitnas.formatting import dumps_strict

SOURCE = ("ViT-Bench-101, Auto-Prox (Wei et al., AAAI 2024), github.com/lliai/Auto-Prox-AAAI24 "
          "gt_results/")
LICENSE = "Apache-2.0"
DATA_DIR = "data/vit-bench-101"
PRIMARY_METRIC = "c100_kd_acc"

# Space options of Auto-Prox's models, per space family (see the module docstring).
AUTOPROX_OPTIONS: dict[str, dict[str, Any]] = {
    "autoformer": {"img_size": 224, "patch_size": 16, "num_classes": 100, "qkv": "embed",
                   "pool": "mean", "cls_token": True},
    "pit": {"img_size": 224, "patch_size": 16, "stride": 8, "num_classes": 100, "pool": "cls"},
}
# Which space a file's arch dicts belong to, told apart by their keys.
SPACE_BY_ARCH_KEY = {"hidden_dim": "autoformer-tiny", "base_dim": "pit-tiny"}


@dataclass(frozen=True)
class BuiltinBenchmark:
    name: str
    filename: str
    space: str
    records: int
    labels: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


_LABELS = ("c100_base_acc", "c100_kd_acc", "flower_base_acc", "flower_kd_acc",
           "chaoyang_base_acc", "chaoyang_kd_acc")
BUILTINS: dict[str, BuiltinBenchmark] = {
    b.name: b
    for b in (
        BuiltinBenchmark("vit-bench-101-autoformer", "gt_autoformer.pth", "autoformer-tiny", 100,
                         (*_LABELS, "imagenet_super_acc"), AUTOPROX_OPTIONS["autoformer"]),
        BuiltinBenchmark("vit-bench-101-pit", "gt_pit.pth", "pit-tiny", 100, _LABELS,
                         AUTOPROX_OPTIONS["pit"]),
    )
}


def _family(space: str) -> str:
    return space.split("-", 1)[0]


def _guess_space(rows: list, path: str) -> str:
    arch = rows[0].get("arch") if rows and isinstance(rows[0], dict) else None
    if isinstance(arch, dict):
        for key, space in SPACE_BY_ARCH_KEY.items():
            if key in arch:
                return space
    raise ConfigError(f"benchmark file {path}: cannot tell its space from the first record's "
                      "arch; pass --space")


def autoprox_benchmark(obj: Any, path: str, space: str | None = None,
                       space_options: dict[str, Any] | None = None,
                       name: str | None = None) -> Benchmark:
    """A benchmark from the unpickled content of an Auto-Prox-style file.

    ``space`` defaults to the one its arch keys name (AutoFormer-T or PiT-T); an AutoFormer or
    PiT space gets Auto-Prox's training options, which ``space_options`` may override.
    """
    if not isinstance(obj, list):
        raise ConfigError(f"benchmark file {path} must hold a list of records, not "
                          f"{type(obj).__name__}")
    space = space or _guess_space(obj, path)
    options = {**AUTOPROX_OPTIONS.get(_family(space), {}), **(space_options or {})}
    content = {"space": space, "space_options": options, "metric": PRIMARY_METRIC,
               "source": SOURCE if name in BUILTINS else f"{Path(path).name} (Auto-Prox format)",
               "records": [dict(row) if isinstance(row, dict) else row for row in obj]}
    bench = parse_benchmark(content, path)
    bench.name = name or Path(path).stem
    return bench


def import_autoprox(path: str | Path, space: str | None = None,
                    space_options: dict[str, Any] | None = None) -> Benchmark:
    """Read a user's ViT-Bench-101-style ``.pth`` file (any file of that format)."""
    return autoprox_benchmark(read_torch_pickle(path), str(path), space, space_options)


def builtin_path(name: str) -> Path:
    """Where the bundled file of a built-in benchmark lies (inside the installed package)."""
    entry = _builtin(name)
    return Path(str(resources.files("vitnas.bench").joinpath(DATA_DIR, entry.filename)))


def load_builtin(name: str, space: str | None = None,
                 space_options: dict[str, Any] | None = None) -> Benchmark:
    """A bundled ViT-Bench-101 benchmark; ``space_options`` override its training options
    (e.g. ``num_classes=102`` for the Flowers head)."""
    entry = _builtin(name)
    if space not in (None, entry.space):
        raise ConfigError(f"the {name} benchmark belongs to space {entry.space}, not {space}")
    path = builtin_path(name)
    return autoprox_benchmark(read_torch_pickle(path), str(path), entry.space, space_options,
                              name=name)


def _builtin(name: str) -> BuiltinBenchmark:
    if name not in BUILTINS:
        raise ConfigError(f"no built-in benchmark {name!r} (built in: {', '.join(BUILTINS)})")
    return BUILTINS[name]


def save_json(bench: Benchmark, out: str | Path) -> Path:
    """Write ``bench`` as a vitnas benchmark JSON file (space, options and source kept), so an
    imported file can be read, diffed and edited without the pickle."""
    content = {"format": FORMAT, "version": VERSION, **bench.meta,
               "records": [{"arch": bench.space.to_json(r.arch), **r.values}
                           for r in bench.records]}
    out = Path(out)
    try:
        text = dumps_strict(content, indent=1) + "\n"  # a NaN label as null, as a build writes
    except (ValueError, RecursionError) as err:  # a 4300-digit integer, a 1000-deep list
        reason = "nested too deeply" if isinstance(err, RecursionError) else \
            str(err).split(":")[0].split(";")[0]
        raise ConfigError(f"benchmark {bench.name}: a record holds a value JSON cannot write "
                          f"({reason}); nothing was written to {out}") from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err}") from None
    return out
