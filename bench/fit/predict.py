"""The prediction: training memory by part for a method and for full fine-tuning, on the meta device."""

from __future__ import annotations

from bench import BenchError
from bench.fit.options import method_options
from bench.memory import FAMILIES, Setup, estimate, family, max_positions, meta_model
from bench.methods import apply, make_config, trainable_parameters
from bench.numerics.accounting import GPUSpec, gpus_needed
from bench.numerics.nf4 import Linear4bit
from bench.values import COUNT, check_value


def predict(config, method: str = "lora", sets: list[str] | None = None, precision: str = "mixed",
            optimizer: str = "adamw", batch: int = 1, seq: int | None = None, base_int8: bool = False,
            checkpointing: bool = False, device: str = "cuda", base_4bit: bool = False) -> dict:
    """Predicted training memory of `config` with `method` and of full fine-tuning, on the meta device.
    Returns {"method": Memory, "full": Memory, counts, setup, sequence and virtual-token lengths}."""
    name, options = method_options(method, sets or [])
    cfg_obj = make_config(name, **options)                         # field errors before building anything
    limit = max_positions(config)
    seq = seq if seq is not None else min(limit or 2048, 2048)
    if batch is None:
        raise BenchError("memory: --batch must be >= 1, got None")
    check_value("memory: --batch", batch, COUNT)
    check_value("memory: --seq", seq, COUNT)
    virtual = getattr(cfg_obj, "num_virtual_tokens", 0)           # prompt, prefix, P-tuning: tokens in front
    if getattr(cfg_obj, "placeholder_token_id", None) is not None:
        virtual = 0
    if limit and seq + virtual > limit:
        raise BenchError(f"memory: --seq {seq}" + (f" + {virtual} virtual tokens" if virtual else "") +
                         f" exceeds the model's {limit} positions")
    setup = Setup(precision=precision, optimizer=optimizer, batch=batch, seq_len=seq, frozen_int8=base_int8,
                  frozen_4bit=base_4bit, device=device, checkpointing=checkpointing)
    setup.check()
    model = meta_model(config)
    family(model)                                                 # unknown family: one line, before the work
    full_mem = estimate(model, setup)                              # a fresh model trains every parameter
    n_total = trainable_parameters(model)[1]
    adapted = apply(model, cfg_obj) if name != "full" else model
    mem = estimate(adapted, setup) if name != "full" else full_mem
    n_train, n_all = trainable_parameters(adapted)
    n_all += sum(m.in_features * m.out_features for m in adapted.modules() if isinstance(m, Linear4bit))  # NF4 buffers
    nf4 = any(isinstance(m, Linear4bit) for m in adapted.modules())   # the method quantizes its base (QLoRA)
    return {"method": mem, "full": full_mem, "setup": setup, "name": name, "options": options, "nf4_base": nf4,
            "trainable_params": n_train, "total_params": n_all, "base_params": n_total, "virtual_tokens": virtual,
            "model_type": config.model_type, "families": FAMILIES}


def _gpus(nbytes: float, gpu_bytes: int | None, label: str) -> int | None:
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
                  "base_4bit": s.frozen_4bit or pred.get("nf4_base", False),
                  "grad_checkpointing": s.checkpointing, "device": s.device},
        "bytes": rows,
        "trainable_params": pred["trainable_params"], "total_params": pred["total_params"],
        "checkpoint_bytes": {"fp16": 2 * pred["trainable_params"], "fp32": 4 * pred["trainable_params"]},
        "gpu": {"memory_bytes": gpu_bytes, "label": gpu_label,
                "method": _gpus(mem.peak, gpu_bytes, gpu_label), "full": _gpus(full.peak, gpu_bytes, gpu_label)},
        "assumptions": mem.assumptions + ["GPUs: total / GPU memory, rounded up (perfect sharding; M2's arithmetic)"],
    }
