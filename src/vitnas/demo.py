"""The main job on its embedded defaults: sample a few AutoFormer-T (micro) architectures and
score them on one real CIFAR-10 batch with the headline proxies beside params and FLOPs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from vitnas.proxies import score_architecture
from vitnas.proxies.scoring import proxy_batch
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
) -> list[DemoRow]:
    space = get_space(space_name)
    x, y = proxy_batch(dataset, batch_size, space.img_size, space.in_chans, space.num_classes,
                       seed, data_dir)
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        arch = space.sample(rng)
        results = score_architecture(space, arch, list(proxies), x, y, seed=seed)
        rows.append(DemoRow(space.to_json(arch), space.params(arch), space.flops(arch),
                            {r.proxy: r.score for r in results},
                            sum(r.seconds for r in results)))
    return rows
