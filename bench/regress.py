"""Regression checks: rerun a group's smoke profile and compare with its committed baseline.

A baseline is three files in `results/baselines/`:
- `<group>.csv`: the smoke rows (identity columns `bench.schema.KEY`, value, unit, scale), each with its
  tolerance band (`atol`, `rtol`) and the band's reason (`band_reason`), taken from the group's REGRESS
  list when the baseline was written, and the base model's hash (`model_sha256`);
- `<group>.verdicts.json`: the smoke verdicts;
- `<group>.manifest.json`: the CSV's row count and sha256 and the verdicts file's sha256, sealed by a checksum
  of the manifest's own fields, so a truncated, edited, missing or unreadable file of the three is caught.

A check fails, naming claim and metric, when a value leaves its band, a row of the baseline is missing
from the run or the run has a row the baseline lacks, a verdict flips, or the baseline itself is damaged
(one line naming the file and the command that regenerates it). A value that moved while the base model's
hash differs from the baseline's is reported as such: on another CPU kind the smoke rungs are pretrained
with other floats, so toy values move within their bands (see README, "Rerunning on another machine").
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from bench import BenchError, paths
from bench.claims import CLAIMS
from bench.fileio import atomic_write_json, sha256_file
from bench.report import group_verdicts
from bench.repro import REPRO_GROUPS, load_group
from bench.schema import KEY, read_csv_checked, read_results, write_frame

# Used when a group's REGRESS list names no band for a metric.
DEFAULT_BANDS = {"exact": (0.0, 1e-9, "exact arithmetic: the same on every machine"),
                 "toy": (0.02, 0.05, "default toy band"), "real": (0.02, 0.05, "default band"),
                 "paper": (0.02, 0.05, "default band")}
BASELINE_COLUMNS = KEY + ["value", "unit", "scale", "atol", "rtol", "band_reason", "model_sha256"]


def band(metric: str, scale: str, bands: list[tuple]) -> tuple[float, float, str]:
    """(atol, rtol, reason) of the first REGRESS pattern matching `metric`, else the scale's default.

    REGRESS entries are (pattern, atol, rtol) or (pattern, atol, rtol, reason)."""
    for pattern, atol, rtol, *reason in bands:
        if fnmatch.fnmatchcase(metric, pattern):
            return float(atol), float(rtol), (reason[0] if reason else f"REGRESS {pattern}")
    return DEFAULT_BANDS.get(scale, DEFAULT_BANDS["toy"])


def regenerate_hint(group: str) -> str:
    return f"regenerate it with `python -m bench regress --update --group {group}`"


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["seed"] = df["seed"].astype(int)
    df["_n"] = df.groupby(KEY, dropna=False).cumcount()  # repeated keys compare in order
    return df.set_index(KEY + ["_n"])


def write_baseline(group: str, run_dir: Path, bands: list, baseline_dir: Path | None = None) -> Path:
    baseline_dir = Path(baseline_dir or paths.PATHS.baselines)
    df = read_results(run_dir)
    tol = [band(m, s, bands) for m, s in zip(df["metric"], df["scale"])]
    df["atol"], df["rtol"], df["band_reason"] = ([t[i] for t in tol] for i in range(3))
    path = write_frame(baseline_dir / f"{group}.csv", df[BASELINE_COLUMNS])
    verdicts = {v.claim.id: v.status for v in group_verdicts(group, run_dir, timings=False)}
    vpath = atomic_write_json(baseline_dir / f"{group}.verdicts.json", verdicts)
    atomic_write_json(baseline_dir / f"{group}.manifest.json", seal({
        "group": group, "rows": len(df), "sha256": sha256_file(path), "verdicts_sha256": sha256_file(vpath),
        "regenerate": f"python -m bench regress --update --group {group}",
        "bands": "each row's atol/rtol/band_reason; a value passes when |new - old| <= atol + rtol * |old|"}))
    return path


def _checksum(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def seal(manifest: dict) -> dict:
    """The manifest with `checksum`: the sha256 of its other fields (sorted JSON), so an edit to it is seen."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return {**body, "checksum": _checksum(body)}


def _read_manifest(group: str, man_path: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) when it parses, holds the fields the gate needs and its checksum matches; else
    (None, one-line problem)."""
    try:
        man = json.loads(man_path.read_text())
        int(man["rows"]), str(man["sha256"]), str(man["verdicts_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, (f"{group}: baseline manifest {man_path} is missing, unreadable or incomplete (rows, sha256, "
                      f"verdicts_sha256); {regenerate_hint(group)}")
    if man.get("checksum") != _checksum({k: v for k, v in man.items() if k != "checksum"}):
        return None, f"{group}: baseline manifest {man_path} was edited (its checksum differs); {regenerate_hint(group)}"
    return man, None


def load_verdicts(group: str, baseline_dir: Path | None = None) -> tuple[dict | None, str | None]:
    """(claim -> status of the baseline's smoke verdicts, None), or (None, one-line problem) when the file is
    missing, unreadable, not what the manifest says, or not a claim -> status map."""
    baseline_dir = Path(baseline_dir or paths.PATHS.baselines)
    vpath = baseline_dir / f"{group}.verdicts.json"
    man, problem = _read_manifest(group, baseline_dir / f"{group}.manifest.json")
    if problem:
        return None, problem
    try:
        ok = sha256_file(vpath) == man["verdicts_sha256"]
        verdicts = json.loads(vpath.read_text()) if ok else None
    except (OSError, ValueError):
        return None, f"{group}: verdicts file {vpath} is missing or unreadable; {regenerate_hint(group)}"
    if not ok:
        return None, (f"{group}: verdicts file {vpath} does not match its manifest (edited: checksum differs); "
                      f"{regenerate_hint(group)}")
    if not isinstance(verdicts, dict) or any(c not in CLAIMS or not isinstance(s, str) for c, s in verdicts.items()):
        return None, f"{group}: verdicts file {vpath} is not a claim -> verdict map; {regenerate_hint(group)}"
    return verdicts, None


def load_baseline(group: str, baseline_dir: Path | None = None) -> tuple[pd.DataFrame | None, str | None]:
    """(baseline frame, None), or (None, one-line problem) when it is absent, truncated, edited or unreadable."""
    baseline_dir = Path(baseline_dir or paths.PATHS.baselines)
    path, man_path = baseline_dir / f"{group}.csv", baseline_dir / f"{group}.manifest.json"
    if not path.exists():
        return None, f"{group}: no baseline at {path}; {regenerate_hint(group)}"
    man, problem = _read_manifest(group, man_path)
    if problem:
        return None, problem
    want_rows, want_sha = int(man["rows"]), str(man["sha256"])
    try:
        got_sha = sha256_file(path)
    except OSError:
        return None, f"{group}: baseline {path} is unreadable; {regenerate_hint(group)}"
    if got_sha != want_sha:
        return None, (f"{group}: baseline {path} does not match its manifest (truncated or edited: checksum "
                      f"differs); {regenerate_hint(group)}")
    try:
        base = read_csv_checked(path)
    except BenchError as e:
        return None, f"{group}: {e}; {regenerate_hint(group)}"
    missing = [c for c in BASELINE_COLUMNS if c not in base.columns]
    if missing or len(base) != want_rows:
        what = f"missing columns {missing}" if missing else f"{len(base)} rows, manifest says {want_rows}"
        return None, f"{group}: baseline {path} is damaged ({what}); {regenerate_hint(group)}"
    base["value"] = pd.to_numeric(base["value"], errors="coerce")
    return base, None


def _where(group: str, key) -> str:
    claim, metric, model, data, method, seed, params, _ = key
    return f"{group} {claim} {metric} [model={model} data={data} method={method} seed={seed} {params}]"


def compare(group: str, run_dir: Path, baseline_dir: Path | None = None) -> list[str]:
    """Return one message per regression (empty list: same rows, all within bands, no verdict flipped)."""
    base, problem = load_baseline(group, baseline_dir)
    if problem:
        return [problem]
    new = read_results(run_dir)
    b, n = _keyed(base), _keyed(new)
    problems = [f"{_where(group, key)}: missing from the new run" for key in b.index.difference(n.index)]
    problems += [f"{_where(group, key)}: new in this run, not in the baseline ({regenerate_hint(group)} if intended)"
                 for key in n.index.difference(b.index)]
    for key in b.index.intersection(n.index, sort=False):
        row, got = b.loc[key], float(n.loc[key, "value"])
        want = float(row["value"])
        if math.isnan(want) and math.isnan(got):
            continue
        limit = row["atol"] + row["rtol"] * abs(want)
        if math.isnan(got) or math.isnan(want) or abs(got - want) > limit:
            old_sha, new_sha = str(row["model_sha256"]), str(n.loc[key, "model_sha256"])
            why = (f"; different base model (weights {old_sha[:12]} in the baseline, {new_sha[:12]} here)"
                   if old_sha != new_sha else "")
            problems.append(f"{_where(group, key)}: value moved {want:.6g} -> {got:.6g} "
                            f"(band +-{limit:.3g}: {row['band_reason']}){why}")
    old, problem = load_verdicts(group, baseline_dir)
    if problem:
        return problems + [problem]
    now = {v.claim.id: v.status for v in group_verdicts(group, run_dir, timings=False)}
    for cid, status in old.items():
        if now.get(cid) != status:
            problems.append(f"{group} {cid}: verdict flipped: {status!r} -> {now.get(cid)!r}")
    problems += [f"{group} {cid}: verdict {now[cid]!r} has no baseline verdict ({regenerate_hint(group)} if "
                 f"intended)" for cid in now if cid not in old]
    return problems


def base_model_note(group: str, run_dir: Path, baseline_dir: Path | None = None) -> str:
    """'' when every rung's weights hash equals the baseline's; else a line naming the rungs that differ."""
    base, problem = load_baseline(group, baseline_dir)
    if problem:
        return ""
    new = read_results(run_dir)
    old = dict(zip(base["model"], base["model_sha256"]))
    now = dict(zip(new["model"], new["model_sha256"]))
    differ = sorted(m for m in now if m in old and old[m] != now[m] and old[m] != "-")
    return (f"different base model for {', '.join(differ)}: its weights differ from the baseline's (pretrained "
            f"with other floats); toy values compared within their bands" if differ else "")


def compare_folders(theirs: Path, ours: Path, top: int = 15) -> list[str]:
    """Compare a results folder from another run (e.g. another machine) with ours, group by group:
    verdict changes first, then the rows whose values moved most relative to their regression bands
    (the group's REGRESS list; a ratio above 1 is outside the band). Lines of text for the terminal."""
    lines = []
    theirs_v = {v.claim.id: v.status for g in _groups(theirs) for v in group_verdicts(g, theirs / g)}
    ours_v = {v.claim.id: v.status for g in _groups(ours) for v in group_verdicts(g, ours / g)}
    changed = [(cid, ours_v.get(cid, "-"), theirs_v[cid]) for cid in CLAIMS if cid in theirs_v
               and theirs_v[cid] != ours_v.get(cid)]
    lines.append(f"Verdict changes ({len(changed)}):" if changed else "Verdict changes: none")
    lines += [f"  {cid}: {old!r} -> {new!r}" for cid, old, new in changed]
    moves = []
    for g in _groups(theirs):
        if not (ours / g / "results.csv").exists():
            continue
        bands = getattr(load_group(g), "REGRESS", []) if g in REPRO_GROUPS else []
        a, b = _keyed(read_results(ours / g)), _keyed(read_results(theirs / g))
        for key in a.index.intersection(b.index, sort=False):
            old, new = float(a.loc[key, "value"]), float(b.loc[key, "value"])
            if not (math.isfinite(old) and math.isfinite(new)) or old == new:
                continue
            atol, rtol, _ = band(key[1], str(a.loc[key, "scale"]), bands)
            limit = atol + rtol * abs(old)
            moves.append((abs(new - old) / limit if limit > 0 else math.inf, g, key, old, new, limit))
    moves.sort(key=lambda m: -m[0])
    lines.append(f"Largest value moves ({len(moves)} rows moved; move / band, > 1 is outside the band):")
    for ratio, g, key, old, new, limit in moves[:top]:
        lines.append(f"  {ratio:8.3g}  {_where(g, key)}: {old:.6g} -> {new:.6g} (band +-{limit:.3g})")
    return lines


def _groups(root: Path) -> list[str]:
    return [g for g in REPRO_GROUPS if (Path(root) / g / "results.csv").exists()]
