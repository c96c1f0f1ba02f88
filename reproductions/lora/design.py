"""L4's design (issue 31 item 4): can part 'quality flat in r' come out either way at this scale?

The part is an equivalence: LoRA r = 64 minus r = 1 in seed-mean test accuracy inside +-5 points, with the
binomial error of the knowledge task's test items in the interval. `bench.power.design_power` simulates reruns of
that rule at no difference (the paper's ranks agree within half a point) with the seed noise a stored cpu run
measured (noise.json beside this module) at the seeds this run trains; `needed` gives the seeds and test items that
would reach 0.8. The rows are recorded before any run trains (run.py), and the registry's `designed(part)`
precondition makes the part "inconclusive (underpowered at this scale)" when the design cannot tell.

    python -m reproductions.lora.design --from results/lora > reproductions/lora/noise.json   # measure the noise
    python -m reproductions.lora.design                                                        # the design table

noise.json: {"from": the run it was measured on (git commit, rung), "items": test items, "arms": {"r1" | "r64":
{"accuracy": [per-seed test accuracy, seed order]}}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench import power
from bench.claims import get
from bench.schema import Recorder

NOISE_FILE = Path(__file__).with_name("noise.json")
PART = "quality flat in r"
EFFECT = 0.0            # the paper: r = 1..64 within 0.5 points (Hu et al. Table 6); equivalence at no difference
N_SIM = 400             # simulated reruns per power (Monte Carlo se <= 0.025), seeded
RANKS = (64, 1)         # arm a, arm b of the rule


def measure_noise(results_dir: Path) -> dict:
    """noise.json's content from a stored lora run (results.csv, meta.json): the per-seed test accuracy of LoRA at
    r = 64 and r = 1 (the rule's arms)."""
    import pandas as pd

    df = pd.read_csv(results_dir / "results.csv")
    meta = json.loads((results_dir / "meta.json").read_text())
    acc = df[(df["metric"] == "l4_test_accuracy") & (df["method"] == "lora")]
    arms = {}
    for r in RANKS:
        rows = acc[acc["params"].map(lambda p: json.loads(p).get("r")) == r].sort_values("seed")
        arms[f"r{r}"] = {"accuracy": [float(v) for v in rows["value"]]}
    items = {json.loads(i).get("n_test") for i in acc["info"]}
    return {"from": f"{meta.get('git_commit')} {meta.get('rung') or meta.get('settings', {}).get('rung', '')}".strip(),
            "items": int(items.pop()) if len(items) == 1 else 0, "arms": arms}


def design(n_seeds: int, noise: dict | None = None) -> dict:
    """The part's power at EFFECT and its false-positive rate at the band's edge, at `n_seeds` seeds per arm, with
    the stored noise (paired by seed, as the engine pairs arms that ran the same seeds); the seeds and items that
    would give 0.8 (None: more than the search's limit)."""
    noise = noise or json.loads(NOISE_FILE.read_text())
    a, b = (np.asarray(noise["arms"][f"r{r}"]["accuracy"], float) for r in RANKS)
    paired = a.size == b.size > 1
    nz = power.Noise(sd_a=float(a.std(ddof=1)), sd_b=float(b.std(ddof=1)), n_a=n_seeds, n_b=n_seeds,
                     items=int(noise["items"]), base=float(b.mean()),
                     sd_pair=float((a - b).std(ddof=1)) if paired else None)
    rule = get("L4").checks[0]
    pw = power.design_power(rule, nz, n_sim=N_SIM, effect=EFFECT)
    return {"power": pw.power, "fpr": pw.fpr, "seeds": n_seeds, "items": nz.items, "noise_from": noise["from"],
            "needed_seeds": power.needed(rule, nz, effect=EFFECT, what="seeds", n_sim=N_SIM),
            "needed_items": power.needed(rule, nz, effect=EFFECT, what="items", n_sim=N_SIM),
            "sd_a": nz.sd_a, "sd_b": nz.sd_b, "sd_pair": nz.sd_pair}


def record(rec: Recorder, n_seeds: int, noise: dict | None = None) -> dict:
    """Write L4's design rows (before any run): design_power, design_needed_seeds, design_needed_items."""
    d = design(n_seeds, noise)
    p = {"part": PART, "effect": EFFECT, "seeds": d["seeds"], "items": d["items"], "noise_from": d["noise_from"]}
    info = {"fpr": d["fpr"], "sd_a": d["sd_a"], "sd_b": d["sd_b"], "sd_pair": d["sd_pair"],
            "source": "Hu et al. 2021 Table 6: ranks 1-64 within 0.5 points (equivalence at no difference)"}
    rec.add("L4", "design_power", d["power"], unit="probability", scale="exact", params=p, info=info)
    rec.add("L4", "design_needed_seeds", d["needed_seeds"] or 0, unit="seeds per arm (0: over the limit)",
            scale="exact", params=p)
    rec.add("L4", "design_needed_items", d["needed_items"] or 0, unit="test items (0: over 10^6)", scale="exact",
            params=p)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reproductions.lora.design", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", type=Path, help="a stored lora results folder: print its noise.json")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per arm of the planned run (default 3)")
    a = ap.parse_args(argv)
    if a.src:
        if not (a.src / "results.csv").is_file():
            print(f"design: no results.csv in {a.src}", file=sys.stderr)
            return 2
        print(json.dumps(measure_noise(a.src), indent=1, sort_keys=True))
        return 0
    d = design(a.seeds)
    print(f"L4 '{PART}': power {d['power']:.2f} at {EFFECT:+g} (false-positive rate {d['fpr']:.3f}) with {a.seeds} "
          f"seeds x {d['items']} items; 0.8 needs {d['needed_seeds'] or '> limit'} seeds or "
          f"{d['needed_items'] or '> 10^6'} items (noise from {d['noise_from']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
