"""`normstyle` command-line tool: the root Click group.

Only click and the standard library are imported at module level, so ``normstyle --help``
answers instantly; torch, the core and rich are imported inside the commands that need them
(DESIGN.md habit 10). Users' mistakes (:class:`normstyle_core.NormstyleError`) become one line
on stderr and a non-zero exit (habit 11).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from .common import (EXIT_ERROR, EXIT_INTERRUPTED, QUIET_HELP, THREADS_HELP, VERBOSE_HELP, add_global_options,
                     apply_global_flags, describe_os_error, error_line, is_user_error, threads_type)

# Commands written elsewhere, registered only if their module exists, imported only when used:
# name -> (module, attribute, short help shown in `normstyle --help` without importing it).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "gimp": ("cli.gimp_cmd", "gimp", "Install and manage the GIMP 3 plug-in."),
    "eval": ("cli.eval_cmd", "eval", "Evaluate a model (held-out styles, speed, quality)."),
    "demo": ("cli.demo_cmd", "demo", "Stylize sample photos with a few built-in styles."),
}


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class NormstyleGroup(click.Group):
    """Group with lazily imported sub-commands and one-line errors instead of tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(n for n, (mod, _, _) in LAZY_COMMANDS.items() if _module_exists(mod))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = self._get_command(ctx, cmd_name)
        return add_global_options(cmd) if cmd is not None else None

    def _get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        module_name, attr, _ = LAZY_COMMANDS[cmd_name]
        if not _module_exists(module_name):
            return None
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # an optional part that cannot load must not break the rest
            click.echo(f"warning: `normstyle {cmd_name}` is unavailable ({exc})", err=True)
            return None
        cmd = getattr(module, attr, None)
        if not isinstance(cmd, click.Command):  # e.g. `eval_command = click.command("eval")(...)`
            cmd = next((c for c in vars(module).values()
                        if isinstance(c, click.Command) and c.name == cmd_name), None)
        if isinstance(cmd, click.Command):
            self.add_command(cmd, cmd_name)
            return cmd
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lazy commands show their static short help (no import)."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit=formatter.width - 6 - len(name))))
            elif name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][2]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            error_line("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - users' mistakes: one line, no traceback
            from normstyle_core.environment import debug
            if not is_user_error(exc) or debug():
                raise
            message = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            error_line(f"Error: {message}")
            ctx.exit(EXIT_ERROR)


@click.group(cls=NormstyleGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                   "max_content_width": 100})
@click.version_option(package_name="normstyle", prog_name="normstyle")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("--threads", type=threads_type(), default=None, metavar="N", envvar="NORMSTYLE_THREADS",
              show_envvar=True, help=THREADS_HELP)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, threads: int | None) -> None:
    """normstyle: one network, many styles. Stylize photos by style name, image or blend.

    \b
    Examples:
      normstyle stylize photo.jpg --style candy -o out.jpg
      normstyle batch photos/ --recursive --style a.jpg --style b.jpg --weights 0.7,0.3 --out styled/
      normstyle styles add mine painting.jpg
      normstyle train content/ --style styles/ --out runs/mine

    -v, -q and --threads may also follow the command. Set NORMSTYLE_DEBUG=1 to see tracebacks.
    """
    from normstyle_core.environment import check_all
    check_all()  # a wrong NORMSTYLE_* value is one line now, whether or not this command reads it
    apply_global_flags(ctx, verbose=verbose, quiet=quiet, threads=threads)


def _register() -> None:
    from .export_cmd import export
    from .info_cmd import info
    from .styles_cmd import styles
    from .stylize_cmd import batch, stylize
    from .train_cmd import train

    for cmd in (stylize, batch, styles, info, train, export):
        cli.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="normstyle")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
