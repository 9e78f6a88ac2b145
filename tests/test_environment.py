"""Every NORMSTYLE_* environment variable is declared once (normstyle_core/environment.py) and
read nowhere else; each wrong value is one line naming the variable, whatever the command."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from normstyle_core import environment
from normstyle_core.environment import MAX_THREADS, VARIABLES, read
from normstyle_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("normstyle_core", "cli", "gimp_plugin") for p in (REPO / folder).rglob("*.py")]
NAME = re.compile(r"NORMSTYLE_[A-Z_]+[A-Z]")
# test-only switches of the test suite itself, never read by the product
TEST_ONLY = {"NORMSTYLE_GIMP_REQUIRED"}


def test_every_variable_the_code_names_is_declared():
    texts = [p.read_text(encoding="utf-8") for p in SOURCES]
    named = {m for text in texts for m in NAME.findall(text)}
    constants = {m for text in texts for m in re.findall(r"^(NORMSTYLE_[A-Z_]+) = ", text, flags=re.M)}
    undeclared = named - set(VARIABLES) - TEST_ONLY - constants
    assert not undeclared, f"declare these in normstyle_core/environment.py: {sorted(undeclared)}"


def test_no_module_but_environment_reads_a_normstyle_variable():
    reads = re.compile(r"(environ\.get\(|environ\[|getenv\()\s*[\"']NORMSTYLE_")
    offenders = [str(p.relative_to(REPO)) for p in SOURCES
                 if reads.search(p.read_text(encoding="utf-8")) and p.name != "environment.py"
                 and "gimp_plugin" not in p.parts]  # the plug-in runs in GIMP's Python, without us
    assert offenders == []
    gimp_reads = re.compile(r"(environ\.get\(|environ\[|env\.get\(|env\[|getenv\()\s*[\"'](NORMSTYLE_[A-Z_]+)")
    gimp = {m.group(2) for p in SOURCES if "gimp_plugin" in p.parts
            for m in gimp_reads.finditer(p.read_text(encoding="utf-8"))}
    assert gimp and gimp <= {n for n, v in VARIABLES.items() if v.read_by == "gimp"}


def test_click_options_take_their_bounds_from_the_declarations():
    from cli.main import cli
    threads = next(p for p in cli.params if p.name == "threads")
    assert threads.envvar == "NORMSTYLE_THREADS"
    assert (threads.type.min, threads.type.max) == (VARIABLES["NORMSTYLE_THREADS"].minimum, MAX_THREADS)


GOOD = [
    ("NORMSTYLE_THREADS", "3", 3), ("NORMSTYLE_THREADS", " 7 ", 7), ("NORMSTYLE_THREADS", "+2", 2),
    ("NORMSTYLE_THREADS", str(MAX_THREADS), MAX_THREADS),
    ("NORMSTYLE_TILE_PIXELS", "0", 0), ("NORMSTYLE_TILE_SIZE", "512", 512),
    ("NORMSTYLE_COMPILE", "auto", "auto"), ("NORMSTYLE_COMPILE", "1", True), ("NORMSTYLE_COMPILE", "ON", True),
    ("NORMSTYLE_COMPILE", "no", False), ("NORMSTYLE_COMPILE", "0", False),
    ("NORMSTYLE_ENGINE", "torch", "torch"), ("NORMSTYLE_ENGINE", "Auto", "auto"),
    ("NORMSTYLE_DEBUG", "1", True), ("NORMSTYLE_DEBUG", "0", False), ("NORMSTYLE_DEBUG", "anything", True),
    ("NORMSTYLE_MODEL", "~/m.pt", Path("~/m.pt").expanduser()),
]
EMPTY = ["", "   ", "\t"]
BAD_NUMBERS = ["abc", "1.5", "-1", "99999999999999999999", "nan", "inf", "-inf", "1e3", "0x10",
               "\u0661\u0662", "\uff13", "1_000", "3 4", "1,5"]
BAD_CHOICES = ["maybe", "disable", "2", "yes please", "torch,auto", "\u00e9", "onnx"]


@pytest.mark.parametrize("name,value,want", GOOD)
def test_good_values(monkeypatch, name, value, want):
    monkeypatch.setenv(name, value)
    assert read(name) == want


@pytest.mark.parametrize("name", sorted(VARIABLES))
@pytest.mark.parametrize("value", EMPTY)
def test_an_empty_value_is_unset(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert read(name, "default") == "default"


@pytest.mark.parametrize("name", ["NORMSTYLE_THREADS", "NORMSTYLE_TILE_PIXELS", "NORMSTYLE_TILE_SIZE"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_number_is_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        read(name)
    message = str(err.value)
    assert name in message and "\n" not in message and "whole number" in message


@pytest.mark.parametrize("name,value", [("NORMSTYLE_THREADS", "0"), ("NORMSTYLE_THREADS", str(MAX_THREADS + 1)),
                                        ("NORMSTYLE_TILE_SIZE", "8"), ("NORMSTYLE_TILE_SIZE", "100000"),
                                        ("NORMSTYLE_TILE_PIXELS", str(1 << 40))])
def test_an_out_of_range_number_is_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        read(name)


@pytest.mark.parametrize("name", ["NORMSTYLE_COMPILE", "NORMSTYLE_ENGINE"])
@pytest.mark.parametrize("value", BAD_CHOICES)
def test_a_bad_choice_is_one_line(monkeypatch, name, value):
    if (name, value.lower()) in {("NORMSTYLE_COMPILE", v) for v in VARIABLES["NORMSTYLE_COMPILE"].choices}:
        pytest.skip("a valid spelling")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        read(name)
    assert name in str(err.value) and "use one of" in str(err.value)


def test_the_readers_use_the_declarations(monkeypatch, tmp_path):
    from normstyle_core.options import RendererOptions
    from normstyle_core.user_styles import user_styles_dir
    monkeypatch.setenv("NORMSTYLE_TILE_PIXELS", "12345")
    monkeypatch.setenv("NORMSTYLE_TILE_SIZE", " 256 ")
    assert (RendererOptions.from_environment().tile_pixels, RendererOptions.from_environment().tile_size) == (12345, 256)
    monkeypatch.setenv("NORMSTYLE_TILE_SIZE", "2.5")
    with pytest.raises(ConfigError, match="NORMSTYLE_TILE_SIZE"):
        RendererOptions.from_environment()
    monkeypatch.setenv("NORMSTYLE_HOME", "")
    assert user_styles_dir() != Path.cwd() / "styles"  # empty: the platform's folder, not the current one
    monkeypatch.setenv("NORMSTYLE_HOME", str(tmp_path))
    assert user_styles_dir() == tmp_path / "styles"
    monkeypatch.setenv("NORMSTYLE_MODEL", "")
    from normstyle_core.stylize import DEFAULT_MODEL, default_model_path
    assert default_model_path() == DEFAULT_MODEL


@pytest.mark.parametrize("tile_pixels,tile_size", [(-1, 512), (1 << 40, 512), (1000, 0), (1000, 1.5), (True, 512)])
def test_renderer_options_hold_the_same_ranges(tile_pixels, tile_size):
    from normstyle_core.errors import StyleError
    from normstyle_core.options import RendererOptions
    with pytest.raises(StyleError):
        RendererOptions(tile_pixels=tile_pixels, tile_size=tile_size)


@pytest.mark.parametrize("name,value", [("NORMSTYLE_COMPILE", "maybe"), ("NORMSTYLE_TILE_PIXELS", "lots"),
                                        ("NORMSTYLE_ENGINE", "gpu"), ("NORMSTYLE_TILE_SIZE", "-4")])
@pytest.mark.parametrize("command", [("styles", "list"), ("info",)])
def test_every_command_says_so_in_one_line(tmp_path, name, value, command):
    """Even a command that never reads the variable: a wrong setting is found at once, not the
    day a camera-size photo first needs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSTYLE_")}
    env.update({"NORMSTYLE_HOME": str(tmp_path), name: value})
    r = subprocess.run([sys.executable, "-m", "cli.main", *command], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and name in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_huge_thread_count_is_refused_by_click(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSTYLE_")}
    env.update({"NORMSTYLE_HOME": str(tmp_path), "NORMSTYLE_THREADS": "99999999999999"})
    r = subprocess.run([sys.executable, "-m", "cli.main", "styles", "list"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--threads" in r.stderr, r.stderr


def test_module_reads_no_torch():
    code = "import sys, normstyle_core.environment as e; e.check_all(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_names_are_a_programming_error():
    with pytest.raises(KeyError):
        environment.raw("NORMSTYLE_NOPE")


def test_every_threads_option_has_the_declared_range():
    from cli.common import threads_type
    from cli.main import cli
    found = [p for _, c in _walk(cli) for p in c.params if p.name in ("threads", "global_threads")]
    assert len(found) > 5 and all(p.type is threads_type() for p in found)
    assert (threads_type().min, threads_type().max) == (VARIABLES["NORMSTYLE_THREADS"].minimum, MAX_THREADS)


def _walk(group, ctx=None):
    import click
    ctx = ctx or click.Context(group)
    yield (), group
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _walk(command, click.Context(command, parent=ctx))
        else:
            yield (name,), command
