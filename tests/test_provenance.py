"""Every row names its base model's weights: rung manifests, checkpoint folders, configs without weights."""

from __future__ import annotations

import json

from bench import provenance
from bench.report import base_models_text
from bench.schema import Recorder, read_results


def _fake_rung(cache, name, sha):
    folder = cache / "ladder" / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": name, "weights_sha256": sha}))


def test_rows_and_meta_record_the_rung_hash_and_data_version(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    _fake_rung(tmp_path / "cache", "smoke-a", "ab" * 32)
    rec = Recorder(group="lora", profile="smoke", out_dir=tmp_path / "run")
    rec.add("L4", "acc", 0.5, model="smoke-a", seed=0)
    rec.add("L2", "lora_trainable_params", 4, model="gpt3-175b(meta)", scale="exact")
    rec.save()
    df = read_results(tmp_path / "run")
    assert list(df["model_sha256"]) == ["ab" * 32, "-"]
    assert df["data_version"].iloc[0] == "world=smoke;world_seed=0;ladder=v1" and df["data_version"].iloc[1] == "-"
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["base_models"]["smoke-a"]["sha256"] == "ab" * 32


def test_a_checkpoint_folder_is_hashed_and_a_rung_not_built_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "empty-cache"))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights")
    import hashlib
    assert provenance.model_sha256(str(ckpt)) == hashlib.sha256(b"weights").hexdigest()
    assert provenance.model_sha256("smoke-b") == "-"        # never builds a rung to hash it
    assert provenance.model_sha256("gpt3-175b(meta)") == "-"


def test_report_marks_a_run_whose_rung_differs_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    _fake_rung(tmp_path / "cache", "smoke-a", "cd" * 32)
    same = base_models_text({"base_models": {"smoke-a": {"sha256": "cd" * 32}}})
    other = base_models_text({"base_models": {"smoke-a": {"sha256": "ef" * 32}}})
    assert same == "smoke-a " + "cd" * 6 and "differs from this machine's cache" in other
    assert base_models_text({}) == "not recorded"
    # a rung never built on this machine is not "differing": nothing to compare (README must not depend on it)
    assert base_models_text({"base_models": {"smoke-b": {"sha256": "ef" * 32}}}) == "smoke-b " + "ef" * 6


def test_measured_values_are_refused_in_params():
    import pytest
    rec = Recorder(group="lora", profile="smoke", out_dir=None)
    with pytest.raises(ValueError, match="info"):
        rec.add("L7", "x_over_spread", 1.0, params={"lr": 0.002, "spread": 0.01})
    rec.add("L7", "x_over_spread", 1.0, params={"lr": 0.002}, info={"spread": 0.01})
    assert json.loads(rec.frame()["info"].iloc[0]) == {"spread": 0.01}


def test_data_version_of_a_bos_series_rung():
    from bench.provenance import data_version
    assert data_version("cpu-1m+bos") == data_version("cpu-1m") + ";series=bos"
    assert data_version("not-a-rung+bos") == "-"
