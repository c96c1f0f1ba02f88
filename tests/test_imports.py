"""No import cycle among the bench modules (tools/import_cycles.py reads the imports from the source), and the
modules split or moved by issue 32 import on their own in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
ic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ic)


def test_no_module_level_import_cycle():
    assert ic.cycles(ic.graph()) == []


def test_the_cycles_held_by_function_imports_are_gone():
    """Counting imports inside functions too, the only cycle left is the allowed one (bench.jobs ->
    bench.jobs_dask stays lazy: distributed is an optional extra). Gone: bench.data.world <-> bench.data.tasks,
    ladder -> schema -> provenance -> ladder, and bench.prereg <-> bench.claims.engine (the stress test's
    constants moved to bench.claims.model)."""
    assert ic.cycles(ic.graph(lazy=True)) == ic.LAZY_OK
    assert ic.main(["--lazy"]) == 0 and ic.main([]) == 0


def test_the_checker_sees_a_cycle(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "a.py").write_text("from bench import b\n")
    (tmp_path / "bench" / "b.py").write_text("def f():\n    from bench.a import x\n")
    assert ic.cycles(ic.graph(root=tmp_path)) == []
    assert ic.cycles(ic.graph(lazy=True, root=tmp_path)) == [["bench.a", "bench.b"]]
    (tmp_path / "bench" / "c.py").write_text("import bench.a\n")
    assert ic.cycles(ic.graph(lazy=True, root=tmp_path)) == [["bench.a", "bench.b"]]   # c reaches it, is not in it


FRESH = ["bench.paths", "bench.ladder", "bench.ladder.specs", "bench.ladder.build", "bench.ladder.cache",
         "bench.ladder.probes", "bench.ladder.report", "bench.fit.command", "bench.fit.options", "bench.fit.config",
         "bench.fit.predict", "bench.fit.render", "bench.fit.validate", "bench.provenance", "bench.data.world",
         "bench.data.tasks", "bench.regress", "bench.cli"]


@pytest.mark.slow
def test_each_moved_module_imports_in_a_fresh_interpreter():
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    for mod in FRESH:
        r = subprocess.run([sys.executable, "-c", code, mod], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, (mod, r.stderr[-2000:])
