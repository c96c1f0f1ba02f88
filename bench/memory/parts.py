"""The parts of a step's memory (bench.memory): how the step is run (`Setup`) and bytes by part (`Memory`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import BenchError

PRECISIONS = {
    # name: (bytes per weight, per gradient, per optimizer-state element, fp32 master copy?, bytes per activation)
    "fp32": (4, 4, 4, False, 4),
    "mixed": (2, 2, 4, True, 2),    # 16-bit weights/grads/activations, fp32 master + Adam moments (ZeRO's 16 B)
    "bf16": (2, 2, 2, False, 2),    # everything in 16 bit, Adam moments too (no master copy)
    "fp16": (2, 2, 2, False, 2),
}
OPTIMIZERS = {"adamw": 2, "sgd": 0, "momentum": 1}  # state tensors per trainable parameter


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
