"""DSS (TF-TAS, Zhou et al., CVPR 2022): synaptic diversity of attention + saliency of MLPs.

Linearise the network (every weight -> |weight|, the SynFlow trick), feed one all-ones image,
R = sum of logits, backpropagate. Attention projections (qkv and output projection) score
||dR/dW||_* x ||W||_* (nuclear norms: a rank-sensitive "diversity"); MLP and classifier weights
score sum |dR/dW * W| ("saliency"). Layers are found by their explicit role tags, not by name.
Networks without attention (CNN cells) get saliency on every tagged layer.
"""

from __future__ import annotations

import torch
from torch import nn

from vitnas.models import tags
from vitnas.proxies.base import BACKWARD, PROXIES, Proxy, ProxyContext
from vitnas.proxies.zero_cost import linearise


@PROXIES.register("dss")
class DSS(Proxy):
    name = "dss"
    direction = 1
    cost = BACKWARD
    reference = "TF-TAS, Zhou et al., CVPR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        model = linearise(model).eval()
        ones = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64)
        model.zero_grad(set_to_none=True)
        model(ones).sum().backward()
        total = 0.0
        diversity_roles = set(tags.ATTENTION_ROLES)
        has_attention = any(True for _ in tags.tagged_modules(model, *diversity_roles))
        saliency_roles = (*tags.MLP_ROLES, tags.HEAD) if has_attention else tags.ALL_ROLES
        for _, module in tags.tagged_modules(model):
            weight = getattr(module, "weight", None)
            if weight is None or weight.grad is None or weight.dim() < 2:
                continue
            if tags.role_of(module) in diversity_roles:
                w, g = weight.detach().flatten(1), weight.grad.flatten(1)
                nuclear = torch.linalg.matrix_norm
                total += float(nuclear(g, "nuc") * nuclear(w, "nuc"))
            elif tags.role_of(module) in saliency_roles:
                total += float((weight.grad * weight.detach()).abs().sum())
        return total
