import os

import torch

from bench.probes import SavedTensors, quiet_native_stderr, storage_key, unique_bytes


def test_saved_tensors_counts_each_storage_once_and_skips_excluded():
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(4, 8)
    with SavedTensors(exclude=[w]) as saved:
        y = (x @ w).relu()          # matmul saves x and w; relu saves its output
        y.sum()
    # x (4x8) and y (4x8), fp32; w is excluded
    assert saved.bytes == 2 * 4 * 8 * 4


def test_views_share_a_storage():
    t = torch.zeros(10)
    assert storage_key(t[:5])[0] == storage_key(t)[0]
    assert unique_bytes([t, t[:5], None]) == 40


def test_quiet_native_stderr_silences_fd2_and_restores_it(capfd):
    with quiet_native_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err
