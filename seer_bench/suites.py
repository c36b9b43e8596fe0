"""Suite files (TOML) and CLI overrides -> a list of fully resolved, validated RunSpecs.

A suite names envs (with their action repeats), agents, a default memory budget and named scales, and
optionally how envs are rendered (`[env_options]`) and agent settings per task (`[agent_by_env.ENV]`, as
DrQ-v2's per-task configs). A scale sets the run length in environment steps, the evaluation cadence, the
seed count, and optionally overrides the budget, the action repeat (one number or a table per env) or agent
hyperparameters (`[scales.NAME.agent]`, which win over the per-task settings). A `[seer]` table configures
SEER for the agents named "<base>+seer": T_f per env (`[seer.freeze_at]`, agent steps; a scale may set its
own `freeze_at`, one number or a table per env), `num_copies`, `split`, `latent_dtype` and `capacity`. A
`[sweep]` table (`"seer.freeze_at" = [5000, 10000]`) runs each combination of its values as a labelled
variant, as `--set` does (seer_bench.variants).
Everything is checked here, before any training starts, and every error names the file and key at fault.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer_bench.agents.seer import SeerConfig
from seer_bench.envs import ATARI_GAMES, DMC_TASKS, KNOWN_ENVS, env_options
from seer_bench.errors import ConfigError
from seer_bench.names import label, run_id
from seer_bench.suite_files import (  # noqa: F401 - SUITES_DIR, available_suites re-exported
    SUITES_DIR,
    available_suites,
    did_you_mean,
    read_toml,
    suite_path,
)
from seer_bench.variants import check_sets, grid, settings_of, sweep_table

_SUITE_KEYS = {
    "description",
    "agents",
    "default_scale",
    "budget_gb",
    "replay_layout",
    "envs",
    "env_options",
    "scales",
    "seer",
    "agent_by_env",
    "sweep",
}
_SCALE_KEYS = {
    "steps",
    "eval_every",
    "eval_episodes",
    "seeds",
    "budget_gb",
    "agent",
    "freeze_at",
    "action_repeat",
}
_SEER_TYPES = {"freeze_at": int, "num_copies": int, "split": str, "latent_dtype": str, "capacity": str}
_SEER_KEYS = set(_SEER_TYPES)
OTHER_ACTION_REPEAT = 2  # a DeepMind Control task outside PlaNet's six (DrQ-v2 and CURL's other tasks use 2)


MAX_BUDGET_BYTES = 2**63 - 1  # the largest byte count a 64-bit size holds (mmap, numpy shapes)


@dataclass(frozen=True)
class RunSpec:
    """One run: (agent, env, seed, budget) plus everything needed to reproduce it."""

    suite: str
    scale: str
    agent: str
    env: str
    action_repeat: int
    seed: int
    budget_gb: float
    steps: int  # environment steps
    eval_every: int  # environment steps
    eval_episodes: int
    replay_layout: str
    device: str
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    seer: SeerConfig | None = None  # set for "<base>+seer" agents only
    env_options: dict[str, Any] = field(default_factory=dict)  # e.g. Atari preprocessing (envs.AtariOptions)
    variant: dict[str, Any] = field(
        default_factory=dict
    )  # settings given by --set or [sweep], e.g. seer.freeze_at
    # where the replay keeps observations and latents: "host" memory, or the run's "device" as tensors
    # (seer_bench.device_replay); the same batches either way, so not part of the run id
    replay_device: str = "host"

    @property
    def label(self) -> str:
        """The agent, with the variant's settings: `curl+seer[freeze_at=5000]`."""
        return label(self.agent, self.variant)

    @property
    def agent_steps(self) -> int:
        return self.steps // self.action_repeat

    @property
    def budget_bytes(self) -> int:
        return round(self.budget_gb * 1e9)

    @property
    def run_id(self) -> str:
        return run_id(self.label, self.env, self.budget_gb, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        """Inverse of `to_dict` (how a spec travels to a worker process)."""
        seer = data.get("seer")
        return cls(**{**data, "seer": SeerConfig(**seer) if seer else None})


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    agents: list[str]
    default_scale: str
    budget_gb: list[float]  # the budgets a sweep runs by default (one or several)
    replay_layout: str
    envs: dict[str, int]
    scales: dict[str, dict[str, Any]]
    seer: dict[str, Any] = field(default_factory=dict)
    env_options: dict[str, Any] = field(default_factory=dict)
    agent_by_env: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-task agent settings
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # setting -> values, as --set gives them


def _require(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def _positive_int(where: str, value: Any) -> int:
    _require(where, value, int, "a positive integer")
    if value <= 0:
        raise ConfigError(f"{where}: must be positive, got {value}")
    return value


def _positive_float(where: str, value: Any) -> float:
    _require(where, value, (int, float), "a positive number")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: must be positive, got {value}")
    return float(value)


def load_suite(name_or_path: str) -> Suite:
    path = suite_path(name_or_path)
    data = read_toml(path)
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_SUITE_KEYS))}"
        )
    for key in ("agents", "envs", "scales", "default_scale", "budget_gb"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    envs = _require(f"{path}: envs", data["envs"], dict, "a table of task = action_repeat")
    if not envs:
        raise ConfigError(f"{path}: envs: the table is empty")
    for env, repeat in envs.items():
        if env not in KNOWN_ENVS:
            raise ConfigError(
                f"{path}: envs.{env}: neither a DeepMind Control task nor an Atari game known here"
                + did_you_mean(env, KNOWN_ENVS)
            )
        _positive_int(f"{path}: envs.{env}", repeat)
    scales = _require(f"{path}: scales", data["scales"], dict, "a table of scales")
    for scale, body in scales.items():
        _check_scale(f"{path}: scales.{scale}", body, envs)
    default_scale = data["default_scale"]
    if default_scale not in scales:
        raise ConfigError(
            f"{path}: default_scale {default_scale!r} is not one of the scales ({', '.join(scales)})"
        )
    agents = _require(f"{path}: agents", data["agents"], list, "a list of agent names")
    if not agents:
        raise ConfigError(f"{path}: agents: the list is empty")
    _no_repeats(f"{path}: agents", agents)
    seer = _require(f"{path}: seer", data.get("seer", {}), dict, "a table of SEER settings")
    bad = set(seer) - _SEER_KEYS
    if bad:
        raise ConfigError(
            f"{path}: seer: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_SEER_KEYS))}"
        )
    if "freeze_at" in seer:
        _per_env_steps(f"{path}: seer.freeze_at", seer["freeze_at"], envs)
    by_env = _agent_by_env(path, data.get("agent_by_env", {}), envs, agents)
    env_opts = _require(f"{path}: env_options", data.get("env_options", {}), dict, "a table of env settings")
    for env in envs:
        env_options(env, env_opts, where=f"{path}: env_options")
    return Suite(
        name=path.stem,
        path=path,
        description=str(data.get("description", "")),
        agents=list(agents),
        default_scale=default_scale,
        budget_gb=budget_list(f"{path}: budget_gb", data["budget_gb"]),
        replay_layout=str(data.get("replay_layout", "paper")),
        envs=dict(envs),
        scales=scales,
        seer=seer,
        env_options=env_opts,
        agent_by_env=by_env,
        sweep=sweep_table(f"{path}: sweep", data.get("sweep", {})),
    )


def _agent_by_env(path: Path, value: Any, envs: dict[str, int], agents: list[str]) -> dict[str, dict]:
    """Per-task agent settings, checked against every suite agent's config now (not only when that task
    runs)."""
    from seer_bench.agents import agent_config

    by_env = _require(f"{path}: agent_by_env", value, dict, "a table of env tables")
    for env, settings in by_env.items():
        _in_suite(f"{path}: agent_by_env.{env}", env, envs)
        _require(f"{path}: agent_by_env.{env}", settings, dict, "a table of agent settings")
        for agent in agents:
            try:
                agent_config(agent, settings)
            except ConfigError as e:
                raise ConfigError(f"{path}: agent_by_env.{env}: {e}") from None
    return by_env


def _check_scale(where: str, body: Any, envs: dict[str, int]) -> None:
    _require(where, body, dict, "a table")
    bad = set(body) - _SCALE_KEYS
    if bad:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_SCALE_KEYS))}"
        )
    for key in ("steps", "eval_every", "eval_episodes", "seeds"):
        if key not in body:
            raise ConfigError(f"{where}: missing key {key!r}")
    for key in ("steps", "eval_every", "eval_episodes"):
        _positive_int(f"{where}.{key}", body[key])
    seed_list(f"{where}.seeds", body["seeds"])
    if "budget_gb" in body:
        budget_list(f"{where}.budget_gb", body["budget_gb"])
    _require(f"{where}.agent", body.get("agent", {}), dict, "a table of agent settings")
    if "freeze_at" in body:
        _per_env_steps(f"{where}.freeze_at", body["freeze_at"], envs)
    if "action_repeat" in body:
        _per_env_steps(f"{where}.action_repeat", body["action_repeat"], envs)


def seed_list(where: str, value: Any) -> list[int]:
    """`seeds = N` (seeds 0..N-1) or a list of distinct seeds (the public SEER scripts use 123, 231, 312)."""
    if not isinstance(value, list):
        return list(range(_positive_int(where, value)))
    if not value:
        raise ConfigError(f"{where}: the list of seeds is empty")
    for seed in value:
        _require(where, seed, int, "a count of seeds or a list of non-negative integer seeds")
        if seed < 0:
            raise ConfigError(f"{where}: seeds must be non-negative, got {seed}")
    if len(set(value)) < len(value):
        raise ConfigError(f"{where}: a seed is listed twice in {value}")
    return list(value)


def budget_list(where: str, value: Any) -> list[float]:
    """One budget in GB or a list of them (a sweep over budgets)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where}: the list of budgets is empty")
    return _no_repeats(where, [_positive_float(where, v) for v in values])


def _in_suite(where: str, env: str, envs: dict[str, int]) -> None:
    if env not in envs:
        raise ConfigError(f"{where}: not an env of this suite ({', '.join(envs)})")


def _per_env_steps(where: str, value: Any, envs: dict[str, int]) -> None:
    """One positive integer, or a table env -> positive integer covering only suite envs (T_f in agent
    steps, a scale's action repeat)."""
    if isinstance(value, dict):
        for env, steps in value.items():
            _in_suite(f"{where}.{env}", env, envs)
            _positive_int(f"{where}.{env}", steps)
    else:
        _positive_int(where, value)


def _per_env(value: Any, env: str, default: Any) -> Any:
    """The value of a per-env setting (`_per_env_steps`) for `env`."""
    return value.get(env, default) if isinstance(value, dict) else value


def _seer_config(
    suite: Suite, scale: dict[str, Any], env: str, ov: "Overrides", variant: dict[str, Any]
) -> SeerConfig:
    """SEER settings for one env: the variant's (--set, [sweep]), else the CLI flag, else the scale's
    freeze_at, else the suite's [seer] table."""
    where = f"{suite.path}: seer"
    chosen = {k: v for k, v in suite.seer.items() if k != "freeze_at"}
    table = scale.get("freeze_at", suite.seer.get("freeze_at"))
    # a task outside the suite takes the T_f its tasks share, if they share one (dmc6: 10,000)
    shared = set(table.values()) if isinstance(table, dict) else set()
    freeze = ov.freeze_at or _per_env(table, env, shared.pop() if len(shared) == 1 else None)
    if freeze is not None:
        chosen["freeze_at"] = freeze
    for key, flag in (
        ("num_copies", ov.num_copies),
        ("latent_dtype", ov.latent_dtype),
        ("split", ov.seer_split),
        ("capacity", ov.seer_capacity),
    ):
        if flag is not None:
            chosen[key] = flag
    chosen.update(settings_of(variant, "seer"))  # checked by variants.check_sets
    if "freeze_at" not in chosen:
        raise ConfigError(f"{where}.freeze_at: no T_f for {env}; set it in the suite or pass --freeze-at")
    for key, kind in _SEER_TYPES.items():
        if key in chosen:
            _require(f"{where}.{key}", chosen[key], kind, kind.__name__)
    try:
        return SeerConfig(**chosen)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


@dataclass
class Overrides:
    """CLI flags; None means 'take the suite's value'. Lists come from comma-separated flags."""

    scale: str | None = None
    envs: list[str] | None = None
    agents: list[str] | None = None
    seeds: int | None = None  # seeds 0..N-1 instead of the scale's
    steps: int | None = None
    eval_every: int | None = None
    budgets_gb: list[float] | None = None
    replay_layout: str | None = None
    device: str = "auto"
    replay_device: str = "host"
    freeze_at: int | None = None  # agent steps; only agents using SEER read it
    num_copies: int | None = None
    latent_dtype: str | None = None
    seer_split: str | None = None
    seer_capacity: str | None = None
    action_repeat: int | None = None  # every env's, instead of the suite's or default_action_repeat's
    sets: dict[str, list[Any]] = field(default_factory=dict)  # --set: setting -> values (a grid of variants)


def resolve(
    suite: Suite, ov: Overrides, known_agents: dict[str, Any], known_envs: frozenset[str]
) -> list[RunSpec]:
    """Expand a suite and its overrides into RunSpecs, validating every name and number first."""
    from seer_bench.agents import uses_seer

    scale_name, envs, agents, budgets = _selection(suite, ov, known_agents, known_envs)
    scale = suite.scales[scale_name]
    steps, eval_every = ov.steps or scale["steps"], ov.eval_every or scale["eval_every"]
    common = dict(
        suite=suite.name,
        scale=scale_name,
        steps=steps,
        eval_every=eval_every,
        device=ov.device,
        replay_device=ov.replay_device,
        eval_episodes=scale["eval_episodes"],
        replay_layout=ov.replay_layout or suite.replay_layout,
        env_options=dict(suite.env_options),
    )
    seeds = range(ov.seeds) if ov.seeds else seed_list("seeds", scale["seeds"])
    sets = {**suite.sweep, **ov.sets}  # a --set of a key replaces the suite's sweep of it
    specs = []
    for agent in agents:
        for env in envs:
            repeat = ov.action_repeat or _per_env(
                scale.get("action_repeat", {}), env, default_action_repeat(suite, env)
            )
            for flag, value in (("--steps", steps), ("--eval-every", eval_every)):
                if value % repeat:
                    raise ConfigError(
                        f"{env}: {flag} {value} is in env steps and must be a multiple of the "
                        f"action repeat ({repeat})"
                    )
            for variant in grid(sets, uses_seer(agent)):
                seer = _seer_config(suite, scale, env, ov, variant) if uses_seer(agent) else None
                # per-task settings, then the scale's (a scale's deviations win), then the variant's
                agent_settings = {**suite.agent_by_env.get(env, {}), **scale.get("agent", {})}
                agent_settings.update(settings_of(variant, "agent"))
                specs += [
                    RunSpec(
                        agent=agent,
                        env=env,
                        action_repeat=repeat,
                        seed=seed,
                        budget_gb=budget,
                        seer=seer,
                        agent_overrides=agent_settings,
                        variant=variant,
                        **common,
                    )
                    for budget in budgets
                    for seed in seeds
                ]
    _distinct_run_ids(specs)
    return specs


def _distinct_run_ids(specs: list[RunSpec]) -> None:
    """Refuse two runs that would share one directory (budgets equal to 10 significant digits): one would
    overwrite the other's records, and the next sweep would refuse the directory as a changed config."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        other = seen.setdefault(spec.run_id, spec)
        if other is not spec and other.budget_gb != spec.budget_gb:
            raise ConfigError(
                f"budgets {other.budget_gb!r} and {spec.budget_gb!r} GB share the run directory "
                f"{spec.run_id}; give budgets that differ within 10 significant digits"
            )
        if other is not spec:  # variant values equal to 10 significant digits
            raise ConfigError(
                f"variants {other.variant} and {spec.variant} share the run directory {spec.run_id}; give "
                "values that differ within 10 significant digits"
            )


def _no_repeats(where: str, values: list) -> list:
    """A suite list that names an item twice (agents) is a typo that would train one run twice."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{where}: {', '.join(repeated)} listed more than once")
    return values


def _family(env: str) -> str:
    return "Atari game" if env in ATARI_GAMES else "DeepMind Control task"


def _takes_env(suite: Suite, env: str, known_envs: frozenset[str]) -> None:
    """A suite runs any task of its family by name (a DMC suite any dm_control `domain-task`, an Atari suite
    any ALE game), with its defaults; a misspelt name gets the closest known ones."""
    if env in suite.envs:
        return
    if env not in known_envs:
        raise ConfigError(
            f"unknown env {env!r}: it is neither a DeepMind Control task nor an Atari game known here"
            + did_you_mean(env, known_envs)
        )
    families = {_family(e) for e in suite.envs}
    if _family(env) not in families:
        raise ConfigError(
            f"env {env!r} ({_family(env)}) cannot run in suite {suite.name}, which runs "
            f"{' and '.join(sorted(families))}s: use a suite of its family"
        )
    env_options(env, suite.env_options, where=f"{suite.path}: env_options")


def default_action_repeat(suite: Suite, env: str) -> int:
    """The suite's action repeat for `env`; for a task outside it, PlaNet's for the six PlaNet tasks, the
    suite's frame skip for an Atari game (when its games share one), else 2."""
    if env in suite.envs:
        return suite.envs[env]
    if env in DMC_TASKS:
        return DMC_TASKS[env]
    skips = {r for e, r in suite.envs.items() if e in ATARI_GAMES}
    return skips.pop() if env in ATARI_GAMES and len(skips) == 1 else OTHER_ACTION_REPEAT


def _selection(
    suite: Suite, ov: Overrides, known_agents: dict[str, Any], known_envs: frozenset[str]
) -> tuple[str, list[str], list[str], list[float]]:
    """The scale, envs, agents and budgets a sweep asks for, each checked (errors name the flag or key)."""
    from seer_bench.agents import agent_class
    from seer_bench.replay import replay_class

    scale_name = ov.scale or suite.default_scale
    if scale_name not in suite.scales:
        raise ConfigError(
            f"unknown scale {scale_name!r} for suite {suite.name}; known: {', '.join(suite.scales)}"
        )
    envs = ov.envs or list(suite.envs)
    for env in envs:
        _takes_env(suite, env, known_envs)
    agents = ov.agents or suite.agents
    for agent in agents:
        if agent not in known_agents:
            agent_class(agent)  # an import path: importable, with a Config; else an error naming it
    for flag, value in (
        ("--seeds", ov.seeds),
        ("--steps", ov.steps),
        ("--eval-every", ov.eval_every),
        ("--freeze-at", ov.freeze_at),
        ("--num-copies", ov.num_copies),
        ("--action-repeat", ov.action_repeat),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
    budgets = ov.budgets_gb or budget_list(
        "budget_gb", suite.scales[scale_name].get("budget_gb", suite.budget_gb)
    )
    for b in budgets:
        if not math.isfinite(b) or b <= 0:
            raise ConfigError(f"--budget-gb must be positive, got {b:g}")
        if round(b * 1e9) > MAX_BUDGET_BYTES:  # RunSpec.budget_bytes; no array or mapping can be larger
            raise ConfigError(
                f"--budget-gb {b:g} is {b * 1e9:.3g} bytes, more than a 64-bit byte count holds "
                f"({MAX_BUDGET_BYTES / 1e9:.3g} GB)"
            )
    replay_class(ov.replay_layout or suite.replay_layout)
    _check_sets(suite, ov, agents)
    return scale_name, envs, agents, budgets


def _check_sets(suite: Suite, ov: Overrides, agents: list[str]) -> None:
    """--set and [sweep] keys name settings of the sweep's agents; a flag and --set never set one twice."""
    from seer_bench.agents import uses_seer

    check_sets({**suite.sweep, **ov.sets}, agents, uses_seer)
    for flag, key, value in (
        ("--freeze-at", "seer.freeze_at", ov.freeze_at),
        ("--num-copies", "seer.num_copies", ov.num_copies),
        ("--latent-dtype", "seer.latent_dtype", ov.latent_dtype),
        ("--seer-split", "seer.split", ov.seer_split),
        ("--seer-capacity", "seer.capacity", ov.seer_capacity),
    ):
        if value is not None and key in ov.sets:
            raise ConfigError(f"{flag} and --set {key} both set it; give one")
