"""What the CLI hands a reproduction, and how it finds one.

A reproduction group is a module `reproductions/<group>.py` with:
    GROUP   = "lora"                       # results/<group>/, tox -e repro-<group>
    CLAIMS  = ("L1", "L2", ...)            # claim IDs it measures (bench.claims)
    REGRESS = [("metric_glob", atol, rtol), ...]   # tolerance bands for `bench regress` (smoke profile)
    def run(ctx: RunContext) -> Recorder   # measure; rows go through bench.schema.Recorder
    def report(out_dir: Path) -> None      # write report.md and PNGs from the stored CSVs
The CLI calls run(), saves the Recorder atomically, calls report(), then regenerates results/README.md.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tqdm.auto import tqdm

from bench import BenchError
from bench.profiles import Profile
from bench.schema import Recorder

REPRO_GROUPS = ("lora", "rslora", "precision", "int8", "scale", "methods")


@dataclass
class RunContext:
    profile: Profile
    seeds: tuple[int, ...]
    out_dir: Path
    model: str | None = None          # --model: ladder rung, local checkpoint folder, or hub id
    options: dict = field(default_factory=dict)

    def recorder(self, group: str, claims) -> Recorder:
        return Recorder(group=group, profile=self.profile.name, out_dir=self.out_dir, claims=list(claims))

    @staticmethod
    def progress(iterable=None, **kw):
        """A tqdm bar (stderr); quiet when BENCH_NO_PROGRESS=1 (tests)."""
        kw.setdefault("disable", os.environ.get("BENCH_NO_PROGRESS") == "1")
        kw.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kw)


def load_group(group: str):
    if group not in REPRO_GROUPS:
        raise BenchError(f"unknown reproduction group {group!r}; choose one of {', '.join(REPRO_GROUPS)}")
    try:
        return importlib.import_module(f"reproductions.{group}")
    except ModuleNotFoundError as e:
        if e.name == f"reproductions.{group}":
            raise BenchError(f"reproduction group {group!r} is not implemented yet") from None
        raise


def settings_with_overrides(ctx: RunContext, settings: dict, group: str):
    """The profile's settings dataclass with ctx.options["settings"] (field -> value) applied on top.

    Unknown fields are a BenchError naming the valid ones; lists become tuples (settings are frozen)."""
    base = settings[ctx.profile.name]
    over = dict((ctx.options or {}).get("settings", {}))
    known = {f.name for f in fields(base)}
    bad = sorted(set(over) - known)
    if bad:
        raise BenchError(f"{group}: unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(known))}")
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})
