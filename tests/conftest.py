from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_configure(config):
    # `make test` runs these a second time with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16: on a CPU
    # with AMX that is the other bf16 code path, so a bound tuned to one CPU fails on one machine.
    config.addinivalue_line("markers", "bf16: results depend on bf16 rounding (run under both oneDNN paths)")


SHARED_DATA = Path(os.environ.get("NORMSTYLE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "train" / "content").is_dir():
        pytest.skip(f"training images not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tiny_config():
    from normstyle_core import ModelConfig
    return ModelConfig(widths=(8, 16, 32), num_residual=2, norm_hidden=16, style_size=64)


@pytest.fixture
def random_vgg():
    from normstyle_core import VGG19
    return VGG19.load("random", last_layer="relu4_1")


@pytest.fixture
def tiny_model_file(tmp_path, tiny_config):
    """A small, untrained but real checkpoint with a two-style bank."""
    from normstyle_core.checkpoint import save_checkpoint
    from normstyle_core.models import StyleTransferModel
    model = StyleTransferModel(tiny_config)
    rows, cols = tiny_config.code_rows, 2 * tiny_config.num_cin
    bank = {"red": torch.randn(rows, cols) * 0.1 + 1, "blue": torch.randn(rows, cols) * 0.1}
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model=model, vgg_source="random", extra={"style_bank": bank})
    return path
