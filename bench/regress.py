"""Regression checks: rerun a group's smoke profile and compare with its committed baseline.

Baselines live in `results/baselines/<group>.csv` (the smoke rows plus each row's tolerance band,
`atol` and `rtol`, taken from the group's REGRESS list when the baseline was written) and
`results/baselines/<group>.verdicts.json`. A check fails, naming claim and metric, when a value
leaves its band, a baseline row is missing, or a verdict flips.
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_json
from bench.report import group_verdicts
from bench.schema import read_results, write_frame

BASELINE_DIR = Path(__file__).resolve().parent.parent / "results" / "baselines"
KEY = ["claim", "metric", "model", "data", "method", "seed", "params"]
# Used when a group's REGRESS list names no band for a metric.
DEFAULT_BANDS = {"exact": (0.0, 1e-9), "toy": (0.02, 0.05), "paper": (0.02, 0.05)}


def band(metric: str, scale: str, bands: list[tuple[str, float, float]]) -> tuple[float, float]:
    for pattern, atol, rtol in bands:
        if fnmatch.fnmatchcase(metric, pattern):
            return float(atol), float(rtol)
    return DEFAULT_BANDS.get(scale, DEFAULT_BANDS["toy"])


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["seed"] = df["seed"].astype(int)
    df["_n"] = df.groupby(KEY, dropna=False).cumcount()  # repeated keys compare in order
    return df.set_index(KEY + ["_n"])


def write_baseline(group: str, run_dir: Path, bands: list, baseline_dir: Path = BASELINE_DIR) -> Path:
    df = read_results(run_dir)
    tol = [band(m, s, bands) for m, s in zip(df["metric"], df["scale"])]
    df["atol"] = [t[0] for t in tol]
    df["rtol"] = [t[1] for t in tol]
    keep = KEY + ["value", "unit", "scale", "atol", "rtol"]
    write_frame(baseline_dir / f"{group}.csv", df[keep])
    verdicts = {v.claim.id: v.status for v in group_verdicts(group, run_dir)}
    atomic_write_json(baseline_dir / f"{group}.verdicts.json", verdicts)
    return baseline_dir / f"{group}.csv"


def compare(group: str, run_dir: Path, baseline_dir: Path = BASELINE_DIR) -> list[str]:
    """Return one message per regression (empty list: all within bands, no verdict flipped)."""
    path = baseline_dir / f"{group}.csv"
    if not path.exists():
        return [f"{group}: no baseline at {path}; run `python -m bench regress --update --group {group}`"]
    base = pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN"], dtype={"params": str})
    base["value"] = pd.to_numeric(base["value"], errors="coerce")
    new = read_results(run_dir)
    b, n = _keyed(base), _keyed(new)
    problems = []
    for key, row in b.iterrows():
        claim, metric, model, data, method, seed, params, _ = key
        where = f"{group} {claim} {metric} [model={model} data={data} method={method} seed={seed} {params}]"
        if key not in n.index:
            problems.append(f"{where}: missing from the new run")
            continue
        got, want = float(n.loc[key, "value"]), float(row["value"])
        if math.isnan(want) and math.isnan(got):
            continue
        limit = row["atol"] + row["rtol"] * abs(want)
        if math.isnan(got) or math.isnan(want) or abs(got - want) > limit:
            problems.append(f"{where}: {want:.6g} -> {got:.6g} (band +-{limit:.3g})")
    verdict_path = baseline_dir / f"{group}.verdicts.json"
    if verdict_path.exists():
        old = json.loads(verdict_path.read_text())
        now = {v.claim.id: v.status for v in group_verdicts(group, run_dir)}
        for cid, status in old.items():
            if now.get(cid) != status:
                problems.append(f"{group} {cid}: verdict flipped: {status!r} -> {now.get(cid)!r}")
    return problems
