"""What every environment hands the runner: one step's result, and the interface both env kinds share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StepResult:
    obs: np.ndarray  # uint8 (C, H, W): the stacked frames after the step
    reward: float  # summed over the action repeat (clipped when the env trains an Atari agent)
    terminal: bool  # the MDP ended (discount 0): do not bootstrap
    last: bool  # the episode ended, by termination or time limit


class PixelEnv(Protocol):
    """A seeded pixel environment with action repeat and frame stacking (DMC or Atari)."""

    name: str
    discrete: bool  # actions are integers in [0, action_dim) (Atari) or vectors in [-1, 1]^action_dim (DMC)
    obs_shape: tuple[int, int, int]  # (channels per frame * frame_stack, H, W)
    frame_stack: int
    action_dim: int  # number of actions when discrete, else the action vector's length
    episode_steps: int  # agent steps in the longest episode

    def reset(self) -> np.ndarray: ...
    def seed_episode(self, seed: int) -> None: ...
    def step(self, action) -> StepResult: ...
    def random_action(self, rng: np.random.Generator): ...
    def close(self) -> None: ...
