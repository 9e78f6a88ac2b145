"""Drive the GIMP 3 GUI (Xvfb, in the chroot) through the plug-in's menu and dialog.

Used by tests/test_gimp_gui.py (the one-undo-step check) and by tests/gimp_harness/screenshots.sh::

    PYTHONPATH=tests python -m gimp_harness.gui --out gimp_plugin/docs
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
SELECTION = (40, 30, 240, 160)  # x, y, w, h of the rectangle selection (image coordinates)


def demo_picture(w: int = 360, h: int = 240) -> np.ndarray:
    """A synthetic RGBA picture (no shared data): sky, sun, hills, a transparent corner."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 4), np.float32)
    img[..., 0] = 0.35 + 0.4 * yy / h
    img[..., 1] = 0.55 + 0.3 * yy / h
    img[..., 2] = 0.95 - 0.2 * yy / h
    sun = (xx - 0.72 * w) ** 2 + (yy - 0.3 * h) ** 2 < (0.12 * h) ** 2
    img[sun, :3] = (1.0, 0.85, 0.3)
    hill = yy > h * (0.65 + 0.12 * np.sin(xx / w * 6.0))
    img[hill, :3] = np.stack([0.2 + 0.1 * np.sin(xx / 7), 0.55 + 0.1 * np.cos(yy / 9),
                              0.25 + 0 * xx], -1)[hill]
    img[..., 3] = 1.0
    img[(xx < 50) & (yy < 40), 3] = 0.0
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def run_gui(work: Path, *, root: Path | None = None) -> dict:
    """Install the plug-in (tiny model) into ``work``, run gui_inside.sh; returns the states."""
    from PIL import Image

    from cli import gimp_install as install

    root = root or harness.find_chroot()
    work.mkdir(parents=True, exist_ok=True)
    model = harness.make_tiny_model(work / "tiny.pt")
    Image.fromarray(demo_picture(), "RGBA").save(work / "input.png")
    install.install(work / "plug-ins", model=str(model))
    env = dict(harness.gimp_env(work), NS_SELECTION=" ".join(map(str, SELECTION)))
    res = harness.run_in_chroot(root, ["bash", str(HERE / "gui_inside.sh"), str(work)],
                                rw=[work], env=env, timeout=480)
    log = res.stdout + res.stderr
    (work / "gui-run.log").write_text(log)
    if res.returncode != 0:
        raise RuntimeError(f"GUI run failed ({res.returncode}):\n{log[-3000:]}")

    def state(name):
        info = json.loads((work / f"state-{name}.json").read_text())
        for layer in info["layers"]:
            w, h = layer["size"]
            layer["pixels"] = np.fromfile(layer["raw"], np.float32).reshape(h, w, 4)
        return info

    return {"log": log, "shots": sorted((work / "shots").glob("*.png")),
            **{n: state(n) for n in ("start", "after", "undone")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="normstyle-gui-", dir="/tmp") as tmp:
        result = run_gui(Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        for shot in result["shots"]:
            shutil.copyfile(shot, args.out / shot.name)
            print(args.out / shot.name)
        print("layers after run:", [l["name"] for l in result["after"]["layers"]],
              "after one undo:", [l["name"] for l in result["undone"]["layers"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
