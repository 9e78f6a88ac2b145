"""Drive the GIMP 3 GUI (Xvfb, in the chroot) through the plug-in's menu and dialog.

Used by tests/test_gimp_gui.py (preview, one undo step, cancel) and by
tests/gimp_harness/screenshots.sh (the shipped model on a real photo)::

    PYTHONPATH=tests python -m gimp_harness.gui --out gimp_plugin/docs --shipped-model
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import harness

HERE = Path(__file__).resolve().parent
# The test picture is larger than the 0.2 MP working size, so the brush size changes what the
# preview and the render paint, and a render at brush size 0 (its own 3 MP) lasts long enough
# to be cancelled.
SIZE = (1500, 2000)  # h, w
SELECTION = (250, 200, 1500, 1000)  # x, y, w, h of the rectangle selection (image coordinates)


def demo_picture(w: int = SIZE[1], h: int = SIZE[0]) -> np.ndarray:
    """A synthetic RGBA picture (no shared data): sky, sun, hills, a transparent corner."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = w / 360
    img = np.zeros((h, w, 4), np.float32)
    img[..., 0] = 0.35 + 0.4 * yy / h
    img[..., 1] = 0.55 + 0.3 * yy / h
    img[..., 2] = 0.95 - 0.2 * yy / h
    sun = (xx - 0.72 * w) ** 2 + (yy - 0.3 * h) ** 2 < (0.12 * h) ** 2
    img[sun, :3] = (1.0, 0.85, 0.3)
    hill = yy > h * (0.65 + 0.12 * np.sin(xx / w * 6.0))
    img[hill, :3] = np.stack([0.2 + 0.1 * np.sin(xx / (7 * s)), 0.55 + 0.1 * np.cos(yy / (9 * s)),
                              0.25 + 0 * xx], -1)[hill]
    img[..., 3] = 1.0
    img[(xx < 50 * s) & (yy < 40 * s), 3] = 0.0
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def photo() -> np.ndarray:
    """A real public-domain photo: scikit-image's astronaut (NASA), RGBA."""
    from skimage import data

    rgb = data.astronaut()
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def run_gui(work: Path, *, root: Path | None = None, shipped_model: bool = False,
            picture: np.ndarray | None = None, selection=SELECTION, cancel: bool = True,
            style_downs: int = 1, hover_layer: tuple[int, int] | None = None,
            style_image: np.ndarray | None = None) -> dict:
    """Install the plug-in into ``work`` (the tiny test model, or the shipped one), run
    gui_inside.sh; returns the image states, the dialog's trace and the screenshots."""
    from PIL import Image

    from cli import gimp_install as install

    root = root or harness.find_chroot()
    work.mkdir(parents=True, exist_ok=True)
    model = None if shipped_model else str(harness.make_tiny_model(work / "tiny.pt"))
    Image.fromarray(demo_picture() if picture is None else picture, "RGBA").save(work / "input.png")
    install.install(work / "plug-ins", model=model)
    if style_image is None:  # a synthetic "painting": the picture turned and recoloured
        style_image = demo_picture(240, 180)[::-1, ::-1, [2, 0, 1]].copy()
    Image.fromarray(style_image[..., :3].copy()).save(work / "style.png")
    version = harness.gimp_version(root)
    env = dict(harness.gimp_env(work, version), NS_SELECTION=" ".join(map(str, selection)),
               NS_NO_CANCEL="0" if cancel else "1", NS_GIMP=f"gimp-{version}",
               NS_STYLE_DOWNS=str(style_downs),
               NS_HOVER_LAYER=" ".join(map(str, hover_layer)) if hover_layer else "",
               NS_STYLE_IMAGE=str(work / "style.png"))
    res = harness.run_in_chroot(root, ["bash", str(HERE / "gui_inside.sh"), str(work)],
                                rw=[work], env=env, timeout=900)
    log = res.stdout + res.stderr
    (work / "gui-run.log").write_text(log)
    if res.returncode != 0:
        raise RuntimeError(f"GUI run failed ({res.returncode}):\n{log[-3000:]}\n"
                           f"GIMP log:\n{_tail(work / 'gimp-gui.log')}\nworker log:\n{_tail(work / 'worker.log')}")

    def state(name):
        path = work / f"state-{name}.json"
        if not path.exists():
            return None
        info = json.loads(path.read_text())
        for layer in info["layers"]:
            w, h = layer["size"]
            layer["pixels"] = np.fromfile(layer["raw"], np.float32).reshape(h, w, 4)
        return info

    trace = [json.loads(line) for line in (work / "trace.jsonl").read_text().splitlines()]
    for event in trace:
        if event.get("raw"):
            event["pixels"] = np.fromfile(event["raw"], np.uint8).reshape(event["height"], event["width"], 3)
    style_png = work / "style.png"
    return {"log": log, "work": work, "trace": trace, "model": model, "style_image": style_png,
            "shots": sorted((work / "shots").glob("*.png")),
            **{n: state(n) for n in ("start", "after", "undone", "unselected", "cancelled",
                                     "cancel-undone")}}


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(none)"


SHOTS_FOR_DOCS = ("gui-2-menu", "gui-3-dialog", "gui-4-dialog-changed",
                  "gui-5b-layer-name", "gui-6-edit-menu", "gui-8-style-from-image")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    p.add_argument("--shipped-model", action="store_true",
                   help="the shipped model on a real photo (the docs' screenshots)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="normstyle-gui-", dir="/tmp") as tmp:
        if args.shipped_model:
            pic = photo()
            h, w = pic.shape[:2]
            from skimage import data
            result = run_gui(Path(tmp), shipped_model=True, picture=pic,
                             style_image=data.coffee(),  # public domain; its colours and shapes
                             selection=(w // 8, h // 8, 3 * w // 4, 3 * h // 4), cancel=False,
                             style_downs=3,  # antimonocromatismo -> candy
                             hover_layer=(935, 483))  # the top row of the Layers dock
        else:
            result = run_gui(Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("gui-*.png"):
            old.unlink()
        for shot in result["shots"]:
            if shot.stem in SHOTS_FOR_DOCS:
                shutil.copyfile(shot, args.out / shot.name)
                print(args.out / shot.name)
        print("layers after run:", [l["name"] for l in result["after"]["layers"]],
              "after one undo:", [l["name"] for l in result["undone"]["layers"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
