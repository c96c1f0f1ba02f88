"""The int8 group's report: report.md and its figures, from the stored CSVs only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.numerics.int8_linear import METHODS
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import md_table, num, params_where, pyplot, save_figure, select, value, with_params
from bench.schema import param, read_meta, read_results

from .models import LAYER_METHODS
from .report_deg import census_section as ln_census_section
from .report_deg import degradation_section, minilm_section, planting_section
from .report_natural import natural_section
from .settings import EXAMPLE_Q2, GROUP, PLANT_DIMS, PLANT_SCALE


def report(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    df, tm, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    L = header(meta, group_verdicts(GROUP, out_dir))
    for section in (worked_section(df), parity_section(df), latency_section(tm, meta), ppl_section(df, out_dir),
                    sweep_section(df, out_dir), layer_error_section(df), census_section(df),
                    degradation_section(df), planting_section(df), ln_census_section(df, out_dir),
                    minilm_section(df, meta), natural_section(df, out_dir, tm), q6_section(df)):
        L += section
    atomic_write_text(out_dir / "report.md", "\n".join(L) + "\n")


def header(meta: dict, verdicts) -> list[str]:
    """Title, the run's conditions, the models and what scale they stand for, the verdicts and their checks."""
    conditions = (f"Profile `{meta.get('profile')}`, one deterministic evaluation per rung (no seeds), commit {meta.get('git_commit')}, "
                  f"{meta.get('hardware')}; {meta.get('versions')}; torch threads {meta.get('torch_threads')}; "
                  f"torch._int_mm exact on this CPU: {meta.get('int_mm_exact_on_cpu')}, "
                  f"used: {meta.get('int_mm_used_on_cpu')}.")
    models = (f"Models: {', '.join(meta.get('int8_models') or []) or '-'}. Toy scale: the embedded ladder's GPT-2-style "
              "rungs (pretrained here on the synthetic world), evaluated on the ladder's held-out biographies (not the "
              "paper's OPT models on C4); the verdicts compare directions, not the paper's numbers. Each rung is "
              "evaluated once (fixed weights, deterministic int8). Paper scale: only when run with --model.")
    statuses = [f"- **{v.claim.id}** {v.claim.title}: **{v.status}**" for v in verdicts]
    return ["# Int8 quantization (Q1-Q6)", "", conditions, "", models, "", "## Verdicts", "", *statuses, "",
            checks_markdown(verdicts), ""]


def worked_section(df: pd.DataFrame) -> list[str]:
    v = lambda metric, **kw: num(value(df, metric, **kw), digits=6)
    codes = params_where(df, "q2_absmax_code_mismatches").get("codes", "-")
    return ["## Q1, Q2: worked examples", "",
            f"- Fixed-range symmetric (the lecture's 'zero-point' example): 0.3 -> {v('q1_fixed_range_code')} -> "
            f"{v('q1_fixed_range_dequant')} (lost {v('q1_fixed_range_loss')}).",
            f"- Real asymmetric zero-point over [-1, 1]: 0.3 -> {v('q1_zeropoint_code')} -> "
            f"{v('q1_zeropoint_dequant')}.",
            f"- Absmax on {EXAMPLE_Q2}: factor {v('q2_absmax_factor')}, codes {codes}.", ""]


def parity_section(df: pd.DataFrame) -> list[str]:
    par = select(df, "bnb_rel_err")
    if par.empty:
        return []
    rows = []
    for (model, data), g in par.groupby(["model", "data"], sort=False):
        e = {m: value(g, "bnb_rel_err", method=m) for m in ("llm_int8", "bnb_llm_int8", "absmax", "vectorwise")}
        match = value(df, "bnb_outlier_cols_match", agg="min", model=model, data=data)
        rows.append([model, data, f"{e['llm_int8']:.3e}", f"{e['bnb_llm_int8']:.3e}",
                     f"{e['llm_int8'] / e['bnb_llm_int8']:.3f}", "yes" if match == 1 else "NO",
                     f"{e['absmax']:.3e}", f"{e['vectorwise']:.3e}"])
    header = ["layer", "input", "ours (llm_int8)", "bitsandbytes", "ours / bnb", "same outlier columns", "absmax",
              "vector-wise"]
    return ["## Q4: our LLM.int8() vs bitsandbytes (relative error vs FP64)", "", md_table(header, rows), "",
            "bitsandbytes exposes the columns it took out as `layer.state.idx` after a forward in eval mode. "
            "Its int8 weight codes equal ours (max code difference "
            f"{num(value(df, 'bnb_weight_code_max_diff', agg='max'))}).", ""]


def latency_section(tm: pd.DataFrame, meta: dict) -> list[str]:
    lat = with_params(select(tm, "latency_s"), "M")
    if lat.empty:
        return []
    rows = []
    for (model, M), g in lat.groupby(["model", "M"], sort=False):
        t = {r.method: r.value for r in g.itertuples()}
        ms = lambda k: f"{t[k] * 1e3:.2f} ms"
        rows.append([model, M, ms("fp32_linear"), ms("llm_int8"), ms("bnb_llm_int8"),
                     f"{t['llm_int8'] / t['fp32_linear']:.2f}x", f"{t['bnb_llm_int8'] / t['fp32_linear']:.2f}x"])
    header = ["layer shape", "M", "fp32 nn.Linear", "ours llm_int8", "bitsandbytes", "ours / fp32", "bnb / fp32"]
    return ["### Latency on this CPU (benchmark, timings.csv; shared machine, contaminated by other load)", "",
            md_table(header, rows), "",
            f"torch reports CPU capability `{meta.get('cpu_capability')}`. Our layer multiplies int8 x int8 -> "
            "int32 with `torch._int_mm` (checked exact at start-up, else an exact chunked-fp32 emulation); "
            "bitsandbytes 0.50 uses `torch._int_mm` on CPU only where torch reports AVX-512, and otherwise "
            "multiplies in fp32 after converting the int8 weight each call. So whether int8 is faster or slower "
            "than fp32 here depends on the CPU: these figures hold for this machine only.", ""]


def ppl_section(df: pd.DataFrame, out_dir: Path) -> list[str]:
    tab = with_params(select(df, "int8_ppl_ratio_over_fp32"), "planted")
    if tab.empty:
        return []
    fp = with_params(select(df, "fp32_ppl"), "planted")
    L = ["## Q2, Q4: held-out perplexity ratio to FP32", "",
         "| model | planted outliers | FP32 ppl | " + " | ".join(METHODS) + " |", "|---|---|---|" + "---|" * len(METHODS)]
    for (model, planted), g in tab.groupby(["model", "planted"], sort=False):
        f = fp[(fp["model"] == model) & (fp["planted"] == planted)]["value"]
        cells = []
        for m in METHODS:
            v = g[g["method"] == m]["value"]
            cells.append(f"{v.mean():.4f}" + (f" +- {v.std():.4f}" if len(v) > 1 else ""))
        L.append(f"| {model} | {planted} | {f.mean():.3f} | " + " | ".join(cells) + " |")
    q2 = with_params(select(df, "int8_ppl_ratio_absmax_over_zeropoint"), "planted")
    for planted, g in q2.groupby("planted", sort=False):
        L.append(f"\nQ2, absmax ppl / zero-point ppl ({'planted' if planted else 'not planted'}): mean "
                 f"{g['value'].mean():.5f}, sd {g['value'].std():.5f}, n = {len(g)} rungs (one evaluation each); compare the "
                 "difference from 1 with the spread before reading an ordering into it.")
    L += ["", f"Planted: dims {list(PLANT_DIMS)} of every MLP input scaled x{PLANT_SCALE:g} via ln_2 and compensated in "
          "mlp.c_fc (FP32 function unchanged). bitsandbytes-style LLM.int8() multiplies the outlier columns by the "
          "*dequantised* int8 weight, whose compensated rows are small: their rounding error grows with the "
          "planted scale (see the sweep).", ""]
    ppl_figure(tab, out_dir / "int8_ppl.png")
    return L + ["![int8 ppl](int8_ppl.png)", ""]


def ppl_figure(tab: pd.DataFrame, path: Path) -> None:
    """Bars: perplexity change vs FP32 (%) per int8 method, one bar per (model, planted)."""
    fig, ax = pyplot().subplots(figsize=(9, 3.8))
    groups = list(tab.groupby(["model", "planted"], sort=False))
    width = 0.8 / max(len(groups), 1)
    for i, ((model, planted), g) in enumerate(groups):
        means = [100 * (g[g["method"] == m]["value"].mean() - 1) for m in METHODS]
        ax.bar([j + i * width for j in range(len(METHODS))], means, width, label=f"{model}{' planted' if planted else ''}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(METHODS))], METHODS)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylabel("perplexity change vs FP32 (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))     # outside the axes: never over a bar
    ax.set_title("Int8 methods over the ladder")
    fig.tight_layout()
    save_figure(fig, path)


def sweep_section(df: pd.DataFrame, out_dir: Path) -> list[str]:
    sw = select(df, "planted_scale_sweep_ppl_ratio_over_fp32")
    if sw.empty:
        return []
    sw = sw.assign(plant_scale=param(sw, "scale"))     # params' "scale", not the row's scale column
    methods = list(dict.fromkeys(sw["method"]))
    fig, axes = pyplot().subplots(1, len(methods), figsize=(3.6 * len(methods), 3.6), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], methods):
        for model, g in sw[sw["method"] == m].groupby("model", sort=False):   # per rung: averaging hid the trend
            c = 100 * (g.groupby("plant_scale")["value"].mean() - 1)
            ax.plot(c.index, c.values, marker="o", ms=3, label=model)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set(xlabel="planted scale", title=m)
    axes[0][0].set_ylabel("perplexity change vs FP32 (%)")
    axes[0][-1].legend(fontsize=7, title="rung")
    fig.suptitle("Planted-outlier scale sweep per rung (supporting, not judged)")
    fig.tight_layout()
    save_figure(fig, out_dir / "planted_sweep.png")
    return ["![sweep](planted_sweep.png)", ""]


def layer_error_section(df: pd.DataFrame) -> list[str]:
    le = with_params(select(df, "layer_rel_err_mlp_input_proj"), "planted")
    if le.empty:
        return []
    L = ["### Where the planted dims enter (supporting, not judged)", "",
         "Relative error of block 0's MLP input projection output vs FP32:", "",
         "| model | planted | " + " | ".join(LAYER_METHODS) + " |", "|---|---|---|---|---|"]
    for (model, planted), g in le.groupby(["model", "planted"], sort=False):
        c = [g[g["method"] == m]["value"].mean() for m in LAYER_METHODS]
        L.append(f"| {model} | {planted} | " + " | ".join(f"{v:.3e}" for v in c) + " |")
    return L + ["", "If the layer error grows with planting while perplexity barely moves, the toy models' output is "
                "insensitive to their MLPs' precision: the mechanism is there, the model-level breakage is not.", ""]


def census_section(df: pd.DataFrame) -> list[str]:
    cen = df[df["metric"].str.startswith("census_") & (df["metric"] != "census_n_outlier_dims_found_minus_planted")]
    if cen.empty:
        return []
    cen = with_params(cen, "planted", "source")
    L = ["## Q5: outlier census per model", "",
         "| model | planted | source | share in [-3.5, 3.5] | max abs | outlier dims | % layers | % positions |",
         "|---|---|---|---|---|---|---|---|"]
    for (model, planted, source), g in cen.groupby(["model", "planted", "source"], sort=False):
        v = lambda k: value(g, f"census_{k}", agg="mean")
        L.append(f"| {model} | {planted} | {source} | {v('share_within_3_5'):.4f} | {v('max_abs_hidden'):.2f} | "
                 f"{v('n_outlier_dims'):.1f} | {100 * v('layers_affected'):.0f}% | {100 * v('positions_affected'):.0f}% |")
    return L + ["", "Emergence with scale (the paper's 6.7B transition) cannot be shown on toy models; the census is "
                "recorded per rung (smallest to largest) so the trend over the ladder can be read.", ""]


def q6_section(df: pd.DataFrame) -> list[str]:
    q6 = df[df["claim"] == "Q6"]
    if q6.empty:
        return []
    L = ["## Q6: weight memory", "", "| model | metric | value |", "|---|---|---|"]
    L += [f"| {r.model} | {r.metric} | {num(r.value)} |" for r in q6.itertuples() if r.seed in (-1, 0)]
    return L + ["", "BLOOM-176B: every linear layer but the (tied) LM head in int8 with fp32 row scales, the rest "
                "(embeddings, norms, biases) in 16 bit, counted on the meta device.", ""]
