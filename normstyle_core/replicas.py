"""Data-parallel training under ``torchrun``: every process trains a DDP replica on its own
content batches and styles; only rank 0 writes checkpoints, logs and samples."""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor

from .devices import Placement
from .models.style_transfer import StyleTransferModel


def world_size_asked() -> int:
    """The number of processes torchrun started (WORLD_SIZE), 1 when run on its own."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def replica_placement(place: Placement) -> Placement:
    """On CUDA under torchrun each replica takes the GPU of its LOCAL_RANK."""
    if place.device.type != "cuda" or world_size_asked() <= 1:
        return place
    local = dataclasses.replace(place, device=torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))))
    torch.cuda.set_device(local.device)
    return local


def join_replicas(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (WORLD_SIZE/RANK env); (rank, world_size)."""
    if not dist.is_available() or world_size_asked() <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def from_rank0(value: object, *, world_size: int) -> object:
    """Rank 0's ``value`` on every replica. Under ``torchrun --nnodes N`` the run folder may be
    each node's own disk: what rank 0 read there (which checkpoint, and its contents) is what
    every replica must continue from, whatever its own disk holds."""
    if world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_replica(flag: bool, *, world_size: int, device: torch.device) -> bool:
    """Any replica asked to stop -> all stop at the same step (so checkpoints agree)."""
    if world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


class PasticheStep(nn.Module):
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


def replicated(step: PasticheStep, *, world_size: int, device: torch.device) -> nn.Module:
    """``step`` itself for one process, else wrapped so the replicas' gradients are averaged."""
    if world_size <= 1:
        return step
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)
