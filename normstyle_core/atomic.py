"""Atomic file writes: a temp file in the target's folder, fsync, then one rename.

No reader ever sees a half-written file under the final name, and a write that fails leaves no
temp behind. A process killed mid-write does leave its temp; callers that clean such temps up
choose the temp's name (``prefix``/``suffix``) so that their cleanup can recognise it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def default_file_mode() -> int:
    """0o666 minus the umask: what open() would give; mkstemp's 0o600 is too private for outputs."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path: str | os.PathLike[str], *, write: Callable[[BinaryIO], object],
                     prefix: str | None = None, suffix: str = ".tmp", overwrite: bool = True,
                     lock: Callable[[int], None] | None = None, private: bool = False) -> Path:
    """Create ``path`` with what ``write`` writes to the open binary file it is given.

    The temp file is named ``<prefix><8 random characters><suffix>`` (mkstemp's names), by
    default ``.<name>.XXXXXXXX.tmp``. ``lock`` is called with the temp file's descriptor before
    anything is written; the file stays open until after the rename, so a lock taken there is
    held until the temp no longer exists under its temp name. ``overwrite=False`` raises
    FileExistsError if ``path`` exists, atomically. ``private`` keeps mkstemp's owner-only mode
    instead of what open() would give.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix,
                               dir=path.parent)
    fh = os.fdopen(fd, "wb")
    try:
        if lock is not None:
            lock(fh.fileno())
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
        if os.name == "nt":
            fh.close()  # Windows cannot rename an open file
        if not private:
            os.chmod(tmp, default_file_mode())
        _commit(tmp, path, overwrite=overwrite)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):  # flushed and synced above; a failed write's buffer
            fh.close()                      # must not replace the error already raised
    return path


def write_bytes_atomically(path: str | os.PathLike[str], *, data: bytes, prefix: str | None = None,
                           suffix: str = ".tmp", private: bool = False) -> Path:
    """:func:`write_atomically` of ``data``."""
    return write_atomically(path, write=lambda fh: fh.write(data), prefix=prefix, suffix=suffix,
                            private=private)


def _commit(tmp: str, path: Path, *, overwrite: bool) -> None:
    """Give a finished temp file its final name atomically.

    Without ``overwrite``, link(2) fails if ``path`` exists: no window in which another process's
    file could be replaced.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
