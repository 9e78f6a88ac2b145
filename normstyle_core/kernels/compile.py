"""``torch.compile`` with a persistent cache and a logged, one-time fallback to eager.

* Switch: ``NORMSTYLE_COMPILE=0`` (or false/no/off) turns every compiled path off
  (:func:`compile_setting`, the only reader of the variable).
* Cache: Inductor's FX-graph and kernel caches live under
  ``platformdirs.user_cache_dir("normstyle")/inductor`` unless the user already set
  ``TORCHINDUCTOR_CACHE_DIR``; a second process compiling the same graph loads it from there
  (first-call latency: benchmarks/RESULTS.md).
* Failure: a compile error (no C++ compiler, unsupported platform, Inductor bug) is caught on
  the first call, logged once as a warning, and that function runs eagerly from then on.
  An error that the eager function raises too (a user's bad input) is re-raised unchanged and
  does not disable compilation.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

_lock = threading.Lock()


def compile_setting() -> bool | str:
    """NORMSTYLE_COMPILE, the one place it is read: True ("1"/"true"/...), False ("0"/"false"/
    "no"/"off", or a torch without ``torch.compile``) or "auto" (unset). What "auto" means for
    rendering is the Renderer's compile policy (:mod:`normstyle_core.renderer`)."""
    from ..environment import read
    setting = read("NORMSTYLE_COMPILE", "auto")  # a value it does not know: one ConfigError line
    if setting is False or not hasattr(torch, "compile"):
        return False
    return setting


def compile_enabled() -> bool:
    """Compiling is not switched off (NORMSTYLE_COMPILE=0) and this torch can compile."""
    return compile_setting() is not False


def cache_dir() -> str:
    """Where Inductor's caches go (``TORCHINDUCTOR_CACHE_DIR`` if set, else ours)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return env
    try:
        from platformdirs import user_cache_dir
        base = user_cache_dir("normstyle")
    except ImportError:  # platformdirs is a dependency; be tolerant anyway
        base = os.path.join(os.path.expanduser("~"), ".cache", "normstyle")
    return os.path.join(base, "inductor")


def _warm_marker(key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)
    return os.path.join(cache_dir(), "warm", safe)


def cache_is_warm(key: str) -> bool:
    """Whether a graph with this key compiled successfully before, so the persistent cache
    holds it and compiling again costs seconds instead of minutes (benchmarks/RESULTS.md)."""
    return os.path.exists(_warm_marker(key))


def mark_cache_warm(key: str) -> None:
    """Record a successful compile (best effort: a read-only cache dir only loses the hint)."""
    path = _warm_marker(key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(torch.__version__ + "\n")
    except OSError as exc:  # pragma: no cover
        log.debug("could not write %s: %s", path, exc)


@functools.cache
def setup_compile_cache() -> str:
    """Point Inductor at a persistent cache dir (once, before the first compile)."""
    path = cache_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", path)
    try:
        os.makedirs(path, exist_ok=True)
        import torch._inductor.config as inductor_config
        inductor_config.fx_graph_cache = True  # cross-process cache of compiled graphs
    except Exception as exc:  # noqa: BLE001 - a read-only home must not break rendering
        log.debug("could not set up the Inductor cache at %s: %s", path, exc)
    return path


class SafeCompiled:
    """Callable that runs ``torch.compile(fn)`` and falls back to ``fn`` for good on failure."""

    def __init__(self, fn: Callable[..., Any], *, name: str, **compile_kwargs: Any) -> None:
        self.fn = fn
        self.name = name
        self.compile_kwargs = compile_kwargs
        self._compiled: Callable[..., Any] | None = None
        self.failed: str | None = None  # the error message once compilation has failed

    @property
    def active(self) -> bool:
        return self.failed is None and compile_enabled()

    def prepare(self) -> bool:
        """Make the torch.compile wrapper (cheap: the compiling happens on the first call).
        False, with the one warning, where even that fails (a cache folder that cannot be
        used, a torch.compile that raises): rendering goes on eagerly."""
        if self._compiled is None and self.failed is None:
            with _lock:
                if self._compiled is None and self.failed is None:
                    try:
                        setup_compile_cache()
                        self._compiled = torch.compile(self.fn, **self.compile_kwargs)
                    except Exception as exc:  # noqa: BLE001 - any stage of compiling: run eagerly
                        self._fail(exc)
        return self._compiled is not None and self.failed is None

    def _fail(self, exc: BaseException) -> None:
        self.failed = (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0][:300]
        log.warning("torch.compile of the %s failed; using the eager version from now on (%s)",
                    self.name, self.failed)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.active or not self.prepare():
            return self.fn(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            out = self.fn(*args, **kwargs)  # a genuine input error raises here, unchanged
            self._fail(exc)
            return out


def safe_compile(fn: Callable[..., Any], *, name: str, **compile_kwargs: Any) -> SafeCompiled:
    return SafeCompiled(fn, name=name, **compile_kwargs)
