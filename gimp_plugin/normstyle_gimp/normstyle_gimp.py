#!/usr/bin/env python3
# normstyle for GIMP 3: Filters > Style Transfer > Apply Style... / Style from Image...
#
# Runs in GIMP's own Python (no torch). The pixels of the current layer (within the selection,
# if there is one) go to the normstyle worker in the user's normstyle environment (see
# nsclient.py and cli/gimp_worker.py), and the result comes back into the layer's shadow
# buffer; merging the shadow applies the selection (feathering included) and makes one undo
# step together with the new layer.
#
# Installed by `normstyle gimp install`, which also writes normstyle.json next to this file.
import os
import shutil
import sys
import tempfile
import traceback

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, Gio, GLib, GObject  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nsclient  # noqa: E402

PROC_STYLE = "plug-in-normstyle"
PROC_IMAGE = "plug-in-normstyle-image"
MENU = "<Image>/Filters/Style Transfer"
BAND_BYTES = 64 << 20  # pixels move in bands of rows of about this size (large layers)
PLUGIN_BINARY = "normstyle_gimp"


def _builtin_styles():
    """Built-in style names from normstyle.json (written at install; no worker at query time)."""
    try:
        import json
        with open(os.path.join(nsclient.HERE, nsclient.CONFIG_NAME), encoding="utf-8") as fh:
            return [s for s in json.load(fh).get("styles") or [] if isinstance(s, str)]
    except (OSError, ValueError, AttributeError):
        return []


def _fail(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    return procedure.new_return_values(status, GLib.Error(message))


def _exchange_format(image, drawable):
    """(babl format, dtype, channels): keep 8-bit exact, everything deeper as float."""
    alpha = drawable.has_alpha()
    channels = 4 if alpha else 3
    model = "R'G'B'A" if alpha else "R'G'B'"
    precision = image.get_precision()
    if precision in (Gimp.Precision.U8_LINEAR, Gimp.Precision.U8_NON_LINEAR,
                     Gimp.Precision.U8_PERCEPTUAL):
        return f"{model} u8", "u8", channels
    return f"{model} float", "float", channels


class NormstyleGimp(Gimp.PlugIn):
    # ------------------------------------------------------------------ registration
    def do_query_procedures(self):
        return [PROC_STYLE, PROC_IMAGE] if _builtin_styles() else [PROC_IMAGE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_attribution("normstyle", "normstyle contributors", "2025")
        if name == PROC_STYLE:
            proc.set_menu_label("_Apply Style...")
            proc.set_documentation(
                "Repaint the layer in a built-in style",
                "Neural style transfer with normstyle's model: repaints the current layer (within "
                "the selection, if any) in one of the model's built-in styles.", name)
            choice = Gimp.Choice.new()
            styles = _builtin_styles()
            for i, style in enumerate(styles):
                choice.add(style, i, style.replace("_", " ").replace("-", " ").title(), "")
            proc.add_choice_argument("style", "St_yle", "Built-in style", choice, styles[0],
                                     GObject.ParamFlags.READWRITE)
        else:
            proc.set_menu_label("Style from _Image...")
            proc.set_documentation(
                "Repaint the layer in the style of an image file",
                "Neural style transfer with normstyle's model: the style is read from an image "
                "file (any painting or photo), or from a style code file (.pt).", name)
            proc.add_file_argument("style-file", "Style _image", "Image whose style is used",
                                   Gimp.FileChooserAction.OPEN, False, None,
                                   GObject.ParamFlags.READWRITE)
            proc.add_int_argument("refine-steps", "_Refine steps",
                                  "Fit the style to this layer first: 0 = off (instant), 20 = closer "
                                  "to the painting (about 10 s on a CPU), 50 = a bit closer still",
                                  0, 1000, 0, GObject.ParamFlags.READWRITE)
        proc.add_menu_path(MENU)  # after set_menu_label (GIMP asserts the order)
        proc.add_double_argument("strength", "S_trength", "0 = the content's own look, 1 = full style",
                                 0.0, 1.0, 1.0, GObject.ParamFlags.READWRITE)
        proc.add_double_argument("brush-size", "_Brush size",
                                 "Size of the painting's strokes relative to the whole picture: 1 = "
                                 "brush strokes on a layer of any size, 2 = twice as large, 0.5 = "
                                 "finer, 0 = the model's own pixel size (fine grain on big layers)",
                                 0.0, 4.0, 1.0, GObject.ParamFlags.READWRITE)
        proc.add_boolean_argument("preserve-color", "_Preserve colors",
                                  "Keep the layer's colors, take only the style's texture",
                                  False, GObject.ParamFlags.READWRITE)
        output = Gimp.Choice.new()
        output.add("new-layer", 0, "New layer", "Put the result in a new layer above")
        output.add("in-place", 1, "Current layer", "Replace the current layer's pixels")
        proc.add_choice_argument("output", "Put result _in", "Where the result goes", output,
                                 "new-layer", GObject.ParamFlags.READWRITE)
        proc.add_drawable_return_value("result", "Result", "The layer holding the result", False,
                                       GObject.ParamFlags.READWRITE)
        return proc

    # ------------------------------------------------------------------ running
    def run(self, procedure, run_mode, image, drawables, config, run_data):
        try:
            return self._run(procedure, run_mode, image, drawables, config)
        except nsclient.WorkerError as exc:
            return _fail(procedure, f"Style Transfer: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, details on stderr
            traceback.print_exc()
            return _fail(procedure, f"Style Transfer failed unexpectedly: {type(exc).__name__}: {exc}")

    def _run(self, procedure, run_mode, image, drawables, config):
        name = procedure.get_name()
        if len(drawables) != 1:
            return _fail(procedure, "Style Transfer works on one layer: select exactly one layer.",
                         Gimp.PDBStatusType.CALLING_ERROR)
        drawable = drawables[0]
        if not drawable.is_layer() or drawable.is_group():
            return _fail(procedure, "Style Transfer paints on a layer: select a layer (not a "
                         "layer group, mask or channel).",
                         Gimp.PDBStatusType.CALLING_ERROR)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init(PLUGIN_BINARY)
            title = "Apply Style" if name == PROC_STYLE else "Style from Image"
            dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
            dialog.fill(None)
            ok = dialog.run()
            dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

        if name == PROC_STYLE:
            style = config.get_property("style")
        else:
            gfile = config.get_property("style-file")
            style = gfile.get_path() if gfile is not None else None
            if not style:
                return _fail(procedure, "Choose a style image.", Gimp.PDBStatusType.CALLING_ERROR)
            if not os.path.isfile(style):
                return _fail(procedure, f"Style image not found: {style}",
                             Gimp.PDBStatusType.CALLING_ERROR)
        refine_steps = int(config.get_property("refine-steps")) if name == PROC_IMAGE else 0
        strength = float(config.get_property("strength"))
        preserve = bool(config.get_property("preserve-color"))
        brush_size = float(config.get_property("brush-size"))
        in_place = config.get_property("output") == "in-place"

        cfg = nsclient.load_config()
        non_empty, x, y, w, h = drawable.mask_intersect()
        if not non_empty or w <= 0 or h <= 0:
            return _fail(procedure, "The selection does not touch the current layer.",
                         Gimp.PDBStatusType.CALLING_ERROR)
        fmt, dtype, channels = _exchange_format(image, drawable)
        Gimp.progress_init("Style Transfer")
        tmp = tempfile.mkdtemp(prefix="normstyle-gimp-")
        try:
            src, dst = os.path.join(tmp, "in.raw"), os.path.join(tmp, "out.raw")
            _read_pixels(drawable.get_buffer(), x, y, w, h, fmt, src, 0.0, 0.1)

            def on_progress(fraction, message):
                if message:
                    Gimp.progress_set_text(f"Style Transfer: {message}")
                Gimp.progress_update(0.1 + 0.8 * max(0.0, min(1.0, fraction)))

            nsclient.stylize_file(cfg, input_path=src, output_path=dst, width=w, height=h,
                                  channels=channels, dtype=dtype, style=style, strength=strength,
                                  preserve_color=preserve, refine_steps=refine_steps,
                                  stroke_scale=brush_size, on_progress=on_progress)
            Gimp.progress_set_text("Style Transfer: writing the result")
            image.undo_group_start()
            try:
                if in_place:
                    target = drawable
                else:
                    target = drawable.copy()
                    label = style if name == PROC_STYLE else os.path.splitext(os.path.basename(style))[0]
                    target.set_name(f"{drawable.get_name()} ({label})")
                    image.insert_layer(target, drawable.get_parent(), image.get_item_position(drawable))
                shadow = target.get_shadow_buffer()
                _write_pixels(shadow, x, y, w, h, fmt, dst, 0.9, 1.0)
                shadow.flush()
                target.merge_shadow(True)  # applies the selection mask; pushes the undo step
                target.update(x, y, w, h)
            finally:
                image.undo_group_end()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        Gimp.progress_end()
        Gimp.displays_flush()
        return Gimp.ValueArray.new_from_values([
            GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
            GObject.Value(Gimp.Drawable, target),
        ])


def _band_rows(w, bytes_per_pixel):
    return max(1, BAND_BYTES // max(1, w * bytes_per_pixel))


def _bpp(fmt):
    return (4 if "A" in fmt.split()[0] else 3) * (1 if fmt.endswith("u8") else 4)


def _read_pixels(buffer, x, y, w, h, fmt, path, p0, p1):
    rows = _band_rows(w, _bpp(fmt))
    with open(path, "wb") as fh:
        for row in range(0, h, rows):
            n = min(rows, h - row)
            fh.write(bytes(buffer.get(Gegl.Rectangle.new(x, y + row, w, n), 1.0, fmt,
                                      Gegl.AbyssPolicy.NONE)))
            Gimp.progress_update(p0 + (p1 - p0) * (row + n) / h)


def _write_pixels(buffer, x, y, w, h, fmt, path, p0, p1):
    bpp = _bpp(fmt)
    rows = _band_rows(w, bpp)
    if os.path.getsize(path) != w * h * bpp:
        raise nsclient.WorkerError(f"the worker's result has {os.path.getsize(path)} bytes, "
                                   f"expected {w * h * bpp}")
    with open(path, "rb") as fh:
        for row in range(0, h, rows):
            n = min(rows, h - row)
            buffer.set(Gegl.Rectangle.new(x, y + row, w, n), fmt, fh.read(w * n * bpp))
            Gimp.progress_update(p0 + (p1 - p0) * (row + n) / h)


Gimp.main(NormstyleGimp.__gtype__, sys.argv)
