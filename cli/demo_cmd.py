"""`normstyle demo`: stylize public-domain sample photos with a few built-in styles."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import click

# Public-domain / CC0 photos shipped inside the scikit-image wheel (skimage/data).
SAMPLE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
DEMO_STYLES = ("candy", "udnie", "starry-night", "the-great-wave", "mosaic", "la-muse")


def sample_photos() -> list[Path]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [data / name for name in SAMPLE_PHOTOS if (data / name).is_file()]


@click.command("demo")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Folder for the pastiches and a contact sheet.")
@click.option("--photos", type=click.Path(exists=True, path_type=Path), multiple=True,
              help="Your own photos or folders instead of the bundled samples.")
@click.option("--style", "styles", multiple=True, help="Built-in style names (default: six classics).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model file, checkpoint or run folder (default: the packaged model).")
@click.option("--max-size", type=click.IntRange(16), default=768, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace pastiches and the contact sheet an earlier demo wrote.")
def demo_command(out_dir, photos, styles, model, max_size, device, overwrite):
    """Stylize sample photos with built-in styles and write a contact sheet."""
    from rich.console import Console
    from rich.progress import Progress

    from normstyle_core import NormstyleError, Stylizer
    from normstyle_core.data import list_images
    from normstyle_core.imaging import load_image

    files = list_images(photos) if photos else sample_photos()
    if not files:
        raise click.ClickException("no sample photos: install them with  pip install 'normstyle[demo]'  "
                                   "or pass --photos DIR")
    try:
        stylizer = Stylizer.load(model, device=device)
        names = list(styles) or [s for s in DEMO_STYLES if s in stylizer.style_bank] or sorted(stylizer.style_bank)[:4]
        codes = [stylizer.style(n) for n in names]
        from normstyle_core.output_policy import OutputPolicy
        policy = OutputPolicy.for_run(overwrite=overwrite, reads=[
            *((f, "an input photo") for f in files), (stylizer.info.get("path"), "the model in use")])
        for f in files:  # every output checked before the first render: nothing is half done
            for name in names:
                policy.check(out_dir / f"{f.stem}_{name}.jpg")
        policy.check(out_dir / "contact_sheet.png")
    except NormstyleError as exc:
        raise click.ClickException(str(exc)) from None
    rows, failed = [], []
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("stylizing", total=len(files) * len(codes))
        for f in files:
            # One bad photo is one line and the demo goes on, as in `normstyle batch`; a problem
            # writing (disk full, read-only folder) is every photo's, so it stops.
            try:
                photo = load_image(f)
                pastiches = [stylizer.stylize(photo, style=code, max_size=max_size) for code in codes]
            except NormstyleError as exc:
                bar.console.print(f"failed: {exc}", markup=False, highlight=False, soft_wrap=True)
                failed.append(f)
                bar.advance(task, len(codes))
                continue
            row = [f]
            try:
                for name, out in zip(names, pastiches):
                    row.append(policy.save_image(out, out_dir / f"{f.stem}_{name}.jpg", quality=92))
                    bar.advance(task)
            except NormstyleError as exc:
                raise click.ClickException(str(exc)) from None
            rows.append(row)
    written = sum(len(row) - 1 for row in rows)
    if rows:
        sheet = _write_sheet(rows, names=names, stylizer=stylizer, path=out_dir / "contact_sheet.png", policy=policy)
        click.echo(f"wrote {written} pastiches and {sheet} ({stylizer.place.device.type}, "
                   f"{str(stylizer.place.dtype).replace('torch.', '')})")
    if failed:
        click.echo(f"Error: {len(failed)} of {len(files)} photo(s) failed; "
                   f"{written} pastiche(s) written", err=True)
        raise click.exceptions.Exit(1)


def _write_sheet(rows: list[list[Path]], *, names: list[str], stylizer, path: Path, policy) -> Path:
    """Photos down, styles across, each row as tall as its photo at the column width; the
    styles' paintings head their columns where their images are on this machine."""
    from PIL import Image

    from normstyle_core.sheets import GridRow, GridSection, grid_sheet
    from normstyle_core.user_styles import style_image_files

    model_file = stylizer.info.get("path")
    paintings = style_image_files(model_file=Path(model_file) if model_file else None)
    headers: list[Image.Image | None] = [None]
    for name in names:
        headers.append(Image.open(paintings[name]) if name in paintings else None)
    grid_rows = [GridRow(label=row[0].stem, cells=[Image.open(p) for p in row]) for row in rows]
    sheet, _ = grid_sheet(sections=[GridSection(title="", rows=grid_rows)], column_labels=["photo", *names],
                          column_images=headers, cell_width=256, header_height=192)
    return policy.save_image(sheet, path)
