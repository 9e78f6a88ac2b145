"""Precision policy (decided once, devices.py) and the bf16 accuracy it buys."""
from __future__ import annotations

import pytest
import torch

from normstyle_core import DeviceError, ModelConfig
from normstyle_core import devices
from normstyle_core.kernels import FastTransform
from normstyle_core.models.transform_net import ImageTransformNet

pytestmark = pytest.mark.bf16


def test_auto_is_bf16_only_with_fast_bf16_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) == torch.float32
    assert devices.resolve_precision("fp32", cpu) == torch.float32
    with pytest.raises(DeviceError):
        devices.resolve_precision("fp16", cpu)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("widths", [(8, 16, 32), (16, 32, 64)])
def test_bf16_output_within_40db_of_fp32(widths):
    """Random-weights net (default init), style code near identity as after training starts."""
    config = ModelConfig(widths=widths, num_residual=2 if widths[0] == 8 else 5)
    net = ImageTransformNet(config).eval().requires_grad_(False)
    code = torch.randn(2, config.code_rows, 2 * config.num_cin) * 0.3 + 1
    code[:, :, config.num_cin:] -= 1  # betas around 0, gammas around 1
    x = torch.rand(2, 3, 96, 128)
    with torch.inference_mode():
        ref = FastTransform.from_net(net, dtype=torch.float32)(x, code)
        low = FastTransform.from_net(net, dtype=torch.bfloat16)(x, code)
    assert _psnr(low, ref) >= 40.0


def test_statistics_are_reduced_in_float32():
    """bf16 input with a large offset: the bf16 sum would lose the mean; ours does not."""
    from normstyle_core.kernels import cin_eager
    x = (torch.randn(1, 2, 256, 256) * 0.1 + 50.0)
    g, b = torch.ones(1, 2), torch.zeros(1, 2)
    y = cin_eager(x.bfloat16(), g, b).float()
    ref = cin_eager(x.bfloat16().float(), g, b)
    assert (y - ref).abs().max() < 0.05
