"""P-tuning (Liu et al. 2021, "GPT Understands, Too", https://arxiv.org/abs/2103.10385): the continuous prompt
is the output of a small trainable prompt encoder (a bidirectional LSTM + MLP head, or a 3-layer MLP, as in
peft's PromptEncoder) run over n trainable input vectors; the LM stays frozen.

Two ways to place the prompt:
- default (placeholder_token_id=None): PREPENDED to the input, exactly like prompt tuning and peft's
  P_TUNING (`.logits` cover the original positions unless virtual_logits=True; see bench.methods.prompt).
- placeholder_token_id=<id>: the discrete template carries n placeholder tokens (e.g. "[P][P] Paris is the
  capital of [P] [MASK]"); the encoder's n outputs REPLACE the placeholders' embeddings in order (the
  paper's template mixing of prompt and context tokens). The length does not change; labels at placeholders
  become -100.
`fold()` runs the encoder once and keeps its output as a plain (n, d) prompt for inference (the encoder is
dropped; peft's inference mode stores the same tensor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bench.methods.common import HEAD_NAMES, MethodConfig, freeze, need, unfreeze_head
from bench.methods.prompt import PromptModel, check_length, input_embeddings
from bench.methods.registry import MethodSpec, Virtual
from bench.values import PROBABILITY, TOKEN_ID


@dataclass
class PTuningConfig(MethodConfig):
    name = "ptuning"
    paper = "https://arxiv.org/abs/2103.10385"

    num_virtual_tokens: int = field(default=20, metadata={"help": "number of continuous prompt tokens n"})
    encoder: str = field(default="mlp", metadata={"help": "prompt encoder: 'lstm' (the paper's) or 'mlp'"})
    hidden_size: int | None = field(default=None, metadata={"help": "encoder width; None = the model's d"})
    lstm_layers: int = field(default=2, metadata={"help": "LSTM layers (encoder='lstm')"})
    dropout: float = field(default=0.0, metadata={"help": "dropout between LSTM layers",
                                                      "range": PROBABILITY})
    placeholder_token_id: int | None = field(default=None, metadata={
        "help": "None: prepend the prompt; an id: replace the n placeholder tokens of a template with it",
        "range": TOKEN_ID})
    virtual_logits: bool = field(default=False, metadata={
        "help": "prepend mode: keep the n virtual positions in .logits (peft's behaviour)"})

    def check_fields(self) -> None:
        check_length(self.name, self.num_virtual_tokens)
        need(self.encoder in ("lstm", "mlp"), f"ptuning: encoder must be 'lstm' or 'mlp', got {self.encoder!r}")
        need(self.hidden_size is None or (isinstance(self.hidden_size, int) and self.hidden_size > 0),
             f"ptuning: hidden_size must be a positive integer or None, got {self.hidden_size!r}")
        need(isinstance(self.lstm_layers, int) and self.lstm_layers > 0,
             f"ptuning: lstm_layers must be a positive integer, got {self.lstm_layers!r}")
        need(0.0 <= self.dropout < 1.0, f"ptuning: dropout must be in [0, 1), got {self.dropout!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        emb = input_embeddings(model, self.name)
        if self.placeholder_token_id is not None:
            v = emb.weight.shape[0]
            need(0 <= self.placeholder_token_id < v, f"ptuning: placeholder_token_id {self.placeholder_token_id} "
                                                     f"is outside the vocabulary [0, {v})")

    def inject(self, model: nn.Module) -> nn.Module:
        w = input_embeddings(model, self.name).weight
        freeze(model)
        unfreeze_head(model, self)
        with torch.device(w.device):                                     # meta models stay on meta
            enc = PromptEncoder(self.num_virtual_tokens, w.shape[1], self)
        return PTuningModel(model, self.num_virtual_tokens, enc, self.placeholder_token_id, self.virtual_logits)


class PromptEncoder(nn.Module):
    """n trainable vectors -> LSTM(bidirectional) -> MLP, or -> MLP; output (n, d)."""

    def __init__(self, n: int, d: int, cfg: PTuningConfig):
        super().__init__()
        h = cfg.hidden_size or d
        self.kind = cfg.encoder
        self.embedding = nn.Embedding(n, d)                                   # N(0, 1) init
        if cfg.encoder == "lstm":
            self.lstm_head = nn.LSTM(d, h, num_layers=cfg.lstm_layers, dropout=cfg.dropout, bidirectional=True,
                                     batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(2 * h, 2 * h), nn.ReLU(), nn.Linear(2 * h, d))
        else:
            self.mlp_head = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

    def forward(self) -> torch.Tensor:
        x = self.embedding.weight.unsqueeze(0)                                # (1, n, d)
        if self.kind == "lstm":
            x = self.lstm_head(x)[0]                                          # (1, n, 2h)
        return self.mlp_head(x)[0]                                            # (n, d)


class PTuningModel(PromptModel):
    def __init__(self, base: nn.Module, n: int, encoder: PromptEncoder, placeholder_token_id: int | None,
                 virtual_logits: bool = False):
        super().__init__(base, n, virtual_logits=virtual_logits)
        self.encoder = encoder
        self.placeholder_token_id = placeholder_token_id

    def prompt_vectors(self) -> torch.Tensor:
        return self.encoder() if self.encoder is not None else self.prompt   # (n, d)

    @property
    def folded(self) -> bool:
        return self.encoder is None

    @torch.no_grad()
    def fold(self) -> PTuningModel:
        """Replace the encoder by its output, a plain (n, d) prompt (same outputs, no encoder at inference)."""
        if self.encoder is not None:
            self.prompt = nn.Parameter(self.encoder().detach().clone())
            self.encoder = None
        return self


def memory_wrapper(model: PTuningModel):
    """bench.memory's hook: prepended like prompt tuning (or, in template mode, replacing n input embeddings,
    T unchanged); while the encoder trains, what it saves for its n steps (fp32)."""
    n, extra, enc = model.num_virtual_tokens, 0.0, model.encoder
    if enc is not None:
        d = enc.embedding.weight.shape[1]
        if enc.kind == "mlp":  # Linear, ReLU, Linear, ReLU, Linear: the two ReLUs save their (n, h) outputs
            extra = 4.0 * n * 2 * enc.mlp_head[0].out_features
        else:  # approximate: per LSTM layer and direction ~(in + 12 h) floats per step, + the MLP's ReLU
            h, layers = enc.lstm_head.hidden_size, enc.lstm_head.num_layers
            extra = 4.0 * n * (2 * sum((d if i == 0 else 2 * h) + 12 * h for i in range(layers)) + 2 * h)
    template = model.placeholder_token_id is not None
    return model.base, Virtual(prompt=0 if template else n, placeholder=template, extra=extra)


def peft_config(cfg: PTuningConfig, model: nn.Module):
    """peft.PromptEncoderConfig with the same length, encoder kind, width, LSTM depth and dropout; the template
    mode (placeholder_token_id) has no peft counterpart."""
    import peft

    need(cfg.placeholder_token_id is None, "ptuning: peft's P-tuning only prepends; template mode has no counterpart")
    d = input_embeddings(model, cfg.name).weight.shape[1]
    is_cls = any(n in HEAD_NAMES for n, _ in model.named_children())
    return peft.PromptEncoderConfig(num_virtual_tokens=cfg.num_virtual_tokens,
                                    encoder_reparameterization_type=cfg.encoder.upper(),
                                    encoder_hidden_size=cfg.hidden_size or d, encoder_num_layers=cfg.lstm_layers,
                                    encoder_dropout=cfg.dropout, task_type="SEQ_CLS" if is_cls else "CAUSAL_LM")


SPEC = MethodSpec(PTuningConfig, tiny={"ptuning": {"num_virtual_tokens": 4}},
                  wrappers={PTuningModel: memory_wrapper}, peft=peft_config)
