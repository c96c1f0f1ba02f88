"""What every group's report writer needs: pick rows, format numbers, write markdown tables, draw figures.

Rows are selected the way claims select them (bench.claims W/R): plain columns by name, settings from the
params JSON as "params.<key>":

    sel = select(df, "lora_trainable_params", method="lora", **{"params.r": 8})
    value(df, "l1_scaling_abs_err")            # first matching value, nan when none
    md_table(["rank", "params"], [[8, num(294912)]])
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from bench.fileio import atomic_savefig
from bench.schema import param

MISSING = "-"     # how a table shows a value that was not measured


def params_of(row_params: str | None) -> dict:
    """The params JSON of one row as a dict ({} when empty)."""
    return json.loads(row_params) if isinstance(row_params, str) and row_params else {}


def select(df: pd.DataFrame, metric: str | Sequence[str] | None = None, **where) -> pd.DataFrame:
    """Rows of `metric` (a name or several; None: any) whose columns equal `where`; keys "params.<k>" compare
    the setting k from the params JSON. An absent column or setting matches nothing."""
    d = df
    if metric is not None:
        d = d[d["metric"].isin([metric] if isinstance(metric, str) else list(metric))]
    for key, want in where.items():
        if d.empty:
            break
        if key.startswith("params."):
            got = param(d, key.split(".", 1)[1])
        elif key in d.columns:
            got = d[key]
        else:
            return d.iloc[0:0]
        d = d[got.map(lambda g, w=want: g == w)]
    return d


def value(df: pd.DataFrame, metric: str, agg: str = "first", **where) -> float:
    """One number from the matching rows: agg first / max / min / mean / sum; nan when no row matches."""
    v = select(df, metric, **where)["value"].astype(float)
    if v.empty:
        return math.nan
    return float(v.iloc[0]) if agg == "first" else float(getattr(v, agg)())


def params_where(df: pd.DataFrame, metric: str, **where) -> dict:
    """The settings of the first matching row ({} when none)."""
    rows = select(df, metric, **where)
    return params_of(rows["params"].iloc[0]) if len(rows) else {}


def with_params(df: pd.DataFrame, *keys: str) -> pd.DataFrame:
    """A copy of df with each params key as a column of its own (None where absent)."""
    d = df.copy()
    for k in keys:
        d[k] = param(d, k)
    return d


def finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x, digits: int = 4, unit: str = "") -> str:
    """A number for a table: integers with thousands separators, others to `digits` significant digits;
    unit="bytes" gives kB / MB / GB / TB (decimal); MISSING for None / nan."""
    if not finite(x):
        return MISSING
    x = float(x)
    if unit == "bytes":
        return fmt_bytes(x)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.{digits}g}" + (f" {unit}" if unit else "")


def fmt_bytes(x) -> str:
    """Bytes in decimal units (1 kB = 1000 B), three significant digits."""
    if not finite(x):
        return MISSING
    x = float(x)
    for u, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= f:
            return f"{x / f:.3g} {u}"
    return f"{x:.0f} B"


def pct(x, digits: int = 3) -> str:
    return f"{100 * float(x):.{digits}g}%" if finite(x) else MISSING


def md_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table; floats go through `num`, everything else through str."""
    def cell(v):
        return num(v) if isinstance(v, float) else str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- figures
def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write fig as PNG atomically (same bytes on a rerun) and close it."""
    out = atomic_savefig(path, fig)
    pyplot().close(fig)
    return out


def log_ticks(ax, values: Iterable[float], axis: str = "x", base: int = 2) -> None:
    """A log axis labelled exactly at `values` (ranks, parameter counts), no minor ticks to overlap them."""
    from matplotlib.ticker import FixedLocator, NullLocator
    vals = sorted({float(v) for v in values if finite(v) and float(v) > 0})
    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=base)
    a.set_major_locator(FixedLocator(vals))
    a.set_minor_locator(NullLocator())
    (ax.set_xticklabels if axis == "x" else ax.set_yticklabels)([_short(v) for v in vals])


def _short(v: float) -> str:
    """1500000 -> 1.5M, 64 -> 64."""
    for u, f in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= f:
            return f"{v / f:.3g}{u}"
    return f"{v:g}"
