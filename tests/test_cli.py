import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_claims_lists_all_22_with_published_numbers(capsys):
    """The lecture's 22 and the 5 beyond it (issue 33)."""
    from bench.claims import CLAIMS
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert sum(c.family != "beyond" for c in CLAIMS.values()) == 22 and len(CLAIMS) == 27
    assert "27 claims" in out and "4,718,592" in out and "65504" in out and "\nX5 " in out


def test_claims_shows_one(capsys):
    assert main(["claims", "q4"]) == 0
    assert "LLM.int8()" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["claims", "Z9"], "unknown claim"),
    (["frobnicate"], "invalid choice"),
    (["repro", "lora", "--bogus"], "unrecognized arguments"),
    (["repro", "nope"], "unknown reproduction group"),
    (["repro", "lora", "--profile", "huge"], "unknown profile"),
    (["repro", "lora", "--seeds", "a,b"], "--seeds"),
    (["repro", "methods", "--profile", "smoke", "--seeds", "0"], "at least 1"),
    (["repro", "precision", "--profile", "smoke", "--seeds", "0"], "at least 1"),
    (["repro", "int8", "--profile", "smoke", "--seeds", "1,1"], "repeated seed"),
    (["repro", "lora", "--profile", "smoke", "--model", "./no/such/folder"], "does not exist"),
    (["repro", "lora", "--profile", "smoke", "--out", "/proc/version/x"], "--out"),
    (["repro", "lora", "--profile", "smoke", "--out", "/proc/bench-out"], "cannot be written"),
    (["regress", "--group", "nope"], "unknown reproduction group"),
    (["regress", "--update", "--other-float-path"], "cannot --update"),
    (["report", "--compare", "/no/such/folder"], "is not a folder"),
    (["report", "--results", "/no/such/folder"], "is not a folder"),
    (["repro", "precision", "--profile", "smoke", "--model", "smoke-a"], "--model is not used"),
    (["pretrain", "--ladder", "smoke", "--out", "/proc/bench-out"], "cannot be written"),
])
def test_bad_input_gives_one_error_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error:") and needle in err[0]


def test_help_works_for_every_command():
    for cmd in ([], ["claims"], ["report"], ["pretrain"], ["repro"], ["regress"]):
        res = run_cli(*cmd, "--help")
        assert res.returncode == 0 and "usage:" in res.stdout, (cmd, res.stderr)


def test_failed_run_leaves_earlier_results_intact(tmp_path, monkeypatch):
    import types

    import bench.repro as repro
    from bench.cli import run_group

    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.csv").write_text("earlier\n")
    (out / "meta.json").write_text("{}\n")

    def run(ctx):
        rec = ctx.recorder("demo", [])
        rec.add("-", "m", 1)
        raise RuntimeError("crash mid-run")

    fake = types.SimpleNamespace(run=run, report=lambda d: None, REGRESS=[])
    monkeypatch.setattr(repro, "load_group", lambda g: fake)
    with pytest.raises(RuntimeError):
        run_group("lora", "smoke", None, out, None, update_readme=False)
    assert (out / "results.csv").read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left


def test_out_holding_foreign_files_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["repro", "precision", "--profile", "smoke", "--out", str(tmp_path), "--no-report"]) == 2
    assert "not a result folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def _fake_group(monkeypatch, run):
    import types

    import bench.repro as repro
    fake = types.SimpleNamespace(run=run, report=lambda d: (Path(d) / "report.md").write_text("new\n"), REGRESS=[])
    monkeypatch.setattr(repro, "load_group", lambda g: fake)


def test_a_run_replaces_the_folder_as_a_whole_and_cleans_stale_staging(tmp_path, monkeypatch):
    from bench.cli import run_group

    out = tmp_path / "demo"
    out.mkdir()
    for name in ("results.csv", "meta.json", "old_plot.png"):
        (out / name).write_text("old\n")
    dead = tmp_path / ".demo.staging-dead1"      # left by a killed run: no live writer
    dead.mkdir()
    (dead / ".writer-pid").write_text("999999999")

    def run(ctx):
        rec = ctx.recorder("demo", [])
        rec.add("-", "m", 1.0)
        return rec

    _fake_group(monkeypatch, run)
    run_group("lora", "smoke", None, out, None, update_readme=False)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "report.md", "results.csv", "timings.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]   # stale staging removed, nothing left over


def test_a_kill_between_the_two_renames_is_repaired_by_the_next_run(tmp_path):
    from bench.fileio import clean_stale

    out = tmp_path / "demo"
    previous = tmp_path / ".demo.previous-abc"
    previous.mkdir()
    (previous / "meta.json").write_text("old\n")
    clean_stale(out)
    assert (out / "meta.json").read_text() == "old\n" and not previous.exists()


def test_a_run_touches_only_its_out_folder(tmp_path, monkeypatch, capsys):
    """README.md and results/README.md are rewritten only by a run into the checkout's own results/<group>/ (or by
    `bench report`); a run with --out elsewhere, or a smoke run into results/runs/, writes nothing outside --out."""
    import types

    import dataclasses

    import bench.report as report
    import bench.repro as repro
    from bench import paths
    from bench.cli import run_group
    from bench.schema import Recorder

    def run(ctx):
        rec = Recorder(group="precision", profile=ctx.profile.name, out_dir=ctx.out_dir, claims=[])
        rec.add("M1", "format_max", 1.0, scale="exact")
        return rec

    fake = types.SimpleNamespace(run=run, report=lambda out: None, TAKES_MODEL=False)
    monkeypatch.setattr(repro, "load_group", lambda group: fake)
    calls = []
    monkeypatch.setattr(report, "write_readme", lambda results_dir=None: calls.append(results_dir))
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(paths, "PATHS", dataclasses.replace(paths.PATHS, results=results))
    for out in (tmp_path / "elsewhere" / "precision", results / "runs" / "precision-smoke", results / "other"):
        run_group("precision", "smoke", None, out, None)
        assert calls == [] and (out / "results.csv").exists(), out
        assert "not regenerated" in capsys.readouterr().err
    run_group("precision", "cpu", None, None, None)            # the default folder: results/precision
    assert len(calls) == 1 and (results / "precision" / "results.csv").exists()
