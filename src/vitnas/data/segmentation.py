"""Dense-prediction data: images with a label per pixel.

Three sources, one in-memory form (``SegmentationDataset``: uint8 images (N, C, H, W) and uint8
label maps (N, H, W), ``IGNORE_INDEX`` = 255 marking pixels no loss or metric counts):

- ``paste-fashion`` / ``paste-mnist``: real objects on real scenes, built offline. Each image is
  a CIFAR-10 photograph with 1-3 Fashion-MNIST (or MNIST) objects pasted at random positions
  and scales, each object tinted a random colour; its label map is the object's class + 1 where
  the object's mask is on (later objects occlude earlier ones) and 0 ("background") elsewhere.
  The recipe (``PasteRecipe``) is seeded with numpy's PCG64 and resizes with Pillow, so the
  same seed gives the same bytes on every machine and thread count.
- ``ade20k``: the ADEChallengeData2016 layout (``images/{training,validation}/*.jpg`` beside
  ``annotations/{training,validation}/*.png``); annotation 0 ("other") is ignored and classes
  1..150 become 0..149, as the benchmark scores them.
- ``cityscapes``: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` beside
  ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png``; the 34 label ids map to the 19 training
  ids of the benchmark (``CITYSCAPES_TRAIN_IDS``), every other id is ignored.

Real benchmarks are decoded eagerly at a chosen ``size`` (images bilinear, label maps nearest):
at 64 px ADE20K's 20k training images take 250 MB. ``fit`` says how a non-square image becomes
a square: ``squash`` (resize both sides, the default; Cityscapes' 2:1 frames get half as wide
objects) or ``crop`` (shorter side to ``size``, then the centre square: shapes kept, the sides
of the frame dropped).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vitnas.data.datasets import check_option_types
from vitnas.data.formats import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    check_split,
    write_npz_atomic,
)
from vitnas.data.loader import _generators
from vitnas.data.transforms import CIFAR10_MEAN, CIFAR10_STD, Normalize
from vitnas.errors import ConfigError, DatasetError
from vitnas.paths import cache_dir, find_data_file

IGNORE_INDEX = 255  # in stored label maps; losses and metrics skip it

PathLike = str | os.PathLike


class SegmentationDataset(Dataset):
    """An in-memory dense dataset: ``dataset[i]`` is (float image in [0, 1], int64 label map)."""

    def __init__(self, images: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray,
                 classes: Sequence[str], *, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, name: str = "segmentation",
                 statistics_source: str | None = None) -> None:
        self.images = torch.as_tensor(np.asarray(images), dtype=torch.uint8)
        self.masks = torch.as_tensor(np.asarray(masks), dtype=torch.uint8)
        if self.images.dim() != 4 or self.masks.dim() != 3:
            raise DatasetError(f"{name}: images must be (N, C, H, W) and masks (N, H, W), got "
                               f"{tuple(self.images.shape)} and {tuple(self.masks.shape)}")
        if self.images.shape[0] != self.masks.shape[0] or \
                self.images.shape[2:] != self.masks.shape[1:]:
            raise DatasetError(f"{name}: {tuple(self.images.shape)} images do not match "
                               f"{tuple(self.masks.shape)} label maps")
        self.classes = list(classes)
        labelled = self.masks[self.masks != IGNORE_INDEX]
        if labelled.numel() and int(labelled.max()) >= len(self.classes):
            raise DatasetError(f"{name}: label {int(labelled.max())} is out of range for "
                               f"{len(self.classes)} classes")
        self.name = name
        if mean is None or std is None:
            mean, std = channel_statistics(self.images)
        self.mean, self.std = tuple(mean), tuple(std)
        # where mean and std come from (a real benchmark: its training split, see _decode_all)
        self.statistics_source = statistics_source

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float() / 255, self.masks[index].long()

    def __repr__(self) -> str:
        return (f"SegmentationDataset({self.name}, {len(self)} images "
                f"{tuple(self.image_shape)}, {self.num_classes} classes)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def image_size(self) -> int | tuple[int, int]:
        h, w = self.images.shape[2:]
        return h if h == w else (h, w)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> SegmentationDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return SegmentationDataset(self.images[idx], self.masks[idx], self.classes,
                                   mean=self.mean, std=self.std, name=self.name,
                                   statistics_source=self.statistics_source)


class _ChannelMoments:
    """Per-channel sums of uint8 images in [0, 1], added image by image, so the statistics of
    a split need not hold the split in memory."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, None, None

    def add(self, images: torch.Tensor | np.ndarray) -> None:
        pixels = np.asarray(images, dtype=np.float64) / 255  # (N, C, H, W)
        pixels = np.moveaxis(pixels, 1, 0).reshape(pixels.shape[1], -1)  # (C, N*H*W)
        total, squares = pixels.sum(axis=1), np.square(pixels).sum(axis=1)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.count += pixels.shape[1]

    def statistics(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std): std with the n - 1 divisor, floored at 1e-3 (a constant channel
        must not divide by zero); 0.5 and 0.25 when there is nothing to measure."""
        if not self.count:
            return (0.5,) * channels, (0.25,) * channels
        mean = self.total / self.count
        if self.count < 2:
            return tuple(map(float, mean)), (0.25,) * channels
        variance = (self.squares - self.count * np.square(mean)) / (self.count - 1)
        std = np.maximum(np.sqrt(np.maximum(variance, 0)), 1e-3)
        return tuple(map(float, mean)), tuple(map(float, std))


def channel_statistics(images: torch.Tensor | np.ndarray
                       ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1]."""
    moments = _ChannelMoments()
    moments.add(images)
    return moments.statistics(np.asarray(images).shape[1])


# --------------------------------------------------------------------------- batches


def paired_augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                   padding: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The classification recipe's random crop (zero-padded by ``padding``) and horizontal
    flip, applied identically to each image and its label map; padded pixels are ignored."""
    n, _, h, w = x.shape
    if padding:
        x = torch.nn.functional.pad(x, (padding,) * 4)
        y = torch.nn.functional.pad(y, (padding,) * 4, value=IGNORE_INDEX)
    tops = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    lefts = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    xs, ys = [], []
    for i in range(n):
        top, left = int(tops[i]), int(lefts[i])
        xi, yi = x[i, :, top:top + h, left:left + w], y[i, top:top + h, left:left + w]
        if flips[i]:
            xi, yi = xi.flip(-1), yi.flip(-1)
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def segmentation_batches(
    dataset: SegmentationDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    augment: bool = False,
    normalise: bool = True,
    drop_last: bool = False,
    size: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images float (B, C, H, W), label maps int64 (B, H, W)) covering the dataset once,
    seeded like ``iterate_batches`` (order and augmentation from ``seed``). ``size`` resizes
    (images bilinear, label maps nearest) when the model expects another resolution."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order_gen, aug_gen = _generators(seed)
    n = len(dataset)
    order = torch.randperm(n, generator=order_gen) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    norm = Normalize(dataset.mean, dataset.std) if normalise else None
    for start in range(0, stop, batch_size):
        idx = order[start:min(start + batch_size, stop)]
        x = dataset.images[idx].float().div_(255)
        y = dataset.masks[idx].long()
        if augment:
            x, y = paired_augment(x, y, aug_gen)
        if norm is not None:
            x = norm(x)
        if size is not None and size != x.shape[-1]:
            x, y = resize_pair(x, y, size)
        yield x, y


def resize_pair(x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images bilinear, label maps nearest (a label is never interpolated)."""
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                        align_corners=False)
    y = torch.nn.functional.interpolate(y[:, None].float(), size=(size, size),
                                        mode="nearest")[:, 0].long()
    return x, y


def fixed_segmentation_batch(dataset: SegmentationDataset, n: int,
                             seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One reproducible proxy batch: ``n`` seeded images, normalised, with their label maps
    (ignored pixels as ``IGNORE_INDEX``)."""
    if not 1 <= n <= len(dataset):
        raise ConfigError(f"need 1 <= n <= {len(dataset)} (dataset size), got n={n}")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    x = Normalize(dataset.mean, dataset.std)(dataset.images[idx].float().div_(255))
    return x, dataset.masks[idx].long()


# --------------------------------------------------------------------------- paste


@dataclass(frozen=True)
class PasteRecipe:
    """How a pasted scene is made (every field is part of the cache key)."""

    size: int = 32  # output side; backgrounds (32 px CIFAR-10) are resized to it
    min_objects: int = 1
    max_objects: int = 3
    min_scale: float = 0.4  # object side as a fraction of ``size``
    max_scale: float = 0.75
    threshold: float = 0.2  # resized object intensity above this is the object's mask
    seed: int = 0

    def check(self) -> None:
        if self.size < 8:
            raise ConfigError(f"paste option size must be >= 8 pixels, got {self.size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, "
                              f"{self.max_objects}")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ConfigError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, "
                              f"{self.max_scale}")
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.seed < 0:
            raise ConfigError(f"paste option seed must be >= 0, got {self.seed}")


def _vivid(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (0-255) of saturation 0.6-1 and value 0.7-1: never grey, never dark."""
    hue, saturation, value = rng.random(), rng.uniform(0.6, 1), rng.uniform(0.7, 1)
    return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value)) * 255.0


def paste_scenes(backgrounds: np.ndarray, objects: np.ndarray, object_labels: np.ndarray,
                 n: int, recipe: PasteRecipe, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes: uint8 images (n, 3, size, size) and label maps (n, size, size).

    Scene i: background ``order[i]`` of a seeded permutation (each used once before any
    repeats), resized to ``size`` (Pillow bilinear); k ~ U{min..max} objects, each a random
    object resized to s ~ U{round(min_scale size)..round(max_scale size)} pixels, placed
    uniformly inside the image. Its mask is the resized intensity > ``threshold``; under the
    mask every pixel is replaced by a vivid colour shaded by the object's intensity,
    colour * (0.4 + 0.6 intensity), the more contrasting with the covered pixels of two draws,
    so the label map is exactly what is visible. Label = class + 1; later objects occlude
    earlier ones. Each scene has its own generator, seeded by (seed, stream, i), so a smaller
    ``n`` gives the first scenes of a larger one.
    """
    recipe.check()
    if len(backgrounds) == 0 or len(objects) == 0:
        raise DatasetError("pasting needs at least one background and one object")
    size = recipe.size
    low = max(2, round(recipe.min_scale * size))
    high = max(low, round(recipe.max_scale * size))
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    order = np.random.default_rng([recipe.seed, stream]).permutation(len(backgrounds))
    for i in range(n):
        rng = np.random.default_rng([recipe.seed, stream, i])
        images[i] = resize_background(backgrounds[order[i % len(backgrounds)]], size)
        for _ in range(int(rng.integers(recipe.min_objects, recipe.max_objects + 1))):
            j = int(rng.integers(len(objects)))
            side = int(rng.integers(low, high + 1))
            top = int(rng.integers(0, size - side + 1))
            left = int(rng.integers(0, size - side + 1))
            on = paste_object(images[i], objects[j], side, top, left, recipe.threshold, rng)
            if on is not None:
                masks[i, top:top + side, left:left + side][on] = int(object_labels[j]) + 1
    return images, masks


def resize_background(background: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (3, h, w) scene resized to (3, size, size) with Pillow's bilinear filter."""
    if background.shape[-1] == size and background.shape[-2] == size:
        return background
    return np.asarray(Image.fromarray(background.transpose(1, 2, 0)).resize(
        (size, size), Image.BILINEAR)).transpose(2, 0, 1)


def paste_object(image: np.ndarray, glyph: np.ndarray, side: int, top: int, left: int,
                 threshold: float, rng: np.random.Generator) -> np.ndarray | None:
    """Paste a grey object ``glyph`` (h, w) into ``image`` (3, H, W, uint8, in place), resized
    to ``side`` pixels at (top, left): under its mask (resized intensity > ``threshold``) every
    pixel becomes a vivid colour shaded by the intensity, colour * (0.4 + 0.6 intensity), the
    more contrasting with the covered pixels of two draws from ``rng``. Returns the (side,
    side) mask, or None when nothing of the object survives the resize."""
    candidates = (_vivid(rng), _vivid(rng))
    resized = Image.fromarray(glyph).resize((side, side), Image.BILINEAR)
    intensity = np.asarray(resized, dtype=np.float64) / 255
    on = intensity > threshold
    if not on.any():
        return None
    window = image[:, top:top + side, left:left + side]  # a view
    shade = 0.4 + 0.6 * intensity[on]  # (P,)
    covered = window[:, on].astype(np.float64).mean(axis=1)  # (3,)
    colour = max(candidates, key=lambda c: float(np.linalg.norm(c * shade.mean() - covered)))
    window[:, on] = np.rint(colour[:, None] * shade[None, :]).astype(np.uint8)
    return on


def _digest(*arrays: np.ndarray) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        sha.update(str(array.shape).encode())
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


def _paste(objects_name: str, object_classes: Sequence[str], split: str,
           data_dir: PathLike | None, n: int | None, recipe: PasteRecipe,
           cache: bool) -> SegmentationDataset:
    from vitnas.data.datasets import get_dataset

    check_split(split)
    if n is not None and n < 1:
        raise ConfigError(f"a pasted dataset needs option n >= 1 images, got {n}")
    recipe.check()  # before the sources are loaded
    n = (10000 if split == "train" else 2000) if n is None else n
    objects = get_dataset(objects_name, split=split, data_dir=data_dir)
    scenes = get_dataset("cifar10", split=split, data_dir=data_dir)
    object_images = objects.images[:, 0].numpy()
    background_images = scenes.images.numpy()
    stream = 0 if split == "train" else 1  # the test scenes are other scenes, not a copy
    key = json.dumps({"recipe": asdict(recipe), "stream": stream, "n": n,
                      "objects": objects_name, "version": 2,
                      "sources": _digest(object_images, objects.labels.numpy(),
                                         background_images)}, sort_keys=True)
    name = f"paste-{objects_name.replace('fashion-mnist', 'fashion')}"
    classes = ["background", *object_classes]
    # fixed statistics (CIFAR-10's, the scenes' source), so train and test normalise alike
    stats = {"mean": CIFAR10_MEAN, "std": CIFAR10_STD, "name": name}
    path = cache_dir() / "segmentation" / \
        f"{name}-{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return SegmentationDataset(z["images"], z["masks"], classes, **stats)
        except (OSError, ValueError, KeyError):
            pass  # an unreadable cache is rebuilt
    images, masks = paste_scenes(background_images, object_images, objects.labels.numpy(), n,
                                 recipe, stream)
    if cache:
        write_npz_atomic(path, images=images, masks=masks, key=np.asarray(key))
    return SegmentationDataset(images, masks, classes, **stats)


def _paste_fashion(split, data_dir, *, n: int | None = None, cache: bool = True,
                   **recipe) -> SegmentationDataset:
    return _paste("fashion-mnist", FASHION_MNIST_CLASSES, split, data_dir, n,
                  PasteRecipe(**recipe), cache)


def _paste_mnist(split, data_dir, *, n: int | None = None, cache: bool = True,
                 **recipe) -> SegmentationDataset:
    return _paste("mnist", MNIST_CLASSES, split, data_dir, n, PasteRecipe(**recipe), cache)


# --------------------------------------------------------------------------- real benchmarks

# Cityscapes label id -> train id (the 19 evaluated classes); any other id is ignored.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                        23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")
# ADE20K SceneParsing classes in annotation order (value v is class v - 1; 0 is not scored)
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip


FITS = ("squash", "crop")


def _square_box(width: int, height: int, fit: str) -> tuple[int, int, int, int] | None:
    """The region of a width x height frame that becomes the square (None: all of it)."""
    if fit == "squash" or width == height:
        return None
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _decode_image(image_path: Path, size: int, fit: str = "squash"
                  ) -> tuple[np.ndarray, tuple[int, int]]:
    """A (3, size, size) uint8 image (bilinear) and its original (width, height)."""
    try:
        with Image.open(image_path) as im:
            box = _square_box(*im.size, fit)
            image = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR, box=box))
            return image.transpose(2, 0, 1), im.size
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{image_path}: cannot decode image ({exc})") from None


def _decode_pair(image_path: Path, label_path: Path, size: int, fit: str = "squash"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """An image and its label map (nearest), which must have the image's size."""
    image, frame = _decode_image(image_path, size, fit)
    box = _square_box(*frame, fit)
    try:
        with Image.open(label_path) as lab:
            if lab.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"{label_path}: a label map must be a one-channel PNG, "
                                   f"not mode {lab.mode}")
            if lab.size != frame:
                raise DatasetError(f"{label_path}: label map is {lab.size[0]}x{lab.size[1]}, "
                                   f"its image {frame[0]}x{frame[1]}")
            label = np.asarray(lab.resize((size, size), Image.NEAREST, box=box)).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{label_path}: cannot decode label map ({exc})") from None
    return image, label


Pairs = list[tuple[Path, Path]]


def _decode_all(pairs: Pairs, size: int, mapping: Callable[[np.ndarray], np.ndarray],
                classes: Sequence[str], name: str, limit: int | None, fit: str = "squash",
                train_pairs: Pairs | None = None) -> SegmentationDataset:
    """Decode a split of a real benchmark, normalised with its *training* split's per-channel
    statistics (``train_pairs``; None: ``pairs`` is the training split): one normalisation for
    every split, as a deployed model sees it, and no test statistics leaking into the inputs.
    The statistics are cached, so a test split decodes the training images once per machine."""
    if fit not in FITS:
        raise ConfigError(f"{name}: fit {fit!r} is not one of {', '.join(FITS)}")
    if not pairs:
        raise DatasetError(f"{name}: no image/label pairs found")
    pairs = pairs[:limit] if limit else pairs
    images = np.empty((len(pairs), 3, size, size), dtype=np.uint8)
    masks = np.empty((len(pairs), size, size), dtype=np.uint8)
    for i, (image_path, label_path) in enumerate(pairs):
        images[i], label = _decode_pair(image_path, label_path, size, fit)
        masks[i] = mapping(label)
    if train_pairs is None:
        train_pairs = pairs
        mean, std = _train_statistics(name, train_pairs, size, fit, images)
    else:
        if not train_pairs:
            raise DatasetError(f"{name}: no training image/label pairs found, and its "
                               "statistics normalise every split")
        train_pairs = train_pairs[:limit] if limit else train_pairs
        mean, std = _train_statistics(name, train_pairs, size, fit)
    return SegmentationDataset(images, masks, classes, mean=mean, std=std, name=name,
                               statistics_source=f"{name} training split "
                                                 f"({len(train_pairs)} images)")


def _train_statistics(name: str, train_pairs: Pairs, size: int, fit: str,
                      decoded: np.ndarray | None = None
                      ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images as decoded (``size``, ``fit``), from
    ``decoded`` when given, else from the cache or by decoding them one at a time. The cache
    key names every training file with its size, so changed files are measured again."""
    listing = [(str(image), image.stat().st_size) for image, _ in train_pairs]
    key = json.dumps({"name": name, "size": size, "fit": fit, "files": listing,
                      "version": 1}, sort_keys=True)
    path = cache_dir() / "segmentation" / \
        f"{name}-train-stats-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if decoded is None:
        try:
            saved = json.loads(path.read_text())
            return tuple(saved["mean"]), tuple(saved["std"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: measured again
        moments = _ChannelMoments()
        for image_path, _ in train_pairs:
            moments.add(_decode_image(image_path, size, fit)[0][None])
        mean, std = moments.statistics(3)
    else:
        mean, std = channel_statistics(decoded)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump({"mean": mean, "std": std, "images": len(train_pairs)}, handle)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next test split a decode
    return mean, std


def _check_decoding(name: str, size: int, limit: int | None, fit: str) -> None:
    """The decoding options checked before any file is looked for (a wrong value is named at
    once, not after minutes of decoding or as a missing-files error)."""
    if size < 1:
        raise ConfigError(f"segmentation dataset {name!r} option size must be >= 1, got {size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"segmentation dataset {name!r} option limit must be >= 1 (or unset "
                          f"for all images), got {limit}")
    if fit not in FITS:
        raise ConfigError(f"segmentation dataset {name!r} option fit {fit!r} is not one of "
                          f"{', '.join(FITS)}")


def _root(relative: str, data_dir: PathLike | None, path: PathLike | None) -> Path:
    return Path(path).expanduser() if path is not None else find_data_file(relative, data_dir)


def _ade20k(split, data_dir, *, path: PathLike | None = None, size: int = 64,
            limit: int | None = None, fit: str = "squash") -> SegmentationDataset:
    _check_decoding("ade20k", size, limit, fit)
    check_split(split)
    root = _root("ADEChallengeData2016", data_dir, path)
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"

    def pairs_of(folder: str) -> Pairs:
        pairs = []
        for image in sorted((root / "images" / folder).glob("*.jpg")):
            label = root / "annotations" / folder / (image.stem + ".png")
            if not label.is_file():
                raise DatasetError(f"{image}: no label map {label}")
            pairs.append((image, label))
        return pairs

    def mapping(label: np.ndarray) -> np.ndarray:
        if label.max(initial=0) > 150:
            raise DatasetError(f"ade20k: label {int(label.max())} is above the 150 classes")
        out = label - 1  # 0 ("other") becomes -1: ignored
        out[out < 0] = IGNORE_INDEX
        return out.astype(np.uint8)

    train = split == "train"
    return _decode_all(pairs_of("training" if train else "validation"), size, mapping,
                       ADE20K_CLASSES, "ade20k", limit, fit,
                       None if train else pairs_of("training"))


def _cityscapes(split, data_dir, *, path: PathLike | None = None, size: int = 64,
                limit: int | None = None, fit: str = "squash") -> SegmentationDataset:
    _check_decoding("cityscapes", size, limit, fit)
    check_split(split)
    root = _root("cityscapes", data_dir, path)

    def pairs_of(folder: str) -> Pairs:
        pairs = []
        for image in sorted((root / "leftImg8bit" / folder).glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            label = root / "gtFine" / folder / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.is_file():
                raise DatasetError(f"{image}: no label map {label}")
            pairs.append((image, label))
        return pairs

    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        table[label_id] = train_id

    def mapping(label: np.ndarray) -> np.ndarray:
        return table[np.clip(label, 0, 255)]

    train = split == "train"
    return _decode_all(pairs_of("train" if train else "val"), size, mapping,
                       CITYSCAPES_CLASSES, "cityscapes", limit, fit,
                       None if train else pairs_of("train"))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., SegmentationDataset]
    description: str


_REGISTRY: dict[str, _Entry] = {
    "paste-fashion": _Entry(_paste_fashion, "Fashion-MNIST objects pasted on CIFAR-10 scenes "
                                            "(11 classes with background; built offline)"),
    "paste-mnist": _Entry(_paste_mnist, "MNIST digits pasted on CIFAR-10 scenes (11 classes)"),
    "ade20k": _Entry(_ade20k, "ADE20K (ADEChallengeData2016 layout, 150 classes), path= or "
                              "the data dir"),
    "cityscapes": _Entry(_cityscapes, "Cityscapes (leftImg8bit + gtFine, 19 train ids)"),
}


def list_segmentation_datasets() -> list[str]:
    return sorted(_REGISTRY)


def is_segmentation_dataset(name: str) -> bool:
    return name.strip().lower() in _REGISTRY


def get_segmentation_dataset(name: str, split: str = "train", data_dir: PathLike | None = None,
                             **options: object) -> SegmentationDataset:
    """A named dense dataset split (see the module docstring for each name's options)."""
    import inspect

    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ConfigError(f"unknown segmentation dataset {name!r}; valid names: "
                          f"{', '.join(list_segmentation_datasets())}")
    factory = _REGISTRY[key].factory
    signature = inspect.signature(factory).parameters
    params = {name: p for name, p in signature.items()
              if name not in ("split", "data_dir") and p.kind is not inspect.Parameter.VAR_KEYWORD}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):  # the recipe
        params.update({f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                 default=f.default, annotation=f.type)
                       for f in PasteRecipe.__dataclass_fields__.values()})
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"segmentation dataset {key!r} does not take option(s) "
                          f"{', '.join(unknown)}; it takes: {', '.join(params)}")
    # the classification datasets' type check: n=abc or threshold=nan named, not a TypeError
    options = check_option_types(key, inspect.Signature(list(params.values())), options)
    return factory(split, data_dir, **options)
