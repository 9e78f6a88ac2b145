#!/bin/bash
# Runs INSIDE the GIMP chroot: Xvfb + the GIMP 3 GUI on $1/input.png with a selection; opens
# Filters > Style Transfer from the keyboard, runs "Apply Style..." through its dialog, undoes
# it with one Ctrl+Z, and takes screenshots after each step (into $1/shots/). The image state
# is dumped by gui_batch.py at each step (state-*.json). Ends only its own children.
# Usage: gui_inside.sh WORKDIR   (environment: XDG_CONFIG_HOME etc. set by the caller)
set -u
W=$1
HERE=$(cd "$(dirname "$0")" && pwd)
export DISPLAY=:99 NO_AT_BRIDGE=1 GTK_A11Y=none GIO_USE_VFS=local NS_WORK=$W NS_INPUT=$W/input.png
mkdir -p "$W/shots"
T0=$(date +%s.%N)
t() { awk "BEGIN{printf \"%5.1f s\", $(date +%s.%N)-$T0}"; }
shot() { python3 "$HERE/screenshot.py" "$W/shots/$1.png" >/dev/null && echo "$(t)  screenshot $1.png"; }
state() {  # ask gui_batch.py for a dump and wait for it
  touch "$W/cmd-$1"
  for i in $(seq 100); do [ -f "$W/state-$1.json" ] && return 0; sleep 0.2; done
  echo "no state dump $1" >&2; return 1
}
Xvfb :99 -screen 0 1280x800x24 -nolisten tcp > "$W/xvfb.log" 2>&1 &
XPID=$!
for i in $(seq 50); do [ -e /tmp/.X11-unix/X99 ] && break; sleep 0.1; done
gimp-3.0 --no-splash --batch-interpreter=python-fu-eval \
  -b "exec(open('$HERE/gui_batch.py').read())" > "$W/gimp-gui.log" 2>&1 &
GPID=$!
cleanup() {
  touch "$W/cmd-quit"; sleep 1
  kill $GPID 2>/dev/null; for i in $(seq 20); do kill -0 $GPID 2>/dev/null || break; sleep 0.25; done
  kill -9 $GPID 2>/dev/null; kill $XPID 2>/dev/null; wait 2>/dev/null
}
trap cleanup EXIT
for i in $(seq 720); do [ -f "$W/ready" ] && break; sleep 0.25; done  # GIMP start-up: up to 3 min on a loaded 2-core machine
[ -f "$W/ready" ] || { echo "GIMP did not get ready" >&2; exit 1; }
WIN=""
for i in $(seq 60); do
  WIN=$(xdotool search --onlyvisible --name 'GIMP' 2>/dev/null | head -1)
  [ -n "$WIN" ] && break; sleep 0.5
done
echo "$(t)  GIMP ready, window: '$(xdotool getwindowname "$WIN" 2>/dev/null)'"
sleep 2                                    # let the plug-in menus register
xdotool mousemove 400 300                  # no window manager: focus follows the pointer
shot gui-1-start
xdotool key alt+r; sleep 1                 # Filte_rs
xdotool key Up; sleep 0.5                  # the last item: our "Style Transfer" submenu
xdotool key Right; sleep 1                 # open it (first item highlighted)
shot gui-2-menu
xdotool key Return; sleep 4                # "Apply Style...": the ProcedureDialog
shot gui-3-dialog
DLG=$(xdotool search --onlyvisible --name 'Apply Style' 2>/dev/null | head -1)
[ -n "$DLG" ] && xdotool windowfocus --sync "$DLG" 2>/dev/null
xdotool key Return                         # OK
echo "$(t)  OK pressed"
# Wait for the new layer AND its styled pixels: the plug-in inserts the copy first and merges
# the rendered shadow buffer just after, so a dump in between sees an unstyled copy (seen
# under load). Up to 3 minutes: the worker's first start imports torch.
for i in $(seq 360); do
  rm -f "$W/state-after.json"; state after || exit 1
  python3 -c "
import json, sys
layers = json.load(open('$W/state-after.json'))['layers']
sys.exit(len(layers) < 2 or open(layers[0]['raw'], 'rb').read() == open(layers[1]['raw'], 'rb').read())" && break
  sleep 0.5
done
echo "$(t)  new layer is there, styled"
sleep 1
xdotool mousemove 400 300
shot gui-4-after-run
xdotool key alt+e; sleep 1                 # Edit menu: "Undo Apply Style"
shot gui-5-edit-menu
xdotool key Escape; sleep 0.5
xdotool mousemove 400 300 key ctrl+z; sleep 2
shot gui-6-after-undo
state undone || exit 1
echo "GUI run done"
