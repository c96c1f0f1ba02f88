"""One result schema for every harness.

A run writes, into its group's folder (e.g. `results/lora/`):
- `results.csv`: one row per deterministic measurement (counts, losses, accuracies, bytes). The same
  command twice on the same machine gives the same file.
- `timings.csv`: same columns, for measurements that depend on the wall clock or the process
  (step times, latencies, peak RSS). They vary between runs by nature, so they live apart.
- `meta.json`: the run's metadata (claims, profile, start/end time, command line, load average, and the
  fingerprint of each rule the group decides, `bench.prereg`: was it fixed before the run?).

Every row carries model (with its weights' sha256 and the data's version, `bench.provenance`), data,
seed, scale, package versions, git commit and hardware, so a row read on its own still says where it came
from. `params` holds settings only (the row's identity, with claim, metric, model, data, method and seed);
anything that depends on a measurement goes into `info`, so a run on another CPU finds the same rows. All writes are atomic (`bench.fileio`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import envinfo, prereg, provenance
from bench.fileio import atomic_write, atomic_write_json

COLUMNS = [
    "claim",      # claim ID from the registry (L2, Q4, ...), or "-" for supporting measurements
    "metric",     # what was measured, snake_case (e.g. trainable_params, val_accuracy)
    "value",      # the number (float; NaN when a run diverged or a value is undefined)
    "unit",       # params, bytes, s, accuracy, ppl, ratio, ...
    "model",      # ladder rung name, checkpoint path, hub id, or a config name like gpt3-175b(meta)
    "data",       # dataset / task name, or "-"
    "method",     # full, lora, rslora, adapters, prefix, prompt, ptuning, bitfit, ..., or "-"
    "seed",       # integer seed, -1 where no randomness is involved
    "scale",      # exact | toy | real | paper
    "params",     # JSON of the settings that identify the row (rank, lr, dtype, ...), sorted keys; settings only
    "info",       # JSON of annotations that depend on measurement (a spread, a selected lr, a calibrated scale)
    "profile",    # smoke | cpu | gpu
    "versions",   # package versions
    "git_commit",
    "hardware",
    "model_sha256",  # sha256 of the base model's weights ("-": a config without weights); bench.provenance
    "data_version",  # world, world seed and ladder version of the rung's data ("-" when not from a rung)
]
# Columns that files written before they existed lack; read as "" (unknown).
OPTIONAL = ("info", "model_sha256", "data_version")
# Keys that name something measured; Recorder.add refuses them in params (they go into info).
MEASURED_KEYS = frozenset({"spread", "selected", "best_lora_lr", "handwritten", "plant_scale", "outlier_dims"})
# A row's identity: settings only, never a measured value (bench.regress compares rows by it).
KEY = ["claim", "metric", "model", "data", "method", "seed", "params"]
SCALES = ("exact", "toy", "real", "paper")  # real: a checkpoint somebody else pretrained, small (MiniLM)


def _params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str, separators=(",", ":")) if params else "{}"


@dataclass
class Recorder:
    """Collects rows for one run of one reproduction group and saves them atomically.

    >>> rec = Recorder(group="lora", profile="cpu", out_dir=Path("results/lora"), claims=["L2"])
    >>> rec.add("L2", "trainable_params", 4718592, unit="params", model="gpt3-175b(meta)",
    ...         scale="exact", method="lora", params={"r": 1, "targets": "q,v"})
    >>> rec.save()

    `params` are settings (they identify the row and must be the same on every machine); `info` carries what
    was measured along the way (e.g. {"spread": 0.004}), shown in reports but never part of a row's identity.
    """

    group: str
    profile: str
    out_dir: Path
    claims: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    timing_rows: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    notes: dict = field(default_factory=dict)
    threads: int | None = None      # torch threads of the run when not the suite's setting (envinfo.hardware)

    rule_fingerprints: dict = field(default_factory=dict)   # filled when the run starts (bench.prereg)

    def __post_init__(self):
        envinfo.git_commit()    # fix the commit (cached) when the run starts, not when its first row is added
        # the rules as they stand when the run starts: an edit of bench/claims.py during a run is not pre-registered
        self.rule_fingerprints = self.rule_fingerprints or prereg.fingerprints(self.group)

    def add(self, claim: str, metric: str, value, *, unit: str = "", model: str = "-", data: str = "-",
            method: str = "-", seed: int | None = None, scale: str = "toy", params: dict | None = None,
            info: dict | None = None, timing: bool = False) -> dict:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        measured = sorted(MEASURED_KEYS & set(params or {}))
        if measured:
            raise ValueError(f"{metric}: params are the row's identity (settings only); put {measured} in info")
        value = float(value) if value is not None else math.nan
        row = {
            "claim": claim, "metric": metric, "value": value, "unit": unit, "model": str(model),
            "data": data, "method": method, "seed": -1 if seed is None else int(seed), "scale": scale,
            "params": _params_json(params or {}), "info": _params_json(info or {}), "profile": self.profile,
            "versions": envinfo.package_versions(), "git_commit": envinfo.git_commit(),
            "hardware": envinfo.hardware(self.threads),
        }
        (self.timing_rows if timing else self.rows).append(row)
        return row

    def frame(self, timing: bool = False) -> pd.DataFrame:
        """The rows as a frame; model_sha256 / data_version are read when asked (the rung as it is now)."""
        df = pd.DataFrame(self.timing_rows if timing else self.rows, columns=COLUMNS)
        ident = self.base_models()
        df["model_sha256"] = df["model"].map(lambda m: ident[m]["sha256"])
        df["data_version"] = df["model"].map(lambda m: ident[m]["data_version"])
        return df

    def base_models(self) -> dict[str, dict[str, str]]:
        """{model: {"sha256", "data_version"}} for every model named in the rows (bench.provenance)."""
        return provenance.identities(r["model"] for r in self.rows + self.timing_rows)

    def save(self, extra_meta: dict | None = None) -> Path:
        """Write results.csv, timings.csv and meta.json into out_dir, each atomically."""
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_frame(out / "results.csv", self.frame())
        write_frame(out / "timings.csv", self.frame(timing=True))
        meta = {
            "group": self.group, "profile": self.profile, "claims": sorted(set(self.claims)),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_s": round(time.time() - self.started, 1), "command": " ".join(sys.argv),
            "versions": envinfo.package_versions(), "git_commit": envinfo.git_commit(),
            "hardware": envinfo.hardware(self.threads), "load_average_1m_at_end": envinfo.load_average(),
            "rows": len(self.rows), "timing_rows": len(self.timing_rows), "base_models": self.base_models(),
            "rule_fingerprint_scheme": prereg.SCHEME, "rule_fingerprints": dict(self.rule_fingerprints),
            **self.notes, **(extra_meta or {}),
        }
        atomic_write_json(out / "meta.json", meta)
        return out


def write_frame(path: Path, df: pd.DataFrame) -> Path:
    """Atomic CSV write; floats as repr (shortest round trip), so identical values give identical bytes."""
    return atomic_write(path, lambda p: df.to_csv(p, index=False, lineterminator="\n"))


def read_results(folder: str | Path, timing: bool = False) -> pd.DataFrame:
    """Read a group's results.csv (or timings.csv); an empty frame with the schema's columns if absent."""
    path = Path(folder) / ("timings.csv" if timing else "results.csv")
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = read_csv_checked(path)
    for col in OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        from bench import BenchError
        raise BenchError(f"{path}: not a result file of this suite (missing columns {missing})")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


STR_COLUMNS = {"params": str, "info": str, "model_sha256": str, "data_version": str}


def read_csv_checked(path: Path) -> pd.DataFrame:
    """pandas.read_csv of one of our CSVs; an empty, truncated or unparsable file is a one-line BenchError."""
    from bench import BenchError
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN"], dtype=STR_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BenchError(f"{path}: unreadable CSV ({first})") from None


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def param(df: pd.DataFrame, key: str) -> pd.Series:
    """The value of one setting from the params JSON column, as a Series (None where absent)."""
    return df["params"].map(lambda s: json.loads(s).get(key) if isinstance(s, str) and s else None)
