"""`normstyle info`: model, device, precision, versions and paths, for bug reports.

Without torch where it can (issue #39): the model's facts come from the JSON beside the weights
(normstyle_core/model_summary.py) and torch's version from the package metadata; the device is
probed (torch imported) with --devices, --device or --precision, or when the model has no
summary and torch is loaded anyway to read it.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import click

from .common import EXIT_ERROR, cache_home, data_home, error_line, model_options


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _torch_version() -> str:
    """torch.__version__ without importing torch: the package's metadata drops the build tag
    (``+cu130``) a bug report needs, so it is read from torch/version.py, as torch itself does."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.__version__
    import importlib.util
    import re
    try:
        spec = importlib.util.find_spec("torch")
        if spec is not None and spec.origin:
            text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
            if found:
                return found.group(1)
    except (OSError, ImportError, ValueError):
        pass
    return _version("torch")


def _torch_hub_dir() -> str:
    """torch.hub.get_dir() without importing torch (the same rule: $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub); torch's own answer when it is loaded."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.hub.get_dir())
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return os.path.join(os.path.expanduser(home), "hub")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--devices", "probe", is_flag=True,
              help="Also find the device, precision, CUDA devices and compile cache (imports torch: ~2 s "
                   "more on a 2-core CPU); implied by --device or --precision.")
@model_options
def info(as_json, probe, model_path, device, precision):
    """Model, versions and paths; --devices adds device, precision and CUDA."""
    from normstyle_core import __version__
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    from normstyle_core.model_summary import read_summary

    out: dict = {"normstyle": __version__}
    from normstyle_core.environment import model_path as chosen_model
    path = model_path if model_path is not None else (chosen_model() or SHIPPED_MODEL)
    out["model"] = {"path": str(path)}
    # The model's facts come from the JSON beside the weights when it still describes that file
    # (normstyle_core/model_summary.py): no torch, so `info` answers in a fraction of a second
    # (issue #39). Finding the device needs torch, so it is done when asked for, or when torch
    # is loaded anyway to read a model that has no summary.
    summary = read_summary(path) if path.is_file() else None
    probe = probe or device != "auto" or precision != "auto" or summary is None
    place = None
    if probe:
        from normstyle_core import NormstyleError
        from normstyle_core.devices import placement
        try:
            place = placement(device, precision)
            out["device"] = str(place.device)
            out["precision"] = str(place.dtype).replace("torch.", "")
        except NormstyleError as exc:
            out["device"] = f"unavailable: {exc}"
            out["precision"] = None
    else:
        out["device"] = "not probed (`normstyle info --devices` finds it: imports torch, ~2 s)"
    if summary is not None:
        out["model"].update(summary)
    else:
        from normstyle_core import NormstyleError
        try:
            from normstyle_core.model_summary import summarize

            from .common import load_stylizer
            stylizer = load_stylizer(path, "cpu", "fp32")
            out["model"].update(summarize(stylizer))
        except NormstyleError as exc:
            out["model"]["error"] = str(exc)
    if place is not None and "error" not in out["model"]:
        from normstyle_core.kernels.compile import cache_dir, cache_is_warm, compile_setting
        from normstyle_core.renderer import COLD_COMPILE_SECONDS, compile_key, decide_compile
        # the compile key needs only the network's shape, which the model facts above carry
        shape = SimpleNamespace(widths=out["model"]["widths"], num_residual=out["model"]["residual_blocks"])
        warm = cache_is_warm(compile_key(shape, place))
        out["compile"] = {"setting": str(compile_setting()),
                          "policy": decide_compile(None, device_type=place.device.type).value,
                          "cache": cache_dir(),
                          "this model compiled before": "yes" if warm else
                          f"no (the first compile takes ~{COLD_COMPILE_SECONDS:.0f} s on a 2-core CPU)"}
    out["versions"] = {"python": platform.python_version(), "torch": _torch_version(),
                       "pillow": _version("pillow"), "click": _version("click"), "rich": _version("rich"),
                       "numpy": _version("numpy")}
    if place is not None:
        torch = sys.modules["torch"]  # placement() loaded it
        out["cuda"] = {"available": torch.cuda.is_available(),
                       "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    from normstyle_core import environment
    out["paths"] = {"data (user styles)": str(data_home() / "styles"), "cache": str(cache_home()),
                    "torch hub cache (VGG weights)": _torch_hub_dir(),
                    "NORMSTYLE_MODEL": environment.raw("NORMSTYLE_MODEL"),
                    "NORMSTYLE_HOME": environment.raw("NORMSTYLE_HOME"), "executable": sys.executable}
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
