"""Prefix tuning (Li & Liang 2021, https://arxiv.org/abs/2101.00190): every attention layer sees n extra
trainable key/value vectors in front of the real ones; the LM stays frozen.

Mechanism (the one peft uses with transformers 5.x): the prefixes are handed to the model as an already
filled KV cache (`DynamicCache`, one (key, value) pair of (B, kv_heads, n, head_dim) per layer), and the
attention mask gets n leading ones. The model therefore places the real tokens at positions n..n+T-1, and
`.logits` cover the T real positions only (unlike prompt tuning). Models with grouped-query attention get
prefixes of num_key_value_heads x head_dim per layer.

Training can reparameterise the prefix through an MLP (the paper's trick for stable optimisation):
    P = Linear(h -> L*2*kv) (tanh (Linear(kv -> h) (E))),  E: (n, kv) trainable.
`fold()` evaluates it once and keeps P as a plain tensor, which is all inference needs.
`generate` passes the prefix cache to the base model's generate, so decoding uses (and extends) the KV cache;
with `use_cache=False` every step gets a fresh prefix cache instead (the one handed in used to keep growing).

Padding: the real tokens take positions n, n+1, ... from each row's first real token (derived from
attention_mask; `position_ids` passed in count from 0 and are shifted by n), so a left-padded row gives the same
logits as the row alone, as generate() always did; peft places them after the pads (not invariant on a rotary
Llama).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.methods.common import (HEAD_NAMES, MethodConfig, batch_size, dims, freeze, need,
                                  positions_skipping_left_padding, takes_position_ids, unfreeze_head)
from bench.methods.prompt import check_length
from bench.methods.registry import MethodSpec, Virtual
from bench.methods.wrapper import MethodWrapper


@dataclass
class PrefixConfig(MethodConfig):
    name = "prefix"
    paper = "https://arxiv.org/abs/2101.00190"

    num_virtual_tokens: int = field(default=10, metadata={"help": "prefix length n (10 was best for table-to-text)"})
    reparam: bool = field(default=True, metadata={"help": "train through an MLP reparameterisation; fold() removes it"})
    reparam_hidden: int = field(default=512, metadata={"help": "the MLP's hidden width (512 in the paper's code)"})

    def check_fields(self) -> None:
        check_length(self.name, self.num_virtual_tokens)
        need(isinstance(self.reparam_hidden, int) and self.reparam_hidden > 0,
             f"prefix: reparam_hidden must be a positive integer, got {self.reparam_hidden!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        dims(model)
        params = inspect.signature(model.forward).parameters
        need(_cache_kwarg(model) is not None or any(p.kind == p.VAR_KEYWORD for p in params.values()),
             f"prefix: {type(model).__name__}.forward takes no KV cache")

    def inject(self, model: nn.Module) -> nn.Module:
        dev = next(model.parameters()).device
        freeze(model)
        unfreeze_head(model, self)
        with torch.device(dev):                                         # meta models stay on meta
            return PrefixModel(model, self)


def _cache_kwarg(model: nn.Module) -> str | None:
    """transformers 5.x names it `cache` (earlier `past_key_values`)."""
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


class PrefixModel(MethodWrapper):
    def __init__(self, base: nn.Module, cfg: PrefixConfig):
        super().__init__(base)
        d = dims(base)
        self.num_virtual_tokens = n = cfg.num_virtual_tokens
        self.layers, self.kv_heads, self.head_dim = d["layers"], d["kv_heads"], d["head_dim"]
        kv = self.kv_heads * self.head_dim
        width = self.layers * 2 * kv                                    # keys and values of every layer
        if cfg.reparam:
            self.embedding = nn.Parameter(torch.randn(n, kv))           # (n, kv)
            self.mlp = nn.Sequential(nn.Linear(kv, cfg.reparam_hidden), nn.Tanh(),
                                     nn.Linear(cfg.reparam_hidden, width))
            self.prefix = None
        else:
            self.prefix = nn.Parameter(torch.randn(n, width))           # (n, L*2*kv), N(0, 1) like peft
            self.embedding = self.mlp = None
        self.cache_kwarg = _cache_kwarg(base) or "cache"

    def prefix_table(self) -> torch.Tensor:
        """(n, L*2*kv): per virtual token, layer 0 key, layer 0 value, layer 1 key, ..."""
        return self.mlp(self.embedding) if self.prefix is None else self.prefix

    @property
    def folded(self) -> bool:
        return self.prefix is not None

    @torch.no_grad()
    def fold(self) -> PrefixModel:
        """Evaluate the MLP once; keep its output as the (trainable) prefix and drop the MLP."""
        if self.prefix is None:
            self.prefix = nn.Parameter(self.prefix_table().detach().clone())
            self.embedding = self.mlp = None
        return self

    def make_cache(self, B: int):
        from transformers import DynamicCache

        dtype = next(self.base.parameters()).dtype
        P = self.prefix_table().to(dtype)                              # (n, L*2*kv)
        P = P.view(self.num_virtual_tokens, self.layers * 2, self.kv_heads, self.head_dim)
        P = P.permute(1, 2, 0, 3)                                       # (2L, H, n, hd)
        P = P.unsqueeze(1).expand(-1, B, -1, -1, -1)                    # (2L, B, H, n, hd)
        return DynamicCache([(P[2 * i], P[2 * i + 1]) for i in range(self.layers)])

    def _mask(self, attention_mask, B):
        if attention_mask is None:
            return None
        return torch.cat([attention_mask.new_ones(B, self.num_virtual_tokens), attention_mask], dim=1)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        need(kwargs.get(self.cache_kwarg) is None and kwargs.get("past_key_values") is None,
             "prefix: the wrapper builds the KV cache itself; do not pass one")
        if labels is not None:
            kwargs["labels"] = labels
        return self.base(**self._base_inputs(input_ids=input_ids, inputs_embeds=inputs_embeds,
                                             attention_mask=attention_mask, **kwargs))

    def _base_inputs(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None, **kwargs):
        """The base model's inputs for one full forward: a fresh prefix cache, n leading ones in the mask,
        positions n.. counted from each row's first real token."""
        B = batch_size(input_ids, inputs_embeds)
        n = self.num_virtual_tokens
        if position_ids is not None:
            position_ids = position_ids + n
        elif attention_mask is not None and takes_position_ids(self.base):
            position_ids = positions_skipping_left_padding(attention_mask, n)
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        kwargs.pop("cache_position", None)              # the model counts from the prefix cache's length
        kwargs[self.cache_kwarg] = self.make_cache(B)
        return dict(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=self._mask(attention_mask, B),
                    **kwargs)

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """The base model's generate, starting from the prefix cache; returns input_ids + new tokens."""
        need(self.is_causal_lm(), f"generate needs a causal LM, got {type(self.base).__name__}")
        need(input_ids is not None, "generate: pass input_ids")
        need(kwargs.get("num_beams", 1) == 1 and kwargs.get("num_return_sequences", 1) == 1,
             "prefix: generate supports num_beams=1 and num_return_sequences=1 only")
        B = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            gc = kwargs.get("generation_config") or getattr(self.base, "generation_config", None)
            use_cache = getattr(gc, "use_cache", True)
        if not use_cache:
            # every step is a full forward: give each one the prefix exactly as forward() does
            hook = self.base.register_forward_pre_hook(lambda _, args, kw: (args, self._base_inputs(**kw)),
                                                       with_kwargs=True)
            try:
                return self.base.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            finally:
                hook.remove()
        with torch.no_grad():
            cache = self.make_cache(B)
        return self.base.generate(input_ids=input_ids, attention_mask=self._mask(attention_mask, B),
                                  **{self.cache_kwarg: cache}, **kwargs)


def memory_wrapper(model: PrefixModel):
    """bench.memory's hook: n trainable key/value positions in front of every layer's keys; while the MLP
    reparameterisation trains, P = Linear2(tanh(Linear1(E))) and tanh saves its (n, hidden) fp32 output."""
    n = model.num_virtual_tokens
    extra = 4.0 * n * model.mlp[0].out_features if model.prefix is None else 0.0
    return model.base, Virtual(prefix=n, extra=extra)


def peft_config(cfg: PrefixConfig, model: nn.Module):
    """peft.PrefixTuningConfig with the same length and reparameterisation (peft's `prefix_projection`)."""
    import peft

    is_cls = any(n in HEAD_NAMES for n, _ in model.named_children())
    return peft.PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=cfg.reparam,
                                   encoder_hidden_size=cfg.reparam_hidden,
                                   task_type="SEQ_CLS" if is_cls else "CAUSAL_LM")


SPEC = MethodSpec(PrefixConfig, tiny={"prefix": {"num_virtual_tokens": 4}}, wrappers={PrefixModel: memory_wrapper},
                  peft=peft_config)
