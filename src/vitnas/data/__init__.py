"""Datasets, file-format readers, batched transforms and seeded batch iteration.

Quick start::

    from vitnas.data import get_dataset, iterate_batches, fixed_batch, Normalize
    ds = get_dataset("cifar10", split="train")          # files via $VITNAS_DATA_DIR
    norm = Normalize.for_dataset(ds)
    for x, y in iterate_batches(ds, 128, seed=epoch, transform=norm): ...
    x, y = fixed_batch(ds, 64, seed=0, transform=norm)  # one reproducible proxy batch
"""

from vitnas.data.datasets import (
    ArrayDataset,
    ImageFolder,
    SyntheticDataset,
    describe_datasets,
    get_dataset,
    list_datasets,
    training_splits,
)
from vitnas.data.formats import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    RawData,
    decode_image,
    load_cifar10_jpg,
    load_cifar10_pickles,
    load_cifar100_pickles,
    load_image_archive,
    load_mnist_dir,
    read_idx,
    scan_image_folder,
)
from vitnas.data.loader import balanced_indices, fixed_batch, iterate_batches
from vitnas.data.scaled import ScaledRecipe, scaled_objects  # registers "scaled-fashion"
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
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    Transform,
    apply_transform,
    cifar_train_transform,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_CLASSES",
    "MNIST_MEAN",
    "MNIST_STD",
    "ArrayDataset",
    "Compose",
    "ImageFolder",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RawData",
    "Resize",
    "ScaledRecipe",
    "SyntheticDataset",
    "Transform",
    "apply_transform",
    "balanced_indices",
    "cifar_train_transform",
    "decode_image",
    "describe_datasets",
    "fixed_batch",
    "get_dataset",
    "iterate_batches",
    "list_datasets",
    "load_cifar10_jpg",
    "load_cifar10_pickles",
    "load_cifar100_pickles",
    "load_image_archive",
    "load_mnist_dir",
    "read_idx",
    "scaled_objects",
    "scan_image_folder",
    "training_splits",
]
