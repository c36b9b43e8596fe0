"""Evaluation episodes: one after another in this process, or side by side in worker processes.

Episode i of the evaluation at agent step `step` is a function of (run seed, step, i) alone: its env seed
and the generator for any randomness of the evaluation policy (DER's epsilon) come from
`episode_seeds`, never from a stream shared with the other episodes. So the parallel evaluation, where
episodes interleave and finish in any order, runs the same episodes as the sequential one, and a resumed
run evaluates at a step what an uninterrupted run evaluates there.

In parallel (`workers` >= 2) each worker process holds an eval env; per step the run gathers the live
episodes' observations and acts on all of them in one batched forward (`act_batch`, agents.contract),
then sends each its action. The workers live for the whole run (their start, about a second each, is paid
once) and end with `close`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from seer_bench.envs.workers import EnvRecipe, EnvWorker

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share the training env's random stream


@dataclass(frozen=True)
class EpisodeSeed:
    env_seed: int  # the env's seed for this episode (PixelEnv.seed_episode)
    rng: np.random.Generator  # the evaluation policy's randomness in this episode, if it has any


def episode_seeds(seed: int, step: int, episodes: int) -> list[EpisodeSeed]:
    """The seeds of the `episodes` evaluation episodes at agent step `step` of a run seeded `seed`."""
    out = []
    for i in range(episodes):
        env_ss, act_ss = np.random.SeedSequence([seed, EVAL_SEED_OFFSET, step, i]).spawn(2)
        out.append(EpisodeSeed(int(env_ss.generate_state(1)[0] % 2**31), np.random.default_rng(act_ss)))
    return out


def default_workers(episodes: int) -> int:
    """Evaluation workers when --eval-workers is not given: the cores given to the run (its torch threads,
    which the executors set from --cpus-per-run or the cores shared out by --jobs, within the process's
    CPU affinity), at most one per episode."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(episodes, cores, torch.get_num_threads()))


def act_batch(agent: Any, obs: np.ndarray, step: int, seeds: Sequence[EpisodeSeed]) -> list[Any]:
    """The evaluation policy's actions for a batch of observations: the agent's `act_batch` (one forward)
    where it has one, else `act` per observation (an own agent: agents.contract)."""
    batched = getattr(agent, "act_batch", None)
    if batched is not None:
        return list(batched(obs, step, [s.rng for s in seeds]))
    return [agent.act(o, step, eval_mode=True) for o in obs]


def _summary(returns: list[float]) -> tuple[float, float]:
    return float(np.mean(returns)), float(np.std(returns))


def evaluate(env: Any, agent: Any, seed: int, episodes: int, step: int) -> tuple[float, float]:
    """Mean and standard deviation of `episodes` returns of the evaluation policy at agent step `step`,
    one episode after another on `env`."""
    returns = []
    for s in episode_seeds(seed, step, episodes):
        env.seed_episode(s.env_seed)
        obs, total, last = env.reset(), 0.0, False
        while not last:
            res = env.step(act_batch(agent, obs[None], step, [s])[0])
            obs, total, last = res.obs, total + res.reward, res.last
        returns.append(total)
    return _summary(returns)


class EvalWorkers:
    """`n` eval envs in worker processes, alive until `close`."""

    def __init__(self, recipe: EnvRecipe, n: int) -> None:
        self.workers: list[EnvWorker] = []
        try:
            for _ in range(n):
                self.workers.append(EnvWorker(recipe))
        except BaseException:
            self.close()
            raise

    def evaluate(self, agent: Any, seed: int, episodes: int, step: int) -> tuple[float, float]:
        """As `evaluate`, the episodes side by side: each worker plays one at a time and takes the next
        unplayed one when it ends; one batched forward per step over the live episodes. Each return sums
        its episode's rewards in their order, so it is the sequential sum bit for bit."""
        seeds, returns = episode_seeds(seed, step, episodes), [0.0] * episodes
        playing = dict(enumerate(range(min(len(self.workers), episodes))))  # worker -> its episode
        for w, episode in playing.items():
            self.workers[w].send("reset", seeds[episode].env_seed)
        obs = {w: self.workers[w].recv() for w in playing}
        upcoming = iter(range(len(playing), episodes))
        while playing:
            live = sorted(playing)
            batch = np.stack([obs[w] for w in live])
            for w, action in zip(live, act_batch(agent, batch, step, [seeds[playing[w]] for w in live])):
                self.workers[w].send("step", action)
            for w in live:
                res = self.workers[w].recv()
                returns[playing[w]] += res.reward
                obs[w] = res.obs
                if res.last:
                    self._next_episode(w, next(upcoming, None), seeds, playing, obs)
        return _summary(returns)

    def _next_episode(
        self, w: int, episode: int | None, seeds: list[EpisodeSeed], playing: dict[int, int], obs: dict
    ) -> None:
        """Worker `w` starts `episode`, or rests when none is left."""
        if episode is None:
            del playing[w]
            return
        playing[w] = episode
        obs[w] = self.workers[w].call("reset", seeds[episode].env_seed)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


class Evaluator:
    """A run's evaluation: `workers` <= 1 one eval env here, else `EvalWorkers`."""

    def __init__(self, recipe: EnvRecipe, workers: int) -> None:
        self.parallel = EvalWorkers(recipe, workers) if workers > 1 else None
        self.env = recipe.build() if self.parallel is None else None

    def evaluate(self, agent: Any, seed: int, episodes: int, step: int) -> tuple[float, float]:
        if self.parallel is not None:
            return self.parallel.evaluate(agent, seed, episodes, step)
        return evaluate(self.env, agent, seed, episodes, step)

    def close(self) -> None:
        if self.parallel is not None:
            self.parallel.close()
        else:
            self.env.close()
