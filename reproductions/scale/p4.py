"""P4: mixed-task batches through one frozen model (Lester et al. 2021 Sec. 1; Hu et al. 2021 Sec. 4).

One forward pass over a batch mixing tasks, each example with its own soft prompt (and, separately, its own LoRA
adapter) through bench.methods.multitask's `prompt_bank` / `multi_lora`, equals each task's own model to 1e-5 (scale
"exact"), and its throughput vs one batch per task goes to timings.csv. That ratio mostly measures padding: the mixed
batch pads every row to the longest row of any task (d2t), the per-task batches only to their own task's longest;
the cost of the mixing itself is measured in the methods benchmark (mixed_batch_throughput_over_single_task).
"""

from __future__ import annotations

import copy

import torch

from bench.methods import apply, make_config, multi_lora, prompt_bank
from bench.methods.lora import lora_layers
from bench.schema import Recorder
from bench.timing import medians, round_robin, timing_params
from reproductions.scale.models import Rung, method_kwargs
from reproductions.scale.settings import Settings


def pad(rows: list[list[int]], pad_id: int = 0, T: int | None = None):
    """Right-pad token lists to T (default: the longest): (input_ids, attention_mask), each (B, T)."""
    T = T or max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


@torch.no_grad()
def max_abs_diff_real(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """max |a - b| over the real (unpadded) positions; a, b (B, T, V), mask (B, T)."""
    keep = mask.bool()
    return float((a[keep] - b[keep]).abs().max())


@torch.no_grad()
def p4_equivalence(base, task_rows: list[list[list[int]]], prompts: torch.Tensor | None = None,
                   lora_models: list | None = None) -> dict:
    """Mixed batch (tasks interleaved) vs each task alone through its own model. task_rows[k]: token lists of
    task k. With `prompts` (K, n, d): bench.methods' prompt wrapper per task is the reference; with
    `lora_models`: each task's LoRA model is. Each task alone is padded to the mixed batch's length, so that only
    the mixing differs (a different padded length changes float summation order, not the function).
    Returns max_abs_diff and the pieces for timing."""
    K = len(task_rows)
    order = [(k, i) for i in range(max(len(r) for r in task_rows)) for k in range(K) if i < len(task_rows[k])]
    ids, mask = pad([task_rows[k][i] for k, i in order])
    task_ids = torch.tensor([k for k, _ in order])
    if prompts is not None:
        refs = []
        for k in range(K):
            m = apply(base, make_config("prompt", num_virtual_tokens=prompts.shape[1], init="random"))
            m.prompt.data.copy_(prompts[k])
            refs.append(m.eval())
        mm = prompt_bank(copy.deepcopy(base), {str(k): prompts[k] for k in range(K)})
    else:
        refs = [m.eval() for m in lora_models]
        mm = multi_lora(copy.deepcopy(base), {str(k): m for k, m in enumerate(lora_models)})
    mixed = lambda: mm(input_ids=ids, attention_mask=mask, task_ids=task_ids).logits  # noqa: E731
    out = mixed()
    worst = 0.0
    for k in range(K):
        kids, kmask = pad(task_rows[k], T=ids.shape[1])
        ref = refs[k](input_ids=kids, attention_mask=kmask).logits        # (N_k, T_k, V)
        rows = [j for j, (kk, _) in enumerate(order) if kk == k]
        worst = max(worst, max_abs_diff_real(out[rows], ref, kmask))
    alone = [(refs[k], *pad(task_rows[k])) for k in range(K)]             # timing: each task at its own length
    per_task = lambda: [m(input_ids=i, attention_mask=a).logits for m, i, a in alone]  # noqa: E731
    return {"max_abs_diff": worst, "mixed": mixed, "per_task": per_task, "examples": len(order)}


def run_p4(rec: Recorder, rc: Rung, s: Settings, stash: dict, seed: int) -> None:
    """P4 on one rung: equivalence (exact) and timing (toy) for soft prompts and for LoRA adapters. `stash`:
    the sweep's trained parts (see trained_parts); K = max(2, tasks) task slots, those without one get a random
    part (still one per task)."""
    tasks = [t for t in s.tasks if t in rc.data]
    if not tasks:
        return
    K = max(2, len(tasks))
    pools = []
    for k in range(K):
        t = tasks[k % len(tasks)]
        src = rc.data[t].get("test_full", rc.data[t]["test"])
        off = (k // len(tasks)) * s.p4_per_task
        pools.append((t, [list(r) for r in src["input_ids"][off:off + s.p4_per_task]]))
    task_rows = [r for _, r in pools]
    base = copy.deepcopy(rc.model).eval()
    prompts, src_p = _prompts(base, pools, len(tasks), s, stash, seed)
    loras, src_l = _loras(rc, pools, len(tasks), s, stash, seed)
    for method, kwargs, src in (("prompt", {"prompts": prompts}, src_p), ("lora", {"lora_models": loras}, src_l)):
        res = p4_equivalence(base, task_rows, **kwargs)
        p = {"tasks": ",".join(t for t, _ in pools), "K": K, "per_task": s.p4_per_task,
             "source": ",".join(sorted(set(src)))}
        stored = prompts[0].numel() if method == "prompt" else sum(
            l.lora_A.weight.numel() + l.lora_B.weight.numel() for _, l in lora_layers(loras[0]))
        _record(rec, rc, s, method, res, p, (rc.params + K * stored) / (K * rc.params))


def _prompts(base, pools, n_trained: int, s: Settings, stash: dict, seed: int):
    """(K, n, d) prompts, the sweep's trained one per task where it has one of length n, and their sources."""
    g = torch.Generator().manual_seed(seed)
    emb = base.get_input_embeddings().weight
    prompts, src = [], []
    for k, (t, _) in enumerate(pools):
        trained = stash.get(("prompt", t)) if k < n_trained else None
        if trained is not None and trained.shape[0] == s.prompt_len:
            prompts.append(trained)
            src.append("trained")
        else:   # no trained prompt of this length: sampled vocabulary embeddings (still a per-task prompt)
            prompts.append(emb[torch.randint(0, emb.shape[0], (s.prompt_len,), generator=g)].detach().clone())
            src.append("random")
    return torch.stack(prompts), src


def _loras(rc: Rung, pools, n_trained: int, s: Settings, stash: dict, seed: int):
    """K LoRA models of the rung, the sweep's trained one per task where it has one, and their sources."""
    loras, src = [], []
    for k, (t, _) in enumerate(pools):
        m = stash.get(("lora", t)) if k < n_trained else None
        if m is None:   # untrained adapters with B != 0, so that the choice of adapter changes the output
            torch.manual_seed(seed * 100 + k)
            m = apply(copy.deepcopy(rc.model), make_config("lora", **method_kwargs("lora", s, rc)))
            with torch.no_grad():
                for _, layer in lora_layers(m):
                    layer.lora_B.weight.normal_(0.0, 0.02)
            src.append("random")
        else:
            src.append("trained")
        loras.append(m.eval())
    return loras, src


def _record(rec: Recorder, rc: Rung, s: Settings, method: str, res: dict, p: dict, serving_ratio: float) -> None:
    """P4's rows for one method: the equivalence and the serving parameters (exact), then the timings."""
    row = dict(model=rc.name, data="mixed", method=method)
    rec.add("P4", f"p4_{method}_mixed_max_abs_diff", res["max_abs_diff"], unit="logit", scale="exact", params=p,
            **row)
    rec.add("P4", "p4_serving_params_ratio", serving_ratio, unit="ratio", scale="exact",
            params={**p, "note": "1 frozen model + K task parts vs K tuned models"}, **row)
    with torch.no_grad():
        t = medians(round_robin({"mixed": res["mixed"], "per_task": res["per_task"]}, s.p4_rounds, warmup=True))
    tp = timing_params(**p, rounds=s.p4_rounds)
    for key, metric in (("mixed", "p4_mixed_batch_s"), ("per_task", "p4_per_task_batches_s")):
        rec.add("P4", metric, t[key], unit="s", params=tp, timing=True, **row)
    rec.add("P4", "p4_mixed_examples_per_s_over_per_task", t["per_task"] / t["mixed"], unit="ratio", params=tp,
            timing=True, **row)


def trained_parts(rc: Rung, s: Settings, kept: dict) -> dict:
    """P4's inputs from the jobs' kept parts: (prompt, task) -> the prompt (n, d); (lora, task) -> a LoRA model of
    the rung with the trained A and B put back."""
    out = {}
    for (m, t), part in kept.items():
        if part is None:
            continue
        if m == "prompt":
            out[(m, t)] = part
            continue
        model = apply(copy.deepcopy(rc.model), make_config(m, **method_kwargs(m, s, rc)))   # A, B overwritten below
        with torch.no_grad():
            for name, layer in lora_layers(model):
                layer.lora_A.weight.copy_(part[name][0])
                layer.lora_B.weight.copy_(part[name][1])
        out[(m, t)] = model
    return out
