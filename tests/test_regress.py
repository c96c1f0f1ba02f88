import pytest

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
    assert regress.band("lora_trainable_params", "exact", [])[:2] == (0.0, 1e-9)
    assert regress.band("val_accuracy", "toy", [("val_*", 0.1, 0.0)]) == (0.1, 0.0, "REGRESS val_*")
    assert regress.band("val_accuracy", "toy", [("val_*", 0.1, 0.0, "seed noise")])[2] == "seed noise"


def test_missing_row_and_missing_baseline_are_failures(tmp_path):
    base_dir = tmp_path / "baselines"
    assert "no baseline" in regress.compare("lora", run_dir(tmp_path, "x", 0.5), base_dir)[0]
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    empty = Recorder(group="lora", profile="smoke", out_dir=tmp_path / "empty")
    empty.save()
    assert any("missing from the new run" in p for p in regress.compare("lora", tmp_path / "empty", base_dir))


def test_rows_new_in_the_run_are_reported_too(tmp_path):
    base_dir = tmp_path / "baselines"
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    rec = Recorder(group="lora", profile="smoke", out_dir=tmp_path / "more")
    rec.add("L2", "lora_trainable_params", 4_718_592, model="gpt3-175b", scale="exact", params={"r": 1, "targets": "q,v"})
    rec.add("L4", "val_accuracy", 0.5, model="smoke-a", seed=0, scale="toy", params={"r": 8})
    rec.add("L4", "val_accuracy", 0.5, model="smoke-a", seed=0, scale="toy", params={"r": 16})
    rec.save()
    problems = regress.compare("lora", tmp_path / "more", base_dir)
    assert len(problems) == 1 and "new in this run" in problems[0] and '"r":16' in problems[0]


@pytest.mark.parametrize("damage, needle", [
    (lambda t: "\n".join(t.splitlines()[:2]) + "\n", "does not match its manifest"),     # truncated at a line
    (lambda t: t[: len(t) // 2], "does not match its manifest"),                         # cut mid-line
    (lambda t: "", "does not match its manifest"),                                       # emptied
    (lambda t: t.replace("0.5", "0.9"), "does not match its manifest"),                  # edited
])
def test_a_damaged_baseline_fails_with_one_line_naming_file_and_fix(tmp_path, damage, needle):
    base_dir = tmp_path / "baselines"
    path = regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    path.write_text(damage(path.read_text()))
    problems = regress.compare("lora", run_dir(tmp_path, "new", 0.5), base_dir)
    assert len(problems) == 1 and needle in problems[0] and str(path) in problems[0]
    assert "regress --update --group lora" in problems[0] and "\n" not in problems[0]


def test_a_damaged_manifest_or_csv_with_matching_manifest_is_caught(tmp_path):
    base_dir = tmp_path / "baselines"
    path = regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    (base_dir / "lora.manifest.json").write_text("{not json")
    assert "manifest" in regress.compare("lora", run_dir(tmp_path, "new", 0.5), base_dir)[0]
    # a CSV that cannot be parsed, with a manifest made to match it: still one line, no traceback
    path.write_text('claim,metric\n"unterminated\n')
    import json
    from bench.fileio import sha256_file
    vsha = sha256_file(base_dir / "lora.verdicts.json")
    (base_dir / "lora.manifest.json").write_text(json.dumps(regress.seal({"rows": 1, "sha256": sha256_file(path),
                                                                         "verdicts_sha256": vsha})))
    (msg,) = regress.compare("lora", run_dir(tmp_path, "new2", 0.5), base_dir)
    assert str(path) in msg and "regress --update" in msg


def test_a_moved_value_names_a_different_base_model(tmp_path, monkeypatch):
    import bench.provenance as prov
    base_dir = tmp_path / "baselines"
    monkeypatch.setattr(prov, "rung_sha256", lambda name, cache_dir=None: "a" * 64)
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.50), [("val_accuracy", 0.05, 0.0, "why")], base_dir)
    monkeypatch.setattr(prov, "rung_sha256", lambda name, cache_dir=None: "b" * 64)
    (msg,) = regress.compare("lora", run_dir(tmp_path, "bad", 0.60), base_dir)
    assert "value moved" in msg and "different base model" in msg and "band +-0.05: why" in msg
    assert "smoke-a" in regress.base_model_note("lora", tmp_path / "bad", base_dir)


GATE_FILES = ("lora.csv", "lora.verdicts.json", "lora.manifest.json")


def _edits(name):
    """Ways to damage one gate file: edited so that it still parses, deleted, unreadable (a folder in its place)."""
    import json
    import shutil

    def edit(p):
        if name.endswith(".verdicts.json"):
            p.write_text(json.dumps({"A2": "reproduced"}))           # valid, and would hide L1-L6 flips
        elif name.endswith(".manifest.json"):
            man = json.loads(p.read_text())
            man["rows"] += 1                                          # a hand edit that keeps it valid JSON
            p.write_text(json.dumps(man))
        else:
            p.write_text(p.read_text().replace("0.5", "0.9"))

    def unreadable(p):
        p.unlink()
        p.mkdir()

    return {"edited": edit, "deleted": lambda p: p.unlink(), "unreadable": unreadable,
            "cleanup": lambda p: shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)}


@pytest.mark.parametrize("name", GATE_FILES)
@pytest.mark.parametrize("how", ["edited", "deleted", "unreadable"])
def test_every_file_the_gate_reads_is_checked(tmp_path, name, how):
    """Each file of a baseline, edited, deleted or unreadable: the gate fails with one line naming a baseline file
    and the command that regenerates it (never 'ok', never a traceback)."""
    base_dir = tmp_path / "baselines"
    regress.write_baseline("lora", run_dir(tmp_path, "base", 0.5), [], base_dir)
    assert regress.compare("lora", run_dir(tmp_path, "same", 0.5), base_dir) == []
    _edits(name)[how](base_dir / name)
    problems = regress.compare("lora", run_dir(tmp_path, "new", 0.5), base_dir)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0] and "lora" in problems[0] and "regress --update --group lora" in problems[0]
    assert str(base_dir) in problems[0]


def test_committed_baselines_verify():
    """Every committed baseline's manifest, CSV and verdicts file agree (what CI's gate reads first)."""
    for man in sorted(regress.paths.PATHS.baselines.glob("*.manifest.json")):
        group = man.name.split(".")[0]
        assert regress.load_baseline(group)[1] is None, group
        assert regress.load_verdicts(group)[1] is None, group
