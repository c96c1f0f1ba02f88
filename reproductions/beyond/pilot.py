"""The beyond group's pilot (issue 33): a few runs per arm to measure seed-to-seed noise and pick LoRA's learning rate,
before the design (design.py) sizes the deciding run. Kept as run, so the noise has a source.

    PYTHONPATH=. python -m reproductions.beyond.pilot lora:1:1e-2:0 dora:1:1e-2:0 ... > pilot.jsonl

Each argument is arm:rank:lr:seed (arms: settings.ARMS); one JSON line per run: the arm, rank, lr, seed, wall
seconds (a loaded machine: not a timing), test accuracy and the validation answer loss every 25 steps. The runs are
the cpu profile's (cpu-0.1m, next month, 1500 steps, batch 32, warmup 50, cosine, fixed budget, alpha 16, LoRA+
ratio 16). The stored pilot (pilot.jsonl, 2026-12-05, run from /tmp copies of this code on a loaded 2-core machine)
ran LoRA at lr 1e-3 / 3e-3 / 1e-2 / 3e-2 (seed 0; 1e-2 also seeds 1, 2), then every other arm at the pick (1e-2),
seeds 0 and 1.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import torch

from bench.methods import apply, make_config
from bench.profiles import get_profile
from bench.repro import RunContext
from bench.train import TrainConfig, answer_loss_eval, train
from reproductions.beyond.settings import ARMS, SETTINGS
from reproductions.scale.fitting import score, val_rows
from reproductions.scale.models import load_rung
from reproductions.scale.settings import Settings as ScaleSettings


def main(argv: list[str]) -> int:
    s = SETTINGS["cpu"]
    torch.set_num_threads(1)
    ctx = RunContext(get_profile("cpu"), (0,), Path("."))
    rc = load_rung(s.rung, ctx, ScaleSettings(tasks=("nextmonth",), n_per_person=s.n_per_person), ["lora"])
    for spec in argv:
        arm, r, lr, seed = spec.split(":")
        method, plus = ARMS[arm]
        model = copy.deepcopy(rc.model)
        torch.manual_seed(int(seed))
        model = apply(model, make_config(method, r=int(r), alpha=s.alpha))
        cfg = TrainConfig(lr=float(lr), steps=s.steps, batch_size=s.batch, warmup=s.warmup, seed=int(seed),
                          progress=False, eval_every=s.eval_every, loraplus_ratio=s.loraplus_ratio if plus else None)
        t = time.time()
        res = train(model, rc.data["nextmonth"]["train"], cfg, eval_fn=answer_loss_eval(val_rows(rc, "nextmonth")))
        print(json.dumps(dict(arm=arm, r=int(r), lr=float(lr), seed=int(seed), wall=round(time.time() - t, 1),
                              acc=score(rc, "nextmonth", model)["accuracy"],
                              hist=[(h["step"], h.get("val_loss")) for h in res.history if "val_loss" in h])),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
