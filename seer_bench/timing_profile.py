"""`bench.py profile --timing`: where a run's seconds go in each phase, without a run.

A real Workspace (seer_bench.runner) of each selected agent and env, on the device asked for, runs its own
`train_step` for `steps` timed agent steps of each phase after `warmup` untimed ones (the FLOP ledger prices
each kind of call on its first observation, a one-off that a long run amortizes), and the run's own time
ledger (seer_bench.instrument.timing) says where the seconds went, so a profile and a run's records
measure the same thing in the same way:

- random: before learning starts (random actions, or DER's noisy policy; env physics, rendering, replay add);
- pixels: acting, the updates on the pixel replay, env step, rendering, replay add;
- frozen (SEER agents): after a real freeze and conversion at T_f, acting, the updates on latents, env step,
  rendering, and the replay add that encodes each new transition. The conversion's own time is reported
  apart (`convert_s`), for the transitions the phases before it stored.

Evaluation is not part of a step and not run; `other` is the step's wall time no category covers. `ledger`
is the time ledger's own cost: its sections per step (counted) times one section's cost (measured apart,
`instrument.timing.section_seconds`), as a share of the step.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from seer_bench.instrument.timing import TRAIN_CATEGORIES, section_seconds
from seer_bench.runner import RunOptions, Workspace
from seer_bench.suites import RunSpec

PHASES = ("random", "pixels", "frozen")
# what a training step spends, in the order a step runs them (the ledger's training categories, without
# SEER's conversion, which happens once at T_f, plus the FLOP ledger's and the records' bookkeeping)
COMPONENTS = tuple(c for c in TRAIN_CATEGORIES if c != "convert") + ("bookkeeping",)


def phased(spec: RunSpec, lead: int, phase: int) -> RunSpec:
    """`spec` long enough for its phases, the first `lead` agent steps and the others `phase`, and nothing
    else scheduled: no evaluation or checkpoint falls inside (the loop's schedule is not run)."""
    total = lead + (len(PHASES if spec.seer else PHASES[:2]) - 1) * phase
    seer = replace(spec.seer, freeze_at=lead + phase) if spec.seer else None
    return replace(
        spec, steps=total * spec.action_repeat, eval_every=total * spec.action_repeat, seer=seer, seed=0
    )


# no evaluation runs here, so no evaluation workers; the training env in the run's process
NO_EVAL = RunOptions(eval_workers=0)


def measure(
    spec: RunSpec, steps: int, warmup: int, out: Path, options: RunOptions = NO_EVAL
) -> dict[str, Any]:
    """The phases of one agent and env in one Workspace, in the order a run goes through them (with
    `options.async_env`, its env stepped in a worker process: then `physics` is the wait for it)."""
    phase_steps = warmup + steps
    ws = Workspace(phased(spec, phase_steps, phase_steps), out, options)
    lead = max(phase_steps, ws.agent.sample_horizon + warmup)
    if lead > phase_steps:  # an n-step agent's first batch needs n transitions: a longer first phase
        ws._close()
        ws = Workspace(phased(spec, lead, phase_steps), out, options)
    spec = ws.spec
    # learning starts after the first phase (agents keep these as plain attributes: contract.Agent)
    ws.agent.random_steps = lead if ws.agent.random_steps else 0
    ws.agent.learn_start = lead
    phases, convert_s, converted = {}, float("nan"), 0
    ws.memory.start()
    try:
        obs, first = ws.env.reset(), 0
        for phase in PHASES if spec.seer else PHASES[:2]:
            if phase == "frozen":  # SEER's freeze at T_f, as the loop's schedule does it
                before, converted = ws.times.totals["convert"], len(ws.replay)
                ws._freeze(first)
                convert_s = ws.times.totals["convert"] - before
            untimed = (lead if phase == "random" else phase_steps) - steps
            obs, phases[phase] = _timed_phase(ws, obs, first, steps, untimed)
            first += steps + untimed
    finally:
        ws._close()
    return {
        "agent": spec.label,
        "env": spec.env,
        "device": str(ws.device),
        "action_repeat": spec.action_repeat,
        "batch_size": ws.cfg.batch_size,
        "steps": steps,
        "phases": phases,
        "convert_s": convert_s,
        "converted": converted,
    }


def _timed_phase(ws: Workspace, obs: Any, first: int, steps: int, warmup: int) -> tuple[Any, dict[str, Any]]:
    """(observation after, the phase's summary) of `steps` agent steps after `warmup` untimed ones."""
    for step in range(first, first + warmup):
        obs = ws.train_step(obs, step)
    before, sections, start = dict(ws.times.totals), ws.times.sections, time.perf_counter()
    for step in range(first + warmup, first + warmup + steps):
        obs = ws.train_step(obs, step)
    wall = time.perf_counter() - start
    sections = (ws.times.sections - sections) / steps
    seconds = {c: ws.times.totals[c] - before[c] for c in COMPONENTS}
    parts = {**seconds, "other": wall - sum(seconds.values())}
    return obs, {
        "agent_steps_per_s": steps / wall,
        "env_steps_per_s": steps * ws.spec.action_repeat / wall,
        "s_per_step": wall / steps,
        "ledger_sections_per_step": sections,
        "ledger_share": 100 * sections * section_seconds() * steps / wall,  # the time ledger's own cost
        "components": {k: {"s_per_step": v / steps, "share": 100 * v / wall} for k, v in parts.items()},
    }


def profile_timing(specs: list[RunSpec], steps: int, warmup: int) -> list[dict[str, Any]]:
    """One result per distinct agent (label) and env among `specs` (budgets and seeds share a step's cost
    up to the replay's size, which a few hundred steps do not reach)."""
    results, seen = [], set()
    with tempfile.TemporaryDirectory() as out:
        for spec in specs:
            if (spec.label, spec.env) not in seen:
                seen.add((spec.label, spec.env))
                results.append(measure(spec, steps, warmup, Path(out)))
    return results


def format_timing(result: dict[str, Any]) -> str:
    """One agent and env: ms per agent step and share of each component per phase, then steps/s."""
    phases = result["phases"]
    names = list(phases)
    lines = [
        f"{result['agent']} on {result['env']}  ({result['device']}, "
        f"action repeat {result['action_repeat']}, batch {result['batch_size']}, "
        f"{result['steps']} agent steps per phase)",
        f"{'component':<12}" + "".join(f"{p:>20}" for p in names),
        f"{'':<12}" + f"{'ms/step':>12}{'share':>8}" * len(names),
    ]
    for name in (*COMPONENTS, "other"):
        cells = (phases[p]["components"][name] for p in names)
        lines.append(
            f"{name:<12}" + "".join(f"{c['s_per_step'] * 1e3:>12.2f}{c['share']:>7.1f}%" for c in cells)
        )
    lines.append(
        f"{'total':<12}" + "".join(f"{phases[p]['s_per_step'] * 1e3:>12.2f}{100:>7.1f}%" for p in names)
    )
    for key, label in (("agent_steps_per_s", "agent st/s"), ("env_steps_per_s", "env st/s")):
        lines.append(f"{label:<12}" + "".join(f"{phases[p][key]:>12.1f}{'':>8}" for p in names))
    lines.append(f"{'ledger':<12}" + "".join(f"{phases[p]['ledger_share']:>19.3f}%" for p in names))
    if "frozen" in phases:
        rate = {p: phases[p]["agent_steps_per_s"] for p in names}
        lines.append(
            f"SEER's conversion at T_f: {result['convert_s']:.2f} s for {result['converted']:,} transitions; "
            f"frozen/pixels {rate['frozen'] / rate['pixels']:.2f}x steps/s"
        )
    return "\n".join(line.rstrip() for line in lines)


def to_json(results: list[dict[str, Any]]) -> str:
    return json.dumps(results, indent=2)
