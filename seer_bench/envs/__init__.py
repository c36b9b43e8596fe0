"""Environments with pixel observations, seeded and headless: DeepMind Control tasks (`domain-task`) and
Atari games (lowercase ALE names). `make_env` builds either from its name."""

from __future__ import annotations

from typing import Any

from seer_bench.envs.atari import ATARI_GAMES, ATARI_SCORES, AtariEnv, AtariOptions, human_normalized_score
from seer_bench.envs.base import PixelEnv, StepResult
from seer_bench.envs.dmc import DMC_TASKS, KNOWN_TASKS, DMCOptions, DMCPixels, parse_task
from seer_bench.errors import config_from

KNOWN_ENVS: frozenset[str] = KNOWN_TASKS | ATARI_GAMES

__all__ = [
    "ATARI_GAMES",
    "ATARI_SCORES",
    "DMC_TASKS",
    "KNOWN_ENVS",
    "KNOWN_TASKS",
    "AtariEnv",
    "AtariOptions",
    "DMCOptions",
    "DMCPixels",
    "PixelEnv",
    "StepResult",
    "env_options",
    "make_env",
    "normalized_score",
    "parse_task",
]


def env_options(name: str, options: dict[str, Any], where: str = "env_options") -> AtariOptions | DMCOptions:
    """The validated options of env `name`: Atari preprocessing settings, or DeepMind Control rendering (size,
    camera, frame stack). Errors name `where` (the suite file and key) and the offending key or value."""
    if name in ATARI_GAMES:
        return config_from(AtariOptions, options, where, noun="Atari option")
    return config_from(DMCOptions, options, where, noun="DeepMind Control option")


def make_env(
    name: str, action_repeat: int, seed: int, train: bool, options: dict[str, Any] | None = None
) -> PixelEnv:
    """Env `name` with `action_repeat` (Atari: the frame skip). `train` selects the training protocol where it
    differs from evaluation (Atari: clipped rewards, a life lost ends an episode); DMC ignores it."""
    opts = env_options(name, options or {})
    if isinstance(opts, AtariOptions):
        return AtariEnv(name, action_repeat, seed, train, opts)
    return DMCPixels(
        name, action_repeat, seed, frame_stack=opts.frame_stack, size=opts.size, camera_id=opts.camera_id
    )


def normalized_score(name: str, score: float) -> float | None:
    """Human-normalized score for Atari games with a random/human reference, None otherwise."""
    return human_normalized_score(name, score) if name in ATARI_SCORES else None
