"""A training run's folder: which folders may hold a run, the run's own config.json, the temp
files a killed run leaves, and the log records a resumed run trains again.

A run folder has one writer; everything here reads or writes only the names a run writes
(:data:`RUN_FILE_GLOBS`), so a user's own files are never overwritten or deleted.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomically
from .config import LossConfig, ModelConfig, TrainConfig, config_to_dict, model_differences, saved_model_config
from .errors import ConfigError
from .imaging import is_temp_name, remove_stale_temps
from .model_files import CKPT_GLOB

log = logging.getLogger(__name__)

# config.json's "format": what marks a folder as a run normstyle wrote (see is_run_config)
RUN_FORMAT = "normstyle-run"
RUN_VERSION = 1
# Every name a run writes in its folder: a folder that is not a run may hold none of them, or
# the run would overwrite, append to, delete or resume from the user's files.
RUN_FILE_GLOBS = ("config.json", "log.jsonl", "log.rank*.jsonl", CKPT_GLOB, "samples_*.png", "loss_curve.png")
# Temp files that atomic_torch_save and write_text_atomically leave when the process is killed
# mid-write: mkstemp's names (8 characters of [a-z0-9_]) around the run file being written.
# (The sample sheets' temps are imaging.save_image's, removed by imaging.remove_stale_temps.)
STALE_TEMP_RE = re.compile(r"\.(?:ckpt_\d{7}\.pt|config\.json|log(?:\.rank\d+)?\.jsonl)\.[a-z0-9_]{8}\.tmp")
# Files operating systems put into any folder a file manager opened.
_OS_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}


def is_run_config(data: Any) -> bool:
    """Whether parsed config.json contents were written by a training run.

    Runs write ``"format": RUN_FORMAT``; older runs (the shipped model's among them) wrote the
    same file without it, and are known by its fixed layout: the train, model and loss configs
    as objects, and the VGG weights' source."""
    if not isinstance(data, dict):
        return False
    if data.get("format") == RUN_FORMAT:
        return True
    return (all(isinstance(data.get(k), dict) for k in ("train", "model", "loss"))
            and "vgg_weights" in data and "out_dir" in data["train"])


def check_run_folder(run_dir: Path, *, model_config: ModelConfig | None = None,
                     only_run_files: bool = False) -> None:
    """Refuse (ConfigError) a ``run_dir`` that a run there would damage; reads, never writes.

    Fine: no folder, an empty one, or one whose config.json a run wrote (:func:`is_run_config`)
    for the same model as ``model_config`` (None: not compared). Refused: a config.json that
    is not a run's, a run of another model, and a folder without a run's config.json that holds
    any file a run writes (:data:`RUN_FILE_GLOBS`) or, unless ``only_run_files``, any file at all
    besides our own stale temp files and the litter of file managers. ``only_run_files`` is for
    callers that put their own files in a new run folder first (tools/train_shipped.py writes
    its held-out lists there)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    where = f"--out {run_dir}"
    config = run_dir / "config.json"
    if config.exists():
        try:
            saved = json.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read its config.json ({exc.strerror or exc})") from None
        except ValueError:  # not JSON (UnicodeDecodeError is one too)
            saved = None
        if not is_run_config(saved):
            raise ConfigError(f"{where} is not a normstyle run folder: its config.json was not written by "
                              "normstyle train, and a run would replace it; choose a new or empty folder")
        if model_config is not None:
            try:
                theirs = saved_model_config(saved["model"])
            except (ConfigError, TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: the run's config.json has a model config this normstyle "
                                  f"cannot read ({exc}); choose a new or empty folder") from None
            if theirs != model_config:
                raise ConfigError(f"{where} holds another run: its model config differs from this run's "
                                  f"({model_differences(theirs, model_config)}); resume it with the same "
                                  "model options or choose a new folder")
        return
    found = sorted({p.name for pattern in RUN_FILE_GLOBS for p in run_dir.glob(pattern)})
    if not found and not only_run_files:
        found = sorted(p.name for p in run_dir.iterdir() if p.name not in _OS_LITTER
                       and not STALE_TEMP_RE.fullmatch(p.name) and not is_temp_name(p.name))
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise ConfigError(f"{where} is not a normstyle run folder (it has no run's config.json) and holds "
                          f"files a run could overwrite or mistake for its own: {shown}; "
                          "choose a new or empty folder")


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files a killed run left in ``run_dir`` (named as :data:`STALE_TEMP_RE`
    says, and sample-sheet temps as imaging.remove_stale_temps judges them; nothing else is
    touched); returns what was removed. Call before this run writes: a run folder has one
    writer (two runs in one folder would delete each other's checkpoints anyway)."""
    removed = []
    for path in Path(run_dir).iterdir():
        if STALE_TEMP_RE.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    removed += remove_stale_temps(run_dir)
    if removed:
        log.info("removed %d temp file(s) a killed run left in %s", len(removed), run_dir)
    return removed


def truncate_log(path: Path, *, step: int) -> None:
    """Drop the records of ``path`` (a JSONL training log) after ``step``, and any line that is
    not a whole record (a write cut by SIGKILL): a resumed run re-trains those steps, and a log
    holding both would draw two loss curves over one stretch of steps."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    if kept != lines:
        write_text_atomically(path, text="".join(f"{line}\n" for line in kept))
        log.info("%s: %d record(s) after step %d dropped", path, len(lines) - len(kept), step)


def write_text_atomically(path: Path, *, text: str) -> None:
    """Temp file in the same folder, then rename (named as :data:`STALE_TEMP_RE` expects)."""
    write_bytes_atomically(path, data=text.encode("utf-8"))


def write_run_config(run_dir: Path, *, train: TrainConfig, model: ModelConfig, loss: LossConfig,
                     vgg_source: str, world_size: int) -> None:
    """The run's config.json: the three configs it trains with (what a resume reads back)."""
    write_text_atomically(Path(run_dir) / "config.json", text=json.dumps({
        "format": RUN_FORMAT, "version": RUN_VERSION,
        "train": config_to_dict(train), "model": config_to_dict(model),
        "loss": config_to_dict(loss), "vgg_weights": vgg_source,
        "world_size": world_size}, indent=2))


def update_run_model_config(run_dir: Path, *, model: ModelConfig) -> None:
    """Replace the model config in ``run_dir``'s config.json (after surgery on its checkpoint
    changed the architecture), so that resuming the run builds that model."""
    path = Path(run_dir) / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved["model"] = config_to_dict(model)
    write_text_atomically(path, text=json.dumps(saved, indent=2))


def log_path(run_dir: Path, *, rank: int) -> Path:
    """The JSONL log replica ``rank`` writes (rank 0's is the run's log)."""
    return Path(run_dir) / ("log.jsonl" if rank == 0 else f"log.rank{rank}.jsonl")
