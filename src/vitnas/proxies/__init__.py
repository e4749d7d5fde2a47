"""Training-free proxies, registered by name: ``get_proxy("ntk_cond")``, ``list_proxies()``."""

from vitnas.proxies import (  # noqa: F401  (registration)
    autoprox,
    aznas,
    brief,
    dss,
    lga,
    lswag,
    meco,
    ntk,
    shape,
    swap,
    token_entropy,
    vintk,
    zero_cost,
    zico,
)
from vitnas.proxies.base import PROXIES, Proxy, ProxyContext, ProxyResult
from vitnas.proxies.scoring import score_architecture, score_model
from vitnas.proxies.spec import expand_proxy_specs, get_proxy, list_proxies, resolve_proxies

__all__ = [
    "PROXIES",
    "Proxy",
    "ProxyContext",
    "ProxyResult",
    "expand_proxy_specs",
    "get_proxy",
    "list_proxies",
    "resolve_proxies",
    "score_architecture",
    "score_model",
]
