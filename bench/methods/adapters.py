"""Bottleneck adapters (Houlsby et al. 2019, https://arxiv.org/abs/1902.00751).

Each transformer block gets two adapters: one on the output of the attention sublayer's output projection,
one on the output of the feed-forward's output projection, both before the residual add (and, in BERT,
before the post-LayerNorm):  y = h + up(act(down(h))),  down: d -> m, up: m -> d, so 2md + d + m params each.
Init is near-identity: Houlsby's N(0, 1e-2) for both projections (biases 0), or up = 0 (`zero_up`), which makes
the adapted model equal the base exactly at step 0. Layer norms train too (`train_layernorm`, as in the
paper), as does a classification head (`train_head`).

Where the adapters go (`targets` overrides, full regex match on module names):
    gpt2: attn.c_proj, mlp.c_proj    llama-family: self_attn.o_proj, mlp.down_proj    opt: self_attn.out_proj, fc2
    bert/roberta: attention.output.dense, output.dense
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from bench import BenchError
from bench.methods.common import MethodConfig, blocks, dims, freeze, is_norm, need, unfreeze_head
from bench.methods.registry import MethodSpec
from bench.values import Range

# model_type -> regexes (relative to one block) of the attention-output and FFN-output projections
PLACES = {
    "gpt2": (r"attn\.c_proj", r"mlp\.c_proj"),
    "llama": (r"self_attn\.o_proj", r"mlp\.down_proj"),
    "mistral": (r"self_attn\.o_proj", r"mlp\.down_proj"),
    "qwen2": (r"self_attn\.o_proj", r"mlp\.down_proj"),
    "opt": (r"self_attn\.out_proj", r"fc2"),
    "bert": (r"attention\.output\.dense", r"output\.dense"),
    "roberta": (r"attention\.output\.dense", r"output\.dense"),
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass
class AdapterConfig(MethodConfig):
    name = "adapters"
    paper = "https://arxiv.org/abs/1902.00751"
    load_ignores = ("train_head", "init_std", "zero_up")

    size: int = field(default=64, metadata={"help": "bottleneck width m (the paper tries 8, 64, 256)"})
    activation: str = field(default="gelu", metadata={"help": "nonlinearity between down and up: relu|gelu|tanh|silu"})
    init_std: float = field(default=1e-2, metadata={
        "help": "std of the N(0, std) init of down (and up, unless zero_up)",
        "range": Range(0, 10, zero="weights start at 0")})
    zero_up: bool = field(default=False, metadata={"help": "up-projection starts at exactly 0 (adapter = identity)"})
    train_layernorm: bool = field(default=True, metadata={"help": "layer norms train as well (Houlsby et al.)"})
    targets: tuple[str, ...] | None = field(default=None, metadata={
        "help": "regexes of the module paths (inside a block) whose output gets an adapter; None = family default"})

    def __post_init__(self):
        if isinstance(self.targets, list):
            self.targets = tuple(self.targets)

    def check_fields(self) -> None:
        need(isinstance(self.size, int) and self.size > 0, f"adapters: size must be a positive integer, got {self.size!r}")
        need(self.activation in ACTIVATIONS, f"adapters: activation must be one of {', '.join(ACTIVATIONS)}, "
                                             f"got {self.activation!r}")
        need(self.init_std >= 0, f"adapters: init_std must be >= 0, got {self.init_std!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        places(model, self.targets)

    def inject(self, model: nn.Module) -> nn.Module:
        spots = places(model, self.targets)
        d = dims(model)["hidden"]
        freeze(model)
        if self.train_layernorm:
            for m in model.modules():
                if is_norm(m):
                    for p in m.parameters(recurse=False):
                        p.requires_grad_(True)
        for name, mod in spots:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, WithAdapter(mod, Adapter(d, self, mod)))
        unfreeze_head(model, self)
        return model


def places(model: nn.Module, targets) -> list[tuple[str, nn.Module]]:
    """[(dotted name, module)] of the projections whose outputs get an adapter, two per block by default."""
    if targets is None:
        mt = getattr(getattr(model, "config", None), "model_type", None)
        if mt not in PLACES:
            raise BenchError(f"adapters: no default placement for model_type {mt!r}; pass targets "
                             f"(known: {', '.join(sorted(PLACES))})")
        targets = PLACES[mt]
    prefix, block_list = blocks(model)
    out = []
    for pat in targets:
        try:
            rx = re.compile(rf"{re.escape(prefix)}\.\d+\.{pat}")
        except re.error as e:
            raise BenchError(f"adapters: target {pat!r} is not a valid regex: {e}") from None
        hits = [(n, m) for n, m in model.named_modules() if rx.fullmatch(n) and not isinstance(m, WithAdapter)]
        need(len(hits) == len(block_list), f"adapters: target {pat!r} matched {len(hits)} modules, expected one per "
                                           f"block ({len(block_list)})")
        out += hits
    return out


class Adapter(nn.Module):
    """h + up(act(down(h))): (..., d) -> (..., d)."""

    def __init__(self, d: int, cfg: AdapterConfig, like: nn.Module):
        super().__init__()
        w = next(like.parameters())
        self.down = nn.Linear(d, cfg.size, device=w.device, dtype=w.dtype)
        self.act = ACTIVATIONS[cfg.activation]()
        self.up = nn.Linear(cfg.size, d, device=w.device, dtype=w.dtype)
        nn.init.normal_(self.down.weight, std=cfg.init_std)
        nn.init.zeros_(self.down.bias)
        if cfg.zero_up:
            nn.init.zeros_(self.up.weight)
        else:
            nn.init.normal_(self.up.weight, std=cfg.init_std)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


class WithAdapter(nn.Module):
    """A frozen projection followed by an adapter."""

    def __init__(self, base: nn.Module, adapter: Adapter):
        super().__init__()
        self.base, self.adapter = base, adapter

    @property
    def weight(self):
        return self.base.weight

    def forward(self, x, *args, **kwargs):
        return self.adapter(self.base(x, *args, **kwargs))


def memory_branch(mod: WithAdapter):
    """bench.memory's hook: h + up(act(down(h))) on the projection's output h saves h (down's input), act's
    input or output (relu/tanh save their result, gelu/silu their input) and up's input, m wide."""
    m, act = mod.adapter.down.out_features, type(mod.adapter.act).__name__.lower()

    def branch(tape, x, out, fi: int, fo: int):
        tape.save(out)                                     # (..., d): down's input
        d = tape.new(m, True)                              # (..., m): down(h)
        a = tape.new(m, True)                              # (..., m): act(down(h))
        tape.save(a if act in ("relu", "tanh") else d)
        tape.save(a)                                       # up's input
        return tape.new(fo, True)
    return mod.base, branch


SPEC = MethodSpec(AdapterConfig, tiny={"adapters": {"size": 8}}, layers={WithAdapter: memory_branch})
