#!/bin/bash
# Make sure a Debian trixie chroot with GIMP 3.0 (+ xvfb/xdotool for screenshots) exists,
# for the real-GIMP tests. Restores it from a cached tarball, or builds it (and saves the
# tarball). Prints the chroot's path as the LAST line of stdout.
# NORMSTYLE_GIMP_SUITE=sid (or another Debian suite): a second chroot from that suite (sid
# had GIMP 3.2.6 on 2026-11-30), kept beside the trixie one.
#
# Usage: ensure-chroot.sh [--restore-only] [--print-path]
#   --restore-only  never build (no network): exit 3 when neither chroot nor tarball exist
#   --print-path    only print where the chroot would be, do nothing else
# Env: NORMSTYLE_GIMP_CACHE  cache folder (default /var/cache/normstyle-gimp3)
#      NORMSTYLE_GIMP_SUITE  Debian suite (default trixie)
# Cache key = hash of build-chroot.sh + in-chroot.sh: change them and a new chroot is built.
# Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RESTORE_ONLY=0 PRINT=0
for a in "$@"; do
  case $a in
    --restore-only) RESTORE_ONLY=1;;
    --print-path) PRINT=1;;
    *) echo "ensure-chroot.sh: unknown option $a" >&2; exit 2;;
  esac
done
CACHE=${NORMSTYLE_GIMP_CACHE:-/var/cache/normstyle-gimp3}
KEY=$(cat "$HERE/build-chroot.sh" "$HERE/in-chroot.sh" | sha256sum | cut -c1-12)
SUITE=${NORMSTYLE_GIMP_SUITE:-trixie}
if [ "$SUITE" = trixie ]; then
  ROOT=$CACHE/chroot-$KEY
else
  ROOT=$CACHE/chroot-$SUITE-$KEY
fi
TAR=$CACHE/$SUITE-gimp3-$KEY.tar.zst
if [ $PRINT = 1 ]; then echo "$ROOT"; exit 0; fi
if compgen -G "$ROOT/usr/bin/gimp-console-3.*" >/dev/null && [ -f "$ROOT/.normstyle-ready" ]; then
  echo "$ROOT"; exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ensure-chroot.sh: needs root" >&2; exit 4; }
if [ $RESTORE_ONLY = 1 ] && [ ! -f "$TAR" ]; then
  echo "ensure-chroot.sh: no chroot at $ROOT and no cache $TAR" >&2; exit 3
fi
mkdir -p "$CACHE"
# a half-built/half-restored chroot: nothing can be mounted in it (in-chroot.sh uses a
# private mount namespace), so removing it is safe
if [ -e "$ROOT" ]; then
  if grep -q " $ROOT" /proc/mounts; then echo "mounts under $ROOT; not removing" >&2; exit 5; fi
  rm -rf "$ROOT"
fi
SUITE=$SUITE "$HERE/build-chroot.sh" "$ROOT" --gui --cache "$TAR" >&2
touch "$ROOT/.normstyle-ready"
echo "$ROOT"
