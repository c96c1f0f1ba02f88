"""Memory measured on a live model (bench.memory): one training step counted by part from live tensors
(`measure_step`), and the peak of a steady-state step from the allocator (`measure_peak`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from bench import BenchError
from bench.memory.inputs import ENCODERS, unwrap
from bench.memory.parts import OPTIMIZERS, Memory
from bench.probes import SavedTensors, quiet_native_stderr, reset_peak_rss, rss_bytes, unique_bytes


def train_loss(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The loss one training step optimises, as the memory model assumes it: the LM loss of a causal LM
    (labels = inputs), or for an encoder without an LM head (BertModel) the mean of squares of the last hidden
    state (a stand-in for a sentence-embedding objective; it saves only that tensor)."""
    if getattr(getattr(model, "config", None), "model_type", None) in ENCODERS:
        out = model(input_ids=input_ids)
        return out.last_hidden_state.pow(2).mean()
    return model(input_ids=input_ids, labels=input_ids if labels is None else labels, use_cache=False).loss


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
    base_model = unwrap(model)[0]
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
