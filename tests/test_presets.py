"""The named recipes (normstyle_core/presets.py): each builds a model that renders and a train
config; `shipped` is the recipe of the model that ships; tools/train_shipped.py trains with it."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from normstyle_core import ConfigError
from normstyle_core.config import LossConfig, ModelConfig, TrainConfig, config_to_dict
from normstyle_core.models import StyleTransferModel
from normstyle_core.presets import DEFAULT_PRESET, get_preset, preset_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_builds_a_model_that_renders_and_a_train_config(name, tmp_path):
    preset = get_preset(name)
    torch.manual_seed(0)
    model = StyleTransferModel(preset.model).eval()
    with torch.no_grad():
        code = model.encode_style(torch.rand(1, 3, preset.model.style_size, preset.model.style_size))
        out = model.transform(torch.rand(1, 3, 32, 32), code)
    assert code.shape == (1, preset.model.code_rows, 2 * preset.model.num_cin)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    cfg = preset.train_config(content=("c",), styles=("s",), out_dir=str(tmp_path))
    assert isinstance(cfg, TrainConfig) and cfg.content == ("c",) and cfg.out_dir == str(tmp_path)
    assert preset.loss == LossConfig.preset(cfg.loss_preset)  # the train config names the loss it has


def test_paper_is_the_papers_recipe_and_shipped_the_default():
    paper = get_preset("paper")
    assert paper.model == ModelConfig() and paper.model.style_encoder == "paper"
    assert paper.model.widths == (32, 64, 128) and paper.loss == LossConfig.preset("paper")
    assert paper.train.steps == 40_000 and paper.train.image_size == 256
    assert DEFAULT_PRESET == "shipped" and set(preset_names()) >= {"paper", "shipped"}


def test_shipped_is_the_recipe_of_the_model_that_ships():
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.stylize import default_model_path
    data = read_checkpoint(default_model_path())
    shipped = get_preset("shipped")
    assert data["model_config"] == config_to_dict(shipped.model)
    assert data["loss_config"] == config_to_dict(shipped.loss)


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset 'shiped'; choose from shipped, paper"):
        get_preset("shiped")


def _train_shipped(argv: list[str], monkeypatch):
    spec = importlib.util.spec_from_file_location("train_shipped", ROOT / "tools" / "train_shipped.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["train_shipped.py", *argv])
    return module.configs(module.parse_args(), styles=[Path("s.jpg")])


def test_train_shipped_trains_the_preset_and_its_flags_override_it(monkeypatch):
    train, model, loss = _train_shipped(["--out", "run"], monkeypatch)
    shipped = get_preset("shipped")
    assert model == shipped.model and loss == shipped.loss
    want = shipped.train_config(content=(str(Path("../shared/data/train/content")),), styles=("s.jpg",),
                                out_dir="run")
    assert train == want
    train, model, loss = _train_shipped(["--out", "run", "--batch-size", "2", "--lr", "3e-4", "--content-weight",
                                         "12", "--encoder-activation", "relu", "--style-variants", "2"], monkeypatch)
    assert (train.batch_size, train.styles_per_step, train.lr, train.style_variants) == (2, 2, 3e-4, 2)
    assert model == dataclasses.replace(shipped.model, encoder_activation="relu")
    assert loss == dataclasses.replace(shipped.loss, content_weight=12.0)
