"""QLoRA (Dettmers et al. 2023, https://arxiv.org/abs/2305.14314): LoRA on a frozen base whose Linear weights
are stored in 4-bit NormalFloat (NF4, blockwise absmax, double-quantized scales; bench.numerics.nf4).

apply() replaces every nn.Linear / Conv1D of the model by a `Linear4bit` (as transformers' bitsandbytes
integration does: all Linears except the output embeddings (lm_head) and a task head), then wraps the LoRA
targets (`target_modules`, LoRA's rules and defaults) in a LoRA layer whose A and B are float32 whatever the
base dtype; the base matmul runs in `compute_dtype` (the paper's bf16 on GPUs; float32 here by default).
Only A, B (and a task head) train, so counting is LoRA's; merging is refused (a 4-bit weight cannot take
W + s*BA without re-quantizing). Saving writes our format (method.json + trained.safetensors), which keeps the
quantization settings: peft's QLoRA adapter is a plain LoRA adapter, its quantization lives in the base model's
loading code. peft's counterpart (parity tests, the methods benchmark) is peft's LoRA on a base whose Linears
are bitsandbytes' Linear4bit (`bnb_base`).

Why a method of its own rather than an option of `lora`: the registry, presets, `bench memory --method` and
the claims compare methods by name, and QLoRA's quantization settings belong to it alone; the LoRA layer
itself is shared (QLoraLayer only casts the branch to float32).

The paper adapts every Linear of the blocks (Sec. 4, "LoRA on all linear layers"); pass that as a regex,
e.g. target_modules=".*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bench.methods import lora
from bench.methods.common import HEAD_NAMES, freeze, need, unfreeze_head
from bench.methods.lora import Conv1D, LoraConfig, LoraLayer, _parent, find_targets
from bench.methods.registry import MethodSpec
from bench.numerics.nf4 import BLOCKSIZE, Linear4bit

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class QLoraConfig(LoraConfig):
    name = "qlora"
    paper = "https://arxiv.org/abs/2305.14314"

    blocksize: int = field(default=BLOCKSIZE, metadata={
        "help": "NF4 values per absmax scale (QLoRA: 64; a power of two)"})
    double_quant: bool = field(default=True, metadata={
        "help": "quantize the absmax scales again to 8 bits, blocks of 256 (QLoRA Sec. 3: 0.5 -> 0.127 bit/param)"})
    compute_dtype: str = field(default="float32", metadata={
        "help": "dtype of the dequantized base matmul: float32 | bfloat16 | float16 (the paper: bfloat16)"})

    def check_fields(self) -> None:
        super().check_fields()
        b = self.blocksize
        need(b >= 2 and not b & (b - 1), f"qlora: blocksize must be a power of two >= 2, got {b!r}")
        need(self.compute_dtype in DTYPES, f"qlora: compute_dtype must be one of {', '.join(DTYPES)}, "
                                           f"got {self.compute_dtype!r}")

    def inject(self, model: nn.Module) -> nn.Module:
        targets = {n for n, _ in find_targets(model, self.target_modules)}
        freeze(model)
        out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        for name, mod in quantized_slots(model):
            keep = mod is out_emb or name.split(".")[0] in HEAD_NAMES
            base = mod if keep else Linear4bit.from_linear(mod, self.blocksize, self.double_quant,
                                                          DTYPES[self.compute_dtype])
            if name in targets:
                base = QLoraLayer(base, self.r, self.scaling(), self.dropout, self.init)
            parent, child = _parent(model, name)
            setattr(parent, child, base)
        unfreeze_head(model, self)
        return model


def quantized_slots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """[(dotted name, module)] of every Linear / Conv1D (not yet wrapped), the candidates for 4 bits."""
    return [(n, m) for n, m in model.named_modules()
            if n and isinstance(m, (nn.Linear, Conv1D)) and not isinstance(m, LoraLayer)]


class QLoraLayer(LoraLayer):
    """A LoRA layer over a (usually 4-bit) frozen base with float32 A and B; the branch runs in float32 and
    is added in the base output's dtype."""

    def __init__(self, base: nn.Module, r: int, scaling: float, dropout: float = 0.0, init: str = "kaiming"):
        super().__init__(base, r, scaling, dropout, init)
        self.lora_A.float()
        self.lora_B.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)                                                        # (..., out)
        h = self.lora_A(self.dropout(x).float()) * self.scaling                   # (..., r) float32
        return out + self.lora_B(h).to(out.dtype)


def bnb_base(cfg: QLoraConfig, model: nn.Module) -> nn.Module:
    """peft's side of QLoRA: `model` with the Linears inject() quantizes replaced by bitsandbytes' NF4
    Linear4bit (blocks of 64, `double_quant` as compress_statistics), as transformers' bitsandbytes loading does."""
    import bitsandbytes as bnb

    need(cfg.blocksize == BLOCKSIZE, f"qlora: bitsandbytes quantizes in blocks of {BLOCKSIZE}, got {cfg.blocksize}")
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, mod in quantized_slots(model):
        if mod is out_emb or name.split(".")[0] in HEAD_NAMES:
            continue
        w = mod.weight.T if isinstance(mod, Conv1D) else mod.weight             # (out, in)
        q = bnb.nn.Linear4bit(w.shape[1], w.shape[0], bias=mod.bias is not None, quant_type="nf4",
                              compute_dtype=DTYPES[cfg.compute_dtype], compress_statistics=cfg.double_quant)
        q.load_state_dict({"weight": w.detach().contiguous(), **({"bias": mod.bias.detach()} if mod.bias is not None
                                                                  else {})})
        parent, child = _parent(model, name)
        setattr(parent, child, q.to(w.device))                                  # .to() quantizes
    return model


SPEC = MethodSpec(
    QLoraConfig,
    presets={"qlora": {"r": lora.LORA_R, "alpha": lora.LORA_ALPHA}},   # NF4, blocks of 64, double quantization
    tiny={"qlora": {"r": 4}},                 # QLoraLayer is a LoraLayer: LoRA's memory hook covers it
    peft=lora.peft_config,
    peft_base=bnb_base,
)
