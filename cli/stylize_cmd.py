"""`normstyle stylize` (one image) and `normstyle batch` (thousands), sharing one pipeline."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import click
from click.core import ParameterSource

from .common import (EXIT_ERROR, EXIT_INTERRUPTED, ProgressDisplay, error_line, is_quiet, load_stylizer, say,
                     stderr_console, stdout_console, thread_count)
from .options import (EngineOptions, OutputOptions, StyleRequest, engine_options, output_options,
                      render_options, style_options)
from .pipeline import (FAILED, NOT_RUN, OK, SKIPPED, WRITABLE, Job, Options, Result, collect_inputs,
                       folder_problem, model_tag, plan, run_jobs, select_shard, settings_tag)


# ------------------------------------------------------------------ display
class Reporter(ProgressDisplay):
    """Rich progress on a terminal; plain one-line messages otherwise (logs, CI, tests)."""

    def __init__(self, total: int, *, show_progress: bool, muted: set[int] | None = None,
                 per_file: bool = False) -> None:
        self.console = stderr_console()
        self.total = total
        self.muted = muted or set()  # jobs whose failure was already said in a shared line
        self.per_file = per_file  # a "wrote ..." line for each output (stylize with several photos)
        self.progress = None
        if show_progress and not is_quiet() and self.console.is_terminal and total > 0:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.progress = Progress(
                TextColumn("[bold]stylizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[current]}"),
                console=self.console, transient=True)
            self.task = self.progress.add_task("stylizing", total=total, current="")

    def line(self, message: str) -> None:
        super().line(" ".join(str(message).split()))

    def info(self, message: str) -> None:
        """A line that -q leaves out (warnings and failures use :meth:`line`)."""
        if not is_quiet():
            self.line(message)

    def start(self, job: Job) -> None:
        if self.progress is not None:
            self.progress.update(self.task, current=job.src.name)

    def result(self, job: Job, result: Result) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
        for note in result.warnings:
            self.line(f"warning: {result.input}: {note}")
        if result.status == FAILED and job.index not in self.muted:
            self.line(f"failed: {result.error}")
        elif result.status == OK and self.per_file:
            size = f"{result.size[0]}x{result.size[1]}, " if result.size else ""
            self.info(f"wrote {result.output} ({size}{result.seconds:.2f} s)")


def summarize(results: Sequence[Result], *, stop: str | None, seconds: float, style: str,
              model: str | None, as_json: bool, show_table: bool, skips_existing: bool = False,
              shard: str | None = None, runner: str = "local") -> int:
    counts = {s: sum(r.status == s for r in results) for s in (OK, SKIPPED, FAILED, NOT_RUN)}
    interrupted = stop == "interrupted"
    if as_json:
        click.echo(json.dumps({
            "written": counts[OK], "skipped": counts[SKIPPED], "failed": counts[FAILED],
            "not_run": counts[NOT_RUN], "total": len(results), "stopped": stop,
            "seconds": round(seconds, 3), "style": style, "model": model, "shard": shard, "runner": runner,
            "files": [r.as_dict() for r in results]}, indent=2))
    elif show_table:
        from rich.table import Table
        title = "normstyle batch" + (f", shard {shard}" if shard else "") + (f", on {runner}" if runner != "local" else "")
        table = Table(title=title, show_edge=False)
        table.add_column("result")
        table.add_column("files", justify="right")
        table.add_row("written", str(counts[OK]))
        table.add_row("skipped (output exists)", str(counts[SKIPPED]))
        table.add_row("failed", str(counts[FAILED]))
        if counts[NOT_RUN]:
            table.add_row("not run (stopped early)", str(counts[NOT_RUN]))
        table.add_row("total", str(len(results)))
        rate = counts[OK] / seconds if seconds > 0 else 0.0
        table.add_row("time", f"{seconds:.1f} s ({rate:.2f} images/s)")
        stdout_console().print(table)
    if stop and stop != "interrupted":
        error_line(f"Error: {stop}; stopped, {counts[OK]} file(s) written")
    if interrupted:
        again = "run the same command again" if skips_existing else "run the same command with --skip-existing"
        error_line(f"interrupted: {counts[OK]} file(s) written, {counts[NOT_RUN]} not processed "
                   f"({again} to continue)")
        return EXIT_INTERRUPTED
    return EXIT_ERROR if counts[FAILED] or counts[NOT_RUN] else 0


def _check_engine_early(engine: EngineOptions) -> None:
    """The --device and --model mistakes that need no torch to see, refused before torch loads
    with the words Stylizer.load would use after it (issue #39: errors answer at once).
    Whether CUDA is there, and what the model file holds, still need torch and are checked
    when the model loads."""
    from normstyle_core.errors import CheckpointError, DeviceError
    spec = (engine.device or "auto").strip().lower()
    if spec not in ("auto", "cpu") and not spec.startswith("cuda"):
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")  # as devices.resolve_device
    if engine.model_path is not None and not Path(engine.model_path).exists():
        raise CheckpointError(f"model file not found: {engine.model_path}")  # as Stylizer.load


def _execute(inputs, problems, *, out_dir: Path | None, out_file: Path | None, style: StyleRequest,
             render, output: OutputOptions, engine: EngineOptions, single: bool, per_file: bool = False,
             urls: Sequence[str | None] | None = None, shard=None, ray_address: str | None = None) -> int:
    """Plan, load the model, resolve the style and render every input; the exit code.
    ``shard`` (normstyle_core.sharding.Shard) keeps this copy's part of the inputs; with
    ``ray_address`` the rendering runs on a Ray cluster (ray_runner.py)."""
    output.check()
    weight_list = style.check()
    styles, refine_steps, as_json = style.specs, style.refine_steps, output.as_json

    started = time.perf_counter()
    render = _style_default_strength(render, styles=styles, model_path=engine.model_path)
    # The style's name is part of output names; planning needs it before the model loads, so
    # use the user's spelling (file stem for files), the same name resolve_styles returns.
    from .style_bank import safe_name
    style_name = "+".join(safe_name(Path(s).stem if Path(s).suffix else s) for s in styles)
    settings = settings_tag(weights=weight_list, strength=render.strength, refine_steps=refine_steps,
                            feedback=render.feedback, preserve_color=render.preserve_color,
                            max_size=render.max_size, stroke_scale=render.stroke_scale,
                            model=model_tag(engine.model_path), bit_depth=output.bit_depth)
    jobs = plan(inputs, out_dir=out_dir, out_file=out_file, template=output.template, style=style_name,
                fmt=output.fmt, strength=render.strength, overwrite=output.overwrite,
                skip_existing=output.skip_existing, settings=settings, urls=urls)
    if shard is not None:
        jobs, problems = select_shard(jobs, problems, shard)
    pre = [Result(p, None, FAILED, f"{p}: {why}") for p, why in problems]
    blocked = _check_folders(jobs)
    if output.dry_run:
        return _dry_run(jobs, pre, as_json=as_json)

    if single and jobs and jobs[0].status == FAILED:
        error_line(f"Error: {jobs[0].error}")  # before loading the model: fail fast
        return EXIT_ERROR

    reporter = Reporter(len(jobs), show_progress=not single, muted={j.index for j in blocked},
                        per_file=per_file)
    for r in pre:
        reporter.line(f"failed: {r.error}")
    for problem, count in Counter(j.error for j in blocked).items():
        reporter.line(f"failed: {problem}; {count} file(s) not stylized")
    from .style_bank import UserStyleBank
    if any(j.status is None for j in jobs):  # as below: no render, no style needed
        # A misspelt --style is answered before anything imports torch or loads the model:
        # ~0.2 s instead of ~3 s (issue #39).
        from .style_bank import check_styles_early
        _check_engine_early(engine)
        check_styles_early(styles, engine.model_path, UserStyleBank())
    _remove_stale_temps(jobs, reporter.info)
    todo = [j for j in jobs if j.status is None]
    stylizer = code = None
    refine_seconds = 0.0
    quick = None
    if todo:
        from .quick import quick_stylizer
        quick = quick_stylizer(specs=styles, weights=weight_list, refine_steps=refine_steps, engine=engine,
                               render=render, photos=len(todo), ray_address=ray_address, bank=UserStyleBank(),
                               load_torch=lambda: load_stylizer(engine.model_path, engine.device, engine.precision),
                               threads=thread_count(), warn=reporter.line)
    if quick is not None:  # no torch: normstyle_core/onnx_engine.py
        stylizer, code = quick
    elif todo:
        stylizer = load_stylizer(engine.model_path, engine.device, engine.precision)  # once per run
        if ray_address is None:  # on Ray each actor renders with its own copy
            stylizer.renderer.announce = reporter.info  # "compiling ... in the background" when it starts
            notice = stylizer.renderer.plan_run(images=len(todo), requested=engine.compile)
            if notice:
                reporter.info(notice)
        from .style_bank import resolve_styles
        refine = None
        if refine_steps:  # each style image fitted once on (a spread of) the photos of this run
            from .refining import load_refine_photos, refine_with_progress
            photos: list = []

            def refine(path: Path):
                nonlocal refine_seconds
                t0 = time.perf_counter()
                if not photos:  # loaded only when a style image (not a name) needs them
                    photos.extend(load_refine_photos([j.src for j in todo], reporter.line))
                fitted = refine_with_progress(stylizer, path, photos, steps=refine_steps, name=path.stem)
                refine_seconds += time.perf_counter() - t0
                return fitted
        code, _ = resolve_styles(styles, weight_list, stylizer, UserStyleBank(), reporter.line,
                                 refine)  # once per run
    opts = Options(render=render, quality=output.quality, keep_metadata=not output.strip_metadata,
                   overwrite=output.overwrite, bit_depth=output.bit_depth)
    with reporter:
        if ray_address is not None:
            from .ray_runner import EngineSpec, run_jobs_on_ray
            spec = EngineSpec(model_path=str(engine.model_path) if engine.model_path else None, device=engine.device,
                              precision=engine.precision, threads=thread_count() or 1)
            results, stop = run_jobs_on_ray(jobs, code, opts, address=ray_address, engine=spec,
                                            on_result=reporter.result, on_message=reporter.line)
        else:
            results, stop = run_jobs(jobs, stylizer, code, opts, on_start=reporter.start,
                                     on_result=reporter.result if not single else lambda j, r: None)
    results = pre + results
    seconds = time.perf_counter() - started
    model_name = stylizer.info.get("path") if stylizer is not None else None
    if single:
        r = results[0]
        for note in r.warnings:
            error_line(f"warning: {r.input}: {note}")
        if as_json:
            click.echo(json.dumps({**r.as_dict(), "total_seconds": round(seconds, 3),
                                   "refine_seconds": round(refine_seconds, 3)}, indent=2))
        if stop == "interrupted":
            error_line("interrupted; nothing was left half-written")
            return EXIT_INTERRUPTED
        if r.status == FAILED:
            error_line(f"Error: {r.error}")
            return EXIT_ERROR
        if r.status == SKIPPED:
            error_line(f"skipped: {r.output} exists")
            return 0
        if not as_json:
            # The whole wait (model, refining, feedback step, render, save), not the render alone.
            size = f"{r.size[0]}x{r.size[1]}, " if r.size else ""
            parts = ([f"refining {refine_seconds:.2f} s"] if refine_seconds else []) + [f"rendering {r.seconds:.2f} s"]
            say(f"wrote {r.output} ({size}{seconds:.2f} s in all; {', '.join(parts)})")
        return 0
    if per_file and not as_json:
        written = sum(r.status == OK for r in results)
        say(f"wrote {written} of {len(results)} file(s) in {seconds:.2f} s")
    return summarize(results, stop=stop, seconds=seconds, style=style_name, model=model_name,
                     as_json=as_json, show_table=not per_file and not is_quiet(),
                     skips_existing=output.skip_existing, shard=str(shard) if shard is not None else None,
                     runner="ray" if ray_address is not None else "local")


def _style_default_strength(render, *, styles: Sequence[str], model_path: Path | None):
    """``render`` with a built-in style's own default strength where the user gave no --strength
    and paints with that one style (builtin_styles.py: styles whose full strength erases the
    photo), said in one line."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or len(styles) != 1 or ctx.get_parameter_source("strength") != ParameterSource.DEFAULT:
        return render
    from normstyle_core.builtin_styles import default_strength
    own = default_strength(styles[0], model_path)
    if own is None:
        return render
    say(f"{styles[0]}: at its own default strength {own:g} (--strength 1 for the full style)")
    return dataclasses.replace(render, strength=own)


def _dry_run(jobs: Sequence[Job], pre: Sequence[Result], *, as_json: bool) -> int:
    """--dry-run: what each input would become, from planning alone (no model, nothing written).
    Exit 1 when some input would fail, as the real run would."""
    rows = [r.as_dict() for r in pre]
    rows += [{"input": str(j.src), "output": str(j.out) if j.out else None,
              "status": "would-write" if j.status is None else j.status, "error": j.error} for j in jobs]
    if as_json:
        click.echo(json.dumps({"dry_run": True, "files": rows}, indent=2))
    else:
        for row in rows:
            if row["status"] == "would-write":
                click.echo(f"would write {row['output']} (from {row['input']})")
            elif row["status"] == SKIPPED:
                click.echo(f"would skip {row['output']} (exists)")
            else:
                click.echo(f"would fail: {row['error']}")
    n = Counter(row["status"] for row in rows)
    say(f"dry run: {n['would-write']} file(s) would be written, {n[SKIPPED]} skipped, {n[FAILED]} would fail; "
        "nothing was written")
    return EXIT_ERROR if n[FAILED] else 0


def _check_folders(jobs: Sequence[Job]) -> list[Job]:
    """Fail the jobs whose output folder cannot be written (one probe per folder), before any
    rendering; returns them."""
    problems: dict[Path, str | None] = {}
    blocked = []
    for job in jobs:
        if job.status is not None or job.out is None:
            continue
        folder = job.out.parent
        if folder not in problems:
            problems[folder] = folder_problem(folder)
        if problems[folder] is not None:
            job.status, job.error = FAILED, problems[folder]
            blocked.append(job)
    return blocked


def _remove_stale_temps(jobs: Sequence[Job], say: Callable[[str], None]) -> None:
    """Temp files of our own naming that a killed run left in the output folders (see
    normstyle_core.imaging.remove_stale_temps for why a concurrent run's are safe)."""
    folders = {j.out.parent for j in jobs if j.out is not None and j.status != FAILED}
    if not folders:
        return
    from normstyle_core.imaging import remove_stale_temps
    for folder in sorted(folders):
        removed = remove_stale_temps(folder)
        if removed:
            say(f"removed {len(removed)} unfinished temp file(s) that an interrupted run left in {folder}")


# ----------------------------------------------------------------- commands
@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@style_options
@render_options
@click.option("-o", "--out", "--output", "out", type=click.Path(), default=None,
              help="Output file, or a folder: an existing one, or one to create when the path ends "
                   "with / (default: next to the input, named by --name). A folder when several "
                   "IMAGES are given.")
@output_options
@engine_options
def stylize(images: tuple[Path, ...], style: StyleRequest, render, out: str | None, output: OutputOptions,
            engine: EngineOptions):
    """Stylize one IMAGE, or several.

    \b
      normstyle stylize photo.jpg --style candy -o photo_candy.jpg
      normstyle stylize a.jpg b.jpg --style candy -o styled/
      normstyle stylize photo.png --style a.jpg --style b.jpg --weights 0.7,0.3 --strength 0.8
      normstyle stylize photo.jpg --style painting.jpg --refine 20
    """
    inputs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for image in images:  # the same photo twice is stylized once
        if image.resolve() not in seen:
            seen.add(image.resolve())
            inputs.append((image, Path()))
    single = len(inputs) == 1
    out_dir = out_file = None
    if out is not None:
        # The string as typed: Path("new/") is Path("new"), and the slash means "a folder".
        wants_folder = out.endswith(("/", os.sep))
        target = Path(out)
        if wants_folder and target.exists() and not target.is_dir():
            raise click.BadParameter(f"{target} is a file, not a folder (drop the trailing / to write "
                                     "to it as a file)", param_hint="-o")
        if target.is_dir() or wants_folder:
            out_dir = target
        elif not single:  # several photos: -o can only be a folder, made if missing
            if target.suffix.lower().lstrip(".") in WRITABLE or target.exists():
                raise click.BadParameter(f"{target} is not a folder; with several photos -o names a folder",
                                         param_hint="-o")
            out_dir = target
        else:
            ext = target.suffix.lower().lstrip(".")
            if ext not in WRITABLE:
                what = repr(target.suffix) if target.suffix else "files without an extension"
                raise click.BadParameter(f"cannot write {what}; use one of .{', .'.join(sorted(WRITABLE))} "
                                         "(for a folder: create it first, or end the path with /)",
                                         param_hint="-o")
            fmt = output.fmt
            if fmt != "same" and {ext, fmt} not in ({"jpg", "jpeg"}, {"tif", "tiff"}) and ext != fmt:
                raise click.BadParameter(f"--format {output.fmt} contradicts the extension of {target}",
                                         param_hint="--format")
            out_file = target
    code = _execute(inputs, [], out_dir=out_dir, out_file=out_file, style=style, render=render, output=output,
                    engine=engine, single=single, per_file=not single)
    raise click.exceptions.Exit(code)


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    from normstyle_core.errors import ConfigError
    from normstyle_core.sharding import Shard
    try:
        return Shard.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_ray(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from .ray_runner import check_address
    try:
        return check_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _collect(paths: Sequence[str], *, recursive: bool, out_dir: Path):
    """Inputs from local paths and fsspec URLs: (inputs, problems, urls), urls[i] None for a
    local input."""
    from .remote_inputs import collect_url_inputs, is_url
    local = [p for p in paths if not is_url(p)]
    inputs, problems = collect_inputs(local, recursive=recursive, exclude=out_dir) if local else ([], [])
    urls: list[str | None] = [None] * len(inputs)
    seen: set[str] = set()
    for text in (p for p in paths if is_url(p)):
        found, trouble = collect_url_inputs(text, recursive=recursive)
        problems += trouble
        for path, rel, url in found:
            if url not in seen:
                seen.add(url)
                inputs.append((path, rel))
                urls.append(url)
    return inputs, problems, urls


@click.command()
@click.argument("paths", nargs=-1, required=True)
@style_options
@render_options
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (sub-folders of the inputs are mirrored).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders (and ** in globs).")
@click.option("--shard", metavar="K/N", default=None, callback=_parse_shard,
              help="Render only shard K of N (1 <= K <= N): N copies of the same command with "
                   "--shard 1/N ... N/N write every output once between them (a photo's shard "
                   "follows from its path, so every copy agrees). For Slurm arrays, Kubernetes "
                   "indexed jobs or GNU parallel.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              callback=_parse_ray,
              help="Render on a Ray cluster, one model per actor: --ray alone starts one on this "
                   "machine; --ray=auto joins the cluster `ray start` runs here; --ray=ray://HOST:PORT "
                   "or HOST:PORT another. The output folder must be writable from every node. "
                   "Needs pip install \"normstyle[ray]\".")
@output_options
@engine_options
def batch(paths, style: StyleRequest, render, out_dir: Path, recursive: bool, shard, ray_address: str | None,
          output: OutputOptions, engine: EngineOptions):
    """Stylize many images: PATHS are files, folders, glob patterns ("photos/*.jpg") or fsspec
    URLs (s3://bucket/photos/, with the matching package installed).

    One bad file is reported in one line and the batch goes on; the exit code is non-zero if any
    file failed. Outputs that exist already are skipped (so running the same command again
    finishes an interrupted batch); --overwrite replaces them.

    \b
      normstyle batch photos/ --recursive --style candy --out styled/
      normstyle batch "shoot/*.CR2.tif" --style mine --format jpg --quality 90 --out web/ --json
      normstyle batch photos/ --style candy --out styled/ --shard 2/8
      normstyle batch photos/ --style candy --out /shared/styled/ --ray=auto
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} exists and is not a folder", param_hint="--out")
    if re.match(r"[A-Za-z][A-Za-z0-9+.\-]+:/", str(out_dir)):  # s3://b/x arrives as s3:/b/x (a Path)
        raise click.BadParameter("outputs go to a folder (on a cluster, one every node can write), not a URL",
                                 param_hint="--out")
    if not output.overwrite and not output.skip_existing:
        output = dataclasses.replace(output, skip_existing=True)  # a batch can always be run again
    inputs, problems, urls = _collect(paths, recursive=recursive, out_dir=out_dir)
    if not inputs and not problems:
        raise click.UsageError(f"no images found in {', '.join(paths)}"
                               + ("" if recursive else " (use --recursive for sub-folders)"))
    code = _execute(inputs, problems, out_dir=out_dir, out_file=None, style=style, render=render, output=output,
                    engine=engine, single=False, urls=urls, shard=shard, ray_address=ray_address)
    raise click.exceptions.Exit(code)
