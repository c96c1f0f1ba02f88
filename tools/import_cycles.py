"""Import cycles among the bench modules, read from the source (nothing is imported).

    python tools/import_cycles.py            # module-level imports: exit 1 if any cycle
    python tools/import_cycles.py --lazy     # also the imports inside functions: exit 1 if any cycle but LAZY_OK

An edge A -> B is an import of B in A (`import bench.b`, `from bench import b`, `from bench.b import x`), and
importing bench.x.y also runs bench.x's __init__, so it counts as an edge to bench.x too (unless the importer is
inside bench.x: then bench.x is already being imported). A cycle is a strongly
connected component of more than one module (or a module importing itself).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The one cycle allowed through imports inside functions: bench.jobs imports bench.jobs_dask only when a dask
# scheduler is asked for (distributed is an optional extra), and jobs_dask runs bench.jobs' job runner.
LAZY_OK = [["bench.jobs", "bench.jobs_dask"]]


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for f in sorted((root / "bench").rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _targets(node, here: str, is_pkg: bool, known) -> list[str]:
    names = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if is_pkg else here.split(".")[:-1]
            pkg = pkg[:len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    out = []
    for n in names:
        while n and n not in known:          # `from bench.x import name`: the module is bench.x
            n = n.rpartition(".")[0]
        while n and n != "bench":             # importing bench.x.y runs bench.x first...
            out.append(n)
            n = n.rpartition(".")[0]
    own = {here.rsplit(".", k)[0] for k in range(1, here.count(".") + 1)} | ({here} if is_pkg else set())
    # ...except a package of the importer's own: it is already being imported when the importer runs
    return [t for t in dict.fromkeys(out) if t in known and t != here and t not in own]


def graph(lazy: bool = False, root: Path = ROOT) -> dict[str, set[str]]:
    """{module: modules it imports}; module level only unless `lazy` (then imports inside functions too; imports
    under `if TYPE_CHECKING:` never count)."""
    mods = modules(root)
    g = {m: set() for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text(), str(f))
        is_pkg = f.name == "__init__.py"
        nodes = ast.walk(tree) if lazy else _module_level(tree.body)
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                g[m].update(_targets(node, m, is_pkg, mods))
    return g


def _module_level(body):
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _module_level(getattr(child, "body", [child]) if isinstance(child, ast.ExceptHandler)
                                             else [child])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan), each sorted; sorted by their first module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in g[v]:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str]) -> int:
    lazy = "--lazy" in argv
    found = cycles(graph(lazy=lazy))
    kind = "module-level and in-function" if lazy else "module-level"
    print(f"{len(modules())} bench modules; {kind} import cycles: {len(found)}")
    for comp in found:
        print("  " + " <-> ".join(comp))
    bad = [c for c in found if not (lazy and c in LAZY_OK)]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
