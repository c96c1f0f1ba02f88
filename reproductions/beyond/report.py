"""The beyond group's report: report.md (verdicts, design, per-arm table, X2's memory) and the loss curves per
method (loss_curves.png), from the stored CSVs only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import md_table, num, pyplot, save_figure, select
from bench.schema import param, read_meta, read_results

from .settings import GROUP

LABELS = {"lora": "LoRA", "qlora": "QLoRA (NF4 base)", "dora": "DoRA", "pissa": "PiSSA", "loraplus": "LoRA+ (ratio 16)"}


def report(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    df, meta = read_results(out_dir), read_meta(out_dir)
    verdicts = group_verdicts(GROUP, out_dir)
    s = meta.get("settings", {})
    L = ["# Beyond the lecture: QLoRA, DoRA, PiSSA, LoRA+ (X1-X5)", "",
         f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, commit {meta.get('git_commit')}, "
         f"{meta.get('hardware')}; {meta.get('versions')}. Workers {meta.get('workers')} x {meta.get('threads')} "
         f"thread(s).", "",
         f"Scale: toy. Rung `{s.get('rung')}`, the scale group's next-month task, every arm at lr {s.get('lr')} "
         f"(LoRA's pick in the pilot; LoRA+: A's), alpha {s.get('alpha')}, fixed budget {s.get('steps')} steps x "
         f"batch {s.get('batch')}, validation answer loss every {s.get('eval_every')} steps, target "
         f"{s.get('target_loss')} nats/token for steps_to_target. The papers ran 7B-70B models on real benchmarks; "
         "this is a trend check on a tiny model, not a replication of their numbers.", "",
         "## Verdicts", "", *[f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts], "",
         checks_markdown(verdicts), ""]
    L += design_section(df)
    L += arms_section(df, out_dir)
    L += memory_section(df)
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")


def design_section(df: pd.DataFrame) -> list[str]:
    d = select(df, "design_power")
    if d.empty:
        return []
    need = select(df, "design_needed_seeds")
    items = select(df, "design_needed_items")
    rows = []
    for _, r in d.iterrows():
        part = param(pd.DataFrame([r]), "part").iloc[0]
        ns = need[(need["claim"] == r["claim"]) & (param(need, "part") == part)]["value"]
        ni = items[(items["claim"] == r["claim"]) & (param(items, "part") == part)]["value"] if not items.empty else []
        info = json.loads(r["info"] or "{}")
        ns_v = int(ns.iloc[0]) if len(ns) else None
        ni_v = int(ni.iloc[0]) if len(ni) else None
        rows.append([r["claim"], part, f"{param(pd.DataFrame([r]), 'effect').iloc[0]:+.3f}", info.get("source", ""),
                     param(pd.DataFrame([r]), "seeds").iloc[0], f"{r['value']:.2f}", f"{info.get('fpr', math.nan):.3f}",
                     ns_v if ns_v else "> 64", "-" if ni_v is None else (ni_v or "> 10^6")])
    return ["## Design (recorded before the runs)", "",
            "Power of each decided part at the published effect with the pilot's noise (pilot.jsonl, noise.json in "
            "reproductions/beyond/), 400 simulated reruns of the part's own rule; a part under 0.8 is inconclusive "
            "(underpowered at this scale).", "",
            md_table(["claim", "part", "effect", "effect from", "seeds", "power", "false-positive rate",
                      "seeds for 0.8", "items for 0.8"], rows), ""]


def arms_section(df: pd.DataFrame, out_dir: Path) -> list[str]:
    runs = df[(df["claim"] == "-") & df["metric"].isin(["accuracy", "test_answer_loss", "steps_to_target",
                                                          "reached_target", "trainable_params"])]
    if runs.empty:
        return []
    runs = runs.assign(r=param(runs, "r"))
    rows = []
    for (arm, r), g in runs.groupby(["method", "r"], sort=False):
        def stat(metric, digits=3, g=g):
            v = g[g["metric"] == metric]["value"].to_numpy(float)
            if not len(v):
                return "-"
            sd = np.std(v, ddof=1) if len(v) > 1 else math.nan
            return f"{num(np.mean(v), digits)} ± {num(sd, digits)}" if sd == sd else num(np.mean(v), digits)
        n = int((g["metric"] == "accuracy").sum())
        lrs = sorted({json.loads(i or "{}").get("lr") for i in g["info"]} - {None})
        rows.append([LABELS.get(arm, arm), int(r), n, ", ".join(f"{x:g}" for x in lrs), stat("accuracy"), stat("test_answer_loss"),
                     stat("steps_to_target", 0), stat("reached_target", 2), stat("trainable_params", 0)])
    fig = curves_figure(df, out_dir / "loss_curves.png")
    return ["## Arms (mean ± seed sd)", "",
            "Test accuracy over 600 test rows (the claims' metric); test answer loss (reported, not decided: no "
            "ceiling, so it shows differences the accuracy cannot); steps to target: the first evaluation with "
            "validation answer loss at or below the target (the cap when never reached).", "",
            md_table(["arm", "rank", "seeds", "lr (LoRA+: A's)", "test accuracy", "test answer loss (nats/token)", "steps to target",
                      "reached target", "trainable params"], rows), "",
            *([f"![validation loss per method]({fig.name})", ""] if fig else [])]


def curves_figure(df: pd.DataFrame, path: Path) -> Path | None:
    """Validation answer loss against steps, seed mean per arm (rank 1), with the target line."""
    st = df[(df["claim"] == "-") & (df["metric"] == "steps_to_target")]
    if st.empty:
        return None
    fig, ax = pyplot().subplots(figsize=(6.5, 4))
    target = None
    for arm, g in st.groupby("method", sort=False):
        curves = {}
        for _, r in g.iterrows():
            if param(pd.DataFrame([r]), "r").iloc[0] != 1:
                continue
            target = param(pd.DataFrame([r]), "target_loss").iloc[0]
            for step, loss in json.loads(r["info"] or "{}").get("curve", []):
                curves.setdefault(step, []).append(loss)
        if curves:
            xs = sorted(curves)
            ax.plot(xs, [np.mean(curves[x]) for x in xs], label=LABELS.get(arm, arm))
    if target is not None:
        ax.axhline(target, color="grey", ls=":", lw=1, label=f"target {target:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation answer loss (nats/token, seed mean)")
    ax.set_title("X4, X5: convergence at rank 1 (toy)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def memory_section(df: pd.DataFrame) -> list[str]:
    m = select(df, "x2_peak_bytes")
    if m.empty:
        return []
    rows = []
    for _, r in m.iterrows():
        info = json.loads(r["info"] or "{}")
        parts = info.get("parts", {})
        rows.append([r["method"], *(f"{parts.get(k, math.nan) / 1e9:.2f}" for k in
                                    ("weights", "gradients", "optimizer", "activations", "transient")),
                     f"{r['value'] / 1e9:.2f}", "yes" if r["value"] <= 48e9 else "no"])
    return ["## X2: LLaMA-65B on one 48 GB GPU (bench.memory, meta device)", "",
            "LoRA r = 64, alpha 16 on every Linear of the blocks, bf16, AdamW, batch 1 x 512 tokens, gradient "
            "checkpointing; QLoRA's frozen weights in NF4 with double-quantized scales. GB = 1e9 bytes.", "",
            md_table(["method", "weights", "gradients", "optimizer", "activations", "transient", "peak", "<= 48 GB"],
                     rows), ""]
