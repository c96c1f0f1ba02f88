"""What a pretrained rung is scored on: the held-out biographies (perplexity) and zero-shot knowledge probes."""

from __future__ import annotations

from bench.data.tasks import knowledge_task
from bench.train import evaluate_classification, perplexity


def heldout_rows(world, tokenizer) -> list[dict]:
    """One fresh biography per person (the validation corpus), each as its own sequence after an eos."""
    eos = tokenizer.eos_token_id
    enc = tokenizer(world.corpus("validation"), add_special_tokens=False)["input_ids"]
    return [{"input_ids": [eos] + ids} for ids in enc]


def heldout_ppl(model, world, tokenizer, batch_size: int = 64) -> float:
    rows = heldout_rows(world, tokenizer)
    return perplexity(model, [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)])


def knowledge_probes(model, world, tokenizer) -> dict:
    """Zero-shot accuracy over all attributes: cloze ('{n} was born in') and QA ('Q: where was {n} born ? A:')
    on test people (seen in pretraining only in biographies), and QA on train people (seen as QA pairs)."""
    out = {}
    for fmt in ("cloze", "qa"):
        dd = knowledge_task(world, tokenizer, attributes="all", fmt=fmt)
        out[f"{fmt}_acc_test"] = evaluate_classification(model, dd["test"])
        if fmt == "qa":
            out["qa_acc_train"] = evaluate_classification(model, dd["train"])
        if fmt == "cloze":
            out["chance"] = float(sum(1 / len(c) for c in dd["test"]["candidates"]) / len(dd["test"]))
    return out
