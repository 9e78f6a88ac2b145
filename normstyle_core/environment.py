"""Every NORMSTYLE_* environment variable, declared and read here and nowhere else.

Each variable has one declaration (what it is, its values, its range, its help); :func:`read`
parses and checks it the same way for every caller, and a value that is wrong is one
:class:`~normstyle_core.errors.ConfigError` line naming the variable and what it takes. An
empty value is the same as an unset one (``NORMSTYLE_MODEL=`` clears it, as it does for Click's
options). ``tests/test_environment.py`` checks that no other module reads a NORMSTYLE_* variable.
The GIMP plug-in's own variables (``NORMSTYLE_GIMP_SOCKET``, ``NORMSTYLE_GIMP_TRACE``) are read by
the plug-in, which runs in GIMP's Python without this package, and are declared here for the
record.

Standard library only: commands that render nothing read these without torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ON = {"1": True, "true": True, "yes": True, "on": True}
OFF = {"0": False, "false": False, "no": False, "off": False}
# One process's CPU threads: more than any machine here has, less than a C int.
MAX_THREADS = 4096
# The tile settings bound what one render may hold in memory (options.RendererOptions).
MAX_TILE_PIXELS = 1 << 30
MIN_TILE_SIZE, MAX_TILE_SIZE = 16, 16384


@dataclass(frozen=True)
class Variable:
    """One environment variable: ``kind`` "path", "int" (``minimum``..``maximum``), "choice"
    (``choices``: accepted spelling, lower case -> value) or "flag" (any value but an "off" one is on)."""

    name: str
    kind: str  # for the plug-in's variables (read_by "gimp"), only what they hold: it parses them
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: dict[str, Any] = field(default_factory=dict)
    read_by: str = "normstyle"  # "gimp": read by the plug-in in GIMP's Python

    def parse(self, raw: str) -> Any:
        text = raw.strip()
        if self.kind == "path":
            return Path(text).expanduser()
        if self.kind == "flag":
            return text.lower() not in OFF
        if self.kind == "choice":
            if text.lower() in self.choices:
                return self.choices[text.lower()]
            raise ConfigError(f"{self.name}={raw!r}: use one of {', '.join(self._spellings())}")
        if self.kind == "int":
            if not (text.isascii() and text.lstrip("+").isdigit()):
                raise ConfigError(f"{self.name}={raw!r}: use a whole number from {self.minimum} to {self.maximum}")
            value = int(text)
            if not self.minimum <= value <= self.maximum:
                raise ConfigError(f"{self.name}={raw!r}: use a whole number from {self.minimum} to {self.maximum}")
            return value
        raise AssertionError(self.kind)

    def _spellings(self) -> list[str]:
        return list(self.choices)


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("NORMSTYLE_MODEL", "path", "model file used instead of the shipped one (as --model)"),
    Variable("NORMSTYLE_HOME", "path", "folder for your saved styles and normstyle's caches "
             "(default: the platform's user data and cache folders)"),
    Variable("NORMSTYLE_THREADS", "int", "CPU threads (as --threads)", minimum=1, maximum=MAX_THREADS),
    Variable("NORMSTYLE_COMPILE", "choice", "torch.compile the network: 1 always, 0 never, auto (default: "
             "at once on CUDA, in the background on the CPU when it pays)",
             choices={"auto": "auto", **ON, **OFF}),
    Variable("NORMSTYLE_ENGINE", "choice", "auto (default: a run of a few photos paints without torch where it "
             "can) or torch (always torch)", choices={"auto": "auto", "torch": "torch"}),
    Variable("NORMSTYLE_TILE_PIXELS", "int", "render in tiles above this many pixels (0: always)",
             minimum=0, maximum=MAX_TILE_PIXELS),
    Variable("NORMSTYLE_TILE_SIZE", "int", "the tiles' side in pixels", minimum=MIN_TILE_SIZE, maximum=MAX_TILE_SIZE),
    Variable("NORMSTYLE_DEBUG", "flag", "tracebacks instead of one-line errors"),
    Variable("NORMSTYLE_GIMP_SOCKET", "path", "the worker socket the GIMP plug-in connects to", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_TRACE", "path", "a file the GIMP plug-in logs its steps to", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_PYTHON", "path", "the Python the GIMP plug-in starts its worker with", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_WORKER", "path", "the worker command the GIMP plug-in starts", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_IDLE_TIMEOUT", "path", "seconds the plug-in's worker waits idle", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_PRECISION", "path", "the precision the plug-in's worker renders in", read_by="gimp"),
    Variable("NORMSTYLE_GIMP_SERVE_SOCKET", "path", "a `gimp serve` socket the plug-in uses", read_by="gimp"),
)}


def raw(name: str) -> str | None:
    """The variable's text as set, None when unset or empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a declared normstyle environment variable")
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def read(name: str, default: Any = None) -> Any:
    """The value of variable ``name``, parsed and checked; ``default`` when unset or empty."""
    text = raw(name)
    return default if text is None else VARIABLES[name].parse(text)


def check_all() -> None:
    """Parse every variable that is set (ConfigError on the first wrong one)."""
    for name, variable in VARIABLES.items():
        if variable.read_by == "normstyle":
            read(name)


def model_path() -> Path | None:
    """NORMSTYLE_MODEL, None when not set."""
    return read("NORMSTYLE_MODEL")


def home() -> Path | None:
    """NORMSTYLE_HOME, None when not set."""
    return read("NORMSTYLE_HOME")


def debug() -> bool:
    """NORMSTYLE_DEBUG: show tracebacks. Never raises (it is read while an error is reported)."""
    return bool(read("NORMSTYLE_DEBUG", False))
