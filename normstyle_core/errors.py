"""Exceptions the core raises for problems the *user* can fix.

Front-ends (CLI, GIMP plug-in) catch :class:`NormstyleError` and print its message as one
line; anything else is a bug and may show a traceback.
"""
from __future__ import annotations


class NormstyleError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""


class ImageError(NormstyleError):
    """An input image is missing, unreadable, corrupt, too large or of an unsupported kind."""


class CheckpointError(NormstyleError):
    """A file is not a (compatible) normstyle checkpoint or style code."""


class WeightsUnavailableError(NormstyleError):
    """The VGG-19 loss-network weights asked for cannot be found offline."""


class StyleError(NormstyleError):
    """A style name, file or blend specification is invalid."""


class ConfigError(NormstyleError):
    """An option or configuration value is invalid."""


class DeviceError(NormstyleError):
    """The requested device or precision is not available on this machine."""


class TrainingError(NormstyleError):
    """Training cannot continue (non-finite loss, empty data folder, ...)."""


class OutputError(NormstyleError):
    """An output may not be written: it exists (no --overwrite), or it is a file the run reads."""


class RenderError(NormstyleError):
    """A render came out unusable (NaN or infinite pixels): broken style code or model weights."""
