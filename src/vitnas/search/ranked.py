"""A search whose objective is a calibrated ranker (``vitnas calibrate``, ``vitnas.calibrate``).

Each candidate is scored with the ranker's feature specs, like any list of proxies (through the
store, resumable, shardable), and the ranker turns a candidate's feature scores into its
fitness: the ranker decides the order, not the rank sum of the features.
"""

from __future__ import annotations

import numpy as np

from vitnas.calibrate import Ranker
from vitnas.proxies.base import FREE
from vitnas.proxies.spec import get_proxy
from vitnas.search.history import Evaluation, History


class RankerHistory(History):
    """A history ranked by ``ranker``; a candidate whose features are NaN ranks last."""

    def __init__(self, ranker: Ranker) -> None:
        super().__init__(ranker.feature_specs, "rank")
        self.ranker = ranker

    def fitness(self) -> np.ndarray:
        values = self.ranker.score_rows(self.scores())
        return np.where(np.isfinite(values), values, -np.inf)

    def ranked(self, needed: int | None = None) -> list[Evaluation]:
        value = self.fitness()
        order = sorted(range(len(self)), key=lambda i: (-value[i],
                                                        self.evaluations[i].candidate.key))
        return [self.evaluations[i] for i in order[:needed]]


def batch_mismatch(ranker: Ranker, dataset: str, batch_size: int, seed: int) -> str | None:
    """A note when the ranker's proxy features were scored on another proxy batch than the
    search's (the shape counts need no batch): their standardisation then means less."""
    scored = [s for s in ranker.feature_specs if get_proxy(s).cost != FREE]
    meta = ranker.meta
    ours = {"batch": dataset, "batch_size": batch_size, "seed": seed}
    differ = [f"{k} {meta[k]} (search: {v})" for k, v in ours.items()
              if k in meta and meta[k] != v]
    if not scored or not differ:
        return None
    return (f"note: the ranker's features {', '.join(scored)} were scored with "
            f"{', '.join(differ)}; pass the same --dataset/--batch-size/--seed for scores on "
            f"its scale")


def space_mismatch(ranker: Ranker, space_name: str) -> str | None:
    """A note when the ranker was fitted on another family of spaces (PiT's for an AutoFormer
    search): its features' means and scales, and what they predicted, are that family's.
    Another size of the same family is what calibration is for (a 224 px benchmark ranking a
    32 px micro space), so it passes without a note."""
    fitted = ranker.meta.get("space")
    if not isinstance(fitted, str) or fitted.split("-")[0] == space_name.split("-")[0]:
        return None
    return (f"note: the ranker was fitted on {fitted} architectures and now ranks "
            f"{space_name}'s; its weights may not carry over between space families")
