"""Part 5, the planted rank-k task (L6): a teacher = rung + a rank-k update on the value third of every c_attn;
students (full FT, LoRA at r below and above k) distil it. If the task's intrinsic rank is k, LoRA's gap to
full FT should close once r >= k.

`planted_job` is one (method, r, seed) distillation run (bench.jobs); `planted_runs` records the results.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.methods.common import blocks
from bench.schema import Recorder
from bench.train import TrainConfig, train

from reproductions.lora.rung import adapt, capped_ranks, nanmean, width
from reproductions.lora.settings import ALPHA
from reproductions.lora.spectra import SPECTRUM_R, c_attn_weights, record_control, update_spectra

PLANT_PATHS = {"c_attn": "attn.c_attn", "c_attn.v": "attn.c_attn", "c_fc": "mlp.c_fc", "mlp.c_proj": "mlp.c_proj",
               "attn.c_proj": "attn.c_proj"}
# the LoRA target of the students: the planted matrices and nothing else
PLANT_LORA = {"c_attn": ("c_attn",), "c_attn.v": ("c_attn",), "c_fc": ("c_fc",), "mlp.c_proj": r".*mlp\.c_proj",
              "attn.c_proj": r".*attn\.c_proj"}


class Distil(nn.Module):
    """Student trained to match a frozen teacher's next-token distributions: loss = KL(teacher || student)
    per token. Looks like a causal LM to bench.train (`.loss`, `.logits`)."""

    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher
        for q in teacher.parameters():
            q.requires_grad_(False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        s = self.student(input_ids=input_ids, attention_mask=attention_mask).logits      # (B, T, V)
        with torch.no_grad():
            t = self.teacher(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
        kl = F.kl_div(F.log_softmax(s.float(), -1), F.log_softmax(t.float(), -1), log_target=True,
                      reduction="none").sum(-1)                                           # (B, T)
        mask = torch.ones_like(kl) if attention_mask is None else attention_mask.float()
        return SimpleNamespace(loss=(kl * mask).sum() / mask.sum(), logits=s)


@torch.no_grad()
def distil_kl(student, teacher, rows) -> float:
    """KL(teacher || student), nats per token, on `rows` (dicts with equal-length "input_ids")."""
    dev = next(student.parameters()).device
    ids = torch.tensor([r["input_ids"] for r in rows], device=dev)       # (N, T)
    return float(Distil(student, teacher.to(dev)).eval()(input_ids=ids).loss)


def _target_inputs(model, rows, path: str) -> list[torch.Tensor]:
    """Inputs (N*T, in) that each block's `path` module sees on `rows`."""
    seen = []

    def keep(module, args):
        seen.append(args[0].reshape(-1, args[0].shape[-1]))
    hooks = [blk.get_submodule(path).register_forward_pre_hook(keep) for blk in blocks(model)[1]]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([r["input_ids"] for r in rows]))
    finally:
        for h in hooks:
            h.remove()
    return seen


def plant(base, k: int, scale: float, rows, seed: int = 1234, target: str = "c_attn"):
    """Teacher = base + a rank-k update on every block's `target` Conv1D (weight (in, out)):
        dW = sum_i sigma_i u_i v_i^T,  u_i = the i-th principal direction of the inputs that W sees on `rows`,
        v_i random orthonormal, sigma_i = scale * (mean singular value of W) / (input std along u_i).
    Whitening by the input std makes every planted direction move the output by the same amount, so a rank-r
    student (r < k) can capture at most ~r/k of the change; random u_i would mostly land in directions the
    inputs barely use. Returns (teacher, [dW])."""
    teacher = copy.deepcopy(base)
    g = torch.Generator().manual_seed(seed)
    inputs = _target_inputs(base, rows, PLANT_PATHS[target])
    deltas = []
    with torch.no_grad():
        for blk, x in zip(blocks(teacher)[1], inputs):
            w = blk.get_submodule(PLANT_PATHS[target]).weight                  # Conv1D: (in, out)
            x = x.double() - x.double().mean(0)
            evals, evecs = torch.linalg.eigh(x.T @ x / len(x))                 # ascending
            u = evecs[:, -k:].flip(1)                                          # (in, k) top principal directions
            std = evals[-k:].flip(0).clamp_min(1e-12).sqrt()                    # (k,)
            out_dim = w.shape[1] // 3 if target == "c_attn.v" else w.shape[1]
            v, _ = torch.linalg.qr(torch.randn(out_dim, k, generator=g, dtype=torch.float64))     # (out, k)
            if target == "c_attn.v":                                           # only the value third of q|k|v
                v = torch.cat([torch.zeros(w.shape[1] - out_dim, k, dtype=torch.float64), v])
            sigma = scale * float(torch.linalg.svdvals(w.double()).mean()) / std
            dw = ((u * sigma) @ v.T).to(w.dtype)                               # (in, out), rank k
            w += dw
            deltas.append(dw)
    for q in teacher.parameters():
        q.requires_grad_(False)
    return teacher.eval(), deltas


def calibrate_plant(base, k: int, rows, target_kl: float, target: str = "c_attn") -> tuple[float, float]:
    """The planted scale whose teacher is `target_kl` nats/token from the base (geometric bracketing, then
    bisection in log scale), so that the task is equally hard on every rung. Returns (scale, KL)."""
    def kl_at(scale):
        return distil_kl(base, plant(base, k, scale, rows, target=target)[0], rows)

    lo, hi = 0.0, 1.0
    while kl_at(hi) < target_kl:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise BenchError(f"lora: no planted rank-{k} update reaches KL {target_kl} on this model")
    for _ in range(6):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if kl_at(mid) < target_kl:
            lo = mid
        else:
            hi = mid
    return hi, kl_at(hi)


def calibrate_env(env: dict) -> float:
    """Pick the planted scale (KL(teacher || base) = l6_target_kl on the eval rows) and add the teacher."""
    s, base = env["s"], env["base"]
    k = min(s.l6_k, width(base))
    scale, kl0 = calibrate_plant(base, k, env["l6_eval"], s.l6_target_kl, target=s.l6_target)
    env["plant_scale"], env["kl0"] = scale, kl0
    env["teacher"] = plant(base, k, scale, env["l6_eval"], target=s.l6_target)[0]
    return scale


def planted_job(env: dict, method: str, r: int, seed: int) -> dict:
    """Distil the teacher into a student (full FT, or LoRA of rank r on the planted matrices); KL on held-out
    rows (nan when training diverged)."""
    s, base, teacher = env["s"], env["base"], env["teacher"]
    student = adapt(base, method, r, seed, targets=PLANT_LORA[s.l6_target])
    cfg = TrainConfig(lr=s.l6_lr_full if method == "full" else s.l6_lr_lora, steps=s.l6_steps, batch_size=s.l6_batch,
                      warmup=max(1, s.l6_steps // 10), decay="cosine", seed=seed, grad_clip=1.0, progress=False)
    res = train(Distil(student, teacher), env["l6_train"], cfg)
    kl = distil_kl(student, teacher, env["l6_eval"]) if res.diverged_at is None else math.nan
    out = {"kl": kl, "lr": cfg.lr, "steps": cfg.steps, "wall_s": res.wall_s}
    if method == "full":  # L6's positive control: the spectrum of an update that is low-rank by construction
        out["spectra"] = update_spectra(c_attn_weights(student), env["w0"], seed, [SPECTRUM_R], gaussian=False)
    return out


def planted_runs(rec: Recorder, env: dict, results: list[dict], jobs: list, null_results: list[dict] = ()) -> dict:
    """Record L6's KL per run and gap(r) = (KL(LoRA r) - KL(full FT)) / KL(base), below and above k; and the
    positive control of the knowledge task's measure: full FT's planted update against the permuted-answer runs
    (`null_results`, one per seed)."""
    s, base, name = env["s"], env["base"], env["name"]
    k = min(s.l6_k, width(base))
    ranks = capped_ranks(s.l6_ranks, base)
    data = f"planted-rank{k}-{s.l6_target}"
    kl0 = env["kl0"]
    rec.add("L6", "l6_kl_base", kl0, unit="nats/token", model=name, data=data, scale="toy",
            params={"k": k, "target_kl": s.l6_target_kl}, info={"plant_scale": round(env["plant_scale"], 4)})
    kls: dict[tuple[str, int], list[float]] = {}
    for job, res in zip(jobs, results):
        kls.setdefault((job.method, job.r), []).append(res["kl"])
        p = {"k": k, "lr": res["lr"], "steps": res["steps"]}
        p |= {"r": job.r, "alpha": ALPHA} if job.method == "lora" else {}
        kw = {"model": name, "data": data, "method": job.method, "seed": job.seed, "scale": "toy", "params": p}
        rec.add("L6", "l6_kl", res["kl"], unit="nats/token", **kw)
        rec.add("L6", "l6_train_wall_s", res["wall_s"], unit="s", timing=True, **kw)
    mean = {key: nanmean(v) for key, v in kls.items()}
    gap = {r: (mean[("lora", r)] - mean[("full", 0)]) / kl0 for r in ranks}
    kw = {"unit": "share of KL(base)", "model": name, "data": data, "method": "lora", "scale": "toy"}
    for r in ranks:
        rec.add("L6", "l6_gap", gap[r], params={"k": k, "r": r}, **kw)
    below = [gap[r] for r in ranks if r < k]
    above = [gap[r] for r in ranks if r >= k]
    if below and above:
        rec.add("L6", "l6_gap_below_k_minus_gap_above_k", min(below) - max(above), params={"k": k}, **kw)
    if above:
        rec.add("L6", "l6_gap_above_k", max(above), params={"k": k}, **kw)
    planted = [(job.seed, *sp) for job, res in zip(jobs, results) for sp in res.get("spectra", [])]
    null = [(i, *sp) for i, res in enumerate(null_results) for sp in res.get("spectra", [])]
    record_control(rec, name, data, planted, null, k)
    return {"kl0": kl0, "k": k}
