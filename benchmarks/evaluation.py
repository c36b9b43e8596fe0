"""Seconds per evaluation, one episode after another against `--workers` processes side by side.

An untrained `curl` at dmc6's paper settings (its evaluation policy costs what a trained one's does) plays
`--episodes` evaluation episodes of each env at dmc6's action repeat (cartpole-swingup 8: 125 agent steps
per episode; walker-walk 2: 500), through the runner's own `Evaluator`, for each worker count (0: in this
process). The workers' start (spawn, imports, the env's build and first reset: once per run) is timed apart
from the evaluation. Every worker count must give the same returns; the script checks it.

    python benchmarks/evaluation.py [--envs cartpole-swingup,walker-walk] [--workers 0,2] [--episodes 10]
                                    [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from seer_bench.agents import agent_config, make_agent
from seer_bench.envs import DMC_TASKS
from seer_bench.envs.workers import EnvRecipe
from seer_bench.evaluation import Evaluator


def measure(env: str, workers: list[int], episodes: int) -> dict[str, Any]:
    """{workers: (start seconds, evaluation seconds, (mean, std))} for one env."""
    recipe = EnvRecipe(env, DMC_TASKS[env], 0, False, {})
    probe = recipe.build()
    agent = make_agent(
        "curl", agent_config("curl", {}), probe.obs_shape, probe.action_dim, torch.device("cpu"), 0
    )
    probe.close()
    out: dict[str, Any] = {}
    for n in workers:
        start = time.perf_counter()
        evaluator = Evaluator(recipe, n)
        for worker in evaluator.parallel.workers if evaluator.parallel else ():
            worker.call("reset")  # started, imported, built and rendered once: ready
        ready = time.perf_counter()
        try:
            result = evaluator.evaluate(agent, seed=0, episodes=episodes, step=0)
        finally:
            evaluator.close()
        out[str(n)] = {"start_s": ready - start, "eval_s": time.perf_counter() - ready, "returns": result}
        print(f"{env}: {n} workers: {out[str(n)]}", flush=True)
    if len({tuple(r["returns"]) for r in out.values()}) != 1:
        raise AssertionError(f"{env}: the returns depend on the worker count: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="cartpole-swingup,walker-walk")
    parser.add_argument("--workers", default="0,2", help="worker counts to compare (0: in this process)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workers = [int(n) for n in args.workers.split(",")]
    results = {env: measure(env, workers, args.episodes) for env in args.envs.split(",")}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"\n{'env':<18} {'workers':>7} {'start s':>8} {'eval s':>8} {'speed-up':>8}")
    for env, rows in results.items():
        base = rows[str(workers[0])]["eval_s"]
        for n, row in rows.items():
            print(
                f"{env:<18} {n:>7} {row['start_s']:>8.2f} {row['eval_s']:>8.1f} {base / row['eval_s']:>7.2f}x"
            )


if __name__ == "__main__":
    main()
