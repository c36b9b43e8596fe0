"""Agents by name or by import path. An agent is built from its config dataclass, overridable field by field
from a suite, and must meet the agent contract (seer_bench.agents.contract).

A name is one of `AGENTS` ("curl", "der", "drqv2"), or an import path "package.module:ClassName" of any
class that meets the contract and names its config dataclass as the class attribute `Config`. "<agent>+seer"
is that agent with SEER applied by the runner (seer_bench.agents.seer): the same class and config, plus a
SeerConfig carried by the RunSpec.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from seer_bench.agents.curl_sac import CurlSac
from seer_bench.agents.der import Der
from seer_bench.agents.drqv2 import DrQV2
from seer_bench.errors import ConfigError, config_from
from seer_bench.names import SEER_SUFFIX, baseline_of, uses_seer  # noqa: F401 - re-exported

_BASE_AGENTS: dict[str, type] = {"curl": CurlSac, "der": Der, "drqv2": DrQV2}
AGENTS: dict[str, type] = {**_BASE_AGENTS, **{name + SEER_SUFFIX: cls for name, cls in _BASE_AGENTS.items()}}


def agent_class(name: str) -> type:
    """The class of agent `name`: registered, or imported from "package.module:ClassName" (+seer or not)."""
    if name in AGENTS:
        return AGENTS[name]
    base = name.removesuffix(SEER_SUFFIX)
    if ":" not in base:
        raise ConfigError(
            f"unknown agent {name!r}; known: {', '.join(AGENTS)}, or an import path package.module:ClassName"
        )
    module, _, attr = base.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise ConfigError(f"agent {name!r}: cannot import module {module!r} ({e})") from None
    except AttributeError:
        raise ConfigError(f"agent {name!r}: module {module!r} has no {attr!r}") from None
    config = getattr(cls, "Config", None)
    if not isinstance(cls, type) or not (
        isinstance(config, type) and hasattr(config, "__dataclass_fields__")
    ):
        raise ConfigError(
            f"agent {name!r}: expected a class with a dataclass `Config` attribute (its settings)"
        )
    if "batch_size" not in config.__dataclass_fields__:
        raise ConfigError(f"agent {name!r}: its Config has no `batch_size` field (agents.contract)")
    return cls


def agent_config(name: str, overrides: dict[str, Any]) -> Any:
    """The agent's config with suite overrides applied; unknown or mistyped keys are named in the error."""
    return config_from(agent_class(name).Config, overrides, f"agent {name}")


def make_agent(
    name: str, cfg: Any, obs_shape: tuple[int, int, int], action_dim: int, device: torch.device, seed: int
) -> Any:
    return agent_class(name)(obs_shape, action_dim, cfg, device, seed)
