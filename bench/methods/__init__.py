"""Parameter-efficient fine-tuning methods on plain torch.nn, over any transformers model (no peft import).

    cfg = make_config("lora", r=8, alpha=16, target_modules=("c_attn",))
    model = apply(model, cfg)            # validates first (BenchError, model untouched), freezes, injects
    n_train, n_total = trainable_parameters(model)
    save_trained(model, "out/adapter"); model2 = load_trained(base2, "out/adapter")

Methods (one file each, declaring its config and a `SPEC`, bench.methods.registry.MethodSpec; registered below
with one line each, in the order of every table):
    full, lora, adapters, prefix, prompt, ptuning, bitfit, top_k_layers, dora, pissa, qlora
DoRA, PiSSA and QLoRA are LoRA variants (LoraConfig subclasses sharing its layer, targets and counting): DoRA
adds a trained magnitude vector, PiSSA initialises A, B from the weight's top singular triplets, QLoRA puts
LoRA on an NF4 base. LoRA+ changes the optimizer only (bench.methods.loraplus, TrainConfig.loraplus_ratio).
LoRA, adapters and the selective methods modify the model in place and return it; prefix, prompt and
ptuning return a thin wrapper (bench.methods.wrapper.MethodWrapper) that forwards .config, .generate and
every other attribute to the base model. `.logits` always cover the original input positions (B, T, ...);
`.loss` equals peft's (for prompt/ptuning, peft's logits also include the n virtual positions:
`virtual_logits=True` restores that). The applied config is kept as `model.bench_method`.

Save formats (each method's SPEC.save_format): LoRA, DoRA and PiSSA write peft's format (adapter_config.json +
adapter_model.safetensors), loadable by peft's PeftModel.from_pretrained and vice versa. The others (QLoRA too)
write method.json (method name and config) + trained.safetensors (the trained tensors only).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from bench import BenchError
from bench.methods import adapters, dora, full, lora, pissa, prefix, prompt, ptuning, qlora, selective
from bench.methods.common import MethodConfig, need
from bench.methods.lora import merge, merge_and_unload, unmerge
from bench.methods.multitask import multi_lora, prompt_bank  # noqa: F401  (multi-task serving, see its doc)
from bench.methods import registry
from bench.methods.registry import REGISTRY, register
from bench.methods.wrapper import MethodWrapper

register(full.SPEC)
register(lora.SPEC)
register(adapters.SPEC)
register(prefix.SPEC)
register(prompt.SPEC)
register(ptuning.SPEC)
register(selective.BITFIT)
register(selective.TOP_K_LAYERS)
register(dora.SPEC)
register(pissa.SPEC)
register(qlora.SPEC)


# name -> config class, read from the registry at each use (a method registered later shows up)
METHODS: Mapping[str, type[MethodConfig]] = registry.CONFIGS

__all__ = ["METHODS", "MethodConfig", "make_config", "apply", "trainable_parameters", "frozen_parameter_names",
           "save_trained", "load_trained", "merge", "unmerge", "merge_and_unload", "fold", "method_of"]


def make_config(name: str, **kwargs) -> MethodConfig:
    """The config of method `name` with the given fields; BenchError on an unknown name, field or value."""
    if name not in METHODS:
        raise BenchError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    cls = METHODS[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in kwargs if k not in fields]
    need(not unknown, f"{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    cfg = cls(**kwargs)
    cfg.check_types()
    cfg.check_fields()
    cfg.check_ranges()
    return cfg


def method_of(model: nn.Module) -> MethodConfig | None:
    return getattr(model, "bench_method", None)


def apply(model: nn.Module, config: MethodConfig) -> nn.Module:
    """Validate `config` against `model` (BenchError, nothing modified), then freeze the base and inject the
    method. Returns the model to train (the same object, or a wrapper for prefix/prompt/ptuning)."""
    need(isinstance(config, MethodConfig), f"apply() takes a method config (make_config), got {type(config).__name__}")
    need(config.name in METHODS, f"unknown method {config.name!r}; choose one of {', '.join(METHODS)}")
    old = method_of(model)
    need(old is None, f"this model already has method {getattr(old, 'name', old)!r} applied; start from a fresh model")
    config.check_types()
    config.validate(model)
    config.check_ranges()
    out = config.inject(model)
    out.bench_method = config
    return out


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared (tied) tensors count once. Works on the meta device."""
    params = list(model.parameters())                                     # deduplicated by nn.Module
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def frozen_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def fold(model: nn.Module) -> nn.Module:
    """Prefix / P-tuning: replace the training-time reparameterisation by the plain tensor it produces."""
    need(hasattr(model, "fold") and isinstance(model, MethodWrapper), "fold() applies to prefix and ptuning models")
    return model.fold()


def _trained_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters, plus a wrapper's own tensors (e.g. a folded prefix)."""
    out = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if isinstance(model, MethodWrapper):
        out.update({k: v for k, v in model.state_dict().items() if not k.startswith("base.")})
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def save_trained(model: nn.Module, path: str | Path) -> Path:
    """Write only the trained part of `model` into folder `path` (see the module doc for the formats)."""
    from safetensors.torch import save_file

    from bench.fileio import atomic_write, atomic_write_json

    cfg, path = method_of(model), Path(path)
    need(cfg is not None, "save_trained: this model has no method applied")
    fmt = registry.get(cfg.name).save_format
    if fmt is not None:
        fmt.save(model, cfg, path)
        return path
    tensors = _trained_tensors(model)
    need(bool(tensors), "save_trained: nothing to save (no trainable parameters)")
    path.mkdir(parents=True, exist_ok=True)
    folded = bool(getattr(model, "folded", False)) if isinstance(model, MethodWrapper) else False
    atomic_write_json(path / "method.json", {"method": cfg.name, "config": cfg.to_dict(), "folded": folded})
    atomic_write(path / "trained.safetensors", lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    return path


def _same_settings(saved: MethodConfig, mine: MethodConfig, path: Path) -> None:
    for field, want, have in saved.differences(mine)[:1]:
        raise BenchError(f"load_trained: {path} was saved with {saved.name} {field}={want!r}, the model has "
                         f"{field}={have!r}; load it into a plain model to get the saved settings")


def _read_peft(path: Path):
    """(our config, its format) of the peft adapter folder `path`: the one registered method that reads it."""
    c = json.loads((path / "adapter_config.json").read_text())
    found = [(cfg, s.save_format) for s in REGISTRY.values() if s.save_format is not None
             for cfg in [s.save_format.read(c, path)] if cfg is not None]
    need(len(found) == 1, f"load_trained: {path}: adapter_config.json ({c.get('peft_type')}) is read by "
                          f"{len(found)} of our methods ({', '.join(f.name for f, _ in found) or 'none'}), not one")
    return found[0]


def load_trained(model: nn.Module, path: str | Path) -> nn.Module:
    """Load what save_trained (or peft, for LoRA) wrote. On a plain model the saved config is applied first;
    on a model that already has the method, the weights are loaded after checking that every setting that
    changes the function (all config fields but the method's `load_ignores`, e.g. LoRA's alpha and rslora)
    equals the saved one: BenchError naming the first difference otherwise, nothing loaded. Returns the model."""
    from safetensors.torch import load_file

    path = Path(path)
    need(path.is_dir(), f"load_trained: {path} is not a folder")
    if (path / "adapter_config.json").exists():                          # peft's format (ours or peft's)
        saved, fmt = _read_peft(path)
        if method_of(model) is None:
            model = apply(model, saved)
        need(method_of(model).name == saved.name, f"load_trained: {path} holds {saved.name!r}, the model has "
                                                  f"{method_of(model).name!r}")
        _same_settings(saved, method_of(model), path)
        fmt.load(model, path)
        return model
    need((path / "method.json").exists(), f"load_trained: {path} has neither method.json nor adapter_config.json")
    meta = json.loads((path / "method.json").read_text())
    saved_cfg = make_config(meta["method"], **meta["config"])
    if method_of(model) is None:
        model = apply(model, saved_cfg)
        if meta.get("folded"):
            model.fold()
    need(method_of(model).name == meta["method"], f"load_trained: {path} holds {meta['method']!r}, the model has "
                                                  f"{method_of(model).name!r}")
    _same_settings(saved_cfg, method_of(model), path)
    saved = load_file(str(path / "trained.safetensors"))
    own = dict(model.named_parameters()) | (model.state_dict(keep_vars=True) if isinstance(model, MethodWrapper) else {})
    with torch.no_grad():
        for k, t in saved.items():
            need(k in own, f"load_trained: {k} is not a tensor of this model")
            need(own[k].shape == t.shape, f"load_trained: {k} has shape {tuple(t.shape)}, the model expects "
                                          f"{tuple(own[k].shape)}")
            own[k].copy_(t)
    missing = [k for k in _trained_tensors(model) if k not in saved]
    need(not missing, f"load_trained: {path} lacks {', '.join(missing[:4])}")
    return model
