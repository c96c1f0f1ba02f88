"""The measurement of one run: the scaling the paper prescribes, the per-step norms, one LoRA fine-tuning.

Per optimizer step t, summed in quadrature over the adapted layers (A: (r, in), B: (out, r), s the scaling):
- grad_A, grad_B: ||dL/dA||_F, ||dL/dB||_F, the raw gradients (read in backward, before clipping);
- update_grad: ||s (dL/dB A_t + B_t dL/dA)||_F, the first-order change of the effective update dW = s B A
  along the raw gradient (what one unit step of plain gradient descent would do to dW);
- update_step: ||s (B_{t+1} A_{t+1} - B_t A_t)||_F, the change of dW that the optimizer step (AdamW) made,
  computed as s ((B_{t+1} - B_t) A_{t+1} + B_t (A_{t+1} - A_t)), exact and free of cancellation;
- train loss, and every `eval_every` steps the held-out loss: token-weighted NLL on the task's test people.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from bench import BenchError
from bench.methods import apply, make_config, trainable_parameters
from bench.methods.lora import lora_layers
from bench.train import TrainConfig, perplexity, resolve_device, train
from reproductions.rslora.settings import Settings

NORMS = ("grad_A", "grad_B", "update_grad", "update_step")


def expected_scaling(method: str, alpha: float, r: int) -> float:
    """What the paper prescribes, computed here independently of bench.methods."""
    if method == "lora":
        return alpha / r
    if method == "rslora":
        return alpha / math.sqrt(r)
    raise BenchError(f"rslora: unknown scaling method {method!r}; choose lora or rslora")


class UpdateTracker:
    """The per-step norms of the module docstring, for every LoraLayer of a model.

    Raw gradients are captured by tensor hooks during backward (the training loop clips afterwards); the
    norms are formed in `__call__`, which `bench.train.train` calls (as on_step) after the optimizer step and
    before the gradients are cleared. A_t, B_t (the weights before the step) are kept from the previous call."""

    def __init__(self, model):
        self.layers = [m for _, m in lora_layers(model)]
        if not self.layers:
            raise BenchError("rslora: the model has no LoRA layers to track")
        self.grads: dict[tuple[int, str], torch.Tensor] = {}
        self.handles = []
        for i, m in enumerate(self.layers):
            for key, p in (("A", m.lora_A.weight), ("B", m.lora_B.weight)):
                self.handles.append(p.register_hook(self._keeper(i, key)))
        self.prev = [self._weights(m) for m in self.layers]
        self.rows: list[dict] = []

    @staticmethod
    def _weights(m) -> tuple[torch.Tensor, torch.Tensor]:
        return m.lora_A.weight.detach().clone(), m.lora_B.weight.detach().clone()   # (r, in), (out, r)

    def _keeper(self, i: int, key: str):
        def keep(grad):
            self.grads[(i, key)] = grad.detach().clone()
            return None                                                              # leave the gradient as is
        return keep

    @torch.no_grad()
    def __call__(self, step: int, model, loss) -> None:
        ga = gb = ug = us = 0.0
        for i, m in enumerate(self.layers):
            a0, b0 = self.prev[i]                                                    # before this step
            a1, b1 = m.lora_A.weight.detach(), m.lora_B.weight.detach()              # after it
            g_a, g_b = self.grads.get((i, "A")), self.grads.get((i, "B"))
            if g_a is None or g_b is None:
                raise BenchError("rslora: a LoRA gradient was not captured (is the adapter trainable?)")
            s = float(m.scaling)
            ga += float(g_a.square().sum())
            gb += float(g_b.square().sum())
            ug += float((s * (g_b @ a0 + b0 @ g_a)).square().sum())                  # (out, in)
            us += float((s * ((b1 - b0) @ a1 + b0 @ (a1 - a0))).square().sum())      # (out, in)
            self.prev[i] = (a1.clone(), b1.clone())
        self.grads.clear()
        self.rows.append({"step": step, "grad_A": math.sqrt(ga), "grad_B": math.sqrt(gb),
                          "update_grad": math.sqrt(ug), "update_step": math.sqrt(us)})

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def heldout_loss(model, batches) -> float:
    """Token-weighted mean NLL (nats/token) over the held-out batches; NaN when the model's loss is not finite."""
    ppl = perplexity(model, batches)
    return math.log(ppl) if math.isfinite(ppl) and ppl > 0 else math.nan


def roughness(losses: list[float]) -> float:
    """Mean |loss_t - loss_{t-1}| over the second half of training (batch noise plus instability)."""
    tail = losses[len(losses) // 2:]
    if len(tail) < 2:
        return math.nan
    return float(np.mean(np.abs(np.diff(tail))))


def train_one(base, train_rows, heldout_batches, method: str, r: int, seed: int, lr: float, s: Settings,
              threads: int | None = None) -> dict:
    """Fine-tune a copy of `base` with LoRA (method: lora | rslora) and return the run's record:
    result (TrainResult), curves (list of per-step dicts, CURVE_COLUMNS), scalings (the layers' .scaling),
    expected_scaling, trainable_params.

    The seed fixes A's init and the batch order, so LoRA and rsLoRA at the same (r, seed) start from the same A
    and see the same batches; nothing else carries over between runs (`base` is copied, never trained)."""
    expected = expected_scaling(method, s.alpha, r)
    cfg = make_config("lora", r=r, alpha=s.alpha, target_modules=s.targets, rslora=(method == "rslora"),
                      dropout=0.0)
    model = copy.deepcopy(base)
    torch.manual_seed(seed)                                                          # A's init
    model = apply(model, cfg).to(resolve_device("auto"))                             # the tracker's copies live there too
    scalings = [float(m.scaling) for _, m in lora_layers(model)]
    tracker = UpdateTracker(model)
    tcfg = TrainConfig(lr=lr, steps=s.steps, batch_size=s.batch, warmup=s.warmup, eval_every=s.eval_every,
                       seed=seed, threads=threads, progress=False, desc=f"{method} r={r}")
    try:
        res = train(model, train_rows, tcfg, eval_fn=lambda m: {"heldout_loss": heldout_loss(m, heldout_batches)},
                    on_step=tracker)
    finally:
        tracker.close()
    norms = {row["step"]: row for row in tracker.rows}
    curves = []
    for h in res.history:
        n = norms.get(h["step"], {})
        curves.append({"method": method, "r": r, "seed": seed, "lr": lr, "step": h["step"] + 1, "lr_now": h["lr"],
                       "train_loss": h["loss"], "heldout_loss": h.get("heldout_loss", math.nan),
                       **{k: n.get(k, math.nan) for k in NORMS}})
    return {"result": res, "curves": curves, "scalings": scalings, "expected_scaling": expected,
            "trainable_params": trainable_parameters(model)[0]}
