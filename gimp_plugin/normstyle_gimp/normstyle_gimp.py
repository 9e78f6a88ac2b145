#!/usr/bin/env python3
# normstyle for GIMP 3: Filters > Style Transfer > Apply Style... / Style from Image...
#
# Runs in GIMP's own Python (no torch). The pixels of the current layer (within the selection,
# if there is one) go to the normstyle worker in the user's normstyle environment (see
# nsclient.py and cli/gimp_worker.py), and the result comes back into the layer's shadow
# buffer; merging the shadow applies the selection (feathering included) and makes one undo
# step together with the new layer.
#
# The dialog has a live preview: the layer (selection) stylized small by the same worker with
# the dialog's current settings, re-rendered shortly after any change (see _Preview).
#
# Cancel: GIMP ends the plug-in's process when the user cancels its progress (the statusbar's
# stop button). The image is only touched after the worker's render is back, and the progress
# is ended (so it cannot be cancelled) before the first pixel is written: a cancelled run
# leaves the image and its undo stack as they were.
#
# Installed by `normstyle gimp install`, which also writes normstyle.json next to this file.
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import Gegl, GdkPixbuf, Gimp, GimpUi, Gio, GLib, GObject, Gtk  # noqa: E402

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
        proc.add_double_argument("strength", "S_trength",
                                 "Fade from the layer to the painting: 0 = the layer as it is, "
                                 "1 = the full painting (separate from Preserve colors)",
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
        cfg = nsclient.load_config()
        non_empty, x, y, w, h = drawable.mask_intersect()
        if not non_empty or w <= 0 or h <= 0:
            return _fail(procedure, "The selection does not touch the current layer.",
                         Gimp.PDBStatusType.CALLING_ERROR)
        fmt, dtype, channels = _exchange_format(image, drawable)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            _trace({"kind": "run", "width": w, "height": h})
            GimpUi.init(PLUGIN_BINARY)
            title = "Apply Style" if name == PROC_STYLE else "Style from Image"
            dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
            dialog.fill(None)
            if _tracing():
                dialog.connect("map-event", _trace_shown)
            tmp = tempfile.mkdtemp(prefix="normstyle-preview-", dir=nsclient.exchange_dir(cfg))
            try:
                src = os.path.join(tmp, "in.raw")
                # the layer as the render will get it (read here: GIMP's calls belong to this thread)
                _read_pixels(drawable.get_buffer(), x, y, w, h, fmt, src, None, None)
                preview = _Preview(dialog, config, name, cfg, dict(
                    input_path=src, width=w, height=h, channels=channels, dtype=dtype))
                ok = dialog.run()
                preview.close()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
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

        Gimp.progress_init("Style Transfer: starting the normstyle worker")
        client = nsclient.WorkerClient(cfg).open()  # a served worker's folder is shared: files go there
        tmp = tempfile.mkdtemp(prefix="normstyle-gimp-", dir=client.exchange_dir)
        try:
            src, dst = os.path.join(tmp, "in.raw"), os.path.join(tmp, "out.raw")
            Gimp.progress_set_text("Style Transfer: reading the layer")
            _read_pixels(drawable.get_buffer(), x, y, w, h, fmt, src, 0.0, 0.1)

            def on_progress(fraction, message):
                if message:
                    Gimp.progress_set_text(f"Style Transfer: {message}")
                    _trace({"kind": "progress", "text": message, "fraction": fraction})
                Gimp.progress_update(0.1 + 0.85 * max(0.0, min(1.0, fraction)))

            nsclient.stylize_file(cfg, input_path=src, output_path=dst, width=w, height=h,
                                  channels=channels, dtype=dtype, style=style, strength=strength,
                                  preserve_color=preserve, refine_steps=refine_steps,
                                  stroke_scale=brush_size, on_progress=on_progress, client=client)
            # From here on the image changes: end the progress first, which takes its cancel
            # button away (a cancel now would kill the plug-in half-way through the undo group).
            # No progress call may follow: it would start a new, cancellable progress.
            Gimp.progress_end()
            _trace({"kind": "writing"})
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
                _write_pixels(shadow, x, y, w, h, fmt, dst)
                shadow.flush()
                target.merge_shadow(True)  # applies the selection mask; pushes the undo step
                target.update(x, y, w, h)
            finally:
                image.undo_group_end()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        Gimp.displays_flush()
        _trace({"kind": "done"})
        return Gimp.ValueArray.new_from_values([
            GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
            GObject.Value(Gimp.Drawable, target),
        ])


def _band_rows(w, bytes_per_pixel):
    return max(1, BAND_BYTES // max(1, w * bytes_per_pixel))


def _bpp(fmt):
    return (4 if "A" in fmt.split()[0] else 3) * (1 if fmt.endswith("u8") else 4)


def _read_pixels(buffer, x, y, w, h, fmt, path, p0, p1):
    """The rectangle's pixels into a raw file; progress from p0 to p1 (None: no progress)."""
    rows = _band_rows(w, _bpp(fmt))
    with open(path, "wb") as fh:
        for row in range(0, h, rows):
            n = min(rows, h - row)
            fh.write(bytes(buffer.get(Gegl.Rectangle.new(x, y + row, w, n), 1.0, fmt,
                                      Gegl.AbyssPolicy.NONE)))
            if p0 is not None:
                Gimp.progress_update(p0 + (p1 - p0) * (row + n) / h)


def _write_pixels(buffer, x, y, w, h, fmt, path):
    """No progress here: the progress is ended before the image changes (see _run)."""
    bpp = _bpp(fmt)
    rows = _band_rows(w, bpp)
    if os.path.getsize(path) != w * h * bpp:
        raise nsclient.WorkerError(f"the worker's result has {os.path.getsize(path)} bytes, "
                                   f"expected {w * h * bpp}")
    with open(path, "rb") as fh:
        for row in range(0, h, rows):
            n = min(rows, h - row)
            buffer.set(Gegl.Rectangle.new(x, y + row, w, n), fmt, fh.read(w * n * bpp))


def _tracing():
    return bool(os.environ.get("NORMSTYLE_GIMP_TRACE"))


def _trace(event, pixels=None):
    """Appends an event to $NORMSTYLE_GIMP_TRACE (JSON lines; a preview's 8-bit RGB pixels go
    next to it): what the real-GIMP tests and benchmarks/gimp_preview.py read back from the
    dialog. ``t``: the wall clock (time.time()). Off without the variable."""
    path = os.environ.get("NORMSTYLE_GIMP_TRACE")
    if not path:
        return
    event["pid"] = os.getpid()
    event["t"] = round(time.time(), 3)
    try:
        if pixels is not None:
            event["raw"] = f"{path}.{os.getpid()}.{event['kind']}-{event['n']}.raw"
            with open(event["raw"], "wb") as fh:
                fh.write(pixels)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
    except OSError:
        pass


def _trace_shown(widget, event):
    _trace({"kind": "dialog-shown"})
    return False


def _rgb_bytes(pixbuf):
    """A pixbuf's pixels as tight 8-bit RGB rows (for the trace)."""
    w, h, n, stride = pixbuf.get_width(), pixbuf.get_height(), pixbuf.get_n_channels(), pixbuf.get_rowstride()
    data = pixbuf.get_pixels()
    rows = []
    for y in range(h):
        row = data[y * stride:y * stride + w * n]
        rows.append(row if n == 3 else bytes(b for i, b in enumerate(row) if i % n < 3))
    return b"".join(rows)


class _Preview:
    """The dialog's preview area: the layer (the selection's bounding box) stylized by the
    worker at preview size with the dialog's current settings (``preview`` in
    cli/gimp_worker.py: painted at the size the full render paints at, so the strokes look as
    they will). Re-rendered DELAY_MS after the last change; renders run on a thread so the
    dialog stays responsive, one at a time, and the newest settings win (a change that comes
    during a render is rendered when it is back). The worker keeps the layer and the painting
    between previews, so a strength change is a fade, not a render (cli/gimp_worker.py)."""

    # Only gathers the notifications of one action (a slider's step, a typed value): a render
    # in progress already holds back the next one, so a longer wait would only add latency
    # (it was 250 ms; the preview after a change is asked to show within 0.5 s, issue #39).
    DELAY_MS = 30

    def __init__(self, dialog, config, proc_name, cfg, source):
        self.config, self.proc_name, self.cfg, self.source = config, proc_name, cfg, source
        self.closed = False
        self._timer = None
        self._busy = False
        self._pending = False
        self._changed_at = time.monotonic()
        self._count = 0
        self.image = Gtk.Image()
        self.image.set_size_request(nsclient.PREVIEW_MAX_SIDE, nsclient.PREVIEW_MAX_SIDE)
        self.label = Gtk.Label(label="Preview: rendering...")
        self.label.set_line_wrap(True)
        self.label.set_max_width_chars(40)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        box.pack_start(self.image, False, False, 0)
        box.pack_start(self.label, False, False, 0)
        self.thumb = self.thumb_label = None
        if proc_name == PROC_IMAGE:  # the chosen painting, small, so the user sees which one
            self.thumb = Gtk.Image()
            self.thumb_label = Gtk.Label(label="Style image: none chosen")
            row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=8)
            row.pack_start(self.thumb, False, False, 0)
            row.pack_start(self.thumb_label, False, False, 0)
            box.pack_start(row, False, False, 0)
            self._show_thumbnail()
        frame = Gtk.Frame(label="Preview")
        frame.set_border_width(6)
        frame.add(box)
        content = dialog.get_content_area()
        content.pack_start(frame, False, False, 0)
        content.reorder_child(frame, 0)
        frame.show_all()
        self._notify = config.connect("notify", self._changed)
        self._drawn = None  # (n, changed_at) of a preview set but not yet painted (traced)
        self._clock = None
        self._timer = GLib.timeout_add(50, self._start)  # the first one as soon as the dialog shows

    def _painted(self, clock):
        if self._drawn is not None:
            n, changed_at = self._drawn
            self._drawn = None
            _trace({"kind": "drawn", "n": n, "latency": round(time.monotonic() - changed_at, 3)})
        return False

    def close(self):
        self.closed = True
        if self._timer:
            GLib.source_remove(self._timer)
            self._timer = None
        self.config.disconnect(self._notify)

    def _settings(self):
        c = self.config
        if self.proc_name == PROC_STYLE:
            style = c.get_property("style")
        else:
            gfile = c.get_property("style-file")
            style = gfile.get_path() if gfile is not None else None
            if not style or not os.path.isfile(style):
                return None
        return {"style": style, "strength": float(c.get_property("strength")),
                "preserve_color": bool(c.get_property("preserve-color")),
                "stroke_scale": float(c.get_property("brush-size"))}

    THUMB_SIDE = 96

    def _show_thumbnail(self):
        gfile = self.config.get_property("style-file")
        path = gfile.get_path() if gfile is not None else None
        pixbuf, text = None, "Style image: none chosen"
        if path and os.path.isfile(path):
            name = os.path.basename(path)
            if path.lower().endswith(".pt"):
                text = f"Style code: {name}"
            else:
                try:
                    pixbuf = GdkPixbuf.Pixbuf.new_from_file_at_scale(path, self.THUMB_SIDE,
                                                                      self.THUMB_SIDE, True)
                    text = f"Style image: {name}"
                except GLib.Error:  # GDK cannot read it; the worker's Pillow may still
                    text = f"Style image: {name} (no thumbnail)"
        if pixbuf is not None:
            self.thumb.set_from_pixbuf(pixbuf)
        else:
            self.thumb.clear()
        self.thumb_label.set_text(text)
        if pixbuf is not None:
            _trace({"kind": "thumbnail", "n": 0, "path": path, "width": pixbuf.get_width(),
                    "height": pixbuf.get_height()}, _rgb_bytes(pixbuf))

    def _changed(self, config, pspec):
        if self.closed:
            return
        if pspec.name == "style-file" and self.thumb is not None:
            self._show_thumbnail()
        if pspec.name in ("output", "refine-steps"):  # not what the preview shows
            return
        self._changed_at = time.monotonic()
        _trace({"kind": "changed", "setting": pspec.name})
        if self._timer:
            GLib.source_remove(self._timer)
        self._timer = GLib.timeout_add(self.DELAY_MS, self._start)

    def _start(self):
        self._timer = None
        if self.closed:
            return False
        if self._busy:  # the running render's result is stale: render again when it is back
            self._pending = True
            return False
        settings = self._settings()
        if settings is None:
            self.label.set_text("Preview: choose a style image")
            return False
        self._busy = True
        self.label.set_text("Preview: rendering...")
        threading.Thread(target=self._work, args=(settings, self._changed_at), daemon=True).start()
        return False

    def _work(self, settings, changed_at):
        try:
            event = nsclient.preview(self.cfg, **self.source, **settings)
        except nsclient.WorkerError as exc:
            event = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug: shown in the label, details on stderr
            traceback.print_exc()
            event = {"error": f"{type(exc).__name__}: {exc}"}
        GLib.idle_add(self._show, event, settings, changed_at)

    def _show(self, event, settings, changed_at):
        self._busy = False
        if self.closed:
            return False
        if "error" in event:
            self.label.set_text(f"Preview failed: {event['error']}")
        else:
            w, h = event["width"], event["height"]
            pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(event["pixels"]),
                                                     GdkPixbuf.Colorspace.RGB, False, 8, w, h, w * 3)
            self.image.set_from_pixbuf(pixbuf)
            rh, rw = event["render_size"]
            note = (" - brush strokes drawn larger than in the result (brush size too small to "
                    "preview on a layer this large)" if event.get("reduced") else "")
            self.label.set_text(f"Preview: painted at {rw}x{rh} as the result will be, "
                                f"{event['seconds']:.2f} s{note}")
            self._count += 1
            _trace({"kind": "preview", "n": self._count, "settings": settings,
                    "width": w, "height": h, "render_size": [rh, rw], "reduced": event.get("reduced"),
                    "seconds": event["seconds"], "stages": event.get("stages"),
                    "latency": round(time.monotonic() - changed_at, 3)}, event["pixels"])
            if _tracing():  # when its pixels are on the screen: the next frame GTK paints
                self._drawn = (self._count, changed_at)
                clock = self.image.get_frame_clock()
                if clock is not None and self._clock is None:
                    self._clock = clock
                    clock.connect("after-paint", self._painted)
        if self._pending:
            self._pending = False
            self._start()
        return False


Gimp.main(NormstyleGimp.__gtype__, sys.argv)
