"""A training-memory model, by part, and a way to measure the same parts on a live model.

Parts (bytes):
- weights:      every parameter, in the storage dtype (int8 for frozen Linear weights when `frozen_int8`).
- gradients:    one per trainable parameter.
- optimizer:    AdamW's two moments (+ its `step` counter per tensor), or the fp32 master copy + moments
                under "mixed" precision (ZeRO's accounting, Rajbhandari et al. 2020, Sec. 3.1: 2+2+4+4+4 =
                16 bytes per trainable parameter, https://arxiv.org/abs/1910.02054).
- activations:  the tensors autograd saves for backward in one training step. Predicted by walking a
                symbolic forward pass of the model family (GPT-2, OPT, Llama) that knows which tensors each op
                saves and when: a frozen weight whose input needs no grad saves nothing, a frozen Linear whose
                input needs grad saves only its weight (no new memory), layer norms save input + 2 stats...
                (the rules of torch's derivatives.yaml as they apply to transformers' code).
- int8_overhead: row scales of int8 weights (bitsandbytes keeps one fp32 scale per output row).

Why LoRA and adapters need less: no gradients and no optimizer state for frozen weights (claim A2), while the
frozen weights themselves still sit in memory. Activations shrink less (frozen Linears skip saving their input
but norms, attention and the MLP nonlinearity still save theirs), so on small models with long sequences,
where activations dominate, the total falls less than on large models, where weights and states dominate.

`measure_step` counts the same parts from live tensors (parameters, `.grad`, optimizer state, and
`torch.autograd.graph.saved_tensors_hooks` for activations, deduplicated by storage), plus the process' peak
RSS (or CUDA's max_memory_allocated) as a cross-check that includes temporaries.
"""

from __future__ import annotations

import itertools
import re
import resource
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from bench import BenchError

PRECISIONS = {
    # name: (bytes per weight, per gradient, per optimizer-state element, fp32 master copy?, bytes per activation)
    "fp32": (4, 4, 4, False, 4),
    "mixed": (2, 2, 4, True, 2),    # 16-bit weights/grads/activations, fp32 master + Adam moments (ZeRO's 16 B)
    "bf16": (2, 2, 2, False, 2),    # everything in 16 bit, Adam moments too (no master copy)
    "fp16": (2, 2, 2, False, 2),
}
OPTIMIZERS = {"adamw": 2, "sgd": 0, "momentum": 1}  # state tensors per trainable parameter
FAMILIES = ("gpt2", "opt", "llama")


@dataclass(frozen=True)
class Setup:
    """How one training step is run, for the memory model."""

    precision: str = field(default="fp32", metadata={"help": "fp32 | mixed (ZeRO mixed-precision Adam) | bf16 | fp16"})
    optimizer: str = field(default="adamw", metadata={"help": "adamw | sgd | momentum"})
    batch: int = field(default=8, metadata={"help": "sequences per step"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence"})
    frozen_int8: bool = field(default=False, metadata={
        "help": "frozen Linear weights stored in int8 + one fp32 scale per row (bitsandbytes LLM.int8())"})
    attention: str = field(default="sdpa", metadata={"help": "sdpa (fused, saves q,k,v,out,logsumexp) | eager"})
    loss: bool = field(default=True, metadata={"help": "include the LM loss (log-softmax over the vocabulary)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda (dropout saves an fp32 mask on CPU, bool on CUDA)"})

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise BenchError(f"memory: unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise BenchError(f"memory: unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.attention not in ("sdpa", "eager"):
            raise BenchError(f"memory: attention must be 'sdpa' or 'eager', got {self.attention!r}")
        if self.batch < 1 or self.seq_len < 1:
            raise BenchError(f"memory: batch and seq_len must be >= 1, got {self.batch}, {self.seq_len}")


@dataclass
class Memory:
    """Bytes by part; `assumptions` says what the numbers rest on."""

    weights: float = 0.0
    gradients: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    int8_overhead: float = 0.0
    assumptions: list[str] = field(default_factory=list)

    PARTS = ("weights", "gradients", "optimizer", "activations", "int8_overhead")

    @property
    def states(self) -> float:
        """What training adds for the parameters: gradients + optimizer states."""
        return self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return sum(getattr(self, p) for p in self.PARTS)

    def parts(self) -> dict[str, float]:
        return {p: float(getattr(self, p)) for p in self.PARTS} | {"total": float(self.total)}


# ---------------------------------------------------------------------------------------------- model input

def meta_model(config) -> nn.Module:
    """A transformers model built from a config on the meta device: shapes only, no weights allocated."""
    import transformers

    cls = transformers.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) \
        else transformers.AutoModelForCausalLM
    with torch.device("meta"):
        return cls.from_config(config)


def _as_model(model_or_config) -> nn.Module:
    if isinstance(model_or_config, nn.Module):
        return model_or_config
    if hasattr(model_or_config, "model_type"):
        return meta_model(model_or_config)
    raise BenchError(f"memory: pass a torch model or a transformers config, got {type(model_or_config).__name__}")


def _base(model: nn.Module) -> nn.Module:
    if hasattr(model, "get_base_model"):  # prefix / prompt / P-tuning wrappers change the sequence itself
        raise BenchError(f"memory: activations of {type(model).__name__} (prefix/prompt methods) are not modelled; "
                         "full, LoRA and adapters are")
    return model


def _family(model: nn.Module) -> str:
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt in ("llama", "mistral", "qwen2"):
        return "llama"
    if mt not in FAMILIES:
        raise BenchError(f"memory: no activation model for model_type {mt!r}; known: {', '.join(FAMILIES)}")
    return mt


def _linear_types():
    try:
        from transformers.pytorch_utils import Conv1D
        return (nn.Linear, Conv1D)
    except ImportError:  # pragma: no cover
        return (nn.Linear,)


# ---------------------------------------------------------------------------------------------- the model

def estimate(model_or_config, setup: Setup = Setup()) -> Memory:
    """Predicted bytes by part for one training step of `model_or_config` (a model, possibly on the meta device
    and possibly adapted by a bench method; or a transformers config, built on the meta device)."""
    setup.check()
    model = _as_model(model_or_config)
    w_b, g_b, s_b, master, _ = PRECISIONS[setup.precision]
    n_states = OPTIMIZERS[setup.optimizer]
    lin = _linear_types()
    int8_weights = set()
    int8_rows = 0
    if setup.frozen_int8:
        for name, mod in model.named_modules():
            w = getattr(mod, "weight", None)
            if isinstance(mod, lin) and isinstance(w, nn.Parameter) and not w.requires_grad and "lm_head" not in name:
                int8_weights.add(id(w))
                int8_rows += w.shape[1] if type(mod).__name__ == "Conv1D" else w.shape[0]
    mem = Memory()
    n_train_tensors = 0
    for p in model.parameters():  # tied parameters are listed once
        n = p.numel()
        mem.weights += n * (1 if id(p) in int8_weights else w_b)
        if p.requires_grad:
            n_train_tensors += 1
            mem.gradients += n * g_b
            mem.optimizer += n * (n_states * s_b + (4 if master else 0))
    if setup.optimizer != "sgd":
        mem.optimizer += 4 * n_train_tensors  # torch keeps each parameter's step count as a float32 tensor
    mem.int8_overhead = 4 * int8_rows
    mem.activations = activation_bytes(model, setup) if any(p.requires_grad for p in model.parameters()) else 0
    mem.assumptions = [
        f"precision {setup.precision}: {w_b} B/weight, {g_b} B/grad, {setup.optimizer} with {n_states} state(s) of "
        f"{s_b} B" + (" + fp32 master copy (4 B)" if master else "") + " per trainable parameter",
        f"activations for batch {setup.batch} x {setup.seq_len} tokens, {PRECISIONS[setup.precision][4]} B per element, "
        f"{setup.attention} attention, no activation checkpointing",
        "frozen Linear weights in int8 + one fp32 scale per row" if setup.frozen_int8 else "no int8 weights",
        "temporaries (workspace, allocator slack, the freed forward intermediates) are not counted",
    ]
    return mem


# A symbolic forward pass: each tensor knows its size and whether it needs grad; ops save what autograd saves.

@dataclass
class _T:
    nbytes: float
    grad: bool
    id: int = field(default_factory=itertools.count().__next__)


class _Tape:
    def __init__(self, setup: Setup, n_tokens: int):
        self.elem = PRECISIONS[setup.precision][4]
        self.n = n_tokens
        self.setup = setup
        self.saved: dict[int, float] = {}

    def new(self, width: float, grad: bool, elem: float | None = None) -> _T:
        return _T(self.n * width * (self.elem if elem is None else elem), grad)

    def save(self, *ts: _T) -> None:
        for t in ts:
            self.saved[t.id] = t.nbytes

    # -- ops --------------------------------------------------------------------------------------------------
    def dropout(self, x: _T, p: float, width: int) -> _T:
        if p <= 0:
            return x   # torch returns the input itself for p = 0
        if x.grad:     # CPU: input * (bernoulli noise / (1-p)) saves the noise in x's dtype; CUDA: a bool mask
            self.save(self.new(width, False, 1 if self.setup.device == "cuda" else None))
        return self.new(width, x.grad)

    def norm(self, x: _T, width: int, trainable: bool, rms: bool = False) -> _T:
        if rms:  # Llama: x * rsqrt(mean(x^2) + eps) saves x and rsqrt; weight * h saves h if the weight trains
            h = self.new(width, x.grad)
            if x.grad:
                self.save(x, self.new(1, False, 4))
            if trainable:
                self.save(h)
            return self.new(width, x.grad or trainable)
        if x.grad or trainable:  # native_layer_norm saves input, mean and rstd (fp32)
            self.save(x, self.new(2, False, 4))
        return self.new(width, x.grad or trainable)

    def linear(self, x: _T, fi: int, fo: int, spec: dict) -> _T:
        out = self.new(fo, x.grad or spec["trainable"])
        if spec["trainable"]:
            self.save(x)                                   # grad W = grad_out^T x
        if spec.get("lora"):
            xin = self.dropout(x, spec.get("lora_dropout", 0.0), fi)
            self.save(xin)                                 # for grad A
            a = self.new(spec["lora"], True)               # A x * scaling
            self.save(a)                                   # for grad B
            out = self.new(fo, True)                       # base + B(...)
        if spec.get("adapter"):
            m = spec["adapter"]
            self.save(out)                                 # down's input
            d = self.new(m, True)
            act = spec.get("adapter_act", "gelu")
            a = self.new(m, True)
            self.save(a if act in ("relu", "tanh") else d)  # relu/tanh save their result, gelu/silu their input
            self.save(a)                                   # up's input
            out = self.new(fo, True)
        return out

    def act(self, x: _T, kind: str, width: int) -> _T:
        out = self.new(width, x.grad)
        if not x.grad:
            return out
        if kind == "gelu_new":  # 0.5*x*(1+tanh(c*(x+0.044715*x^3))): saves x, tanh(.), 0.5*x, 1+tanh(.)
            self.save(x, self.new(width, False), self.new(width, False), self.new(width, False))
        elif kind in ("relu", "tanh"):
            self.save(out)
        else:                   # gelu, silu and friends save their input
            self.save(x)
        return out

    def mul(self, a: _T, b: _T, width: int) -> _T:
        if a.grad:
            self.save(b)
        if b.grad:
            self.save(a)
        return self.new(width, a.grad or b.grad)

    def attention(self, q: _T, k: _T, v: _T, d: int, heads: int, p_drop: float) -> _T:
        """q, k, v: the tensors whose storage holds them (for GPT-2 one fused (B, T, 3C) tensor)."""
        grad = q.grad or k.grad or v.grad
        if self.setup.attention == "sdpa" and p_drop == 0:
            if not grad:
                return self.new(d, False)
            # the fused kernel saves q, k, v (views of their storage), its output and the log-sum-exp (fp32);
            # its output is laid out (B, T, H, hd), so transpose(1, 2).contiguous() is free and the output
            # projection saves the same storage
            out = self.new(d, True)
            self.save(q, k, v, out, self.new(heads, False, 4))
            return out
        # eager (math) path: softmax(q k^T * s + mask) v with matmuls on (B*H, T, hd) copies of q, k, v
        t = self.setup.seq_len
        if k.grad:
            self.save(self.new(d, False))                          # q copy
        if q.grad:
            self.save(self.new(d, False))                          # k^T copy
        probs = _T(self.setup.batch * heads * t * t * self.elem, grad)
        if grad:
            self.save(probs)                                       # softmax's result
            if p_drop > 0:
                self.save(_T(probs.nbytes / (self.elem if self.setup.device == "cuda" else 1), False))
                probs = _T(probs.nbytes, True)
        if v.grad:
            self.save(probs)
        if probs.grad:
            self.save(self.new(d, False))                          # v copy
        return self.new(d, grad)                                   # (B, T, C) copy of the output

    def total(self) -> float:
        return float(sum(self.saved.values()))


def _spec(mod: nn.Module) -> dict:
    """What the activation model needs to know about one projection of a block."""
    from bench.methods.adapters import WithAdapter
    from bench.methods.lora import LoraLayer

    spec = {"trainable": False, "lora": 0, "adapter": 0}
    if isinstance(mod, WithAdapter):
        spec["adapter"] = mod.adapter.down.out_features
        spec["adapter_act"] = type(mod.adapter.act).__name__.lower()
        mod = mod.base
    if isinstance(mod, LoraLayer):
        if not mod.merged:
            spec["lora"] = mod.r
            spec["lora_dropout"] = getattr(mod.dropout, "p", 0.0)
        mod = mod.base
    spec["trainable"] = bool(mod.weight.requires_grad)
    return spec


def _norm_trainable(mod: nn.Module) -> bool:
    return any(p.requires_grad for p in mod.parameters())


def activation_bytes(model: nn.Module, setup: Setup = Setup()) -> float:
    """Bytes autograd saves for backward in one training step (batch x seq_len tokens, LM loss)."""
    model = _base(model)
    fam = _family(model)
    c = model.config
    b, t = setup.batch, setup.seq_len
    tape = _Tape(setup, b * t)
    ids = tape.new(1, False, 8)
    if fam == "gpt2":
        d, heads, layers = c.n_embd, c.n_head, c.n_layer
        ff = c.n_inner or 4 * d
        act = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu", "gelu": "gelu", "relu": "relu"}.get(
            c.activation_function, "gelu")
        emb_w, pos_w = model.transformer.wte.weight, model.transformer.wpe.weight
        blocks = model.transformer.h
        final_norm, rms = model.transformer.ln_f, False
        p_resid, p_attn, p_emb = c.resid_pdrop, c.attn_pdrop, c.embd_pdrop
    elif fam == "opt":
        d, heads, layers, ff = c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.ffn_dim
        if c.word_embed_proj_dim != d or not c.do_layer_norm_before:
            raise BenchError("memory: OPT configs need word_embed_proj_dim == hidden_size and pre-layer-norm")
        act = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new"}.get(c.activation_function, "gelu")
        dec = model.model.decoder
        emb_w, pos_w = dec.embed_tokens.weight, dec.embed_positions.weight
        blocks, final_norm, rms = dec.layers, dec.final_layer_norm, False
        p_resid, p_attn, p_emb = c.dropout, c.attention_dropout, 0.0  # OPT has no embedding dropout
    else:
        d, heads, layers, ff = c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.intermediate_size
        if (getattr(c, "num_key_value_heads", None) or heads) != heads:
            raise BenchError("memory: grouped-query attention is not modelled")
        act = "silu"
        emb_w, pos_w = model.model.embed_tokens.weight, None
        blocks, final_norm, rms = model.model.layers, model.model.norm, True
        p_resid, p_attn, p_emb = 0.0, c.attention_dropout, 0.0
    ff = int(ff)
    # embeddings: the lookup saves its indices when the table trains
    if emb_w.requires_grad:
        tape.save(ids)
    if pos_w is not None and pos_w.requires_grad:
        tape.save(_T((b * t if fam == "opt" else t) * 8, False))  # position ids (GPT-2: shape (1, T))
    h = tape.new(d, emb_w.requires_grad or (pos_w is not None and pos_w.requires_grad))
    h = tape.dropout(h, p_emb, d)
    cos_sin = tape.new(0, False)
    if fam == "llama":  # rotary cos and sin, (1, T, head_dim) each, computed once and shared by every layer
        cos_sin = _T(2 * t * (d // heads) * tape.elem, False)
    for blk in blocks:
        if fam == "gpt2":
            x = tape.norm(h, d, _norm_trainable(blk.ln_1))
            qkv = tape.linear(x, d, 3 * d, _spec(blk.attn.c_attn))
            a = tape.attention(qkv, qkv, qkv, d, heads, p_attn)
            a = tape.linear(a, d, d, _spec(blk.attn.c_proj))
            a = tape.dropout(a, p_resid, d)
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.ln_2))
            u = tape.linear(x, d, ff, _spec(blk.mlp.c_fc))
            u = tape.act(u, act, ff)
            u = tape.linear(u, ff, d, _spec(blk.mlp.c_proj))
            u = tape.dropout(u, p_resid, d)
            h = tape.new(d, h.grad or u.grad)
        elif fam == "opt":
            at = blk.self_attn
            x = tape.norm(h, d, _norm_trainable(blk.self_attn_layer_norm))
            q = tape.linear(x, d, d, _spec(at.q_proj))
            q = tape.new(d, q.grad)                                       # q * scaling: a new tensor
            k = tape.linear(x, d, d, _spec(at.k_proj))
            v = tape.linear(x, d, d, _spec(at.v_proj))
            a = tape.attention(q, k, v, d, heads, p_attn)
            a = tape.linear(a, d, d, _spec(at.out_proj))
            a = tape.dropout(a, p_resid, d)
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.final_layer_norm))
            u = tape.linear(x, d, ff, _spec(blk.fc1))
            u = tape.act(u, act, ff)
            u = tape.linear(u, ff, d, _spec(blk.fc2))
            u = tape.dropout(u, p_resid, d)
            h = tape.new(d, h.grad or u.grad)
        else:
            at, mlp = blk.self_attn, blk.mlp
            x = tape.norm(h, d, _norm_trainable(blk.input_layernorm), rms=True)
            q = tape.linear(x, d, d, _spec(at.q_proj))
            k = tape.linear(x, d, d, _spec(at.k_proj))
            v = tape.linear(x, d, d, _spec(at.v_proj))
            if q.grad or k.grad:
                tape.save(cos_sin)                                        # q*cos + rotate_half(q)*sin
            q, k = tape.new(d, q.grad), tape.new(d, k.grad)
            a = tape.attention(q, k, v, d, heads, p_attn)
            a = tape.linear(a, d, d, _spec(at.o_proj))
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.post_attention_layernorm), rms=True)
            g = tape.linear(x, d, ff, _spec(mlp.gate_proj))
            g = tape.act(g, "silu", ff)
            u = tape.linear(x, d, ff, _spec(mlp.up_proj))
            u = tape.mul(g, u, ff)
            u = tape.linear(u, ff, d, _spec(mlp.down_proj))
            h = tape.new(d, h.grad or u.grad)
    x = tape.norm(h, d, _norm_trainable(final_norm), rms=rms)
    head = model.get_output_embeddings()
    logits = tape.linear(x, d, c.vocab_size, {"trainable": head.weight.requires_grad})
    if setup.loss and logits.grad:  # log_softmax saves its fp32 output; nll_loss saves the int64 targets
        tape.save(tape.new(c.vocab_size, False, 4), tape.new(1, False, 8))
    return tape.total()


# ---------------------------------------------------------------------------------------------- measurement

def _storage_key(t: torch.Tensor):
    s = t.untyped_storage()
    return (t.device.type, s.data_ptr()), s.nbytes()


def _unique_bytes(tensors, exclude=frozenset()) -> int:
    seen = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        key, n = _storage_key(t)
        if key not in exclude:
            seen[key] = n
    return int(sum(seen.values()))


def rss_bytes(peak: bool = False) -> int:
    """Resident set size of this process (VmRSS), or its peak since the last `reset_peak_rss` (VmHWM)."""
    try:
        text = open("/proc/self/status").read()
        m = re.search(rf"{'VmHWM' if peak else 'VmRSS'}:\s+(\d+) kB", text)
        return int(m.group(1)) * 1024
    except (OSError, AttributeError):  # not Linux: ru_maxrss (kB on Linux, bytes on macOS), never reset
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs). False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measured:
    memory: Memory
    peak_bytes: float       # peak RSS over the step minus RSS before it (CPU), or CUDA peak minus allocated before
    step_s: float
    loss: float


def measure_step(model: nn.Module, input_ids: torch.Tensor, optimizer: str = "adamw", lr: float = 1e-4,
                 labels: torch.Tensor | None = None) -> Measured:
    """Run one training step (forward with LM loss, backward, optimizer step) and count bytes by part from
    live tensors. Weights: parameter storages; gradients: `.grad` storages; optimizer: state tensors;
    activations: storages saved for backward that are not parameters. The model is changed by the step."""
    if optimizer not in OPTIMIZERS:
        raise BenchError(f"memory: unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise BenchError("memory: the model has no trainable parameters")
    if optimizer == "adamw":
        opt = torch.optim.AdamW(trainable, lr=lr, foreach=False)
    else:
        opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0)
    param_keys = {_storage_key(p)[0] for p in params} | {_storage_key(b)[0] for b in model.buffers()}
    cuda = input_ids.device.type == "cuda"
    model.train()
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        base = rss_bytes()
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=input_ids, labels=input_ids if labels is None else labels, use_cache=False)
    act = _unique_bytes(saved, exclude=param_keys)
    saved.clear()
    out.loss.backward()
    opt.step()
    if cuda:
        torch.cuda.synchronize()
    step_s = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else rss_bytes(peak=True)) - base
    mem = Memory(
        weights=_unique_bytes(params),
        gradients=_unique_bytes(p.grad for p in trainable),
        optimizer=_unique_bytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)),
        activations=act,
        assumptions=["measured: live tensors, storages deduplicated; activations via saved_tensors_hooks"])
    loss = float(out.loss.detach())
    opt.zero_grad(set_to_none=True)
    del opt, out
    return Measured(mem, float(peak), step_s, loss)

