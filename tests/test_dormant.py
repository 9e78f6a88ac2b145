"""Dormant Normalization Network units: found, revived without changing the output, and the
encoder activation of old checkpoints is kept."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from normstyle_core import ConfigError, ModelConfig
from normstyle_core.checkpoint import load_model
from normstyle_core.config import config_to_dict, saved_model_config
from normstyle_core.models import NormalizationNet, StyleTransferModel
from normstyle_core.models.dormant import dormant_units, revive_dormant_units

CFG = ModelConfig(widths=(4, 8, 8), num_residual=0, norm_hidden=16, style_size=64, encoder_activation="relu")


def _encoder_with_dead_units() -> NormalizationNet:
    torch.manual_seed(0)
    enc = NormalizationNet(CFG)
    with torch.no_grad():
        enc.convs[1].bias[:3] = -1e3  # conv2 channels 0-2 can never fire
        enc.fc1.bias[5:9] = -1e3  # hidden units 5-8 neither
    return enc


def _manual_preactivations(enc: NormalizationNet, styles: torch.Tensor) -> dict[str, torch.Tensor]:
    """The encoder's forward written out by hand (independent of the hooks under test)."""
    x = styles * 2 - 1
    a0 = enc.convs[0](x)
    a1 = enc.convs[1](F.relu(a0))
    h = enc.fc1(enc.convs[2](F.relu(a1)).flatten(2))
    return {"convs.0": a0.amax((0, 2, 3)) <= 0, "convs.1": a1.amax((0, 2, 3)) <= 0, "fc1": h.amax((0, 1)) <= 0}


def test_dormant_units_match_a_hand_written_forward():
    enc = _encoder_with_dead_units()
    styles = torch.rand(5, 3, 64, 64)
    found = dormant_units(enc, styles)
    expected = _manual_preactivations(enc, styles)
    assert found.keys() == expected.keys()
    for name in found:
        assert torch.equal(found[name], expected[name]), name
    assert found["convs.1"][:3].all() and found["fc1"][5:9].all()


def test_revival_keeps_the_output_and_the_units_learn_again():
    enc = _encoder_with_dead_units()
    styles = torch.rand(5, 3, 64, 64)
    before = enc(styles).detach()
    dormant = dormant_units(enc, styles)
    revived = revive_dormant_units(enc, dormant)
    assert revived == sum(int(m.sum()) for m in dormant.values()) >= 7
    torch.testing.assert_close(enc(styles), before, rtol=0, atol=1e-5)  # ReLU kept: same function
    after = dormant_units(enc, styles)
    assert not after["convs.1"][:3].all() and not after["fc1"][5:9].all()  # fresh weights fire
    enc(styles).pow(2).sum().backward()
    assert enc.fc2.weight.grad[:, 5:9].abs().sum() > 0  # their outgoing weights get a gradient


def test_fields_added_later_load_as_old_checkpoints_were_trained(tmp_path, monkeypatch):
    """A field missing from a saved config takes the value the old run used, not today's default
    (simulated: a default that differs from the recorded legacy value)."""
    from normstyle_core import config as config_module
    monkeypatch.setitem(config_module.MODEL_FIELDS_ADDED_LATER, "encoder_activation", "leaky_relu")
    old_dict = config_to_dict(CFG)
    del old_dict["encoder_activation"]  # as written before the field existed
    assert ModelConfig().encoder_activation == "relu"
    assert saved_model_config(old_dict).encoder_activation == "leaky_relu"
    assert saved_model_config(config_to_dict(CFG)).encoder_activation == "relu"  # a saved value wins
    path = tmp_path / "old.pt"
    torch.save({"format": "normstyle-checkpoint", "version": 1, "model_config": old_dict,
                "model_state": StyleTransferModel(CFG).state_dict()}, path)
    loaded, _ = load_model(path)
    assert loaded.normalization.config.encoder_activation == "leaky_relu"
    with pytest.raises(ConfigError):
        dataclasses.replace(CFG, encoder_activation="gelu")


def test_leaky_encoder_passes_negative_preactivations():
    torch.manual_seed(0)
    relu = NormalizationNet(CFG)
    leaky = NormalizationNet(dataclasses.replace(CFG, encoder_activation="leaky_relu"))
    leaky.load_state_dict(relu.state_dict())
    styles = torch.rand(2, 3, 64, 64)
    x = leaky.convs[0](styles * 2 - 1)
    x = leaky.convs[1](torch.where(x > 0, x, 0.2 * x))
    x = leaky.convs[2](torch.where(x > 0, x, 0.2 * x)).flatten(2)
    h = leaky.fc1(x)
    torch.testing.assert_close(leaky(styles), leaky.fc2(torch.where(h > 0, h, 0.2 * h)))
    assert not torch.allclose(leaky(styles), relu(styles))


def test_revive_run_tool_revives_a_real_run_and_it_resumes(tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    from normstyle_core.checkpoint import atomic_torch_save, read_checkpoint
    from normstyle_core.training import Trainer
    from train_helpers import tiny_model_config, tiny_train_config

    cfg = tiny_train_config(tmp_path, steps=2)
    model_cfg = dataclasses.replace(tiny_model_config("paper"), encoder_activation="relu")
    Trainer(cfg, model_config=model_cfg).fit()
    ckpt = Path(cfg.out_dir) / "ckpt_0000002.pt"
    data = read_checkpoint(ckpt)
    data["model_state"]["normalization.convs.1.bias"][:4] = -1e3  # four channels that cannot fire
    data["ema_state"] = dict(data["model_state"])  # the weight average too, so `before` has them
    atomic_torch_save(data, ckpt)
    before, _ = load_model(ckpt)

    tool = Path(__file__).resolve().parents[1] / "tools" / "revive_run.py"
    done = subprocess.run([sys.executable, str(tool), "--run", cfg.out_dir, "--styles", cfg.styles[0]],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    dead = int(re.search(r"convs\.1: (\d+) of 16 units dormant", done.stdout).group(1))
    assert dead >= 4, done.stdout
    assert (Path(cfg.out_dir) / "pre_revive_ckpt_0000002.pt").is_file()
    after, revived = load_model(ckpt)
    assert "ema_state" not in revived  # the average of the old units is dropped; resume restarts it
    styles = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(after.normalization(styles), before.normalization(styles), rtol=0, atol=1e-4)
    assert (after.normalization.convs[1].bias[:4] > -10).all()
    # The revived slots got the layer's mean second moment instead of ~0.
    names = [n for n, p in after.named_parameters() if p.requires_grad]
    v = revived["optimizer"]["state"][names.index("normalization.convs.1.bias")]["exp_avg_sq"]
    assert torch.allclose(v[:4], v[4:].mean().expand(4))
    trainer = Trainer(dataclasses.replace(cfg, steps=3), model_config=model_cfg)
    trainer.fit()
    assert trainer.step == 3


@pytest.mark.parametrize("encoder", ["paper", "vgg"])
def test_training_revives_dead_units_on_schedule(tmp_path, encoder):
    from normstyle_core.training import Trainer
    from train_helpers import tiny_model_config, tiny_train_config

    trainer = Trainer(tiny_train_config(tmp_path, steps=2, revive_every=2),
                      model_config=dataclasses.replace(tiny_model_config(encoder), encoder_activation="relu"))
    with torch.no_grad():
        trainer.model.normalization.fc1.bias[:5] = -1e4  # five hidden units that cannot fire
    trainer.fit()
    assert (trainer.model.normalization.fc1.bias[:5] > -100).all()
    trainer.load_styles()
    inputs, cached = trainer.style_input(list(range(len(trainer.styles))))
    norm = trainer.model.normalization
    after = dormant_units(norm, inputs, forward=norm.head if cached else None)
    assert not after["fc1"][:5].all()


def test_training_leaves_a_leaky_encoder_alone(tmp_path):
    from normstyle_core.training import Trainer
    from train_helpers import tiny_model_config, tiny_train_config

    trainer = Trainer(tiny_train_config(tmp_path, steps=1, revive_every=1),
                      model_config=dataclasses.replace(tiny_model_config("paper"), encoder_activation="leaky_relu"))
    with torch.no_grad():
        trainer.model.normalization.fc1.bias[:5] = -1e4  # negative, but leaky units still learn
    trainer.fit()
    assert (trainer.model.normalization.fc1.bias[:5] < -1e4 + 1).all()
