"""What every environment hands the runner: one step's result, and the interface both env kinds share."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


@dataclass(frozen=True)
class StepResult:
    obs: np.ndarray  # uint8 (C, H, W): the stacked frames after the step
    reward: float  # summed over the action repeat (clipped when the env trains an Atari agent)
    terminal: bool  # the MDP ended (discount 0): do not bootstrap
    last: bool  # the episode ended, by termination or time limit


_UNTIMED = contextlib.nullcontext()


def untimed(category: str) -> contextlib.AbstractContextManager[None]:
    """An env's `section` until a run times it: each env marks its physics and its rendering with
    `with self.section("physics"):` and `with self.section("render"):`, and the runner sets `section` to its
    time ledger's (seer_bench.instrument.timing), so envs need not import the instrumentation."""
    return _UNTIMED


class PixelEnv(Protocol):
    """A seeded pixel environment with action repeat and frame stacking (DMC or Atari)."""

    name: str
    discrete: bool  # actions are integers in [0, action_dim) (Atari) or vectors in [-1, 1]^action_dim (DMC)
    obs_shape: tuple[int, int, int]  # (channels per frame * frame_stack, H, W)
    frame_stack: int
    action_dim: int  # number of actions when discrete, else the action vector's length
    episode_steps: int  # agent steps in the longest episode
    # where the env's physics and rendering are timed (`untimed` by default; the runner's time ledger)
    section: Callable[[str], contextlib.AbstractContextManager[None]]

    def reset(self) -> np.ndarray: ...
    def seed_episode(self, seed: int) -> None: ...
    def step(self, action) -> StepResult: ...
    def random_action(self, rng: np.random.Generator): ...
    def close(self) -> None: ...
