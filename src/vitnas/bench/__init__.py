"""Ground truth and the proxy scoreboard: benchmark files, the trainer-driven builder, rank
statistics with bootstrap intervals, and the correlate report."""

from vitnas.bench.catalog import builtin_benchmarks, load_benchmark
from vitnas.bench.files import Benchmark, BenchmarkRecord, nasbench201_benchmark
from vitnas.bench.groundtruth import GroundTruthConfig, build_ground_truth, plan_architectures

__all__ = [
    "Benchmark",
    "BenchmarkRecord",
    "GroundTruthConfig",
    "builtin_benchmarks",
    "build_ground_truth",
    "load_benchmark",
    "nasbench201_benchmark",
    "plan_architectures",
]
