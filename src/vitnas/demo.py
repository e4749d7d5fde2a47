"""A one-minute tour (the main job is ``vitnas search``): sample a few AutoFormer-T (micro)
architectures and score them on one real CIFAR-10 batch with the headline proxies beside params
and FLOPs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from vitnas.proxies import score_architecture
from vitnas.proxies.scoring import check_proxy_dataset, proxy_batch
from vitnas.spaces import get_space

DEMO_PROXIES = ("params", "flops", "vintk", "ntk_cond", "dss", "synflow", "nwot")


@dataclass
class DemoRow:
    arch: dict
    params: int
    flops: int
    scores: dict[str, float]
    seconds: float


def run_demo(
    space_name: str = "autoformer-tiny-micro",
    count: int = 5,
    dataset: str = "cifar10",
    batch_size: int = 32,
    seed: int = 0,
    proxies: tuple[str, ...] = DEMO_PROXIES,
    data_dir: str | None = None,
    status: Callable[[str], None] | None = None,
) -> list[DemoRow]:
    """``status`` hears what runs now (the first run decodes and caches the CIFAR-10 archive)."""
    say = status or (lambda message: None)
    space = get_space(space_name)
    check_proxy_dataset(dataset)
    say(f"building the proxy batch: {batch_size} {dataset} images (the first run decodes and "
        "caches the archive)")
    x, y = proxy_batch(dataset, batch_size, space.img_size, space.in_chans, space.num_classes,
                       seed, data_dir)
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        arch = space.sample(rng)
        results = score_architecture(space, arch, list(proxies), x, y, seed=seed)
        rows.append(DemoRow(space.to_json(arch), space.params(arch), space.flops(arch),
                            {r.proxy: r.score for r in results},
                            sum(r.seconds for r in results)))
        say(f"scored architecture {index + 1}/{count} with {len(proxies)} proxies in "
            f"{rows[-1].seconds:.1f} s")
    return rows
