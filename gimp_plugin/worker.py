"""The normstyle worker: runs in the user's normstyle environment (torch), serves the GIMP plug-in.

GIMP's own Python has no torch, so the plug-in (``normstyle_gimp/normstyle_gimp.py``) hands
pixels to this process. Two ways to run it, one protocol::

    python -m gimp_plugin.worker --stdio                 # one session on stdin/stdout
    python -m gimp_plugin.worker --serve SOCKET [--idle-timeout S]   # long-lived (POSIX)

``--serve`` listens on a Unix-domain socket and keeps the model loaded between calls, so the
model loads once per GIMP session; it exits after ``--idle-timeout`` seconds without a call
(default 900). The plug-in starts it on first use (see ``nsclient.py``).

Protocol (version 1): each message is one line of UTF-8 JSON. The client sends requests
(``"op"``); the worker answers with events (``"event"``). Every request ends with exactly one
final event (``hello``, ``styles``, ``done``, ``bye`` or ``error``); ``stylize`` may send
``progress`` events before it.

=============  ===============================================  ===============================
op             request fields                                   final event
=============  ===============================================  ===============================
``hello``      --                                               ``{"event": "hello",
                                                                "protocol": 1, "version", "pid",
                                                                "python"}``
``styles``     ``model`` (path or null = default model)         ``{"event": "styles",
                                                                "styles": [names], "model"}``
``stylize``    ``input``, ``output`` (raw pixel files),          ``{"event": "done", "seconds"}``
               ``width``, ``height``, ``channels`` (3 RGB or
               4 RGBA), ``dtype`` (``u8``/``u16``/``float``),
               ``style`` (built-in name, style image or .pt
               code), ``strength`` (0..1), ``preserve_color``,
               ``refine_steps`` (optional, 0: fit a style
               image's code on the layer first), ``model``,
               ``device``
``shutdown``   --                                               ``{"event": "bye"}``
=============  ===============================================  ===============================

``{"event": "progress", "fraction": 0..1, "message": str}`` reports progress;
``{"event": "error", "kind": str, "message": str}`` ends a failed request with one line for
the user (``kind`` is the core's exception class, or ``ProtocolError`` / ``InternalError``).

Pixel files are raw, row-major, interleaved, in the machine's byte order (``u8``: uint8,
``u16``: uint16, ``float``: float32, non-linear sRGB values nominally in [0, 1], as GEGL's
``R'G'B'A float``). The output has the input's layout; the alpha channel is copied unchanged.
8-bit results are rounded exactly like :meth:`Stylizer.stylize`; ``u16``/``float`` results keep
the network's float output.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Callable

PROTOCOL = 1
DTYPES = {"u8": "uint8", "u16": "uint16", "float": "float32"}
SCALE = {"u8": 255.0, "u16": 65535.0, "float": 1.0}
DEFAULT_IDLE_TIMEOUT = 900.0
MAX_REFINE_STEPS = 1000  # the plug-in's dialog allows up to this many

log = logging.getLogger("gimp_plugin.worker")


class ProtocolError(Exception):
    """A malformed request (a bug in the client, not the user's fault)."""


Emit = Callable[[dict], None]


class Worker:
    """Holds the loaded model between requests; one instance per worker process."""

    def __init__(self) -> None:
        self._stylizer = None
        self._key: tuple | None = None

    # ------------------------------------------------------------------ model
    def stylizer(self, model: str | None, device: str = "auto", emit: Emit | None = None):
        from normstyle_core import Stylizer, default_model_path

        path = Path(model).expanduser() if model else default_model_path()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None  # Stylizer.load raises the user-facing error
        key = (str(path), mtime, device)
        if self._stylizer is None or self._key != key:
            if emit:
                emit({"event": "progress", "fraction": 0.02, "message": "Loading the model"})
            t0 = time.perf_counter()
            self._stylizer = Stylizer.load(path, device=device)
            self._key = key
            log.info("loaded %s on %s in %.2f s", path, device, time.perf_counter() - t0)
        return self._stylizer

    # ------------------------------------------------------------------ requests
    def handle(self, req: Any, emit: Emit) -> bool:
        """Answer one request; returns False when the worker should stop."""
        try:
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ProtocolError("a request is a JSON object with a string 'op'")
            op = req["op"]
            if op == "hello":
                emit({"event": "hello", "protocol": PROTOCOL, "version": _version(),
                      "pid": os.getpid(), "python": sys.executable})
            elif op == "styles":
                st = self.stylizer(req.get("model"), req.get("device", "auto"))
                emit({"event": "styles", "styles": sorted(st.style_bank), "model": st.info.get("path")})
            elif op == "stylize":
                seconds = self.stylize(req, emit)
                emit({"event": "done", "seconds": round(seconds, 3)})
            elif op == "shutdown":
                emit({"event": "bye"})
                return False
            else:
                raise ProtocolError(f"unknown op {op!r}")
        except (BrokenPipeError, ConnectionResetError):
            raise
        except ProtocolError as exc:
            emit({"event": "error", "kind": "ProtocolError", "message": str(exc)})
        except MemoryError:
            emit({"event": "error", "kind": "MemoryError",
                  "message": "out of memory: the layer (or selection) is too large for this machine"})
        except Exception as exc:  # noqa: BLE001
            if _is_user_error(exc):  # the core's NormstyleError: one line for the user
                emit({"event": "error", "kind": type(exc).__name__, "message": str(exc)})
            else:  # a bug or a broken installation: keep the worker alive, log the traceback
                log.error("internal error:\n%s", traceback.format_exc())
                emit({"event": "error", "kind": "InternalError",
                      "message": f"internal error in the normstyle worker: {type(exc).__name__}: {exc}"})
        return True

    def stylize(self, req: dict, emit: Emit) -> float:
        import numpy as np

        t0 = time.perf_counter()
        try:
            src, dst = Path(req["input"]), Path(req["output"])
            w, h, c = int(req["width"]), int(req["height"]), int(req.get("channels", 4))
            dtype = req.get("dtype", "u8")
            style = req["style"]
            strength = float(req.get("strength", 1.0))
            preserve = bool(req.get("preserve_color", False))
            refine_steps = int(req.get("refine_steps", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad stylize request: {exc!r}") from exc
        if dtype not in DTYPES or c not in (3, 4) or w <= 0 or h <= 0:
            raise ProtocolError(f"unsupported layout {w}x{h}x{c} {dtype}")
        if not 0 <= refine_steps <= MAX_REFINE_STEPS:
            raise ProtocolError(f"refine_steps must be 0..{MAX_REFINE_STEPS}, got {refine_steps}")
        expected = w * h * c * np.dtype(DTYPES[dtype]).itemsize
        if not src.is_file() or src.stat().st_size != expected:
            raise ProtocolError(f"{src}: expected {expected} bytes of {w}x{h}x{c} {dtype}")

        st = self.stylizer(req.get("model"), req.get("device", "auto"), emit)
        data = np.fromfile(src, dtype=DTYPES[dtype]).reshape(h, w, c)
        rgb = render_float(st, data[..., :3].astype(np.float32) / SCALE[dtype], style=style,
                           strength=strength, preserve_color=preserve, refine_steps=refine_steps,
                           progress=lambda f, msg: emit({"event": "progress", "fraction": f,
                                                         "message": msg}))
        out = np.empty_like(data)
        if dtype == "float":
            out[..., :3] = rgb
        else:  # same rounding as normstyle_core.imaging.compose
            out[..., :3] = (np.clip(rgb, 0, 1) * SCALE[dtype] + 0.5).astype(out.dtype)
        if c == 4:
            out[..., 3] = data[..., 3]
        tmp = dst.with_name(dst.name + ".part")
        out.tofile(tmp)
        os.replace(tmp, dst)
        return time.perf_counter() - t0


def render_float(st, rgb, *, style, strength: float = 1.0, preserve_color: bool = False,
                 refine_steps: int = 0, progress: Callable[[float, str], None] | None = None):
    """:meth:`Stylizer.stylize` for float (H, W, 3) input, returning float (H, W, 3) in [0, 1].

    The same steps as ``Stylizer.stylize`` (which returns an 8-bit PIL image) through the core's
    public API, so high bit-depth layers keep their precision. ``refine_steps``: a style image's
    code is first fitted on this layer (:meth:`Stylizer.refine`); names and codes are used as is.
    Without it, a style image's predicted code gets the feedback step on this layer, as in
    ``Stylizer.stylize``.
    """
    import numpy as np

    from normstyle_core import StyleError
    from normstyle_core.imaging import LoadedImage, to_array, to_tensor
    from normstyle_core.stylize import luminance_transfer

    if not 0.0 <= strength <= 1.0:
        raise StyleError(f"strength must be between 0 and 1, got {strength}")
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
    content = to_tensor(rgb)
    code = st.code_for(code, content, strength=strength)  # feedback step, strength: as stylize does
    report(0.85 if refine_steps else 0.1, "Rendering")
    out = st.render(content, code)
    if preserve_color:
        out = luminance_transfer(out, content.to(out.device))
    report(0.95, "Rendered")
    return to_array(out)


def _is_user_error(exc: BaseException) -> bool:
    # by name, so that a core that fails to import is still reported (as an internal error)
    return any(c.__name__ == "NormstyleError" for c in type(exc).__mro__)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("normstyle")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "unknown"


# ---------------------------------------------------------------------- transports
def serve_stream(worker: Worker, rfile: BinaryIO, wfile: BinaryIO) -> bool:
    """Answer requests from one stream until EOF; False when a shutdown was asked."""

    def emit(event: dict) -> None:
        wfile.write(json.dumps(event).encode() + b"\n")
        wfile.flush()

    for line in rfile:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError:
            emit({"event": "error", "kind": "ProtocolError", "message": "request is not JSON"})
            continue
        if not worker.handle(req, emit):
            return False
    return True


def serve_socket(path: str, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> int:
    """Listen on a Unix-domain socket; one connection at a time; exit after idle_timeout s."""
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
        return 0
    finally:
        os.umask(old_umask)
    server.listen(4)
    server.settimeout(idle_timeout if idle_timeout > 0 else None)
    log.info("worker %d serving %s (idle timeout %.0f s)", os.getpid(), sock_path, idle_timeout)
    worker = Worker()
    try:
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                log.info("idle for %.0f s: exiting", idle_timeout)
                break
            with conn:
                conn.settimeout(None)
                with conn.makefile("rb") as rf, conn.makefile("wb") as wf:
                    try:
                        keep = serve_stream(worker, rf, wf)
                    except (BrokenPipeError, ConnectionResetError):
                        keep = True  # the plug-in went away (cancelled): serve the next one
                    except Exception:  # noqa: BLE001 - never let one bad connection end the worker
                        log.error("connection failed:\n%s", traceback.format_exc())
                        keep = True
            if not keep:
                break
    finally:
        server.close()
        try:
            if sock_path.exists() and sock_path.is_socket():
                sock_path.unlink()
        except OSError:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gimp_plugin.worker", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve one session on stdin/stdout")
    mode.add_argument("--serve", metavar="SOCKET", help="serve on a Unix-domain socket")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                   help="--serve: exit after this many seconds without a connection")
    p.add_argument("--log", metavar="FILE", help="append log messages to FILE")
    args = p.parse_args(argv)
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    if args.stdio:
        # stdout carries the protocol; anything else printing there would corrupt it
        out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        sys.stdout = sys.stderr
        serve_stream(Worker(), sys.stdin.buffer, out)
        return 0
    return serve_socket(args.serve, args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())
