"""The FLOP ledger: every network pass a run really executes, priced with fvcore, summed by category.

Convention: fvcore's, one multiply-add = one FLOP (torch's FlopCounterMode counts two).

Forward FLOPs of a stage come from `fvcore.nn.FlopCountAnalysis` on the agent's real modules at the real
input shapes, once per (stage, shapes). The backward is derived per layer, walking each chain of the stage
in order (seer_bench.agents.passes.Stage):
- a layer whose weights get gradients costs its forward once for the weight gradient;
- a layer whose input needs a gradient (the stage input does, or an earlier layer of the chain trains)
  costs its forward once more for the input gradient;
so 2x for a training layer inside a network, 1x for the first conv on pixels, 1x for a layer that only
passes gradients through (the critic inside the actor loss), 0 for a frozen layer that does not run at all
(it is not in the pass list). This is exact for layers with one input. The one two-input product with a
weight, CURL's z_a W z_pos^T, is priced as one layer at 2x; exactly it costs 2x for z_a (W z_pos^T) and 1x
for W z_pos^T, so the ledger counts F*F*B extra per contrastive update (320 k at batch 128, 6e-6 of it).

fvcore's warnings about operators it does not count (elementwise ops, sampling) are collected per stage in
`unsupported` (operator -> calls in one forward) and listed once, instead of being printed at every trace.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from typing import Callable, Iterable

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from seer_bench.agents.passes import Pass, Stage

CATEGORIES = ("act", "update", "encode", "convert")


def _leaf_chains(stage: Stage) -> list[list[tuple[str, nn.Module]]]:
    """Each child chain's leaf modules, qualified by the names fvcore uses, in execution order."""
    chains = []
    for name, chain in stage.named_children():
        leaves = [(f"{name}.{sub}" if sub else name, m) for sub, m in chain.named_modules() if not list(m.children())]
        chains.append(leaves)
    return chains


class FlopLedger:
    """Cumulative FLOPs per category; `price` gives the FLOPs of a list of passes (cached)."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self.unsupported: dict[str, Counter] = {}
        self._forward: dict[tuple, dict[str, int]] = {}
        self._priced: dict[tuple, int] = {}
        self._tuples: dict[int, tuple[tuple[Pass, ...], int]] = {}  # id -> (the tuple, kept alive; its FLOPs)

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def state_dict(self) -> dict[str, dict]:
        """What a checkpoint keeps: the totals and the ops fvcore could not count (the price caches are
        rebuilt on use)."""
        return {"totals": dict(self.totals), "unsupported": {stage: dict(ops) for stage, ops in self.unsupported.items()}}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.totals.update(state["totals"])
        self.unsupported.update({stage: Counter(ops) for stage, ops in state["unsupported"].items()})

    def add(self, category: str, passes: Iterable[Pass]) -> int:
        """Record that `passes` ran; returns their FLOPs."""
        flops = self.price(passes)
        self.totals[category] += flops
        return flops

    def mean_price(self, passes_at: Callable[[int], Iterable[Pass]], period: int) -> float:
        """Mean FLOPs per update over one period of the update's pass lists (e.g. actor every 2nd step)."""
        return sum(self.price(passes_at(step)) for step in range(period)) / period

    def price(self, passes: Iterable[Pass]) -> int:
        """FLOPs of `passes`. A tuple is priced once and remembered by identity: agents hand out the same
        tuple for the same phase (seer_bench.agents.curl_sac `_cached`), so a step costs a dict lookup.
        The contract: an agent hands out a new tuple whenever what prices its passes changes (which layers
        train, i.e. its freeze state); a list is always priced afresh."""
        if not isinstance(passes, tuple):
            return sum(self.pass_flops(p) for p in passes)
        hit = self._tuples.get(id(passes))
        if hit is None or hit[0] is not passes:
            hit = self._tuples[id(passes)] = (passes, sum(self.pass_flops(p) for p in passes))
        return hit[1]

    def pass_flops(self, p: Pass) -> int:
        trainable = tuple(q.requires_grad for q in p.stage.parameters())
        key = (p.stage, p.shapes, p.grad, p.input_grad, trainable)  # the stage itself: kept alive, never an id reused
        if key not in self._priced:
            self._priced[key] = self._forward_and_backward(p)
        return self._priced[key] * p.count

    def _forward_and_backward(self, p: Pass) -> int:
        by_module = self.forward_by_module(p.stage, p.shapes)
        total = by_module[""]
        if p.grad == "none":
            return total
        leaves = 0
        for chain in _leaf_chains(p.stage):
            upstream = p.input_grad
            for name, module in chain:
                fwd = by_module.get(name, 0)
                leaves += fwd
                trains = p.grad == "params" and any(q.requires_grad for q in module.parameters())
                total += fwd * (int(trains) + int(upstream))
                upstream = upstream or trains
        if total and leaves != by_module[""]:
            raise ValueError(f"stage {p.stage.name}: {by_module[''] - leaves} forward FLOPs outside the stage's chains: "
                             "put every module that computes in a chain")
        return total

    def forward_by_module(self, stage: Stage, shapes: tuple[tuple[int, ...], ...]) -> dict[str, int]:
        """fvcore's forward FLOPs per module of `stage` on zero inputs of `shapes` (cached).

        Tracing runs the real forward once; the global RNG is restored afterwards so a counted run draws
        the same random numbers as an uncounted one.
        """
        key = (stage, shapes)
        if key not in self._forward:
            device = next(stage.parameters(), torch.empty(0)).device
            inputs = tuple(torch.zeros(s, device=device) for s in shapes)
            fvcore_log = logging.getLogger("fvcore")
            level = fvcore_log.level
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")  # jit tracing's deprecation and tracer warnings, at every trace
                fvcore_log.setLevel(logging.ERROR)
                try:
                    analysis = FlopCountAnalysis(stage, inputs)
                    analysis.unsupported_ops_warnings(False)
                    analysis.uncalled_modules_warnings(False)
                    analysis.tracer_warnings("none")
                    self._forward[key] = dict(analysis.by_module())
                finally:
                    fvcore_log.setLevel(level)
            seen = self.unsupported.setdefault(stage.name, Counter()) if analysis.unsupported_ops() else Counter()
            for op, n in analysis.unsupported_ops().items():  # per forward: the most any trace of it ran
                seen[op] = max(seen[op], n)
        return self._forward[key]
