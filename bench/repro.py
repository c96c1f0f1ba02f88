"""What the CLI hands a reproduction, and how it finds one.

A reproduction group is a package `reproductions/<group>/` (settings.py, the run's modules, report.py) whose
`__init__.py` exports:
    GROUP   = "lora"                       # results/<group>/, tox -e repro-<group>
    CLAIMS  = ("L1", "L2", ...)            # claim IDs it measures (bench.claims)
    REGRESS = [("metric_glob", atol, rtol[, "reason"]), ...]   # bands for `bench regress` (smoke profile)
    TAKES_MODEL = False                    # optional: the group measures fixed configs and refuses --model
    def run(ctx: RunContext) -> Recorder   # measure; rows go through bench.schema.Recorder
    def report(out_dir: Path) -> None      # write report.md and PNGs from the stored CSVs
The CLI calls run(), saves the Recorder atomically, calls report(), then regenerates results/README.md.
"""

from __future__ import annotations

import importlib
import os
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from bench import BenchError
from bench.profiles import Profile
from bench.schema import Recorder

BENCHMARK_GROUPS = ("methods",)      # groups that measure no claim (supporting benchmarks)
# groups whose claims have no verdict rule yet: their rows are reported, not decided (decoder: SmolLM2, issue 35)
UNDECIDED_GROUPS = ("decoder",)


def _groups() -> tuple[str, ...]:
    """Every group named by the claims registry, in the registry's order, then the groups without verdict rules,
    then the benchmark-only groups."""
    from bench.claims import GROUPS
    return tuple(dict.fromkeys(list(GROUPS) + list(UNDECIDED_GROUPS) + list(BENCHMARK_GROUPS)))


REPRO_GROUPS = _groups()


@dataclass
class RunContext:
    profile: Profile
    seeds: tuple[int, ...]
    out_dir: Path
    model: str | None = None          # --model: ladder rung, local checkpoint folder, or hub id
    options: dict = field(default_factory=dict)

    def recorder(self, group: str, claims) -> Recorder:
        return Recorder(group=group, profile=self.profile.name, out_dir=self.out_dir, claims=list(claims))

    @staticmethod
    def progress(iterable=None, **kw):
        """A tqdm bar (stderr); quiet when BENCH_NO_PROGRESS=1 (tests)."""
        kw.setdefault("disable", os.environ.get("BENCH_NO_PROGRESS") == "1")
        kw.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kw)


def load_group(group: str):
    if group not in REPRO_GROUPS:
        raise BenchError(f"unknown reproduction group {group!r}; choose one of {', '.join(REPRO_GROUPS)}")
    try:
        return importlib.import_module(f"reproductions.{group}")
    except ModuleNotFoundError as e:
        if e.name == f"reproductions.{group}":
            raise BenchError(f"reproduction group {group!r} is not implemented yet") from None
        raise


def group_settings(module) -> dict:
    """A group's settings table, profile name -> settings dataclass (the package's SETTINGS); {} when it has none."""
    table = getattr(module, "SETTINGS", None)
    if not isinstance(table, dict) or not all(is_dataclass(v) for v in table.values()):
        return {}
    return table


_SCALARS = (bool, int, float, str)


def _parse_value(text: str, hint, where: str):
    """`text` as a value of type `hint`: int, float, bool, str, None (in an Optional), or a tuple of those
    (comma-separated). BenchError naming `where` otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() == "none" and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _parse_value(text, a, where)
            except BenchError as e:
                errors.append(str(e))
        raise BenchError(errors[0] if errors else f"{where}: cannot parse {text!r}")
    if origin is tuple:
        item = args[0] if args else str
        if len(args) > 1 and args[1] is not Ellipsis:
            raise BenchError(f"{where}: a fixed-length tuple setting cannot be set with --set")
        if typing.get_origin(item) is not None or item not in _SCALARS:
            raise BenchError(f"{where}: a tuple of {getattr(item, '__name__', item)} cannot be set with --set")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(_parse_value(p, item, where) for p in parts)
    if hint is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise BenchError(f"{where}: expected true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text.strip())
        except ValueError:
            raise BenchError(f"{where}: expected {hint.__name__}, got {text!r}") from None
    if hint is str:
        return text
    raise BenchError(f"{where}: a setting of type {getattr(hint, '__name__', hint)} cannot be set with --set")


def parse_sets(module, group: str, profile: str, sets: list[str] | None) -> dict:
    """`--set key=value` items parsed against the group's settings dataclass (see group_settings) into
    {field: value}, for ctx.options["settings"]. BenchError (one line, naming the allowed keys) on a bad item."""
    if not sets:
        return {}
    table = group_settings(module)
    if profile not in table:
        raise BenchError(f"{group}: has no settings that --set can change")
    cls = type(table[profile])
    hints = typing.get_type_hints(cls)
    allowed = sorted(f.name for f in fields(cls) if _settable(hints[f.name]))
    out = {}
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BenchError(f"--set takes key=value, got {item!r}; keys for {group}: {', '.join(allowed)}")
        if key not in hints:
            raise BenchError(f"--set {key}: {group} has no setting {key!r}; keys: {', '.join(allowed)}")
        out[key] = _parse_value(text, hints[key], f"--set {key}")
    return out


def _settable(hint) -> bool:
    try:
        _parse_value("1", hint, "")
        return True
    except BenchError as e:
        return "cannot be set" not in str(e)


def settings_with_overrides(ctx: RunContext, settings: dict, group: str):
    """The profile's settings dataclass with ctx.options["settings"] (field -> value) applied on top.

    Unknown fields are a BenchError naming the valid ones; lists become tuples (settings are frozen)."""
    base = settings[ctx.profile.name]
    over = dict((ctx.options or {}).get("settings", {}))
    known = {f.name for f in fields(base)}
    bad = sorted(set(over) - known)
    if bad:
        raise BenchError(f"{group}: unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(known))}")
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})
