"""The dask executor of bench.jobs (bench.jobs_dask) against a scheduler and two workers started the way a cluster
runs them: separate `dask scheduler` / `dask worker` processes, every socket on 127.0.0.1 (tests send no traffic
anywhere else). Plans through them give the local executor's results in plan order; a worker killed mid-job, an
unreachable scheduler and a job that raises are each checked. Skipped when `distributed` is not installed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from bench import BenchError, jobs  # noqa: E402
from bench.jobs import Executor, JobRunner  # noqa: E402
from bench.jobs_dask import JOB_RETRIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


# ------------------------------------------------------------------------------------------------ jobs (picklable)

def _setup(base):
    return {"base": base}


def _square_plus_base(x):
    import torch
    return x * x + jobs.ENV["base"], torch.get_num_threads(), os.environ.get("BENCH_NO_PROGRESS")


def _boom(x):
    raise ValueError(f"job {x} failed")


def _slow_square(job):
    """(x, folder): leaves a file named by x and this process, then takes a second: time to be killed."""
    x, folder = job
    Path(folder, f"started-{x}-{os.getpid()}").touch()
    time.sleep(1.0)
    return x * x + jobs.ENV["base"]


# ------------------------------------------------------------------------------------------------ the cluster

def _spawn(args, log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)      # its own session: the nanny and its worker process
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two one-thread workers (nanny + worker process each), on 127.0.0.1 only; yields the
    scheduler's address (from its scheduler file) and shuts everything down afterwards."""
    tmp = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sched_file = tmp / "scheduler.json"
    procs = [_spawn(["distributed.cli.dask_scheduler", "--host", LOOPBACK, "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], tmp / "scheduler.log", env)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith(f"tcp://{LOOPBACK}:"), address
        for k in range(2):
            procs.append(_spawn(["distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--host", LOOPBACK,
                                 "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--memory-limit", "0",
                                 "--name", f"w{k}"], tmp / f"worker{k}.log", env))
        from distributed import Client
        with Client(address, timeout="20s", set_as_default=False) as c:
            c.wait_for_workers(2, timeout=60)
            assert all(a.startswith(f"tcp://{LOOPBACK}:") for a in c.nthreads())
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)


def _local_results(fn, xs):
    with JobRunner(setup=_setup, args=(10,), workers=2) as r:
        return r.map(fn, xs)


# ------------------------------------------------------------------------------------------------ tests

def test_executor_choice_is_checked_before_any_work(monkeypatch):
    monkeypatch.delenv("BENCH_EXECUTOR", raising=False)
    monkeypatch.delenv("BENCH_SCHEDULER", raising=False)
    assert jobs.executor_from() == Executor("local")
    assert jobs.executor_from("dask", "tcp://127.0.0.1:1") == Executor("dask", "tcp://127.0.0.1:1")
    monkeypatch.setenv("BENCH_EXECUTOR", "DASK")
    assert jobs.executor_from().kind == "dask"
    with pytest.raises(BenchError, match="executor must be one of local, dask"):
        jobs.executor_from("ray")
    with pytest.raises(BenchError, match="needs --executor dask"):
        jobs.executor_from("local", "tcp://127.0.0.1:1")


def test_a_worker_with_other_sources_refuses_the_job(monkeypatch):
    """run_job in this process (as a worker would): sources checked, then prepared once with the driver's ENV."""
    import pickle
    from bench import jobs_dask
    monkeypatch.setenv("BENCH_THREADS", "1")           # _prepare sets these two; restored afterwards
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setattr(jobs_dask, "_PREPARED", {"token": None})
    payload = pickle.dumps((_setup, (1,), 1, "0" * 16, False))
    with pytest.raises(BenchError, match="runs other sources than the driver"):
        jobs_dask.run_job("other-token", payload, pickle.dumps((_square_plus_base, 2)))
    good = pickle.dumps((_setup, (1,), 1, jobs_dask.source_hash(), True))
    assert jobs_dask.run_job("token", good, pickle.dumps((_square_plus_base, 2)))[0] == 5
    assert jobs.ENV[jobs.DRIVER_CACHE] is True          # the driver keeps the cache: the job must not
    jobs.ENV.clear()


def test_unreachable_scheduler_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    from bench import cli, jobs_dask
    monkeypatch.setattr(jobs_dask, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as s:                 # a loopback port nobody listens on
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    rc = cli.main(["repro", "scale", "--profile", "smoke", "--executor", "dask", "--scheduler",
                   f"tcp://{LOOPBACK}:{port}", "--out", str(out), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("bench: error: cannot reach the Dask scheduler"), err
    assert not out.exists()


@pytest.mark.integration
def test_plan_on_separate_workers_matches_local_in_plan_order(cluster):
    xs = list(range(8))
    with JobRunner(setup=_setup, args=(10,), workers=2, executor=Executor("dask", cluster)) as r:
        got = r.map(_square_plus_base, xs)
    assert got == _local_results(_square_plus_base, xs)
    assert got == [(x * x + 10, 1, "1") for x in xs]      # the driver's thread count, quiet workers


@pytest.mark.integration
def test_a_job_that_raises_is_one_line_naming_it(cluster):
    with pytest.raises(BenchError) as e:
        with JobRunner(setup=_setup, args=(10,), workers=2, executor=Executor("dask", cluster)) as r:
            r.map(_boom, [7])
    msg = str(e.value)
    assert "\n" not in msg and "ValueError: job 7 failed" in msg and msg.endswith("job: 7")
    assert f"after {1 + JOB_RETRIES} tries" in msg


@pytest.mark.integration
def test_scale_plan_matches_local_and_cached_jobs_are_never_dispatched(cluster, micro_folders, tmp_path,
                                                                       monkeypatch):
    """The reduced scale plan of tests/reproductions/test_scale.py: the same rows locally and on the workers; a
    rerun takes every training job from the driver's cache (workers never read it: ENV[DRIVER_CACHE])."""
    import pandas as pd
    from reproductions import scale as S
    from tests.reproductions.test_scale import _ctx
    kw = dict(methods=["full", "prompt"], tasks=["nextmonth"], low_data_sizes=[], ablation_rungs=[],
              job_cache=True, caps=[["nextmonth", "prompt", "lower", 5]])
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "local" / "cache"))
    local = S.run(_ctx(micro_folders, tmp_path / "a", **kw))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "dask" / "cache"))
    with jobs.use_executor(Executor("dask", cluster)):
        first = S.run(_ctx(micro_folders, tmp_path / "b", **kw))
        again = S.run(_ctx(micro_folders, tmp_path / "c", **kw))
    pd.testing.assert_frame_equal(local.frame(), first.frame())
    pd.testing.assert_frame_equal(first.frame(), again.frame())
    stored = list((tmp_path / "dask" / "cache" / "scale" / "jobs").glob("*.pt"))       # the driver's cache
    assert first.notes["jobs_from_cache"] == 0 and again.notes["jobs_from_cache"] == len(stored) > 0
    assert len(stored) >= len(first.frame().query("metric == 'steps_used'"))     # every training job


@pytest.mark.integration
def test_a_worker_killed_mid_job_is_retried_with_the_same_results(cluster, tmp_path):
    """SIGKILL the worker process running the first job: the scheduler runs it again (its nanny starts a fresh
    worker; allowed-failures), and the plan completes with the local executor's results."""
    xs = [(x, str(tmp_path)) for x in range(4)]
    killed: list[int] = []

    def kill_first():
        deadline = time.time() + 60
        while time.time() < deadline:
            started = sorted(tmp_path.glob("started-0-*"))
            if started:
                pid = int(started[0].name.rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    t = threading.Thread(target=kill_first, daemon=True)
    t.start()
    with JobRunner(setup=_setup, args=(10,), workers=2, executor=Executor("dask", cluster)) as r:
        got = r.map(_slow_square, xs)
    t.join(5)
    assert killed, "no worker was killed"
    runs_of_0 = {int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("started-0-*")}
    assert len(runs_of_0) == 2 and killed[0] in runs_of_0          # killed once, then run again elsewhere
    (tmp_path / "local").mkdir()
    assert got == [x * x + 10 for x, _ in xs] == _local_results(_slow_square, [(x, str(tmp_path / "local"))
                                                                               for x, _ in xs])


@pytest.fixture(scope="module")
def micro_folders(tmp_path_factory):
    from tests.reproductions.test_scale import tiny_gpt2
    from bench.data.tokenizer import train_tokenizer
    from bench.data.world import build_world
    tok = train_tokenizer(build_world("smoke").tokenizer_texts(), vocab_size=512)
    out = []
    for d in (16, 24):
        f = tmp_path_factory.mktemp(f"micro{d}")
        tiny_gpt2(d=d, layers=1, vocab=len(tok), seed=d).save_pretrained(f)
        tok.save_pretrained(f)
        out.append(str(f))
    return out


_DRIVER = """
import sys
from bench import jobs
from bench.jobs import Executor
from reproductions import scale as S
from tests.reproductions.test_scale import _ctx
folders, out, scheduler = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
with jobs.use_executor(Executor("dask", scheduler)):
    S.run(_ctx(folders, out, **{KW}))
print("driver finished")
"""


@pytest.mark.integration
def test_a_killed_driver_is_resumed_from_the_cache_by_a_rerun(cluster, micro_folders, tmp_path, monkeypatch):
    """SIGKILL the driver once the first results are in its cache: a rerun dispatches none of those again (they
    come from the cache) and gives the rows of an uninterrupted local run."""
    import pandas as pd
    from reproductions import scale as S
    from tests.reproductions.test_scale import _ctx
    kw = dict(methods=["full", "prompt"], tasks=["nextmonth"], low_data_sizes=[], ablation_rungs=[],
              job_cache=True, caps=[["nextmonth", "prompt", "lower", 5]])
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "local" / "cache"))
    local = S.run(_ctx(micro_folders, tmp_path / "a", **kw))

    cache = tmp_path / "dask" / "cache"
    stored = cache / "scale" / "jobs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CACHE": str(cache), "BENCH_NO_PROGRESS": "1"}
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER.replace("{KW}", repr(kw)), ",".join(micro_folders),
                               str(tmp_path / "b"), cluster], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None and not any(stored.glob("*.pt")):
        time.sleep(0.01)
    killed = driver.poll() is None
    if killed:
        os.killpg(driver.pid, signal.SIGKILL)
    log = driver.communicate(timeout=30)[0]
    assert killed, f"the driver finished before it could be killed:\n{log}"
    at_kill = len(list(stored.glob("*.pt")))
    assert at_kill >= 1 and "driver finished" not in log

    monkeypatch.setenv("BENCH_CACHE", str(cache))
    with jobs.use_executor(Executor("dask", cluster)):
        again = S.run(_ctx(micro_folders, tmp_path / "c", **kw))
    assert again.notes["jobs_from_cache"] >= at_kill           # nothing the killed driver stored ran again
    assert again.notes["jobs_from_cache"] < len(list(stored.glob("*.pt")))    # the rest was dispatched
    pd.testing.assert_frame_equal(local.frame(), again.frame())
