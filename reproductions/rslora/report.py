"""report.md for the rsLoRA group, from results.csv, meta.json and curves.csv (nothing is rerun)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.claims import get
from bench.claims.writers import rule_sentences
from bench.fileio import atomic_write_text
from bench.report import checks_markdown, group_verdicts
from bench.report_tools import md_table, num, params_of, select, value, with_params
from bench.schema import read_meta, read_results
from reproductions.rslora.derive import per_rank, per_run_frame
from reproductions.rslora.figures import draw_all
from reproductions.rslora.settings import CURVE_COLUMNS, GROUP, METHODS

CROSS = "rslora_main_lr_minus_best_lora_any_lr_top_rank"
RANK_HEADER = ["r", "scaling LoRA", "scaling rsLoRA", "held-out loss LoRA", "held-out loss rsLoRA", "rsLoRA - LoRA",
               "train loss LoRA", "train loss rsLoRA", "param grad LoRA", "param grad rsLoRA", "update step LoRA",
               "update step rsLoRA", "diverged"]
DEFINITIONS = [
    "## Definitions", "",
    "Norms are Frobenius norms summed in quadrature over all adapted layers, per optimizer step, then averaged "
    "over the steps of a run and over seeds:",
    "- *param grad norm*: sqrt(||dL/dA||^2 + ||dL/dB||^2), raw gradients (before clipping);",
    "- *update grad norm*: ||s (dL/dB A + B dL/dA)||, the first-order change of the effective update "
    "dW = s B A along the raw gradient;",
    "- *update step norm*: ||s B'A' - s B A||, the change of dW made by one AdamW step;",
    "- *final loss*: held-out loss (nats/token, token-weighted) after the last step; *final train loss*: "
    "mean training loss over the last 10% of steps;",
    "- *slope vs log2 rank*: OLS slope of the seed-mean on log2(r), per doubling of r; *slope vs log rank* of a "
    "norm: slope of ln(norm) on ln(r) (the power of r the norm follows; alpha/r vs alpha/sqrt(r) differ by "
    "exactly 0.5 in the scaling itself).", ""]


def header(st: dict, meta: dict, ranks, lrs) -> list[str]:
    """Title, scale, the setup of the run and where it ran."""
    claim = get("L7")
    threads = f"{meta.get('threads', '?')} torch threads" + (
        f" in each of {meta['workers']} workers" if "workers" in meta else "")
    return [
        "# rsLoRA: does alpha/sqrt(r) keep learning stable as the rank grows? (claim L7)", "",
        "Kalajdzievski 2023 (https://arxiv.org/abs/2312.03732). **Scale: toy** - a "
        f"{st.get('rung', '?')} model on a synthetic data-to-text task, not Llama-2-7B on OpenOrca; the trend "
        "is what is compared, not the paper's numbers. Published: " + claim.published + " Paper scale (--model "
        "with a 7B checkpoint on a GPU) is not run here.", "",
        f"- model: `{st.get('rung', '?')}`; task: {meta.get('task', '?')}; {meta.get('train_rows', '?')} training "
        f"rows; held-out loss on {meta.get('heldout_rows', '?')} rows of the task's test people (never in the "
        "fine-tuning data)",
        f"- LoRA targets: {', '.join(st['targets']) if st.get('targets') else 'the family default (GPT-2: c_attn = q,k,v)'}; "
        f"alpha = {st.get('alpha')} for every rank; ranks {', '.join(str(int(r)) for r in ranks)} "
        f"(RANKS capped at the targets' width)",
        f"- AdamW, {st.get('steps')} steps, batch {st.get('batch')}, warmup {st.get('warmup')} then cosine to 10%, "
        f"grad clip 1.0 (bench.train); learning rates {', '.join(num(x) for x in lrs)} "
        f"(the first decides the checks at the main lr; rsLoRA vs LoRA at the largest rank is decided at lrs "
        f"searched per rank, see 'Learning rates tuned per rank'); seeds {meta.get('seeds', [])}",
        f"- profile `{meta.get('profile', '?')}`, {meta.get('wall_s', '?')} s wall, {threads}, load average at end "
        f"{num(meta.get('load_average_1m_at_end'), 3)}; versions: {meta.get('versions', '?')}", "",
        "## Verdict", "",
        "Rule (`bench/claims/`; whether it was fixed before the run: the table below), one sentence per part:", "",
        *[f"- {s}" for s in rule_sentences(claim)], "",
        "Design: " + (claim.rule or "-"), ""]


def _cell(t: pd.DataFrame, m: str, r, col: str = "mean") -> float:
    """per_rank's `col` for scaling m at rank r; nan when that run is missing."""
    v = t[(t["method"] == m) & (t["r"] == r)][col]
    return float(v.iloc[0]) if len(v) else float("nan")


def rank_table(df: pd.DataFrame, d: pd.DataFrame) -> str:
    """One lr's table: per rank, the scalings read from the modules, then seed means (+- sd) per scaling."""
    fv, ft = per_rank(d, "final_heldout_loss"), per_rank(d, "final_train_loss")
    pg, stp = per_rank(d, "mean_param_grad_norm"), per_rank(d, "mean_update_step_norm")
    div = d[d["metric"] == "diverged"]
    rows = []
    for r in sorted(d["r"].unique()):
        sca = [num(value(df, "scaling_applied", method=m, **{"params.r": r})) for m in METHODS]
        held = [f"{num(_cell(fv, m, r))} +- {num(_cell(fv, m, r, 'sd'), 2)}" for m in METHODS]
        diverged = "/".join(str(int(div[(div["method"] == m) & (div["r"] == r)]["value"].sum())) for m in METHODS)
        rows.append([int(r), *sca, *held, num(_cell(fv, "rslora", r) - _cell(fv, "lora", r), 3),
                     *(num(_cell(ft, m, r)) for m in METHODS), *(num(_cell(pg, m, r), 3) for m in METHODS),
                     *(num(_cell(stp, m, r), 3) for m in METHODS), diverged])
    return md_table(RANK_HEADER, rows)


def rank_section(df: pd.DataFrame, runs: pd.DataFrame, lrs, main_lr) -> list[str]:
    L = ["## Final loss per rank", ""]
    for lr in lrs:
        L += [f"### lr = {num(lr)}{' (main lr: decides the slope and gradient checks)' if lr == main_lr else ''}", "",
              rank_table(df, runs[runs["lr"] == lr]), ""]
    return L + [
        "Values are seed means +- sample sd. `scaling` is read from the LoRA modules after `apply` (every layer "
        "checked against alpha/r or alpha/sqrt(r): see `scaling_rel_err` in results.csv). `diverged` counts runs "
        "(LoRA/rsLoRA) that hit a non-finite loss; their losses are NaN and make the means NaN.", ""]


def derived_section(df: pd.DataFrame, lrs) -> list[str]:
    """The derived metrics (method "-") side by side per lr, then the cross-lr comparison in words."""
    der = df[(df["claim"] == "L7") & (df["method"] == "-") & ~df["metric"].isin(["base_heldout_loss", CROSS])]
    rows = [[metric, *(num(value(der, metric, **{"params.lr": lr})) for lr in lrs)]
            for metric in dict.fromkeys(der["metric"])]
    L = ["## Derived metrics (both learning rates)", "", md_table(["metric", *(f"lr {num(x)}" for x in lrs)], rows)]
    cross = select(df, CROSS)
    if not cross.empty:
        cp = params_of(cross["params"].iloc[0]) | params_of(cross["info"].iloc[0])
        L += ["", f"Across learning rates, at r = {cp['top_rank']}: rsLoRA at the main lr minus the best LoRA at any lr "
              f"tried ({cp['lrs']}; best LoRA lr {cp['best_lora_lr']}) = {num(cross['value'].iloc[0], 3)} nats/token "
              "(< 0: LoRA does not catch up by a larger learning rate within this range). Note that alpha/sqrt(r) is "
              "already 2x alpha/r at r = 4, so the rank TREND (slopes) is the cleaner part of the comparison."]
    return L + [""]


def _grid_cell(points: pd.DataFrame, best) -> str:
    """One search's points as "lr: val loss", the pick in bold."""
    cells = [f"{num(lr)}: {num(v, 3)}" for lr, v in zip(points["lr"], points["value"])]
    return ", ".join(f"**{c}**" if lr == best else c for c, lr in zip(cells, points["lr"]))


def tuned_section(df: pd.DataFrame, st: dict, meta: dict) -> list[str]:
    """Per rank and scaling: the lr search on validation loss (grid, pick, interior) and the tuned runs' final
    held-out loss (every seed at the pick); [] when the run has no search (an older results.csv)."""
    pts = with_params(select(df, "lr_search_val_loss"), "r", "lr").sort_values(["r", "lr"])
    chosen = with_params(select(df, "lr_search_pick_interior"), "r")
    if pts.empty or chosen.empty:
        return []
    held = per_rank(per_run_frame(df, roles=("tuned",)), "final_heldout_loss")
    rows, diffs = [], []
    for c in chosen.itertuples():
        best = params_of(c.info).get("lr")
        at = held[(held["method"] == c.method) & (held["r"] == c.r)]
        loss = (f"{num(at['mean'].iloc[0])} +- {num(at['sd'].iloc[0], 2)} (n={int(at['n'].iloc[0])})"
                if len(at) else "-")
        rows.append([int(c.r), c.method, _grid_cell(pts[(pts["method"] == c.method) & (pts["r"] == c.r)], best),
                     num(best), "yes" if c.value == 1 else "no", loss])
    for r in sorted(held["r"].unique()):
        diffs.append(f"r = {int(r)}: {num(_cell(held, 'rslora', r) - _cell(held, 'lora', r), 3)}")
    ok = value(df, "lora_lr_tuned_per_rank")
    return ["## Learning rates tuned per rank", "",
            f"Seed {meta.get('seeds', ['?'])[0]} of every scaling and rank trained at each lr of the grid "
            f"{', '.join(num(x) for x in st.get('search_lrs', []))}, scored by its final validation loss "
            f"(nats/token, {meta.get('validation_rows', '?')} rows of the task's validation people); while the best "
            f"point sat on an edge the grid grew by {num(st.get('search_factor'))}x past it (at most "
            f"{st.get('search_extensions', '?')} rounds, bench.lrsearch). Every seed then trained at the pick and was "
            "scored on the test people (lr_role tuned; a pick equal to one of the lrs above reuses those runs). "
            "A diverged point scores `-` (the worst).", "",
            md_table(["r", "scaling", "val loss per lr searched (pick in bold)", "pick", "interior",
                      "held-out loss at the pick"], rows), "",
            "rsLoRA minus LoRA final held-out loss at their picks (seed means): " + "; ".join(diffs) + ". "
            f"Every LoRA pick interior (L7's precondition): {'yes' if ok == 1 else 'no' if ok == 0 else '-'}.", ""]


def smoothness_section(runs: pd.DataFrame) -> list[str]:
    rough = per_rank(runs, "train_loss_roughness") if not runs.empty else pd.DataFrame()
    if rough.empty:
        return []
    rows = []
    for (lr, r), grp in rough.groupby(["lr", "r"]):
        gm = grp.set_index("method")["mean"]
        rows.append([num(lr), int(r), *(num(gm.get(m, float("nan")), 3) for m in METHODS)])
    return ["## Smoothness (reported, not decided)", "",
            "Mean |loss_t - loss_{t-1}| of the training loss over the second half of each run (seed mean). At this "
            "scale it is dominated by batch-to-batch noise, so it is shown, not judged.", "",
            md_table(["lr", "r", "LoRA", "rsLoRA"], rows), ""]


def figures_section(figs: list[tuple[str, str]]) -> list[str]:
    L = ["## Figures", ""]
    for title, f in figs:
        L += [f"{title}:", "", f"![{title}]({f})", ""]
    return L + ["Per-step curves of every run are in `curves.csv`; per-run values in `results.csv`, wall times in "
                "`timings.csv` (measured on a shared 2-core machine: indicative only).", ""]


def write_report(out: Path) -> Path:
    out = Path(out)
    df, meta = read_results(out), read_meta(out)
    curves_path = out / "curves.csv"
    curves = pd.read_csv(curves_path) if curves_path.exists() else pd.DataFrame(columns=CURVE_COLUMNS)
    st = meta.get("settings", {})
    runs = per_run_frame(df)
    lrs = sorted(runs["lr"].unique()) if not runs.empty else []
    main_lr = (st.get("lrs") or lrs or [None])[0]
    ranks = sorted(runs["r"].unique()) if not runs.empty else []
    figs = draw_all(out, df, runs, curves, float(st.get("alpha", 1.0)), lrs, main_lr, ranks)
    L = (header(st, meta, ranks, lrs) + [checks_markdown(group_verdicts(GROUP, out)), ""] + DEFINITIONS
         + rank_section(df, runs, lrs, main_lr) + derived_section(df, lrs) + tuned_section(df, st, meta)
         + smoothness_section(runs)
         + figures_section(figs))
    path = out / "report.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path


def report(out_dir: Path) -> None:
    write_report(Path(out_dir))
