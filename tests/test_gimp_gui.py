"""The plug-in in the GIMP 3 GUI (Xvfb in the trixie chroot): menu, dialog, ONE undo step.

GIMP's PDB has no "undo", so this drives the real GUI with xdotool: Filters > Style Transfer >
Apply Style..., OK in the generated dialog, then one Ctrl+Z. gui_batch.py (running inside the
same GIMP) dumps the image after each step. Skips like tests/test_gimp_e2e.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from gimp_harness import gui, harness

pytestmark = pytest.mark.gimp


def test_menu_dialog_and_one_undo_step(tmp_path):
    try:
        root = harness.find_chroot()
        harness.python_binds()
    except harness.Unavailable as exc:
        if harness.required():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    result = gui.run_gui(tmp_path / "gui", root=root)
    start, after, undone = result["start"], result["after"], result["undone"]
    assert [l["name"] for l in start["layers"]] == ["Background"]
    # the dialog's defaults: first built-in style ("blue"), new layer above the source
    assert [l["name"] for l in after["layers"]] == ["Background (blue)", "Background"]
    x, y, w, h = gui.SELECTION
    new, orig = after["layers"][0]["pixels"], start["layers"][0]["pixels"]
    inside = np.zeros(orig.shape[:2], bool)
    inside[y:y + h, x:x + w] = True
    assert np.abs(new[inside] - orig[inside]).mean() > 0.02   # styled within the selection
    np.testing.assert_array_equal(new[~inside], orig[~inside])  # untouched outside
    # ONE undo restores the original: the new layer is gone, the source is unchanged
    assert [l["name"] for l in undone["layers"]] == ["Background"]
    np.testing.assert_array_equal(undone["layers"][0]["pixels"], orig)
    assert [p.name for p in result["shots"]] == [
        "gui-1-start.png", "gui-2-menu.png", "gui-3-dialog.png", "gui-4-after-run.png",
        "gui-5-edit-menu.png", "gui-6-after-undo.png"]
