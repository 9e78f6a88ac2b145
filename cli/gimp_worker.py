"""The normstyle worker: runs in the user's normstyle environment (torch), serves the GIMP plug-in.

GIMP's own Python has no torch, so the plug-in (``normstyle_gimp/normstyle_gimp.py``) hands
pixels to this process. Two ways to run it, one protocol::

    python -m cli.gimp_worker --stdio                     # one session on stdin/stdout
    python -m cli.gimp_worker --serve SOCKET [--idle-timeout S] [--client-timeout S]
                              [--model FILE] [--shared]

``--shared`` is ``normstyle gimp serve``: a worker the user starts outside GIMP (for a
sandboxed GIMP that cannot start a host Python), whose private folder is made next to the
socket, in the folder both sides see, and which renders with ``--model`` when a request names
no model.

``--serve`` listens on a Unix-domain socket and keeps the model loaded between calls, so the
model loads once per GIMP session; it exits after ``--idle-timeout`` seconds without a client
(default 900). Each connection is served on its own thread, so one client never waits for
another one's silence; renders take turns on the one model (a waiting client is told so in a
``progress`` event). A connection that sends nothing for ``--client-timeout`` seconds (default
60) is closed. The plug-in starts the worker on first use (see ``nsclient.py``).

Protocol (version 2): each message is one line of UTF-8 JSON (at most 1 MiB). The client sends
requests (``"op"``); the worker answers with events (``"event"``). Every request ends with
exactly one final event (``hello``, ``styles``, ``done``, ``bye`` or ``error``); ``stylize`` may
send ``progress`` events before it. A line that is not a request (not JSON, nested too deeply,
too long, not an object, fields of the wrong type) gets one ``error`` and the session goes on.

=============  ===============================================  ===============================
op             request fields                                   final event
=============  ===============================================  ===============================
``hello``      --                                               ``{"event": "hello",
                                                                "protocol": 2, "version", "pid",
                                                                "python", "workdir"}``
``styles``     ``model`` (path or null = default model),        ``{"event": "styles",
               ``device``, ``precision``                        "styles": [names], "model"}``
``stylize``    ``input`` (raw pixel file), ``width``,            ``{"event": "done", "seconds",
               ``height``, ``channels`` (3 RGB or 4 RGBA),      "output"}``
               ``dtype`` (``u8``/``u16``/``float``),
               ``style`` (built-in name, style image or .pt
               code), ``strength`` (0..1), ``preserve_color``,
               ``refine_steps`` (optional, 0: fit a style
               image's code on the layer first), ``stroke_scale``
               (optional, 1: Stylizer.stylize's), ``model``,
               ``device``, ``precision`` (optional, as the
               CLI's ``--precision``), ``output``
               (optional, see below)
``preview``    as ``stylize`` (``refine_steps`` and ``output``      ``{"event": "preview",
               are not used), and ``max_side`` (the preview's    "output", "width", "height",
               longest side, default 256), ``max_pixels``        "render_size": [h, w],
               (the largest render, default 400000)              "reduced", "seconds",
                                                                "stages"}``
``shutdown``   --                                               ``{"event": "bye"}``
=============  ===============================================  ===============================

``preview`` shows what ``stylize`` will give, small: the layer is brought to the size the full
render paints at (the core's working size for its ``stroke_scale``), painted there, and
scaled down to fit ``max_side``; the output is raw 8-bit RGB (``width`` x ``height`` x 3).
Where that working size is above ``max_pixels`` (a brush size below 1, or 0, on a big layer)
it paints at ``max_pixels`` instead, and says so (``reduced``: the strokes look larger than in
the full render). Without ``reduced``, scaling the full render down gives the preview up to
the guided upsampling's residual, the fine detail of a layer four times the working size or more
(a band too fine to show at the working size) and the 8-bit rounding; such a layer's preview is
painted with the code the full render uses (corrected by the feedback step).

A dialog asks for many previews of one layer file, so the worker keeps what they share: the
layer's pixels, its working-size content per brush size, a style file's code, and the painting
at full strength per style and brush size. A strength change only fades that painting into the
content again, as the core fades a picture painted at its own size (:mod:`normstyle_core.fade`);
the preview is the same, to the bit, as one painted from scratch. The cache goes with the layer
file (a new dialog's file replaces it; a file that is gone is forgotten).

``{"event": "progress", "fraction": 0..1, "message": str}`` reports progress;
``{"event": "error", "kind": str, "message": str}`` ends a failed request with one line for
the user (``kind`` is the core's exception class, or ``ProtocolError`` / ``InternalError``).

Cancelling: a client that goes away (GIMP ends the plug-in when the user cancels its progress)
stops its render at the next progress event (the write fails), so the worker is free for the
next request; nothing the cancelled request made is kept.

The worker writes only into its own private folder (``workdir`` in ``hello``): the result of
``stylize`` is a new file there, named by ``done``'s ``output``; a request may name the file
(``output``), but only inside that folder, anything else is refused. The client takes the
result (moves it away) before it ends the session: results still there when a session ends are
deleted, and the folder goes when the worker exits.

Pixel files are raw, row-major, interleaved, in the machine's byte order (``u8``: uint8,
``u16``: uint16, ``float``: float32, non-linear sRGB values nominally in [0, 1], as GEGL's
``R'G'B'A float``). The output has the input's layout; the alpha channel is copied unchanged.
8-bit results are rounded exactly like :meth:`Stylizer.stylize`; ``u16``/``float`` results keep
the network's float output.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from normstyle_core.options import STROKE_SCALE  # torch-free

if TYPE_CHECKING:  # the worker imports torch and the core only when a request needs them
    from normstyle_core.options import RenderOptions

PROTOCOL = 2
DTYPES = {"u8": "uint8", "u16": "uint16", "float": "float32"}
SCALE = {"u8": 255.0, "u16": 65535.0, "float": 1.0}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_IDLE_TIMEOUT = 900.0
PREVIEW_MAX_SIDE = 256  # pixels: the dialog's preview area
# The largest preview render: twice the working size of brush size 1 (stroke_scale.REFERENCE_PIXELS),
# so brush sizes down to 0.7 are previewed as they will be rendered.
PREVIEW_MAX_PIXELS = 400_000
# What the worker keeps of the layer a dialog previews: its pixels (if no larger than this, so
# that a brush size change does not read the file again), its last few working-size contents
# and full-strength paintings (a strength change only fades the painting into the layer again).
PREVIEW_KEEP_BYTES = 256 << 20
PREVIEW_KEEP_SIZES = 4
PREVIEW_KEEP_PAINTINGS = 8
# The plug-in sends its request as soon as it connects and reads every event; a connection
# silent this long is a client that hung or forgot to close.
DEFAULT_CLIENT_TIMEOUT = 60.0
MAX_CLIENTS = 16  # connections served at once; each idle one is closed after the client timeout
MAX_LINE = 1 << 20  # a request is a few hundred bytes (paths and options)
MAX_STROKE_SCALE = STROKE_SCALE.maximum  # the setting's one declaration (normstyle_core.options)
MAX_REFINE_STEPS = 1000  # the plug-in's dialog allows up to this many
MAX_SIDE = 524288  # GIMP's largest image side (GIMP_MAX_IMAGE_SIZE)
WORKDIR_PREFIX = "normstyle-worker-"
_ACCEPT_POLL = 0.5  # seconds: how soon the server notices a shutdown or its idle timeout

log = logging.getLogger("cli.gimp_worker")


class ProtocolError(Exception):
    """A malformed request (a bug in the client, not the user's fault)."""


Emit = Callable[[dict], None]
_REQUIRED = object()


class Worker:
    """Holds the loaded model between requests; one instance per worker process.

    Thread-safe: requests from several connections may arrive at once; the model is used by
    one of them at a time. ``temp_root``: where the private output folder is made (default:
    the system's temp folder).
    """

    def __init__(self, *, temp_root: Path | None = None, default_model: str | None = None) -> None:
        self._stylizer = None
        self._default_model = default_model  # used when a request names no model (gimp serve)
        self._preview_cache: dict | None = None  # the previewed layer (see _preview_layer)
        self._key: tuple | None = None
        self._model_lock = threading.Lock()
        self._dir_lock = threading.Lock()
        self._temp_root = Path(temp_root) if temp_root is not None else None
        self._workdir: Path | None = None

    # ------------------------------------------------------------------ private folder
    @property
    def workdir(self) -> Path:
        """This worker's own folder (mode 0700, made on first use): the only place it writes."""
        with self._dir_lock:
            if self._workdir is None:
                root = self._temp_root or Path(tempfile.gettempdir())
                _remove_stale_workdirs(root=root)
                made = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=root)
                self._workdir = Path(os.path.realpath(made))
            return self._workdir

    def close(self) -> None:
        """Delete the private folder and whatever is still in it."""
        with self._dir_lock:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def output_path(self, value: Any) -> Path:
        """Where a result goes: a fresh name in the private folder, or the request's ``output``
        if (and only if) it names a file directly in that folder."""
        folder = self.workdir
        if value is None:
            return folder / f"result-{secrets.token_hex(8)}.raw"
        refusal = (f"refusing to write {_short(value)}: the worker writes only into its own "
                   f"folder {folder} (leave 'output' out and 'done' names the result; a plug-in "
                   "that sends it is older than this worker: run `normstyle gimp install`)")
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ProtocolError(refusal)
        path = Path(value)
        if (not path.is_absolute() or path.name in ("", ".", "..")
                or Path(os.path.realpath(path.parent)) != folder):
            raise ProtocolError(refusal)
        target = folder / path.name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ProtocolError(refusal)
        return target

    # ------------------------------------------------------------------ model
    def stylizer(self, model: str | None, device: str = "auto", emit: Emit | None = None, *,
                 precision: str = "auto"):
        """The loaded model; call with the model lock held (see :meth:`_using_model`)."""
        from normstyle_core import Stylizer, default_model_path

        model = model or self._default_model
        path = Path(model).expanduser() if model else default_model_path()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None  # Stylizer.load raises the user-facing error
        key = (str(path), mtime, device, precision)
        if self._stylizer is None or self._key != key:
            if emit:
                emit({"event": "progress", "fraction": 0.02, "message": "Loading the model"})
            t0 = time.perf_counter()
            self._stylizer = Stylizer.load(path, device=device, precision=precision)
            self._key = key
            log.info("loaded %s on %s (%s) in %.2f s", path, device, precision,
                     time.perf_counter() - t0)
        return self._stylizer

    @contextlib.contextmanager
    def _using_model(self, emit: Emit | None) -> Iterator[None]:
        # Renders take turns: two at once would only share the same cores (and double the memory).
        if not self._model_lock.acquire(blocking=False):
            if emit:
                emit({"event": "progress", "fraction": 0.0,
                      "message": "Waiting for another Style Transfer to finish"})
            self._model_lock.acquire()
        try:
            yield
        finally:
            self._model_lock.release()

    # ------------------------------------------------------------------ requests
    def handle(self, req: Any, emit: Emit, *, produced: list[Path] | None = None) -> bool:
        """Answer one request; returns False when the worker should stop. ``produced`` collects
        the result files written for this session."""
        try:
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ProtocolError("a request is a JSON object with a string 'op'")
            op = req["op"]
            if op == "hello":
                emit({"event": "hello", "protocol": PROTOCOL, "version": _version(),
                      "pid": os.getpid(), "python": sys.executable, "workdir": str(self.workdir)})
            elif op == "styles":
                model, device, precision = _placement_fields(req)
                with self._using_model(None):
                    st = self.stylizer(model, device, precision=precision)
                    names = sorted(st.style_bank)
                emit({"event": "styles", "styles": names, "model": st.info.get("path")})
            elif op == "stylize":
                seconds, output = self.stylize(req, emit)
                if produced is not None:
                    produced.append(output)
                emit({"event": "done", "seconds": round(seconds, 3), "output": str(output)})
            elif op == "preview":
                event = self.preview(req, emit)
                if produced is not None:
                    produced.append(Path(event["output"]))
                emit(event)
            elif op == "shutdown":
                emit({"event": "bye"})
                return False
            else:
                raise ProtocolError(f"unknown op {_short(op)}")
        except (BrokenPipeError, ConnectionResetError):
            raise
        except ProtocolError as exc:
            emit({"event": "error", "kind": "ProtocolError", "message": str(exc)})
        except MemoryError:
            emit({"event": "error", "kind": "MemoryError",
                  "message": "out of memory: the layer (or selection) is too large for this machine"})
        except Exception as exc:  # noqa: BLE001
            if _is_user_error(exc):  # the core's NormstyleError: one line for the user
                emit({"event": "error", "kind": type(exc).__name__, "message": _one_line(exc)})
            else:  # a bug or a broken installation: keep the worker alive, log the traceback
                log.error("internal error:\n%s", traceback.format_exc())
                emit({"event": "error", "kind": "InternalError",
                      "message": "internal error in the normstyle worker: "
                                 f"{type(exc).__name__}: {_one_line(exc)}"})
        return True

    def stylize(self, req: dict, emit: Emit) -> tuple[float, Path]:
        """Render one request; returns (seconds, the result file in the private folder)."""
        import numpy as np

        t0 = time.perf_counter()
        self.drop_preview_cache()  # OK was pressed: the dialog's layer file is gone
        r = _render_fields(req)
        src, w, h, c, dtype = r["src"], r["w"], r["h"], r["c"], r["dtype"]
        model, device, precision = r["model"], r["device"], r["precision"]
        refine_steps = _field(req, "refine_steps", types=(int,), default=0, what="a whole number")
        if not 0 <= refine_steps <= MAX_REFINE_STEPS:
            raise ProtocolError(f"refine_steps must be 0..{MAX_REFINE_STEPS}, got {_short(refine_steps)}")
        dst = self.output_path(req.get("output"))
        _check_input(r)

        with self._using_model(emit):
            st = self.stylizer(model, device, emit, precision=precision)
            data = np.fromfile(src, dtype=DTYPES[dtype]).reshape(h, w, c)
            rgb = render_float(st, data[..., :3].astype(np.float32) / SCALE[dtype], style=r["style"],
                               options=r["options"], refine_steps=refine_steps,
                               progress=lambda f, msg: emit({"event": "progress", "fraction": f,
                                                             "message": msg}))
            if w * h >= 1 << 20:
                emit({"event": "progress", "fraction": 0.97, "message": "Writing the result"})
        out = np.empty_like(data)
        if dtype == "float":
            out[..., :3] = rgb
        else:  # same rounding as normstyle_core.imaging.compose
            out[..., :3] = (np.clip(rgb, 0, 1) * SCALE[dtype] + 0.5).astype(out.dtype)
        if c == 4:
            out[..., 3] = data[..., 3]
        from normstyle_core.atomic import write_atomically

        # the private folder: owner-only like the rest of it
        write_atomically(dst, write=out.tofile, prefix=".part-", private=True)
        return time.perf_counter() - t0, dst

    def preview(self, req: dict, emit: Emit) -> dict:
        """A small render of what ``stylize`` gives with the same fields (see the module doc)."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        from normstyle_core import imaging
        from normstyle_core.fade import fade
        from normstyle_core.render_plan import RenderPlan

        t0 = time.perf_counter()
        r = _render_fields(req)
        max_side = _field(req, "max_side", types=(int,), default=PREVIEW_MAX_SIDE, what="a whole number")
        max_pixels = _field(req, "max_pixels", types=(int,), default=PREVIEW_MAX_PIXELS, what="a whole number")
        if not (16 <= max_side <= 4096 and 256 <= max_pixels <= 16_000_000):
            raise ProtocolError(f"bad preview size {_short(max_side)} / {_short(max_pixels)}")
        _check_input(r)
        h, w = r["h"], r["w"]
        try:
            plan = RenderPlan.for_photo(h, w, stroke_scale=r["options"].stroke_scale,
                                        feedback=r["options"].feedback)
        except ValueError as exc:
            raise ProtocolError(f"bad request: {exc}") from None
        work = plan.working
        # the code the full render will use: corrected by the feedback step where the layer is
        # camera size (the small render alone would not say so)
        options = dataclasses.replace(r["options"], feedback=plan.feedback)
        # (working_size rounds each side: brush size 1 may land a few pixels above the budget)
        reduced = work[0] * work[1] > max_pixels * 1.01
        if reduced:  # paint at the budget instead: strokes relatively larger than the render's
            f = math.sqrt(max_pixels / (h * w))
            work = (max(16, int(h * f)), max(16, int(w * f)))
            options = dataclasses.replace(options, stroke_scale=0.0)
        dst = self.workdir / f"preview-{secrets.token_hex(8)}.raw"
        stages = {}  # where the time went (the answer's "stages"; benchmarks/gimp_preview.py)
        with self._using_model(emit):
            mark = time.perf_counter()
            stages["wait"] = mark - t0
            st = self.stylizer(r["model"], r["device"], emit, precision=r["precision"])
            stages["model"], mark = time.perf_counter() - mark, time.perf_counter()
            content = self._preview_content(r, work)
            stages["layer"], mark = time.perf_counter() - mark, time.perf_counter()
            # at the working size the core paints as is (working_size(work) == work), so this is
            # the painting that stylize_array guides back up to the layer's size; painted at full
            # strength and kept, so that a strength change only fades it into the layer again
            painting = self._preview_painting(st, r, work, content, options)
            stages["paint"], mark = time.perf_counter() - mark, time.perf_counter()
        strength = options.strength
        if strength < 1.0:  # as stylize_array fades a picture painted at its own size
            painting = fade(torch.from_numpy(content), torch.from_numpy(painting), strength=strength).numpy()
        scale = min(1.0, max_side / max(work))
        size = (max(1, round(work[0] * scale)), max(1, round(work[1] * scale)))
        if size != work:
            t = torch.from_numpy(np.ascontiguousarray(painting)).permute(2, 0, 1)[None]
            painting = F.interpolate(t, size=size, mode="bilinear", antialias=True,
                                     align_corners=False)[0].permute(1, 2, 0).numpy()
        imaging.to_uint8(painting).tofile(dst)
        stages["fade+scale+write"] = time.perf_counter() - mark
        return {"event": "preview", "output": str(dst), "width": size[1], "height": size[0],
                "render_size": list(work), "reduced": reduced,
                "seconds": round(time.perf_counter() - t0, 3),
                "stages": {k: round(v, 3) for k, v in stages.items()}}

    def _preview_layer(self, r: dict) -> dict:
        """The cache of the layer a dialog previews (its pixels, its working-size contents, its
        paintings): a dialog asks for many previews of one layer file. Another file starts a
        new one; a cache whose file is gone (the dialog closed) is dropped."""
        src = r["src"]
        stat_ = src.stat()
        key = (str(src), stat_.st_mtime_ns, stat_.st_size, r["w"], r["h"], r["c"], r["dtype"])
        layer = self._preview_cache
        if layer is None or layer["key"] != key:
            layer = self._preview_cache = {"key": key, "pixels": None, "content": OrderedDict(),
                                           "paintings": OrderedDict(), "codes": {}}
        return layer

    def drop_preview_cache(self) -> None:
        """Forget the previewed layer once its file is gone (its dialog closed): the memory of
        a camera-size layer's pixels is not kept for the worker's whole life."""
        layer = self._preview_cache
        if layer is not None and not os.path.exists(layer["key"][0]):
            self._preview_cache = None

    def _preview_content(self, r: dict, work: tuple[int, int]):
        """The layer at the working size, as the core brings it there (float (h, w, 3)); the
        layer's pixels are kept (up to PREVIEW_KEEP_BYTES) so that another brush size does not
        read the file again."""
        import numpy as np
        import torch.nn.functional as F

        layer = self._preview_layer(r)
        contents = layer["content"]
        if work in contents:
            contents.move_to_end(work)
            return contents[work]
        data = layer["pixels"]
        if data is None:
            data = np.fromfile(r["src"], dtype=DTYPES[r["dtype"]]).reshape(r["h"], r["w"], r["c"])
            if data.nbytes <= PREVIEW_KEEP_BYTES:
                layer["pixels"] = data
        rgb = _layer_rgb(data, r["dtype"])
        if work != tuple(rgb.shape[:2]):  # as Stylizer.stylize_array brings a large photo to its working size
            full = rgb.permute(2, 0, 1)[None]
            rgb = F.interpolate(full, size=work, mode="bilinear", antialias=True, align_corners=False)
            rgb = rgb.clamp_(0, 1)[0].permute(1, 2, 0).contiguous()
        content = rgb.numpy()
        contents[work] = content
        while len(contents) > PREVIEW_KEEP_SIZES:
            contents.popitem(last=False)
        return content

    def _preview_painting(self, st, r: dict, work: tuple[int, int], content, options):
        """The painting of ``content`` at full strength, as :meth:`Stylizer.stylize_array` paints
        it (kept per style, brush size and colour setting). A style file's code is read once."""
        from normstyle_core import imaging

        layer = self._preview_layer(r)
        style = r["style"]
        path = Path(style).expanduser()
        try:  # a file (style image, .pt code): its code is kept while the file is unchanged
            info = path.stat() if path.is_file() and style not in st.style_bank else None
        except OSError:
            info = None
        style_key = (style, info.st_mtime_ns, info.st_size) if info else (style,)
        key = (self._key, style_key, work, options.preserve_color, options.feedback, options.stroke_scale)
        paintings = layer["paintings"]
        if key in paintings:
            paintings.move_to_end(key)
            return paintings[key]
        codes = layer["codes"]
        code_key = (self._key, style_key)
        code = codes.get(code_key)
        if code is None:
            code = st.style(style)
            if info is not None:
                codes[code_key] = code
        # corrected on this content by the feedback step where the full render corrects it
        code = st.code_for(code, imaging.to_tensor(content), feedback=options.feedback)
        painting = st.stylize_array(content, style=code, options=dataclasses.replace(options, strength=1.0))
        paintings[key] = painting
        while len(paintings) > PREVIEW_KEEP_PAINTINGS:
            paintings.popitem(last=False)
        return painting


def _layer_rgb(data, dtype: str):
    """A layer's pixels (H, W, C) as a float32 (H, W, 3) tensor in [0, 1]: the values
    :func:`render_float` makes of them (u8 / 255, u16 / 65535, floats with NaN as 0, clipped),
    converted by torch on every core."""
    import torch

    t = torch.from_numpy(data)[..., :3]
    if dtype == "float":
        return torch.nan_to_num(t, nan=0.0).clamp_(0, 1).contiguous()
    return t.to(torch.float32).div_(SCALE[dtype]).contiguous()


def _render_fields(req: dict) -> dict:
    """The fields ``stylize`` and ``preview`` share, checked; the render settings as the
    library's :class:`~normstyle_core.options.RenderOptions` (as the CLI's ``stylize`` builds)."""
    from normstyle_core.options import RenderOptions

    src = Path(_field(req, "input", types=(str,), what="a file path"))
    w = _field(req, "width", types=(int,), what="a whole number")
    h = _field(req, "height", types=(int,), what="a whole number")
    c = _field(req, "channels", types=(int,), default=4, what="3 or 4")
    dtype = _field(req, "dtype", types=(str,), default="u8", what="'u8', 'u16' or 'float'")
    style = _field(req, "style", types=(str,), what="a style name or file path")
    strength = _field(req, "strength", types=(int, float), default=1.0, what="a number")
    preserve = _field(req, "preserve_color", types=(bool,), default=False, what="true or false")
    stroke_scale = _field(req, "stroke_scale", types=(int, float), default=1.0, what="a number")
    model, device, precision = _placement_fields(req)
    try:
        strength = float(strength)
    except OverflowError:  # an integer beyond float's range
        strength = math.inf
    if not math.isfinite(strength):
        raise ProtocolError(f"bad request: 'strength' must be a finite number, got {strength!r}")
    try:
        stroke_scale = float(stroke_scale)
    except OverflowError:
        stroke_scale = math.inf
    if not (math.isfinite(stroke_scale) and 0 <= stroke_scale <= MAX_STROKE_SCALE):
        raise ProtocolError(f"bad request: 'stroke_scale' must be 0..{MAX_STROKE_SCALE}, got {_short(stroke_scale)}")
    if dtype not in DTYPES or c not in (3, 4) or not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise ProtocolError(f"unsupported layout {_short(w)}x{_short(h)}x{_short(c)} {_short(dtype)}")
    # a strength outside 0..1 is the user's setting, not a malformed request: RenderOptions
    # refuses it with the core's StyleError, as Stylizer.stylize does
    options = RenderOptions(strength=strength, preserve_color=preserve, stroke_scale=stroke_scale)
    return dict(src=src, w=w, h=h, c=c, dtype=dtype, style=style, options=options, model=model,
                device=device, precision=precision)


def _check_input(r: dict) -> None:
    import numpy as np

    expected = r["w"] * r["h"] * r["c"] * np.dtype(DTYPES[r["dtype"]]).itemsize
    try:
        size = r["src"].stat().st_size if r["src"].is_file() else None
    except (OSError, ValueError):
        size = None
    if size != expected:
        raise ProtocolError(f"{_short(str(r['src']))}: expected {expected} bytes of "
                            f"{r['w']}x{r['h']}x{r['c']} {r['dtype']}")


def render_float(st, rgb, *, style, options: RenderOptions | None = None, refine_steps: int = 0,
                 progress: Callable[[float, str], None] | None = None):
    """:meth:`Stylizer.stylize_array` for a layer: float (H, W, 3) in, float (H, W, 3) in [0, 1]
    out, so high bit-depth layers keep their precision. ``refine_steps``: a style image's code is
    first fitted on this layer (:meth:`Stylizer.refine`); names and codes are used as is."""
    import numpy as np

    from normstyle_core.imaging import LoadedImage
    from normstyle_core.options import RenderOptions

    options = options or RenderOptions()
    rgb = np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0).astype(np.float32)
    report = progress or (lambda f, m: None)
    report(0.05, "Reading the style")
    refine = None
    if refine_steps:
        from normstyle_core.refine import RefineConfig

        def refine(path):
            return st.refine(path, [LoadedImage(rgb=rgb)], config=RefineConfig(steps=refine_steps), name=path.stem,
                             progress=lambda i, n, loss: report(0.05 + 0.8 * i / n, f"Refining the style {i}/{n}"))
    code = st.style(style, from_image_file=refine)
    start = 0.85 if refine_steps else 0.1
    h, w = rgb.shape[:2]
    try:
        from normstyle_core.stroke_scale import working_size
        wh, ww = working_size(h, w, stroke_scale=options.stroke_scale)
    except ValueError:
        wh, ww = h, w  # stylize_array reports the bad value
    first_compile = bool(getattr(st, "compile", False)) and not st.compile_cache_warm

    def say(f, msg):
        # the core's phases, told with what a user can relate to: the size painted at, the one
        # slow first compile on this machine
        if msg == "Rendering":
            msg = f"Painting at {ww}x{wh}" + (" (a large layer is painted smaller and brought "
                                              "back to full size)" if (wh, ww) != (h, w) else "")
            if first_compile:
                msg = "Compiling the network for this computer (first use only, up to a minute); " + msg[0].lower() + msg[1:]
        report(start + (0.95 - start) * f, msg)

    return st.stylize_array(rgb, style=code, options=options, progress=say)


def _field(req: dict, name: str, *, types: tuple[type, ...], default: Any = _REQUIRED,
           what: str) -> Any:
    """``req[name]`` if it has one of ``types`` (JSON true/false is not a number here)."""
    if name not in req:
        if default is _REQUIRED:
            raise ProtocolError(f"bad stylize request: {name!r} is missing")
        return default
    value = req[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ProtocolError(f"bad request: {name!r} must be {what}, got {_short(value)}")
    return value


def _placement_fields(req: dict) -> tuple[str | None, str, str]:
    model = _field(req, "model", types=(str, type(None)), default=None, what="a file path or null")
    device = _field(req, "device", types=(str,), default="auto", what="'auto', 'cpu' or 'cuda[:n]'")
    precision = _field(req, "precision", types=(str,), default="auto", what="one of " + ", ".join(PRECISIONS))
    if precision not in PRECISIONS:
        raise ProtocolError(f"bad request: 'precision' must be one of {', '.join(PRECISIONS)}, "
                            f"got {_short(precision)}")
    if model is not None and (not model or "\x00" in model):
        raise ProtocolError(f"bad request: 'model' must be a file path, got {_short(model)}")
    return model, device, precision


def _short(value: Any, *, limit: int = 80) -> str:
    """A request's value for an error message: one line, bounded (containers by type only)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
        return text if len(text) <= limit else text[:limit] + "...'"
    return f"a JSON {'array' if isinstance(value, list) else type(value).__name__}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _is_user_error(exc: BaseException) -> bool:
    # by name, so that a core that fails to import is still reported (as an internal error)
    return any(c.__name__ == "NormstyleError" for c in type(exc).__mro__)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("normstyle")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "unknown"


def _remove_stale_workdirs(*, root: Path) -> None:
    """Private folders of this user's workers that were killed before they could clean up."""
    pattern = re.compile(re.escape(WORKDIR_PREFIX) + r"(\d+)-[A-Za-z0-9_]+")
    try:
        candidates = list(root.iterdir())
    except OSError:
        return
    for folder in candidates:
        match = pattern.fullmatch(folder.name)
        if not match:
            continue
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            os.kill(int(match[1]), 0)
        except ProcessLookupError:  # its worker is gone
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, OverflowError):  # alive (or not ours to judge)
            continue


# ---------------------------------------------------------------------- transports
def _error_event(message: str) -> dict:
    return {"event": "error", "kind": "ProtocolError", "message": message}


def _skip_rest_of_line(rfile: BinaryIO) -> None:
    while True:
        chunk = rfile.readline(1 << 16)
        if not chunk or chunk.endswith(b"\n"):
            return


def serve_stream(worker: Worker, rfile: BinaryIO, wfile: BinaryIO, *, max_line: int = MAX_LINE) -> bool:
    """Answer requests from one stream until EOF; False when a shutdown was asked.

    Results the client left in the worker's folder are deleted when the stream ends.
    """

    def emit(event: dict) -> None:
        wfile.write(json.dumps(event).encode() + b"\n")
        wfile.flush()

    produced: list[Path] = []
    try:
        while True:
            line = rfile.readline(max_line + 1)
            if not line:
                return True
            if len(line) > max_line and not line.endswith(b"\n"):
                _skip_rest_of_line(rfile)  # read in bounded pieces: never held whole
                emit(_error_event(f"request longer than {max_line} bytes"))
                continue
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except RecursionError:
                emit(_error_event("request nested too deeply"))
                continue
            except ValueError:  # also invalid UTF-8 and numbers with too many digits
                emit(_error_event("request is not JSON"))
                continue
            if not worker.handle(req, emit, produced=produced):
                return False
    finally:
        for path in produced:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def serve_socket(path: str, idle_timeout: float = DEFAULT_IDLE_TIMEOUT, *,
                 client_timeout: float = DEFAULT_CLIENT_TIMEOUT, max_clients: int = MAX_CLIENTS,
                 shared: bool = False, default_model: str | None = None) -> int:
    """Listen on a Unix-domain socket, a thread per connection; exit after ``idle_timeout``
    seconds without a connection (0: never). A connection silent for ``client_timeout`` seconds
    is closed (0: never). ``shared``: the private folder is made next to the socket, where a
    sandboxed plug-in that reaches the socket also reaches the files (``normstyle gimp serve``)."""
    sock_path = Path(path)
    sock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sock_path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(sock_path))
        except OSError:
            sock_path.unlink(missing_ok=True)  # stale: its worker is gone
        else:
            log.info("another worker already serves %s", sock_path)
            return 0
        finally:
            probe.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is for this user only
    try:
        server.bind(str(sock_path))
    except OSError as exc:  # lost a race against a worker started at the same time
        log.info("cannot bind %s (%s); leaving it to the other worker", sock_path, exc)
        server.close()
        return 0
    finally:
        os.umask(old_umask)
    server.listen(max_clients)
    server.settimeout(_ACCEPT_POLL)
    log.info("worker %d serving %s (idle timeout %.0f s, client timeout %.0f s)", os.getpid(),
             sock_path, idle_timeout, client_timeout)
    worker = Worker(temp_root=sock_path.parent if shared else None, default_model=default_model)
    stop = threading.Event()
    guard = threading.Lock()
    sessions: dict[socket.socket, threading.Thread] = {}
    last_active = [time.monotonic()]

    def session(conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as rf, conn.makefile("wb") as wf:
                if not serve_stream(worker, rf, wf):
                    stop.set()
        except TimeoutError:
            log.info("closed a connection silent for %.0f s", client_timeout)
        except (BrokenPipeError, ConnectionResetError):
            # the plug-in went away mid-request (GIMP ends it when the user cancels): its render
            # stopped at its next progress event
            log.info("a client went away during a request (cancelled); render stopped")
        except Exception:  # noqa: BLE001 - never let one bad connection end the worker
            log.error("connection failed:\n%s", traceback.format_exc())
        finally:
            with guard:
                sessions.pop(conn, None)
                last_active[0] = time.monotonic()

    finished = False
    try:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                worker.drop_preview_cache()  # a dialog closed: its layer's pixels go
                with guard:
                    idle = not sessions and time.monotonic() - last_active[0] >= idle_timeout
                if idle_timeout > 0 and idle:
                    log.info("idle for %.0f s: exiting", idle_timeout)
                    break
                continue
            conn.settimeout(client_timeout if client_timeout > 0 else None)
            with guard:
                busy = len(sessions) >= max_clients
                if not busy:
                    thread = threading.Thread(target=session, args=(conn,), daemon=True,
                                              name=f"normstyle-client-{conn.fileno()}")
                    sessions[conn] = thread
                last_active[0] = time.monotonic()
            if busy:
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(1.0)
                    conn.sendall(json.dumps(_error_event(
                        f"the normstyle worker is busy (it serves at most {max_clients} "
                        "connections at once); try again")).encode() + b"\n")
                continue
            thread.start()
        finished = True
    finally:
        server.close()
        with contextlib.suppress(OSError):
            if sock_path.exists() and sock_path.is_socket():
                sock_path.unlink()
        with guard:
            open_sessions = list(sessions.items())
        if finished:  # shutdown asked or idle: let running requests answer, end silent sessions
            for conn, _ in open_sessions:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RD)
            for _, thread in open_sessions:
                thread.join()
        worker.close()
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # SIGTERM (logout, `kill`) unwinds like an exit, so the socket and the private folder go
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cli.gimp_worker", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve one session on stdin/stdout")
    mode.add_argument("--serve", metavar="SOCKET", help="serve on a Unix-domain socket")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                   help="--serve: exit after this many seconds without a connection (0: never)")
    p.add_argument("--client-timeout", type=float, default=DEFAULT_CLIENT_TIMEOUT,
                   help="--serve: close a connection silent for this many seconds (0: never)")
    p.add_argument("--log", metavar="FILE", help="append log messages to FILE")
    p.add_argument("--shared", action="store_true",
                   help="--serve: files are exchanged in the socket's folder (normstyle gimp serve)")
    p.add_argument("--model", metavar="FILE", help="model for requests that name none")
    args = p.parse_args(argv)
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.stdio:
        # stdout carries the protocol; anything else printing there would corrupt it
        out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        sys.stdout = sys.stderr
        worker = Worker(default_model=args.model)
        try:
            serve_stream(worker, sys.stdin.buffer, out)
        finally:
            worker.close()
        return 0
    return serve_socket(args.serve, args.idle_timeout, client_timeout=args.client_timeout,
                        shared=args.shared, default_model=args.model)


if __name__ == "__main__":
    sys.exit(main())
