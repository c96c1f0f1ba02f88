"""The group's run: load MiniLM and the split, record the split, train every job (jobs.py), write the per-run
and claim rows (rows.py), the outlier census (census.py) and int8 (quant.py); curves.csv, census.csv and
int8.csv go beside results.csv."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from bench import BenchError, realmodel
from bench.data import rotten_tomatoes as rt
from bench.jobs import job_workers, threads_per_worker
from bench.numerics.quant import LLM_INT8_THRESHOLD
from bench.repro import RunContext
from bench.schema import Recorder, write_frame
from bench.train import num_threads
from reproductions.real.census import census, layernorm_states
from reproductions.real.jobs import load_data, plan, run_jobs
from reproductions.real.quant import int8_rows
from reproductions.real.rows import claim_rows, per_run_rows
from reproductions.real.settings import CLAIMS, CONFIG, GROUP, LR, SCALE, settings_for

HEAD = "mean-pooled last hidden state -> Linear(384, 2); trains for every method"


def split_rows(rec: Recorder, data, M: str, D: str) -> None:
    """Rows, movies and the fresh share per split, and the movies shared between train and the others (0)."""
    for split, ds in data.items():
        kw = dict(model=M, data=D, scale=SCALE, params={"split": split})
        rec.add("-", "split_rows", len(ds), unit="rows", **kw)
        rec.add("-", "split_movies", len(set(ds["movie_name"])), unit="movies", **kw)
        rec.add("-", "split_fresh_share", float(np.mean(ds["label"])), unit="share", **kw)
    others = set(data["test"]["movie_name"]) | set(data["validation"]["movie_name"])
    overlap = set(data["train"]["movie_name"]) & others
    rec.add("-", "split_movie_overlap", len(overlap), unit="movies", model=M, data=D, scale=SCALE)


def census_rows(rec: Recorder, encoder, data, s, M: str, D: str) -> pd.DataFrame:
    """Q5 rows from the pretrained encoder's LayerNorm outputs on `census_rows` test snippets; the per-LayerNorm
    table for census.csv."""
    names, states = layernorm_states(realmodel.MeanPoolClassifier(encoder).eval(),
                                     rt.subsample(data["test"], s.census_rows, 1))
    summary, per_ln = census(names, states)
    for k, v in summary.items():
        rec.add("Q5", k, v, unit="share" if "share" in k or "affected" in k else "value", model=M, data=D,
                scale=SCALE, params={"source": "layernorm_outputs", "threshold": LLM_INT8_THRESHOLD})
    return per_ln


def run(ctx: RunContext) -> Recorder:
    s = settings_for(ctx)
    seeds = tuple(ctx.seeds)
    if ctx.model not in (None, realmodel.MODEL_NAME):
        raise BenchError(f"real: runs {realmodel.MODEL_NAME} only (got --model {ctx.model})")
    data_path = rt.data_file()
    encoder, tok = realmodel.load_encoder()
    data, full_sizes = load_data(s, tok)
    rec = ctx.recorder(GROUP, CLAIMS)
    rec.threads = threads_per_worker()
    M, D = realmodel.MODEL_NAME, f"{rt.NAME}(split_seed={s.split_seed})"
    rec.notes.update({"settings": asdict(s), "data_file_sha256": rt.file_sha256(data_path),
                      "model_weights_sha256": realmodel.weights_sha256(), "lrs": LR, "method_configs": CONFIG,
                      "split_sizes_before_subsample": full_sizes, "head": HEAD})
    split_rows(rec, data, M, D)
    workers = rec.notes["workers"] = job_workers(s.workers)
    with num_threads(threads_per_worker()):
        runs = run_jobs(plan(s, seeds), s, workers, ctx.progress, encoder, data)
        full_model = realmodel.classifier(encoder, seeds[0])
        full_model.load_state_dict([r for r in runs if r.get("full_state") is not None][0]["full_state"])
        full_model.eval()
        per_run_rows(rec, runs, M, D, s, len(data["test"]))
        claim_rows(rec, runs, M, D, s, seeds)
        per_ln = census_rows(rec, encoder, data, s, M, D)
        qt = rt.subsample(data["test"], s.quant_rows, 2) if s.quant_rows else data["test"]
        qdf = int8_rows(rec, full_model, encoder, qt, s.bnb, M, D, chunk=s.quant_chunk)
    write_tables(Path(ctx.out_dir), runs, per_ln, qdf)
    return rec


def write_tables(out: Path, runs: list[dict], per_ln: pd.DataFrame, qdf: pd.DataFrame) -> None:
    """curves.csv (validation per evaluation of every run), census.csv (per LayerNorm), int8.csv (per quantizer)."""
    curves = [{"method": r["method"], "r": r["r"], "seed": r["seed"], "step": st, "val_accuracy": a, "val_loss": lo}
              for r in runs for st, a, lo in r["val_curve"]]
    out.mkdir(parents=True, exist_ok=True)
    write_frame(out / "curves.csv", pd.DataFrame(curves))
    write_frame(out / "census.csv", per_ln.assign(top_dims=per_ln["top_dims"].map(json.dumps),
                                                 top_abs=per_ln["top_abs"].map(json.dumps)))
    write_frame(out / "int8.csv", qdf)
