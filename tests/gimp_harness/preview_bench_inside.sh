#!/bin/bash
# Runs INSIDE the GIMP chroot (benchmarks/gimp_preview.py): Xvfb + the GIMP 3 GUI on
# $1/input.png (all of it selected), driven from the keyboard like a user. Opens Filters >
# Style Transfer > Apply Style... NS_OPENS times (the first starts the worker; Cancel closes
# each); in the first dialog it changes the strength to each of NS_STRENGTHS, the style
# NS_STYLE_CHANGES times (Down in the list) and the brush size to each of NS_BRUSHES, waiting
# after each change until its preview is drawn and nothing more comes for a second. Each step
# is written to $1/marks.jsonl with the wall-clock time of its last key; the plug-in's trace
# ($1/trace.jsonl) says when each change reached it and when each preview was drawn.
# Ends only its own children.
set -u
W=$1
HERE=$(cd "$(dirname "$0")" && pwd)
GIMP=${NS_GIMP:-gimp-3.0}
export DISPLAY=:99 NO_AT_BRIDGE=1 GTK_A11Y=none GIO_USE_VFS=local NS_WORK=$W NS_INPUT=$W/input.png
export NORMSTYLE_GIMP_TRACE=$W/trace.jsonl
TRACE=$W/trace.jsonl
mark() { echo "{\"step\": \"$1\", \"t\": $(date +%s.%N)}" >> "$W/marks.jsonl"; }
count() { python3 "$HERE/wait_trace.py" "$TRACE" count; }
wait_drawn() {  # wait_drawn BASE LABEL: a preview drawn after BASE, then a quiet second
  python3 "$HERE/wait_trace.py" "$TRACE" drawn "$1" "${NS_TIMEOUT:-120}" || { echo "TIMEOUT: $2" >&2; exit 1; }
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
for i in $(seq 720); do [ -f "$W/ready" ] && break; sleep 0.25; done
[ -f "$W/ready" ] || { echo "GIMP did not get ready" >&2; exit 1; }
for i in $(seq 60); do
  WIN=$(xdotool search --onlyvisible --name 'GIMP' 2>/dev/null | head -1)
  [ -n "$WIN" ] && break; sleep 0.5
done
sleep 3                                    # let the plug-in menus register, GIMP settle
for open in $(seq "${NS_OPENS:-4}"); do
  base=$(count)
  for try in 1 2 3; do                     # a busy machine may drop a key of the menu walk
    xdotool mousemove 400 300              # no window manager: focus follows the pointer
    xdotool key alt+r; sleep 1; xdotool key Up; sleep 0.5; xdotool key Right; sleep 1
    mark "open-$open"
    xdotool key Return                     # "Apply Style...": the dialog, whose preview renders
    for i in $(seq 100); do
      xdotool search --onlyvisible --name 'Apply Style' >/dev/null 2>&1 && break 2; sleep 0.1
    done
    echo "no dialog after the menu (try $try)" >&2
    xdotool key Escape; sleep 0.3; xdotool key Escape; sleep 0.3; xdotool key Escape; sleep 1
  done
  wait_drawn "$base" "first preview of dialog $open"
  DLG=$(xdotool search --onlyvisible --name 'Apply Style' 2>/dev/null | head -1)
  [ -n "$DLG" ] && xdotool windowfocus --sync "$DLG" 2>/dev/null
  sleep 1
  if [ "$open" = 1 ]; then
    for v in ${NS_STRENGTHS:-0.9 0.8 0.7 0.6 0.5}; do
      base=$(count)
      xdotool key alt+t; sleep 0.3; xdotool key ctrl+a; xdotool type "$v"
      mark "strength-$v"; xdotool key Tab   # the value is taken when the field loses focus
      wait_drawn "$base" "strength $v"
    done
    for i in $(seq "${NS_STYLE_CHANGES:-4}"); do
      base=$(count)
      xdotool key alt+y; sleep 0.3
      mark "style-$i"; xdotool key Down
      wait_drawn "$base" "style change $i"
    done
    for v in ${NS_BRUSHES:-1.5 2 0.8 1.2}; do
      base=$(count)
      xdotool key alt+b; sleep 0.3; xdotool key ctrl+a; xdotool type "$v"
      mark "brush-$v"; xdotool key Tab
      wait_drawn "$base" "brush size $v"
    done
  fi
  xdotool key alt+c; sleep 2               # _Cancel: nothing is rendered
done
echo "preview benchmark done"
