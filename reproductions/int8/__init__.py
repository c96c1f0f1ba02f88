"""Int8 quantization: worked examples (Q1, Q2), vector-wise (Q3), LLM.int8() vs bitsandbytes and over
models (Q4), outlier features (Q5), weight memory (Q6).

Exact parts (`exact.py`, `bnb.py`): the lecture's and the HF blog's worked examples through
`bench.numerics.quant`; the vector-wise product against its definition; our `Int8Linear(method="llm_int8")`
against bitsandbytes' `Linear8bitLt(threshold=6.0, has_fp16_weights=False)` in eval mode on the same weights
and inputs (with planted outlier columns of magnitude 6-60): relative error vs FP64 and the outlier columns
chosen; BLOOM-176B's int8 weight bytes on the meta device. Latency of both layers is a benchmark (timings.csv).

Toy parts (`models.py`): held-out perplexity of the profile's ladder rungs under FP32 and each int8 method,
before and after planting outlier features, and an outlier census per rung. The rungs are fixed pretrained
weights and int8 conversion is deterministic, so each rung is evaluated once (seed = its pretraining seed),
not once per --seeds entry. `--model a,b,...` replaces the ladder entries (the paper-scale path).

Issue 15's measures, reported beside them (claims Q4 / Q5, metric names no current rule reads; `degradation.py`):
per rung and planted variant ("none", "ln_2", "all_ln": every LayerNorm output that feeds a Linear planted at the
paper's magnitudes), KL(p_fp32 || p_int8) per token on the held-out blocks and answer-token NLL / accuracy on the
rung's knowledge task for each quantizer, and the census of LayerNorm outputs that feed a Linear (share |x| >= 6,
top magnitudes, kurtosis per layer); MiniLM's census and embedding cosine under int8 (`minilm.py`, scale real).

Files: `settings.py` (names, bands, constants, settings per profile), `exact.py`, `bnb.py`, `models.py`,
`degradation.py`, `minilm.py`, `run.py` (the recipe), `report.py` and `report_deg.py` (report.md and figures).
"""

from .bnb import bnb_layer, bnb_outlier_cols, parity_inputs, quiet_bnb
from .models import entry_specs, heldout_batches, model_rows, ppl_table
from .report import report
from .run import run
from .settings import CLAIMS, GROUP, PLANT_DIMS, PLANT_SCALE, REGRESS, SETTINGS, THRESHOLD, Settings

_quiet_bnb = quiet_bnb   # the name reproductions.real imports (before quiet_bnb was public)

__all__ = ["CLAIMS", "GROUP", "PLANT_DIMS", "PLANT_SCALE", "REGRESS", "SETTINGS", "THRESHOLD", "Settings",
           "bnb_layer", "bnb_outlier_cols", "entry_specs", "heldout_batches", "model_rows", "parity_inputs",
           "ppl_table", "quiet_bnb", "report", "run"]
