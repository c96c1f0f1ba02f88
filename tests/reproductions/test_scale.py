"""Tests of reproductions/scale/ (claims P1, P2, P3, A1; the report's sections in test_scale_report.py): the derived metrics and the
registry's rules on them (both ways, issue 14's preconditions included), the lr choice and grid extension, and reduced
end-to-end runs over a list of tiny saved checkpoints (the --model path) with the job cache and report."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from bench import BenchError
from bench.claims import get
from bench.report import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, group_verdicts, verdict
from bench.schema import Recorder
from reproductions import scale as S
from reproductions.scale import design


def tiny_gpt2(d: int = 32, layers: int = 2, vocab: int = 100, seed: int = 0, positions: int = 64):
    import transformers as T
    T.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    cfg = T.GPT2Config(n_embd=d, n_layer=layers, n_head=4, vocab_size=vocab, n_positions=positions, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, initializer_range=0.3)
    return T.GPT2LMHeadModel(cfg).eval()


def task_rows(lengths=((5, 9, 3), (12, 4), (7, 7, 11, 2)), vocab: int = 100, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randint(1, vocab, (n,), generator=g).tolist() for n in task] for task in lengths]


# ------------------------------------------------------------------------------------------------ small pieces

def test_spearman_ratio_interleave_and_lr_choice():
    assert S.spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert S.spearman([1, 3, 2], [1, 2, 3]) == pytest.approx(0.5)
    assert math.isnan(S.spearman([1, 1], [1, 2])) and math.isnan(S.spearman([1], [1]))
    assert S._ratio(0.0, 0.0) == 0.0 and S._ratio(-1.0, 0.0) == -math.inf and S._ratio(1.0, 2.0) == 0.5
    assert S._interleave([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 6, 3]
    pts = [{"lr": 0.1, "val_accuracy": 0.5, "val_loss": 1.0}, {"lr": 0.3, "val_accuracy": 0.5, "val_loss": 0.9},
           {"lr": 1.0, "val_accuracy": math.nan, "val_loss": math.nan}]
    assert S.choose(pts, "knowledge") == 0.3                          # tie on accuracy -> lower loss; NaN never
    assert S.choose([{"lr": 0.1, "val_loss": 2.0}, {"lr": 0.01, "val_loss": 1.0}], "d2t") == 0.01
    assert S.choose([{"lr": 0.1, "val_loss": math.nan}], "d2t") == 0.1
    assert S.ablation_configs(S.SETTINGS["gpu"]) == [(1, "labels"), (5, "labels"), (100, "labels"),
                                                     (20, "random"), (20, "vocab")]
    assert S.ablation_configs(S.SETTINGS["cpu"]) == [(1, "labels")]    # the init ablation is underpowered (issue 30)


def test_caps_give_a_method_its_own_cap_on_some_rungs():
    """Settings.caps (issue 14, after stop 25's run): the last matching entry wins; "lower" is the smaller half as
    the claims' Effects count it; a second pretraining seed counts as its rung; jobs without a cap keep their key."""
    from reproductions.scale.jobs import Job, job_settings_of
    names = ["a", "b", "c", "d", "e"]
    s = replace(S.SETTINGS["cpu"], caps=(("nextmonth", "prompt", "lower", 6000), ("nextmonth", "prompt", "a", 7000),
                                         ("d2t", "prefix", "every", 3000), ("knowledge", "full", "middle", 9)))
    got = {n: S.cap_for(s, names, "prompt", "nextmonth", n) for n in names}
    assert got == {"a": 7000, "b": 6000, "c": None, "d": None, "e": None}
    assert S.cap_for(s, names, "prefix", "d2t", "e") == 3000 and S.cap_for(s, names, "full", "d2t", "e") is None
    assert S.cap_for(s, names, "full", "knowledge", "c-s1") == 9 and S.cap_for(s, names, "full", "knowledge", "d") is None
    assert S.cap_for(s, ["a"], "prompt", "nextmonth", "a") == 7000          # one rung: it is the lower half
    job = Job("fit", "a", "nextmonth", "prompt", extra={"phase": "main"})
    assert job_settings_of(job, s) is s
    capped = job_settings_of(job._replace(extra={"phase": "main", "cap": 6000}), s)
    assert capped.steps("nextmonth")[0] == 6000 and capped.steps("d2t") == s.steps("d2t")
    short = job_settings_of(job._replace(extra={"phase": "search", "cap": 6000, "search_steps": 1500}), s)
    assert short.steps("nextmonth")[0] == 1500 and short.min_frac == 1.0 and capped.min_frac == s.min_frac


# ------------------------------------------------------------------------------------------------ rules

RUNGS = (("r1", 100_000), ("r2", 1_000_000), ("r3", 10_000_000))
DESIGN_PARTS = design.PARTS


def synthetic(gaps=(0.2, 0.1, 0.0), pt_gain=0.05, handwritten=0.1, adapter_loss=0.005, prefix_gain=0.0,
              low_gain=0.02, len_gain=0.05, init_gain=0.03, n_test=4000, full=0.9, stuck=(), replica_shift=0.0,
              k_hand=0.6, k_gain=0.1, chance=0.07, underpowered=(), room=1, d2t_gaps=None, d2t_full=0.6,
              d2t_zero=0.01):
    """Per-run rows with known structure, as the harness records them (seed noise +-0.01): the next-month task
    (full FT at `full`, prompt tuning `gap` behind, the hand-written prompt at `handwritten`), d2t (full FT and
    prompt tuning `d2t_gaps` behind -- default `gaps` -- on every rung: P3's trend; prefix tuning and adapters at
    the largest), knowledge (the hand-written prompt at `k_hand` over `chance`, P-tuning `k_gain` above it: P1), low data,
    ablations, a second pretraining seed of r2. Every trained run records its still_improving_at_cap flag: 1 for
    (method, task) in `stuck`. Accuracies carry n_test items. The design rows (issue 30): power 0.9 for every part,
    0.2 for the (claim, part) pairs in `underpowered`; P3's task with room: `room`."""
    rec = Recorder(group="scale", profile="smoke", out_dir=None, claims=list(S.CLAIMS))

    def add(phase, model, P, task, method, seed, metric, value, **extra):
        info = {"n_test": n_test} if metric == "accuracy" else {}
        rec.add("-", metric, value, model=model, method=method, seed=seed, info=info,
                params={"phase": phase, "task": task, "rung_params": P, **extra})
        if seed is not None and metric in ("accuracy", "bleu"):
            rec.add("-", "still_improving_at_cap", int((method, task) in stuck), model=model, method=method,
                    seed=seed, params={"phase": phase, "task": task, "rung_params": P, **extra})
    for i, ((name, P), gap, d2t_gap) in enumerate(zip(RUNGS, gaps, d2t_gaps or gaps)):
        add("zeroshot", name, P, "nextmonth", S.ZERO_SHOT, None, "accuracy", handwritten)
        add("zeroshot", name, P, "knowledge", S.ZERO_SHOT, None, "accuracy", k_hand)
        add("zeroshot", name, P, "d2t", S.ZERO_SHOT, None, "bleu", d2t_zero)
        for seed in (0, 1, 2):
            e = 0.01 * (seed - 1)
            k = {"full": full, "prompt": full - gap, "ptuning": full - gap + pt_gain, "adapters": full - adapter_loss}
            for m, v in k.items():
                extra = {"num_virtual_tokens": 20, "init": "labels"} if m == "prompt" else {}
                add("main", name, P, "nextmonth", m, seed, "accuracy", v + e, **extra)
                add("main", name, P, "knowledge", m, seed, "accuracy", (k_hand + k_gain if m == "ptuning" else 0.5) + e,
                    **extra)
            # P3's trend (issue 30): d2t on every rung; prompt tuning's noise runs against full FT's and grows with
            # the rung (per-seed gaps spread 0.02 on r1, 0.04 on r3: their seed-paired difference 0.02)
            add("main", name, P, "d2t", "full", seed, "bleu", d2t_full + e)
            add("main", name, P, "d2t", "prompt", seed, "bleu", d2t_full - d2t_gap - e * (1 + i), num_virtual_tokens=20,
                init="labels")
            if name == RUNGS[-1][0]:
                for m, v in {"prefix": 0.6 + prefix_gain, "adapters": 0.6 - adapter_loss}.items():
                    add("main", name, P, "d2t", m, seed, "bleu", v + e)
                add("main", name, P, "d2t", "adapters", seed, "stored_pct", 2.1)
                add("main", name, P, "d2t", "prefix", seed, "stored_pct", 0.6)
    name, P = RUNGS[1]
    for seed in (0, 1, 2):
        for m, v in {"full": full, "prompt": full - gaps[1] + replica_shift}.items():
            add("replica", f"{name}-s1", P, "nextmonth", m, seed, "accuracy", v + 0.01 * (seed - 1))
    top, P = RUNGS[-1]
    for size in (50, 200, 500):
        for seed in (0, 1, 2):
            add("lowdata", top, P, "d2t", "full", seed, "bleu", 0.3 + 0.01 * seed, size=size)
            add("lowdata", top, P, "d2t", "prefix", seed, "bleu", 0.3 + low_gain + 0.01 * seed, size=size)
    for (name, P), gap in ((RUNGS[0], gaps[0]), (RUNGS[-1], gaps[-1])):
        for seed in (0, 1, 2):
            add("ablation", name, P, "nextmonth", "prompt", seed, "accuracy", full - gap - len_gain,
                num_virtual_tokens=1, init="labels")
            add("ablation", name, P, "nextmonth", "prompt", seed, "accuracy", full - gap - init_gain,
                num_virtual_tokens=20, init="random")
    for p in DESIGN_PARTS:
        rec.add(p.claim, "design_power", 0.2 if (p.claim, p.part) in underpowered else 0.9, scale="exact",
                params={"part": p.part})
    rec.add("P3", "design_task_with_room", room, scale="exact", params={"part": "gap closes", "task": "d2t"})
    chances = {(t, n): chance for n, _ in RUNGS for t in ("knowledge", "nextmonth")}
    for claim, metric, value, p, model in S.derive(S.runs_frame(rec.frame()), chances):
        info = {k: p.pop(k) for k in S.DERIVED_MEASURED if k in p}
        rec.add(claim, metric, value, model=model, method=p.pop("method", "-"), seed=p.pop("seed", None), params=p,
                info=info)
    return rec


def verdicts(**kw) -> dict:
    df = synthetic(**kw).frame().assign(source="results")
    return {c: verdict(get(c), df) for c in S.CLAIMS}


def statuses(**kw) -> dict:
    return {c: v.status for c, v in verdicts(**kw).items()}


def test_derived_row_identities_survive_float_noise():
    """params minus the measured keys (DERIVED_MEASURED) are settings only: runs that differ by float noise, as on
    another CPU kind, give the same row identities."""
    frame = S.runs_frame(synthetic().frame())
    noisy = frame.copy()
    noisy["value"] = noisy["value"] * (1 + 1e-4 * np.random.default_rng(0).standard_normal(len(noisy)))

    def ident(df):
        out = []
        for claim, metric, _, p, model in S.derive(df):
            out.append((claim, metric, model, json.dumps({k: v for k, v in p.items() if k not in S.DERIVED_MEASURED},
                                                         sort_keys=True)))
        return sorted(out)
    assert ident(frame) == ident(noisy)


def test_derive_values():
    got = {(m, p.get("task"), p.get("role") or p.get("of_phase"), p.get("method"), p.get("pretrain_seed"), model): v
           for _, m, v, p, model in S.derive(S.runs_frame(synthetic(stuck={("prompt", "nextmonth")}).frame()))}
    g = lambda m, task=None, role=None, method=None, ps=None, model="-": got[(m, task, role, method, ps, model)]  # noqa: E731
    assert g("p3_gap_spearman_vs_log_params", "nextmonth") == pytest.approx(-1.0)
    assert g("p3_gap_drop_over_spread", "nextmonth") == pytest.approx(0.2 / math.sqrt(2 * 0.01 ** 2))
    assert g("p1_ptuning_minus_handwritten", "nextmonth", model="r1") == pytest.approx(0.9 - 0.2 + 0.05 - 0.1)
    assert g("a1_full_minus_adapters_over_margin", "d2t", model="r3") == pytest.approx(0.005 / 0.02)
    assert g("a1_full_score", "nextmonth", model="r3") == pytest.approx(0.9)
    assert g("p2_lowdata_prefix_minus_full_mean", "d2t", model="r3") == pytest.approx(0.02)
    assert g("p3_ablation_len20_minus_len1", "nextmonth", "smaller", model="r1") == pytest.approx(0.05)
    assert g("a1_adapters_stored_pct", model="r3") == pytest.approx(2.1)
    # issue 14: does the task need adaptation (full FT - zero-shot, and over its standard error)?
    assert g("adapt_full_minus_zeroshot", "nextmonth", model="r2") == pytest.approx(0.8)
    assert g("adapt_full_minus_zeroshot", "knowledge", model="r2") == pytest.approx(0.5 - 0.6)   # knowledge: reported
    se = math.sqrt(0.9 * 0.1 / 4000 + (0.01 / math.sqrt(3)) ** 2)             # items + seeds (sd 0.01, 3 seeds)
    assert g("adapt_full_minus_zeroshot_over_se", "nextmonth", model="r2") == pytest.approx(0.8 / se, rel=0.3)
    # convergence counts per (phase, task, method, rung); the second pretraining seed's gap beside the first's
    assert g("conv_still_improving", "nextmonth", "main", "prompt", model="r1") == 3
    assert g("conv_still_improving", "nextmonth", "main", "full", model="r1") == 0
    assert g("replica_gap", "nextmonth", ps=0, model="r2") == pytest.approx(0.1)
    assert g("replica_gap", "nextmonth", ps=1, model="r2-s1") == pytest.approx(0.1)
    assert g("replica_gap_between_pretraining", "nextmonth", model="r2") == pytest.approx(0.0, abs=1e-12)


def test_registry_rules_decide_both_ways():
    got = statuses(adapter_loss=0.0, init_gain=0.05)
    # A1: the paper's +-0.4-point band is below what 4000 test items resolve (issue 13: inconclusive, not a pass)
    assert got.pop("A1") == INCONCLUSIVE and set(got.values()) == {REPRODUCED}, got
    # P3's trend (issue 30): the smallest rung's gap minus the largest's, its 95% interval above 0
    assert statuses(gaps=(0.1, 0.2, 0.3))["P3"] == NOT_REPRODUCED             # the gap widens
    assert verdicts(gaps=(0.1, 0.1, 0.1))["P3"].parts["gap closes"] == INCONCLUSIVE       # stays: no closing shown
    assert verdicts(gaps=(0.1, 0.095, 0.09))["P3"].parts["gap closes"] == INCONCLUSIVE    # within the seed spread
    assert statuses(gaps=(-0.1, -0.2, -0.3))["P3"] == INCONCLUSIVE            # issue 13: nothing to close (precondition)
    assert verdicts(d2t_gaps=(0.2, 0.1, 0.0), gaps=(0.1, 0.1, 0.1))["P3"].parts["gap closes"] == REPRODUCED
    assert verdicts(d2t_gaps=(0.1, 0.1, 0.1), gaps=(0.2, 0.1, 0.0))["P3"].parts["gap closes"] == INCONCLUSIVE
    assert statuses(len_gain=-0.05)["P3"] == NOT_REPRODUCED
    assert statuses(len_gain=-0.01)["P3"] == INCONCLUSIVE                     # issue 13: below the 95% resolution
    assert statuses(k_gain=-0.05)["P1"] == NOT_REPRODUCED                     # below the hand-written prompt
    assert statuses(k_gain=-0.01)["P1"] == INCONCLUSIVE                       # issue 13: below the 95% resolution
    assert statuses(handwritten=0.78)["P1"] == REPRODUCED                     # issue 30: next month is not P1's
    assert statuses(prefix_gain=-0.05)["P2"] == NOT_REPRODUCED
    assert statuses(low_gain=-0.01)["P2"] == NOT_REPRODUCED
    assert statuses(adapter_loss=0.05)["A1"] == NOT_REPRODUCED


def test_issue14_preconditions_make_parts_inconclusive():
    """A task the frozen model already does, a run still improving at its cap, full FT at the ceiling: each makes
    the parts resting on it inconclusive (issue 14), whatever the effect."""
    v = verdicts(d2t_zero=0.55)                        # full FT only 5 points over the hand-written prompt
    assert v["P3"].parts["gap closes"] == INCONCLUSIVE and "adapt_full_minus_zeroshot" in v["P3"].reasons["gap closes"]
    v = verdicts(stuck={("prompt", "d2t")})            # prompt tuning never stopped improving
    assert v["P3"].parts["gap closes"] == INCONCLUSIVE
    assert v["P1"].parts["vs hand-written"] == REPRODUCED and "conv_still_improving" in v["P3"].reasons["gap closes"]
    v = verdicts(d2t_full=0.995, d2t_gaps=(0.3, 0.2, 0.0))   # full FT at the ceiling: a closing gap says little
    assert v["P3"].parts["gap closes"] == INCONCLUSIVE and "p3_full_max" in v["P3"].reasons["gap closes"]
    assert verdicts(stuck={("ptuning", "knowledge")}, k_gain=0.03)["P1"].parts["vs hand-written"] == INCONCLUSIVE
    assert verdicts(stuck={("full", "d2t")})["P2"].parts["largest rung"] == INCONCLUSIVE
    assert verdicts(prefix_gain=-0.05, stuck={("prefix", "d2t")})["P2"].parts["largest rung"] == INCONCLUSIVE
    v = verdicts(full=0.995, adapter_loss=0.0, n_test=400_000)   # equivalence at the ceiling cannot fail
    assert v["A1"].parts["next month"] == INCONCLUSIVE and "a1_full_score" in v["A1"].reasons["next month"]
    assert statuses(init_gain=0.05, stuck={("full", "knowledge")})["P3"] == REPRODUCED  # knowledge: reported


def test_one_sided_convergence_keeps_an_outcome_further_training_cannot_change():
    """Issue 14, after stop 25's run: an unconverged arm blocks its part only where its further training could change
    the outcome (a's runs move the difference up, b's down) -- stress-tested: its runs' scores raised towards 1, each
    alone and all together, since one seed's gain widens the interval as well as moving it."""
    from bench.report import stands
    v = verdicts(stuck={("ptuning", "knowledge")}, k_hand=0.2, k_gain=0.6)   # P-tuning (arm a) far above: stands
    assert v["P1"].parts["vs hand-written"] == REPRODUCED
    assert v["P1"].reasons["vs hand-written"].startswith("one-sided")
    assert [p.waived for p in v["P1"].preconditions if p.check.metric == "conv_still_improving"
            and p.outcome != REPRODUCED and p.check.part == "vs hand-written"] == [True]
    # 0.1 above the hand-written prompt: raising one P-tuning seed to 1 widens the interval across 0, so it blocks
    assert verdicts(stuck={("ptuning", "knowledge")})["P1"].parts["vs hand-written"] == INCONCLUSIVE
    assert verdicts(stuck={("full", "d2t")})["P2"].parts["largest rung"] == INCONCLUSIVE          # b up: blocks
    # A1's equivalence: adapters 5 points ahead and still improving. A shift keeps the interval out of the band
    # (`stands`), the stress test does not (one adapters seed at 1 widens it into the band): inconclusive
    v = verdicts(adapter_loss=-0.05, stuck={("adapters", "d2t")})
    effect = next(r for r in v["A1"].checks if r.check.part == "data-to-text")
    assert effect.outcome == NOT_REPRODUCED and stands(effect, "down")
    assert v["A1"].parts["data-to-text"] == INCONCLUSIVE
    assert verdicts(adapter_loss=-0.05, stuck={("full", "d2t")})["A1"].parts["data-to-text"] == INCONCLUSIVE
    assert verdicts(adapter_loss=0.0, n_test=400_000, stuck={("adapters", "nextmonth")})["A1"].parts["next month"] \
        == INCONCLUSIVE
    # a diverged run (NaN score) fails 'above' without a direction: never waived
    rec = synthetic(stuck={("prompt", "nextmonth")})
    df = rec.frame()
    nan = (df["metric"] == "accuracy") & (df["method"] == "prompt") & df["params"].str.contains('"phase":"main"') \
        & (df["seed"] == 0)
    df.loc[nan, "value"] = float("nan")
    assert verdict(get("P3"), df.assign(source="results")).parts["length ablation"] == INCONCLUSIVE
    # P3's ablations: the main prompt runs (a) up, the ablation configs (b) down
    v = verdicts(stuck={("prompt", "nextmonth")}, len_gain=0.1)
    assert v["P3"].parts["length ablation"] == INCONCLUSIVE and v["P3"].parts["gap closes"] == REPRODUCED


def test_next_lr_walks_the_1_3_10_sequence():
    from reproductions.scale.run import next_lr
    assert [next_lr(x, True) for x in (1e-3, 3e-3, 1e-2, 0.3)] == [3e-3, 1e-2, 3e-2, 1.0]
    assert [next_lr(x, False) for x in (1e-3, 3e-3, 1e-2, 1.0)] == [3e-4, 1e-3, 3e-3, 0.3]


# ------------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two random-init micro GPT-2s with the smoke world's tokenizer, saved like checkpoints (the --model path)."""
    from bench.data.tokenizer import train_tokenizer
    from bench.data.world import build_world
    tok = train_tokenizer(build_world("smoke").tokenizer_texts(), vocab_size=512)
    out = []
    for d in (16, 24):
        f = tmp_path_factory.mktemp(f"micro{d}")
        tiny_gpt2(d=d, layers=1, vocab=len(tok), seed=d).save_pretrained(f)
        tok.save_pretrained(f)
        out.append(str(f))
    return out


def _ctx(folders, out, **settings):
    from bench.profiles import get_profile
    from bench.repro import RunContext
    over = dict(methods=["full", "adapters", "prefix", "prompt", "ptuning"], k_steps=2, d_steps=2, n_steps=3,
                k_batch=8, d_batch=8, n_batch=8, n_per_person=1, eval_every=[1, 1, 1], patience=1, warmup=1,
                k_methods=None, d2t_methods=None, n_methods=None, k_rungs=None, d2t_rungs=None, d_eval_rows=3, d_val_rows=4, max_new_tokens=4,
                low_data_sizes=[8, 16], ablation_lengths=[1, 20], ablation_inits=["random", "labels"])
    over.update(settings)
    return RunContext(profile=get_profile("smoke"), seeds=(0, 1), out_dir=out, model=",".join(folders),
                      options={"settings": over})


@pytest.mark.integration
def test_run_and_report_end_to_end(folders, tmp_path, monkeypatch):
    from bench.schema import param, read_results
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "scale"
    rec = S.run(_ctx(folders, out))
    rec.save()
    S.report(out)
    df = read_results(out)
    main = df[(df["metric"] == "accuracy") & (param(df, "phase") == "main")]
    assert len(main) == 2 * 2 * 5 * 2 and main["value"].between(0, 1).all()   # tasks x rungs x methods x seeds
    assert set(main["data"].str.split("(").str[0]) == {"knowledge", "nextmonth"}
    assert set(df[df["metric"] == "bleu"]["method"]) == {"full", "adapters", "prefix", "prompt", "ptuning", S.ZERO_SHOT}
    # early stopping: every run records the steps it used (<= the cap), its flags and its curve
    steps = df[(df["metric"] == "steps_used") & (param(df, "phase") == "main")]
    assert len(steps) == 3 * 2 * 5 * 2 and (steps["value"] <= param(steps, "steps")).all()
    assert all(json.loads(i)["curve"] for i in steps["info"])
    assert set(df[df["metric"] == "still_improving_at_cap"]["value"]) <= {0, 1}
    # the lr search ran on both rungs (smallest and largest), every point a row, one pick per (rung, method, task)
    srch = df[df["metric"] == "lr_search_val_loss"]
    assert set(srch["model"]) == set(main["model"])
    picks = df[df["metric"] == "lr_search_pick_inside"]
    assert len(picks) == 2 * 5 * 3 and set(picks["value"]) <= {0, 1}
    selected = srch["info"].map(lambda x: json.loads(x).get("selected"))  # measured: in info, not params
    assert (selected == True).sum() == 2 * 5 * 3           # noqa: E712
    assert param(srch, "selected").isna().all()
    assert set(param(df[param(df, "phase") == "lowdata"], "size")) == {8, 16}
    stored = df[(df["metric"] == "stored_params") & (df["method"] == "prompt")]
    assert set(stored[param(stored, "phase") == "main"]["value"]) == {20 * 16, 20 * 24}          # n x d
    assert set(stored[param(stored, "num_virtual_tokens") == 1]["value"]) == {16}    # ablation n = 1, smallest rung
    assert len(df[df["metric"] == "adapt_full_minus_zeroshot"]) == 3 * 2                        # tasks x rungs
    for v in group_verdicts("scale", out):
        cid = v.claim.id
        assert v.status in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE), (cid, v.measured)
        assert all(r.n_rows > 0 for r in v.checks), (cid, v.measured)
    assert "P4" not in set(df["claim"])                                     # the serving group's (2026-12-07)
    assert set(df["scale"]) <= {"paper", "exact"}                           # user checkpoints, not the ladder
    for f in ("report.md", "summary.csv", "lowdata.png", "ablations.png"):
        assert (out / f).stat().st_size > 0, f
    text = (out / "report.md").read_text()
    assert "| P3 |" in text and "P4 mixed-task batches" not in text


@pytest.mark.integration
def test_job_cache_resumes_a_run_with_the_same_rows(folders, tmp_path, monkeypatch):
    """With the job cache on, a second run replays every finished training run: same rows, nothing trained."""
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    kw = dict(methods=["full", "prompt"], tasks=["nextmonth"], low_data_sizes=[], ablation_rungs=[],
              job_cache=True, caps=[["nextmonth", "prompt", "lower", 5]])
    first = S.run(_ctx(folders, tmp_path / "a", **kw))
    again = S.run(_ctx(folders, tmp_path / "b", **kw))
    assert first.notes["jobs_from_cache"] == 0 and again.notes["jobs_from_cache"] > 0
    pd.testing.assert_frame_equal(first.frame(), again.frame())
    steps = first.frame().query("metric == 'steps_used'").assign(cap=lambda d: d["params"].map(
        lambda p: json.loads(p)["steps"]))
    assert set(zip(steps["method"], steps["cap"])) == {("full", 3), ("prompt", 5), ("prompt", 3)}   # caps: 1st rung
    assert again.notes["chosen_lrs"] == first.notes["chosen_lrs"]
    monkeypatch.setenv("BENCH_SCALE_FRESH", "1")                  # a deciding run: every job trained afresh
    fresh = S.run(_ctx(folders, tmp_path / "c", **kw))
    assert fresh.notes["jobs_from_cache"] == 0
    pd.testing.assert_frame_equal(first.frame(), fresh.frame())


@pytest.mark.integration
def test_short_search_points_train_a_share_of_the_cap(folders, tmp_path, monkeypatch):
    """search_frac (the cpu profile's budget, issue 14): every search point trains that share of its cap with no
    early stop and records its wall; the sweep trains every seed at the pick afresh, to the full cap."""
    from bench.schema import param
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    kw = dict(methods=["full", "prompt"], tasks=["nextmonth"], low_data_sizes=[], ablation_rungs=[],
              n_steps=8, patience=1, min_frac=0.0, caps=[["nextmonth", "prompt", "lower", 12]])
    rec = S.run(_ctx(folders, tmp_path / "short", search_frac=0.5, **kw))
    df, tm = rec.frame(), rec.frame(timing=True)
    srch = df[df["metric"] == "lr_search_val_loss"]
    assert len(tm[tm["metric"] == "lr_search_run_wall_s"]) == len(srch) > 0      # every point, the picks too
    info = srch["info"].map(json.loads)
    assert (info.map(lambda i: i["steps_used"]) == param(srch, "steps")).all()    # no early stop
    small, large = rec.notes["rungs"]
    assert set(zip(srch["method"], srch["model"], param(srch, "steps"))) == {
        ("full", small, 4), ("full", large, 4), ("prompt", small, 6), ("prompt", large, 4)}   # prompt: own cap 12
    main = df[(df["metric"] == "steps_used") & (param(df, "phase") == "main")]
    assert len(main) == 2 * 2 * 2 and set(param(main, "steps")) == {8, 12}         # rungs x methods x seeds
    rec.save()
    S.report(tmp_path / "short")
    text = (tmp_path / "short" / "report.md").read_text()
    assert "every seed afresh at the pick" in text and f"the {len(srch)} learning-rate search points ran" in text
    long = S.run(_ctx(folders, tmp_path / "long", **kw))                  # full-run points: the pick is seed 0
    srch = long.frame()[long.frame()["metric"] == "lr_search_val_loss"]
    walls = long.frame(timing=True).query("metric == 'lr_search_run_wall_s'")
    assert len(walls) == len(srch) - 2 * 2 and set(param(srch, "steps")) == {8, 12}
    # full_search (the cpu profile's d2t, history 2026-12-07): that task's points are full runs whatever
    # search_frac says, from the task's own grid (grids)
    mixed = S.run(_ctx(folders, tmp_path / "mixed", search_frac=0.5, full_search=["nextmonth"], extend=0,
                       grids=[["nextmonth", "full", [0.01, 0.02]]], **kw))
    srch = mixed.frame()[mixed.frame()["metric"] == "lr_search_val_loss"]
    full = srch[srch["method"] == "full"]
    assert set(param(full, "lr")) == {0.01, 0.02} and set(param(srch, "steps")) == {8, 12}
    assert len(mixed.frame(timing=True).query("metric == 'lr_search_run_wall_s'")) == len(srch) - 2 * 2
    mixed.save()
    S.report(tmp_path / "mixed")
    assert "every point is a full run (early stopping)" in (tmp_path / "mixed" / "report.md").read_text()


@pytest.mark.integration
def test_two_worker_processes_give_the_same_rows_as_one(folders, tmp_path, monkeypatch):
    """The jobs run in spawned processes come back in plan order with the same numbers."""
    import pandas as pd
    monkeypatch.setenv("BENCH_NO_PROGRESS", "1")
    frames = []
    for w in (1, 2):
        monkeypatch.setenv("BENCH_CACHE", str(tmp_path / f"cache{w}"))   # each run does its own lr search
        rec = S.run(_ctx(folders, tmp_path / f"w{w}", methods=["prompt", "lora"], tasks=["knowledge"],
                         low_data_sizes=[], ablation_rungs=["smallest"], ablation_lengths=[1],
                         ablation_inits=["labels"], workers=w))
        assert rec.notes["workers"] == w
        frames.append(rec.frame())
    pd.testing.assert_frame_equal(frames[0], frames[1])
    # the largest rung's runs are dispatched first (less idle at the end), its rows still come last
    sizes = frames[0][frames[0]["metric"] == "rung_params"]["value"].tolist()
    assert len(sizes) == 2 and sizes == sorted(sizes)
    models = frames[0][frames[0]["params"].str.contains('"phase":"main"')]["model"].tolist()
    assert models == sorted(models, key=lambda m: sizes[0] if m == models[0] else sizes[1])


def test_workers_setting_is_checked(folders, tmp_path, monkeypatch):
    """$BENCH_WORKERS reaches the runner through bench.jobs.job_workers; a bad value fails before training."""
    monkeypatch.setenv("BENCH_WORKERS", "two")
    with pytest.raises(BenchError, match="BENCH_WORKERS"):
        S.run(_ctx(folders, tmp_path))
    monkeypatch.delenv("BENCH_WORKERS")
    with pytest.raises(BenchError, match=r"--set workers: got 0; accepts a finite number >= 1"):
        S.settings_for(_ctx(folders, tmp_path, workers=0))
    assert not any(tmp_path.iterdir())


def test_user_d2t_data_replaces_the_world_task(folders, tmp_path):
    """The paper-scale path for data: an E2E-style DatasetDict saved to disk is read in Li & Liang's format."""
    import datasets
    from bench.data.tokenizer import train_tokenizer
    mrs = ["name[The Vaults], eatType[pub]", "name[Aromi], food[Italian]", "name[Zizzi], area[riverside]"]
    refs = ["The Vaults is a pub .", "Aromi serves Italian food .", "Zizzi is by the riverside ."]
    split = datasets.Dataset.from_dict({"meaning_representation": mrs, "human_reference": refs})
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(tmp_path / "e2e"))
    tok = train_tokenizer(mrs + refs + ["||"], vocab_size=128)
    dd = S.d2t_from_disk(tmp_path / "e2e", tok)
    row = dd["test"][0]
    assert row["values"] == ["The Vaults", "pub"] and row["entity"] == 0 and row["prompt"].endswith("||")
    assert row["input_ids"][-1] == tok.eos_token_id and row["labels"][:len(row["prompt_ids"])] == [-100] * len(row["prompt_ids"])
    assert tok.decode(row["input_ids"][len(row["prompt_ids"]):-1]) == refs[0]
    ctx = _ctx(folders, tmp_path)
    ctx.options["d2t_data"] = str(tmp_path / "e2e")
    rc = S.load_rung(folders[0], ctx, S.settings_for(ctx), ["full"])
    assert rc.names["d2t"] == "d2t(e2e)" and len(rc.data["d2t"]["test"]) == 3
    with pytest.raises(BenchError, match="cannot read"):
        S.d2t_from_disk(tmp_path / "missing", tok)


def test_method_kwargs_are_the_presets_with_rung_sizes(folders, tmp_path):
    """LoRA r / alpha come from bench.methods.presets (capped at the width); the group adds the rung's sizes."""
    from bench.methods.presets import LORA_ALPHA, LORA_R
    ctx = _ctx(folders, tmp_path)
    s = S.settings_for(ctx)
    rc = S.load_rung(folders[0], ctx, s, ["full"])                     # width d = 16
    assert (s.lora_r, s.lora_alpha) == (LORA_R, LORA_ALPHA)
    assert S.method_kwargs("lora", s, rc) == {"r": min(LORA_R, 16), "alpha": LORA_ALPHA}
    assert S.method_kwargs("adapters", s, rc) == {"size": 16 // s.adapter_ratio}
    assert S.method_kwargs("full", s, rc) == {} and S.method_kwargs("bitfit", s, rc) == {}
    assert S.method_kwargs("prompt", s, rc, n=5, init="random") == {"num_virtual_tokens": 5, "init": "random"}
    assert S.method_kwargs("prompt", s, rc)["init_token_ids"] == tuple(rc.label_ids)


def test_bad_input_fails_before_training(folders, tmp_path):
    with pytest.raises(BenchError, match="unknown setting"):
        S.run(_ctx(folders, tmp_path, method=["full"]))
    with pytest.raises(BenchError, match="unknown method"):
        S.run(_ctx(folders, tmp_path, methods=["dora"]))
    with pytest.raises(BenchError, match="does not exist"):
        S.run(_ctx([str(tmp_path / "nope")], tmp_path))
    with pytest.raises(BenchError, match="listed twice"):
        S.run(_ctx([folders[0], folders[0]], tmp_path))
    with pytest.raises(BenchError, match="search rung"):
        S.run(_ctx(folders, tmp_path, search_rungs=["cpu-5m"]))
    with pytest.raises(BenchError, match="eval_every"):
        S.run(_ctx(folders, tmp_path, eval_every=[1, 1]))
    with pytest.raises(BenchError, match="rungs must be every, lower"):
        S.run(_ctx(folders, tmp_path, caps=[["nextmonth", "prompt", "lowr", 5]]))
    with pytest.raises(BenchError, match="caps entries"):
        S.run(_ctx(folders, tmp_path, caps=[["nextmonth", "dora", "lower", 5]]))
    with pytest.raises(BenchError, match="search_frac"):
        S.run(_ctx(folders, tmp_path, search_frac=0))
    with pytest.raises(BenchError, match="full_search"):
        S.run(_ctx(folders, tmp_path, full_search=["sst2"]))
    with pytest.raises(BenchError, match="grids entries"):
        S.run(_ctx(folders, tmp_path, grids=[["d2t", "full", [0.0]]]))
    assert not any(tmp_path.iterdir())


def test_module_contract():
    from bench.ladder import LADDERS
    from bench.repro import load_group
    mod = load_group("scale")
    assert mod.GROUP == "scale" and set(mod.CLAIMS) == {"P1", "P2", "P3", "A1"}
    assert all(len(b) in (3, 4) for b in mod.REGRESS) and callable(mod.run) and callable(mod.report)
    for cid in mod.CLAIMS:
        assert get(cid).group == "scale" and get(cid).checks and get(cid).rule, cid
    cpu = S.SETTINGS["cpu"]
    assert len(LADDERS["cpu"]) >= 5 and set(cpu.methods) == set(S.METHODS)
    assert (cpu.prefix_len, cpu.prompt_len, cpu.prompt_init) == (10, 20, "labels")
    assert cpu.low_data_sizes == () and cpu.ablation_lengths == (1, 20) and cpu.ablation_task == "nextmonth"
    assert cpu.search_rungs == ("smallest", "cpu-1m", "largest") and cpu.replica is None and cpu.job_cache
    assert S.TREND_RUNGS[-1] == "cpu-1m" and set(S.TREND_RUNGS) < set(cpu.rungs)   # P3's trend searches its ends
    assert cpu.seed_count("nextmonth") == 5 and cpu.seed_count("knowledge") is None
    # issue 30: P2's arms on the largest rung only, with their own seeds; P3's trend on d2t over three rungs
    names = list(cpu.rungs)
    assert len(names) == 4 and {"full", "prompt", "prefix"} <= set(cpu.d2t_methods) and cpu.d2t_rungs is None
    assert [S.seeds_in(cpu, names, "prefix", "d2t", n, 3) for n in names] == [0, 0, 0, 10]
    assert [S.seeds_in(cpu, names, "full", "d2t", n, 3) for n in names] == [cpu.seed_count("d2t")] * 3 + [10]
    assert [S.seeds_in(cpu, names, "prompt", "d2t", n, 3) for n in names] == [cpu.seed_count("d2t")] * 3 + [0]
    assert cpu.seed_count("d2t") >= 3 and all(S.cap_for(cpu, names, "full", "d2t", n) == 3000 for n in S.TREND_RUNGS)
    assert S.cap_for(cpu, names, "full", "d2t", "cpu-5m") is None                 # P2's full FT keeps its cap
    assert (cpu.k_steps, cpu.d_steps) == (1000, 1500) and cpu.n_steps >= 1000     # issue 14: caps >= 10x 100 / 150
    assert not S.SETTINGS["smoke"].job_cache                                     # the regression gate measures
    assert set(S.SETTINGS["gpu"].ablation_inits) == {"random", "vocab", "labels"} and set(cpu.ablation_inits) == {"labels"}
    assert ("d2t", "prefix", "every", 3000) in cpu.caps and S.cap_for(cpu, ["a", "b"], "prompt", "nextmonth", "a") == 6000
    assert max(S.LR_GRIDS["prompt"]) > 10 * max(S.LR_GRIDS["full"])          # prompts need much larger rates
    # P2's arms searched with full runs from grids the stored searches bracket (history 2026-12-07); the rest short
    assert cpu.search_share("d2t") is None and cpu.search_share("nextmonth") == cpu.search_frac == 0.25
    assert S.grid(cpu, "prefix", "d2t") == (3e-4, 1e-3, 3e-3) and S.grid(cpu, "full", "d2t") == (1e-5, 3e-5, 1e-4, 3e-4)
    assert S.grid(cpu, "prompt", "d2t") == (0.03, 0.1, 0.3)
    assert S.grid(cpu, "prefix", "knowledge") == S.LR_GRIDS["prefix"] and S.grid(cpu, "full") == S.LR_GRIDS["full"]


# ------------------------------------------------------------------------------------------------ design (issue 30)

def test_the_report_says_whether_a_run_fits_its_profiles_budget():
    from reproductions.scale.report import budget_lines
    meta = {"profile": "cpu", "wall_s": 100 * 60.0, "hardware": "cpu:X x2", "jobs_from_cache": 0}
    assert "took 100 min on cpu:X x2: within it, with every job trained in the run: a deciding run" in \
        budget_lines(meta)[0]
    assert "over it: not a deciding run" in budget_lines({**meta, "wall_s": 121 * 60.0})[0]
    assert "within it, with 3 jobs from the cache: not a deciding run" in budget_lines({**meta, "jobs_from_cache": 3})[0]
    assert budget_lines({**meta, "profile": "smoke"}) == [] and budget_lines({"profile": "cpu"}) == []


def test_underpowered_parts_and_no_task_with_room_are_inconclusive_with_the_reason():
    v = verdicts(underpowered={("P2", "largest rung"), ("A1", "next month")}, room=0)
    assert v["P2"].parts["largest rung"] == INCONCLUSIVE and v["P2"].parts["low data"] == REPRODUCED
    assert "underpowered at this scale" in v["P2"].reasons["largest rung"]
    assert v["A1"].parts["next month"] == INCONCLUSIVE and "underpowered" in v["A1"].reasons["next month"]
    assert v["P3"].parts["gap closes"] == INCONCLUSIVE and "design_task_with_room" in v["P3"].reasons["gap closes"]
    assert v["P3"].parts["length ablation"] == REPRODUCED
    v = verdicts(k_hand=0.1)                           # the hand-written prompt near chance (0.07): not LAMA's setting
    assert v["P1"].parts["vs hand-written"] == INCONCLUSIVE and "p1_handwritten_minus_chance" in v["P1"].reasons[
        "vs hand-written"]


def test_the_cpu_plan_runs_exactly_the_parts_its_design_powers():
    """The cpu profile runs a part iff its design power reaches 0.8 (else 'underpowered at this scale'), so the
    settings cannot drift from the design; the power is seeded (the same rows on every machine) and can fail."""
    rows = design.design(S.SETTINGS["cpu"], 3)
    got = {(d["claim"], d["part"]): (d["runs"], d["power"] >= design.POWER_TARGET) for d in rows}
    assert all(runs == powered for runs, powered in got.values()), got
    assert got[("P2", "largest rung")] == (1, True) and got[("P2", "low data")] == (0, False)
    p2 = next(d for d in rows if d["part"] == "largest rung")
    assert p2["seeds"] == 10 and p2["needed_seeds"] <= 10
    # P2's noise: only the runs whose learning rates came from full-length searches (history 2026-12-08)
    assert p2["noise_from"] == "5ea3e6d+2eac8f8"
    trend = next(d for d in rows if d["part"] == "gap closes")     # P3's trend on d2t, sized by the pilot's noise
    assert trend["runs"] and trend["seeds"] >= 3 and trend["noise_from"] == "fb4faf8"
    assert trend["effect"] == pytest.approx(trend["arms"]["a"]["mean"])   # the whole smallest-rung gap closing
    ablation = next(d for d in rows if d["part"] == "length ablation")
    assert ablation["runs"] and ablation["seeds"] == 5     # the ablation arm runs the main runs' 5 seeds
    # full-length search points are planned runs: each arm's other starting points (prefix 2, full FT 3), at its
    # stored wall
    short = next(d for d in design.design(replace(S.SETTINGS["cpu"], full_search=()), 3) if d["part"] == "largest rung")
    arms = p2["arms"]
    assert p2["minutes"] - short["minutes"] == pytest.approx((2 * arms["a"]["wall_s"] + 3 * arms["b"]["wall_s"]) / 60)
    # a profile without named rungs (gpu: the whole ladder) runs the trend; a seed cell naming a rung is read
    gpu = next(d for d in design.design(S.SETTINGS["gpu"], 3) if d["part"] == "gap closes")
    assert gpu["runs"] == 1
    named = replace(S.SETTINGS["cpu"], seed_cells=S.SETTINGS["cpu"].seed_cells + (("d2t", "prefix", "cpu-5m", 12),))
    assert next(d for d in design.design(named, 3) if d["part"] == "largest rung")["seeds"] == 12
    # seeded: P2's part computed again (alone: the other parts' noise left out) gives the same numbers; each part
    # draws from its own seeded generator, so one part stands for all and costs an eighth of the whole design
    design._part_power.cache_clear()                # computed afresh, not read from the in-process memo
    noise = design.load_noise()
    p2_only = {**noise, "parts": {"P2/largest rung": noise["parts"]["P2/largest rung"]}}
    again = design.design(S.SETTINGS["cpu"], 3, p2_only)
    assert [(d["power"], d["fpr"], d["needed_seeds"]) for d in again] == [(p2["power"], p2["fpr"], p2["needed_seeds"])]
    three = design.design(S.SETTINGS["smoke"], 3, p2_only)   # the same noise at 3 seeds: P2 would be underpowered
    assert three[0]["part"] == "largest rung" and three[0]["power"] < design.POWER_TARGET
    assert design.room()["d2t"]["room"] == 1 and not design.room()["nextmonth"]["room"]


def test_pooled_noise_adds_seeds_and_pools_the_within_run_spread():
    """Two stored runs of one part: seeds add up, the mean is seed-weighted, the sd is the pooled within-run sd (a
    shift between the runs' means is not seed noise), wall time and items are the later run's."""
    arm = lambda mean, sd, n, wall: {"mean": mean, "sd": sd, "n": n, "items": 600, "model": "m", "wall_s": wall}  # noqa: E731
    old = {"from": "a", "parts": {"P3/length ablation": {"a": arm(0.6, 0.01, 3, 100.0), "b": arm(0.1, 0.0, 3, 20.0)}},
           "room": {"nextmonth": {"rungs": 5, "room": 0}}}
    new = {"from": "b", "parts": {"P3/length ablation": {"a": arm(0.4, 0.15, 3, 60.0), "b": arm(0.1, 0.02, 1, float("nan"))}},
           "room": {"knowledge": {"rungs": 2, "room": 0}}}
    got = design.pool_noise([old, new])
    a, b = got["parts"]["P3/length ablation"]["a"], got["parts"]["P3/length ablation"]["b"]
    assert got["from"] == "a+b" and a["n"] == 6 and abs(a["mean"] - 0.5) < 1e-12
    assert abs(a["sd"] - ((2 * 0.01 ** 2 + 2 * 0.15 ** 2) / 4) ** 0.5) < 1e-12 and a["wall_s"] == 60.0
    assert b["n"] == 4 and b["sd"] == 0.0 and b["wall_s"] == 20.0     # a one-seed run adds no spread; no wall: older
    assert set(got["room"]) == {"nextmonth", "knowledge"}


def test_p3_trend_rows_are_per_seed_gaps_tagged_with_the_rungs_place():
    """Issue 30: 'gap closes' reads one row per rung and seed (full FT minus prompt tuning of that seed), tagged
    smallest / middle / largest among the rungs that ran both; seeds only one method ran give none; a diverged run
    gives a NaN row (never dropped)."""
    frame = S.runs_frame(synthetic(d2t_gaps=(0.3, 0.2, 0.1)).frame())
    rows = [(p["place"], p["seed"], model, v) for c, m, v, p, model in S.derive(frame)
            if m == "p3_gap_seed" and p["task"] == "d2t"]
    assert sorted((pl, sd, mo) for pl, sd, mo, _ in rows) == sorted(
        (pl, sd, mo) for pl, mo in (("smallest", "r1"), ("middle", "r2"), ("largest", "r3")) for sd in (0, 1, 2))
    got = {(pl, sd): v for pl, sd, _, v in rows}
    assert got[("smallest", 0)] == pytest.approx(0.3 - 0.02) and got[("largest", 2)] == pytest.approx(0.1 + 0.04)
    frame.loc[(frame["task"] == "d2t") & (frame["method"] == "prompt") & (frame["seed"] == 1) & (frame["model"] == "r1")
              & (frame["metric"] == "bleu"), "value"] = float("nan")
    extra = frame[(frame["task"] == "d2t") & (frame["method"] == "full") & (frame["seed"] == 0)].assign(seed=7)
    rows = {(p["place"], p["seed"]): v for c, m, v, p, model in S.derive(pd.concat([frame, extra]))
            if m == "p3_gap_seed" and p["task"] == "d2t"}
    assert math.isnan(rows[("smallest", 1)]) and ("smallest", 7) not in rows and len(rows) == 9
    facts = {m: v for c, m, v, p, model in S.derive(frame) if m in ("p3_gap_rungs", "p3_full_max")
             and p["task"] == "d2t"}
    assert facts == {"p3_gap_rungs": 3, "p3_full_max": pytest.approx(0.6)}
    # convergence rows say whether their rung is on the trend (ran both methods on the task): prefix-only rungs not
    conv = {(p["task"], p["method"], model): p["trend"] for c, m, v, p, model in S.derive(frame)
            if m == "conv_still_improving" and p["of_phase"] == "main"}
    assert conv[("d2t", "full", "r1")] == conv[("d2t", "prompt", "r3")] == 1 and conv[("d2t", "prefix", "r3")] == 1
    no_prompt_on_r3 = frame[~((frame["task"] == "d2t") & (frame["method"] == "prompt") & (frame["model"] == "r3"))]
    conv = {(p["task"], p["method"], model): p["trend"] for c, m, v, p, model in S.derive(no_prompt_on_r3)
            if m == "conv_still_improving" and p["of_phase"] == "main"}
    assert conv[("d2t", "full", "r3")] == 0 and conv[("d2t", "full", "r2")] == 1


def test_seed_cells_give_one_method_its_own_seeds_on_some_rungs():
    """Settings.seed_cells (issue 30): the last matching entry wins over seed_counts; 0 leaves the method out there;
    the design reads them by place (names None)."""
    s = replace(S.SETTINGS["cpu"], seed_counts=(("d2t", 4),),
                seed_cells=(("d2t", "prefix", "every", 0), ("d2t", "prefix", "largest", 9), ("d2t", "full", "c", 9)))
    names = ["a", "b", "c"]
    assert [S.seeds_in(s, names, "prefix", "d2t", n, 3) for n in names] == [0, 0, 9]
    assert [S.seeds_in(s, names, "full", "d2t", n, 3) for n in names] == [4, 4, 9]
    assert S.seeds_in(s, names, "full", "knowledge", "a", 3) == 3
    assert S.seeds_in(s, None, "prefix", "d2t", "largest", 3) == 9 and S.seeds_in(s, None, "prefix", "d2t", "smallest", 3) == 0
    with pytest.raises(BenchError, match="seed_cells entries"):
        S.settings_for(_ctx_with(seed_cells=(("d2t", "prefix", "every", -1),)))


def _ctx_with(**over):
    from bench.repro import RunContext
    from bench.profiles import PROFILES
    return RunContext(profile=PROFILES["cpu"], seeds=(0,), out_dir=None, options={"settings": over})


def test_the_trend_part_is_powered_from_per_seed_gaps_on_its_end_rungs():
    """design.measure_noise: P3's 'gap closes' arms are the per-seed gaps on the smallest and the largest rung that
    ran both methods; it is powered for the whole smallest-rung gap closing; --parts keeps only the named parts."""
    rec = synthetic(d2t_gaps=(0.3, 0.2, 0.1))
    frame = rec.frame()
    walls = frame[frame["metric"] == "bleu"].assign(metric="run_wall_s", value=10.0)
    noise = design.measure_noise(frame, walls, "x")
    arms = noise["parts"]["P3/gap closes"]
    assert arms["a"]["mean"] == pytest.approx(0.3) and arms["b"]["mean"] == pytest.approx(0.1)
    assert arms["a"]["sd"] == pytest.approx(0.02) and arms["a"]["n"] == 3 and arms["a"]["rungs"] == 3
    assert arms["a"]["trend_wall_s"] == pytest.approx(60.0) and arms["b"]["wall_prompt_s"] == pytest.approx(10.0)
    assert noise["room"]["d2t"]["room"] == 1 and noise["room"]["d2t"]["rungs"] == 3
    only = design.measure_noise(frame, walls, "x", parts=("P2/largest rung",))
    assert set(only["parts"]) == {"P2/largest rung"}
    with pytest.raises(ValueError, match="unknown part"):
        design.measure_noise(frame, walls, "x", parts=("P9/nothing",))
    s = replace(S.SETTINGS["cpu"], rungs=("a", "b", "c"), d2t_rungs=None, d2t_methods=("full", "prompt"),
                seed_counts=(("d2t", 3),), seed_cells=())
    row = next(d for d in design.design(s, 3, {**noise, "parts": {"P3/gap closes": arms}}) if d["part"] == "gap closes")
    assert row["runs"] == 1 and row["effect"] == pytest.approx(0.3) and row["power"] > 0.9
    # minutes: 3 seeds of both methods on every rung, plus each search rung's other starting points per method
    # (full FT's d2t grid has 4, prompt tuning's 3)
    assert row["minutes"] == pytest.approx((3 * 60.0 + 2 * (3 + 2) * 10.0) / 60)
    assert not design.design(replace(s, rungs=("a", "c")), 3, {**noise, "parts": {"P3/gap closes": arms}})[0]["runs"]


def test_the_pilot_is_the_cpu_profile_cut_down_to_p3s_trend():
    """reproductions.scale.pilot (issue 30): the deciding run's settings but for the trend's task, methods, rungs and
    seeds, so its noise and walls are the plan's."""
    from dataclasses import fields
    from reproductions.scale import pilot
    p, cpu = pilot.pilot_settings(), S.SETTINGS["cpu"]
    changed = {f.name for f in fields(p) if getattr(p, f.name) != getattr(cpu, f.name)}
    assert changed <= {"rungs", "tasks", "d2t_methods", "d2t_rungs", "seed_counts", "seed_cells"}, changed
    assert p.tasks == ("d2t",) and set(p.d2t_methods) == {"full", "prompt"} and len(p.rungs) == 3
    assert S.seeds_in(p, list(p.rungs), "full", "d2t", p.rungs[-1], 1) == pilot.SEEDS == 3
