#!/bin/bash
# Screenshots of the plug-in in the GIMP 3 GUI (Xvfb in the trixie chroot; needs root), with
# the shipped model (normstyle_core/assets/default.pt) on a real public-domain photo
# (scikit-image's astronaut): the Filters > Style Transfer menu, the dialog with its preview
# (before and after changing the style and the brush size), the result layer named after the
# style, and the Edit menu (one undo step). Writes gimp_plugin/docs/gui-*.png.
# Usage: tests/gimp_harness/screenshots.sh [PYTHON]   (the normstyle venv's python; default python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-${NORMSTYLE_PYTHON:-python3}}
bash tests/gimp_harness/chroot/ensure-chroot.sh >/dev/null
PYTHONPATH=tests${PYTHONPATH:+:$PYTHONPATH} "$PY" -m gimp_harness.gui --out gimp_plugin/docs --shipped-model
