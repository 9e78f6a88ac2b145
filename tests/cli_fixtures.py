"""Helpers and fixtures for the CLI tests: tiny real image files of every kind, a CliRunner
with the tiny model and an isolated NORMSTYLE_HOME."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli


def photo(path: Path, w: int = 40, h: int = 30, mode: str = "RGB", seed: int = 0, **save) -> Path:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        arr = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        img = Image.fromarray(arr)
    else:
        arr = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
        img = Image.fromarray(arr if len(mode) > 1 else arr[..., 0], mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **save)
    return path


def bomb_png(path: Path, w: int = 50_000, h: int = 50_000) -> Path:
    """A few-byte PNG whose header declares w x h pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def truncated_jpeg(path: Path) -> Path:
    tmp = path.with_name("full_" + path.name)
    photo(tmp, 64, 64)
    data = tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def leftovers(folder: Path) -> list[Path]:
    """Temp or hidden files a crashed/atomic write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class Run:
    def __init__(self, runner: CliRunner) -> None:
        self.runner = runner

    def __call__(self, *args: str, **kw):
        result = self.runner.invoke(cli, [str(a) for a in args], catch_exceptions=True, **kw)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback would have reached the user: that is a bug
        assert "Traceback" not in result.output
        return result


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("NORMSTYLE_HOME", str(h))
    monkeypatch.delenv("NORMSTYLE_DEBUG", raising=False)
    return h


@pytest.fixture
def run(tiny_model_file, home, monkeypatch) -> Run:
    """invoke `normstyle ...` with the tiny model (built-in styles red, blue) on the CPU."""
    monkeypatch.setenv("NORMSTYLE_MODEL", str(tiny_model_file))
    return Run(CliRunner())


@pytest.fixture
def raw_run(home) -> Run:
    return Run(CliRunner())
