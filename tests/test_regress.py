from bench import regress
from bench.schema import Recorder


def run_dir(tmp_path, name, value):
    rec = Recorder(group="lora", profile="smoke", out_dir=tmp_path / name)
    rec.add("L2", "lora_trainable_params", 4_718_592, model="gpt3-175b", scale="exact",
            params={"r": 1, "targets": "q,v"})
    rec.add("L4", "val_accuracy", value, model="smoke-a", seed=0, scale="toy", params={"r": 8})
    rec.save()
    return tmp_path / name


def test_within_band_passes_and_outside_band_names_claim_and_metric(tmp_path):
    base_dir = tmp_path / "baselines"
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.50), [("val_accuracy", 0.05, 0.0)], base_dir)
    assert regress.compare("lora", run_dir(tmp_path, "ok", 0.54), base_dir) == []
    problems = regress.compare("lora", run_dir(tmp_path, "bad", 0.60), base_dir)
    assert len(problems) == 1 and "L4 val_accuracy" in problems[0] and "0.5 -> 0.6" in problems[0]


def test_exact_rows_get_a_zero_band_by_default(tmp_path):
    assert regress.band("lora_trainable_params", "exact", []) == (0.0, 1e-9)
    assert regress.band("val_accuracy", "toy", [("val_*", 0.1, 0.0)]) == (0.1, 0.0)


def test_missing_row_and_missing_baseline_are_failures(tmp_path):
    base_dir = tmp_path / "baselines"
    assert "no baseline" in regress.compare("lora", run_dir(tmp_path, "x", 0.5), base_dir)[0]
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    empty = Recorder(group="lora", profile="smoke", out_dir=tmp_path / "empty")
    empty.save()
    assert any("missing from the new run" in p for p in regress.compare("lora", tmp_path / "empty", base_dir))
