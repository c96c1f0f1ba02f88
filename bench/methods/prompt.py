"""Prompt tuning (Lester et al. 2021, https://arxiv.org/abs/2104.08691): n trainable "soft prompt" vectors
are prepended to the input embeddings of a frozen model; only they train (n x d_model parameters).

Like peft's causal-LM prompt tuning, the wrapper prepends the n vectors and extends attention_mask with ones,
token-level labels with -100 and token_type_ids with 0, so `.loss` is peft's (it includes predicting the first
real token from the last virtual one). `.logits` cover the ORIGINAL T positions only, (B, T, V), so code that
aligns logits with input_ids keeps working; peft returns (B, n + T, V), and `virtual_logits=True` gives that
(hidden_states / attentions, when asked for, always include the virtual positions). Sequence-classification
logits are (B, num_labels) as usual. `generate` returns input_ids followed by the new tokens, like the base
model's.

Padding: the virtual tokens take positions 0..n-1 and each row's real tokens n, n+1, ... from its first real
token (position ids derived from attention_mask; `position_ids` passed in count the real tokens from 0 and are
shifted by n). A left-padded row therefore gives the same logits as the row alone, as `generate` always did;
peft leaves the pads between prompt and text (on a rotary Llama its left-padded rows are off by a relative 1.6).
`generate` works with and without the KV cache (`use_cache=False`).

Init (Lester et al. Fig. 3b compares them): 'random' uniform in [-random_range, random_range]; 'vocab'
embeddings of token ids sampled uniformly from the vocabulary; 'text' the embeddings of `init_token_ids`
repeated/truncated to n (peft's TEXT init, given ids instead of a tokenizer); 'labels' the class-label words'
embeddings (`init_token_ids`) for the first prompt tokens, the rest sampled from the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bench.methods.common import (HEAD_NAMES, MethodConfig, batch_size, freeze, need, unfreeze_head,
                                  virtual_then_real_positions)
from bench.methods.wrapper import MethodWrapper
from bench.methods.registry import MethodSpec, Virtual
from bench.values import TOKEN_ID

INITS = ("random", "vocab", "text", "labels")


@dataclass
class PromptConfig(MethodConfig):
    name = "prompt"
    paper = "https://arxiv.org/abs/2104.08691"
    load_ignores = ("train_head", "init", "init_token_ids", "random_range")

    num_virtual_tokens: int = field(default=20, metadata={"help": "prompt length n (Lester et al.: >20 gains little)"})
    init: str = field(default="vocab", metadata={"help": "random | vocab | text | labels (see module doc)"})
    init_token_ids: tuple[int, ...] | None = field(default=None, metadata={
        "help": "token ids for init='text' (a text's ids) or init='labels' (the class-label words' ids)",
        "range": TOKEN_ID})
    random_range: float = field(default=0.5, metadata={"help": "init='random' draws from U(-range, range)"})
    virtual_logits: bool = field(default=False, metadata={
        "help": "keep the n virtual positions in .logits (peft's behaviour) instead of the original T only"})

    def __post_init__(self):
        if isinstance(self.init_token_ids, list):
            self.init_token_ids = tuple(self.init_token_ids)

    def check_fields(self) -> None:
        check_length(self.name, self.num_virtual_tokens)
        need(self.init in INITS, f"prompt: init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.init in ("text", "labels"):
            need(bool(self.init_token_ids), f"prompt: init={self.init!r} needs init_token_ids")
        need(self.random_range > 0, f"prompt: random_range must be > 0, got {self.random_range!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        emb = input_embeddings(model, self.name)
        if self.init_token_ids:
            v = emb.weight.shape[0]
            bad = [i for i in self.init_token_ids if not 0 <= i < v]
            need(not bad, f"prompt: init_token_ids {bad[:5]} are outside the vocabulary [0, {v})")

    def inject(self, model: nn.Module) -> nn.Module:
        freeze(model)
        unfreeze_head(model, self)
        prompt = init_prompt(self, input_embeddings(model, self.name)).float()   # trainable params in fp32
        return PromptModel(model, self.num_virtual_tokens, prompt, virtual_logits=self.virtual_logits)


def check_length(method: str, n) -> None:
    need(isinstance(n, int) and n > 0, f"{method}: num_virtual_tokens must be a positive integer, got {n!r}")


def input_embeddings(model: nn.Module, method: str) -> nn.Embedding:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    need(isinstance(emb, nn.Embedding), f"{method}: cannot find the input embeddings of {type(model).__name__}")
    return emb


@torch.no_grad()
def init_prompt(cfg: PromptConfig, emb: nn.Embedding) -> torch.Tensor:
    n, (vocab, d) = cfg.num_virtual_tokens, emb.weight.shape
    w = emb.weight
    if cfg.init == "random":
        return torch.empty(n, d, device=w.device, dtype=w.dtype).uniform_(-cfg.random_range, cfg.random_range)
    if cfg.init == "vocab":
        ids = torch.randint(0, vocab, (n,))
    elif cfg.init == "text":
        ids = torch.tensor((list(cfg.init_token_ids) * n)[:n])          # repeat, then cut to n
    else:  # labels first, then sampled vocabulary
        k = min(n, len(cfg.init_token_ids))
        ids = torch.cat([torch.tensor(cfg.init_token_ids[:k]), torch.randint(0, vocab, (n - k,))])
    return w[ids.to(w.device)].detach().clone()                          # (n, d)


class PromptModel(MethodWrapper):
    """Prepends `prompt_vectors()` (n, d) to the input embeddings (P-tuning overrides it with its encoder).
    With `placeholder_token_id` set, the prompt vectors instead replace the embeddings at the positions where
    input_ids equals it (exactly n per row, in order), and the sequence length does not change."""

    placeholder_token_id: int | None = None

    def __init__(self, base: nn.Module, num_virtual_tokens: int, prompt: torch.Tensor | None = None,
                 virtual_logits: bool = False):
        super().__init__(base)
        self.num_virtual_tokens = num_virtual_tokens
        self.virtual_logits = virtual_logits
        if prompt is not None:
            self.prompt = nn.Parameter(prompt)                            # (n, d)

    def prompt_vectors(self) -> torch.Tensor:
        return self.prompt                                                # (n, d)

    def build_inputs(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None,
                     token_type_ids=None, position_ids=None):
        """The base model's inputs. Prepend mode: virtual tokens take positions 0..n-1 and the real tokens n,
        n+1, ... counted from each row's first real token (`position_ids` given for the real tokens are shifted
        by n), so left padding changes nothing; without this, a left-padded row put its pads between the
        prompt and the text (peft does: relative 1.6 on a rotary Llama)."""
        B = batch_size(input_ids, inputs_embeds)
        n = self.num_virtual_tokens
        if inputs_embeds is None:
            inputs_embeds = self.base.get_input_embeddings()(input_ids)  # (B, T, d)
        T = inputs_embeds.shape[1]
        P = self.prompt_vectors().to(inputs_embeds.dtype)              # (n, d)
        if self.placeholder_token_id is None:
            inputs_embeds = torch.cat([P.unsqueeze(0).expand(B, -1, -1), inputs_embeds], dim=1)  # (B, n+T, d)
            position_ids = virtual_then_real_positions(self.base, attention_mask, position_ids, n)   # (B, n+T)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask.new_ones(B, n), attention_mask], dim=1)
            if labels is not None and labels.dim() >= 2 and labels.shape[1] == T:   # token-level labels
                labels = torch.cat([labels.new_full((B, n), -100), labels], dim=1)
            if token_type_ids is not None:
                token_type_ids = torch.cat([token_type_ids.new_zeros(B, n), token_type_ids], dim=1)
        else:
            need(input_ids is not None, "ptuning: placeholder mode needs input_ids")
            slots = input_ids == self.placeholder_token_id                   # (B, T)
            counts = slots.sum(1)
            need(bool((counts == n).all()), f"ptuning: every row needs exactly {n} placeholder tokens "
                                            f"(id {self.placeholder_token_id}), got {counts.tolist()}")
            inputs_embeds = inputs_embeds.masked_scatter(slots.unsqueeze(-1), P.expand(B, -1, -1))
            if labels is not None and labels.shape == input_ids.shape:
                labels = labels.masked_fill(slots, -100)
        return dict(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                    token_type_ids=token_type_ids, position_ids=position_ids)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, token_type_ids=None,
                position_ids=None, **kwargs):
        inputs = self.build_inputs(input_ids, attention_mask, inputs_embeds, labels, token_type_ids, position_ids)
        T = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        inputs = {k: v for k, v in inputs.items() if v is not None or k == "attention_mask"}
        inputs.update(kwargs)
        out = self.base(**inputs)
        n = self.num_virtual_tokens
        logits = getattr(out, "logits", None)
        if (self.placeholder_token_id is None and not self.virtual_logits and logits is not None
                and logits.dim() >= 3 and logits.shape[1] == n + T):
            out.logits = logits[:, n:]                                    # (B, T, V): the original positions
        return out

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """Greedy/sampled generation with the prompt; returns input_ids + new tokens, like the base model."""
        need(self.is_causal_lm(), f"generate needs a causal LM, got {type(self.base).__name__}")
        need(input_ids is not None, "generate: pass input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = self.build_inputs(input_ids, attention_mask)          # generate derives the same positions
        out = self.base.generate(inputs_embeds=inputs["inputs_embeds"], attention_mask=inputs["attention_mask"],
                                 **kwargs)                                # only the new tokens come back
        if isinstance(out, torch.Tensor):
            return torch.cat([input_ids.repeat_interleave(out.shape[0] // input_ids.shape[0], 0), out], dim=1)
        out.sequences = torch.cat([input_ids.repeat_interleave(out.sequences.shape[0] // input_ids.shape[0], 0),
                                   out.sequences], dim=1)
        return out


def memory_wrapper(model: PromptModel):
    """bench.memory's hook: n virtual tokens prepended to the input, T -> n + T; the prompt itself saves nothing."""
    return model.base, Virtual(prompt=model.num_virtual_tokens)


def peft_config(cfg: PromptConfig, model: nn.Module):
    """peft.PromptTuningConfig with the same length (peft's default random init; the init is not compared)."""
    import peft

    is_cls = any(n in HEAD_NAMES for n, _ in model.named_children())
    return peft.PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens,
                                   task_type="SEQ_CLS" if is_cls else "CAUSAL_LM")


SPEC = MethodSpec(PromptConfig, tiny={"prompt": {"num_virtual_tokens": 4}}, wrappers={PromptModel: memory_wrapper},
                  peft=peft_config)
