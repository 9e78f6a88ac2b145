"""One output policy for every writer: what a command may write, decided here.

A command that writes files (``demo``, ``eval``, ``export``, ``styles show --export``, ``styles
list --sheet``; ``stylize`` and ``batch`` plan whole runs with the same rules in
``cli/pipeline.py``) makes one :class:`OutputPolicy` from its ``--overwrite`` flag and the files
it reads, and writes every file through it:

- never onto a file the run reads (an input photo, a style image) or the model in use;
- never over an existing file without ``overwrite`` (every writing command has ``--overwrite``);
- never onto a folder, nor through a symlink to a file of the user's without ``overwrite``;
- atomically (a temp file beside the target, renamed into place): never a half-written file.

Each refusal is one :class:`~normstyle_core.errors.OutputError` line saying what to do. Standard
library only (the CLI checks outputs before torch loads).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

from .atomic import write_atomically
from .errors import OutputError


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


@dataclass(frozen=True)
class OutputPolicy:
    """``overwrite``: replace existing outputs (``--overwrite``). ``protected``: (file, what it is)
    pairs that are never written, whatever ``overwrite`` says."""

    overwrite: bool = False
    protected: tuple[tuple[Path, str], ...] = ()

    @classmethod
    def for_run(cls, *, overwrite: bool, reads: Iterable[tuple[str | os.PathLike[str] | None, str]] = ()
                ) -> "OutputPolicy":
        """The policy of a run that reads ``reads``: (path, what it is), e.g. (photo, "an input photo")."""
        return cls(overwrite=bool(overwrite),
                   protected=tuple((Path(p), what) for p, what in reads if p is not None and str(p) != ""))

    def check(self, path: str | os.PathLike[str]) -> Path:
        """``path`` if this run may write it, else OutputError (one line)."""
        path = Path(path)
        for protected, what in self.protected:
            if _same(path, protected):
                raise OutputError(f"{path}: is {what}; refusing to write over it (choose another output)")
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
        return path

    def write(self, path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
        """Check ``path``, then create it atomically with what ``write`` writes to its open file."""
        path = self.check(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # created with the first file, not before
        try:
            return write_atomically(path, write=write, overwrite=self.overwrite)
        except FileExistsError:  # it appeared meanwhile
            raise OutputError(f"{path}: already exists (use --overwrite to replace it)") from None

    def write_text(self, path: str | os.PathLike[str], text: str) -> Path:
        data = text.encode("utf-8")
        return self.write(path, lambda fh: fh.write(data))

    def save_image(self, image, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """:func:`~normstyle_core.imaging.save_image` through this policy."""
        from .imaging import save_image
        return save_image(image, self.check(path), overwrite=self.overwrite, **kwargs)
