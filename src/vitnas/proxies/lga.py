"""Label-Gradient Alignment (Mok et al., CVPR 2022): does the NTK separate the classes?

LGA = <Theta_c, L_c>_F / (||Theta_c||_F ||L_c||_F) with L_ij = +1 for same-class pairs and -1
otherwise. ``centring=global`` subtracts the scalar mean (as the reference code does);
``centring=cka`` uses H K H double centring.

Defaults follow the official code (naver-ai/demystifying-ntk): Theta is the kernel of the
summed logits' per-sample gradients over every ``weight`` parameter except the classifier's
(``params=weights_nohead``; ``params=all`` was this library's earlier kernel). The paper's point
is that LGA becomes predictive only after a little training: ``epochs=k`` first trains a private
copy of the model for k epochs on ``dataset``'s training split, with the reference's recipe by
default (``recipe=sgd``: SGD lr 0.025, momentum 0.9, weight decay 3e-4, constant rate, no label
smoothing, crop and flip, batch 1024, the whole split) or the shared trainer's AdamW recipe
(``recipe=shared``, the earlier behaviour, with ``train_samples=5000,batch_size=128``). The
training samples exclude the proxy batch (``disjoint=true``) when it is ``proxy_batch``'s draw
from the same split and seed, as the reference measures on held-out data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import PER_SAMPLE, PROXIES, ProxyContext, ceiling, read_when
from vitnas.proxies.kernel import kernel_alignment
from vitnas.proxies.ntk import KernelProxy, NTKConfig
from vitnas.proxies.targets import distinct_classes, image_targets, is_dense

RECIPES = ("sgd", "shared")


@dataclass(frozen=True)
class LGAConfig(NTKConfig):
    params: str = "weights_nohead"
    centring: str = "global"
    epochs: float = ceiling(0, 1000.0)
    dataset: str = "cifar10"
    train_samples: int = ceiling(0, 10**8)  # 0 = the whole training split (less the proxy batch)
    batch_size: int = ceiling(1024, 65_536)
    recipe: str = "sgd"
    disjoint: bool = True

    def check(self) -> None:
        super().check()
        if self.centring not in ("global", "cka"):
            raise ConfigError(f"lga centring {self.centring!r} is not one of global, cka")
        if self.recipe not in RECIPES:
            raise ConfigError(f"lga recipe {self.recipe!r} is not one of {', '.join(RECIPES)}")
        if self.epochs < 0 or self.train_samples < 0 or self.batch_size <= 0:
            raise ConfigError("lga needs epochs >= 0, train_samples >= 0 and batch_size > 0")
        from vitnas.data.datasets import check_dataset_name

        check_dataset_name(self.dataset)

    def read_options(self) -> frozenset[str]:
        """At initialisation (epochs=0) nothing is trained, so the training options are unread
        (and refused when set: ``base.unread_options``)."""
        names = {f.name for f in dataclasses.fields(self)}
        return frozenset(names if self.epochs > 0 else names - set(TRAINING_OPTIONS))

    def setting(self) -> str:
        return f"epochs={self.epochs:g}"

    @classmethod
    def readers(cls) -> dict[str, str]:
        return read_when(cls, dict.fromkeys(TRAINING_OPTIONS, "epochs > 0"))


TRAINING_OPTIONS = ("dataset", "train_samples", "batch_size", "recipe", "disjoint")


def reference_recipe(epochs: float, batch_size: int, seed: int):
    """The post-training of the official LGA code: SGD at a constant lr 0.025, momentum 0.9,
    weight decay 3e-4, plain cross-entropy, random crop and flip."""
    from vitnas.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.025, weight_decay=3e-4,
                       warmup_fraction=0.0, label_smoothing=0.0, augment=True, seed=seed,
                       optimizer="sgd", momentum=0.9, schedule="constant")


def proxy_batch_indices(dataset: str, data, ctx: ProxyContext) -> torch.Tensor | None:
    """Where the proxy batch sits in ``data`` (``dataset``'s training split): the indices of
    ``proxy_batch``'s class-balanced draw with the context's seed, when that draw reproduces the
    batch's labels and images exactly; else None."""
    from vitnas.data import balanced_indices
    from vitnas.proxies.scoring import proxy_batch

    labels = getattr(data, "labels", None)
    n = ctx.inputs.shape[0]
    if labels is None or n > len(labels):
        return None
    indices = balanced_indices(torch.as_tensor(labels), n, ctx.seed)
    if not torch.equal(torch.as_tensor(labels)[indices], ctx.labels.cpu()):
        return None
    channels, size = ctx.inputs.shape[1], ctx.inputs.shape[-1]
    x, _ = proxy_batch(dataset, n, size, channels, ctx.num_classes, ctx.seed)
    return indices if torch.allclose(x, ctx.inputs.cpu(), atol=1e-5) else None


def label_kernel(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """+1 for a pair of the same class, -1 otherwise (Mok et al.). For label maps the pair's
    similarity is the overlap of their class frequencies, 2 <p_i, p_j> - 1, which is the same
    +-1 when each image holds one class."""
    if is_dense(labels):
        targets = image_targets(labels, num_classes or int(labels.max()) + 1)
        return 2 * targets @ targets.T - 1
    same = labels.view(-1, 1) == labels.view(1, -1)
    return same.double() * 2 - 1


def label_gradient_alignment(theta: torch.Tensor, labels: torch.Tensor, centring: str,
                             num_classes: int | None = None) -> float:
    return kernel_alignment(theta, label_kernel(labels, num_classes), centring)


@PROXIES.register("lga")
class LabelGradientAlignment(KernelProxy):
    name = "lga"
    min_batch = 2  # a statistic across samples
    direction = 1
    cost = PER_SAMPLE
    reference = "Mok et al., CVPR 2022"
    Config = LGAConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        if distinct_classes(ctx.labels) < 2:
            ctx.warn(f"{self.name}: the batch holds a single class; alignment is undefined")
            return float("nan")
        if c.epochs > 0:
            self._train(model, ctx)
            theta = self.kernel(model, ctx, view=f"trained{c.epochs}:{c.dataset}:{c.train_samples}")
        else:
            theta = self.kernel(model, ctx)
        return label_gradient_alignment(theta, ctx.labels, c.centring, ctx.num_classes)

    def training_subset(self, data, ctx: ProxyContext):
        """The samples LGA trains on: ``train_samples`` of them (0 = all), drawn with the
        context's seed, never the proxy batch's own samples when ``disjoint``."""
        c = self.config
        keep = torch.ones(len(data), dtype=torch.bool)
        if c.disjoint:
            held = proxy_batch_indices(c.dataset, data, ctx)
            if held is None:
                ctx.warn(f"{self.name}: the proxy batch is not proxy_batch's draw from "
                         f"{c.dataset} train with seed {ctx.seed}; no samples were excluded")
            else:
                keep[held] = False
        indices = torch.nonzero(keep).flatten()
        if c.train_samples and len(indices) > c.train_samples:
            generator = torch.Generator().manual_seed(ctx.seed)
            indices = indices[torch.randperm(len(indices), generator=generator)[: c.train_samples]]
        return data.subset(indices)

    def _train(self, model: nn.Module, ctx: ProxyContext) -> None:
        from vitnas.data import get_dataset
        from vitnas.train import TrainConfig, train_model

        c = self.config
        data = self.training_subset(get_dataset(c.dataset, split="train"), ctx)
        if c.recipe == "sgd":
            config = reference_recipe(c.epochs, c.batch_size, ctx.seed)
        else:
            config = TrainConfig(epochs=c.epochs, batch_size=c.batch_size, seed=ctx.seed)
        train_model(model, data, config, image_size=ctx.inputs.shape[-1])




