"""The pilot behind P3's 'gap closes' design (issue 30): the noise a deciding run's plan is sized from.

No stored run had trained prompt tuning on the data-to-text task, the one task of the ladder that leaves full FT below
its ceiling, so the design had no noise to power the trend with. The pilot runs the cpu profile cut down to that
trend: full FT and prompt tuning on d2t on the trend's three rungs (TREND_RUNGS), three seeds, the cpu profile's lr
search (full-length points on d2t, on the smallest rung and cpu-1m) and caps. It decides nothing: its rows go to
results/pilots/scale-p3-d2t, and `python -m reproductions.scale.design --from ... --parts 'P3/gap closes'` reads
their noise and walls into noise.json.

    python -m reproductions.scale.pilot          # ~35 min on 2 Intel cores; results/pilots/scale-p3-d2t
    python -m reproductions.scale.pilot --out D  # elsewhere
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench.paths import PATHS
from reproductions.scale.settings import SETTINGS, TREND_RUNGS

SEEDS = 3


def pilot_settings():
    """The cpu profile's settings, cut down to P3's trend on d2t (everything else as the deciding run has it)."""
    return replace(SETTINGS["cpu"], rungs=TREND_RUNGS, tasks=("d2t",), d2t_methods=("full", "prompt"), d2t_rungs=None,
                   seed_counts=(("d2t", SEEDS),), seed_cells=())


def main(argv=None) -> int:
    from bench.cli import run_group
    ap = argparse.ArgumentParser(prog="python -m reproductions.scale.pilot", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(PATHS.results / "pilots" / "scale-p3-d2t"),
                    help="output folder (default: results/pilots/scale-p3-d2t)")
    a = ap.parse_args(argv)
    SETTINGS["cpu"] = pilot_settings()   # this process only: run_group reads the cpu profile's settings
    run_group("scale", "cpu", str(SEEDS), Path(a.out), None, update_readme=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
