import pytest
import torch

from bench.spectra import energy_share, subspace_similarity


def test_energy_share_of_a_rank_two_matrix():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 2, generator=g) @ torch.randn(2, 12, generator=g)
    e = energy_share(w, [1, 2, 8, 100])
    assert 0.5 <= e[1] < 1.0 and e[2] == pytest.approx(1.0) and e[100] == pytest.approx(1.0)


def test_subspace_similarity_identity_and_orthogonal():
    d = 10
    eye = torch.eye(d)
    assert subspace_similarity(eye[:2], eye[:4], 2, 4) == pytest.approx(1.0)     # inside
    assert subspace_similarity(eye[:2], eye[2:6], 2, 4) == pytest.approx(0.0)    # orthogonal
    with pytest.raises(ValueError):
        subspace_similarity(eye[:2], eye[:4], 3, 1)
