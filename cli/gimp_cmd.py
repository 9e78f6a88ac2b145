"""`normstyle gimp install|uninstall|doctor|serve`: the GIMP 3 plug-in's setup commands.

Import-light: click only; the work is in :mod:`cli.gimp_install` (standard library, no
torch), imported when a command runs.
"""
from __future__ import annotations

from pathlib import Path

import click

from .common import FiniteFloat

_PLUGINS_DIR = click.option(
    "--plugins-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="GIMP 3 plug-ins folder (default: the one `normstyle gimp install` last used, else the user "
         "folder of this platform, e.g. ~/.config/GIMP/3.0/plug-ins).")


@click.group("gimp")
def gimp() -> None:
    """Set up the GIMP 3 plug-in (Filters > Style Transfer)."""


@gimp.command("install")
@_PLUGINS_DIR
@click.option("--python", "python", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Python of the normstyle environment the plug-in calls (default: this one).")
@click.option("--model", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Model file to use in GIMP (default: NORMSTYLE_MODEL or the packaged model).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:n].")
@click.option("--worker", type=click.Choice(["daemon", "oneshot"]), default="daemon",
              show_default=True,
              help="daemon: one worker keeps the model loaded between calls (exits when idle); "
                   "oneshot: a fresh worker process per call.")
@click.option("--idle-timeout", type=FiniteFloat(min=0), default=900.0, show_default=True,
              help="Seconds a daemon worker waits for the next call before it exits.")
@click.option("--no-check", is_flag=True,
              help="Do not start the worker to check it and read the model's style list.")
@click.option("--force", is_flag=True,
              help="Install even where no GIMP 3 is found (e.g. one installed later, or in a place "
                   "not searched).")
def install_cmd(plugins_dir, python, model, device, worker, idle_timeout, no_check, force) -> None:
    """Install the plug-in into GIMP 3 and record which Python it calls.

    Refuses (exit 1) where no GIMP 3 is found, naming where it looked, unless --force."""
    from . import gimp_install as inst

    plugins_dir = inst.plugins_dir_for(given=plugins_dir)
    # Asked first, before anything is written: an install "succeeding" on a machine without GIMP
    # leaves the user waiting for a filter that never appears.
    gimp_exe, looked = inst.locate_gimp3()
    if gimp_exe is None:
        where = "; ".join(looked)
        if not force:
            raise click.ClickException(f"no GIMP 3 found (looked in: {where}); install GIMP 3 first, "
                                       "or pass --force to install the plug-in anyway")
        click.echo(f"warning: no GIMP 3 found (looked in: {where}); installing anyway (--force)", err=True)
    try:
        report = inst.install(plugins_dir, python=python, model=model, device=device,
                              worker=worker, idle_timeout=idle_timeout, check=not no_check)
    except inst.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    problem = inst.remember_plugins_dir(plugins_dir=plugins_dir, python=report.config["python"])
    if problem:
        report.warnings.append(problem)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    styles = ", ".join(report.config["styles"]) or "(none)"
    click.echo(f"installed {report.target}")
    click.echo(f"  python: {report.config['python']}")
    click.echo(f"  styles: {styles}")
    click.echo("Restart GIMP 3; the filter is under Filters > Style Transfer.")


@gimp.command("uninstall")
@_PLUGINS_DIR
def uninstall_cmd(plugins_dir) -> None:
    """Remove the plug-in (and stop its worker)."""
    from . import gimp_install as inst

    plugins_dir = inst.plugins_dir_for(given=plugins_dir)
    try:
        removed = inst.uninstall(plugins_dir)
    except inst.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    if removed is None:
        click.echo(f"nothing to remove: the plug-in is not installed in {plugins_dir}")
    else:
        click.echo(f"removed {removed}")


@gimp.command("doctor")
@_PLUGINS_DIR
@click.option("--quick", is_flag=True, help="Do not start the worker (skip the model check).")
def doctor_cmd(plugins_dir, quick) -> None:
    """Show what is installed and what is missing; exit 1 when something needed is missing."""
    from . import gimp_install as inst

    checks = inst.doctor(inst.plugins_dir_for(given=plugins_dir), query=not quick)
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = {True: "ok", False: "MISSING", None: "info"}[c.ok]
        click.echo(f"{c.name:<{width}}  {mark:<7}  {c.detail}")
    if any(c.ok is False for c in checks):
        raise SystemExit(1)


@gimp.command("serve")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=None,
              help="Where to listen (default: $XDG_RUNTIME_DIR/normstyle/gimp-worker.sock, where "
                   "the plug-in looks first). Pixel files are exchanged in the same folder.")
@click.option("--model", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Model for requests that name none (default: NORMSTYLE_MODEL or the packaged "
                   "model); a plug-in installed with --model names its own.")
@click.option("--idle-timeout", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="Exit after this many seconds without a call (0: run until stopped).")
@click.option("--log", "log_file", type=click.Path(dir_okay=False), default=None,
              help="Append the worker's log to this file (default: the terminal).")
def serve_cmd(socket_path, model, idle_timeout, log_file) -> None:
    """Run the worker for a Flatpak or Snap GIMP, which cannot start this Python itself.

    Start it outside GIMP (a terminal, or a login service) and leave it running; the plug-in
    finds it before it tries to start a worker of its own. Stop it with Ctrl+C.
    """
    import logging
    import os
    import signal

    from . import gimp_install as inst
    from . import gimp_worker

    nsclient = inst.nsclient()
    path = socket_path or nsclient.served_socket_path()
    if path is None:
        raise click.ClickException("`normstyle gimp serve` needs Unix-domain sockets (Linux, macOS)")
    logging.basicConfig(filename=log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    folder = os.path.dirname(os.path.abspath(path))
    click.echo(f"normstyle worker for GIMP: listening on {path}", err=True)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    shared = (f"xdg-run/{os.path.relpath(folder, runtime)}"
              if runtime and folder.startswith(runtime.rstrip("/") + "/") else folder)
    click.echo(f"  Flatpak GIMP: flatpak override --user --filesystem={shared} org.gimp.GIMP "
               "(once), then restart GIMP", err=True)
    # SIGTERM (logout, systemctl stop) unwinds like Ctrl+C: the socket and the shared folder's
    # files go, so the plug-in does not find a dead socket
    signal.signal(signal.SIGTERM, gimp_worker._exit_on_sigterm)
    try:
        gimp_worker.serve_socket(path, idle_timeout, shared=True, default_model=model)
    except KeyboardInterrupt:
        pass
