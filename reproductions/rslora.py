"""rsLoRA group: claim L7 (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA",
https://arxiv.org/abs/2312.03732).

LoRA adds s * B A to a frozen weight, with s = alpha / r (Hu et al. 2021). The claim: with s = alpha / r a
larger rank learns no better, because the adapter's gradients (and so its effective steps) shrink as r
grows; s = alpha / sqrt(r) ("rank-stabilised", peft's `use_rslora`) keeps learning stable, so larger ranks help.

The sweep: one ladder rung, the data-to-text task (table in, sentence out, loss on the sentence), LoRA on
the family's default targets (GPT-2: the fused q,k,v `c_attn`) at ranks r in RANKS (those <= the targets'
min(in, out)), once with alpha / r ("lora") and once with alpha / sqrt(r) ("rslora"), the same alpha, steps and
learning rate for all, over the profile's seeds and two learning rates (the first decides the verdict, the
second shows whether the result is an artefact of one). Every run uses `bench.train.train`. The seed fixes
A's init and the batch order, so LoRA and rsLoRA at the same (r, seed) start from the same A and see the same
batches.

What is recorded per optimizer step t (curves.csv), summed in quadrature over the adapted layers:
- grad_A, grad_B: ||dL/dA||_F, ||dL/dB||_F, the raw gradients (read in backward, before clipping);
- update_grad: ||s (dL/dB A_t + B_t dL/dA)||_F, the first-order change of the effective update dW = s B A
  along the raw gradient (what one unit step of plain gradient descent would do to dW);
- update_step: ||s (B_{t+1} A_{t+1} - B_t A_t)||_F, the change of dW that the optimizer step (AdamW) made,
  computed as s ((B_{t+1} - B_t) A_{t+1} + B_t (A_{t+1} - A_t)), exact and free of cancellation;
- train loss, and every `eval_every` steps the held-out loss: token-weighted NLL on the task's test people,
  who never appear in the fine-tuning data (no choice is made on them, so no separate validation split is needed).
results.csv holds one row per run and metric (final losses, step-means of the norms, the scaling read from
the modules) and the derived metrics the registry's checks decide on (see `derive`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench import BenchError
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder

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
]
CURVE_COLUMNS = ["method", "r", "seed", "lr", "step", "lr_now", "train_loss", "heldout_loss", "grad_A", "grad_B",
                 "update_grad", "update_step"]


@dataclass(frozen=True)
class Settings:
    rung: str                                    # ladder rung (--model overrides)
    ranks: tuple[int, ...] = RANKS               # kept where r <= min(in, out) of every target
    alpha: float = 16.0                          # the same for every rank and both scalings
    lrs: tuple[float, ...] = (2e-3, 8e-3)        # AdamW peak lr; lrs[0] decides the verdict, the rest are shown
    steps: int = 80                              # optimizer steps per run
    batch: int = 32
    warmup: int = 8                              # linear warmup, then cosine to 10% (bench.train defaults)
    eval_every: int = 16                         # held-out loss every N steps (and at the end)
    per_person: int = 8                          # data-to-text rows per person (bench.data.tasks)
    heldout_rows: int = 128                      # rows of the task's test people for the held-out loss
    targets: tuple[str, ...] | None = None       # LoRA targets; None = the family default (GPT-2: c_attn)


SETTINGS = {
    # CI / regression: the smoke ladder's wider rung (d = 64: ranks 4..64), short runs; ~1-2 min on 2 cores.
    "smoke": Settings(rung="smoke-b", ranks=(4, 16, 64), steps=30, batch=16, warmup=3, eval_every=10,
                      per_person=3, heldout_rows=48),
    # The full run: cpu-1m (d = 128: ranks 4..128), 6 ranks x 2 scalings x 3 seeds x 2 lrs = 72 runs of 80 steps
    # x 32 rows (~1,600 tokens a step); ~15 s a run on 2 idle cores -> ~18 min (+ the rung's pretraining if not cached).
    "cpu": Settings(rung="cpu-1m"),
    "gpu": Settings(rung="gpu-30m", steps=300, batch=64, warmup=30, eval_every=25),
}


# ============================================================================================ the measurement

def expected_scaling(method: str, alpha: float, r: int) -> float:
    """What the paper prescribes, computed here independently of bench.methods."""
    if method == "lora":
        return alpha / r
    if method == "rslora":
        return alpha / math.sqrt(r)
    raise BenchError(f"rslora: unknown scaling method {method!r}; choose lora or rslora")


class UpdateTracker:
    """The per-step norms of the module docstring, for every LoraLayer of a model.

    Raw gradients are captured by tensor hooks during backward (the training loop clips afterwards); the
    norms are formed in `on_step`, which `bench.train.train` calls after the optimizer step and before the
    gradients are cleared. A_t, B_t (the weights before the step) are kept from the previous call."""

    def __init__(self, model):
        from bench.methods.lora import lora_layers
        self.layers = [m for _, m in lora_layers(model)]
        if not self.layers:
            raise BenchError("rslora: the model has no LoRA layers to track")
        self.grads: dict[tuple[int, str], torch.Tensor] = {}
        self.handles = []
        for i, m in enumerate(self.layers):
            for key, p in (("A", m.lora_A.weight), ("B", m.lora_B.weight)):
                self.handles.append(p.register_hook(self._keeper(i, key)))
        self.prev = [self._weights(m) for m in self.layers]
        self.rows: list[dict] = []

    @staticmethod
    def _weights(m) -> tuple[torch.Tensor, torch.Tensor]:
        return m.lora_A.weight.detach().clone(), m.lora_B.weight.detach().clone()   # (r, in), (out, r)

    def _keeper(self, i: int, key: str):
        def keep(grad):
            self.grads[(i, key)] = grad.detach().clone()
            return None                                                              # leave the gradient as is
        return keep

    @torch.no_grad()
    def __call__(self, step: int, model, loss) -> None:
        ga = gb = ug = us = 0.0
        for i, m in enumerate(self.layers):
            a0, b0 = self.prev[i]                                                    # before this step
            a1, b1 = m.lora_A.weight.detach(), m.lora_B.weight.detach()              # after it
            g_a, g_b = self.grads.get((i, "A")), self.grads.get((i, "B"))
            if g_a is None or g_b is None:
                raise BenchError("rslora: a LoRA gradient was not captured (is the adapter trainable?)")
            s = float(m.scaling)
            ga += float(g_a.square().sum())
            gb += float(g_b.square().sum())
            ug += float((s * (g_b @ a0 + b0 @ g_a)).square().sum())                  # (out, in)
            us += float((s * ((b1 - b0) @ a1 + b0 @ (a1 - a0))).square().sum())      # (out, in)
            self.prev[i] = (a1.clone(), b1.clone())
        self.grads.clear()
        self.rows.append({"step": step, "grad_A": math.sqrt(ga), "grad_B": math.sqrt(gb),
                          "update_grad": math.sqrt(ug), "update_step": math.sqrt(us)})

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def heldout_loss(model, batches) -> float:
    """Token-weighted mean NLL (nats/token) over the held-out batches."""
    from bench.train import perplexity
    ppl = perplexity(model, batches)
    return math.log(ppl) if math.isfinite(ppl) and ppl > 0 else math.nan


def roughness(losses: list[float]) -> float:
    """Mean |loss_t - loss_{t-1}| over the second half of training (batch noise plus instability)."""
    tail = losses[len(losses) // 2:]
    if len(tail) < 2:
        return math.nan
    return float(np.mean(np.abs(np.diff(tail))))


def train_one(base, train_rows, heldout_batches, method: str, r: int, seed: int, lr: float, s: Settings,
              threads: int | None = None) -> dict:
    """Fine-tune a copy of `base` with LoRA (method: lora | rslora) and return the run's record:
    result (TrainResult), curves (list of per-step dicts), scaling (the layers' .scaling), trainable params."""
    from bench.methods import apply, make_config, trainable_parameters
    from bench.methods.lora import lora_layers
    from bench.train import TrainConfig, resolve_device, train

    expected = expected_scaling(method, s.alpha, r)
    cfg = make_config("lora", r=r, alpha=s.alpha, target_modules=s.targets, rslora=(method == "rslora"),
                      dropout=0.0)
    model = copy.deepcopy(base)
    torch.manual_seed(seed)                                                          # A's init
    model = apply(model, cfg).to(resolve_device("auto"))                             # the tracker's copies live there too
    scalings = [float(m.scaling) for _, m in lora_layers(model)]
    tracker = UpdateTracker(model)
    tcfg = TrainConfig(lr=lr, steps=s.steps, batch_size=s.batch, warmup=s.warmup, eval_every=s.eval_every,
                       seed=seed, threads=threads, progress=False, desc=f"{method} r={r}")
    try:
        res = train(model, train_rows, tcfg, eval_fn=lambda m: {"heldout_loss": heldout_loss(m, heldout_batches)},
                    on_step=tracker)
    finally:
        tracker.close()
    norms = {row["step"]: row for row in tracker.rows}
    curves = []
    for h in res.history:
        n = norms.get(h["step"], {})
        curves.append({"method": method, "r": r, "seed": seed, "lr": lr, "step": h["step"] + 1, "lr_now": h["lr"],
                       "train_loss": h["loss"], "heldout_loss": h.get("heldout_loss", math.nan),
                       **{k: n.get(k, math.nan) for k in ("grad_A", "grad_B", "update_grad", "update_step")}})
    return {"result": res, "curves": curves, "scalings": scalings, "expected_scaling": expected,
            "trainable_params": trainable_parameters(model)[0]}


# ============================================================================================ derived metrics

def _fit_slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or not np.all(np.isfinite(y)):
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def _sd(v) -> float:
    """Sample sd (ddof 1); NaN with fewer than two values or any NaN."""
    v = np.asarray(v, float)
    return float(np.std(v, ddof=1)) if len(v) >= 2 else math.nan


def per_rank(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Seed mean, sd and count of `metric` per (lr, method, r), from the per-run rows (columns lr, method,
    r, seed, metric, value). A NaN (diverged run) makes the mean NaN: divergence is never averaged away."""
    d = runs[runs["metric"] == metric]
    g = d.groupby(["lr", "method", "r"])["value"]
    out = g.agg(mean=lambda v: float(np.mean(v.to_numpy(float))), sd=_sd, n="size").reset_index()
    return out.sort_values(["lr", "method", "r"]).reset_index(drop=True)


def derive(runs: pd.DataFrame) -> list[tuple[str, float, dict, dict]]:
    """The metrics the verdict decides on, per learning rate: [(metric, value, params, info)] (info: what was
    measured along the way, such as the spread a ratio divides by; never part of a row's identity).

    runs: one row per (lr, method, r, seed, metric) with the per-run values. Definitions:
    - {m}_final_loss_slope_vs_log2_rank: OLS slope of the seed-mean final held-out loss on log2(r)
      (nats per doubling of r; < 0: larger ranks end lower);
    - rslora_minus_lora_final_loss_top_rank: seed-mean final held-out loss, rsLoRA minus LoRA, at the
      largest rank; ..._over_spread divides it by the seed spread there, max(sd_lora, sd_rslora) (sample sd);
    - {m}_param_gradnorm_slope_vs_log_rank: slope of ln(seed-mean of the step-mean of sqrt(|dA|^2 + |dB|^2))
      on ln(r), i.e. the power of r that the adapters' gradient norm follows;
    - {m}_update_gradnorm_slope_vs_log_rank, {m}_update_step_slope_vs_log_rank: the same for update_grad and
      update_step (module docstring);
    - {m}_final_train_loss_slope_vs_log2_rank and rslora_minus_lora_final_train_loss_top_rank: the training
      loss (mean of the last 10% of steps) versions, reported next to the held-out ones.
    """
    out = []
    for lr in sorted(runs["lr"].unique()):
        d = runs[runs["lr"] == lr]
        ranks = sorted(d["r"].unique())
        top = ranks[-1]
        p = {"lr": float(lr), "ranks": ",".join(str(int(r)) for r in ranks), "top_rank": int(top)}
        for loss in ("final_heldout_loss", "final_train_loss"):
            tag = "final_loss" if loss == "final_heldout_loss" else "final_train_loss"
            pr = per_rank(d, loss)
            for m in METHODS:
                pm = pr[pr["method"] == m]
                out.append((f"{m}_{tag}_slope_vs_log2_rank", _fit_slope(np.log2(pm["r"]), pm["mean"]), p, {}))
            at_top = pr[pr["r"] == top].set_index("method")
            if not {"lora", "rslora"} <= set(at_top.index):
                continue
            diff = at_top.loc["rslora", "mean"] - at_top.loc["lora", "mean"]
            out.append((f"rslora_minus_lora_{tag}_top_rank", float(diff), p, {}))
            if tag == "final_loss":
                spread = max(at_top.loc["rslora", "sd"], at_top.loc["lora", "sd"])
                ratio = diff / spread if spread > 0 else math.nan
                out.append(("rslora_minus_lora_final_loss_top_rank_over_spread", float(ratio), p, {"spread": spread}))
        for norm, name in (("mean_param_grad_norm", "param_gradnorm"), ("mean_update_grad_norm", "update_gradnorm"),
                           ("mean_update_step_norm", "update_step")):
            pr = per_rank(d, norm)
            for m in METHODS:
                pm = pr[pr["method"] == m]
                y = np.log(pm["mean"].where(pm["mean"] > 0))
                out.append((f"{m}_{name}_slope_vs_log_rank", _fit_slope(np.log(pm["r"]), y), p, {}))
    return out


def cross_lr(runs: pd.DataFrame, main_lr: float) -> list[tuple[str, float, dict, dict]]:
    """Is rsLoRA's edge only a larger effective learning rate? At the largest rank: rsLoRA at the main lr minus
    the best LoRA over every lr run (seed means of the final held-out loss). Reported, not decided."""
    top = runs["r"].max()
    pr = per_rank(runs[runs["r"] == top], "final_heldout_loss")
    rs = pr[(pr["method"] == "rslora") & (pr["lr"] == main_lr)]["mean"]
    lo = pr[pr["method"] == "lora"]
    if rs.empty or lo.empty:
        return []
    best = lo.loc[lo["mean"].idxmin()] if lo["mean"].notna().all() else None
    value = float(rs.iloc[0] - best["mean"]) if best is not None else math.nan
    p = {"top_rank": int(top), "lr": float(main_lr), "lrs": ",".join(f"{x:g}" for x in sorted(runs["lr"].unique()))}
    info = {"best_lora_lr": float(best["lr"]) if best is not None else None}
    return [("rslora_main_lr_minus_best_lora_any_lr_top_rank", value, p, info)]


# ============================================================================================ run

def _load(ctx: RunContext, s: Settings):
    """(base model, tokenizer, world, name). A ladder rung uses its own world; any other --model (a folder or
    hub id) gets the profile's world, tokenised by its own tokenizer (data-to-text needs no single-token words)."""
    from bench import ladder as L
    from bench.data.world import build_world
    from bench.models import load_model
    name = ctx.model or s.rung
    model, tok = load_model(name, ctx.profile.ladder)
    world = L.load_world(name) if name in L.SPECS else build_world(ctx.profile.ladder)
    return model.eval(), tok, world, name


def capped_ranks(model, s: Settings) -> tuple[int, ...]:
    """The ranks of `s` that fit every target (r <= min(in, out)); BenchError if none does."""
    from bench.methods.lora import find_targets, in_out
    width = min(min(in_out(m)) for _, m in find_targets(model, s.targets))
    ranks = tuple(r for r in s.ranks if r <= width)
    if len(ranks) < 2:
        raise BenchError(f"rslora: needs at least two ranks <= the targets' width {width}; got {s.ranks}")
    return ranks


def settings_for(ctx: RunContext) -> Settings:
    """The profile's settings, with ctx.options["settings"] (a dict of Settings fields) applied on top."""
    s = settings_with_overrides(ctx, SETTINGS, "rslora")
    if not s.lrs or any(lr <= 0 for lr in s.lrs) or s.alpha <= 0:
        raise BenchError(f"rslora: needs lrs > 0 and alpha > 0, got lrs={s.lrs}, alpha={s.alpha}")
    return s


def run(ctx: RunContext) -> Recorder:
    from bench.data.tasks import data_to_text_task
    from bench.ladder import pretrain_threads
    from bench.schema import write_frame
    from bench.train import collate

    s = settings_for(ctx)
    seeds = tuple(ctx.seeds)
    if not seeds:
        raise BenchError("rslora: needs at least one seed (three for a verdict)")
    t0 = time.perf_counter()
    base, tok, world, name = _load(ctx, s)
    ranks = capped_ranks(base, s)
    t_load = time.perf_counter() - t0
    dd = data_to_text_task(world, tok, per_person=s.per_person, seed=0)
    train_rows = dd["train"].select_columns(["input_ids", "labels"]).to_list()
    held = dd["test"].select_columns(["input_ids", "labels"]).to_list()
    held = held[::max(1, len(held) // s.heldout_rows)][:s.heldout_rows]         # spread over all test people
    heldout_batches = [collate(held[i:i + 64]) for i in range(0, len(held), 64)]
    data = f"data-to-text(world-{world.profile}-seed{world.seed}, {s.per_person}/person)"
    threads = pretrain_threads()
    rec = ctx.recorder(GROUP, CLAIMS)
    base_loss = heldout_loss(base, heldout_batches)
    rec.add("L7", "base_heldout_loss", base_loss, unit="nats/token", model=name, data=data, params={"rows": len(held)})

    grid = [(lr, r, seed, m) for lr in s.lrs for r in ranks for seed in seeds for m in METHODS]
    curves, per_run = [], []
    for lr, r, seed, m in ctx.progress(grid, desc="rslora runs"):
        out = train_one(base, train_rows, heldout_batches, m, r, seed, lr, s, threads)
        res = out["result"]
        role = "main" if lr == s.lrs[0] else "second"
        p = {"r": r, "alpha": s.alpha, "lr": lr, "lr_role": role, "steps": s.steps, "batch": s.batch,
             "targets": ",".join(s.targets) if s.targets else "default"}
        add = lambda metric, value, unit="": rec.add("L7", metric, value, unit=unit, model=name, data=data,  # noqa: E731
                                                     method=m, seed=seed, params=p)
        curves += out["curves"]
        norms = [c for c in out["curves"] if math.isfinite(c["grad_A"])]
        mean = lambda key: float(np.mean([c[key] for c in norms])) if norms else math.nan  # noqa: E731
        diverged = res.diverged_at is not None
        vals = {
            "final_heldout_loss": math.nan if diverged else res.final.get("heldout_loss", math.nan),
            "final_train_loss": math.nan if diverged else res.final.get("final_loss", math.nan),
            "mean_grad_norm_A": mean("grad_A"), "mean_grad_norm_B": mean("grad_B"),
            "mean_param_grad_norm": (float(np.mean([math.hypot(c["grad_A"], c["grad_B"]) for c in norms]))
                                     if norms else math.nan),
            "mean_update_grad_norm": mean("update_grad"), "mean_update_step_norm": mean("update_step"),
            "train_loss_roughness": roughness([c["train_loss"] for c in out["curves"]]),
        }
        units = {"final_heldout_loss": "nats/token", "final_train_loss": "nats/token", "train_loss_roughness": "nats/token"}
        for k, v in vals.items():
            add(k, v, units.get(k, "norm"))
            per_run.append({"lr": lr, "method": m, "r": r, "seed": seed, "metric": k, "value": v})
        add("diverged", int(diverged), "bool")
        add("steps_done", res.steps_done, "steps")
        add("trainable_params", out["trainable_params"], "params")
        add("scaling_applied", out["scalings"][0], "ratio")
        exp = out["expected_scaling"]
        add("scaling_rel_err", max(abs(x - exp) / exp for x in out["scalings"]), "ratio")
        rec.add("L7", "step_time_s", res.step_time_s, unit="s", model=name, data=data, method=m, seed=seed,
                params={**p, "threads": threads or torch.get_num_threads()}, timing=True)
        rec.add("L7", "run_wall_s", res.wall_s, unit="s", model=name, data=data, method=m, seed=seed,
                params={**p, "threads": threads or torch.get_num_threads()}, timing=True)

    runs = pd.DataFrame(per_run)
    for metric, value, p, info in derive(runs) + cross_lr(runs, s.lrs[0]):
        role = "cross" if "best_lora_lr" in info else "main" if p["lr"] == s.lrs[0] else "second"
        unit = ("ratio" if metric.endswith("over_spread") else "nats/token per doubling" if "log2" in metric
                else "power of r" if metric.endswith("log_rank") else "nats/token")
        rec.add("L7", metric, value, unit=unit, model=name, data=data, method="-", params={**p, "lr_role": role},
                info=info)
    curve_df = pd.DataFrame(curves, columns=CURVE_COLUMNS)
    base_rows = pd.DataFrame([{"method": "base", "r": 0, "seed": -1, "lr": 0.0, "step": 0, "heldout_loss": base_loss}],
                             columns=CURVE_COLUMNS)
    write_frame(Path(ctx.out_dir) / "curves.csv", pd.concat([base_rows, curve_df], ignore_index=True))
    rec.notes.update({"settings": asdict(s) | {"rung": name}, "ranks": list(ranks), "seeds": list(seeds),
                      "threads": threads or torch.get_num_threads(), "load_or_pretrain_s": round(t_load, 1),
                      "train_rows": len(train_rows), "heldout_rows": len(held), "task": data})
    return rec


# ============================================================================================ report

def _rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    from bench.schema import param
    d = df[df["metric"] == metric].copy()
    for k in ("r", "lr", "lr_role"):
        d[k] = param(d, k)
    return d


def _fmt(x, digits=4) -> str:
    return "nan" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}g}"


def _per_run_frame(df: pd.DataFrame) -> pd.DataFrame:
    from bench.schema import param
    d = df[(df["method"].isin(METHODS))].copy()
    d["r"], d["lr"] = param(d, "r"), param(d, "lr")
    return d[["lr", "method", "r", "seed", "metric", "value"]]


def write_report(out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.fileio import atomic_savefig, atomic_write_text
    from bench.report import checks_markdown, group_verdicts
    from bench.schema import read_meta, read_results

    out = Path(out)
    df, meta = read_results(out), read_meta(out)
    curves_path = out / "curves.csv"
    curves = pd.read_csv(curves_path) if curves_path.exists() else pd.DataFrame(columns=CURVE_COLUMNS)
    st = meta.get("settings", {})
    runs = _per_run_frame(df)
    lrs = sorted(runs["lr"].unique()) if not runs.empty else []
    main_lr = (st.get("lrs") or lrs or [None])[0]
    ranks = sorted(runs["r"].unique()) if not runs.empty else []
    seeds = meta.get("seeds", [])
    L = ["# rsLoRA: does alpha/sqrt(r) keep learning stable as the rank grows? (claim L7)", "",
         "Kalajdzievski 2023 (https://arxiv.org/abs/2312.03732). **Scale: toy** - a "
         f"{st.get('rung', '?')} model on a synthetic data-to-text task, not Llama-2-7B on OpenOrca; the trend "
         "is what is compared, not the paper's numbers. Published: " + _published() + " Paper scale (--model with a "
         "7B checkpoint on a GPU) is not run here.", "",
         f"- model: `{st.get('rung', '?')}`; task: {meta.get('task', '?')}; {meta.get('train_rows', '?')} training "
         f"rows; held-out loss on {meta.get('heldout_rows', '?')} rows of the task's test people (never in the "
         "fine-tuning data)",
         f"- LoRA targets: {', '.join(st['targets']) if st.get('targets') else 'the family default (GPT-2: c_attn = q,k,v)'}; "
         f"alpha = {st.get('alpha')} for every rank; ranks {', '.join(str(int(r)) for r in ranks)} "
         f"(RANKS capped at the targets' width)",
         f"- AdamW, {st.get('steps')} steps, batch {st.get('batch')}, warmup {st.get('warmup')} then cosine to 10%, "
         f"grad clip 1.0 (bench.train); learning rates {', '.join(_fmt(x) for x in lrs)} "
         f"(the first decides the verdict); seeds {seeds}",
         f"- profile `{meta.get('profile', '?')}`, {meta.get('wall_s', '?')} s wall, "
         f"{meta.get('threads', '?')} torch threads, load average at end {_fmt(meta.get('load_average_1m_at_end', math.nan), 3)}; "
         f"versions: {meta.get('versions', '?')}", "",
         "## Verdict", "",
         "Rule (fixed in `bench/claims.py` before the run): " + _rule_text(), "",
         checks_markdown(group_verdicts(GROUP, out)), "",
         "## Definitions", "",
         "Norms are Frobenius norms summed in quadrature over all adapted layers, per optimizer step, then averaged "
         "over the steps of a run and over seeds:",
         "- *param grad norm*: sqrt(||dL/dA||^2 + ||dL/dB||^2), raw gradients (before clipping);",
         "- *update grad norm*: ||s (dL/dB A + B dL/dA)||, the first-order change of the effective update "
         "dW = s B A along the raw gradient;",
         "- *update step norm*: ||s B'A' - s B A||, the change of dW made by one AdamW step;",
         "- *final loss*: held-out loss (nats/token, token-weighted) after the last step; *final train loss*: "
         "mean training loss over the last 10% of steps;",
         "- *slope vs log2 rank*: OLS slope of the seed-mean on log2(r), per doubling of r; *slope vs log rank* of a "
         "norm: slope of ln(norm) on ln(r) (the power of r the norm follows; alpha/r vs alpha/sqrt(r) differ by "
         "exactly 0.5 in the scaling itself).", ""]

    # -------- tables
    L += ["## Final loss per rank", ""]
    for lr in lrs:
        d = runs[runs["lr"] == lr]
        fv, ft = per_rank(d, "final_heldout_loss"), per_rank(d, "final_train_loss")
        pg, stp = per_rank(d, "mean_param_grad_norm"), per_rank(d, "mean_update_step_norm")
        dv = per_rank(d, "diverged")
        L += [f"### lr = {_fmt(lr)}{' (decides the verdict)' if lr == main_lr else ''}", "",
              "| r | scaling LoRA | scaling rsLoRA | held-out loss LoRA | held-out loss rsLoRA | rsLoRA - LoRA | train loss LoRA "
              "| train loss rsLoRA | param grad LoRA | param grad rsLoRA | update step LoRA | update step rsLoRA | diverged |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        sc = _rows(df, "scaling_applied")
        for r in sorted(d["r"].unique()):
            def g(t, m, col="mean"):
                v = t[(t["method"] == m) & (t["r"] == r)][col]
                return float(v.iloc[0]) if len(v) else math.nan
            def sca(m):
                v = sc[(sc["method"] == m) & (sc["r"] == r)]["value"]
                return _fmt(v.iloc[0]) if len(v) else "-"
            L.append(f"| {int(r)} | {sca('lora')} | {sca('rslora')} "
                     f"| {_fmt(g(fv, 'lora'))} +- {_fmt(g(fv, 'lora', 'sd'), 2)} "
                     f"| {_fmt(g(fv, 'rslora'))} +- {_fmt(g(fv, 'rslora', 'sd'), 2)} "
                     f"| {_fmt(g(fv, 'rslora') - g(fv, 'lora'), 3)} "
                     f"| {_fmt(g(ft, 'lora'))} | {_fmt(g(ft, 'rslora'))} "
                     f"| {_fmt(g(pg, 'lora'), 3)} | {_fmt(g(pg, 'rslora'), 3)} "
                     f"| {_fmt(g(stp, 'lora'), 3)} | {_fmt(g(stp, 'rslora'), 3)} "
                     f"| {int(round(g(dv, 'lora') * g(dv, 'lora', 'n')))}/{int(round(g(dv, 'rslora') * g(dv, 'rslora', 'n')))} |")
        L.append("")
    L += ["Values are seed means +- sample sd. `scaling` is read from the LoRA modules after `apply` (every layer "
          "checked against alpha/r or alpha/sqrt(r): see `scaling_rel_err` in results.csv). `diverged` counts runs "
          "(LoRA/rsLoRA) that hit a non-finite loss; their losses are NaN and make the means NaN.", ""]

    L += ["## Derived metrics (both learning rates)", "",
          "| metric | " + " | ".join(f"lr {_fmt(x)}" for x in lrs) + " |", "|---|" + "---|" * len(lrs)]
    der = df[(df["claim"] == "L7") & (df["method"] == "-") & ~df["metric"].isin(
        ["base_heldout_loss", "rslora_main_lr_minus_best_lora_any_lr_top_rank"])].copy()
    if not der.empty:
        from bench.schema import param
        der["lr"] = param(der, "lr")
        for metric in dict.fromkeys(der["metric"]):
            vals = [der[(der["metric"] == metric) & (der["lr"] == lr)]["value"] for lr in lrs]
            L.append(f"| {metric} | " + " | ".join(_fmt(v.iloc[0]) if len(v) else "-" for v in vals) + " |")
    cross = df[df["metric"] == "rslora_main_lr_minus_best_lora_any_lr_top_rank"]
    if not cross.empty:
        cp = json.loads(cross["params"].iloc[0]) | json.loads(cross["info"].iloc[0] or "{}")
        L += ["", f"Across learning rates, at r = {cp['top_rank']}: rsLoRA at the main lr minus the best LoRA at any lr "
              f"tried ({cp['lrs']}; best LoRA lr {cp['best_lora_lr']}) = {_fmt(cross['value'].iloc[0], 3)} nats/token "
              "(< 0: LoRA does not catch up by a larger learning rate within this range). Note that alpha/sqrt(r) is "
              "already 2x alpha/r at r = 4, so the rank TREND (slopes) is the cleaner part of the comparison."]
    L.append("")
    rough = per_rank(runs, "train_loss_roughness") if not runs.empty else pd.DataFrame()
    if not rough.empty:
        L += ["## Smoothness (reported, not decided)", "",
              "Mean |loss_t - loss_{t-1}| of the training loss over the second half of each run (seed mean). At this "
              "scale it is dominated by batch-to-batch noise, so it is shown, not judged.", "",
              "| lr | r | LoRA | rsLoRA |", "|---|---|---|---|"]
        for (lr, r), grp in rough.groupby(["lr", "r"]):
            gm = grp.set_index("method")["mean"]
            L.append(f"| {_fmt(lr)} | {int(r)} | {_fmt(gm.get('lora', math.nan), 3)} | {_fmt(gm.get('rslora', math.nan), 3)} |")
        L.append("")

    # -------- figures
    figs = []
    if not curves.empty and lrs:
        cur = curves[curves["method"].isin(METHODS)]
        base_held = curves[curves["method"] == "base"]["heldout_loss"]
        cmap = plt.get_cmap("viridis")
        colors = {r: cmap(i / max(len(ranks) - 1, 1)) for i, r in enumerate(ranks)}
        # Figure 1 analogue: loss curves per rank, LoRA | rsLoRA, one row per lr
        fig, axes = plt.subplots(len(lrs), 2, figsize=(10, 3.6 * len(lrs)), sharey="row", squeeze=False)
        for i, lr in enumerate(lrs):
            for j, m in enumerate(METHODS):
                ax = axes[i][j]
                for r in ranks:
                    c = cur[(cur["lr"] == lr) & (cur["method"] == m) & (cur["r"] == r)]
                    if c.empty:
                        continue
                    mean = c.groupby("step")["train_loss"].mean()
                    smooth = mean.rolling(5, min_periods=1).mean()
                    ax.plot(smooth.index, smooth.values, color=colors[r], lw=1.2, label=f"r={int(r)}")
                    v = c.dropna(subset=["heldout_loss"]).groupby("step")["heldout_loss"].mean()
                    if len(base_held):
                        v = pd.concat([pd.Series([float(base_held.iloc[0])], index=[0]), v])
                    ax.plot(v.index, v.values, "o--", color=colors[r], ms=3, lw=0.8)
                name = "LoRA (alpha/r)" if m == "lora" else "rsLoRA (alpha/sqrt(r))"
                ax.set(title=f"{name}, lr {_fmt(lr)}", xlabel="step", ylabel="loss (nats/token)", yscale="log")
                if i == 0 and j == 1:
                    ax.legend(fontsize=7, ncol=2)
        fig.suptitle("training loss (line, seed mean, 5-step moving average) and held-out loss (dashed)", fontsize=9)
        fig.tight_layout()
        atomic_savefig(out / "loss_curves.png", fig)
        plt.close(fig)
        figs.append(("loss curves per rank (the paper's Figure 1 analogue)", "loss_curves.png"))

        # final loss vs rank, with seed spread
        fig, axes = plt.subplots(1, len(lrs), figsize=(5 * len(lrs), 3.8), squeeze=False)
        for i, lr in enumerate(lrs):
            ax = axes[0][i]
            fv = per_rank(runs[runs["lr"] == lr], "final_heldout_loss")
            for m, mk in zip(METHODS, ("o-", "s-")):
                pm = fv[fv["method"] == m]
                ax.errorbar(pm["r"], pm["mean"], yerr=pm["sd"].fillna(0), fmt=mk, capsize=3,
                            label="LoRA alpha/r" if m == "lora" else "rsLoRA alpha/sqrt(r)")
            ax.set(xscale="log", xlabel="rank r", ylabel="final held-out loss", title=f"lr {_fmt(lr)}")
            _rank_ticks(ax, ranks)
            ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_savefig(out / "final_loss_vs_rank.png", fig)
        plt.close(fig)
        figs.append(("final held-out loss vs rank (seed mean +- sd)", "final_loss_vs_rank.png"))

        # Figure 2 analogue: gradient norms vs rank
        norms = (("mean_param_grad_norm", "param grad norm"), ("mean_update_grad_norm", "update grad norm"),
                 ("mean_update_step_norm", "update step norm"))
        fig, axes = plt.subplots(len(lrs), 3, figsize=(13, 3.6 * len(lrs)), squeeze=False)
        for i, lr in enumerate(lrs):
            for j, (metric, label) in enumerate(norms):
                ax = axes[i][j]
                pr = per_rank(runs[runs["lr"] == lr], metric)
                for m, mk in zip(METHODS, ("o-", "s-")):
                    pm = pr[pr["method"] == m]
                    ax.errorbar(pm["r"], pm["mean"], yerr=pm["sd"].fillna(0), fmt=mk, capsize=3,
                                label="LoRA alpha/r" if m == "lora" else "rsLoRA alpha/sqrt(r)")
                ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel=label, title=f"{label}, lr {_fmt(lr)}")
                _rank_ticks(ax, ranks)
                if i == 0 and j == 0:
                    ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_savefig(out / "gradnorm_vs_rank.png", fig)
        plt.close(fig)
        figs.append(("gradient and update norms vs rank, step mean (the paper's Figure 2 analogue)",
                     "gradnorm_vs_rank.png"))

        # norms over training, main lr
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        c0 = cur[cur["lr"] == main_lr]
        for j, m in enumerate(METHODS):
            ax = axes[j]
            for r in ranks:
                c = c0[(c0["method"] == m) & (c0["r"] == r)]
                if c.empty:
                    continue
                g = c.groupby("step")[["grad_A", "grad_B"]].mean()
                ax.plot(g.index, np.hypot(g["grad_A"], g["grad_B"]), color=colors[r], lw=1, label=f"r={int(r)}")
            ax.set(yscale="log", xlabel="step", ylabel="param grad norm (seed mean)",
                   title=("LoRA (alpha/r)" if m == "lora" else "rsLoRA (alpha/sqrt(r))") + f", lr {_fmt(main_lr)}")
        axes[1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        atomic_savefig(out / "gradnorm_curves.png", fig)
        plt.close(fig)
        figs.append(("adapter gradient norm over training per rank", "gradnorm_curves.png"))

        # the scaling actually applied
        sc = _rows(df, "scaling_applied")
        if not sc.empty:
            fig, ax = plt.subplots(figsize=(5, 3.6))
            alpha = float(st.get("alpha", 1.0))
            rr = np.array(sorted(sc["r"].unique()), float)
            ax.plot(rr, alpha / rr, "-", color="C0", lw=0.8, label="alpha/r")
            ax.plot(rr, alpha / np.sqrt(rr), "-", color="C1", lw=0.8, label="alpha/sqrt(r)")
            for m, mk, col in zip(METHODS, ("o", "s"), ("C0", "C1")):
                d = sc[sc["method"] == m].groupby("r")["value"].first()
                ax.plot(d.index, d.values, mk, color=col, mfc="none", label=f"read from {m} modules")
            ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="scaling s", title=f"alpha = {alpha:g}")
            _rank_ticks(ax, rr)
            ax.legend(fontsize=8)
            fig.tight_layout()
            atomic_savefig(out / "scaling_vs_rank.png", fig)
            plt.close(fig)
            figs.append(("the scaling read from the modules vs the formulas", "scaling_vs_rank.png"))
    L += ["## Figures", ""]
    for title, f in figs:
        L += [f"{title}:", "", f"![{title}]({f})", ""]
    L += ["Per-step curves of every run are in `curves.csv`; per-run values in `results.csv`, wall times in "
          "`timings.csv` (measured on a shared 2-core machine: indicative only).", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path


def _rank_ticks(ax, ranks) -> None:
    """Major ticks at the ranks, labelled plainly, no minor labels (log axes otherwise print 4x10^0...)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    ax.xaxis.set_major_locator(FixedLocator([float(r) for r in ranks]))
    ax.set_xticklabels([str(int(r)) for r in ranks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _published() -> str:
    from bench.claims import get
    return get("L7").published


def _rule_text() -> str:
    from bench.claims import get
    return get("L7").rule or "(no rule registered)"


def report(out_dir: Path) -> None:
    write_report(Path(out_dir))
