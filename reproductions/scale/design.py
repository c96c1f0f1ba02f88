"""The scale group's design (issue 30): could each decided part come out either way, and what does it cost?

Before a run, every part the registry decides with an Effect gets its design power: the share of simulated reruns
that decide "reproduced" at the published effect (`bench.power.design_power`, the engine's own interval and test),
with the noise a stored run measured (`noise.json` beside this module: per part, each arm's seed sd, seed count,
mean and test items, and the stored wall time per run). The plan a profile runs is sized so that a part it decides
reaches power >= POWER_TARGET; a part that cannot within the budget is not run there, and its precondition
`design_power >= 0.8` makes it "inconclusive (underpowered at this scale)" with the seeds or test items it would
need (`design_needed_*` rows). P3's trend ('gap closes') is powered like the rest: its arms are the per-seed gaps (full
FT minus prompt tuning) on the smallest and the largest rung, and the effect it is powered for is the whole stored
smallest-rung gap closing; a row per task (`design_task_with_room`) says whether the stored run left full FT below the
ceiling on >= 3 rungs with a gap to close at the smallest.

    python -m reproductions.scale.design --from a/results.csv --timings a/timings.csv --commit 5ea3e6d --parts all \
        --from b/results.csv --timings b/timings.csv --commit cefa790 --parts 'P1/vs hand-written,P3/length ablation' \
        > reproductions/scale/noise.json                        # measure the noise, pooled over stored runs (each
                                                                # counting for the parts whose protocol it shares)
    python -m reproductions.scale.design                        # print the cpu profile's design table

Rows (claim = the part's claim, metric design_*): design_power (at the seeds the profile runs, or 3 where it runs
none), design_needed_seeds / design_needed_items (0: more than the search limit, SEEDS_LIMIT seeds / 10^6 items;
items only for accuracies), design_minutes (the stored run's wall minutes per run x the runs the profile plans, full-length search points included; 0: not run).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import power
from bench.claims import get
from reproductions.scale.derive import runs_frame, trend_rungs
from reproductions.scale.settings import CLASSIFICATION, METHODS, METRIC, Settings, grid, seeds_in

NOISE_FILE = Path(__file__).with_name("noise.json")
POWER_TARGET = 0.8
N_SIM = 400                  # simulated reruns per power (Monte Carlo se <= 0.025); seeded: the same on every machine
SEEDS_LIMIT = 384            # the most seeds per arm `needed` tries (3 doubled 7 times): A1's band needs ~100
DEFAULT_SEEDS = 3


@dataclass(frozen=True)
class Part:
    """One decided part of a claim: its Effect (index into the claim's checks), the published effect it is powered
    for (a - b; None: the stored run's own difference, where the paper gives a plot only) and the stored rows of
    each arm (runs_frame columns; rung "smallest" / "largest" of the stored run)."""

    claim: str
    part: str
    check: int
    effect: float | None
    source: str              # where the effect comes from
    task: str
    rung: str
    a: tuple
    b: tuple
    fixed_b: bool = False    # arm b is one deterministic evaluation (the zero-shot model)
    gap: bool = False        # the arms are gaps (a's method minus b's, per seed) on the smallest (a) and the largest
    #                          (b) rung of P3's trend; the effect is the stored smallest-rung gap closing

    def runs_in(self, s: Settings) -> bool:
        """Whether the profile's plan runs both arms of this part."""
        if self.task not in s.tasks:
            return False
        if self.gap:       # both methods on >= 3 rungs (a rung's name, or a place of the profile's rungs)
            only, names = s.task_methods(self.task), list(s.rungs or ())
            methods = [dict(x)["method"] for x in (self.a, self.b)]
            if not names:          # the profile's ladder (gpu): every rung runs the task unless task_rungs says
                return (only is None or set(methods) <= set(only)) and s.task_rungs(self.task) is None
            rungs = [names[{"smallest": 0, "middle": len(names) // 2, "largest": -1}[r]]
                     if r in ("smallest", "middle", "largest") else r for r in (s.task_rungs(self.task) or names)]
            both = [r for r in dict.fromkeys(rungs)
                    if all(seeds_in(s, names, m, self.task, r, 1) > 0 for m in methods)]
            return (only is None or set(methods) <= set(only)) and len(both) >= 3
        arms = dict(self.a), dict(self.b)
        phases = {x.get("phase") for x in arms}
        methods = {x.get("method") for x in arms}
        if "lowdata" in phases:
            return bool(s.low_data_sizes)
        if "ablation" in phases:
            b = arms[1]
            return (s.ablation_task == self.task and
                    (b.get("n") in s.ablation_lengths if "n" in b else b.get("init") in s.ablation_inits))
        only = s.task_methods(self.task)
        rungs = s.task_rungs(self.task)
        return ((only is None or all(m in only for m in methods - {"prompt_design"}))
                and (rungs is None or self.rung in rungs))


def _arm(**kw) -> tuple:
    return tuple(sorted(kw.items()))


GAP = (("method", "full"), ("phase", "main")), (("method", "prompt"), ("phase", "main"))   # P3's gap: full - prompt
PARTS = (
    Part("P3", "gap closes", 0, None, "Lester et al. 2021 Fig. 1 (plot only): prompt tuning matches model tuning at "
         "the largest model, i.e. the stored smallest-rung gap closes", "d2t", "smallest", *GAP, gap=True),
    Part("P1", "vs hand-written", 0, 0.073, "Liu et al. 2021 Table 3: LAMA-34k 43.3 -> 50.6, the smaller of its gains",
         "knowledge", "largest", _arm(phase="main", method="ptuning"),
         _arm(phase="zeroshot", method="prompt_design"), fixed_b=True),
    Part("P2", "largest rung", 0, 0.015, "Li & Liang 2021 Table 1: GPT-2 Medium E2E BLEU 69.7 - 68.2",
         "d2t", "largest", _arm(phase="main", method="prefix"), _arm(phase="main", method="full")),
    Part("P2", "low data", 1, 0.029, "Li & Liang 2021 Sec. 6.3: +2.9 BLEU over 50-500 examples",
         "d2t", "largest", _arm(phase="lowdata", method="prefix"), _arm(phase="lowdata", method="full")),
    Part("P3", "length ablation", 1, None, "Lester et al. 2021 Fig. 3a (plot only): the stored run's difference",
         "nextmonth", "smallest", _arm(phase="main", method="prompt"), _arm(phase="ablation", method="prompt", n=1)),
    Part("P3", "init ablation", 2, None, "Lester et al. 2021 Fig. 3b (plot only): the stored run's difference",
         "nextmonth", "smallest", _arm(phase="main", method="prompt"),
         _arm(phase="ablation", method="prompt", init="random")),
    Part("A1", "next month", 0, 0.0, "equivalence at no difference (the band is the paper's 0.4 points)",
         "nextmonth", "largest", _arm(phase="main", method="full"), _arm(phase="main", method="adapters")),
    Part("A1", "data-to-text", 1, 0.0, "equivalence at no difference (the band is the paper's 0.4 points)",
         "d2t", "largest", _arm(phase="main", method="full"), _arm(phase="main", method="adapters")),
)


# ---------------------------------------------------------------- measuring the noise of a stored run
def _filter(runs: pd.DataFrame, task: str, arm: tuple, metric: str) -> pd.DataFrame:
    d = runs[(runs["task"] == task) & (runs["metric"] == metric)]
    for k, v in arm:
        d = d[d[k] == v]
    return d


def _select(runs: pd.DataFrame, task: str, rung: str, arm: tuple, metric: str) -> pd.DataFrame:
    """The arm's rows on the stored run's smallest or largest rung (of the rungs the arm ran on)."""
    d = _filter(runs, task, arm, metric)
    if d.empty:
        return d
    sizes = d.drop_duplicates("model").sort_values("rung_params")["model"].tolist()
    return d[d["model"] == (sizes[0] if rung == "smallest" else sizes[-1])]


def _arm_noise(d: pd.DataFrame) -> dict:
    per_seed = d.groupby("seed")["value"].mean()
    v = per_seed.to_numpy(float)
    items = d["n_test"].dropna()
    return {"mean": float(v.mean()) if len(v) else math.nan,
            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v)), "model": str(d["model"].iloc[0]),
            "items": int(items.iloc[0]) if len(items) else 0}


def _walls(timings: pd.DataFrame | None, task: str, rung_model: str, arm: tuple) -> float:
    """Mean stored wall seconds of one run of the arm (NaN: none stored)."""
    if timings is None or timings.empty:
        return math.nan
    d = _filter(runs_frame(timings), task, arm, "run_wall_s")
    d = d[d["model"] == rung_model]
    return float(d["value"].mean()) if len(d) else math.nan


def measure_noise(results: pd.DataFrame, timings: pd.DataFrame | None = None, commit: str = "",
                  parts: tuple[str, ...] | None = None) -> dict:
    """{"from": commit, "parts": {"<claim>/<part>": {"a": arm noise, "b": arm noise}}, "room": P3's trend} from a
    stored run's rows (results.csv, timings.csv); parts: only these "<claim>/<part>" keys (None: every part), e.g.
    the parts whose protocol the run shares with the plan. ValueError on an unknown key."""
    keys = {f"{p.claim}/{p.part}" for p in PARTS}
    if parts is not None and set(parts) - keys:
        raise ValueError(f"unknown part(s) {sorted(set(parts) - keys)}; choose from {', '.join(sorted(keys))}")
    runs = runs_frame(results)
    out = {"from": commit, "parts": {}}
    for p in PARTS:
        if parts is not None and f"{p.claim}/{p.part}" not in parts:
            continue
        metric = METRIC[p.task]
        if p.gap:
            arms = _gap_noise(runs, timings, p)
            if arms:
                out["parts"][f"{p.claim}/{p.part}"] = arms
            continue
        arms = {}
        for side, arm in (("a", p.a), ("b", p.b)):
            d = _select(runs, p.task, p.rung, arm, metric)
            if d.empty:
                continue
            arms[side] = {**_arm_noise(d), "wall_s": _walls(timings, p.task, str(d["model"].iloc[0]), arm)}
        if len(arms) == 2:
            out["parts"][f"{p.claim}/{p.part}"] = arms
    out["room"] = _room(runs)
    return out


def _gap_noise(runs: pd.DataFrame, timings: pd.DataFrame | None, p: Part) -> dict:
    """P3's trend as two arms: the per-seed gap (a's method minus b's, seeds both ran) on the smallest (a) and the
    largest (b) rung that ran both methods; {} with fewer than 2 such rungs. Walls per arm: wall_<method>_s on its
    rung, wall_s their sum; a's trend_wall_s: one seed of both methods on every such rung."""
    metric = METRIC[p.task]
    d = {side: _filter(runs, p.task, arm, metric) for side, arm in (("a", p.a), ("b", p.b))}
    meth = {side: dict(arm)["method"] for side, arm in (("a", p.a), ("b", p.b))}
    rungs = trend_rungs(runs, p.task, (meth["a"], meth["b"]))
    if len(rungs) < 2:
        return {}
    walls = {m: {x: _walls(timings, p.task, m, arm) for x, arm in (("a", p.a), ("b", p.b))} for m in rungs}
    out = {}
    for side, m in (("a", rungs[0]), ("b", rungs[-1])):
        fa = d["a"][d["a"]["model"] == m].groupby("seed")["value"].mean()
        fb = d["b"][d["b"]["model"] == m].groupby("seed")["value"].mean()
        common = sorted(set(fa.index) & set(fb.index))
        gaps = pd.DataFrame({"seed": common, "value": [fa[k] - fb[k] for k in common], "model": m, "n_test": None})
        out[side] = {**_arm_noise(gaps), "wall_s": walls[m]["a"] + walls[m]["b"],
                     f"wall_{meth['a']}_s": walls[m]["a"], f"wall_{meth['b']}_s": walls[m]["b"]}
    out["a"]["trend_wall_s"] = sum(w["a"] + w["b"] for w in walls.values())
    out["a"]["rungs"] = len(rungs)
    return out


def _room(runs: pd.DataFrame) -> dict:
    """P3's trend: per task the stored run ran full FT and prompt tuning on, whether full FT stays below the
    ceiling (seed mean <= 0.99) on every rung (>= 3) and prompt tuning trails it at the smallest rung (a gap to
    close)."""
    out = {}
    main = runs[runs["phase"] == "main"]
    for task in METRIC:
        m = main[(main["task"] == task) & (main["metric"] == METRIC[task])]
        cells = m.groupby(["model", "method"])["value"].mean()
        rungs = m.drop_duplicates("model").sort_values("rung_params")["model"].tolist()
        if not rungs or not all((r, x) in cells for r in rungs for x in ("full", "prompt")):
            continue
        full = [float(cells[(r, "full")]) for r in rungs]
        gap0 = full[0] - float(cells[(rungs[0], "prompt")])
        out[task] = {"rungs": len(rungs), "full_max": max(full), "gap_smallest": gap0,
                     "room": int(max(full) <= 0.99 and gap0 > 0 and len(rungs) >= 3)}
    return out


def pool_noise(runs: list[dict]) -> dict:
    """One noise dict from several `measure_noise` dicts (oldest first): per part and arm, the seeds add up, the
    mean is the seed-weighted mean, the sd the pooled within-run seed sd (a shift between runs -- another
    machine's ladder -- is not seed noise); test items, rung and wall time per run are the latest run's. P3's
    room per task: the run with the most rungs of it (the latest on a tie). Each part names the runs it pools
    ("from")."""
    out = {"from": "+".join(r.get("from", "") for r in runs), "parts": {}, "room": {}}
    for key in dict.fromkeys(k for r in runs for k in r["parts"]):
        have = [r["parts"][key] for r in runs if key in r["parts"]]
        out["parts"][key] = {side: _pool_arm([h[side] for h in have]) for side in ("a", "b")}
        out["parts"][key]["from"] = "+".join(r.get("from", "") for r in runs if key in r["parts"])
    for r in runs:
        for task, facts in r.get("room", {}).items():
            if facts["rungs"] >= out["room"].get(task, {"rungs": 0})["rungs"]:
                out["room"][task] = facts
    return out


def _pool_arm(arms: list[dict]) -> dict:
    n = sum(a["n"] for a in arms)
    df = sum(a["n"] - 1 for a in arms)
    walls = [a["wall_s"] for a in arms if a["wall_s"] == a["wall_s"]]
    return {**arms[-1], "n": n, "mean": sum(a["n"] * a["mean"] for a in arms) / n,
            "sd": math.sqrt(sum((a["n"] - 1) * a["sd"] ** 2 for a in arms) / df) if df else 0.0,
            "wall_s": walls[-1] if walls else math.nan}


def load_noise(path: Path = NOISE_FILE) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- the design of a profile's plan
def _noise(arms: dict, p: Part, seeds: int) -> power.Noise:
    a, b = arms["a"], arms["b"]
    items = a["items"] if p.task in CLASSIFICATION else 0
    # an ablation arm runs the same seeds as the main runs it is compared with (Sweep.ablations)
    return power.Noise(sd_a=a["sd"], sd_b=0.0 if p.fixed_b else b["sd"], n_a=seeds, n_b=1 if p.fixed_b else seeds,
                       items=items, base=min(max(b["mean"], 0.0), 1.0), fixed_b=p.fixed_b)


def planned_seeds(p: Part, s: Settings, seeds: int) -> int:
    """The seeds the profile's plan gives the part's arm a (main runs: Settings.seed_cells / seed_counts)."""
    a = dict(p.a)
    if a.get("phase") != "main":
        return seeds
    names = list(s.rungs or ())     # the profile's rungs where it names them (a seed_cells entry may name a rung)
    return seeds_in(s, names or None, a["method"], p.task, names[0 if p.rung == "smallest" else -1] if names
                    else p.rung, seeds)


@functools.lru_cache(maxsize=256)
def _part_power(rule, nz: power.Noise, effect: float) -> tuple:
    """(Power, seeds for 0.8, items for 0.8 or None) of one part. Seeded simulations: a pure function of its
    arguments (the rule is a frozen Check / Effect), so it is computed once per process -- every run of the group
    in one process (the test suite's) records the same design rows without simulating them again."""
    pw = power.design_power(rule, nz, n_sim=N_SIM, effect=effect)
    need_s = power.needed(rule, nz, effect=effect, what="seeds", n_sim=N_SIM, limit=SEEDS_LIMIT)
    need_i = power.needed(rule, nz, effect=effect, what="items", n_sim=N_SIM) if nz.items else None
    return pw, need_s, need_i


def _search_runs(s: Settings, p: Part, arm: tuple) -> int:
    """Full-length search runs an arm adds besides its seeds: on a task searched with full runs (Settings.search_share
    None) the grid's other starting points (the pick's run is seed 0; an edge pick adds more). Short points: 0."""
    a = dict(arm)
    if a.get("phase") != "main" or s.search_share(p.task) is not None or a.get("method") not in METHODS:
        return 0
    return len(grid(s, a["method"], p.task)) - 1


def design(s: Settings, seeds: int, noise: dict | None = None) -> list[dict]:
    """One dict per part: claim, part, effect, source, runs (0/1), seeds, power, needed_seeds, needed_items, minutes
    (stored wall minutes of the planned runs; 0 when the profile runs none), noise (the arms)."""
    noise = noise or load_noise()
    out = []
    for p in PARTS:
        arms = noise["parts"].get(f"{p.claim}/{p.part}")
        if arms is None:
            continue
        rule = get(p.claim).checks[p.check]
        runs = p.runs_in(s)
        n = planned_seeds(p, s, seeds) if runs else DEFAULT_SEEDS
        effect = p.effect if p.effect is not None else arms["a"]["mean"] - (0.0 if p.gap else arms["b"]["mean"])
        nz = _noise(arms, p, n)
        pw, need_s, need_i = _part_power(rule, nz, effect)
        if p.gap:           # every rung of the trend, n seeds of both methods, and the two search rungs' points
            walls = [(arms["a"].get("trend_wall_s", math.nan), n)]
            walls += [(arms[x][f"wall_{dict(arm)['method']}_s"], _search_runs(s, p, arm))
                      for x in ("a", "b") for arm in (p.a, p.b)]
        else:
            walls = [(arms[x]["wall_s"], n + _search_runs(s, p, arm)) for x, arm in (("a", p.a), ("b", p.b))
                     if not (x == "b" and p.fixed_b)]
        minutes = sum(w * k for w, k in walls if w == w) / 60 if runs else 0.0
        out.append({"claim": p.claim, "part": p.part, "effect": effect, "source": p.source, "runs": int(runs),
                    "seeds": n, "items": nz.items, "power": pw.power, "fpr": pw.fpr,
                    "needed_seeds": need_s or 0, "needed_items": need_i or 0, "minutes": minutes,
                    "noise_from": arms.get("from", noise.get("from", "")), "arms": arms})
    return out


def room(noise: dict | None = None) -> dict:
    """P3's trend: {task: room facts} of the stored run (room: 1 where the task had room for a trend)."""
    return (noise or load_noise()).get("room", {})


def record(rec, s: Settings, seeds: int, noise: dict | None = None) -> list[dict]:
    """Write the design rows into a Recorder (before any run: they are the plan's, not the run's). Returns design()."""
    noise = noise or load_noise()            # read once: design rows and P3's room row
    rows = design(s, seeds, noise)
    for d in rows:
        p = {"part": d["part"], "effect": round(d["effect"], 6), "runs": d["runs"], "seeds": d["seeds"],
             "items": d["items"], "noise_from": d["noise_from"]}
        info = {"source": d["source"], "fpr": d["fpr"], "seeds_limit": SEEDS_LIMIT,
                **{f"{x}_{k}": v for x in ("a", "b") for k, v in d["arms"][x].items() if k != "model"}}
        rec.add(d["claim"], "design_power", d["power"], unit="probability", scale="exact", params=p, info=info)
        rec.add(d["claim"], "design_needed_seeds", d["needed_seeds"], unit=f"seeds per arm (0: over {SEEDS_LIMIT})",
                scale="exact", params=p)
        if d["items"]:
            rec.add(d["claim"], "design_needed_items", d["needed_items"], unit="test items (0: over 10^6)",
                    scale="exact", params=p)
        rec.add(d["claim"], "design_minutes", d["minutes"], unit="min (stored run's walls x planned runs)",
                scale="exact", params=p, timing=True)
    for task, facts in sorted(room(noise).items()):
        rec.add("P3", "design_task_with_room", facts["room"], unit="flag", scale="exact",
                params={"part": "gap closes", "task": task, "noise_from": noise.get("from", "")}, info=facts)
    return rows


def table(rows: list[dict]) -> str:
    """The design as a markdown table (the report's and the CLI's)."""
    from bench.report_tools import md_table
    body = [[d["claim"], d["part"], f"{d['effect']:+.3f}", d["source"], "yes" if d["runs"] else "no", d["seeds"],
             d["items"] or "-", f"{d['power']:.2f}", f"{d['fpr']:.3f}",
             d["needed_seeds"] or f"> {SEEDS_LIMIT}", (d["needed_items"] or "> 10^6") if d["items"] else "-",
             f"{d['minutes']:.0f}" if d["runs"] else "-"] for d in rows]
    return md_table(["claim", "part", "effect", "effect from", "run here", "seeds", "test items", "power",
                     "false-positive rate", "seeds for 0.8", "items for 0.8", "minutes (stored walls)"], body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reproductions.scale.design", description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", action="append", default=[],
                    help="measure noise.json from this results.csv (printed to stdout); repeat to pool several "
                         "stored runs, oldest first")
    ap.add_argument("--timings", action="append", default=[],
                    help="the same run's timings.csv (wall seconds per run); one per --from, in order")
    ap.add_argument("--commit", action="append", default=[],
                    help="the stored run's git commit (recorded as the noise's source); one per --from, in order")
    ap.add_argument("--parts", action="append", default=[],
                    help="the parts the same run's noise counts for, comma-separated claim/part keys (e.g. "
                         "'P2/largest rung'), or 'all'; one per --from, in order (default: all)")
    ap.add_argument("--profile", default="cpu", help="print the design table of this profile (default cpu)")
    a = ap.parse_args(argv)
    if a.src:
        if any(len(x) not in (0, len(a.src)) for x in (a.timings, a.commit, a.parts)):
            print("error: give --timings, --commit and --parts once per --from, or not at all", file=sys.stderr)
            return 2
        parts = [None if not a.parts or a.parts[i] == "all" else tuple(k.strip() for k in a.parts[i].split(","))
                 for i in range(len(a.src))]
        try:
            runs = [measure_noise(pd.read_csv(src), pd.read_csv(a.timings[i]) if a.timings else None,
                                  a.commit[i] if a.commit else "", parts[i]) for i, src in enumerate(a.src)]
        except ValueError as e:
            print(f"error: --parts: {e}", file=sys.stderr)
            return 2
        json.dump(runs[0] if len(runs) == 1 else pool_noise(runs), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    from reproductions.scale.settings import SETTINGS
    if a.profile not in SETTINGS:
        print(f"error: unknown profile {a.profile!r}; choose from {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    print(table(design(SETTINGS[a.profile], DEFAULT_SEEDS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
