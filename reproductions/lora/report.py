"""report.md and PNGs of the LoRA group, from the stored CSVs only (results.csv, timings.csv, meta.json).

One function per section; each returns its markdown lines (and draws its figure) or [] when its rows are absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import MISSING, finite, fmt_bytes, md_table, num, params_of, select, value
from bench.schema import param, read_meta, read_results

from reproductions.lora import figures
from reproductions.lora.settings import GROUP

GiB, MiB = 2**30, 2**20
# published LoRA parameter counts: Hu et al. 2021 (GPT-3), the lecture (LLaMA-7B), peft's README (mt0-large)
PAPER_L2 = {("gpt3-175b", 1, "q,v"): 4_718_592, ("gpt3-175b", 8, "q,v"): 37_748_736,
            ("gpt3-175b", 4, "q,k,v,o"): 37_748_736, ("llama-7b", 8, "q,v"): 4_194_304,
            ("mt0-large", 8, "q,v"): 2_359_296}


def write_report(out: Path) -> Path:
    """Write out/report.md and its PNGs; returns the report's path."""
    df, tm, meta = read_results(out), read_results(out, timing=True), read_meta(out)
    settings = meta.get("settings", {})
    rung = settings.get("rung", "?")
    lines = _header(meta, out, rung)
    lines += _l2_section(df)
    lines += _ratio_section(df, out)
    lines += _paper_memory_section(df)
    lines += _toy_memory_section(df, tm, settings, rung, out)
    lines += _l1_section(df)
    lines += _l4_section(df, rung, out)
    lines += _l5_section(df, tm)
    lines += _l6_section(df, settings, rung, out)
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _header(meta: dict, out: Path, rung: str) -> list[str]:
    lines = ["# LoRA group: claims A2, L1-L6", "",
             f"Profile `{meta.get('profile')}`, seeds {meta.get('seeds')}, rung `{rung}` (GPT-2 style, fp32), "
             f"alpha = {meta.get('alpha')} for every rank, ranks {meta.get('ranks')}. Commit {meta.get('git_commit')}; "
             f"{meta.get('hardware')}; {meta.get('versions')}.", "",
             "Exact parts count on meta-device models (no weights). Toy parts run on the embedded ladder on a 2-core "
             "CPU: their verdicts are about the direction of an effect, not the paper's numbers. Timings "
             "(timings.csv) were taken on a shared machine and never enter a verdict.", "",
             "## Verdicts", "", checks_markdown(group_verdicts(GROUP, out)), ""]
    walls = meta.get("part_wall_s", {})
    if walls:
        lines += ["Wall time by part: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) +
                  f" (total {meta.get('wall_s')} s).", ""]
    return lines


def _l2_section(df: pd.DataFrame) -> list[str]:
    """L2: LoRA parameters of the paper-scale configs next to the published counts, and full weights' bytes."""
    lines = ["## L2: trainable parameters of LoRA (exact, meta device)", "",
             "GPT-3 175B is an OPTConfig with GPT-3's shapes (d 12288, 96 layers, 96 heads, FFN 4d, vocab 50257, "
             "2048 positions + OPT's 2 offset rows, GELU, pre-LN); LLaMA-7B a LlamaConfig (4096, 32 layers, FFN "
             "11008, vocab 32000). GPT-2 fuses q,k,v (`c_attn`), so its LoRA adapts all three.", ""]
    tot = {r.model: r.value for r in select(df, "total_params").itertuples()}
    rows = []
    for row in select(df, "lora_trainable_params", claim="L2").itertuples():
        pr = params_of(row.params)
        key = (row.model, pr["r"], pr["targets"])
        b16, b32 = (value(df, f"adapter_bytes_{t}", model=row.model, params=row.params) for t in ("fp16", "fp32"))
        rows.append([row.model, num(tot.get(row.model)), pr["r"], pr["targets"], num(row.value),
                     num(PAPER_L2[key]) if key in PAPER_L2 else MISSING, f"{b16 / MiB:.2f} MiB",
                     f"{b32 / MiB:.2f} MiB"])
    lines.append(md_table(["model", "total params", "r", "targets", "LoRA params", "paper", "adapter fp16",
                           "adapter fp32"], rows))
    fw = {(r.model, r.metric): r.value for r in df[df["metric"].str.startswith("full_weights_bytes")].itertuples()}
    if fw:
        lines += ["", "Full weights by count: " + "; ".join(
            f"{m} {k[-4:]}: {v / 1e9:.2f} GB ({v / GiB:.2f} GiB)" for (m, k), v in sorted(fw.items())) +
            ". The lecture's \"23 GB -> 8 MB\": 8 MB is LLaMA-7B's r = 8 q,v adapter in fp16 (8 MiB); no weight "
            "format of LLaMA-7B is 23 GB (13.5 GB fp16, 27 GB fp32).", ""]
    return lines


def _ratio_section(df: pd.DataFrame, out: Path) -> list[str]:
    """L2's per-matrix ratio table (d x r) and ratio_vs_d.png."""
    ratio = select(df, "lora_ratio_per_matrix")
    if ratio.empty:
        return []
    ds = sorted({int(x) for x in param(ratio, "d")})
    rs = sorted({int(x) for x in param(ratio, "r")})
    rows = []
    for d in ds:
        cells = [value(ratio, "lora_ratio_per_matrix", **{"params.d": d, "params.r": r}) for r in rs]
        rows.append([d] + [f"{v:.4g}" if finite(v) else MISSING for v in cells])
    figures.ratio_vs_d(ratio, rs, out / "ratio_vs_d.png")
    return ["Per-matrix ratio (LoRA params / d^2) of one d x d matrix, counted on our LoRA; it equals 2r/d "
            f"(max |error| {num(value(df, 'lora_ratio_error_vs_2r_over_d', agg='max'))}).", "",
            md_table(["d"] + [f"r={r}" for r in rs], rows), "", "![ratio vs d](ratio_vs_d.png)", ""]


def _paper_memory_section(df: pd.DataFrame) -> list[str]:
    """L3, A2 by accounting at paper scale: bytes by part per method, and the checkpoint sizes."""
    lines = ["## L3, A2: training memory by accounting (exact)", "",
             "bench.memory with mixed-precision AdamW (ZeRO's accounting: 16-bit weights and gradients, fp32 master "
             "copy + two fp32 moments = 16 bytes per trainable parameter, 2 per frozen one). Activations for one "
             "2048-token sequence without checkpointing, 2 bytes per element, are listed apart. GPT-3: LoRA r = 4 "
             "on q,v (the paper's 350 GB / 35 MB setting); LLaMA-7B: r = 8 on q,v; adapters: bottleneck 64.", ""]
    tmb = select(df, "train_memory_bytes", scale="exact")
    rows = []
    for model in ("gpt3-175b", "llama-7b"):
        for method in ("full", "lora", "adapters"):
            sub = select(tmb, None, model=model, method=method)
            if sub.empty:
                continue
            v = {pt: value(sub, "train_memory_bytes", **{"params.part": pt}) for pt in
                 ("weights", "gradients", "optimizer", "model_states", "activations")}
            rr = value(df, "memory_ratio_vs_full", model=model, method=method, **{"params.part": "model_states"})
            rows.append([model, method, fmt_bytes(v["weights"]), fmt_bytes(v["gradients"]), fmt_bytes(v["optimizer"]),
                         fmt_bytes(v["model_states"]), f"{rr if finite(rr) else 1.0:.4f}", fmt_bytes(v["activations"])])
    lines.append(md_table(["model", "method", "weights", "gradients", "optimizer", "weights+grads+optimizer",
                           "/ full", "activations (1 x 2048)"], rows))
    ck = select(df, "checkpoint_bytes", model="gpt3-175b")
    if not ck.empty:
        cf, cl = (value(ck, "checkpoint_bytes", method=m) for m in ("full", "lora"))
        states = value(tmb, "train_memory_bytes", model="gpt3-175b", method="lora", **{"params.part": "model_states"})
        bpp = value(df, "paper_full_ft_bytes_per_param")
        lines += ["", f"Paper: 1.2 TB -> 350 GB and checkpoint 350 GB -> 35 MB. Model: LoRA's weights + states are "
                  f"{fmt_bytes(states)} (the 16-bit weights; the paper's 350 GB); checkpoints {fmt_bytes(cf)} -> "
                  f"{fmt_bytes(cl)} in fp16 ({cl / MiB:.1f} MiB; ratio {cf / cl:,.0f}). The paper's 1.2 TB for full "
                  f"FT is {bpp:.2f} bytes per parameter: less than any Adam accounting (16 B mixed precision, 8 B "
                  "with 16-bit moments), so it cannot be rederived from a stated setup; it is reported, not checked.",
                  ""]
    return lines


def _variant(method: str, r) -> dict:
    """select() filters for one variant of the toy sweep: LoRA rows also match on their rank."""
    return {"method": method} | ({"params.r": r} if r is not None else {})


def _toy_memory_section(df: pd.DataFrame, tm: pd.DataFrame, settings: dict, rung: str, out: Path) -> list[str]:
    """A2, L3, L4 on the rung: measured bytes by part per variant, model / measured, ratios to full FT (memory,
    step time) and the peak RSS cross-check; memory_parts.png."""
    tmy = select(df, "train_memory_bytes", scale="toy", claim="A2")
    if tmy.empty:
        return []
    order = list(dict.fromkeys((row.method, params_of(row.params).get("r")) for row in tmy.itertuples()))
    rows, bars = [], {}
    for method, r in order:
        where = _variant(method, r)
        label = f"{method}{'' if r is None else f' r={r}'}"
        bars[label] = v = {pt: value(tmy, "train_memory_bytes", **where, **{"params.source": "measured",
                                                                            "params.part": pt})
                           for pt in ("weights", "gradients", "optimizer", "activations", "total")}
        mo = value(df, "memory_model_over_measured", **where, **{"params.part": "total"})
        mi = value(df, "memory_model_over_independent", **where, **{"params.part": "total"})
        rv = value(df, "memory_ratio_vs_full", claim="A2", **where,
                   **{"params.part": "total", "params.source": "measured"})
        st = value(tm, "step_time_ratio_vs_full", **where)
        pk = value(tm, ["peak_rss_delta_bytes", "peak_cuda_bytes"], **where)
        rows.append([label, fmt_bytes(v["weights"]), fmt_bytes(v["gradients"]), fmt_bytes(v["optimizer"]),
                     fmt_bytes(v["activations"]), fmt_bytes(v["total"]), f"{mo:.4f}",
                     f"{mi:.4f}" if finite(mi) else MISSING,
                     f"{rv if finite(rv) else 1.0:.3f}", f"{st:.2f}", fmt_bytes(pk)])
    figures.memory_parts(bars, rung, out / "memory_parts.png")
    return [f"## A2, L3, L4: training memory measured on `{rung}` (toy)", "",
            f"One AdamW step, fp32, batch {settings.get('mem_batch')} x {settings.get('mem_seq')} tokens. "
            "Measured = live tensors: parameter storages, .grad, optimizer state, and every storage autograd saved "
            "for backward (saved_tensors_hooks, deduplicated, parameters excluded). Model = bench.memory. "
            "`model / measured` counts the same tensors twice (1 by construction, a consistency check); A2's "
            "part 'memory model' is decided on `model peak / independent` (its other parts on the measured ratios "
            "to full FT): the model's predicted peak of a step over the peak the "
            "allocator saw on a fresh copy (bench.memory.measure_peak: torch.profiler memory events on CPU), "
            "which counts no tensor by name.", "",
            md_table(["method", "weights", "gradients", "optimizer", "activations", "total (measured)",
                      "model / measured", "model peak / independent", "total / full FT", "step time / full FT",
                      "peak RSS delta"], rows),
            "", "Peak RSS delta = the process' peak RSS during the step minus its RSS before; it includes "
            "temporaries the model does not count (matmul outputs freed in the forward, backward buffers, allocator "
            "slack), so it is a cross-check, not the quantity the model predicts.", "",
            "![memory by part](memory_parts.png)", ""]


def _max_table(df: pd.DataFrame, prefix: str, title: str) -> list[str]:
    """A section of exact checks: per metric starting with `prefix`, its row count and largest value."""
    sub = df[df["metric"].str.startswith(prefix)]
    if sub.empty:
        return []
    rows = [[m, len(g), num(g["value"].max())] for m, g in sub.groupby("metric")]
    return [title, "", md_table(["metric", "rows", "max"], rows)]


def _l1_section(df: pd.DataFrame) -> list[str]:
    table = _max_table(df, "l1_", "## L1: W' = W + (alpha/r) BA, B = 0 at init (exact, on the rung)")
    return table + [""] if table else []


def _l4_section(df: pd.DataFrame, rung: str, out: Path) -> list[str]:
    """L4: accuracy by rank (mean, std over seeds) next to full FT, trainable parameters and measured training
    memory; full FT's lr search; l4_rank.png."""
    acc = select(df, "l4_test_accuracy")
    if acc.empty:
        return []
    chance, zs = value(df, "l4_chance"), value(df, "l4_zero_shot_accuracy")
    full = select(acc, None, method="full")["value"]
    full_mem = value(df, "train_memory_bytes", agg="max", claim="A2", method="full",
                     **{"params.part": "total", "params.source": "measured"})
    rows = [["full FT", MISSING, f"{full.mean():.3f}", f"{full.std(ddof=1):.3f}", MISSING, fmt_bytes(full_mem)]]
    rs = sorted({int(x) for x in param(select(acc, None, method="lora"), "r")})
    means, stds, mems = [], [], []
    for r in rs:
        v = select(acc, None, method="lora", **{"params.r": r})["value"]
        tp, mb = (value(df, m, **{"params.r": r}) for m in ("l4_trainable_params", "l4_train_memory_bytes"))
        means.append(v.mean())
        stds.append(v.std(ddof=1))
        mems.append(mb)
        rows.append(["LoRA", r, f"{v.mean():.3f}", f"{v.std(ddof=1):.3f}", num(tp), fmt_bytes(mb)])
    figures.l4_rank(rs, means, stds, full.mean(), chance, zs, mems, rung, out / "l4_rank.png")
    return [f"## L4: quality vs rank (toy, `{rung}`, task `{acc['data'].iloc[0]}`)", "",
            f"Fine-tune on the world's train people, score test people (accuracy over the candidate answers). "
            f"Chance {chance:.3f}, zero-shot {zs:.3f}. Seeds: {sorted(set(acc['seed']))}. Paper (GPT-3, q,v, "
            "r = 1/2/4/8/64): WikiSQL 73.4/73.3/73.7/73.8/73.5, MNLI 91.3/91.4/91.3/91.6/91.4.", "",
            md_table(["method", "r", "accuracy mean", "sample sd", "trainable params", "training memory (measured)"], rows),
            "", *_lr_search_lines(df), "![quality and memory vs r](l4_rank.png)", ""]


def _lr_search_lines(df: pd.DataFrame) -> list[str]:
    """Full FT's lr search: validation accuracy per grid point, the pick and whether it is interior."""
    pts = select(df, "l4_full_lr_search_val_accuracy")
    if pts.empty:
        return []
    tuned = select(df, "l4_full_lr_tuned")
    info = params_of(tuned["info"].iloc[0]) if not tuned.empty else {}
    pick, n_val = info.get("lr"), params_of(pts["info"].iloc[0]).get("n_validation")
    lora_lr = params_of(select(df, "l4_test_accuracy", method="lora")["params"].iloc[0]).get("lr", float("nan"))
    rows = [[f"{lr:g}", f"{v:.3f}", "pick" if lr == pick else ""]
            for lr, v in sorted(zip(param(pts, "lr").astype(float), pts["value"]))]
    where = "inside the grid" if value(df, "l4_full_lr_tuned") == 1 else "at the grid's edge (precondition fails)"
    return [f"Full FT's learning rate: searched on seed {int(pts['seed'].iloc[0])} by accuracy on the "
            f"{n_val} validation items (people never scored as test), 4x grid extended while the best sat on an "
            f"edge, ties to the smaller lr; pick {pick:g}, {where}. Every seed of full FT (and the permuted-answer "
            f"null of L6) trains at the pick; LoRA keeps its fixed lr {lora_lr:g} at every rank.", "", md_table(["lr", "validation accuracy", ""], rows), ""]


def _l5_section(df: pd.DataFrame, tm: pd.DataFrame) -> list[str]:
    """L5: the merge checks (exact), latency ratios to the base model (timings), and the checkpoint files."""
    lines = _max_table(df, "l5_", "## L5: merging (exact) and latency (timings)")
    if not lines:
        return []
    lat = select(tm, "latency_ratio_vs_base")
    if not lat.empty:
        rows = []
        for pj, sub in lat.groupby("params"):
            pp = params_of(pj)
            base_s = value(tm, "latency_s", method="base", params=pj)
            vv = {r.method: r.value for r in sub.itertuples()}
            load = pp.get("load_avg_1m", pp.get("load_average_1m"))     # bench.timing's key; older runs: the latter
            rows.append([f"{pp['batch']} x {pp['seq']}", f"{base_s * 1e3:.2f} ms",
                         f"{vv.get('merged', float('nan')):.3f}", f"{vv.get('unmerged', float('nan')):.3f}",
                         pp.get("threads"), load])
        lines += ["", md_table(["batch x seq", "base", "merged / base", "unmerged / base", "threads", "load (1 min)"],
                               rows)]
    lines.append("")
    fb = select(df, "checkpoint_file_bytes", scale="toy")
    if not fb.empty:
        files = [f"{r.method}{'' if params_of(r.params).get('r') is None else ' r=' + str(params_of(r.params)['r'])}: "
                 f"{fmt_bytes(r.value)}" for r in fb.itertuples()]
        lines += ["Checkpoint files on the rung: " + ", ".join(files) + ".", ""]
    return lines


def _l6_section(df: pd.DataFrame, settings: dict, rung: str, out: Path) -> list[str]:
    """L6: the planted task's KL and gap by student, then the full-FT update's spectrum; l6_rank.png."""
    kl = select(df, "l6_kl")
    if kl.empty:
        return []
    kl0 = value(df, "l6_kl_base")
    k = params_of(kl["params"].iloc[0])["k"]
    target = settings.get("l6_target", "c_attn")
    lines = [f"## L6: intrinsic rank (toy, `{rung}`)", "",
             f"Planted task: teacher = rung + a rank-{k} update on every block's `{target}` "
             "(`c_attn.v`: the value third of the fused q|k|v projection), along the top principal directions of "
             "that matrix's inputs, whitened so each direction moves the output alike; its strength is set so that "
             f"KL(teacher || base) = {kl0:.4f} nats/token (target {settings.get('l6_target_kl')}; the target, the "
             "value third and the students' learning rates were chosen on a smoke-rung pilot before this run). "
             "Students (full FT, or LoRA on the planted matrices) distil the teacher's next-token distributions on "
             f"corpus text for {settings.get('l6_steps')} steps; KL on held-out rows. gap(r) = (KL(LoRA r) - "
             "KL(full FT)) / KL(base).", ""]
    fk = select(kl, None, method="full")["value"]
    rows = [["full FT", f"{fk.mean():.4f}", f"{fk.std(ddof=1):.4f}", "0"]]
    rs6 = sorted({int(x) for x in param(select(kl, None, method="lora"), "r")})
    gaps = [value(df, "l6_gap", **{"params.r": r}) for r in rs6]
    for r, g in zip(rs6, gaps):
        v = select(kl, None, method="lora", **{"params.r": r})["value"]
        rows.append([f"LoRA r={r}{' (< k)' if r < k else ''}", f"{v.mean():.4f}", f"{v.std(ddof=1):.4f}", f"{g:.3f}"])
    lines.append(md_table(["student", "KL mean", "sample sd", "gap"], rows))
    en, er = select(df, "l6_fullft_energy_top_r"), select(df, "l6_random_energy_top_r")
    es = select(df, "l6_shuffled_energy_top_r")
    if not en.empty:
        null = {params_of(a.params)["r"]: f"{a.value:.3f}" for a in es.itertuples()}
        null_top8 = value(es, "l6_shuffled_energy_top_r", **{"params.r": 8})
        task_top8 = value(en, "l6_fullft_energy_top_r", **{"params.r": 8})
        rows = [[r, f"{a.value:.3f}", null.get(r, MISSING), f"{b.value:.3f}"]
                for a, b in zip(en.itertuples(), er.itertuples()) for r in [params_of(a.params)["r"]]]
        lines += ["", "Full fine-tuning update dW = W_ft - W_0 on the knowledge task, c_attn of every layer, mean over "
                  "layers and seeds: share of energy in the top r singular directions, against the null (full FT "
                  "at the same lr and steps on the same prompts with answers permuted within each attribute: "
                  "nothing stored to adapt to; it cannot fit them, final training loss "
                  f"{select(df, 'l6_shuffled_final_train_loss')['value'].mean():.2f} vs the task's "
                  f"{select(df, 'l4_final_train_loss', method='full')['value'].mean():.2f}) and a Gaussian matrix of "
                  "the same shape (a weak null, reported only). L6 is decided on the energy left outside the top "
                  f"8: null {1 - null_top8:.3f} vs task {1 - task_top8:.3f}.", "",
                  md_table(["r", "dW", "dW, permuted answers (null)", "Gaussian"], rows)]
        ctl = select(df, "l6_control_planted_energy_top8")
        if not ctl.empty:
            ratio = value(df, "l6_control_residual_energy_top8_null_over_planted")
            lines += ["", "Positive control (a precondition of part 'real task update'): full FT distilling the "
                      f"planted rank-{k} teacher, an update low-rank by construction, leaves "
                      f"{1 - ctl['value'].iloc[0]:.3f} of its c_attn update's energy outside the top 8, so the measure "
                      f"gives {ratio:.2f} against the same null (it must reach 1.5 before the knowledge task's ratio "
                      "is believed)."]
    lines += _subspace_lines(df)
    figures.l6_rank(rs6, gaps, k, en, er, es, out / "l6_rank.png")
    return lines + ["", "![intrinsic rank](l6_rank.png)", ""]


def _subspace_lines(df: pd.DataFrame) -> list[str]:
    """phi(A_8, A_R, i, j) (Hu et al. Sec. 7.2) against the random-subspace expectation max(i, j) / d."""
    ph = select(df, "l6_subspace_similarity")
    if ph.empty:
        return []
    rows = [[p["i"], p["j"], f"{r.value:.3f}", f"{params_of(r.info)['random_expectation']:.3f}"]
            for r in ph.itertuples() for p in [params_of(r.params)]]
    p0 = params_of(ph["params"].iloc[0])
    return ["", f"Subspace similarity of LoRA's A matrices on the knowledge task, r = {p0['r_small']} against r = "
            f"{p0['r_large']} (same seed), mean over layers and seeds: phi = ||U_i^T U_j||_F^2 / min(i, j) of "
            "their top right-singular vectors (Hu et al. 2021, Sec. 7.2; the paper finds the top direction shared, "
            "phi > 0.5 at i = j = 1). Reported, not decided.", "",
            md_table(["i (of r small)", "j (of r large)", "phi", "random subspaces"], rows)]
