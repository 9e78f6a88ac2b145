# Batch code for a real GIMP 3 (tests/test_gimp_e2e.py):
#   gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b - --quit < batch_e2e.py
# python-fu-eval exec()s this inside GIMP's own Python. The cases come from the JSON file
# named by $NS_SPEC; for each case it prepares an image (precision, grayscale, alpha, layer
# offset, selection), runs the plug-in through the PDB and dumps the pixels before and after
# as raw "R'G'B'A float" plus a JSON summary, which the test compares with the core's output.
import json
import os
import sys
import traceback

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

NI = Gimp.RunMode.NONINTERACTIVE
DUMP_FMT = "R'G'B'A float"
PRECISIONS = {"u8": Gimp.Precision.U8_NON_LINEAR, "u16": Gimp.Precision.U16_NON_LINEAR,
              "float": Gimp.Precision.FLOAT_NON_LINEAR}

spec = json.load(open(os.environ["NS_SPEC"]))


def dump(drawable, path):
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, DUMP_FMT,
                                     Gegl.AbyssPolicy.NONE)
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def run_case(case):
    out = case["dump_dir"]
    os.makedirs(out, exist_ok=True)
    image = Gimp.file_load(NI, Gio.File.new_for_path(case["input"]))
    layer = image.get_layers()[0]
    if case.get("precision", "u8") != "u8":
        image.convert_precision(PRECISIONS[case["precision"]])
    if case.get("gray"):
        image.convert_grayscale()
    if case.get("flatten"):
        layer = image.flatten()
    ox, oy = case.get("offset", [0, 0])
    if ox or oy:
        image.resize(image.get_width() + 2 * ox, image.get_height() + 2 * oy, ox, oy)
    layer = image.get_layers()[0]
    _, lx, ly = layer.get_offsets()
    sel = case.get("selection")  # in layer coordinates
    if sel:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, lx + sel[0], ly + sel[1], sel[2], sel[3])
    dump(layer, os.path.join(out, "before.raw"))

    proc = Gimp.get_pdb().lookup_procedure(case["proc"])
    if proc is None:
        raise RuntimeError(f"procedure {case['proc']} is not registered (plug-in not found?)")
    config = proc.create_config()
    config.set_property("run-mode", NI)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    if case["proc"] == "plug-in-normstyle":
        config.set_property("style", case["style"])
    else:
        config.set_property("style-file", Gio.File.new_for_path(case["style"]))
        config.set_property("refine-steps", case.get("refine_steps", 0))
    config.set_property("strength", case.get("strength", 1.0))
    config.set_property("preserve-color", case.get("preserve_color", False))
    config.set_property("output", case.get("output", "new-layer"))
    result = proc.run(config)
    status = result.index(0)
    summary = {"status": status.value_nick, "layer_size": [layer.get_width(), layer.get_height()],
               "layer_offsets": [lx, ly], "has_alpha": layer.has_alpha(),
               "precision": image.get_precision().value_nick,
               "base_type": image.get_base_type().value_nick}
    if status == Gimp.PDBStatusType.SUCCESS:
        res = result.index(1)
        _, rx, ry = res.get_offsets()
        summary.update(result_name=res.get_name(), result_is_source=(res.get_id() == layer.get_id()),
                       result_offsets=[rx, ry], result_size=[res.get_width(), res.get_height()],
                       result_has_alpha=res.has_alpha(),
                       layers=[item.get_name() for item in image.get_layers()])
        dump(res, os.path.join(out, "after.raw"))
        dump(layer, os.path.join(out, "source_after.raw"))
    else:
        summary["error"] = result.index(1) if result.length() > 1 else None
        summary["layers"] = [item.get_name() for item in image.get_layers()]
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    image.delete()
    print(f"[batch] {case['name']}: {summary['status']}", flush=True)


for case in spec["cases"]:
    try:
        run_case(case)
    except Exception:  # record and go on with the next case
        os.makedirs(case["dump_dir"], exist_ok=True)
        with open(os.path.join(case["dump_dir"], "summary.json"), "w") as fh:
            json.dump({"status": "batch-exception", "error": traceback.format_exc()}, fh)

# stop the long-lived worker that the plug-in started (it would otherwise wait for its idle timeout)
sys.path.insert(0, spec["plugin_dir"])
import nsclient  # noqa: E402
print("[batch] worker stopped:", nsclient.shutdown_daemon(nsclient.load_config(spec["plugin_dir"])),
      flush=True)
