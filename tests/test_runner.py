"""The local worker pool under Ctrl-C: the driver decides, and an interrupted run leaves at once
(a second Ctrl-C used to leave the driver waiting forever on a worker broken mid-queue)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from vitnas.search.runner import ProcessPool, ScoringContext
from vitnas.spaces import get_space

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads process states from /proc (Linux)")


def ignores_ctrl_c(pid: int) -> bool:
    """SIGINT's bit in the process's mask of ignored signals."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigIgn:"))
               .split()[1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def tiny_pool() -> ProcessPool:
    space = get_space("autoformer-tiny-micro")
    context = ScoringContext(space, torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long),
                             seed=0)
    return ProcessPool(context, 2)


def test_workers_ignore_ctrl_c_and_an_aborted_pool_does_not_wait_for_work_in_flight():
    pool = tiny_pool()
    try:
        assert all(ignores_ctrl_c(pid) for pid in pool.pids)
        for pid in pool.pids:
            os.kill(pid, signal.SIGINT)  # what Ctrl-C sends the whole process group
        slow = [pool.pool.submit(time.sleep, 60) for _ in range(2)]
        time.sleep(0.5)
        assert all(running(pid) for pid in pool.pids) and not any(f.done() for f in slow)
    finally:
        start = time.monotonic()
        pool.abort()
    assert time.monotonic() - start < 5
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pool.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in pool.pids)


def test_leaving_the_pool_by_an_exception_aborts_it():
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with tiny_pool() as pool:
            pool.pool.submit(time.sleep, 60)
            raise KeyboardInterrupt
    assert time.monotonic() - start < 30  # start-up included; a wait would take 60 s
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pool.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in pool.pids)
