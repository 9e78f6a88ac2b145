"""`normstyle info`: model, device, precision, versions and paths, for bug reports."""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import click

from .common import EXIT_ERROR, cache_home, data_home, error_line, model_options


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@model_options
def info(as_json, model_path, device, precision):
    """Model, device, precision, versions and paths."""
    import torch

    from normstyle_core import NormstyleError, __version__, default_model_path
    from normstyle_core.devices import placement

    out: dict = {"normstyle": __version__}
    path = model_path if model_path is not None else default_model_path()
    out["model"] = {"path": str(path)}
    try:
        place = placement(device, precision)
        out["device"] = str(place.device)
        out["precision"] = str(place.dtype).replace("torch.", "")
    except NormstyleError as exc:
        out["device"] = f"unavailable: {exc}"
        out["precision"] = None
    try:
        from .common import load_stylizer
        stylizer = load_stylizer(path, "cpu", "fp32")
        cfg = stylizer.config
        out["model"].update({
            "step": stylizer.info.get("step"), "vgg_weights": stylizer.info.get("vgg_weights"),
            "widths": list(cfg.widths), "residual_blocks": cfg.num_residual,
            "style_encoder": cfg.style_encoder, "code_shape": [cfg.code_rows, 2 * cfg.num_cin],
            "parameters": sum(p.numel() for p in stylizer.model.parameters()),
            "built_in_styles": sorted(stylizer.style_bank),
        })
        for note in stylizer.info.get("code_calibration") or []:  # tools/calibrate_code_bias.py
            out["model"].setdefault("code_calibration", []).append(
                f"mean refine correction of {note.get('paintings')} unseen paintings x {note.get('scale')}")
        if out["precision"] is not None:
            from normstyle_core.kernels.compile import cache_dir, cache_is_warm, compile_setting
            from normstyle_core.renderer import COLD_COMPILE_SECONDS, compile_key, decide_compile
            warm = cache_is_warm(compile_key(cfg, place))
            out["compile"] = {"setting": str(compile_setting()),
                              "policy": decide_compile(None, device_type=place.device.type).value,
                              "cache": cache_dir(),
                              "this model compiled before": "yes" if warm else
                              f"no (the first compile takes ~{COLD_COMPILE_SECONDS:.0f} s on a 2-core CPU)"}
    except NormstyleError as exc:
        out["model"]["error"] = str(exc)
    out["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                       "pillow": _version("pillow"), "click": _version("click"), "rich": _version("rich"),
                       "numpy": _version("numpy")}
    out["cuda"] = {"available": torch.cuda.is_available(),
                   "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    out["paths"] = {"data (user styles)": str(data_home() / "styles"), "cache": str(cache_home()),
                    "torch hub cache (VGG weights)": str(torch.hub.get_dir()),
                    "NORMSTYLE_MODEL": os.environ.get("NORMSTYLE_MODEL"),
                    "NORMSTYLE_HOME": os.environ.get("NORMSTYLE_HOME"), "executable": sys.executable}
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        _print_tree(out)
    if "error" in out["model"]:
        # the report is still printed (it is what a bug report needs), but a script that runs
        # `normstyle info --model FILE` to check FILE must see the refusal in the exit status
        error_line(f"Error: {out['model']['error']}")
        raise click.exceptions.Exit(EXIT_ERROR)


def _print_tree(data: dict, indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{pad}{key}:")
            _print_tree(value, indent + 1)
        elif isinstance(value, list):
            click.echo(f"{pad}{key}: {', '.join(map(str, value)) or '-'}")
        else:
            click.echo(f"{pad}{key}: {'-' if value is None else value}")
