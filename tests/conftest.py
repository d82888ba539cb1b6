"""Shared fixtures: tiny configs on the CPU, and the data mirror beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gptcourse import GPTConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests and the notebooks they start find the dataset without a download when the mirror is there.
if "GPTCOURSE_DATA_DIR" not in os.environ and (SHARED_DATA / "tinyshakespeare.txt").is_file():
    os.environ["GPTCOURSE_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture
def tiny_config() -> GPTConfig:
    return GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A sweep is also slow, so `-m "not slow"` (the quick run) leaves sweeps out without naming them."""
    for item in items:
        if item.get_closest_marker("sweep") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
