from bench import timing


def test_round_robin_rotates_the_order():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    out = timing.round_robin(fns, rounds=3)
    assert calls == list("abc" + "bca" + "cab")
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3, "c": 3}


def test_abba_order_and_pair_stats():
    calls = []
    ta, tb = timing.abba(lambda: calls.append("a"), lambda: calls.append("b"), pairs=4)
    assert "".join(calls) == "abbaabba"
    s = timing.pair_stats([2.0, 2.0, 4.0], [1.0, 1.0, 1.0])
    assert s["ratio"] == 2.0 and s["pairs"] == 3 and s["median_of_pair_ratios"] == 2.0
    assert len(ta) == len(tb) == 4


def test_timing_params_record_threads_and_load():
    p = timing.timing_params(batch=4)
    assert p["batch"] == 4 and p["threads"] >= 1 and "load_avg_1m" in p
