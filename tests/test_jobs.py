import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import BenchError, jobs
from bench.jobs import exit_when_orphaned


def _setup(base):
    return {"base": base}


def _square_plus_base(x):
    return x * x + jobs.ENV["base"]


def _boom(x):
    raise ValueError(f"job {x} failed")


def test_in_process_results_in_plan_order():
    r = jobs.JobRunner(setup=_setup, args=(10,), workers=1)
    assert r.map(_square_plus_base, [3, 1, 2]) == [19, 11, 14]


def test_in_process_reuses_a_given_env_without_setup():
    r = jobs.JobRunner(workers=1, env={"base": 1})
    assert r.map(_square_plus_base, [2]) == [5]


def test_two_workers_give_the_same_results_in_plan_order():
    with jobs.JobRunner(setup=_setup, args=(10,), workers=2) as r:
        assert r.map(_square_plus_base, list(range(6))) == [x * x + 10 for x in range(6)]


def test_a_job_error_reaches_the_caller():
    with pytest.raises(ValueError, match="job 1 failed"):
        jobs.JobRunner(workers=1, env={}).map(_boom, [1])


def test_workers_from_env(monkeypatch):
    monkeypatch.setenv("BENCH_WORKERS", "1")
    assert jobs.job_workers(2) == 1
    monkeypatch.setenv("BENCH_WORKERS", "two")
    with pytest.raises(BenchError, match="BENCH_WORKERS"):
        jobs.job_workers()
    monkeypatch.setenv("BENCH_WORKERS", "0")
    with pytest.raises(BenchError, match="BENCH_WORKERS"):
        jobs.job_workers()


def test_row_buffer_replays_calls_in_order():
    seen = []

    class Rec:
        def add(self, *a, **k):
            seen.append((a, k))

    buf = jobs.RowBuffer()
    buf.add("m", 1.0, seed=0)
    buf.add("n", 2.0)
    buf.replay(Rec())
    assert seen == [(("m", 1.0), {"seed": 0}), (("n", 2.0), {})]


def test_row_buffer_values_reads_one_metric_in_order():
    buf = jobs.RowBuffer()
    buf.add("P1", "run_wall_s", 3.0, unit="s")
    buf.add("P1", "accuracy", 0.5)
    buf.add("P1", "run_wall_s", 4.0)
    buf.add("short")                                 # fewer than (claim, metric, value): skipped
    assert buf.values("run_wall_s") == [3.0, 4.0] and buf.values("bleu") == []


def test_exit_when_orphaned_fires_when_the_parent_is_not_ours():
    import threading
    fired = threading.Event()
    t = exit_when_orphaned(parent=-1, poll_s=0.01, exit_fn=lambda code: fired.set())
    assert fired.wait(2.0) and t.daemon


def sleep_and_report(path: str) -> None:
    """A job that writes its process id to `path` and then sleeps (test helper: picklable, module level)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    """A killed run leaves no worker behind still running the queued jobs (they would slow the rerun)."""
    script = (f"import sys; sys.path[:0] = {[str(Path(__file__).resolve().parents[1])]!r}\n"
              "from bench.jobs import JobRunner\n"
              "from tests.test_jobs import sleep_and_report\n"
              "if __name__ == '__main__':\n"
              "    r = JobRunner(setup=dict, workers=2)\n"
              f"    for k in range(4): r.submit(sleep_and_report, {str(tmp_path)!r} + f'/pid{{k}}')\n"
              "    list(r.as_completed())\n")
    (tmp_path / "run.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "run.py")])
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("pid*"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in tmp_path.glob("pid*")]
        assert len(pids) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.time() + 15
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.5)
        alive = [p for p in pids if _alive(p)]
    assert not alive, f"workers {alive} outlived their killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
