"""The user's saved styles (``normstyle styles add``), readable by the library as well as the CLI.

A user style is a copy of its source file plus a small JSON record in one folder:

    <folder>/<name>.json   {"name", "kind": "image" | "code" | "refined", "file", "source", "added"}
    <folder>/<name>.<ext>  the style image, or a .pt style code

The folder is ``$NORMSTYLE_HOME/styles``, else ``styles`` in the platform's user data folder.
:meth:`normstyle_core.Stylizer.style` looks names up here after the model's built-in styles, so
``Stylizer.stylize(photo, style="mine")`` finds what ``normstyle stylize --style mine`` finds.

Standard library only at import time: the CLI reads the bank without importing torch.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import StyleError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Error messages list at most this many style names; the shipped model's 38 in one line would
# bury the "did you mean" hint.
LISTED_NAMES = 8


def user_styles_dir() -> Path:
    """``$NORMSTYLE_HOME/styles``, else ``styles`` in the platform's user data folder."""
    from .environment import home
    if home() is not None:
        return home() / "styles"
    import platformdirs
    return Path(platformdirs.user_data_dir("normstyle", appauthor=False)) / "styles"


@dataclass
class UserStyle:
    name: str
    kind: str  # "image" | "code" | "refined" (a code fitted to an image, normstyle_core.refine)
    file: Path
    source: str
    added: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "file": str(self.file), "source": self.source,
                "added": self.added}


def user_style_names(*, root: Path | None = None) -> list[str]:
    """Names of the saved styles in ``root`` (default :func:`user_styles_dir`), sorted."""
    folder = Path(root) if root is not None else user_styles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if NAME_RE.match(p.stem))


def find_user_style(name: str, *, root: Path | None = None) -> UserStyle | None:
    """The saved style ``name`` in ``root`` (default :func:`user_styles_dir`), or None.

    Raises StyleError when its record exists but cannot be read."""
    folder = Path(root) if root is not None else user_styles_dir()
    meta = folder / f"{name}.json"
    if not NAME_RE.match(name) or not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a record")
        kind, file = data["kind"], data["file"]
        _check_record(name, kind=kind, file=file, folder=folder)
        added = float(data.get("added", 0))
        if added != added or added in (float("inf"), float("-inf")):
            raise ValueError(f"'added' is {added}")
        return UserStyle(name=name, kind=kind, file=folder / file, source=str(data.get("source", "")), added=added)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StyleError(f"user style {name!r} is damaged ({meta.name}: {str(exc)[:200]}); remove it with "
                         f"`normstyle styles remove {name}` or replace it with "
                         f"`normstyle styles add {name} IMAGE --force`") from exc


KINDS = ("image", "code", "refined")


def _check_record(name: str, *, kind: Any, file: Any, folder: Path) -> None:
    """A record names its own data file inside the bank, nothing else (ValueError otherwise):
    a record edited to point at another file must never make `styles remove` delete that file,
    nor make a render read it."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(file, str) or file != Path(file).name or Path(file).stem != name \
            or file.lower().endswith(".json"):
        raise ValueError(f"its file {file!r} is not this style's file in the bank")
    path = folder / file
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"its file {file!r} is not a plain file")


def user_style_code(style: UserStyle, stylizer: Any):
    """The StyleCode of ``style`` for ``stylizer``'s model: a saved code as it is (its shape
    checked against the model), a saved image encoded by the model."""
    from .style_code import StyleCode

    if not style.file.is_file():
        raise StyleError(f"user style {style.name!r}: its file {style.file} is missing; "
                         f"add it again with `normstyle styles add {style.name} IMAGE --force`")
    if style.kind in ("code", "refined"):
        code = StyleCode.load(style.file)
        return stylizer.style(StyleCode(code.matrix, style.name))  # checks the shape fits the model
    return stylizer.encode(style.file, name=style.name)


def listed(names: Sequence[str]) -> str:
    """``names`` for an error message: all of them when few, else how many and where to see them."""
    if not names:
        return "none"
    if len(names) <= LISTED_NAMES:
        return ", ".join(names)
    return f"{len(names)} styles: `normstyle styles list` shows them"


def did_you_mean(spec: str, *, names: Sequence[str]) -> str:
    """``"; did you mean 'candy'?"`` when ``spec`` looks like a mistyped one of ``names``, else ""."""
    if not NAME_RE.match(spec):  # a path that does not exist: not a misspelt name
        return ""
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(spec.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?"


def built_in_image_names(model_file: Path | None) -> dict[str, str]:
    """Built-in style name -> the painting's path as the model file's training record names it
    (which may not exist on this machine); see :func:`style_image_files`. Reads the model: torch.
    ``normstyle_core/model_summary.py`` keeps this beside the shipped model for `styles show`."""
    if model_file is not None:
        from .model_summary import read_summary_file
        summary = read_summary_file(Path(model_file))  # no torch where the JSON beside it is current
        if summary is not None and isinstance(summary.get("style_images"), dict):
            return {str(k): str(v) for k, v in summary["style_images"].items()}
    return image_names_in_model(model_file)


def image_names_in_model(model_file: Path | None) -> dict[str, str]:
    """:func:`built_in_image_names` read from the model file itself (torch)."""
    from .safe_load import load_tensors_only  # torch: only when a model file is read
    try:
        data = load_tensors_only(Path(model_file))
    except Exception:  # noqa: BLE001  (a file the model loader accepted; thumbnails are optional)
        data = {}
    if not isinstance(data, dict):
        data = {}
    train = data.get("train_config") if isinstance(data.get("train_config"), dict) else {}
    listed_files = [str(p) for p in (train.get("styles") or []) if isinstance(p, str)]
    named = {Path(p).stem: p for p in reversed(listed_files)}  # the first of one stem wins
    own = data.get("style_files")
    if isinstance(own, dict):
        named.update({str(k): str(v) for k, v in own.items()})
    # A built-in style renamed after training (a misspelt file name corrected) keeps its painting.
    renames = data.get("style_renames")
    if isinstance(renames, dict):
        for old, new in renames.items():
            if str(old) in named:
                named.setdefault(str(new), named.pop(str(old)))
    return named


def style_image_files(*, model_file: Path | None, root: Path | None = None) -> dict[str, Path]:
    """Name -> the image a named style was made from, for each style whose image exists here.

    Built-in styles: a model file stores codes, not paintings (a shipped model must not carry
    them), but its training record may name the files: a checkpoint's ``style_files`` and the
    ``train_config`` style list (file stem = style name). Those paths are used where they exist,
    relative ones from the current folder (where training ran), so the paintings show on the
    machine that has the data and nowhere else. User styles: the saved image, or for a refined
    code the image it was refined from, if it is still there."""
    found: dict[str, Path] = {}
    named = built_in_image_names(model_file) if model_file is not None and Path(model_file).is_file() else {}
    if named:
        for name, text in named.items():
            path = Path(text).expanduser()
            if path.is_file():
                found[name] = path
    for name in user_style_names(root=root):
        try:
            style = find_user_style(name, root=root)
        except StyleError:
            continue
        if style is None:
            continue
        # setdefault: a built-in wins over a user style of its name, in use and so here
        if style.kind == "image" and style.file.is_file():
            found.setdefault(name, style.file)
        elif style.kind == "refined":
            origin = Path(style.source.split(" (refined ")[0])  # `styles add --refine` writes "PATH (refined ...)"
            if origin.is_file():
                found.setdefault(name, origin)
    return found
