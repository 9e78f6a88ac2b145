"""The worker protocol (cli/gimp_worker.py) and the plug-in's client (nsclient.py), no GIMP."""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import gimp_install as install
from cli import gimp_worker as worker

nsclient = install.nsclient()
REPO = Path(__file__).resolve().parents[1]


def _session(requests, w=None):
    """Run the in-process worker over byte streams; returns the events."""
    rfile = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    return _raw_session(rfile.getvalue(), w)


def _raw_session(data: bytes, w: worker.Worker | None = None) -> list[dict]:
    own = w is None
    w = w or worker.Worker()
    wfile = io.BytesIO()
    try:
        worker.serve_stream(w, io.BytesIO(data), wfile)
    finally:
        if own:
            w.close()
    return [json.loads(line) for line in wfile.getvalue().splitlines()]


def _stylize(req: dict, w: worker.Worker) -> tuple[list[dict], np.ndarray | None]:
    """One request on ``w``; returns (events, the result array or None); the result file is
    read while it still exists (the worker deletes results a session leaves behind)."""
    events = []
    w.handle(req, events.append, produced=[])
    done = events[-1] if events and events[-1]["event"] == "done" else None
    if done is None:
        return events, None
    shape = (req["height"], req["width"], req.get("channels", 4))
    dtype = worker.DTYPES[req.get("dtype", "u8")]
    return events, np.fromfile(done["output"], dtype).reshape(shape)


def _image(h=20, w=28):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = np.arange(w, dtype=np.uint8)[None] * 9
    return a


def test_hello_and_styles(tiny_model_file):
    ev = _session([{"op": "hello"}, {"op": "styles", "model": str(tiny_model_file)}])
    assert ev[0]["event"] == "hello" and ev[0]["protocol"] == worker.PROTOCOL == nsclient.PROTOCOL
    assert Path(ev[0]["workdir"]).name.startswith(f"{worker.WORKDIR_PREFIX}{os.getpid()}-")
    assert ev[1] == {"event": "styles", "styles": ["blue", "red"], "model": str(tiny_model_file)}


@pytest.mark.parametrize("style", ["red", "image"])
def test_stylize_u8_matches_core_and_keeps_alpha(tmp_path, tiny_model_file, style):
    """A built-in style, and a style image (its code predicted by the core)."""
    from PIL import Image

    from normstyle_core import Stylizer
    if style == "image":
        style = str(tmp_path / "painting.png")
        Image.fromarray(np.random.default_rng(7).integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(style)
    a = _image()
    a.tofile(tmp_path / "in.raw")
    req = {"op": "stylize", "input": str(tmp_path / "in.raw"),
           "width": 28, "height": 20, "channels": 4, "dtype": "u8", "style": style,
           "strength": 0.6, "preserve_color": True, "model": str(tiny_model_file), "device": "cpu"}
    w = worker.Worker(temp_root=tmp_path)
    ev, out = _stylize(req, w)
    w.close()
    assert [e["event"] for e in ev][-1] == "done", ev
    fractions = [e["fraction"] for e in ev if e["event"] == "progress"]
    assert fractions == sorted(fractions) and len(fractions) >= 2
    st = Stylizer.load(tiny_model_file, device="cpu")
    ref = np.asarray(st.stylize(a, style=style, strength=0.6, preserve_color=True))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    np.testing.assert_array_equal(out[..., 3], a[..., 3])


def test_brush_size_renders_as_the_cores_stroke_scale(tmp_path, tiny_model_file):
    """A layer larger than the working size of its stroke scale is painted there and guided back
    to full size, as Stylizer.stylize does; another stroke scale gives another picture."""
    from normstyle_core import Stylizer
    from normstyle_core.stroke_scale import working_size
    a = np.random.default_rng(3).integers(0, 256, (160, 200, 4), dtype=np.uint8)
    assert working_size(160, 200, stroke_scale=16) < (160, 200)
    outs = []
    for s in (16, 0.0):
        a.tofile(tmp_path / "in.raw")
        req = {"op": "stylize", "input": str(tmp_path / "in.raw"), "width": 200, "height": 160, "channels": 4,
               "dtype": "u8", "style": "blue", "stroke_scale": s, "model": str(tiny_model_file), "device": "cpu"}
        w = worker.Worker(temp_root=tmp_path)
        ev, out = _stylize(req, w)
        w.close()
        assert ev[-1]["event"] == "done", ev
        ref = np.asarray(Stylizer.load(tiny_model_file, device="cpu").stylize(a, style="blue", stroke_scale=s))
        assert np.abs(out[..., :3].astype(int) - ref[..., :3].astype(int)).max() <= 1
        np.testing.assert_array_equal(out[..., 3], a[..., 3])
        outs.append(out)
    assert np.abs(outs[0].astype(int) - outs[1].astype(int)).max() > 4


def test_stylize_float_rgb_keeps_precision(tmp_path, tiny_model_file):
    rgb = (_image()[..., :3] / 255.0).astype(np.float32) * 0.9 + 0.01
    rgb.tofile(tmp_path / "in.raw")
    req = {"op": "stylize", "input": str(tmp_path / "in.raw"),
           "width": 28, "height": 20, "channels": 3, "dtype": "float", "style": "blue",
           "model": str(tiny_model_file)}
    w = worker.Worker(temp_root=tmp_path)
    ev, out = _stylize(req, w)
    w.close()
    assert ev[-1]["event"] == "done"
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
    ({"op": "stylize", "input": "/nonexistent.raw", "width": 2, "height": 2,
      "channels": 4, "dtype": "u8", "style": "red"}, "ProtocolError", "expected 16 bytes"),
    ({"op": "stylize", "input": "/x", "width": 2, "height": 2, "channels": 4,
      "dtype": "u8", "style": "red", "refine_steps": -1}, "ProtocolError", "refine_steps must be 0..1000"),
])
def test_protocol_errors(req, kind, text):
    ev = _session([req, {"op": "hello"}])
    assert ev[0]["event"] == "error" and ev[0]["kind"] == kind and text in ev[0]["message"]
    assert ev[1]["event"] == "hello"  # the worker lives on


def test_user_errors_are_one_line(tmp_path, tiny_model_file):
    _image().tofile(tmp_path / "in.raw")
    base = {"op": "stylize", "input": str(tmp_path / "in.raw"),
            "width": 28, "height": 20, "channels": 4, "dtype": "u8", "model": str(tiny_model_file)}
    before = sorted(tmp_path.rglob("*"))
    w = worker.Worker(temp_root=tmp_path / "w")
    (tmp_path / "w").mkdir()
    ev = _session([dict(base, style="no-such-style"), dict(base, style="red", strength=2.0),
                   dict(base, style="red", model=str(tmp_path / "missing.pt"))], w)
    ev = [e for e in ev if e["event"] != "progress"]
    assert [e["kind"] for e in ev] == ["StyleError", "StyleError", "CheckpointError"]
    assert "neither a built-in style" in ev[0]["message"] and "\n" not in ev[0]["message"]
    assert list(w.workdir.iterdir()) == []  # no result, no partial file
    w.close()
    assert set(tmp_path.rglob("*")) == set(before) | {tmp_path / "w"}


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
            c.request({"op": "stylize", "input": str(tmp_path / "in.raw"), "model": cfg["model"],
                       "width": 1, "height": 1, "channels": 3, "dtype": "u8", "style": "x"})


def test_client_reports_a_python_that_cannot_run(tmp_path):
    cfg = {"python": str(tmp_path / "missing-python"), "worker": "oneshot"}
    with pytest.raises(nsclient.WorkerError, match="cannot start the normstyle worker"):
        nsclient.WorkerClient(cfg).request({"op": "hello"})


def test_daemon_that_cannot_start_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSTYLE_GIMP_SOCKET", str(tmp_path / "w.sock"))
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named cli' >&2\nexit 1\n")
    fake.chmod(0o755)
    cfg = {"python": str(fake), "worker": "daemon"}
    with pytest.raises(nsclient.WorkerError, match="could not start: ModuleNotFoundError"):
        nsclient.WorkerClient(cfg, start_timeout=20).request({"op": "hello"})


def test_config_missing_means_run_install(tmp_path, monkeypatch):
    monkeypatch.delenv("NORMSTYLE_GIMP_PYTHON", raising=False)
    with pytest.raises(nsclient.WorkerError, match="normstyle gimp install"):
        nsclient.load_config(str(tmp_path))


# ---------------------------------------------------------------------- where the worker writes
def _valid_request(tmp_path: Path, tiny_model_file: Path, **fields) -> dict:
    _image().tofile(tmp_path / "in.raw")
    return dict({"op": "stylize", "input": str(tmp_path / "in.raw"), "width": 28, "height": 20,
                 "channels": 4, "dtype": "u8", "style": "red", "model": str(tiny_model_file),
                 "device": "cpu"}, **fields)


def _tree(root: Path) -> dict:
    return {p: (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in root.rglob("*")}


OUTSIDE = {
    "a user's file": lambda tmp, wd: str(tmp / "holiday.raw"),
    "a new file beside the input": lambda tmp, wd: str(tmp / "new.raw"),
    "the folder above the worker's": lambda tmp, wd: str(wd.parent / "x.raw"),
    "'..' out of the worker's folder": lambda tmp, wd: str(wd / ".." / "holiday.raw"),
    "a sub-folder of the worker's": lambda tmp, wd: str(wd / "sub" / "x.raw"),
    "a relative name": lambda tmp, wd: "x.raw",
    "the worker's folder itself": lambda tmp, wd: str(wd),
    "a link in the worker's folder to a user's file": lambda tmp, wd: str(wd / "link.raw"),
    "a number": lambda tmp, wd: 5,
    "a NUL byte": lambda tmp, wd: str(wd / "x\x00.raw"),
}


@pytest.mark.parametrize("where", list(OUTSIDE))
def test_output_outside_the_workers_folder_is_refused(tmp_path, tiny_model_file, monkeypatch, where):
    """A request naming any other place than the worker's own folder gets one clear error; no
    file anywhere changes or appears, and the worker answers the next request."""
    monkeypatch.chdir(tmp_path)  # where a relative name would land
    (tmp_path / "holiday.raw").write_bytes(b"the user's own pixels")
    w = worker.Worker(temp_root=tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    (w.workdir / "link.raw").symlink_to(tmp_path / "holiday.raw")
    req = _valid_request(tmp_path, tiny_model_file, output=OUTSIDE[where](tmp_path, w.workdir))
    before = _tree(tmp_path)
    ev = _session([req, {"op": "hello"}], w)
    w.close()
    ev = [e for e in ev if e["event"] != "progress"]
    assert ev[0]["event"] == "error" and ev[0]["kind"] == "ProtocolError", ev
    assert "the worker writes only into its own folder" in ev[0]["message"], ev
    assert "run `normstyle gimp install`" in ev[0]["message"]  # what a plug-in of protocol 1 sends
    assert ev[1]["event"] == "hello"
    after = _tree(tmp_path)
    assert {p: v for p, v in after.items() if not p.is_relative_to(tmp_path / "tmp")} == \
           {p: v for p, v in before.items() if not p.is_relative_to(tmp_path / "tmp")}
    assert (tmp_path / "holiday.raw").read_bytes() == b"the user's own pixels"


def test_result_is_made_in_the_workers_folder_and_goes_with_the_session(tmp_path, tiny_model_file):
    w = worker.Worker(temp_root=tmp_path)
    workdir = w.workdir
    assert workdir.stat().st_mode & 0o777 == 0o700
    seen = {}

    def wfile_write(event):
        if event.get("event") == "done":
            seen[event["output"]] = Path(event["output"]).stat().st_size

    named = str(workdir / "mine.raw")
    events = []
    rfile = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in [
        _valid_request(tmp_path, tiny_model_file), _valid_request(tmp_path, tiny_model_file, output=named)]))

    class Out(io.BytesIO):
        def write(self, data):
            event = json.loads(data)
            events.append(event)
            wfile_write(event)
            return len(data)

    worker.serve_stream(w, rfile, Out())
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 2 and done[1]["output"] == named
    assert Path(done[0]["output"]).parent == workdir and done[0]["output"] != named
    assert list(seen.values()) == [28 * 20 * 4] * 2  # there while the session lasted
    assert list(workdir.iterdir()) == []  # results not taken are deleted with the session
    w.close()
    assert not workdir.exists()


def test_stale_folders_of_killed_workers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f"{worker.WORKDIR_PREFIX}{dead}-abc123"
    live = tmp_path / f"{worker.WORKDIR_PREFIX}{os.getppid()}-abc123"
    other = tmp_path / f"{worker.WORKDIR_PREFIX}notapid"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "result-1.raw").write_bytes(b"x")
    w = worker.Worker(temp_root=tmp_path)
    w.workdir
    assert not stale.exists() and live.exists() and other.exists()
    w.close()


# ---------------------------------------------------------------------- hostile requests
DEEP = 200_000
BAD_LINES = {
    "200k-deep array": b"[" * DEEP + b"]" * DEEP,
    "200k-deep object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep value inside a request": b'{"op": "hello", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "an array": b'["hello"]',
    "a string": b'"hello"',
    "a number": b"42",
    "null": b"null",
    "true": b"true",
    "not JSON": b"this is not json",
    "cut off": b'{"op": "hel',
    "invalid UTF-8": b'{"op": "\xff\xfe"}',
    "a 5000-digit number": b'{"op": "hello", "n": ' + b"9" * 5000 + b"}",
    "a line over 1 MiB": b'{"op": "hello", "pad": "' + b"x" * (1 << 20) + b'"}',
    "op is a number": b'{"op": 5}',
    "op is a list": b'{"op": ["hello"]}',
    "op is null": b'{"op": null}',
    "styles with a numeric model": b'{"op": "styles", "model": 5}',
    "styles with a list as device": b'{"op": "styles", "device": ["cpu"]}',
    "styles with an unknown precision": b'{"op": "styles", "precision": "int4"}',
}


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_hostile_line_gets_one_error_and_the_worker_goes_on(name):
    events = _raw_session(BAD_LINES[name] + b"\n" + b'{"op": "hello"}\n')
    assert [e["event"] for e in events] == ["error", "hello"], events
    assert events[0]["kind"] == "ProtocolError" and "\n" not in events[0]["message"]
    assert len(events[0]["message"]) < 300


BAD_FIELDS = [
    ("width", "28"), ("width", 28.0), ("width", True), ("width", -28), ("width", 0),
    ("width", 1e300), ("width", 10**400), ("height", None), ("height", [20]), ("channels", "4"),
    ("channels", 2), ("dtype", "u32"), ("dtype", 8), ("style", 5), ("style", None),
    ("style", ["red"]), ("strength", "0.6"), ("strength", float("nan")), ("strength", float("inf")),
    ("strength", 10**400), ("preserve_color", "false"), ("preserve_color", 0), ("refine_steps", 2.5),
    ("refine_steps", "3"), ("refine_steps", 1001), ("refine_steps", True), ("model", 5),
    ("model", ["x"]), ("model", ""), ("device", 5), ("precision", "int4"), ("input", 5),
    ("input", None), ("input", "/nonexistent/in.raw"), ("input", "in\x00.raw"),
    ("stroke_scale", "2"), ("stroke_scale", -1), ("stroke_scale", 17), ("stroke_scale", float("nan")),
    ("stroke_scale", True),
]


@pytest.mark.parametrize("field, value", BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS])
def test_stylize_field_of_the_wrong_type_is_refused(tmp_path, tiny_model_file, field, value):
    """Each wrong field is one ProtocolError naming it; nothing is rendered (a string "false"
    taken as true would be a silent wrong output) and no file appears."""
    req = _valid_request(tmp_path, tiny_model_file, **{field: value})
    before = _tree(tmp_path)
    w = worker.Worker(temp_root=tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    ev = _session([req, {"op": "hello"}], w)
    workdir_files = list(w.workdir.iterdir())
    w.close()
    assert [e["event"] for e in ev] == ["error", "hello"], ev
    assert ev[0]["kind"] == "ProtocolError", ev
    message = ev[0]["message"]
    assert field in message or "layout" in message or "expected" in message, message
    assert "\n" not in message and len(message) < 300
    assert workdir_files == []
    assert {p: v for p, v in _tree(tmp_path).items() if not p.is_relative_to(tmp_path / "tmp")} == before


def test_stdio_worker_survives_hostile_lines(tmp_path):
    """The real --stdio process: a 200k-deep array once killed it (RecursionError) and the
    plug-in's next request got no answer."""
    lines = [BAD_LINES["200k-deep array"], BAD_LINES["a line over 1 MiB"], b"[1, 2]",
             b'{"op": "\xff"}', b'{"op": "hello"}']
    res = subprocess.run([sys.executable, "-m", "cli.gimp_worker", "--stdio"], cwd=REPO,
                         input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120,
                         env=dict(os.environ, TMPDIR=str(tmp_path)))
    events = [json.loads(x) for x in res.stdout.splitlines()]
    assert [e["event"] for e in events] == ["error"] * 4 + ["hello"], (events, res.stderr[-2000:])
    assert res.returncode == 0 and b"Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # its private folder went with it


# ---------------------------------------------------------------------- the client's side
def test_client_reads_odd_and_error_answers_cleanly():
    answers = b"\n".join([
        b"not protocol", b"[1, 2]", b"42", b"[" * DEEP + b"]" * DEEP,
        b'{"event": "progress", "fraction": "half", "message": ["x"]}',
        b'{"event": "progress", "fraction": NaN}',
        b'{"event": "progress", "fraction": 7, "message": "Rendering\\nnow"}',
        b'{"event": "error", "kind": "ProtocolError", "message": "bad request:\\n\'width\' must be"}',
    ]) + b"\n"
    seen = []
    stream = nsclient._Stream(io.BytesIO(answers), io.BytesIO(), "see the log")
    with pytest.raises(nsclient.WorkerError) as err:
        stream.request({"op": "hello"}, on_progress=lambda f, m: seen.append((f, m)))
    assert seen == [(0.0, ""), (0.0, ""), (1.0, "Rendering now")]
    assert str(err.value) == ("the normstyle worker refused the request (bad request: 'width' must "
                              "be); run `normstyle gimp install` again")
    stream = nsclient._Stream(io.BytesIO(b'{"event": "error", "message": {"x": 1}}\n'), io.BytesIO(), "")
    with pytest.raises(nsclient.WorkerError, match="^the normstyle worker failed$"):
        stream.request({"op": "hello"})


def test_client_goes_on_after_an_error_answer(tmp_path, tiny_model_file):
    cfg = _cfg(tmp_path, tiny_model_file, "oneshot")
    with nsclient.WorkerClient(cfg) as client:
        with pytest.raises(nsclient.WorkerError, match="refused the request .unknown op 'nope'"):
            client.request({"op": "nope"})
        assert client.request({"op": "hello"})["event"] == "hello"


# ---------------------------------------------------------------------- --serve: many clients
def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    sock = tmp_path / "w.sock"
    proc = subprocess.Popen([sys.executable, "-m", "cli.gimp_worker", "--serve", str(sock),
                             "--log", str(tmp_path / "w.log"), *args], cwd=REPO,
                            env=dict(os.environ, TMPDIR=str(tmp_path)), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    return proc, sock


def _connect(sock: Path, *, timeout: float = 10.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    return s


def _events(s: socket.socket, count: int) -> list[dict]:
    data = b""
    while data.count(b"\n") < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def _ask(s: socket.socket, req: dict) -> dict:
    s.sendall(json.dumps(req).encode() + b"\n")
    return _events(s, 1)[0]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stderr.close()


def test_an_idle_client_does_not_block_the_others(tmp_path):
    proc, sock = _serve(tmp_path, "--client-timeout", "60")
    try:
        idle = _connect(sock)  # connected, says nothing
        with _connect(sock, timeout=10) as other:
            t0 = time.monotonic()
            assert _ask(other, {"op": "hello"})["event"] == "hello"
            assert time.monotonic() - t0 < 10
            # a connection's thread takes hostile lines as the --stdio worker does
            other.sendall(BAD_LINES["200k-deep array"] + b"\n" + b'{"op": "hello"}\n')
            assert [e["event"] for e in _events(other, 2)] == ["error", "hello"]
        with _connect(sock) as third:
            assert _ask(third, {"op": "shutdown"})["event"] == "bye"
        proc.wait(timeout=20)  # shut down at once, without waiting for the idle one's timeout
        idle.close()
        assert not sock.exists()
    finally:
        _stop(proc)


def test_a_silent_connection_is_closed_after_the_client_timeout(tmp_path):
    proc, sock = _serve(tmp_path, "--client-timeout", "1")
    try:
        with _connect(sock, timeout=20) as silent, _connect(sock, timeout=20) as after_hello:
            assert _ask(after_hello, {"op": "hello"})["event"] == "hello"
            t0 = time.monotonic()
            assert silent.recv(1) == b""  # closed by the worker
            assert after_hello.recv(1) == b""
            assert time.monotonic() - t0 < 15
        with _connect(sock) as fresh:  # and the worker serves on
            assert _ask(fresh, {"op": "hello"})["event"] == "hello"
        assert "closed a connection silent for 1 s" in (tmp_path / "w.log").read_text()
    finally:
        _stop(proc)


def test_sigterm_removes_the_socket_and_the_private_folder(tmp_path):
    proc, sock = _serve(tmp_path)
    try:
        with _connect(sock) as s:
            workdir = Path(_ask(s, {"op": "hello"})["workdir"])
        assert workdir.is_dir()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert not sock.exists() and not workdir.exists()
    finally:
        _stop(proc)


def test_connections_beyond_the_limit_get_an_error(tmp_path):
    sock = tmp_path / "w.sock"
    server = threading.Thread(target=worker.serve_socket, args=(str(sock), 30),
                              kwargs={"client_timeout": 30, "max_clients": 1}, daemon=True)
    server.start()
    for _ in range(200):
        if sock.exists():
            break
        time.sleep(0.05)
    first = _connect(sock)
    assert _ask(first, {"op": "hello"})["event"] == "hello"
    with _connect(sock) as second:
        answer = json.loads(second.makefile("rb").readline())
    assert answer["event"] == "error" and "serves at most 1 connections at once" in answer["message"]
    assert _ask(first, {"op": "shutdown"})["event"] == "bye"
    first.close()
    server.join(timeout=20)
    assert not server.is_alive() and not sock.exists()


def test_renders_take_turns_on_the_model(tmp_path, tiny_model_file, monkeypatch):
    """Two clients at once: both answered, never two renders at the same time (they would
    share the same cores), and the second one is told it waits."""
    running, overlap = [0], []
    real = worker.render_float

    def slow_render(*args, **kwargs):
        running[0] += 1
        overlap.append(running[0])
        time.sleep(0.3)
        try:
            return real(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(worker, "render_float", slow_render)
    w = worker.Worker(temp_root=tmp_path)
    req = _valid_request(tmp_path, tiny_model_file)
    results = [None, None]

    def one(i):
        events = []
        w.handle(req, events.append)
        results[i] = events

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    w.close()
    assert [r[-1]["event"] for r in results] == ["done", "done"], results
    assert max(overlap) == 1
    assert sum("Waiting for another" in e.get("message", "") for r in results for e in r) == 1


# ---------------------------------------------------------------------- preview, cancel, serve
def _core_preview(st, rgb, *, style, stroke_scale, size, feedback=None, strength=1.0, preserve_color=False):
    """Computed here: the core's painting at the working size for stroke_scale, resized."""
    import torch
    import torch.nn.functional as F

    from normstyle_core.imaging import to_uint8
    from normstyle_core.stroke_scale import working_size

    def resize(a, hw):
        t = torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]
        return F.interpolate(t, size=hw, mode="bilinear", antialias=True,
                             align_corners=False)[0].permute(1, 2, 0).numpy()

    work = working_size(*rgb.shape[:2], stroke_scale=stroke_scale)
    painting = st.stylize_array(resize(rgb, work), style=style, stroke_scale=stroke_scale, feedback=feedback,
                                strength=strength, preserve_color=preserve_color)
    return to_uint8(resize(painting, size)), work


@pytest.mark.parametrize("stroke_scale", [1.0, 1.5])  # both working sizes above the 256 px preview
def test_preview_is_the_cores_painting_at_the_renders_working_size(tmp_path, tiny_model_file, stroke_scale):
    from normstyle_core import Stylizer

    a = np.random.default_rng(3).integers(0, 256, (700, 900, 4), dtype=np.uint8)
    a.tofile(tmp_path / "in.raw")
    w = worker.Worker(temp_root=tmp_path)
    try:
        events = []
        w.handle({"op": "preview", "input": str(tmp_path / "in.raw"), "width": 900, "height": 700,
                  "channels": 4, "dtype": "u8", "style": "red", "stroke_scale": stroke_scale,
                  "model": str(tiny_model_file), "device": "cpu"}, events.append)
        ev = events[-1]
        assert ev["event"] == "preview" and (ev["width"], ev["height"]) == (256, 199)
        got = np.fromfile(ev["output"], np.uint8).reshape(ev["height"], ev["width"], 3)
    finally:
        w.close()
    st = Stylizer.load(tiny_model_file, device="cpu")
    expected, work = _core_preview(st, a[..., :3] / np.float32(255), style="red",
                                   stroke_scale=stroke_scale, size=(199, 256))
    assert tuple(ev["render_size"]) == work and not ev["reduced"]
    assert work == ((394, 507) if stroke_scale == 1 else (263, 338))  # 0.2 MP, 0.089 MP
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_a_camera_size_layers_preview_has_the_full_renders_code(tmp_path, tiny_model_file):
    """A layer that gets the fine detail also gets the feedback step (by default); its preview is
    painted with the code corrected the same way, so it shows the full render's colours."""
    from normstyle_core import Stylizer

    a = np.random.default_rng(5).integers(0, 256, (1800, 2400, 3), dtype=np.uint8)
    a.tofile(tmp_path / "in.raw")
    painting = tmp_path / "painting.png"
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(painting)
    w = worker.Worker(temp_root=tmp_path)
    try:
        events = []
        w.handle({"op": "preview", "input": str(tmp_path / "in.raw"), "width": 2400, "height": 1800,
                  "channels": 3, "dtype": "u8", "style": str(painting), "model": str(tiny_model_file),
                  "device": "cpu"}, events.append)
        ev = events[-1]
        got = np.fromfile(ev["output"], np.uint8).reshape(ev["height"], ev["width"], 3)
    finally:
        w.close()
    st = Stylizer.load(tiny_model_file, device="cpu")
    rgb = a / np.float32(255)
    size = (ev["height"], ev["width"])
    corrected, _ = _core_preview(st, rgb, style=painting, stroke_scale=1.0, size=size, feedback=True)
    as_is, _ = _core_preview(st, rgb, style=painting, stroke_scale=1.0, size=size, feedback=False)
    # the tiny model's correction is small (a tenth of a level on average): compare the means
    assert np.abs(got.astype(int) - corrected).max() <= 1
    assert np.abs(got.astype(int) - corrected).mean() < 0.5 * np.abs(got.astype(int) - as_is).mean()


def test_preview_says_when_it_paints_smaller_than_the_render(tmp_path, tiny_model_file):
    """Brush size 0 on a layer above the preview budget: painted at the budget, flagged."""
    _image(200, 300).tofile(tmp_path / "in.raw")
    events = []
    w = worker.Worker(temp_root=tmp_path)
    try:
        w.handle({"op": "preview", "input": str(tmp_path / "in.raw"), "width": 300, "height": 200,
                  "channels": 4, "style": "red", "stroke_scale": 0, "max_pixels": 15000,
                  "max_side": 64, "model": str(tiny_model_file), "device": "cpu"}, events.append)
    finally:
        w.close()
    ev = events[-1]
    assert ev["reduced"] and ev["render_size"][0] * ev["render_size"][1] <= 15000
    assert (ev["width"], ev["height"]) == (64, 43)


def _preview(w, src, hw, **fields):
    """One preview request on ``w``; returns (event, pixels)."""
    events = []
    req = {"op": "preview", "input": str(src), "width": hw[1], "height": hw[0], "channels": 4,
           "dtype": "u8", "style": "red", "device": "cpu", **fields}
    w.handle(req, events.append)
    ev = events[-1]
    assert ev["event"] == "preview", ev
    pixels = np.frombuffer(Path(ev["output"]).read_bytes(), np.uint8)  # (not np.fromfile: counted)
    return ev, pixels.reshape(ev["height"], ev["width"], 3)


class _Counting:
    """Counts the calls of ``owner.name`` (monkeypatched), calling through."""

    def __init__(self, monkeypatch, owner, name):
        self.calls = 0
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)


def test_a_strength_change_is_a_fade_of_the_kept_painting(tmp_path, tiny_model_file, monkeypatch):
    """The dialog's previews of one layer share the worker's work: a strength change paints
    nothing (only fades the kept painting into the layer), another brush size reads no file,
    going back to a style paints nothing; and every preview is the one painted from scratch
    (the core's, computed here), to the bit."""
    from normstyle_core import Stylizer
    from normstyle_core.renderer import Renderer

    a = np.random.default_rng(8).integers(0, 256, (700, 900, 4), dtype=np.uint8)
    src = tmp_path / "in.raw"
    a.tofile(src)
    renders = _Counting(monkeypatch, Renderer, "render")
    reads = _Counting(monkeypatch, np, "fromfile")
    w = worker.Worker(temp_root=tmp_path)
    model = str(tiny_model_file)
    steps = [  # (settings, renders it needs, file reads it needs)
        (dict(style="red", strength=1.0), 1, 1),
        (dict(style="red", strength=0.6), 0, 0),
        (dict(style="red", strength=0.0), 0, 0),
        (dict(style="blue", strength=0.6), 1, 0),
        (dict(style="red", strength=0.3), 0, 0),
        (dict(style="red", strength=0.3, stroke_scale=1.5), 1, 0),
        (dict(style="red", strength=0.3, preserve_color=True), 1, 0),
        (dict(style="red", strength=0.8, preserve_color=True), 0, 0),
    ]
    got = []
    try:
        for settings, need_renders, need_reads in steps:
            before = (renders.calls, reads.calls)
            ev, pixels = _preview(w, src, (700, 900), model=model, **settings)
            if before != (0, 0):  # the first one also loads the model
                assert (renders.calls - before[0], reads.calls - before[1]) == (need_renders, need_reads), settings
            got.append((settings, ev, pixels))
    finally:
        w.close()
    st = Stylizer.load(tiny_model_file, device="cpu")
    rgb = a[..., :3] / np.float32(255)
    for settings, ev, pixels in got:
        expected, work = _core_preview(st, rgb, style=settings["style"], strength=settings["strength"],
                                       stroke_scale=settings.get("stroke_scale", 1.0),
                                       preserve_color=settings.get("preserve_color", False),
                                       size=(ev["height"], ev["width"]))
        assert tuple(ev["render_size"]) == work
        np.testing.assert_array_equal(pixels, expected, err_msg=str(settings))
    # strength 0 is the layer itself; 0.6 lies between it and the painting
    full, faded, photo = (got[i][2].astype(int) for i in (0, 1, 2))
    assert np.abs(full - photo).mean() > 5
    assert np.abs(faded - photo).mean() < np.abs(full - photo).mean()


def test_a_style_files_code_is_read_once_and_again_when_it_changes(tmp_path, tiny_model_file, monkeypatch):
    """Style from Image: the style image is encoded once for all the previews of a layer; a
    changed file (another picture under the same name) is encoded again and previewed anew."""
    from normstyle_core import Stylizer

    a = np.random.default_rng(9).integers(0, 256, (300, 400, 4), dtype=np.uint8)
    src = tmp_path / "in.raw"
    a.tofile(src)
    painting = tmp_path / "painting.png"
    Image.fromarray(np.random.default_rng(10).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(painting)
    encodes = _Counting(monkeypatch, Stylizer, "encode")
    w = worker.Worker(temp_root=tmp_path)
    kw = dict(model=str(tiny_model_file), style=str(painting))
    try:
        _, first = _preview(w, src, (300, 400), strength=1.0, **kw)
        _preview(w, src, (300, 400), strength=0.5, **kw)
        _preview(w, src, (300, 400), strength=0.5, stroke_scale=2.0, **kw)
        assert encodes.calls == 1
        yy, xx = np.mgrid[0:40, 0:40]
        Image.fromarray(np.dstack([xx * 6, yy * 6, 255 - xx * 6]).astype(np.uint8)).save(painting)
        os.utime(painting, ns=(1, 1))  # a new mtime even where the clock is coarse
        _, again = _preview(w, src, (300, 400), strength=1.0, **kw)
        assert encodes.calls == 2
    finally:
        w.close()
    st = Stylizer.load(tiny_model_file, device="cpu")
    expected, _ = _core_preview(st, a[..., :3] / np.float32(255), style=painting, stroke_scale=1.0,
                                size=again.shape[:2])
    np.testing.assert_array_equal(again, expected)
    assert np.abs(again.astype(int) - first).mean() > 0.5


def test_a_new_layer_file_is_read_anew_and_a_gone_one_is_forgotten(tmp_path, tiny_model_file):
    """The kept layer follows its file: other pixels (a new file under the same name, as a new
    dialog writes) are previewed as they are; once the file is gone the worker lets go of it."""
    src = tmp_path / "in.raw"
    one = np.zeros((200, 300, 4), np.uint8)
    one.tofile(src)
    w = worker.Worker(temp_root=tmp_path)
    kw = dict(model=str(tiny_model_file), strength=0.0)  # strength 0: the layer itself
    try:
        _, dark = _preview(w, src, (200, 300), **kw)
        assert dark.max() == 0
        np.full((200, 300, 4), 255, np.uint8).tofile(src)
        os.utime(src, ns=(2, 2))
        _, light = _preview(w, src, (200, 300), **kw)
        assert light.min() == 255
        assert w._preview_cache is not None
        w.drop_preview_cache()
        assert w._preview_cache is not None  # still there: kept
        src.unlink()
        w.drop_preview_cache()
        assert w._preview_cache is None
    finally:
        w.close()


@pytest.mark.parametrize("dtype", ["u8", "u16", "float"])
def test_layer_pixels_become_the_floats_the_render_gets(dtype):
    """The preview's fast conversion (torch) gives the render's values (numpy), to the bit."""
    rng = np.random.default_rng(11)
    if dtype == "float":
        data = rng.normal(0.5, 0.6, (31, 17, 4)).astype(np.float32)
        data[0, :4, 0] = [np.nan, np.inf, -np.inf, -0.0]
    else:
        data = rng.integers(0, 65536 if dtype == "u16" else 256, (31, 17, 4)).astype(worker.DTYPES[dtype])
    expected = np.clip(np.nan_to_num(data[..., :3].astype(np.float32) / worker.SCALE[dtype], nan=0.0), 0, 1)
    got = worker._layer_rgb(data, dtype).numpy()
    assert got.shape == (31, 17, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_a_client_that_goes_away_stops_its_render(tmp_path, tiny_model_file):
    """GIMP ends the plug-in when the user cancels: the worker's next progress write fails,
    the render stops there and no result is left behind."""
    req = _valid_request(tmp_path, tiny_model_file)
    w = worker.Worker(temp_root=tmp_path)
    seen = []

    def gone(event):
        seen.append(event)
        if event["event"] == "progress" and len(seen) >= 2:
            raise BrokenPipeError("the plug-in went away")
    try:
        with pytest.raises(BrokenPipeError):
            w.handle(req, gone, produced=[])
        assert not any(e["event"] == "done" for e in seen)
        assert not list(w.workdir.glob("result-*"))
        # and the worker serves the next request
        events, out = _stylize(req, w)
        assert events[-1]["event"] == "done" and out is not None
    finally:
        w.close()


def test_served_worker_is_found_first_and_shares_its_folder(tmp_path, tiny_model_file, monkeypatch):
    """`normstyle gimp serve` listens at the default served path; a plug-in whose own Python
    cannot run (a sandbox) uses it, and puts its pixel files in the socket's folder."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("NORMSTYLE_GIMP_SOCKET", raising=False)
    sock = Path(nsclient.served_socket_path({}))
    assert sock == runtime / "normstyle" / "gimp-worker.sock"
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "gimp", "serve", "--model",
                             str(tiny_model_file)], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert sock.exists(), proc.stdout.read().decode()
        (tmp_path / "plug").mkdir()
        (tmp_path / "plug" / nsclient.CONFIG_NAME).write_text(json.dumps({"python": ""}))
        cfg = nsclient.load_config(str(tmp_path / "plug"))  # no Python: fine, a worker is served
        assert nsclient.exchange_dir(cfg) == str(sock.parent)
        client = nsclient.WorkerClient(cfg).open()
        assert client.served and client.exchange_dir == str(sock.parent)
        hello = client.request({"op": "hello"})
        assert Path(hello["workdir"]).parent == sock.parent  # the worker's files: shared folder
        client.close()
        src = Path(tempfile.mkdtemp(dir=nsclient.exchange_dir(cfg))) / "in.raw"
        _image().tofile(src)
        nsclient.stylize_file(cfg, input_path=str(src), output_path=str(src.parent / "out.raw"),
                              width=28, height=20, channels=4, dtype="u8", style="red",
                              strength=1.0, preserve_color=False)  # the model: serve's --model
        assert (src.parent / "out.raw").stat().st_size == 28 * 20 * 4
        served = {c.name: c.detail for c in install.doctor(tmp_path / "none", query=False)}
        assert served["served worker"].startswith(f"`normstyle gimp serve` listening at {sock}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not sock.exists()
