"""Agent names, readable without importing any agent (reports use them): "<base>+seer" is the base agent
with SEER applied, compared with the base agent; "<agent>[field=value,...]" a variant of it (seer_bench.
variants), compared with the baseline that has the same agent settings."""

from __future__ import annotations

from typing import Any

SEER_SUFFIX = "+seer"


def uses_seer(name: str) -> bool:
    return name.endswith(SEER_SUFFIX)


def baseline_of(name: str) -> str | None:
    """The agent a SEER agent is compared with ("curl" for "curl+seer"); None for a base agent."""
    return name[: -len(SEER_SUFFIX)] if uses_seer(name) else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def label(agent: str, variant: dict[str, Any]) -> str:
    """`agent[field=value,...]` (sorted by field; namespaced where two namespaces share a field name), or
    the agent's name for the unlabelled run."""
    if not variant:
        return agent
    fields = [k.partition(".")[2] for k in variant]
    named = {
        (k if fields.count(k.partition(".")[2]) > 1 else k.partition(".")[2]): v for k, v in variant.items()
    }
    return f"{agent}[{','.join(f'{k}={_text(v)}' for k, v in sorted(named.items()))}]"


def run_id(label: str, env: str, budget_gb: float, seed: int) -> str:
    """A run's directory under runs/, and its name everywhere: 10 significant digits of the budget, so a
    budget chosen to hold an exact count (0.180013, 14.40104) keeps its own id."""
    return f"{label}/{env}/budget_{budget_gb:.10g}/seed_{seed}"


def base_label(agent: str, variant: dict[str, Any]) -> str:
    """The label of the run a variant's FLOPs are compared with: its agent without SEER, with the same
    agent settings (SEER settings do not apply to it)."""
    return label(
        agent.removesuffix(SEER_SUFFIX), {k: v for k, v in variant.items() if k.startswith("agent.")}
    )
