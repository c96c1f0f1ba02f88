"""One job runner for the reproductions, and the thread policy it applies.

A group with independent fine-tuning runs describes each run as a picklable job and hands the list to a
`JobRunner`. The runner executes them in this process (workers <= 1) or in `workers` spawned processes, each
prepared once by a `setup(*args)` function whose returned dict becomes `jobs.ENV` in that process (the loaded
model, the task data...). Results come back in plan order, so the number of workers never changes results.csv.

    runner = JobRunner(setup=make_env, args=(name, s), workers=job_workers(s.workers))
    results = runner.map(do_job, jobs, progress=ctx.progress, desc="lora runs")

Thread policy (one place): every process trains with `threads_per_worker()` torch threads: $BENCH_THREADS,
else 1 (bench.envinfo.torch_threads explains why the count is fixed, never picked from the machine's load). To
use both cores, run two one-thread workers ($BENCH_WORKERS, else the profile's `workers`).

Executors (where the jobs run; `--executor` / $BENCH_EXECUTOR, `--scheduler` / $BENCH_SCHEDULER):
- `local` (default): the above, on this machine; nothing to start, nothing extra to install.
- `dask`: each job is a task on a Dask distributed cluster (bench.jobs_dask; `pip install .[dask]`), at
  $BENCH_SCHEDULER or, without one, on a LocalCluster of `workers` one-thread processes on 127.0.0.1. The plan, the
  results (plan order) and a group's job cache stay with this process (the driver): see `JobRunner(cache=...)`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import torch

from bench import BenchError
from bench.envinfo import torch_threads

ENV: dict = {}     # what `setup` returned, in the process that runs the jobs
DRIVER_CACHE = "bench.jobs.driver_cache"   # ENV key, True where the driver (not the job) reads and writes the cache
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class Executor:
    """Where a JobRunner's jobs run (module doc). scheduler: a Dask scheduler address such as tcp://HOST:8786,
    None for a LocalCluster on 127.0.0.1 (dask only)."""
    kind: str = "local"             # local | dask
    scheduler: str | None = None

    def describe(self) -> str:
        return self.kind + (f" {self.scheduler}" if self.scheduler else "")


def executor_from(kind: str | None = None, scheduler: str | None = None) -> Executor:
    """The executor named by the arguments, else by $BENCH_EXECUTOR / $BENCH_SCHEDULER, else local.

    Raises BenchError (before any work) for an unknown kind, a scheduler with the local executor, or the dask
    executor without `distributed` installed."""
    kind = (kind or os.environ.get("BENCH_EXECUTOR") or "local").strip().lower()
    scheduler = (scheduler or os.environ.get("BENCH_SCHEDULER") or "").strip() or None
    if kind not in EXECUTORS:
        raise BenchError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r} (--executor / BENCH_EXECUTOR)")
    if scheduler and kind != "dask":
        raise BenchError(f"a scheduler ({scheduler}) needs --executor dask (or BENCH_EXECUTOR=dask)")
    if kind == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise BenchError("--executor dask needs Dask distributed: pip install '.[dask]' "
                             "(requirements-test.txt pins it)") from None
    return Executor(kind, scheduler)


_ACTIVE: list[tuple[Executor, Any]] = []     # (executor, its open session) set by `use_executor`


@contextmanager
def use_executor(ex: Executor):
    """Make `ex` the executor of every JobRunner built inside the block (the CLI wraps a group's run in it).
    For a Dask scheduler address this connects at once, so an unreachable scheduler is one BenchError before
    any work; the connection is shared by the block's runners and closed at its end."""
    session = None
    if ex.kind == "dask" and ex.scheduler:
        from bench.jobs_dask import connect
        session = connect(ex.scheduler)
    _ACTIVE.append((ex, session))
    try:
        yield ex
    finally:
        _ACTIVE.pop()
        if session is not None:
            session.close()


def current_executor() -> tuple[Executor, Any]:
    """The innermost `use_executor` block's (executor, session), else the environment's (no session yet)."""
    return _ACTIVE[-1] if _ACTIVE else (executor_from(), None)


class JobCache(Protocol):
    """A group's job cache as the driver sees it (JobRunner(cache=...), used by executors whose workers may not
    share the driver's disk): `get(job)` is the stored result or None, `put(job, result)` stores a fresh one."""

    def get(self, job) -> Any | None: ...

    def put(self, job, result) -> None: ...


def job_workers(default: int = 1) -> int:
    """Processes for independent runs: $BENCH_WORKERS, else `default`; never more than the CPU count.

    Raises BenchError when the value is not a positive integer."""
    text = os.environ.get("BENCH_WORKERS", str(default))
    try:
        w = int(text)
    except ValueError:
        raise BenchError(f"BENCH_WORKERS must be a positive integer, got {text!r}") from None
    if w < 1:
        raise BenchError(f"BENCH_WORKERS must be a positive integer, got {text!r}")
    return max(1, min(w, os.cpu_count() or 1))


def threads_per_worker() -> int:
    """Torch threads in every process that trains ($BENCH_THREADS, else 1; see bench.envinfo.torch_threads)."""
    return torch_threads()


def apply_thread_policy() -> int:
    """Set this process' torch threads by the policy; returns the count."""
    n = threads_per_worker()
    torch.set_num_threads(n)
    return n


def exit_when_orphaned(parent: int, poll_s: float = 2.0, exit_fn: Callable[[int], None] = os._exit) -> threading.Thread:
    """Watch from a daemon thread that `parent` is still this process's parent; when it is gone (killed: a pool's
    workers would otherwise go on with the jobs already queued, burning the CPU a rerun needs), exit at once."""
    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        exit_fn(1)
    t = threading.Thread(target=watch, name="exit-when-orphaned", daemon=True)
    t.start()
    return t


def _worker_init(setup: Callable[..., dict], args: tuple, parent: int | None = None) -> None:
    """A spawned worker: exits with its parent, quiet, its own torch threads, then its environment."""
    if parent is not None:
        exit_when_orphaned(parent)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ["BENCH_NO_PROGRESS"] = "1"
    apply_thread_policy()
    ENV.clear()
    ENV.update(setup(*args))


class JobRunner:
    """Runs `fn(job)` for submitted jobs, in this process or in spawned workers (see the module docstring).

    setup(*args) -> dict builds the environment jobs read from `bench.jobs.ENV`; in-process it runs once, at
    construction, unless `env` is given (a caller that already holds it). `fn` and jobs must be picklable
    (module-level functions, plain data) when workers > 1. A job's exception is raised in the main process.

    executor: where the jobs run (default: `current_executor()`, i.e. --executor / $BENCH_EXECUTOR, else local).
    With `dask`, `workers` sizes the LocalCluster started when no scheduler is given (a scheduler's cluster has
    its own); `cache` (a JobCache), when given, is consulted by the driver: a job found there is never
    dispatched, and a fresh result is stored by the driver (workers see ENV[DRIVER_CACHE] = True and skip theirs).
    The local executor ignores `cache` (its jobs read and write the cache on this machine, as they always did).
    A dask job's exception is one BenchError naming the job (bench.jobs_dask).
    """

    def __init__(self, setup: Callable[..., dict] | None = None, args: tuple = (), workers: int = 1,
                 env: dict | None = None, executor: Executor | None = None, cache: JobCache | None = None):
        self.workers, self.pool, self.dask = workers, None, None
        self.jobs: list = []
        self.fns: list = []
        self.out: dict[int, Any] = {}
        self.futs: dict = {}
        ex, session = (executor, None) if executor is not None else current_executor()
        if ex.kind == "dask":
            from bench.jobs_dask import DaskJobs
            if setup is None:
                raise ValueError("JobRunner: the dask executor needs a setup function (its workers run it)")
            self.dask = DaskJobs(setup, args, workers, ex.scheduler, session, cache, env)
            self.workers = self.dask.workers
        elif workers <= 1:
            ENV.clear()
            ENV.update(env if env is not None else (setup(*args) if setup else {}))
        else:
            if setup is None:
                raise ValueError("JobRunner: workers > 1 needs a setup function")
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_init, initargs=(setup, args, os.getpid()))

    def submit(self, fn: Callable, job) -> int:
        """Queue fn(job); returns its index (plan order). In a pool it starts at once; in-process, lazily."""
        self.jobs.append(job)
        self.fns.append(fn)
        i = len(self.jobs) - 1
        if self.dask is not None:
            self.dask.submit(i, fn, job)
        elif self.pool is not None:
            self.futs[self.pool.submit(fn, job)] = i
        return i

    def as_completed(self, before: Callable | None = None) -> Iterator[tuple[int, Any]]:
        """(index, result) for every submitted job not yet yielded, as jobs finish (in-process: in order).
        `before(job)` is called just before an in-process job starts (a progress label)."""
        if self.dask is not None:
            for i, res in self.dask.as_completed(self.out):
                self.out[i] = res
                yield i, res
            return
        if self.pool is None:
            for i, job in enumerate(self.jobs):
                if i not in self.out:
                    if before:
                        before(job)
                    self.out[i] = self.fns[i](job)
                    yield i, self.out[i]
            return
        pending = {f: i for f, i in self.futs.items() if i not in self.out}
        for f in as_completed(pending):
            i = pending[f]
            self.out[i] = f.result()
            yield i, self.out[i]

    def result(self, i: int):
        return self.out[i]

    def map(self, fn: Callable, jobs, progress=None, desc: str = "") -> list:
        """Run fn over jobs; results in plan order. `progress` is a tqdm-like factory (RunContext.progress)."""
        idx = [self.submit(fn, j) for j in jobs]
        bar = progress(total=len(idx), desc=desc) if progress else None
        try:
            for _ in self.as_completed():
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return [self.out[i] for i in idx]

    def close(self) -> None:
        if self.dask is not None:
            self.dask.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RowBuffer:
    """Stands in for the Recorder inside a job: keeps the `add` calls for `replay` in the main process."""

    def __init__(self):
        self.calls: list = []

    def add(self, *args, **kwargs) -> None:
        self.calls.append((args, kwargs))

    def values(self, metric: str) -> list:
        """The values of the kept `add(claim, metric, value, ...)` calls for `metric`, in order."""
        return [args[2] for args, _ in self.calls if len(args) > 2 and args[1] == metric]

    def replay(self, rec) -> None:
        for args, kwargs in self.calls:
            rec.add(*args, **kwargs)
