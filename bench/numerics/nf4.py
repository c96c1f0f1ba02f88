"""NF4: 4-bit NormalFloat weights with blockwise absmax scales and double quantization (QLoRA, Dettmers et al.
2023, https://arxiv.org/abs/2305.14314, Sec. 3 and Appendix E), written from scratch; bitsandbytes is only the
test oracle (tests/numerics/test_nf4.py checks codes, scales and dequantized values against it).

- The code book: 16 values, each the normalised quantile of N(0, 1) at evenly spaced probabilities, 8 positive
  and 7 negative, plus an exact 0 (so zero padding and zero weights stay exact). The outermost probability
  is 1 - (1/30 + 1/32)/2 ~ 0.96771, between the ends of a 15- and a 16-level grid, as in the paper.
- Blockwise absmax: the flattened weight (row-major) is cut into blocks of `blocksize` (64) values; each block
  is divided by its absmax (one fp32 scale per block) and every value takes the nearest code (4 bits).
  Two codes share a byte: the first of a pair in the high nibble, the second in the low one.
- Double quantization (Sec. 3, "Double Quantization"): the fp32 absmax scales minus their mean (the offset)
  are quantized again, blocks of 256, to 8 bits with the signed dynamic tree code book (Dettmers 2015,
  https://arxiv.org/abs/1511.04561) and one fp32 scale per 256 blocks: 32/64 = 0.5 bit per weight becomes
  8/64 + 32/(64*256) ~ 0.127 bit.

`Linear4bit` holds an nn.Linear's (or GPT-2 Conv1D's) weight in this form and computes y = x W^T + b by
dequantizing W for the matmul (and again in backward, so nothing weight-sized is kept for backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bench import BenchError

BLOCKSIZE = 64       # values per absmax scale (QLoRA's choice)
BLOCKSIZE2 = 256     # absmax scales per second-level scale under double quantization
DEQUANT_BYTES = 6    # bytes per value alive while dequantize_nf4 runs: an int32 index per two values, fp32 values
NF4_OFFSET = 1 - (1 / 30 + 1 / 32) / 2   # the outermost quantile's probability (~0.9677083)


def nf4_code_book() -> torch.Tensor:
    """(16,) float32, sorted: the NF4 values in [-1, 1] with an exact 0 at index 7 (QLoRA Sec. 3)."""
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    pos = normal.icdf(torch.linspace(NF4_OFFSET, 0.5, 9, dtype=torch.float64)[:-1])   # 8 positive quantiles
    neg = -normal.icdf(torch.linspace(NF4_OFFSET, 0.5, 8, dtype=torch.float64)[:-1])  # 7 negative ones
    values = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return (values / values.max()).float()


def dynamic_code_book() -> torch.Tensor:
    """(256,) float32, sorted: the signed 8-bit dynamic tree code book (Dettmers 2015, Sec. 3): for exponent
    e = 0..6, 2^e linear steps of the mantissa interval [0.1, 1] (their midpoints) times 10^(e-6), both signs;
    plus 0 and 1. Used for the second-level (double) quantization of the absmax scales."""
    vals = [0.0, 1.0]
    for e in range(7):
        edges = torch.linspace(0.1, 1.0, 2 ** e + 1, dtype=torch.float32)
        mids = ((edges[:-1] + edges[1:]) / 2 * 10.0 ** (e - 6)).tolist()
        vals += mids + [-v for v in mids]
    return torch.tensor(sorted(vals), dtype=torch.float32)


def _nearest(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Index of the nearest entry of the sorted `code` for each value (ties to the lower one)."""
    return torch.bucketize(scaled, (code[:-1] + code[1:]) / 2)


def _blocks(flat: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled values in [-1, 1] (n,), absmax per block (ceil(n / blocksize),) fp32) of a flat fp32 tensor."""
    n = flat.numel()
    pad = -n % blocksize
    x = torch.cat([flat, flat.new_zeros(pad)]).view(-1, blocksize)                # (blocks, blocksize)
    absmax = x.abs().amax(dim=1)                                                 # (blocks,)
    scaled = (x * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)).clamp(-1, 1)      # multiply by the reciprocal
    return scaled.reshape(-1)[:n], absmax


@dataclass
class NF4Tensor:
    """A weight in NF4. codes: (ceil(n/2),) uint8, two codes a byte (first high nibble); absmax: (blocks,)
    float32, or uint8 dynamic-code indices under double quantization, with absmax2 (ceil(blocks/256),) float32
    and offset () float32 (the mean subtracted before the second quantization)."""

    codes: torch.Tensor
    absmax: torch.Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    blocksize: int = BLOCKSIZE
    absmax2: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    blocksize2: int = BLOCKSIZE2

    @property
    def double_quant(self) -> bool:
        return self.absmax2 is not None

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"codes": self.codes, "absmax": self.absmax}
        if self.double_quant:
            out |= {"absmax2": self.absmax2, "offset": self.offset}
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


def storage_bytes(numel: int, blocksize: int = BLOCKSIZE, double_quant: bool = True,
                  blocksize2: int = BLOCKSIZE2) -> int:
    """Bytes of one weight of `numel` values in NF4: codes (0.5 B each) + scales: fp32 per block, or under
    double quantization 1 B per block + fp32 per `blocksize2` blocks + the fp32 offset."""
    blocks = math.ceil(numel / blocksize)
    scales = blocks + 4 * math.ceil(blocks / blocksize2) + 4 if double_quant else 4 * blocks
    return math.ceil(numel / 2) + scales


def quantize_nf4(w: torch.Tensor, blocksize: int = BLOCKSIZE, double_quant: bool = True,
                 blocksize2: int = BLOCKSIZE2) -> NF4Tensor:
    """Quantize `w` (any shape, float16/bfloat16/float32, flattened row-major) to NF4. BenchError on another
    dtype or a blocksize that is not a power of two >= 2. Works on the meta device (shapes only)."""
    if w.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise BenchError(f"nf4: weights must be float16, bfloat16 or float32, got {w.dtype}")
    for b in (blocksize, blocksize2):
        if b < 2 or b & (b - 1):
            raise BenchError(f"nf4: block sizes must be powers of two >= 2, got {b}")
    shape, n = tuple(w.shape), w.numel()
    if w.device.type == "meta":
        blocks = math.ceil(n / blocksize)
        meta = dict(device="meta")
        return NF4Tensor(torch.empty(math.ceil(n / 2), dtype=torch.uint8, **meta),
                         torch.empty(blocks, dtype=torch.uint8 if double_quant else torch.float32, **meta),
                         shape, w.dtype, blocksize,
                         torch.empty(math.ceil(blocks / blocksize2), **meta) if double_quant else None,
                         torch.empty((), **meta) if double_quant else None, blocksize2)
    scaled, absmax = _blocks(w.detach().reshape(-1).float(), blocksize)
    q = _nearest(scaled, nf4_code_book().to(w.device)).to(torch.uint8)             # (n,) codes 0..15
    if n % 2:
        q = torch.cat([q, q.new_full((1,), 7)])                                     # pad with the code of 0
    codes = (q[0::2] << 4) | q[1::2]                                                # (ceil(n/2),)
    if not double_quant:
        return NF4Tensor(codes, absmax, shape, w.dtype, blocksize)
    offset = absmax.mean()
    scaled2, absmax2 = _blocks(absmax - offset, blocksize2)
    q2 = _nearest(scaled2, dynamic_code_book().to(w.device)).to(torch.uint8)        # (blocks,)
    return NF4Tensor(codes, q2, shape, w.dtype, blocksize, absmax2, offset, blocksize2)


def dequantize_absmax(q: NF4Tensor) -> torch.Tensor:
    """(blocks,) float32 absmax scales (undoing the double quantization when there is one)."""
    if not q.double_quant:
        return q.absmax.float()
    code = dynamic_code_book().to(q.absmax.device)
    n = q.absmax.numel()
    vals = torch.cat([code[q.absmax.long()], code.new_zeros(-n % q.blocksize2)]).view(-1, q.blocksize2)
    return (vals * q.absmax2.unsqueeze(1)).reshape(-1)[:n] + q.offset           # (blocks,)


def dequantize_nf4(q: NF4Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The weight of `q`, shape q.shape, in `dtype` (default: the quantized weight's dtype); computed in
    float32 (code value x block absmax) and cast, as bitsandbytes does."""
    n = math.prod(q.shape)
    dtype = dtype or q.dtype
    if q.codes.device.type == "meta":
        return torch.empty(q.shape, dtype=dtype, device="meta")
    # one lookup per byte in a (256, 2) table of code pairs (high nibble first), then the scales in place: at the
    # peak DEQUANT_BYTES per value are alive (an int32 index per byte, the fp32 values)
    code = nf4_code_book().to(q.codes.device)
    pairs = torch.stack([code.repeat_interleave(16), code.repeat(16)], dim=1)      # (256, 2): byte b -> (b>>4, b&15)
    vals = pairs.index_select(0, q.codes.int()).view(-1)[:n]                      # (n,) float32
    full = n - n % q.blocksize
    absmax = dequantize_absmax(q)                                                   # (blocks,)
    vals[:full].view(-1, q.blocksize).mul_(absmax[:full // q.blocksize].unsqueeze(1))
    if full < n:
        vals[full:].mul_(absmax[-1])
    return vals.view(q.shape).to(dtype)


class _DequantMatmul(torch.autograd.Function):
    """y = x W^T with W dequantized in forward and again in backward: only the 4-bit tensors are kept (as
    bitsandbytes' MatMul4Bit does); W gets no gradient."""

    @staticmethod
    def forward(ctx, x, layer):
        ctx.layer = layer
        return x @ layer.dequantized(x.dtype).T                                     # (..., out)

    @staticmethod
    def backward(ctx, grad):
        return grad @ ctx.layer.dequantized(grad.dtype), None                      # (..., in)


class Linear4bit(nn.Module):
    """A frozen Linear whose weight (out, in) is stored in NF4 (buffers codes, absmax[, absmax2, offset]);
    bias stays a frozen parameter in its dtype. forward(x (..., in)) -> (..., out) = x W^T + b, computed in
    `compute_dtype` (default: x's dtype) and returned in x's dtype, like bitsandbytes' Linear4bit."""

    def __init__(self, q: NF4Tensor, bias: torch.Tensor | None, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.blocksize, self.blocksize2, self.orig_dtype = q.blocksize, q.blocksize2, q.dtype
        self.compute_dtype = compute_dtype
        for k, t in q.tensors().items():
            self.register_buffer(k, t)
        self.double_quant = q.double_quant
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, mod: nn.Module, blocksize: int = BLOCKSIZE, double_quant: bool = True,
                    compute_dtype: torch.dtype | None = None) -> Linear4bit:
        """From an nn.Linear (weight (out, in)) or GPT-2's Conv1D (weight (in, out), transposed first)."""
        w = mod.weight
        w = w.T if type(mod).__name__ == "Conv1D" else w
        return cls(quantize_nf4(w, blocksize, double_quant), getattr(mod, "bias", None), compute_dtype)

    def nf4(self) -> NF4Tensor:
        return NF4Tensor(self.codes, self.absmax, (self.out_features, self.in_features), self.orig_dtype,
                         self.blocksize, getattr(self, "absmax2", None), getattr(self, "offset", None),
                         self.blocksize2)

    def dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(out, in) weight in `dtype` (default: the original dtype)."""
        return dequantize_nf4(self.nf4(), dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized (out, in) weight (a fresh tensor: writing into it changes nothing)."""
        return self.dequantized()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.compute_dtype or x.dtype
        out = _DequantMatmul.apply(x.to(dtype), self)                              # (..., out)
        if self.bias is not None:
            out = out + self.bias.to(dtype)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, nf4 blocksize={self.blocksize}, "
                f"double_quant={self.double_quant}, bias={self.bias is not None}")
