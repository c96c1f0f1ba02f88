"""Where the suite reads and writes: one object, `PATHS`, the same rule for a checkout and an installed package.

The rule (decided once, when this module is imported):
- source root: the folder that holds the `bench` package (and `reproductions/`): a checkout's root, or
  site-packages when installed. Only sources are read from it (`bench.jobs_dask.source_hash`), and git runs
  there (`bench.envinfo.git_commit`, `bench.prereg.registry_at`: outside a git tree they answer "unknown").
- checkout: the source root holds `pyproject.toml` and a `results/` folder. Then `repo_root` is that root and
  the results root is `<repo_root>/results` (the committed reports and `results/baselines/`).
- installed (anything else): `repo_root` is None and the results root is `./results` under the current working
  directory. Results never go inside site-packages.
- `$BENCH_RESULTS`, when set (checkout or installed), is the results root instead.
Below the results root: `baselines/` (the `bench regress` gate), `memory/` (`bench memory --validate`),
`ladder/` (the pretraining report), `runs/` (runs that are not the committed cpu reports), `<group>/`.

The rung cache is `$BENCH_CACHE`, else `~/.cache/bench`, read when asked (`PATHS.cache`), since a child process
(`bench regress --other-float-path`) or a test may point it elsewhere after import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    source_root: Path            # holds bench/ and reproductions/ (a checkout, or site-packages)
    repo_root: Path | None       # the checkout; None when installed
    results: Path                # the results root

    @property
    def baselines(self) -> Path:
        """`bench regress`'s committed baselines."""
        return self.results / "baselines"

    @property
    def memory_results(self) -> Path:
        """`bench memory --validate`'s report folder."""
        return self.results / "memory"

    @property
    def ladder_results(self) -> Path:
        """The cpu ladder's pretraining report."""
        return self.results / "ladder"

    @property
    def runs(self) -> Path:
        """Runs other than the committed cpu reports (other profiles, --model)."""
        return self.results / "runs"

    @property
    def reproductions(self) -> Path:
        return self.source_root / "reproductions"

    @property
    def cache(self) -> Path:
        """$BENCH_CACHE, else ~/.cache/bench (read now, not at import)."""
        return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench").expanduser()

    def is_checkout_results(self, results: Path) -> bool:
        """True when `results` is the checkout's own results/ (the one whose reports README.md shows)."""
        return self.repo_root is not None and Path(results) == self.repo_root / "results"


def resolve(source_root: Path = SOURCE_ROOT, cwd: Path | None = None, environ=None) -> Paths:
    """The rule of this module's docstring, for a package found at `source_root`."""
    environ = os.environ if environ is None else environ
    root = Path(source_root)
    repo = root if (root / "pyproject.toml").is_file() and (root / "results").is_dir() else None
    if environ.get("BENCH_RESULTS"):
        results = Path(environ["BENCH_RESULTS"]).expanduser()
    elif repo is not None:
        results = repo / "results"
    else:
        results = Path(cwd or Path.cwd()) / "results"
    return Paths(source_root=root, repo_root=repo, results=results)


PATHS = resolve()
