"""What a checkpoint costs at full scale: file size, save and load time for an agent with a full replay.

Builds the agent of a suite's run (default: dmc6 `curl` on cartpole-swingup at 0.6 GB, the paper
setting), fills its pixel replay to capacity with random frames, updates once per step of the update
period (so every optimizer holds its state), then times `checkpoint.save` (temp file,
fsync, rename) and a load into a fresh agent and replay, as a resumed run does. Prints one table.

    python benchmarks/checkpoint_cost.py [--suite dmc6] [--env cartpole-swingup] [--agent curl] [--budget-gb
    0.6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seer_bench import checkpoint
from seer_bench.agents import AGENTS, agent_config, make_agent
from seer_bench.envs import KNOWN_ENVS
from seer_bench.replay import make_replay
from seer_bench.runner import build_env, transition_spec
from seer_bench.suites import Overrides, load_suite, resolve


def fill(replay, rng: np.random.Generator, action_dim: int) -> None:
    spec = replay.spec
    while len(replay) < replay.capacity:
        obs = rng.integers(0, 256, spec.obs_shape, dtype=np.uint8)
        replay.add(
            obs,
            rng.uniform(-1, 1, action_dim).astype(np.float32),
            0.0,
            obs,
            False,
            len(replay) % spec.episode_steps == spec.episode_steps - 1,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="dmc6")
    parser.add_argument("--env", default="cartpole-swingup")
    parser.add_argument("--agent", default="curl")
    parser.add_argument("--budget-gb", type=float, default=0.6)
    args = parser.parse_args()
    spec = resolve(
        load_suite(args.suite),
        Overrides(scale="paper", envs=[args.env], agents=[args.agent], budgets_gb=[args.budget_gb], seeds=1),
        AGENTS,
        KNOWN_ENVS,
    )[0]
    cfg = agent_config(spec.agent, spec.agent_overrides)
    env = build_env(spec, 0)

    def build():
        return (
            make_agent(spec.agent, cfg, env.obs_shape, env.action_dim, torch.device("cpu"), 0),
            make_replay(spec.replay_layout, transition_spec(env), spec.budget_bytes, cfg.batch_size),
        )

    agent, replay = build()
    start = time.perf_counter()
    fill(replay, np.random.default_rng(0), env.action_dim)
    filled = time.perf_counter() - start
    for step in range(agent.update_period):  # optimizer state exists once every optimizer has stepped
        agent.update(replay, step)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        path = Path(tmp)
        start = time.perf_counter()
        checkpoint.save(path, {"agent": checkpoint.object_state(agent), "replay": replay.state_dict()})
        saved = time.perf_counter() - start
        size = (path / checkpoint.FILE).stat().st_size
        twin, twin_replay = build()
        start = time.perf_counter()
        state = checkpoint.load(path)
        checkpoint.load_object_state(twin, state["agent"])
        twin_replay.load_state_dict(state["replay"])
        del state
        loaded = time.perf_counter() - start
    idx = np.arange(replay.tail, replay.head)
    same = all(
        np.array_equal(a, b) for a, b in zip(replay.scalars(idx).values(), twin_replay.scalars(idx).values())
    )
    print(
        f"{spec.run_id}: {replay.layout} replay of {len(replay):,} transitions, "
        f"{replay.resident_bytes / 1e9:.3f} GB "
        f"(filled in {filled:.1f} s)"
    )
    print(
        f"{'checkpoint file':<22} {size / 1e9:8.3f} GB  ({(size - replay.resident_bytes) / 1e6:.0f} MB "
        f"besides the replay)"
    )
    print(f"{'save (write, fsync)':<22} {saved:8.2f} s   {size / 1e6 / saved:6.0f} MB/s")
    print(f"{'load into a new run':<22} {loaded:8.2f} s   {size / 1e6 / loaded:6.0f} MB/s")
    print(f"restored replay equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
