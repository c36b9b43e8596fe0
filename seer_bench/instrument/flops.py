"""The FLOP ledger: what the real calls of a run computed, observed while they run and priced with fvcore.

Convention: fvcore's, one multiply-add = one FLOP (torch's FlopCounterMode counts two).

The runner hands every call that computes (an action, an update, SEER's encoding of pixels) to
`FlopLedger.observe`. The first call of each kind (a key such as ("update", phase, step parity)) runs under a
`CallRecorder`, which watches the agent's leaf modules while the call runs:
- forward: which modules ran, on which input shapes (a forward hook per leaf module);
- backward: for each backward pass (autograd graph task), whether the gradient reached a call's output,
  whether it went on to one of the call's inputs (a tensor hook on each input that requires a gradient)
  and whether the module's own parameters received a gradient in that pass (a post-accumulate hook per
  parameter). So `backward(inputs=...)`, detached inputs and frozen layers are priced as autograd ran them.
Each module call costs its fvcore forward at those shapes, plus that forward once per backward pass that
computed its weight gradients and once per pass that computed its input gradient: 2x for a training layer
inside a network, 1x for the first conv on pixels or for a layer that only passes gradients through (the
critic inside the actor loss), 0 for a layer that ran without gradient. For one layer with two inputs and
a weight (CURL's z_a W z_pos^T) this is exact to one term: it costs 2x for z_a (W z_pos^T) and 1x for
W z_pos^T, priced 2x (F*F*B extra per contrastive update, 6e-6 of it at batch 128).

Later calls of the same key add the remembered price: a dictionary lookup. Every `REOBSERVE_EVERY`-th call
of a key is observed again, and a price that changed replaces the old one (and is counted in
`price_changes`), so an agent whose calls vary in a way its key does not capture is caught, not trusted.
Computation outside modules (losses, sampling, elementwise policy math) is not priced: fvcore counts none
of it, and torch's counter finds no matrix products there in the stock agents (tests compare the two).

fvcore's warnings about operators it does not count (elementwise ops inside a module, e.g. a noisy layer's
weight sampling) are collected per module in `unsupported` and listed once, not printed at every trace.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

CATEGORIES = ("act", "update", "encode", "convert")
REOBSERVE_EVERY = 1024  # calls of one key between two observations of it


def _task() -> int:
    return torch._C._current_graph_task_id()  # the backward pass (graph task) a hook fires in


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


@dataclass
class ModuleCall:
    """One call of a leaf module: its inputs, and the backward passes that reached it."""

    name: str
    module: nn.Module
    args: tuple  # tensors replaced by (shape, dtype); other arguments kept as they were
    out_tasks: set[int] = field(default_factory=set)  # passes whose gradient reached the output
    in_tasks: set[int] = field(default_factory=set)  # passes that computed an input's gradient


class CallRecorder:
    """While open, records every call of the leaf modules of `modules` and what autograd computed for it."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.leaves: dict[int, tuple[str, nn.Module]] = {}
        for prefix, root in modules.items():
            for name, m in root.named_modules(prefix=prefix):
                if not list(m.children()):
                    self.leaves.setdefault(id(m), (name, m))
        self.calls: list[ModuleCall] = []
        # id(parameter) -> passes that filled its grad
        self.param_tasks: dict[int, set[int]] = defaultdict(set)
        self._handles: list[Any] = []

    def __enter__(self) -> "CallRecorder":
        params = {id(p): p for _, m in self.leaves.values() for p in m.parameters()}
        for name, m in self.leaves.values():
            self._handles.append(m.register_forward_hook(self._hook(name)))
        for p in params.values():
            if p.requires_grad:
                self._handles.append(
                    p.register_post_accumulate_grad_hook(lambda q: self.param_tasks[id(q)].add(_task()))
                )
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str) -> Callable:
        def record(module: nn.Module, args: tuple, output: Any) -> None:
            spec = tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a for a in args)
            call = ModuleCall(name, module, spec)
            self.calls.append(call)
            if not torch.is_grad_enabled():
                return
            for out in _tensors(output):
                if out.requires_grad:
                    out.register_hook(lambda _g, c=call: c.out_tasks.add(_task()))
            for inp in _tensors(args):
                if inp.requires_grad:
                    inp.register_hook(lambda _g, c=call: c.in_tasks.add(_task()))

        return record

    def backward_passes(self, call: ModuleCall) -> tuple[int, int]:
        """(passes that computed the call's weight gradients, passes that computed its input gradient)."""
        params = [p for p in call.module.parameters() if p.requires_grad]
        weights = sum(1 for t in call.out_tasks if any(t in self.param_tasks[id(p)] for p in params))
        return weights, len(call.out_tasks & call.in_tasks)


class FlopLedger:
    """Cumulative FLOPs per category of the calls a run makes, each kind observed and priced once."""

    def __init__(self, modules: dict[str, nn.Module] | None = None) -> None:
        self.modules = modules or {}  # the agent's networks, by attribute name (seer_bench.agents.contract)
        self.totals: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self.unsupported: dict[str, Counter] = {}
        self.prices: dict[Hashable, int] = {}  # key -> FLOPs of one call of that kind
        self.price_changes = 0  # re-observations that found a different price
        self._calls: Counter = Counter()
        self._forward: dict[tuple, int] = {}

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def state_dict(self) -> dict[str, dict]:
        """What a checkpoint keeps: the totals and the ops fvcore could not count (prices are observed
        again after a resume)."""
        return {
            "totals": dict(self.totals),
            "unsupported": {name: dict(ops) for name, ops in self.unsupported.items()},
        }

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.totals.update(state["totals"])
        self.unsupported.update({name: Counter(ops) for name, ops in state["unsupported"].items()})

    def observe(self, category: str, key: Hashable, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)`, add its FLOPs to `category` and return its result. `key` names the
        kind of call: the same key must mean the same computation (e.g. the phase and step parity)."""
        self._calls[key] += 1
        known = self.prices.get(key)
        if known is not None and self._calls[key] % REOBSERVE_EVERY:
            result = fn(*args, **kwargs)
        else:
            result, price = self.measure(fn, *args, **kwargs)
            self.price_changes += known is not None and price != known
            self.prices[key] = known = price
        self.totals[category] += known
        return result

    def measure(self, fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, int]:
        """Run `fn` once under a CallRecorder; (its result, its FLOPs)."""
        with CallRecorder(self.modules) as recorder:
            result = fn(*args, **kwargs)
        return result, self.price(recorder)

    def price(self, recorder: CallRecorder) -> int:
        total = 0
        for call in recorder.calls:
            weights, inputs = recorder.backward_passes(call)
            total += self.forward(call) * (1 + weights + inputs)
        return total

    def mean_price(self, keys: Iterable[Hashable]) -> float:
        """Mean price of the observed keys among `keys` (NaN when none is observed yet)."""
        prices = [self.prices[k] for k in keys if k in self.prices]
        return sum(prices) / len(prices) if prices else math.nan

    def forward(self, call: ModuleCall) -> int:
        """fvcore's forward FLOPs of one module call, on zero inputs of the call's shapes (cached).

        Tracing runs the real forward once per module structure (the critic's, the actor's and the target's
        convs are traced once); the global RNG is restored afterwards so a counted run draws the same random
        numbers as an uncounted one.
        """
        key = (_structure(call.module), call.args)
        if key not in self._forward:
            self._forward[key] = self._fvcore_forward(call)
        return self._forward[key]

    def _fvcore_forward(self, call: ModuleCall) -> int:
        device = next(call.module.parameters(), torch.empty(0)).device
        inputs = tuple(
            torch.zeros(a[0], dtype=a[1], device=device) if _is_tensor_spec(a) else a for a in call.args
        )
        fvcore_log = logging.getLogger("fvcore")
        level = fvcore_log.level
        with (
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
            torch.no_grad(),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")  # jit tracing's deprecation and tracer warnings, at every trace
            fvcore_log.setLevel(logging.ERROR)
            try:
                analysis = FlopCountAnalysis(call.module, inputs)
                analysis.unsupported_ops_warnings(False)
                analysis.uncalled_modules_warnings(False)
                analysis.tracer_warnings("none")
                flops = analysis.total()
            finally:
                fvcore_log.setLevel(level)
        seen = self.unsupported.setdefault(call.name, Counter()) if analysis.unsupported_ops() else Counter()
        for op, n in analysis.unsupported_ops().items():  # per forward: the most any trace of it ran
            seen[op] = max(seen[op], n)
        return flops


def _structure(module: nn.Module) -> tuple:
    """What a module's forward FLOPs depend on, apart from its inputs: its class, its settings (the
    `extra_repr` torch's modules print: kernel, stride, features...), its parameter and buffer shapes and its
    mode. Two modules alike in all of these compute the same."""
    return (
        type(module),
        module.extra_repr(),
        module.training,
        tuple((n, tuple(t.shape)) for n, t in [*module.named_parameters(), *module.named_buffers()]),
    )


def _is_tensor_spec(arg: Any) -> bool:
    return isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], torch.dtype)
