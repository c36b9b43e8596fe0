"""What an agent computes, described as data, so that the FLOP ledger (seer_bench.instrument.flops) can price
it without the agent importing any instrumentation.

An agent lists the passes that one update, one action or SEER's encoding runs: a `Stage` (real modules of
the agent, grouped into chains of layers), the input shapes, and what the backward pass computes. The
ledger counts each stage's forward once per input shape with fvcore and derives the backward layer by
layer, so counting costs nothing per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

GRAD_MODES = ("none", "params", "inputs")


class Stage(nn.Module):
    """A piece of an agent's computation, `fn`, over real modules of the agent.

    Each child is a chain of layers that reads the stage's input, its leaf modules running in registration
    order (e.g. `q1` and `q2`, each a Sequential; or `head`, a ModuleList of the Linear and the
    LayerNorm). That order is what lets the ledger tell which layers need an input gradient.
    """

    def __init__(self, name: str, fn: Callable, **chains: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        for name, chain in chains.items():
            self.add_module(name, chain)

    def forward(self, *inputs):
        return self.fn(*inputs)


class PassBook:
    """The bookkeeping both agents need to hand the ledger their passes cheaply: each `Stage` built once per
    (freeze split, name) by the agent's `_build_stage(name)`, each pass list once per (split, key).

    The ledger prices a tuple once and remembers it by identity, so handing out the same tuple for the same
    phase makes counting a dictionary lookup per step. An agent sets `split` (None until SEER freezes it) and
    the empty dicts `_stages` and `_pass_lists` in its constructor.
    """

    split: str | None
    _stages: dict[tuple, Stage]
    _pass_lists: dict[tuple, tuple[Pass, ...]]

    def _build_stage(self, name: str) -> Stage:
        raise NotImplementedError

    def _stage(self, name: str) -> Stage:
        key = (self.split, name)  # what a stage spans (lower, upper convs) depends on the split
        if key not in self._stages:
            self._stages[key] = self._build_stage(name)
        return self._stages[key]

    def _cached(self, key: tuple, build: Callable[[], list[Pass]]) -> tuple[Pass, ...]:
        """One tuple per key: the lists only change when `freeze` does."""
        key = (self.split, *key)
        if key not in self._pass_lists:
            self._pass_lists[key] = tuple(build())
        return self._pass_lists[key]


@dataclass(frozen=True)
class Pass:
    """One run of `stage` on inputs of `shapes`, `count` times.

    grad: "none" (no backward), "params" (the backward computes gradients for the stage's trainable
    parameters, and input gradients where an earlier layer or the input needs them), "inputs" (only
    gradients with respect to the input, e.g. the critic inside the actor loss).
    input_grad: the stage's input carries a gradient back to an earlier pass (something upstream trains).
    """

    stage: Stage
    shapes: tuple[tuple[int, ...], ...]
    grad: str = "none"
    input_grad: bool = False
    count: int = 1

    def __post_init__(self) -> None:
        if self.grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {', '.join(GRAD_MODES)}, got {self.grad!r}")
        if self.grad == "inputs" and not self.input_grad:
            raise ValueError("grad 'inputs' computes input gradients: input_grad must be True")
