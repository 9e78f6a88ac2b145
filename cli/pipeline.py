"""Batch stylization: plan input -> output pairs safely, then render with overlapped I/O.

Planning never touches the model: it collects inputs (files, folders, globs), names outputs
from a template, and decides per file whether it would overwrite an input (always an error),
an existing output (error unless --overwrite / --skip-existing) or another output of the
same batch (error).

Running: a small reader pool decodes the next images while the current one renders on the
main thread, and one writer thread encodes and saves the previous result; saves are atomic
(temp file + rename, in the core). Queues are bounded so memory stays flat over thousands of
files. One bad file is one failed result; a full disk or Ctrl-C stops the batch cleanly.
"""
from __future__ import annotations

import errno
import glob
import os
import string
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from normstyle_core.formats import INPUT_EXTENSIONS, WRITE_FORMATS
from normstyle_core.options import RenderOptions

from .common import describe_os_error, disk_full

# Extensions the core can write, without the dot; others fall back to PNG.
WRITABLE = {ext.lstrip(".") for ext in WRITE_FORMATS}
OUTPUT_FORMATS = ("same", "jpg", "png", "webp", "tiff")
TEMPLATE_FIELDS = ("stem", "style", "ext", "name", "index", "strength", "settings")
# {settings} is empty for the default settings, so those names stay photo_style.jpg.
DEFAULT_TEMPLATE = "{stem}_{style}{settings}.{ext}"

OK, SKIPPED, FAILED, NOT_RUN = "ok", "skipped", "failed", "not-run"


@dataclass
class Job:
    index: int
    src: Path  # for a URL input, the path part of the URL (its name and stem name the output)
    rel_dir: Path  # sub-folder (relative to the scanned folder) to mirror under --out
    out: Path | None = None
    status: str | None = None  # decided at planning time: SKIPPED / FAILED, else None = to do
    error: str | None = None
    url: str | None = None  # an fsspec URL input (remote_inputs.py); None for a local file

    @property
    def shard_key(self) -> str:
        """What decides this photo's shard (normstyle_core.sharding): its path relative to the
        folder it was found in, the same on every machine that sees the folder."""
        return (self.rel_dir / self.src.name).as_posix()

    @property
    def source(self) -> str:
        """The input as the user named it: the URL, or the local path."""
        return self.url if self.url is not None else str(self.src)


@dataclass
class Result:
    input: str
    output: str | None
    status: str
    error: str | None = None
    seconds: float = 0.0
    size: tuple[int, int] | None = None
    warnings: tuple[str, ...] = ()  # what of the photo was not used or kept (frames, metadata, bits)

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "status": self.status, "error": self.error,
                "seconds": round(self.seconds, 4), "size": list(self.size) if self.size else None,
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Options:
    """What to do to each picture (:class:`RenderOptions`) and how to write it."""

    render: RenderOptions = field(default_factory=RenderOptions)
    quality: int = 95
    keep_metadata: bool = True
    overwrite: bool = False
    bit_depth: int | None = None  # 8, 16, or None: the photo's own where the output format holds it


# ---------------------------------------------------------------- templates
def check_template(template: str) -> None:
    """Raise ValueError naming the problem if the template is unusable."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"bad output name template {template!r}: {exc}") from None
    bases = [f.split("!")[0].split(":")[0] for f in fields]
    for base in bases:
        if base not in TEMPLATE_FIELDS:
            raise ValueError(f"unknown field {{{base}}} in output name template; "
                             f"use {', '.join('{' + x + '}' for x in TEMPLATE_FIELDS)}")
    sample = render_name(template, Path("photo.jpg"), style="style", fmt="same", index=1, strength=1.0)
    if Path(sample).suffix.lower().lstrip(".") not in WRITABLE:
        raise ValueError(f"the output name template must end with .{{ext}} or one of "
                         f".{', .'.join(sorted(WRITABLE))} (got {sample!r} for photo.jpg)")
    if not {"stem", "name", "index"} & set(bases):  # {stem!r} and {index:03d} count too
        raise ValueError("the output name template must contain {stem}, {name} or {index}, "
                         "or every file would get the same name")


def model_tag(model_path: Path | None) -> str | None:
    """The name a model other than the shipped one gives output names ({settings}: "_model-mine"
    for runs/mine or mine.pt), None for the shipped model. Read from the path alone: planning
    happens before the model loads."""
    from normstyle_core.builtin_styles import is_shipped_model
    if model_path is None or is_shipped_model(Path(model_path).expanduser()):
        return None
    path = Path(model_path).expanduser()
    if path.is_dir() or not path.suffix:
        stem = path.resolve().name  # a training run folder: its name ("." included)
    else:
        stem = path.stem
        if stem.startswith("ckpt_"):  # one of a run's checkpoints: the run's name says more
            stem = f"{path.resolve().parent.name}-{stem}"
    safe = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in stem).strip("-.")
    return safe[:40] or "model"


def settings_tag(*, weights: Sequence[float] | None = None, strength: float = 1.0, refine_steps: int = 0,
                 feedback: bool | None = None, preserve_color: bool = False, max_size: int | None = None,
                 stroke_scale: float = 1.0, model: str | None = None,
                 bit_depth: int | None = None) -> str:
    """The {settings} part of output names: "_refine20", "_feedback", ... for each setting that is
    not the default, "" for the defaults. Two runs on the same photo and style with different
    settings then write different files instead of the second one failing on the first's; a
    model other than the shipped one adds "_model-NAME", so its outputs do not collide either."""
    parts = []
    if weights is not None:
        parts.append("w" + "-".join(f"{w:g}" for w in weights))
    if strength != 1.0:
        parts.append(f"strength{strength:g}")
    if refine_steps:
        parts.append(f"refine{refine_steps}")
    if feedback is not None:  # forced either way: the default decides by the photo's size
        parts.append("feedback" if feedback else "nofeedback")
    if preserve_color:
        parts.append("keepcolor")
    if max_size is not None:
        parts.append(f"max{max_size}")
    if stroke_scale != 1.0:
        parts.append(f"strokes{stroke_scale:g}")
    if bit_depth is not None:  # asked for: a 16-bit photo's default output is 16-bit, 8 otherwise
        parts.append(f"{bit_depth}bit")
    if model:
        parts.append(f"model-{model}")
    return "".join(f"_{p}" for p in parts)


def output_ext(src: Path, fmt: str) -> str:
    if fmt != "same":
        return fmt
    ext = src.suffix.lower().lstrip(".")
    return ext if ext in WRITABLE else "png"


def render_name(template: str, src: Path, *, style: str, fmt: str, index: int, strength: float,
                settings: str = "") -> str:
    name = template.format(stem=src.stem, style=style, ext=output_ext(src, fmt), name=src.name,
                           index=index, strength=f"{strength:g}", settings=settings)
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"output name {name!r} from the template must be a relative path without '..'")
    return name


# ------------------------------------------------------------------ inputs
def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def collect_inputs(paths: Sequence[str], *, recursive: bool, exclude: Path | None = None
                   ) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """([(file, rel_dir)], [(path, problem)]) for files, folders and glob patterns.

    Files named explicitly are taken whatever their extension (a non-image then fails with a
    clear message); folders contribute their image files (hidden files and, when it lies
    inside the folder, the output folder are skipped).
    """
    found: list[tuple[Path, Path]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()
    excl = exclude.resolve() if exclude is not None else None
    said: set[str] = set()

    def problem(path: str, why: str) -> None:  # a path named and also matched is said once
        key = os.path.abspath(os.path.expanduser(path))
        if key not in said:
            said.add(key)
            problems.append((path, why))

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, rel))

    def scan(folder: Path) -> None:
        pattern = "**/*" if recursive else "*"
        files = []
        for f in folder.glob(pattern):
            if f.suffix.lower() not in INPUT_EXTENSIONS:
                continue
            rel = f.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts):
                continue
            # realpath, not resolve(): resolve() raises on a symlink loop
            if excl is not None and excl != folder.resolve() and _inside(Path(os.path.realpath(f)), excl):
                continue  # our own outputs from an earlier run
            if f.is_file():
                files.append(f)
            elif (why := not_an_image_file(f, recursive=recursive)) is not None:
                problem(str(f), why)
        for f in sorted(files):
            add(f, f.parent.relative_to(folder))

    for text in paths:
        p = Path(text).expanduser()
        if p.is_dir():
            scan(p)
        elif p.exists():
            add(p, Path())
        elif p.is_symlink():
            problem(text, not_an_image_file(p, recursive=recursive) or "no such file or folder")
        elif glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text), recursive=recursive))
                       if not _is_hidden(Path(m))]
            files = [m for m in matches if m.is_file()]
            odd = [(m, why) for m in matches if m.suffix.lower() in INPUT_EXTENSIONS and not m.is_file()
                   and (why := not_an_image_file(m, recursive=recursive)) is not None]
            if not files and not odd:
                problem(text, "no files match this pattern")
            for m, why in odd:
                problem(str(m), why)
            for f in files:
                add(f, Path())
        else:
            problem(text, "no such file or folder")
    return found, problems


def not_an_image_file(path: Path, *, recursive: bool) -> str | None:
    """Why ``path``, named like an image, is not an image file, or None where that is fine (a
    folder whose images --recursive finds anyway). Said, never skipped silently."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (it points back to itself), not an image"
        if os.path.islink(path):
            return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
        return describe_os_error(exc)
    if path.is_dir():
        if path.is_symlink():
            return "is a link to a folder, not an image (links to folders are not followed)"
        if recursive:
            return None
        return "is a folder, not an image (use --recursive for the images inside it)"
    if not path.is_file():
        return "not a regular file (a device, pipe or socket), not an image"
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- planning
def plan(inputs: Sequence[tuple[Path, Path]], *, out_dir: Path | None, out_file: Path | None,
         template: str, style: str, fmt: str, strength: float, overwrite: bool,
         skip_existing: bool, settings: str = "", urls: Sequence[str | None] | None = None) -> list[Job]:
    """Output path and pre-decided status for every input; ``settings`` fills {settings};
    ``urls`` gives the fsspec URL of each input that is not a local file (None for local ones)."""
    urls = list(urls) if urls is not None else [None] * len(inputs)
    # The local file behind every input, URLs included (file:// names one too): no output may
    # land on any of them.
    from .remote_inputs import local_file
    local = [src if url is None else local_file(url) for (src, _), url in zip(inputs, urls)]
    all_inputs = {path.resolve() for path in local if path is not None}
    claimed: dict[Path, Path] = {}
    jobs: list[Job] = []
    for i, ((src, rel), url, here) in enumerate(zip(inputs, urls, local)):
        job = Job(index=i, src=src, rel_dir=rel, url=url)
        jobs.append(job)
        try:
            if out_file is not None:
                out = out_file
            else:
                name = render_name(template, src, style=style, fmt=fmt, index=i + 1, strength=strength,
                                   settings=settings)
                out = (out_dir if out_dir is not None else src.parent) / rel / name
        except ValueError as exc:
            job.status, job.error = FAILED, str(exc)
            continue
        job.out = out
        key = out.resolve()
        if here is not None and (key == here.resolve() or (out.exists() and _same_file(out, here))):
            job.status = FAILED
            job.error = (f"output {out} is the input itself; refusing to overwrite an input "
                         "(choose another -o/--out or --name template)")
            continue
        if key in all_inputs:
            job.status, job.error = FAILED, f"output {out} would overwrite another input file; refusing"
            continue
        if key in claimed:
            job.status = FAILED
            job.error = f"output {out} is also the output of {claimed[key]}; use {{index}} or keep sub-folders"
            continue
        claimed[key] = Path(job.source)
        if out.is_dir():
            job.status, job.error = FAILED, f"output {out} is an existing folder"
        elif out.exists() or out.is_symlink():
            if skip_existing:
                job.status, job.error = SKIPPED, "output exists"
            elif not overwrite:
                job.status = FAILED
                job.error = f"output {out} already exists (use --overwrite to replace it or --skip-existing)"
    return jobs


def load_job_image(job: Job):
    """The job's photo, decoded (normstyle_core.imaging.LoadedImage), from a file or a URL."""
    if job.url is not None:
        from .remote_inputs import load_url_image
        return load_url_image(job.url)
    from normstyle_core.imaging import load_image
    return load_image(job.src)


def write_job_output(job: Job, image, loaded, opts: Options) -> tuple[int, int]:
    """Save one rendered photo as every runner does (local threads, Ray actors): metadata kept
    unless stripped, atomic, and an output that appeared meanwhile is never replaced without
    --overwrite. Returns the size written."""
    from normstyle_core.imaging import save_image
    if not opts.overwrite and (job.out.exists() or job.out.is_symlink()):
        raise FileExistsError(f"output {job.out} appeared while the batch ran; not overwritten")
    # overwrite=False: the core links the finished temp file into place, which fails if
    # another process created the output meanwhile (no race window).
    save_image(image, job.out, quality=opts.quality,
               exif=loaded.exif if opts.keep_metadata else None,
               icc_profile=loaded.icc_profile if opts.keep_metadata else None,
               metadata=loaded.info if opts.keep_metadata else None,
               overwrite=opts.overwrite, notes=loaded.notes)
    return image.size


def render_job(job: Job, stylizer, code, opts: Options, loaded):
    """The stylized picture of one decoded photo."""
    from normstyle_core.imaging import output_bit_depth
    # 16 bits: the render's float result, never an 8-bit one scaled up (a bad request fails here,
    # before the render)
    depth = output_bit_depth(opts.bit_depth, source_bit_depth=getattr(loaded, "bit_depth", 8), path=job.out)
    if depth == 16:
        return stylizer.stylize_16bit(loaded, style=code, options=opts.render)
    if getattr(loaded, "bit_depth", 8) >= 16 and opts.bit_depth is None:
        loaded.notes.append(f"written at 8 bits per channel: {job.out.suffix or 'this format'} holds no more "
                            "(a .png or .tif output keeps 16)")
    # as keywords: the stylize signature every Stylizer version (and test double) has
    image = stylizer.stylize(loaded, style=code, **asdict(opts.render))
    if loaded.grayscale and opts.render.preserve_color and image.mode == "RGB":
        image = image.convert("L")  # a gray photo with its own colours stays gray
    return image


def select_shard(jobs: Sequence[Job], problems: Sequence[tuple[str, str]], shard
                 ) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs and input problems that ``shard`` (normstyle_core.sharding.Shard) owns, in input
    order. Jobs are planned for every input first, so {index} names and collisions are the same
    in every shard; each problem is reported by one shard only."""
    mine = {id(j) for j in shard.select(jobs, key=lambda j: j.shard_key)}
    said = {p for p, _ in shard.select(problems, key=lambda p: p[0])}
    return [j for j in jobs if id(j) in mine], [(p, why) for p, why in problems if p in said]


def folder_problem(folder: Path) -> str | None:
    """Why outputs cannot be written into ``folder`` (made if missing), or None if they can.

    Asked before anything renders: a read-only folder found after minutes of work wastes them.
    The probe is an unnamed temp file where the OS has them (nothing appears in the folder).
    """
    probe = folder
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe != folder and probe.is_symlink() and not probe.exists():
        return f"cannot create the output folder {folder}: {probe} is a broken symbolic link"
    if not probe.is_dir():
        return (f"cannot create the output folder {folder}: {probe} is a file" if probe != folder
                else f"the output folder {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc)
        if probe == folder:
            return f"cannot write in the output folder {folder} ({why})"
        return f"cannot create the output folder {folder} in {probe} ({why})"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ----------------------------------------------------------------- running

def planned_result(job: Job) -> Result:
    """The result of a job decided at planning time (skipped, or failed before rendering)."""
    return Result(job.source, str(job.out) if job.out else None, job.status, job.error)


def _message(exc: BaseException, src: Path | str) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        msg = describe_os_error(exc)
    else:
        msg = str(exc) or type(exc).__name__
    core = sys.modules.get("normstyle_core.errors")
    if core is None or not isinstance(exc, (core.NormstyleError, OSError)):
        msg = f"unexpected {type(exc).__name__}: {msg}"
    msg = " ".join(msg.split())
    if isinstance(exc, MemoryError) or "out of memory" in msg.lower():
        msg = msg[:200] + " (try --max-size 2048, or --device cpu)"
    return msg if str(src) in msg else f"{src}: {msg}"


def run_jobs(jobs: Sequence[Job], stylizer, code, opts: Options, *,
             on_start: Callable[[Job], None] = lambda job: None,
             on_result: Callable[[Job, Result], None] = lambda job, r: None,
             readers: int = 2, prefetch: int = 3, max_pending_writes: int = 2) -> tuple[list[Result], str | None]:
    """Render every job; returns (results in input order, stop reason or None).

    Stop reasons: "disk full: <message>" or "interrupted" (KeyboardInterrupt; the jobs
    not finished are reported as not run, finished writes are complete files).
    """
    results: dict[int, Result] = {}
    todo: Iterable[Job] = iter([j for j in jobs if j.status is None])
    for job in jobs:
        if job.status is not None:
            results[job.index] = planned_result(job)
            on_result(job, results[job.index])

    stop: str | None = None
    read_pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="normstyle-read")
    write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="normstyle-write")
    reads: deque[tuple[Job, Future]] = deque()
    writes: deque[tuple[Job, Future, float, list[str]]] = deque()

    def refill() -> None:
        while len(reads) < prefetch:
            job = next(todo, None)  # type: ignore[call-overload]
            if job is None:
                return
            reads.append((job, read_pool.submit(load_job_image, job)))

    def finish_write(job: Job, fut: Future, seconds: float, notes: list[str]) -> None:
        nonlocal stop
        try:
            size = fut.result()
            results[job.index] = Result(job.source, str(job.out), OK, None, seconds, size, tuple(notes))
        except Exception as exc:  # noqa: BLE001 - reported per file
            results[job.index] = Result(job.source, str(job.out), FAILED, _message(exc, job.source), seconds)
            if disk_full(exc):  # the caller reports the stop in one line; no per-file lines
                if stop is None:
                    stop = f"disk full: {_message(exc, job.out)}"
                return
        on_result(job, results[job.index])

    def drain(limit: int) -> None:
        while writes and (len(writes) > limit or writes[0][1].done()):
            finish_write(*writes.popleft())

    try:
        refill()
        while reads and stop is None:
            job, fut = reads.popleft()
            refill()
            on_start(job)
            t0 = time.perf_counter()
            try:
                loaded = fut.result()
                image = render_job(job, stylizer, code, opts, loaded)
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the batch
                results[job.index] = Result(job.source, str(job.out), FAILED, _message(exc, job.source),
                                            time.perf_counter() - t0)
                on_result(job, results[job.index])
                drain(max_pending_writes)
                continue
            seconds = time.perf_counter() - t0
            writes.append((job, write_pool.submit(write_job_output, job, image, loaded, opts), seconds,
                           loaded.notes))
            drain(max_pending_writes)
        while writes:
            finish_write(*writes.popleft())
    except KeyboardInterrupt:
        stop = "interrupted"
        for job, fut in reads:
            fut.cancel()
        # Writes already started complete (each is atomic); record what they produced.
        while writes:
            job, fut, seconds, notes = writes.popleft()
            try:
                fut.result()
                results[job.index] = Result(job.source, str(job.out), OK, None, seconds, warnings=tuple(notes))
            except Exception as exc:  # noqa: BLE001
                results[job.index] = Result(job.source, str(job.out), FAILED, _message(exc, job.source))
    finally:
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)

    out = []
    for job in jobs:
        r = results.get(job.index)
        if r is None:
            r = Result(job.source, str(job.out) if job.out else None, NOT_RUN,
                       "not processed: the batch stopped early")
        out.append(r)
    return out, stop
