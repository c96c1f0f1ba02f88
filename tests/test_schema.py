import math

import pandas as pd
import pytest

from bench.fileio import atomic_write, atomic_write_text
from bench.schema import COLUMNS, Recorder, param, read_meta, read_results


def make_recorder(tmp_path):
    rec = Recorder(group="demo", profile="smoke", out_dir=tmp_path, claims=["L2"])
    rec.add("L2", "trainable_params", 4718592, unit="params", model="gpt3-175b", scale="exact",
            method="lora", params={"r": 1, "targets": "q,v"})
    rec.add("L4", "val_accuracy", 0.5, unit="accuracy", model="cpu-1m", data="knowledge", seed=2,
            method="lora", params={"r": 8})
    rec.add("L5", "latency_s", 0.01, unit="s", timing=True)
    return rec


def test_rows_carry_provenance_and_round_trip(tmp_path):
    rec = make_recorder(tmp_path)
    rec.save()
    df = read_results(tmp_path)
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 and len(read_results(tmp_path, timing=True)) == 1
    for col in ("versions", "git_commit", "hardware", "model", "data", "seed", "scale", "profile"):
        assert df[col].astype(str).str.len().min() > 0, col
    assert "torch=" in df["versions"][0]
    assert list(param(df, "r")) == [1, 8]
    assert df.loc[0, "value"] == 4718592 and df.loc[0, "seed"] == -1
    meta = read_meta(tmp_path)
    assert meta["group"] == "demo" and meta["claims"] == ["L2"] and "started" in meta


def test_same_rows_give_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_recorder(a).save()
    make_recorder(b).save()
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()


def test_nan_survives_round_trip(tmp_path):
    rec = Recorder(group="demo", profile="smoke", out_dir=tmp_path)
    rec.add("-", "final_loss", float("nan"), params={"diverged_at": 3})
    rec.save()
    assert math.isnan(read_results(tmp_path)["value"][0])


def test_bad_scale_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        Recorder(group="d", profile="smoke", out_dir=tmp_path).add("-", "m", 1, scale="huge")


def test_atomic_write_keeps_old_file_when_writer_crashes(tmp_path):
    path = tmp_path / "results.csv"
    atomic_write_text(path, "old\n")

    def crash(p):
        p.write_text("half-writ")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left behind


def test_foreign_csv_is_rejected(tmp_path):
    from bench import BenchError

    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(BenchError, match="missing columns"):
        read_results(tmp_path)


def test_hardware_records_the_runs_thread_count(tmp_path, monkeypatch):
    import torch
    monkeypatch.setenv("BENCH_THREADS", "1")
    a = Recorder(group="g", profile="smoke", out_dir=tmp_path).add("-", "m", 1.0)
    b = Recorder(group="g", profile="smoke", out_dir=tmp_path, threads=3).add("-", "m", 1.0)
    if not torch.cuda.is_available():
        assert a["hardware"].endswith("threads=1") and b["hardware"].endswith("threads=3")
