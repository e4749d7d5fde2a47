"""Semantic segmentation on a multi-scale backbone: a light FPN decoder and the model pairing them.

The decoder is a Feature Pyramid Network (Lin et al., CVPR 2017) read as a semantic head, the
way Panoptic FPN (Kirillov et al., CVPR 2019) and UPerNet's FPN branch (Xiao et al., ECCV 2018)
do: LayerNorm each stage map (Swin's dense-task output norms), lateral 1x1 convs to a common
width ``dim``, top-down nearest upsampling with addition, a 3x3 smoothing conv per level, all
levels bilinearly upsampled to the finest level and concatenated, a 1x1 fuse conv + ReLU, a 1x1
classifier, and bilinear upsampling of the logits to the input size.

Deliberately light (no PPM, no BatchNorm, one conv per level): in a training-free search the
backbone is what is ranked, and a heavy decoder would dilute every proxy's view of it with
parameters that are the same for all architectures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.models import tags


def channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of a (B, C, H, W) map."""
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FPNDecoder(nn.Module):
    """Per-pixel logits (B, num_classes, *out_size) from stage maps [(B, C_i, H_i, W_i)], finest
    first."""

    def __init__(self, in_dims: Sequence[int], dim: int, num_classes: int) -> None:
        super().__init__()
        levels = len(in_dims)
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in in_dims)
        self.lateral = nn.ModuleList(tags.tag(nn.Conv2d(c, dim, 1), tags.CONV) for c in in_dims)
        self.smooth = nn.ModuleList(
            tags.tag(nn.Conv2d(dim, dim, 3, padding=1), tags.CONV) for _ in range(levels)
        )
        self.fuse = tags.tag(nn.Conv2d(levels * dim, dim, 1), tags.CONV)
        self.act = nn.ReLU()
        self.classifier = tags.tag(nn.Conv2d(dim, num_classes, 1), tags.HEAD)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming (fan-out, ReLU) convs and a std-0.01 classifier (mmsegmentation's choice for
        conv decoders), zero biases, unit LayerNorm gains."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if module is self.classifier:
                    nn.init.normal_(module.weight, std=0.01)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: Sequence[torch.Tensor], out_size: Sequence[int]) -> torch.Tensor:
        pyramid = [
            lateral(channel_norm(norm, f))
            for norm, lateral, f in zip(self.norms, self.lateral, features)
        ]  # each (B, dim, H_i, W_i)
        for i in range(len(pyramid) - 2, -1, -1):  # top-down: coarse into fine
            coarser = F.interpolate(pyramid[i + 1], size=pyramid[i].shape[-2:], mode="nearest")
            pyramid[i] = pyramid[i] + coarser
        finest = pyramid[0].shape[-2:]
        levels = [
            F.interpolate(smooth(p), size=finest, mode="bilinear", align_corners=False)
            for smooth, p in zip(self.smooth, pyramid)
        ]  # each (B, dim, H_0, W_0)
        fused = self.act(self.fuse(torch.cat(levels, dim=1)))  # (B, dim, H_0, W_0)
        logits = self.classifier(fused)  # (B, classes, H_0, W_0)
        return F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)


class SegmentationModel(nn.Module):
    """A multi-scale backbone and a decoder under the common contract: ``forward_features`` is
    the backbone's (so feature-reading proxies see the same maps as for classification),
    ``forward_head`` the decoder, ``forward(x)`` the logits (B, num_classes, H, W) at the
    input's size. The backbone needs ``forward_features`` -> maps, finest first, and
    ``patch_size`` (the stride of its finest map)."""

    def __init__(self, backbone: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.forward_features(x)

    def forward_head(
        self, features: Sequence[torch.Tensor], out_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Logits at ``out_size``; by default the finest map's size times its stride (the
        input size whenever that is a multiple of the patch size)."""
        if out_size is None:
            stride = self.backbone.patch_size
            out_size = [side * stride for side in features[0].shape[-2:]]
        return self.decoder(features, out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), x.shape[-2:])
