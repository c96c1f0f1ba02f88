"""LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685): a frozen weight W gets a trainable low-rank update,
    h = W x + s * B A x,   A: (r, in), B: (out, r), B = 0 at init, s = alpha / r (rsLoRA: alpha / sqrt(r),
    Kalajdzievski 2023, https://arxiv.org/abs/2312.03732).

Targets are nn.Linear and GPT-2's Conv1D (weight stored (in, out), "fan_in_fan_out"). Matching rule (peft's):
- `target_modules` a str: a regex that must FULL-match the module's dotted name (`re.fullmatch`), e.g.
  r".*\\.(q_proj|v_proj)".
- a tuple/list of names: a module matches an entry when its dotted name equals the entry or ends with
  "." + entry, so ("q_proj", "v_proj") hits every `...self_attn.q_proj`. Every entry must match at least once
  (a typo is an error, not a silent no-op).
- None: the family default below (attention query and value, as in the paper's main setting).
Only nn.Linear / Conv1D modules are candidates; anything else a name matches is skipped.

Tied weights: a target whose weight is shared with another module (GPT-2's lm_head is transformer.wte) works
unmerged, but merge / merge_and_unload / unmerge refuse it with a BenchError before writing anything: writing
W + s*BA into a shared tensor would move every user of it (peft merges anyway, after a warning).

Adapters are saved in peft's on-disk format (adapter_config.json + adapter_model.safetensors, keys
`base_model.model.<module path>.lora_A.weight`), so peft loads ours and we load peft's. The LoRA variants that
peft also has (DoRA, PiSSA) use the same format: their config class says which peft keys mark the variant
(`to_peft`) and reads them back (`from_peft`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bench import BenchError
from bench.methods.common import HEAD_NAMES, MethodConfig, freeze, need, unfreeze_head
from bench.methods.registry import MethodSpec, PeftFormat
from bench.values import PROBABILITY

try:  # GPT-2's linear layer with a transposed weight
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover
    class Conv1D(nn.Module):
        pass

LORA_R = 8            # the suite's preset: the LoRA paper's common choice for GPT-3 (r = 8 on q,v; Table 15)
LORA_ALPHA = 16.0     # alpha = 2r, peft's examples; scaling alpha/r = 2

# model_type -> default targets (attention query and value; GPT-2 fuses q,k,v into c_attn)
DEFAULT_TARGETS = {
    "gpt2": ("c_attn",),
    "llama": ("q_proj", "v_proj"), "mistral": ("q_proj", "v_proj"), "qwen2": ("q_proj", "v_proj"),
    "opt": ("q_proj", "v_proj"), "gpt_neox": ("query_key_value",), "gptj": ("q_proj", "v_proj"),
    "bert": ("query", "value"), "roberta": ("query", "value"),
}


@dataclass
class LoraConfig(MethodConfig):
    name = "lora"
    paper = "https://arxiv.org/abs/2106.09685"
    load_ignores = ("train_head", "init", "target_modules")  # targets: checked by the saved keys

    r: int = field(default=8, metadata={"help": "rank of the update BA"})
    alpha: float = field(default=8.0, metadata={"help": "scale numerator: scaling = alpha/r (alpha/sqrt(r) with rslora)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA branch's input; 0 = identity",
                                                      "range": PROBABILITY})
    target_modules: str | tuple[str, ...] | None = field(default=None, metadata={
        "help": "regex (full match) or names (suffix match) of the Linear/Conv1D modules to adapt; "
                "None = the family default (query and value)"})
    init: str = field(default="kaiming", metadata={
        "help": "A's init: 'kaiming' (uniform, peft's default, like nn.Linear) or 'gaussian' (normal, the "
                "paper's, std 1/r); B is always 0"})
    rslora: bool = field(default=False, metadata={"help": "rank-stabilised scaling alpha/sqrt(r) (arXiv 2312.03732)"})

    def __post_init__(self):
        if isinstance(self.target_modules, list):
            self.target_modules = tuple(self.target_modules)

    def scaling(self) -> float:
        return self.alpha / (math.sqrt(self.r) if self.rslora else self.r)

    def check_fields(self) -> None:
        need(self.r > 0, f"lora: rank r must be a positive integer, got {self.r!r}")
        need(self.alpha > 0, f"lora: alpha must be > 0, got {self.alpha!r}")
        need(0.0 <= self.dropout < 1.0, f"lora: dropout must be in [0, 1), got {self.dropout!r}")
        need(self.init in ("kaiming", "gaussian"), f"lora: init must be 'kaiming' or 'gaussian', got {self.init!r}")
        t = self.target_modules
        need(t is None or isinstance(t, str) or (isinstance(t, tuple) and t and all(isinstance(s, str) for s in t)),
             f"lora: target_modules must be a regex string, a non-empty list of names, or None; got {t!r}")

    def validate(self, model: nn.Module) -> None:
        self.check_fields()
        for name, mod in find_targets(model, self.target_modules):
            fi, fo = in_out(mod)
            need(self.r <= min(fi, fo), f"lora: rank r={self.r} exceeds min(in, out) = {min(fi, fo)} of {name} "
                                        f"({fi} -> {fo})")

    def inject(self, model: nn.Module) -> nn.Module:
        targets = find_targets(model, self.target_modules)
        freeze(model)
        for name, mod in targets:
            parent, child = _parent(model, name)
            setattr(parent, child, self.make_layer(mod))
        unfreeze_head(model, self)
        return model

    def make_layer(self, mod: nn.Module) -> LoraLayer:
        """The layer that wraps target `mod` (variants such as DoRA return their own LoraLayer subclass)."""
        return LoraLayer(mod, self.r, self.scaling(), self.dropout, self.init)

    # -- peft's names for this variant (adapter_config.json, peft.LoraConfig) -----------------------------------
    def to_peft(self) -> dict:
        """The peft LoraConfig keys that tell the LoRA variants apart; variants override this and from_peft."""
        return {"use_dora": False, "init_lora_weights": True if self.init == "kaiming" else "gaussian"}

    @classmethod
    def from_peft(cls, c: dict) -> LoraConfig | None:
        """This class' config from a peft adapter_config.json dict, or None when the file holds another variant.
        (init_lora_weights=False, peft's random B, loads as kaiming: the weights are overwritten anyway.)"""
        init = c.get("init_lora_weights", True)
        if c.get("use_dora") or init not in (True, False, "gaussian"):
            return None
        return cls(**peft_common(c), init="gaussian" if init == "gaussian" else "kaiming")


def in_out(mod: nn.Module) -> tuple[int, int]:
    w = mod.weight
    return (w.shape[0], w.shape[1]) if isinstance(mod, Conv1D) else (w.shape[1], w.shape[0])


def resolved_targets(model: nn.Module, target_modules) -> str | tuple[str, ...]:
    if target_modules is not None:
        return target_modules
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt not in DEFAULT_TARGETS:
        raise BenchError(f"lora: no default target_modules for model_type {mt!r}; pass target_modules "
                         f"(known families: {', '.join(sorted(DEFAULT_TARGETS))})")
    return DEFAULT_TARGETS[mt]


def find_targets(model: nn.Module, target_modules) -> list[tuple[str, nn.Module]]:
    """[(dotted name, module)] of the Linear/Conv1D modules the rule selects; BenchError if none (or, for a
    list, if any entry matches none)."""
    target_modules = resolved_targets(model, target_modules)
    cands = [(n, m) for n, m in model.named_modules()
             if isinstance(m, (nn.Linear, Conv1D)) and not isinstance(m, LoraLayer) and n]
    if isinstance(target_modules, str):
        try:
            pat = re.compile(target_modules)
        except re.error as e:
            raise BenchError(f"lora: target_modules {target_modules!r} is not a valid regex: {e}") from None
        hits = [(n, m) for n, m in cands if pat.fullmatch(n)]
        need(bool(hits), f"lora: target pattern {target_modules!r} matches no Linear/Conv1D module "
                         f"(e.g. {', '.join(n for n, _ in cands[:3])})")
        return hits
    chosen = set()
    for entry in target_modules:
        found = {n for n, _ in cands if n == entry or n.endswith("." + entry)}
        suffixes = sorted({n.rsplit(".", 1)[-1] for n, _ in cands})
        need(bool(found), f"lora: target {entry!r} matches no Linear/Conv1D module; names available: "
                          f"{', '.join(suffixes)}")
        chosen |= found
    return [(n, m) for n, m in cands if n in chosen]                    # in module order


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), child


class LoraLayer(nn.Module):
    """Wraps a frozen nn.Linear or Conv1D as  base(x) + scaling * B(A(dropout(x)))."""

    def __init__(self, base: nn.Module, r: int, scaling: float, dropout: float = 0.0, init: str = "kaiming"):
        super().__init__()
        self.base = base
        self.fan_in_fan_out = isinstance(base, Conv1D)
        fi, fo = in_out(base)
        w = base.weight
        self.lora_A = nn.Linear(fi, r, bias=False, device=w.device, dtype=w.dtype)  # A: (r, in)
        self.lora_B = nn.Linear(r, fo, bias=False, device=w.device, dtype=w.dtype)  # B: (out, r)
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # what nn.Linear itself does
        else:
            nn.init.normal_(self.lora_A.weight, std=1.0 / r)
        nn.init.zeros_(self.lora_B.weight)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.r, self.scaling, self.merged = r, scaling, False

    @property
    def weight(self):  # code that reads .weight of a target (tied-weight checks, dtype probes) still works
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)                                   # (..., out); the frozen weight gets no grad matmul
        if self.merged:
            return out
        h = self.lora_A(self.dropout(x)) * self.scaling      # (..., r): never materialise BA; scale the small tensor
        return out + self.lora_B(h)                          # (..., out)

    def peft_tensors(self) -> dict[str, torch.Tensor]:
        """The trained tensors under their peft names (adapter_model.safetensors keys after the module path)."""
        return {"lora_A.weight": self.lora_A.weight, "lora_B.weight": self.lora_B.weight}

    def delta_weight(self) -> torch.Tensor:
        d = (self.lora_B.weight @ self.lora_A.weight) * self.scaling   # (out, in)
        return d.T if self.fan_in_fan_out else d

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, scaling={self.scaling:g}, merged={self.merged}"


def lora_layers(model: nn.Module) -> list[tuple[str, LoraLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def _need_lora(model) -> list[tuple[str, LoraLayer]]:
    layers = lora_layers(model)
    need(bool(layers), "this model has no LoRA layers (apply a lora config first)")
    return layers


def shared_with(model: nn.Module) -> dict[int, list[str]]:
    """id(parameter) -> every dotted name it is reachable under (several for tied weights)."""
    names: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(n)
    return names


def refuse_tied(model: nn.Module, params: list[tuple[str, torch.Tensor]], action: str) -> None:
    """BenchError naming the first of `params` (name, tensor) that another module also holds: an in-place write
    into it would change that module too. Called before anything is written."""
    names = shared_with(model)
    for name, p in params:
        others = [n for n in names.get(id(p), []) if n != name]
        need(not others, f"{action}: {name} is shared with {', '.join(others)} (tied weights); writing it would "
                         f"change both. Keep the adapter unmerged, or untie the weights first")


def _refuse_quantized(layers: list[tuple[str, LoraLayer]], action: str) -> None:
    """A 4-bit base (QLoRA) has no float weight to add s*BA to; re-quantizing the sum would change the model."""
    bad = [n for n, m in layers if not isinstance(getattr(m.base, "weight", None), nn.Parameter)]
    if bad:
        raise BenchError(f"{action}: {bad[0]} has a quantized (4-bit) base weight; merging would re-quantize "
                         f"W + s*BA and change the model. Keep the adapter unmerged")


def merge(model: nn.Module) -> nn.Module:
    """W <- W + s*BA in every LoRA layer; the forward then skips the LoRA branch (no inference overhead).
    BenchError, nothing written, if a target's weight is tied to another module's (see the module doc)."""
    layers = _need_lora(model)
    _refuse_quantized(layers, "merge")
    refuse_tied(model, [(f"{n}.base.weight", m.base.weight) for n, m in layers if not m.merged], "merge")
    for _, m in layers:
        m.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Undo merge(): W <- W - s*BA (exact up to float rounding)."""
    layers = _need_lora(model)
    refuse_tied(model, [(f"{n}.base.weight", m.base.weight) for n, m in layers if m.merged], "unmerge")
    for _, m in layers:
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge, then put the plain base modules back: the result is an ordinary transformers model.
    BenchError, nothing written, for tied targets (as merge)."""
    layers = _need_lora(model)
    _refuse_quantized(layers, "merge_and_unload")
    refuse_tied(model, [(f"{n}.base.weight", m.base.weight) for n, m in layers if not m.merged], "merge_and_unload")
    for name, m in layers:
        m.merge()
        parent, child = _parent(model, name)
        setattr(parent, child, m.base)
    if getattr(model, "bench_method", None) is not None:
        model.bench_method = None
    return model


# ---- peft's on-disk format ----------------------------------------------------------------------------------

PEFT_PREFIX = "base_model.model."


def save_peft(model: nn.Module, cfg: LoraConfig, path: Path) -> None:
    """Write peft's adapter folder for any LoRA variant (its layers' `peft_tensors`, its config's `to_peft`)."""
    from safetensors.torch import save_file

    from bench.fileio import atomic_write, atomic_write_json

    layers = _need_lora(model)
    tensors = {}
    for name, m in layers:
        for key, t in m.peft_tensors().items():
            tensors[f"{PEFT_PREFIX}{name}.{key}"] = t.detach().cpu().contiguous()
    heads = [n for n, p in model.named_parameters() if p.requires_grad and n.split(".")[0] in HEAD_NAMES]
    for n in heads:
        tensors[PEFT_PREFIX + n] = model.get_parameter(n).detach().cpu().contiguous()
    targets = resolved_targets(model, cfg.target_modules)
    is_cls = any(n.split(".")[0] in HEAD_NAMES for n, _ in model.named_parameters())
    config = {
        "peft_type": "LORA", "task_type": "SEQ_CLS" if is_cls else "CAUSAL_LM", "r": cfg.r,
        "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout, "use_rslora": cfg.rslora,
        "target_modules": targets if isinstance(targets, str) else list(targets),
        "fan_in_fan_out": any(m.fan_in_fan_out for _, m in layers), "bias": "none",
        "inference_mode": True, "modules_to_save": sorted({n.split(".")[0] for n in heads}) or None,
        "base_model_name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None) or None,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
        **cfg.to_peft(),
    }
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "adapter_config.json", config)
    atomic_write(path / "adapter_model.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))


def peft_common(c: dict) -> dict:
    """The config fields every LoRA variant reads from a peft adapter_config.json; BenchError on a peft option
    that none of them implements."""
    for key in ("bias", "rank_pattern", "alpha_pattern", "layers_to_transform", "target_parameters",
                "lora_bias", "exclude_modules", "trainable_token_indices", "layer_replication"):
        need(c.get(key) in (None, False, {}, [], "none"), f"peft option {key}={c.get(key)!r} is not supported")
    tm = c.get("target_modules")
    return dict(r=int(c["r"]), alpha=float(c["lora_alpha"]), dropout=float(c.get("lora_dropout") or 0.0),
                target_modules=tm if isinstance(tm, str) else tuple(tm), rslora=bool(c.get("use_rslora")))


def read_peft(cls: type[LoraConfig]):
    """PeftFormat.read for LoRA variant `cls`: adapter_config.json -> cls' config, None if another variant's."""
    def read(c: dict, path: Path) -> LoraConfig | None:
        if c.get("peft_type") != "LORA":
            return None
        try:
            return cls.from_peft(c)
        except BenchError as e:
            raise BenchError(f"{path}: {e}") from None
    return read


def config_from_peft(path: Path) -> LoraConfig:
    """A plain LoRA config from a peft adapter folder (BenchError if it holds a variant or another method)."""
    c = json.loads((path / "adapter_config.json").read_text())
    cfg = read_peft(LoraConfig)(c, path)
    need(cfg is not None, f"{path}: adapter_config.json is not a plain LoRA adapter ({c.get('peft_type')}, "
                          f"use_dora={c.get('use_dora')}, init_lora_weights={c.get('init_lora_weights')!r})")
    return cfg


@torch.no_grad()
def load_peft_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    file = path / "adapter_model.safetensors"
    need(file.exists(), f"{path}: no adapter_model.safetensors")
    sd = load_file(str(file))
    layers = dict(lora_layers(model))
    merged = [n for n, m in layers.items() if m.merged]
    need(not merged, f"{file}: cannot load into merged LoRA layers ({', '.join(merged[:3])}); unmerge first")
    names = shared_with(model)
    seen = set()  # (layer, tensor key)
    for key, t in sd.items():
        need(key.startswith(PEFT_PREFIX), f"{file}: unexpected key {key!r}")
        name = key[len(PEFT_PREFIX):]
        m = re.fullmatch(r"(.+)\.(lora_A|lora_B|lora_magnitude_vector)(?:\.default)?(\.weight)?", name)
        if m and m.group(1) in layers:
            own = layers[m.group(1)].peft_tensors()
            part = m.group(2) + (".weight" if m.group(2) != "lora_magnitude_vector" else "")
            need(part in own, f"{file}: {name}: the model's {type(layers[m.group(1)]).__name__} has no {part}")
            dst = own[part]
            seen.add((m.group(1), part))
        elif m:
            raise BenchError(f"{file}: {m.group(1)} is not a LoRA layer of this model")
        else:
            name = name.replace(".modules_to_save.default.", ".")
            try:
                dst = model.get_parameter(name)
            except AttributeError:
                raise BenchError(f"{file}: {name} is not a parameter of this model") from None
            # peft keeps such a module as its own copy; writing into a tied tensor would move its twin too
            others = [n for n in names.get(id(dst), []) if n != name]
            need(not others, f"{file}: {name} is shared with {', '.join(others)} (tied weights) in this model; "
                             f"loading it would overwrite both")
        need(dst.shape == t.shape, f"{file}: {name} has shape {tuple(t.shape)}, the model expects {tuple(dst.shape)}")
        dst.copy_(t)
    missing = [f"{n}.{k}" for n, m in layers.items() for k in m.peft_tensors() if (n, k) not in seen]
    need(not missing, f"{file}: missing LoRA weights for {', '.join(missing[:4])}")


def peft_format(cls: type[LoraConfig]) -> PeftFormat:
    """peft's adapter format for LoRA variant `cls` (LoRA, DoRA, PiSSA share the writer and the loader)."""
    return PeftFormat(save=save_peft, read=read_peft(cls), load=load_peft_weights)


# ---- peft's counterpart and the memory model --------------------------------------------------------------------

def peft_config(cfg: LoraConfig, model: nn.Module):
    """peft.LoraConfig equivalent to `cfg` on `model` (targets resolved; GPT-2's Conv1D is fan_in_fan_out)."""
    import peft

    targets = resolved_targets(model, cfg.target_modules)
    conv = any(isinstance(m, Conv1D) for _, m in find_targets(model, cfg.target_modules))
    is_cls = any(n in HEAD_NAMES for n, _ in model.named_children())
    return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.rslora,
                           target_modules=targets if isinstance(targets, str) else list(targets),
                           fan_in_fan_out=conv, task_type="SEQ_CLS" if is_cls else "CAUSAL_LM", **cfg.to_peft())


def memory_branch(layer: LoraLayer):
    """bench.memory's hook: unmerged, the branch saves its (dropped-out) input for grad A and s * A x for grad B;
    merged, it adds nothing."""
    if layer.merged:
        return layer.base, None
    r, p = layer.r, getattr(layer.dropout, "p", 0.0)

    def branch(tape, x, out, fi: int, fo: int):
        tape.save(tape.dropout(x, p, fi))                   # (..., in): grad A
        tape.save(tape.new(r, True))                        # (..., r): grad B
        return tape.new(fo, True)                           # base + B(...)
    return layer.base, branch


SPEC = MethodSpec(
    LoraConfig,
    presets={"lora": {"r": LORA_R, "alpha": LORA_ALPHA},
             "rslora": {"r": LORA_R, "alpha": LORA_ALPHA, "rslora": True}},   # scaling alpha / sqrt(r)
    tiny={"lora": {"r": 4}, "rslora": {"r": 4, "rslora": True},
          "lora_head": {"r": 4, "target_modules": ("lm_head",)},
          "lora_qv_head": {"r": 4, "target_modules": ("q_proj", "v_proj", "lm_head")}},
    layers={LoraLayer: memory_branch},
    save_format=peft_format(LoraConfig),
    peft=peft_config,
)
