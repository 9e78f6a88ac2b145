"""The configs `normstyle train` runs with, layered lowest first: a new run's preset (shipped
unless --preset says otherwise) or a resumed run's own config.json; an --init-from file's model
and loss; a TOML file; the flags. Every value is type-checked against its dataclass field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import click

# Keys of a TOML file's top level that belong to the model config rather than the training one.
MODEL_SHORTCUTS = ("widths", "init_scale", "style_encoder", "num_residual", "norm_hidden", "colour_prior",
                   "encoder_activation")


def _config_error(message: str):
    from normstyle_core import ConfigError
    return ConfigError(message)


def _coerce(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check keys and value types of ``data`` against dataclass ``cls``; lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in fields:
            raise _config_error(f"{where}: unknown key {raw_key!r} (known: {', '.join(sorted(fields))})")
        default = fields[key].default
        if isinstance(value, list):
            value = tuple(value)
        ok = True
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, tuple)
        if not ok:
            raise _config_error(f"{where}: {raw_key} = {value!r} has the wrong type "
                                f"(expected {type(default).__name__})")
        out[key] = value
    return out


def read_toml(path: Path) -> tuple[dict, dict, dict, str | None]:
    """(train, model, loss) overrides and the preset named in a TOML file; relative data paths
    are taken relative to the file's folder."""
    import tomllib

    from normstyle_core.config import LossConfig, ModelConfig, TrainConfig
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _config_error(f"{path}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _config_error(f"{path}: cannot read ({exc})") from None
    model = dict(data.pop("model", {}) or {})
    loss = dict(data.pop("loss", {}) or {})
    recipe = data.pop("preset", None)
    if recipe is not None and not isinstance(recipe, str):
        raise _config_error(f"{path}: preset = {recipe!r} has the wrong type (expected str)")
    for key in list(data):
        if key.replace("-", "_") in MODEL_SHORTCUTS:
            model[key] = data.pop(key)
    preset = loss.pop("preset", None)
    if preset is not None:
        data["loss_preset"] = preset
    for key in ("content", "styles"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
        if isinstance(data.get(key), list):
            data[key] = [str((path.parent / Path(p).expanduser()).resolve()) for p in data[key]]
    if isinstance(data.get("out_dir"), str):
        data["out_dir"] = str(path.parent / Path(data["out_dir"]).expanduser())
    return (_coerce(TrainConfig, data, str(path)), _coerce(ModelConfig, model, f"{path} [model]"),
            _coerce(LossConfig, loss, f"{path} [loss]"), recipe)


def _init_source(name: str) -> tuple[str, dict, dict | None]:
    """Path, model config and loss config of an --init-from file; 'default' is the model that
    ships in the package."""
    from normstyle_core.checkpoint import read_checkpoint
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER
    from normstyle_core.stylize import default_model_path
    path = default_model_path() if name == "default" else Path(name).expanduser().resolve()
    data = read_checkpoint(path)
    return str(path), {**MODEL_FIELDS_ADDED_LATER, **data["model_config"]}, data.get("loss_config")


# TrainConfig fields a run's command line and data give, never a preset.
RUN_FIELDS = ("content", "styles", "out_dir")


def recipe_layers(name: str) -> tuple[dict, dict, dict]:
    """The train, model and loss values of preset ``name``, as the lowest layer of a new run."""
    from normstyle_core.config import config_to_dict
    from normstyle_core.presets import get_preset
    recipe = get_preset(name)
    train = {k: v for k, v in config_to_dict(recipe.train).items() if k not in RUN_FIELDS}
    return train, config_to_dict(recipe.model), config_to_dict(recipe.loss)


@dataclasses.dataclass(frozen=True)
class RunConfigs:
    """What `normstyle train` runs with: the three configs, and the preset a new run started
    from (None: a resumed run, which keeps the configs stored in its folder)."""

    train: Any
    model: Any
    loss: Any
    preset: str | None


def build_configs(*, out_dir: Path | None, config_file: Path | None, resume: bool, preset: str | None,
                  content, styles, train_flags: dict, model_flags: dict, loss_flags: dict) -> RunConfigs:
    """Layers, lowest first: a new run's preset, or a resumed run's stored config.json; an
    --init-from file's model and loss; the TOML file; the flags."""
    from normstyle_core import ConfigError, LossConfig, ModelConfig
    from normstyle_core.config import MODEL_FIELDS_ADDED_LATER, TrainConfig, config_from_dict
    from normstyle_core.model_files import CKPT_GLOB
    from normstyle_core.presets import DEFAULT_PRESET
    from normstyle_core.run_folder import check_run_folder

    train: dict[str, Any] = {}
    model: dict[str, Any] = {}
    toml = ({}, {}, {}, None) if config_file is None else read_toml(config_file)
    if out_dir is None and "out_dir" in toml[0]:
        out_dir = Path(toml[0]["out_dir"])
    if out_dir is None:
        raise click.UsageError("give the run folder with --out RUN_DIR (or out_dir in --config)")
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="--out")

    # Before its config.json is read: a user's own config.json there is not a run's settings.
    # Any other file refuses it too: a new run starts in a new or empty folder (the Trainer is
    # laxer, for tools that put their own files in a new run folder first).
    check_run_folder(out_dir)
    previous = out_dir / "config.json"
    has_ckpt = out_dir.is_dir() and any(out_dir.glob(CKPT_GLOB))
    if has_ckpt and not resume:
        raise ConfigError(f"{out_dir} already holds checkpoints; --no-resume would mix two runs there: "
                          "choose a new --out folder (or delete its ckpt_*.pt files)")
    prior_loss = None
    recipe = None
    if resume and previous.is_file():
        try:
            saved = json.loads(previous.read_text())
            train.update(saved.get("train", {}))
            model.update({**MODEL_FIELDS_ADDED_LATER, **saved.get("model", {})})
            prior_loss = saved.get("loss")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{previous}: unreadable run config ({exc}); "
                              "start a new --out folder or remove it") from None
    else:  # a new run: the preset's recipe is the base every option below overrides
        recipe = preset or toml[3] or DEFAULT_PRESET
        recipe_train, recipe_model, recipe_loss = recipe_layers(recipe)
        train.update(recipe_train)
        model.update(recipe_model)

    train.update(toml[0])
    init_from = train_flags.get("init_from") or toml[0].get("init_from")
    if init_from and not has_ckpt:
        # A new run from trained weights: the file says which architecture and loss it was
        # trained with, so `--init-from default` needs no model or loss options.
        init_path, init_model, init_loss = _init_source(init_from)
        train_flags = {**train_flags, "init_from": init_path}
        model.update(init_model)
        if init_loss is not None and prior_loss is None:
            prior_loss = init_loss
    if recipe is not None and prior_loss is None:
        prior_loss = recipe_loss
    model.update(toml[1])
    given = {**toml[0], **{k: v for k, v in train_flags.items() if v is not None}}
    train.update(given)
    model.update({k: v for k, v in model_flags.items() if v is not None})
    if recipe is not None and "styles_per_step" not in given and train["batch_size"] % train["styles_per_step"]:
        # The preset's styles per step with a smaller or odd --batch-size: as many as divide it.
        train["styles_per_step"] = math.gcd(train["batch_size"], train["styles_per_step"])
    if content:
        train["content"] = [str(Path(p).expanduser().resolve()) for p in content]
    if styles:
        train["styles"] = [str(Path(p).expanduser().resolve()) for p in styles]
    train["out_dir"] = str(out_dir)
    if "style_size" in train_flags and train_flags["style_size"] is not None:
        model["style_size"] = train_flags["style_size"]  # one flag: held style size = encoder input
    if not train.get("content"):
        raise click.UsageError("no content images: give CONTENT folders/files")
    if not train.get("styles"):
        raise click.UsageError("no style images: give --style PATH (folders or files)")

    try:
        train_cfg = TrainConfig(**_coerce(TrainConfig, train, "training options"))
        model_cfg = config_from_dict(ModelConfig, _coerce(ModelConfig, model, "model options"))
        preset_given = "loss_preset" in toml[0] or train_flags.get("loss_preset") is not None
        if prior_loss is not None and not preset_given:
            loss_cfg = config_from_dict(LossConfig, _coerce(LossConfig, prior_loss, str(previous)))
        else:
            loss_cfg = LossConfig.preset(train_cfg.loss_preset)
        overrides = {**toml[2], **{k: v for k, v in loss_flags.items() if v is not None}}
        if overrides:
            loss_cfg = dataclasses.replace(loss_cfg, **overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid training configuration: {exc}") from None
    return RunConfigs(train=train_cfg, model=model_cfg, loss=loss_cfg, preset=recipe)
