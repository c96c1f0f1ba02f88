"""What every method shares: the config base class, freezing, and a few questions about a transformers model
(its width, depth, blocks, classification head) answered the same way for GPT-2, Llama-family, OPT and BERT."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from bench import BenchError

# Top-level children that are a task head trained from scratch (peft's choice for sequence classification).
HEAD_NAMES = ("classifier", "score")


@dataclass
class MethodConfig:
    """Base of every method's config. Subclasses set `name` and `paper`, add typed fields with
    `metadata={"help": ...}`, and implement `validate(model)` (raise BenchError, touch nothing) and
    `inject(model)` (freeze, add modules, return the model to use)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # fields that only set initial values (or what trains), never what a loaded model computes;
    # load_trained compares every other field of the saved config with the model's
    load_ignores: ClassVar[tuple[str, ...]] = ("train_head",)

    train_head: bool = dataclasses.field(default=True, metadata={
        "help": "also train a task head that starts random (top-level `classifier` / `score`, as in "
                "BertForSequenceClassification); a causal LM's lm_head is never touched"})

    def check_types(self) -> None:
        """Every field holds a value of its annotated type (ints are accepted for floats, lists for tuples)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            need(_is_instance(v, hints[f.name]), f"{self.name}: {f.name} must be {_type_name(hints[f.name])}, "
                                                 f"got {v!r}")

    def check_ranges(self) -> None:
        """Every number is finite and inside its field's Range (metadata["range"], else its type's default:
        bench.values). Raise BenchError naming the field."""
        from bench.values import check_fields
        check_fields(self, f"{self.name}: ")

    def check_fields(self) -> None:
        """Checks that need no model (ranges of numbers, known choices). Raise BenchError."""

    def validate(self, model: nn.Module) -> None:
        self.check_fields()

    def inject(self, model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def differences(self, other: MethodConfig) -> list[tuple[str, object, object]]:
        """(field, mine, theirs) for every field outside load_ignores where the two configs differ."""
        a, b = self.to_dict(), other.to_dict()
        return [(k, a[k], b.get(k)) for k in a if k not in self.load_ignores and a[k] != b.get(k)]

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text, for CLIs and docs."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _is_instance(v, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(v, a) for a in args)
    if hint is type(None):
        return v is None
    if origin is tuple:
        return isinstance(v, (tuple, list)) and all(_is_instance(x, args[0]) for x in v)
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, hint)


def _type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def need(cond: bool, message: str) -> None:
    """Raise a BenchError with `message` unless `cond`."""
    if not cond:
        raise BenchError(message)


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_head(model: nn.Module, cfg: MethodConfig) -> list[str]:
    """Make a task head trainable when asked to; returns the head names found."""
    found = [n for n, _ in model.named_children() if n in HEAD_NAMES]
    if cfg.train_head:
        for n in found:
            for p in getattr(model, n).parameters():
                p.requires_grad_(True)
    return found


def text_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    need(cfg is not None, f"{type(model).__name__} has no .config; pass a transformers model")
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def dims(model: nn.Module) -> dict:
    """hidden, layers, heads, kv_heads, head_dim of a transformers model, from its config
    (GPT2Config maps n_embd/n_layer/n_head to these names itself)."""
    c = text_config(model)
    hidden = getattr(c, "hidden_size", None)
    layers = getattr(c, "num_hidden_layers", None)
    heads = getattr(c, "num_attention_heads", None)
    need(None not in (hidden, layers, heads),
         f"cannot read hidden_size / num_hidden_layers / num_attention_heads from {type(c).__name__}")
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or hidden // heads
    return dict(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim)


def blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The list of transformer blocks: the first ModuleList with num_hidden_layers entries
    (transformer.h for GPT-2, model.layers for Llama/OPT-style, bert.encoder.layer for BERT)."""
    n = dims(model)["layers"]
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and re.search(r"(^|\.)(h|layers?|blocks?)$", name):
            return name, mod
    raise BenchError(f"cannot find the {n} transformer blocks of {type(model).__name__}")


def is_norm(module: nn.Module) -> bool:
    """LayerNorm, or a norm class with its own weights (LlamaRMSNorm, ...)."""
    if isinstance(module, nn.LayerNorm):
        return True
    has_own_params = next(module.parameters(recurse=False), None) is not None
    return "Norm" in type(module).__name__ and has_own_params


def batch_size(input_ids, inputs_embeds) -> int:
    need((input_ids is None) != (inputs_embeds is None), "pass exactly one of input_ids and inputs_embeds")
    return (input_ids if input_ids is not None else inputs_embeds).shape[0]


def takes_position_ids(model: nn.Module) -> bool:
    return "position_ids" in inspect.signature(model.forward).parameters


def positions_skipping_left_padding(attention_mask: torch.Tensor, offset: int) -> torch.Tensor:
    """(B, T) position ids for the real tokens of `attention_mask` (B, T) placed after `offset` virtual
    positions: token j of a row with p leading pads gets offset + j - p, so a left-padded row sees the same
    positions as the row alone (the left pads get offset; they are masked). Rows without left padding get
    offset + 0..T-1, the model's own default; this is also what generate() derives from the mask."""
    T = attention_mask.shape[1]
    lead = (attention_mask.long().cumsum(1) == 0).sum(1, keepdim=True)             # (B, 1) leading pads
    j = torch.arange(T, device=attention_mask.device).unsqueeze(0)                 # (1, T)
    return (j - lead).clamp_min(0) + offset


def virtual_then_real_positions(base: nn.Module, attention_mask, position_ids, n: int):
    """(B, n+T) position ids for n virtual tokens prepended to T real ones, or None when the model takes none
    and none were given: virtual tokens get 0..n-1, real tokens continue from n, counted from each row's first
    real token (so left padding changes no row). attention_mask: the real tokens' (B, T) mask."""
    if position_ids is None and attention_mask is not None and takes_position_ids(base):
        position_ids = positions_skipping_left_padding(attention_mask, n)
    elif position_ids is not None:
        position_ids = position_ids + n
    if position_ids is None:
        return None
    virtual = torch.arange(n, device=position_ids.device).expand(position_ids.shape[0], -1)
    return torch.cat([virtual, position_ids], dim=1)                                 # (B, n+T)


def first_param(model: nn.Module) -> torch.Tensor:
    return next(model.parameters())
