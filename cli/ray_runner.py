"""`normstyle batch --ray`: the same planned jobs rendered by a pool of Ray actors.

Planning, naming, skipping and the summary are the local batch's (stylize_cmd._execute); only
the rendering moves. Each actor loads the model once and renders one photo per call, reading it
(a file or an fsspec URL) and writing its output itself with the local batch's writer
(pipeline.write_job_output: metadata, atomic, never replacing a file it did not plan to), so the
output folder must be one every node can write (a shared file system). A photo that fails is
one failed row, never an exception out of the actor; an actor whose process dies is restarted
and its photo retried by Ray (``max_restarts``/``max_task_retries``).

Ray is an optional extra (``pip install "normstyle[ray]"``), imported only here.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from normstyle_core.errors import ConfigError

from .common import disk_full
from .pipeline import FAILED, NOT_RUN, OK, Job, Options, Result, load_job_image, planned_result, render_job, \
    write_job_output, _message

# "local" (or no value): start a cluster on this machine for this run; "auto": join the one that
# `ray start` runs here (or RAY_ADDRESS); ray://HOST:PORT a Ray Client server; HOST:PORT a head node.
_ADDRESS = re.compile(r"(local|auto|ray://[^\s/]+(:\d{1,5})?|[A-Za-z0-9.\-\[\]:]+:\d{1,5})")
INSTALL_HINT = "--ray needs Ray: pip install \"normstyle[ray]\""


def check_address(address: str) -> str:
    """The address as given, or ValueError with one line. A folder name here most likely means
    --ray took the next argument as its address (it takes an optional value)."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"--ray: {address!r} is not a cluster address (local, auto, ray://HOST:PORT or HOST:PORT); "
                         "to use a local cluster write --ray=local, or put --ray after the other arguments")
    return address


@dataclass(frozen=True)
class EngineSpec:
    """What each actor needs to load its own model (every node reads the model file itself)."""

    model_path: str | None
    device: str
    precision: str
    threads: int


class RenderActor:
    """One model per actor; ``__call__`` renders a batch of planned jobs (batch_size=1)."""

    def __init__(self, *, engine: EngineSpec, code: Any, opts: Options) -> None:
        import torch
        torch.set_num_threads(engine.threads)
        from .common import load_stylizer
        self.stylizer = load_stylizer(engine.model_path, engine.device, engine.precision)
        self.code = code
        self.opts = opts

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows: dict[str, list] = {"index": [], "status": [], "error": [], "seconds": [], "width": [], "height": [],
                                 "disk_full": []}
        for i, job in enumerate(batch["job"]):
            t0 = time.perf_counter()
            status, error, size, full = OK, "", (0, 0), False
            try:
                loaded = load_job_image(job)
                image = render_job(job, self.stylizer, self.code, self.opts, loaded)
                size = write_job_output(job, image, loaded, self.opts)
            except Exception as exc:  # noqa: BLE001 - one bad photo is one failed row
                status, error, full = FAILED, _message(exc, job.source), disk_full(exc)
            rows["disk_full"].append(full)
            rows["index"].append(int(batch["index"][i]))
            rows["status"].append(status)
            rows["error"].append(error)
            rows["seconds"].append(time.perf_counter() - t0)
            rows["width"].append(int(size[0]))
            rows["height"].append(int(size[1]))
        return rows


def _check_reachable(address: str, *, timeout: float = 5.0) -> None:
    """One line within seconds for a head node nobody answers at: Ray itself retries for
    minutes before it gives up."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--ray {address}: nothing answers there ({getattr(exc, 'strerror', None) or exc}); "
                          "is the head node started (ray start --head)?") from None


def _connect(address: str, *, cpus: int | None):
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address not in ("local", "auto"):
        _check_reachable(address)
    if not ray.is_initialized():
        with _native_stderr_quiet() as log_path:
            try:
                if address == "local":
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
                else:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                raise ConfigError(f"--ray {address}: cannot start or join the cluster "
                                 f"({' '.join(str(exc).split())[:200]}; Ray's log: {log_path})") from None
    import ray.data
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own progress display says what is done
    ctx.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray


@contextlib.contextmanager
def _native_stderr_quiet():
    """While Ray starts: what its C++ core writes to file descriptor 2 goes to a private log
    file, kept and named only when the start fails. Ray's core logs at "error" level that its
    actor-restart policy is in effect for every actor pool (ray-project/ray#53727), a line per
    run that says nothing about the photos; RAY_BACKEND_LOG_LEVEL=fatal silences it, and the
    core announces that setting in one more line as it starts."""
    sys.stderr.flush()
    fd, log_path = tempfile.mkstemp(prefix="normstyle-ray-", suffix=".log")  # 0600, ours alone
    saved = os.dup(2)
    os.dup2(fd, 2)
    failed = False
    try:
        yield log_path
    except BaseException:
        failed = True
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        if not failed:
            os.unlink(log_path)


def _cluster_messages_to_stderr(say: Callable[[str], None]) -> None:
    """Ray's driver prints the cluster's error messages ("a worker died ... the task will be
    retried") to stdout, where they would break `--json`; here each becomes one line on stderr
    (its first sentence). Ray has no option for it, so its printer is wrapped; a Ray without
    that function keeps its own behaviour."""
    import ray._private.worker as ray_worker
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_normstyle", False):
        return

    def printer(data: dict, *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            return original(data, *args, **kwargs)
        for text in data.get("lines", []):
            text = " ".join(str(text).split())
            retried = " (Ray retries it)" if "will be retried" in text else ""
            say(f"ray: {text.split('. ')[0][:200]}{retried}")
    printer._normstyle = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = printer


def pool_size(resources: dict[str, float], *, device: str, threads: int) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor): one actor per GPU where the run uses GPUs,
    else one per ``threads`` CPUs of the whole cluster."""
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return gpus, 1.0, 1.0
    cpus = int(resources.get("CPU", 1))
    return max(1, cpus // threads), float(threads), 0.0


def run_jobs_on_ray(jobs: Sequence[Job], code: Any, opts: Options, *, address: str, engine: EngineSpec,
                    on_result: Callable[[Job, Result], None] = lambda job, r: None,
                    on_message: Callable[[str], None] = lambda text: None,
                    local_cpus: int | None = None) -> tuple[list[Result], str | None]:
    """Render every job on a Ray cluster; (results in input order, stop reason or None), as
    :func:`cli.pipeline.run_jobs`."""
    ray = _connect(address, cpus=local_cpus)
    _cluster_messages_to_stderr(on_message)
    started_here = address == "local"
    results: dict[int, Result] = {}
    for job in jobs:
        if job.status is not None:
            results[job.index] = planned_result(job)
            on_result(job, results[job.index])
    todo = {j.index: j for j in jobs if j.status is None}
    stop: str | None = None
    try:
        if todo:
            actors, cpus, gpus = pool_size(ray.cluster_resources(), device=engine.device, threads=engine.threads)
            actors = min(actors, len(todo))
            items = [{"index": j.index, "job": j} for j in todo.values()]
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            # Ray Data restarts a lost actor and retries its photo by default (max_restarts and
            # max_task_retries -1 for actor pools).
            ds = ds.map_batches(RenderActor, batch_size=1, concurrency=actors, num_cpus=cpus, num_gpus=gpus,
                                fn_constructor_kwargs={"engine": engine, "code": code, "opts": opts})
            for row in ds.iter_rows():
                job = todo[int(row["index"])]
                size = (int(row["width"]), int(row["height"])) if row["status"] == OK else None
                results[job.index] = Result(job.source, str(job.out), row["status"], row["error"] or None,
                                            float(row["seconds"]), size)
                if row["disk_full"]:  # as the local batch: one line, the photos not yet done not run
                    stop = f"disk full: {row['error']}"
                    break
                on_result(job, results[job.index])
    except KeyboardInterrupt:
        stop = "interrupted"
    finally:
        if started_here:
            ray.shutdown()
    out = []
    for job in jobs:
        r = results.get(job.index)
        if r is None:
            r = Result(job.source, str(job.out) if job.out else None, NOT_RUN, "not processed: the batch stopped early")
        out.append(r)
    return out, stop
