"""Scoreboards scored by a worker pool equal the serial ones; only the driver writes the store."""

from __future__ import annotations

import json

import numpy as np

from vitnas.bench.correlate import score_benchmark
from vitnas.bench.files import Benchmark, BenchmarkRecord
from vitnas.cli import main
from vitnas.spaces import get_space
from vitnas.store import ScoreStore

SPACE = "autoformer-tiny-micro"
PROXIES = ["params", "nwot", "ntk_trace"]


def tiny_benchmark(n: int = 6) -> Benchmark:
    space = get_space(SPACE)
    records = [BenchmarkRecord(space.sample(100 + i), {"top1": float(i)}) for i in range(n)]
    return Benchmark("tiny", space, records)


def test_two_workers_give_the_serial_scores_and_store(tmp_path):
    bench = tiny_benchmark()
    with ScoreStore(tmp_path / "serial.sqlite") as store:
        serial, _ = score_benchmark(bench, PROXIES, store, batch="gaussian", batch_size=4,
                                    threads=1)
        assert len(store) == len(PROXIES) * len(bench.records)
    path = tmp_path / "b.json"
    path.write_text(json.dumps([{"arch": bench.space.to_json(r.arch), **r.values}
                                for r in bench.records]))
    out = tmp_path / "board.json"
    code = main(["bench", "correlate", "--benchmark", str(path), "--space", SPACE,
                 "--proxies", ",".join(PROXIES[1:]), "--batch", "gaussian", "--batch-size",
                 "4", "--resamples", "40", "--db", str(tmp_path / "parallel.sqlite"),
                 "--out", str(out), "--quiet", "--workers", "2", "--threads", "1"])
    assert code == 0
    parallel = json.loads(out.read_text())["scores"]
    for proxy in PROXIES:
        assert np.isfinite(serial[proxy]).all()
        assert parallel[proxy] == serial[proxy].tolist()
    with ScoreStore(tmp_path / "parallel.sqlite") as store:
        assert len(store) >= len(PROXIES) * len(bench.records)


def test_stored_scores_are_reused_without_starting_workers(tmp_path, monkeypatch):
    bench = tiny_benchmark(3)
    with ScoreStore(tmp_path / "s.sqlite") as store:
        first, _ = score_benchmark(bench, ["nwot"], store, batch="gaussian", batch_size=4)

        def refuse(*args, **kwargs):
            raise AssertionError("a backend was opened although every score was stored")

        monkeypatch.setattr("vitnas.search.runner.open_backend", refuse)
        again, _ = score_benchmark(bench, ["nwot"], store, batch="gaussian", batch_size=4,
                                   workers=2)
    assert again["nwot"].tolist() == first["nwot"].tolist()
