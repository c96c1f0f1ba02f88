"""reproductions/decoder/tasks.py on the real SmolLM2 weights (dequantized from its 4-bit GGUF) cut to 2 layers,
tiny sets: the label-word loss against a hand computation, left padding for every method, rows per (task,
method, seed), the frozen arm, early stopping's restored weights, and one-line errors for bad settings."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from bench import BenchError, decoder
from bench.profiles import get_profile
from bench.repro import RunContext
from bench.schema import Recorder
from bench.train import collate
from reproductions.decoder import tasks as T
from reproductions.decoder.settings import SETTINGS, settings_for
from tests.reproductions.decoder.tiny import needs_smollm2

pytestmark = needs_smollm2
SMALL = replace(SETTINGS["smoke"], layers=2, task_seeds=None, task_train=8, task_val=4, task_test=6, task_batch=4, max_steps=2,
                eval_every=1, patience=1)


@pytest.fixture(scope="module")
def cut2():
    """(the real model cut to 2 layers, eval mode; its tokenizer; the tiny task splits)."""
    lm, tok, _ = decoder.load_decoder(None, layers=2)
    return lm.eval(), tok, T.load_tasks(tok, SMALL)


def test_label_words_are_single_tokens_and_the_prompt_keeps_its_suffix(cut2):
    _, tok, data = cut2
    assert T.word_ids(tok, "sentiment") != T.word_ids(tok, "remapped")
    tail = tok(T.PROMPT[1], add_special_tokens=False)["input_ids"]
    ids = T.encode(tok, ["word " * 200], 16)[0]
    assert len(ids) == 16 and ids[-len(tail):] == tail          # the snippet's end is cut, not the suffix
    assert all(len(r["input_ids"]) <= SMALL.max_length for rows in data.values() for r in rows)
    assert {len(v) for v in data.values()} == {8, 4, 6}


def test_loss_is_the_two_word_cross_entropy_at_each_rows_last_token(cut2):
    lm, tok, data = cut2
    words = T.word_ids(tok, "remapped")
    rows = data["train"][:3]
    b = collate(rows)                                            # right-padded, rows of different lengths
    assert len({len(r["input_ids"]) for r in rows}) > 1
    out = T.LabelWords(lm, words)(b["input_ids"], b["attention_mask"], b["labels"])
    with torch.no_grad():
        alone = torch.stack([lm(input_ids=torch.tensor([r["input_ids"]])).logits[0, -1, list(words)] for r in rows])
    y = torch.tensor([r["labels"] for r in rows])
    hand = -torch.log_softmax(alone, -1)[torch.arange(3), y].mean()
    torch.testing.assert_close(out.logits.detach(), alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.loss.detach(), hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(F.cross_entropy(out.logits, y), out.loss)


@pytest.mark.parametrize("method", T.METHODS)
def test_a_padded_batch_scores_each_row_as_alone_for_every_method(cut2, method):
    lm, tok, data = cut2
    torch.manual_seed(0)
    m = T.LabelWords(T.apply(copy.deepcopy(lm), T.method_config(method)), T.word_ids(tok, "remapped"))
    m.eval()
    rows = data["test"][:4]
    b = collate(rows)
    with torch.no_grad():
        batch = m(b["input_ids"], b["attention_mask"]).logits
        alone = torch.cat([m(torch.tensor([r["input_ids"]]), torch.ones(1, len(r["input_ids"]), dtype=torch.long))
                           .logits for r in rows])
    torch.testing.assert_close(batch, alone, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def parts(cut2, tmp_path_factory):
    """tasks_part on the cut model: 4 methods x 2 seeds on `remapped`, LoRA x 1 seed on the reference; (rec, runs,
    settings, the base model's weights before)."""
    lm, tok, _ = cut2
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    rec = Recorder(group="decoder", profile="smoke", out_dir=tmp_path_factory.mktemp("tasks"), claims=["P2"])
    s = replace(SMALL, task_methods=("full", "lora", "prompt", "prefix"), ref_methods=("lora",), ref_seeds=1)
    return rec, T.tasks_part(rec, lm, tok, s, (0, 1), {"model": "smollm2-test"}), s, before


def test_tasks_part_gives_rows_per_task_method_and_seed_and_the_frozen_arm(cut2, parts):
    lm, tok, _ = cut2
    rec, runs, s, before = parts
    df = rec.frame()
    acc = df[df["metric"] == "accuracy"]
    key = lambda r: (json.loads(r["params"])["task"], r["method"], r["seed"])
    got = sorted(key(r) for _, r in acc.iterrows())
    want = sorted([("remapped", m, sd) for m in s.task_methods for sd in (0, 1)] + [("sentiment", "lora", 0)]
                  + [(t, "zeroshot", -1) for t in ("remapped", "sentiment")])
    assert got == want and set(df["claim"]) == {"-", "P2", "P3"} and set(df["scale"]) == {"real"}   # no adapters: no A1
    diff = df[df["metric"] == "p2_prefix_minus_full"]
    assert len(diff) == 1 and json.loads(diff["params"].iloc[0])["task"] == "remapped"   # full ran on remapped only
    lo, hi = json.loads(diff["info"].iloc[0])["ci95"]
    assert lo <= diff["value"].iloc[0] <= hi
    assert all(json.loads(i)["weights"] == "dequantized from a 4-bit GGUF" for i in df["info"])
    for metric in ("steps_used", "still_improving_at_cap", "trainable_params", "final_train_loss", "val_loss"):
        assert (df["metric"] == metric).sum() == 9, metric
    assert (df["metric"] == "test_loss").sum() == 11                          # the frozen arm's too
    # the adaptation precondition where full FT ran (not on the reference here), convergence per (task, method)
    adapt = df[df["metric"].str.startswith("adapt_full_minus_zeroshot")]
    assert {json.loads(p)["task"] for p in adapt["params"]} == {"remapped"} and len(adapt) == 2
    zs = acc[(acc["method"] == "zeroshot")]
    full = acc[(acc["method"] == "full")]["value"].mean()
    assert adapt[adapt["metric"] == "adapt_full_minus_zeroshot"]["value"].iloc[0] == pytest.approx(
        full - zs[zs["params"].str.contains('"task":"remapped"')]["value"].iloc[0])
    assert (df["metric"] == "conv_still_improving").sum() == 5
    assert len(runs) == 11 and all("model" not in r for r in runs)
    # the frozen arm equals scoring the base model, and training left the base model untouched
    z = T.zero_shot(lm, T.word_ids(tok, "sentiment"), T.load_tasks(tok, s)["test"], 3)
    assert zs[zs["params"].str.contains('"task":"sentiment"')]["value"].iloc[0] == pytest.approx(z["accuracy"])
    assert all(torch.equal(p, before[n]) for n, p in lm.named_parameters())


@pytest.mark.integration
def test_two_workers_give_the_same_rows_as_one(cut2, tmp_path):
    lm, tok, _ = cut2
    s = replace(SMALL, task_methods=("full", "prefix"), ref_methods=("lora",), task_seeds=1)
    frames = []
    for workers in (1, 2):
        rec = Recorder(group="decoder", profile="smoke", out_dir=tmp_path / str(workers), claims=["P2"])
        T.tasks_part(rec, lm, tok, replace(s, task_workers=workers), (0,), {"model": "m"})
        frames.append(rec.frame()[["claim", "metric", "method", "seed", "params", "value"]])
    got, want = frames[1], frames[0]
    assert got.drop(columns="value").equals(want.drop(columns="value"))   # plan order, whatever the workers
    assert (got["value"] - want["value"]).abs().max() < 1e-6


def test_report_section_and_plot_from_the_runs(parts, tmp_path):
    import pandas as pd
    from reproductions.decoder.report import task_table, tasks_figure, tasks_section
    rec, runs, s, _ = parts
    frame = pd.DataFrame(runs)
    t = task_table(frame)
    assert [(r.task, r.method, r.seeds) for r in t.itertuples()] == [
        ("remapped", m, 2) for m in ("full", "lora", "prompt", "prefix")] + [("sentiment", "lora", 1)]
    assert ((t["lo"] <= t["acc"]) & (t["acc"] <= t["hi"])).all() and (t["steps"] <= s.max_steps).all()
    tasks_figure(t, tmp_path / "tasks.png")
    assert (tmp_path / "tasks.png").stat().st_size > 0
    text = "\n".join(tasks_section(frame, rec.frame(), {"settings": {"max_steps": s.max_steps}}))
    assert "Weights dequantized from 4-bit" in text and "tasks.png" in text and "not a trend" in text
    assert "| remapped | prefix | 2 |" in text


def test_early_stopping_restores_the_best_validation_weights(cut2, monkeypatch):
    lm, tok, data = cut2
    monkeypatch.setitem(T.LR, "lora", 0.5)         # far too large: validation loss jumps around
    s = replace(SMALL, max_steps=6, eval_every=1, patience=2)
    r = T.train_task(lm, T.word_ids(tok, "remapped"), data, "lora", 0, s)
    steps, values = zip(*r["val_curve"])
    best = min(range(len(values)), key=values.__getitem__)
    assert r["best_step"] == steps[best] and r["val_loss"] == pytest.approx(values[best])
    assert r["restored_best"] == (r["best_step"] != r["steps_used"])
    assert r["restored_best"] and r["stopped_early"]         # this seed's run: best early, then patience ran out
    assert r["stopped_early"] == (r["steps_used"] < s.max_steps)
    again = T.evaluate(r["model"], data["validation"], 4)
    assert again["loss"] == pytest.approx(values[best], abs=1e-5)    # the restored weights score the best value
    assert len(r["loss_curve"]) == r["steps_used"]


@pytest.mark.parametrize("bad, words", [({"task_methods": ["lora"]}, "must include full"),
                                        ({"task_methods": ["full", "nope"]}, "methods come from"),
                                        ({"task_val": 0}, "task_val: got 0"),
                                        ({"max_length": 4}, "max_length >= 8")])
def test_bad_task_settings_fail_with_one_line(tmp_path, bad, words):
    ctx = RunContext(profile=get_profile("smoke"), seeds=(0,), out_dir=tmp_path, options={"settings": bad})
    with pytest.raises(BenchError, match=words) as e:
        settings_for(ctx)
    assert "\n" not in str(e.value)


def test_words_and_lengths_that_cannot_work_fail_with_one_line(cut2, monkeypatch):
    _, tok, _ = cut2
    with pytest.raises(BenchError, match="no room for the snippet"):
        T.encode(tok, ["a review"], 3)
    monkeypatch.setitem(T.WORDS, "remapped", (" red", " antidisestablishmentarianism"))
    with pytest.raises(BenchError, match="single tokens"):
        T.word_ids(tok, "remapped")
