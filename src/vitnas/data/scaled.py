"""A classification task whose needed token count varies from image to image.

``scaled-fashion`` (``scaled-mnist``): each image is a CIFAR-10 scene at ``size`` px (64 by
default) with one Fashion-MNIST (MNIST) object pasted at a random scale, from a few pixels to
the full frame, at a uniform position; the label is the object's class. A large object survives
any downsampling; a small one vanishes from a coarse token grid and needs the full one, so the
smallest sufficient token length really varies over the images, which adaptive token length
(ReViT and its assigner, :mod:`vitnas.revit`) presumes and CIFAR-10 barely has.

Reuses the segmentation paste (:mod:`vitnas.data.segmentation`: the background resize, the
vivid tint shaded by the object's intensity and chosen against the covered pixels) for one
object per scene. What is new is the scale law: the object's side s is drawn log-uniformly in
[``min_scale``, ``max_scale``] x ``size`` (``scale_law="log"``, the default: as many objects
between 6 and 12 px as between 32 and 64 px) or uniformly (``"uniform"``). Classes are balanced
by construction (scene i shows class i mod 10, a random object of it), so the first 10 K
scenes hold K per class and ``limit_per_class=K`` builds only those. Scene i draws from its own
generator seeded by (seed, split, i): a smaller set is the start of a larger one, the same on
every machine and thread count. Built once and cached (``.npz`` keyed by the recipe and a
digest of the sources); the object's side in pixels is kept as ``object_sides``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vitnas.data.datasets import register_dataset
from vitnas.data.formats import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    check_split,
    write_npz_atomic,
)
from vitnas.data.segmentation import _digest, paste_object, resize_background
from vitnas.data.transforms import CIFAR10_MEAN, CIFAR10_STD
from vitnas.errors import ConfigError, DatasetError
from vitnas.paths import cache_dir

SCALE_LAWS = ("log", "uniform")
OBJECTS = {"fashion-mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES}


@dataclass(frozen=True)
class ScaledRecipe:
    """How a scale-varied scene is made (every field is part of the cache key)."""

    size: int = 64
    min_scale: float = 0.1  # object side as a fraction of ``size``: 6 px at 64
    max_scale: float = 1.0  # the full frame
    scale_law: str = "log"
    threshold: float = 0.2  # resized object intensity above this is the object
    seed: int = 0

    def check(self) -> None:
        if self.size < 8:
            raise ConfigError(f"scene size must be >= 8 pixels, got {self.size}")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ConfigError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, "
                              f"{self.max_scale}")
        if round(self.min_scale * self.size) < 2:
            raise ConfigError(f"min_scale {self.min_scale} gives objects under 2 pixels at "
                              f"{self.size} px")
        if self.scale_law not in SCALE_LAWS:
            raise ConfigError(f"scale_law {self.scale_law!r} is not one of "
                              f"{', '.join(SCALE_LAWS)}")
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold must be in [0, 1), got {self.threshold}")


def object_side(recipe: ScaledRecipe, rng: np.random.Generator) -> int:
    """One object's side in pixels under the recipe's scale law."""
    low = max(2, round(recipe.min_scale * recipe.size))
    high = max(low, round(recipe.max_scale * recipe.size))
    if recipe.scale_law == "uniform":
        return int(rng.integers(low, high + 1))
    side = math.exp(rng.uniform(math.log(low), math.log(high + 1)))  # [low, high + 1)
    return min(high, int(side))


def scaled_scenes(backgrounds: np.ndarray, objects: np.ndarray, object_labels: np.ndarray,
                  n: int, recipe: ScaledRecipe, stream: int = 0, classes: int = 10
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` scenes: uint8 images (n, 3, size, size), labels (n,) and object sides (n,).

    Scene i: background ``order[i]`` of a seeded permutation (each used once before any
    repeats) resized to ``size``; a random object of class i mod ``classes``, resized to a side
    drawn by :func:`object_side`, placed uniformly inside the frame and tinted
    (:func:`vitnas.data.segmentation.paste_object`). An object that vanishes in the resize is
    drawn again (another object of the same class, another side).
    """
    recipe.check()
    if len(backgrounds) == 0 or len(objects) == 0:
        raise DatasetError("pasting needs at least one background and one object")
    by_class = [np.flatnonzero(object_labels == c) for c in range(classes)]
    empty = [c for c, members in enumerate(by_class) if len(members) == 0]
    if empty:
        raise DatasetError(f"no object of class(es) {empty} to paste")
    size = recipe.size
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % classes
    sides = np.empty(n, dtype=np.int64)
    order = np.random.default_rng([recipe.seed, stream]).permutation(len(backgrounds))
    for i in range(n):
        rng = np.random.default_rng([recipe.seed, stream, i])
        images[i] = resize_background(backgrounds[order[i % len(backgrounds)]], size)
        members = by_class[labels[i]]
        for _ in range(100):
            j = int(members[rng.integers(len(members))])
            side = object_side(recipe, rng)
            top = int(rng.integers(0, size - side + 1))
            left = int(rng.integers(0, size - side + 1))
            if paste_object(images[i], objects[j], side, top, left, recipe.threshold,
                            rng) is not None:
                break
        else:
            raise DatasetError(f"scene {i}: 100 objects of class {labels[i]} vanished when "
                               f"resized; raise min_scale")
        sides[i] = side
    return images, labels, sides


def scaled_objects(split: str, data_dir: str | os.PathLike | None = None, *,
                   objects: str = "fashion-mnist", n: int | None = None,
                   limit_per_class: int | None = None, recipe: ScaledRecipe | None = None,
                   cache: bool = True):
    """The ``split`` of the scale-varied task as an :class:`~vitnas.data.ArrayDataset` (with
    ``object_sides``); ``n`` scenes (default 50,000 train / 10,000 test, CIFAR-10's sizes),
    or the first ``limit_per_class`` per class."""
    from vitnas.data.datasets import ArrayDataset, get_dataset

    check_split(split)
    recipe = recipe or ScaledRecipe()
    recipe.check()
    if objects not in OBJECTS:
        raise ConfigError(f"objects {objects!r} are not one of {', '.join(OBJECTS)}")
    classes = OBJECTS[objects]
    n = (50000 if split == "train" else 10000) if n is None else n
    if limit_per_class is not None:
        if limit_per_class < 1:
            raise ConfigError(f"limit_per_class must be >= 1, got {limit_per_class}")
        n = min(n, limit_per_class * len(classes))
    if n < 1:
        raise ConfigError(f"a pasted dataset needs n >= 1 images, got {n}")
    source = get_dataset(objects, split=split, data_dir=data_dir)
    scenes = get_dataset("cifar10", split=split, data_dir=data_dir)
    object_images, object_labels = source.images[:, 0].numpy(), source.labels.numpy()
    backgrounds = scenes.images.numpy()
    stream = 0 if split == "train" else 1
    key = json.dumps({"recipe": asdict(recipe), "stream": stream, "n": n, "objects": objects,
                      "version": 1,
                      "sources": _digest(object_images, object_labels, backgrounds)},
                     sort_keys=True)
    name = f"scaled-{objects.replace('fashion-mnist', 'fashion')}"
    path = cache_dir() / "scaled" / \
        f"{name}-{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    built = None
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    built = z["images"], z["labels"], z["sides"]
        except (OSError, ValueError, KeyError):
            built = None  # an unreadable cache is rebuilt
    if built is None:
        built = scaled_scenes(backgrounds, object_images, object_labels, n, recipe, stream,
                              len(classes))
        if cache:
            write_npz_atomic(path, images=built[0], labels=built[1], sides=built[2],
                             key=np.asarray(key))
    images, labels, sides = built
    # fixed statistics (CIFAR-10's, the scenes' source), so train and test normalise alike
    dataset = ArrayDataset(images, labels, classes, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                           name=name)
    dataset.object_sides = torch.as_tensor(sides)
    return dataset


def _scaled_fashion(
    split: str,
    data_dir: str | os.PathLike | None,
    *,
    n: int | None = None,
    limit_per_class: int | None = None,
    size: int = 64,
    min_scale: float = 0.1,
    max_scale: float = 1.0,
    scale_law: str = "log",
    seed: int = 0,
    cache: bool = True,
):
    """``get_dataset("scaled-fashion", ...)``: Fashion-MNIST objects (:func:`scaled_objects`)."""
    recipe = ScaledRecipe(size=size, min_scale=min_scale, max_scale=max_scale,
                          scale_law=scale_law, seed=seed)
    return scaled_objects(split, data_dir, objects="fashion-mnist", n=n,
                          limit_per_class=limit_per_class, recipe=recipe, cache=cache)


register_dataset("scaled-fashion", _scaled_fashion,
                 "one Fashion-MNIST object per CIFAR-10 scene at a random scale, 6 px to the "
                 "full 64 px frame; label = its class (built offline, cached)")

__all__ = ["OBJECTS", "SCALE_LAWS", "ScaledRecipe", "object_side", "scaled_objects",
           "scaled_scenes"]
