"""P4's measures: one frozen model serving K tasks in mixed batches (Lester et al. 2021 Sec. 1 and Fig. 2; Hu et al.
2021 Sec. 4), against one tuned model per task.

- `p4_equivalence`: one forward pass over a batch mixing tasks, each example with its own soft prompt (or its own
  LoRA adapter) through bench.methods.multitask, equals each task alone through its own model (scale "exact").
- `serving_throughput`: one serving window of K * n requests (n per task), every row exactly T tokens (one length
  bucket, so padding is the same on both sides). Mixed: the frozen model with per-example parts, one call of K * n
  rows. Per task: K tuned models, each its own copy of the weights, one call of n rows each. The same rows on
  both sides; prompt tuning's rows carry its n_prompt extra tokens, as they do in serving.
- `batching_gain`: the same window through one plain model, K calls of n rows against one call of K * n rows. It
  says whether this machine has a regime where batching pays at all; where it does not, mixing tasks into one
  batch has nothing to gain, and P4's throughput part cannot show (its precondition).
"""

from __future__ import annotations

import copy

import torch

from bench.methods import apply, make_config, multi_lora, prompt_bank
from bench.methods.lora import lora_layers, merge_and_unload
from bench.timing import abba, pair_stats


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
                   lora_models: list | None = None) -> float:
    """max |logit difference| at every real position between a mixed batch (tasks interleaved, each row with its
    own part) and each task alone through its own model. task_rows[k]: token lists of task k. With `prompts`
    (K, n, d): bench.methods' prompt wrapper per task is the reference; with `lora_models`: each task's LoRA model
    is. Each task alone is padded to the mixed batch's length, so that only the mixing differs (a different padded
    length changes float summation order, not the function)."""
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
    out = mm(input_ids=ids, attention_mask=mask, task_ids=task_ids).logits
    worst = 0.0
    for k in range(K):
        kids, kmask = pad(task_rows[k], T=ids.shape[1])
        ref = refs[k](input_ids=kids, attention_mask=kmask).logits        # (N_k, T_k, V)
        rows = [j for j, (kk, _) in enumerate(order) if kk == k]
        worst = max(worst, max_abs_diff_real(out[rows], ref, kmask))
    return worst


def task_parts(base, K: int, prompt_len: int, lora_kwargs: dict, g: torch.Generator):
    """K tasks' parts, each distinct so that routing a row to the wrong task shows: soft prompts (K, n, d) of
    sampled vocabulary embeddings (Lester et al. 2021 Sec. 3's sampled-vocab init), and K LoRA models of `base`
    with B ~ N(0, 0.02) (untrained values: a part's values change no cost, and the equivalence holds for any)."""
    emb = base.get_input_embeddings().weight
    prompts = torch.stack([emb[torch.randint(0, emb.shape[0], (prompt_len,), generator=g)].detach().clone()
                           for _ in range(K)])
    loras = []
    for _ in range(K):
        m = apply(copy.deepcopy(base), make_config("lora", **lora_kwargs))
        with torch.no_grad():
            for _, layer in lora_layers(m):
                layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.02)
        loras.append(m.eval())
    return prompts, loras


def tuned_models(loras: list) -> list:
    """One tuned model per task, each its own copy of the weights: task k's LoRA merged into its own copy of the
    base (W + s B A), which costs what a fully fine-tuned model of the same architecture costs to run."""
    return [merge_and_unload(copy.deepcopy(m)).eval() for m in loras]


def mixed_models(base, prompts: torch.Tensor, loras: list) -> dict:
    """method -> the one frozen model serving every task: prompt_bank / multi_lora over one copy of the base."""
    K = prompts.shape[0]
    return {"prompt": prompt_bank(copy.deepcopy(base), {str(k): prompts[k] for k in range(K)}),
            "lora": multi_lora(copy.deepcopy(base), {str(k): m for k, m in enumerate(loras)})}


def window(K: int, n: int, T: int, vocab: int, g: torch.Generator):
    """One serving window: K * n rows of exactly T tokens, tasks interleaved (0, 1, ..., K-1, 0, ...).
    Returns ids (K n, T), task_ids (K n,), and each task's rows (n, T) as the per-task calls see them."""
    ids = torch.randint(1, vocab, (K * n, T), generator=g)
    task_ids = torch.arange(K * n) % K
    return ids, task_ids, [ids[task_ids == k] for k in range(K)]


@torch.no_grad()
def serving_throughput(mixed, tuned: list, ids, task_ids, per_task: list, pairs: int) -> dict:
    """K tuned models (one call of n rows each) over the mixed model (one call of K n rows), in ABBA pairs:
    bench.timing.pair_stats, whose ratio = per-task seconds / mixed seconds = the mixed batch's examples per second
    over one tuned model per task's (> 1: the mixed batch serves faster)."""
    def per_task_calls():
        for model, rows in zip(tuned, per_task):
            model(input_ids=rows)
    return pair_stats(*abba(per_task_calls, lambda: mixed(input_ids=ids, task_ids=task_ids), pairs, warmup=True))


@torch.no_grad()
def batching_gain(model, ids, per_task: list, pairs: int) -> dict:
    """The same window through one plain model: K calls of n rows over one call of K n rows (pair_stats; ratio
    > 1: batching pays on this machine at this window)."""
    def split_calls():
        for rows in per_task:
            model(input_ids=rows)
    return pair_stats(*abba(split_calls, lambda: model(input_ids=ids), pairs, warmup=True))
