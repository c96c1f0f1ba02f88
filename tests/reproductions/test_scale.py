"""Tests of reproductions/scale/ (claims P1, P2, P3, P4, A1; P4's mixed-task batches are tested in
tests/methods/test_multitask_p4.py): the derived metrics and the registry's rules on them (both ways), the lr choice, and one reduced end-to-end
run over a list of tiny saved checkpoints (the --model path) with its cache and report."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from bench import BenchError
from bench.claims import get
from bench.report import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, group_verdicts, verdict
from bench.schema import Recorder
from reproductions import scale as S


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
    assert S.ablation_configs(S.SETTINGS["cpu"]) == [(1, "labels"), (5, "labels"), (100, "labels"),
                                                     (20, "random"), (20, "vocab")]


# ------------------------------------------------------------------------------------------------ rules

RUNGS = (("r1", 100_000), ("r2", 1_000_000), ("r3", 10_000_000))


def synthetic(gaps=(0.2, 0.1, 0.0), pt_gain=0.05, handwritten=0.1, adapter_loss=0.005, prefix_gain=0.0,
              low_gain=0.02, len_gain=0.05, init_gain=0.03, n_test=4000, prefix_loss=0.1) -> Recorder:
    """Per-run rows with known structure, as the harness records them (seed noise +-0.01); every trained run
    also records its final training loss (0.1; prefix tuning's: prefix_loss), accuracies their n_test items."""
    rec = Recorder(group="scale", profile="smoke", out_dir=None, claims=list(S.CLAIMS))
    def add(phase, model, P, task, method, seed, metric, value, **extra):
        info = {"n_test": n_test} if metric == "accuracy" else {}
        rec.add("-", metric, value, model=model, method=method, seed=seed, info=info,
                params={"phase": phase, "task": task, "rung_params": P, **extra})
        if seed is not None and metric in ("accuracy", "bleu"):
            rec.add("-", "final_train_loss", prefix_loss if method == "prefix" else 0.1, model=model, method=method,
                    seed=seed, params={"phase": phase, "task": task, "rung_params": P, **extra})
    for (name, P), gap in zip(RUNGS, gaps):
        add("zeroshot", name, P, "knowledge", S.ZERO_SHOT, None, "accuracy", handwritten)
        for seed in (0, 1, 2):
            e = 0.01 * (seed - 1)
            k = {"full": 0.5, "prompt": 0.5 - gap, "ptuning": 0.5 - gap + pt_gain, "adapters": 0.5 - adapter_loss}
            for m, v in k.items():
                extra = {"num_virtual_tokens": 20, "init": "labels"} if m == "prompt" else {}
                add("main", name, P, "knowledge", m, seed, "accuracy", v + e, **extra)
            for m, v in {"full": 0.6, "prefix": 0.6 + prefix_gain, "adapters": 0.6 - adapter_loss}.items():
                add("main", name, P, "d2t", m, seed, "bleu", v + e)
            add("main", name, P, "d2t", "adapters", seed, "stored_pct", 2.1)
            add("main", name, P, "d2t", "prefix", seed, "stored_pct", 0.6)
    top, P = RUNGS[-1]
    for size in (50, 100, 200, 500):
        for seed in (0, 1, 2):
            add("lowdata", top, P, "d2t", "full", seed, "bleu", 0.3 + 0.01 * seed, size=size)
            add("lowdata", top, P, "d2t", "prefix", seed, "bleu", 0.3 + low_gain + 0.01 * seed, size=size)
    for name, P in (RUNGS[0], RUNGS[-1]):
        base = 0.5 - dict(zip([r for r, _ in RUNGS], gaps))[name]
        for seed in (0, 1, 2):
            add("ablation", name, P, "knowledge", "prompt", seed, "accuracy", base - len_gain,
                num_virtual_tokens=1, init="labels")
            add("ablation", name, P, "knowledge", "prompt", seed, "accuracy", base - init_gain,
                num_virtual_tokens=20, init="random")
    for claim, metric, value, p, model in S.derive(S.runs_frame(rec.frame())):
        info = {k: p.pop(k) for k in S.DERIVED_MEASURED if k in p}
        rec.add(claim, metric, value, model=model, params=p, info=info)
    for m in ("prompt", "lora"):
        rec.add("P4", f"p4_{m}_mixed_max_abs_diff", 1e-7, method=m, scale="exact")
        rec.add("P4", "p4_serving_params_ratio", 0.5, method=m, scale="exact")
    return rec


def statuses(throughput=1.2, **kw) -> dict:
    df = synthetic(**kw).frame().assign(source="results")
    timing = df.iloc[:1].assign(claim="P4", metric="p4_mixed_examples_per_s_over_per_task", value=throughput,
                                params="{}", source="timings")
    df = pd.concat([df, timing], ignore_index=True)
    return {c: verdict(get(c), df).status for c in S.CLAIMS}


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
    got = {(m, p.get("task"), p.get("role"), model): v for _, m, v, p, model in
           S.derive(S.runs_frame(synthetic().frame()))}
    assert got[("p3_gap_spearman_vs_log_params", "knowledge", None, "-")] == pytest.approx(-1.0)
    assert got[("p3_gap_drop_over_spread", "knowledge", None, "-")] == pytest.approx(0.2 / math.sqrt(2 * 0.01 ** 2))
    assert got[("p1_ptuning_minus_handwritten", "knowledge", None, "r1")] == pytest.approx(0.5 - 0.2 + 0.05 - 0.1)
    assert got[("a1_full_minus_adapters_over_margin", "d2t", None, "r3")] == pytest.approx(0.005 / 0.02)
    assert got[("p2_lowdata_prefix_minus_full_mean", "d2t", None, "r3")] == pytest.approx(0.02)
    assert got[("p3_ablation_len20_minus_len1", "knowledge", "smaller", "r1")] == pytest.approx(0.05)
    assert got[("p3_ablation_labels_minus_random", "knowledge", "larger", "r3")] == pytest.approx(0.03)
    assert got[("a1_adapters_stored_pct", None, None, "r3")] == pytest.approx(2.1)


def test_registry_rules_decide_both_ways():
    got = statuses(adapter_loss=0.0, init_gain=0.05)
    # A1: the paper's +-0.4-point band is below what 4000 test items resolve (issue 13: inconclusive, not a pass)
    assert got.pop("A1") == INCONCLUSIVE and set(got.values()) == {REPRODUCED}
    assert statuses(gaps=(0.1, 0.1, 0.1))["P3"] == NOT_REPRODUCED             # no closing
    assert statuses(gaps=(0.1, 0.095, 0.09))["P3"] == NOT_REPRODUCED          # closes within the seed spread
    assert statuses(gaps=(-0.1, -0.2, -0.3))["P3"] == INCONCLUSIVE            # issue 13: nothing to close (precondition)
    assert statuses(len_gain=-0.05)["P3"] == NOT_REPRODUCED
    assert statuses(len_gain=-0.01)["P3"] == INCONCLUSIVE                     # issue 13: below the 95% resolution
    assert statuses(handwritten=0.45)["P1"] == NOT_REPRODUCED                 # below the hand-written prompt
    assert statuses(pt_gain=-0.05)["P1"] == NOT_REPRODUCED
    assert statuses(pt_gain=-0.01)["P1"] == INCONCLUSIVE                      # issue 13: below the 95% resolution
    assert statuses(prefix_loss=2.0)["P2"] == INCONCLUSIVE                    # issue 13: prefix underfit (20x loss)
    assert statuses(throughput=0.5)["P4"] == NOT_REPRODUCED                   # issue 13: throughput is a part
    assert statuses(prefix_gain=-0.05)["P2"] == NOT_REPRODUCED
    assert statuses(low_gain=-0.01)["P2"] == NOT_REPRODUCED
    assert statuses(adapter_loss=0.05)["A1"] == NOT_REPRODUCED
    rec = synthetic()
    rec.add("P4", "p4_lora_mixed_max_abs_diff", 1e-3, method="lora", scale="exact")
    assert verdict(get("P4"), rec.frame()).status == NOT_REPRODUCED


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
    over = dict(methods=["full", "adapters", "prefix", "prompt", "ptuning"], k_steps=2, d_steps=2, k_batch=8,
                d_batch=8, d_eval_rows=3, d_val_rows=4, max_new_tokens=4, low_data_sizes=[8, 16],
                ablation_lengths=[1, 20], ablation_inits=["random", "labels"], p4_per_task=3, p4_rounds=1)
    over.update(settings)
    return RunContext(profile=get_profile("smoke"), seeds=(0, 1), out_dir=out, model=",".join(folders),
                      options={"settings": over})


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
    assert len(main) == 2 * 5 * 2 and main["value"].between(0, 1).all()   # rungs x methods x seeds
    assert set(df[df["metric"] == "bleu"]["method"]) == {"full", "adapters", "prefix", "prompt", "ptuning", S.ZERO_SHOT}
    srch = df[df["metric"] == "lr_search_val_loss"]
    assert len(srch) == sum(len(S.SMOKE_GRIDS[m]) for m in main["method"].unique()) * 2
    selected = srch["info"].map(lambda x: json.loads(x).get("selected"))  # measured: in info, not params
    assert (selected == True).sum() == 5 * 2               # noqa: E712  one per method and task
    assert param(srch, "selected").isna().all()
    assert set(param(df[param(df, "phase") == "lowdata"], "size")) == {8, 16}
    stored = df[(df["metric"] == "stored_params") & (df["method"] == "prompt")]
    assert set(stored[param(stored, "phase") == "main"]["value"]) == {20 * 16, 20 * 24}          # n x d
    assert set(stored[param(stored, "num_virtual_tokens") == 1]["value"]) == {16, 24}            # ablation n = 1
    for v in group_verdicts("scale", out):   # results.csv and timings.csv (P4's throughput part)
        cid = v.claim.id
        assert v.status in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE), (cid, v.measured)
        assert all(r.n_rows > 0 for r in v.checks), (cid, v.measured)
    p4 = df[df["claim"] == "P4"]
    assert (p4[p4["metric"].str.endswith("max_abs_diff")]["value"] <= 1e-5).all()
    assert set(df[df["claim"] != "P4"]["scale"]) <= {"paper", "exact"}      # user checkpoints, not the ladder
    for f in ("report.md", "summary.csv", "metric_vs_params.png", "gap_vs_params.png", "lowdata.png", "ablations.png"):
        assert (out / f).stat().st_size > 0, f
    text = (out / "report.md").read_text()
    assert "| P3 |" in text and "Learning-rate search" in text and "P4 mixed-task batches" in text
    # the search is cached: a second (reduced) run reuses it and picks the same learning rate
    rec2 = S.run(_ctx(folders, tmp_path / "again", methods=["full"], tasks=["knowledge"], low_data_sizes=[],
                      ablation_rungs=[], p4=False))
    assert rec2.notes["lr_search"] == {"full/knowledge": "cached"}
    assert rec2.notes["chosen_lrs"]["full/knowledge"] == rec.notes["chosen_lrs"]["full/knowledge"]


def test_two_worker_processes_give_the_same_rows_as_one(folders, tmp_path, monkeypatch):
    """The jobs run in spawned processes come back in plan order with the same numbers, P4's kept parts included."""
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
    p4 = frames[1][frames[1]["claim"] == "P4"]
    assert len(p4) and all("trained" in p for p in p4["params"])   # the workers' trained prompt / LoRA


def test_workers_setting_is_checked(folders, tmp_path, monkeypatch):
    """$BENCH_WORKERS reaches the runner through bench.jobs.job_workers; a bad value fails before training."""
    monkeypatch.setenv("BENCH_WORKERS", "two")
    with pytest.raises(BenchError, match="BENCH_WORKERS"):
        S.run(_ctx(folders, tmp_path))
    monkeypatch.delenv("BENCH_WORKERS")
    with pytest.raises(BenchError, match="workers must be >= 1"):
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
        S.run(_ctx(folders, tmp_path, search_rung="cpu-5m"))
    assert not any(tmp_path.iterdir())


def test_module_contract():
    from bench.ladder import LADDERS
    from bench.repro import load_group
    mod = load_group("scale")
    assert mod.GROUP == "scale" and set(mod.CLAIMS) == {"P1", "P2", "P3", "P4", "A1"}
    assert all(len(b) in (3, 4) for b in mod.REGRESS) and callable(mod.run) and callable(mod.report)
    for cid in mod.CLAIMS:
        assert get(cid).group == "scale" and get(cid).checks and get(cid).rule, cid
    cpu = S.SETTINGS["cpu"]
    assert len(LADDERS["cpu"]) >= 5 and set(cpu.methods) == set(S.METHODS)
    assert (cpu.prefix_len, cpu.prompt_len, cpu.prompt_init) == (10, 20, "labels")
    assert cpu.low_data_sizes == (50, 100, 200, 500) and cpu.ablation_lengths == (1, 5, 20, 100)
    assert set(cpu.ablation_inits) == {"random", "vocab", "labels"}
    assert max(S.LR_GRIDS["prompt"]) > 10 * max(S.LR_GRIDS["full"])          # prompts need much larger rates
