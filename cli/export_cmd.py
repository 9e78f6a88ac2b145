"""`normstyle export RUN -o model.pt`: a training run's model as a small file for `--model`."""
from __future__ import annotations

from pathlib import Path

import click

from .common import say


@click.command()
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Model file to write (.pt).")
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
def export(run: Path, out: Path, overwrite: bool) -> None:
    """Export RUN (a training run folder: its newest checkpoint; or a checkpoint file) as a small
    model file: fp16 weights (the weight average when kept), configs and named styles.

    \b
      normstyle export runs/mine -o mine.pt
      normstyle stylize photo.jpg --model mine.pt --style STYLE
    """
    from normstyle_core.builtin_styles import SHIPPED_MODEL
    from normstyle_core.export import export_run
    from normstyle_core.output_policy import OutputPolicy
    reads = [(run, "the run being exported"), (SHIPPED_MODEL, "the shipped model")]
    if run.is_dir():
        reads += [(p, "a file of the run being exported") for p in run.rglob("*") if p.is_file()]
    OutputPolicy.for_run(overwrite=overwrite, reads=reads).check(out)
    meta = export_run(source=run, out=out, overwrite=overwrite)
    size = out.stat().st_size / 1e6
    names = sorted(meta["style_bank"])
    say(f"wrote {out} ({size:.1f} MB, step {meta['step']} of {meta['source']}, "
        f"{len(names)} named styles{': ' + ', '.join(names[:8]) if names else ''}"
        f"{' ...' if len(names) > 8 else ''})")
