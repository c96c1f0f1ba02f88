"""Part 4, the knowledge task (L4, L5, L1, L3, L6): full FT and LoRA at every rank, >= 3 seeds; merged vs
unmerged; adapter vs full checkpoint files; the full-FT update's singular spectrum (the PCA picture of L6).

`knowledge_job` is one (method, r, seed) fine-tuning run (bench.jobs); `knowledge_runs` records its results.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path

import torch

from bench.methods.common import blocks
from bench.schema import Recorder
from bench.train import TrainConfig, evaluate_classification, train

from reproductions.lora.merge import after_training
from reproductions.lora.rung import adapt, capped_ranks, n_trainable, nanmean
from reproductions.lora.settings import ALPHA

SPECTRUM_R = 8          # the rank whose energy share is compared with a random matrix's (l6_*_top8)


def svd_energy(w: torch.Tensor, ranks) -> dict[int, float]:
    """r -> share of sum s_i^2 in the top r singular values of w."""
    sv = torch.linalg.svdvals(w.double())
    e = sv**2
    cum = torch.cumsum(e, 0) / e.sum()
    return {r: float(cum[min(r, len(cum)) - 1]) for r in ranks}


def c_attn_weights(model) -> list[torch.Tensor]:
    """Copies of every block's c_attn weight (Conv1D: (d, 3d)), under an adapter if there is one."""
    out = []
    for blk in blocks(model)[1]:
        mod = blk.attn.c_attn
        out.append(getattr(mod, "base", mod).weight.detach().clone())
    return out


def knowledge_job(env: dict, method: str, r: int, seed: int) -> dict:
    """Fine-tune on the knowledge task; score the test people. Full FT also returns its update's spectrum
    (L6); LoRA at the main rank returns the merge checks (L5, L1) and, for the first seed, its file (L3)."""
    s, base = env["s"], env["base"]
    m = adapt(base, method, r, seed)
    cfg = TrainConfig(lr=s.lr_full if method == "full" else s.lr_lora, steps=s.ft_steps, batch_size=s.ft_batch,
                      warmup=max(1, s.ft_steps // 10), decay="cosine", seed=seed, progress=False)
    res = train(m, env["task"]["train"], cfg)
    out = {"acc": evaluate_classification(m, env["task"]["test"]) if res.diverged_at is None else math.nan,
           "final_loss": res.final.get("final_loss", math.nan), "wall_s": res.wall_s, "lr": cfg.lr,
           "steps": cfg.steps}
    if method == "full":
        out["spectra"] = _update_spectra(m, env["w0"], seed, sorted(set(capped_ranks(s.ranks, base)) | {SPECTRUM_R}))
        with tempfile.TemporaryDirectory() as tmp:
            m.cpu().save_pretrained(tmp)
            out["full_file_bytes"] = (Path(tmp) / "model.safetensors").stat().st_size
    if method == "lora" and r == min(s.main_r, max(capped_ranks(s.ranks, base))):
        out["after"] = after_training(m, base, env["ids"])
        out["lora_state"] = {k: v.detach().cpu().clone() for k, v in m.state_dict().items() if "lora_" in k}
    return out


def _update_spectra(m, w0: list[torch.Tensor], seed: int, ranks) -> list[tuple]:
    """Per layer: (layer, energy of dW = W_ft - W_0 by r, energy of a Gaussian matrix of dW's shape by r,
    dW's singular values)."""
    out = []
    for li, (w_ft, w_0) in enumerate(zip(c_attn_weights(m), w0)):
        dw = w_ft.cpu() - w_0.cpu()                                     # (d, 3d)
        g = torch.Generator().manual_seed(1000 * seed + li)
        noise = torch.randn(dw.shape, generator=g, dtype=torch.float64)
        out.append((li, svd_energy(dw, ranks), svd_energy(noise, ranks), torch.linalg.svdvals(dw.double()).tolist()))
    return out


def knowledge_runs(rec: Recorder, env: dict, results: list[dict], jobs: list, seeds, mem_totals: dict) -> dict:
    """Record L4 (quality vs r), L5/L1 (merge), L3 (files), L6 (full-FT update spectrum) from job results.
    Returns {"trained_lora": the first seed's LoRA at the main rank, for the latency part} when there is one."""
    name, test = env["name"], env["task"]["test"]
    data = f"knowledge-{env['s'].fmt}-{env['s'].attributes}"
    chance = float(sum(1 / len(c) for c in test["candidates"]) / len(test))
    rec.add("L4", "l4_chance", chance, unit="accuracy", model=name, data=data, scale="toy")
    rec.add("L4", "l4_zero_shot_accuracy", evaluate_classification(env["base"], test), unit="accuracy", model=name,
            data=data, scale="toy")
    acc: dict[tuple[str, int], list[float]] = {}
    spectra, out = [], {}
    for job, res in zip(jobs, results):
        acc.setdefault((job.method, job.r), []).append(res["acc"])
        _record_job(rec, env, data, job, res, out, first=job.seed == seeds[0])
        spectra += [(job.seed, *sp) for sp in res.get("spectra", [])]
    _record_files(rec, name, out)
    _record_quality(rec, env, data, acc, chance, mem_totals)
    _record_spectra(rec, name, data, capped_ranks(env["s"].ranks, env["base"]), spectra)
    return out


def _record_job(rec: Recorder, env: dict, data: str, job, res: dict, out: dict, first: bool) -> None:
    """One run's L4 rows; at the main rank its merge checks (L5, L1) and, for the first seed, its file (L3)."""
    name, method, r, seed = env["name"], job.method, job.r, job.seed
    kw = {"model": name, "data": data, "method": method, "seed": seed, "scale": "toy",
          "params": ({"r": r, "alpha": ALPHA} if method == "lora" else {}) | {"lr": res["lr"], "steps": res["steps"]}}
    rec.add("L4", "l4_test_accuracy", res["acc"], unit="accuracy", **kw)
    rec.add("L4", "l4_final_train_loss", res["final_loss"], unit="nats", **kw)
    rec.add("L4", "l4_train_wall_s", res["wall_s"], unit="s", timing=True, **kw)
    if "full_file_bytes" in res and first:
        out["full_file_bytes"] = res["full_file_bytes"]
    if "after" not in res:
        return
    a, pr = res["after"], {"r": r, "alpha": ALPHA}
    kw = {"model": name, "data": data, "method": "lora", "seed": seed, "scale": "exact", "params": pr}
    for metric in ("l5_merged_vs_unmerged_max_abs_diff", "l5_unmerge_roundtrip_max_abs_diff",
                   "l5_unloaded_vs_unmerged_max_abs_diff", "l5_unloaded_extra_params"):
        rec.add("L5", metric, a[metric], unit="params" if metric.endswith("params") else "abs", **kw)
    rec.add("L1", "l1_merged_delta_max_abs_err", a["l1_merged_delta_max_abs_err"], unit="abs", **kw)
    if first:
        rec.add("L3", "adapter_file_size_error_bytes", a["file_error"], unit="bytes", model=name, method="lora",
                scale="exact", params=pr | {"header_bytes": a["header_bytes"]})
        out["adapter_file_bytes"] = {r: a["file_bytes"]}
        trained = adapt(env["base"], "lora", r, seed)
        trained.load_state_dict(res["lora_state"], strict=False)
        out["trained_lora"] = trained.eval()


def _record_files(rec: Recorder, name: str, out: dict) -> None:
    """L3: the full model's checkpoint file vs the adapter file, both fp32 safetensors."""
    if "full_file_bytes" not in out:
        return
    full = out["full_file_bytes"]
    rec.add("L3", "checkpoint_file_bytes", full, unit="bytes", model=name, method="full", scale="toy",
            params={"dtype": "fp32"})
    for r, b in out.get("adapter_file_bytes", {}).items():
        rec.add("L3", "checkpoint_file_bytes", b, unit="bytes", model=name, method="lora", scale="toy",
                params={"dtype": "fp32", "r": r})
        rec.add("L3", "checkpoint_ratio_vs_full", b / full, unit="ratio", model=name, method="lora", scale="toy",
                params={"r": r})


def _record_quality(rec: Recorder, env: dict, data: str, acc: dict, chance: float, mem_totals: dict) -> None:
    """L4's derived rows: seed means by rank, trainable parameters and training memory by rank, the spread of
    quality over ranks, and whether parameters and memory grow with r."""
    s, base, name = env["s"], env["base"], env["name"]
    ranks = capped_ranks(s.ranks, base)
    means = {k: nanmean(v) for k, v in acc.items()}
    lora_means = {r: means[("lora", r)] for r in ranks}
    trainable = {r: n_trainable(adapt(base, "lora", r)) for r in ranks}
    kw = {"model": name, "method": "lora", "scale": "toy"}
    for r in ranks:
        p = {"r": r, "alpha": ALPHA}
        rec.add("L4", "l4_test_accuracy_mean", lora_means[r], unit="accuracy", data=data, params=p, **kw)
        rec.add("L4", "l4_trainable_params", trainable[r], unit="params", params=p, **kw)
        if ("lora", r) in mem_totals:
            rec.add("L4", "l4_train_memory_bytes", mem_totals[("lora", r)], unit="bytes",
                    params=p | {"batch": s.mem_batch, "seq": s.mem_seq}, **kw)
    rec.add("L4", "l4_test_accuracy_mean", means[("full", 0)], unit="accuracy", model=name, data=data,
            method="full", scale="toy")
    vals = [v for v in lora_means.values() if math.isfinite(v)]
    spread = (max(vals) - min(vals)) if len(vals) == len(lora_means) else math.nan
    rec.add("L4", "l4_quality_spread_over_r", spread, unit="accuracy", data=data, params={"ranks": list(ranks)}, **kw)
    rec.add("L4", "l4_best_lora_minus_chance", (max(vals) - chance) if vals else math.nan, unit="accuracy",
            data=data, **kw)
    tp = [trainable[r] for r in ranks]
    rec.add("L4", "l4_trainable_params_increasing", float(all(a < b for a, b in zip(tp, tp[1:]))), unit="bool", **kw)
    mt = [mem_totals.get(("lora", r), math.nan) for r in ranks]
    rec.add("L4", "l4_memory_nondecreasing", float(all(a <= b for a, b in zip(mt, mt[1:]))), unit="bool", **kw)


def _record_spectra(rec: Recorder, name: str, data: str, ranks, spectra: list[tuple]) -> None:
    """L6: energy share of the full-FT update's top r singular directions (c_attn, mean over layers and seeds)
    vs a Gaussian matrix of the same shape; per layer at r = 8; and the ratio at r = 8.
    spectra: (seed, layer, energy dW by r, energy Gaussian by r, singular values)."""
    for r in sorted(set(ranks) | {SPECTRUM_R}):
        p = {"r": r, "matrix": "c_attn"}
        rec.add("L6", "l6_fullft_energy_top_r", statistics.mean(sp[2][r] for sp in spectra), unit="share", model=name,
                data=data, method="full", scale="toy", params=p)
        rec.add("L6", "l6_random_energy_top_r", statistics.mean(sp[3][r] for sp in spectra), unit="share", model=name,
                method="-", scale="toy", params=p)
    for seed, li, e_dw, _, _ in spectra:
        rec.add("L6", "l6_fullft_energy_top8", e_dw[SPECTRUM_R], unit="share", model=name, data=data, method="full",
                seed=seed, scale="toy", params={"layer": li, "matrix": "c_attn"})
    ratio = (statistics.mean(sp[2][SPECTRUM_R] for sp in spectra)
             / statistics.mean(sp[3][SPECTRUM_R] for sp in spectra))
    rec.add("L6", "l6_energy_top8_over_random", ratio, unit="ratio", model=name, data=data, method="full", scale="toy")
