"""`bench memory`'s inputs: the method and its --set options, and memory sizes such as 24GiB."""

from __future__ import annotations

import re
import typing

from bench import BenchError
from bench.values import parse_item

def method_choices() -> tuple[str, ...]:
    """The --method names: every registered method's presets (read when asked: the registry imports torch, which
    `bench --help` should not)."""
    from bench.methods.registry import PRESET_NAMES
    return tuple(PRESET_NAMES)
UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as '24GiB', '80GB', '512 MiB' (GB = 10^9 as on GPU spec sheets, GiB = 2^30)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?b)\s*", str(text), flags=re.IGNORECASE)
    if not m or m.group(2).lower() not in UNITS:
        raise BenchError(f"memory: cannot read memory size {text!r}; write e.g. 24GiB, 80GB or 512MiB")
    n = float(m.group(1)) * UNITS[m.group(2).lower()]
    if n <= 0:
        raise BenchError(f"memory: memory size must be > 0, got {text!r}")
    return int(n)


def method_options(method: str, sets: list[str]) -> tuple[str, dict]:
    """(registry name, fields) from --method and --set key=value (lists comma-separated). `method` is a
    registered method (its config's defaults) or a variant preset of one (bench.methods.registry.STANDARD): a
    variant brings the fields by which it differs from its method's own preset (LoRA's MethodSpec declares
    "rslora" as lora's preset + rslora=True, so `--method rslora` = lora with rslora=True). --set goes on top.
    Values are parsed by bench.values (one parser for every --set); unknown fields fail here, values out of
    range in make_config (BenchError, one line)."""
    from bench.methods.registry import REGISTRY, STANDARD   # here, not at import: it imports torch
    if method in REGISTRY:
        name, out = method, {}
    elif method in STANDARD:
        name, kw = STANDARD[method]
        own = STANDARD[name][1] if name in STANDARD and STANDARD[name][0] == name else {}
        out = {k: v for k, v in kw.items() if k not in own or own[k] != v}
    else:
        raise BenchError(f"memory: unknown method {method!r}; choose one of {', '.join(method_choices())}")
    hints = {k: h for k, h in typing.get_type_hints(REGISTRY[name].config).items()
             if k not in ("name", "paper", "load_ignores")}
    for item in sets or []:
        key = item.partition("=")[0].strip()
        if key and "=" in item and key not in hints:
            raise BenchError(f"memory: {method}: unknown option {key!r}; valid: {', '.join(hints)}")
        key, value = parse_item(item, hints, f"memory {method}")
        out[key] = value
    # a field that takes one string or a list of names (LoRA's target_modules): one entry with regex
    # characters is a regex
    targets = out.get("target_modules")
    if str in typing.get_args(hints.get("target_modules")) and isinstance(targets, tuple) and len(targets) == 1 \
            and re.search(r"[.*+?\[\]()|\\^$]", targets[0]):
        out["target_modules"] = targets[0]
    return name, out
