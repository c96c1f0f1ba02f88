"""The claims registry: every claim of the lecture, its published numbers, and the rule that decides it.

This module is data. Each `Claim` names the reproduction group that measures it and a tuple of
`Check`s: the decision rule, fixed here *before* any run. A verdict is computed from stored results
by `bench.report.verdict`, never typed by hand. Scale words (see `../shared/claims.md`):
- exact: arithmetic or deterministic code, pass/fail;
- toy: a trend on the embedded ladder (2-core CPU), seeds and spread, scale stated;
- paper: needs the paper's checkpoints and a GPU (`--model`); here "not run (needs paper scale)".
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from bench import BenchError

OPS = {"==": operator.eq, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Check:
    """One comparison of measured rows against a target, decided before the run.

    Rows are those of the claim's group with `metric` == self.metric (and `claim` == the claim ID),
    filtered by `where` (column -> value; `params.<key>` looks inside the params JSON). They are
    reduced by `agg` (mean, min, max, median, last, count) and compared with `op` to `target`; with
    op "~=" the check passes when |value - target| <= atol + rtol * |target|.
    """

    metric: str
    op: str
    target: float
    where: tuple[tuple[str, object], ...] = ()
    agg: str = "mean"
    atol: float = 0.0
    rtol: float = 0.0
    note: str = ""

    def __post_init__(self):
        if self.op not in (*OPS, "~="):
            raise ValueError(f"unknown op {self.op!r}")

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.where)
        cmp = f"~= {self.target:g} (atol {self.atol:g}, rtol {self.rtol:g})" if self.op == "~=" else f"{self.op} {self.target:g}"
        return f"{self.agg}({self.metric}{' | ' + where if where else ''}) {cmp}"


@dataclass(frozen=True)
class Claim:
    id: str
    family: str          # prompt | additive | lora | precision | quantization
    title: str
    statement: str       # what the lecture says
    published: str       # the paper's numbers, with the source
    scales: tuple[str, ...]
    group: str           # reproduction group that measures it: results/<group>/, tox -e repro-<group>
    metric: str          # what the suite measures, in words
    checks: tuple[Check, ...] = field(default_factory=tuple)
    rule: str = ""       # the decision rule in words (the checks are its machine form)
    paper_note: str = "" # what the paper-scale part needs


def W(**kw) -> tuple[tuple[str, object], ...]:
    """`where` filters as keyword arguments: W(model="gpt3-175b", **{"params.r": 1})."""
    return tuple(sorted(kw.items()))


CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"duplicate claim {claim.id}")
    CLAIMS[claim.id] = claim
    return claim


# ---------------------------------------------------------------- prompt approaches (group: scale)
register(Claim(
    id="P1", family="prompt", title="P-tuning beats hand-written prompts",
    statement="A trainable prompt encoder (LSTM or MLP) over continuous prompt tokens beats hand-written "
              "discrete prompts with the LM frozen; the lecture says '+3-4 points on BERT and GPT'.",
    published="LAMA P@1, frozen LM: 43.3 -> 50.6 (LAMA-34k), 45.2 -> 64.2 (LAMA-29k, Megatron-11B), about +20 "
              "over manual prompts (Liu et al. 2021, Table 3). SuperGLUE with the LM tuned: ~+2 (BERT), >5 (GPT) "
              "(secondary). The lecture's '3-4 points' was not found in the paper.",
    scales=("toy", "paper"), group="scale",
    metric="knowledge-task accuracy of P-tuning vs the hand-written prompt (frozen model), per rung",
    paper_note="LAMA with BERT/GPT-2/Megatron checkpoints: --model <hub id> on a GPU.",
))
register(Claim(
    id="P2", family="prompt", title="Prefix tuning matches full fine-tuning with ~0.1% of parameters",
    statement="Trainable key/value prefixes at every layer (~0.1% of parameters) match or beat full fine-tuning; "
              "one frozen model serves many tasks.",
    published="E2E BLEU, GPT-2 Medium: FT 68.2, prefix 69.7, adapter(0.1%) 66.3; GPT-2 Large: FT 68.5, prefix 70.3 "
              "(Li & Liang 2021, Table 1). Low data (50-500 examples): prefix beats FT by +2.9 BLEU on average "
              "(Sec. 6.3). Prefix length 10; MLP reparameterisation in training.",
    scales=("toy", "paper"), group="scale",
    metric="data-to-text BLEU of prefix tuning vs full FT at the largest rung; low-data comparison",
    paper_note="E2E with GPT-2 Medium/Large: --model gpt2-medium on a GPU.",
))
register(Claim(
    id="P3", family="prompt", title="Prompt tuning closes the gap to model tuning as models grow",
    statement="Soft prompt tokens prepended to the input of a frozen model; the gap to full model tuning closes "
              "as the model grows.",
    published="T5.1.1 Small..XXL on SuperGLUE: prompt tuning matches model tuning at XXL (11B) (Lester et al. 2021, "
              "Fig. 1, plot only); XXL 90.5 (mean of 5 prompts). Length: >1 token critical below XXL, marginal past 20 "
              "(Fig. 3a). Init: class labels > sampled vocab > random uniform, differences vanish at XXL (Fig. 3b). "
              "Parameters = prompt length x d_model.",
    scales=("toy", "paper"), group="scale",
    metric="gap (full FT minus prompt tuning) vs parameters over the ladder; length and init ablations",
    paper_note="SuperGLUE with T5.1.1 Small..XXL: --model on a GPU.",
))
register(Claim(
    id="P4", family="prompt", title="Mixed-task batches through one frozen model",
    statement="With prompt tuning, examples of different tasks, each with its own prompt, are batched through one "
              "frozen model, using serving resources better than one tuned model per task.",
    published="Lester et al. 2021, Fig. 2 (qualitative).",
    scales=("exact", "toy"), group="scale",
    metric="max |mixed-batch output - per-task output|; throughput of the mixed batch vs one batch per task",
))

# ---------------------------------------------------------------- additive approaches
register(Claim(
    id="A1", family="additive", title="Adapters come within 0.4 points of full fine-tuning",
    statement="Bottleneck adapters after attention and after the FFN (near-identity init; only they, layer norms "
              "and the head train) come within 0.4 points of full fine-tuning with a few percent of the parameters.",
    published="GLUE test, BERT-Large: FT 80.4 (100% params/task), adapters 80.0 (3.6%/task), size 64: 79.6 (2.1%) "
              "(Houlsby et al. 2019, Table 1). Adapter size = 2md + d + m.",
    scales=("toy", "paper"), group="scale",
    metric="downstream metric of adapters vs full FT per rung, with trainable %",
    paper_note="GLUE with BERT-Large: --model bert-large-uncased on a GPU.",
))
register(Claim(
    id="A2", family="additive", title="Training only added modules needs far less memory",
    statement="Training only added modules needs far less memory than full fine-tuning although the frozen weights "
              "still sit in memory: no gradients or optimizer states for them.",
    published="Lecture Q&A (qualitative).",
    scales=("exact", "toy"), group="lora",
    metric="training memory by part (weights, grads, optimizer, activations), full FT vs adapters vs LoRA",
))

# ---------------------------------------------------------------- LoRA
register(Claim(
    id="L1", family="lora", title="LoRA: W' = W + BA, B = 0 at init, scaled by alpha/r",
    statement="Fine-tuning can be written W' = W + dW, and LoRA learns dW = BA of rank r; with B = 0 at init "
              "(A Gaussian) the adapted model equals the base model at step 0; output is scaled by alpha/r.",
    published="Hu et al. 2021, Sec. 4.1.",
    scales=("exact",), group="lora",
    metric="max |LoRA(step 0) - base| over ladder models; applied scaling vs alpha/r",
))
register(Claim(
    id="L2", family="lora", title="LoRA's memory ratio 2r/d; GPT-3 37.7M; LLaMA-7B 8 MB",
    statement="A d x d weight needs d^2 numbers, its LoRA update 2dr: ratio 2r/d, falling as d grows. "
              "GPT-3 175B: 175B -> 37.7M trainable. LLaMA-7B with r = 8: '23 GB -> 8 MB'.",
    published="GPT-3 (d = 12288, 96 layers): r = 1 on q,v = 4,718,592 (4.7M); r = 8 on q,v or r = 4 on q,k,v,o = "
              "37,748,736 (Hu et al. Tables 4, 15). LLaMA-7B r = 8 on q,v: 4,194,304 params = 8 MiB fp16, "
              "16 MiB fp32 (derived; alpaca-lora logs 4,194,304).",
    scales=("exact",), group="lora",
    metric="trainable LoRA parameters counted on meta-device configs; adapter bytes",
    checks=(
        Check("lora_trainable_params", "==", 4_718_592, W(model="gpt3-175b", **{"params.r": 1, "params.targets": "q,v"})),
        Check("lora_trainable_params", "==", 37_748_736, W(model="gpt3-175b", **{"params.r": 8, "params.targets": "q,v"})),
        Check("lora_trainable_params", "==", 37_748_736, W(model="gpt3-175b", **{"params.r": 4, "params.targets": "q,k,v,o"})),
        Check("lora_trainable_params", "==", 4_194_304, W(model="llama-7b", **{"params.r": 8, "params.targets": "q,v"})),
        Check("adapter_bytes_fp16", "==", 8 * 2**20, W(model="llama-7b", **{"params.r": 8, "params.targets": "q,v"})),
    ),
    rule="Exact counts equal the paper's to the digit.",
))
register(Claim(
    id="L3", family="lora", title="LoRA cuts training memory and checkpoint size",
    statement="LoRA cuts training memory and checkpoint size.",
    published="GPT-3 175B: training VRAM 1.2 TB -> 350 GB; checkpoint 350 GB -> 35 MB with r = 4 on q,v (Sec. 4.2; "
              "derived: 37.7 MB fp16); +25% throughput (32.5 -> 43.1 tokens/s per V100). PEFT README: T0_3B full "
              "FT 47.14 GB vs LoRA 14.4 GB; checkpoint 19 MB vs 11 GB.",
    scales=("exact", "toy", "paper"), group="lora",
    metric="memory model for GPT-3 175B full FT vs LoRA; measured peak memory and checkpoint size on ladder rungs",
    paper_note="Measured GPU memory of a 175B/3B model needs paper-scale hardware.",
))
register(Claim(
    id="L4", family="lora", title="Rank trades memory against quality; small r is enough",
    statement="Larger r, more memory, better or equal quality; in practice small r is enough.",
    published="GPT-3, LoRA on q,v, r = 1/2/4/8/64: WikiSQL 73.4/73.3/73.7/73.8/73.5, MNLI 91.3/91.4/91.3/91.6/91.4 "
              "(Hu et al. Table 6).",
    scales=("toy", "paper"), group="lora",
    metric="downstream quality and memory vs r in {1,2,4,8,16,64}, >= 3 seeds",
    paper_note="WikiSQL/MNLI with GPT-3 is not available; RoBERTa/GPT-2 via --model on a GPU.",
))
register(Claim(
    id="L5", family="lora", title="Merged LoRA has no inference overhead",
    statement="After training, merging W + BA (merge_and_unload) removes all inference overhead; unmerged LoRA adds latency.",
    published="Hu et al. Sec. 4.1; adapters add >30% latency at batch 1 (App. B).",
    scales=("exact", "toy"), group="lora",
    metric="max |merged - unmerged| output; latency merged / base and unmerged / base",
))
register(Claim(
    id="L6", family="lora", title="The task update has a small intrinsic rank",
    statement="The update needed for a new task has a small intrinsic rank, like data explained by a few principal components.",
    published="Lecture, with the LoRA paper's subspace analysis (Sec. 7).",
    scales=("toy",), group="lora",
    metric="planted rank-k task: LoRA gap for r < k vs r >= k; energy of the full-FT update's top singular directions",
))
register(Claim(
    id="L7", family="lora", title="rsLoRA (alpha/sqrt(r)) keeps learning stable as rank grows",
    statement="Scaling by alpha/sqrt(r) instead of alpha/r keeps learning stable as r grows; with alpha/r large ranks "
              "learn no better (their gradients collapse); rsLoRA curves are smoother.",
    published="Kalajdzievski 2023 (arXiv 2312.03732); PEFT use_rslora sets scaling to lora_alpha/sqrt(r). Setup "
              "recalled, not verified: Llama-2-7B, OpenOrca subset, ranks 4..2048.",
    scales=("toy", "paper"), group="rslora",
    metric="final loss and update gradient norm vs rank under alpha/r and alpha/sqrt(r), >= 3 seeds",
    paper_note="Llama-2-7B on OpenOrca: --model on a GPU.",
))

# ---------------------------------------------------------------- mixed precision
register(Claim(
    id="M1", family="precision", title="Float formats trade range against precision",
    statement="FP32 8/23, FP16 5/10, BF16 8/7, TF32 8/10 exponent/significand bits. FP16 cannot hold values past "
              "~65,504 (the lecture: 'about 100,000 cannot be represented'); BF16 keeps FP32's range with less precision.",
    published="FP16 max 65504, min normal 6.1e-5, min subnormal 5.96e-8, eps 9.77e-4; BF16 max 3.39e38, eps 7.81e-3 "
              "(IEEE; torch.finfo). The LLM.int8() paper's '65535' is a typo.",
    scales=("exact",), group="precision",
    metric="format table from bit layouts vs torch.finfo; overflow and update-vanishing demonstrations",
))
register(Claim(
    id="M2", family="precision", title="BLOOM-176B: 8 A100s to serve, about 72 to fine-tune",
    statement="BLOOM-176B needs 8 x 80 GB A100 to serve in 16 bit and about 72 to fine-tune (about 9x the memory).",
    published="HF blog 'A Gentle Introduction to 8-bit Matrix Multiplication': 176e9 x 2 B = 352 GB of bf16 weights.",
    scales=("exact",), group="precision",
    metric="memory model: GPUs for bf16 inference and mixed-precision Adam fine-tuning, assumptions printed",
))
register(Claim(
    id="M3", family="precision", title="AMP: less memory and time, same result; FP16 needs loss scaling",
    statement="Forward and backward in 16 bit, weights and optimizer in FP32; less memory and time, same result; small "
              "gradients underflow in FP16 without loss scaling.",
    published="Micikevicius et al. 2018: values below 2^-24 flush to zero in FP16; SSD diverges without loss scaling, "
              "scale 8 matches FP32.",
    scales=("toy",), group="precision",
    metric="final loss, step time, peak memory under FP32 / BF16 / FP16 +- loss scaling; share of gradients flushed to zero",
))

# ---------------------------------------------------------------- quantization
register(Claim(
    id="Q1", family="quantization", title="The lecture's zero-point example: 0.3 -> 38 -> 0.2992",
    statement="0.3 in [-1, 1] times 127 = 38.1 -> 38; back: 38/127 = 0.2992; 0.0008 is lost. Real zero-point "
              "quantization is asymmetric (scale from min..max plus an integer zero point); the lecture's example is a "
              "fixed-range symmetric scale. The suite implements and names both.",
    published="Lecture; HF int8 blog.",
    scales=("exact",), group="int8",
    metric="the worked example through our quantizers",
))
register(Claim(
    id="Q2", family="quantization", title="Absmax quantization; more stable than zero-point?",
    statement="Absmax scales by 127/max|x|: [1.2, -0.5, -4.3, 1.2, -3.1, 0.8, 2.4, 5.4] -> factor 23.5 -> "
              "[28, -12, -101, 28, -73, 19, 56, 127]; the lecture calls it more stable than zero-point.",
    published="HF int8 blog. The paper's Table 1 shows the opposite ordering at 125M (absmax C4 ppl 87.76 vs "
              "zeropoint 56.66): measure both and report.",
    scales=("exact", "toy"), group="int8",
    metric="the worked example; perplexity under absmax vs zero-point over the ladder",
))
register(Claim(
    id="Q3", family="quantization", title="Vector-wise quantization",
    statement="Absmax per row of X and per column of W; dequantise by the outer product of the scales / 127^2.",
    published="Dettmers et al. 2022, Sec. 3.",
    scales=("exact",), group="int8",
    metric="vector-wise int8 matmul vs its definition; error vs per-tensor",
))
register(Claim(
    id="Q4", family="quantization", title="LLM.int8(): outlier decomposition keeps quality",
    statement="Pull feature dimensions with any |x| >= 6.0 out and multiply them in 16 bit, the rest in int8 vector-wise; "
              "near-zero degradation where plain int8 degrades.",
    published="C4 perplexity (Table 1), 125M/1.3B/2.7B/6.7B/13B: FP32 25.65/15.91/14.43/13.30/12.45; int8 absmax "
              "87.76/16.55/15.11/14.59/19.08; absmax vector-wise 35.84/16.82/14.98/14.13/16.48; LLM.int8() "
              "25.83/15.93/14.44/13.24/12.45. bitsandbytes Linear8bitLt(threshold=6.0) is the reference.",
    scales=("exact", "toy", "paper"), group="int8",
    metric="parity with bitsandbytes; perplexity table over the ladder per quantizer",
    paper_note="OPT 125M..13B on C4: --model facebook/opt-* on a GPU.",
))
register(Claim(
    id="Q5", family="quantization", title="Outlier features emerge with scale (~6.7B)",
    statement="Most hidden values lie in [-3.5, 3.5]; outliers reach 6..60 and around 6.7B suddenly appear in all "
              "layers, which is where plain int8 breaks.",
    published="Outlier: |x| >= 6 in a feature dimension seen in >= 25% of layers and >= 6% of positions. Between 6B and "
              "6.7B: layers affected 65% -> 100%, positions 35% -> 75%; at most 7 such dimensions up to 13B "
              "(Sec. 4, Fig. 3).",
    scales=("toy", "paper"), group="int8",
    metric="outlier census per rung; planted outliers break int8 but not LLM.int8()",
    paper_note="OPT 6.7B/13B hidden states: --model on a GPU.",
))
register(Claim(
    id="Q6", family="quantization", title="8-bit loading halves weight memory",
    statement="load_in_8bit loading halves weight memory relative to 16 bit.",
    published="BLOOM-176B 1.96x smaller (paper); int8 weights are 1 byte per parameter plus scales.",
    scales=("exact", "toy"), group="int8",
    metric="weight bytes after int8 conversion vs FP16/FP32 per rung; BLOOM-176B by accounting",
))

GROUPS = ("lora", "rslora", "precision", "int8", "scale")


def get(claim_id: str) -> Claim:
    key = claim_id.strip().upper()
    if key not in CLAIMS:
        raise BenchError(f"unknown claim {claim_id!r}; known: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def by_group(group: str) -> list[Claim]:
    if group not in GROUPS:
        raise BenchError(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
    return [c for c in CLAIMS.values() if c.group == group]
