"""THE training loop (pretraining and every fine-tuning method) and the evaluation helpers.

One loop for all methods keeps comparisons fair: same optimizer (AdamW over the parameters that require
grad), same schedule (linear warmup, then cosine or linear decay), same clipping, same batching. A
non-finite loss or gradient norm stops training and is recorded in `TrainResult.diverged_at`, never raised,
because divergence is a result (e.g. rsLoRA vs LoRA at large ranks, FP16 without loss scaling).
Optional early stopping (`TrainConfig.patience`) gives convergence-matched budgets: each run stops when its
validation loss stops improving, `steps` is the cap, and a run still improving at the cap is flagged.

Models are called as `model(input_ids=, attention_mask=, labels=)` and must return `.loss` and `.logits`
(HF causal LMs and the wrappers of `bench.methods` do).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
from tqdm.auto import tqdm

from bench import BenchError

IGNORE = -100


@dataclass
class TrainConfig:
    lr: float = 1e-3                 # peak learning rate (AdamW)
    steps: int = 100                 # optimizer steps
    batch_size: int = 16
    warmup: int = 0                  # linear warmup steps
    decay: str = "cosine"            # cosine | linear | constant, from lr down to lr * min_lr_ratio
    decay_steps: int | None = None   # steps from warmup's end to the floor; None = steps - warmup - 1 (the
                                     # last step); `steps` gives torch's CosineAnnealingLR(T_max=steps) curve
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0        # applied to >= 2-D parameters only (not biases / norms)
    loraplus_ratio: float | None = None  # LoRA+ (arXiv 2402.12354): B's lr = ratio * A's, peft's groups
                                     # (bench.methods.loraplus); None = one lr for all
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0    # max global grad norm; None = no clipping (norm still measured)
    eval_every: int = 0              # call eval_fn every N steps (0 = only at the end)
    patience: int = 0                # early stopping: stop after this many evaluations in a row without a
                                     # better `monitor` (0 = off: train all `steps`, today's behaviour). Needs
                                     # eval_every > 0 and an eval_fn; `steps` is then the cap (see train())
    min_delta: float = 0.0           # a better value must be lower than the best so far by more than this
                                     # (units of `monitor`, e.g. nats/token)
    min_steps: int = 0               # early stopping never stops a run before this many steps (a run can sit on
                                     # a plateau at its first loss for a few hundred steps before it learns)
    monitor: str = "val_loss"        # the eval_fn key early stopping minimises
    restore_best: bool = True        # early stopping: end with the best evaluation's trainable weights
    seed: int = 0                    # batch order (and nothing else: init is the caller's)
    shuffle: bool = True             # False: batches in row order (rows[0:B], rows[B:2B], ...), cycled
    device: str = "auto"             # auto | cpu | cuda
    autocast: str | None = None      # None (fp32) | bfloat16 | float16: torch.autocast for forward/loss
    loss_scale: bool = True          # with float16 autocast on CUDA, use a dynamic GradScaler (Micikevicius 2018)
    init_scale: float = 2.0**16      # the GradScaler's first scale (torch's default); halved on overflow
    loss_scale_cpu: bool = False     # also scale on the CPU (float16 autocast runs there too); off keeps the
                                     # CUDA-only scaling every earlier run used
    threads: int | None = None       # torch threads while training (restored after); None = leave as is.
                                     # On a loaded 2-core machine 1 thread can be 5x faster than 2 (spinning)
    progress: bool = True            # tqdm bar (also off when BENCH_NO_PROGRESS=1)
    desc: str = "train"

    def __post_init__(self):
        if self.decay not in ("cosine", "linear", "constant"):
            raise BenchError(f"decay must be cosine, linear or constant, got {self.decay!r}")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise BenchError(f"need steps >= 1, batch_size >= 1, lr > 0 (got {self.steps}, {self.batch_size}, {self.lr})")
        if self.loraplus_ratio is not None and not self.loraplus_ratio > 0:
            raise BenchError(f"loraplus_ratio must be > 0 or None, got {self.loraplus_ratio}")
        if self.decay_steps is not None and self.decay_steps < 1:
            raise BenchError(f"decay_steps must be >= 1 or None, got {self.decay_steps}")
        if self.autocast not in (None, "bfloat16", "float16"):
            raise BenchError(f"autocast must be None, bfloat16 or float16, got {self.autocast!r}")
        if self.patience < 0 or self.eval_every < 0 or self.min_delta < 0 or self.min_steps < 0:
            raise BenchError(f"need patience, eval_every, min_delta, min_steps >= 0 (got {self.patience}, "
                             f"{self.eval_every}, {self.min_delta}, {self.min_steps})")
        if self.patience and not self.eval_every:
            raise BenchError("early stopping (patience > 0) needs eval_every > 0")


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)   # per step: step, loss, lr, grad_norm (+ eval metrics)
    diverged_at: int | None = None                      # first step with a non-finite loss or grad norm
    step_time_s: float = math.nan                       # median wall time of one optimizer step
    wall_s: float = 0.0
    steps_done: int = 0
    final: dict = field(default_factory=dict)           # last eval_fn metrics + final_loss
    trainable_params: int = 0
    loss_scale: float | None = None                     # the GradScaler's scale after the last step (None: none)
    # Early stopping (TrainConfig.patience > 0); left at these defaults otherwise. steps_done is the steps used.
    val_curve: list = field(default_factory=list)       # [(step, monitored value)] per evaluation; step = steps
                                                        # done when evaluated (1-based)
    best_step: int | None = None                        # steps done at the best evaluation
    best_value: float = math.nan                        # the best monitored value (e.g. nats/token)
    stopped_early: bool = False                         # patience ran out before the cap
    still_improving: bool | None = None                 # cap reached with a better value within the last
                                                        # `patience` evaluations: not converged (None: not monitored;
                                                        # always True when patience >= the evaluations run)
    restored_best: bool = False                         # weights copied back from best_step (False when the
                                                        # last evaluation was the best: nothing to restore)
    train_loss_at_best: float = math.nan                # mean training loss of the eval_every steps up to best_step

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def num_threads(n: int | None):
    """Temporarily use n torch threads (None: unchanged)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup for `warmup` steps, then decay to lr * min_lr_ratio at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.decay == "constant":
        return cfg.lr
    span = cfg.decay_steps or max(cfg.steps - cfg.warmup - 1, 1)
    t = min((step - cfg.warmup) / span, 1.0)
    frac = 0.5 * (1 + math.cos(math.pi * t)) if cfg.decay == "cosine" else 1 - t
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * frac)


def collate(rows: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad input_ids / labels / attention_mask to the longest row. Without labels, labels = input_ids."""
    T = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.as_tensor(r["input_ids"])
        labels[i, :n] = torch.as_tensor(r["labels"] if "labels" in r else r["input_ids"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}  # each (B, T)


def _rows(data) -> list[dict]:
    """A datasets.Dataset or a list of dicts -> list of dicts with only the columns training uses."""
    keep = ("input_ids", "labels")
    if hasattr(data, "column_names"):
        cols = [c for c in keep if c in data.column_names]
        return data.select_columns(cols).to_list()
    return [{k: r[k] for k in keep if k in r} for r in data]


def _progress(total: int, cfg_progress: bool, desc: str):
    disable = not cfg_progress or os.environ.get("BENCH_NO_PROGRESS") == "1"
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False)


def _optimizer(params, cfg: TrainConfig, device: torch.device, model=None):
    """(AdamW with weight decay on matrices only (or LoRA+'s groups), the autocast dtype or None, a GradScaler or None: FP16
    autocast with loss scaling, on CUDA or where `loss_scale_cpu` asks for it)."""
    if cfg.loraplus_ratio is not None:
        from bench.methods.loraplus import loraplus_groups
        groups = loraplus_groups(model, cfg.lr, cfg.loraplus_ratio, cfg.weight_decay)
    else:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.autocast)
    scale_here = device.type == "cuda" or cfg.loss_scale_cpu
    scaler = torch.amp.GradScaler(device.type, init_scale=cfg.init_scale) if (
        amp_dtype == torch.float16 and cfg.loss_scale and scale_here) else None
    return opt, amp_dtype, scaler


def _batch_indices(n_rows: int, cfg: TrainConfig):
    """Each step's row indices, forever: epochs of a fresh permutation under `cfg.seed` (or the row order when
    not shuffling), batches running across epoch edges."""
    gen = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    while True:
        while len(order) < cfg.batch_size:              # new epoch
            order += torch.randperm(n_rows, generator=gen).tolist() if cfg.shuffle else list(range(n_rows))
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        yield idx


def train(model, train_data, config: TrainConfig, eval_fn: Callable | None = None,
          on_step: Callable | None = None) -> TrainResult:
    """Train `model` in place on `train_data` (rows with input_ids and optional labels).

    eval_fn(model) -> dict of metrics, called in eval mode every `eval_every` steps and at the end.
    on_step(step, model, loss) is called after each optimizer step, before gradients are cleared
    (so a hook can read `p.grad`, e.g. LoRA gradient norms); under a GradScaler they are already unscaled
    (on a step the scaler skips for an overflow, clipping by the infinite norm leaves them NaN or 0).

    Early stopping (`patience` > 0; eval_fn must return `monitor`, e.g. `answer_loss_eval(val_rows)`): eval_fn
    runs every `eval_every` steps and at the cap `steps`; training stops once `patience` evaluations in a row
    failed to lower the best value by more than `min_delta`. The lr schedule still spans `steps` (the cap), so
    every run follows the same schedule up to where it stops. With `restore_best` the model ends with the
    trainable weights of its best evaluation (only parameters that require grad change in training) and
    `final` holds that evaluation's metrics (no extra eval_fn call); `final["final_loss"]` stays the mean
    training loss of the last tenth of the steps run, `train_loss_at_best` is the one at the best weights.
    A diverged run restores nothing. See TrainResult for what is recorded."""
    cfg = config
    if cfg.threads:
        with num_threads(cfg.threads):
            return train(model, train_data, replace(cfg, threads=None), eval_fn, on_step)
    rows = _rows(train_data)
    if not rows:
        raise BenchError("training data is empty")
    device = resolve_device(cfg.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise BenchError("the model has no trainable parameters (nothing requires grad)")
    early = cfg.patience > 0
    if early and eval_fn is None:
        raise BenchError("early stopping (patience > 0) needs an eval_fn that returns the monitored metric")
    opt, amp_dtype, scaler = _optimizer(params, cfg, device, model)
    batches = _batch_indices(len(rows), cfg)
    res = TrainResult(trainable_params=sum(p.numel() for p in params))
    stopper = _EarlyStopping(cfg) if early else None
    step_times = []
    t_start = time.perf_counter()
    bar = _progress(cfg.steps, cfg.progress, cfg.desc)
    model.train()
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        batch = {k: v.to(device) for k, v in collate([rows[i] for i in next(batches)]).items()}
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = model(**batch).loss
        lval = float(loss.detach())
        if not math.isfinite(lval):
            res.diverged_at = step
            res.history.append({"step": step, "loss": lval, "lr": lr, "grad_norm": math.nan})
            break
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(opt)
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip else float("inf")))
        if not math.isfinite(gnorm) and scaler is None:  # (a GradScaler skips such steps by design)
            res.diverged_at = step
            res.history.append({"step": step, "loss": lval, "lr": lr, "grad_norm": gnorm})
            break
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if on_step is not None:
            on_step(step, model, loss.detach())
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        entry = {"step": step, "loss": lval, "lr": lr, "grad_norm": gnorm}
        res.steps_done = step + 1
        if early:
            ev = None
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:   # the cap is evaluated too
                ev = _run_eval(model, eval_fn)
                entry.update(ev)
            res.history.append(entry)
            if ev is not None and stopper.update(step + 1, ev, model, res):
                break
        else:
            if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                entry.update(_run_eval(model, eval_fn))
            res.history.append(entry)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{lval:.3f}")
    bar.close()
    if early:
        stopper.finish(model, res)
    elif eval_fn is not None and res.diverged_at is None:
        res.final.update(_run_eval(model, eval_fn))
        if res.history:
            res.history[-1].update(res.final)
    losses = [h["loss"] for h in res.history if math.isfinite(h["loss"])]
    tail = losses[-max(1, len(losses) // 10):] if losses else [math.nan]
    res.final["final_loss"] = sum(tail) / len(tail)
    res.step_time_s = statistics.median(step_times) if step_times else math.nan
    res.wall_s = time.perf_counter() - t_start
    res.loss_scale = scaler.get_scale() if scaler else None
    model.eval()
    return res


class _EarlyStopping:
    """train()'s bookkeeping for early stopping: the best monitored value, its step, metrics and trainable
    weights (a copy on the model's device: small for PEFT methods, one model copy for full FT)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.best_metrics: dict = {}
        self.state: dict | None = None
        self.last_metrics: dict = {}
        self.bad = 0                     # evaluations since the last improvement

    def update(self, step: int, metrics: dict, model, res: TrainResult) -> bool:
        """Record one evaluation (eval_fn's dict after `step` steps); True when patience has run out."""
        if self.cfg.monitor not in metrics:
            raise BenchError(f"early stopping monitors {self.cfg.monitor!r}, but eval_fn returned {sorted(metrics)}")
        value = float(metrics[self.cfg.monitor])
        res.val_curve.append((step, value))
        self.last_metrics = metrics
        # NaN never improves (a NaN validation loss is no better model); the first finite value always does
        if math.isfinite(value) and (res.best_step is None or value < res.best_value - self.cfg.min_delta):
            res.best_step, res.best_value, self.bad = step, value, 0
            self.best_metrics = dict(metrics)
            if self.cfg.restore_best:
                self.state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            self.bad += 1
        if self.bad >= self.cfg.patience and step >= self.cfg.min_steps:
            res.stopped_early = step < self.cfg.steps   # patience running out at the cap is not "early"
            return True
        return False

    def finish(self, model, res: TrainResult) -> None:
        if res.diverged_at is not None:
            return
        # patience left at the cap means a better value came within the last `patience` evaluations:
        # the budget, not convergence, ended the run
        res.still_improving = self.bad < self.cfg.patience
        if self.state is not None and res.best_step != res.steps_done:
            own = dict(model.named_parameters())
            with torch.no_grad():
                for n, t in self.state.items():
                    own[n].copy_(t)
            res.restored_best = True
        have_best = self.cfg.restore_best and res.best_step is not None   # (None: every value was NaN)
        res.final.update(self.best_metrics if have_best else self.last_metrics)
        if res.best_step is not None:
            window = [h["loss"] for h in res.history[max(0, res.best_step - self.cfg.eval_every):res.best_step]]
            res.train_loss_at_best = sum(window) / len(window)


def _run_eval(model, eval_fn) -> dict:
    model.eval()
    with torch.no_grad():
        out = eval_fn(model)
    model.train()
    return dict(out or {})


# ---------------------------------------------------------------- evaluation helpers

def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _by_length(prompts: list[list[int]], batch_size: int):
    """Batches of indices whose prompts have equal length: no padding, so the answer position is -1 for
    every row, even when a method prepends virtual tokens (prompt tuning) to the sequence."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    for L in sorted(groups):
        idx = groups[L]
        for k in range(0, len(idx), batch_size):
            yield idx[k:k + batch_size]


@torch.no_grad()
def next_token_logits(model, prompts: list[list[int]], batch_size: int = 64) -> list[torch.Tensor]:
    """Logits (V,) of the token after each prompt, in input order."""
    dev = _device_of(model)
    out: list = [None] * len(prompts)
    was_training = model.training
    model.eval()
    for idx in _by_length(prompts, batch_size):
        ids = torch.tensor([prompts[i] for i in idx], device=dev)          # (B, T)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1].float().cpu()  # (B, V)
        for j, i in enumerate(idx):
            out[i] = logits[j]
    model.train(was_training)
    return out


def classification_predictions(model, dataset, batch_size: int = 64) -> list[int]:
    """Index of the best candidate per row (argmax of next-token logits over `candidate_ids`)."""
    logits = next_token_logits(model, dataset["prompt_ids"], batch_size)
    return [int(torch.argmax(lg[torch.tensor(c)])) for lg, c in zip(logits, dataset["candidate_ids"])]


def evaluate_classification(model, dataset, batch_size: int = 64) -> float:
    """Accuracy over the candidate answers (knowledge task rows: prompt_ids, candidate_ids, label)."""
    from bench.metrics import load
    preds = classification_predictions(model, dataset, batch_size)
    return float(load("accuracy").compute(predictions=preds, references=list(dataset["label"]))["accuracy"])


@torch.no_grad()
def greedy_generate(model, prompts: list[list[int]], eos_id: int, max_new_tokens: int = 48,
                    batch_size: int = 32) -> list[list[int]]:
    """Greedy continuation of each prompt until eos (not included) or max_new_tokens.

    Re-runs the whole sequence every step (no KV cache): sequences are short, and it works unchanged with
    any wrapper that takes input_ids / attention_mask (prefix and prompt tuning included)."""
    dev = _device_of(model)
    out: list = [None] * len(prompts)
    was_training = model.training
    model.eval()
    for idx in _by_length(prompts, batch_size):
        ids = torch.tensor([prompts[i] for i in idx], device=dev)          # (B, T)
        done = torch.zeros(len(idx), dtype=torch.bool, device=dev)
        new = []
        for _ in range(max_new_tokens):
            nxt = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1].argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
            new.append(nxt)
            done |= nxt == eos_id
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if bool(done.all()):
                break
        gen = torch.stack(new, dim=1).tolist()                             # (B, steps)
        for j, i in enumerate(idx):
            seq = gen[j]
            out[i] = seq[:seq.index(eos_id)] if eos_id in seq else seq
    model.train(was_training)
    return out


def evaluate_generation(model, tokenizer, dataset, max_new_tokens: int = 48, batch_size: int = 32,
                        return_predictions: bool = False) -> dict:
    """Data-to-text scores: corpus BLEU (0-1), exact match, and attribute match (share of the table's values
    that appear in the output, averaged over rows)."""
    from bench.metrics import load
    gens = greedy_generate(model, dataset["prompt_ids"], tokenizer.eos_token_id, max_new_tokens, batch_size)
    preds = [tokenizer.decode(g, skip_special_tokens=True).strip() for g in gens]
    refs = list(dataset["reference"])
    bleu = load("bleu").compute(predictions=preds, references=[[r] for r in refs])["bleu"]
    em = load("exact_match").compute(predictions=preds, references=refs)["exact_match"]
    attr = [sum(v in p.split() for v in vals) / len(vals) for p, vals in zip(preds, dataset["values"])]
    out = {"bleu": float(bleu), "exact_match": float(em), "attribute_match": float(sum(attr) / len(attr))}
    if return_predictions:
        out["predictions"] = preds
    return out


@torch.no_grad()
def perplexity(model, batches) -> float:
    """exp(mean next-token NLL) over all label tokens of `batches` (dicts of input_ids/attention_mask/labels,
    rows to collate, or LongTensors (B, T) of unpadded token blocks). Token-weighted, so batch composition
    does not change the result."""
    nll, count = _label_nll(model, batches)
    return math.exp(nll / count) if count else math.nan


def answer_loss(model, rows, batch_size: int = 64) -> float:
    """Mean next-token NLL in nats per answer token: over the tokens whose label is not -100 (a task row's
    answer; rows without labels count every token), token-weighted over all rows of `rows` (a list of dicts or
    a datasets.Dataset with input_ids and labels), scored `batch_size` rows at a time. NaN when no row has a
    label. The validation loss for early stopping (see `answer_loss_eval`)."""
    rows = _rows(rows)
    nll, count = _label_nll(model, [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)])
    return nll / count if count else math.nan


def answer_loss_eval(rows, key: str = "val_loss", batch_size: int = 64) -> Callable:
    """An eval_fn for train(): {key: answer_loss(model, rows)}, the default metric early stopping monitors."""
    rows = _rows(rows)
    return lambda model: {key: answer_loss(model, rows, batch_size)}


@torch.no_grad()
def _label_nll(model, batches) -> tuple[float, int]:
    """(summed next-token NLL in nats, number of label tokens) over `batches` (as `perplexity` takes them)."""
    dev = _device_of(model)
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    for b in batches:
        if isinstance(b, list):
            b = collate(b)
        elif isinstance(b, torch.Tensor):
            b = {"input_ids": b, "attention_mask": torch.ones_like(b)}
        ids, mask = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        labels = b.get("labels", b["input_ids"]).to(dev)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()     # (B, T-1, V)
        tgt = labels[:, 1:]
        nll += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1),
                                                       ignore_index=IGNORE, reduction="sum"))
        count += int((tgt != IGNORE).sum())
    model.train(was_training)
    return nll, count
