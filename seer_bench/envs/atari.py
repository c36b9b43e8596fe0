"""Atari (ALE) from pixels, as data-efficient Rainbow sees it: 4 stacked 84x84 grayscale frames.

The preprocessing is gymnasium's `AtariPreprocessing` (random no-ops at reset, frame skip with a max-pool of
the last two frames, grayscale, 84x84 area resize); this module adds what Kaixhin's Rainbow (the code
SEER's Atari agent builds on) does on top: a zero-padded frame stack, reward clipping and a terminal on
life loss for training envs, and the Atari 100k protocol's defaults (no sticky actions, 108,000-frame cap).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import ale_py
import gymnasium
import numpy as np
from gymnasium.wrappers import AtariPreprocessing

from seer_bench.envs.base import StepResult, untimed
from seer_bench.scores import ATARI_SCORES, human_normalized_score  # noqa: F401 - re-exported

# ale-py 0.12 no longer registers its ids on import; gymnasium 1.x needs this before `gymnasium.make`.
gymnasium.register_envs(ale_py)


# Game name -> gymnasium id, from every registered `ALE/X-v5` id (e.g. "mspacman" -> "ALE/MsPacman-v5").
# Lowercase names without separators are what the reference, Kaixhin's Rainbow and the SEER scripts use.
_GAME_IDS: dict[str, str] = {
    env_id[len("ALE/") : -len("-v5")].lower(): env_id
    for env_id in gymnasium.registry
    if env_id.startswith("ALE/") and env_id.endswith("-v5")
}
ATARI_GAMES: frozenset[str] = frozenset(_GAME_IDS)

_unmapped = set(ATARI_SCORES) - ATARI_GAMES
assert not _unmapped, f"Atari 100k games without an ALE v5 id: {sorted(_unmapped)}"


def parse_game(name: str) -> str:
    """The gymnasium id (`ALE/X-v5`) of a lowercase game name such as `crazyclimber`."""
    try:
        return _GAME_IDS[name]
    except KeyError:
        raise KeyError(f"unknown Atari game {name!r}; known: {', '.join(sorted(ATARI_GAMES))}") from None


@dataclass(frozen=True)
class AtariOptions:
    """Emulator and episode settings; the defaults are the Atari 100k protocol as
    data-efficient Rainbow runs it."""

    # Sticky actions off: Atari 100k (and Kaixhin's Rainbow) use the deterministic emulator, with the random
    # no-ops at reset as the only source of start-state diversity (Machado et al.'s 0.25 is gymnasium's
    # default, the "v5" protocol).
    repeat_action_probability: float = 0.0
    # Up to this many no-op frames (uniform in 1..noop_max, drawn by the seeded env) after each full reset.
    noop_max: int = 30
    # Episode cap in emulator frames (30 minutes of play at 60 Hz): reaching it truncates the episode, it
    # does not terminate it.
    max_episode_frames: int = 108_000
    # Training envs only: a lost life ends the episode for the agent (terminal, no bootstrap), not the game.
    terminal_on_life_loss: bool = True
    # Training envs only: rewards clipped to [-reward_clip, reward_clip], so one learning rate and the C51
    # support [-10, 10] fit every game; 0 disables. Evaluation always reports the raw game score.
    reward_clip: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.repeat_action_probability <= 1.0:
            raise ValueError(
                f"repeat_action_probability must be in [0, 1], got {self.repeat_action_probability}"
            )
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {self.noop_max}")
        if self.max_episode_frames <= 0:
            raise ValueError(f"max_episode_frames must be > 0, got {self.max_episode_frames}")
        if self.reward_clip < 0:
            raise ValueError(f"reward_clip must be >= 0 (0 disables clipping), got {self.reward_clip}")


class AtariEnv:
    """An ALE game with frame skip, 4 stacked 84x84 grayscale frames (newest last) and a minimal action set.

    A training env (`train=True`) clips rewards and, by default, ends the agent's episode on every lost life;
    an evaluation env reports raw rewards and one episode per game, so its return is the game score.
    """

    discrete = True
    frame_stack = 4
    # the runner's time ledger sets its own (envs.base.untimed); everything here is `physics`: the emulator
    # draws the screen as it runs, and gymnasium's wrapper max-pools and resizes it inside its `step`
    section = staticmethod(untimed)

    def __init__(
        self,
        game: str,
        frame_skip: int,
        seed: int,
        train: bool,
        options: AtariOptions = AtariOptions(),
    ) -> None:
        env_id = parse_game(game)
        if frame_skip <= 0:
            raise ValueError(f"frame_skip must be > 0, got {frame_skip}")
        self.name = game
        self.frame_skip = frame_skip
        self.train = train
        self.options = options
        # gymnasium's v5 registration has no TimeLimit (max_episode_steps=None); the only cap is ALE's own
        # frame counter, which reports truncation, counts the reset no-ops too, and is reset only when the
        # whole game is.
        self._env = AtariPreprocessing(
            gymnasium.make(
                env_id,
                frameskip=1,  # AtariPreprocessing skips (and max-pools), so the emulator must not
                repeat_action_probability=options.repeat_action_probability,
                full_action_space=False,
                max_num_frames_per_episode=options.max_episode_frames,
            ),
            noop_max=options.noop_max,
            frame_skip=frame_skip,
            screen_size=84,
            grayscale_obs=True,
            terminal_on_life_loss=False,  # done here instead, so a life loss need not reset the game
            scale_obs=False,
        )
        self._ale = self._env.unwrapped.ale
        self.action_dim = int(self._env.action_space.n)
        self.obs_shape = (self.frame_stack, 84, 84)
        # The last agent step of a capped episode may be cut short, so round up.
        self.episode_steps = -(-options.max_episode_frames // frame_skip)
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        self._seed: int | None = seed  # used once: later resets continue the seeded random stream
        self._lives = 0
        self._life_lost = False  # the last episode ended on a life loss and the game goes on

    def _stacked(self) -> np.ndarray:
        return np.stack(self._frames, axis=0)

    def _full_reset(self) -> np.ndarray:
        frame, _ = self._env.reset(seed=self._seed)
        self._seed = None
        # Zero padding, as Kaixhin's Rainbow: the first state shows one frame and no invented motion, and it
        # cannot be confused with a state from the middle of a game.
        for _ in range(self.frame_stack - 1):
            self._frames.append(np.zeros_like(frame))
        self._frames.append(frame)
        self._lives = self._ale.lives()
        return self._stacked()

    def reset(self) -> np.ndarray:
        with self.section("physics"):
            return self._reset()

    def _reset(self) -> np.ndarray:
        """Start the next episode: a new game, or after a training life loss, the same game one no-op on.

        Resetting the game on every lost life would make the agent see only the first life's stages; instead,
        as Kaixhin's Rainbow and baselines' EpisodicLifeEnv do, the game continues and the stack keeps its
        frames. The no-op (one agent step, reward discarded) moves past the frame the life was lost on.
        """
        if not self._life_lost:
            return self._full_reset()
        self._life_lost = False
        frame, _, terminated, truncated, _ = self._env.step(0)
        if terminated or truncated:
            return self._full_reset()
        self._frames.append(frame)
        self._lives = self._ale.lives()
        return self._stacked()

    def seed_episode(self, seed: int) -> None:
        """Start a new game at the next reset, its emulator and no-ops seeded with `seed` (see
        DMCPixels.seed_episode)."""
        self._seed, self._life_lost = seed, False

    def step(self, action: int) -> StepResult:
        with self.section("physics"):
            frame, reward, terminated, truncated, _ = self._env.step(int(action))
        self._frames.append(frame)
        reward = float(reward)
        terminal, last = bool(terminated), bool(terminated or truncated)
        if self.train:
            clip = self.options.reward_clip
            if clip > 0:
                reward = max(-clip, min(clip, reward))
            lives = self._ale.lives()
            if self.options.terminal_on_life_loss and not last and lives < self._lives:
                terminal = last = self._life_lost = True
            self._lives = lives
        return StepResult(self._stacked(), reward, terminal, last)

    def random_action(self, rng: np.random.Generator) -> int:
        """Uniform over the game's minimal action set, as Rainbow's initial exploration."""
        return int(rng.integers(self.action_dim))

    def close(self) -> None:
        self._env.close()
