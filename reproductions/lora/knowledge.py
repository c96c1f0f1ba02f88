"""Part 4, the knowledge task (L4, L5, L1, L3, L6): full FT (its lr searched on validation people) and LoRA at
every rank, >= 3 seeds; merged vs unmerged; adapter vs full checkpoint files; the full-FT update's singular
spectrum against the update of full FT on permuted answers (the null of L6, see reproductions.lora.spectra).

`knowledge_job` is one (method, r, seed) fine-tuning run (bench.jobs); `knowledge_runs` records its results.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import datasets
import torch

from bench import BenchError
from bench.data.tasks import IGNORE
from bench.schema import Recorder
from bench.train import TrainConfig, evaluate_classification, train

from reproductions.lora.merge import after_training
from reproductions.lora.rung import adapt, capped_ranks, n_trainable, nanmean
from reproductions.lora.settings import ALPHA
from reproductions.lora.spectra import (SPECTRUM_R, c_attn_weights, lora_a_matrices, record_spectra, record_subspaces,
                                        update_spectra)


def shuffled_answers(train_rows: datasets.Dataset, seed: int) -> datasets.Dataset:
    """The train split with its answers permuted among the rows of each attribute: the same prompts, answer
    set and answer frequencies, but answers no stored fact supports (the null update of L6)."""
    rows = train_rows.to_list()
    g = torch.Generator().manual_seed(seed)
    by_attr: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_attr.setdefault(row["attribute"], []).append(i)
    for idx in by_attr.values():
        perm = torch.randperm(len(idx), generator=g).tolist()
        moved = [(rows[idx[k]]["label"], rows[idx[k]]["answer"]) for k in perm]
        for i, (label, answer) in zip(idx, moved):
            row, ans = rows[i], rows[i]["candidate_ids"][label]
            row.update(label=label, answer=answer, input_ids=row["prompt_ids"] + [ans],
                       labels=[IGNORE] * len(row["prompt_ids"]) + [ans])
    return datasets.Dataset.from_list(rows)


def knowledge_job(env: dict, method: str, r: int, seed: int, lr: float | None = None, split: str = "test",
                  shuffled: bool = False) -> dict:
    """Fine-tune on the knowledge task (or, `shuffled`, on its permuted answers); score the people of `split`.
    Full FT needs `lr` (the searched one) and returns its update's spectrum (L6); LoRA at the main rank returns
    the merge checks (L5, L1) and, for the first seed, its file (L3); LoRA at SPECTRUM_R and at the largest
    rank returns its A matrices (the subspace similarity of L6)."""
    s, base = env["s"], env["base"]
    lr = lr or (s.lr_lora if method == "lora" else None)
    if lr is None:
        raise BenchError("lora group: full FT runs at the lr its search picked; none was given")
    m = adapt(base, method, r, seed)
    cfg = TrainConfig(lr=lr, steps=s.ft_steps, batch_size=s.ft_batch, warmup=max(1, s.ft_steps // 10),
                      decay="cosine", seed=seed, progress=False)
    res = train(m, env["shuffled_train"] if shuffled else env["task"]["train"], cfg)
    out = {"acc": evaluate_classification(m, env["task"][split]) if res.diverged_at is None else math.nan,
           "final_loss": res.final.get("final_loss", math.nan), "wall_s": res.wall_s, "lr": cfg.lr,
           "steps": cfg.steps}
    if split != "test":
        return out
    ranks = capped_ranks(s.ranks, base)
    if method == "full":
        out["spectra"] = update_spectra(c_attn_weights(m), env["w0"], seed, sorted(set(ranks) | {SPECTRUM_R}))
        if not shuffled:
            with tempfile.TemporaryDirectory() as tmp:
                m.cpu().save_pretrained(tmp)
                out["full_file_bytes"] = (Path(tmp) / "model.safetensors").stat().st_size
    if method == "lora" and r in (SPECTRUM_R, max(ranks)):
        out["lora_A"] = lora_a_matrices(m)
    if method == "lora" and r == min(s.main_r, max(ranks)):
        out["after"] = after_training(m, base, env["ids"])
        out["lora_state"] = {k: v.detach().cpu().clone() for k, v in m.state_dict().items() if "lora_" in k}
    return out


def knowledge_runs(rec: Recorder, env: dict, results: list[dict], jobs: list, seeds, mem_totals: dict,
                   null_results: list[dict] = ()) -> dict:
    """Record L4 (quality vs r), L5/L1 (merge), L3 (files), L6 (the full-FT update's spectrum against the null
    runs' `null_results`, one per seed; LoRA subspaces) from job results. Returns {"trained_lora": the first
    seed's LoRA at the main rank, for the latency part} when there is one."""
    name, test = env["name"], env["task"]["test"]
    data = knowledge_data(env["s"])
    chance = float(sum(1 / len(c) for c in test["candidates"]) / len(test))
    rec.add("L4", "l4_chance", chance, unit="accuracy", model=name, data=data, scale="toy")
    rec.add("L4", "l4_zero_shot_accuracy", evaluate_classification(env["base"], test), unit="accuracy", model=name,
            data=data, scale="toy", info={"n_test": len(test)})
    acc: dict[tuple[str, int], list[float]] = {}
    spectra, a_mats, out = [], {}, {}
    for job, res in zip(jobs, results):
        acc.setdefault((job.method, job.r), []).append(res["acc"])
        _record_job(rec, env, data, job, res, out, first=job.seed == seeds[0])
        spectra += [(job.seed, *sp) for sp in res.get("spectra", [])]
        if "lora_A" in res:
            a_mats[(job.r, job.seed)] = res["lora_A"]
    null = [(seed, *sp) for seed, res in zip(seeds, null_results) for sp in res["spectra"]]
    for seed, res in zip(seeds, null_results):
        rec.add("L6", "l6_shuffled_final_train_loss", res["final_loss"], unit="nats", model=name, method="full",
                seed=seed, scale="toy", data=f"{data}-permuted-answers", info={"lr": res["lr"]})
    _record_files(rec, name, out)
    _record_quality(rec, env, data, acc, chance, mem_totals)
    ranks = capped_ranks(env["s"].ranks, env["base"])
    record_spectra(rec, name, data, ranks, spectra, null)
    record_subspaces(rec, name, data, a_mats, int(env["w0"][0].shape[0]))
    return out


def knowledge_data(s) -> str:
    """The knowledge task's name in the rows' `data` column."""
    return f"knowledge-{s.fmt}-{s.attributes}"


def _record_job(rec: Recorder, env: dict, data: str, job, res: dict, out: dict, first: bool) -> None:
    """One run's L4 rows; at the main rank its merge checks (L5, L1) and, for the first seed, its file (L3)."""
    name, method, r, seed = env["name"], job.method, job.r, job.seed
    # full FT's lr was picked by a search: a measured value, so it goes to info (rows are keyed on params)
    params = {"r": r, "alpha": ALPHA, "lr": res["lr"]} if method == "lora" else {"lr_role": "tuned"}
    kw = {"model": name, "data": data, "method": method, "seed": seed, "scale": "toy",
          "params": params | {"steps": res["steps"]}, "info": {"lr": res["lr"], "n_test": len(env["task"]["test"])}}
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
