"""reproductions/serving end to end on the smoke settings over a tiny GPT-2 (run, save, report), bad settings, and
P4's rule on planted rows: each part both ways, the throughput part decided at one request per task only, and its
precondition (batching pays) making it inconclusive, not "not reproduced"."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pytest

from bench import BenchError
from bench.claims import CLAIMS
from bench.profiles import PROFILES
from bench.report import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, group_verdicts, verdict
from bench.repro import RunContext
from bench.schema import Recorder, param, read_results
from reproductions import serving as V
from tests.reproductions.test_scale import tiny_gpt2


RUN = importlib.import_module("reproductions.serving.run")    # the module (the package's `run` is its function)


def _ctx(out, **settings):
    return RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=out, model="tiny-gpt2",
                      options={"settings": settings})


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(RUN, "load_model", lambda name, ladder: (tiny_gpt2(positions=64), None))
    out = tmp_path_factory.mktemp("serving")
    try:
        V.run(_ctx(out, pairs=1)).save(extra_meta={"seeds": [0]})
    finally:
        mp.undo()
    V.report(out)
    return out


def test_rows_report_and_verdict_parts(smoke):
    df, tm = read_results(smoke), read_results(smoke, timing=True)
    assert set(df["metric"]) == {"p4_prompt_mixed_max_abs_diff", "p4_lora_mixed_max_abs_diff", "p4_serving_params_ratio"}
    assert (df[df["metric"].str.endswith("max_abs_diff")]["value"] <= 1e-5).all()
    assert (df[df["metric"] == "p4_serving_params_ratio"]["value"] < 1).all() and set(df["scale"]) == {"exact"}
    thr = tm[tm["metric"] == "p4_mixed_over_per_task_throughput"]
    assert sorted(zip(thr["method"], param(thr, "requests_per_task"))) == [("lora", 1), ("lora", 4), ("prompt", 1),
                                                                           ("prompt", 4)]
    assert set(param(tm[tm["metric"] == "p4_batching_gain"], "requests_per_task")) == {1, 4}
    assert all("pair_ratio_q25" in json.loads(i) for i in tm["info"])      # measured spread: info, not identity
    v = {x.claim.id: x for x in group_verdicts("serving", smoke)}["P4"]
    assert v.parts["same outputs"] == REPRODUCED and v.parts["serving parameters"] == REPRODUCED
    assert v.parts["throughput"] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)     # measured, not asserted
    text = (smoke / "report.md").read_text()
    assert "## Throughput of one serving window" in text and "| 4 |" in text
    assert (smoke / "throughput.png").stat().st_size > 0


def test_prompt_longer_than_the_positions_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(RUN, "load_model", lambda name, ladder: (tiny_gpt2(positions=32), None))
    with pytest.raises(BenchError, match="exceeds tiny-gpt2's 32 positions"):
        V.run(_ctx(tmp_path, seq_len=16, prompt_len=20))
    assert not any(tmp_path.iterdir())


def test_every_profile_times_the_deciding_window_first():
    assert all(s.requests[0] == 1 for s in V.SETTINGS.values())


def _planted(ratio: float, gain: float, large_ratio: float = 0.5, diff: float = 1e-7) -> pd.DataFrame:
    rec = Recorder(group="serving", profile="smoke", out_dir=None, claims=["P4"])
    for m in ("prompt", "lora"):
        rec.add("P4", f"p4_{m}_mixed_max_abs_diff", diff, method=m, scale="exact")
        rec.add("P4", "p4_serving_params_ratio", 0.4, method=m, scale="exact")
    for n, r in ((1, ratio), (16, large_ratio)):
        rec.add("P4", "p4_batching_gain", gain, params={"requests_per_task": n}, timing=True)
        for m in ("prompt", "lora"):
            rec.add("P4", "p4_mixed_over_per_task_throughput", r if m == "prompt" else r + 0.3, method=m,
                    params={"requests_per_task": n}, timing=True)
    return pd.concat([rec.frame().assign(source="results"), rec.frame(timing=True).assign(source="timings")],
                     ignore_index=True)


def test_the_rule_comes_out_each_way():
    p4 = CLAIMS["P4"]
    assert p4.group == "serving"
    part = lambda **kw: verdict(p4, _planted(**kw)).parts["throughput"]   # noqa: E731
    assert part(ratio=1.3, gain=2.0) == REPRODUCED            # the larger windows (0.5) are reported, not decided
    assert part(ratio=0.5, gain=2.0) == NOT_REPRODUCED        # the min over methods: prompt's 0.5
    assert part(ratio=0.9, gain=2.0) == INCONCLUSIVE          # within the 0.2 resolution
    assert part(ratio=0.5, gain=1.1) == INCONCLUSIVE          # batching does not pay here: no regime to show it
    assert verdict(p4, _planted(ratio=1.3, gain=2.0, diff=1e-3)).parts["same outputs"] == NOT_REPRODUCED
