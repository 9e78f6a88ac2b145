"""The torch-free engine (normstyle_core/onnx_engine.py, issue #39): its graphs describe the
shipped model, it paints what the torch Stylizer paints, a quick run never imports torch, and
what it cannot paint alike (camera-size photos, other models, damaged files) goes to torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normstyle_core import imaging
from normstyle_core.builtin_styles import SHIPPED_MODEL
from normstyle_core.model_summary import file_digest
from normstyle_core.onnx_engine import OnnxEngine, QuickStylizer, onnx_files
from normstyle_core.options import RenderOptions
from normstyle_core.render_plan import RenderPlan

REPO = Path(__file__).resolve().parents[1]
WRAPPER = ("import sys, runpy\n"
           "sys.argv = ['normstyle', *sys.argv[1:]]\n"
           "try:\n"
           "    runpy.run_module('cli.main', run_name='__main__')\n"
           "finally:\n"
           "    print('TORCH-LOADED', 'torch' in sys.modules, file=sys.stderr)\n")


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like picture: smooth gradients, hard-edged shapes and fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.dstack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + 3 * yy)])
    for _ in range(12):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.03, 0.15) * max(h, w)
        mask = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
        rgb[mask] = rng.uniform(0, 1, 3)
    rgb += rng.normal(0, 0.02, rgb.shape)
    return np.clip(rgb, 0, 1).astype(np.float32)


def save(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def engine() -> OnnxEngine:
    found = OnnxEngine.open(SHIPPED_MODEL, encoder=True)
    assert found is not None, "the shipped graphs must match default.pt: run tools/export_onnx.py"
    return found


@pytest.fixture(scope="module")
def torch_stylizer():
    from normstyle_core import Stylizer
    return Stylizer.load(SHIPPED_MODEL, device="cpu", precision="fp32")


def test_shipped_graphs_describe_the_shipped_model():
    files = onnx_files(SHIPPED_MODEL)
    manifest = json.loads(files.manifest.read_text())
    assert manifest["model_sha256"] == file_digest(SHIPPED_MODEL)
    for path, key in ((files.paint, "paint_sha256"), (files.fade, "fade_sha256"), (files.encode, "encode_sha256"),
                      (files.codes, "codes_sha256")):
        assert manifest[key] == file_digest(path), path


def test_builtin_codes_are_the_models(engine, torch_stylizer):
    assert sorted(engine.codes) == sorted(torch_stylizer.style_bank)
    for name, code in torch_stylizer.style_bank.items():
        np.testing.assert_array_equal(engine.codes[name], code.matrix.float().numpy())


@pytest.mark.parametrize("size,strength", [((480, 640), 1.0), ((700, 900), 1.0), ((700, 900), 0.6), ((123, 77), 1.0)])
def test_paints_what_the_torch_stylizer_paints(engine, torch_stylizer, size, strength):
    """fp32 on both sides: the same arithmetic in another order, so within a level of 255."""
    loaded = imaging.LoadedImage(rgb=scene(*size))
    quick = QuickStylizer(engine, model_path=SHIPPED_MODEL, load_torch=lambda: pytest.fail("needs no torch"))
    ours = np.asarray(quick.stylize(loaded, style=quick.style("udnie", builtin=True), strength=strength), np.int16)
    theirs = np.asarray(torch_stylizer.stylize(loaded, style="udnie", strength=strength), np.int16)
    diff = np.abs(ours - theirs)
    assert diff.max() <= 2 and diff.mean() < 0.02, (diff.max(), diff.mean())


def test_a_style_image_gets_the_torch_code_and_painting(engine, torch_stylizer, tmp_path):
    painting = save(tmp_path / "painting.png", scene(300, 420, seed=5))
    quick = QuickStylizer(engine, model_path=SHIPPED_MODEL, load_torch=lambda: pytest.fail("needs no torch"))
    style = quick.style(str(painting), builtin=False)
    want = torch_stylizer.style(painting)
    np.testing.assert_allclose(style.code, want.matrix.numpy(), atol=1e-3, rtol=1e-4)
    loaded = imaging.LoadedImage(rgb=scene(600, 800, seed=2), alpha=np.linspace(0, 1, 800, dtype=np.float32)[None]
                                 .repeat(600, 0))
    ours = quick.stylize_16bit(loaded, style=style)
    theirs = torch_stylizer.stylize_16bit(loaded, style=want)
    assert ours.alpha is not None and np.array_equal(ours.alpha, theirs.alpha)
    diff = np.abs(ours.rgb.astype(np.int32) - theirs.rgb.astype(np.int32))
    assert diff.max() <= 3 * 257 and diff.mean() < 0.05 * 257, (diff.max(), diff.mean())


def test_photos_it_does_not_paint_alike_go_to_torch(engine, torch_stylizer):
    """A camera-size photo gets the fine detail (and a style image's code the feedback step):
    torch paints it, from the same style."""
    camera = RenderPlan.for_photo(3000, 4000, stroke_scale=1.0, feedback=None)
    small = RenderPlan.for_photo(864, 1152, stroke_scale=1.0, feedback=None)
    defaults = RenderOptions()
    assert not engine.paints(camera, options=defaults, predicted=False)
    assert engine.paints(small, options=defaults, predicted=True)
    assert not engine.paints(small, options=RenderOptions(preserve_color=True), predicted=False)
    assert not engine.paints(RenderPlan.for_photo(864, 1152, stroke_scale=1.0, feedback=True),
                             options=defaults, predicted=True)
    loads = []
    quick = QuickStylizer(engine, model_path=SHIPPED_MODEL, load_torch=lambda: loads.append(1) or torch_stylizer)
    loaded = imaging.LoadedImage(rgb=scene(900, 1200))
    out = quick.stylize(loaded, style=quick.style("candy", builtin=True), feedback=True, stroke_scale=1.0,
                        preserve_color=True)
    assert loads == [1]
    want = torch_stylizer.stylize(loaded, style="candy", feedback=True, preserve_color=True)
    assert np.array_equal(np.asarray(out), np.asarray(want))


def test_other_or_damaged_graphs_are_not_used(tmp_path):
    """Graphs beside a model they were not exported from, or a file changed since, open to None
    (the run paints with torch); a missing manifest too."""
    files = onnx_files(SHIPPED_MODEL)
    model = tmp_path / "default.pt"
    shutil.copy(SHIPPED_MODEL, model)
    mine = onnx_files(model)
    for src, dst in zip((files.paint, files.fade, files.encode, files.codes, files.manifest),
                        (mine.paint, mine.fade, mine.encode, mine.codes, mine.manifest)):
        shutil.copy(src, dst)
    assert OnnxEngine.open(model, encoder=True) is not None
    data = bytearray(mine.encode.read_bytes())
    data[len(data) // 2] ^= 0xFF
    mine.encode.write_bytes(bytes(data))
    assert OnnxEngine.open(model) is not None and OnnxEngine.open(model, encoder=True) is None
    with open(model, "ab") as fh:
        fh.write(b"\0")
    assert OnnxEngine.open(model) is None
    for text in ("", "[]", '{"format": "normstyle-onnx", "version": 99}', "not json"):
        mine.manifest.write_text(text)
        assert OnnxEngine.open(model) is None
    mine.manifest.unlink()
    assert OnnxEngine.open(model) is None


def normstyle(*args, home: Path, env_extra: dict[str, str] | None = None) -> tuple[int, str, bool]:
    env = {k: v for k, v in os.environ.items() if k not in ("NORMSTYLE_MODEL", "NORMSTYLE_ENGINE")}
    env["NORMSTYLE_HOME"] = str(home)
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", WRAPPER, *map(str, args)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.splitlines()
    assert lines and lines[-1].startswith("TORCH-LOADED "), r.stderr
    return r.returncode, "\n".join(lines[:-1]), lines[-1].endswith("True")


def test_a_quick_run_never_imports_torch_and_matches_the_torch_run(tmp_path):
    photo = save(tmp_path / "photo.png", scene(540, 720))
    painting = save(tmp_path / "painting.png", scene(256, 300, seed=9))
    home = tmp_path / "home"
    for style, name in (("udnie", "q1.png"), (str(painting), "q2.png")):
        code, err, torch_loaded = normstyle("stylize", photo, "--style", style, "-o", tmp_path / name, home=home)
        assert code == 0 and not torch_loaded, err
        code, err, torch_loaded = normstyle("stylize", photo, "--style", style, "--precision", "fp32",
                                            "-o", tmp_path / f"t-{name}", home=home,
                                            env_extra={"NORMSTYLE_ENGINE": "torch"})
        assert code == 0 and torch_loaded, err
        ours = np.asarray(Image.open(tmp_path / name), np.int16)
        theirs = np.asarray(Image.open(tmp_path / f"t-{name}"), np.int16)
        assert np.abs(ours - theirs).max() <= 2


@pytest.mark.parametrize("args", [("--precision", "bf16"), ("--preserve-color",),
                                  ("--model", str(SHIPPED_MODEL)), ("--refine", "1")])
def test_what_the_quick_engine_does_not_stand_in_for_loads_torch(tmp_path, args):
    photo = save(tmp_path / "photo.png", scene(64, 80))
    painting = save(tmp_path / "painting.png", scene(64, 64, seed=3))
    style = str(painting) if args[0] == "--refine" else "udnie"
    code, err, torch_loaded = normstyle("stylize", photo, "--style", style, "-o", tmp_path / "o.png", *args,
                                        home=tmp_path / "home", env_extra={"NORMSTYLE_COMPILE": "0"})
    assert code == 0 and torch_loaded, err


@pytest.mark.parametrize("value", ["onnx", "TORCHY", "1", "auto,torch", "\u00e9"])
def test_a_bad_engine_setting_is_one_line(tmp_path, value):
    photo = save(tmp_path / "photo.png", scene(64, 80))
    code, err, _ = normstyle("stylize", photo, "--style", "udnie", "-o", tmp_path / "o.png",
                             home=tmp_path / "home", env_extra={"NORMSTYLE_ENGINE": value})
    assert code != 0 and len(err.strip().splitlines()) == 1 and "NORMSTYLE_ENGINE" in err, err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_the_export_reproduces_the_shipped_graphs_behaviour(tmp_path):
    """tools/export_onnx.py on a copy of the shipped model gives graphs that paint the same."""
    pytest.importorskip("onnxscript")
    from normstyle_core.onnx_export import export_onnx
    model = tmp_path / "default.pt"
    shutil.copy(SHIPPED_MODEL, model)
    export_onnx(model)
    mine, shipped = OnnxEngine.open(model, encoder=True), OnnxEngine.open(SHIPPED_MODEL, encoder=True)
    rgb = scene(300, 400)
    plan = RenderPlan.for_photo(300, 400, stroke_scale=1.0, feedback=None)
    code = shipped.codes["udnie"]
    for strength in (1.0, 0.5):
        np.testing.assert_allclose(mine.paint(rgb, code, plan=plan, strength=strength),
                                   shipped.paint(rgb, code, plan=plan, strength=strength), atol=1e-4)
