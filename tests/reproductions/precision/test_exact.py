"""reproductions/precision/exact.py: M1 and M2's rows are exact numbers."""

from bench.schema import Recorder
from reproductions.precision.exact import bloom_rows, format_rows


def test_format_and_bloom_rows(tmp_path):
    rec = Recorder(group="precision", profile="smoke", out_dir=tmp_path)
    format_rows(rec)
    bloom_rows(rec)
    df = rec.frame()
    assert set(df["scale"]) == {"exact"}
    fp16_max = df[(df["metric"] == "format_max") & (df["model"] == "fp16")]["value"]
    assert list(fp16_max) == [65504.0]
    assert (df[df["metric"] == "format_finfo_mismatches"]["value"] == 0).all()
    assert df[df["metric"] == "finetune_bytes_per_param"]["value"].iloc[0] == 16
