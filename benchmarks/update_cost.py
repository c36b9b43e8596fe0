"""Wall time and FLOPs of one update of each DMC agent at its own shapes and batch, before T_f (pixels) and
after (SEER's `fc` latents): what sizing a run on this machine needs (the quick scale of dmc6_drqv2 was sized
from it).

curl: cartpole-swingup, 9x100x100 pixels cropped to 84, batch 128 (the public SEER scripts). drqv2: 9x84x84
pixels shifted by up to 4, batch 256 (the public DrQ-v2 config) and 128 (dmc6_drqv2's quick scale). Each
agent's updates run on a small replay of random pixels in one long episode (an update's cost does not depend
on what they show), `--updates` timed after two warm-up updates of each step parity; FLOPs are the FLOP
ledger's (fvcore convention, 1 multiply-add = 1 FLOP), mean over the update's period.

    python benchmarks/update_cost.py [--updates 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seer_bench.agents import agent_config, make_agent
from seer_bench.agents.contract import networks
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.instrument.flops import FlopLedger
from seer_bench.replay import PaperReplay, TransitionSpec


@dataclass(frozen=True)
class Case:
    agent: str
    obs_shape: tuple[int, int, int]
    batch_size: int


CASES = (
    Case("curl", (9, 100, 100), 128),
    Case("drqv2", (9, 84, 84), 256),
    Case("drqv2", (9, 84, 84), 128),
)


def random_replay(spec: TransitionSpec, n: int) -> PaperReplay:
    rng = np.random.default_rng(0)
    replay = PaperReplay(spec, n)
    for t in range(n):
        obs, nxt = (rng.integers(0, 256, spec.obs_shape, dtype=np.uint8) for _ in range(2))
        replay.add(obs, rng.uniform(-1, 1, spec.action_dim), 0.0, nxt, terminal=False, last=t == n - 1)
    return replay


def timed(agent: Any, replay: Any, updates: int) -> tuple[float, float]:
    """(median seconds, mean ledger FLOPs) of one update, after warm-up updates of each step parity."""
    ledger, period = FlopLedger(networks(agent)), agent.update_period
    flops = sum(ledger.measure(agent.update, replay, s)[1] for s in range(period)) / period
    for step in range(2 * period):
        agent.update(replay, step)
    seconds = []
    for step in range(updates):
        start = time.perf_counter()
        agent.update(replay, step)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), flops


def measure(case: Case, updates: int) -> list[tuple[str, float, float]]:
    """Rows (phase, seconds, FLOPs) for pixels, then fc latents after a real freeze."""
    cfg = agent_config(case.agent, {"batch_size": case.batch_size})
    spec = TransitionSpec(case.obs_shape, action_dim=1, frame_stack=3, episode_steps=10**6)
    replay = random_replay(spec, case.batch_size + 16)
    agent = make_agent(case.agent, cfg, case.obs_shape, 1, torch.device("cpu"), 0)
    rows = [("pixels", *timed(agent, replay, updates))]
    seer = Seer(SeerConfig(freeze_at=1), 10**10, 0, case.batch_size, "paper", spec, 10**6)
    latents, _ = seer.freeze(agent, replay, step=0)
    rows.append(("latents", *timed(agent, latents, updates)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.updates} updates")
    print(f"{'agent':<7} {'obs':<10} {'batch':>5} {'phase':<8} {'ms/update':>10} {'GFLOP':>8} {'GFLOP/s':>8}")
    base = None
    for case in CASES:
        for phase, seconds, flops in measure(case, args.updates):
            base = base or seconds  # curl's pixel update
            shape = "x".join(map(str, case.obs_shape))
            print(
                f"{case.agent:<7} {shape:<10} {case.batch_size:>5} {phase:<8} {seconds * 1e3:>10.0f} "
                f"{flops / 1e9:>8.2f} {flops / seconds / 1e9:>8.1f}   {seconds / base:.2f}x curl pixels"
            )


if __name__ == "__main__":
    main()
