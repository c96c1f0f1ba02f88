"""What the rsLoRA sweep runs: the group's names, its regression bands and its settings per profile.

Trade-offs, per profile (the run's cost is ranks x 2 scalings x seeds x lrs runs of `steps` optimizer steps, plus
the lr search: ranks x 2 scalings x len(search_lrs) .. len(search_lrs) + search_extensions seed-0 runs, and
ranks x 2 scalings x seeds tuned runs, fewer where a pick equals one of `lrs`: those runs are reused, not repeated):
- smoke: the gate's run; a narrow rung (d = 64) and short runs, so CI spends ~1-2 min on it; one worker, so
  the gate's numbers never depend on the machine's core count;
- cpu: the full toy run on cpu-1m (d = 128); its 72 runs are independent, so they run as jobs in two
  one-thread workers (bench.jobs) instead of one serial loop; results are replayed in plan order, so the
  worker count changes the wall time only;
- gpu: a larger rung and longer runs, one worker (one accelerator).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import BenchError
from bench.repro import RunContext, settings_with_overrides
from bench.values import LEARNING_RATE, NONNEG_COUNT, Range

GROUP = "rslora"
CLAIMS = ("L7",)
METHODS = ("lora", "rslora")                    # alpha / r, alpha / sqrt(r)
RANKS = (4, 8, 16, 32, 64, 128, 256)
# Tolerance bands for `bench regress` (smoke profile). Counts and the scaling are exact. 1 vs 2 threads moved
# final losses by ~1e-6 and per-step norms by <= 2e-4 (relative) here; the bands leave room for other CPUs/BLAS
# (the ratio to the seed spread divides by a small sd, so it gets the widest band).
REGRESS = [
    ("trainable_params", 0.0, 0.0), ("scaling_applied", 0.0, 1e-9), ("scaling_rel_err", 1e-12, 0.0),
    ("diverged", 0.0, 0.0), ("steps_done", 0.0, 0.0),
    ("final_*_loss", 0.0, 0.01), ("base_heldout_loss", 1e-4, 1e-4),
    ("mean_*", 0.0, 0.02), ("train_loss_roughness", 0.005, 0.1),
    ("*_over_spread", 0.5, 0.2), ("*_slope_*", 0.02, 0.1), ("rslora_minus_lora_*", 0.01, 0.1),
    # Search points past the optimum (4x the pick) train at the edge of stability (val loss ~4.5 vs ~2.3 at the
    # pick), where float differences grow: on --other-float-path (smoke-b pretrained afresh, scalar kernels) they
    # moved 1-27% while every pick, interior flag and tuned run stayed within its band. The decision rides on
    # those (tight bands below and final_*_loss); a point that diverges on one machine only still fails (nan).
    ("lr_search_val_loss", 0.0, 0.5, "search points above the optimum train at the edge of stability: measured "
                                     "up to 27% apart on the other float path (picks unchanged)"),
    ("lr_search_pick_interior", 0.0, 0.0, "a flag (1/0): moves only when a pick reaches or leaves its grid's edge"),
    ("lora_lr_tuned_per_rank", 0.0, 0.0, "a flag: moves only when a LoRA pick leaves its grid's interior"),
]
# curves.csv: one row per (run, optimizer step); step is 1-based, step 0 is the base model's held-out loss
CURVE_COLUMNS = ["method", "r", "seed", "lr", "step", "lr_now", "train_loss", "heldout_loss", "grad_A", "grad_B",
                 "update_grad", "update_step"]


@dataclass(frozen=True)
class Settings:
    rung: str                                    # ladder rung (--model overrides)
    ranks: tuple[int, ...] = RANKS               # kept where r <= min(in, out) of every target
    alpha: float = 16.0                          # the same for every rank and both scalings
    lrs: tuple[float, ...] = (2e-3, 8e-3)        # AdamW peak lr; lrs[0] decides the slope checks, the rest shown
    steps: int = 80                              # optimizer steps per run
    batch: int = 32
    warmup: int = 8                              # linear warmup, then cosine to 10% (bench.train defaults)
    eval_every: int = 16                         # held-out loss every N steps (and at the end)
    per_person: int = 8                          # data-to-text rows per person (bench.data.tasks)
    heldout_rows: int = 128                      # rows of the task's test people for the held-out loss
    targets: tuple[str, ...] | None = None       # LoRA targets; None = the family default (GPT-2: c_attn)
    workers: int = 1                             # processes for the runs, 1 torch thread each ($BENCH_WORKERS wins)
    # Per-rank lr search (L7's "tuned" arm, tune.py): seed 0 of every (scaling, rank) at each grid lr, scored
    # by the final validation loss. 4x spacing: three points span 16x and place the pick within 2x of the optimum.
    search_lrs: tuple[float, ...] = (2e-3, 8e-3, 3.2e-2)
    search_factor: float = 4.0                   # an extension adds best * factor (or / factor) past the edge
    search_extensions: int = 3                   # most rounds of bench.lrsearch.extend per (scaling, rank); an
                                                 # edge pick after these leaves L7's precondition unmet


SETTINGS = {
    # CI / regression: the smoke ladder's wider rung (d = 64: ranks 4..64), short runs; ~1-2 min on 2 cores.
    # Two search extensions (not three) keep the gate short; the grid is the cpu profile's.
    "smoke": Settings(rung="smoke-b", ranks=(4, 16, 64), steps=30, batch=16, warmup=3, eval_every=10,
                      per_person=3, heldout_rows=48, search_extensions=2),
    # The full run: cpu-1m (d = 128: ranks 4..128), 6 ranks x 2 scalings x 3 seeds x 2 lrs = 72 runs of 80 steps
    # x 32 rows (~1,600 tokens a step); ~15 s a run on 2 idle cores -> ~18 min run serially, now shared by two
    # one-thread workers (+ the rung's pretraining if not cached). The lr search adds 36..72 runs and the tuned
    # runs up to 36 more (fewer where a pick is one of `lrs`): about 2-2.5x the sweep's time.
    "cpu": Settings(rung="cpu-1m", workers=2),
    "gpu": Settings(rung="gpu-30m", steps=300, batch=64, warmup=30, eval_every=25),
}


def settings_for(ctx: RunContext) -> Settings:
    """The profile's settings, with ctx.options["settings"] (a dict of Settings fields) applied on top."""
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    if not s.lrs or any(lr <= 0 for lr in s.lrs) or s.alpha <= 0:
        raise BenchError(f"rslora: needs lrs > 0 and alpha > 0, got lrs={s.lrs}, alpha={s.alpha}")
    if not s.search_lrs or any(lr <= 0 for lr in s.search_lrs) or s.search_factor <= 1 or s.search_extensions < 0:
        raise BenchError(f"rslora: needs search_lrs > 0, search_factor > 1 and search_extensions >= 0, got "
                         f"{s.search_lrs}, {s.search_factor}, {s.search_extensions}")
    return s


RANGES = {   # --set checks (bench.values); fields not named here take their type's default (int >= 1, float > 0)
    "lrs": LEARNING_RATE, "search_lrs": LEARNING_RATE,
    "warmup": NONNEG_COUNT,
    "search_factor": Range(1, 1e3, lo_open=True),
    "search_extensions": Range(0, 100, zero="the grid is never extended past an edge pick"),
}
