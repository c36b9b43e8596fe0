"""Steps shared by the actor-critic agents: one loss through several optimizers, and Polyak averaging of a
target network that skips what SEER froze."""

from __future__ import annotations

import torch
from torch import nn


def optimize(
    optimizers: tuple[torch.optim.Optimizer, ...],
    loss: torch.Tensor,
    inputs: list[torch.Tensor] | None = None,
) -> None:
    """Clear the optimizers' gradients, backpropagate `loss` (into `inputs` only, when given), then step each
    optimizer in the given order (the order the reference code steps them)."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward(inputs=inputs)
    for opt in optimizers:
        opt.step()


def holds_trainable(opt: torch.optim.Optimizer) -> bool:
    """Whether `opt` still has a parameter to move (after SEER's freeze some hold frozen ones only)."""
    return any(p.requires_grad for group in opt.param_groups for p in group["params"])


def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau net, for the parameters that still train (frozen ones are equal).

    One foreach call instead of a lerp_ per tensor: the same kernel per tensor, without a Python round trip
    for each (a latent update is small enough for those to show)."""
    pairs = [(p, tp) for p, tp in zip(net.parameters(), target.parameters()) if p.requires_grad]
    if pairs:
        with torch.no_grad():
            torch._foreach_lerp_([tp for _, tp in pairs], [p for p, _ in pairs], tau)
