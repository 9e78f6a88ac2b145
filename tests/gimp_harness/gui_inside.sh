#!/bin/bash
# Runs INSIDE the GIMP chroot: Xvfb + the GIMP 3 GUI on $1/input.png with a selection, driven
# from the keyboard like a user would:
#   1. Filters > Style Transfer > Apply Style...: the dialog's preview renders; the style
#      (Alt+Y, Down), the strength (Alt+T, "0.6") and the brush size (Alt+B, "2") are changed
#      and the preview re-renders after each; OK (Alt+O) renders; one Ctrl+Z undoes it.
#   2. (unless NS_NO_CANCEL=1) Select None, Filters > Re-Show Last, brush size 0 (a long render
#      at the layer's own size), OK, and the stop button of GIMP's progress is clicked while the
#      worker paints; then one Ctrl+Z (which must undo Select None: the cancelled run left no
#      undo step).
# The plug-in writes what its dialog shows to $NS_WORK/trace.jsonl (NORMSTYLE_GIMP_TRACE);
# gui_batch.py dumps the image at each step (state-*.json); screenshots go to $1/shots/.
# Ends only its own children.
# Usage: gui_inside.sh WORKDIR   (environment: XDG_CONFIG_HOME etc. set by the caller)
set -u
W=$1
HERE=$(cd "$(dirname "$0")" && pwd)
GIMP=${NS_GIMP:-gimp-3.0}
export DISPLAY=:99 NO_AT_BRIDGE=1 GTK_A11Y=none GIO_USE_VFS=local NS_WORK=$W NS_INPUT=$W/input.png
export NORMSTYLE_GIMP_TRACE=$W/trace.jsonl
mkdir -p "$W/shots"
T0=$(date +%s.%N)
t() { awk "BEGIN{printf \"%5.1f s\", $(date +%s.%N)-$T0}"; }
shot() { python3 "$HERE/screenshot.py" "$W/shots/$1.png" >/dev/null && echo "$(t)  screenshot $1.png"; }
state() {  # ask gui_batch.py for a dump and wait for it
  touch "$W/cmd-$1"
  for i in $(seq 300); do [ -f "$W/state-$1.json" ] && return 0; sleep 0.2; done
  echo "no state dump $1" >&2; return 1
}
# wait_trace SECONDS PYTHON-CONDITION: until a trace event `e` satisfies the condition
wait_trace() {
  local n=$(( $1 * 5 ))
  for i in $(seq $n); do
    python3 -c "
import json, sys
ev = [json.loads(l) for l in open('$W/trace.jsonl')] if __import__('os').path.exists('$W/trace.jsonl') else []
runs = list(dict.fromkeys(e['pid'] for e in ev))  # one plug-in process per run
run = lambda e: runs.index(e['pid']) + 1
previews = [e for e in ev if e['kind'] == 'preview']
sys.exit(0 if any($2 for e in ev) else 1)" && { echo "$(t)  trace: $2"; return 0; }
    sleep 0.2
  done
  echo "$(t)  TIMEOUT waiting for trace: $2" >&2; return 1
}
Xvfb :99 -screen 0 1280x800x24 -nolisten tcp > "$W/xvfb.log" 2>&1 &
XPID=$!
for i in $(seq 50); do [ -e /tmp/.X11-unix/X99 ] && break; sleep 0.1; done
$GIMP --no-splash --batch-interpreter=python-fu-eval \
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
xdotool key Return                         # "Apply Style...": the dialog, whose preview renders
wait_trace 300 "e['kind'] == 'preview' and e['n'] == 1 and run(e) == 1" || exit 1
DLG=$(xdotool search --onlyvisible --name 'Apply Style' 2>/dev/null | head -1)
# no window manager places the dialog: move it off the canvas, over the docks, so the
# screenshots show the preview beside the image
[ -n "$DLG" ] && xdotool windowmove "$DLG" $(( 1280 - $(xdotool getwindowgeometry "$DLG" | awk '/Geometry/ {split($2, a, "x"); print a[1]}') )) 0 2>/dev/null
[ -n "$DLG" ] && xdotool windowfocus --sync "$DLG" 2>/dev/null
sleep 1
shot gui-3-dialog
xdotool key alt+y; sleep 0.5                # St_yle: the next style (or NS_STYLE_DOWNS further)
for i in $(seq ${NS_STYLE_DOWNS:-1}); do xdotool key Down; sleep 0.2; done
wait_trace 120 "e['kind'] == 'preview' and e['n'] >= 2 and e['settings']['style'] != previews[0]['settings']['style']" || exit 1
xdotool key alt+t; sleep 0.5; xdotool key ctrl+a; xdotool type "0.6"; xdotool key Tab   # S_trength 0.6
wait_trace 120 "e['kind'] == 'preview' and e['settings']['strength'] == 0.6" || exit 1
xdotool key alt+b; sleep 0.5; xdotool key ctrl+a; xdotool type "2"; xdotool key Tab   # _Brush size 2
wait_trace 120 "e['kind'] == 'preview' and e['settings']['stroke_scale'] == 2.0" || exit 1
sleep 1
shot gui-4-dialog-changed
xdotool key alt+o                          # _OK
echo "$(t)  OK pressed"
# Wait until the plug-in is done (its last trace event): a dump taken while GIMP merges the
# result tile by tile reads a half-styled layer (seen under load).
wait_trace 300 "e['kind'] == 'done' and run(e) == 1" || exit 1
sleep 0.5
state after || exit 1
echo "$(t)  new layer is there, styled"
sleep 1
xdotool mousemove 400 300
shot gui-5-after-run
if [ -n "${NS_HOVER_LAYER:-}" ]; then      # the new layer's tooltip: its whole name
  xdotool mousemove $NS_HOVER_LAYER; sleep 2
  shot gui-5b-layer-name
  xdotool mousemove 400 300
fi
xdotool key alt+e; sleep 1                 # Edit menu: "Undo Apply Style"
shot gui-6-edit-menu
xdotool key Escape; sleep 0.5
xdotool mousemove 400 300 key ctrl+z; sleep 2
shot gui-7-after-undo
state undone || exit 1

cancel_a_render() {
xdotool key shift+ctrl+a; sleep 1          # Select > None: the whole layer
state unselected || exit 1
shot cancel-0-idle
xdotool key shift+ctrl+f                   # Filters > Re-Show Last: the dialog, last values
wait_trace 300 "e['kind'] == 'preview' and e['n'] == 1 and run(e) == 2" || exit 1
DLG=$(xdotool search --onlyvisible --name 'Apply Style' 2>/dev/null | head -1)
[ -n "$DLG" ] && xdotool windowfocus --sync "$DLG" 2>/dev/null
xdotool key alt+b; sleep 0.5; xdotool key ctrl+a; xdotool type "0"; xdotool key Tab   # brush size 0
wait_trace 120 "e['kind'] == 'preview' and e['settings']['stroke_scale'] == 0.0 and run(e) == 2" || exit 1
xdotool key alt+o
echo "$(t)  OK pressed (brush size 0: painted at the layer's own size)"
wait_trace 120 "e['kind'] == 'progress' and e['text'].startswith('Painting at') and run(e) == 2" || exit 1
xdotool mousemove 400 300
shot cancel-1-busy
XY=$(python3 "$HERE/find_cancel.py" "$W/shots/cancel-0-idle.png" "$W/shots/cancel-1-busy.png") || exit 1
echo "$(t)  clicking GIMP's progress stop button at $XY"
xdotool mousemove $XY click 1
sleep 3
xdotool mousemove 400 300
shot cancel-2-cancelled
state cancelled || exit 1
xdotool key ctrl+z; sleep 2                # must undo Select None: the cancel left no undo step
state cancel-undone || exit 1
}

# ---- Style from Image...: choose $NS_STYLE_IMAGE in the dialog's file chooser; the thumbnail
# and the preview show it; then Cancel (the dialog's, nothing is rendered)
style_from_image() {
  xdotool mousemove 400 300
  xdotool key alt+r; sleep 1; xdotool key Up; sleep 0.5; xdotool key Right; sleep 1
  xdotool key Down; sleep 0.5; xdotool key Return       # "Style from Image..."
  for i in $(seq 100); do
    DLG=$(xdotool search --onlyvisible --name 'Style from Image' 2>/dev/null | head -1)
    [ -n "$DLG" ] && break; sleep 0.3
  done
  [ -n "$DLG" ] || { echo "no Style from Image dialog" >&2; return 1; }
  xdotool windowmove "$DLG" $(( 1280 - $(xdotool getwindowgeometry "$DLG" | awk '/Geometry/ {split($2, a, "x"); print a[1]}') )) 0 2>/dev/null
  xdotool windowfocus --sync "$DLG" 2>/dev/null; sleep 1
  local before after chooser
  before=$(xdotool search --onlyvisible --name '.' 2>/dev/null | sort)
  xdotool key alt+i; sleep 0.5; xdotool key space; sleep 2   # Style _image: the file chooser
  after=$(xdotool search --onlyvisible --name '.' 2>/dev/null | sort)
  # the window that just appeared; with no window manager it gets the keyboard only if told so
  chooser=$(comm -13 <(echo "$before") <(echo "$after") | head -1)
  echo "$(t)  file chooser window: '$(xdotool getwindowname "$chooser" 2>/dev/null)'"
  [ -n "$chooser" ] && xdotool windowfocus --sync "$chooser" 2>/dev/null
  sleep 0.5
  # Ctrl+L opens the location entry first: typed straight away, GIMP 3.2's chooser lost the
  # key after the "/" that opens it
  xdotool key ctrl+l; sleep 1; xdotool key ctrl+a
  xdotool type --delay 20 "$NS_STYLE_IMAGE"; sleep 1
  shot style-chooser
  xdotool key Return; sleep 1
  wait_trace 60 "e['kind'] == 'thumbnail' and e['path'] == '$NS_STYLE_IMAGE'" || { shot fail-thumbnail; return 1; }
  wait_trace 120 "e['kind'] == 'preview' and e['settings']['style'] == '$NS_STYLE_IMAGE'" || return 1
  sleep 1
  shot gui-8-style-from-image
  xdotool key alt+c; sleep 1                 # _Cancel
}

if [ "${NS_NO_CANCEL:-0}" != 1 ]; then cancel_a_render || exit 1; fi
if [ -n "${NS_STYLE_IMAGE:-}" ]; then style_from_image || exit 1; fi
echo "GUI run done"
