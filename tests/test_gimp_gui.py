"""The plug-in in the GIMP 3 GUI (Xvfb in the trixie chroot): preview, one undo step, cancel.

GIMP's PDB has no "undo" and no way to press a dialog's buttons, so this drives the real GUI
with xdotool (tests/gimp_harness/gui_inside.sh): Filters > Style Transfer > Apply Style...,
whose preview renders; the style, the strength and the brush size are changed in the dialog
and the preview renders again after each; OK; one Ctrl+Z. Then a long render is cancelled with the stop button of GIMP's
progress. gui_batch.py (inside the same GIMP) dumps the image after each step; the plug-in's
trace (NORMSTYLE_GIMP_TRACE) holds the exact pixels each preview showed. Everything is
compared with the core's own render (Stylizer) computed here. Skips like tests/test_gimp_e2e.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gimp_harness import gui, harness

pytestmark = pytest.mark.gimp


@pytest.fixture(scope="module")
def gui_run(tmp_path_factory):
    try:
        root = harness.find_chroot()
        harness.python_binds()
    except harness.Unavailable as exc:
        if harness.required():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return gui.run_gui(tmp_path_factory.mktemp("gui"), root=root)


@pytest.fixture(scope="module")
def stylizer(gui_run):
    from normstyle_core import Stylizer
    return Stylizer.load(gui_run["model"], device="cpu", precision=harness.precision())


def _selected(state) -> np.ndarray:
    """The selection's bounding box of the start image, float RGB (the layer as sent)."""
    x, y, w, h = gui.SELECTION
    return np.ascontiguousarray(state["layers"][0]["pixels"][y:y + h, x:x + w, :3])


def _resize(rgb: np.ndarray, size) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0].permute(1, 2, 0).numpy()


def _core_preview(st, rgb, settings, size):
    """What the preview should show, computed here: the core's painting at the size the full
    render paints at (its stroke_scale working size), brought to the preview's size."""
    from normstyle_core.stroke_scale import working_size
    from normstyle_core.imaging import to_uint8

    work = working_size(*rgb.shape[:2], stroke_scale=settings["stroke_scale"])
    painting = st.stylize_array(_resize(rgb, work), style=settings["style"],
                                strength=settings["strength"],
                                preserve_color=settings["preserve_color"],
                                stroke_scale=settings["stroke_scale"])
    return to_uint8(_resize(painting, size)).astype(np.int32), work


def _levels(a, b):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return d, f"max {d.max():.2f}, mean {d.mean():.3f}, RMS {math.sqrt((d ** 2).mean()):.3f} levels"


def _run_previews(gui_run, run=1):
    pids = list(dict.fromkeys(e["pid"] for e in gui_run["trace"]))
    return [e for e in gui_run["trace"] if e["kind"] == "preview" and e["pid"] == pids[run - 1]]


def test_preview_matches_the_core_at_preview_size(gui_run, stylizer):
    """Each setting the dialog showed: the preview is the core's painting at the render's
    working size, scaled to the preview (fp32: within a level of rounding; bf16: the RMS the
    product promises, twice), and close to the full render scaled down (what the user gets)."""
    from PIL import Image

    rgb = _selected(gui_run["start"])
    previews = _run_previews(gui_run)
    seen = {}
    for p in previews:  # the last preview of each distinct setting
        seen[tuple(sorted(p["settings"].items()))] = p
    assert len(seen) >= 3, [p["settings"] for p in previews]
    for p in seen.values():
        expected, work = _core_preview(stylizer, rgb, p["settings"], (p["height"], p["width"]))
        assert tuple(p["render_size"]) == tuple(work) and not p["reduced"]
        assert max(p["width"], p["height"]) == 256
        d, stats = _levels(p["pixels"], expected)
        print(f"preview {p['settings']}: painted at {work}, vs core {stats}; render "
              f"{p['seconds']:.2f} s, setting change to shown {p['latency']:.2f} s")
        if stylizer.place.dtype == torch.float32:
            assert d.max() <= 1.01, stats
        else:
            assert math.sqrt((d ** 2).mean()) <= 1 + 2 * 255 / 100, stats
        # the full render (guided back up to 1500x1000) scaled down the same way: the preview
        # differs from it by the guided upsampling's residual only
        full = stylizer.stylize_array(rgb, style=p["settings"]["style"],
                                      strength=p["settings"]["strength"],
                                      stroke_scale=p["settings"]["stroke_scale"])
        small = np.asarray(Image.fromarray((np.clip(full, 0, 1) * 255 + 0.5).astype(np.uint8))
                           .resize((p["width"], p["height"]), Image.Resampling.LANCZOS))
        d_full, stats_full = _levels(p["pixels"], small)
        print(f"  vs the full render scaled down (PIL Lanczos): {stats_full}")
        assert d_full.mean() <= 4.0, stats_full


def test_changing_a_setting_renders_the_preview_again(gui_run):
    previews = _run_previews(gui_run)
    first = previews[0]
    assert first["settings"] == {"style": "blue", "strength": 1.0, "preserve_color": False,
                                 "stroke_scale": 1.0}
    styled = next(p for p in previews if p["settings"]["style"] == "red")
    assert styled["settings"]["stroke_scale"] == 1.0 and styled["settings"]["strength"] == 1.0
    faded = next(p for p in previews if p["settings"]["strength"] == 0.6)
    assert faded["settings"]["style"] == "red" and faded["settings"]["stroke_scale"] == 1.0
    brushed = next(p for p in previews if p["settings"]["stroke_scale"] == 2.0)
    assert brushed["settings"]["style"] == "red" and brushed["settings"]["strength"] == 0.6
    # each re-render shows something else: another style, a fade, another working size
    assert np.abs(styled["pixels"].astype(int) - first["pixels"]).mean() > 5
    assert np.abs(faded["pixels"].astype(int) - styled["pixels"]).mean() > 1
    assert tuple(brushed["render_size"]) != tuple(styled["render_size"])
    m = min(brushed["height"], styled["height"])  # 170 or 171 rows: another rounding of the size
    assert np.abs(brushed["pixels"][:m].astype(int) - styled["pixels"][:m]).mean() > 1
    print("preview latencies (setting change to shown):", [p["latency"] for p in previews],
          "worker seconds:", [p["seconds"] for p in previews])


def test_every_preview_reaches_the_screen(gui_run):
    """Each preview the dialog was given was painted on the screen (the dialog's next frame,
    traced), and each change of a setting was followed by a preview painted after it. No
    timing is asserted (benchmarks/gimp_preview.py measures it): printed for the log."""
    previews = _run_previews(gui_run)
    pid = previews[0]["pid"]
    drawn = {e["n"]: e for e in gui_run["trace"] if e["kind"] == "drawn" and e["pid"] == pid}
    assert sorted(drawn) == [p["n"] for p in previews]
    changes = [e for e in gui_run["trace"] if e["kind"] == "changed" and e["pid"] == pid]
    assert {"style", "strength", "brush-size"} <= {e["setting"] for e in changes}, changes
    for change in changes:
        assert any(d["t"] >= change["t"] for d in drawn.values()), change
    print("setting change to the preview on the screen, s:", [drawn[n]["latency"] for n in sorted(drawn)])


def test_ok_renders_the_dialogs_settings_and_one_undo_restores(gui_run, stylizer):
    start, after, undone = gui_run["start"], gui_run["after"], gui_run["undone"]
    assert [l["name"] for l in start["layers"]] == ["Background"]
    # the settings the dialog ended with: style red, strength 0.6, brush size 2; a new layer above
    assert [l["name"] for l in after["layers"]] == ["Background (red)", "Background"]
    x, y, w, h = gui.SELECTION
    new, orig = after["layers"][0]["pixels"], start["layers"][0]["pixels"]
    inside = np.zeros(orig.shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    crop8 = np.round(orig[y:y + h, x:x + w] * 255).astype(np.uint8)
    expected = np.asarray(stylizer.stylize(crop8, style="red", strength=0.6, stroke_scale=2.0).convert("RGBA"))
    d, stats = _levels(np.round(new[y:y + h, x:x + w, :3] * 255), expected[..., :3])
    print("full render vs core:", stats)
    if stylizer.place.dtype == torch.float32:
        assert d.max() <= 1.01, stats
    else:
        assert math.sqrt((d ** 2).mean()) <= 1 + 2 * 255 / 100, stats
    np.testing.assert_array_equal(new[~inside], orig[~inside])  # untouched outside
    # ONE undo restores the original: the new layer is gone, the source is unchanged
    assert [l["name"] for l in undone["layers"]] == ["Background"]
    np.testing.assert_array_equal(undone["layers"][0]["pixels"], orig)
    names = [p.name for p in gui_run["shots"]]
    for shot in ("gui-3-dialog.png", "gui-4-dialog-changed.png", "gui-5-after-run.png",
                 "gui-6-edit-menu.png", "gui-7-after-undo.png"):
        assert shot in names


def test_cancel_leaves_the_image_and_its_undo_stack_as_they_were(gui_run):
    """A render at brush size 0 (the layer's own 3 MP) is cancelled with the stop button of
    GIMP's progress while the worker paints: the pixels and the layers are as before, and the
    next Ctrl+Z undoes the step before (Select None), so the run left no undo step."""
    before, cancelled, undone = gui_run["unselected"], gui_run["cancelled"], gui_run["cancel-undone"]
    assert before["selection"] is None
    second = [e for e in gui_run["trace"]
              if e["pid"] == list(dict.fromkeys(e["pid"] for e in gui_run["trace"]))[1]]
    texts = [e["text"] for e in second if e["kind"] == "progress"]
    assert any(t.startswith("Painting at 2000x1500") for t in texts), texts
    assert not any(e["kind"] == "writing" for e in second)  # cancelled before any change
    assert [l["name"] for l in cancelled["layers"]] == ["Background"]
    np.testing.assert_array_equal(cancelled["layers"][0]["pixels"], before["layers"][0]["pixels"])
    assert cancelled["selection"] is None
    # one Ctrl+Z: Select None is undone (the selection is back), nothing else
    x, y, w, h = gui.SELECTION
    assert undone["selection"] == [x, y, x + w, y + h]
    assert [l["name"] for l in undone["layers"]] == ["Background"]
    np.testing.assert_array_equal(undone["layers"][0]["pixels"], before["layers"][0]["pixels"])
    # and the worker stopped painting for the plug-in that went away
    log = (gui_run["work"] / "worker.log").read_text()
    assert "went away during a request (cancelled)" in log, log[-2000:]


def test_style_from_image_shows_the_paintings_thumbnail_and_previews_it(gui_run, stylizer):
    """Style from Image...: the file chosen in the dialog's file chooser appears as a thumbnail
    (the image itself, scaled: compared with Pillow's scaling of the file) and the preview
    paints with it as the core does (the style image's code, corrected on this layer)."""
    from PIL import Image

    path = str(gui_run["style_image"])
    thumbs = [e for e in gui_run["trace"] if e["kind"] == "thumbnail"]
    assert thumbs and thumbs[-1]["path"] == path
    t = thumbs[-1]
    assert (t["width"], t["height"]) == (96, 72)  # 240x180 fitted in 96 px, aspect kept
    ref = np.asarray(Image.open(path).convert("RGB").resize((96, 72), Image.Resampling.BILINEAR))
    d, stats = _levels(t["pixels"], ref)
    print("thumbnail vs the file scaled by Pillow:", stats)
    assert d.mean() < 8, stats  # two scalers, one picture (another picture is ~80 levels off)
    previews = [e for e in gui_run["trace"] if e["kind"] == "preview" and e["settings"]["style"] == path]
    assert previews
    p = previews[-1]
    expected, work = _core_preview(stylizer, _selected(gui_run["start"]), p["settings"],
                                   (p["height"], p["width"]))
    d, stats = _levels(p["pixels"], expected)
    print("Style from Image preview vs core:", stats)
    if stylizer.place.dtype == torch.float32:
        assert d.max() <= 1.01, stats
    else:
        assert math.sqrt((d ** 2).mean()) <= 1 + 2 * 255 / 100, stats


def _find(screen: np.ndarray, patch: np.ndarray):
    """(x, y) where ``patch`` appears exactly in ``screen``, or None."""
    ph, pw = patch.shape[:2]
    ys, xs = np.nonzero(np.all(screen[:screen.shape[0] - ph + 1, :screen.shape[1] - pw + 1]
                               == patch[0, 0], axis=-1))
    for y, x in zip(ys, xs):
        if np.array_equal(screen[y:y + ph, x:x + pw], patch):
            return int(x), int(y)
    return None


def test_the_preview_on_screen_is_the_workers_render(gui_run):
    """The pixels the trace recorded are the ones GIMP's dialog draws: the last preview before
    the screenshot appears, exactly, in the screenshot of the dialog."""
    from PIL import Image

    shot = np.asarray(Image.open(next(p for p in gui_run["shots"]
                                      if p.name == "gui-4-dialog-changed.png")).convert("RGB"))
    brushed = [p for p in _run_previews(gui_run) if p["settings"]["stroke_scale"] == 2.0][-1]
    where = _find(shot, brushed["pixels"])
    assert where is not None, "the preview is not on the screen"
    print("preview drawn at", where, "in the dialog")
