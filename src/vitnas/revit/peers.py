"""The simple peers a learned token-length policy must beat, as decision rules on the ReViT's
own top softmax probability (no training), with their thresholds chosen on the labelled pool.

- :class:`SkipRule` (confidence-skip): run the shortest length on every image and read its top
  softmax probability p_0; keep the answer when p_0 >= t_0, else go straight to length 1 when
  p_0 >= t_1, ..., else to the longest. K - 1 descending thresholds; the lengths in between are
  never run (with three lengths: keep, go to 36, go to 64 tokens). It is the learned router's
  hand-written twin: same input (the shortest pass), same possible routes.
- :class:`CascadeRule` (DVT's early exit, made fair): at each length k below the longest, exit
  when its top probability reaches ``exit[k]``; when it falls below ``skip[k]``, go straight to
  the longest length (skipping those between); otherwise run length k + 1. Per-exit thresholds
  and the skip are what a budgeted DVT calibrates; one shared threshold and no skip
  (:func:`shared_cascade`) is the plain cascade.

Rules act on cached per-length probabilities (:func:`rule_outcome`) and end to end
(:func:`vitnas.revit.inference.skip_predict`, :func:`~vitnas.revit.inference.cascade_predict`);
the grids (:func:`rule_grid`) are searched on the pool, never on test.

Either rule can also run its passes with token merging (``merge``: ToMe's r per length, 0 for a
plain pass; :mod:`vitnas.revit.tome`): adaptivity and merging act on different redundancy (how
many tokens an image needs; how alike its tokens are), so they can stack. Such a rule is its
own peer kind (``"<kind> + ToMe"``, :func:`merged_kind`), its rates chosen on the pool with its
thresholds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch

from vitnas.errors import ConfigError

# thresholds a grid tries; above 1 means "never" (a probability never reaches it)
THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
              0.925, 0.95, 0.97, 0.99, 1.01)
MAX_RULES = 20000  # a grid larger than this is thinned (only with more than three lengths)


@dataclass(frozen=True)
class SkipRule:
    """Route by the shortest pass's top probability: length = the number of ``thresholds``
    (descending, K - 1 of them) that p_0 falls below."""

    thresholds: tuple[float, ...]
    merge: tuple[int, ...] = ()  # ToMe's r at each length (empty: no merging)

    kind = "confidence-skip"

    def __post_init__(self) -> None:
        if any(a < b for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise ConfigError(f"confidence-skip thresholds must descend, got {self.thresholds}")
        _check_merge(self.merge, len(self.thresholds) + 1)

    @property
    def policy(self) -> str:
        return merged_kind(self.kind) if any(self.merge) else self.kind

    def as_dict(self) -> dict:
        return {"kind": self.kind, "thresholds": list(self.thresholds), **_merge_dict(self.merge)}


@dataclass(frozen=True)
class CascadeRule:
    """Exit at length k when its top probability >= ``exit[k]``; below ``skip[k]`` jump to the
    longest length; else run length k + 1 (K - 1 entries each; ``skip`` 0 never skips)."""

    exit: tuple[float, ...]
    skip: tuple[float, ...]
    merge: tuple[int, ...] = ()  # ToMe's r at each length (empty: no merging)

    kind = "fair cascade"

    def __post_init__(self) -> None:
        if len(self.exit) != len(self.skip):
            raise ConfigError("a cascade rule needs one exit and one skip threshold per length "
                              "below the longest")
        _check_merge(self.merge, len(self.exit) + 1)

    @property
    def policy(self) -> str:
        plain = "cascade" if self.shared else self.kind
        return merged_kind(plain) if any(self.merge) else plain

    @property
    def shared(self) -> bool:
        """One threshold at every exit and no skip: the plain cascade."""
        return len(set(self.exit)) <= 1 and not any(self.skip)

    def as_dict(self) -> dict:
        return {"kind": "cascade" if self.shared else self.kind, "exit": list(self.exit),
                "skip": list(self.skip), **_merge_dict(self.merge)}


def merged_kind(kind: str) -> str:
    """The peer kind of ``kind``'s rules whose passes merge tokens."""
    return f"{kind} + ToMe"


def _check_merge(merge: tuple[int, ...], count: int) -> None:
    if merge and (len(merge) != count or any(r < 0 for r in merge)):
        raise ConfigError(f"a rule over {count} lengths merges r >= 0 tokens per block at each "
                          f"length, got {list(merge)}")


def _merge_dict(merge: tuple[int, ...]) -> dict:
    return {"merge": list(merge)} if any(merge) else {}


def with_merge(rules: list[SkipRule | CascadeRule], merge: tuple[int, ...]
               ) -> list[SkipRule | CascadeRule]:
    """``rules`` with their passes merging ``merge`` tokens per block at each length."""
    merge = tuple(merge) if any(merge) else ()
    return [replace(rule, merge=merge) for rule in rules]


def shared_cascade(threshold: float, count: int) -> CascadeRule:
    """The plain DVT-style cascade: one threshold at every exit, no skip."""
    return CascadeRule((float(threshold),) * (count - 1), (0.0,) * (count - 1))


def rule_from_dict(data: dict) -> SkipRule | CascadeRule:
    merge = tuple(int(r) for r in data.get("merge", ()))
    if data.get("kind") == SkipRule.kind:
        return SkipRule(tuple(data["thresholds"]), merge)
    return CascadeRule(tuple(data["exit"]), tuple(data["skip"]), merge)


def rule_routes(rule: SkipRule | CascadeRule, confidence: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(length whose answer is kept (N,), lengths run (K, N) bool) from every length's top
    probability ``confidence`` (K, N)."""
    count, n = confidence.shape
    if isinstance(rule, SkipRule):
        if len(rule.thresholds) != count - 1:
            raise ConfigError(f"a confidence-skip rule over {count} lengths needs {count - 1} "
                              f"thresholds, got {len(rule.thresholds)}")
        bounds = torch.tensor(rule.thresholds, dtype=confidence.dtype)
        length = (confidence[0].unsqueeze(0) < bounds.unsqueeze(1)).sum(0)
        ran = torch.zeros(count, n, dtype=torch.bool)
        ran[0] = True
        ran[length, torch.arange(n)] = True
        return length, ran
    if len(rule.exit) != count - 1:
        raise ConfigError(f"a cascade over {count} lengths needs {count - 1} thresholds")
    length = torch.full((n,), count - 1, dtype=torch.int64)
    ran = torch.zeros(count, n, dtype=torch.bool)
    active = torch.ones(n, dtype=torch.bool)
    for k in range(count - 1):
        ran[k] |= active
        done = active & (confidence[k] >= rule.exit[k])
        length[done] = k
        jump = active & ~done & (confidence[k] < rule.skip[k])
        active = active & ~done & ~jump
    ran[count - 1] |= length == count - 1
    return length, ran


def rule_outcome(rule: SkipRule | CascadeRule, confidence: torch.Tensor, correct: torch.Tensor,
                 costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(right (N,), FLOPs spent (N,), length kept (N,)) of ``rule`` on cached per-length top
    probabilities (K, N) and correctness (K, N); an image pays every length it ran."""
    length, ran = rule_routes(rule, confidence)
    spent = (ran.to(torch.int64) * costs.to(torch.int64).unsqueeze(1)).sum(0)
    return correct[length, torch.arange(correct.shape[1])], spent, length


def _grid(values: tuple[float, ...], count: int) -> tuple[float, ...]:
    """``values`` thinned so that ``count`` nested choices stay under :data:`MAX_RULES`."""
    keep = len(values)
    while keep > 3 and keep ** count > MAX_RULES:
        keep -= 1
    picks = torch.linspace(0, len(values) - 1, keep).round().long().unique().tolist()
    return tuple(values[i] for i in picks)


def rule_grid(kind: str, count: int, thresholds: tuple[float, ...] = THRESHOLDS
              ) -> list[SkipRule | CascadeRule]:
    """Every rule of ``kind`` (``confidence-skip``, ``fair cascade`` or ``cascade``, the shared
    threshold) over ``count`` lengths on the threshold grid."""
    if kind == SkipRule.kind:
        values = _grid(thresholds, count - 1)
        return [SkipRule(tuple(sorted(combo, reverse=True)))
                for combo in itertools.combinations_with_replacement(values, count - 1)]
    if kind == "cascade":
        return [shared_cascade(t, count) for t in thresholds]
    if kind != CascadeRule.kind:
        raise ConfigError(f"no rule kind {kind!r}")
    # a skip at the last exit before the longest length changes nothing: only earlier ones
    skips_free = max(0, count - 2)
    values = _grid(thresholds, 2 * skips_free + 1 if skips_free else count - 1)
    rules = []
    for exits in itertools.product(values, repeat=count - 1):
        for skips in itertools.product(values, repeat=skips_free):
            if any(s > e for s, e in zip(skips, exits)):
                continue  # a skip above the exit threshold would overrule the exit
            rules.append(CascadeRule(tuple(exits), (*skips, 0.0)))
    return rules


def neighbours(rule: SkipRule | CascadeRule, thresholds: tuple[float, ...] = THRESHOLDS
               ) -> list[SkipRule | CascadeRule]:
    """Every valid rule that differs from ``rule`` in one threshold, moved to any value of the
    full grid. With four or more lengths :func:`rule_grid` thins the grid; one round of these
    moves around the thinned grid's best rules restores a peer's strength where a single
    threshold matters. (A plain cascade's grid, one shared threshold, is never thinned: do not
    refine it, or it stops being the plain cascade.)"""
    out: list[SkipRule | CascadeRule] = []
    if isinstance(rule, SkipRule):
        for i, value in itertools.product(range(len(rule.thresholds)), thresholds):
            moved = list(rule.thresholds)
            moved[i] = value
            if moved != list(rule.thresholds) and all(a >= b for a, b in zip(moved, moved[1:])):
                out.append(SkipRule(tuple(moved), rule.merge))
        return out
    slots = [("exit", i) for i in range(len(rule.exit))]
    slots += [("skip", i) for i in range(len(rule.skip) - 1)]  # the last skip changes nothing
    for (name, i), value in itertools.product(slots, thresholds):
        exits, skips = list(rule.exit), list(rule.skip)
        (exits if name == "exit" else skips)[i] = value
        if (exits, skips) != (list(rule.exit), list(rule.skip)) and all(
                s <= e for s, e in zip(skips, exits)):
            out.append(CascadeRule(tuple(exits), tuple(skips), rule.merge))
    return out


__all__ = ["THRESHOLDS", "CascadeRule", "SkipRule", "merged_kind", "neighbours",
           "rule_from_dict", "rule_grid", "rule_outcome", "rule_routes", "shared_cascade",
           "with_merge"]
