"""Where a run's seconds go: the time ledger, the wall-clock twin of the FLOP ledger.

`wall_s` counts everything since the run started, so it cannot back a claim about training speed on its own,
nor say what a faster machine or a cheaper update would buy. `TimeLedger` adds up, with
`time.perf_counter`, the seconds of each kind of work (CATEGORIES), timed around the calls the run really
makes. Times are exclusive: a section opened inside another counts for itself only and is taken out of the
outer one (SEER's encoding of a new transition happens inside the replay's `add`; the FLOP ledger's pricing
wraps an update), so the categories add up to the wall time, and what no section covers is the rest of the
loop (`other` in reports: wall time less every category).

On a CUDA device the clock is read after `torch.cuda.synchronize()`: kernels are queued asynchronously, and
without it an update's time would land in whatever next waits for the GPU (an action, a memory reading).

The ledger costs two clock readings and a few list operations per section, about a dozen sections per
agent step: `benchmarks/overhead.py` measures it against a run without it (well under 1% of a step).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # not imported at run time: records and reports read CATEGORIES without torch
    import torch

# The kinds of work, each timed where the runner makes the call (see seer_bench.runner.Workspace):
CATEGORIES = (
    "setup",  # building envs, agent, replay and records; loading a checkpoint
    "physics",  # the training env: MuJoCo steps and resets (Atari: the emulator, its screen included)
    "render",  # the training env's frames (DMC: MuJoCo's renderer at the observation size)
    "act",  # the policy's forward for training actions
    "update",  # the agent's updates, sampling from the replay included
    "replay",  # storing transitions (less SEER's encoding of them)
    "encode",  # SEER: the frozen layers' forward for each new transition after T_f
    "convert",  # SEER: the freeze at T_f and the conversion of the pixel replay into latents
    "loop",  # the rest of a training step: random actions, checks, the loop's glue
    "eval",  # evaluation episodes (their own env, physics, rendering and acting included)
    "checkpoint",  # writing checkpoints
    "bookkeeping",  # records, progress file, memory readings, the FLOP ledger's pricing, finiteness checks
)
# what `train_s` sums: the training loop's own work, as the run's `train` phase
TRAIN_CATEGORIES = ("physics", "render", "act", "update", "replay", "encode", "convert", "loop")


def column(category: str) -> str:
    """The metrics.csv column of a category's cumulative seconds."""
    return f"time_{category}_s"


class _Section:
    """A reusable context manager that times one category in its ledger (one object per category: entering a
    section allocates nothing, which keeps the ledger's cost per step to microseconds)."""

    __slots__ = ("_ledger", "_category")

    def __init__(self, ledger: TimeLedger, category: str) -> None:
        self._ledger, self._category = ledger, category

    def __enter__(self) -> None:
        self._ledger.open()

    def __exit__(self, *exc: Any) -> None:
        self._ledger.close(self._category)


class TimeLedger:
    """Cumulative exclusive seconds per category, continued across a resume (`load_state_dict`). A category
    a checkpoint lacks (written before it was timed) is NaN for the rest of the run: unknown, not zero."""

    def __init__(self, device: torch.device) -> None:
        self._synchronize: Callable[[], None] | None = None
        if device.type == "cuda":
            import torch

            self._synchronize = torch.cuda.synchronize
        self.totals = dict.fromkeys(CATEGORIES, 0.0)
        self._sections = {c: _Section(self, c) for c in CATEGORIES}
        self._open: list[list[float]] = []  # per open section: [start, seconds of the sections inside it]
        self.sections = 0  # sections opened so far: with `section_seconds`, what the ledger itself costs

    def now(self) -> float:
        if self._synchronize is not None:
            self._synchronize()
        return time.perf_counter()

    def section(self, category: str) -> _Section:
        """`with ledger.section("render"): ...` adds the block's seconds (less its inner sections') to it."""
        return self._sections[category]

    def wrap(self, category: str, fn: Callable) -> Callable:
        """`fn`, timed as `category` at each call."""
        section = self._sections[category]

        def timed(*args: Any, **kwargs: Any) -> Any:
            with section:
                return fn(*args, **kwargs)

        return timed

    def open(self) -> None:
        self.sections += 1
        self._open.append([self.now(), 0.0])

    def close(self, category: str) -> None:
        start, inner = self._open.pop()
        elapsed = self.now() - start
        self.totals[category] += elapsed - inner
        if self._open:
            self._open[-1][1] += elapsed

    def add(self, category: str, seconds: float) -> None:
        """Seconds measured outside a section (the run's set-up, timed before the ledger existed)."""
        self.totals[category] += seconds

    def row(self, updates: int) -> dict[str, float]:
        """The metrics.csv time columns: cumulative seconds per category, the training loop's and the
        evaluations' totals, and the mean seconds of one update so far (NaN before the first)."""
        return {
            "train_s": sum(self.totals[c] for c in TRAIN_CATEGORIES),
            "eval_s": self.totals["eval"],
            "update_s_mean": self.totals["update"] / updates if updates else math.nan,
            **{column(c): self.totals[c] for c in CATEGORIES},
        }

    def state_dict(self) -> dict[str, float]:
        return dict(self.totals)

    def load_state_dict(self, totals: dict[str, float]) -> None:
        """Continue a checkpoint's totals, added to what this process timed already (its set-up)."""
        for c in CATEGORIES:
            self.totals[c] += float(totals.get(c, math.nan))


def section_seconds(n: int = 20_000) -> float:
    """Seconds one section costs on a CPU ledger (entering, two clock readings, exiting), less an empty
    loop's: times a run's sections per step, the ledger's overhead per step (`bench.py profile --timing`)."""
    import torch

    ledger = TimeLedger(torch.device("cpu"))
    outer, inner = ledger.section("update"), ledger.section("bookkeeping")
    start = time.perf_counter()
    for _ in range(n):
        with outer:  # nested, as most of a step's sections are
            with inner:
                pass
    timed = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        pass
    return (timed - (time.perf_counter() - start)) / (2 * n)
