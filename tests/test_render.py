"""DMCPixels renders through one reused camera into a framebuffer the size of the frame, where dm_control's
`physics.render` builds a camera per call into the model's 640x480 one; a frame must not change by a
single bit for it. The reference is a plain dm_control env with the same seed, stepped through the same
actions, rendered by dm_control's own `physics.render` (checked at the same physics state)."""

import weakref

import numpy as np
import pytest

from seer_bench.envs import DMC_TASKS, DMCPixels, parse_task
from seer_bench.envs.dmc import suite  # dm_control's, imported after dmc.py sets MUJOCO_GL

CASES = [(task, 100, 0) for task in DMC_TASKS] + [("walker-walk", 84, 1)]  # CURL's view on dmc6, DrQ-v2's


def _assert_frame_is_dm_controls(env: DMCPixels, plain, obs: np.ndarray) -> None:
    np.testing.assert_array_equal(env._env.physics.get_state(), plain.physics.get_state())
    reference = plain.physics.render(env.size, env.size, camera_id=env.camera_id).transpose(2, 0, 1)
    np.testing.assert_array_equal(obs[-3:], reference)


@pytest.mark.parametrize("task,size,camera_id", CASES)
def test_reused_camera_frames_equal_dm_control_render_across_steps_and_resets(task, size, camera_id):
    env = DMCPixels(task, DMC_TASKS[task], seed=5, size=size, camera_id=camera_id)
    plain = suite.load(*parse_task(task), task_kwargs={"random": 5})
    physics = env._env.physics
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second episode renders with the camera built before the first reset
        obs = env.reset()
        plain.reset()
        assert env._env.physics is physics  # a reset keeps the physics the camera was built on
        _assert_frame_is_dm_controls(env, plain, obs)
        for _ in range(3):
            action = rng.integers(-8, 9, env.action_dim) / 8.0  # eighths: DMCPixels' scaling keeps them exact
            obs = env.step(action).obs
            for _ in range(env.action_repeat):
                plain.step(action)
            _assert_frame_is_dm_controls(env, plain, obs)
    env.close()


def test_close_frees_the_gl_context_at_once():
    """dm_env's `close` does nothing; tests and sweeps build many envs in one process, and each env's GL
    context (with its offscreen buffers) must go when it is closed, not whenever the env is collected."""
    for seed in range(3):
        env = DMCPixels("cartpole-swingup", 8, seed=seed)
        env.reset()
        env.step(env.random_action(np.random.default_rng(0)))
        context = weakref.ref(env._env.physics.contexts.gl)
        env.close()
        assert context() is None
