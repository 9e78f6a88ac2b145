"""The weights' moving average: its arithmetic, its place in training, checkpoints and loading."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from normstyle_core import ConfigError
from normstyle_core.checkpoint import export_model, load_model, read_checkpoint
from normstyle_core.ema import WeightEMA
from normstyle_core.training import Trainer, latest_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_model_config, tiny_train_config  # noqa: E402


def _reference_average(snapshots: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """The average written out by hand in float64: start at the first snapshot, then for the
    n-th later one (n = 0, 1, ...) avg = d*avg + (1-d)*w with d = min(decay, (1+n)/(10+n))."""
    avg = {k: v.double().clone() for k, v in snapshots[0].items()}
    for n, snap in enumerate(snapshots[1:]):
        d = min(decay, (1 + n) / (10 + n))
        avg = {k: d * avg[k] + (1 - d) * snap[k].double() for k in avg}
    return avg


def test_average_matches_a_hand_computation_and_skips_frozen_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)  # frozen: kept as live, not averaged
    ema = WeightEMA(model, decay=0.9)
    snapshots = [{k: v.clone() for k, v in model.state_dict().items()}]
    for _ in range(120):  # the ramp (1+n)/(10+n) reaches 0.9 at n = 80: both regimes are checked
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.add_(1.0)  # float buffers are averaged too
            model[1].running_var.mul_(1.1)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update(model)
    want = _reference_average(snapshots, 0.9)
    got = ema.averaged_state(model)
    assert "2.weight" not in ema.names and "1.num_batches_tracked" not in ema.names
    torch.testing.assert_close(got["2.weight"], model[2].weight.detach())
    for name in ema.names:
        torch.testing.assert_close(got[name].double(), want[name], rtol=1e-6, atol=1e-6, msg=name)
        assert not torch.allclose(got[name], model.state_dict()[name])  # it really lags the live weights


def test_decay_ramps_then_holds():
    ema = WeightEMA(nn.Linear(2, 2), decay=0.999)
    decays = []
    for _ in range(10_000):  # (1+n)/(10+n) passes 0.999 at n = 8991
        decays.append(ema.current_decay())
        ema.updates += 1
    assert decays[0] == pytest.approx(0.1) and decays[8] == pytest.approx(0.5)
    assert decays[-1] == 0.999 and decays == sorted(decays)


def test_training_updates_the_average_once_per_step(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=3, ema_decay=0.5)
    trainer = Trainer(cfg, model_config=tiny_model_config())
    trainer.load_styles()
    snapshots = [{k: v.clone() for k, v in trainer.model.state_dict().items()}]
    content = torch.rand(2, 3, 32, 32)
    for _ in range(3):
        trainer.train_step(content, [0])
        snapshots.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
    want = _reference_average(snapshots, 0.5)
    got = trainer.ema.averaged_state(trainer.model)
    for name in trainer.ema.names:
        torch.testing.assert_close(got[name].double(), want[name], rtol=1e-5, atol=1e-6, msg=name)


def test_checkpoints_render_with_the_average_and_resume_continues_it(tmp_path):
    """3 steps + resume to 6 == 6 steps, average included; loading and export use the average."""
    full = Trainer(tiny_train_config(tmp_path / "a", steps=6), model_config=tiny_model_config())
    full.fit()
    Trainer(tiny_train_config(tmp_path / "b", steps=3), model_config=tiny_model_config()).fit()
    second = Trainer(tiny_train_config(tmp_path / "b", steps=6), model_config=tiny_model_config())
    second.fit()
    a = read_checkpoint(latest_checkpoint(tmp_path / "a" / "run"))
    b = read_checkpoint(latest_checkpoint(tmp_path / "b" / "run"))
    assert a["ema_updates"] == b["ema_updates"] == 6
    for name, want in a["ema_state"].items():
        torch.testing.assert_close(b["ema_state"][name], want, atol=1e-6, rtol=1e-5, msg=name)
    assert any(not torch.equal(b["ema_state"][k], b["model_state"][k]) for k in b["model_state"])
    model, _ = load_model(latest_checkpoint(tmp_path / "b" / "run"))
    for name, want in b["ema_state"].items():
        assert torch.equal(model.state_dict()[name], want), name
    exported = tmp_path / "exported.pt"
    export_model(latest_checkpoint(tmp_path / "b" / "run"), exported, half=False)
    shipped = read_checkpoint(exported)
    assert "ema_state" not in shipped
    for name, want in b["ema_state"].items():
        assert torch.equal(shipped["model_state"][name], want), name


def test_off_keeps_no_average_and_loads_the_live_weights(tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path, steps=2, ema_decay=0.0), model_config=tiny_model_config())
    ckpt = trainer.fit()
    data = read_checkpoint(ckpt)
    assert trainer.ema is None and "ema_state" not in data
    model, _ = load_model(ckpt)
    for name, want in data["model_state"].items():
        assert torch.equal(model.state_dict()[name], want), name


def test_resuming_a_checkpoint_without_an_average_starts_one_at_its_weights(tmp_path):
    cfg = tiny_train_config(tmp_path, steps=2, ema_decay=0.0)
    Trainer(cfg, model_config=tiny_model_config()).fit()
    trainer = Trainer(dataclasses.replace(cfg, steps=2, ema_decay=0.999), model_config=tiny_model_config())
    trainer.resume(latest_checkpoint(Path(cfg.out_dir)))
    for name, want in trainer.ema.averaged_state(trainer.model).items():
        assert torch.equal(want, trainer.model.state_dict()[name].cpu()), name


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_decay_outside_0_1_is_refused(tmp_path, decay):
    with pytest.raises(ConfigError, match="ema_decay"):
        tiny_train_config(tmp_path, ema_decay=decay)
