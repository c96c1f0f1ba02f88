"""The activation model (bench.memory): a symbolic forward pass of the model family in which each tensor knows
its size and whether it needs grad, and each op saves what autograd saves for backward."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from torch import nn

from bench import BenchError
from bench.memory.inputs import family, unwrap
from bench.memory.parts import PRECISIONS, Setup
from bench.numerics import nf4


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
    return activations(model, setup)[0]


def activations(model: nn.Module, setup: Setup) -> tuple[float, float]:
    """(activation bytes, loss transient bytes): see `activation_bytes`; the transient is what the loss's
    backward allocates on top of them (the fp32 gradients of the log-softmax's output and input)."""
    model, wrap = unwrap(model)
    fam = family(model)
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
