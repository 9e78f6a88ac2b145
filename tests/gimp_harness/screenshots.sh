#!/bin/bash
# Screenshots of the plug-in in the GIMP 3 GUI (Xvfb in the trixie chroot; needs root):
# the Filters > Style Transfer menu, the dialog, the result, the Edit menu (one undo step) and
# the image after one Ctrl+Z. Writes gimp_plugin/docs/gui-*.png.
# Usage: tests/gimp_harness/screenshots.sh [PYTHON]   (the normstyle venv's python; default python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-${NORMSTYLE_PYTHON:-python3}}
bash tests/gimp_harness/chroot/ensure-chroot.sh >/dev/null
PYTHONPATH=tests${PYTHONPATH:+:$PYTHONPATH} "$PY" -m gimp_harness.gui --out gimp_plugin/docs
