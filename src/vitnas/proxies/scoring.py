"""Score architectures with proxies: one fresh model per proxy, one fixed batch, one seed.

Determinism contract: a score is a function of (architecture, proxy config, seed, data batch).
The seed fixes the model's initial weights and any randomness inside the proxy.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from vitnas.errors import ConfigError
from vitnas.proxies.base import Proxy, ProxyContext, ProxyResult
from vitnas.proxies.spec import get_proxy


def score_model(
    model: torch.nn.Module,
    proxies: Sequence[Proxy | str],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    seed: int = 0,
    space: Any = None,
    arch: Any = None,
) -> list[ProxyResult]:
    """Run each proxy on a private deep copy of ``model`` (some proxies rewrite weights)."""
    if inputs.shape[0] == 0 or labels.shape[:1] != inputs.shape[:1]:
        raise ConfigError(f"a proxy batch needs at least one image and one label per image, "
                          f"got {inputs.shape[0]} images and {labels.shape[0]} labels")
    results = []
    shared_cache: dict = {}
    for proxy in proxies:
        proxy = get_proxy(proxy) if isinstance(proxy, str) else proxy
        ctx = ProxyContext(inputs, labels, num_classes, seed, space, arch, cache=shared_cache)
        private = copy.deepcopy(model).train()
        results.append(proxy(private, ctx))
    return results


def score_architecture(
    space: Any,
    arch: Any,
    proxies: Sequence[Proxy | str],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
) -> list[ProxyResult]:
    """Build ``arch`` with ``seed`` and score it with every proxy."""
    model = space.build(arch, seed=seed)
    return score_model(model, proxies, inputs, labels, space.num_classes, seed, space, arch)


def score_cached(
    store: Any,
    space: Any,
    arch: Any,
    proxies: Sequence[Proxy | str],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
    batch_id: str | None = None,
) -> list[ProxyResult]:
    """``score_architecture`` through a ``ScoreStore``: stored scores are returned as they are
    (with the seconds they took when computed), only the missing proxies run, and their rows
    are committed before returning."""
    from vitnas.store import ScoreKey, StoredScore, batch_identity, space_identity

    proxies = [get_proxy(p) if isinstance(p, str) else p for p in proxies]
    batch_id = batch_id or batch_identity(inputs, labels)
    space_id, arch_id = space_identity(space), space.key(arch)
    keys = [ScoreKey(space_id, arch_id, p.full_spec, seed, batch_id) for p in proxies]
    found = [store.get(k) for k in keys]
    missing = [p for p, f in zip(proxies, found) if f is None]
    fresh = iter(score_architecture(space, arch, missing, inputs, labels, seed) if missing
                 else [])
    results, rows = [], []
    for proxy, key, stored in zip(proxies, keys, found):
        if stored is None:
            result = next(fresh)
            rows.append(StoredScore(key, result.score, result.raw, result.seconds,
                                    result.warnings))
        else:
            result = ProxyResult(proxy.spec, stored.score, stored.raw, stored.seconds,
                                 stored.warnings)
        results.append(result)
    if rows:
        store.put(rows)
    return results


def space_task(space: Any) -> str:
    """What a space's models output: ``classification`` unless it builds segmenters."""
    return getattr(space, "task", "classification")


def check_proxy_dataset(dataset: str) -> None:
    """Refuse a name :func:`proxy_batch` cannot load before anything is built or printed."""
    from vitnas.data import list_datasets
    from vitnas.data.datasets import is_dataset
    from vitnas.data.segmentation import is_segmentation_dataset, list_segmentation_datasets

    if dataset == "gaussian" or is_segmentation_dataset(dataset) or is_dataset(dataset):
        return
    names = ["gaussian", *list_datasets(), *list_segmentation_datasets()]
    raise ConfigError(f"unknown dataset {dataset!r}; valid names: {', '.join(names)}")


def proxy_batch(
    dataset: str,
    size: int,
    image_size: int,
    channels: int = 3,
    num_classes: int = 10,
    seed: int = 0,
    data_dir: str | None = None,
    task: str = "classification",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one batch every architecture is scored on: ``gaussian`` noise (TF-TAS's NTK input)
    with random labels, or a class-balanced, normalised batch of a named dataset, resized to
    the space's image size when it differs. A segmentation dataset (``paste-fashion``,
    ``ade20k``, ...) gives label maps (N, H, W) with ignored pixels as ``targets.IGNORE``.
    ``task`` is the models': their outputs and the labels must agree (a classifier's loss on
    label maps, or a segmenter's on one label per image, fails deep inside a proxy), so
    ``gaussian`` gives random label maps to segmentation models."""
    check_proxy_dataset(dataset)
    from vitnas.data.segmentation import is_segmentation_dataset

    dense = task == "segmentation"
    if dataset != "gaussian" and is_segmentation_dataset(dataset) != dense:
        raise ConfigError(
            f"{dataset} is a segmentation dataset but the models are classifiers (pass --task "
            "segmentation)" if not dense else
            f"the models are segmentation models but {dataset} has one label per image (use a "
            "segmentation dataset, e.g. paste-fashion, or gaussian)")
    if dataset == "gaussian":
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(size, channels, image_size, image_size, generator=generator)
        shape = (size, image_size, image_size) if dense else (size,)
        return x, torch.randint(0, num_classes, shape, generator=generator)
    if dense:
        return dense_proxy_batch(dataset, size, image_size, channels, num_classes, seed,
                                 data_dir)
    from vitnas.data import Normalize, fixed_batch, get_dataset

    data = get_dataset(dataset, split="train", data_dir=data_dir)
    if data.channels != channels:
        raise ConfigError(f"dataset {dataset} has {data.channels} channels but the space expects "
                          f"{channels} (pass --in-chans {data.channels})")
    if data.num_classes > num_classes:
        raise ConfigError(f"dataset {dataset} has {data.num_classes} classes but the models have "
                          f"{num_classes} outputs (pass --num-classes {data.num_classes})")
    with one_thread():
        x, y = fixed_batch(data, size, seed=seed, transform=Normalize(data.mean, data.std))
        if x.shape[-1] != image_size:
            x = torch.nn.functional.interpolate(x, size=(image_size, image_size),
                                                mode="bilinear", align_corners=False)
    return x, y


def dense_proxy_batch(
    dataset: str,
    size: int,
    image_size: int,
    channels: int = 3,
    num_classes: int = 11,
    seed: int = 0,
    data_dir: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` seeded images of a segmentation dataset's training split, normalised, with their
    label maps (nearest-neighbour when resized); ignored pixels become ``targets.IGNORE``, the
    index every ``F.cross_entropy`` in the proxies skips."""
    from vitnas.data.segmentation import (
        IGNORE_INDEX,
        fixed_segmentation_batch,
        get_segmentation_dataset,
        resize_pair,
    )
    from vitnas.proxies.targets import IGNORE

    data = get_segmentation_dataset(dataset, split="train", data_dir=data_dir)
    if data.channels != channels:
        raise ConfigError(f"dataset {dataset} has {data.channels} channels but the space expects "
                          f"{channels} (pass --in-chans {data.channels})")
    if data.num_classes != num_classes:
        raise ConfigError(f"dataset {dataset} has {data.num_classes} classes but the space "
                          f"builds {num_classes}-class outputs (pass --num-classes "
                          f"{data.num_classes})")
    if not 1 <= size <= len(data):
        raise ConfigError(f"a proxy batch of {size} needs 1..{len(data)} images of {dataset}")
    with one_thread():
        x, y = fixed_segmentation_batch(data, size, seed)
        if x.shape[-1] != image_size:
            x, y = resize_pair(x, y, image_size)
    y[y == IGNORE_INDEX] = IGNORE
    return x, y


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Build a proxy batch on one thread: the multi-threaded resize rounds differently, and a
    batch that depended on --threads would change every score and miss every cached one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
