"""`bench.py profile`: what each agent costs per update, per action and per stored transition, and what a
memory budget holds, before and after SEER's T_f. No training: seconds to run.

Costs come from the same FLOP ledger the runs use (fvcore on the real modules at the real batch shapes),
bytes and capacities from the replay classes' own arithmetic, so the profile and the records agree.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from seer_bench.agents import agent_config, make_agent
from seer_bench.agents.seer import Seer
from seer_bench.instrument.flops import FlopLedger
from seer_bench.replay import LAYOUTS, replay_class
from seer_bench.runner import build_env, transition_spec
from seer_bench.suites import RunSpec


def profile(specs: list[RunSpec]) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """One row per agent x env x budget x phase (pixels: one per layout; frozen: one per latent layout SEER
    converts a pixel layout into, with `from_layout`), and the operators fvcore did not count, per stage."""
    rows, seen = [], set()
    ledger = FlopLedger()  # one ledger: its list of operators fvcore does not count covers every agent
    for spec in specs:
        key = (spec.agent, spec.env, spec.budget_gb, spec.seer, repr(spec.agent_overrides), repr(spec.env_options))
        if key in seen:
            continue
        seen.add(key)
        cfg = agent_config(spec.agent, spec.agent_overrides)
        env = build_env(spec, seed=0)
        tspec = transition_spec(env)
        agent = make_agent(spec.agent, cfg, env.obs_shape, env.action_dim, torch.device("cpu"), 0)
        base = {"agent": spec.agent, "env": spec.env, "budget_gb": spec.budget_gb,
                "act_flops": ledger.price(agent.act_passes())}
        update = ledger.mean_price(agent.update_passes, agent.update_period)
        frozen = []
        for layout in LAYOUTS:
            cls = replay_class(layout)
            capacity = cls.capacity_for(tspec, spec.budget_bytes)
            rows.append({**base, "phase": "pixels", "layout": layout, "update_flops": update, "capacity": capacity,
                         "bytes_per_transition": cls.total_bytes(tspec, capacity) / max(capacity, 1)})
            if spec.seer is not None:
                seer = Seer(spec.seer, spec.budget_bytes, seed=0, chunk=cfg.batch_size, layout=layout,
                            transitions=tspec, total_steps=spec.agent_steps)
                latent_layout = seer.replay_class(agent).layout
                if all(row["layout"] != latent_layout for row in frozen):  # CURL: both pixel layouts -> paper latents
                    frozen.append({**base, "phase": "frozen", "layout": latent_layout, "from_layout": layout,
                                   "capacity": seer.capacity(agent), "capacity_policy": spec.seer.capacity,
                                   "capacity_budget": seer.budget_capacity(agent),
                                   "bytes_per_transition": seer.bytes_per_transition(agent)})
        env.close()
        if frozen:
            agent.freeze(spec.seer.split)
            price = ledger.mean_price(agent.update_passes, agent.update_period)
            rows += [{**row, "update_flops": price} for row in frozen]
    return rows, {stage: dict(ops) for stage, ops in ledger.unsupported.items()}


def format_profile(rows: list[dict[str, Any]], unsupported: dict[str, dict[str, int]]) -> str:
    """A table with units, then SEER's ratios: frozen against pixels (which is the baseline agent's)."""
    lines = [f"{'agent':<12} {'env':<20} {'budget':>7} {'phase':<7} {'layout':<14} {'update GFLOP':>13} "
             f"{'act MFLOP':>10} {'bytes/transition':>17} {'capacity':>10} {'sized by':<8}"]
    for r in rows:
        lines.append(f"{r['agent']:<12} {r['env']:<20} {r['budget_gb']:>5.10g}GB {r['phase']:<7} {r['layout']:<14} "
                     f"{r['update_flops'] / 1e9:>13.3f} {r['act_flops'] / 1e6:>10.2f} {r['bytes_per_transition']:>17,.0f} "
                     f"{r['capacity']:>10,} {r.get('capacity_policy', 'budget'):<8}")
    ratios = []
    for r in rows:
        if r["phase"] != "frozen":
            continue
        source = r["from_layout"]
        pixels = next(p for p in rows if p["phase"] == "pixels" and p["layout"] == source and
                      (p["agent"], p["env"], p["budget_gb"]) == (r["agent"], r["env"], r["budget_gb"]))
        ratios.append(f"{r['agent']} on {r['env']} at {r['budget_gb']:.10g} GB, {source} layout: after T_f an update "
                      f"costs {r['update_flops'] / pixels['update_flops']:.3f}x the FLOPs, and the replay holds "
                      f"{r['capacity'] / pixels['capacity']:.2f}x the transitions ({r['layout']}, capacity = "
                      f"{r['capacity_policy']}; the whole budget: {r['capacity_budget'] / pixels['capacity']:.2f}x)")
    notes = ["FLOPs: fvcore convention, 1 multiply-add = 1 FLOP; update = forward + backward of every pass that "
             "runs, mean over the actor-update period; act = one policy forward at batch 1."]
    for stage, ops in unsupported.items():
        notes.append(f"not counted by fvcore in {stage}: " + ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())))
    return "\n".join([*lines, "", *ratios, *notes])


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)
