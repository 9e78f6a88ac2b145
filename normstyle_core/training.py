"""End-to-end training of the Normalization Network and the Image Transformation Network.

Resumable (atomic checkpoints every N steps and on SIGINT/SIGTERM; batches are a pure function
of (seed, step)), observable (callbacks, JSONL log, sample sheets), and honest about
non-finite losses (the run stops, the last good checkpoint stays). The loop's collaborators
live in their own modules: checkpoint I/O (checkpoint.py), the run folder (run_folder.py), the
style caches (style_cache.py), dead-unit revival (revival.py), the weight average (ema.py),
sample sheets (sample_sheets.py), the loss network (loss_network.py), replicas (replicas.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .checkpoint import load_init_weights, read_checkpoint, resume_training, save_training_checkpoint
from .config import LossConfig, ModelConfig, TrainConfig
from .data import ContentBatches, StyleSet, list_images
from .devices import placement
from .ema import WeightEMA
from .errors import ConfigError, TrainingError
from .loss_network import load_loss_network
from .losses import PerceptualLoss
from .model_files import CKPT_GLOB, latest_checkpoint  # noqa: F401 (part of this module's API)
from .models.norm_net import smallest_style_size  # noqa: F401 (part of this module's API)
from .models.norm_net import VGGStatsNormalizationNet
from .models.style_transfer import StyleTransferModel
from .models.vgg import VGG19, layer_names
from .plots import loss_curve_png
from .replicas import PasticheStep, any_replica, from_rank0, join_replicas, replica_placement, replicated
from .revival import revive_encoder
from .run_folder import check_run_folder, log_path, remove_stale_temp_files, truncate_log, write_run_config
from .run_styles import style_files_by_name
from .sample_sheets import write_sample_sheet
from .stop_signals import StopFlag, ignore_stop_signals
from .style_cache import StyleCache

log = logging.getLogger(__name__)

@dataclass
class StepInfo:
    step: int
    total_steps: int
    losses: dict[str, float]
    seconds_per_step: float
    event: str = "step"  # step | estimate | checkpoint | sample | done | interrupted
    path: str | None = None
    reason: str | None = None  # for "interrupted": "signal" or "time limit"


class FirstStepsTimer:
    """The seconds per step a start of the loop measures over its first few steps, for the
    "estimate" event: the first step is left out (it also starts the data loader and fills the
    style caches), then ``n`` steps are averaged, fewer when the run ends sooner."""

    def __init__(self, *, steps_left: int, n: int = 3) -> None:
        self.skip = 1 if steps_left > 1 else 0
        self.wanted = max(1, min(n, steps_left - self.skip))
        self.times: list[float] = []

    def add(self, seconds: float) -> float | None:
        """Record one step's time; the average, once, when enough steps were timed."""
        if self.skip:
            self.skip -= 1
            return None
        if len(self.times) == self.wanted:
            return None
        self.times.append(seconds)
        return sum(self.times) / len(self.times) if len(self.times) == self.wanted else None


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
        self.place = replica_placement(placement(train.device, train.precision))
        self.rank, self.world_size = join_replicas(self.place.device)
        self.out_dir = Path(train.out_dir)
        self.step = 0
        # Before anything in the folder is read (a foreign ckpt_*.pt) or written (config.json):
        # a folder that is not a run is refused whole. The model is compared once it is final.
        check_run_folder(self.out_dir, only_run_files=True)

        loss_layers = self.loss_cfg.content_layers + self.loss_cfg.style_layers
        self.vgg = (vgg or load_loss_network(
            vgg_weights=train.vgg_weights, last_layer=max(loss_layers, key=layer_names().index),
            run_dir=self.out_dir, init_from=train.init_from)).to(self.place.device)
        self.loss_fn = PerceptualLoss(self.vgg, self.loss_cfg)
        torch.manual_seed(train.seed)
        if self.model_cfg.style_encoder == "vgg" and self.model_cfg.encoder_vgg_preprocess != self.vgg.preprocess:
            self.model_cfg = dataclasses.replace(self.model_cfg, encoder_vgg_preprocess=self.vgg.preprocess)
        smallest = smallest_style_size(self.model_cfg)
        if self.model_cfg.style_size < smallest:
            raise ConfigError(f"style size {self.model_cfg.style_size} is too small for the "
                              f"{self.model_cfg.style_encoder!r} style encoder, which reads style images "
                              f"of at least {smallest}x{smallest} pixels")
        check_run_folder(self.out_dir, model_config=self.model_cfg, only_run_files=True)
        self.model = self._build_model()
        # The named codes of the model this run started from: its checkpoints keep them, so the
        # names the user knew still work with the fine-tuned model (run_styles.py says why).
        self.init_bank: dict[str, Tensor] = {}
        if train.init_from and latest_checkpoint(self.out_dir) is None:
            # Here, not in fit(): a wrong file is refused before the run folder is touched.
            self.init_bank = load_init_weights(Path(train.init_from), model=self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.ema = WeightEMA(self.model, decay=train.ema_decay) if train.ema_decay else None
        self.optimizer = torch.optim.Adam(self.params, lr=train.lr)
        transform = torch.compile(self.model.transform) if train.compile else self.model.transform
        self.step_module = replicated(PasticheStep(self.model, transform),
                                      world_size=self.world_size, device=self.place.device)
        self.content_files = list_images(train.content)
        self.style_files = list_images(train.styles)
        self.styles: StyleSet | None = None
        self.style_cache: StyleCache | None = None

    def _build_model(self) -> StyleTransferModel:
        model = StyleTransferModel(self.model_cfg)
        if isinstance(model.normalization, VGGStatsNormalizationNet):
            full = VGG19.load(self.train_cfg.vgg_weights, last_layer=model.normalization.vgg.names[-1]) \
                if len(self.vgg.names) < len(model.normalization.vgg.names) else self.vgg
            model.normalization.load_vgg_from(full)
        model.to(self.place.device).train()
        # channels_last lets cuDNN pick its fastest bf16 conv kernels; on the CPU it does not help.
        self.channels_last = self.place.device.type == "cuda"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
            self.vgg.to(memory_format=torch.channels_last)
        return model

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.place.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.place.device.type, dtype=self.place.dtype)

    def load_styles(self) -> StyleSet:
        if self.styles is None:
            cfg = self.train_cfg
            self.styles = StyleSet(self.style_files, size=cfg.style_size, mode=cfg.style_mode, seed=cfg.seed,
                                   variants=cfg.style_variants)
            self.style_cache = StyleCache(styles=self.styles, model=self.model, loss_fn=self.loss_fn,
                                          device=self.place.device, autocast=self._autocast)
            log.info("%d style images (%s order; %d made-up versions of each), %d unreadable skipped",
                     len(self.styles), self.styles.mode, cfg.style_variants - 1, self.styles.skipped)
        return self.styles

    def style_input(self, style_ids: list[int]) -> tuple[Tensor, bool]:
        """What the Normalization Network reads for these styles (style_cache.py)."""
        self.load_styles()
        return self.style_cache.encoder_input(style_ids)

    def revive_dormant_units(self, max_styles: int = 64) -> int:
        """Re-initialise the encoder's dead units (revival.py); the output is unchanged."""
        self.load_styles()
        return revive_encoder(model=self.model, encoder_input=self.style_input, n_styles=len(self.styles),
                              optimizer=self.optimizer, ema=self.ema, seed=self.train_cfg.seed + self.step,
                              max_styles=max_styles)

    # ------------------------------------------------------------ checkpoints
    def save(self) -> Path | None:
        if not self.is_main:
            return None
        path = self.out_dir / f"ckpt_{self.step:07d}.pt"
        save_training_checkpoint(
            path, model=self.model, vgg_source=self.vgg.source, loss_config=self.loss_cfg,
            train_config=self.train_cfg, optimizer=self.optimizer, ema=self.ema, step=self.step,
            style_names=list(self.styles.names) if self.styles else [], style_bank=self.init_bank,
            style_files=style_files_by_name(paths=self.style_files))
        for old in sorted(self.out_dir.glob(CKPT_GLOB))[: -self.train_cfg.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, path: Path, *, data: dict | None = None) -> None:
        data = resume_training(path, model=self.model, optimizer=self.optimizer, ema=self.ema, data=data)
        self.step = int(data.get("step", 0))
        # The saved optimiser state carries the old learning rate; train_step sets lr_at(step)
        # before every update, so the one asked for now wins and a resume with a lower --lr
        # anneals (Adam's moments are kept).
        old_lr, new_lr = self.optimizer.param_groups[0]["lr"], self.lr_at(self.step)
        if "optimizer" in data and old_lr != new_lr:
            log.info("learning rate %g -> %g", old_lr, new_lr)
        self.init_bank = dict(data.get("style_bank") or {})
        log.info("resumed from %s at step %d", path, self.step)

    def lr_at(self, step: int) -> float:
        """The learning rate of 0-based ``step``: a linear warmup, then the configured lr."""
        warmup = self.train_cfg.warmup_steps
        return self.train_cfg.lr * min(1.0, (step + 1) / warmup) if warmup else self.train_cfg.lr

    # ------------------------------------------------------------------ steps
    def train_step(self, content: Tensor, style_ids: list[int]) -> dict[str, Tensor]:
        """One optimiser step; returns the (detached) named losses."""
        self.load_styles()
        content = content.to(self.place.device, non_blocking=True)
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        per = content.shape[0] // len(style_ids)
        grams = [self.style_cache.grams(i) for i in style_ids]
        target = {k: torch.cat([g[k].expand(per, -1, -1) for g in grams]) for k in grams[0]}
        style, cached = self.style_cache.encoder_input(style_ids)
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
            # Rank 0's newest checkpoint, read once and sent to every replica: on several
            # machines the others may have no copy (or an older one) on their own disks.
            ckpt = latest_checkpoint(self.out_dir) if self.is_main else None
            found = from_rank0((str(ckpt), read_checkpoint(ckpt)) if ckpt is not None else None,
                               world_size=self.world_size)
            if found is not None:
                self.resume(Path(found[0]), data=found[1])
        # Rank 0's config is the run's; a replica on another machine writes one into its own
        # folder too, so the folder that holds its log is known as a run's when it comes back.
        if self.is_main or not (self.out_dir / "config.json").exists():
            write_run_config(self.out_dir, train=cfg, model=self.model_cfg, loss=self.loss_cfg,
                             vgg_source=self.vgg.source, world_size=self.world_size)
        self.load_styles()
        batches = ContentBatches(self.content_files, batch_size=cfg.batch_size, image_size=cfg.image_size,
                                 seed=cfg.seed, steps=cfg.steps, rank=self.rank, world_size=self.world_size)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(batches, range(self.step, cfg.steps)), batch_size=None,
            num_workers=cfg.num_workers, prefetch_factor=4 if cfg.num_workers else None,
            worker_init_fn=ignore_stop_signals if cfg.num_workers else None,
            persistent_workers=False, pin_memory=self.place.device.type == "cuda")
        log_file = log_path(self.out_dir, rank=self.rank)
        truncate_log(log_file, step=self.step)  # the steps after the checkpoint are trained again
        started = time.monotonic()
        last_t = time.perf_counter()
        ema: float | None = None
        timer = FirstStepsTimer(steps_left=cfg.steps - self.step)
        last_saved = None
        with StopFlag() as stop, log_file.open("a") as log_fh:
            for content in loader:
                k = cfg.styles_per_step
                style_ids = [self.styles.index(self.step, self.rank * k + s, k * self.world_size) for s in range(k)]
                losses = self.train_step(content, style_ids)
                self.step += 1
                now = time.perf_counter()
                dt = now - last_t
                last_t = now
                ema = dt if ema is None else 0.9 * ema + 0.1 * dt
                estimate = timer.add(dt)
                if estimate is not None and callback:
                    callback(StepInfo(self.step, cfg.steps, {}, estimate, "estimate"))
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
                    if callback and last_saved is not None:  # rank 0 alone saves
                        callback(StepInfo(self.step, cfg.steps, {}, ema, "checkpoint", str(last_saved)))
                if self.step % cfg.sample_every == 0 and self.is_main:
                    sheet = self.sample_sheet()
                    if callback and sheet:
                        callback(StepInfo(self.step, cfg.steps, {}, ema, "sample", str(sheet)))
                timed_out = cfg.max_minutes > 0 and (time.monotonic() - started) > cfg.max_minutes * 60
                signalled = stop.signum is not None
                if any_replica(signalled or timed_out, world_size=self.world_size, device=self.place.device):
                    last_saved = self.save()
                    if self.is_main:
                        log_fh.flush()
                        loss_curve_png(log_file, self.out_dir / "loss_curve.png")
                    if callback:
                        callback(StepInfo(self.step, cfg.steps, {}, ema or 0.0, "interrupted", str(last_saved),
                                          reason="signal" if signalled else "time limit"))
                    return last_saved
        last_saved = self.save()
        if self.is_main:
            self.sample_sheet()
            loss_curve_png(log_file, self.out_dir / "loss_curve.png")
        if callback:
            callback(StepInfo(self.step, cfg.steps, {}, ema or 0.0, "done", str(last_saved)))
        return last_saved

    def sample_sheet(self, *, n_content: int = 3, n_styles: int = 6, size: int = 192) -> Path | None:
        """Grid PNG of the current weights (sample_sheets.py): samples_<step>.png in the run folder."""
        return write_sample_sheet(self.out_dir / f"samples_{self.step:07d}.png", model=self.model, ema=self.ema,
                                  content_files=self.content_files, styles=self.styles, device=self.place.device,
                                  autocast=self._autocast, n_content=n_content, n_styles=n_styles, size=size)
