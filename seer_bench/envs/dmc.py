"""DeepMind Control from pixels, as CURL sees it: 3 stacked RGB frames at 100x100 from camera 0.

Cropping to 84x84 belongs to the agent (random at training, centre at evaluation), so the replay keeps the
full 100x100 frames, exactly as the public CURL/SEER code does.

Rendering uses MuJoCo's default quality. A smaller shadow map renders faster, but at 100x100 it changes
pixels on every dmc6 task (measured: max abs difference 36-78), so it is not used. Two cuts change no pixel
(tested bit for bit against dm_control's own `physics.render` on every dmc6 task, across resets): one
dm_control `Camera` per env, reused for every frame, where `physics.render` builds a new one per call (its
MjvScene alone about 2 ms here), and an offscreen framebuffer the frame's size instead of the model's
640x480 (the frame is drawn in its corner either way; a smaller buffer costs less on software GL).
Together they make a frame 1.12-1.38x faster on the dmc6 tasks on a shared 2-core CPU
(`benchmarks/render_cost.py`; the table is in docs/internals.md).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass

import numpy as np

# Must be set before dm_control (and so MuJoCo's GL backend) is first imported: headless by default.
os.environ.setdefault("MUJOCO_GL", "egl")

from dm_control import suite  # noqa: E402
from dm_control.mujoco.engine import Camera, Physics  # noqa: E402

from seer_bench.envs.base import StepResult, untimed  # noqa: E402


class _QuietDeprecations(logging.Filter):
    """dm_control's own task XML (cheetah, for one) uses MuJoCo's deprecated `settotalmass`: each
    env built logs a warning that no user can act on, once per env and evaluation worker, on the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'settotalmass' is deprecated" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietDeprecations())

# The six PlaNet-benchmark tasks and the action repeats used by PlaNet, CURL and SEER.
DMC_TASKS: dict[str, int] = {
    "cartpole-swingup": 8,
    "finger-spin": 2,
    "walker-walk": 2,
    "cheetah-run": 4,
    "reacher-easy": 4,
    "ball_in_cup-catch": 4,
}

# Every `domain-task` dm_control ships, for error messages that tell a typo from a task outside a suite.
KNOWN_TASKS: frozenset[str] = frozenset(f"{d}-{t}" for d, t in suite.ALL_TASKS)


@dataclass(frozen=True)
class DMCOptions:
    """How a DeepMind Control task is seen (a suite's `[env_options]`); the defaults are CURL's and SEER's."""

    size: int = 100  # rendered frame side in pixels (CURL/SEER: 100, cropped to 84 by the agent; DrQ-v2: 84)
    camera_id: int = 0
    frame_stack: int = 3  # frames stacked per observation

    def __post_init__(self) -> None:
        for name in ("size", "frame_stack"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.camera_id < 0:
            raise ValueError(f"camera_id must be >= 0, got {self.camera_id}")


def frame_camera(physics: Physics, size: int, camera_id: int) -> Camera:
    """A camera that renders `size`x`size` frames from `physics`, to be reused for all of its frames.

    The offscreen framebuffer is shrunk to the frame before the GL context exists (dm_control builds it on
    the first render), so frames larger than `size` can no longer be rendered from this physics. The camera
    holds no state between frames that `render` does not rebuild (it updates its scene from the physics
    each call), and dm_control's Environment keeps one Physics for its life (a reset sets its state in
    place), so the camera stays valid across steps and resets.
    """
    framebuffer = physics.model.vis.global_
    framebuffer.offwidth = min(framebuffer.offwidth, size)
    framebuffer.offheight = min(framebuffer.offheight, size)
    return Camera(physics, height=size, width=size, camera_id=camera_id)


def parse_task(name: str) -> tuple[str, str]:
    """Split `domain-task` (e.g. `ball_in_cup-catch`) into dm_control's domain and task names."""
    domain, sep, task = name.partition("-")
    if not sep or (domain, task) not in suite.ALL_TASKS:
        known = ", ".join(sorted(KNOWN_TASKS))
        raise KeyError(f"unknown DeepMind Control task {name!r}; known: {known}")
    return domain, task


class DMCPixels:
    """A dm_control task with action repeat and frame stacking; actions are in [-1, 1] for every dimension."""

    discrete = False
    section = staticmethod(untimed)  # the runner's time ledger sets its own (envs.base.untimed)

    def __init__(
        self,
        name: str,
        action_repeat: int,
        seed: int,
        frame_stack: int = 3,
        size: int = 100,
        camera_id: int = 0,
    ) -> None:
        domain, task = parse_task(name)
        self.name = name
        self.action_repeat = action_repeat
        self.size = size
        self.camera_id = camera_id
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self._camera = frame_camera(self._env.physics, size, camera_id)
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self.frame_stack = frame_stack
        self.obs_shape = (3 * frame_stack, size, size)
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        # dm_control's time limit is in physics-control steps; an agent step spans `action_repeat` of them.
        # `_step_limit` is the Environment's own record of that limit (1000 for every suite task).
        self.episode_env_steps = int(self._env._step_limit)
        self.episode_steps = -(-self.episode_env_steps // action_repeat)

    def _render(self) -> np.ndarray:
        """The current frame, (3, size, size), in an array of its own: the camera returns a view of its pixel
        buffer, which its next render overwrites."""
        return np.ascontiguousarray(self._camera.render().transpose(2, 0, 1))

    def _stacked(self) -> np.ndarray:
        return np.concatenate(self._frames, axis=0)

    def reset(self) -> np.ndarray:
        with self.section("physics"):
            self._env.reset()
        with self.section("render"):
            frame = self._render()
        for _ in range(self._frames.maxlen):
            self._frames.append(frame)
        return self._stacked()

    def seed_episode(self, seed: int) -> None:
        """Draw the next episode (and those after it) from `seed`: the task's random state is all an
        episode's start depends on (reset restores the physics), so an evaluation episode is the same in any
        process (evaluation.episode_seeds)."""
        self._env.task._random = np.random.RandomState(seed)

    def step(self, action: np.ndarray) -> StepResult:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        reward, terminal, last = 0.0, False, False
        with self.section("physics"):
            for _ in range(self.action_repeat):
                ts = self._env.step(scaled)
                reward += ts.reward or 0.0
                if ts.last():
                    last = True
                    terminal = ts.discount == 0.0
                    break
        with self.section("render"):
            self._frames.append(self._render())
        return StepResult(self._stacked(), reward, terminal, last)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform in [-1, 1] per dimension, as CURL's initial exploration."""
        return rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)

    def close(self) -> None:
        """Free the physics and its GL context now: dm_env's `close` is a no-op, which left the context alive
        until the env was garbage collected."""
        self._env.close()
        self._env.physics.free()
