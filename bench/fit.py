"""`bench memory MODEL`: will it fit? Training memory for any model and method, before the first run.

    python -m bench memory llama-7b-config/ --method lora --set r=8 --precision mixed --gpu-memory 24GiB

MODEL is a ladder rung (cpu-1m, smoke-a), a local folder with config.json (or the config.json itself), or a hub
id read from the local HF cache. The model is built on the meta device (shapes only, nothing allocated), the
method of bench/methods is applied to it, and bench.memory predicts each part of one training step: weights,
gradients, optimizer states, activations, int8 overhead, and the transient that turns their sum into the
peak. Full fine-tuning is predicted beside the chosen method; GPU counts use M2's arithmetic
(bench.numerics.accounting.gpus_needed: perfect sharding, no overhead beyond what is predicted).

`--validate` checks the model against measurement on tiny configs of every family and method (CPU:
torch.profiler's allocation events, bench.memory.measure_peak) and writes results/memory/.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

from bench import BenchError
from bench.values import COUNT, check_value, parse_item

METHOD_CHOICES = __import__("bench.methods.registry").methods.registry.PRESET_NAMES  # live: every registered preset
UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
RESULTS = Path(__file__).resolve().parent.parent / "results" / "memory"


# ---------------------------------------------------------------------------------------------- parsing

def parse_size(text: str) -> int:
    """Bytes in a size such as '24GiB', '80GB', '512 MiB' (GB = 10^9 as on GPU spec sheets, GiB = 2^30)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?b)\s*", str(text), flags=re.IGNORECASE)
    if not m or m.group(2).lower() not in UNITS:
        raise BenchError(f"memory: cannot read memory size {text!r}; write e.g. 24GiB, 80GB or 512MiB")
    n = float(m.group(1)) * UNITS[m.group(2).lower()]
    if n <= 0:
        raise BenchError(f"memory: memory size must be > 0, got {text!r}")
    return int(n)


def fmt_bytes(n: float) -> str:
    """Binary units (GiB = 2^30 bytes), three significant digits."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def method_options(method: str, sets: list[str]) -> tuple[str, dict]:
    """(registry name, fields) from --method and --set key=value (lists comma-separated); rslora = lora with
    rank-stabilised scaling. Values are parsed by bench.values (one parser for every --set); unknown fields fail
    here, values out of range in make_config (BenchError, one line)."""
    import typing

    from bench.methods import METHODS
    name = "lora" if method == "rslora" else method
    if name not in METHODS:
        raise BenchError(f"memory: unknown method {method!r}; choose one of {', '.join(METHOD_CHOICES)}")
    hints = {k: h for k, h in typing.get_type_hints(METHODS[name]).items() if k not in ("name", "paper",
                                                                                        "load_ignores")}
    out = {"rslora": True} if method == "rslora" else {}
    for item in sets or []:
        key = item.partition("=")[0].strip()
        if key and "=" in item and key not in hints:
            raise BenchError(f"memory: {method}: unknown option {key!r}; valid: {', '.join(hints)}")
        key, value = parse_item(item, hints, f"memory {method}")
        out[key] = value
    if name in ("lora", "dora", "pissa", "qlora") and isinstance(out.get("target_modules"), tuple) and len(out["target_modules"]) == 1 \
            and re.search(r"[.*+?\[\]()|\\^$]", out["target_modules"][0]):
        out["target_modules"] = out["target_modules"][0]  # one entry with regex characters: a regex
    return name, out


# ---------------------------------------------------------------------------------------------- model input

def load_config(spec: str):
    """A transformers config for MODEL: a ladder rung, a folder with config.json, a config.json file, or a
    hub id (local HF cache; the hub only when reachable). One-line BenchError otherwise."""
    from transformers import AutoConfig

    from bench import ladder as L
    if not spec:
        raise BenchError("memory: MODEL must be a ladder rung, a folder with config.json, or a hub id")
    if spec in L.SPECS:
        rung = L.get_spec(spec)
        folder = L.cache_root() / spec
        if (folder / "config.json").exists():
            return AutoConfig.from_pretrained(folder)
        return L.model_config(rung, L.build_world_and_tokenizer(rung)[1])   # same vocabulary, no pretraining
    path = Path(spec).expanduser()
    if path.is_file() or path.is_dir():
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise BenchError(f"memory: {str(path)!r} has no config.json")
        try:
            return AutoConfig.from_pretrained(str(file))
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BenchError(f"memory: cannot read a transformers config from {str(file)!r}: {first}") from None
    if spec.startswith((".", "/", "~")) or path.suffix or spec.count("/") > 1:
        raise BenchError(f"memory: {spec!r} does not exist (and it is not a ladder rung or a hub id)")
    from huggingface_hub import try_to_load_from_cache

    from bench.models import _hub_reachable
    cached = try_to_load_from_cache(spec, "config.json")
    if isinstance(cached, str):
        return AutoConfig.from_pretrained(str(Path(cached).parent))
    if not _hub_reachable():
        raise BenchError(f"memory: {spec!r} is not a ladder rung, not a local folder and not in the local HF cache, "
                         f"and the hub cannot be reached; put its config.json in a folder and pass that folder")
    try:
        return AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BenchError(f"memory: cannot read the config of {spec!r} from the hub: {first}") from None


# ---------------------------------------------------------------------------------------------- prediction

def predict(config, method: str = "lora", sets: list[str] | None = None, precision: str = "mixed",
            optimizer: str = "adamw", batch: int = 1, seq: int | None = None, base_int8: bool = False,
            checkpointing: bool = False, device: str = "cuda", base_4bit: bool = False) -> dict:
    """Predicted training memory of `config` with `method` and of full fine-tuning, on the meta device.
    Returns {"method": Memory, "full": Memory, counts, setup, sequence and virtual-token lengths}."""
    from bench.memory import FAMILIES, Setup, _family, estimate, max_positions, meta_model
    from bench.methods import apply, make_config, trainable_parameters
    from bench.numerics.nf4 import Linear4bit

    name, options = method_options(method, sets or [])
    cfg_obj = make_config(name, **options)                         # field errors before building anything
    limit = max_positions(config)
    seq = seq if seq is not None else min(limit or 2048, 2048)
    if batch is None:
        raise BenchError("memory: --batch must be >= 1, got None")
    check_value("memory: --batch", batch, COUNT)
    check_value("memory: --seq", seq, COUNT)
    virtual = getattr(cfg_obj, "num_virtual_tokens", 0) if name in ("prefix", "prompt", "ptuning") else 0
    if getattr(cfg_obj, "placeholder_token_id", None) is not None:
        virtual = 0
    if limit and seq + virtual > limit:
        raise BenchError(f"memory: --seq {seq}" + (f" + {virtual} virtual tokens" if virtual else "") +
                         f" exceeds the model's {limit} positions")
    setup = Setup(precision=precision, optimizer=optimizer, batch=batch, seq_len=seq, frozen_int8=base_int8,
                  frozen_4bit=base_4bit, device=device, checkpointing=checkpointing)
    setup.check()
    model = meta_model(config)
    _family(model)                                                 # unknown family: one line, before the work
    full_mem = estimate(model, setup)                              # a fresh model trains every parameter
    n_total = trainable_parameters(model)[1]
    adapted = apply(model, cfg_obj) if name != "full" else model
    mem = estimate(adapted, setup) if name != "full" else full_mem
    n_train, n_all = trainable_parameters(adapted)
    n_all += sum(m.in_features * m.out_features for m in adapted.modules() if isinstance(m, Linear4bit))  # NF4 buffers
    return {"method": mem, "full": full_mem, "setup": setup, "name": name, "options": options,
            "trainable_params": n_train, "total_params": n_all, "base_params": n_total, "virtual_tokens": virtual,
            "model_type": config.model_type, "families": FAMILIES}


def _gpus(nbytes: float, gpu_bytes: int | None, label: str) -> int | None:
    from bench.numerics.accounting import GPUSpec, gpus_needed
    return gpus_needed(nbytes, GPUSpec(label, gpu_bytes)) if gpu_bytes else None


def summary(pred: dict, gpu_bytes: int | None, gpu_label: str = "") -> dict:
    """JSON-ready numbers: bytes by part for the method and full fine-tuning, ratios, counts, GPUs."""
    mem, full = pred["method"], pred["full"]
    rows = {}
    for part in ("weights", "gradients", "optimizer", "activations", "int8_overhead", "transient"):
        a, b = getattr(mem, part), getattr(full, part)
        rows[part] = {"method": a, "full": b, "ratio": a / b if b else None}
    rows["total"] = {"method": mem.peak, "full": full.peak, "ratio": mem.peak / full.peak}
    s = pred["setup"]
    return {
        "model_type": pred["model_type"], "method": pred["name"], "options": pred["options"],
        "setup": {"precision": s.precision, "optimizer": s.optimizer, "batch": s.batch, "seq": s.seq_len,
                  "virtual_tokens": pred["virtual_tokens"], "base_int8": s.frozen_int8,
                  "base_4bit": s.frozen_4bit or pred["name"] == "qlora",
                  "grad_checkpointing": s.checkpointing, "device": s.device},
        "bytes": rows,
        "trainable_params": pred["trainable_params"], "total_params": pred["total_params"],
        "checkpoint_bytes": {"fp16": 2 * pred["trainable_params"], "fp32": 4 * pred["trainable_params"]},
        "gpu": {"memory_bytes": gpu_bytes, "label": gpu_label,
                "method": _gpus(mem.peak, gpu_bytes, gpu_label), "full": _gpus(full.peak, gpu_bytes, gpu_label)},
        "assumptions": mem.assumptions + ["GPUs: total / GPU memory, rounded up (perfect sharding; M2's arithmetic)"],
    }


def render(model: str, info: dict) -> str:
    """The human-readable table."""
    b, s, g = info["bytes"], info["setup"], info["gpu"]
    names = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
             "activations": "activations", "int8_overhead": "int8 overhead", "transient": "transient (peak)",
             "total": "total (peak)"}
    meth = info["method"] + "".join(f" {k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                    for k, v in info["options"].items())
    head = (f"{model} ({info['model_type']}), {meth}; {s['precision']}, {s['optimizer']}, batch {s['batch']} x "
            f"seq {s['seq']}" + (f" (+{s['virtual_tokens']} virtual)" if s["virtual_tokens"] else "") +
            (", int8 base" if s["base_int8"] else "") + (", NF4 base" if s.get("base_4bit") else "") + (", grad checkpointing" if s["grad_checkpointing"] else ""))
    lines = [head, "", f"{'part':18} {info['method']:>12} {'full FT':>12} {'ratio':>8}"]
    for part, row in b.items():
        ratio = f"{row['ratio']:.3g}" if row["ratio"] is not None else "-"
        lines.append(f"{names[part]:18} {fmt_bytes(row['method']):>12} {fmt_bytes(row['full']):>12} {ratio:>8}")
    n, tot = info["trainable_params"], info["total_params"]
    lines += ["", f"trainable parameters: {n:,} of {tot:,} ({100 * n / tot:.3g}%)",
              f"adapter checkpoint:   {fmt_bytes(info['checkpoint_bytes']['fp16'])} in fp16, "
              f"{fmt_bytes(info['checkpoint_bytes']['fp32'])} in fp32"]
    if g["memory_bytes"]:
        lines.append(f"GPUs of {g['label']}: {g['method']} for {info['method']}, {g['full']} for full FT "
                     f"(perfect sharding, nothing else on the GPU)")
    return "\n".join(lines)


def plot(info: dict, path: Path) -> None:
    """Stacked bars by part, the method beside full fine-tuning."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    parts = ["weights", "gradients", "optimizer", "activations", "int8_overhead", "transient"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, col in enumerate(("method", "full")):
        bottom = 0.0
        for j, part in enumerate(parts):
            v = info["bytes"][part][col] / 2**30
            ax.bar(i, v, bottom=bottom, color=f"C{j}", label=part if i == 0 else None)
            bottom += v
    if info["gpu"]["memory_bytes"]:
        ax.axhline(info["gpu"]["memory_bytes"] / 2**30, color="k", ls="--", lw=1, label=info["gpu"]["label"])
    ax.set_xticks([0, 1], [info["method"], "full FT"])
    ax.set_ylabel("GiB")
    ax.set_title("predicted training memory by part")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- validation

TINY_B, TINY_T, TINY_V = 2, 16, 97
TINY_METHODS = __import__("bench.methods.registry").methods.registry.TINY  # case -> (method, options): SPEC.tiny
TINY_FAMILIES = ("gpt2", "opt", "llama", "llama_gqa", "bert")


def tiny_model(family: str, seed: int = 0):
    """A tiny randomly initialised model of `family` (gpt2, opt, llama: untied, 4 heads = 4 key/value heads;
    llama_gqa: 4 heads, 2 key/value heads; bert: a bare encoder like all-MiniLM-L6-v2)."""
    import torch
    import transformers as tf
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
    import torch

    from bench.memory import Setup, estimate, measure_peak
    from bench.methods import apply, make_config
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


def write_validation(out: Path = RESULTS) -> Path:
    """Run every tiny case (and two with gradient checkpointing), write validation.csv and report.md."""
    import csv
    import platform

    import torch
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


# ---------------------------------------------------------------------------------------------- the command

def add_parser(sub, formatter) -> None:
    """Add the `memory` subcommand to argparse subparsers `sub`."""
    p = sub.add_parser("memory", help="will it fit? predict training memory for a model and method",
                       formatter_class=formatter, description=textwrap.dedent("""\
        Predict the memory of one training step, by part (weights, gradients, optimizer states,
        activations, int8 overhead, peak transient), for MODEL with a method and for full fine-tuning,
        before the first run: the model is built on the meta device, nothing is allocated.

        MODEL: a ladder rung (cpu-1m, smoke-a), a folder with config.json or the file itself, or a hub id
        from the local HF cache. Families: GPT-2, OPT, Llama/Mistral/Qwen2 (grouped-query attention too),
        BERT (bare encoder). Example:
          python -m bench memory ./llama-7b --method lora --set r=8 --set target_modules=q_proj,v_proj \\
              --precision mixed --gpu-memory 24GiB
        --validate measures tiny configs of every family and method and writes results/memory/.
        """))
    p.add_argument("model", nargs="?", help="ladder rung, folder with config.json, config.json, or hub id")
    p.add_argument("--method", default="lora", help="|".join(METHOD_CHOICES) + " (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. r=8, target_modules=q_proj,v_proj (repeatable)")
    p.add_argument("--precision", default="mixed", help="fp32 | mixed (16-bit + fp32 master, ZeRO's 16 B) | "
                                                        "bf16 | fp16 (default: %(default)s)")
    p.add_argument("--base-int8", action="store_true", help="frozen Linear weights in int8 (LLM.int8())")
    p.add_argument("--base-4bit", action="store_true", help="frozen Linear weights in NF4 with double-quantized "
                                                             "scales (QLoRA; --method qlora implies it)")
    p.add_argument("--optimizer", default="adamw", help="adamw | sgd | momentum (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (default: %(default)s)")
    p.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: min(2048, the model's "
                                                          "positions))")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing per block")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="where it trains (dropout masks "
                                                                             "differ; default: %(default)s)")
    p.add_argument("--gpu-memory", default=None, metavar="SIZE", help="GPU memory, e.g. 24GiB or 80GB: prints "
                                                                       "how many such GPUs each needs")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plot", type=Path, default=None, metavar="PATH", help="also write a PNG of the parts")
    p.add_argument("--validate", action="store_true", help="measure tiny configs, write results/memory/")
    p.add_argument("--out", type=Path, default=RESULTS, help="--validate's folder (default: results/memory)")


def cmd_memory(args) -> int:
    """Run `bench memory` from parsed arguments; 0 on success (BenchError for bad input)."""
    import logging
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if args.validate:
        path = write_validation(args.out)
        print(f"wrote {path}")
        return 0
    if not args.model:
        raise BenchError("memory: give MODEL (a ladder rung, a folder with config.json, or a hub id)")
    gpu_bytes = parse_size(args.gpu_memory) if args.gpu_memory else None
    if args.method not in METHOD_CHOICES:
        raise BenchError(f"memory: unknown method {args.method!r}; choose one of {', '.join(METHOD_CHOICES)}")
    config = load_config(args.model)
    pred = predict(config, args.method, args.set, args.precision, args.optimizer, args.batch, args.seq,
                   args.base_int8, args.grad_checkpointing, args.device, args.base_4bit)
    info = summary(pred, gpu_bytes, args.gpu_memory or "")
    if args.plot:
        plot(info, args.plot)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(render(args.model, info))
        if args.plot:
            print(f"plot: {args.plot}")
    sys.stdout.flush()
    return 0
