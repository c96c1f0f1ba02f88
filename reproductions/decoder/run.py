"""The group's run: load the decoder (bench.decoder) and the text chunks (bench.data.speeches), score fp32, take
the outlier census, score every int8 variant against fp32, the per-layer bitsandbytes parity; write the rows
(rows.py), LoRA's merge checks and the methods' training memory (lora.py), the methods compared on two
label-word tasks (tasks.py), and int8.csv, chunks.csv, census.csv, census_dims.csv, parity.csv, tasks.csv beside
results.csv."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from bench import decoder, provenance
from bench.data import speeches
from bench.envinfo import torch_threads
from bench.numerics.quant import LLM_INT8_THRESHOLD
from bench.repro import RunContext
from bench.schema import Recorder, write_frame
from bench.train import num_threads
from reproductions.decoder.census import census_tables, run_census
from reproductions.decoder.evaluate import score
from reproductions.decoder.quant import ColumnShare, bnb_model, keep_model, layer_parity, ours, targets
from reproductions.decoder.lora import memory_part, merge_part
from reproductions.decoder.tasks import tasks_part
from reproductions.decoder.rows import census_rows, chunk_rows, parity_rows, quality_rows
from reproductions.int8 import quiet_bnb
from reproductions.decoder.settings import CLAIMS, GROUP, KEEP_BASES, QUANTS, settings_for

QUANTIZED = "every nn.Linear of the decoder blocks (q/k/v/o_proj, gate/up/down_proj); lm_head (tied to the " \
            "token embeddings) and the embeddings stay fp32"


def variants(s, dims: dict[str, list[int]]) -> list[tuple[str, dict, object]]:
    """(name, params, model -> variant) in run order: our four quantizers, the threshold sweep, bitsandbytes,
    the census dims kept in fp16 over each base."""
    out = [(q, {"quant": q, "threshold": LLM_INT8_THRESHOLD if q == "llm_int8" else None},
            lambda m, q=q: ours(m, q)) for q in QUANTS]
    out += [(f"llm_int8_t{t:g}", {"quant": "llm_int8", "threshold": t}, lambda m, t=t: ours(m, "llm_int8", t))
            for t in s.thresholds if t != LLM_INT8_THRESHOLD]
    if s.bnb:
        out.append(("bnb_llm_int8", {"quant": "bnb_llm_int8", "threshold": LLM_INT8_THRESHOLD}, bnb_model))
    out += [(f"keep_{b}", {"quant": f"keep_{b}"}, lambda m, b=b: keep_model(m, dims, b)) for b in KEEP_BASES]
    return out


def run(ctx: RunContext) -> Recorder:
    s = settings_for(ctx)
    data_path = speeches.data_file()
    lm, tok, man = decoder.load_decoder(ctx.model, layers=s.layers)
    M, D = decoder.model_name(man), speeches.NAME
    provenance.register_weights(M, decoder.weights_sha256(man))
    ids = speeches.chunks(tok, s.chunks, s.chunk_tokens, s.text_seed)       # (N, T)
    rec = ctx.recorder(GROUP, CLAIMS)
    rec.threads = torch_threads()
    rec.notes.update({"settings": asdict(s), "weights_note": decoder.WEIGHTS_NOTE, "gguf_file": man["gguf_file"],
                      "gguf_sha256": man["gguf_sha256"], "model_weights_sha256": decoder.weights_sha256(man),
                      "cache_files_sha256": man["files"], "data_file_sha256": speeches.file_sha256(data_path),
                      "quantized": QUANTIZED, "n_linears_quantized": len(targets(lm)),
                      "n_layers": len(lm.model.layers), "n_params": sum(p.numel() for p in lm.parameters())})
    common = dict(model=M, data=D, scale="real", params_base={"chunks": s.chunks, "chunk_tokens": s.chunk_tokens,
                                                              "text_seed": s.text_seed, "layers": s.layers})
    with num_threads(torch_threads()):
        scores = {"fp32": score(None, lm, ids, s.batch)}
        tallies = run_census(lm, ids, s.batch)
        summary = {k: t.summary() for k, t in tallies.items()}
        dims = {k: v["outlier_dims"] for k, v in summary.items()}
        params_of, shares = {}, {}
        for name, params, make in ctx.progress(variants(s, dims), desc="decoder: int8 variants"):
            qm = make(lm).eval()
            col = ColumnShare(qm)
            with quiet_bnb():           # bitsandbytes logs a cast warning per matmul otherwise
                scores[name] = score(lm, qm, ids, s.batch)
            shares[name], params_of[name] = col.close(), params
            del qm
        parity = layer_parity(lm, ids[:s.parity_chunks]) if s.bnb else pd.DataFrame()
        if s.lora:
            merge_part(rec, lm, ids[:s.merge_windows], s, common)
            memory_part(rec, lm, ids, s, common)
        runs = tasks_part(rec, lm, tok, s, ctx.seeds, common, ctx.progress, ctx.model) if s.tasks else []
    table = quality_rows(rec, scores, params_of, shares, dims, lm, common)
    chunk_rows(rec, scores, params_of, common)
    census_rows(rec, summary, common)
    if len(parity):
        parity_rows(rec, parity, scores, common)
    census, cells = census_tables(tallies, s.top_dims)
    write_tables(Path(ctx.out_dir), table, scores, census, cells, parity, summary)
    if runs:
        write_frame(Path(ctx.out_dir) / "tasks.csv", pd.DataFrame(runs))
    return rec


def write_tables(out: Path, table, scores, census, cells, parity, summary) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_frame(out / "int8.csv", table)
    write_frame(out / "chunks.csv", pd.DataFrame([{"variant": v, "chunk": c, "nll": sc["nll"][c], "kl": sc["kl"][c]}
                                                  for v, sc in scores.items() for c in range(len(sc["nll"]))]))
    census = census.assign(outlier_dims=census["input"].map(lambda k: json.dumps(summary[k]["outlier_dims"])))
    write_frame(out / "census.csv", census)
    write_frame(out / "census_dims.csv", cells)
    if len(parity):
        write_frame(out / "parity.csv", parity)
