"""Compile failures at any stage fall back to the eager network with one warning (issue #37):
the cache folder, torch.compile itself, the first compiled call. Never a failed photo."""
from __future__ import annotations

import logging

import pytest
import torch

from normstyle_core.kernels import compile as kcompile


def double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@pytest.fixture(autouse=True)
def compile_on(monkeypatch):
    monkeypatch.setenv("NORMSTYLE_COMPILE", "1")
    kcompile.setup_compile_cache.cache_clear()
    yield
    kcompile.setup_compile_cache.cache_clear()


def boom(*_a, **_k):
    raise RuntimeError("no C compiler\nsecond line")


@pytest.mark.parametrize("stage", ["cache folder", "torch.compile", "first call"])
def test_every_stage_falls_back_with_one_warning(monkeypatch, caplog, stage):
    if stage == "cache folder":
        monkeypatch.setattr(kcompile, "cache_dir", boom)
    elif stage == "torch.compile":
        monkeypatch.setattr(torch, "compile", boom)
    else:
        monkeypatch.setattr(torch, "compile", lambda fn, **_k: boom)
    safe = kcompile.safe_compile(double, name="test network")
    x = torch.arange(4.0)
    with caplog.at_level(logging.WARNING, logger=kcompile.log.name):
        for _ in range(3):
            assert torch.equal(safe(x), x * 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "eager" in warnings[0].getMessage()
    assert safe.failed is not None and "\n" not in safe.failed
    assert not safe.active


def test_an_input_error_is_not_a_compile_error(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **_k: boom)
    safe = kcompile.safe_compile(double, name="test network")
    with pytest.raises(TypeError):
        safe("not a tensor", "extra")  # the eager call raises the caller's own error
