import math

import gymnasium
import numpy as np
import pytest

from seer_bench.envs.atari import (
    ATARI_GAMES,
    ATARI_SCORES,
    AtariEnv,
    AtariOptions,
    human_normalized_score,
    parse_game,
)

FIRE = 1  # breakout's minimal action set: NOOP, FIRE, RIGHT, LEFT


def padded(obs: np.ndarray) -> list[bool]:
    """Which of the stacked frames are all zeros."""
    return [not obs[i].any() for i in range(obs.shape[0])]


@pytest.mark.parametrize("game, actions", [("alien", 18), ("pong", 6)])
def test_shapes_dtype_action_dim_and_zero_padded_first_stack(game, actions):
    env = AtariEnv(game, frame_skip=4, seed=0, train=True)
    assert env.discrete and env.frame_stack == 4 and env.obs_shape == (4, 84, 84)
    assert env.action_dim == actions and env.episode_steps == 27_000
    obs = env.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert padded(obs) == [True, True, True, False]
    res = env.step(0)
    assert res.obs.shape == (4, 84, 84) and res.obs.dtype == np.uint8
    assert isinstance(res.reward, float) and not res.last
    assert np.array_equal(res.obs[:3], obs[1:])  # newest frame last, the stack shifts by one
    env.close()


def test_random_action_covers_the_minimal_action_set():
    env = AtariEnv("pong", frame_skip=4, seed=0, train=False)
    rng = np.random.default_rng(0)
    seen = {env.random_action(rng) for _ in range(200)}
    assert seen == set(range(6)) and all(isinstance(a, int) for a in seen)
    env.close()


def rollout(game: str, seed: int, steps: int, train: bool = True, action_seed: int = 0):
    """Observations and rewards of random play, resetting at every episode end; also
    (life, full) reset counts."""
    env = AtariEnv(game, frame_skip=4, seed=seed, train=train)
    rng = np.random.default_rng(action_seed)
    obs, rewards, resets = [env.reset()], [], [0, 0]
    for _ in range(steps):
        res = env.step(env.random_action(rng))
        obs.append(res.obs)
        rewards.append(res.reward)
        if res.last:
            obs.append(env.reset())
            resets[padded(obs[-1])[0]] += 1  # a full reset zero-pads the stack
    env.close()
    return obs, rewards, resets


# Random alien play loses a life within ~200 steps; random breakout play loses lives and a whole game in 300.
@pytest.mark.parametrize("game, life_resets, full_resets", [("alien", 1, 0), ("breakout", 1, 1)])
def test_same_seed_same_actions_identical(game, life_resets, full_resets):
    a_obs, a_rew, resets = rollout(game, seed=3, steps=300)
    b_obs, b_rew, _ = rollout(game, seed=3, steps=300)
    assert resets[0] >= life_resets and resets[1] >= full_resets, resets
    assert a_rew == b_rew and len(a_obs) == len(b_obs)
    assert all(np.array_equal(x, y) for x, y in zip(a_obs, b_obs))


def test_other_seed_differs():
    # Seeds differ through the number of reset no-ops. Not in every game: breakout waits for FIRE on a still
    # screen, and several seeds there give identical rollouts.
    a_obs, _, _ = rollout("alien", seed=3, steps=100)
    c_obs, _, _ = rollout("alien", seed=4, steps=100)
    assert any(not np.array_equal(x, y) for x, y in zip(a_obs, c_obs))


def test_train_clips_and_ends_on_life_loss_while_eval_plays_on():
    train = AtariEnv("alien", frame_skip=4, seed=0, train=True)
    evaluation = AtariEnv("alien", frame_skip=4, seed=0, train=False)
    t_obs, e_obs = train.reset(), evaluation.reset()
    assert np.array_equal(t_obs, e_obs)
    rng = np.random.default_rng(0)
    lives = train._ale.lives()
    raw_rewards = []
    for _ in range(400):
        action = train.random_action(rng)
        t, e = train.step(action), evaluation.step(action)
        raw_rewards.append(e.reward)
        assert t.reward == float(np.clip(e.reward, -1.0, 1.0))
        if t.terminal:
            break
    else:
        pytest.fail("no life lost in 400 random alien steps")
    assert any(r > 1.0 for r in raw_rewards)  # alien scores in tens, so clipping did something
    assert t.last and train._ale.lives() == lives - 1
    assert not e.terminal and not e.last and evaluation._ale.lives() == lives - 1
    # The train env's next episode continues the same game: one life fewer, frames carried over, no padding.
    obs = train.reset()
    assert train._ale.lives() == lives - 1
    assert padded(obs) == [False] * 4 and np.array_equal(obs[:3], t.obs[1:])
    assert not train.step(0).last
    train.close()
    evaluation.close()


def test_eval_episode_is_a_whole_game():
    env = AtariEnv("breakout", frame_skip=4, seed=0, train=False)
    env.reset()
    lives = env._ale.lives()
    for steps in range(1, 1000):
        res = env.step(FIRE)  # serve at once, never move: every ball is lost
        if res.last:
            break
    assert res.terminal and env._ale.lives() == 0 and steps > lives * 10
    assert padded(env.reset()) == [True, True, True, False] and env._ale.lives() == lives
    env.close()


@pytest.mark.parametrize("noop_max", [0, 30])
def test_episode_cap_truncates_after_max_frames(noop_max):
    frames, skip = 202, 4
    env = AtariEnv(
        "pong", skip, seed=0, train=True, options=AtariOptions(noop_max=noop_max, max_episode_frames=frames)
    )
    assert env.episode_steps == math.ceil(frames / skip)
    env.reset()
    # ALE counts the reset no-ops against the cap, so those episodes are shorter.
    expected = math.ceil((frames - env._ale.getEpisodeFrameNumber()) / skip)
    for steps in range(1, 200):
        res = env.step(0)
        if res.last:
            break
    assert res.last and not res.terminal
    assert abs(steps - expected) <= 1
    if noop_max == 0:
        assert steps == env.episode_steps
    assert padded(env.reset()) == [True, True, True, False]  # truncation starts a new game
    env.close()


def test_no_time_limit_wrapper_beyond_the_frame_cap():
    env = AtariEnv("alien", frame_skip=4, seed=0, train=True)
    wrapped = env._env
    while isinstance(wrapped, gymnasium.Wrapper):
        assert not isinstance(wrapped, gymnasium.wrappers.TimeLimit)
        wrapped = wrapped.env
    assert env._ale.getInt("max_num_frames_per_episode") == 108_000
    env.close()


def test_default_options_are_the_atari_100k_protocol():
    opts = AtariOptions()
    assert opts.repeat_action_probability == 0.0 and opts.noop_max == 30
    assert opts.max_episode_frames == 108_000 and opts.terminal_on_life_loss and opts.reward_clip == 1.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("repeat_action_probability", -0.1),
        ("repeat_action_probability", 1.5),
        ("noop_max", -1),
        ("max_episode_frames", 0),
        ("reward_clip", -1.0),
    ],
)
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AtariOptions(**{field: value})


def test_game_names():
    assert set(ATARI_SCORES) <= ATARI_GAMES and len(ATARI_SCORES) == 26
    assert parse_game("mspacman") == "ALE/MsPacman-v5"
    assert parse_game("upndown") == "ALE/UpNDown-v5"
    assert parse_game("kungfumaster") == "ALE/KungFuMaster-v5"
    with pytest.raises(KeyError, match="pacmann"):
        parse_game("pacmann")
    with pytest.raises(KeyError, match="Ms-Pacman"):
        AtariEnv("Ms-Pacman", frame_skip=4, seed=0, train=True)


@pytest.mark.parametrize("game", ["alien", "pong", "freeway", "privateeye", "crazyclimber"])
def test_human_normalized_score(game):
    random, human = ATARI_SCORES[game]
    assert human_normalized_score(game, random) == pytest.approx(0.0, abs=1e-12)
    assert human_normalized_score(game, human) == pytest.approx(1.0)
    assert human_normalized_score(game, (random + human) / 2) == pytest.approx(0.5)
    assert human_normalized_score(game, random + 2 * (human - random)) == pytest.approx(2.0)


def test_human_normalized_score_values_and_unknown_game():
    assert ATARI_SCORES["pong"] == (-20.7, 14.6) and ATARI_SCORES["alien"] == (227.8, 7127.7)
    assert human_normalized_score("alien", 1172.6) == pytest.approx((1172.6 - 227.8) / (7127.7 - 227.8))
    with pytest.raises(KeyError, match="tetris"):
        human_normalized_score("tetris", 1.0)


def test_sticky_actions_reach_the_emulator():
    for p in (0.0, 0.25):
        env = AtariEnv("alien", 4, seed=0, train=True, options=AtariOptions(repeat_action_probability=p))
        assert env._ale.getFloat("repeat_action_probability") == pytest.approx(p)
        env.close()
