"""Fixtures of the method tests (helpers are in tests/methods/helpers.py)."""

from __future__ import annotations

import pytest
import torch

from tests.methods.helpers import quiet


@pytest.fixture(scope="session")
def peft():
    quiet()
    return pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
