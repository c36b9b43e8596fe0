import subprocess
import sys

import numpy as np
import pytest

from seer_bench.envs import DMC_TASKS, DMCPixels, parse_task


def test_observation_shapes_and_dtypes():
    env = DMCPixels("cartpole-swingup", action_repeat=8, seed=0)
    obs = env.reset()
    assert obs.shape == (9, 100, 100) and obs.dtype == np.uint8
    assert env.obs_shape == (9, 100, 100) and env.action_dim == 1
    assert env.episode_steps == 125  # 1000 env steps / action repeat 8
    res = env.step(np.zeros(1))
    assert res.obs.shape == (9, 100, 100) and res.obs.dtype == np.uint8
    assert isinstance(res.reward, float) and not res.last


def test_reset_repeats_first_frame_and_steps_shift_the_stack():
    env = DMCPixels("cartpole-swingup", action_repeat=8, seed=0)
    obs = env.reset()
    assert np.array_equal(obs[0:3], obs[3:6]) and np.array_equal(obs[3:6], obs[6:9])
    nxt = env.step(np.ones(1)).obs
    assert np.array_equal(nxt[0:6], obs[3:9])
    assert not np.array_equal(nxt[6:9], obs[6:9])


def test_frames_are_exactly_what_mujoco_renders_at_100px_camera_0():
    env = DMCPixels("walker-walk", action_repeat=2, seed=3)
    env.reset()
    obs = env.step(np.full(env.action_dim, 0.3)).obs
    direct = env._env.physics.render(100, 100, camera_id=0).transpose(2, 0, 1)
    assert np.array_equal(obs[6:9], direct)


def test_action_repeat_sums_rewards_of_the_underlying_steps():
    a = DMCPixels("cheetah-run", action_repeat=4, seed=1)
    b = DMCPixels("cheetah-run", action_repeat=1, seed=1)
    a.reset()
    b.reset()
    action = np.linspace(-1, 1, a.action_dim)
    total = a.step(action).reward
    assert total == pytest.approx(sum(b.step(action).reward for _ in range(4)), abs=1e-12)


def test_same_seed_same_frames_and_rewards_different_seed_different_frames():
    def rollout(seed):
        env = DMCPixels("reacher-easy", action_repeat=4, seed=seed)
        frames, rewards = [env.reset()], []
        rng = np.random.default_rng(0)
        for _ in range(5):
            res = env.step(rng.uniform(-1, 1, env.action_dim))
            frames.append(res.obs)
            rewards.append(res.reward)
        return np.stack(frames), rewards

    f1, r1 = rollout(7)
    f2, r2 = rollout(7)
    f3, _ = rollout(8)
    assert np.array_equal(f1, f2) and r1 == r2
    assert not np.array_equal(f1, f3)


def test_episode_ends_after_time_limit():
    env = DMCPixels("cartpole-swingup", action_repeat=8, seed=0)
    env.reset()
    lasts = [env.step(np.zeros(1)).last for _ in range(env.episode_steps)]
    assert lasts[-1] and not any(lasts[:-1])


def test_dmc6_names_parse_and_unknown_names_fail():
    for name in DMC_TASKS:
        parse_task(name)
    with pytest.raises(KeyError, match="cartpole-jump"):
        parse_task("cartpole-jump")


def test_suite_env_options_set_the_rendered_size_camera_and_stack():
    """DrQ-v2 renders 84x84 (no crop); a suite's [env_options] says so, and the frames are what MuJoCo renders
    at that size from that camera."""
    from seer_bench.envs import make_env

    env = make_env(
        "walker-walk", 2, seed=3, train=True, options={"size": 84, "camera_id": 1, "frame_stack": 2}
    )
    obs = env.reset()
    assert obs.shape == env.obs_shape == (6, 84, 84)
    obs = env.step(np.full(env.action_dim, 0.3)).obs
    assert np.array_equal(obs[3:6], env._env.physics.render(84, 84, camera_id=1).transpose(2, 0, 1))
    assert not np.array_equal(obs[3:6], env._env.physics.render(84, 84, camera_id=0).transpose(2, 0, 1))
    default = make_env("walker-walk", 2, seed=3, train=True)
    assert default.obs_shape == (9, 100, 100)  # CURL's and SEER's view


def test_building_cheetah_prints_no_deprecation_a_user_cannot_act_on():
    """dm_control's cheetah XML uses MuJoCo's deprecated settotalmass: no warning on the console."""
    code = "from seer_bench.envs import make_env; make_env('cheetah-run', 4, 0, True).reset()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "settotalmass" not in done.stderr + done.stdout
