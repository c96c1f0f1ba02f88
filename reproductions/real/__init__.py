"""A real pretrained model on real text: all-MiniLM-L6-v2 + Rotten Tomatoes sentiment (claims L4, A1, P2, L5,
A2, L3, Q4, Q5 at scale `real`).

Task: binary sentiment of critic snippets (bench.data.rotten_tomatoes: split by movie with a stated seed, then
seeded subsamples per profile). Model: MiniLM's encoder, mean-pooled, with a linear head (bench.realmodel); the
head trains for every method, full fine-tuning trains everything. Methods: full, lora, rslora, adapters,
prefix, prompt, ptuning, bitfit (ours, bench.methods), each on every seed, plus a LoRA rank sweep.

Training: bench.train.train with a constant lr after a short warmup; the validation split is scored every
`eval_every` steps and a run stops when validation accuracy has not improved for `patience` evaluations, or at
the cap `max_steps`; the best checkpoint (by validation accuracy, then loss) is restored and scored on test.
A run whose last evaluation was still its best at the cap is flagged (`still_improving_at_cap`, measured).
Accuracy intervals: 95% bootstrap over test items and seeds (both resampled), fixed generator.
Training memory: weights + gradients + AdamW states of the trainable parameters + activations saved for
backward on one batch of `memory_batch` rows x `memory_tokens` tokens (live tensors, storages deduplicated),
deterministic. Step time (timings.csv): median wall time of an optimizer step.

Outliers and int8 (Q5, Q4): every LayerNorm output feeds a Linear in BERT (embeddings -> q/k/v, attention
output -> FFN input, FFN output -> next q/k/v / the head); the census reads the 13 LayerNorm outputs on test
snippets (real tokens only). Int8 (bench.numerics.int8_linear, every Linear but the head) on the fully
fine-tuned seed-0 model: test accuracy, mean KL(fp32 || int8) of the class distribution, and the mean cosine of
the pretrained encoder's mean-pooled embeddings; bitsandbytes' Linear8bitLt(threshold=6) is the reference.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench import BenchError
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder

GROUP = "real"
CLAIMS = ("L4", "A1", "P2", "L5", "A2", "L3", "Q4", "Q5")
SCALE = "real"
METHODS = ("full", "lora", "rslora", "adapters", "prefix", "prompt", "ptuning", "bitfit")
INT8_METHODS = ("absmax", "zeropoint", "vectorwise", "llm_int8")
THRESHOLD = 6.0
# Bands for `bench regress` (smoke profile): (pattern, atol, rtol, reason), first match wins. Counts, bytes and
# the split are exact; accuracies move in steps of 1/96, and another CPU's float order can flip a few borderline
# items or one early-stopping decision.
REGRESS = [
    ("*trainable_params", 0.0, 0.0, "parameter counts are exact"),
    ("*_pct", 1e-9, 0.0, "ratios of exact counts"),
    ("adapter_bytes", 512.0, 0.0, "widened from 0 (2026-11-30): the saved folder's config records the base "
                                  "model's path (inside the checkout's virtualenv), so the size moves by the path's "
                                  "length between checkouts (+2 bytes from /work/main to /tmp/ciclone); a tensor "
                                  "more or less moves it by >= 1 KB"),
    ("split_*", 0.0, 0.0, "the split is a seeded shuffle of movie names"),
    ("*memory_bytes", 0.0, 0.01, "live-tensor bytes; activation storages depend only on shapes"),
    ("*ratio_vs_full", 0.0, 0.01, "ratios of byte counts"),
    ("l4_memory_nondecreasing", 0.0, 0.0, "a property of byte counts"),
    ("steps_used", 6.0, 0.0, "early stopping may move by one evaluation (6 steps on smoke) on another float path"),
    ("still_improving_at_cap", 1.0, 0.0, "a 0/1 flag that can flip with one evaluation"),
    ("q4_kl_*", 1e-3, 0.2, "small KLs of a fine-tuned model, relative noise is large"),
    ("q4_emb_cos_*", 1e-3, 0.0, "cosines of a fixed pretrained encoder, float-order noise only"),
    ("*accuracy*", 0.06, 0.0, "96 test items (64 for int8): a few borderline items may flip on another CPU"),
    ("*_points", 12.0, 0.0, "difference of two accuracies in points, each +-6 points"),
    ("*_minus_*", 0.1, 0.0, "difference of two accuracies, each +-0.06"),
    ("*_loss", 0.02, 0.1, "losses after early stopping, float-order sensitive"),
    ("l5_*", 1e-4, 0.0, "merge error is float rounding (~1e-6); mismatches and extra params are 0"),
    ("q5_*", 0.0, 1e-3, "census of a fixed pretrained model on fixed snippets"),
    ("q4_*", 0.06, 0.0, "int8 prediction flips on 64 items"),
    ("*", 0.05, 0.1, "anything else: derived from the rows above"),
]


@dataclass(frozen=True)
class Settings:
    split_seed: int = 0
    max_length: int = 64
    train_rows: int | None = 2000     # seeded subsample of the train split (None = all ~9,400)
    val_rows: int = 400
    test_rows: int = 1000
    batch: int = 32
    max_steps: int = 150              # cap
    eval_every: int = 25
    patience: int = 2                 # evaluations without a better validation accuracy
    warmup: int = 10
    methods: tuple[str, ...] = METHODS
    ranks: tuple[int, ...] = (1, 4, 16, 64)   # LoRA sweep (r = 8 is the main LoRA run)
    rank_seeds: int = 1               # seeds per sweep rank (the first n of the run's seeds)
    census_rows: int = 256
    quant_rows: int | None = None     # test rows for int8 (None = the whole test subsample)
    bootstrap: int = 1000
    memory_batch: int = 32
    memory_tokens: int = 64
    bnb: bool = True
    workers: int = 2                  # processes for the training runs ($BENCH_WORKERS overrides)


SETTINGS = {
    # CI: 192 training snippets, 12-step capped runs (starved on purpose: it checks the machinery, not the claims).
    "smoke": Settings(train_rows=192, val_rows=64, test_rows=96, batch=8, max_steps=12, eval_every=6,
                      patience=1, warmup=2, ranks=(64,), census_rows=48, quant_rows=64, bootstrap=200,
                      memory_batch=4, memory_tokens=32, max_length=48, workers=1),
    # Pilot (2 workers, machine at load ~3 from other jobs): 150-step runs took 190-320 s, best validation at step
    # 100-125, full FT 79.5%, LoRA 79.9%, prompt 76.2%, prefix 76.5%; hence the cap of 120 steps (~1.9 epochs).
    "cpu": Settings(max_steps=120, eval_every=20, val_rows=300, quant_rows=500),
    "gpu": Settings(train_rows=None, val_rows=800, test_rows=None, max_steps=1500, eval_every=100, patience=3,
                    ranks=(1, 2, 4, 16, 32, 64), rank_seeds=3),
}

LR = {"full": 5e-5, "lora": 1e-3, "rslora": 1e-3, "adapters": 1e-3, "prefix": 1e-3, "prompt": 1e-2,
      "ptuning": 3e-3, "bitfit": 1e-3}
CONFIG = {"full": {}, "lora": {"r": 8, "alpha": 16.0}, "rslora": {"r": 8, "alpha": 16.0, "rslora": True},
          "adapters": {"size": 64}, "prefix": {"num_virtual_tokens": 10}, "prompt": {"num_virtual_tokens": 20},
          "ptuning": {"num_virtual_tokens": 20}, "bitfit": {}}


class _Stop(Exception):
    """Raised from the eval hook when validation stopped improving (early stopping)."""


def settings_for(ctx: RunContext) -> Settings:
    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    bad = [m for m in s.methods if m not in METHODS]
    if bad or "full" not in s.methods:
        raise BenchError(f"real: methods must include full and come from {', '.join(METHODS)}; got {s.methods}")
    if s.max_steps < 1 or s.eval_every < 1 or s.patience < 1 or any(r < 1 or r > 384 for r in s.ranks):
        raise BenchError("real: need max_steps, eval_every, patience >= 1 and ranks in 1..384")
    return s


def _threads() -> int:
    return max(1, int(os.environ.get("BENCH_THREADS", "1")))


def method_config(method: str, r: int | None = None):
    from bench.methods import make_config
    name = "lora" if method == "rslora" else method
    kw = dict(CONFIG[method])
    if r is not None:
        kw["r"] = r
    return make_config(name, **kw)


# ============================================================================================ evaluation

@torch.no_grad()
def predict(model, ds, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 2), pooled embeddings or None) in the order of ds; batches sorted by length."""
    from bench.train import collate
    rows = [{"input_ids": r} for r in ds["input_ids"]]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    probs = np.zeros((len(rows), 2))
    was = model.training
    model.eval()
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        b = collate([rows[i] for i in idx])
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        probs[idx] = torch.softmax(out.logits.float(), -1).numpy()
    model.train(was)
    return probs


def scores(probs: np.ndarray, labels) -> dict:
    from bench.metrics import load
    y = np.asarray(labels)
    pred = probs.argmax(1)
    acc = load("accuracy").compute(predictions=pred.tolist(), references=y.tolist())["accuracy"]
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return {"accuracy": float(acc), "loss": loss, "correct": (pred == y).astype(np.int8)}


def bootstrap_ci(correct: np.ndarray, n: int, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of `correct` (seeds x items), resampling seeds and items with replacement."""
    S, N = correct.shape
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    for b in range(n):
        si = rng.integers(0, S, S)
        ii = rng.integers(0, N, N)
        means[b] = correct[np.ix_(si, ii)].mean()
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


# ============================================================================================ training

def _trained_state(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model, state: dict) -> None:
    own = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(t)


def file_bytes(model) -> int:
    from bench.methods import save_trained
    with tempfile.TemporaryDirectory() as d:
        save_trained(model, Path(d) / "m")
        return sum(f.stat().st_size for f in (Path(d) / "m").iterdir())


def train_memory_bytes(model, s: Settings) -> dict:
    """Weights + grads + AdamW moments (fp32) + activations saved for backward on one fixed-shape batch."""
    params = {p.data_ptr(): p for p in model.parameters()}
    trainable = [p for p in params.values() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in params.values())
    n_train = sum(p.numel() for p in trainable)
    keys = set(params) | {b.data_ptr() for b in model.buffers()}
    saved = {}

    def pack(t):
        if t.data_ptr() not in keys and t.device.type != "meta":
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (s.memory_batch, s.memory_tokens), generator=g)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(s.memory_batch).long())
    del out
    model.eval()
    act = sum(saved.values())
    return {"weights": weights, "gradients": 4 * n_train, "optimizer": 8 * n_train, "activations": act,
            "total": weights + 12 * n_train + act}


def train_one(encoder, data, method: str, seed: int, s: Settings, r: int | None = None) -> dict:
    """Train one run with early stopping; returns its measurements (and the model, restored to its best)."""
    from bench import realmodel
    from bench.methods import apply, trainable_parameters
    from bench.train import TrainConfig, train
    base = realmodel.classifier(encoder, seed)
    torch.manual_seed(seed)
    model = apply(base, method_config(method, r))
    n_train, n_total = trainable_parameters(model)
    lr = LR[method]
    best = {"acc": -1.0, "loss": math.inf, "step": 0, "state": _trained_state(model), "evals": 0, "since": 0}
    log = {"loss": [], "t": [], "val": []}

    def on_step(step, m, loss):
        log["loss"].append(float(loss))
        log["t"].append(time.perf_counter())

    def eval_fn(m):
        sc = scores(predict(m, data["validation"]), data["validation"]["label"])
        step = len(log["loss"])
        log["val"].append((step, sc["accuracy"], sc["loss"]))
        if (sc["accuracy"], -sc["loss"]) > (best["acc"], -best["loss"]):
            best.update(acc=sc["accuracy"], loss=sc["loss"], step=step, state=_trained_state(m), since=0)
        else:
            best["since"] += 1
        if best["since"] >= s.patience and step < s.max_steps:
            raise _Stop
        return {"val_accuracy": sc["accuracy"], "val_loss": sc["loss"]}

    cfg = TrainConfig(lr=lr, steps=s.max_steps, batch_size=s.batch, warmup=s.warmup, decay="constant",
                      weight_decay=0.0, betas=(0.9, 0.999), eval_every=s.eval_every, seed=seed, progress=False)
    t0 = time.perf_counter()
    try:
        train(model, data["train"], cfg, eval_fn=eval_fn, on_step=on_step)
        stopped = False
    except _Stop:
        stopped = True
    wall = time.perf_counter() - t0
    steps = len(log["loss"])
    at_cap = not stopped
    still_improving = bool(at_cap and best["step"] == steps)
    _restore(model, best["state"])
    model.eval()
    test = scores(predict(model, data["test"]), data["test"]["label"])
    dts = np.diff([t0] + log["t"])
    tail = log["loss"][-s.eval_every:] or [math.nan]
    return {"method": method, "seed": seed, "r": r if r is not None else CONFIG[method].get("r"), "lr": lr,
            "model": model, "trainable_params": n_train, "total_params": n_total,
            "trainable_pct": 100.0 * n_train / n_total, "steps_used": steps, "best_step": best["step"],
            "stopped_early": stopped, "still_improving_at_cap": still_improving,
            "final_train_loss": float(np.mean(tail)), "val_loss": best["loss"], "val_accuracy": best["acc"],
            "test_accuracy": test["accuracy"], "test_loss": test["loss"], "correct": test["correct"],
            "step_time_s": float(np.median(dts)) if len(dts) else math.nan, "wall_s": wall,
            "val_curve": log["val"]}


# ============================================================================================ outliers, int8

@torch.no_grad()
def layernorm_states(model, ds, batch: int = 32) -> tuple[list[str], list[torch.Tensor]]:
    """Names of the LayerNorms and, per LayerNorm, its outputs at the real tokens of ds: (P, D) each."""
    from bench.train import collate
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    store: dict[int, list] = {i: [] for i in range(len(norms))}
    mask_now = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: store[i].append(out[mask_now["m"]]))
             for i, (_, m) in enumerate(norms)]
    try:
        rows = [{"input_ids": r} for r in ds["input_ids"]]
        for k in range(0, len(rows), batch):
            b = collate(rows[k:k + batch])
            mask_now["m"] = b["attention_mask"].bool()
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    finally:
        for h in hooks:
            h.remove()
    return [n for n, _ in norms], [torch.cat(store[i]) for i in range(len(norms))]


def census(names, states) -> tuple[dict, pd.DataFrame]:
    from bench.numerics.outliers import OUTLIER_MAGNITUDE, census_from_states
    per = []
    for name, X in zip(names, states):
        X = X.float()
        big = X.abs() >= OUTLIER_MAGNITUDE
        flat = X.flatten().double()
        z = (flat - flat.mean()) / flat.std()
        top = X.abs().amax(0)
        vals, dims_ = top.topk(5)
        per.append({"layernorm": name, "max_abs": float(X.abs().max()), "tokens_ge6": float(big.any(1).float().mean()),
                    "dims_ge6": int(big.any(0).sum()), "kurtosis": float((z ** 4).mean() - 3.0),
                    "top_dims": dims_.tolist(), "top_abs": [round(float(v), 3) for v in vals]})
    df = pd.DataFrame(per)
    c = census_from_states(states, source="layernorm_outputs")
    allX = torch.stack([x.abs().amax(1) for x in states])      # (L, P): per token, max over dims
    summary = {"q5_share_layers_ge6": float((df["max_abs"] >= OUTLIER_MAGNITUDE).mean()),
               "q5_share_tokens_ge6": float((allX >= OUTLIER_MAGNITUDE).any(0).float().mean()),
               "q5_max_abs": float(df["max_abs"].max()), "q5_kurtosis_max": float(df["kurtosis"].max()),
               "q5_kurtosis_median": float(df["kurtosis"].median()),
               "q5_n_outlier_dims": float(len(c.outlier_dims)),
               "q5_dettmers_layers_affected": float(c.layers_affected),
               "q5_dettmers_positions_affected": float(c.positions_affected)}
    return summary, df


def _bnb_model(model):
    from reproductions.int8 import _quiet_bnb, bnb_layer
    m = copy.deepcopy(model)
    targets = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear) and n != "classifier"
               and not n.endswith(".classifier")]
    with _quiet_bnb():
        for name, lin in targets:
            with torch.no_grad():
                lin.weight.copy_(lin.weight.half().float())
            parent, _, child = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, child, bnb_layer(lin, THRESHOLD))
    return m


@torch.no_grad()
def embeddings(enc_model, ds, batch: int = 64) -> torch.Tensor:
    from bench.train import collate
    rows = [{"input_ids": r} for r in ds["input_ids"]]
    out = []
    for k in range(0, len(rows), batch):
        b = collate(rows[k:k + batch])
        out.append(enc_model.embed(input_ids=b["input_ids"], attention_mask=b["attention_mask"]))
    return torch.cat(out)


def int8_rows(rec, ft_model, encoder, test, s: Settings, model_name: str, data_name: str) -> pd.DataFrame:
    from bench import realmodel
    from bench.numerics.int8_linear import quantize_model
    p32 = predict(ft_model, test)
    acc32 = scores(p32, test["label"])["accuracy"]
    plain = realmodel.MeanPoolClassifier(encoder).eval()
    e32 = embeddings(plain, test)
    variants = [(m, lambda mod, m=m: quantize_model(copy.deepcopy(mod), m, THRESHOLD, skip=("classifier",)))
                for m in INT8_METHODS]
    if s.bnb:
        variants.append(("bnb_llm_int8", _bnb_model))
    out = []
    rec.add("Q4", "q4_accuracy_fp32", acc32, unit="accuracy", model=model_name, data=data_name, method="full",
            seed=0, scale=SCALE, params={"quant": "fp32"})
    from reproductions.int8 import _quiet_bnb
    for name, make in variants:
        try:
            with _quiet_bnb():      # bitsandbytes logs one cast warning per matmul otherwise
                qm = make(ft_model).eval()
                pq = predict(qm, test)
                eq = embeddings(make(plain).eval(), test)
        except Exception as e:          # bitsandbytes without a CPU int8 path: say so, keep the rest
            if name.startswith("bnb"):
                rec.notes["bnb_error"] = f"{type(e).__name__}: {str(e)[:160]}"
                continue
            raise
        acc = scores(pq, test["label"])["accuracy"]
        kl = float(np.mean(np.sum(p32 * (np.log(np.clip(p32, 1e-12, None)) - np.log(np.clip(pq, 1e-12, None))), 1)))
        cos = float(torch.nn.functional.cosine_similarity(e32, eq, dim=-1).mean())
        mism = float((p32.argmax(1) != pq.argmax(1)).mean())
        row = {"quant": name, "accuracy": acc, "accuracy_drop": acc32 - acc, "kl": kl, "emb_cos": cos,
               "pred_flip_share": mism}
        out.append(row)
        kw = dict(model=model_name, data=data_name, method="full", seed=0, scale=SCALE,
                  params={"quant": name, "threshold": THRESHOLD if "int8" in name else None})
        rec.add("Q4", f"q4_accuracy_{name}", acc, unit="accuracy", **kw)
        rec.add("Q4", f"q4_accuracy_drop_{name}", acc32 - acc, unit="accuracy", **kw)
        rec.add("Q4", f"q4_kl_{name}", kl, unit="nats", **kw)
        rec.add("Q4", f"q4_emb_cos_{name}", cos, unit="cosine", **kw)
        rec.add("Q4", f"q4_pred_flip_share_{name}", mism, unit="share", **kw)
    df = pd.DataFrame(out)
    if len(df) and {"llm_int8", "absmax"} <= set(df["quant"]):
        d = df.set_index("quant")
        rec.add("Q4", "q4_llm_int8_minus_absmax_accuracy", d.loc["llm_int8", "accuracy"] - d.loc["absmax", "accuracy"],
                unit="accuracy", model=model_name, data=data_name, method="full", seed=0, scale=SCALE)
        if "bnb_llm_int8" in d.index:
            rec.add("Q4", "q4_ours_minus_bnb_accuracy", d.loc["llm_int8", "accuracy"] - d.loc["bnb_llm_int8", "accuracy"],
                    unit="accuracy", model=model_name, data=data_name, method="full", seed=0, scale=SCALE)
    return df


# ============================================================================================ run

def _data(s: Settings, tok):
    from bench.data import rotten_tomatoes as rt
    dd = rt.load(tok, s.split_seed, s.max_length)
    full_sizes = {k: len(v) for k, v in dd.items()}
    dd["train"] = rt.subsample(dd["train"], s.train_rows, s.split_seed)
    dd["validation"] = rt.subsample(dd["validation"], s.val_rows, s.split_seed)
    dd["test"] = rt.subsample(dd["test"], s.test_rows, s.split_seed)
    return dd, full_sizes


_ENV: dict = {}


def _workers(s: Settings) -> int:
    """Processes for the training runs (1 torch thread each): $BENCH_WORKERS, else the profile's."""
    try:
        w = int(os.environ.get("BENCH_WORKERS", s.workers))
    except ValueError:
        raise BenchError(f"BENCH_WORKERS must be an integer, got {os.environ['BENCH_WORKERS']!r}") from None
    return max(1, min(w, os.cpu_count() or 1))


def _init_worker(s: Settings) -> None:
    from bench import realmodel
    os.environ.setdefault("BENCH_NO_PROGRESS", "1")
    torch.set_num_threads(_threads())
    encoder, tok = realmodel.load_encoder()
    _ENV.update(s=s, encoder=encoder, data=_data(s, tok)[0], mem={})


def _job(job) -> dict:
    """One training run in this process (_ENV set by _init_worker); a picklable result without the model."""
    from bench.methods import merge_and_unload
    method, seed, r, first_seed = job
    s, encoder, data = _ENV["s"], _ENV["encoder"], _ENV["data"]
    with torch.random.fork_rng(devices=[]):
        res = train_one(encoder, data, method, seed, s, r)
    key = (method, res["r"])
    if key not in _ENV["mem"]:
        _ENV["mem"][key] = (train_memory_bytes(copy.deepcopy(res["model"]), s), file_bytes(res["model"]))
    res["memory"], res["adapter_bytes"] = _ENV["mem"][key]
    if method == "lora" and r is None and seed == first_seed:
        res["merge"] = _merge_check(res["model"], data["test"], merge_and_unload)
    res["full_state"] = res["model"].state_dict() if method == "full" and seed == first_seed else None
    res["model"], res["cfg"] = None, {"layers": encoder.config.num_hidden_layers, "hidden": encoder.config.hidden_size}
    return res


def run_jobs(plan, s: Settings, seeds, workers: int, progress) -> list[dict]:
    """Results in plan order (so the number of workers does not change results.csv)."""
    jobs = [(m, sd, r, seeds[0]) for m, sd, r in plan]
    bar = progress(total=len(jobs), desc="real runs")
    try:
        if workers <= 1:                               # in this process: run() has set _ENV
            out = []
            for j in jobs:
                out.append(_job(j))
                bar.update(1)
            return out
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                 initargs=(s,)) as ex:
            futs = [ex.submit(_job, j) for j in jobs]
            out = []
            for f in futs:
                out.append(f.result())
                bar.update(1)
            return out
    finally:
        bar.close()


def run(ctx: RunContext) -> Recorder:
    from bench import realmodel
    from bench.data import rotten_tomatoes as rt
    from bench.schema import write_frame
    from bench.train import num_threads

    s = settings_for(ctx)
    seeds = tuple(ctx.seeds)
    if ctx.model not in (None, realmodel.MODEL_NAME):
        raise BenchError(f"real: runs {realmodel.MODEL_NAME} only (got --model {ctx.model})")
    data_path = rt.data_file()
    encoder, tok = realmodel.load_encoder()
    data, full_sizes = _data(s, tok)
    rec = ctx.recorder(GROUP, CLAIMS)
    rec.threads = _threads()
    M, D = realmodel.MODEL_NAME, f"{rt.NAME}(split_seed={s.split_seed})"
    rec.notes.update({"settings": asdict(s), "data_file_sha256": rt.file_sha256(data_path),
                      "model_weights_sha256": realmodel.weights_sha256(), "lrs": LR, "method_configs": CONFIG,
                      "split_sizes_before_subsample": full_sizes,
                      "head": "mean-pooled last hidden state -> Linear(384, 2); trains for every method"})
    for split, ds in data.items():
        rec.add("-", "split_rows", len(ds), unit="rows", model=M, data=D, scale=SCALE, params={"split": split})
        rec.add("-", "split_movies", len(set(ds["movie_name"])), unit="movies", model=M, data=D, scale=SCALE,
                params={"split": split})
        rec.add("-", "split_fresh_share", float(np.mean(ds["label"])), unit="share", model=M, data=D, scale=SCALE,
                params={"split": split})
    overlap = set(data["train"]["movie_name"]) & (set(data["test"]["movie_name"]) | set(data["validation"]["movie_name"]))
    rec.add("-", "split_movie_overlap", len(overlap), unit="movies", model=M, data=D, scale=SCALE)

    plan = [(m, sd, None) for m in s.methods for sd in seeds]
    plan += [("lora", sd, r) for r in s.ranks for sd in seeds[:s.rank_seeds] if r != CONFIG["lora"]["r"]]
    workers = _workers(s)
    rec.notes["workers"] = workers
    if workers <= 1:
        _ENV.update(s=s, encoder=encoder, data=data, mem={})
    try:
        with num_threads(_threads()):
            runs = run_jobs(plan, s, seeds, workers, ctx.progress)
    finally:
        _ENV.clear()
    curves = [{"method": r["method"], "r": r["r"], "seed": r["seed"], "step": st, "val_accuracy": a, "val_loss": lo}
              for r in runs for st, a, lo in r["val_curve"]]
    with num_threads(_threads()):
        full_model = realmodel.classifier(encoder, seeds[0])
        full_model.load_state_dict([r for r in runs if r.get("full_state") is not None][0]["full_state"])
        full_model.eval()
        _per_run_rows(rec, runs, M, D, s, len(data["test"]))
        _claim_rows(rec, runs, M, D, s, seeds)
        names, states = layernorm_states(realmodel.MeanPoolClassifier(encoder).eval(),
                                         rt.subsample(data["test"], s.census_rows, 1))
        summary, per_ln = census(names, states)
        for k, v in summary.items():
            rec.add("Q5", k, v, unit="share" if "share" in k or "affected" in k else "value", model=M, data=D,
                    scale=SCALE, params={"source": "layernorm_outputs", "threshold": THRESHOLD})
        qt = rt.subsample(data["test"], s.quant_rows, 2) if s.quant_rows else data["test"]
        qdf = int8_rows(rec, full_model, encoder, qt, s, M, D)
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_frame(out / "curves.csv", pd.DataFrame(curves))
    write_frame(out / "census.csv", per_ln.assign(top_dims=per_ln["top_dims"].map(json.dumps),
                                                 top_abs=per_ln["top_abs"].map(json.dumps)))
    write_frame(out / "int8.csv", qdf)
    return rec


@torch.no_grad()
def _merge_check(model, test, merge_and_unload) -> dict:
    from bench.train import collate
    rows = [{"input_ids": r} for r in test["input_ids"][:64]]
    b = collate(rows)
    before = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    merged = merge_and_unload(copy.deepcopy(model)).eval()
    after = merged(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    n_lora = sum(1 for n, _ in merged.named_parameters() if "lora" in n)
    return {"max_abs_diff": float((before - after).abs().max()),
            "pred_mismatch": float((before.argmax(-1) != after.argmax(-1)).sum()), "extra_params": n_lora}


def _per_run_rows(rec, runs, M, D, s, n_test: int):
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


def _claim_rows(rec, runs, M, D, s, seeds):
    main = {m: [r for r in runs if r["method"] == m and (m not in ("lora",) or r["r"] == CONFIG["lora"]["r"])]
            for m in s.methods}
    full_mem = main["full"][0]["memory"]["total"]
    summary = {}
    for m, rs in main.items():
        correct = np.stack([r["correct"] for r in rs])
        lo, hi = bootstrap_ci(correct, s.bootstrap)
        mean = float(correct.mean())
        summary[m] = mean
        kw = dict(model=M, data=D, method=m, scale=SCALE, params={"r": rs[0]["r"], "seeds": len(rs)})
        info = {"ci95": [round(lo, 4), round(hi, 4)], "seed_sd": float(np.std([r["test_accuracy"] for r in rs], ddof=1))
                if len(rs) > 1 else 0.0, "runs_still_improving_at_cap": int(sum(r["still_improving_at_cap"] for r in rs))}
        rec.add("-", "mean_test_accuracy", mean, unit="accuracy", info=info, **kw)
        rec.add("-", "trainable_params", rs[0]["trainable_params"], unit="params", **kw)
        rec.add("-", "trainable_pct", rs[0]["trainable_pct"], unit="%", **kw)
        rec.add("-", "adapter_bytes", rs[0]["adapter_bytes"], unit="bytes", **kw)
        mem = rs[0]["memory"]
        # full FT is the reference (its ratio is 1 by definition): its rows support the claims, under "-"
        claim = "L3" if m == "lora" else "-" if m == "full" else "A2"
        rec.add(claim, "train_memory_bytes", mem["total"], unit="bytes", info={k: v for k, v in mem.items()}, **kw)
        rec.add(claim, "memory_ratio_vs_full", mem["total"] / full_mem, unit="ratio", **kw)
        rec.add("-", "mean_step_time_s", float(np.median([r["step_time_s"] for r in rs])), unit="s", timing=True, **kw)
        if m == "lora":
            rec.add("L3", "adapter_bytes_ratio_vs_full", rs[0]["adapter_bytes"] / main["full"][0]["adapter_bytes"],
                    unit="ratio", **kw)
    full_correct = np.stack([r["correct"] for r in main["full"]])
    for m, claim in (("adapters", "A1"), ("prefix", "P2")):
        if m in main:
            diff = float(full_correct.mean() - np.stack([r["correct"] for r in main[m]]).mean())
            paired = np.stack([f["correct"] - r["correct"] for f, r in zip(main["full"], main[m])])
            lo, hi = bootstrap_ci(paired, s.bootstrap, seed=1)
            rec.add(claim, f"{claim.lower()}_full_minus_{m}_points", 100 * diff, unit="points", model=M, data=D,
                    method=m, scale=SCALE, params={"seeds": len(main[m])},
                    info={"ci95_points": [round(100 * lo, 2), round(100 * hi, 2)]})
            rec.add(claim, f"{claim.lower()}_{m}_trainable_pct", main[m][0]["trainable_pct"], unit="%", model=M,
                    data=D, method=m, scale=SCALE)
    if "prefix" in main:   # what inference keeps after fold(): n x layers x 2 x width (the paper's ~0.1%)
        cfg = runs[0]["cfg"]
        stored = CONFIG["prefix"]["num_virtual_tokens"] * cfg["layers"] * 2 * cfg["hidden"]
        rec.add("P2", "p2_prefix_stored_pct", 100.0 * stored / main["prefix"][0]["total_params"], unit="%", model=M,
                data=D, method="prefix", scale=SCALE, info={"stored_params": stored})
    # L4: rank sweep (first rank_seeds seeds at every rank, so ranks compare on the same seeds)
    sweep_seeds = seeds[:s.rank_seeds]
    ranks = sorted(set(s.ranks) | {CONFIG["lora"]["r"]})
    accs = {}
    for r in ranks:
        rs = [x for x in runs if x["method"] == "lora" and x["r"] == r and x["seed"] in sweep_seeds]
        accs[r] = float(np.mean([x["test_accuracy"] for x in rs]))
        kw = dict(model=M, data=D, method="lora", scale=SCALE, params={"r": r, "seeds": len(rs)})
        rec.add("L4", "l4_test_accuracy", accs[r], unit="accuracy", **kw)
        rec.add("L4", "l4_trainable_params", rs[0]["trainable_params"], unit="params", **kw)
        rec.add("L4", "l4_train_memory_bytes", rs[0]["memory"]["total"], unit="bytes", **kw)
    full_acc = float(np.mean([x["test_accuracy"] for x in main["full"] if x["seed"] in sweep_seeds]))
    kw = dict(model=M, data=D, method="lora", scale=SCALE, params={"ranks": ranks, "seeds": len(sweep_seeds)})
    rec.add("L4", "l4_best_lora_minus_full", max(accs.values()) - full_acc, unit="accuracy", **kw)
    rec.add("L4", "l4_smallest_rank_minus_full", accs[ranks[0]] - full_acc, unit="accuracy", **kw)
    rec.add("L4", "l4_accuracy_spread_over_r", max(accs.values()) - min(accs.values()), unit="accuracy", **kw)
    mems = [[x for x in runs if x["method"] == "lora" and x["r"] == r][0]["memory"]["total"] for r in ranks]
    rec.add("L4", "l4_memory_nondecreasing", float(all(a <= b for a, b in zip(mems, mems[1:]))), unit="flag", **kw)
    merge = [r for r in runs if "merge" in r][0]["merge"]
    kw = dict(model=M, data=D, method="lora", seed=seeds[0], scale=SCALE, params={"r": CONFIG["lora"]["r"]})
    rec.add("L5", "l5_merged_vs_unmerged_max_abs_diff", merge["max_abs_diff"], unit="logit", **kw)
    rec.add("L5", "l5_merged_pred_mismatches", merge["pred_mismatch"], unit="items", **kw)
    rec.add("L5", "l5_unloaded_extra_params", merge["extra_params"], unit="params", **kw)
    return summary


# ============================================================================================ report

def report(out_dir: Path) -> None:
    """report.md with the method table, the Pareto plot (memory vs accuracy) and the census plot."""
    from reproductions.real.report import write_report
    write_report(Path(out_dir))
