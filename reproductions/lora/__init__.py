"""LoRA group: claims L1-L6 and A2 (Hu et al. 2021, https://arxiv.org/abs/2106.09685).

Parts, in run order (each says how long it took in meta.json and report.md):
1. exact (meta device, no weights): LoRA parameter counts of GPT-3 175B, LLaMA-7B, GPT-2 M/L, mt0-large (L2);
   the per-matrix ratio 2r/d; the memory model (bench.memory) for GPT-3 and LLaMA-7B (L3, A2).   exact.py
2. L1 on a ladder rung: LoRA at step 0 equals the base bit for bit; scaling = alpha/r.              merge.py
3. memory on the rung (A2, L3, L4): full FT vs LoRA r in `ranks` vs adapters, predicted by bench.memory and
   measured from live tensors after one AdamW step; step time and peak RSS as timings.              memory.py
4. knowledge task (L4, L5, L1, L3, L6): full FT and LoRA at every rank, >= 3 seeds; merged vs unmerged;
   adapter vs full checkpoint files; the full-FT update's singular spectrum.                        knowledge.py
5. planted rank-k task (L6): a teacher = rung + a rank-k update on the value third of every c_attn; students
   (full FT, LoRA at r below and above k) distil it.                                                planted.py
Parts 4 and 5 are independent (method, r, seed) jobs on bench.jobs.JobRunner, in `workers` processes of one
thread each (jobs.py).
6. latency (L5): base vs merged vs unmerged, round-robin (bench.timing), timings only.               merge.py

run.py strings the parts together; settings.py holds the profiles; report.py and figures.py write report.md.

GPT-2 rungs fuse q, k, v into one Conv1D (`c_attn`, d -> 3d); LoRA adapts it whole (the family default), so
"q,v" of the paper becomes "q,k,v" here. GPT-3 is modelled with an OPTConfig (separate q/k/v/out_proj, GELU,
pre-LN, learned positions: 2 more position rows than GPT-3, +24,576 parameters) so the targets are nameable.
"""

from __future__ import annotations

from pathlib import Path

from reproductions.lora.exact import META_CACHE, exact_counts, l2_counts, paper_memory
from reproductions.lora.jobs import make_env
from reproductions.lora.planted import calibrate_plant, distil_kl, plant
from reproductions.lora.report import write_report
from reproductions.lora.run import run
from reproductions.lora.settings import ALPHA, CLAIMS, GROUP, REGRESS, SETTINGS, Settings

__all__ = ["ALPHA", "CLAIMS", "GROUP", "META_CACHE", "REGRESS", "SETTINGS", "Settings", "calibrate_plant",
           "distil_kl", "exact_counts", "l2_counts", "make_env", "paper_memory", "plant", "report", "run",
           "write_report"]


def report(out_dir: Path) -> None:
    """Write report.md and the PNGs of a results folder (bench.repro's contract)."""
    write_report(Path(out_dir))
