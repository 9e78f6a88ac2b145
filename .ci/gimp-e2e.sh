#!/bin/bash
# The GIMP 3 plug-in tested in a real GIMP 3 (run as root on a Debian bookworm host).
# 1. restore (about 5 s) or build (about 1-2 min, needs the Debian mirror) the trixie chroot
#    with GIMP 3.0, cached in $NORMSTYLE_GIMP_CACHE (default /var/cache/normstyle-gimp3),
#    cache key = hash of tests/gimp_harness/chroot/{build,in}-chroot.sh;
# 2. run the tests marked `gimp` with NORMSTYLE_GIMP_REQUIRED=1, so a missing chroot fails.
# Usage: .ci/gimp-e2e.sh [PYTHON] [-- extra pytest args]   (PYTHON: the normstyle venv's python,
#        default $NORMSTYLE_PYTHON or `python3`; its venv must not live under /usr)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${NORMSTYLE_PYTHON:-python3}}; shift || true
[ "${1:-}" = "--" ] && shift
T0=$(date +%s)
ROOT=$(bash tests/gimp_harness/chroot/ensure-chroot.sh | tail -1)
echo "GIMP chroot: $ROOT (ready after $(( $(date +%s) - T0 )) s)"
NORMSTYLE_GIMP_CHROOT=$ROOT NORMSTYLE_GIMP_REQUIRED=1 \
  "$PY" -m pytest -m gimp -p no:cacheprovider -q tests/test_gimp_e2e.py tests/test_gimp_gui.py "$@"
echo "gimp e2e total $(( $(date +%s) - T0 )) s"
