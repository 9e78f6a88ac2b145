"""The worker protocol (gimp_plugin/worker.py) and the plug-in's client (nsclient.py), no GIMP."""
from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gimp_plugin import install, worker

nsclient = install.nsclient()


def _session(requests, w=None):
    """Run the in-process worker over byte streams; returns the events."""
    rfile = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    wfile = io.BytesIO()
    worker.serve_stream(w or worker.Worker(), rfile, wfile)
    return [json.loads(line) for line in wfile.getvalue().splitlines()]


def _image(h=20, w=28):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = np.arange(w, dtype=np.uint8)[None] * 9
    return a


def test_hello_and_styles(tiny_model_file):
    ev = _session([{"op": "hello"}, {"op": "styles", "model": str(tiny_model_file)}])
    assert ev[0]["event"] == "hello" and ev[0]["protocol"] == worker.PROTOCOL == nsclient.PROTOCOL
    assert ev[1] == {"event": "styles", "styles": ["blue", "red"], "model": str(tiny_model_file)}


@pytest.mark.parametrize("style", ["red", "image"])
def test_stylize_u8_matches_core_and_keeps_alpha(tmp_path, tiny_model_file, style):
    """A built-in style, and a style image (whose code gets the core's feedback step)."""
    from PIL import Image

    from normstyle_core import Stylizer
    if style == "image":
        style = str(tmp_path / "painting.png")
        Image.fromarray(np.random.default_rng(7).integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(style)
    a = _image()
    a.tofile(tmp_path / "in.raw")
    req = {"op": "stylize", "input": str(tmp_path / "in.raw"), "output": str(tmp_path / "out.raw"),
           "width": 28, "height": 20, "channels": 4, "dtype": "u8", "style": style,
           "strength": 0.6, "preserve_color": True, "model": str(tiny_model_file), "device": "cpu"}
    ev = _session([req])
    assert [e["event"] for e in ev][-1] == "done", ev
    fractions = [e["fraction"] for e in ev if e["event"] == "progress"]
    assert fractions == sorted(fractions) and len(fractions) >= 2
    out = np.fromfile(tmp_path / "out.raw", np.uint8).reshape(20, 28, 4)
    st = Stylizer.load(tiny_model_file, device="cpu")
    ref = np.asarray(st.stylize(a, style=style, strength=0.6, preserve_color=True))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    np.testing.assert_array_equal(out[..., 3], a[..., 3])


def test_stylize_float_rgb_keeps_precision(tmp_path, tiny_model_file):
    rgb = (_image()[..., :3] / 255.0).astype(np.float32) * 0.9 + 0.01
    rgb.tofile(tmp_path / "in.raw")
    req = {"op": "stylize", "input": str(tmp_path / "in.raw"), "output": str(tmp_path / "out.raw"),
           "width": 28, "height": 20, "channels": 3, "dtype": "float", "style": "blue",
           "model": str(tiny_model_file)}
    assert _session([req])[-1]["event"] == "done"
    out = np.fromfile(tmp_path / "out.raw", np.float32).reshape(20, 28, 3)
    assert out.min() >= 0 and out.max() <= 1
    assert (np.abs(out * 255 - np.round(out * 255)) > 1e-3).mean() > 0.5  # not 8-bit


def test_model_loads_once_per_worker(tmp_path, tiny_model_file, monkeypatch):
    from normstyle_core import Stylizer
    calls = []
    real = Stylizer.load.__func__
    monkeypatch.setattr(Stylizer, "load", classmethod(lambda cls, *a, **k: calls.append(a) or real(cls, *a, **k)))
    w = worker.Worker()
    _session([{"op": "styles", "model": str(tiny_model_file)}] * 3, w)
    assert len(calls) == 1


@pytest.mark.parametrize("req, kind, text", [
    ({"op": "nope"}, "ProtocolError", "unknown op"),
    ({"no": "op"}, "ProtocolError", "string 'op'"),
    ({"op": "stylize", "input": "/x"}, "ProtocolError", "bad stylize request"),
    ({"op": "stylize", "input": "/nonexistent.raw", "output": "/tmp/o", "width": 2, "height": 2,
      "channels": 4, "dtype": "u8", "style": "red"}, "ProtocolError", "expected 16 bytes"),
    ({"op": "stylize", "input": "/x", "output": "/tmp/o", "width": 2, "height": 2, "channels": 4,
      "dtype": "u8", "style": "red", "refine_steps": -1}, "ProtocolError", "refine_steps must be 0..1000"),
])
def test_protocol_errors(req, kind, text):
    ev = _session([req, {"op": "hello"}])
    assert ev[0]["event"] == "error" and ev[0]["kind"] == kind and text in ev[0]["message"]
    assert ev[1]["event"] == "hello"  # the worker lives on


def test_user_errors_are_one_line(tmp_path, tiny_model_file):
    _image().tofile(tmp_path / "in.raw")
    base = {"op": "stylize", "input": str(tmp_path / "in.raw"), "output": str(tmp_path / "o.raw"),
            "width": 28, "height": 20, "channels": 4, "dtype": "u8", "model": str(tiny_model_file)}
    ev = _session([dict(base, style="no-such-style"), dict(base, style="red", strength=2.0),
                   dict(base, style="red", model=str(tmp_path / "missing.pt"))])
    ev = [e for e in ev if e["event"] != "progress"]
    assert [e["kind"] for e in ev] == ["StyleError", "StyleError", "CheckpointError"]
    assert "neither a built-in style" in ev[0]["message"] and "\n" not in ev[0]["message"]
    assert not (tmp_path / "o.raw").exists()


def test_bad_json_line():
    rfile = io.BytesIO(b"this is not json\n" + json.dumps({"op": "hello"}).encode() + b"\n")
    wfile = io.BytesIO()
    worker.serve_stream(worker.Worker(), rfile, wfile)
    ev = [json.loads(x) for x in wfile.getvalue().splitlines()]
    assert ev[0]["kind"] == "ProtocolError" and ev[1]["event"] == "hello"


# ---------------------------------------------------------------------- through real processes
def _cfg(tmp_path, tiny_model_file, mode):
    return {"python": sys.executable, "pythonpath": str(Path(__file__).resolve().parents[1]),
            "worker": mode, "idle_timeout": 30, "model": str(tiny_model_file), "device": "cpu"}


@pytest.mark.parametrize("mode", ["oneshot", "daemon"])
def test_client_round_trip(tmp_path, tiny_model_file, monkeypatch, mode):
    monkeypatch.setenv("NORMSTYLE_GIMP_SOCKET", str(tmp_path / "w.sock"))
    cfg = _cfg(tmp_path, tiny_model_file, mode)
    a = _image()
    a.tofile(tmp_path / "in.raw")
    seen = []
    for _ in range(2):
        ev = nsclient.stylize_file(cfg, input_path=str(tmp_path / "in.raw"),
                                   output_path=str(tmp_path / "out.raw"), width=28, height=20,
                                   channels=4, dtype="u8", style="blue", strength=1.0,
                                   preserve_color=False, on_progress=lambda f, m: seen.append(f))
        assert ev["event"] == "done"
    assert seen and (tmp_path / "out.raw").stat().st_size == a.size
    if mode == "daemon":
        log = (tmp_path / "w.log").read_text()
        assert log.count("serving") == 1 and log.count("loaded") == 1  # one worker, one load
        assert nsclient.shutdown_daemon(cfg)
        for _ in range(100):
            if not (tmp_path / "w.sock").exists():
                break
            time.sleep(0.05)
        assert not (tmp_path / "w.sock").exists()
        assert not nsclient.shutdown_daemon(cfg)


def test_client_reports_a_worker_error_as_one_line(tmp_path, tiny_model_file):
    cfg = _cfg(tmp_path, tiny_model_file, "oneshot")
    (tmp_path / "in.raw").write_bytes(b"abc")
    with pytest.raises(nsclient.WorkerError, match="neither a built-in style"):
        with nsclient.WorkerClient(cfg) as c:
            c.request({"op": "stylize", "input": str(tmp_path / "in.raw"), "model": cfg["model"], "output": str(tmp_path / "o"),
                       "width": 1, "height": 1, "channels": 3, "dtype": "u8", "style": "x"})


def test_client_reports_a_python_that_cannot_run(tmp_path):
    cfg = {"python": str(tmp_path / "missing-python"), "worker": "oneshot"}
    with pytest.raises(nsclient.WorkerError, match="cannot start the normstyle worker"):
        nsclient.WorkerClient(cfg).request({"op": "hello"})


def test_daemon_that_cannot_start_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSTYLE_GIMP_SOCKET", str(tmp_path / "w.sock"))
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named gimp_plugin' >&2\nexit 1\n")
    fake.chmod(0o755)
    cfg = {"python": str(fake), "worker": "daemon"}
    with pytest.raises(nsclient.WorkerError, match="could not start: ModuleNotFoundError"):
        nsclient.WorkerClient(cfg, start_timeout=20).request({"op": "hello"})


def test_config_missing_means_run_install(tmp_path, monkeypatch):
    monkeypatch.delenv("NORMSTYLE_GIMP_PYTHON", raising=False)
    with pytest.raises(nsclient.WorkerError, match="normstyle gimp install"):
        nsclient.load_config(str(tmp_path))
