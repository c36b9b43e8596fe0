"""Agent names, readable without importing any agent (reports use them): "<base>+seer" is the base agent
with SEER applied, compared with the base agent."""

from __future__ import annotations

SEER_SUFFIX = "+seer"


def uses_seer(name: str) -> bool:
    return name.endswith(SEER_SUFFIX)


def baseline_of(name: str) -> str | None:
    """The agent a SEER agent is compared with ("curl" for "curl+seer"); None for a base agent."""
    return name[: -len(SEER_SUFFIX)] if uses_seer(name) else None
