"""reproductions/lora/planted.py: the planted teacher has rank k, and the calibration reaches its target KL."""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from reproductions.lora import planted


def test_plant_has_rank_k_and_reaches_the_target_kl():
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16,
                                      bos_token_id=0, eos_token_id=0)).eval()
    rows = [{"input_ids": torch.randint(0, 50, (16,)).tolist()} for _ in range(8)]
    for target in ("c_attn", "c_attn.v"):
        teacher, deltas = planted.plant(base, 3, 2.0, rows, target=target)
        for dw in deltas:
            sv = torch.linalg.svdvals(dw.double())
            assert int((sv > 1e-6 * sv[0]).sum()) == 3
            if target == "c_attn.v":
                assert dw[:, :64].abs().max() == 0      # q and k untouched
        assert not any(p.requires_grad for p in teacher.parameters())
    kl4 = planted.distil_kl(base, planted.plant(base, 3, 4.0, rows)[0], rows)
    scale, kl = planted.calibrate_plant(base, 3, rows, kl4 / 2)
    assert 0 < scale <= 4.0 and kl4 / 2 <= kl <= kl4
