import pytest

from bench import BenchError, jobs


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
