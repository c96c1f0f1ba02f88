"""Session-wide test settings: a private ladder cache (tests never touch ~/.cache/bench), one torch
thread (results independent of the machine's load; `tox` runs one pytest-xdist worker per core), no progress bars."""

import os

import pytest


def _cache_dir(tmp_path_factory):
    """One private cache per test session. Under pytest-xdist (`tox`: `-n auto`) the workers share it, so a smoke rung or
    the decoder's fp32 checkpoint is built once: bench's cache writers lock and write atomically."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "bench-cache"   # the run's root, common to its workers
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="session", autouse=True)
def isolated_bench_env(tmp_path_factory):
    import torch
    saved = {k: os.environ.get(k) for k in ("BENCH_CACHE", "BENCH_THREADS", "BENCH_NO_PROGRESS")}
    os.environ["BENCH_CACHE"] = str(_cache_dir(tmp_path_factory))
    os.environ["BENCH_THREADS"] = "1"
    os.environ["BENCH_NO_PROGRESS"] = "1"
    # BENCH_THREADS reaches the training loops and job workers; everything else a test runs in its own process
    # (loading a checkpoint, evaluating, quantizing) would take torch's default, one thread per core: two xdist
    # workers, each spinning up two OpenMP threads on 2 cores, slowed some tests 5x (MiniLM's rows: 6 s -> 33 s)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
