"""Report regeneration: verdicts of the stored results, `results/README.md` and the root README's block.

The verdict engine lives in `bench.claims.engine`, the cells in `bench.claims.writers`; their names are
re-exported here for the harnesses' report modules.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.claims import CLAIMS, TRACKS, Claim, on_track
from bench.claims.engine import (BOUNDED, CEILING, DESIGN_POWER, INCONCLUSIVE, NEEDS_PAPER, NO_RULE,  # noqa: F401
                                 NOT_MEASURED, NOT_REPRODUCED, NOT_RUN, REPRODUCED, STRESS, CheckResult, Verdict,
                                 evaluate, evaluate_check, evaluate_effect, stands, stands_stressed, verdict)
from bench.claims.real import REAL_GROUP
from bench.claims.writers import (_cell, checks_markdown, outcome_text, prereg_cell, prereg_markdown,  # noqa: F401
                                  readme_table, summary_table, track_lines)
from bench.fileio import atomic_write_text
from bench.paths import PATHS
from bench.repro import REPRO_GROUPS
from bench.schema import read_meta, read_results

RESULTS_DIR = PATHS.results


def _with_timings(folder: Path) -> pd.DataFrame:
    """results.csv rows, plus timings.csv rows marked source = "timings" (Checks with source="timings")."""
    df, t = read_results(folder), read_results(folder, timing=True)
    return pd.concat([df.assign(source="results"), t.assign(source="timings")], ignore_index=True)


def real_claim(claim_id: str) -> Claim:
    """The claim as the real track decides it (`Claim.tracks["real"]`: its checks and preconditions, scale real)."""
    return CLAIMS[claim_id].on(REAL_GROUP)


def group_verdicts(group: str, folder: Path | None = None, timings: bool = True) -> list[Verdict]:
    """timings=False: decide from results.csv alone (parts read from wall-clock timings become 'not measured'),
    so the verdicts are the same on every run of one machine: what the regression gate compares."""
    folder = folder or RESULTS_DIR / group
    df = _with_timings(folder) if timings else read_results(folder).assign(source="results")
    meta = read_meta(folder)
    claims = [c for c in CLAIMS.values() if c.group == group] + list(on_track(group).values())
    return [verdict(c, df, meta) for c in claims]


def real_verdicts(results_dir: Path | None = None) -> dict[str, Verdict]:
    """{claim ID: its real-track verdict} from results/real ("not run yet" where the folder has no rows)."""
    return {v.claim.id: v for v in group_verdicts(REAL_GROUP, (results_dir or RESULTS_DIR) / REAL_GROUP)}


def track_verdicts(results_dir: Path | None = None) -> dict[str, dict[str, Verdict]]:
    """{track: {claim ID: its verdict on that track}} for every track of the registry (TRACKS), from
    results/<track>: the README tables' track columns."""
    return {t: {v.claim.id: v for v in group_verdicts(t, (results_dir or RESULTS_DIR) / t)} for t in TRACKS}


def all_verdicts(results_dir: Path | None = None) -> list[Verdict]:
    results_dir = results_dir or RESULTS_DIR
    by_group: dict[str, tuple] = {}
    out = []
    for claim in CLAIMS.values():
        if claim.group not in by_group:
            folder = results_dir / claim.group
            by_group[claim.group] = (_with_timings(folder), read_meta(folder))
        df, meta = by_group[claim.group]
        out.append(verdict(claim, df, meta))
    return out


RUN_GROUPS = ("ladder",) + REPRO_GROUPS    # the pretraining report, then every group (bench.repro's registry)


def runs_table(results_dir: Path, link_prefix: str = "") -> str:
    """One line per group folder: profile, when, wall time (from meta.json), commit, hardware."""
    lines = ["| group | profile | finished | wall time | commit | hardware | base models (weights sha256) |",
             "|---|---|---|---|---|---|---|"]
    for g in RUN_GROUPS:
        meta = read_meta(results_dir / g)
        if meta:
            wall = meta.get("wall_s")
            wall_text = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "-"
            if meta.get("jobs_from_cache"):      # a resumed run: its wall leaves out what an earlier run trained
                wall_text += f" (resumed: {meta['jobs_from_cache']} runs from the job cache)"
            lines.append(f"| [{g}]({link_prefix}{g}/report.md) | {meta.get('profile')} | {meta.get('finished')} | "
                         f"{wall_text} | {meta.get('git_commit')} | {_cell(meta.get('hardware', ''))} | "
                         f"{_cell(base_models_text(meta))} |")
        else:
            lines.append(f"| {g} | - | not run yet | | | | |")
    return "\n".join(lines) + "\n"


def base_models_text(meta: dict) -> str:
    """The run's rungs with the first 12 hex digits of their weights' sha256; rungs whose weights differ
    from the rung now in this machine's cache are marked (rebuilt since, or built on another CPU kind)."""
    from bench.provenance import stale_models
    models = {m: i for m, i in (meta.get("base_models") or {}).items() if i.get("sha256", "-") != "-"}
    if "base_models" not in meta:
        return "not recorded"
    if not models:
        return "-"
    stale = set(stale_models(models))
    return ", ".join(f"{m} {i['sha256'][:12]}" + (" (differs from this machine's cache)" if m in stale else "")
                     for m, i in sorted(models.items()))


def write_readme(results_dir: Path | None = None) -> Path:
    results_dir = results_dir or RESULTS_DIR
    verdicts = all_verdicts(results_dir)
    tracks = track_verdicts(results_dir)
    counts = pd.Series([v.status for v in verdicts]).value_counts()
    runs = runs_table(results_dir)
    text = "\n".join([
        "# Results",
        "",
        "Generated by `python -m bench report` from the stored results in this folder; do not edit by hand.",
        "Each verdict applies the decision rule of `bench/claims/` to the measured rows. The `rule` column says",
        "whether that rule was fixed before the run: \"fixed before the run\" when the fingerprint of its machine form",
        "that the run recorded equals the current one (`bench/prereg.py`); \"rule revised after the run (date)\" when",
        "not; \"not fingerprinted\" for runs from before fingerprints were recorded, with any history entry dated",
        "after the run (or on its day) named.",
        "Outcomes: reproduced / not reproduced / inconclusive (a precondition failed or is not measured yet, or the",
        "effect is below what the run can resolve; the reason is given) / not run. Effects carry 95% intervals from",
        "the seeds (bootstrap, t-scaled) plus the binomial error of the test items (`bench/stats.py`); the stored rows",
        "hold no per-item scores, so no item-level bootstrap. Claims with separable parts show each part's outcome.",
        "Toy-scale verdicts are about the direction of an effect on the embedded ladder (small models on a",
        "2-core CPU), not about the paper's numbers; paper-scale parts need `--model` with real checkpoints on a GPU.",
        "",
        "Verdict counts: " + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "",
        summary_table(verdicts, tracks=tracks),
        *track_lines(),
        "",
        "## Runs",
        "",
        runs,
    ])
    path = atomic_write_text(results_dir / "README.md", text)
    if results_dir == RESULTS_DIR:
        update_root_readme(verdicts, runs_table(results_dir, link_prefix="results/"), tracks=tracks)
    return path


START, END = "<!-- results:start (generated by `python -m bench report`) -->", "<!-- results:end -->"


def update_root_readme(verdicts: list[Verdict], runs: str = "", readme: Path | None = None,
                       real: dict | None = None, tracks: dict | None = None) -> None:
    """Replace the generated block of the top-level README with a compact verdict table (one column per track:
    `tracks` {track: {claim ID: verdict}}, or `real` for the real track's alone)."""
    readme = readme or RESULTS_DIR.parent / "README.md"
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return
    lines = [readme_table(verdicts, real=real, tracks=tracks).rstrip("\n"), "", *track_lines(), "",
             f"{len(verdicts)} claims. Each line links its group report, which gives every part's outcome and why, "
             "and one generated sentence per rule part; `python -m bench claims ID` shows a claim's whole rule and "
             "its history."]
    lines += ["", "`rule`: was the decision rule fixed before the run that decides it? (the run's recorded "
                  "fingerprint of the machine rule against the rule now, `bench/prereg.py`; runs from before "
                  "fingerprints: the rule at the run's commit, read from git, or the history dates)",
              "", "`power (FPR)`: for each part decided by an effect with an interval, the share of 1,000 simulated "
                  "reruns that would decide \"reproduced\" if the true difference were the published effect (for "
                  "\"matches\" and equivalence rules: no difference), with the seed spread, seed counts and test "
                  "items of the run's own rows (paired arms: the spread of their per-seed or per-window differences; "
                  "`bench/power.py`); FPR: the same share at the rule's null boundary. "
                  "`n/a`: the paper gives no effect size to aim at; `no room`: the published effect does not fit on "
                  "a proportion beside the other arm's level (an arm at 0.99 cannot gain 3.7 points); `-`: decided "
                  "by checks without an interval. A part that did not come out reproduced with power under 0.8, "
                  "and whose interval still holds the published effect, says \"underpowered\" in its group report, "
                  "with about how many seeds (or text windows) would reach 0.8; one that came out not reproduced "
                  "with power under 0.8 while its interval excludes the published effect says \"answered whatever "
                  "the power\"."]
    block = START + "\n" + "\n".join(lines) + "\n\nRuns behind these verdicts (wall time as measured, on the hardware named):\n\n" + runs + END
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    atomic_write_text(readme, before + block + after)
