"""Shards: a deterministic split of a set of photos among N copies of a batch.

Any scheduler (Slurm arrays, Kubernetes indexed jobs, GNU parallel) can start N processes with
``--shard 1/N`` ... ``--shard N/N``; together they write each output exactly once. The photos
are sorted by their key (their path relative to the folder they were found in, the same on
every machine) and dealt out in turn, so shard sizes differ by at most one photo. Every copy
must therefore see the same photos: one that arrives while the copies run can change the deal,
and the output policy (skip what exists, atomic writes) makes a re-run of all N copies finish
exactly what is missing.

Standard library only: the CLI parses ``--shard`` without importing torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from .errors import ConfigError

T = TypeVar("T")

# More shards than this cannot be told apart from a typo; a cluster that big runs Ray instead.
MAX_SHARDS = 1_000_000
_FORM = re.compile(r"\s*([0-9]{1,7})\s*/\s*([0-9]{1,7})\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based: ``Shard(index=1, count=4)`` is "1/4")."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"shard {name} must be a whole number, got {value!r}")
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard count must be between 1 and {MAX_SHARDS:,}, got {self.count}")
        if not 1 <= self.index <= self.count:
            hint = (" (shards count from 1; for a 0-based task index i, e.g. Kubernetes' "
                    "JOB_COMPLETION_INDEX, pass $((i+1))/N)") if self.index == 0 else ""
            raise ConfigError(f"shard {self.index}/{self.count}: K must be between 1 and {self.count}{hint}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """"K/N" -> Shard(index=K, count=N); anything else is one ConfigError line."""
        match = _FORM.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(f"shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/8), got {text!r}")
        return cls(index=int(match.group(1)), count=int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        """True for 1/1: every photo."""
        return self.count == 1

    def select(self, items: Iterable[T], *, key: Callable[[T], str] = str) -> list[T]:
        """The items this shard owns, in their sorted order. Sorted by ``key`` (then by position,
        for equal keys), the i-th item (0-based) belongs to shard ``i % count + 1``. For the
        split ``normstyle batch`` makes, key each photo by its path relative to the folder given
        ('/' separated, e.g. ``sub/a.jpg``)."""
        items = list(items)
        order = sorted(range(len(items)), key=lambda i: (key(items[i]), i))
        return [items[i] for rank, i in enumerate(order) if rank % self.count == self.index - 1]
