"""Measures that can see what int8 does to a model (claim Q4), where whole-text perplexity cannot (issue 15:
planted outliers tripled a layer's error while held-out perplexity moved 0.1%).

- `kl_to_reference`: mean per-token KL(p_fp32 || p_int8) of the next-token distributions, in nats per token,
  over every position of the held-out blocks. It compares the two models' whole distributions at every
  position, so it moves where perplexity (the probability of one token, averaged in log space over ~8k tokens)
  hides the change; 0 exactly when the two models agree.
- `answer_scores`: on a knowledge task (`bench.data.tasks.knowledge_task`), the mean NLL of the answer token
  under the full vocabulary (nats) and the accuracy over the candidates (`bench.train.evaluate_classification`,
  the suite's one definition): the downstream stand-in for the paper's zero-shot accuracy (Dettmers et al.
  2022, Table 2), on facts the model stored in pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.train import evaluate_classification, next_token_logits


def _ids(batch) -> torch.Tensor:
    return batch if isinstance(batch, torch.Tensor) else batch["input_ids"]


@torch.no_grad()
def _logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """log-softmax of the next-token logits at every position of unpadded blocks (B, T) -> (B, T, V) float32."""
    return F.log_softmax(model(input_ids=ids).logits.float(), dim=-1)


@torch.no_grad()
def reference_logprobs(model, batches) -> list[torch.Tensor]:
    """The FP32 model's next-token log-probabilities per batch (B, T, V): computed once, compared with each int8
    copy (a cpu-profile rung: 8 batches x 16 x 128 x V <= 2048 floats, <= 134 MB)."""
    was = model.training
    model.eval()
    try:
        return [_logprobs(model, _ids(b)) for b in batches]
    finally:
        model.train(was)


def _nll_sum(lp: torch.Tensor, ids: torch.Tensor) -> float:
    """Sum of -log p(next token) over positions 0..T-2 of (B, T, V) log-probs and their blocks (B, T)."""
    return float(-lp[:, :-1].gather(-1, ids[:, 1:, None]).double().sum())


def reference_nll(ref_logprobs: list[torch.Tensor], batches) -> float:
    """Mean next-token NLL (nats) of the reference over the label tokens of `batches` (as bench.train.perplexity:
    every token but each block's first is a label)."""
    total = sum(_nll_sum(lp, _ids(b)) for lp, b in zip(ref_logprobs, batches))
    return total / sum(_ids(b)[:, 1:].numel() for b in batches)


@torch.no_grad()
def kl_to_reference(ref_logprobs: list[torch.Tensor], model, batches) -> dict:
    """{"kl_per_token": mean over all positions of KL(p_ref || p_model) = sum_v p_ref (log p_ref - log p_model)
    (nats per token), "nll_per_token": the model's mean next-token NLL (nats; exp() of it is bench.train's
    perplexity)}. batches: the unpadded LongTensors (B, T) `ref_logprobs` came from."""
    was = model.training
    model.eval()
    kl_sum, nll_sum, n_kl, n_nll = 0.0, 0.0, 0, 0
    try:
        for lp, b in zip(ref_logprobs, batches):
            ids = _ids(b)
            lq = _logprobs(model, ids)
            kl = (lp.exp() * (lp - lq)).sum(-1)                     # (B, T), >= 0 up to rounding
            kl_sum += float(kl.double().sum())
            n_kl += kl.numel()
            nll_sum += _nll_sum(lq, ids)
            n_nll += ids[:, 1:].numel()
    finally:
        model.train(was)
    return {"kl_per_token": kl_sum / n_kl, "nll_per_token": nll_sum / n_nll}


@torch.no_grad()
def answer_scores(model, dataset, batch_size: int = 64) -> dict:
    """Knowledge-task rows (prompt_ids, candidate_ids, label): {"answer_nll": mean -log p(answer token | prompt)
    over the whole vocabulary (nats), "accuracy": argmax over the candidates (evaluate_classification)}."""
    logits = next_token_logits(model, dataset["prompt_ids"], batch_size)              # per row (V,)
    nll = [float(-F.log_softmax(lg.double(), -1)[c[y]]) for lg, c, y in
           zip(logits, dataset["candidate_ids"], dataset["label"])]
    return {"answer_nll": sum(nll) / len(nll), "accuracy": evaluate_classification(model, dataset, batch_size)}
