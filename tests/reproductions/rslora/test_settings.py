"""reproductions/rslora/settings.py and the group's contract with bench.repro."""

from __future__ import annotations

import numpy as np

from bench.claims import get
from bench.repro import load_group
from reproductions.rslora.settings import RANKS, SETTINGS


def test_module_contract():
    mod = load_group("rslora")
    assert mod.GROUP == "rslora" and mod.CLAIMS == ("L7",) and get("L7").group == "rslora"
    assert all(len(b) in (3, 4) for b in mod.REGRESS) and callable(mod.run) and callable(mod.report)
    assert len(get("L7").checks) >= 5 and get("L7").rule
    for name, s in SETTINGS.items():
        assert s.lrs and len(s.lrs) >= 2 and s.ranks == tuple(sorted(s.ranks)), name
    cpu = SETTINGS["cpu"]
    assert cpu.ranks == RANKS and np.all(np.diff(cpu.ranks) > 0)


def test_workers_per_profile():
    """The gate's smoke run stays in one process; the cpu run shares its runs between two workers."""
    assert SETTINGS["smoke"].workers == 1 and SETTINGS["cpu"].workers == 2
    assert all(s.workers >= 1 for s in SETTINGS.values())
