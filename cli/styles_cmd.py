"""`normstyle styles list|add|remove|show`: built-in styles of the model and the user's bank."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .common import error_line, is_quiet, load_stylizer, model_options, say, stderr_console, stdout_console
from .style_bank import NAME_RE, UserStyleBank


def _try_stylizer(model_path, device, precision, *, required: bool):
    """The stylizer, or (None, reason) when the model is unavailable and not required."""
    try:
        return load_stylizer(model_path, device, precision), None
    except Exception as exc:  # noqa: BLE001
        from normstyle_core import NormstyleError
        if required or not isinstance(exc, NormstyleError):
            raise
        return None, str(exc)


@click.group()
def styles() -> None:
    """Built-in styles of the model and your own style bank.

    User styles live in $NORMSTYLE_HOME/styles (default: the platform's user data folder) and
    are used by name like built-in ones: `normstyle stylize photo.jpg --style NAME`.
    """


@styles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--sheet", is_flag=True,
              help="Also write a gallery: every style applied to one photo, labelled, with the painting "
                   "in the corner where its image is on this machine (33 styles: 3.5 s on a quiet 2-core CPU).")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("styles.png"),
              show_default=True, help="Gallery file (with --sheet; .png, .jpg or .webp).")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Photo for the gallery (default: scikit-image's public-domain cat photo, "
                   "from pip install 'normstyle[demo]').")
@click.option("--size", "tile_size", type=click.IntRange(32, 2048), default=256, show_default=True,
              help="Width of each gallery tile in pixels (the photo is rendered at this size).")
@click.option("--columns", type=click.IntRange(1, 64), default=None,
              help="Tiles per row (default: about as many as rows).")
@click.option("--thumbnails/--no-thumbnails", default=True, show_default=True,
              help="Show each style's painting in its tile's corner where the image is available.")
@click.option("--overwrite", is_flag=True, help="Replace an existing gallery file.")
@model_options
def list_styles(as_json, sheet, out, photo, tile_size, columns, thumbnails, overwrite, model_path, device, precision):
    """List built-in and user styles; --sheet shows them as pictures.

    \b
    Examples:
      normstyle styles list
      normstyle styles list --sheet -o styles.png
      normstyle styles list --sheet --photo holiday.jpg --no-thumbnails
    """
    if not sheet:
        for name, value, default in (("--out", out, Path("styles.png")), ("--photo", photo, None),
                                     ("--columns", columns, None)):
            if value != default:
                raise click.UsageError(f"{name} is only used with --sheet")
    from normstyle_core.builtin_styles import style_notes
    notes = style_notes(model_path)
    # Listing the shipped model's styles reads their notes (no torch, no model: a second instead
    # of five); another model's bank is read from the model (CPU, fp32). The gallery renders, on
    # the device asked for.
    stylizer, why = None, None
    if sheet:
        stylizer, why = _try_stylizer(model_path, device, precision, required=True)
    elif not notes.styles:
        stylizer, why = _try_stylizer(model_path, "cpu", "fp32", required=False)
    bank = UserStyleBank()
    builtin = sorted(stylizer.style_bank) if stylizer is not None else sorted(notes.styles)
    rows = [{"name": n, "kind": "built-in", "source": "model", "shadowed": False,
             "description": notes.styles[n].line if n in notes.styles else None,
             "default_strength": notes.styles[n].default_strength if n in notes.styles else None}
            for n in builtin]
    for s in bank.all():
        rows.append({"name": s.name, "kind": f"user ({s.kind})", "source": s.source,
                     "shadowed": s.name in builtin, "description": None, "default_strength": None})
    damaged = bank.damaged()  # listed apart, each with its repair; never the end of the list
    for problem in damaged:
        error_line(f"warning: {problem}")
    written, tiles = None, []
    if sheet:
        written, tiles = _write_gallery(stylizer, bank, out=out, photo=photo, tile_size=tile_size, columns=columns,
                                        thumbnails=thumbnails, overwrite=overwrite)
    if as_json:
        payload = {"model_error": why, "user_styles_dir": str(bank.root), "styles": rows, "damaged": damaged}
        if written is not None:
            payload["sheet"] = {"path": str(written), "tiles": tiles}
        click.echo(json.dumps(payload, indent=2))
        return
    if written is not None:
        say(f"wrote {written} ({len(rows)} styles)")  # a result line, as stylize's: stderr, left out under -q
        return
    if why:
        error_line(f"warning: built-in styles unknown: {why}")
    if not rows:
        click.echo(f"no styles yet; add one with `normstyle styles add NAME IMAGE` (stored in {bank.root})")
        return
    from rich.table import Table
    table = Table(show_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("kind")
    table.add_column("what it is / source", overflow="fold")
    for r in rows:
        note = ", SHADOWED by the built-in style of this name" if r["shadowed"] else ""
        about = r["description"] or r["source"]
        if r["default_strength"] is not None:
            about += f" (strength {r['default_strength']:g} by default: at 1 little of the photo is left)"
        table.add_row(r["name"], r["kind"] + note, about)
    stdout_console().print(table)


# scikit-image's chelsea.png: a CC0 photo of a cat, landscape like most photos people bring
GALLERY_PHOTO = "chelsea.png"


def _write_gallery(stylizer, bank: UserStyleBank, *, out: Path, photo: Path | None, tile_size: int,
                   columns: int | None, thumbnails: bool, overwrite: bool) -> tuple[Path, list[dict]]:
    """Every built-in and user style rendered on one photo, one labelled tile each; the file
    and, per tile, its label and whether the painting is shown."""
    from normstyle_core import StyleError
    from normstyle_core.formats import WRITE_FORMATS
    from normstyle_core.imaging import load_image
    from normstyle_core.sheets import GalleryTile, gallery_sheet
    from normstyle_core.user_styles import style_image_files

    from .demo_cmd import sample_photos

    if out.suffix.lower() not in WRITE_FORMATS:
        raise StyleError(f"{out}: unsupported gallery extension {out.suffix!r} "
                         f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
    if photo is None:
        photo = next((p for p in sample_photos() if p.name == GALLERY_PHOTO), None)
        if photo is None:
            raise StyleError("the gallery needs a photo: pass --photo FILE (or install the sample photos: "
                             "pip install 'normstyle[demo]')")
    from normstyle_core.output_policy import OutputPolicy
    policy = OutputPolicy.for_run(overwrite=overwrite, reads=[
        (photo, "the gallery's photo"), (stylizer.info.get("path"), "the model in use"),
        *((p, "a file of your style bank") for p in bank.root.glob("*"))])
    policy.check(out)  # before the renders, not after
    picture = load_image(photo)
    names = sorted(stylizer.style_bank) + [n for n in bank.names() if n not in stylizer.style_bank]
    paintings = style_image_files(model_file=Path(stylizer.info["path"]), root=bank.root) if thumbnails else {}
    tiles = []
    from rich.progress import Progress
    with Progress(console=stderr_console(), transient=True, disable=is_quiet()) as bar:
        task = bar.add_task("rendering the gallery", total=len(names))
        for name in names:
            # max_size: the gallery shows styles, not detail; a tile-sized render keeps 33 styles
            # to seconds on a CPU. Stroke scale 0: the render at tile size is what a tile shows.
            image = stylizer.stylize(picture, style=stylizer.style(name) if name in stylizer.style_bank
                                     else bank.code(name, stylizer), max_size=tile_size, stroke_scale=0)
            inset = None
            if name in paintings:
                inset = _thumbnail(paintings[name], side=tile_size)
            label = name if name in stylizer.style_bank else f"{name} (yours)"
            tiles.append(GalleryTile(image=image, label=label, inset=inset))
            bar.advance(task)
    if not tiles:
        raise StyleError("no styles to show: the model has no built-in styles and you have saved none "
                         "(`normstyle styles add NAME IMAGE`)")
    picture_sheet, _ = gallery_sheet(tiles=tiles, columns=columns, tile_width=tile_size)
    return (policy.save_image(picture_sheet, out),
            [{"label": t.label, "painting": str(paintings[n]) if t.inset is not None else None}
             for n, t in zip(names, tiles)])


def _thumbnail(path: Path, *, side: int):
    """A painting shrunk for a tile's corner; None when it cannot be read (the tile still shows)."""
    from normstyle_core import NormstyleError
    from normstyle_core.imaging import load_image, to_uint8
    from PIL import Image
    try:
        img = Image.fromarray(to_uint8(load_image(path).rgb))
    except (NormstyleError, OSError):
        return None
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


@styles.command("add")
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a user style of the same name.")
@click.option("--refine", "refine_steps", type=click.IntRange(0), default=0, show_default=True, metavar="STEPS",
              help="Fit the style to the image with STEPS gradient steps instead of the one-pass "
                   "prediction; closer to the painting (20 steps: about 1 min on a busy 2-core CPU, README; 50: a bit closer).")
@click.option("--photos", type=click.Path(exists=True, path_type=Path), multiple=True,
              help="Photos or folders to refine on (default: the sample photos of `normstyle demo`).")
@model_options
def add_style(name, source, force, refine_steps, photos, model_path, device, precision):
    """Add user style NAME from SOURCE (a style image, or a style-code .pt file).

    \b
    Examples:
      normstyle styles add mine painting.jpg
      normstyle styles add mine painting.jpg --refine 50 --photos holiday/ --force
    """
    from normstyle_core import StyleCode, StyleError
    from normstyle_core.imaging import load_image

    if not NAME_RE.match(name):
        raise StyleError(f"invalid style name {name!r}: use letters, digits, '-' and '_' "
                         "(up to 64, starting with a letter or digit)")
    if refine_steps:
        return _add_refined(name, source, force=force, steps=refine_steps, photos=photos,
                            model_path=model_path, device=device, precision=precision)
    if photos:
        raise click.BadParameter("--photos is only used with --refine STEPS", param_hint="--photos")
    stylizer, why = _try_stylizer(model_path, "cpu", "fp32", required=False)
    if stylizer is not None and name in stylizer.style_bank:
        raise StyleError(f"{name!r} is a built-in style of the model; choose another name")
    if source.suffix.lower() == ".pt":
        code = StyleCode.load(source)  # validates the file
        if stylizer is not None:
            stylizer.style(code)  # the code fits this model
        kind = "code"
    else:
        load_image(source)  # validates: a corrupt or non-image file fails here, not at use time
        kind = "image"
    style = UserStyleBank().add(name, source, kind=kind, replace=force)
    if why:
        error_line(f"warning: could not check {name!r} against the built-in styles ({why})")
    click.echo(f"added user style {name!r} ({kind}) -> {style.file}")


def _add_refined(name: str, source: Path, *, force: bool, steps: int, photos, model_path, device, precision):
    """`styles add --refine`: fit a code to SOURCE on photos, store it as a "refined" user style."""
    import tempfile

    from normstyle_core import StyleError
    from normstyle_core.data import list_images
    from normstyle_core.imaging import load_image

    from .demo_cmd import sample_photos
    from .refining import load_refine_photos, refine_with_progress

    if source.suffix.lower() == ".pt":
        raise StyleError("--refine needs the style image; a style-code file has no image to fit to")
    load_image(source)  # a corrupt or non-image file fails before any work
    bank = UserStyleBank()
    if bank.get(name) is not None and not force:  # before minutes of work, not after
        raise StyleError(f"user style {name!r} already exists; use --force to replace it")
    files = list_images(photos) if photos else sample_photos()
    if not files:
        raise StyleError("refining needs photos: pass --photos DIR (or install the samples of "
                         "`normstyle demo`:  pip install 'normstyle[demo]')")
    stylizer = load_stylizer(model_path, device, precision)
    if name in stylizer.style_bank:
        raise StyleError(f"{name!r} is a built-in style of the model; choose another name")
    pictures = load_refine_photos(files, error_line)
    code = refine_with_progress(stylizer, source, pictures, steps=steps, name=name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.pt"
        code.save(path)
        style = bank.add(name, path, kind="refined", replace=force,
                         origin=f"{source.resolve()} (refined {steps} steps on {len(pictures)} photos)")
    click.echo(f"added user style {name!r} (refined {steps} steps on {len(pictures)} photos) -> {style.file}")


@styles.command("remove")
@click.argument("name")
@model_options
def remove_style(name, model_path, device, precision):
    """Remove user style NAME (built-in styles cannot be removed)."""
    from normstyle_core import StyleError
    bank = UserStyleBank()
    if bank.remove(name):
        click.echo(f"removed user style {name!r}")
        return
    stylizer, _ = _try_stylizer(model_path, "cpu", "fp32", required=False)
    if stylizer is not None and name in stylizer.style_bank:
        raise StyleError(f"{name!r} is a built-in style of the model and cannot be removed")
    raise StyleError(f"no user style named {name!r} (see `normstyle styles list`)")


def _show_without_model(name: str, notes, model_path: Path | None) -> None:
    """`styles show NAME` of the shipped model from its notes: the same lines, notes and errors
    as with the model loaded (a user style is described, not encoded)."""
    
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    from normstyle_core.user_styles import style_image_files

    from .style_bank import shadowed_warning

    from normstyle_core.environment import model_path as chosen_model
    model_file = model_path if model_path is not None else (chosen_model() or SHIPPED_MODEL)
    bank = UserStyleBank()
    user = bank.get(name)
    name = _known_style_name(name, builtin=notes.styles, current=notes.aliases.get(name), bank=bank)
    note = notes.styles.get(name)
    if note is not None and user is not None:
        error_line(shadowed_warning(name))
    kind = "built-in" if note is not None else f"user ({user.kind})"
    painting = style_image_files(model_file=model_file, root=bank.root).get(name)
    _echo_style(name=name, kind=kind, note=note, painting=str(painting) if painting is not None else None,
                source=user.source if user and note is None else None, model=str(model_file))


@styles.command("show")
@click.argument("name")
@click.option("--export", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the style code to this .pt file (usable as --style FILE.pt).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --export file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@model_options
def show_style(name, export, overwrite, as_json, model_path, device, precision):
    """Show where style NAME comes from and its style code."""
    from normstyle_core import StyleError

    from .style_bank import resolve_one

    from normstyle_core.builtin_styles import renamed, style_notes

    notes = style_notes(model_path)
    policy = None
    if export is not None:  # before the model loads: a refused file name is answered at once
        if export.suffix.lower() != ".pt":
            raise StyleError(f"--export needs a .pt file name, got {export}")
        from normstyle_core.builtin_styles import SHIPPED_MODEL
        from normstyle_core.environment import model_path as chosen_model
        from normstyle_core.output_policy import OutputPolicy
        bank_files = [(p, "a file of your style bank") for p in UserStyleBank().root.glob("*")]
        policy = OutputPolicy.for_run(overwrite=overwrite, reads=[
            (model_path or chosen_model() or SHIPPED_MODEL, "the model in use"), *bank_files])
        policy.check(export)
    if notes.styles and not as_json and export is None:
        # The shipped model: its names and notes are in styles.json and the painting's path in
        # the JSON beside the weights, so the text answer needs neither torch nor the model
        # (issue #39). --json (the code's statistics) and --export need the code: the model.
        _show_without_model(name, notes, model_path)
        return
    stylizer = load_stylizer(model_path, "cpu", "fp32")
    bank = UserStyleBank()
    user = bank.get(name)
    name = _known_style_name(name, builtin=stylizer.style_bank, current=renamed(name, stylizer.info.get("path")),
                             bank=bank)
    code, _ = resolve_one(name, stylizer, bank, error_line)
    kind = "built-in" if name in stylizer.style_bank else f"user ({user.kind})"
    m = code.matrix
    n = code.num_cin
    info = {"name": name, "kind": kind, "model": stylizer.info.get("path"),
            "file": str(user.file) if user and kind != "built-in" else None,
            "source": user.source if user and kind != "built-in" else None,
            "code_shape": list(m.shape), "gamma_mean": float(m[:, :n].mean()),
            "beta_mean": float(m[:, n:].mean()), "code_norm": float(m.norm())}
    if policy is not None:
        import torch
        policy.write(export, lambda fh: torch.save(code.payload(), fh))  # atomic, never over a file of yours
        info["exported"] = str(export)
    from normstyle_core.user_styles import style_image_files
    model_file = stylizer.info.get("path")
    painting = style_image_files(model_file=Path(model_file) if model_file else None, root=bank.root).get(name)
    info["painting"] = str(painting) if painting is not None else None
    note = style_notes(model_file).styles.get(name) if kind == "built-in" else None
    info["description"] = note.description if note else None
    info["image_source"] = note.source if note else None
    info["default_strength"] = note.default_strength if note else None
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    # People want to know what the style is and looks like; the code's statistics mean nothing
    # to them, so they stay in --json.
    _echo_style(name=name, kind=kind, note=note, painting=info["painting"], source=info["source"],
                model=info["model"], exported=info.get("exported"))


def _known_style_name(name: str, *, builtin, current: str | None, bank: UserStyleBank) -> str:
    """``name``, or the current name of an old built-in one (said in a note line); the one-line
    refusal for a name that is no style. ``builtin``: the built-in names (a container)."""
    from normstyle_core import StyleError
    from normstyle_core.user_styles import did_you_mean, listed
    if name in builtin or bank.get(name) is not None:
        return name
    if current in builtin:
        error_line(f"note: {name!r} is now called {current!r}; the old name still works for now")
        return current
    known = sorted(builtin) + bank.names()
    raise StyleError(f"no style named {name!r} (known: {listed(known)})" + did_you_mean(name, names=known))


def _echo_style(*, name: str, kind: str, note, painting: str | None, source: str | None, model: str | None,
                exported: str | None = None) -> None:
    """`styles show`'s text answer, the same with or without the model loaded."""
    strength = (f"{note.default_strength:g} by default (at 1 little of the photo is left; --strength 1 for it)"
                if note is not None and note.default_strength is not None else None)
    lines = {"name": name, "kind": kind, "what": note.description if note else None,
             "image": note.source if note else None, "strength": strength,
             "painting": painting or "not on this machine", "source": source, "model": model,
             "exported": exported}
    for key, value in lines.items():
        if value is not None:
            click.echo(f"{key:>8}: {value}")
    click.echo("     see: normstyle styles list --sheet   (every style on one photo)")
