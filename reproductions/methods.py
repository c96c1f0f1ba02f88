"""Performance of our PEFT methods (bench.methods): supporting measurements, no verdicts.

Measured side by side in ONE process, round-robin (each round runs every variant once, in a rotated order),
medians over rounds, on GPT-2 configs with random weights:
1. training step (forward + backward + AdamW + zero_grad, batch x seq tokens) of every method, and its ratio
   to full fine-tuning; our LoRA vs peft's LoRA with the same settings (r = 8, alpha = 16 on c_attn, no
   dropout on the branch): ratio ours/peft, target <= 1.05.
2. memory per method relative to full FT: (a) tensor accounting after one step (weights, gradients, AdamW
   states, activations saved for backward), deterministic -> results.csv; (b) the measured peak RSS growth
   of a fresh model's step (a 1 ms sampling thread; process-dependent -> timings.csv).
3. inference latency (eval, no_grad forward) of the base model, unmerged LoRA and merged LoRA
   (merge_and_unload): merged/base target within 3% (L5: merging removes the overhead), unmerged/base is
   the overhead that merging removes.
4. multi-task serving (bench.methods.multitask): a batch mixing K tasks, each row with its own LoRA adapter
   (multi_lora) or soft prompt (prompt_bank), vs a single-task batch of the same size through the plain
   single-adapter model (LoRA: bench.methods.lora; prompt: bench.methods.prompt): throughput ratio
   single time / mixed time, target >= 0.95, rows interleaved by task (the hardest order), ABBA pairs.
The targets (ours/peft step, merged/base forward, mixed/single throughput) are judged on a second measurement: the two sides
alternately in ABBA pairs (`pair_rounds` pairs), ratio of the medians, with the per-pair ratios' quartiles
beside it. In the round-robin one variant always follows the same other, and a GPT-2-small step varies by
~8% round to round here, more than the 5% margin; the round-robin ratio is kept as a second row.
Every timing row records torch's thread count and the 1-minute load average: timings taken next to other
busy processes are contaminated (see ../shared/machine-notes.md) and only ratios within one run mean much.
Rows carry claim "-"; `params.supports` names the claim (L5, A2) a row speaks to.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import importlib.util
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import envinfo
from bench.repro import RunContext, settings_with_overrides
from bench.schema import Recorder, read_meta, read_results

GROUP = "methods"
CLAIMS = ()
TAKES_MODEL = False   # fixed configs: `--model` is refused before any work (bench.cli.run_group)
REGRESS = []

TARGET_OURS_OVER_PEFT = 1.05      # our LoRA step / peft's
TARGET_MERGED_OVER_BASE = 1.03    # merged LoRA forward / base forward
TARGET_MIXED_THROUGHPUT = 0.95    # mixed-task batch throughput / single-task batch throughput (same size)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    n_embd: int
    n_layer: int
    n_head: int
    vocab: int


@dataclass(frozen=True)
class Settings:
    models: tuple[ModelSpec, ...]
    batch: int
    seq: int
    rounds: int           # training-step rounds (after one warm-up step per variant)
    infer_rounds: int     # inference rounds per shape
    infer_shapes: tuple[tuple[int, int], ...]   # (batch, seq) of the latency measurement
    pair_rounds: int = 2  # ABBA pairs for the targets (ours vs peft step; merged vs base forward; mixed vs single)
    mixed_tasks: int = 4  # K tasks in the mixed-task batch (part 4); 0 skips it


SETTINGS = {
    "smoke": Settings(models=(ModelSpec("gpt2-tiny", 32, 2, 2, 256),), batch=2, seq=16, rounds=2, infer_rounds=3,
                      infer_shapes=((2, 16), (1, 8)), pair_rounds=2),
    "cpu": Settings(models=(ModelSpec("gpt2-10m", 320, 8, 5, 2048), ModelSpec("gpt2-small", 768, 12, 12, 50257)),
                    batch=8, seq=128, rounds=7, infer_rounds=15, infer_shapes=((8, 128), (1, 16)),
                    # a GPT-2-small step varies by ~8% round to round here, more than the 5% margin: 20 pairs
                    pair_rounds=20),
}
SETTINGS["gpu"] = SETTINGS["cpu"]

# method -> make_config kwargs (LoRA as in the brief: r = 8 on c_attn; the others use their defaults)
METHOD_KWARGS = {
    "full": {}, "lora": dict(r=8, alpha=16.0, target_modules=("c_attn",)), "adapters": {}, "prefix": {},
    "prompt": {}, "ptuning": {}, "bitfit": {}, "top_k_layers": {},
}


def _build(spec: ModelSpec, seq: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=spec.n_embd, n_layer=spec.n_layer, n_head=spec.n_head, vocab_size=spec.vocab,
                     n_positions=max(1024, seq + 64), bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


def _sharing_copy(base):
    """A copy of `base` whose parameters are new Parameter objects over the SAME storage: one weight copy in
    memory for all variants of the round-robin (each keeps its own requires_grad flags). The weights drift a
    little as full FT / BitFit / top-k steps update them; timings do not depend on the values."""
    memo = {id(p): torch.nn.Parameter(p.data, requires_grad=True) for p in base.parameters()}
    return copy.deepcopy(base, memo)


def _variant(name: str, base, share: bool = True):
    from bench.methods import apply, make_config

    model = _sharing_copy(base) if share else copy.deepcopy(base)
    if name == "peft-lora":
        import peft   # the peer, imported only here (bench/ never imports peft)

        kw = METHOD_KWARGS["lora"]
        cfg = peft.LoraConfig(r=kw["r"], lora_alpha=kw["alpha"], target_modules=list(kw["target_modules"]),
                              lora_dropout=0.0, fan_in_fan_out=True, task_type="CAUSAL_LM")
        return peft.get_peft_model(model, cfg)
    return apply(model, make_config(name, **METHOD_KWARGS[name]))


def _optimizer(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def _step(model, opt, ids):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn) -> float:
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t


def _round_robin(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Run every fn once per round, the order rotated each round; returns name -> per-round seconds."""
    names, out = list(fns), {n: [] for n in fns}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(_timed(fns[n]))
    return out


def _paired(a, b, pairs: int) -> tuple[list[float], list[float]]:
    """Time a and b alternately in ABBA order (a b, b a, a b, ...): each pair runs back to back, so what ran
    before and the machine's state at the time are shared, and a pair's ratio cancels slow drifts that a
    round-robin over many variants leaves in (there, one variant always follows the same other)."""
    ta, tb = [], []
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(_timed(a))
            tb.append(_timed(b))
        else:
            tb.append(_timed(b))
            ta.append(_timed(a))
    return ta, tb


def _pair_stats(ta: list[float], tb: list[float]) -> dict:
    """The target's figure (ratio of medians) with the per-pair ratios' median and quartiles beside it."""
    r = sorted(x / y for x, y in zip(ta, tb))
    q = statistics.quantiles(r, n=4) if len(r) >= 2 else [r[0]] * 3
    return {"ratio": statistics.median(ta) / statistics.median(tb), "median_of_pair_ratios": round(q[1], 4),
            "pair_ratio_q25": round(q[0], 4), "pair_ratio_q75": round(q[2], 4), "pairs": len(r)}


def _timing_params(extra: dict) -> dict:
    return {"threads": torch.get_num_threads(), "load_avg_1m": round(envinfo.load_average(), 2), **extra}


# ---- memory --------------------------------------------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)   # hand freed heap pages back, so RSS growth is new memory
    except OSError:
        pass


class PeakRSS:
    """Samples the process RSS every `interval` s in a thread; `.peak` is the largest value seen."""

    def __init__(self, interval: float = 1e-3):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self.peak = _rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())


def tensor_accounting(model, opt, ids) -> dict[str, int]:
    """Bytes of weights, gradients (of one step), AdamW states and activations saved for backward."""
    params = list(model.parameters())
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in param_ptrs:
            saved[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    opt.step()
    states = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                 if torch.is_tensor(v) and v.dim() > 0)
    opt.zero_grad(set_to_none=True)
    weights = sum(p.numel() * p.element_size() for p in params)
    acts = sum(saved.values())
    return {"weights": weights, "grads": grads, "states": states, "activations": acts,
            "total": weights + grads + states + acts}


def _measured_peak(name: str, base, ids) -> int:
    """RSS growth from before building a fresh (unshared) variant to the peak of its second step."""
    _trim()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        start = _rss()
    model = _variant(name, base, share=False)
    opt = _optimizer(model)
    _step(model, opt, ids)                                   # allocates the AdamW states
    if torch.cuda.is_available():
        _step(model, opt, ids)
        peak = torch.cuda.max_memory_allocated()
    else:
        with PeakRSS() as m:
            _step(model, opt, ids)
        peak = m.peak
    del model, opt
    _trim()
    return peak - start


# ---- the run -------------------------------------------------------------------------------------------------

def run(ctx: RunContext) -> Recorder:
    from bench.methods import merge_and_unload, trainable_parameters
    from bench.methods.lora import lora_layers

    s = settings_with_overrides(ctx, SETTINGS, GROUP)
    rec = ctx.recorder(GROUP, CLAIMS)
    rec.threads = torch.get_num_threads()        # timed with torch's default (all cores), not the suite's 1
    rec.notes["load_average_1m_at_start"] = envinfo.load_average()
    rec.notes["torch_threads"] = torch.get_num_threads()
    seed = ctx.seeds[0]
    dev = envinfo.device()
    have_peft = importlib.util.find_spec("peft") is not None
    if not have_peft:
        rec.notes["peft"] = "not installed: no ours-vs-peft rows"
    methods = list(METHOD_KWARGS) + (["peft-lora"] if have_peft else [])

    phases = rec.notes.setdefault("phase_wall_s", {})
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        phases[name] = round(now - clock, 1)
        clock = now

    for spec in ctx.progress(s.models, desc="methods: models"):
        base = _build(spec, s.seq, seed).to(dev)
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, spec.vocab, (s.batch, s.seq), generator=g).to(dev)
        common = dict(model=spec.name, seed=seed, data="random-tokens")
        shape = {"batch": s.batch, "seq": s.seq, "n_embd": spec.n_embd, "n_layer": spec.n_layer,
                 "vocab": spec.vocab}

        # 1. training steps, round-robin over every method (weights shared between variants)
        variants = {m: _variant(m, base) for m in methods}
        opts = {m: _optimizer(v) for m, v in variants.items()}
        for m in methods:                                    # warm-up: allocate AdamW states, fill caches
            _step(variants[m], opts[m], ids)
        times = _round_robin({m: (lambda v=variants[m], o=opts[m]: _step(v, o, ids)) for m in methods}, s.rounds)
        med = {m: statistics.median(t) for m, t in times.items()}
        for m in methods:
            n_train, n_total = trainable_parameters(variants[m]) if m != "peft-lora" else \
                variants[m].get_nb_trainable_parameters()
            kw = {"method_kwargs": METHOD_KWARGS.get(m, METHOD_KWARGS["lora"]), **shape}
            rec.add("-", "trainable_params", n_train, unit="params", method=m, scale="toy", params=kw, **common)
            rec.add("-", "total_params", n_total, unit="params", method=m, scale="toy", params=kw, **common)
            tp = _timing_params({**kw, "rounds": s.rounds, "supports": "A2"})
            rec.add("-", "train_step_s", med[m], unit="s", method=m, scale="toy", params=tp, timing=True, **common)
            rec.add("-", "train_step_ratio_vs_full", med[m] / med["full"], unit="ratio", method=m, scale="toy",
                    params=tp, timing=True, **common)
            rec.add("-", "train_step_spread", (max(times[m]) - min(times[m])) / med[m], unit="ratio", method=m,
                    scale="toy", params=tp, timing=True, **common)
        if have_peft:
            per_round = [a / b for a, b in zip(times["lora"], times["peft-lora"])]
            lora_kw = {**shape, "target": TARGET_OURS_OVER_PEFT, "r": 8, "alpha": 16, "targets": "c_attn"}
            tp = _timing_params({**lora_kw, "rounds": s.rounds, "protocol": "round-robin over all variants",
                                 "median_of_round_ratios": round(statistics.median(per_round), 4)})
            rec.add("-", "lora_step_ours_over_peft_roundrobin", med["lora"] / med["peft-lora"], unit="ratio",
                    method="lora", scale="toy", params=tp, timing=True, **common)
            # the target's measurement: ours and peft's steps in ABBA pairs
            st = _pair_stats(*_paired(lambda v=variants["lora"], o=opts["lora"]: _step(v, o, ids),
                                      lambda v=variants["peft-lora"], o=opts["peft-lora"]: _step(v, o, ids),
                                      s.pair_rounds))
            tp = _timing_params({**lora_kw, "protocol": "ABBA pairs", **{k: v for k, v in st.items() if k != "ratio"}})
            rec.add("-", "lora_step_ours_over_peft", st["ratio"], unit="ratio", method="lora", scale="toy", params=tp,
                    timing=True, **common)
        del variants, opts
        _trim()
        lap(f"{spec.name}:steps")

        # 2. memory: tensor accounting (deterministic) and measured peak growth (process-dependent)
        acct = {}
        for m in ctx.progress(METHOD_KWARGS, desc=f"{spec.name}: memory", leave=False):
            v = _variant(m, base)
            o = _optimizer(v)
            _step(v, o, ids)
            acct[m] = tensor_accounting(v, o, ids)
            del v, o
        for m, parts in acct.items():
            for part, nbytes in parts.items():
                kw = {"part": part, "source": "accounting", "supports": "A2", **shape}
                rec.add("-", "memory_bytes", nbytes, unit="bytes", method=m, scale="toy", params=kw, **common)
                full = acct["full"][part]
                rec.add("-", "memory_ratio_vs_full", nbytes / full if full else float("nan"), unit="ratio", method=m,
                        scale="toy", params=kw, **common)
        _trim()
        lap(f"{spec.name}:accounting")
        peaks = {m: _measured_peak(m, base, ids) for m in ctx.progress(METHOD_KWARGS, desc=f"{spec.name}: peak",
                                                                      leave=False)}
        for m, p in peaks.items():
            tp = _timing_params({"part": "peak", "source": "rss" if dev == "cpu" else "cuda", "supports": "A2",
                                 **shape})
            rec.add("-", "peak_memory_bytes", p, unit="bytes", method=m, scale="toy", params=tp, timing=True, **common)
            rec.add("-", "peak_memory_ratio_vs_full", p / peaks["full"], unit="ratio", method=m, scale="toy",
                    params=tp, timing=True, **common)

        lap(f"{spec.name}:peak")

        # 3. inference: base vs unmerged vs merged LoRA (separate weight copies: merging writes them)
        unmerged = _variant("lora", base, share=False)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for _, layer in lora_layers(unmerged):           # a trained-looking B, so the merge changes W
                layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.02)
        merged = merge_and_unload(copy.deepcopy(unmerged))
        models = {"base": base, "lora_unmerged": unmerged, "lora_merged": merged}
        for m in models.values():
            m.eval()
        for (b, t) in s.infer_shapes:
            x = torch.randint(1, spec.vocab, (b, t), generator=g).to(dev)
            with torch.no_grad():
                want = base(input_ids=x).logits
                diff = float((merged(input_ids=x).logits - want).abs().max())        # also warms every model up
                diff_um = float((merged(input_ids=x).logits - unmerged(input_ids=x).logits).abs().max())
                lat = _round_robin({k: (lambda v=v: v(input_ids=x)) for k, v in models.items()}, s.infer_rounds)
            lm = {k: statistics.median(v) for k, v in lat.items()}
            kw = {"batch": b, "seq": t, "n_embd": spec.n_embd, "n_layer": spec.n_layer, "vocab": spec.vocab,
                  "r": 8, "targets": "c_attn"}
            rec.add("-", "merged_vs_unmerged_max_abs_diff", diff_um, unit="abs", method="lora", scale="toy",
                    params={**kw, "supports": "L5"}, **common)
            rec.add("-", "merged_vs_base_max_abs_diff", diff, unit="abs", method="lora", scale="toy",
                    params={**kw, "supports": "L5", "note": "nonzero: B is random, so merged != base"}, **common)
            tp = _timing_params({**kw, "rounds": s.infer_rounds, "supports": "L5"})
            for k, v in lm.items():
                rec.add("-", "forward_latency_s", v, unit="s", method=k, scale="toy", params=tp, timing=True, **common)
            rec.add("-", "forward_latency_ratio_vs_base", lm["lora_merged"] / lm["base"], unit="ratio",
                    method="lora_merged", scale="toy", params={**tp, "target": TARGET_MERGED_OVER_BASE}, timing=True,
                    **common)
            rec.add("-", "forward_latency_ratio_vs_base", lm["lora_unmerged"] / lm["base"], unit="ratio",
                    method="lora_unmerged", scale="toy", params=tp, timing=True, **common)
            with torch.no_grad():   # the target's measurement: merged and base forwards in ABBA pairs
                st = _pair_stats(*_paired(lambda m=merged: m(input_ids=x), lambda m=base: m(input_ids=x), s.pair_rounds))
            tp = _timing_params({**kw, "protocol": "ABBA pairs", "supports": "L5", "target": TARGET_MERGED_OVER_BASE,
                                 **{k: v for k, v in st.items() if k != "ratio"}})
            rec.add("-", "forward_latency_merged_over_base_paired", st["ratio"], unit="ratio", method="lora_merged",
                    scale="toy", params=tp, timing=True, **common)
        del unmerged, merged, models
        _trim()
        lap(f"{spec.name}:inference")

        # 4. multi-task serving: a batch mixing K tasks vs a single-task batch of the same size
        if s.mixed_tasks > 0:
            mixed_serving(rec, base, spec, s, seed, dev, common)
            lap(f"{spec.name}:mixed")
        del base
        _trim()
    rec.notes["load_average_1m_at_end"] = envinfo.load_average()
    return rec


def mixed_serving(rec: Recorder, base, spec: ModelSpec, s: Settings, seed: int, dev, common: dict) -> None:
    """Part 4: throughput of a mixed-task batch (K adapters / prompts, rows interleaved) over a single-task
    batch of the same (batch, seq) through the single adapter's / prompt's own model, in ABBA pairs."""
    from bench.methods import apply, make_config, multi_lora, prompt_bank
    from bench.methods.lora import lora_layers

    K = s.mixed_tasks
    g = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(1, spec.vocab, (s.batch, s.seq), generator=g).to(dev)
    task_ids = (torch.arange(s.batch) % K).to(dev)                     # interleaved: 0, 1, ..., K-1, 0, ...
    loras = []
    for _ in range(K):
        m = apply(_sharing_copy(base), make_config("lora", **METHOD_KWARGS["lora"])).eval()
        with torch.no_grad():
            for _, layer in lora_layers(m):
                layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.02)
        loras.append(m)
    prompts = [apply(_sharing_copy(base), make_config("prompt")).eval() for _ in range(K)]
    cases = {
        "lora": (multi_lora(_sharing_copy(base), {str(k): m for k, m in enumerate(loras)}), loras),
        "prompt": (prompt_bank(_sharing_copy(base), {str(k): m for k, m in enumerate(prompts)}), prompts),
    }
    for method, (mixed, singles) in cases.items():
        with torch.no_grad():
            out = mixed(input_ids=ids, task_ids=task_ids).logits          # also the warm-up of both sides
            singles[0](input_ids=ids)
            diff = max(float((out[b] - singles[int(task_ids[b])](input_ids=ids[b:b + 1]).logits[0]).abs().max())
                       for b in range(s.batch))
            st = _pair_stats(*_paired(lambda: singles[0](input_ids=ids), lambda: mixed(input_ids=ids, task_ids=task_ids),
                                      s.pair_rounds))
        kw = {"batch": s.batch, "seq": s.seq, "n_embd": spec.n_embd, "n_layer": spec.n_layer, "K": K,
              "order": "interleaved", "method_kwargs": METHOD_KWARGS[method]}
        if method == "lora":
            kw["layout"] = "stacked" if next(m for m in mixed.modules() if hasattr(m, "stacked")).stacked else "grouped"
        rec.add("-", "mixed_batch_vs_single_rows_max_abs_diff", diff, unit="logit", method=method, scale="toy",
                params={**kw, "supports": "P4"}, **common)
        tp = _timing_params({**kw, "protocol": "ABBA pairs", "supports": "P4", "target": TARGET_MIXED_THROUGHPUT,
                             **{k: v for k, v in st.items() if k != "ratio"}})
        # st compares single time / mixed time: > 1 means the mixed batch is faster
        rec.add("-", "mixed_batch_throughput_over_single_task", st["ratio"], unit="ratio", method=method, scale="toy",
                params=tp, timing=True, **common)
    del cases, loras, prompts


# ---- report --------------------------------------------------------------------------------------------------

def _md_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _pick(df, metric, **where):
    import json
    sel = df[df["metric"] == metric]
    for k, v in where.items():
        if k.startswith("params."):
            key = k.split(".", 1)[1]
            sel = sel[sel["params"].map(lambda s, key=key: json.loads(s).get(key)) == v]
        else:
            sel = sel[sel[k] == v]
    return sel


def _params(df, metric, **where) -> dict:
    """The settings JSON of the first matching row ({} when none)."""
    import json
    rows = _pick(df, metric, **where)
    return json.loads(rows["params"].iloc[0]) if len(rows) else {}


def _value(df, metric, **where):
    sel = _pick(df, metric, **where)
    return float(sel["value"].iloc[0]) if len(sel) else float("nan")


def report(out_dir: Path) -> None:
    import json

    from bench.fileio import atomic_write_text

    out_dir = Path(out_dir)
    res, tim, meta = read_results(out_dir), read_results(out_dir, timing=True), read_meta(out_dir)
    parts = [f"# {GROUP}: performance of bench.methods (supporting measurements, no verdicts)", "",
             f"Profile `{meta.get('profile', '?')}`, torch threads {meta.get('torch_threads', '?')}, 1-minute load "
             f"average {meta.get('load_average_1m_at_start', '?')} at start and {meta.get('load_average_1m_at_end', '?')}"
             f" at end, on `{meta.get('hardware', '?')}`. Timings are medians of round-robin rounds in one process; "
             "the two targets are judged on back-to-back ABBA pairs (see the module doc). With foreign load on the "
             "machine only the ratios within a run are meaningful.", ""]
    if tim.empty and res.empty:
        parts.append("No results yet.")
        atomic_write_text(out_dir / "report.md", "\n".join(parts) + "\n")
        return
    for model in dict.fromkeys(list(res["model"]) + list(tim["model"])):
        parts += [f"## {model}", ""]
        ratio = _value(tim, "lora_step_ours_over_peft", model=model)
        if ratio == ratio:
            ok = "meets" if ratio <= TARGET_OURS_OVER_PEFT else "misses"
            q = _params(tim, "lora_step_ours_over_peft", model=model)
            rr = _value(tim, "lora_step_ours_over_peft_roundrobin", model=model)
            parts += [f"Our LoRA training step / peft's (same settings): **{ratio:.3f}** ({ok} the target "
                      f"<= {TARGET_OURS_OVER_PEFT}); ratio of medians over {q.get('pairs', '?')} ABBA pairs, per-pair "
                      f"ratios median {q.get('median_of_pair_ratios', '?')}, quartiles {q.get('pair_ratio_q25', '?')}"
                      f"-{q.get('pair_ratio_q75', '?')}. In the round-robin over all methods below: {rr:.3f}.", ""]
        methods = list(dict.fromkeys(_pick(tim, "train_step_s", model=model)["method"]))
        rows = []
        for m in methods:
            rows.append([m, _value(res, "trainable_params", model=model, method=m),
                         _value(tim, "train_step_s", model=model, method=m),
                         _value(tim, "train_step_ratio_vs_full", model=model, method=m),
                         _value(tim, "peak_memory_ratio_vs_full", model=model, method=m),
                         _value(res, "memory_ratio_vs_full", model=model, method=m, **{"params.part": "total"}),
                         _value(res, "memory_ratio_vs_full", model=model, method=m, **{"params.part": "states"}),
                         _value(res, "memory_ratio_vs_full", model=model, method=m,
                                **{"params.part": "activations"})])
        if rows:
            parts += ["Training step (forward + backward + AdamW) and memory, relative to full fine-tuning:", "",
                      _md_table(["method", "trainable params", "step s", "step / full", "peak RSS growth / full",
                                 "tensor bytes / full", "AdamW states / full", "saved activations / full"], rows), ""]
        lat = _pick(tim, "forward_latency_ratio_vs_base", model=model)
        if len(lat):
            rows = []
            for shape in dict.fromkeys((json.loads(p)["batch"], json.loads(p)["seq"]) for p in lat["params"]):
                w = {"params.batch": shape[0], "params.seq": shape[1]}
                q = _params(tim, "forward_latency_merged_over_base_paired", model=model, **w)
                rows.append([f"{shape[0]} x {shape[1]}",
                             _value(tim, "forward_latency_s", model=model, method="base", **w),
                             _value(tim, "forward_latency_ratio_vs_base", model=model, method="lora_unmerged", **w),
                             _value(tim, "forward_latency_ratio_vs_base", model=model, method="lora_merged", **w),
                             _value(tim, "forward_latency_merged_over_base_paired", model=model, **w),
                             f"{q.get('pair_ratio_q25', '?')}-{q.get('pair_ratio_q75', '?')}",
                             _value(res, "merged_vs_unmerged_max_abs_diff", model=model, **w)])
            parts += [f"Inference (eval forward), LoRA r = 8 on c_attn; target merged / base <= "
                      f"{TARGET_MERGED_OVER_BASE}, judged on the ABBA-paired figure (the round-robin columns rotate "
                      "three models):", "",
                      _md_table(["batch x seq", "base s", "unmerged / base", "merged / base",
                                 "merged / base (ABBA pairs)", "pair ratio quartiles",
                                 "max |merged - unmerged|"], rows), ""]
        mix = _pick(tim, "mixed_batch_throughput_over_single_task", model=model)
        if len(mix):
            rows = []
            for m in mix["method"]:
                q = _params(tim, "mixed_batch_throughput_over_single_task", model=model, method=m)
                r = _value(tim, "mixed_batch_throughput_over_single_task", model=model, method=m)
                rows.append([m, q.get("K", "?"), f"{q.get('batch', '?')} x {q.get('seq', '?')}", q.get("layout", "-"),
                             r, "meets" if r >= TARGET_MIXED_THROUGHPUT else "misses",
                             f"{q.get('pair_ratio_q25', '?')}-{q.get('pair_ratio_q75', '?')}",
                             _value(res, "mixed_batch_vs_single_rows_max_abs_diff", model=model, method=m)])
            parts += [f"Multi-task serving (bench.methods.multitask): throughput of a batch mixing K tasks (rows "
                      f"interleaved) over a single-task batch of the same size, ABBA pairs; target >= "
                      f"{TARGET_MIXED_THROUGHPUT}:", "",
                      _md_table(["method", "K", "batch x seq", "layout", "mixed / single throughput", "target",
                                 "pair ratio quartiles", "max |mixed - row alone|"], rows), ""]
    atomic_write_text(out_dir / "report.md", "\n".join(parts) + "\n")
