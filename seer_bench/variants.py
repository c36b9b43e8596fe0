"""Variants: any agent or SEER setting overridden or swept, each combination a labelled run.

`--set seer.freeze_at=5000,10000 --set agent.batch_size=128,512` (or a suite's `[sweep]` table) asks for
the grid of those values. A run of one combination is a variant of its agent, labelled with the settings
it was given, e.g. `curl+seer[batch_size=128,freeze_at=5000]`. The label is part of the run id, so one
results tree holds the unlabelled baseline and every variant side by side, and reports group by it.

Keys are `agent.<field>` (a field of the agent's config dataclass; every agent of the sweep gets it) or
`seer.<field>` (a SeerConfig field; only agents named `<base>+seer` get it, the others run once,
unlabelled). Values are TOML scalars (5000, 3e-4, true) or bare strings (fc, float16).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from seer_bench.agents.seer import SeerConfig
from seer_bench.errors import ConfigError
from seer_bench.suite_files import tomllib  # tomli before Python 3.11

NAMESPACES = ("agent", "seer")


def parse_value(text: str) -> Any:
    """A TOML scalar (int, float, bool, quoted string), else the text itself as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(text: str) -> tuple[str, list[Any]]:
    """`namespace.key=v1,v2,...` -> (key, values), with the namespace checked; fields are checked later,
    against each agent's config, by `check_keys`."""
    key, sep, values = text.partition("=")
    key = key.strip()
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not items:
        raise ConfigError(f"--set {text!r}: expected namespace.setting=value[,value...]")
    namespace, dot, field = key.partition(".")
    if namespace not in NAMESPACES or not dot or not field:
        raise ConfigError(
            f"--set {text!r}: the setting must be agent.<setting> or seer.<setting>, got {key!r}"
        )
    parsed = [parse_value(v) for v in items]
    if len(set(map(repr, parsed))) < len(parsed):
        raise ConfigError(f"--set {key}: a value is listed twice in {values!r}")
    return key, parsed


def sweep_table(where: str, table: Any) -> dict[str, list[Any]]:
    """A suite's `[sweep]` table (`"seer.freeze_at" = [5000, 10000]`), in the form `parse_set` returns."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of setting = [values], got {table!r}")
    sweep = {}
    for key, values in table.items():
        values = values if isinstance(values, list) else [values]
        text = ",".join(v if isinstance(v, str) else repr(v).lower() for v in values)
        try:
            sweep.update([parse_set(f"{key}={text}")])
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return sweep


def check_sets(sets: dict[str, list[Any]], agents: list[str], uses_seer: Any) -> None:
    """Every key names a setting of each agent it applies to (SEER keys: only SEER agents) and every value
    is one that setting accepts: errors name the flag, key and value before any run."""
    from seer_bench.agents import agent_config

    for key, values in sets.items():
        namespace, _, field = key.partition(".")
        if namespace == "seer" and not any(uses_seer(a) for a in agents):
            raise ConfigError(f"--set {key}: no agent of this sweep uses SEER ({', '.join(agents)})")
        for value in values:
            try:
                if namespace == "seer":
                    _seer_value(field, value)
                else:
                    for agent in agents:
                        agent_config(agent, {field: value})
            except ConfigError as e:
                raise ConfigError(f"--set {key}={value}: {e}") from None


def _seer_value(field: str, value: Any) -> None:
    """`value` is a valid SEER `field`: a known field, of its type, accepted by SeerConfig."""
    kinds = {f.name: f.type for f in dataclasses.fields(SeerConfig)}  # "int", "str" (postponed annotations)
    if field not in kinds:
        raise ConfigError(f"not a SEER setting; known: {', '.join(kinds)}")
    if type(value).__name__ != kinds[field]:
        raise ConfigError(f"expects {kinds[field]}, got {value!r}")
    try:
        SeerConfig(**{"freeze_at": 1, field: value})
    except ValueError as e:
        raise ConfigError(str(e)) from None


def grid(sets: dict[str, list[Any]], seer: bool) -> list[dict[str, Any]]:
    """Every combination of the values that apply to an agent (`seer`: it uses SEER), as {key: value};
    [{}] when nothing applies (the agent runs once, unlabelled)."""
    keys = [k for k in sets if seer or not k.startswith("seer.")]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sets[k] for k in keys))]


def settings_of(variant: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The variant's settings of one namespace, keyed by field."""
    return {k.partition(".")[2]: v for k, v in variant.items() if k.startswith(namespace + ".")}
