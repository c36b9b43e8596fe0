"""Agents by name. An agent is built from its config dataclass, overridable field by field from a suite."""

from __future__ import annotations

from typing import Any, Callable

import torch

from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.der import Der, DerConfig
from seer_bench.errors import ConfigError, config_from
from seer_bench.names import SEER_SUFFIX, baseline_of, uses_seer  # noqa: F401 - re-exported

_BASE_AGENTS: dict[str, tuple[type, Callable[..., Any]]] = {"curl": (CurlConfig, CurlSac), "der": (DerConfig, Der)}

# name -> (config class, constructor). "<base>+seer" is the base agent with SEER applied by the runner
# (seer_bench.agents.seer): the same class and config, plus a SeerConfig carried by the RunSpec.
AGENTS: dict[str, tuple[type, Callable[..., Any]]] = {
    **_BASE_AGENTS, **{name + SEER_SUFFIX: entry for name, entry in _BASE_AGENTS.items()}}


def agent_config(name: str, overrides: dict[str, Any]) -> Any:
    """The agent's config with suite overrides applied; unknown or mistyped keys are named in the error."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    return config_from(AGENTS[name][0], overrides, f"agent {name}")


def make_agent(name: str, cfg: Any, obs_shape: tuple[int, int, int], action_dim: int,
               device: torch.device, seed: int) -> Any:
    return AGENTS[name][1](obs_shape, action_dim, cfg, device, seed)
