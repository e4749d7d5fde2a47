"""Label-Gradient Alignment (Mok et al., CVPR 2022): does the NTK separate the classes?

LGA = <Theta_c, L_c>_F / (||Theta_c||_F ||L_c||_F) with L_ij = +1 for same-class pairs and -1
otherwise. ``centring=global`` subtracts the scalar mean (as the reference reproduction does);
``centring=cka`` uses H K H double centring. The paper's point is that LGA becomes predictive
only after a little training: ``epochs=k`` first trains a private copy of the model for k
epochs with the shared trainer (``vitnas.train``) on ``dataset`` and then measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import PER_SAMPLE, PROXIES, ProxyContext
from vitnas.proxies.kernel import kernel_alignment
from vitnas.proxies.ntk import KernelProxy, NTKConfig


@dataclass(frozen=True)
class LGAConfig(NTKConfig):
    centring: str = "global"
    epochs: float = 0
    dataset: str = "cifar10"
    train_samples: int = 5000
    batch_size: int = 128

    def check(self) -> None:
        super().check()
        if self.centring not in ("global", "cka"):
            raise ConfigError(f"lga centring {self.centring!r} is not one of global, cka")
        if self.epochs < 0 or self.train_samples <= 0:
            raise ConfigError("lga needs epochs >= 0 and train_samples > 0")


def label_kernel(labels: torch.Tensor) -> torch.Tensor:
    same = labels.view(-1, 1) == labels.view(1, -1)
    return same.double() * 2 - 1


def label_gradient_alignment(theta: torch.Tensor, labels: torch.Tensor, centring: str) -> float:
    return kernel_alignment(theta, label_kernel(labels), centring)


@PROXIES.register("lga")
class LabelGradientAlignment(KernelProxy):
    name = "lga"
    direction = 1
    cost = PER_SAMPLE
    reference = "Mok et al., CVPR 2022"
    Config = LGAConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        if len(torch.unique(ctx.labels)) < 2:
            ctx.warn(f"{self.name}: the batch holds a single class; alignment is undefined")
            return float("nan")
        if c.epochs > 0:
            self._train(model, ctx)
            theta = self.kernel(model, ctx, view=f"trained{c.epochs}:{c.dataset}:{c.train_samples}")
        else:
            theta = self.kernel(model, ctx)
        return label_gradient_alignment(theta, ctx.labels, c.centring)

    def _train(self, model: nn.Module, ctx: ProxyContext) -> None:
        from vitnas.data import get_dataset
        from vitnas.train import TrainConfig, train_model

        c = self.config
        data = get_dataset(c.dataset, split="train")
        if len(data) > c.train_samples:
            generator = torch.Generator().manual_seed(ctx.seed)
            data = data.subset(torch.randperm(len(data), generator=generator)[: c.train_samples])
        train_model(model, data, TrainConfig(epochs=c.epochs, batch_size=c.batch_size,
                                             seed=ctx.seed), image_size=ctx.inputs.shape[-1])




