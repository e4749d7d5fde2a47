"""Score candidates in parallel: in this process, in a local process pool, or on Ray.

Workers only compute: each gets the space, the one proxy batch and the scoring seed once, takes
(architecture, proxies still missing) tasks and returns proxy results; the driver is the only
process that writes the store. A score depends only on (architecture, proxy, seed, batch), so it
is the same whichever worker computes it, in whatever order (with the same threads per worker:
float reductions may split differently across thread counts).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import torch

from vitnas.errors import ConfigError
from vitnas.grammar import plain_digits
from vitnas.proxies.base import Proxy, ProxyResult
from vitnas.proxies.scoring import score_model
from vitnas.registry import Registry
from vitnas.spaces.base import SearchSpace

BACKENDS: Registry = Registry("backend")


@dataclass(frozen=True)
class ScoringContext:
    """What every worker receives once."""

    space: SearchSpace
    inputs: torch.Tensor
    labels: torch.Tensor
    seed: int
    threads: int = 1
    device: str = "cpu"


@dataclass(frozen=True)
class Task:
    index: int
    arch: Any
    proxies: tuple[Proxy, ...]


@dataclass(frozen=True)
class Outcome:
    index: int
    results: tuple[ProxyResult, ...]
    build_seconds: float
    proxy_seconds: float


def compute(context: ScoringContext, task: Task) -> Outcome:
    """Build the architecture with the scoring seed and run the missing proxies on the batch."""
    start = time.perf_counter()
    space = context.space
    model = space.build(task.arch, seed=context.seed).to(context.device)
    built = time.perf_counter()
    results = score_model(model, task.proxies, context.inputs.to(context.device),
                          context.labels.to(context.device), space.num_classes, context.seed,
                          space, task.arch)
    return Outcome(task.index, tuple(results), built - start, time.perf_counter() - built)


class Backend(ABC):
    """Runs tasks and yields their outcomes as they finish; a context manager."""

    def __init__(self, context: ScoringContext, workers: int) -> None:
        if workers < 1 or context.threads < 1:
            raise ConfigError(f"workers and threads per worker must be at least 1, got "
                              f"{workers} and {context.threads}")
        self.context = context
        self.workers = workers

    @abstractmethod
    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        """Outcomes in completion order."""

    @abstractmethod
    def close(self) -> None:
        """Release workers."""

    def abort(self) -> None:
        """Release workers now, dropping work in flight: an interrupt or an error left the run
        (what finished is already in the store). By default the same as ``close``."""
        self.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class InProcess(Backend):
    """One worker: this process, with its torch threads set for the duration of each run."""

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.context.threads)
        try:
            for task in tasks:
                yield compute(self.context, task)
        finally:
            torch.set_num_threads(previous)

    def close(self) -> None:
        """Nothing to release: the work ran in this process."""


_worker_context: ScoringContext | None = None


def _exit_with_parent(parent: int) -> None:
    """A driver killed with SIGKILL cannot stop its pool: each worker leaves on its own."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _init_worker(context: ScoringContext) -> None:
    global _worker_context
    _worker_context = context
    # Ctrl-C reaches the whole process group: the driver handles it and stops the workers
    # (ProcessPool.abort); a worker interrupted inside the pool's queue would leave the
    # driver waiting on it forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(context.threads)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _worker_pid() -> int:
    time.sleep(0.01)
    return os.getpid()


def _compute_in_worker(task: Task) -> Outcome:
    assert _worker_context is not None, "worker used before its initializer ran"
    return compute(_worker_context, task)


class ProcessPool(Backend):
    """A local pool of spawned processes (not forked: a forked OpenMP runtime can deadlock),
    each with ``threads`` torch threads."""

    def __init__(self, context: ScoringContext, workers: int) -> None:
        super().__init__(context, workers)
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                        initializer=_init_worker, initargs=(context,))
        self._start_all()

    def _start_all(self) -> None:
        """Wait until every worker has imported torch and taken its context, so start-up is
        paid here (the driver's setup) rather than inside the first scoring batch."""
        ready: set[int] = set()
        while len(ready) < self.workers:
            ready |= {f.result() for f in [self.pool.submit(_worker_pid)
                                           for _ in range(self.workers)]}
        self.pids = sorted(ready)

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        futures = {self.pool.submit(_compute_in_worker, task) for task in tasks}
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop the workers (SIGTERM) instead of waiting for their candidates: an interrupted
        run leaves at once, and a second Ctrl-C finds nothing left to wait on."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # already gone
                pass


def _compute_on_ray(context: ScoringContext, task: Task) -> Outcome:
    torch.set_num_threads(context.threads)
    return compute(context, task)


# an HTTP/2 client preface and an empty SETTINGS frame: any gRPC server, Ray's GCS included,
# answers with a SETTINGS frame of its own (frame type 4)
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, within about ``timeout`` seconds each, a ``host:port`` Ray address where nothing
    listens or where something listens but does not speak gRPC as Ray's GCS does: Ray itself
    retries for minutes on both. ``auto`` and ``ray://`` client addresses are left to Ray,
    which fails at once on those; so is a TLS cluster (``RAY_USE_TLS``), whose handshake this
    plain-text probe cannot make."""
    import socket

    if address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not plain_digits(port) or not 0 < int(port) < 65536:
        raise ConfigError(f"Ray address {address!r} is not host:port, 'auto' or "
                          f"ray://host:port")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise ConfigError(f"nothing answers at Ray address {address} within {timeout:g} s "
                          f"({exc.strerror or exc}); start the cluster (`ray start --head`) or "
                          f"fix --address") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        sock.close()
        return
    try:
        with sock:
            sock.settimeout(timeout)
            sock.sendall(_HTTP2_HELLO)
            head = b""
            deadline = time.monotonic() + timeout
            while len(head) < 9 and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError:  # a timeout, or the peer reset the connection
        head = b""
    if len(head) < 9 or head[3] != 4:
        said = "said nothing" if not head else "did not answer as gRPC"
        raise ConfigError(f"{address} accepts connections but {said} within {timeout:g} s, "
                          f"so it is not a Ray cluster; --address is the head's GCS port "
                          f"(6379 by default, printed by `ray start --head`)")


class RayBackend(Backend):
    """Ray tasks with ``threads`` CPUs (and ``gpus`` GPUs) each, at most ``workers`` in flight.
    Joins a running Ray instance, or ``ray.init(address)`` (None: a local one, shut down on
    close). What the cluster cannot run (more GPUs or CPUs per task than it has) is refused
    up front, and no wait on the cluster is longer than ``wait_seconds`` without a result."""

    wait_seconds = 1800.0

    def __init__(self, context: ScoringContext, workers: int, address: str | None = None,
                 gpus: float = 0) -> None:
        super().__init__(context, workers)
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray backend needs Ray: pip install 'vitnas[ray]'") from None
        if not (gpus >= 0 and math.isfinite(gpus)):
            raise ConfigError(f"GPUs per worker must be a finite number >= 0, not {gpus}")
        self.ray = ray
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            if address:
                check_ray_address(address)
            options = {"address": address} if address else {"include_dashboard": False}
            try:
                ray.init(logging_level="error", **options)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError, OSError) as exc:
                where = f"at {address}" if address else "locally"
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"cannot start or join Ray {where}: {reason}") from None
        self._check_resources(context.threads, gpus)
        self.context_ref = ray.put(context)
        self.remote = ray.remote(_compute_on_ray).options(num_cpus=context.threads,
                                                          num_gpus=gpus)

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        queue = iter(tasks)
        in_flight = []
        try:
            while True:
                for task in queue:
                    in_flight.append(self.remote.remote(self.context_ref, task))
                    if len(in_flight) >= self.workers:
                        break
                if not in_flight:
                    return
                done, in_flight = self.ray.wait(in_flight, num_returns=1,
                                                timeout=self.wait_seconds)
                if not done:
                    raise ConfigError(f"no candidate finished on the Ray cluster in "
                                      f"{self.wait_seconds:g} s (is it alive, and has it the "
                                      f"CPUs and GPUs a worker asks for?); the scores "
                                      f"finished so far are kept in the store")
                yield self.ray.get(done[0])
        finally:
            for ref in in_flight:
                self.ray.cancel(ref)

    def _check_resources(self, threads: int, gpus: float) -> None:
        """A task asking for more than the whole cluster has would wait forever."""
        have = self.ray.cluster_resources()
        cpus, gpu_count = have.get("CPU", 0), have.get("GPU", 0)
        problem = None
        if gpus > gpu_count:
            problem = (f"--gpus-per-worker {gpus:g} asks for more GPUs than the Ray cluster "
                       f"has ({gpu_count:g})")
        elif threads > cpus:
            problem = (f"--threads {threads} asks for more CPUs per worker than the Ray "
                       f"cluster has ({cpus:g})")
        if problem:
            self.close()
            raise ConfigError(f"{problem}: no worker could ever start")

    def close(self) -> None:
        if self.owns_ray:
            self.ray.shutdown()


def check_backend_options(backend: str, address: str | None, gpus: float) -> None:
    """An address and GPUs per worker mean Ray; refused for the local backend (before any
    data is built for a run that cannot start)."""
    if backend == "local" and (address or gpus):
        raise ConfigError("an address and GPUs per worker apply to the ray backend only")


def local_backend(context: ScoringContext, workers: int, address: str | None = None,
                  gpus: float = 0) -> Backend:
    check_backend_options("local", address, gpus)
    return InProcess(context, workers) if workers == 1 else ProcessPool(context, workers)


BACKENDS.register("local", local_backend)
BACKENDS.register("ray", RayBackend)


def open_backend(name: str, context: ScoringContext, workers: int, address: str | None = None,
                 gpus: float = 0) -> Backend:
    """``local``: this process for one worker, else a process pool. ``ray``: Ray tasks."""
    return BACKENDS.get(name)(context, workers, address=address, gpus=gpus)
