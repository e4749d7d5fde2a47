"""Build a ground truth: sample architectures spread over a space's parameter range, train each
with the shared recipe, and write every finished one before starting the next.

The architecture plan is prefix-stable: the i-th architecture depends only on (space, seed, i)
and the ones before it, so ``--n 60`` after ``--n 40`` keeps the first 40 and a killed build
resumes exactly where it stopped (the one being trained when it died is trained again).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitnas.bench.files import FORMAT, VERSION, parse_benchmark, read_benchmark_json, shown
from vitnas.device import check_device
from vitnas.errors import ConfigError
from vitnas.formatting import dumps_strict, progress_bar
from vitnas.paths import check_writable
from vitnas.spaces import get_space
from vitnas.spaces.base import SearchSpace
from vitnas.train import TrainConfig, train_model

RANGE_PROBES = 2000
# More architectures than any ground truth trains (NAS-Bench-201 has 15,625); planning them alone
# takes minutes, and a larger n is a typo, not a plan.
MAX_ARCHITECTURES = 100_000
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
        from vitnas.data.datasets import check_training_options
        from vitnas.data.segmentation import is_segmentation_dataset

        check_plan_size(self.n)
        if self.train_per_class is not None and self.train_per_class < 1:
            raise ConfigError(f"train_per_class must be >= 1 (or unset for all images), got "
                              f"{self.train_per_class}")
        if not is_segmentation_dataset(self.dataset):
            check_training_options(self.dataset_options, self.train_per_class)
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


def check_plan_size(n: int, space: SearchSpace | None = None) -> None:
    """Refuse, before any loop, a plan of ``n`` architectures that cannot be drawn: fewer than
    one, more than ``MAX_ARCHITECTURES``, or more than ``space`` holds."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"a ground truth needs n >= 1 architectures, got {n!r}")
    if n > MAX_ARCHITECTURES:
        raise ConfigError(f"n {n:,} is more architectures than a ground truth can plan and "
                          f"train (at most {MAX_ARCHITECTURES:,})")
    if space is not None and n > space.size():
        raise ConfigError(f"{space.name} holds {space.size():,} distinct architectures; a plan "
                          f"of n {n:,} would repeat some")


def check_shard(shard: tuple[int, int] | None, n: int) -> None:
    """Shard i/k trains plan slots i, i + k, ... below n: refuse one that gets none."""
    if shard is None:
        return
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count} must be i/k with 0 <= i < k")
    if index >= n:
        raise ConfigError(f"shard {index}/{count} gets no architecture: n {n} plans slots "
                          f"0..{n - 1} and shard i/k trains slots i, i+k, ...; use at most "
                          f"{n} shards")


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
    check_plan_size(n, space)
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
    tmp.write_text(dumps_strict(obj, indent=1) + "\n")  # NaN as null: strict JSON readers
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


def check_labels(content: dict[str, Any], path: str | Path) -> None:
    """Every field a build writes beside the architecture is a number, null (a diverged run's
    label: missing) or a list of them (per-class IoU); text where a label belongs would be
    merged or extended silently and fail only when the file is ranked."""
    for i, record in enumerate(content["records"]):
        for key, value in record.items():
            if key in ("arch", "plan_index"):
                continue
            items = value if isinstance(value, list) else [value]
            if not all(item is None or (isinstance(item, (int, float))
                                        and not isinstance(item, bool)) for item in items):
                raise ConfigError(f"{path}: record {i} has {key} {shown(value)}, not a number "
                                  f"(or null for a missing label)")


def _load_existing(path: Path, config: GroundTruthConfig) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    obj = read_benchmark_json(path)
    parse_benchmark(obj, str(path))  # validates every record
    check_labels(obj, path)
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
    from vitnas.data import training_splits
    from vitnas.data.segmentation import get_segmentation_dataset, is_segmentation_dataset

    if is_segmentation_dataset(config.dataset):
        if config.train_per_class:
            raise ConfigError(f"{config.dataset} is a segmentation dataset: it has no classes "
                              "per image to limit (size it with its own options, e.g. n=5000)")
        return tuple(get_segmentation_dataset(config.dataset, split=split, data_dir=data_dir,
                                              **config.dataset_options)
                     for split in ("train", "test"))
    return training_splits(config.dataset, data_dir, config.train_per_class,
                           config.dataset_options)


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
    check_shard(shard, config.n)
    out = Path(out)
    space = get_space(config.space, **config.space_options)
    check_plan_size(config.n, space)
    records = _load_existing(out, config)
    first, step = shard or (0, 1)
    last_held = first + (len(records) - 1) * step
    if records and last_held >= config.n:
        raise ConfigError(f"{out} holds {len(records)} architectures (plan slots up to "
                          f"{last_held}), more than --n {config.n} plans: a resumed build "
                          f"refuses a file made with other settings; pass --n {last_held + 1} "
                          f"or more to extend it, or another --out")
    _check_writable(out)
    plan_seed = config.seed if config.plan_seed is None else config.plan_seed
    mine = range(first, config.n, step)  # this run's slots
    plan = plan_architectures(space, config.n, plan_seed, config.candidates)
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
        "version": VERSION,
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
    todo = list(mine[len(records):])
    with progress_bar(progress and bool(todo), total=len(records) + len(todo),
                      initial=len(records), unit="arch", desc="ground truth") as bar:
        for i in todo:
            arch = plan[i]
            result = _train_slot(out, i, space, arch, config, device, train, test)
            scores = result.metrics if metric == "miou" else {"top1": result.top1}
            record = {
                **({"plan_index": i} if shard else {}),
                "arch": space.to_json(arch),
                **{k: _rounded(v) for k, v in scores.items()},
                "params": space.params(arch),
                "flops": space.flops(arch),
                "final_loss": round(sum(result.losses[-20:])
                                    / max(1, len(result.losses[-20:])), 5),
                "train_seconds": round(result.seconds, 2),
            }
            records.append(record)
            _write_atomic(out, {**header, "records": records})
            slot_state_path(out, i).unlink(missing_ok=True)  # its record is kept: done
            if on_record is not None:
                on_record(record)
            bar.update(1)
            bar.set_postfix({metric: f"{record[metric]:.2f}"})
    content = {**header, "records": records}
    if not out.exists() or not todo:
        _write_atomic(out, content)
    return content


def slot_state_path(out: Path, index: int) -> Path:
    """Where the architecture of plan slot ``index`` keeps its per-epoch training state until
    its record is written: a build killed mid-architecture resumes that architecture."""
    return out.with_name(f"{out.stem}.slot{index}.state.pt")


def _train_slot(out: Path, index: int, space: SearchSpace, arch: Any,
                config: GroundTruthConfig, device: str, train: Any, test: Any) -> Any:
    """Train one planned architecture, continuing from its saved state when there is one. A
    state left by another recipe (the build was started over with other options before any
    record was written) or a damaged one is this build's own scratch file: it is dropped and
    the slot trains from the start."""
    state = slot_state_path(out, index)
    identity = {"plan_index": index, "arch": space.to_json(arch), "space": space.name,
                "space_options": config.space_options, "recipe": config.recipe()}

    def run() -> Any:
        model = space.build(arch, seed=config.seed).to(device)
        return train_model(model, train, config.train_config(), eval_set=test,
                           image_size=space.img_size, state_path=state, resume=True,
                           identity=identity)

    try:
        return run()
    except ConfigError as err:
        if str(state) not in str(err) or not state.is_file():
            raise  # a problem of the run itself, not of the saved state
        state.unlink()  # not this run's state: start the slot over
        return run()


SHARD_PATTERN = re.compile(r"(\d{1,9})/(\d{1,9})", re.ASCII)
# header fields every shard of one plan shares (``n`` and the shard count are checked apart)
SHARED_FIELDS = ("format", "version", "space", "space_options", "metric", "recipe",
                 "train_images", "test_images", "normalisation")


def _read_shard(path: str | Path) -> tuple[dict[str, Any], tuple[int, int], int]:
    """A shard file's content, its shard (i, k) and its planned n, each checked."""
    content = read_benchmark_json(path)
    if not isinstance(content, dict) or "shard" not in content:
        raise ConfigError(f"{path} is not the file of a sharded `bench build`")
    text = content["shard"]
    match = SHARD_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match[1]) >= int(match[2]):
        raise ConfigError(f'{path}: "shard" must be i/k with 0 <= i < k, like "0/2", not '
                          f"{shown(text)}")
    shard = int(match[1]), int(match[2])
    n = content.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ARCHITECTURES:
        raise ConfigError(f'{path}: "n" must be the number of planned architectures, 1 to '
                          f"{MAX_ARCHITECTURES:,}, not {shown(n)}")
    try:
        check_shard(shard, n)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if content.get("records") == []:
        raise ConfigError(f"{path} (shard {shard[0]}/{shard[1]}) holds no records, but n {n} "
                          f"plans slot {shard[0]} for it; finish that shard first")
    parse_benchmark(content, str(path))  # space, options and every record
    check_labels(content, path)
    return content, shard, n


def merge_ground_truths(sources: list[str | Path], out: str | Path) -> dict[str, Any]:
    """One ground-truth file from the files of ``bench build --shard i/k`` runs: the records in
    plan order, as an unsharded build writes them. Every shard of the plan must be there once,
    with the same n, shard count and recipe; a missing shard, a gap, a clash or another recipe
    is an error, never silently merged."""
    if not sources:
        raise ConfigError("nothing to merge")
    check_writable(out, "merge output", inputs=sources)
    shards = [_read_shard(path) for path in sources]
    first, (_, count), n = shards[0]
    owner: dict[int, str | Path] = {}
    for path, (content, (index, k), planned) in zip(sources, shards):
        if k != count or planned != n:
            raise ConfigError(f"{path} is shard {index}/{k} of n {planned}, but {sources[0]} is "
                              f"of {count} shards and n {n}: merge the shards of one plan")
        differ = [f for f in SHARED_FIELDS if content.get(f) != first.get(f)]
        if differ:
            raise ConfigError(f"{path} differs from {sources[0]} in {', '.join(differ)}")
        if index in owner:
            raise ConfigError(f"{owner[index]} and {path} are both shard {index}/{count}; give "
                              f"each shard once")
        owner[index] = path
    absent = [i for i in range(min(count, n)) if i not in owner]
    if absent:
        raise ConfigError(f"shard {absent[0]}/{count} is missing: merge needs the files of all "
                          f"{min(count, n)} shards of n {n}")
    slots: dict[int, dict[str, Any]] = {}
    for path, (content, (index, k), _) in zip(sources, shards):
        for record in content["records"]:
            slot = record.get("plan_index")
            if isinstance(slot, bool) or not isinstance(slot, int) or \
                    not 0 <= slot < MAX_ARCHITECTURES or slot % k != index:
                raise ConfigError(f"{path}: a record has plan_index {shown(slot)}, not a slot "
                                  f"of shard {index}/{k} ({index}, {index + k}, ...)")
            if slot in slots:
                raise ConfigError(f"{path}: plan slot {slot} is given twice")
            slots[slot] = {key: v for key, v in record.items() if key != "plan_index"}
    gap = next((i for i in range(max(n, max(slots) + 1)) if i not in slots), None)
    if gap is not None:
        raise ConfigError(f"plan slot {gap} is in no shard (shard {gap % count}/{count} lacks "
                          f"it); finish every shard first")
    header = {k: v for k, v in first.items() if k not in ("records", "shard", "command")}
    merged = {**header, "n": n,
              "command": "; ".join(str(c.get("command"))
                                   for c, _, _ in sorted(shards, key=lambda s: s[1][0])),
              "records": [slots[i] for i in range(len(slots))]}
    parse_benchmark(merged, f"merged from {len(sources)} shards")  # no architecture twice
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

