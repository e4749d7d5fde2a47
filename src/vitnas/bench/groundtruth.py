"""Build a ground truth: sample architectures spread over a space's parameter range, train each
with the shared recipe, and write every finished one before starting the next.

The architecture plan is prefix-stable: the i-th architecture depends only on (space, seed, i)
and the ones before it, so ``--n 60`` after ``--n 40`` keeps the first 40 and a killed build
resumes exactly where it stopped (the one being trained when it died is trained again).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitnas.bench.files import FORMAT, parse_benchmark, read_benchmark_json
from vitnas.device import check_device
from vitnas.errors import ConfigError
from vitnas.spaces import get_space
from vitnas.spaces.base import SearchSpace
from vitnas.train import TrainConfig, train_model

RANGE_PROBES = 2000
TIMING_FIELDS = ("train_seconds",)


@dataclass(frozen=True)
class GroundTruthConfig:
    """Everything that decides the numbers in a ground-truth file (timing aside).

    ``seed`` fixes the initial weights and data order, and the plan unless ``plan_seed`` is
    given: the same plan under another seed retrains the same architectures, which measures
    how much of the ranking is training noise.
    """

    space: str
    n: int
    space_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    dataset_options: dict[str, Any] = field(default_factory=dict)  # e.g. a pasted set's n
    train_per_class: int | None = None
    epochs: float = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0
    plan_seed: int | None = None
    candidates: int = 32

    def check(self) -> None:
        if self.n < 1:
            raise ConfigError(f"a ground truth needs n >= 1 architectures, got {self.n}")
        if self.train_per_class is not None and self.train_per_class < 1:
            raise ConfigError(f"train_per_class must be >= 1 (or unset for all images), got "
                              f"{self.train_per_class}")
        self.train_config().check()

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, warmup_fraction=self.warmup_fraction,
                           label_smoothing=self.label_smoothing, augment=self.augment,
                           seed=self.seed)

    def recipe(self) -> dict[str, Any]:
        """What must match for a resumed build to extend a file (everything but ``n``)."""
        out = dataclasses.asdict(self)
        del out["n"]
        return out


def van_der_corput(i: int, base: int = 2) -> float:
    """The i-th point of the base-2 radical inverse sequence: any prefix covers [0, 1) evenly,
    which keeps a growing plan spread over the range."""
    value, denom = 0.0, 1.0
    while i:
        i, digit = divmod(i, base)
        denom *= base
        value += digit / denom
    return value


def params_range(space: SearchSpace, seed: int) -> tuple[int, int]:
    rng = random.Random(f"range:{seed}")
    counts = [space.params(space.sample(rng)) for _ in range(RANGE_PROBES)]
    return min(counts), max(counts)


def plan_architectures(space: SearchSpace, n: int, seed: int = 0,
                       candidates: int = 32) -> list[Any]:
    """``n`` distinct architectures whose parameter counts follow a low-discrepancy sequence
    over the sampled range: for each target, the closest of ``candidates`` random draws."""
    low, high = params_range(space, seed)
    chosen: list[Any] = []
    seen: set[str] = set()
    for i in range(n):
        target = low + van_der_corput(i + 1) * (high - low)
        rng = random.Random(f"plan:{seed}:{i}")
        draws = [space.sample(rng) for _ in range(candidates)]
        draws.sort(key=lambda a: abs(space.params(a) - target))
        fresh = [a for a in draws if space.key(a) not in seen]
        if not fresh:
            raise ConfigError(f"{space.name}: could not find a new architecture for plan slot "
                              f"{i}; the space may be smaller than n={n}")
        chosen.append(fresh[0])
        seen.add(space.key(fresh[0]))
    return chosen


def _write_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _check_writable(path: Path) -> None:
    """Fail before hours of training, not after, when ``path`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(path.name + ".tmp")
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _load_existing(path: Path, config: GroundTruthConfig) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    obj = read_benchmark_json(path)
    parse_benchmark(obj, str(path))  # validates every record
    theirs = dict(obj.get("recipe") or {}) if isinstance(obj, dict) else {}
    for f in dataclasses.fields(GroundTruthConfig):  # files written before a field existed
        if f.name != "n" and f.name not in theirs:
            if f.default is not dataclasses.MISSING:
                theirs[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                theirs[f.name] = f.default_factory()
    if theirs != config.recipe():
        diff = [k for k in config.recipe() if theirs.get(k) != config.recipe()[k]]
        raise ConfigError(f"{path} was built with a different recipe ({', '.join(diff)} "
                          "differ); choose another --out to start a new ground truth")
    return list(obj["records"])


def load_training_data(config: GroundTruthConfig, data_dir: str | None = None):
    """The train and test splits: a classification dataset (``train_per_class`` images per
    class), or a segmentation dataset with its ``dataset_options``."""
    from vitnas.data import get_dataset
    from vitnas.data.segmentation import get_segmentation_dataset, is_segmentation_dataset

    if is_segmentation_dataset(config.dataset):
        if config.train_per_class:
            raise ConfigError(f"{config.dataset} is a segmentation dataset: it has no classes "
                              "per image to limit (size it with its own options, e.g. n=5000)")
        return tuple(get_segmentation_dataset(config.dataset, split=split, data_dir=data_dir,
                                              **config.dataset_options)
                     for split in ("train", "test"))
    kwargs = {"limit_per_class": config.train_per_class} if config.train_per_class else {}
    train = get_dataset(config.dataset, split="train", data_dir=data_dir,
                        **config.dataset_options, **kwargs)
    test = get_dataset(config.dataset, split="test", data_dir=data_dir,
                       **config.dataset_options)
    return train, test


def check_task(space: SearchSpace, train: Any, dataset: str) -> str:
    """The metric a build records: top-1 for classification, mIoU for segmentation; the data
    and the space must agree on the task."""
    dense = hasattr(train, "masks")
    task = getattr(space, "task", "classification")
    if dense and task != "segmentation":
        raise ConfigError(f"{dataset} is a segmentation dataset but {space.name} builds "
                          f"{task} models (pass --task segmentation)")
    if not dense and task == "segmentation":
        raise ConfigError(f"{space.name} builds segmentation models but {dataset} has one "
                          "label per image (use a segmentation dataset, e.g. paste-fashion)")
    return "miou" if dense else "top1"


def _rounded(value: Any) -> Any:
    """A score to 4 decimals; a per-class list element-wise, an undefined class (NaN) as null
    so the file stays strict JSON."""
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def _normalisation(train: Any) -> dict[str, Any]:
    """The per-channel statistics every split was normalised with, and where they come from
    (a real segmentation benchmark: its training split), for the file's header."""
    mean, std = getattr(train, "mean", None), getattr(train, "std", None)
    if mean is None or std is None:
        return {}
    source = getattr(train, "statistics_source", None)
    return {"normalisation": {"mean": [round(float(v), 6) for v in mean],
                              "std": [round(float(v), 6) for v in std],
                              **({"source": source} if source else {})}}


def build_ground_truth(
    config: GroundTruthConfig,
    out: str | Path,
    data_dir: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
    datasets: tuple[Any, Any] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Train the planned architectures not yet in ``out`` and return the file's content.
    ``shard=(i, k)`` trains only plan slots i, i + k, ... (one process per core or machine;
    ``merge_ground_truths`` joins the shards' files into the file one process would write)."""
    config.check()
    check_device(device)
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"shard {shard[0]}/{shard[1]} must be i/k with 0 <= i < k")
    out = Path(out)
    space = get_space(config.space, **config.space_options)
    records = _load_existing(out, config)
    _check_writable(out)
    plan_seed = config.seed if config.plan_seed is None else config.plan_seed
    mine = [i for i in range(max(config.n, len(records) * (shard[1] if shard else 1)))
            if shard is None or i % shard[1] == shard[0]]
    plan = plan_architectures(space, max(config.n, mine[len(records) - 1] + 1 if records else 0),
                              plan_seed, config.candidates)
    for index, record in zip(mine, records):
        if record["arch"] != space.to_json(plan[index]):
            raise ConfigError(f"{out}: record of plan slot {index} is not the planned "
                              "architecture; the file was edited, made by another vitnas "
                              "version or by another shard")
    train, test = datasets or load_training_data(config, data_dir)
    if train.num_classes != space.num_classes:
        raise ConfigError(f"{config.dataset} has {train.num_classes} classes but {space.name} "
                          f"builds {space.num_classes}-class heads (set num_classes)")
    metric = check_task(space, train, config.dataset)
    header = {
        "format": FORMAT,
        "version": 1,
        "space": space.name,
        "space_options": config.space_options,
        "metric": metric,
        "recipe": config.recipe(),
        "train_images": len(train),
        "test_images": len(test),
        **_normalisation(train),
        "command": command,
        "n": config.n,
        **({"shard": f"{shard[0]}/{shard[1]}"} if shard else {}),
    }
    bar = None
    todo = [i for i in mine[len(records):] if i < config.n]
    if progress and len(todo):
        from tqdm import tqdm

        bar = tqdm(total=len(records) + len(todo), initial=len(records), unit="arch",
                   desc="ground truth")
    for i in todo:
        arch = plan[i]
        model = space.build(arch, seed=config.seed).to(device)
        result = train_model(model, train, config.train_config(), eval_set=test,
                             image_size=space.img_size)
        scores = result.metrics if metric == "miou" else {"top1": result.top1}
        record = {
            **({"plan_index": i} if shard else {}),
            "arch": space.to_json(arch),
            **{k: _rounded(v) for k, v in scores.items()},
            "params": space.params(arch),
            "flops": space.flops(arch),
            "final_loss": round(sum(result.losses[-20:]) / max(1, len(result.losses[-20:])), 5),
            "train_seconds": round(result.seconds, 2),
        }
        records.append(record)
        _write_atomic(out, {**header, "records": records})
        if on_record is not None:
            on_record(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({metric: f"{record[metric]:.2f}"})
    if bar is not None:
        bar.close()
    content = {**header, "records": records}
    if not out.exists() or not todo:
        _write_atomic(out, content)
    return content


def merge_ground_truths(sources: list[str | Path], out: str | Path) -> dict[str, Any]:
    """One ground-truth file from the files of ``bench build --shard i/k`` runs: the records in
    plan order, as an unsharded build writes them (a gap, a clash or another recipe is an
    error, never silently merged)."""
    contents = [read_benchmark_json(path) for path in sources]
    if not contents:
        raise ConfigError("nothing to merge")
    for path, content in zip(sources, contents):
        if not isinstance(content, dict) or "shard" not in content:
            raise ConfigError(f"{path} is not the file of a sharded `bench build`")
    first = contents[0]
    same = ("space", "space_options", "metric", "recipe", "train_images", "test_images")
    for path, content in zip(sources[1:], contents[1:]):
        differ = [k for k in same if content.get(k) != first.get(k)]
        if differ:
            raise ConfigError(f"{path} differs from {sources[0]} in {', '.join(differ)}")
    slots: dict[int, dict[str, Any]] = {}
    for path, content in zip(sources, contents):
        for record in content["records"]:
            index = record.get("plan_index")
            if not isinstance(index, int) or index in slots:
                raise ConfigError(f"{path}: plan slot {index} is missing or given twice")
            slots[index] = {k: v for k, v in record.items() if k != "plan_index"}
    missing = sorted(set(range(len(slots))) - set(slots))
    if missing:
        raise ConfigError(f"plan slot {missing[0]} is in no shard; finish every shard first")
    header = {k: v for k, v in first.items() if k not in ("records", "shard", "command")}
    merged = {**header, "n": len(slots),
              "command": "; ".join(str(c.get("command")) for c in contents),
              "records": [slots[i] for i in range(len(slots))]}
    out = Path(out)
    _check_writable(out)
    _write_atomic(out, merged)
    return merged


def without_timing(content: dict[str, Any]) -> dict[str, Any]:
    """The file minus wall-clock fields: what a resumed and an uninterrupted build share."""
    return {**{k: v for k, v in content.items() if k != "records"},
            "records": [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
                        for r in content["records"]]}


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)

