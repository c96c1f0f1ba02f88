"""Per-job overhead of the executors (issue 34): N tiny jobs through bench.jobs.JobRunner, local pool vs dask.

    BENCH_THREADS=1 python tools/dask_overhead.py [--jobs 200] [--workers 2] [--scheduler tcp://127.0.0.1:PORT]

Prints, per executor, the start-up time (runner construction + first job: workers start and import torch) and
the time per job after it (wall of the remaining jobs / their count). The jobs do nothing (abs(x): a builtin, so it
pickles by name into any worker), so the second number is the executor's own cost per job. Measure on an otherwise idle machine; numbers from a loaded one are noise.
"""

from __future__ import annotations

import argparse
import time

from bench.jobs import Executor, JobRunner


def measure(ex: Executor, n: int, workers: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    with JobRunner(setup=dict, workers=workers, executor=ex) as r:
        r.map(abs, [0] * workers)          # every worker started and prepared
        t1 = time.perf_counter()
        assert r.map(abs, list(range(n))) == list(range(n))
        t2 = time.perf_counter()
    return t1 - t0, (t2 - t1) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scheduler", default=None, help="also measure a running scheduler's cluster")
    a = ap.parse_args()
    runs = [Executor("local"), Executor("dask")] + ([Executor("dask", a.scheduler)] if a.scheduler else [])
    for ex in runs:
        start, per = measure(ex, a.jobs, a.workers)
        print(f"{ex.describe():40} start {start:6.2f} s   per job {per * 1e3:7.2f} ms   ({a.jobs} jobs, {a.workers} workers)")


if __name__ == "__main__":
    main()
