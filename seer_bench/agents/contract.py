"""The agent contract: what the runner reads from an agent, and when. Any class that provides it can be
benchmarked, from inside the package or by import path.

The runner builds an agent as `Class(obs_shape, action_dim, config, device, seed)` (the config a dataclass,
the class's `Config` or the one registered with it, with a `batch_size` field: the runner checks that the
replay holds one batch, and SEER converts that many transitions at a time), then, each agent step `step`:
1. acts: a uniformly random action while `step < random_steps`, else `act(obs, step, eval_mode=False)`
   (the step lets an agent schedule its exploration);
2. updates: `update(replay, step)` when `step >= learn_start` and `(step - learn_start) % update_every == 0`;
   it samples its own batch from the replay and returns a dict of training metrics (losses, Q values...);
3. steps the environment and adds the transition to the replay.
Evaluation calls `act(obs, step, eval_mode=True)` on an environment of its own (`step`: the agent step the
evaluation is at), or, where the agent has it, `act_batch(obs, step, rngs)` (BatchActor) on the observations
of all the episodes playing side by side (seer_bench.evaluation).

Checkpoints hold the agent's state found among its attributes: modules, optimizers, free tensors (such as
SAC's log alpha) and random generators (numpy and torch). Keep networks as direct `nn.Module` attributes
(several in an `nn.ModuleDict` or `nn.ModuleList`, not a plain dict or list): that is where the checkpoint
and the FLOP ledger look. FLOPs are observed, not declared: the FLOP ledger
watches the leaf modules of the agent's `nn.Module` attributes while `act` and `update` run, and observes
one update per phase for each `step % update_period` (an agent whose update alternates, e.g. an actor step
every second update, sets `update_period` to that period).

SEER (seer_bench.agents.seer.Freezable) additionally needs a split point and a way to encode pixels.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn


@runtime_checkable
class Agent(Protocol):
    """The members the runner uses (see the module docstring for when)."""

    discrete: bool  # the action space it acts in: discrete (an index) or continuous (a vector in [-1, 1])
    random_steps: int  # agent steps of uniformly random actions at the start (the runner draws them)
    learn_start: int  # the first agent step with an update
    update_every: int  # agent steps between two updates from learn_start on
    update_period: int  # updates after which the update's computation repeats (the FLOP ledger's cycle)
    sample_horizon: int  # consecutive transitions one sample reads (n-step returns); the replay keeps them

    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> Any: ...

    def update(self, replay: Any, step: int) -> dict[str, float]: ...


@runtime_checkable
class BatchActor(Protocol):
    """Optional: evaluation actions for a batch in one forward. `obs` is uint8 (B, C, H, W); row i's action
    must be what `act(obs[i], step, eval_mode=True)` would give, its randomness (if any) drawn from
    `rngs[i]`, the generator of that row's episode, so that the returns do not depend on which episodes
    share a batch (the number of evaluation workers)."""

    def act_batch(self, obs: np.ndarray, step: int, rngs: list[np.random.Generator]) -> np.ndarray: ...


def networks(agent: Any) -> dict[str, nn.Module]:
    """The agent's networks: its `nn.Module` attributes, by name (what the FLOP ledger watches)."""
    return {name: value for name, value in vars(agent).items() if isinstance(value, nn.Module)}


def missing_members(agent: Any, protocol: type) -> list[str]:
    """The members of `protocol` that the agent instance lacks (attributes and methods alike)."""
    members = [
        *getattr(protocol, "__annotations__", {}),
        *(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")),
    ]
    return [name for name in members if not hasattr(agent, name)]
