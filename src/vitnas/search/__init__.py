"""Training-free architecture search: evolution (AutoFormer's loop) or random search over a
space, scored by proxies through the score store, within params / FLOPs / latency windows.

    from vitnas.search import Constraints, SearchConfig, parse_window, run_search
    config = SearchConfig(proxies=("lswag",), budget=200,
                          constraints=Constraints(params=parse_window("0.4M:0.5M", "params")))
    result = run_search("autoformer-tiny-micro", config, store="scores.sqlite", workers=2)
    result.best_arch, result.best.scores
"""

from vitnas.search import evolution, random_search  # noqa: F401  (registration)
from vitnas.search.base import SEARCHERS, EvolutionConfig, SearchConfig
from vitnas.search.candidates import Candidate
from vitnas.search.constraints import Constraints, Window, measure_latency_ms, parse_window
from vitnas.search.driver import SearchResult, parse_shard, run_search
from vitnas.search.history import Evaluation
from vitnas.search.report import write_report
from vitnas.search.retrain import train_architecture

__all__ = [
    "SEARCHERS",
    "Candidate",
    "Constraints",
    "Evaluation",
    "EvolutionConfig",
    "SearchConfig",
    "SearchResult",
    "Window",
    "measure_latency_ms",
    "parse_shard",
    "parse_window",
    "run_search",
    "train_architecture",
    "write_report",
]
