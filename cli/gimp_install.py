"""Install, uninstall and check the GIMP 3 plug-in (``normstyle gimp install|uninstall|doctor``).

Standard library only (no torch): the model is queried through the worker, in the Python that
the plug-in will call, so what install sees is what GIMP will get.
"""
from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from normstyle_core.atomic import write_bytes_atomically

PLUGIN_NAME = "normstyle_gimp"
# cli/ and gimp_plugin/ lie side by side (in the repository and in site-packages): the folder that
# holds both is also what the worker's Python needs on its path to import ``cli.gimp_worker``.
PACKAGES_ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = PACKAGES_ROOT / "gimp_plugin" / PLUGIN_NAME
PLUGIN_FILES = ("normstyle_gimp.py", "nsclient.py")
CONFIG_NAME = "normstyle.json"
# normstyle's own note of where `normstyle gimp install` put the plug-in, so that its
# --plugins-dir need not be given to doctor, uninstall or the next install again (the plug-in's
# config lies inside that folder, so it cannot say where the folder is).
RECORD_NAME = "gimp-plugin.json"


class InstallError(Exception):
    """A user-facing problem with a one-line explanation."""


def nsclient():
    """The plug-in's own client module (the copy shipped in this package)."""
    spec = importlib.util.spec_from_file_location("normstyle_gimp_nsclient", SOURCE_DIR / "nsclient.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def default_plugins_dir(platform: str | None = None, env: dict | None = None,
                        home: Path | None = None) -> Path:
    """GIMP 3's per-user plug-ins folder on this platform."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if env.get("GIMP3_DIRECTORY"):  # GIMP's own override of its user folder
        return Path(env["GIMP3_DIRECTORY"]) / "plug-ins"
    if platform.startswith("win"):
        base = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "GIMP" / _newest_gimp3(base / "GIMP") / "plug-ins"


def _newest_gimp3(folder: Path) -> str:
    """"3.2" when GIMP 3.2 has made its user folder (it reads GIMP/3.2/plug-ins, not 3.0's),
    else the newest 3.x there, else "3.0"."""
    found = []
    try:
        for child in folder.iterdir():
            parts = child.name.split(".")
            if child.is_dir() and len(parts) == 2 and parts[0] == "3" and parts[1].isdigit():
                found.append((int(parts[1]), child.name))
    except OSError:
        pass
    return max(found)[1] if found else "3.0"


def record_path(*, env: dict | None = None) -> Path:
    """The install record: in normstyle's user data folder ($NORMSTYLE_HOME, else the platform's)."""
    env = os.environ if env is None else env
    if env.get("NORMSTYLE_HOME"):
        return Path(env["NORMSTYLE_HOME"]).expanduser() / RECORD_NAME
    import platformdirs
    return Path(platformdirs.user_data_dir("normstyle", appauthor=False)) / RECORD_NAME


def remembered_plugins_dir() -> Path | None:
    """The plug-ins folder of the last install, while the plug-in is still there."""
    try:
        folder = Path(json.loads(record_path().read_text(encoding="utf-8"))["plugins_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if (folder / PLUGIN_NAME / "normstyle_gimp.py").is_file() else None


def plugins_dir_for(*, given: Path | None) -> Path:
    """The folder a command works on: the one given, else the last install's, else GIMP's default."""
    if given:
        return Path(given)
    return remembered_plugins_dir() or default_plugins_dir()


def remember_plugins_dir(*, plugins_dir: Path, python: str) -> str | None:
    """Write the install record; a warning when it cannot be written (the install itself worked)."""
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"plugins_dir": str(plugins_dir.absolute()), "python": python}
        write_bytes_atomically(path, data=(json.dumps(record, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        return (f"could not note the plug-ins folder in {path} ({exc.strerror or exc}); "
                f"give --plugins-dir {plugins_dir} to doctor and uninstall too")
    return None


def package_version() -> str:
    try:
        from importlib.metadata import version
        return version("normstyle")
    except Exception:
        return "unknown"


def query_worker(cfg: dict, timeout: float = 300.0) -> tuple[dict, list[str] | None, str | None]:
    """(hello, styles or None, problem) from a one-shot worker in cfg's Python."""
    client_mod = nsclient()
    cfg = dict(cfg, worker="oneshot")
    client = client_mod.WorkerClient(cfg)
    try:
        hello = client.request({"op": "hello"})
        try:
            styles = client.request({"op": "styles", "model": cfg.get("model"),
                                     "device": cfg.get("device", "auto")})["styles"]
            problem = None
        except client_mod.WorkerError as exc:
            styles, problem = None, str(exc)
        return hello, styles, problem
    finally:
        client.close()


@dataclass
class InstallReport:
    target: Path
    config: dict
    warnings: list[str] = field(default_factory=list)


def install(plugins_dir: Path | None = None, *, python: str | None = None, model: str | None = None,
            device: str = "auto", worker: str = "daemon", idle_timeout: float = 900.0,
            check: bool = True) -> InstallReport:
    """Copy the plug-in into GIMP's plug-ins folder and write its config next to it."""
    plugins_dir = Path(plugins_dir) if plugins_dir else default_plugins_dir()
    python = python or sys.executable
    if worker not in ("daemon", "oneshot"):
        raise InstallError(f"worker must be 'daemon' or 'oneshot', not {worker!r}")
    if not Path(python).is_file():
        raise InstallError(f"Python interpreter not found: {python}")
    if model:
        model = str(Path(model).expanduser().resolve())
        if not Path(model).is_file():
            raise InstallError(f"model file not found: {model}")
    # Our own environment: also record where this package lives (a source checkout works too).
    same_env = Path(python).absolute() == Path(sys.executable).absolute()
    cfg = {"python": python, "pythonpath": str(PACKAGES_ROOT) if same_env else None,
           "worker": worker,
           "idle_timeout": idle_timeout, "model": model, "device": device, "styles": [],
           "version": package_version()}
    warnings = []
    if check:
        try:
            hello, styles, problem = query_worker(cfg)
        except Exception as exc:  # noqa: BLE001 - reported as one line
            raise InstallError(f"{python} cannot run the normstyle worker: {exc}") from exc
        if styles is None:
            warnings.append(f"no built-in styles ({problem}); the dialog offers a style image only")
        cfg["styles"] = styles or []
    target = plugins_dir / PLUGIN_NAME
    old_cfg = target / CONFIG_NAME
    if old_cfg.is_file():  # a worker of the previous install may still run: stop it
        try:
            nsclient().shutdown_daemon(json.loads(old_cfg.read_text(encoding="utf-8")))
        except Exception:  # noqa: BLE001
            pass
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in PLUGIN_FILES:
            shutil.copyfile(SOURCE_DIR / name, target / name)
        main = target / "normstyle_gimp.py"
        main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        write_bytes_atomically(target / CONFIG_NAME, data=(json.dumps(cfg, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise InstallError(f"cannot write to {target} ({exc.strerror or exc})") from exc
    return InstallReport(target=target, config=cfg, warnings=warnings)


def uninstall(plugins_dir: Path | None = None) -> Path | None:
    """Remove the plug-in folder (and stop its worker); None when nothing was installed."""
    plugins_dir = Path(plugins_dir) if plugins_dir else default_plugins_dir()
    target = plugins_dir / PLUGIN_NAME
    if not target.exists():
        return None
    if not (target / "normstyle_gimp.py").exists() and not (target / CONFIG_NAME).exists():
        raise InstallError(f"{target} does not look like the normstyle plug-in; not removing it")
    try:
        cfg = json.loads((target / CONFIG_NAME).read_text(encoding="utf-8"))
        nsclient().shutdown_daemon(cfg)
    except Exception:  # noqa: BLE001 - no config or no worker: nothing to stop
        pass
    try:
        shutil.rmtree(target)
    except OSError as exc:
        raise InstallError(f"cannot remove {target} ({exc.strerror or exc})") from exc
    return target


@dataclass
class Check:
    name: str
    ok: bool | None  # None = information only
    detail: str


# Where GIMP 3 is looked for: its executables on PATH (gimp-3.0 and gimp-3 are GIMP 3 by their
# names; a plain `gimp` may be GIMP 2.10, so its --version is asked), the usual install places of
# the platforms, the Flatpak exports, and GIMP 3's own user folder (a GIMP 3 that ran once for
# this user, wherever it is installed).
GIMP3_EXECUTABLES = ("gimp-3.0", "gimp-3", "gimp-console-3.0", "gimp-console-3")
GIMP_ANY_EXECUTABLES = ("gimp", "gimp-console")
GIMP_PLACES = ("/Applications/GIMP.app/Contents/MacOS/gimp", r"C:\Program Files\GIMP 3\bin\gimp-3.0.exe",
               "/var/lib/flatpak/exports/bin/org.gimp.GIMP", "~/.local/share/flatpak/exports/bin/org.gimp.GIMP")


def gimp_major_version(exe: str, *, timeout: float = 20.0) -> int | None:
    """The major version `exe --version` prints ("GNU Image Manipulation Program version 2.10.34"),
    or None when it cannot say (it does not start, or prints something else)."""
    import re
    import subprocess
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"version\s+(\d+)\.", done.stdout + done.stderr)
    return int(found.group(1)) if found else None


def locate_gimp3(*, env: dict | None = None) -> tuple[str | None, list[str]]:
    """(where GIMP 3 was found, or None; the places looked, for the message that says it was not)."""
    env = os.environ if env is None else env
    path = env.get("PATH", "")
    looked = [f"PATH for {', '.join(GIMP3_EXECUTABLES + GIMP_ANY_EXECUTABLES)}"]
    for exe in GIMP3_EXECUTABLES:
        found = shutil.which(exe, path=path)
        if found:
            return found, looked
    for exe in GIMP_ANY_EXECUTABLES:
        found = shutil.which(exe, path=path)
        if found:
            major = gimp_major_version(found)
            if major is None or major >= 3:  # cannot tell: given the benefit of the doubt
                return found, looked
            looked.append(f"{found} is GIMP {major}, not 3")
    for place in GIMP_PLACES:
        looked.append(place)
        if Path(place).expanduser().exists():
            return place, looked
    user = default_plugins_dir(env=env).parent
    looked.append(f"GIMP 3's user folder {user}")
    if user.is_dir():
        return str(user), looked
    return None, looked


def find_gimp() -> str | None:
    return locate_gimp3()[0]


def doctor(plugins_dir: Path | None = None, *, query: bool = True) -> list[Check]:
    """What is installed, what is missing."""
    plugins_dir = Path(plugins_dir) if plugins_dir else default_plugins_dir()
    target = plugins_dir / PLUGIN_NAME
    checks = [Check("plug-ins folder", plugins_dir.is_dir(),
                    str(plugins_dir) if plugins_dir.is_dir() else f"{plugins_dir} does not exist "
                    "(start GIMP 3 once, or run `normstyle gimp install`)")]
    main = target / "normstyle_gimp.py"
    installed = main.is_file()
    checks.append(Check("plug-in", installed, str(target) if installed else
                        f"not installed in {target}: run `normstyle gimp install`"))
    if installed:
        if os.name == "posix":
            exe = os.access(main, os.X_OK)
            checks.append(Check("executable", exe, "yes" if exe else f"chmod +x {main}"))
        stale = [n for n in PLUGIN_FILES
                 if not (target / n).is_file() or not filecmp.cmp(SOURCE_DIR / n, target / n, shallow=False)]
        checks.append(Check("up to date", not stale, "same as this normstyle" if not stale else
                            f"differs: {', '.join(stale)}; run `normstyle gimp install` again"))
    cfg = None
    cfg_path = target / CONFIG_NAME
    if installed or cfg_path.exists():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            checks.append(Check("config", True, str(cfg_path)))
        except (OSError, ValueError) as exc:
            checks.append(Check("config", False, f"{cfg_path}: {exc}; run `normstyle gimp install`"))
    if cfg:
        py = cfg.get("python") or ""
        checks.append(Check("python", Path(py).is_file(), py if Path(py).is_file() else
                            f"{py or '(none)'} not found; run `normstyle gimp install` from your "
                            "normstyle environment"))
        if query and Path(py).is_file():
            try:
                hello, styles, problem = query_worker(cfg)
                checks.append(Check("worker", True, f"normstyle {hello.get('version')} "
                                    f"(protocol {hello.get('protocol')}) in {hello.get('python')}"))
                if styles is None:
                    checks.append(Check("model", False, problem))
                else:
                    checks.append(Check("model", True, f"{len(styles)} built-in styles: "
                                        f"{', '.join(styles) or '(none)'}"))
                    if sorted(styles) != sorted(cfg.get("styles") or []):
                        checks.append(Check("style list", False, "the dialog's list is stale: run "
                                            "`normstyle gimp install` again"))
            except Exception as exc:  # noqa: BLE001
                checks.append(Check("worker", False, str(exc)))
        client = nsclient()
        if client.use_daemon(cfg):
            sock = client.default_socket_path(cfg)
            running = Path(sock).exists()
            checks.append(Check("daemon", None, f"running at {sock}" if running else
                                "not running (starts on first use)"))
    served = nsclient().served_socket_path(cfg or {})
    if served:  # what a Flatpak/Snap GIMP needs (normstyle gimp serve); informative elsewhere
        listening = nsclient()._reachable(served)
        checks.append(Check("served worker", None, f"`normstyle gimp serve` listening at {served} "
                            "(the plug-in uses it first)" if listening else
                            f"none at {served} (Flatpak/Snap GIMP: run `normstyle gimp serve`)"))
    gimp = find_gimp()
    checks.append(Check("GIMP", None, gimp or "no GIMP 3 executable found on PATH "
                        "(fine if GIMP is installed elsewhere)"))
    return checks
