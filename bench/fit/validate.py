"""`bench memory --validate`: the memory model (bench.memory.estimate) against measurement (measure_peak) on tiny
configs of every family and method; writes validation.csv and report.md (results/memory/, bench.paths)."""

from __future__ import annotations

import csv
import platform
from pathlib import Path

import torch
import transformers as tf

from bench import BenchError
from bench.memory import Setup, estimate, measure_peak
from bench.methods import apply, make_config, registry
from bench.paths import PATHS

TINY_B, TINY_T, TINY_V = 2, 16, 97
TINY_METHODS = registry.TINY         # case -> (method, options): each method's SPEC.tiny (live)
TINY_FAMILIES = ("gpt2", "opt", "llama", "llama_gqa", "bert")


def tiny_model(family: str, seed: int = 0):
    """A tiny randomly initialised model of `family` (gpt2, opt, llama: untied, 4 heads = 4 key/value heads;
    llama_gqa: 4 heads, 2 key/value heads; bert: a bare encoder like all-MiniLM-L6-v2)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=TINY_V, bos_token_id=0, eos_token_id=0)
    if family == "gpt2":
        cfg = tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, **common)
    elif family == "opt":
        cfg = tf.OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64,
                           max_position_embeddings=64, word_embed_proj_dim=32, dropout=0.0, pad_token_id=1, **common)
    elif family in ("llama", "llama_gqa"):
        cfg = tf.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=4 if family == "llama" else 2, intermediate_size=48,
                             max_position_embeddings=64, tie_word_embeddings=family != "llama", **common)
    elif family == "bert":
        cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            vocab_size=TINY_V, pad_token_id=0)
    else:
        raise BenchError(f"memory: no tiny {family!r}; choose one of {', '.join(TINY_FAMILIES)}")
    cfg._attn_implementation = "sdpa"
    cls = tf.BertModel if family == "bert" else tf.AutoModelForCausalLM
    return cls._from_config(cfg) if hasattr(cls, "_from_config") else cls.from_config(cfg)


def tiny_cases():
    """(family, method) pairs that exist: BitFit needs biases (Llama has none); LoRA on lm_head needs one."""
    for fam in TINY_FAMILIES:
        for meth in TINY_METHODS:
            if meth == "bitfit" and fam.startswith("llama"):
                continue
            if meth.startswith("lora_") and (fam == "bert" or (meth == "lora_qv_head" and fam == "gpt2")):
                continue
            yield fam, meth


def validate_case(family: str, method: str, checkpointing: bool = False) -> dict:
    """Predicted (bench.memory.estimate) vs measured (bench.memory.measure_peak) bytes for one tiny case."""
    name, options = TINY_METHODS[method]
    model = apply(tiny_model(family), make_config(name, **options))
    pred = estimate(model, Setup(batch=TINY_B, seq_len=TINY_T, checkpointing=checkpointing))
    ids = torch.randint(3, TINY_V, (TINY_B, TINY_T), generator=torch.Generator().manual_seed(0))
    got = measure_peak(model, ids, checkpointing=checkpointing)
    row = {"family": family, "method": method, "grad_checkpointing": checkpointing}
    for part in ("weights", "gradients", "optimizer"):
        row[f"{part}_pred"], row[f"{part}_meas"] = getattr(pred, part), getattr(got, part)
    row["step_pred"] = pred.activations + pred.transient   # what the step adds on top of the persistent parts
    row["step_meas"] = got.step_peak
    row["activations_pred"], row["transient_pred"] = pred.activations, pred.transient
    row["total_pred"], row["total_meas"] = pred.peak, got.total
    row["ratio"] = pred.peak / got.total
    return row


def write_validation(out: Path | None = None) -> Path:
    """Run every tiny case (and two with gradient checkpointing), write validation.csv and report.md."""
    out = Path(out or PATHS.memory_results)
    rows = [validate_case(f, m) for f, m in tiny_cases()]
    rows += [validate_case(f, "full", checkpointing=True) for f in ("gpt2", "llama")]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "validation.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    L = ["# bench memory: predicted vs measured training memory", "",
         f"Tiny configs (batch {TINY_B} x {TINY_T} tokens, vocabulary {TINY_V}, fp32, AdamW foreach=False), one "
         "steady-state step (the second; gradients kept between steps). Predicted: `bench.memory.estimate` on the "
         "adapted model. Measured without the model's counting: live parameter, gradient and optimizer-state "
         "storages before the step, plus the step's peak net allocation from torch.profiler memory events "
         f"(`bench.memory.measure_peak`). torch {torch.__version__}, {platform.machine()}. Regenerate with "
         "`python -m bench memory --validate`.", "",
         "| family | method | ckpt | weights p/m | grads p/m | optimizer p/m | step p/m | total pred | "
         "total meas | pred/meas |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pm = lambda k: f"{r[k + '_pred'] / max(r[k + '_meas'], 1):.3f}" if r[k + "_meas"] else             ("0/0" if not r[k + "_pred"] else "inf")
        L.append(f"| {r['family']} | {r['method']} | {'yes' if r['grad_checkpointing'] else ''} | {pm('weights')} | "
                 f"{pm('gradients')} | {pm('optimizer')} | {pm('step')} | {r['total_pred']:,.0f} | "
                 f"{r['total_meas']:,.0f} | {r['ratio']:.3f} |")
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    L += ["", f"Worst total: {worst['family']} {worst['method']} at {worst['ratio']:.3f}. `step` = activations + "
          "transient (loss gradients or the optimizer step's temporaries) against the step's measured peak; "
          "p/m columns are predicted / measured."]
    (out / "report.md").write_text("\n".join(L) + "\n")
    return out / "report.md"
