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
- int8_overhead: row scales of int8 weights (bitsandbytes keeps one fp32 scale per output row). NF4 weights
                (`frozen_4bit`, or a QLoRA model's Linear4bit buffers) count codes and scales under weights.

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
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from bench import BenchError
from bench.numerics import nf4
from bench.probes import SavedTensors, quiet_native_stderr, reset_peak_rss, rss_bytes, unique_bytes

PRECISIONS = {
    # name: (bytes per weight, per gradient, per optimizer-state element, fp32 master copy?, bytes per activation)
    "fp32": (4, 4, 4, False, 4),
    "mixed": (2, 2, 4, True, 2),    # 16-bit weights/grads/activations, fp32 master + Adam moments (ZeRO's 16 B)
    "bf16": (2, 2, 2, False, 2),    # everything in 16 bit, Adam moments too (no master copy)
    "fp16": (2, 2, 2, False, 2),
}
OPTIMIZERS = {"adamw": 2, "sgd": 0, "momentum": 1}  # state tensors per trainable parameter
FAMILIES = ("gpt2", "opt", "llama", "bert")


@dataclass(frozen=True)
class Setup:
    """How one training step is run, for the memory model."""

    precision: str = field(default="fp32", metadata={"help": "fp32 | mixed (ZeRO mixed-precision Adam) | bf16 | fp16"})
    optimizer: str = field(default="adamw", metadata={"help": "adamw | sgd | momentum"})
    batch: int = field(default=8, metadata={"help": "sequences per step"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence"})
    frozen_int8: bool = field(default=False, metadata={
        "help": "frozen Linear weights stored in int8 + one fp32 scale per row (bitsandbytes LLM.int8())"})
    frozen_4bit: bool = field(default=False, metadata={
        "help": "frozen Linear weights in NF4 (QLoRA, arXiv 2305.14314): 0.5 B each + an 8-bit absmax per 64 "
                "values + an fp32 scale per 256 blocks and an fp32 offset per weight (double quantization)"})
    attention: str = field(default="sdpa", metadata={"help": "sdpa (fused, saves q,k,v,out,logsumexp) | eager"})
    loss: bool = field(default=True, metadata={"help": "include the LM loss (log-softmax over the vocabulary)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda (dropout saves an fp32 mask on CPU, bool on CUDA)"})
    checkpointing: bool = field(default=False, metadata={
        "help": "activation (gradient) checkpointing per block: keep block inputs, recompute one block in backward"})

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise BenchError(f"memory: unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise BenchError(f"memory: unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.attention not in ("sdpa", "eager"):
            raise BenchError(f"memory: attention must be 'sdpa' or 'eager', got {self.attention!r}")
        if self.frozen_int8 and self.frozen_4bit:
            raise BenchError("memory: choose one of int8 and 4-bit frozen weights, not both")
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
    loss_transient: float = 0.0  # not parts: gradients alive only as backward starts (see `transient`)
    step_transient: float = 0.0  # ... and temporaries of the optimizer step, when activations are gone
    dequant_transient: float = 0.0  # ... and a 4-bit weight being dequantized for its matmul (forward, backward)
    assumptions: list[str] = field(default_factory=list)

    PARTS = ("weights", "gradients", "optimizer", "activations", "int8_overhead")

    @property
    def states(self) -> float:
        """What training adds for the parameters: gradients + optimizer states."""
        return self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return sum(getattr(self, p) for p in self.PARTS)

    @property
    def transient(self) -> float:
        """What the peak adds to the parts: the loss's gradients at the start of backward, or the optimizer
        step's temporaries less the activations freed by then, or a 4-bit weight's dequantization, whichever is
        larger."""
        return max(self.loss_transient, self.step_transient - self.activations, self.dequant_transient, 0.0)

    @property
    def peak(self) -> float:
        """The predicted peak of a step: the parts plus `transient`."""
        return self.total + self.transient

    def parts(self) -> dict[str, float]:
        return {p: float(getattr(self, p)) for p in self.PARTS} | {"total": float(self.total)}


# ---------------------------------------------------------------------------------------------- model input

ENCODERS = ("bert",)  # model types built as a bare encoder (AutoModel: no LM head), e.g. all-MiniLM-L6-v2


def meta_model(config) -> nn.Module:
    """A transformers model built from a config on the meta device: shapes only, no weights allocated.
    Causal LMs get their LM head (AutoModelForCausalLM); BERT-style encoders are built bare (AutoModel, as
    sentence-embedding checkpoints such as all-MiniLM-L6-v2 are); encoder-decoders as Seq2SeqLM."""
    import transformers

    if getattr(config, "is_encoder_decoder", False):
        cls = transformers.AutoModelForSeq2SeqLM
    elif getattr(config, "model_type", None) in ENCODERS:
        cls = transformers.AutoModel
    else:
        cls = transformers.AutoModelForCausalLM
    with torch.device("meta"):
        return cls.from_config(config)


def _as_model(model_or_config) -> nn.Module:
    if isinstance(model_or_config, nn.Module):
        return model_or_config
    if hasattr(model_or_config, "model_type"):
        return meta_model(model_or_config)
    raise BenchError(f"memory: pass a torch model or a transformers config, got {type(model_or_config).__name__}")


def _unwrap(model: nn.Module):
    """(base model, what its wrapper changes: bench.methods.registry.Virtual), from the wrapper method's memory
    hook (its SPEC.wrappers); a model without a wrapper is its own base."""
    from bench.methods.registry import Virtual, wrapper_hook

    hook = wrapper_hook(model)
    if hook is not None:
        return hook(model)
    if hasattr(model, "get_base_model"):
        raise BenchError(f"memory: activations of wrapper {type(model).__name__} are not modelled; "
                         "full, LoRA, adapters, BitFit, prefix, prompt and P-tuning are")
    return model, Virtual()


def _base(model: nn.Module) -> nn.Module:
    return _unwrap(model)[0]


def _family(model: nn.Module) -> str:
    mt = getattr(getattr(model, "config", None), "model_type", None)
    if mt in ("llama", "mistral", "qwen2"):
        return "llama"
    if mt not in FAMILIES:
        raise BenchError(f"memory: no activation model for model_type {mt!r}; known: {', '.join(FAMILIES)} "
                         f"(Llama-style: llama, mistral, qwen2)")
    return mt


def max_positions(config) -> int | None:
    """The longest sequence (virtual tokens included) the model's position table or config allows."""
    for key in ("n_positions", "max_position_embeddings"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


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
    if setup.frozen_int8 or setup.frozen_4bit:
        for name, mod in model.named_modules():
            w = getattr(mod, "weight", None)
            if isinstance(mod, lin) and isinstance(w, nn.Parameter) and not w.requires_grad and "lm_head" not in name:
                int8_weights.add(id(w))
                int8_rows += w.shape[1] if type(mod).__name__ == "Conv1D" else w.shape[0]
    mem = Memory()
    n_train_tensors = 0
    for p in model.parameters():  # tied parameters are listed once
        n = p.numel()
        if id(p) in int8_weights and setup.frozen_4bit:
            mem.weights += nf4.storage_bytes(n)  # codes + double-quantized absmax
            mem.dequant_transient = max(mem.dequant_transient, nf4.DEQUANT_BYTES * n)
        else:
            mem.weights += n * (1 if id(p) in int8_weights else w_b)
        if p.requires_grad:
            n_train_tensors += 1
            mem.gradients += n * g_b
            mem.optimizer += n * (n_states * s_b + (4 if master else 0))
    for mod in model.modules():  # weights already in NF4 (a QLoRA model): their codes and scales, as stored
        if isinstance(mod, nf4.Linear4bit):
            mem.weights += sum(b.numel() * b.element_size() for b in mod.buffers(recurse=False))
            mem.dequant_transient = max(mem.dequant_transient,
                                        nf4.DEQUANT_BYTES * mod.in_features * mod.out_features)
    if setup.optimizer != "sgd":
        mem.optimizer += 4 * n_train_tensors  # torch keeps each parameter's step count as a float32 tensor
    mem.int8_overhead = 4 * int8_rows if setup.frozen_int8 else 0.0
    if any(p.requires_grad for p in model.parameters()):
        mem.activations, mem.loss_transient = _activations(model, setup)
    if setup.optimizer == "adamw":  # per tensor: (exp_avg_sq.sqrt() / c).add_(eps) holds two state-sized temps
        mem.step_transient = 2 * s_b * max((p.numel() for p in model.parameters() if p.requires_grad), default=0)
    mem.assumptions = [
        f"precision {setup.precision}: {w_b} B/weight, {g_b} B/grad, {setup.optimizer} with {n_states} state(s) of "
        f"{s_b} B" + (" + fp32 master copy (4 B)" if master else "") + " per trainable parameter",
        f"activations for batch {setup.batch} x {setup.seq_len} tokens, {PRECISIONS[setup.precision][4]} B per element, "
        f"{setup.attention} attention, " + ("activation checkpointing per block (inputs kept, one block recomputed)"
                                            if setup.checkpointing else "no activation checkpointing"),
        "frozen Linear weights in int8 + one fp32 scale per row" if setup.frozen_int8 else
        "frozen Linear weights in NF4 (0.5 B) + double-quantized absmax (1 B per 64 values, 4 B per 256 blocks)"
        if setup.frozen_4bit else "no int8 weights",
        *(["4-bit weights are dequantized for each matmul (forward and backward): bench's Linear4bit holds "
           f"{nf4.DEQUANT_BYTES} B per value of the largest one meanwhile (bitsandbytes' CUDA kernel writes the "
           "16-bit weight directly, ~2 B)"] if mem.dequant_transient else []),
        "peak = parts + transient: the loss's fp32 gradients as backward starts, or AdamW's two temporaries of "
        "the largest trainable tensor (foreach=False; CUDA's default foreach=True can add up to one more copy "
        "of the optimizer states); workspace and allocator slack are not counted",
    ]
    return mem


# A symbolic forward pass: each tensor knows its size and whether it needs grad; ops save what autograd saves.

@dataclass
class _T:
    nbytes: float
    grad: bool
    id: int = field(default_factory=itertools.count().__next__)


class _Tape:
    def __init__(self, setup: Setup, seq_len: int):
        self.elem = PRECISIONS[setup.precision][4]
        self.t = seq_len                    # positions the base model runs on (virtual prompt tokens included)
        self.n = setup.batch * seq_len
        self.setup = setup
        self.saved: dict[int, float] = {}

    def new(self, width: float, grad: bool, elem: float | None = None) -> _T:
        return _T(self.n * width * (self.elem if elem is None else elem), grad)

    def nbytes(self, n: float, grad: bool = False) -> _T:
        """A tensor of `n` bytes whatever the batch (e.g. per-feature vectors)."""
        return _T(n, grad)

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
        out = self.new(fo, x.grad or spec["trainable"] or spec.get("bias", False))
        if spec["trainable"]:
            self.save(x)                                   # grad W = grad_out^T x
        for branch in spec["branches"]:                    # a method's own computation (LoRA's B A x, an adapter)
            out = branch(self, x, out, fi, fo)
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

    def attention(self, q: _T, k: _T, v: _T, heads: int, hd: int, p_drop: float, kv_heads: int = 0,
                  past: int = 0, causal: bool = True) -> _T:
        """q: (B, T, heads*hd); k, v: (B, T, kv_heads*hd), the tensors whose storage holds them (GPT-2: one fused
        (B, T, 3C) tensor). `past`: trainable key/value positions prepended to k and v (prefix tuning)."""
        kvh = kv_heads or heads
        b, t, s, el = self.setup.batch, self.t, self.t + past, self.elem
        if past:  # the cache's update: cat([prefix, k], dim=-2) -> new (B, kv_heads, P + T, hd) tensors
            k, v = _T(b * s * kvh * hd * el, True), _T(b * s * kvh * hd * el, True)
        grad = q.grad or k.grad or v.grad
        mask = past > 0 and causal  # a materialised (1, 1, T, P + T) bool mask: is_causal cannot shift by P
        fused = self.setup.attention == "sdpa" and p_drop == 0
        if kvh != heads and (mask or hd > 256 or not fused):  # repeat_kv: (B, heads, S, hd) copies of k and v
            k, v = _T(b * s * heads * hd * el, k.grad), _T(b * s * heads * hd * el, v.grad)
        if fused:
            if not grad:
                return self.new(heads * hd, False)
            # the fused kernel saves q, k, v (views of their storage), its output and the log-sum-exp (fp32);
            # its output is laid out (B, T, H, hd), so transpose(1, 2).contiguous() is free and the output
            # projection saves the same storage
            out = self.new(heads * hd, True)
            self.save(q, k, v, out, self.new(heads, False, 4))
            if mask:
                self.save(self.mask)
            return out
        # eager (math) path: softmax(q k^T * s + mask) v with matmuls on (B*H, T, hd) copies of q, k, v
        if k.grad:
            self.save(self.new(heads * hd, False))                     # q copy
        if q.grad:
            self.save(_T(b * s * heads * hd * el, False))              # k^T copy
        probs = _T(b * heads * t * s * el, grad)
        if grad:
            self.save(probs)                                           # softmax's result
            if p_drop > 0:
                self.save(_T(probs.nbytes / (el if self.setup.device == "cuda" else 1), False))
                probs = _T(probs.nbytes, True)
        if v.grad:
            self.save(probs)
        if probs.grad:
            self.save(_T(b * s * heads * hd * el, False))              # v copy
        return self.new(heads * hd, grad)                              # (B, T, C) copy of the output

    def total(self) -> float:
        return float(sum(self.saved.values()))


def _spec(mod: nn.Module) -> dict:
    """What the activation model needs to know about one Linear (or Conv1D): does its weight or bias train, and
    which branches the methods that wrapped it add (their memory hooks, SPEC.layers: LoRA's B A x, an adapter;
    their parameters train even when the base is frozen), innermost first."""
    from bench.methods.registry import layer_hook

    branches = []
    while (hook := layer_hook(mod)) is not None:
        mod, branch = hook(mod)
        if branch is not None:
            branches.append(branch)
    spec = {"trainable": False, "branches": branches[::-1]}
    if isinstance(mod, nf4.Linear4bit):  # frozen; its matmul keeps only the 4-bit buffers for backward
        spec["bias"] = False
        return spec
    spec["trainable"] = bool(mod.weight.requires_grad)
    bias = getattr(mod, "bias", None)
    spec["bias"] = bool(bias is not None and bias.requires_grad)
    return spec


def _norm_trainable(mod: nn.Module) -> bool:
    return any(p.requires_grad for p in mod.parameters())


def _dims(c, fam: str) -> dict:
    """Width d, layers, heads, key/value heads, head size, FFN width, vocabulary of a config."""
    if fam == "gpt2":
        d, heads, layers, ff = c.n_embd, c.n_head, c.n_layer, c.n_inner or 4 * c.n_embd
    elif fam == "opt":
        d, heads, layers, ff = c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.ffn_dim
    else:
        d, heads, layers, ff = c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.intermediate_size
    kvh = getattr(c, "num_key_value_heads", None) or heads
    hd = getattr(c, "head_dim", None) or d // heads
    if heads % kvh:
        raise BenchError(f"memory: {heads} attention heads are not a multiple of {kvh} key/value heads")
    return dict(d=d, heads=heads, kvh=kvh, hd=hd, layers=layers, ff=int(ff), vocab=c.vocab_size)


def activation_bytes(model: nn.Module, setup: Setup = Setup()) -> float:
    """Bytes autograd saves for backward in one training step (batch x seq_len tokens, LM loss); with
    `setup.checkpointing`, the most that is saved at once (block inputs + one recomputed block)."""
    return _activations(model, setup)[0]


def _activations(model: nn.Module, setup: Setup) -> tuple[float, float]:
    """(activation bytes, loss transient bytes): see `activation_bytes`; the transient is what the loss's
    backward allocates on top of them (the fp32 gradients of the log-softmax's output and input)."""
    model, wrap = _unwrap(model)
    fam = _family(model)
    c = model.config
    k = _dims(c, fam)
    d, heads, kvh, hd, ff, V = k["d"], k["heads"], k["kvh"], k["hd"], k["ff"], k["vocab"]
    qw, kw = heads * hd, kvh * hd                          # widths of q and of k, v
    b, t = setup.batch, setup.seq_len + wrap.prompt
    tape = _Tape(setup, t)
    tape.mask = _T(t * (t + wrap.prefix), False)           # prefix tuning: one (1, 1, T, P + T) bool mask
    visited: set[int] = set()

    def spec(mod):
        visited.add(id(mod))
        return _spec(mod)

    prompt_grad = wrap.prompt > 0 or wrap.placeholder
    if fam == "gpt2":
        act = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu", "gelu": "gelu", "relu": "relu"}.get(
            c.activation_function, "gelu")
        emb_w, pos_w = model.transformer.wte.weight, model.transformer.wpe.weight
        blocks, final_norm, rms = model.transformer.h, model.transformer.ln_f, False
        p_resid, p_attn, p_emb = c.resid_pdrop, c.attn_pdrop, c.embd_pdrop
    elif fam == "opt":
        if c.word_embed_proj_dim != d or not c.do_layer_norm_before:
            raise BenchError("memory: OPT configs need word_embed_proj_dim == hidden_size and pre-layer-norm")
        act = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new"}.get(c.activation_function, "gelu")
        dec = model.model.decoder
        emb_w, pos_w = dec.embed_tokens.weight, dec.embed_positions.weight
        blocks, final_norm, rms = dec.layers, dec.final_layer_norm, False
        p_resid, p_attn, p_emb = c.dropout, c.attention_dropout, 0.0  # OPT has no embedding dropout
    elif fam == "llama":
        act = "silu"
        emb_w, pos_w = model.model.embed_tokens.weight, None
        blocks, final_norm, rms = model.model.layers, model.model.norm, True
        p_resid, p_attn, p_emb = 0.0, c.attention_dropout, 0.0
    else:  # bert: post-layer-norm encoder, no causal mask
        if not hasattr(model, "embeddings"):
            raise BenchError(f"memory: model_type 'bert' is modelled as a bare encoder (BertModel), not "
                             f"{type(model).__name__}")
        act = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu"}.get(c.hidden_act, "gelu")
        e = model.embeddings
        emb_w, pos_w = e.word_embeddings.weight, e.position_embeddings.weight
        blocks, final_norm, rms = model.encoder.layer, None, False
        p_resid, p_attn, p_emb = c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.hidden_dropout_prob
    # embeddings: the lookup saves its indices when the table trains
    ids = tape.new(1, False, 8)
    if emb_w.requires_grad:
        tape.save(ids)
    if pos_w is not None and pos_w.requires_grad:
        tape.save(_T((b * t if fam == "opt" else t) * 8, False))  # position ids (GPT-2: shape (1, T))
    if wrap.placeholder:
        tape.save(tape.new(1, False, 1))                        # masked_scatter's (B, T, 1) bool mask
    h = tape.new(d, emb_w.requires_grad or (pos_w is not None and pos_w.requires_grad) or prompt_grad)
    if fam == "bert":
        h = tape.norm(h, d, _norm_trainable(model.embeddings.LayerNorm))
    h = tape.dropout(h, p_emb, d)
    cos_sin = tape.new(0, False)
    if fam == "llama":  # rotary cos and sin, (1, T, head_dim) each, computed once and shared by every layer
        cos_sin = _T(2 * t * hd * tape.elem, False)
    block_bytes, block_inputs = [], 0.0
    for blk in blocks:
        before = tape.total()
        block_inputs += h.nbytes
        if fam == "gpt2":
            x = tape.norm(h, d, _norm_trainable(blk.ln_1))
            qkv = tape.linear(x, d, 3 * d, spec(blk.attn.c_attn))
            a = tape.attention(qkv, qkv, qkv, heads, hd, p_attn, past=wrap.prefix)
            a = tape.linear(a, d, d, spec(blk.attn.c_proj))
            a = tape.dropout(a, p_resid, d)
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.ln_2))
            u = tape.linear(x, d, ff, spec(blk.mlp.c_fc))
            u = tape.act(u, act, ff)
            u = tape.linear(u, ff, d, spec(blk.mlp.c_proj))
            u = tape.dropout(u, p_resid, d)
            h = tape.new(d, h.grad or u.grad)
        elif fam == "opt":
            at = blk.self_attn
            x = tape.norm(h, d, _norm_trainable(blk.self_attn_layer_norm))
            q = tape.linear(x, d, qw, spec(at.q_proj))
            q = tape.new(qw, q.grad)                                      # q * scaling: a new tensor
            kk = tape.linear(x, d, kw, spec(at.k_proj))
            v = tape.linear(x, d, kw, spec(at.v_proj))
            a = tape.attention(q, kk, v, heads, hd, p_attn, kvh, past=wrap.prefix)
            a = tape.linear(a, qw, d, spec(at.out_proj))
            a = tape.dropout(a, p_resid, d)
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.final_layer_norm))
            u = tape.linear(x, d, ff, spec(blk.fc1))
            u = tape.act(u, act, ff)
            u = tape.linear(u, ff, d, spec(blk.fc2))
            u = tape.dropout(u, p_resid, d)
            h = tape.new(d, h.grad or u.grad)
        elif fam == "llama":
            at, mlp = blk.self_attn, blk.mlp
            x = tape.norm(h, d, _norm_trainable(blk.input_layernorm), rms=True)
            q = tape.linear(x, d, qw, spec(at.q_proj))
            kk = tape.linear(x, d, kw, spec(at.k_proj))
            v = tape.linear(x, d, kw, spec(at.v_proj))
            if q.grad or kk.grad:
                tape.save(cos_sin)                                        # q*cos + rotate_half(q)*sin
            q, kk = tape.new(qw, q.grad), tape.new(kw, kk.grad)
            a = tape.attention(q, kk, v, heads, hd, p_attn, kvh, past=wrap.prefix)
            a = tape.linear(a, qw, d, spec(at.o_proj))
            h = tape.new(d, h.grad or a.grad)
            x = tape.norm(h, d, _norm_trainable(blk.post_attention_layernorm), rms=True)
            g = tape.linear(x, d, ff, spec(mlp.gate_proj))
            g = tape.act(g, "silu", ff)
            u = tape.linear(x, d, ff, spec(mlp.up_proj))
            u = tape.mul(g, u, ff)
            u = tape.linear(u, ff, d, spec(mlp.down_proj))
            h = tape.new(d, h.grad or u.grad)
        else:  # bert: x = LN(x + dropout(dense(attn(x)))); x = LN(x + dropout(out(act(inter(x)))))
            at = blk.attention
            q = tape.linear(h, d, qw, spec(at.self.query))
            kk = tape.linear(h, d, kw, spec(at.self.key))
            v = tape.linear(h, d, kw, spec(at.self.value))
            a = tape.attention(q, kk, v, heads, hd, p_attn, past=wrap.prefix, causal=False)
            a = tape.linear(a, qw, d, spec(at.output.dense))
            a = tape.dropout(a, p_resid, d)
            h = tape.norm(tape.new(d, h.grad or a.grad), d, _norm_trainable(at.output.LayerNorm))
            u = tape.linear(h, d, ff, spec(blk.intermediate.dense))
            u = tape.act(u, act, ff)
            u = tape.linear(u, ff, d, spec(blk.output.dense))
            u = tape.dropout(u, p_resid, d)
            h = tape.norm(tape.new(d, h.grad or u.grad), d, _norm_trainable(blk.output.LayerNorm))
        block_bytes.append(tape.total() - before)
    transient = 0.0
    if fam == "bert":
        pooler = getattr(model, "pooler", None)
        if pooler is not None:  # dense(h[:, 0]) saves a view of h's storage; tanh saves its (B, d) output
            first = tape.linear(h, d, d, spec(pooler.dense))
            if first.grad:
                tape.save(_T(b * d * tape.elem, False))
        if h.grad:  # the loss (bench.memory.train_loss): mean of squares of the last hidden state saves it;
            tape.save(h)  # its backward: mean's expanded gradient, h^1, 2 h^1 and their product, (B, T, d) each
            transient = 4 * h.nbytes
    else:
        x = tape.norm(h, d, _norm_trainable(final_norm), rms=rms)
        logits = tape.linear(x, d, V, spec(model.get_output_embeddings()))
        if setup.loss and logits.grad:  # log_softmax saves its fp32 output; nll_loss saves the int64 targets
            tape.save(tape.new(V, False, 4), tape.new(1, False, 8))
            transient = b * t * V * 8  # log_softmax backward: the fp32 gradients of its output and its input
    adapted = [n for n, m in model.named_modules() if _is_adapted(m) and id(m) not in visited]
    if adapted:
        raise BenchError(f"memory: {', '.join(adapted[:4])} carry LoRA/adapter parameters, but the {fam} activation "
                         f"model does not walk them; adapt the blocks' projections or the LM head")
    total = tape.total() + wrap.extra
    if setup.checkpointing and block_bytes:  # each block keeps its input; backward recomputes one block at a time
        total = total - sum(block_bytes) + block_inputs + max(block_bytes)
    return total, transient


def _is_adapted(mod: nn.Module) -> bool:
    """A module some method put in place of a Linear (it has a memory hook)."""
    from bench.methods.registry import layer_hook
    return layer_hook(mod) is not None


def train_loss(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The loss one training step optimises, as the memory model assumes it: the LM loss of a causal LM
    (labels = inputs), or for an encoder without an LM head (BertModel) the mean of squares of the last hidden
    state (a stand-in for a sentence-embedding objective; it saves only that tensor)."""
    if getattr(getattr(model, "config", None), "model_type", None) in ENCODERS:
        out = model(input_ids=input_ids)
        return out.last_hidden_state.pow(2).mean()
    return model(input_ids=input_ids, labels=input_ids if labels is None else labels, use_cache=False).loss


# ---------------------------------------------------------------------------------------------- measurement

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
    cuda = input_ids.device.type == "cuda"
    model.train()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        base = rss_bytes()
    t0 = time.perf_counter()
    with SavedTensors(exclude=[*params, *model.buffers()]) as saved:
        out = model(input_ids=input_ids, labels=input_ids if labels is None else labels, use_cache=False)
    act = saved.bytes
    out.loss.backward()
    opt.step()
    if cuda:
        torch.cuda.synchronize()
    step_s = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else rss_bytes(peak=True)) - base
    mem = Memory(
        weights=unique_bytes(params),
        gradients=unique_bytes(p.grad for p in trainable),
        optimizer=unique_bytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)),
        activations=act,
        assumptions=["measured: live tensors, storages deduplicated; activations via saved_tensors_hooks"])
    loss = float(out.loss.detach())
    opt.zero_grad(set_to_none=True)
    del opt, out
    return Measured(mem, float(peak), step_s, loss)



@dataclass
class Peak:
    """A step's memory measured without the model's counting: `base` (bytes of the live parameters, buffers,
    gradients and optimizer states before the step) + `step_peak` (the highest net allocation during the step,
    from torch.profiler's memory events on CPU, or CUDA's max_memory_allocated)."""

    weights: float
    gradients: float
    optimizer: float
    step_peak: float

    @property
    def base(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return self.base + self.step_peak


def measure_peak(model: nn.Module, input_ids: torch.Tensor, optimizer: str = "adamw", lr: float = 1e-4,
                 checkpointing: bool = False) -> Peak:
    """Peak memory of a steady-state training step: one warm-up step creates the optimizer state, gradients
    stay allocated between steps (zero_grad(set_to_none=False), as with gradient accumulation), then the
    second step (forward with `train_loss`, backward, optimizer step) is measured. CPU: torch.profiler
    (profile_memory=True) allocation events summed in time order; CUDA: max_memory_allocated. The model is
    changed by the steps."""
    if optimizer not in OPTIMIZERS:
        raise BenchError(f"memory: unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise BenchError("memory: the model has no trainable parameters")
    if optimizer == "adamw":
        opt = torch.optim.AdamW(trainable, lr=lr, foreach=False)
    else:
        opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0, foreach=False)
    base_model = _base(model)
    if checkpointing:
        base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()

    def step():
        train_loss(model, input_ids).backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    step()
    parts = (unique_bytes(list(model.parameters()) + list(model.buffers())),
             unique_bytes(p.grad for p in trainable),
             unique_bytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)))
    if input_ids.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return Peak(*map(float, parts), float(torch.cuda.max_memory_allocated() - before))
    from torch.profiler import ProfilerActivity, profile
    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    cur = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):  # + bytes allocated, - bytes freed
        cur += e.nbytes()
        peak = max(peak, cur)
    return Peak(*map(float, parts), float(peak))
