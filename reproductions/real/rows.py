"""results.csv rows from the runs' results: per run (scale `real`, claim "-"), then per method and claim
(accuracy with its bootstrap interval, cost: A2, L3; full FT minus adapters / prefix: A1, P2; the LoRA rank
sweep: L4; the merge check: L5). Full fine-tuning is the reference of the memory ratios: its own rows (ratio 1
by definition) support the claims under "-"."""

from __future__ import annotations

import numpy as np

from bench.schema import Recorder
from reproductions.real.evaluate import bootstrap_ci
from reproductions.real.settings import CONFIG, MAIN_R, SCALE, Settings


def per_run_rows(rec: Recorder, runs: list[dict], M: str, D: str, s: Settings, n_test: int) -> None:
    for r in runs:
        kw = dict(model=M, data=D, method=r["method"], seed=r["seed"], scale=SCALE,
                  params={"r": r["r"], "lr": r["lr"], "max_steps": s.max_steps, "patience": s.patience})
        info = {"best_step": r["best_step"], "stopped_early": r["stopped_early"],
                "still_improving_at_cap": r["still_improving_at_cap"], "n_test": n_test}
        rec.add("-", "test_accuracy", r["test_accuracy"], unit="accuracy", info=info, **kw)
        rec.add("-", "val_accuracy", r["val_accuracy"], unit="accuracy", **kw)
        rec.add("-", "val_loss", r["val_loss"], unit="nats", **kw)
        rec.add("-", "final_train_loss", r["final_train_loss"], unit="nats", **kw)
        rec.add("-", "steps_used", r["steps_used"], unit="steps", info=info, **kw)
        rec.add("-", "still_improving_at_cap", float(r["still_improving_at_cap"]), unit="flag", **kw)
        rec.add("-", "step_time_s", r["step_time_s"], unit="s", timing=True, **kw)
        rec.add("-", "wall_s", r["wall_s"], unit="s", timing=True, **kw)


def main_runs(runs: list[dict], s: Settings) -> dict[str, list[dict]]:
    """method -> its main runs (LoRA at the main rank, not the sweep's), in seed order."""
    return {m: [r for r in runs if r["method"] == m and (m != "lora" or r["r"] == MAIN_R)] for m in s.methods}


def claim_rows(rec: Recorder, runs: list[dict], M: str, D: str, s: Settings, seeds) -> None:
    main = main_runs(runs, s)
    method_rows(rec, main, M, D, s)
    versus_full_rows(rec, main, M, D, s)
    if "prefix" in main:
        prefix_share_row(rec, main["prefix"][0], runs[0]["cfg"], M, D)
    rank_sweep_rows(rec, runs, main["full"], M, D, s, seeds)
    merge_rows(rec, [r for r in runs if "merge" in r][0]["merge"], M, D, seeds[0])


def method_rows(rec: Recorder, main: dict, M: str, D: str, s: Settings) -> None:
    """Per method: mean test accuracy (95% bootstrap over seeds and items), parameter share, file bytes,
    training memory and its ratio to full FT's, median step time; LoRA's file bytes over full FT's (L3)."""
    full_mem = main["full"][0]["memory"]["total"]
    for m, rs in main.items():
        correct = np.stack([r["correct"] for r in rs])
        lo, hi = bootstrap_ci(correct, s.bootstrap)
        kw = dict(model=M, data=D, method=m, scale=SCALE, params={"r": rs[0]["r"], "seeds": len(rs)})
        sd = float(np.std([r["test_accuracy"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0
        info = {"ci95": [round(lo, 4), round(hi, 4)], "seed_sd": sd,
                "runs_still_improving_at_cap": int(sum(r["still_improving_at_cap"] for r in rs))}
        rec.add("-", "mean_test_accuracy", float(correct.mean()), unit="accuracy", info=info, **kw)
        rec.add("-", "trainable_params", rs[0]["trainable_params"], unit="params", **kw)
        rec.add("-", "trainable_pct", rs[0]["trainable_pct"], unit="%", **kw)
        rec.add("-", "adapter_bytes", rs[0]["adapter_bytes"], unit="bytes", **kw)
        mem = rs[0]["memory"]
        claim = "L3" if m == "lora" else "-" if m == "full" else "A2"
        rec.add(claim, "train_memory_bytes", mem["total"], unit="bytes", info=dict(mem), **kw)
        rec.add(claim, "memory_ratio_vs_full", mem["total"] / full_mem, unit="ratio", **kw)
        rec.add("-", "mean_step_time_s", float(np.median([r["step_time_s"] for r in rs])), unit="s", timing=True, **kw)
        if m == "lora":
            rec.add("L3", "adapter_bytes_ratio_vs_full", rs[0]["adapter_bytes"] / main["full"][0]["adapter_bytes"],
                    unit="ratio", **kw)


def versus_full_rows(rec: Recorder, main: dict, M: str, D: str, s: Settings) -> None:
    """A1 (adapters) and P2 (prefix): full FT's accuracy minus the method's, in points, with a 95% bootstrap
    interval of the per-seed paired differences; and the method's parameter share."""
    full_correct = np.stack([r["correct"] for r in main["full"]])
    for m, claim in (("adapters", "A1"), ("prefix", "P2")):
        if m not in main:
            continue
        diff = float(full_correct.mean() - np.stack([r["correct"] for r in main[m]]).mean())
        paired = np.stack([f["correct"] - r["correct"] for f, r in zip(main["full"], main[m])])
        lo, hi = bootstrap_ci(paired, s.bootstrap, seed=1)
        rec.add(claim, f"{claim.lower()}_full_minus_{m}_points", 100 * diff, unit="points", model=M, data=D,
                method=m, scale=SCALE, params={"seeds": len(main[m])},
                info={"ci95_points": [round(100 * lo, 2), round(100 * hi, 2)]})
        rec.add(claim, f"{claim.lower()}_{m}_trainable_pct", main[m][0]["trainable_pct"], unit="%", model=M,
                data=D, method=m, scale=SCALE)


def prefix_share_row(rec: Recorder, run: dict, cfg: dict, M: str, D: str) -> None:
    """P2's ~0.1%: what inference keeps after fold(), n tokens x layers x 2 (keys, values) x width, over the
    model's parameters."""
    stored = CONFIG["prefix"]["num_virtual_tokens"] * cfg["layers"] * 2 * cfg["hidden"]
    rec.add("P2", "p2_prefix_stored_pct", 100.0 * stored / run["total_params"], unit="%", model=M, data=D,
            method="prefix", scale=SCALE, info={"stored_params": stored})


def rank_sweep_rows(rec: Recorder, runs: list[dict], full: list[dict], M: str, D: str, s: Settings, seeds) -> None:
    """L4: accuracy, parameters and memory per LoRA rank (the first rank_seeds seeds at every rank, so ranks
    compare on the same seeds), and the sweep's summaries against full FT on those seeds."""
    sweep_seeds = seeds[:s.rank_seeds]
    ranks = sorted(set(s.ranks) | {MAIN_R})
    accs = {}
    for r in ranks:
        rs = [x for x in runs if x["method"] == "lora" and x["r"] == r and x["seed"] in sweep_seeds]
        accs[r] = float(np.mean([x["test_accuracy"] for x in rs]))
        kw = dict(model=M, data=D, method="lora", scale=SCALE, params={"r": r, "seeds": len(rs)})
        rec.add("L4", "l4_test_accuracy", accs[r], unit="accuracy", **kw)
        rec.add("L4", "l4_trainable_params", rs[0]["trainable_params"], unit="params", **kw)
        rec.add("L4", "l4_train_memory_bytes", rs[0]["memory"]["total"], unit="bytes", **kw)
    full_acc = float(np.mean([x["test_accuracy"] for x in full if x["seed"] in sweep_seeds]))
    kw = dict(model=M, data=D, method="lora", scale=SCALE, params={"ranks": ranks, "seeds": len(sweep_seeds)})
    rec.add("L4", "l4_best_lora_minus_full", max(accs.values()) - full_acc, unit="accuracy", **kw)
    rec.add("L4", "l4_smallest_rank_minus_full", accs[ranks[0]] - full_acc, unit="accuracy", **kw)
    rec.add("L4", "l4_accuracy_spread_over_r", max(accs.values()) - min(accs.values()), unit="accuracy", **kw)
    mems = [[x for x in runs if x["method"] == "lora" and x["r"] == r][0]["memory"]["total"] for r in ranks]
    rec.add("L4", "l4_memory_nondecreasing", float(all(a <= b for a, b in zip(mems, mems[1:]))), unit="flag", **kw)


def merge_rows(rec: Recorder, merge: dict, M: str, D: str, seed: int) -> None:
    """L5 on the main LoRA run of the first seed (evaluate.merge_check)."""
    kw = dict(model=M, data=D, method="lora", seed=seed, scale=SCALE, params={"r": MAIN_R})
    rec.add("L5", "l5_merged_vs_unmerged_max_abs_diff", merge["max_abs_diff"], unit="logit", **kw)
    rec.add("L5", "l5_merged_pred_mismatches", merge["pred_mismatch"], unit="items", **kw)
    rec.add("L5", "l5_unloaded_extra_params", merge["extra_params"], unit="params", **kw)
