# Batch code for the GIMP 3 GUI test (gui_inside.sh starts `gimp-3.0 -b` with it, under Xvfb).
# Opens $NS_INPUT in a display with a rectangular selection ($NS_SELECTION "x y w h"), then
# serves the driver: for every file "$NS_WORK/cmd-NAME" it dumps the image state to
# "$NS_WORK/state-NAME.json" (+ .raw pixels of each layer, "R'G'B'A float"; the selection's
# bounds; whether the image is dirty); "cmd-quit" ends.
# python-fu-eval runs this in a plug-in process, so GIMP's GUI stays usable meanwhile.
import json
import os
import time

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

W = os.environ["NS_WORK"]
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ["NS_INPUT"]))
Gimp.Display.new(image)
x, y, w, h = (int(v) for v in os.environ["NS_SELECTION"].split())
image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
image.clean_all()
Gimp.displays_flush()


def dump(name):
    layers = image.get_layers()
    info = {"layers": []}
    for i, layer in enumerate(layers):
        lw, lh = layer.get_width(), layer.get_height()
        data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, lw, lh), 1.0, "R'G'B'A float",
                                      Gegl.AbyssPolicy.NONE)
        raw = os.path.join(W, f"state-{name}-{i}.raw")
        with open(raw, "wb") as fh:
            fh.write(bytes(data))
        info["layers"].append({"name": layer.get_name(), "size": [lw, lh], "raw": raw})
    bounds = Gimp.Selection.bounds(image)  # (ok, non_empty, x1, y1, x2, y2)
    info["selection"] = list(bounds[2:]) if bounds[1] else None
    info["dirty"] = image.is_dirty()
    with open(os.path.join(W, f"state-{name}.json"), "w") as fh:
        json.dump(info, fh)


dump("start")
open(os.path.join(W, "ready"), "w").close()
deadline = time.monotonic() + 900
while time.monotonic() < deadline:
    cmds = sorted(f for f in os.listdir(W) if f.startswith("cmd-"))
    for f in cmds:
        os.unlink(os.path.join(W, f))
        name = f[4:]
        if name == "quit":
            deadline = 0
            break
        dump(name)
    time.sleep(0.1)

# stop the long-lived worker that the plug-in started
import sys  # noqa: E402
sys.path.insert(0, os.path.join(W, "plug-ins", "normstyle_gimp"))
import nsclient  # noqa: E402
nsclient.shutdown_daemon(nsclient.load_config(os.path.join(W, "plug-ins", "normstyle_gimp")))
