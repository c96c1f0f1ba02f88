"""No import cycle among the bench modules (tools/import_cycles.py reads the imports from the source), and the
modules split or moved by issue 32 import on their own in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path


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

# One interpreter for every module: before each import, every module of the packages under test is dropped from
# sys.modules, so each import starts that package from nothing (what a fresh interpreter does for it; only the
# third-party modules stay loaded, which saves their import time -- torch alone takes seconds -- and cannot change
# the order in which the package's own modules run). Prints the modules that failed; exit 1 if any.
ALONE = """
import importlib, sys, traceback
packages, failed = set(sys.argv[1].split(",")), []
for mod in sys.argv[2:]:
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[name]
    try:
        importlib.import_module(mod)
    except Exception:
        failed.append(mod)
        print(mod, traceback.format_exc()[-2000:], file=sys.stderr)
print(",".join(failed))
sys.exit(1 if failed else 0)
"""


def _import_each_alone(packages: str, mods: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ALONE, packages, *mods], cwd=cwd, capture_output=True, text=True)


def test_each_moved_module_imports_on_its_own():
    r = _import_each_alone("bench", FRESH, ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stderr[-4000:]


def test_the_import_check_starts_each_module_afresh(tmp_path):
    """A cycle that only breaks when `pkg.a` is imported first: imported after `pkg.b` it would pass if the check
    kept what the first import loaded."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\nx = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.a import x\n")
    r = _import_each_alone("pkg", ["pkg.b", "pkg.a"], tmp_path)
    assert r.returncode == 1 and r.stdout.strip() == "pkg.a", (r.stdout, r.stderr[-2000:])
    assert _import_each_alone("pkg", ["pkg.b"], tmp_path).returncode == 0
