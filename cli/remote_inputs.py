"""Batch inputs named by fsspec URLs (``s3://bucket/photos/``, ``gs://...``, ``file:///...``).

fsspec comes with torch; the protocol's own package (s3fs, gcsfs, ...) is needed for each
remote store, and a URL whose package is missing is one line naming it. Outputs stay on a
file system (a shared one on a cluster): the output policy's atomic no-replace writes rely on
hard links and renames that object stores do not have.
"""
from __future__ import annotations

import os
import posixpath
import re
import tempfile
from pathlib import Path

from normstyle_core.formats import INPUT_EXTENSIONS

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A download larger than this is not a photo the decoder would accept anyway (imaging's pixel
# limit refuses it after the header); stopping at the byte count keeps a hostile server from
# filling the temp folder.
MAX_DOWNLOAD_BYTES = 2 << 30


def is_url(text: str) -> bool:
    """True for ``scheme://...`` (a Windows path such as C:\\x is not a URL)."""
    return bool(_SCHEME.match(text))


def _filesystem(url: str):
    import fsspec
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # "Install s3fs to access S3", "Protocol not known: x"
        raise ValueError(f"cannot read it: {exc}") from None


def local_file(url: str) -> Path | None:
    """The local file a ``file://`` (or other local-filesystem) URL names, None for a remote one:
    planning must know it, so that an output never lands on it."""
    try:
        fs, path = _filesystem(url)
    except ValueError:
        return None
    from fsspec.implementations.local import LocalFileSystem
    return Path(path) if isinstance(fs, LocalFileSystem) else None


def collect_url_inputs(url: str, *, recursive: bool) -> tuple[list[tuple[Path, Path, str]], list[tuple[str, str]]]:
    """([(remote path, sub-folder to mirror, file URL)], [(url, problem)]) for one URL naming a
    file, a folder or a glob pattern; image extensions only inside folders, as for local ones."""
    try:
        fs, root = _filesystem(url)
    except ValueError as exc:
        return [], [(url, str(exc))]
    found: list[tuple[Path, Path, str]] = []
    try:
        if any(ch in root for ch in "*?["):
            names = sorted(fs.glob(root))
            base = root.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
            if not names:
                return [], [(url, "no files match this pattern")]
        elif fs.isdir(root):
            names = sorted(fs.find(root, maxdepth=None if recursive else 1))
            base = root.rstrip("/")
        elif fs.exists(root):
            return [(Path(root), Path(), fs.unstrip_protocol(root))], []
        else:
            return [], [(url, "no such file or folder")]
    except OSError as exc:
        return [], [(url, f"cannot list it ({exc.strerror or exc})")]
    for name in names:
        rel = posixpath.relpath(name, base) if base else name
        if posixpath.splitext(name)[1].lower() not in INPUT_EXTENSIONS:
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files, as in local folders
        found.append((Path(name), Path(posixpath.dirname(rel)), fs.unstrip_protocol(name)))
    if not found:
        return [], [(url, "no images found there" + ("" if recursive else " (use --recursive for sub-folders)"))]
    return found, []


def load_url_image(url: str):
    """Fetch ``url`` into a private temp file and decode it with the same checks as a local
    photo (normstyle_core.imaging.load_image); errors name the URL, not the temp file."""
    from normstyle_core.errors import ImageError
    from normstyle_core.imaging import load_image
    try:
        fs, path = _filesystem(url)
    except ValueError as exc:
        raise ImageError(f"{url}: {exc}") from None
    suffix = posixpath.splitext(path)[1][:16]
    fd, tmp = tempfile.mkstemp(prefix="normstyle-in-", suffix=suffix)  # 0600, ours alone
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as src:
            copied = 0
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_DOWNLOAD_BYTES:
                    raise ImageError(f"{url}: larger than {MAX_DOWNLOAD_BYTES >> 30} GiB; not a photo we can decode")
                out.write(chunk)
        try:
            return load_image(tmp)
        except ImageError as exc:
            raise ImageError(str(exc).replace(tmp, url)) from None
    except FileNotFoundError:
        raise ImageError(f"{url}: file not found") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass

