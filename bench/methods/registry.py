"""The method registry: what the suite needs to know about a method, declared once, in the method's own module.

A method module ends with a `SPEC = MethodSpec(...)` beside its config dataclass, and bench/methods/__init__.py
registers it with one line, `register(<module>.SPEC)`. Everything that lists methods reads the registry:
make_config / apply, save_trained / load_trained, the presets (bench.methods.presets), `bench memory`'s method
choices, its memory model and its --validate cases (bench.fit, bench.memory), the methods benchmark
(reproductions/methods) and the peft parity tests (tests/methods/test_peft_parity.py). Registration order is the
order of every table.

The views below (`preset_names`, `tiny_cases`, ...) are read at each use, so a method registered later (a
plugin, a test's toy method) shows up everywhere without re-importing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import BenchError

if TYPE_CHECKING:
    from torch import nn

    from bench.methods.common import MethodConfig


@dataclass
class Virtual:
    """What a wrapper method does to the base model's step, for bench.memory's activation model."""

    prompt: int = 0            # virtual tokens prepended to the input (prompt tuning, P-tuning): T -> n + T
    prefix: int = 0            # virtual key/value positions in front of every layer's keys (prefix tuning)
    placeholder: bool = False  # P-tuning's template mode: the prompt replaces n input embeddings, T unchanged
    extra: float = 0.0         # bytes the wrapper's own trainable encoder saves (prefix MLP, P-tuning encoder)


# A layer hook gets a module the method put where a Linear was and returns (the module it wraps, a branch):
# branch(tape, x, out, fi, fo) -> out records on bench.memory's symbolic tape (tape.new / tape.save /
# tape.dropout / tape.nbytes) what the method's own computation saves for backward, given the wrapped Linear's
# input x (fi wide) and output out (fo wide); None when the module adds nothing to the step (e.g. merged).
Branch = Callable[[Any, Any, Any, int, int], Any]
LayerHook = Callable[["nn.Module"], "tuple[nn.Module, Branch | None]"]
# A wrapper hook gets the model apply() returned and gives (the base model inside, what the wrapper changes).
WrapperHook = Callable[["nn.Module"], "tuple[nn.Module, Virtual]"]


@dataclass(frozen=True)
class PeftFormat:
    """A method saved in peft's on-disk format: adapter_config.json + adapter_model.safetensors."""

    save: Callable[[nn.Module, MethodConfig, Path], None]     # write the folder
    read: Callable[[dict, Path], MethodConfig | None]         # adapter_config.json -> our config; None: not ours
    load: Callable[[nn.Module, Path], None]                   # the folder's tensors into an adapted model


@dataclass(frozen=True)
class MethodSpec:
    """Everything the suite knows about one method. Only `config` is required."""

    config: type[MethodConfig]
    # preset name -> make_config kwargs: the suite's standard settings (bench.methods.presets). None: one preset
    # named like the method, with the config's defaults. A second name is a variant (LoRA's "rslora").
    presets: Mapping[str, dict] | None = None
    # `bench memory --validate` cases: case name -> make_config kwargs small enough for the tiny CPU models
    tiny: Mapping[str, dict] = field(default_factory=dict)
    # bench.memory's activation model: module class this method adds -> its hook (see LayerHook, WrapperHook);
    # subclasses are found through their class' MRO, so a variant's layer may reuse its parent's hook
    layers: Mapping[type, LayerHook] = field(default_factory=dict)
    wrappers: Mapping[type, WrapperHook] = field(default_factory=dict)
    # None: save_trained writes method.json + trained.safetensors (our format, the trained tensors only)
    save_format: PeftFormat | None = None
    # peft's counterpart: (our config, the model it is applied to) -> the equivalent peft config; None where
    # peft has no such method. It imports peft itself (bench never imports peft at module level).
    peft: Callable[[MethodConfig, nn.Module], Any] | None = None
    # what peft's side does to the base model before get_peft_model (QLoRA: quantize it with bitsandbytes)
    peft_base: Callable[[MethodConfig, nn.Module], nn.Module] | None = None
    # apply() writes the frozen base weights in place (PiSSA's residual): code that shares one base's storage
    # between several adapted copies (the methods benchmark) must give this method a copy of its own
    rewrites_base: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    def preset_map(self) -> Mapping[str, dict]:
        return self.presets if self.presets is not None else {self.name: {}}


REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add `spec` to the registry (BenchError if its name, or one of its preset names, is taken)."""
    from bench.methods.common import MethodConfig

    if not (isinstance(spec.config, type) and issubclass(spec.config, MethodConfig) and spec.name):
        raise BenchError(f"register: {spec.config!r} is not a MethodConfig subclass with a name")
    if spec.name in REGISTRY:
        raise BenchError(f"register: method {spec.name!r} is already registered")
    taken = [p for p in spec.preset_map() if p in preset_names()]
    if taken:
        raise BenchError(f"register: {spec.name}: preset name {taken[0]!r} is taken")
    REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy method undo it with this)."""
    REGISTRY.pop(name, None)


def get(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise BenchError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ---- live views: every list of methods in the suite -----------------------------------------------------------

class _LiveMap(Mapping):
    """A read-only mapping recomputed from the registry at each use."""

    def __init__(self, build: Callable[[], dict]):
        self._build = build

    def __getitem__(self, key):
        return self._build()[key]

    def __iter__(self) -> Iterator:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return repr(self._build())


class _LiveNames(Sequence):
    """A read-only tuple of names recomputed from the registry at each use."""

    def __init__(self, build: Callable[[], Sequence[str]]):
        self._build = build

    def __getitem__(self, i):
        return tuple(self._build())[i]

    def __len__(self) -> int:
        return len(tuple(self._build()))

    def __contains__(self, x) -> bool:
        return x in tuple(self._build())

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._build()))

    def __repr__(self) -> str:
        return repr(tuple(self._build()))


def _ensure_loaded() -> None:
    import bench.methods  # noqa: F401  (its __init__ registers the built-in methods)


def _standard() -> dict[str, tuple[str, dict]]:
    _ensure_loaded()
    return {p: (s.name, dict(kw)) for s in REGISTRY.values() for p, kw in s.preset_map().items()}


def _tiny() -> dict[str, tuple[str, dict]]:
    _ensure_loaded()
    return {case: (s.name, dict(kw)) for s in REGISTRY.values() for case, kw in s.tiny.items()}


def _with_peft() -> tuple[str, ...]:
    _ensure_loaded()
    return tuple(n for n, s in REGISTRY.items() if s.peft is not None)


STANDARD = _LiveMap(_standard)        # preset name -> (method name, make_config kwargs)
TINY = _LiveMap(_tiny)                # bench memory --validate case -> (method name, make_config kwargs)
PRESET_NAMES = _LiveNames(lambda: tuple(_standard()))
METHOD_NAMES = _LiveNames(lambda: (_ensure_loaded(), tuple(REGISTRY))[1])
CONFIGS = _LiveMap(lambda: {n: s.config for n, s in REGISTRY.items()})    # bench.methods.METHODS
WITH_PEFT = _LiveNames(_with_peft)    # methods that have a peft counterpart (parity tests, methods benchmark)


def preset_names() -> tuple[str, ...]:
    return tuple(p for s in REGISTRY.values() for p in s.preset_map())


# ---- lookups for bench.memory and save/load ---------------------------------------------------------------------

def _by_class(obj, table: str):
    hooks = {cls: hook for s in REGISTRY.values() for cls, hook in getattr(s, table).items()}
    for cls in type(obj).__mro__:
        if cls in hooks:
            return hooks[cls]
    return None


def layer_hook(module: nn.Module) -> LayerHook | None:
    """The memory-model hook of the method that added `module`, or None for a plain module."""
    return _by_class(module, "layers")


def wrapper_hook(model: nn.Module) -> WrapperHook | None:
    return _by_class(model, "wrappers")


def peft_model(config: MethodConfig, model: nn.Module):
    """peft's counterpart of `config` applied to `model` (peft.get_peft_model); BenchError where peft has none."""
    spec = get(config.name)
    if spec.peft is None:
        raise BenchError(f"{config.name}: peft has no counterpart of this method")
    import peft  # the reference implementation, imported only when asked for

    if spec.peft_base is not None:
        model = spec.peft_base(config, model)
    return peft.get_peft_model(model, spec.peft(config, model))
