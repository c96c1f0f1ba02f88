"""reproductions/lora/spectra.py: L6's positive control tells a low-rank update from a null update."""

import torch

from bench.schema import Recorder
from reproductions.lora import spectra


def _rows(updates, w0):
    """(seed, layer, energy by r, Gaussian energy by r) rows for per-seed lists of per-layer weights."""
    return [(seed, *sp) for seed, w in enumerate(updates) for sp in spectra.update_spectra(w, w0, seed, [8])]


def _control(rec):
    row = rec.frame()
    return row[row.metric == "l6_control_residual_energy_top8_null_over_planted"].value.iloc[0]


def test_control_passes_for_a_low_rank_update_and_not_for_the_null_itself():
    g = torch.Generator().manual_seed(0)
    w0 = [torch.randn(32, 96, generator=g, dtype=torch.float64) for _ in range(2)]
    null = [[w + 0.1 * torch.randn(32, 96, generator=g, dtype=torch.float64) for w in w0] for _ in range(3)]
    low = [[w + torch.randn(32, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 96, generator=g,
                                                                                 dtype=torch.float64)
            + 0.01 * torch.randn(32, 96, generator=g, dtype=torch.float64) for w in w0] for _ in range(3)]
    rec = Recorder(group="lora", profile="smoke", out_dir=None, claims=["L6"])
    spectra.record_control(rec, "toy", "planted", _rows(low, w0), _rows(null, w0), k=4)
    assert _control(rec) > 100                       # rank 4 + 1% noise: almost nothing outside the top 8
    rec = Recorder(group="lora", profile="smoke", out_dir=None, claims=["L6"])
    spectra.record_control(rec, "toy", "planted", _rows(null, w0), _rows(null, w0), k=4)
    assert abs(_control(rec) - 1.0) < 1e-12          # the null against itself: no signal
    rec = Recorder(group="lora", profile="smoke", out_dir=None, claims=["L6"])
    spectra.record_control(rec, "toy", "planted", [], _rows(null, w0), k=4)
    assert rec.frame().empty                         # no planted full-FT run: no row, the precondition is missing
