"""Agent steps per second end to end, per phase and per component: where a run's wall time goes.

A real Workspace (seer_bench.runner) of `curl+seer` at dmc6's paper settings (budget 0.6 GB, `paper` layout,
batch 128: CurlConfig's default, SEER's public scripts; `--batch-size` to change it) runs its own
`train_step` for each phase in turn (random, pixels, frozen), `--steps` timed agent steps each after
`--warmup` untimed ones, and the run's own time ledger says where the seconds went: this is
`bench.py profile --timing` (seer_bench.timing_profile) at fixed settings, so the benchmark, the profile and
a run's records measure one thing one way. Components are the ledger's exclusive categories: env physics,
render, act, update, replay add, SEER's encode, the loop's rest, bookkeeping (the FLOP ledger, train.csv,
memory readings); `other` is the step's wall time none covers. Evaluation is not part of a step.

    python benchmarks/throughput.py [--steps 200] [--envs cartpole-swingup,walker-walk] [--threads 1]
                                    [--batch-size 128] [--warmup 3] [--async-env] [--json]

With `--async-env` the run steps its env in a worker process while it updates (runner.RunOptions): physics
and rendering then run there, and `physics` holds what the run still waits for them.

On a shared machine pass `--threads 1`: with 2 torch threads on 2 busy cores the numbers measure contention.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from seer_bench.agents import AGENTS
from seer_bench.envs import KNOWN_ENVS
from seer_bench.runner import RunOptions
from seer_bench.suites import Overrides, load_suite, resolve
from seer_bench.timing_profile import format_timing, measure

ENVS = ("cartpole-swingup", "walker-walk")  # action repeat 8 and 2: the cheapest and dearest env per update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed agent steps per phase")
    parser.add_argument("--warmup", type=int, default=3, help="untimed agent steps before each phase's")
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--async-env", action="store_true", help="step the env in a worker process")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = Overrides(
        envs=args.envs.split(","),
        agents=["curl+seer"],
        seeds=1,
        device=args.device,
        sets={"agent.batch_size": [args.batch_size]},
    )
    specs = resolve(load_suite("dmc6"), overrides, AGENTS, KNOWN_ENVS)
    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(eval_workers=0, async_env=args.async_env)
        results = [measure(spec, args.steps, args.warmup, Path(out), options) for spec in specs]
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results}, indent=2))
        return
    print(f"torch {torch.__version__}, {args.threads} threads, {args.warmup} warm-up steps per phase")
    for result in results:
        print()
        print(format_timing(result))


if __name__ == "__main__":
    main()
