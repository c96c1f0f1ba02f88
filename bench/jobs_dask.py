"""The `dask` executor of bench.jobs.JobRunner: a plan's jobs as tasks on a Dask distributed cluster.

Only the running moves: the plan, the job cache and the result rows stay with the driver (the process that
runs the group). A job found in the group's cache (JobRunner(cache=...)) is never dispatched; a fresh result
comes back to the driver, which stores it and hands it on, so a group replays rows in plan order exactly as
with the local executor. Dask: https://distributed.dask.org (Client, LocalCluster, futures).

Each worker process prepares itself once per runner, lazily, on its first job: the driver's setup(*args)
becomes `bench.jobs.ENV` there, with the driver's torch thread count ($BENCH_THREADS), no progress bars and quiet
transformers logging, as the local pool's initializer does; a worker started elsewhere (`dask worker`) cannot
be given a ProcessPoolExecutor initializer, so the first job of each runner carries it. A worker whose sources
(bench/ and reproductions/) differ from the driver's refuses the job. One job runs per worker process at a time
(a lock: jobs share their process's ENV); start workers with `--nthreads 1`, one per core or per GPU. Jobs
declare no resources: one job takes one worker thread, and the job itself uses $BENCH_THREADS torch threads.

Faults:
- a worker that dies mid-job: the scheduler runs the job again on another worker, until it has seen
  `distributed.scheduler.allowed-failures` deaths (default 3; the scheduler's setting), then KilledWorker;
- a job that raises: run again JOB_RETRIES times (`retries=` of Client.submit), then one BenchError line
  naming the job and its fields, not the worker's traceback;
- a scheduler that cannot be reached: one BenchError line after CONNECT_TIMEOUT_S, before any job;
- the driver killed: the scheduler forgets its tasks; a rerun takes every finished job from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench import BenchError
from bench.jobs import DRIVER_CACHE, ENV, JobCache, threads_per_worker
from bench.paths import PATHS

CONNECT_TIMEOUT_S = 10     # a scheduler that does not answer within this is an error, not a wait
JOB_RETRIES = 1            # a job that raises runs at most 1 + JOB_RETRIES times
_SOURCES = ("bench", "reproductions")


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 (16 hex) of the suite's Python sources (bench/, reproductions/): driver and workers must agree."""
    root = PATHS.source_root
    h = hashlib.sha256()
    for top in _SOURCES:
        for f in sorted((root / top).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def connect(address: str):
    """A Client of the scheduler at `address` (tcp://HOST:PORT, or a scheduler file written by `dask scheduler
    --scheduler-file`). BenchError when it cannot be reached within CONNECT_TIMEOUT_S."""
    from distributed import Client
    kw = {"scheduler_file": address} if Path(address).is_file() else {"address": address}
    try:
        return Client(**kw, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise BenchError(f"cannot reach the Dask scheduler at {address!r} ({why}); start one (`dask scheduler`) "
                         f"or leave out --scheduler / BENCH_SCHEDULER for a local cluster") from None


def local_cluster(workers: int):
    """A LocalCluster of `workers` one-thread worker processes, every socket on 127.0.0.1, no dashboard, no memory
    limit (the local pool has none either) and its logs silenced (the driver reports a failed job in one line)."""
    from distributed import LocalCluster
    return LocalCluster(host="127.0.0.1", n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, memory_limit=0, silence_logs=logging.CRITICAL)


# ------------------------------------------------------------------------------------------------ worker side

_LOCK = threading.Lock()
_PREPARED: dict[str, str | None] = {"token": None}


def _prepare(payload: bytes) -> None:
    setup, args, threads, source, driver_cache = pickle.loads(payload)
    mine = source_hash()
    if mine != source:
        raise BenchError(f"worker on {os.uname().nodename} runs other sources than the driver (sha {mine} vs "
                         f"{source}); start the workers from the driver's commit")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ["BENCH_NO_PROGRESS"] = "1"
    os.environ["BENCH_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    ENV.clear()
    ENV.update(setup(*args))
    if driver_cache:
        ENV[DRIVER_CACHE] = True


def run_job(token: str, payload: bytes, blob: bytes):
    """A Dask task: prepare this process for runner `token` (once; see the module doc), then fn(job) from `blob`
    (pickled by the driver, so the job arrives as the local pool would see it)."""
    with _LOCK:
        if _PREPARED["token"] != token:
            _PREPARED["token"] = None
            _prepare(payload)
            _PREPARED["token"] = token
        fn, job = pickle.loads(blob)
        return fn(job)


# ------------------------------------------------------------------------------------------------ driver side

class DaskJobs:
    """The driver's half: submits jobs (skipping cached ones), yields results as they finish, stores fresh ones
    in the cache. `session`: an open Client shared by a `bench.jobs.use_executor` block, else one is opened (and
    closed) here: to `scheduler`, or to a LocalCluster of `workers` processes started here."""

    def __init__(self, setup: Callable[..., dict], args: tuple, workers: int, scheduler: str | None, session,
                 cache: JobCache | None, env: dict | None):
        self.cache, self.cluster = cache, None
        if cache is not None:      # the driver computes cache keys from its own ENV
            ENV.clear()
            ENV.update(env if env is not None else setup(*args))
        self.payload = pickle.dumps((setup, args, threads_per_worker(), source_hash(), cache is not None))
        self.token = hashlib.sha256(self.payload).hexdigest()[:16]
        self.prefix = f"bench-job-{uuid.uuid4().hex[:8]}"
        self.own = session is None
        if session is not None:
            self.client = session
        elif scheduler:
            self.client = connect(scheduler)
        else:
            self.cluster = local_cluster(max(1, workers))
            from distributed import Client
            self.client = Client(self.cluster, set_as_default=False)
        self.workers = max(1, workers) if self.cluster else max(1, len(self.client.nthreads()))
        self.jobs: dict[int, Any] = {}
        self.futures: dict[int, Any] = {}
        self.cached: dict[int, Any] = {}

    def submit(self, i: int, fn: Callable, job) -> None:
        self.jobs[i] = job
        if self.cache is not None:
            hit = self.cache.get(job)
            if hit is not None:
                self.cached[i] = hit
                return
        self.futures[i] = self.client.submit(run_job, self.token, self.payload, pickle.dumps((fn, job)),
                                             key=f"{self.prefix}-{i}", pure=False, retries=JOB_RETRIES)

    def as_completed(self, done: dict) -> Iterator[tuple[int, Any]]:
        """(index, result) of every job not in `done`: the cached ones first (plan order), then as they finish."""
        from distributed import as_completed
        for i in sorted(self.cached):
            if i not in done:
                yield i, self.cached.pop(i)
        pending = {f: i for i, f in self.futures.items() if i not in done}
        if not pending:
            return
        for f in as_completed(list(pending), loop=self.client.loop):
            i = pending[f]
            if f.status != "finished":
                raise self.failure(i, f)
            res = f.result()
            self.futures.pop(i).release()
            if self.cache is not None:
                self.cache.put(self.jobs[i], res)
            yield i, res

    def failure(self, i: int, f) -> BenchError:
        """One line for a job that did not finish: lost with its workers, or raised (after JOB_RETRIES reruns)."""
        from distributed.scheduler import KilledWorker
        try:
            exc = f.exception()
        except Exception as e:  # noqa: BLE001 - a cancelled future raises instead of returning its exception
            exc = e
        job = self.jobs[i]
        if isinstance(exc, KilledWorker):
            return BenchError(f"job {i} of the plan was lost: {exc.allowed_failures + 1} workers died running it "
                              f"(distributed.scheduler.allowed-failures = {exc.allowed_failures}); job: {job!r}")
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        tries = "" if isinstance(exc, BenchError) else f" after {1 + JOB_RETRIES} tries"
        return BenchError(f"job {i} of the plan failed on a Dask worker{tries} ({why}); job: {job!r}")

    def close(self) -> None:
        try:
            if self.futures:
                self.client.cancel(list(self.futures.values()))
            self.futures.clear()
        finally:
            if self.own:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
