"""Milliseconds per rendered frame on each dmc6 task: dm_control's `physics.render` against seer-bench's.

Three ways to get the same (3, size, size) frame, each with the copy into that layout:

- new camera: `physics.render`, which builds a Camera and its MjvScene per call, into the model's 640x480
  offscreen framebuffer (what seer-bench did before);
- reused camera: one dm_control Camera, kept across frames, same framebuffer;
- seer-bench: the env's frame camera (reused, and a framebuffer the size of the frame).

A plain dm_control env (the first two) and a DMCPixels env with the same seed step through the same
actions; at each state every way renders `--frames` frames in a block, in rotating order so that load
on a shared machine falls on all of them, and the table gives each way's median block. Frames are
checked identical at every state.

    python benchmarks/render_cost.py [--envs cartpole-swingup,...] [--states 6] [--frames 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import numpy as np

from seer_bench.envs import DMC_TASKS, DMCPixels, parse_task
from seer_bench.envs.dmc import Camera, suite  # dm_control's, imported after dmc.py sets MUJOCO_GL

WAYS = ("new camera", "reused camera", "seer-bench")


def exact_action(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random action in eighths, which DMCPixels' scaling to dmc6's [-1, 1] bounds leaves exactly as it is,
    so a plain dm_control env stepped with it reaches the same physics state."""
    return rng.integers(-8, 9, dim) / 8.0


def ms_per_call(render: Callable[[], np.ndarray], frames: int) -> float:
    start = time.perf_counter()
    for _ in range(frames):
        render()
    return (time.perf_counter() - start) / frames * 1e3


def measure(task: str, states: int, frames: int) -> dict[str, float]:
    """Median ms per frame of each way on `task`, over `states` physics states (reset, then one step each)."""
    env = DMCPixels(task, DMC_TASKS[task], seed=0)
    plain = suite.load(*parse_task(task), task_kwargs={"random": 0})
    camera = Camera(plain.physics, height=env.size, width=env.size, camera_id=env.camera_id)
    ways: dict[str, Callable[[], np.ndarray]] = {
        "new camera": lambda: np.ascontiguousarray(
            plain.physics.render(env.size, env.size, camera_id=env.camera_id).transpose(2, 0, 1)
        ),
        "reused camera": lambda: np.ascontiguousarray(camera.render().transpose(2, 0, 1)),
        "seer-bench": env._render,
    }
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    env.reset(), plain.reset()
    rng = np.random.default_rng(0)
    for state in range(states):
        frames_now = [render() for render in ways.values()]
        if not all(np.array_equal(frames_now[0], frame) for frame in frames_now[1:]):
            raise AssertionError(f"{task}: frames differ at state {state}")
        order = WAYS[state % 3 :] + WAYS[: state % 3]
        for way in order:
            times[way].append(ms_per_call(ways[way], frames))
        action = exact_action(rng, env.action_dim)
        env.step(action)
        for _ in range(env.action_repeat):
            plain.step(action)
    env.close()
    return {way: statistics.median(times[way]) for way in WAYS}


def table(results: dict[str, dict[str, float]]) -> str:
    header = f"{'task':<18}" + "".join(f"{way + ' ms':>17}" for way in WAYS) + f"{'speed-up':>10}"
    rows = [
        f"{task:<18}"
        + "".join(f"{ms[way]:>17.2f}" for way in WAYS)
        + f"{ms['new camera'] / ms['seer-bench']:>9.2f}x"
        for task, ms in results.items()
    ]
    return "\n".join([header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default=",".join(DMC_TASKS))
    parser.add_argument("--states", type=int, default=6, help="physics states timed per task")
    parser.add_argument("--frames", type=int, default=10, help="frames per timed block")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    results = {task: measure(task, args.states, args.frames) for task in args.envs.split(",")}
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
