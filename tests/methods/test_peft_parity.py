"""Every registered method with a peft counterpart passes the parity harness (tests/methods/parity.py)."""

from __future__ import annotations

import pytest

from tests.methods.parity import check_against_peft, parity_cases


def test_the_methods_peft_has_are_checked():
    assert {"lora", "dora", "pissa", "qlora", "prefix", "prompt", "ptuning"} <= set(parity_cases())
    assert not {"full", "adapters", "bitfit", "top_k_layers"} & set(parity_cases())


@pytest.mark.parametrize("name", parity_cases())
def test_against_peft(peft, name, tmp_path):
    if name == "qlora":
        pytest.importorskip("bitsandbytes")
    check_against_peft(peft, name, tmp_path)
