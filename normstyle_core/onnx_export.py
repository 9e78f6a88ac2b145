"""A model's networks as ONNX graphs, for the torch-free engine (:mod:`normstyle_core.onnx_engine`).

The graphs are *exported from* the torch code, never written a second time: the paint graph is
:class:`~normstyle_core.kernels.fast_net.FastTransform` (float32) followed by the guided
upsampling's own functions (:func:`~normstyle_core.stroke_scale.guided_coefficients`,
:func:`~normstyle_core.stroke_scale.apply_guided`) and the strength's fade
(:func:`~normstyle_core.fade.mix_linear`, a graph of its own); the encode graph is the model's Normalization Network.
What the engine does around them (resizing, padding) is the render plan's
(:mod:`normstyle_core.render_plan`). tests/test_onnx_engine.py checks the engine's pictures
against the torch Stylizer's.

Files written beside the model (``default.pt`` -> ``default.paint.onnx``, ``default.fade.onnx``,
``default.encode.onnx``, ``default.codes.npz``, ``default.onnx.json``); the JSON names the model file's SHA-256, and the
engine uses the graphs only while it matches (a retrained model falls back to torch)::

    python tools/export_onnx.py normstyle_core/assets/default.pt
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .atomic import write_atomically, write_bytes_atomically
from .fade import FADE_SPACE, mix_linear
from .kernels.fast_net import FastTransform
from .model_summary import file_digest
from .onnx_engine import MANIFEST_FORMAT, MANIFEST_VERSION, onnx_files
from .stroke_scale import apply_guided, guided_coefficients, luminance

OPSET = 18


class PaintGraph(nn.Module):
    """(photo (1, 3, H, W), content (1, 3, h, w), padded content, code (rows, 2n)) ->
    (the painting at the photo's size, the network's render at the working size).

    ``content`` is the photo at the working size, ``padded`` the same padded for the network
    (:func:`~normstyle_core.render_plan.network_padding`)."""

    def __init__(self, fast: FastTransform) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, photo: Tensor, content: Tensor, padded: Tensor, code: Tensor):
        h, w = content.shape[-2], content.shape[-1]
        render = self.fast(padded, code[None])[..., :h, :w]
        a, base = guided_coefficients(luminance(content), render)
        maps = torch.nn.functional.interpolate(torch.cat([a, base], 1), size=photo.shape[-2:], mode="bilinear",
                                               align_corners=False)
        return apply_guided(maps[:, :3], maps[:, 3:], luminance(photo)), render


class FadeGraph(nn.Module):
    """(photo, painting (1, 3, H, W), mix ()) -> the strength's fade, ``mix`` of the painting
    (:func:`~normstyle_core.render_plan.fade_weight`). Its own graph: at full strength (the
    default) its power functions would be a sixth of the paint graph's time for nothing."""

    def forward(self, photo: Tensor, painting: Tensor, mix: Tensor) -> Tensor:
        return mix_linear(photo, painting, mix)


class EncodeGraph(nn.Module):
    """A style image (1, 3, H, W) in [0, 1] -> its code (rows, 2n): the resize to the encoder's
    size is in the graph, since the colour prior reads the whole image's statistics."""

    def __init__(self, normalization: nn.Module) -> None:
        super().__init__()
        self.normalization = normalization

    def forward(self, style: Tensor) -> Tensor:
        return self.normalization(style)[0]


def export_onnx(model_path: Path) -> dict:
    """Write the ONNX graphs, the built-in codes and the manifest beside ``model_path``."""
    from .stylize import Stylizer
    if FADE_SPACE != "linear":
        raise ValueError(f"the paint graph fades in linear light; FADE_SPACE is {FADE_SPACE!r}")
    model_path = Path(model_path)
    stylizer = Stylizer.load(model_path, device="cpu", precision="fp32")
    model, config = stylizer.model, stylizer.config
    files = onnx_files(model_path)
    fast = FastTransform.from_net(model.transform, dtype=torch.float32, channels_last=False).eval()
    rows, cols = config.code_rows, 2 * config.num_cin
    side = config.style_size
    h = torch.export.Dim("h", min=16, max=8192)
    w = torch.export.Dim("w", min=16, max=8192)
    big_h = torch.export.Dim("H", min=16, max=65536)
    big_w = torch.export.Dim("W", min=16, max=65536)
    hp = torch.export.Dim("hp", min=4, max=2048)
    wp = torch.export.Dim("wp", min=4, max=2048)
    code = next(iter(stylizer.style_bank.values())).matrix.float()
    example = (torch.rand(1, 3, 400, 600), torch.rand(1, 3, 200, 300), torch.rand(1, 3, 200, 304), code)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        paint_tmp, encode_tmp, fade_tmp = (Path(tmp) / f"{n}.onnx" for n in ("paint", "encode", "fade"))
        torch.onnx.export(PaintGraph(fast).eval(), example, str(paint_tmp), dynamo=True, opset_version=OPSET,
                          input_names=["photo", "content", "padded", "code"],
                          output_names=["painting", "render"], external_data=False, verbose=False,
                          dynamic_shapes={"photo": {2: big_h, 3: big_w}, "content": {2: h, 3: w},
                                          "padded": {2: 4 * hp, 3: 4 * wp}, "code": None})
        torch.onnx.export(FadeGraph().eval(), (torch.rand(1, 3, 40, 60), torch.rand(1, 3, 40, 60), torch.tensor(0.5)),
                          str(fade_tmp), dynamo=True, opset_version=OPSET, input_names=["photo", "painting", "mix"],
                          output_names=["faded"], external_data=False, verbose=False,
                          dynamic_shapes={"photo": {2: big_h, 3: big_w}, "painting": {2: big_h, 3: big_w},
                                          "mix": None})
        sh, sw = torch.export.Dim("sh", min=2, max=65536), torch.export.Dim("sw", min=2, max=65536)
        torch.onnx.export(EncodeGraph(model.normalization).eval(), (torch.rand(1, 3, 300, 400),),
                          str(encode_tmp), dynamo=True, opset_version=OPSET, input_names=["style"],
                          output_names=["code"], external_data=False, verbose=False,
                          dynamic_shapes={"style": {2: sh, 3: sw}})
        for src, dst in ((paint_tmp, files.paint), (encode_tmp, files.encode), (fade_tmp, files.fade)):
            write_bytes_atomically(dst, data=src.read_bytes())
    codes = {name: c.matrix.float().numpy() for name, c in sorted(stylizer.style_bank.items())}

    def write_codes(fh) -> None:
        np.savez(fh, **codes)
    write_atomically(files.codes, write=write_codes)
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "model": model_path.name, "model_sha256": file_digest(model_path),
        "paint_sha256": file_digest(files.paint), "encode_sha256": file_digest(files.encode),
        "fade_sha256": file_digest(files.fade),
        "codes_sha256": file_digest(files.codes),
        "code_shape": [rows, cols], "style_size": side, "opset": OPSET, "torch": torch.__version__,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    write_bytes_atomically(files.manifest, data=text.encode())
    return manifest

