"""Where a run's seconds go: training, evaluation and updates, apart from start-up and records.

`wall_s` counts everything since the run started (building envs and agent, evaluation, checkpoints), so it
cannot back a claim about training speed on its own. `Stopwatch` adds up the seconds of each kind of work
(`train`: acting, updates, env steps, replay adds and SEER's conversion; `eval`: evaluation episodes;
`update`: the updates alone, inside `train`) with `time.perf_counter`. On a CUDA device the clock is read
after `torch.cuda.synchronize()`: kernels are queued asynchronously, and without it an update's time would
land in whatever next waits for the GPU.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator

import torch

KINDS = ("train", "eval", "update")


class Stopwatch:
    """Cumulative seconds per kind of work (KINDS), continued across a resume from `totals` (a checkpoint's
    `state_dict`); NaN totals (a checkpoint written before times were kept) stay NaN: unknown, not zero."""

    def __init__(self, device: torch.device, totals: dict[str, float] | None = None) -> None:
        self.synchronize = device.type == "cuda"
        self.totals = {kind: float((totals or {}).get(kind, 0.0)) for kind in KINDS}

    def now(self) -> float:
        if self.synchronize:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        """Add the seconds the block takes to `kind` (sections may nest: updates run inside training)."""
        start = self.now()
        yield
        self.totals[kind] += self.now() - start

    def row(self, updates: int) -> dict[str, float]:
        """The metrics.csv time columns: train and eval seconds so far, mean seconds per update so far."""
        return {
            "train_s": self.totals["train"],
            "eval_s": self.totals["eval"],
            "update_s_mean": self.totals["update"] / updates if updates else math.nan,
        }

    def state_dict(self) -> dict[str, float]:
        return dict(self.totals)

    @classmethod
    def unknown(cls, device: torch.device) -> Stopwatch:
        """A resumed run whose checkpoint kept no times: its totals are unknown for the rest of the run."""
        return cls(device, dict.fromkeys(KINDS, math.nan))
