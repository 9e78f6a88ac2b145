"""What `normstyle train` shows while it runs: progress, the time estimate, checkpoints and
sample sheets (nothing under -q)."""
from __future__ import annotations

import math

from .common import ProgressDisplay, is_quiet, stderr_console


def format_duration(seconds: float) -> str:
    """Hours past one hour, minutes past one minute, else seconds ("5.2 h", "14 min", "40 s")."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def estimate_line(*, seconds_per_step: float, steps: int) -> str:
    return (f"~{seconds_per_step:.2g} s/step on this machine, ~{format_duration(seconds_per_step * steps)} "
            f"for {steps} steps; stop any time with Ctrl-C, resume with the same command")


class TrainDisplay(ProgressDisplay):
    """A rich progress line on a terminal (step, it/s, ETA, losses); plain lines otherwise;
    nothing under -q."""

    def __init__(self, total: int, start_step: int) -> None:
        self.console = stderr_console()
        self.total = total
        self.start_step = start_step
        self.quiet = is_quiet()
        self.last_decile = -1
        self.progress = None
        if self.console.is_terminal and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            self.progress = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]}"), TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.fields[losses]}"), console=self.console)
            self.task = self.progress.add_task("train", total=total, completed=start_step,
                                               speed="", eta="?", losses="")

    @staticmethod
    def fmt_losses(losses: dict[str, float]) -> str:
        order = sorted(losses, key=lambda k: (k == "total", k))
        return " ".join(f"{k} {v:.4g}" for k, v in ((k, losses[k]) for k in order))

    @staticmethod
    def fmt_eta(seconds: float) -> str:
        if not math.isfinite(seconds):
            return "?"
        seconds = int(seconds)
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

    def line(self, message: str) -> None:
        if not self.quiet:
            super().line(message)

    def __call__(self, info) -> None:
        sps = info.seconds_per_step or 0.0
        speed = f"{1 / sps:.2f} it/s" if sps > 0 else ""
        eta = self.fmt_eta((info.total_steps - info.step) * sps) if sps > 0 else "?"
        if info.event == "step":
            losses = self.fmt_losses(info.losses)
            if self.progress is not None:
                self.progress.update(self.task, completed=info.step, speed=speed, eta=eta, losses=losses)
            else:
                decile = info.step * 10 // max(1, info.total_steps)
                if decile != self.last_decile:
                    self.last_decile = decile
                    self.line(f"step {info.step}/{info.total_steps}  {speed}  ETA {eta}  {losses}")
        elif info.event == "estimate":
            self.line(estimate_line(seconds_per_step=sps, steps=info.total_steps - self.start_step))
        elif info.event == "checkpoint":
            self.line(f"checkpoint: {info.path}")
        elif info.event == "sample":
            self.line(f"samples: {info.path}")
