"""What the memory model is given (bench.memory): a model or a transformers config, its family, and the base
model under a method's wrapper."""

from __future__ import annotations

import torch
from torch import nn

from bench import BenchError

FAMILIES = ("gpt2", "opt", "llama", "bert")
ENCODERS = ("bert",)  # model types built as a bare encoder (AutoModel: no LM head), e.g. all-MiniLM-L6-v2


def meta_model(config) -> nn.Module:
    """A transformers model built from a config on the meta device: shapes only, no weights allocated.
    Causal LMs get their LM head (AutoModelForCausalLM); BERT-style encoders are built bare (AutoModel, as
    sentence-embedding checkpoints such as all-MiniLM-L6-v2 are); encoder-decoders as Seq2SeqLM."""
    import transformers

    if getattr(config, "is_encoder_decoder", False):
        cls = transformers.AutoModelForSeq2SeqLM
    elif getattr(config, "model_type", None) in ENCODERS:
        cls = transformers.AutoModel
    else:
        cls = transformers.AutoModelForCausalLM
    with torch.device("meta"):
        return cls.from_config(config)


def as_model(model_or_config) -> nn.Module:
    if isinstance(model_or_config, nn.Module):
        return model_or_config
    if hasattr(model_or_config, "model_type"):
        return meta_model(model_or_config)
    raise BenchError(f"memory: pass a torch model or a transformers config, got {type(model_or_config).__name__}")


def unwrap(model: nn.Module):
    """(base model, what its wrapper changes: bench.methods.registry.Virtual), from the wrapper method's memory
    hook (its SPEC.wrappers); a model without a wrapper is its own base."""
    from bench.methods.registry import Virtual, wrapper_hook

    hook = wrapper_hook(model)
    if hook is not None:
        return hook(model)
    if hasattr(model, "get_base_model"):
        raise BenchError(f"memory: activations of wrapper {type(model).__name__} are not modelled; "
                         "full, LoRA, adapters, BitFit, prefix, prompt and P-tuning are")
    return model, Virtual()


def family(model: nn.Module) -> str:
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt in ("llama", "mistral", "qwen2"):
        return "llama"
    if mt not in FAMILIES:
        raise BenchError(f"memory: no activation model for model_type {mt!r}; known: {', '.join(FAMILIES)} "
                         f"(Llama-style: llama, mistral, qwen2)")
    return mt


def max_positions(config) -> int | None:
    """The longest sequence (virtual tokens included) the model's position table or config allows."""
    for key in ("n_positions", "max_position_embeddings"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def linear_types():
    try:
        from transformers.pytorch_utils import Conv1D
        return (nn.Linear, Conv1D)
    except ImportError:  # pragma: no cover
        return (nn.Linear,)
