"""Where a result file's numbers came from: the command, the code and the machine.

A measured number is only as good as the record of what made it: timings in particular depend
on the CPU (bf16 on an AVX2-only CPU is emulated and 16x slower than on one with AMX), so a
benchmark's JSON names the processor model, not just the architecture string Python offers.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from typing import Any


def git_commit(where: str | None = None) -> str:
    """HEAD, with ``-dirty`` when the working tree differs from it (the code that ran is then
    HEAD plus uncommitted changes); ``unknown`` outside a git checkout. ``where``: the
    checkout to ask (default: the one this code lives in, wherever the command ran from)."""
    here = where or os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True,
                               cwd=here).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _cpuinfo(field: str) -> str | None:
    """The first ``field : value`` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def processor() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what ``platform`` says)."""
    return (_cpuinfo("model name") or platform.processor() or platform.machine()
            or "unknown")


# the instruction sets a CPU timing turns on: a model name such as "AMD EPYC" covers parts with
# AVX2 only (bf16 emulated, 16x slower than float32) and parts with AVX-512 BF16 (1.7x faster)
TIMING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """Which of ``TIMING_FLAGS`` the CPU has (Linux: /proc/cpuinfo; elsewhere none known)."""
    present = set((_cpuinfo("flags") or "").split())
    return [flag for flag in TIMING_FLAGS if flag in present]


def hardware() -> dict[str, Any]:
    """The machine a timing ran on: processor model and the instruction sets that change
    timings, cores this process may use, torch."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    record: dict[str, Any] = {"processor": processor(), "cpu_flags": cpu_flags(),
                              "cores": cores, "torch": torch.__version__}
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name()
    return record


def provenance(command: str) -> dict[str, Any]:
    """The fields every timing result file starts with."""
    return {"command": command, "commit": git_commit(), "hardware": hardware(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
