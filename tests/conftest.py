"""Session-wide test settings: a private ladder cache (tests never touch ~/.cache/bench), one torch
thread (results independent of the machine's load), no progress bars."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_bench_env(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("BENCH_CACHE", "BENCH_THREADS", "BENCH_NO_PROGRESS")}
    os.environ["BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    os.environ["BENCH_THREADS"] = "1"
    os.environ["BENCH_NO_PROGRESS"] = "1"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
