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
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert "22 claims" in out and "4,718,592" in out and "65504" in out


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
