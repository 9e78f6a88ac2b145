"""An exponential moving average of a model's trained weights (Polyak averaging).

At batch 4 and a constant learning rate the weights wander around the optimum: a checkpoint of
the shipped model's continuation scored held-out content / style 0.671 / 0.220, and its plain
average with the checkpoint 250 steps before it 0.656 / 0.212 (EXPERIMENTS.md, "Crop size, and
averaging weights"). The average is the model worth rendering with, so a run keeps one beside the live
weights and checkpoints both: the live ones to resume training, the average for everything
else (``checkpoint.inference_state``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class WeightEMA:
    """``avg <- d * avg + (1 - d) * live`` after every optimiser step, for the trainable
    parameters and float buffers of ``model`` (frozen weights are constant, so skipped).

    ``d`` ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates ``n`` (as in
    TensorFlow's ExponentialMovingAverage with num_updates): a fresh average does not drag a
    long tail of the random init, and a short fine-tune still moves it. Until ``decay`` is
    reached (step 8,991 for 0.999) the average spans about the last ninth of the run.
    """

    def __init__(self, model: nn.Module, *, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError("decay must be in (0, 1)")
        self.decay = decay
        self.updates = 0
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.names += [n for n, b in model.named_buffers() if b.is_floating_point()]
        live = model.state_dict()
        # Held in fp32 whatever the live dtype: a 0.999 lerp in bf16 would round updates away.
        self.shadow: dict[str, Tensor] = {n: live[n].detach().float().clone() for n in self.names}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        live = model.state_dict()
        for name in self.names:
            self.shadow[name].lerp_(live[name].detach().float(), weight)
        self.updates += 1

    @torch.no_grad()
    def reset(self, model: nn.Module, *, prefix: str = "") -> None:
        """Take the live values of the tensors under ``prefix`` (after surgery on the live model,
        e.g. reviving dead units, where an average of the old and new weights means nothing)."""
        live = model.state_dict()
        for name in self.names:
            if name.startswith(prefix):
                self.shadow[name].copy_(live[name].detach().float())

    def averaged_state(self, model: nn.Module) -> dict[str, Tensor]:
        """A complete state dict for ``model``: the averages where kept, the rest as live (CPU)."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        for name in self.names:
            state[name] = self.shadow[name].to(state[name].dtype).cpu()
        return state

    @torch.no_grad()
    def load(self, state: dict[str, Tensor], *, updates: int) -> None:
        """Continue from a saved ``averaged_state`` that had seen ``updates`` updates."""
        for name in self.names:
            self.shadow[name].copy_(state[name])
        self.updates = updates
