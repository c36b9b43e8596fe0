"""Agent steps per second end to end, per phase and per component: where a run's wall time goes.

A real Workspace (seer_bench.runner) of `curl+seer` at dmc6's paper settings (budget 0.6 GB, `paper` layout,
batch 128: CurlConfig's default, SEER's public scripts; `--batch-size` to change it) runs its own
`train_step` for each phase in turn, `--steps` timed agent steps each after `--warmup` untimed ones (the
FLOP ledger's first observation of each call, fvcore tracing, is a one-off a long run amortizes):

- random: before learning starts (random actions, env physics, rendering, replay add);
- pixels: acting, one update per step on the pixel replay, env step, rendering, replay add;
- frozen: after SEER's T_f (a real freeze and conversion, not timed): acting, a latent update, env step,
  rendering, and the replay add that encodes the new transition.

Each component is timed, with time.perf_counter, around the real call the run makes: env physics
(dm_control's own `step` and `reset`, without rendering), render (`physics.render` at the run's frame size
and camera), act (`agent.act`), replay add (`replay.add`, less the encoding inside it), update
(`agent.update`), encode (SEER's encoding of a new transition). Times are exclusive (a call inside another
timed call counts for itself only); `other` is the rest of the step (the random action, action scaling,
frame stacking, the FLOP ledger's bookkeeping, the loop). Evaluation is not part of a step and not run.

With `--async-env` the run steps its env in a worker process while it updates (runner.RunOptions): env
physics and render then run there, untimed (0 here), and what the run still waits for them is in `other`.

    python benchmarks/throughput.py [--steps 200] [--envs cartpole-swingup,walker-walk] [--threads 2]
                                    [--batch-size 128] [--warmup 3] [--async-env] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seer_bench.agents import AGENTS
from seer_bench.envs import KNOWN_ENVS
from seer_bench.runner import RunOptions, Workspace
from seer_bench.suites import Overrides, RunSpec, load_suite, resolve

ENVS = ("cartpole-swingup", "walker-walk")  # action repeat 8 and 2: the cheapest and dearest env per update
PHASES = ("random", "pixels", "frozen")
COMPONENTS = ("env physics", "render", "act", "replay add", "update", "encode")


@dataclass
class Timer:
    """Exclusive seconds per component: a timed call nested in another is taken out of the outer one's time,
    so the components and `other` add up to the phase's wall time."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))
    _stack: list[float] = field(default_factory=list)  # inner seconds seen so far by each open call

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[name] += elapsed - self._stack.pop()
                if self._stack:
                    self._stack[-1] += elapsed

        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(COMPONENTS, 0.0)


def run_spec(env: str, steps: int, warmup: int, batch_size: int) -> RunSpec:
    """dmc6's paper-scale `curl+seer` run for `env`, its phases `warmup + steps` agent steps each: learning
    starts after the first, T_f after the second."""
    suite = load_suite("dmc6")
    spec = resolve(
        suite, Overrides(envs=[env], agents=["curl+seer"], seeds=1, device="cpu"), AGENTS, KNOWN_ENVS
    )[0]
    phase = warmup + steps
    return replace(
        spec,
        steps=3 * phase * spec.action_repeat,
        eval_every=3 * phase * spec.action_repeat,
        agent_overrides={**spec.agent_overrides, "batch_size": batch_size, "init_steps": phase},
        seer=replace(spec.seer, freeze_at=2 * phase),
    )


def instrument(ws: Workspace, timer: Timer) -> None:
    """Route the run's component calls through `timer` (instance attributes: the run calls them by name)."""
    if not ws.async_env:  # else the env runs in its worker process
        dm_env = ws.env._env
        dm_env.step = timer.wrap("env physics", dm_env.step)
        dm_env.reset = timer.wrap("env physics", dm_env.reset)
        dm_env.physics.render = timer.wrap("render", dm_env.physics.render)
    ws.agent.act = timer.wrap("act", ws.agent.act)
    ws.agent.update = timer.wrap("update", ws.agent.update)
    ws.replay.add = timer.wrap("replay add", ws.replay.add)
    observe = ws.seer.observe  # the ledger's watch on SEER's encodings, kept inside the timing
    ws.seer.observe = lambda encode: timer.wrap("encode", observe(encode))


def timed_phase(
    ws: Workspace, timer: Timer, obs: np.ndarray, first: int, steps: int, warmup: int
) -> tuple[np.ndarray, float, dict[str, float]]:
    """(observation after, wall seconds, component seconds) of `steps` agent steps after `warmup` ones."""
    for step in range(first, first + warmup):
        obs = ws.train_step(obs, step)
    timer.reset()
    start = time.perf_counter()
    for step in range(first + warmup, first + warmup + steps):
        obs = ws.train_step(obs, step)
    return obs, time.perf_counter() - start, dict(timer.seconds)


def measure_env(
    env: str, steps: int, warmup: int, batch_size: int, out: Path, async_env: bool = False
) -> dict[str, Any]:
    """The three phases of one env in one Workspace, in the order a run goes through them."""
    spec = run_spec(env, steps, warmup, batch_size)
    options = RunOptions(eval_workers=0, async_env=async_env)  # no evaluation here
    ws, timer, phases = Workspace(spec, out, options), Timer(), {}
    instrument(ws, timer)
    ws.memory.start()
    try:
        obs, first = ws.env.reset(), 0
        for phase in PHASES:
            if phase == "frozen":  # SEER's freeze at T_f, as the loop's schedule does it (not timed)
                ws._freeze(first)
                ws.replay.add = timer.wrap("replay add", ws.replay.add)  # the latent replay replaced it
            obs, wall, seconds = timed_phase(ws, timer, obs, first, steps, warmup)
            phases[phase] = summary(wall, seconds, steps, spec.action_repeat)
            first += warmup + steps
    finally:
        ws._close()
    return {"env": env, "action_repeat": spec.action_repeat, "batch_size": batch_size, "phases": phases}


def summary(wall: float, seconds: dict[str, float], steps: int, repeat: int) -> dict[str, Any]:
    """Steps per second and each component's seconds per agent step and share of the wall time."""
    parts = {**seconds, "other": wall - sum(seconds.values())}
    return {
        "agent_steps_per_s": steps / wall,
        "env_steps_per_s": steps * repeat / wall,
        "s_per_step": wall / steps,
        "components": {k: {"s_per_step": v / steps, "share": 100 * v / wall} for k, v in parts.items()},
    }


def table(result: dict[str, Any], steps: int) -> str:
    """One env's phases side by side: ms per agent step and share of each component, then steps/s."""
    phases = result["phases"]
    lines = [
        f"{result['env']}  action repeat {result['action_repeat']}, batch {result['batch_size']}, "
        f"{steps} agent steps per phase",
        f"{'component':<12}" + "".join(f"{p:>20}" for p in PHASES),
        f"{'':<12}" + f"{'ms/step':>12}{'share':>8}" * len(PHASES),
    ]
    for name in (*COMPONENTS, "other"):
        cells = (phases[p]["components"][name] for p in PHASES)
        lines.append(
            f"{name:<12}" + "".join(f"{c['s_per_step'] * 1e3:>12.2f}{c['share']:>7.1f}%" for c in cells)
        )
    lines.append(
        f"{'total':<12}" + "".join(f"{phases[p]['s_per_step'] * 1e3:>12.2f}{100:>7.1f}%" for p in PHASES)
    )
    for key, label in (("agent_steps_per_s", "agent st/s"), ("env_steps_per_s", "env st/s")):
        lines.append(f"{label:<12}" + "".join(f"{phases[p][key]:>12.1f}{'':>8}" for p in PHASES))
    rate = {p: phases[p]["agent_steps_per_s"] for p in PHASES}
    lines.append(
        f"ratios: frozen/pixels {rate['frozen'] / rate['pixels']:.2f}x, "
        f"random/pixels {rate['random'] / rate['pixels']:.2f}x steps/s"
    )
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed agent steps per phase")
    parser.add_argument("--warmup", type=int, default=3, help="untimed agent steps before each phase's")
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--async-env", action="store_true", help="step the env in a worker process")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        results = [
            measure_env(env, args.steps, args.warmup, args.batch_size, Path(out), args.async_env)
            for env in args.envs.split(",")
        ]
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": results}, indent=2))
        return
    mode = "env in a worker process" if args.async_env else "env in process"
    print(
        f"torch {torch.__version__}, {args.threads} threads, CPU, {args.warmup} warm-up steps/phase, {mode}"
    )
    for result in results:
        print()
        print(table(result, args.steps))


if __name__ == "__main__":
    main()
