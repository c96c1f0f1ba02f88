"""Methods compared at one real size (issue 35 item 5): label-word classification on SmolLM2-135M.

Each Rotten Tomatoes snippet (bench.data.rotten_tomatoes, split by movie) becomes the prompt
"Review: <snippet>\\nSentiment:"; the model's answer is read from the logits of two label-word tokens at the last
prompt position (prediction = argmax of the two, loss = cross-entropy over the two). Two tasks share the
snippets and the prompt and differ in the label words only:
- `sentiment`: rotten -> " negative", fresh -> " positive": the frozen model already does it (0.78 zero-shot in
  the issue's pilot): the "little to adapt" reference;
- `remapped`: rotten -> " red", fresh -> " blue": words without sentiment, so the frozen model is near chance (the
  zero-shot rows say how near) and a method has to learn the mapping: the task with room to adapt. Picked before
  any training among single-token pairs by the frozen model on the cpu profile's 200 test snippets (2026-12-06):
  red/blue 0.50 (it says " blue" for 16%), apple/orange 0.51, cat/dog 0.375, A/B 0.405, yes/no 0.54.

Methods (reproductions.decoder.lora.METHODS: full, LoRA r = 8 on q, v, prompt tuning 20 tokens, prefix tuning
10 tokens; plus adapters, bench.methods' preset) train with bench.train.train: AdamW, a constant lr after a
short warmup, batch `task_batch`, validation loss every `eval_every` steps, early stopping after `patience`
evaluations without a better validation loss, a cap `max_steps`, the best evaluation's weights restored. The
learning rates are the real group's (reproductions.real.settings.LR, chosen in its MiniLM pilot; not tuned on
this decoder). The frozen model's zero-shot accuracy is the fixed reference arm (seed -1).
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.data import rotten_tomatoes as rt
from bench.methods import apply, make_config, trainable_parameters
from bench.methods.common import positions_skipping_left_padding
from bench.methods.presets import preset
from bench.train import TrainConfig, train
from reproductions.decoder.lora import METHODS as LLAMA_METHODS
from reproductions.real.settings import LR as REAL_LR

PROMPT = ("Review: ", "\nSentiment:")
WORDS = {"sentiment": (" negative", " positive"), "remapped": (" red", " blue")}   # index = label (0 rotten, 1 fresh)
REFERENCE = "sentiment"                         # the little-to-adapt reference task
METHODS = (*LLAMA_METHODS, "adapters")
LR = {m: REAL_LR[m] for m in METHODS}           # the real group's pilot (MiniLM), see the module docstring
ZERO_SHOT = "zeroshot"
PAIRS = (("P2", "p2_prefix_minus_full", "prefix", "full"), ("P3", "p3_gap_full_minus_prompt", "full", "prompt"),
         ("A1", "a1_full_minus_adapters", "full", "adapters"))   # (claim, metric, a, b): a - b in test accuracy


def method_config(method: str):
    """Our MethodConfig of `method`: the decoder group's presets (lora.py), adapters at bench.methods' preset."""
    if method in LLAMA_METHODS:
        return make_config(method, **LLAMA_METHODS[method][0])
    name, kw = preset(method)
    return make_config(name, **kw)


def word_ids(tok, task: str) -> tuple[int, int]:
    """The two label words' token ids; BenchError unless each is one token of this tokenizer."""
    ids = [tok(w, add_special_tokens=False)["input_ids"] for w in WORDS[task]]
    if any(len(i) != 1 for i in ids):
        raise BenchError(f"decoder tasks: label words {WORDS[task]} must be single tokens, got {ids}")
    return ids[0][0], ids[1][0]


def encode(tok, texts: list[str], max_length: int) -> list[list[int]]:
    """Prompt token ids per snippet, at most max_length tokens: the snippet's end is cut so that the prefix
    "Review: " and the suffix "\\nSentiment:" always stay (the answer follows the suffix)."""
    head, tail = (tok(p, add_special_tokens=False)["input_ids"] for p in PROMPT)
    room = max_length - len(head) - len(tail)
    if room < 1:
        raise BenchError(f"decoder tasks: max_length {max_length} leaves no room for the snippet (prompt takes "
                         f"{len(head) + len(tail)} tokens)")
    return [head + tok(t, add_special_tokens=False)["input_ids"][:room] + tail for t in texts]


def load_tasks(tok, s) -> dict:
    """{split: [{"input_ids", "labels"}]}: seeded subsamples (task_train / task_val / task_test snippets) of
    the Rotten Tomatoes split by movie (split seed s.task_seed); the same rows serve both tasks."""
    dd = rt.load(tok, s.task_seed, s.max_length)
    sizes = {"train": s.task_train, "validation": s.task_val, "test": s.task_test}
    out = {}
    for split, n in sizes.items():
        ds = rt.subsample(dd[split], n, s.task_seed)
        out[split] = [{"input_ids": ids, "labels": y}
                      for ids, y in zip(encode(tok, ds["text"], s.max_length), ds["label"])]
    return out


class LabelWords(nn.Module):
    """A causal LM (any of our methods applied) read as a 2-way classifier through two label-word tokens.

    forward(input_ids (B, T) right-padded, attention_mask (B, T), labels (B,) or (B, T) with the class repeated,
    as bench.train.collate gives it) -> .logits (B, 2): the two words' logits at each row's last real token;
    .loss: mean cross-entropy over them (nats). Rows are moved to left padding with positions counted from each
    row's first token (bench.methods keeps a left-padded row's logits equal to the row alone), so the last
    position is every row's answer position and the LM head runs there only (logits_to_keep=1)."""

    def __init__(self, lm: nn.Module, words: tuple[int, int]):
        super().__init__()
        self.lm = lm
        self.register_buffer("words", torch.tensor(words), persistent=False)

    def forward(self, input_ids, attention_mask, labels=None, **_):
        B, T = input_ids.shape
        shift = T - attention_mask.sum(1, keepdim=True)                          # (B, 1) pads per row
        src = (torch.arange(T, device=input_ids.device) - shift) % T             # (B, T) right -> left padding
        ids, mask = input_ids.gather(1, src), attention_mask.gather(1, src)
        pos = positions_skipping_left_padding(mask, 0)                           # (B, T)
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1, use_cache=False)
        logits = out.logits[:, -1, :].index_select(-1, self.words).float()      # (B, 2)
        loss = None
        if labels is not None:
            y = labels[:, 0] if labels.dim() == 2 else labels                     # (B,)
            loss = F.cross_entropy(logits, y)
        return SimpleNamespace(loss=loss, logits=logits)


@torch.no_grad()
def evaluate(model: LabelWords, rows: list[dict], batch: int) -> dict:
    """accuracy, loss (mean cross-entropy over the two words, nats), correct (N,) 0/1; batches sorted by
    length (less padding; the result does not depend on the order)."""
    from bench.train import collate
    was = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    logits = torch.zeros(len(rows), 2)
    dev = next(model.parameters()).device
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        b = collate([rows[i] for i in idx])
        logits[idx] = model(b["input_ids"].to(dev), b["attention_mask"].to(dev)).logits.cpu()
    model.train(was)
    y = torch.tensor([r["labels"] for r in rows])
    correct = (logits.argmax(1) == y).numpy().astype(np.int8)
    return {"accuracy": float(correct.mean()), "loss": float(F.cross_entropy(logits, y)), "correct": correct}


def train_task(lm, words: tuple[int, int], data: dict, method: str, seed: int, s) -> dict:
    """One run: `method` on a deep copy of lm (init seeded by `seed`; lm itself is left unchanged), early stopping
    on the validation loss, the best weights restored, scored on test. Returns the run's settings, measurements
    and the trained LabelWords model ("model")."""
    torch.manual_seed(seed)                     # the method's init (as reproductions.decoder.lora.adapt)
    inner = apply(copy.deepcopy(lm), method_config(method))
    model = LabelWords(inner, words)
    n_train, n_total = trainable_parameters(inner)
    ev = lambda m: {f"val_{k}": v for k, v in evaluate(m, data["validation"], s.task_batch).items() if k != "correct"}
    cfg = TrainConfig(lr=LR[method], steps=s.max_steps, batch_size=s.task_batch, warmup=s.warmup, decay="constant",
                      betas=(0.9, 0.999), eval_every=s.eval_every, patience=s.patience, monitor="val_loss",
                      seed=seed, progress=False)
    res = train(model, data["train"], cfg, eval_fn=ev)
    test = evaluate(model, data["test"], s.task_batch)
    losses = [h["loss"] for h in res.history]
    return {"method": method, "seed": seed, "lr": LR[method], "trainable_params": n_train, "total_params": n_total,
            "test_accuracy": test["accuracy"], "test_loss": test["loss"], "correct": test["correct"],
            "steps_used": res.steps_done, "best_step": res.best_step, "stopped_early": res.stopped_early,
            "still_improving_at_cap": bool(res.still_improving), "restored_best": res.restored_best,
            "diverged_at": res.diverged_at, "val_loss": res.best_value,
            "val_accuracy": res.final.get("val_accuracy", math.nan), "train_loss_at_best": res.train_loss_at_best,
            "final_train_loss": res.final.get("final_loss", math.nan), "val_curve": res.val_curve,
            "loss_curve": losses, "step_time_s": res.step_time_s, "wall_s": res.wall_s, "model": model}


def zero_shot(lm, words: tuple[int, int], rows: list[dict], batch: int) -> dict:
    """The frozen model on `rows`: accuracy, loss, correct (the fixed reference arm)."""
    return evaluate(LabelWords(lm, words), rows, batch)


def _thin(xs: list, most: int = 100) -> list:
    """At most `most` evenly spaced points of a curve (the last kept), rounded for info."""
    step = max(1, math.ceil(len(xs) / most))
    return [round(float(x), 4) for x in xs[::step]]


def plan(s, seeds) -> list[tuple[str, str, int]]:
    """The jobs (task, method, seed): task_methods on the first task_seeds seeds of `remapped`, then ref_methods on
    the first ref_seeds seeds of the reference."""
    return ([("remapped", m, sd) for m in s.task_methods for sd in seeds[:s.task_seeds]]      # [:None]: every seed
            + [(REFERENCE, m, sd) for m in s.ref_methods for sd in seeds[:s.ref_seeds]])


def job_env(model: str | None, s, lm=None, tok=None) -> dict:
    """What every job reads (bench.jobs.ENV): settings, the decoder and its tokenizer, the task splits. A worker
    loads the decoder itself (bench.decoder's cached fp32 checkpoint), once."""
    if lm is None:
        from bench import decoder
        lm, tok, _ = decoder.load_decoder(model, layers=s.layers)
    return {"s": s, "lm": lm.eval(), "tok": tok, "data": load_tasks(tok, s)}


def run_job(job) -> dict:
    """One (task, method, seed) run in this process (bench.jobs.ENV from job_env); picklable, without the model."""
    from bench import jobs
    task, method, seed = job
    env = jobs.ENV
    with torch.random.fork_rng(devices=[]):
        r = train_task(env["lm"], word_ids(env["tok"], task), env["data"], method, seed, env["s"])
    del r["model"]
    return r


def tasks_part(rec, lm, tok, s, seeds, common: dict, progress=None, model: str | None = None) -> list[dict]:
    """Every (task, method, seed) run (bench.jobs.JobRunner: `task_workers` one-thread processes, or this one;
    results in plan order, so the worker count never changes the rows) and the frozen arm per task, as rows
    (claim "-"; `accuracy` on the test snippets, named as the scale group's so the engine's one-sided stress test
    applies: the replicates of the decoder track's P2 / P3 / A1 Effects) plus, per task, full FT minus zero-shot
    and that over its SE (the `needs_adaptation` precondition), per (task, method) the runs still improving at
    the cap, and under P2 / P3 / A1 the seed-mean differences their rules read (info: the 95% interval,
    bench.stats.diff_interval) and the trainable share of prefix tuning and adapters. `model`: what workers load
    (--model). Returns one dict per run (tasks.csv)."""
    from bench import jobs
    from bench.stats import diff_interval
    from reproductions.decoder.rows import WEIGHTS
    from reproductions.scale.derive import _ratio as ratio
    env = job_env(model, s, lm, tok)
    data, todo, workers = env["data"], plan(s, seeds), jobs.job_workers(s.task_workers)
    try:
        with jobs.JobRunner(setup=job_env, args=(model, s), workers=workers, env=env if workers <= 1 else None) as jr:
            results = dict(zip(todo, jr.map(run_job, todo, progress=progress, desc="decoder: task runs")))
    finally:
        jobs.ENV.clear()
    runs = []
    for task in ("remapped", REFERENCE):
        base = {"task": task, "words": "/".join(w.strip() for w in WORDS[task]), "task_seed": s.task_seed,
                "n_train": len(data["train"]), "n_val": len(data["validation"]), "n_test": len(data["test"]),
                "max_length": s.max_length, "layers": s.layers}
        kw = dict(model=common["model"], data="rotten_tomatoes", scale="real")

        def add(metric, value, unit, method, seed=None, params=None, info=None):
            rec.add("-", metric, value, unit=unit, method=method, seed=seed, params={**base, **(params or {})},
                    info={**(info or {}), "weights": WEIGHTS}, **kw)

        zs = zero_shot(lm, word_ids(tok, task), data["test"], s.task_batch)
        add("accuracy", zs["accuracy"], "accuracy", ZERO_SHOT)
        add("test_loss", zs["loss"], "nats", ZERO_SHOT)
        runs.append({"task": task, "method": ZERO_SHOT, "seed": -1, "test_accuracy": zs["accuracy"],
                     "test_loss": zs["loss"]})
        got = {(m, sd): r for (t, m, sd), r in results.items() if t == task}
        methods = list(dict.fromkeys(m for m, _ in got))
        task_seeds = list(dict.fromkeys(sd for _, sd in got))
        for (method, seed), r in got.items():
            p = {"lr": r["lr"], "max_steps": s.max_steps, "eval_every": s.eval_every, "patience": s.patience,
                 "warmup": s.warmup, "batch": s.task_batch}
            info = {k: r[k] for k in ("best_step", "stopped_early", "restored_best", "diverged_at", "val_accuracy",
                                      "step_time_s", "wall_s")}
            info |= {"val_curve": [(st, round(v, 4)) for st, v in r["val_curve"]], "loss_curve": _thin(r["loss_curve"])}
            add("accuracy", r["test_accuracy"], "accuracy", method, seed, p, info)   # on test
            for metric, unit in (("test_loss", "nats"), ("val_loss", "nats"), ("train_loss_at_best", "nats"),
                                 ("final_train_loss", "nats"), ("steps_used", "steps"),
                                 ("still_improving_at_cap", "flag"), ("trainable_params", "params")):
                add(metric, float(r[metric]), unit, method, seed, p)
            runs.append({"task": task, **{k: v for k, v in r.items() if k not in ("correct", "val_curve",
                                                                                  "loss_curve")}})
        full = [got[("full", sd)]["test_accuracy"] for sd in task_seeds if ("full", sd) in got]
        if full:   # the scale group's precondition: full FT vs the frozen model, seeds + binomial error of test items
            iv = diff_interval(full, [zs["accuracy"]], len(data["test"]), b_fixed=True)
            se = math.hypot(iv.se_seeds, iv.se_items)
            add("adapt_full_minus_zeroshot", iv.est, "accuracy", "-", info={"zeroshot": zs["accuracy"]})
            add("adapt_full_minus_zeroshot_over_se", ratio(iv.est, se), "ratio", "-", info={"se": se})
        for claim, metric, a, b in PAIRS:       # the claims' own rows (the engine decides a claim that has rows)
            pa = [got[(a, sd)]["test_accuracy"] for sd in task_seeds if (a, sd) in got]
            pb = [got[(b, sd)]["test_accuracy"] for sd in task_seeds if (b, sd) in got]
            if pa and pb:
                iv = diff_interval(pa, pb, len(data["test"]))
                rec.add(claim, metric, iv.est, unit="accuracy", method="-", params=base,
                        info={"ci95": [iv.lo, iv.hi], "seeds": len(pa), "weights": WEIGHTS}, **kw)
        for method in [m for m in ("prefix", "adapters") if m in methods]:
            r = got[(method, task_seeds[0])]
            rec.add("P2" if method == "prefix" else "A1", f"{method}_trainable_pct",
                    100.0 * r["trainable_params"] / r["total_params"], unit="%", method=method, params=base,
                    info={"weights": WEIGHTS}, **kw)
        for method in methods:
            flags = [got[(method, sd)]["still_improving_at_cap"] for sd in task_seeds if (method, sd) in got]
            add("conv_still_improving", float(max(flags)), "flag", method, params={"of_phase": "main"},
                info={"runs_still_improving": int(sum(flags)), "runs": len(flags)})
    return runs
