"""Helpers shared by the commands. Standard library and click only at import time."""
from __future__ import annotations

import errno
import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def error_line(message: str) -> None:
    """One line on stderr (newlines inside ``message`` are folded)."""
    click.echo(" ".join(str(message).split("\n")), err=True)



class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinity (every comparison with NaN is false,
    so FloatRange lets it through). Every float option of the CLI is one of these
    (tests/test_finite_options.py)."""

    name = "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number is not None and (number != number or number in (float("inf"), float("-inf"))):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def is_user_error(exc: BaseException) -> bool:
    """A problem the user can fix: any NormstyleError, or an OSError about their files.

    The core is only imported if it already is (an exception from it means it was), so this
    check never imports torch.
    """
    core = sys.modules.get("normstyle_core.errors")
    if core is not None and isinstance(exc, core.NormstyleError):
        return True
    return isinstance(exc, OSError) and exc.errno is not None


def describe_os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or what caused it) is 'no space left on device' / quota exceeded."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class _EchoHandler(logging.Handler):
    """Writes log records through click.echo, so it follows whatever stderr is current."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            click.echo(prefix + self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never break a run
            self.handleError(record)


_handler: _EchoHandler | None = None


def configure_logging(verbose: int) -> None:
    """Core warnings (skipped unreadable training images, ...) to stderr; -v adds info."""
    global _handler
    logger = logging.getLogger("normstyle_core")
    if _handler is None:
        _handler = _EchoHandler()
        _handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(_handler)  # propagation stays on: pytest's caplog etc. still see records
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logger.setLevel(level)


# ------------------------------------------------------------------ global flags
# -v, -q and --threads are accepted before and after the sub-command; what was given is gathered
# in the click context's meta, which the root group's context shares with its sub-commands'.
_FLAGS_KEY = "normstyle.global_flags"
_quiet = False


def is_quiet() -> bool:
    """True under -q/--quiet: no progress bars and no 'wrote ...' lines, only warnings and errors."""
    return _quiet


def say(message: str) -> None:
    """A progress or result line on stderr, left out under -q."""
    if not _quiet:
        click.echo(message, err=True)


class _DropCudaHomeWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


def silence_cuda_home_warning() -> None:
    """torch.utils.cpp_extension logs 'No CUDA runtime is found, using CUDA_HOME=...' when
    CUDA_HOME is set on a machine without a GPU; it says nothing about our run, breaks the
    progress bar and lands in the stderr of --json runs. Set up before torch is imported."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    if not any(isinstance(f, _DropCudaHomeWarning) for f in logger.filters):
        logger.addFilter(_DropCudaHomeWarning())


def apply_thread_policy(*, threads: int | None) -> None:
    """OpenMP threads that sleep when idle, and ``threads`` compute threads when given.

    OpenMP's default lets idle threads spin for a while; on a CPU that other programs share they
    spin against them (refine steps measured 6x slower with 2 threads than with 1). OpenMP reads
    its variables once, when torch loads it, so this runs before the commands import torch; a
    user's own OMP_WAIT_POLICY is kept. torch takes OMP_NUM_THREADS only up to the number of
    physical cores, so the count is also set through torch.set_num_threads: at once where torch
    is loaded already (tests, a program calling the CLI), else as soon as a command imports it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        return
    for finder in [f for f in sys.meta_path if isinstance(f, _SetThreadsOnTorchImport)]:
        sys.meta_path.remove(finder)  # an earlier --threads of the same process
    sys.meta_path.insert(0, _SetThreadsOnTorchImport(threads))


class _SetThreadsOnTorchImport(importlib.abc.MetaPathFinder):
    """Runs torch.set_num_threads(n) right after the first ``import torch`` has finished, so the
    CLI can stay free of torch until a command needs it."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not find this finder again
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load, threads = spec.loader.exec_module, self.threads

        def exec_module(module: Any) -> None:
            load(module)
            module.set_num_threads(threads)
        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def apply_global_flags(ctx: click.Context, *, verbose: int = 0, quiet: bool = False,
                       threads: int | None = None) -> None:
    """Add what one command level was given to what the levels above it were given, and apply it."""
    global _quiet
    flags = ctx.meta.setdefault(_FLAGS_KEY, {"verbose": 0, "quiet": False, "threads": None})
    flags["verbose"] += verbose
    flags["quiet"] = flags["quiet"] or quiet
    if threads is not None:
        flags["threads"] = threads
    _quiet = flags["quiet"]
    configure_logging(flags["verbose"])
    silence_cuda_home_warning()
    apply_thread_policy(threads=flags["threads"])


def thread_count() -> int | None:
    """The --threads (or NORMSTYLE_THREADS) the running command was given, None if none."""
    ctx = click.get_current_context(silent=True)
    flags = ctx.meta.get(_FLAGS_KEY) if ctx is not None else None
    return flags["threads"] if flags else None


VERBOSE_HELP = "More log output (-v info, -vv debug)."
QUIET_HELP = "Only warnings and errors: no progress bars, no 'wrote ...' lines."
THREADS_HELP = "CPU threads for torch (default: torch's choice, usually one per core)."


@functools.cache
def threads_type() -> click.IntRange:
    """The one range of the root's --threads, the sub-commands' and NORMSTYLE_THREADS (made on
    first use: importing this module stays light for `normstyle gimp`'s commands)."""
    from normstyle_core.environment import MAX_THREADS, VARIABLES
    return click.IntRange(min=VARIABLES["NORMSTYLE_THREADS"].minimum, max=MAX_THREADS)


def _sub_flag(name: str):
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:  # 0, False, None: not given at this level
            apply_global_flags(ctx, **{name: value})
    return callback


def add_global_options(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and, for a group, its sub-commands) the root's -v, -q and --threads, so they
    work after the sub-command's name too. NORMSTYLE_THREADS is read by the root option only: read
    again here it would override a --threads given before the sub-command."""
    if not getattr(cmd, "_normstyle_global_flags", False):
        cmd.params.extend([
            click.Option(["-v", "--verbose", "global_verbose"], count=True, expose_value=False,
                         callback=_sub_flag("verbose"), help=VERBOSE_HELP),
            click.Option(["-q", "--quiet", "global_quiet"], is_flag=True, expose_value=False,
                         callback=_sub_flag("quiet"), help=QUIET_HELP),
            click.Option(["--threads", "global_threads"], type=threads_type(), default=None,
                         expose_value=False, metavar="N", callback=_sub_flag("threads"), help=THREADS_HELP),
        ])
        cmd._normstyle_global_flags = True  # type: ignore[attr-defined]
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            add_global_options(sub)
    return cmd


# ----------------------------------------------------------------------- options
def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device, --precision: where the model comes from and where it runs."""
    func = click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                        help="Compute precision (auto: bf16 on CUDA and on CPUs with native bf16).")(func)
    func = click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
                        help="Where to run the model.")(func)
    func = click.option("--model", "model_path", type=click.Path(path_type=Path),
                        default=None, envvar="NORMSTYLE_MODEL", show_envvar=True,
                        help="Model file, checkpoint (.pt) or training run folder (its newest "
                             "checkpoint); default: the packaged model.")(func)
    return func


def load_stylizer(model_path: Path | None, device: str, precision: str):
    from normstyle_core import Stylizer  # heavy: torch
    return Stylizer.load(model_path, device=device, precision=precision)


def parse_floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, e.g. 0.7,0.3; got {text!r}",
                                 param_hint=what) from None


def parse_ints(text: str | None, what: str, count: int | None = None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.replace(" ", "").split(",") if x != "")
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers; got {text!r}", param_hint=what) from None
    if count is not None and len(values) != count:
        raise click.BadParameter(f"expected {count} integers, got {len(values)}", param_hint=what)
    return values


def data_home() -> Path:
    """Where user styles live: $NORMSTYLE_HOME, else the platform's user data dir."""
    from normstyle_core.environment import home
    if home() is not None:
        return home()
    import platformdirs
    return Path(platformdirs.user_data_dir("normstyle", appauthor=False))


def cache_home() -> Path:
    from normstyle_core.environment import home
    if home() is not None:
        return home() / "cache"
    import platformdirs
    return Path(platformdirs.user_cache_dir("normstyle", appauthor=False))


def stdout_console():
    """Rich console on stdout; when piped (logs, tests), wide enough that tables do not wrap."""
    from rich.console import Console
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=True, width=200)
    return console


def stderr_console():
    from rich.console import Console
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


class ProgressDisplay:
    """Base of the commands' displays: a rich ``Progress`` on a terminal (``self.progress``, set
    by the subclass) or plain lines on stderr; a context manager that starts and stops it."""

    progress: Any = None

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def line(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(message, err=True)
