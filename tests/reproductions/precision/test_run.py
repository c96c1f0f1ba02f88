"""reproductions/precision end to end on the smoke profile: run(), the report, the verdicts."""

import pytest

from bench.claims import CLAIMS
from bench.profiles import PROFILES
from bench.report import NOT_REPRODUCED, REPRODUCED, evaluate_check, group_verdicts
from bench.repro import RunContext, group_settings
from bench.schema import read_results
from reproductions import precision


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run (seed 0) saved and reported: (results folder, results frame)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCH_THREADS", "1")
    mp.setenv("BENCH_NO_PROGRESS", "1")
    out = tmp_path_factory.mktemp("precision")
    try:
        precision.run(RunContext(profile=PROFILES["smoke"], seeds=(0,), out_dir=out)).save(extra_meta={"seeds": [0]})
    finally:
        mp.undo()
    precision.report(out)
    return out, read_results(out)


def test_smoke_rows_and_timings(smoke):
    out, df = smoke
    assert set(df["claim"]) == {"M1", "M2", "M3"} and set(df["scale"]) == {"exact", "toy"}
    timing = read_results(out, timing=True)
    assert set(timing["metric"]) == {"m3_step_time_s", "m3_step_time_ratio_over_fp32"}
    assert set(df[df["metric"] == "m3_final_loss"]["method"]) == set(precision.PRECISIONS)


def test_smoke_verdicts(smoke):
    out, df = smoke
    verdicts = {v.claim.id: v.status for v in group_verdicts("precision", out)}
    assert verdicts["M1"] == REPRODUCED
    assert verdicts["M2"] == NOT_REPRODUCED   # issue 13: two-sided -- the blog's 72 GPUs vs 36 computed
    # every M3 check found its rows (the verdict itself is a toy result, not asserted)
    assert all(evaluate_check(df, "M3", c).n_rows > 0 for c in CLAIMS["M3"].checks if c.missing != "paper")


def test_smoke_report(smoke):
    out, _ = smoke
    text = (out / "report.md").read_text()
    assert "## M1" in text and "## M2" in text and "## M3" in text and "65,504" in text
    assert (out / "formats.png").stat().st_size > 0 and (out / "m3_loss.png").stat().st_size > 0


def test_settings_table_is_what_set_reaches():
    assert group_settings(precision) is precision.SETTINGS
    assert set(precision.SETTINGS) == {"smoke", "cpu", "gpu"}
