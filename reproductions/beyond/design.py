"""The beyond group's design (issue 33): could each decided part come out either way at this scale, and at what cost?

The pilot (pilot.py; its lines in pilot.jsonl beside this module) measured each arm's seed-to-seed noise at LoRA's
learning rate: test accuracy (a proportion of 600 test items) and log steps to the target validation loss. For every
part the registry decides with an Effect, `bench.power.design_power` simulates reruns of the part's own rule (the
engine's interval and test) at the published effect (or, where the paper gives plots only, the pilot's difference)
with that noise, at the seeds the profile runs; `needed` gives the seeds (and, for accuracies, the test items) that
would reach 0.8. The rows are recorded before any run trains (run.py); the registry's `designed(part)` precondition
makes a part without power "inconclusive (underpowered at this scale)".

    python -m reproductions.beyond.design --from reproductions/beyond/pilot.jsonl > reproductions/beyond/noise.json
    python -m reproductions.beyond.design              # the cpu profile's design table

noise.json: {"from": the pilot file, "lr": LoRA's pick, "lr_points": {arm: final validation loss per lr tried},
"target_loss", "arms": {arm: {lr: its pick, accuracy: {mean, sd, n, items}, log_steps: {mean, sd, n}, reached: share
of runs that reached the target, wall_s: mean wall seconds per run (a loaded machine)}}}. A proportion's published
effect that does not fit in [0, 1] beside LoRA's pilot mean (LoRA at the ceiling) gets power 0: no room.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import power
from bench.claims import get
from reproductions.beyond.settings import SETTINGS, Settings

NOISE_FILE = Path(__file__).with_name("noise.json")
PILOT_FILE = Path(__file__).with_name("pilot.jsonl")
POWER_TARGET = 0.8
N_SIM = 400                  # simulated reruns per power (Monte Carlo se <= 0.025), seeded


@dataclass(frozen=True)
class Part:
    claim: str
    part: str
    check: int               # index of the part's Effect in the claim's checks
    effect: float | None     # a - b in the rule's units (log steps for steps_to_target); None: the pilot's own
    source: str
    a: str                   # arm labels (rank 1)
    b: str
    metric: str              # "accuracy" | "log_steps"


PARTS = (
    Part("X1", "quality", 0, 0.0, "equivalence at no difference (QLoRA: 'matches' 16-bit LoRA)", "qlora", "lora",
         "accuracy"),
    Part("X3", "equal rank", 0, 0.037, "Liu et al. 2024 Table 1: LLaMA-7B commonsense 78.4 - 74.7", "dora", "lora",
         "accuracy"),
    Part("X4", "converges faster", 0, None, "Meng et al. 2024 (loss curves only): the pilot's difference", "lora",
         "pissa", "log_steps"),
    Part("X4", "ends better", 1, 0.0516, "Meng et al. 2024: Mistral-7B GSM8K 72.86 - 67.7", "pissa", "lora",
         "accuracy"),
    Part("X5", "converges faster", 0, math.log(2), "Hayou et al. 2024: 'up to ~2X SpeedUp' (log 2)", "lora",
         "loraplus", "log_steps"),
    Part("X5", "same final quality", 1, 0.0, "equivalence at no difference (Hayou et al. 2024's +1-2% lies inside "
         "the band)", "loraplus", "lora", "accuracy"),
)


# ---------------------------------------------------------------- the pilot's noise
def _first_below(hist, target: float, cap: int) -> tuple[int, int]:
    for step, loss in hist:
        if loss is not None and loss <= target:
            return int(step) + 1, 1       # history steps count from 0
    return cap, 0


def measure_noise(lines: list[dict], s: Settings, source: str = "") -> dict:
    """noise.json's content from the pilot's lines (module doc). Each arm's lr is the one whose rank-1 runs of that
    arm end with the lowest mean final validation loss (an arm run at one lr only: that lr); the noise is measured
    at it."""
    arms, picks, points = {}, {}, {}
    for arm in sorted({d["arm"] for d in lines}):
        mine = [d for d in lines if d["arm"] == arm and d["r"] == 1]
        by_lr = {}
        for d in mine:
            by_lr.setdefault(d["lr"], []).append(d["hist"][-1][1])
        lr = min(by_lr, key=lambda x: np.mean(by_lr[x]))
        picks[arm], points[arm] = lr, {f"{k:g}": float(np.mean(v)) for k, v in sorted(by_lr.items())}
        runs = [d for d in mine if d["lr"] == lr]
        acc = np.array([d["acc"] for d in runs], float)
        steps = [_first_below(d["hist"], s.target_loss, s.steps) for d in runs]
        logs = np.log([x for x, _ in steps])
        arms[arm] = {"lr": lr,
                     "accuracy": {"mean": float(acc.mean()), "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                                  "n": len(acc), "items": 600},
                     "log_steps": {"mean": float(logs.mean()),
                                   "sd": float(logs.std(ddof=1)) if len(logs) > 1 else 0.0, "n": len(logs)},
                     "reached": float(np.mean([r for _, r in steps])),
                     "wall_s": float(np.mean([d["wall"] for d in runs]))}
    return {"from": source, "lr": picks.get("lora"), "lr_points": points, "target_loss": s.target_loss,
            "arms": arms}


def load_noise(path: Path = NOISE_FILE) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- the design of a profile's plan
def design(s: Settings, noise: dict | None = None) -> list[dict]:
    """One dict per part: claim, part, effect, source, runs (0/1), seeds, items, power, fpr, needed_seeds,
    needed_items, minutes (the pilot's wall minutes per run x the planned runs of both arms; a loaded machine)."""
    noise = noise or load_noise()
    arms = noise["arms"]
    planned = {a for a, r in s.runs if r == 1}
    out = []
    for p in PARTS:
        if p.a not in arms or p.b not in arms:
            continue
        a, b = arms[p.a][p.metric], arms[p.b][p.metric]
        rule = get(p.claim).checks[p.check]
        runs = p.a in planned and p.b in planned
        n = s.seeds
        items = a["items"] if p.metric == "accuracy" else 0
        effect = p.effect if p.effect is not None else a["mean"] - b["mean"]
        nz = power.Noise(sd_a=a["sd"], sd_b=b["sd"], n_a=n, n_b=n, items=items,
                         base=min(max(b["mean"], 0.0), 1.0) if items else 0.5)
        lo, hi = sorted((b["mean"], b["mean"] + effect)) if p.a != "lora" else sorted((a["mean"] - effect, a["mean"]))
        room = not items or (lo >= 0 and hi <= 1)   # a proportion: the published effect must fit in [0, 1]
        if room:
            pw = power.design_power(rule, nz, n_sim=N_SIM, effect=effect)
            need_s = power.needed(rule, nz, effect=effect, what="seeds", n_sim=N_SIM)
            need_i = power.needed(rule, nz, effect=effect, what="items", n_sim=N_SIM) if items else None
        else:                                       # no design can show it: power 0, no count reaches 0.8
            pw, need_s, need_i = power.Power(0.0, math.nan, effect, (), 0), None, None
        minutes = (arms[p.a]["wall_s"] + arms[p.b]["wall_s"]) * n / 60 if runs else 0.0
        out.append({"claim": p.claim, "part": p.part, "effect": effect, "room": int(room),
                    "source": p.source + ("" if room else "; no room: the effect does not fit below the ceiling"),
                    "runs": int(runs),
                    "seeds": n, "items": items, "power": pw.power, "fpr": pw.fpr, "needed_seeds": need_s or 0,
                    "needed_items": need_i or 0, "minutes": minutes, "noise_from": noise.get("from", ""),
                    "a": a, "b": b})
    return out


def record(rec, s: Settings, noise: dict | None = None) -> list[dict]:
    """Write the design rows into a Recorder (before any run). Returns design()."""
    noise = noise or load_noise()
    rows = design(s, noise)
    for d in rows:
        p = {"part": d["part"], "effect": round(d["effect"], 6), "runs": d["runs"], "seeds": d["seeds"],
             "items": d["items"], "noise_from": d["noise_from"]}
        info = {"source": d["source"], "fpr": d["fpr"], "lr": noise.get("lr"),
                **{f"{x}_{k}": v for x in ("a", "b") for k, v in d[x].items()}}
        rec.add(d["claim"], "design_power", d["power"], unit="probability", scale="exact", params=p, info=info)
        rec.add(d["claim"], "design_needed_seeds", d["needed_seeds"], unit="seeds per arm (0: over 64)",
                scale="exact", params=p)
        if d["items"]:
            rec.add(d["claim"], "design_needed_items", d["needed_items"], unit="test items (0: over 10^6)",
                    scale="exact", params=p)
        rec.add(d["claim"], "design_minutes", d["minutes"], unit="min (pilot walls, loaded machine, x planned runs)",
                scale="exact", params=p, timing=True)
    return rows


def table(rows: list[dict]) -> str:
    """The design as a markdown table (the report's and the CLI's)."""
    from bench.report_tools import md_table
    body = [[d["claim"], d["part"], f"{d['effect']:+.3f}", d["source"], "yes" if d["runs"] else "no", d["seeds"],
             d["items"] or "-", f"{d['power']:.2f}", f"{d['fpr']:.3f}", d["needed_seeds"] or "> 64",
             (d["needed_items"] or "> 10^6") if d["items"] else "-",
             f"{d['minutes']:.0f}" if d["runs"] else "-"] for d in rows]
    return md_table(["claim", "part", "effect", "effect from", "run here", "seeds", "test items", "power",
                     "false-positive rate", "seeds for 0.8", "items for 0.8", "minutes (pilot walls)"], body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reproductions.beyond.design", description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", help="measure noise.json from this pilot.jsonl (printed to stdout)")
    ap.add_argument("--profile", default="cpu", help="print the design table of this profile (default cpu)")
    a = ap.parse_args(argv)
    if a.profile not in SETTINGS:
        print(f"error: unknown profile {a.profile!r}; choose from {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    if a.src:
        try:
            lines = [json.loads(x) for x in Path(a.src).read_text().splitlines() if x.strip()]
        except (OSError, ValueError) as e:
            print(f"error: cannot read the pilot lines {a.src!r}: {e}", file=sys.stderr)
            return 2
        json.dump(measure_noise(lines, SETTINGS["cpu"], Path(a.src).name), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    print(table(design(SETTINGS[a.profile])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
