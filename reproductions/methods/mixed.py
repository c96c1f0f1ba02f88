"""Part 4: multi-task serving (bench.methods.multitask). A batch mixing K tasks, each row with its own LoRA
adapter (multi_lora) or soft prompt (prompt_bank), against a single-task batch of the same size through the
plain single-adapter model (LoRA: bench.methods.lora; prompt: bench.methods.prompt). Rows are interleaved by task
(0, 1, ..., K-1, 0, ...: the hardest order). Throughput ratio single time / mixed time in ABBA pairs, target
>= TARGET_MIXED_THROUGHPUT; each mixed row must also equal that row alone through its task's own model."""

from __future__ import annotations

import torch

from bench.methods import multi_lora, prompt_bank
from bench.schema import Recorder
from bench.timing import abba, pair_stats, timing_params
from reproductions.methods.inference import random_lora_B
from reproductions.methods.models import sharing_copy, variant
from reproductions.methods.settings import TARGET_MIXED_THROUGHPUT, ModelSpec, Settings, method_kwargs


def task_models(base, K: int, g: torch.Generator) -> dict[str, tuple]:
    """method -> (the mixed-task model over K tasks, the K single-task models); weights shared with base."""
    loras = []
    for _ in range(K):
        m = variant("lora", base).eval()
        random_lora_B(m, g)
        loras.append(m)
    prompts = [variant("prompt", base).eval() for _ in range(K)]
    return {
        "lora": (multi_lora(sharing_copy(base), {str(k): m for k, m in enumerate(loras)}), loras),
        "prompt": (prompt_bank(sharing_copy(base), {str(k): m for k, m in enumerate(prompts)}), prompts),
    }


def mixed_serving(rec: Recorder, base, spec: ModelSpec, s: Settings, seed: int, dev, common: dict) -> None:
    """Per method: max |mixed row - the row alone| (results.csv) and the ABBA-paired throughput ratio of the
    mixed batch over a single-task batch of the same (batch, seq) (timings.csv)."""
    K = s.mixed_tasks
    g = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(1, spec.vocab, (s.batch, s.seq), generator=g).to(dev)
    task_ids = (torch.arange(s.batch) % K).to(dev)                     # interleaved: 0, 1, ..., K-1, 0, ...
    for method, (mixed, singles) in task_models(base, K, g).items():
        with torch.no_grad():
            out = mixed(input_ids=ids, task_ids=task_ids).logits          # also the warm-up of both sides
            singles[0](input_ids=ids)
            diff = max(float((out[b] - singles[int(task_ids[b])](input_ids=ids[b:b + 1]).logits[0]).abs().max())
                       for b in range(s.batch))
            # single time / mixed time: > 1 means the mixed batch is faster
            st = pair_stats(*abba(lambda: singles[0](input_ids=ids), lambda: mixed(input_ids=ids, task_ids=task_ids),
                                  s.pair_rounds))
        kw = {"batch": s.batch, "seq": s.seq, "n_embd": spec.n_embd, "n_layer": spec.n_layer, "K": K,
              "order": "interleaved", "method_kwargs": method_kwargs(method)}
        if method == "lora":
            kw["layout"] = "stacked" if next(m for m in mixed.modules() if hasattr(m, "stacked")).stacked else "grouped"
        rec.add("-", "mixed_batch_vs_single_rows_max_abs_diff", diff, unit="logit", method=method, scale="toy",
                params={**kw, "supports": "P4"}, **common)
        tp = timing_params(**kw, protocol="ABBA pairs", supports="P4", target=TARGET_MIXED_THROUGHPUT,
                           **{k: v for k, v in st.items() if k != "ratio"})
        rec.add("-", "mixed_batch_throughput_over_single_task", st["ratio"], unit="ratio", method=method, scale="toy",
                params=tp, timing=True, **common)
