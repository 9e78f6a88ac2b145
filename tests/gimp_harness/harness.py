"""Run a real GIMP 3 from the trixie chroot (see tests/gimp_harness/chroot/) for the tests.

The host's Python environment (``sys.prefix``, ``sys.base_prefix``) and this repository are
bind-mounted read-only at the same paths, so the plug-in can start the normstyle worker with
the very interpreter that runs the tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROOT_TOOLS = Path(__file__).resolve().parent / "chroot"
IN_CHROOT = CHROOT_TOOLS / "in-chroot.sh"
ENSURE = CHROOT_TOOLS / "ensure-chroot.sh"


class Unavailable(Exception):
    """GIMP 3 cannot run here; the message says why."""


def required() -> bool:
    return os.environ.get("NORMSTYLE_GIMP_REQUIRED") == "1"


def suite() -> str:
    """The Debian suite whose GIMP is tested: NORMSTYLE_GIMP_SUITE (trixie: GIMP 3.0; sid: 3.2)."""
    return os.environ.get("NORMSTYLE_GIMP_SUITE") or "trixie"


def gimp_version(root: Path) -> str:
    """"3.0" or "3.2": from the chroot's gimp-console-3.x (also the user folder's name)."""
    found = sorted(root.glob("usr/bin/gimp-console-3.*"))
    if not found:
        raise Unavailable(f"{root} has no gimp-console-3.x")
    return found[-1].name.rsplit("-", 1)[1]


def find_chroot(*, build: bool | None = None) -> Path:
    """The GIMP 3 chroot: $NORMSTYLE_GIMP_CHROOT, or restored from the cache (built when
    ``build``; default: only when NORMSTYLE_GIMP_REQUIRED=1) for :func:`suite`."""
    if os.name != "posix" or not sys.platform.startswith("linux"):
        raise Unavailable("the GIMP 3 chroot needs Linux")
    if os.geteuid() != 0:
        raise Unavailable("running GIMP 3 in the chroot needs root (unshare --mount + chroot)")
    if os.environ.get("NORMSTYLE_GIMP_CHROOT"):
        root = Path(os.environ["NORMSTYLE_GIMP_CHROOT"])
        gimp_version(root)
        return root
    build = required() if build is None else build
    cmd = ["bash", str(ENSURE)] + ([] if build else ["--restore-only"])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, NORMSTYLE_GIMP_SUITE=suite()))
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1]
        raise Unavailable(f"no GIMP 3 chroot ({tail}); build it with `bash {ENSURE}` "
                          "or run .ci/gimp-e2e.sh")
    return Path(res.stdout.strip().splitlines()[-1])


def python_binds() -> list[str]:
    paths = sorted({sys.prefix, sys.base_prefix, str(REPO)})
    for p in paths:
        if p in ("/", "/usr") or p.startswith(("/usr/", "/bin", "/lib")):
            raise Unavailable(f"this Python lives under {p}, which cannot be bind-mounted over the "
                              "chroot's own; use a venv on a non-system Python (e.g. pyenv)")
    return paths


def run_in_chroot(root: Path, argv: list[str], *, rw: list[Path], env: dict[str, str],
                  stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    args = ["bash", str(IN_CHROOT), str(root)]
    for p in rw:
        args += ["--bind", str(p)]
    for p in python_binds():
        args += ["--ro-bind", p]
    args += ["--", "env", *[f"{k}={v}" for k, v in env.items()], *argv]
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)


# Passed on to GIMP (and so to the worker it starts), which the chroot otherwise starts with a
# clean environment: the tests compare the worker's renders with this process's, so both must
# take the same oneDNN code path and the same precision.
PASS_THROUGH = ("ONEDNN_MAX_CPU_ISA", "NORMSTYLE_GIMP_PRECISION")


def precision() -> str:
    """The compute precision of the worker under test (NORMSTYLE_GIMP_PRECISION, default auto)."""
    return os.environ.get("NORMSTYLE_GIMP_PRECISION") or "auto"


def gimp_env(work: Path, version: str = "3.0") -> dict[str, str]:
    """A fresh GIMP user folder in ``work`` that finds plug-ins in ``work/plug-ins``
    (``version``: GIMP's, which names its user folder: GIMP/3.0, GIMP/3.2)."""
    cfg = work / "config" / "GIMP" / version
    cfg.mkdir(parents=True, exist_ok=True)
    (work / "cache").mkdir(exist_ok=True)
    (cfg / "gimprc").write_text(
        f'(plug-in-path "${{gimp_dir}}/plug-ins:${{gimp_plug_in_dir}}/plug-ins:{work / "plug-ins"}")\n'
        "(show-welcome-dialog no)\n")
    env = {"XDG_CONFIG_HOME": str(work / "config"), "XDG_CACHE_HOME": str(work / "cache"),
           "TMPDIR": str(work), "NORMSTYLE_GIMP_SOCKET": str(work / "worker.sock"),
           "NORMSTYLE_GIMP_IDLE_TIMEOUT": "120"}
    env.update({k: os.environ[k] for k in PASS_THROUGH if os.environ.get(k)})
    return env


def make_tiny_model(path: Path) -> Path:
    """A small, untrained but real checkpoint with a two-style bank (as tests/conftest.py)."""
    import torch

    from normstyle_core import ModelConfig
    from normstyle_core.checkpoint import save_checkpoint
    from normstyle_core.models import StyleTransferModel

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cfg = ModelConfig(widths=(8, 16, 32), num_residual=2, norm_hidden=16, style_size=64)
    model = StyleTransferModel(cfg)
    rows, cols = cfg.code_rows, 2 * cfg.num_cin
    bank = {"red": torch.randn(rows, cols, generator=gen) * 0.1 + 1,
            "blue": torch.randn(rows, cols, generator=gen) * 0.1}
    save_checkpoint(path, model=model, vgg_source="random", extra={"style_bank": bank})
    return path
