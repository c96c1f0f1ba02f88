"""One parser and one range check for every value a user sets: `--set` of a group (bench repro) or of a method
(bench memory), method configs (make_config / apply) and the memory command's numbers.

    rng = Range(0, 1, hi_open=True)                    # 0 <= x < 1
    check_value("lora: dropout", 0.5, rng)             # ok
    check_value("lora: dropout", float("nan"), rng)    # BenchError: lora: dropout: got nan; accepts ...

Every number is checked for finiteness (NaN and +-inf are never accepted) and for its declared range. A field
without a declared range gets the default of its type: an int is a count (1 .. 10^7), a float a positive
magnitude (> 0 and <= 10^6). A field that accepts 0, a negative value or more than the default declares it, and
a Range that accepts 0 says what 0 means (`zero=`), so every accepted value has a documented meaning.
Errors are one line: the setting, what it got, what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass

from bench import BenchError

HUGE_INT = 10**7       # past any step count, batch or row count this suite can run
HUGE_FLOAT = 1e6


@dataclass(frozen=True)
class Range:
    """The numbers a setting accepts: lo <= x <= hi (strict where `*_open`); None = unbounded on that side.
    `zero`: what 0 means, required when 0 is accepted (e.g. "no warmup")."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    zero: str = ""

    def __post_init__(self):
        if self.accepts(0) and not self.zero:
            raise ValueError(f"{self}: a range that accepts 0 must say what 0 means (zero=...)")

    def accepts(self, x: float) -> bool:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return False
        return True

    def text(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        out = "a finite number " + " and ".join(parts) if parts else "a finite number"
        return out + (f" (0: {self.zero})" if self.zero else "")


COUNT = Range(1, HUGE_INT)                                      # the default of an int setting
MAGNITUDE = Range(0, HUGE_FLOAT, lo_open=True)                  # the default of a float setting
SEED = Range(0, 2**31 - 1, zero="seed 0")
NONNEG_COUNT = Range(0, HUGE_INT, zero="none")                  # e.g. warmup steps, extra grid points
FRACTION = Range(0, 1, lo_open=True)                            # (0, 1]
PROBABILITY = Range(0, 1, hi_open=True, zero="off")             # dropout: [0, 1)
LEARNING_RATE = Range(0, 1e3, lo_open=True)
OUTLIER_THRESHOLD = Range(0, HUGE_FLOAT, zero="no outlier decomposition (as bitsandbytes)")  # LLM.int8()'s |x|
TOKEN_ID = Range(0, HUGE_INT, zero="token id 0")                # a vocabulary index (checked against the model later)


def default_range(hint) -> Range | None:
    """The default Range of a field of type `hint` (int -> COUNT, float -> MAGNITUDE); None for non-numbers."""
    base = scalar_type(hint)
    return COUNT if base is int else MAGNITUDE if base is float else None


def scalar_type(hint):
    """The scalar type under Optional[...] and tuple[...]: tuple[int, ...] | None -> int; bool stays bool."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        nums = [scalar_type(a) for a in args if a is not type(None)]
        for t in (float, int):                       # int | float reads as float
            if t in nums:
                return t
        return nums[0] if nums else None
    if origin is tuple:
        return scalar_type(args[0]) if args else str
    return hint


def check_value(where: str, value, rng: Range | None) -> None:
    """BenchError (one line) unless every number in `value` (a number, a tuple of numbers, None or a string:
    those pass) is accepted by `rng`."""
    if rng is None or value is None or isinstance(value, (str, bool)):
        return
    items = tuple(_flat(value))
    for x in items:
        if isinstance(x, (str, bool)) or x is None:
            continue
        if not rng.accepts(x):
            got = repr(value) if len(items) == 1 else f"{x!r} in {tuple(items)!r}"
            raise BenchError(f"{where}: got {got}; accepts {rng.text()}")


def _flat(value):
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def field_range(cls, name: str, ranges: dict | None = None) -> Range | None:
    """A dataclass field's Range: `ranges[name]`, else the field's metadata["range"], else its type's default."""
    if ranges and name in ranges:
        return ranges[name]
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if "range" in f.metadata:
        return f.metadata["range"]
    return default_range(typing.get_type_hints(cls)[name])


def check_fields(obj, where: str, ranges: dict | None = None, names=None) -> None:
    """Range-check the numeric fields of dataclass instance `obj` (all, or `names`): BenchError naming
    '<where>: <field>' on the first value out of range."""
    for f in dataclasses.fields(obj):
        if names is None or f.name in names:
            check_value(f"{where}{f.name}", getattr(obj, f.name), field_range(type(obj), f.name, ranges))


# ---------------------------------------------------------------------------------------------- parsing

_SCALARS = (bool, int, float, str)


def parse_value(text: str, hint, where: str):
    """`text` as a value of type `hint`: int, float, bool, str, None (in an Optional), or a tuple of those
    (comma-separated). Numbers are parsed as written ('nan' parses as a float: the range check rejects it).
    BenchError naming `where` otherwise; "... cannot be set with --set" for types no text can give."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        opts = sorted((a for a in args if a is not type(None)), key=lambda h: h is str)  # a list before a string
        for a in opts:
            try:
                return parse_value(text, a, where)
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
        return tuple(parse_value(p, item, where) for p in parts)
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


def settable(hint) -> bool:
    """True when `parse_value` can give a value of type `hint` from text."""
    try:
        parse_value("1", hint, "")
        return True
    except BenchError as e:
        return "cannot be set" not in str(e)


def parse_item(item: str, hints: dict, where: str) -> tuple[str, object]:
    """One `key=value` item against a dataclass's type hints -> (key, parsed value). BenchError (one line,
    naming the keys) on a malformed item or an unknown key."""
    key, eq, text = item.partition("=")
    key = key.strip()
    keys = ", ".join(sorted(k for k, h in hints.items() if settable(h)))
    if not eq or not key:
        raise BenchError(f"--set takes key=value, got {item!r}; keys for {where}: {keys}")
    if key not in hints:
        raise BenchError(f"--set {key}: {where} has no setting {key!r}; keys: {keys}")
    return key, parse_value(text.strip() if scalar_type(hints[key]) is not str else text, hints[key], f"--set {key}")
