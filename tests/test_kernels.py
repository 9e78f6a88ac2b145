"""Kernels: the fused CIN and the rewritten inference net against independent references."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from normstyle_core import ModelConfig
from normstyle_core.kernels import FastTransform, cin_eager, cin_fused
from normstyle_core.kernels import compile as kcompile
from normstyle_core.kernels.cin import channel_stats
from normstyle_core.kernels.fast_net import _up_phase_weight
from normstyle_core.models.transform_net import ImageTransformNet


def _net(config: ModelConfig) -> ImageTransformNet:
    net = ImageTransformNet(config).eval().requires_grad_(False)
    for p in net.parameters():  # larger than the default init: exercise the arithmetic harder
        p.data.normal_(0.0, 0.2)
    return net


def _code(config: ModelConfig, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, config.code_rows, 2 * config.num_cin) * 0.3 + 1.0


def test_cin_eager_matches_instance_norm_plus_affine():
    x, g, b, r = torch.randn(2, 5, 13, 7), torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 5, 13, 7)
    ref = F.relu(F.instance_norm(x, eps=1e-5) * g[:, :, None, None] + b[:, :, None, None] + r)
    torch.testing.assert_close(cin_eager(x, g, b, r, relu=True), ref, atol=1e-5, rtol=1e-5)


def _stats_float64(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance in float64, by their definitions."""
    xd = x.double()
    n = xd.shape[2] * xd.shape[3]
    mean = xd.sum(dim=(2, 3)) / n
    return ((xd - mean[:, :, None, None]) ** 2).sum(dim=(2, 3)) / n, mean


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_channel_stats_match_float64_even_where_the_mean_dwarfs_the_spread(layout):
    """Pre-norm activations can have a per-channel mean far above their spread: the variance
    must not be lost to cancellation (as E[x^2] - E[x]^2 in float32 would lose it)."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 37, 53) * torch.tensor([1e-2, 0.1, 1.0, 3.0, 10.0, 1.0]).view(1, 6, 1, 1) \
        + torch.tensor([300.0, -50.0, 0.0, 2.0, 1e3, 7.0]).view(1, 6, 1, 1)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    var, mean = channel_stats(x)
    ref_var, ref_mean = _stats_float64(x)
    assert var.dtype == mean.dtype == torch.float32
    torch.testing.assert_close(mean.double(), ref_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var.double(), ref_var, rtol=1e-4, atol=0)
    # bf16 input: statistics of exactly the bf16 values, still in float32
    xb = x.bfloat16()
    var_b, mean_b = channel_stats(xb)
    ref_var_b, ref_mean_b = _stats_float64(xb)
    torch.testing.assert_close(var_b.double(), ref_var_b, rtol=1e-4, atol=0)
    torch.testing.assert_close(mean_b.double(), ref_mean_b, rtol=1e-6, atol=1e-6)


def test_channel_stats_gradient_matches_float64_autograd():
    """Training backpropagates through the statistics (the CIN of ImageTransformNet)."""
    torch.manual_seed(1)
    x = (torch.randn(2, 4, 9, 11) * 2 + 3).requires_grad_()
    w_var, w_mean = torch.randn(2, 4), torch.randn(2, 4)
    var, mean = channel_stats(x)
    (g,) = torch.autograd.grad((var * w_var + mean * w_mean).sum(), x)
    xd = x.detach().double().requires_grad_()
    ref_var, ref_mean = _stats_float64(xd)
    (ref_g,) = torch.autograd.grad((ref_var * w_var.double() + ref_mean * w_mean.double()).sum(), xd)
    torch.testing.assert_close(g.double(), ref_g, rtol=1e-5, atol=1e-6)


def test_cin_fused_matches_eager_on_odd_sizes(monkeypatch):
    """The one torch.compile check of the default run: tiny tensors, two odd sizes, one graph."""
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    for shape in [(2, 5, 13, 7), (1, 5, 9, 11)]:
        x = torch.randn(shape)
        g, b = torch.randn(shape[:2]), torch.randn(shape[:2])
        r = torch.randn(shape)
        torch.testing.assert_close(cin_fused(x, g, b, r, relu=True), cin_eager(x, g, b, r, relu=True),
                                   atol=1e-5, rtol=1e-4)
    from normstyle_core.kernels.cin import _compiled_cin
    assert _compiled_cin.failed is None


def test_up_phase_rewrite_equals_upsample_pad_conv():
    x, w = torch.randn(2, 4, 6, 9, dtype=torch.float64), torch.randn(3, 4, 3, 3, dtype=torch.float64)
    ref = F.conv2d(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"), w)
    got = F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), _up_phase_weight(w)), 2)
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("size", [(36, 52), (16, 16), (20, 100)])
def test_fast_transform_equals_reference_net(tiny_config, size):
    net = _net(tiny_config)
    code = _code(tiny_config, 2)
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        ref = net(x, code)
        got = FastTransform.from_net(net, channels_last=size[0] != 16)(x, code)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=0)


def test_compile_failure_falls_back_once_and_logs(monkeypatch, caplog):
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    calls = []

    def broken_compile(fn, **kwargs):
        def run(*a, **k):
            calls.append(1)
            raise RuntimeError("no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(kcompile.torch, "compile", broken_compile)
    f = kcompile.safe_compile(lambda t: t * 2, name="test fn")
    with caplog.at_level(logging.WARNING, logger=kcompile.__name__):
        assert f(torch.ones(2)).tolist() == [2.0, 2.0]
        assert f(torch.ones(2)).tolist() == [2.0, 2.0]
    assert len(calls) == 1 and f.failed == "RuntimeError: no C++ compiler found"
    assert sum("failed" in r.message for r in caplog.records) == 1


def test_input_errors_are_not_compile_failures(monkeypatch):
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    monkeypatch.setattr(kcompile.torch, "compile", lambda fn, **kw: fn)

    def needs_4d(t):
        if t.dim() != 4:
            raise ValueError("want 4-d")
        return t

    f = kcompile.safe_compile(needs_4d, name="test fn")
    with pytest.raises(ValueError, match="want 4-d"):
        f(torch.ones(2))
    assert f.failed is None and f.active


def test_compile_switch_off_never_compiles(monkeypatch):
    monkeypatch.setenv("NORMSTYLE_COMPILE", "0")
    monkeypatch.setattr(kcompile.torch, "compile", lambda *a, **k: pytest.fail("compiled"))
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(cin_fused(x, torch.ones(1, 3), torch.zeros(1, 3)),
                               cin_eager(x, torch.ones(1, 3), torch.zeros(1, 3)))
    assert kcompile.compile_setting() is False


def test_compile_setting_values(monkeypatch):
    for raw, want in [("", "auto"), ("auto", "auto"), ("1", True), ("off", False)]:
        monkeypatch.setenv("NORMSTYLE_COMPILE", raw)
        assert kcompile.compile_setting() == want


def test_cache_dir_respects_the_user(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert kcompile.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert "normstyle" in kcompile.cache_dir()


@pytest.mark.slow
def test_compiled_fast_transform_matches_and_does_not_recompile_per_size(tiny_config, monkeypatch):
    import torch._dynamo
    from torch._dynamo.utils import counters
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    torch._dynamo.reset()
    counters.clear()
    net = _net(tiny_config)
    fast = FastTransform.from_net(net)
    compiled = kcompile.safe_compile(fast, name="test net", dynamic=True)
    code = _code(tiny_config)
    # Sizes of at least 128 px, as the Renderer compiles (it traces on a 128 px crop): torch
    # guards its convolution on the input's size below a few thousand pixels, so a thumbnail
    # smaller than that would compile once more (not once per size).
    with torch.inference_mode():
        for size in [(132, 100), (100, 140), (164, 124), (128, 128)]:
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x, code), net(x, code), atol=1e-4, rtol=0)
    assert compiled.failed is None
    assert counters["stats"]["unique_graphs"] == 1


# ------------------------------------------------------------ the Renderer's compile policy
def test_compile_policy_is_decided_in_one_place(monkeypatch):
    from normstyle_core.renderer import CompileMode, decide_compile
    monkeypatch.delenv("NORMSTYLE_COMPILE", raising=False)
    assert decide_compile(None, device_type="cuda") is CompileMode.NOW
    assert decide_compile(None, device_type="cpu") is CompileMode.BACKGROUND
    assert decide_compile(False, device_type="cuda") is CompileMode.EAGER
    assert decide_compile(True, device_type="cpu") is CompileMode.NOW
    monkeypatch.setenv("NORMSTYLE_COMPILE", "0")
    assert decide_compile(None, device_type="cuda") is CompileMode.EAGER
    assert decide_compile(True, device_type="cpu") is CompileMode.NOW  # an explicit --compile wins
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    assert decide_compile(None, device_type="cpu") is CompileMode.NOW


@pytest.mark.parametrize("per_picture,done,expected,cost,want", [
    (4.0, 1, 200, 160.0, True),   # a 200-photo batch at 4 s each: 199 * 4 * 0.3 = 239 s saved > 160
    (4.0, 1, 10, 160.0, False),   # 10 photos: 9 * 4 * 0.3 = 10.8 s saved, far below the compile
    (4.0, 1, 10, 10.0, True),     # the same with a 10 s (warm-cache) compile
    (4.0, 150, 1, 160.0, True),   # no announced batch, but 150 photos so far: as many again ahead
    (4.0, 100, 1, 160.0, False),  # 100 so far: 100 * 4 * 0.3 = 120 s < 160
])
def test_compile_pays_when_the_time_saved_ahead_exceeds_its_cost(per_picture, done, expected, cost, want):
    from normstyle_core.renderer import compile_pays
    assert compile_pays(seconds_per_picture=per_picture, pictures_done=done, pictures_expected=expected,
                        compile_seconds=cost) is want


def _record_compiles(monkeypatch, tmp_path) -> list:
    """torch.compile replaced by a pass-through that records each call's input shape."""
    calls = []

    def fake_compile(fn, **kwargs):
        def run(*a, **k):
            calls.append(tuple(a[0].shape))
            return fn(*a, **k)
        return run

    monkeypatch.setattr(kcompile.torch, "compile", fake_compile)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NORMSTYLE_COMPILE", raising=False)
    return calls


def test_renderer_compiles_in_the_background_then_switches(tiny_config, monkeypatch, tmp_path):
    """Background mode: renders stay eager (and correct) until the compile thread is done, then
    run compiled; the announcements name the cost and the switch; the cache is marked warm."""
    from normstyle_core import renderer as rmod
    from normstyle_core.devices import placement
    calls = _record_compiles(monkeypatch, tmp_path)
    net = _net(tiny_config)
    r = rmod.Renderer(net, place=placement("cpu", "fp32"), config=tiny_config)
    assert r.mode is rmod.CompileMode.BACKGROUND and not r.compile_cache_warm
    said = []
    r.announce = said.append
    code = _code(tiny_config)[0]
    x = torch.rand(1, 3, 36, 52)
    with torch.inference_mode():
        ref = net(x, code[None])
    r.plan_run(images=3, requested=None)
    r.begin_picture()
    torch.testing.assert_close(r.render(x, code), ref, atol=2e-5, rtol=0)
    assert calls == [] and said == []  # a cold compile does not pay for 3 tiny pictures
    monkeypatch.setattr(rmod, "COLD_COMPILE_SECONDS", 0.0)
    r.begin_picture()
    torch.testing.assert_close(r.render(x, code), ref, atol=2e-5, rtol=0)  # eager; compile starts
    assert r.wait_for_compile(timeout=60)
    assert calls == [(1, 3, 36, 52)] and "in the background (~0 s" in said[0]
    r.begin_picture()
    torch.testing.assert_close(r.render(x, code), ref, atol=2e-5, rtol=0)
    assert len(calls) == 2 and said[-1].startswith("switched to the compiled network")
    assert r.compile_cache_warm


def test_background_compile_traces_on_a_small_crop_not_the_whole_picture(tiny_config, monkeypatch, tmp_path):
    """A camera-size picture is not rendered a second time just to compile: the compile thread
    gets a crop (dynamic shapes serve every size), and the picture's own render is the eager one."""
    from normstyle_core import renderer as rmod
    from normstyle_core.devices import placement
    calls = _record_compiles(monkeypatch, tmp_path)
    monkeypatch.setattr(rmod, "COLD_COMPILE_SECONDS", 0.0)
    net = _net(tiny_config)
    r = rmod.Renderer(net, place=placement("cpu", "fp32"), config=tiny_config)
    code = _code(tiny_config)[0]
    x = torch.rand(1, 3, 301, 250)  # padded to 304 x 252 before the network
    r.begin_picture()
    with torch.inference_mode():
        ref = net(torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect"), code[None])[..., :301, :250]
    torch.testing.assert_close(r.render(x, code), ref, atol=2e-5, rtol=0)
    assert r.wait_for_compile(timeout=60)
    assert calls == [(1, 3, rmod.COMPILE_EXAMPLE_SIDE, rmod.COMPILE_EXAMPLE_SIDE)]


@pytest.mark.slow
def test_renderer_background_compile_for_real(tiny_config, monkeypatch, tmp_path):
    """The real torch.compile in the background thread, then compiled renders equal eager ones."""
    from normstyle_core import renderer as rmod
    from normstyle_core.devices import placement
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NORMSTYLE_COMPILE", raising=False)
    monkeypatch.setattr(rmod, "COLD_COMPILE_SECONDS", 0.0)
    net = _net(tiny_config)
    r = rmod.Renderer(net, place=placement("cpu", "fp32"), config=tiny_config)
    code = _code(tiny_config)[0]
    x = torch.rand(1, 3, 36, 52)
    r.begin_picture()
    r.render(x, code)
    assert r.wait_for_compile(timeout=900) and r.compile_failed is None
    with torch.inference_mode():
        assert r.render(torch.rand(1, 3, 44, 60), code).shape == (1, 3, 44, 60)
        y = torch.rand(1, 3, 64, 40)
        torch.testing.assert_close(r.render(y, code), net(y, code[None]), atol=1e-4, rtol=0)
    assert r._switched
