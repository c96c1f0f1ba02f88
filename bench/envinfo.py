"""What every result row records about where it ran: package versions, git commit, hardware."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench import BenchError
from bench.paths import PATHS

PACKAGES = ("torch", "transformers", "tokenizers", "bitsandbytes", "datasets", "evaluate", "pandas", "peft")


@functools.lru_cache(maxsize=1)
def package_versions() -> str:
    """'torch=2.13.0+cpu;transformers=5.24.0;...' (peft only when installed: it is test-only)."""
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ";".join(out)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit of the checkout, with '+dirty' when the tree has uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=PATHS.source_root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PATHS.source_root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=4)
def hardware(threads: int | None = None) -> str:
    """'cpu:AMD EPYC ... x2 threads=1' or 'cuda:NVIDIA H200'; threads: the torch threads the run used (default:
    the suite's torch_threads() setting; a benchmark that times with another count passes its own)."""
    import torch   # here, not at import: bench.schema imports this module, and torch is slow to import

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{_cpu_name()} x{os.cpu_count()} threads={threads or torch_threads()}"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_average() -> float:
    """1-minute load average: recorded next to timings, since foreign load slows torch threads a lot."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def torch_threads() -> int:
    """Torch threads for every training and evaluation loop: $BENCH_THREADS, else 1.

    Fixed, never chosen from the machine's load: float reductions differ between thread counts, so a
    load-dependent choice would make the same command give different weights and CSVs. One thread per
    process also avoids OpenMP's spinning next to other jobs (2 threads ran 2-10x slower than 1 beside
    another busy process here); harnesses that want both cores run two one-thread workers.
    """
    value = os.environ.get("BENCH_THREADS", "1")
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise BenchError(f"BENCH_THREADS must be a positive integer, got {value!r}")
    return n
