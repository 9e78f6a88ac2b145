"""The user's style bank (``$NORMSTYLE_HOME/styles``) and style resolution for the commands.

Reading the bank is :mod:`normstyle_core.user_styles` (the library finds user styles by name
too); adding and removing them is here. A user style is stored as a copy of its source file,
plus a small JSON record:

    styles/<name>.json   {"name", "kind": "image" | "code", "file", "source", "added"}
    styles/<name>.<ext>  the style image (encoded with whatever model is in use) or a .pt code

Images are kept rather than codes because a code belongs to one model; an image works with
every model, and encoding it costs one small forward pass per run.

Resolution order of a ``--style`` value: built-in style of the model, user style, file path.
Built-ins win; a user style with a built-in's name is never used silently (a warning says so),
and ``styles add`` refuses such names.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

# torch-free: normstyle_core imports its heavy parts lazily
from normstyle_core.atomic import write_atomically, write_bytes_atomically
from normstyle_core.user_styles import (NAME_RE, UserStyle, did_you_mean, find_user_style, listed,
                                        user_style_code, user_style_names, user_styles_dir)

__all__ = ["NAME_RE", "UserStyle", "UserStyleBank", "resolve_one", "resolve_styles", "safe_name"]


def _core_errors():
    from normstyle_core import errors
    return errors


class UserStyleBank:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else user_styles_dir()

    # ------------------------------------------------------------------ read
    def names(self) -> list[str]:
        return user_style_names(root=self.root)

    def get(self, name: str) -> UserStyle | None:
        return find_user_style(name, root=self.root)

    def all(self) -> list[UserStyle]:
        """The readable styles; damaged records are skipped (:meth:`damaged` says which)."""
        return [s for s, _ in self._read_all() if s is not None]

    def damaged(self) -> list[str]:
        """One line for each damaged record: what is wrong and how to repair it."""
        return [why for s, why in self._read_all() if s is None and why]

    def _read_all(self) -> list[tuple[UserStyle | None, str | None]]:
        errors = _core_errors()
        found = []
        for name in self.names():
            try:
                found.append((self.get(name), None))
            except errors.StyleError as exc:
                found.append((None, str(exc)))
        return found

    # ----------------------------------------------------------------- write
    def add(self, name: str, source: Path, *, kind: str, replace: bool = False,
            origin: str | None = None) -> UserStyle:
        """Copy ``source`` into the bank as user style ``name``; ``origin`` is what `styles list`
        shows as its source (default: ``source``'s path)."""
        errors = _core_errors()
        if not NAME_RE.match(name):
            raise errors.StyleError(f"invalid style name {name!r}: use letters, digits, '-' and '_' "
                                    "(up to 64, starting with a letter or digit)")
        try:
            exists = self.get(name) is not None
        except errors.StyleError:  # a damaged record: --force repairs it
            exists = True
        if exists and not replace:
            raise errors.StyleError(f"user style {name!r} already exists; use --force to replace it")
        self.root.mkdir(parents=True, exist_ok=True)
        # the copy's name must never be the record's own (a style image named paint.json)
        suffix = source.suffix.lower() if source.suffix.lower() not in ("", ".json") else ".img"
        data_file = self.root / f"{name}{suffix}"
        _atomic_copy(source, data_file)
        # Remove an older data file of the same name with another extension.
        for old in self.root.glob(f"{name}.*"):
            if old != data_file and old.suffix != ".json" and old.stem == name:
                old.unlink(missing_ok=True)
        record = {"name": name, "kind": kind, "file": data_file.name, "source": origin or str(source.resolve()),
                  "added": time.time()}
        _atomic_write_text(self.root / f"{name}.json", json.dumps(record, indent=2))
        return self.get(name)  # type: ignore[return-value]

    def remove(self, name: str) -> bool:
        """Remove user style ``name``: its record and its files in the bank (``name.*``), and
        never a file the record points to elsewhere; works on a damaged record too."""
        if not NAME_RE.match(name) or not (self.root / f"{name}.json").is_file():
            return False
        for path in self.root.glob(f"{glob_escape(name)}.*"):
            if path.stem == name and path.suffix != ".json" and (path.is_file() or path.is_symlink()):
                path.unlink(missing_ok=True)  # a symlink: the link itself, never its target
        (self.root / f"{name}.json").unlink(missing_ok=True)
        return True

    # ---------------------------------------------------------------- encode
    def code(self, name: str, stylizer):
        """The style code of user style ``name`` for this stylizer's model."""
        style = self.get(name)
        if style is None:
            raise _core_errors().StyleError(f"no user style named {name!r}")
        return user_style_code(style, stylizer)


def _atomic_copy(src: Path, dst: Path) -> None:
    def copy(fh: BinaryIO) -> None:
        with open(src, "rb") as source:
            shutil.copyfileobj(source, fh)
    write_atomically(dst, write=copy, private=True)  # owner-only, as the bank's files always were


def _atomic_write_text(path: Path, text: str) -> None:
    write_bytes_atomically(path, data=text.encode("utf-8"), private=True)


# -------------------------------------------------------------- resolution
def safe_name(text: str) -> str:
    """A style name usable inside a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")
    return cleaned or "style"


def shadowed_warning(name: str) -> str:
    return (f"warning: the built-in style {name!r} is used; your user style of the same name is "
            f"shadowed (rename it: `normstyle styles remove {name}` then add it under another name)")


def resolve_one(spec: str, stylizer, bank: UserStyleBank, warn: Callable[[str], None],
                refine: Callable[[Path], Any] | None = None):
    """(StyleCode, display name) for one ``--style`` value; ``refine(path)``, when given, turns a
    style image into a refined code (`--refine STEPS`; names and code files are used as they are)."""
    errors = _core_errors()
    from normstyle_core.builtin_styles import renamed
    current = renamed(spec, stylizer.info.get("path"))
    if spec not in stylizer.style_bank and current in stylizer.style_bank and bank.get(spec) is None:
        warn(f"note: the built-in style {spec!r} is now called {current!r}; the old name still works for now")
        return stylizer.style_bank[current], current
    if spec in stylizer.style_bank:
        if bank.get(spec) is not None:
            warn(shadowed_warning(spec))
        return stylizer.style_bank[spec], spec
    if NAME_RE.match(spec) and bank.get(spec) is not None:
        return bank.code(spec, stylizer), spec
    from normstyle_core.builtin_styles import style_notes
    path = _existing_style_file(spec, builtin=stylizer.style_bank, bank=bank,
                                removed=style_notes(stylizer.info.get("path")).removed)
    return stylizer.style(path, from_image_file=refine), path.stem


def _existing_style_file(spec: str, *, builtin, bank: UserStyleBank, removed: dict[str, str]) -> Path:
    """``spec`` as a style file (image or .pt code) once it is known to be no style name; the
    one-line refusal otherwise (saying why, for a name the shipped model no longer has)."""
    errors = _core_errors()
    path = Path(spec).expanduser()
    if not path.exists():
        names, user = sorted(builtin), bank.names()
        if spec in removed:
            raise errors.StyleError(f"{spec!r} is no longer a built-in style ({removed[spec]}); "
                                    f"`normstyle styles list` shows the {len(names)} there are"
                                    + did_you_mean(spec, names=[*names, *user]))
        raise errors.StyleError(f"style {spec!r} is not a built-in style ({listed(names)}), not a user "
                                f"style ({listed(user)}) and not an existing file"
                                + did_you_mean(spec, names=[*names, *user]))
    if path.is_dir():
        raise errors.StyleError(f"style {spec!r} is a folder; give an image file or a style name")
    return path


def check_styles_early(specs: Sequence[str], model_path: Path | None, bank: UserStyleBank) -> None:
    """Refuse a ``--style`` that names nothing before the model loads, with the error
    :func:`resolve_one` would give after it: a misspelt name is answered without importing torch
    (issue #39). Only for the shipped model, whose built-in names styles.json lists (a test keeps
    them equal to the model's); another model's names are in the model, so resolve_one checks
    them once it is loaded. A value that passes here can still fail there (an unreadable image,
    a code of another shape): those need the model anyway."""
    from normstyle_core.builtin_styles import style_notes
    notes = style_notes(model_path)
    if not notes.styles:
        return
    for spec in specs:
        if spec in notes.styles or notes.aliases.get(spec) in notes.styles:
            continue
        if NAME_RE.match(spec) and bank.get(spec) is not None:
            continue
        _existing_style_file(spec, builtin=notes.styles, bank=bank, removed=notes.removed)


def resolve_styles(specs: Sequence[str], weights: Sequence[float] | None, stylizer,
                   bank: UserStyleBank, warn: Callable[[str], None],
                   refine: Callable[[Path], Any] | None = None):
    """One StyleCode (blended if several) and its name for output templates."""
    errors = _core_errors()
    if not specs:
        raise errors.StyleError("no style given (use --style NAME|IMAGE|CODE.pt)")
    if weights is not None and len(weights) != len(specs):
        raise errors.StyleError(f"{len(specs)} style(s) but {len(weights)} weight(s) in --weights")
    resolved = [resolve_one(s, stylizer, bank, warn, refine) for s in specs]
    names = [safe_name(n) for _, n in resolved]
    if len(resolved) == 1:
        code, _ = resolved[0]
        if weights is not None and not 0 < weights[0] < float("inf"):  # NaN fails both
            raise errors.StyleError(f"the weight of a single style must be a finite number > 0, got {weights[0]:g}")
        return code, names[0]
    from normstyle_core import StyleCode
    name = "+".join(names)
    return StyleCode.blend([c for c, _ in resolved], weights, name=name), name
