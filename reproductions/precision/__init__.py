"""Mixed precision: float formats (M1), BLOOM-176B memory accounting (M2), automatic mixed precision (M3).

M1 and M2 are exact (bit layouts, bytes per parameter; `exact.py`). M3 (`amp.py`) trains a small GPT-2-style
LM through the suite's one training loop (bench.train) in FP32, BF16 autocast, FP16 autocast without and with
loss scaling (Micikevicius et al. 2018, arXiv 1710.03740) over >= 3 seeds and records held-out loss, bytes
kept for backward, the share of gradient values that FP16 flushes to zero, and step time (timings.csv). On a
CPU without 16-bit units autocast is slower, not faster: the speed half of M3 can only show on a GPU, and the
report says so.

Files: `settings.py` (names, regression bands, M3's settings per profile), `exact.py` (M1, M2), `amp.py`
(M3), `run.py` (the recipe), `report.py` (report.md and figures).
"""

from .amp import run_m3
from .report import report
from .run import run
from .settings import AUTOCAST, CLAIMS, GROUP, PRECISIONS, REGRESS, SETTINGS, TAKES_MODEL, Settings

__all__ = ["AUTOCAST", "CLAIMS", "GROUP", "PRECISIONS", "REGRESS", "SETTINGS", "TAKES_MODEL", "Settings",
           "report", "run", "run_m3"]
