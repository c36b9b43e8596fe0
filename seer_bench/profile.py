"""`bench.py profile`: what each agent costs per update, per action and per stored transition, and what a
memory budget holds, before and after SEER's T_f. No training run: seconds per agent and env shape.

Costs are measured as a run measures them: the FLOP ledger observes real calls of a real agent (an action,
one update of each step parity, on a small replay of random pixels of the env's shapes; then SEER's freeze
and conversion, and the updates on latents), so the profile and the records agree. Bytes and capacities
come from the replay classes' own arithmetic.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from seer_bench.agents import agent_config, make_agent
from seer_bench.agents.contract import networks
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.instrument.flops import FlopLedger
from seer_bench.replay import LAYOUTS, PixelReplay, TransitionSpec, replay_class
from seer_bench.runner import build_env, transition_spec
from seer_bench.suites import RunSpec


def profile(specs: list[RunSpec]) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """One row per agent x env x budget x phase (pixels: one per layout; frozen: one per split the agent
    offers and latent layout SEER converts a pixel layout into, with `from_layout`), and the operators
    fvcore did not count, per module."""
    rows, seen, measured, unsupported = [], set(), {}, {}
    for spec in specs:
        key = (
            spec.agent,
            spec.env,
            spec.budget_gb,
            spec.seer,
            repr(spec.agent_overrides),
            repr(spec.env_options),
        )
        if key in seen:
            continue
        seen.add(key)
        env = build_env(spec, seed=0)
        tspec, discrete = transition_spec(env), env.discrete
        env.close()
        # what a cost depends on: the agent, its settings and the shapes it sees (envs of one shape share
        # it, as the six dmc6 tasks share three); curl+seer's pixels are curl's
        agent = (
            spec.agent.removesuffix("+seer"),
            tspec.obs_shape,
            tspec.action_dim,
            repr(spec.agent_overrides),
        )
        phases = [(agent, None), *([(agent, spec.seer)] if spec.seer else [])]
        for phase in phases:
            if phase not in measured:
                measured[phase] = _measure(spec, tspec, discrete, phase[1], unsupported)
        costs = {k: v for phase in phases for k, v in measured[phase][0].items()}
        rows += _rows(spec, tspec, costs, measured[phases[-1]][1])
    return rows, unsupported


def _measure(
    spec: RunSpec, tspec: TransitionSpec, discrete: bool, seer: SeerConfig | None, unsupported: dict
) -> tuple[dict[str, Any], Any]:
    """On a new agent: FLOPs of an action and of an update (mean over the update's period) on pixels, or with
    `seer`, of an update on latents after a real freeze and conversion at each split the agent offers; and
    an agent, for SEER's sizes."""
    cfg = agent_config(spec.agent, spec.agent_overrides)
    built = make_agent(spec.agent, cfg, tspec.obs_shape, tspec.action_dim, torch.device("cpu"), 0)
    n = max(cfg.batch_size, built.sample_horizon) + built.sample_horizon + 8

    def new_agent() -> tuple[Any, FlopLedger, PixelReplay]:
        """A fresh copy of the agent built once (its orthogonal init is most of a build's time), and pixels
        of its own (SEER's conversion releases those it converted)."""
        agent = copy.deepcopy(built)
        return agent, FlopLedger(networks(agent)), _random_replay(tspec, discrete, n)

    agent, ledger, replay = new_agent()
    if seer is None:
        obs = np.zeros(tspec.obs_shape, np.uint8)
        out = {
            "act": ledger.measure(agent.act, obs, 0, eval_mode=False)[1],
            "pixels": _mean_update(ledger, agent, replay),
        }
    else:
        out = {"frozen": {}}
        for i, split in enumerate(agent.splits()):
            if i:  # each split freezes an agent of its own
                agent, ledger, replay = new_agent()
            # one copy: an update reads one copy whatever their number; the room holds conv maps too
            frozen = replace(seer, capacity="budget", split=split, num_copies=1)
            latents, _ = Seer(
                frozen,
                64 * replay.allocated_bytes,
                seed=0,
                chunk=cfg.batch_size,
                layout="paper",
                transitions=tspec,
                total_steps=len(replay),  # the latents this measurement writes: allocate no more
            ).freeze(agent, replay, step=0)
            out["frozen"][split] = _mean_update(ledger, agent, latents)
    for name, ops in ledger.unsupported.items():
        unsupported.setdefault(name, {}).update(ops)
    return out, agent


def _mean_update(ledger: FlopLedger, agent: Any, replay: Any) -> float:
    period = agent.update_period
    return sum(ledger.measure(agent.update, replay, step)[1] for step in range(period)) / period


def _random_replay(tspec: TransitionSpec, discrete: bool, n: int) -> PixelReplay:
    """`n` transitions of random pixels in one episode: an update's cost does not depend on what they show."""
    rng = np.random.default_rng(0)
    replay = replay_class("paper")(tspec, n)
    for t in range(n):
        action = rng.integers(tspec.action_dim) if discrete else rng.uniform(-1, 1, tspec.action_dim)
        obs, nxt = (rng.integers(0, 256, tspec.obs_shape, dtype=np.uint8) for _ in range(2))
        replay.add(obs, action, 0.0, nxt, terminal=False, last=t == n - 1)
    return replay


def _rows(spec: RunSpec, tspec: TransitionSpec, costs: dict[str, Any], agent: Any) -> list[dict[str, Any]]:
    base = {"agent": spec.agent, "env": spec.env, "budget_gb": spec.budget_gb, "act_flops": costs["act"]}
    rows, frozen = [], []
    # the run's layout first: SEER's ratios compare with the pixel replay the run would convert
    for layout in sorted(LAYOUTS, key=lambda name: name != spec.replay_layout):
        cls = replay_class(layout)
        capacity = cls.capacity_for(tspec, spec.budget_bytes)
        rows.append(
            {
                **base,
                "phase": "pixels",
                "layout": layout,
                "update_flops": costs["pixels"],
                "capacity": capacity,
                "bytes_per_transition": cls.total_bytes(tspec, capacity) / max(capacity, 1),
            }
        )
        if spec.seer is not None:
            frozen += _frozen_rows(spec, tspec, costs["frozen"], agent, layout, base, frozen)
    return rows + frozen


def _frozen_rows(
    spec: RunSpec,
    tspec: TransitionSpec,
    flops: dict[str, float],
    agent: Any,
    layout: str,
    base: dict[str, Any],
    done: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """A row per split for the latent layout that `layout` converts into, unless a row already has it (CURL:
    both pixel layouts -> paper latents)."""
    rows, chunk = [], agent_config(spec.agent, spec.agent_overrides).batch_size
    for split, update_flops in flops.items():
        seer = Seer(
            replace(spec.seer, split=split),
            spec.budget_bytes,
            seed=0,
            chunk=chunk,
            layout=layout,
            transitions=tspec,
            total_steps=spec.agent_steps,
        )
        latent_layout = seer.replay_class(agent).layout
        if any((r["layout"], r["split"]) == (latent_layout, split) for r in done):
            continue
        rows.append(
            {
                **base,
                "phase": "frozen",
                "layout": latent_layout,
                "from_layout": layout,
                "split": split,
                "configured": split == spec.seer.split,  # the split this run uses
                "update_flops": update_flops,
                "capacity": seer.capacity(agent),
                "capacity_policy": spec.seer.capacity,
                "capacity_budget": seer.budget_capacity(agent),
                "bytes_per_transition": seer.bytes_per_transition(agent),
            }
        )
    return rows


def format_profile(rows: list[dict[str, Any]], unsupported: dict[str, dict[str, int]]) -> str:
    """A table with units (the run's split marked *), then SEER's ratios: frozen against pixels (which is
    the baseline agent's), saying so where a split's latents hold fewer transitions than the pixels did."""
    lines = [
        f"{'agent':<12} {'env':<20} {'budget':>7} {'phase':<7} {'layout':<14} {'split':<6} "
        f"{'update GFLOP':>13} {'act MFLOP':>10} {'bytes/transition':>17} {'capacity':>10} {'sized by':<8}"
    ]
    for r in rows:
        split = r.get("split", "") + ("*" if r.get("configured") else "")
        lines.append(
            f"{r['agent']:<12} {r['env']:<20} {r['budget_gb']:>5.10g}GB {r['phase']:<7} {r['layout']:<14} "
            f"{split:<6} {r['update_flops'] / 1e9:>13.3f} {r['act_flops'] / 1e6:>10.2f} "
            f"{r['bytes_per_transition']:>17,.0f} "
            f"{r['capacity']:>10,} {r.get('capacity_policy', 'budget'):<8}"
        )
    ratios = [_ratio_line(r, rows) for r in rows if r["phase"] == "frozen"]
    notes = [
        "* the split this run uses. FLOPs: fvcore convention, 1 multiply-add = 1 FLOP; measured on real "
        "calls (forward and backward of every module that ran), update = mean over the update's period; act ="
        " one action at batch 1."
    ]
    for name, ops in unsupported.items():
        notes.append(
            f"not counted by fvcore in {name}: " + ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
        )
    return "\n".join([*lines, "", *ratios, *notes])


def _ratio_line(r: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    source = r["from_layout"]
    pixels = next(
        p
        for p in rows
        if p["phase"] == "pixels"
        and p["layout"] == source
        and (p["agent"], p["env"], p["budget_gb"]) == (r["agent"], r["env"], r["budget_gb"])
    )
    ratio = r["capacity"] / pixels["capacity"]
    fell = (
        f": the capacity FALLS, a latent transition ({r['bytes_per_transition']:,.0f} bytes) is larger than "
        f"a pixel one ({pixels['bytes_per_transition']:,.0f})"
        if ratio < 1
        else ""
    )
    return (
        f"{r['agent']} on {r['env']} at {r['budget_gb']:.10g} GB, {source} layout, split {r['split']}: after "
        f"T_f an update costs {r['update_flops'] / pixels['update_flops']:.3f}x the FLOPs, and the replay "
        f"holds {ratio:.2f}x the transitions ({r['layout']}, capacity = {r['capacity_policy']}; the whole "
        f"budget: {r['capacity_budget'] / pixels['capacity']:.2f}x){fell}"
    )


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
