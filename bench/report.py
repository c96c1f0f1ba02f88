"""Verdicts and the top-level report.

`verdict(claim, results)` applies the registry's Checks to a group's stored results; nothing here
knows any claim's numbers. `write_readme()` regenerates `results/README.md`: one row per claim, with
links to each group's detail report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.claims import CLAIMS, OPS, Check, Claim
from bench.fileio import atomic_write_text
from bench.schema import read_meta, read_results

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NEEDS_PAPER = "not run (needs paper scale)"
NOT_RUN = "not run yet"
NO_RULE = "no rule yet"


@dataclass
class CheckResult:
    check: Check
    measured: float       # NaN when no rows matched
    n_rows: int
    passed: bool | None   # None when no rows matched


@dataclass
class Verdict:
    claim: Claim
    status: str
    measured: str
    checks: list[CheckResult]
    scale_run: str


def _select(df: pd.DataFrame, claim_id: str, check: Check) -> pd.DataFrame:
    rows = df[(df["claim"] == claim_id) & (df["metric"] == check.metric)]
    if rows.empty:
        return rows
    params = rows["params"].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
    mask = pd.Series(True, index=rows.index)
    for key, want in check.where:
        if key.startswith("params."):
            got = params.map(lambda p, k=key[len("params."):]: p.get(k))
        else:
            got = rows[key]
        mask &= got.map(lambda g, w=want: _same(g, w))
    return rows[mask]


def _same(got, want) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return float(got) == float(want)
        except (TypeError, ValueError):
            return False
    return str(got) == str(want)


def _reduce(values: pd.Series, agg: str) -> float:
    if agg == "count":
        return float(len(values))
    if values.empty:
        return math.nan
    if agg == "last":
        return float(values.iloc[-1])
    return float(getattr(values, agg)())


def evaluate_check(df: pd.DataFrame, claim_id: str, check: Check) -> CheckResult:
    rows = _select(df, claim_id, check)
    if rows.empty and check.agg != "count":
        return CheckResult(check, math.nan, 0, None)
    value = _reduce(rows["value"], check.agg)
    if math.isnan(value):
        passed = False  # a diverged or undefined measurement fails its check
    elif check.op == "~=":
        passed = abs(value - check.target) <= check.atol + check.rtol * abs(check.target)
    else:
        passed = bool(OPS[check.op](value, check.target))
    return CheckResult(check, value, len(rows), passed)


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def verdict(claim: Claim, df: pd.DataFrame, meta: dict | None = None) -> Verdict:
    mine = df[df["claim"] == claim.id]
    profile = (meta or {}).get("profile", "")
    scale_run = ", ".join(sorted(set(mine["scale"]))) + (f" ({profile} profile)" if profile and not mine.empty else "")
    if mine.empty:
        status = NEEDS_PAPER if claim.scales == ("paper",) else NOT_RUN
        return Verdict(claim, status, "", [], scale_run or "-")
    if not claim.checks:
        return Verdict(claim, NO_RULE, f"{len(mine)} rows recorded", [], scale_run)
    results = [evaluate_check(df, claim.id, c) for c in claim.checks]
    measured = "; ".join(f"{r.check.metric}={_fmt(r.measured)}" for r in results)
    if any(r.passed is None for r in results):
        status = NOT_RUN if all(r.passed is None for r in results) else NOT_REPRODUCED
        missing = [r.check.metric for r in results if r.passed is None]
        measured += f" (missing: {', '.join(sorted(set(missing)))})"
    else:
        status = REPRODUCED if all(r.passed for r in results) else NOT_REPRODUCED
    return Verdict(claim, status, measured, results, scale_run)


def group_verdicts(group: str, folder: Path | None = None) -> list[Verdict]:
    folder = folder or RESULTS_DIR / group
    df, meta = read_results(folder), read_meta(folder)
    return [verdict(c, df, meta) for c in CLAIMS.values() if c.group == group]


def all_verdicts(results_dir: Path | None = None) -> list[Verdict]:
    results_dir = results_dir or RESULTS_DIR
    by_group: dict[str, tuple] = {}
    out = []
    for claim in CLAIMS.values():
        if claim.group not in by_group:
            folder = results_dir / claim.group
            by_group[claim.group] = (read_results(folder), read_meta(folder))
        df, meta = by_group[claim.group]
        out.append(verdict(claim, df, meta))
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def checks_markdown(verdicts: list[Verdict]) -> str:
    """Per-check detail: the rule, the measured value and pass/fail, for a group's report.md."""
    lines = ["| claim | rule (fixed before the run) | measured | rows | pass |", "|---|---|---|---|---|"]
    for v in verdicts:
        for r in v.checks:
            mark = "-" if r.passed is None else ("yes" if r.passed else "no")
            lines.append(f"| {v.claim.id} | `{_cell(r.check.describe())}` {_cell(r.check.note)} | {_fmt(r.measured)} | {r.n_rows} | {mark} |")
    return "\n".join(lines) + "\n"


def summary_table(verdicts: list[Verdict], link_prefix: str = "") -> str:
    lines = ["| ID | claim | published | measured | scale run | verdict |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        c = v.claim
        link = f"[{c.id}]({link_prefix}{c.group}/report.md)" if v.status not in (NOT_RUN,) else c.id
        status = v.status
        if "paper" in c.scales and v.status in (REPRODUCED, NOT_REPRODUCED):
            status += "; paper scale: not run (needs paper scale)"
        lines.append(f"| {link} | {_cell(c.title)} | {_cell(c.published)} | {_cell(v.measured) or '-'} | "
                     f"{_cell(v.scale_run)} | **{status}** |")
    return "\n".join(lines) + "\n"


RUN_GROUPS = ("ladder", "lora", "rslora", "precision", "int8", "scale", "methods")


def runs_table(results_dir: Path, link_prefix: str = "") -> str:
    """One line per group folder: profile, when, wall time (from meta.json), commit, hardware."""
    lines = ["| group | profile | finished | wall time | commit | hardware |", "|---|---|---|---|---|---|"]
    for g in RUN_GROUPS:
        meta = read_meta(results_dir / g)
        if meta:
            wall = meta.get("wall_s")
            wall_text = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "-"
            lines.append(f"| [{g}]({link_prefix}{g}/report.md) | {meta.get('profile')} | {meta.get('finished')} | "
                         f"{wall_text} | {meta.get('git_commit')} | {_cell(meta.get('hardware', ''))} |")
        else:
            lines.append(f"| {g} | - | not run yet | | | |")
    return "\n".join(lines) + "\n"


def write_readme(results_dir: Path | None = None) -> Path:
    results_dir = results_dir or RESULTS_DIR
    verdicts = all_verdicts(results_dir)
    counts = pd.Series([v.status for v in verdicts]).value_counts()
    runs = runs_table(results_dir)
    text = "\n".join([
        "# Results",
        "",
        "Generated by `python -m bench report` from the stored results in this folder; do not edit by hand.",
        "Each verdict applies the decision rule that `bench/claims.py` fixed before the run to the measured rows.",
        "Toy-scale verdicts are about the direction of an effect on the embedded ladder (small models on a",
        "2-core CPU), not about the paper's numbers; paper-scale parts need `--model` with real checkpoints on a GPU.",
        "",
        "Verdict counts: " + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "",
        summary_table(verdicts),
        "## Runs",
        "",
        runs,
    ])
    path = atomic_write_text(results_dir / "README.md", text)
    if results_dir == RESULTS_DIR:
        update_root_readme(verdicts, runs_table(results_dir, link_prefix="results/"))
    return path


START, END = "<!-- results:start (generated by `python -m bench report`) -->", "<!-- results:end -->"


def update_root_readme(verdicts: list[Verdict], runs: str = "", readme: Path | None = None) -> None:
    """Replace the generated block of the top-level README with a compact verdict table."""
    readme = readme or RESULTS_DIR.parent / "README.md"
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return
    lines = ["| ID | claim | measured | scale run | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        measured = v.measured if len(v.measured) < 160 else v.measured[:157] + "..."
        lines.append(f"| {v.claim.id} | {_cell(v.claim.title)} | {_cell(measured) or '-'} | {_cell(v.scale_run)} | {v.status} |")
    block = START + "\n" + "\n".join(lines) + "\n\nRuns behind these verdicts (wall time as measured, on the hardware named):\n\n" + runs + END
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    atomic_write_text(readme, before + block + after)
