"""Evaluation in worker processes (--eval-workers): the same returns as one episode after another, to the
bit, on real dm_control and ALE envs with real agents; no worker outlives its run, however it ends."""

import signal
import subprocess

import numpy as np
import psutil
import pytest
import torch
from conftest import short_spec, start_process, wait_while_running

from seer_bench.agents import agent_config, make_agent
from seer_bench.cli import main
from seer_bench.envs.workers import EnvRecipe
from seer_bench.evaluation import Evaluator, episode_seeds
from seer_bench.runner import RunOptions, Workspace

DMC = EnvRecipe("cartpole-swingup", 100, 0, False, {"size": 64})  # episodes of 10 agent steps
SMALL = {"hidden_dim": 64, "image_size": 56}
ATARI = EnvRecipe("alien", 4, 0, False, {"max_episode_frames": 160})  # episodes of 40 agent steps


def env_workers() -> list[psutil.Process]:
    """This process's evaluation workers (multiprocessing's own resource tracker is not one)."""
    return [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def agent_for(recipe: EnvRecipe, name: str, **overrides):
    env = recipe.build()
    try:
        cfg = agent_config(name, overrides)
        return make_agent(name, cfg, env.obs_shape, env.action_dim, torch.device("cpu"), 0)
    finally:
        env.close()


def returns(recipe: EnvRecipe, agent, workers: tuple[int, ...], episodes: int) -> list[tuple[float, float]]:
    out = []
    for n in workers:
        evaluator = Evaluator(recipe, n)
        try:
            out.append(evaluator.evaluate(agent, seed=5, episodes=episodes, step=40))
        finally:
            evaluator.close()
    return out


def test_episode_seeds_depend_on_the_run_seed_the_step_and_the_index_only():
    a, b = episode_seeds(5, 40, 3), episode_seeds(5, 40, 4)
    assert [s.env_seed for s in a] == [s.env_seed for s in b[:3]]
    assert len({s.env_seed for s in b}) == 4
    assert a[0].env_seed not in {s.env_seed for s in episode_seeds(5, 41, 3) + episode_seeds(6, 40, 3)}
    assert a[2].rng.random() == b[2].rng.random()


@pytest.mark.parametrize("name, size", [("curl", 100), ("drqv2", 84)])
def test_act_batch_is_act_bitwise_at_every_batch_size(name, size):
    cfg = agent_config(name, {"hidden_dim": 64})
    agent = make_agent(name, cfg, (9, size, size), 6, torch.device("cpu"), 0)
    obs = np.random.default_rng(0).integers(0, 256, (5, 9, size, size), dtype=np.uint8)
    one = np.stack([agent.act(o, 0, eval_mode=True) for o in obs])
    for k in (2, 3, 5):
        np.testing.assert_array_equal(agent.act_batch(obs[:k], 0, [None] * k), one[:k])


def test_dmc_returns_in_two_and_three_workers_equal_the_sequential_ones_exactly():
    agent = agent_for(DMC, "curl", **SMALL)
    sequential, two, three = returns(DMC, agent, (0, 2, 3), episodes=4)  # 3 workers: one plays two episodes
    assert sequential == two == three
    assert sequential[1] > 0  # different episodes: the seeds differ


def test_atari_returns_with_eval_epsilon_in_workers_equal_the_sequential_ones_exactly():
    agent = agent_for(ATARI, "der", eval_epsilon=0.5)  # half the actions drawn from the episodes' streams
    sequential, two = returns(ATARI, agent, (0, 2), episodes=3)
    assert sequential == two and sequential[0] > 0
    assert not env_workers()


def run_with_workers(tmp_path, fail: bool = False) -> list[int]:
    ws = Workspace(short_spec("curl", eval_episodes=2), tmp_path, RunOptions(eval_workers=2))
    pids = [w.process.pid for w in ws.evaluator.parallel.workers]
    if fail:
        ws.agent.update = lambda replay, step: 1 / 0
    try:
        ws.train()
    except ZeroDivisionError:
        assert fail
    return pids


@pytest.mark.parametrize("fail", [False, True])
def test_workers_are_gone_after_a_run_and_after_a_failed_run(tmp_path, fail):
    pids = run_with_workers(tmp_path, fail)
    assert len(pids) == 2 and not any(psutil.pid_exists(p) for p in pids)
    assert not env_workers()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_are_gone_after_the_run_is_signalled(tmp_path, sig):
    proc = start_process(
        *(
            "bench.py",
            "--suite",
            "dmc6",
            "--scale",
            "quick",
            "--envs",
            "cartpole-swingup",
            "--agents",
            "curl",
        ),
        *("--steps", "16000", "--eval-every", "8000", "--eval-workers", "2", "--out", str(tmp_path)),
        stderr=subprocess.PIPE,
    )
    main_process = psutil.Process(proc.pid)

    def workers() -> list[psutil.Process]:
        found = main_process.children(recursive=True)
        return [p for p in found if "spawn_main" in " ".join(p.cmdline())]

    # each worker past its start (0.9 to 1.5 s of CPU) and dozens of steps into play, so the run is past
    # its own env's first render: a signal inside dm_control's EGL context creation leaves a half-made
    # context whose atexit cleanup prints a traceback (with or without evaluation workers)
    def evaluating() -> bool:
        found = workers()
        return len(found) == 2 and all(sum(p.cpu_times()[:2]) > 3.0 for p in found)

    wait_while_running(proc, evaluating, timeout_s=120)
    started = workers()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"evaluation workers outlived the run: {alive}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in err, err


def test_a_negative_eval_workers_is_one_line_and_exit_2(capsys, tmp_path):
    argv = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"]
    assert main([*argv, "--eval-workers", "-1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--eval-workers must be >= 0" in err and err.count("\n") == 1
