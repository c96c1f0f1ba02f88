"""The int8 group's toy parts (Q2, Q4, Q5, Q6 on models): perplexity under each int8 method, planted outliers,
the outlier census, and what a converted model really stores.

Held-out perplexity of the profile's ladder rungs (`bench.ladder`: GPT-2-style LMs pretrained here on the
synthetic world; smoke ladder for smoke, cpu ladder for cpu) under FP32 and each int8 method, before and after
planting outlier features (`plant_outliers`: FP32 function unchanged, int8 sees |x| up to ~30), and an outlier
census per rung. The evaluation text is the ladder's held-out biographies (`bench.ladder.probes.heldout_rows`, one
fresh biography per person) packed into full blocks. Perplexity is bench.train.perplexity, the suite's one.

Paper-scale path: `--model a,b,...` (rung names, local HF folders or hub ids, via `bench.models.load_model`)
replaces the ladder entries; each model is evaluated on the same held-out text through its own tokenizer.
Planting (and the planted sweep) needs GPT-2 blocks (ln_2 -> mlp.c_fc): other architectures get the
FP32/int8 perplexity table, the census and Q6 only.

After these, each model gets issue 15's reported rows (`degradation.py`): per planted variant (none, ln_2, and for
GPT-2 all_ln), the census of LayerNorm outputs that feed a Linear, KL to FP32 per quantizer, and for rungs the
knowledge task's answer NLL and accuracy (QA prompts about test people, `bench.data.tasks.knowledge_task`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

from bench import BenchError
from bench.ladder import SPECS, load_world, rung_names
from bench.ladder.probes import heldout_rows
from bench.models import load_model, n_positions
from bench.numerics import accounting
from bench.numerics.int8_linear import METHODS, quantize_model, storage_bytes
from bench.numerics.outliers import outlier_census, plant_outliers
from bench.repro import RunContext
from bench.schema import Recorder
from bench.data.tasks import knowledge_task
from bench.train import perplexity

from .degradation import all_ln_variant, variant_rows
from .settings import PLANT_DIMS, PLANT_SCALE, TASK_FORMAT, THRESHOLD, Settings

LAYER_METHODS = ("absmax", "vectorwise", "llm_int8")   # the supporting layer-error and sweep rows


def ppl_table(entries, methods=METHODS, threshold: float = THRESHOLD) -> list[dict]:
    """entries: (name, model, eval batches (B, T)). -> rows {model, method, ppl, ratio_over_fp32}; the models
    are left unchanged (each method quantizes a deep copy)."""
    rows = []
    for name, model, batches in entries:
        base = perplexity(model, batches)
        rows.append({"model": name, "method": "fp32", "ppl": base, "ratio_over_fp32": 1.0})
        for m in methods:
            q = quantize_model(copy.deepcopy(model), method=m, threshold=threshold)
            ppl = perplexity(q, batches)
            rows.append({"model": name, "method": m, "ppl": ppl, "ratio_over_fp32": ppl / base})
    return rows


def heldout_batches(world, tokenizer, seq_len: int, batch_size: int, max_batches: int) -> list[torch.Tensor]:
    """The ladder's held-out text (`bench.ladder.probes.heldout_rows`: one fresh biography per person, each after
    an eos) through `tokenizer`, packed into one stream and cut into full (batch_size, seq_len) blocks, so
    int8 layers and the census see no padding. -> at most `max_batches` LongTensors (B, T)."""
    if tokenizer.eos_token_id is None:
        raise BenchError(f"the int8 harness needs a tokenizer with an eos token, got {type(tokenizer).__name__}")
    stream = [t for r in heldout_rows(world, tokenizer) for t in r["input_ids"]]
    n = len(stream) // seq_len
    if n == 0:
        raise BenchError(f"held-out text has {len(stream)} tokens, fewer than one block of {seq_len}")
    blocks = torch.tensor(stream[:n * seq_len], dtype=torch.long).view(n, seq_len)   # (n, T)
    return list(blocks.split(batch_size))[:max_batches]


def model_entries(specs: list[str], ladder: str, s: Settings):
    """Yield (name, model, eval batches, scale, knowledge test split or None) for each spec (rung name, local
    folder or hub id), loaded one at a time through `bench.models.load_model`; all are evaluated on the ladder
    world's held-out text. The knowledge task (QA format, test people) needs the rung's own world and tokenizer:
    rungs only."""
    world = load_world(rung_names(ladder)[0])
    for spec in specs:
        model, tok = load_model(spec, ladder)
        name = spec if spec in SPECS else Path(spec).name or spec
        seq_len = min(s.seq_len, n_positions(model))
        task = knowledge_task(load_world(spec), tok, fmt=TASK_FORMAT)["test"] if spec in SPECS else None
        yield name, model, heldout_batches(world, tok, seq_len, s.batch_size, s.eval_batches), \
            "toy" if spec in SPECS else "paper", task


def task_name(model: str) -> str:
    """The data column of a model's knowledge-task rows: the rung's world (a model given its own task: generic)."""
    w = SPECS.get(model)
    return f"world-{w.world}-seed{w.world_seed}-knowledge-{TASK_FORMAT}-test" if w else f"knowledge-{TASK_FORMAT}-test"


def entry_specs(ctx: RunContext) -> list[str]:
    """--model a,b,... (comma-separated) or the profile's ladder rungs. Checked before anything runs."""
    names = rung_names(ctx.profile.ladder)
    if not ctx.model:
        return names
    specs = [{"smallest": names[0], "largest": names[-1]}.get(s.strip(), s.strip()) for s in str(ctx.model).split(",")]
    if not all(specs):
        raise BenchError(f"--model has an empty entry: {ctx.model!r} (give comma-separated model specs)")
    for s in specs:   # a path that is not there fails now, not after the exact parts have run
        if s.startswith((".", "/", "~")) and not Path(s).expanduser().is_dir():
            raise BenchError(f"model folder {s!r} does not exist")
    return specs


def _is_gpt2(model) -> bool:
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    return blocks is not None and all(hasattr(b, "ln_2") and hasattr(getattr(b, "mlp", None), "c_fc") for b in blocks)


@torch.no_grad()
def model_rows(rec: Recorder, entries, seed: int, s: Settings, data_name: str, sweep: bool = True,
               scale: str = "toy", tasks: dict | None = None) -> None:
    """entries: (name, model, eval batches); tasks: {name: knowledge test split} where the model has one.
    Planting and the layer error need GPT-2 blocks; other models get the unplanted table, the census and Q6.
    Then issue 15's reported rows (degradation.py) per planted variant: none, ln_2, and all_ln (GPT-2)."""
    pp = {"dims": list(PLANT_DIMS), "scale": PLANT_SCALE}
    for name, model, batches in entries:
        kw = dict(model=name, data=data_name, seed=seed, scale=scale)
        variants = planted_variants(rec, name, model, batches[0], pp, kw)
        for planted, m in variants:
            p = {"planted": planted, "threshold": THRESHOLD, **(pp if planted else {})}
            ppl_rows(rec, name, m, batches, planted, p, kw)
            census_rows(rec, m, batches, planted, p, kw)
        if len(variants) > 1:   # GPT-2 blocks: the supporting (not judged) rows where the planted dims enter
            layer_error_rows(rec, model, variants, batches[0], pp, kw)
            for sc in (s.sweep_scales if sweep else ()):
                sweep_rows(rec, name, model, batches, sc, kw)
        q6_rows(rec, model, kw)
        named = [("ln_2" if planted else "none", m) for planted, m in variants]
        if len(variants) > 1:
            named.append(("all_ln", all_ln_variant(rec, model, batches, kw)))
        task = (tasks or {}).get(name)
        variant_rows(rec, named, batches, task, task_name(name) if task is not None else None, kw)


def planted_variants(rec: Recorder, name: str, model, ids: torch.Tensor, pp: dict, kw: dict) -> list:
    """[(False, model)] plus (True, planted copy) for GPT-2 blocks, with the planted copy's FP32 logit change
    as a row (it must be ~0); other architectures are noted in the run's meta."""
    if not _is_gpt2(model):
        rec.notes.setdefault("not_planted", []).append(f"{name} ({type(model).__name__}: not GPT-2 blocks)")
        return [(False, model)]
    planted = plant_outliers(copy.deepcopy(model), list(PLANT_DIMS), PLANT_SCALE)
    diff = float((model(input_ids=ids).logits - planted(input_ids=ids).logits).abs().max())
    rec.add("Q5", "plant_fp32_max_abs_diff", diff, unit="logit", params=pp, **kw)
    return [(False, model), (True, planted)]


def ppl_rows(rec: Recorder, name: str, m, batches, planted: bool, p: dict, kw: dict) -> None:
    """FP32 and every int8 method's perplexity and ratio (Q4; Q5 when planted), and absmax / zero-point (Q2)."""
    rows = ppl_table([(name, m, batches)])
    for r in rows:
        if r["method"] == "fp32":
            rec.add("Q4", "fp32_ppl", r["ppl"], unit="ppl", method="fp32", params=p, **kw)
            continue
        rec.add("Q4", "int8_ppl", r["ppl"], unit="ppl", method=r["method"], params=p, **kw)
        rec.add("Q4", "int8_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio", method=r["method"], params=p, **kw)
        if planted:
            rec.add("Q5", "planted_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio", method=r["method"],
                    params=p, **kw)
    t = {r["method"]: r for r in rows}
    rec.add("Q2", "int8_ppl_ratio_absmax_over_zeropoint", t["absmax"]["ppl"] / t["zeropoint"]["ppl"], unit="ratio",
            params=p, **kw)


def census_rows(rec: Recorder, m, batches, planted: bool, p: dict, kw: dict) -> None:
    """The outlier census (bench.numerics.outliers) of the residual stream and of the linear layers' inputs."""
    for source in ("hidden", "linear_inputs"):
        c = outlier_census(m, batches, source=source)
        cp = {**p, "source": source, "n_layers": c.n_layers, "n_positions": c.n_positions}
        found = {"outlier_dims": c.outlier_dims}   # what the census found: measured, not identity
        for k, v in c.row().items():
            rec.add("Q5", f"census_{k}", v, unit="share" if "share" in k or "affected" in k else "value",
                    params=cp, info=found, **kw)
        if planted:
            rec.add("Q5", "census_n_outlier_dims_found_minus_planted", len(c.outlier_dims) - len(PLANT_DIMS),
                    unit="count", params=cp, info=found, **kw)


def _fc_out(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Output of block 0's mlp.c_fc for input ids (B*T, 4d), float64."""
    got = []
    h = model.transformer.h[0].mlp.c_fc.register_forward_hook(lambda mod, i, o: got.append(o))
    try:
        model(input_ids=ids)
    finally:
        h.remove()
    return got[0].reshape(-1, got[0].shape[-1]).double()


def layer_error_rows(rec: Recorder, model, variants, ids: torch.Tensor, pp: dict, kw: dict) -> None:
    """Supporting (not judged): relative error of block 0's MLP input projection under each int8 method, where
    the planted dims enter, against the unplanted FP32 model's output."""
    ref = _fc_out(model, ids)
    for planted, m in variants:
        for meth in LAYER_METHODS:
            y = _fc_out(quantize_model(copy.deepcopy(m), method=meth), ids)
            rec.add("Q5", "layer_rel_err_mlp_input_proj", float((y - ref).norm() / ref.norm()), unit="ratio",
                    method=meth, params={"planted": planted, "layer": "transformer.h.0.mlp.c_fc", **pp}, **kw)


def sweep_rows(rec: Recorder, name: str, model, batches, plant_scale: float, kw: dict) -> None:
    """Supporting (not judged): perplexity ratios with the outliers planted at `plant_scale`."""
    pl = plant_outliers(copy.deepcopy(model), list(PLANT_DIMS), plant_scale)
    for r in ppl_table([(name, pl, batches)], methods=LAYER_METHODS):
        if r["method"] != "fp32":
            rec.add("Q5", "planted_scale_sweep_ppl_ratio_over_fp32", r["ratio_over_fp32"], unit="ratio",
                    method=r["method"], params={"scale": plant_scale, "dims": list(PLANT_DIMS)}, **kw)


def q6_rows(rec: Recorder, model, kw: dict) -> None:
    """Q6 on the toy model: what the converted model really stores vs the accounting."""
    held = storage_bytes(quantize_model(copy.deepcopy(model), method="llm_int8"))
    acct = accounting.int8_weight_bytes(model)
    fp32 = storage_bytes(model)["total_bytes"]
    q6 = dict(unit="bytes", method="llm_int8", **kw)
    rec.add("Q6", "int8_storage_int8_bytes", held["int8_bytes"], **q6)
    rec.add("Q6", "int8_storage_minus_accounting_bytes", held["int8_bytes"] - acct["int8_bytes"], **q6)
    rec.add("Q6", "model_fp32_bytes", fp32, **q6)
    rec.add("Q6", "model_int8_held_bytes", held["total_bytes"], **q6)
    rec.add("Q6", "int8_weight_ratio_fp16_over_int8", acct["ratio_fp16_over_int8"], unit="ratio", method="llm_int8",
            params={"rest": "16-bit", "scales": "fp32 per row"}, **kw)
    rec.add("Q6", "int8_held_ratio_fp32_over_int8", fp32 / held["total_bytes"], unit="ratio", method="llm_int8",
            params={"rest": "fp32 (as held here)"}, **kw)
