import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from bench import BenchError
from bench.train import (IGNORE, TrainConfig, TrainResult, answer_loss, answer_loss_eval, evaluate_classification,
                         evaluate_generation, lr_at, perplexity, train)

V = 40


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=V, n_positions=32, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def counting_data(n=64, T=12):
    """Sequences that count up mod V from a random start: learnable next-token structure."""
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": [(s + i) % V for i in range(T)]} for s in torch.randint(0, V, (n,), generator=g).tolist()]


def test_loss_goes_down_and_history_is_recorded():
    m = tiny_model()
    seen = []
    res = train(m, counting_data(), TrainConfig(lr=1e-2, steps=60, batch_size=16, warmup=5, progress=False, threads=1),
                eval_fn=lambda model: {"ppl": perplexity(model, [counting_data(16)])},
                on_step=lambda step, model, loss: seen.append((step, model.transformer.wte.weight.grad is not None)))
    assert isinstance(res, TrainResult) and res.diverged_at is None and res.steps_done == 60
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    assert res.final["ppl"] < 5 and set(res.history[0]) >= {"step", "loss", "lr", "grad_norm"}
    assert seen[0] == (0, True) and len(seen) == 60                      # grads visible in the hook
    assert res.step_time_s > 0 and not m.training


def test_only_trainable_parameters_change():
    m = tiny_model()
    m.transformer.h[0].mlp.requires_grad_(False)
    frozen = m.transformer.h[0].mlp.c_fc.weight.detach().clone()
    emb = m.transformer.wte.weight.detach().clone()
    res = train(m, counting_data(), TrainConfig(lr=1e-2, steps=3, batch_size=8, weight_decay=0.1, progress=False, threads=1))
    assert torch.equal(m.transformer.h[0].mlp.c_fc.weight, frozen)
    assert not torch.equal(m.transformer.wte.weight, emb)
    assert res.trainable_params == sum(p.numel() for p in m.parameters() if p.requires_grad)


class NaNAfter(torch.nn.Module):
    """Wraps a model; its loss becomes NaN from call `k` on (an injected divergence)."""

    def __init__(self, model, k):
        super().__init__()
        self.model, self.k, self.calls = model, k, 0

    def forward(self, **kw):
        out = self.model(**kw)
        self.calls += 1
        if self.calls > self.k:
            out.loss = out.loss * float("nan")
        return out


def test_nan_loss_is_recorded_not_raised():
    m = NaNAfter(tiny_model(), k=4)
    res = train(m, counting_data(), TrainConfig(lr=1e-3, steps=20, batch_size=8, progress=False, threads=1))
    assert res.diverged_at == 4 and res.steps_done == 4 and math.isnan(res.history[-1]["loss"])


def test_huge_lr_diverges():
    m = tiny_model()
    res = train(m, counting_data(), TrainConfig(lr=1e30, steps=30, batch_size=8, grad_clip=None, progress=False, threads=1))
    assert res.diverged_at is not None and res.diverged_at < 30


def test_schedule():
    cfg = TrainConfig(lr=1.0, steps=101, warmup=10, decay="cosine", min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    lin = TrainConfig(lr=1.0, steps=11, decay="linear", min_lr_ratio=0.0)
    assert lr_at(5, lin) == pytest.approx(0.5)
    with pytest.raises(BenchError):
        TrainConfig(decay="step")


def test_decay_steps_gives_torchs_cosine_annealing():
    """decay_steps = steps with min_lr_ratio 0: torch's CosineAnnealingLR(T_max=steps); None keeps the default."""
    cfg = TrainConfig(lr=3e-3, steps=30, decay_steps=30, min_lr_ratio=0.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
    for k in range(30):
        assert lr_at(k, cfg) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
    default = TrainConfig(lr=1.0, steps=11, min_lr_ratio=0.0)
    assert lr_at(10, default) == 0.0 and lr_at(10, TrainConfig(lr=1.0, steps=11, min_lr_ratio=0.0, decay_steps=20)) > 0
    with pytest.raises(BenchError):
        TrainConfig(decay_steps=0)


class Recording(torch.nn.Module):
    """Wraps a model and keeps every batch's input_ids."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, **kw):
        self.seen.append(kw["input_ids"][:, 0].tolist())
        return self.model(**kw)


def test_shuffle_false_takes_rows_in_order_cycled():
    rows = [{"input_ids": [i] + [0] * 5} for i in range(6)]
    m = Recording(tiny_model())
    train(m, rows, TrainConfig(lr=1e-3, steps=3, batch_size=4, shuffle=False, progress=False, threads=1))
    assert m.seen == [[0, 1, 2, 3], [4, 5, 0, 1], [2, 3, 4, 5]]
    shuffled = Recording(tiny_model())
    train(shuffled, rows, TrainConfig(lr=1e-3, steps=3, batch_size=4, progress=False, threads=1))
    assert shuffled.seen != m.seen                                        # the default still shuffles


def test_loss_scaling_on_cpu_is_opt_in_and_on_step_sees_unscaled_grads():
    norms = {}

    def run(key, **kw):
        seen = []
        res = train(tiny_model(), counting_data(), TrainConfig(lr=1e-3, steps=2, batch_size=8, autocast="float16",
                                                               progress=False, threads=1, **kw),
                    on_step=lambda step, model, loss: seen.append(float(model.transformer.wte.weight.grad.norm())))
        norms[key] = seen[0]
        return res

    assert run("plain").loss_scale is None                               # default: no GradScaler on the CPU
    assert run("scaled", loss_scale_cpu=True, init_scale=2.0**10).loss_scale == 2.0**10
    assert norms["scaled"] == pytest.approx(norms["plain"], rel=1e-2)    # unscaled before the hook
    assert train(tiny_model(), counting_data(), TrainConfig(lr=1e-3, steps=1, batch_size=8, progress=False,
                                                            threads=1)).loss_scale is None


class Uniform(torch.nn.Module):
    """Equal logits everywhere: perplexity must be exactly V."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, labels=None):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, V) + self.w, "loss": None})()


def test_perplexity_of_uniform_model_is_vocab_size():
    assert perplexity(Uniform(), [counting_data(8)]) == pytest.approx(V)


def test_perplexity_takes_token_blocks():
    blocks = torch.tensor([r["input_ids"] for r in counting_data(8)])    # (8, 12), no padding
    m = tiny_model()
    assert perplexity(Uniform(), [blocks]) == pytest.approx(V)
    assert perplexity(m, [blocks[:4], blocks[4:]]) == pytest.approx(perplexity(m, [counting_data(8)]), rel=1e-6)


class Oracle(torch.nn.Module):
    """Continues each known prompt with its reference ids then eos (to test greedy decoding + metrics)."""

    def __init__(self, table, eos):
        super().__init__()
        self.table, self.eos, self.w = table, eos, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, labels=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, V)
        for b, row in enumerate(input_ids.tolist()):
            key = next(k for k in self.table if row[:len(k)] == list(k))
            cont = self.table[key] + [self.eos]
            nxt = cont[min(T - len(key), len(cont) - 1)]
            logits[b, -1, nxt] = 1.0
        return type("Out", (), {"logits": logits, "loss": None})()


class Tok:
    eos_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(f"w{i}" for i in ids if not (skip_special_tokens and i == 0))


def test_evaluate_generation_with_an_oracle():
    rows = {"prompt_ids": [[5, 6, 7], [8, 9, 10], [11, 12]],
            "reference": ["w1 w2 w3", "w4 w2", "w3 w3 w1 w2"], "values": [["w1"], ["w4", "w2"], ["w3"]]}
    conts = {(5, 6, 7): [1, 2, 3], (8, 9, 10): [4, 2], (11, 12): [3, 3, 1, 2]}
    oracle = Oracle(conts, eos=0)
    out = evaluate_generation(oracle, Tok(), rows)
    assert out == {"bleu": pytest.approx(1.0), "exact_match": 1.0, "attribute_match": 1.0}
    conts[(8, 9, 10)] = [4, 4]                                            # one wrong word in one row
    out = evaluate_generation(Oracle(conts, eos=0), Tok(), rows)
    assert out["exact_match"] == pytest.approx(2 / 3) and out["attribute_match"] == pytest.approx(5 / 6)
    assert out["bleu"] < 1.0


def test_random_init_scores_chance_on_the_knowledge_task():
    from bench.data.tasks import knowledge_task
    from bench.data.tokenizer import train_tokenizer
    from bench.data.world import build_world
    w = build_world("cpu")
    tok = train_tokenizer(w.tokenizer_texts())
    dd = knowledge_task(w, tok, attributes="all", fmt="qa")
    test = dd["test"]
    chance = sum(1 / len(c) for c in test["candidates"]) / len(test)
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    acc = evaluate_classification(m, test)
    # 400 questions; a constant guess per attribute has sd ~0.011 around chance (~0.067): 0.045 is ~4 sd
    assert abs(acc - chance) < 0.045, (acc, chance)
    # and the scorer is right: an oracle that always favours the true answer scores 1
    assert evaluate_classification(_AnswerOracle(test), test) == 1.0


class _AnswerOracle(torch.nn.Module):
    def __init__(self, ds):
        super().__init__()
        self.ans = {tuple(p): r[-1] for p, r in zip(ds["prompt_ids"], ds["input_ids"])}
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = torch.zeros(*input_ids.shape, 2048)
        for b, row in enumerate(input_ids.tolist()):
            logits[b, -1, self.ans[tuple(row)]] = 1.0
        return type("Out", (), {"logits": logits, "loss": None})()


# ---------------------------------------------------------------- early stopping (TrainConfig.patience)

def _params(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Scripted:
    """An eval_fn returning a fixed sequence of validation losses, keeping the weights it saw at each call."""

    def __init__(self, values):
        self.values, self.seen = list(values), []

    def __call__(self, model):
        self.seen.append(_params(model))
        return {"val_loss": self.values[len(self.seen) - 1], "val_other": len(self.seen)}


def _cfg(**kw):
    return TrainConfig(lr=1e-2, batch_size=8, warmup=2, progress=False, threads=1, **kw)


def test_default_run_is_unchanged_by_the_early_stopping_fields():
    """patience 0 (the default) ignores min_delta / monitor / restore_best; and early stopping that never triggers
    and restores nothing trains exactly like a run without it (same batches, same weights, same losses)."""
    runs = {}
    for key, kw in {"plain": {}, "inert": dict(patience=0, min_delta=0.5, monitor="x", restore_best=False),
                    "never": dict(patience=1000, restore_best=False)}.items():
        m = tiny_model()
        ev = lambda model: {"val_loss": perplexity(model, [counting_data(8)])}  # noqa: E731
        res = train(m, counting_data(), _cfg(steps=23, eval_every=5, **kw), eval_fn=ev)
        runs[key] = (_params(m), [(h["loss"], h["grad_norm"], h["lr"]) for h in res.history], res)
    for key in ("inert", "never"):
        assert _same(runs[key][0], runs["plain"][0]) and runs[key][1] == runs["plain"][1], key
    plain, never = runs["plain"][2], runs["never"][2]
    assert plain.val_curve == [] and plain.best_step is None and plain.still_improving is None
    assert not plain.stopped_early and not plain.restored_best and math.isnan(plain.train_loss_at_best)
    assert never.steps_done == 23 and [s for s, _ in never.val_curve] == [5, 10, 15, 20, 23]  # the cap is evaluated
    assert never.final["val_loss"] == plain.final["val_loss"]


def test_stops_early_on_a_plateau():
    ev = Scripted([3.0, 2.0, 1.0, 0.999, 1.2, 0.5, 0.4])       # 0.999 is within min_delta: no improvement
    res = train(tiny_model(), counting_data(), _cfg(steps=100, eval_every=5, patience=2, min_delta=0.01), eval_fn=ev)
    assert res.stopped_early and res.steps_done == 25 and len(res.history) == 25
    assert res.val_curve == [(5, 3.0), (10, 2.0), (15, 1.0), (20, 0.999), (25, 1.2)]
    assert res.best_step == 15 and res.best_value == 1.0 and res.still_improving is False
    assert res.final["val_loss"] == 1.0 and res.final["val_other"] == 3     # the best evaluation's metrics
    assert res.train_loss_at_best == pytest.approx(sum(h["loss"] for h in res.history[10:15]) / 5)
    assert "final_loss" in res.final and res.history[-1]["val_loss"] == 1.2


def test_min_steps_keeps_a_run_past_an_early_plateau():
    """A flat start (3.0, 3.0, ...) would stop at step 15 with patience 2; min_steps 30 lets it reach the drop."""
    ev = Scripted([3.0, 3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0])
    res = train(tiny_model(), counting_data(), _cfg(steps=100, eval_every=5, patience=2, min_steps=30), eval_fn=ev)
    assert res.best_value == 1.0 and res.best_step == 30 and res.stopped_early and res.steps_done == 40
    ev = Scripted([3.0, 3.0, 3.0, 3.0])
    assert train(tiny_model(), counting_data(), _cfg(steps=100, eval_every=5, patience=2),
                 eval_fn=ev).steps_done == 15
    with pytest.raises(BenchError, match="min_steps"):
        _cfg(steps=10, min_steps=-1)


def test_flags_a_run_still_improving_at_the_cap():
    ev = Scripted([3.0, 2.0, 1.0, 0.5])
    res = train(tiny_model(), counting_data(), _cfg(steps=20, eval_every=5, patience=2), eval_fn=ev)
    assert not res.stopped_early and res.still_improving is True and res.steps_done == 20
    assert res.best_step == 20 and not res.restored_best                  # the last evaluation was the best
    # a better value inside the last patience window, but not at the last evaluation: still improving
    ev = Scripted([3.0, 2.0, 1.0, 1.5])
    res = train(tiny_model(), counting_data(), _cfg(steps=20, eval_every=5, patience=2), eval_fn=ev)
    assert res.still_improving is True and res.best_step == 15 and res.restored_best
    # patience running out exactly at the cap: converged, not "stopped early"
    ev = Scripted([3.0, 2.0, 2.5, 2.5])
    res = train(tiny_model(), counting_data(), _cfg(steps=20, eval_every=5, patience=2), eval_fn=ev)
    assert res.still_improving is False and not res.stopped_early and res.steps_done == 20


def test_restores_the_best_weights():
    ev = Scripted([3.0, 1.0, 2.0, 2.5, 2.6])
    m = tiny_model()
    m.transformer.h[0].mlp.requires_grad_(False)                          # frozen parts are left as they are
    res = train(m, counting_data(), _cfg(steps=100, eval_every=4, patience=3), eval_fn=ev)
    assert res.steps_done == 20 and res.best_step == 8 and res.restored_best
    assert _same(_params(m), ev.seen[1]) and not _same(_params(m), ev.seen[-1])
    assert not m.training
    # restore_best=False keeps the last weights (the best step is still recorded)
    ev2 = Scripted([3.0, 1.0, 2.0, 2.5, 2.6])
    m2 = tiny_model()
    res2 = train(m2, counting_data(), _cfg(steps=100, eval_every=4, patience=3, restore_best=False), eval_fn=ev2)
    assert res2.best_step == 8 and not res2.restored_best and _same(_params(m2), ev2.seen[-1])
    assert res2.final["val_loss"] == 2.6


def test_early_stopping_with_the_answer_loss():
    """The real metric end to end: the restored model scores exactly the best recorded validation loss."""
    val = [{"input_ids": r["input_ids"], "labels": [IGNORE] * 11 + r["input_ids"][11:]} for r in counting_data(8)]
    m = tiny_model()
    res = train(m, counting_data(), _cfg(steps=30, eval_every=5, patience=2), eval_fn=answer_loss_eval(val))
    assert res.best_value == min(v for _, v in res.val_curve) and res.final["val_loss"] == res.best_value
    assert answer_loss(m, val) == res.best_value


def test_early_stopping_config_errors():
    with pytest.raises(BenchError, match="eval_every"):
        TrainConfig(patience=3)
    with pytest.raises(BenchError):
        TrainConfig(patience=-1, eval_every=5)
    with pytest.raises(BenchError, match="eval_fn"):
        train(tiny_model(), counting_data(), _cfg(steps=5, eval_every=2, patience=1))
    with pytest.raises(BenchError, match="monitors 'val_loss'"):
        train(tiny_model(), counting_data(), _cfg(steps=5, eval_every=2, patience=1), eval_fn=lambda m: {"acc": 1.0})


def test_answer_loss_counts_only_answer_tokens():
    rows = [{"input_ids": r["input_ids"], "labels": [IGNORE] * 10 + r["input_ids"][10:]} for r in counting_data(8)]
    assert answer_loss(Uniform(), rows) == pytest.approx(math.log(V))
    m = tiny_model()
    with torch.no_grad():
        logits = m(input_ids=torch.tensor([r["input_ids"] for r in rows])).logits   # (8, 12, V): no padding here
    tgt = torch.tensor([r["labels"] for r in rows])
    want = float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tgt[:, 1:].reshape(-1),
                                                   ignore_index=IGNORE))
    assert answer_loss(m, rows) == pytest.approx(want, rel=1e-5)
    assert answer_loss(m, rows, batch_size=3) == pytest.approx(want, rel=1e-5)   # token-weighted, any batching
    assert math.isnan(answer_loss(m, [{"input_ids": [1, 2], "labels": [IGNORE, IGNORE]}]))
