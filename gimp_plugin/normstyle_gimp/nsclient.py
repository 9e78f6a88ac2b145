"""Client side of the normstyle worker protocol, for the GIMP plug-in.

Standard library only: this file runs inside GIMP's own Python (no torch, no numpy) and is
also imported by the unit tests. The protocol itself is documented in ``cli/gimp_worker.py``.

The plug-in folder holds ``normstyle.json`` (written by ``normstyle gimp install``)::

    {"python": "/home/me/.venvs/normstyle/bin/python",  # the normstyle environment
     "pythonpath": "/home/me/src/normstyle",           # optional, prepended to PYTHONPATH
     "worker": "daemon",         # "daemon": long-lived worker on a Unix socket (POSIX)
                                 # "oneshot": a fresh worker process per call
     "idle_timeout": 900,        # daemon: seconds without a call before it exits
     "model": null,              # model file; null = NORMSTYLE_MODEL or the packaged model
     "device": "auto",
     "precision": "auto",        # optional: as the CLI's --precision (auto, fp32, bf16)
     "styles": ["candy", ...],   # built-in styles of the model, for the dialog's list
     "serve_socket": null,       # optional: where `normstyle gimp serve` listens, if not the
                                 # default (served_socket_path)
     "version": "0.1.0"}

Before it starts a worker of its own, the plug-in looks for one the user started outside GIMP
with ``normstyle gimp serve`` (for Flatpak/Snap GIMPs, which cannot start a host Python): a
socket at :func:`served_socket_path`. Files are then exchanged in that socket's folder, which
both sides see.

Environment overrides (handy for tests): ``NORMSTYLE_GIMP_PYTHON``, ``NORMSTYLE_GIMP_WORKER``,
``NORMSTYLE_GIMP_IDLE_TIMEOUT``, ``NORMSTYLE_GIMP_SOCKET``, ``NORMSTYLE_GIMP_PRECISION``,
``NORMSTYLE_GIMP_SERVE_SOCKET``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PROTOCOL = 2
CONFIG_NAME = "normstyle.json"
HERE = os.path.dirname(os.path.abspath(__file__))


class WorkerError(Exception):
    """Something the user should read (one line): setup problem or a failed request."""


def load_config(plugin_dir: str = HERE) -> dict:
    path = os.path.join(plugin_dir, CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except FileNotFoundError:
        cfg = {}
    except (OSError, ValueError) as exc:
        raise WorkerError(f"cannot read {path} ({exc}); run `normstyle gimp install` again") from exc
    if not isinstance(cfg, dict):
        raise WorkerError(f"{path} is not a normstyle plug-in config; run `normstyle gimp install`")
    env = os.environ
    if env.get("NORMSTYLE_GIMP_PYTHON"):
        cfg["python"] = env["NORMSTYLE_GIMP_PYTHON"]
    if env.get("NORMSTYLE_GIMP_WORKER"):
        cfg["worker"] = env["NORMSTYLE_GIMP_WORKER"]
    if env.get("NORMSTYLE_GIMP_IDLE_TIMEOUT"):
        cfg["idle_timeout"] = float(env["NORMSTYLE_GIMP_IDLE_TIMEOUT"])
    if env.get("NORMSTYLE_GIMP_PRECISION"):
        cfg["precision"] = env["NORMSTYLE_GIMP_PRECISION"]
    if env.get("NORMSTYLE_GIMP_SERVE_SOCKET"):
        cfg["serve_socket"] = env["NORMSTYLE_GIMP_SERVE_SOCKET"]
    # without a Python to start, a served worker (normstyle gimp serve) must be there
    if not cfg.get("python") and not _reachable(served_socket_path(cfg)):
        raise WorkerError("normstyle is not set up for GIMP: run `normstyle gimp install` "
                          "in your normstyle environment (or, for a Flatpak/Snap GIMP, start "
                          "`normstyle gimp serve`)")
    return cfg


SERVE_FOLDER = "normstyle"
SERVE_NAME = "gimp-worker.sock"


def served_socket_path(cfg: dict | None = None) -> str | None:
    """Where `normstyle gimp serve` listens and where the plug-in looks for it first:
    ``$XDG_RUNTIME_DIR/normstyle/gimp-worker.sock`` (Linux: ``/run/user/UID``, which a
    Flatpak GIMP sees once given ``--filesystem=xdg-run/normstyle``), else the same under the
    temp folder; or the config's ``serve_socket``. None where there are no Unix sockets."""
    if not hasattr(socket, "AF_UNIX") or os.name != "posix":
        return None
    if cfg and cfg.get("serve_socket"):
        return os.path.expanduser(str(cfg["serve_socket"]))
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
        tempfile.gettempdir(), f"normstyle-{os.getuid()}")
    return os.path.join(base, SERVE_FOLDER, SERVE_NAME)


def exchange_dir(cfg: dict) -> str | None:
    """The folder for pixel files: a served worker's folder when one is listening (and no
    test pins a worker with NORMSTYLE_GIMP_SOCKET), else None (the temp folder)."""
    path = served_socket_path(cfg)
    if os.environ.get("NORMSTYLE_GIMP_SOCKET") or not _reachable(path):
        return None
    return os.path.dirname(path)


def _reachable(path: str | None) -> bool:
    if not path:
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def clean_env(cfg: dict) -> dict:
    """GIMP's environment minus what must not leak into another Python installation."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("GI_TYPELIB_PATH", "LD_LIBRARY_PATH")}
    if cfg.get("pythonpath"):
        env["PYTHONPATH"] = cfg["pythonpath"]
    return env


def worker_argv(cfg: dict, *extra: str) -> list:
    return [cfg["python"], "-m", "cli.gimp_worker", *extra]


def default_socket_path(cfg: dict) -> str:
    """Per user and per normstyle environment, in a folder only this user can enter."""
    if os.environ.get("NORMSTYLE_GIMP_SOCKET"):
        return os.environ["NORMSTYLE_GIMP_SOCKET"]
    tag = hashlib.sha256(json.dumps([cfg.get("python"), cfg.get("pythonpath"), PROTOCOL,
                                     cfg.get("version")]).encode()).hexdigest()[:10]
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
        tempfile.gettempdir(), f"normstyle-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    return os.path.join(base, f"normstyle-gimp-{tag}.sock")


def use_daemon(cfg: dict) -> bool:
    return cfg.get("worker", "daemon") == "daemon" and hasattr(socket, "AF_UNIX") and os.name == "posix"


class _Stream:
    """A request/answer exchange on a pair of byte streams."""

    def __init__(self, rfile, wfile, what: str):
        self.rfile, self.wfile, self.what = rfile, wfile, what

    def request(self, req: dict, on_progress=None) -> dict:
        try:
            self.wfile.write(json.dumps(req).encode() + b"\n")
            self.wfile.flush()
        except OSError as exc:
            raise WorkerError(f"the normstyle worker is not listening ({exc}); {self.what}") from exc
        while True:
            line = self.rfile.readline()
            if not line:
                raise WorkerError(f"the normstyle worker stopped unexpectedly; {self.what}")
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue  # not protocol (should not happen): ignore
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "progress":
                if on_progress:
                    on_progress(_fraction(event.get("fraction")), _text(event.get("message")))
                continue
            if kind == "error":
                raise WorkerError(_error_message(event))
            return event


def _fraction(value: object) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return min(1.0, max(0.0, f)) if f == f else 0.0


def _text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _error_message(event: dict) -> str:
    """An error answer as one line for the user."""
    message = _text(event.get("message")) or "the normstyle worker failed"
    if event.get("kind") == "ProtocolError":  # the plug-in and the worker disagree: a bug
        return (f"the normstyle worker refused the request ({message}); "
                "run `normstyle gimp install` again")
    return message


class WorkerClient:
    """Connects to (and starts, if needed) a worker; ``request()`` sends one request."""

    def __init__(self, cfg: dict, *, start_timeout: float = 120.0):
        self.cfg = cfg
        self.start_timeout = start_timeout
        self._sock = None
        self._proc = None
        self._stream = None
        self.socket_path = default_socket_path(cfg) if use_daemon(cfg) else None
        self.log_path = (self.socket_path[:-5] + ".log") if self.socket_path else None
        self.served = False  # True once connected to a worker the user started (gimp serve)

    @property
    def exchange_dir(self):
        """Where the plug-in puts the pixel files for this worker: the served socket's folder
        (both sides of a sandbox see it), else the temp folder (None)."""
        return os.path.dirname(served_socket_path(self.cfg)) if self.served else None

    # -------------------------------------------------------------- connection
    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            return None
        return s

    def _spawn_daemon(self):
        os.makedirs(os.path.dirname(self.socket_path), mode=0o700, exist_ok=True)
        logf = open(self.log_path, "ab")
        try:
            argv = worker_argv(self.cfg, "--serve", self.socket_path, "--idle-timeout",
                               str(self.cfg.get("idle_timeout", 900)), "--log", self.log_path)
            try:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=logf, env=clean_env(self.cfg), close_fds=True,
                                        start_new_session=True)
            except OSError as exc:
                raise WorkerError(f"cannot start the normstyle worker {argv[0]!r} ({exc}); "
                                  "run `normstyle gimp doctor`") from exc
        finally:
            logf.close()

    def _tail_log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _connect_served(self):
        path = served_socket_path(self.cfg)
        if not path or os.environ.get("NORMSTYLE_GIMP_SOCKET"):  # tests pin their own worker
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            return None
        return s

    def open(self):
        if self._stream is not None:
            return self
        served = self._connect_served()
        if served is not None:
            self.served = True
            self._sock = served
            self._stream = _Stream(served.makefile("rb"), served.makefile("wb"),
                                   "is `normstyle gimp serve` still running?")
            return self
        if not self.cfg.get("python"):
            raise WorkerError("no normstyle worker: start `normstyle gimp serve` (Flatpak/Snap "
                              "GIMP) or run `normstyle gimp install`")
        if self.socket_path:
            s = self._connect()
            if s is None:
                proc = self._spawn_daemon()
                deadline = time.monotonic() + self.start_timeout
                while s is None:
                    if proc.poll() not in (None, 0):
                        raise WorkerError(f"the normstyle worker could not start: {self._tail_log()} "
                                          f"(log: {self.log_path})")
                    if time.monotonic() > deadline:
                        raise WorkerError(f"the normstyle worker did not start within "
                                          f"{self.start_timeout:.0f} s (log: {self.log_path})")
                    time.sleep(0.05)
                    s = self._connect()
            self._sock = s
            self._stream = _Stream(s.makefile("rb"), s.makefile("wb"), f"see {self.log_path}")
        else:
            argv = worker_argv(self.cfg, "--stdio")
            try:
                self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, env=clean_env(self.cfg))
            except OSError as exc:
                raise WorkerError(f"cannot start the normstyle worker {argv[0]!r} ({exc}); "
                                  "run `normstyle gimp doctor`") from exc
            self._stream = _Stream(self._proc.stdout, self._proc.stdin, "run `normstyle gimp doctor`")
        return self

    def request(self, req: dict, on_progress=None) -> dict:
        self.open()
        try:
            return self._stream.request(req, on_progress)
        except WorkerError as exc:
            if self._proc is not None and self._proc.poll() not in (None, 0):
                err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                if err:
                    raise WorkerError(f"{exc}: {err[-1]}") from exc
            raise

    def close(self):
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
            self._proc = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._stream = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


def stylize_file(cfg: dict, *, input_path: str, output_path: str, width: int, height: int,
                 channels: int, dtype: str, style: str, strength: float, preserve_color: bool,
                 refine_steps: int = 0, stroke_scale: float = 1.0, on_progress=None,
                 client: "WorkerClient | None" = None) -> dict:
    """One stylize request (see the protocol in cli/gimp_worker.py); the result is moved
    from the worker's own folder to ``output_path``. ``client``: an open client (closed here)."""
    req = {"op": "stylize", "input": input_path, "width": width,
           "height": height, "channels": channels, "dtype": dtype, "style": style,
           "strength": strength, "preserve_color": preserve_color, "refine_steps": refine_steps,
           "stroke_scale": stroke_scale,
           "model": cfg.get("model"), "device": cfg.get("device", "auto"),
           "precision": cfg.get("precision") or "auto"}
    with (client or WorkerClient(cfg)) as client:
        event = client.request(req, on_progress)
        # taken before the session ends: the worker deletes results left in its folder then
        result = event.get("output")
        if event.get("event") != "done" or not isinstance(result, str):
            raise WorkerError(f"the normstyle worker answered {event.get('event')!r} without a "
                              "result; run `normstyle gimp install` again")
        try:
            _move(src=result, dst=output_path)
        except OSError as exc:
            raise WorkerError(f"cannot take the worker's result {result} ({exc})") from exc
    return event


PREVIEW_MAX_SIDE = 256


def preview(cfg: dict, *, input_path: str, width: int, height: int, channels: int, dtype: str,
            style: str, strength: float, preserve_color: bool, stroke_scale: float = 1.0,
            max_side: int = PREVIEW_MAX_SIDE) -> dict:
    """One preview request: the ``preview`` event plus ``"pixels"`` (bytes, 8-bit RGB,
    ``width`` x ``height``); the worker's file is read and removed."""
    req = {"op": "preview", "input": input_path, "width": width, "height": height,
           "channels": channels, "dtype": dtype, "style": style, "strength": strength,
           "preserve_color": preserve_color, "stroke_scale": stroke_scale, "max_side": max_side,
           "model": cfg.get("model"), "device": cfg.get("device", "auto"),
           "precision": cfg.get("precision") or "auto"}
    with WorkerClient(cfg) as client:
        event = client.request(req)
        path = event.get("output")
        if event.get("event") != "preview" or not isinstance(path, str):
            raise WorkerError(f"the normstyle worker answered {event.get('event')!r} to a preview; "
                              "run `normstyle gimp install` again")
        try:
            with open(path, "rb") as fh:
                event["pixels"] = fh.read()
            os.unlink(path)
        except OSError as exc:
            raise WorkerError(f"cannot read the preview {path} ({exc})") from exc
    if len(event["pixels"]) != int(event.get("width", 0)) * int(event.get("height", 0)) * 3:
        raise WorkerError("the worker's preview has the wrong size")
    return event


def _move(*, src: str, dst: str) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(src, dst)  # another file system (e.g. a tmpfs TMPDIR)
        os.unlink(src)


def shutdown_daemon(cfg: dict) -> bool:
    """Ask a running daemon to exit; False when none was running."""
    if not use_daemon(cfg):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(default_socket_path(cfg))
    except OSError:
        s.close()
        return False
    with s:
        try:
            _Stream(s.makefile("rb"), s.makefile("wb"), "").request({"op": "shutdown"})
        except WorkerError:
            pass
    return True


if __name__ == "__main__":  # tiny manual check: python nsclient.py  -> hello from the worker
    print(WorkerClient(load_config()).request({"op": "hello"}))
    sys.exit(0)
