"""Beyond group: claims X1-X5, the methods people fine-tune with in 2026, beyond the lecture (issue 33).
QLoRA (Dettmers et al. 2023, https://arxiv.org/abs/2305.14314): NF4 + LoRA matches 16-bit LoRA (X1), a 65B model
fine-tunes on one 48 GB GPU (X2, decided by bench.memory's model); DoRA (Liu et al. 2024,
https://arxiv.org/abs/2402.09353) beats LoRA at equal rank, most at low rank (X3); PiSSA (Meng et al. 2024,
https://arxiv.org/abs/2404.02948) converges faster than LoRA (X4); LoRA+ (Hayou et al. 2024,
https://arxiv.org/abs/2402.12354) converges faster at the same final quality (X5).

The sweep: arms x seeds on one rung and the scale group's next-month task, each run one call of bench.train.train
(settings.py says why one rung, one lr, rank 1 and a fixed budget). Design first: the pilot (pilot.py, pilot.jsonl)
measured the noise (noise.json), design.py records each part's power before anything trains.

Files: settings.py (constants, profiles), pilot.py (the pilot), design.py (noise and power), run.py (jobs, rows,
X2's memory rows), report.py (report.md, loss_curves.png).
"""

from reproductions.beyond.report import report
from reproductions.beyond.run import run
from reproductions.beyond.settings import ARMS, CLAIMS, GROUP, REGRESS, SETTINGS, Settings, settings_for

__all__ = ["ARMS", "CLAIMS", "GROUP", "REGRESS", "SETTINGS", "Settings", "report", "run", "settings_for"]
