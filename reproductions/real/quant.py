"""Q4 on a real model: int8 (bench.numerics.int8_linear, every Linear but the head) on the fully fine-tuned
first-seed model, against fp32: test accuracy, mean KL(fp32 || int8) of the class distribution, the share of
flipped predictions, and the mean cosine of the pretrained encoder's mean-pooled embeddings. bitsandbytes'
Linear8bitLt(threshold = LLM_INT8_THRESHOLD) on the same weights is the reference.

Per chunk of `chunk` consecutive test items (claim "-", params.chunk; the remainder of N / chunk is left out), every
variant's mean NLL of the true label (`chunk_nll`, fp32 included) and mean KL(fp32 || variant) (`chunk_kl`): the
replicates of the real track's Q4 Effects, paired by chunk (the same items through every variant)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from bench import realmodel
from bench.numerics.int8_linear import quantize_model
from bench.numerics.quant import LLM_INT8_THRESHOLD
from bench.schema import Recorder
from bench.train import collate
from reproductions.int8 import _quiet_bnb, bnb_layer
from reproductions.real.evaluate import predict, scores
from reproductions.real.settings import INT8_METHODS, SCALE

# int8.csv column -> unit of its q4_<column>_<quantizer> row, in the rows' order
ROW_UNITS = {"accuracy": "accuracy", "accuracy_drop": "accuracy", "kl": "nats", "emb_cos": "cosine",
             "pred_flip_share": "share"}


def bnb_model(model):
    """A copy of `model` with every Linear but the head as bitsandbytes' LLM.int8() layer (weights rounded
    through fp16 first: bitsandbytes holds them so)."""
    m = copy.deepcopy(model)
    targets = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear) and n != "classifier"
               and not n.endswith(".classifier")]
    with _quiet_bnb():
        for name, lin in targets:
            with torch.no_grad():
                lin.weight.copy_(lin.weight.half().float())
            parent, _, child = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, child, bnb_layer(lin, LLM_INT8_THRESHOLD))
    return m


@torch.no_grad()
def embeddings(enc_model, ds, batch: int = 64) -> torch.Tensor:
    """Mean-pooled embeddings (N, hidden) of ds through a MeanPoolClassifier's encoder."""
    rows = [{"input_ids": r} for r in ds["input_ids"]]
    out = []
    for k in range(0, len(rows), batch):
        b = collate(rows[k:k + batch])
        out.append(enc_model.embed(input_ids=b["input_ids"], attention_mask=b["attention_mask"]))
    return torch.cat(out)


def variants(bnb: bool) -> list[tuple]:
    """(name, model -> int8 copy) for our four quantizers, then bitsandbytes' when `bnb`."""
    out = [(m, lambda mod, m=m: quantize_model(copy.deepcopy(mod), m, LLM_INT8_THRESHOLD, skip=("classifier",)))
           for m in INT8_METHODS]
    return out + ([("bnb_llm_int8", bnb_model)] if bnb else [])


def compare(p32: np.ndarray, pq: np.ndarray, e32: torch.Tensor, eq: torch.Tensor, labels, acc32: float) -> dict:
    """One quantizer against fp32: accuracy, its drop, KL(fp32 || int8), embedding cosine, flipped share."""
    acc = scores(pq, labels)["accuracy"]
    kl = float(np.mean(item_kl(p32, pq)))
    return {"accuracy": acc, "accuracy_drop": acc32 - acc, "kl": kl,
            "emb_cos": float(torch.nn.functional.cosine_similarity(e32, eq, dim=-1).mean()),
            "pred_flip_share": float((p32.argmax(1) != pq.argmax(1)).mean())}


def item_nll(p: np.ndarray, labels) -> np.ndarray:
    """-log p(true label) per item (N,), nats; p (N, C) class probabilities."""
    y = np.asarray(labels)
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))


def item_kl(p32: np.ndarray, pq: np.ndarray) -> np.ndarray:
    """KL(fp32 || int8) of the class distribution per item (N,), nats."""
    return np.sum(p32 * (np.log(np.clip(p32, 1e-12, None)) - np.log(np.clip(pq, 1e-12, None))), 1)


def chunk_rows(rec: Recorder, metric: str, per_item: np.ndarray, chunk: int, params: dict, common: dict) -> None:
    """One row per chunk of `chunk` consecutive items: the mean of per_item over the chunk (claim "-")."""
    for c in range(len(per_item) // chunk):
        rec.add("-", metric, float(per_item[c * chunk:(c + 1) * chunk].mean()), unit="nats",
                params={**params, "chunk": c, "chunk_items": chunk}, **common)


def int8_rows(rec: Recorder, ft_model, encoder, test, bnb: bool, model_name: str, data_name: str,
              chunk: int = 20) -> pd.DataFrame:
    """The Q4 rows (results.csv), the per-chunk replicates, and the int8.csv table (one row per quantizer)."""
    p32 = predict(ft_model, test)
    acc32 = scores(p32, test["label"])["accuracy"]
    plain = realmodel.MeanPoolClassifier(encoder).eval()
    e32 = embeddings(plain, test)
    common = dict(model=model_name, data=data_name, method="full", seed=0, scale=SCALE)
    rec.add("Q4", "q4_accuracy_fp32", acc32, unit="accuracy", params={"quant": "fp32"}, **common)
    chunk_rows(rec, "chunk_nll", item_nll(p32, test["label"]), chunk, {"quant": "fp32"}, common)
    out = []
    for name, make in variants(bnb):
        try:
            with _quiet_bnb():      # bitsandbytes logs one cast warning per matmul otherwise
                pq = predict(make(ft_model).eval(), test)
                eq = embeddings(make(plain).eval(), test)
        except Exception as e:          # bitsandbytes without a CPU int8 path: say so, keep the rest
            if name.startswith("bnb"):
                rec.notes["bnb_error"] = f"{type(e).__name__}: {str(e)[:160]}"
                continue
            raise
        row = {"quant": name, **compare(p32, pq, e32, eq, test["label"], acc32)}
        out.append(row)
        qp = {"quant": name, "threshold": LLM_INT8_THRESHOLD if "int8" in name else None}
        for key, unit in ROW_UNITS.items():
            rec.add("Q4", f"q4_{key}_{name}", row[key], unit=unit, params=qp, **common)
        chunk_rows(rec, "chunk_nll", item_nll(pq, test["label"]), chunk, qp, common)
        chunk_rows(rec, "chunk_kl", item_kl(p32, pq), chunk, qp, common)
    df = pd.DataFrame(out)
    if len(df) and {"llm_int8", "absmax"} <= set(df["quant"]):
        acc = df.set_index("quant")["accuracy"]
        rec.add("Q4", "q4_llm_int8_minus_absmax_accuracy", acc["llm_int8"] - acc["absmax"], unit="accuracy", **common)
        if "bnb_llm_int8" in acc.index:
            rec.add("Q4", "q4_ours_minus_bnb_accuracy", acc["llm_int8"] - acc["bnb_llm_int8"], unit="accuracy",
                    **common)
    return df
