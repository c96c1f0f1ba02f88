"""reproductions/decoder/evaluate.py: the interval over chunks, NLL and KL per chunk."""

from __future__ import annotations

import math

import numpy as np
import torch

from reproductions.decoder.evaluate import chunk_kl, chunk_nll, mean_ci


def test_mean_ci_is_the_student_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and math.isclose(hi - m, 3.182 * np.std([1, 2, 3, 4], ddof=1) / 2, rel_tol=1e-12)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


def test_nll_and_kl_per_chunk():
    lp = torch.log_softmax(torch.randn(2, 5, 7), -1)
    ids = torch.randint(0, 7, (2, 5))
    want = -np.array([float(lp[b, t, ids[b, t + 1]]) for b in range(2) for t in range(4)]).reshape(2, 4).mean(1)
    np.testing.assert_allclose(chunk_nll(lp, ids), want, rtol=1e-6)
    assert np.all(chunk_kl(lp, lp) == 0)
    other = torch.log_softmax(torch.randn(2, 5, 7), -1)
    kl = chunk_kl(lp, other)
    ref = (lp.exp() * (lp - other)).sum(-1).mean(1).double().numpy()
    np.testing.assert_allclose(kl, ref, rtol=1e-6) and (kl > 0).all()
