"""Efficiency claims as data, checked against the records: the regression gate of `bench.py check`.

A claims file (e.g. suites/dmc6.claims.toml) holds `[[claims]]` tables. Each compares an agent with a
baseline on every env and budget the records hold (or the ones it names), with one kind of measurement:

- `flops_ratio`: the agent's cumulative training FLOPs over the baseline's at one env step every seed of
  both reached (interpolated; `tables.flops_ratio`), mean over the seeds finished for both; holds when <=
  `max`.
- `return_gap`: final return of the agent minus the baseline's, means over their finished seeds; holds when
  >= `min` (a tolerance in return units, e.g. -50). With `rule = "ci_overlap"` it is instead the agent's
  upper 95% bound minus the baseline's lower one, and holds when >= 0 (the CIs overlap, or better).
- `capacity_ratio`: replay capacity at the end of the run (after T_f for SEER) over the baseline's, at the
  same budget; holds when >= `min`.

A claim may name the SEER capacity setting it is about (`seer_capacity = "budget"`: the agent's latent
replay fills the byte budget; see seer_bench.agents.seer). Where the agent's runs used another setting the
claim does not apply: it is reported "n/a" with the setting found, and does not move the exit code.

A check that the records cannot decide (an agent, env or budget without finished runs, a run of either
agent there that failed, is still running, never started or has damaged records (untrusted), fewer seeds
than `min_seeds`) is reported as such, with the reason: the gate's exit code is 1 when a claim fails, else
2 when one cannot be decided, else 0. A malformed claims file (or any other bad input to `check`) exits 3,
so that CI can tell a broken gate from records that are not complete yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seer_bench.errors import ConfigError
from seer_bench.reports.tables import flops_ratio, mean_ci
from seer_bench.suite_files import read_toml

KINDS = {"flops_ratio": "max", "return_gap": "min", "capacity_ratio": "min"}  # kind -> its threshold key
RULES = ("difference", "ci_overlap")
_KEYS = {
    "name",
    "kind",
    "agent",
    "baseline",
    "max",
    "min",
    "rule",
    "envs",
    "budget_gb",
    "min_seeds",
    "seer_capacity",
}
SEER_CAPACITIES = ("budget", "pixel", "public")  # seer_bench.agents.seer.CAPACITIES, without importing torch


@dataclass(frozen=True)
class Claim:
    name: str
    kind: str
    agent: str
    baseline: str
    threshold: float
    rule: str = "difference"
    envs: tuple[str, ...] = ()  # empty: every env the records hold for either agent
    budget_gb: float | None = None  # None: every budget the records hold
    min_seeds: int = 1
    seer_capacity: str | None = (
        None  # None: any; else the claim applies to the agent's runs with this setting
    )

    def holds(self, measured: float) -> bool:
        return measured <= self.threshold if KINDS[self.kind] == "max" else measured >= self.threshold


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    env: str
    budget_gb: float | None
    measured: float
    result: str  # pass | fail | undecided | n/a (the claim is about another SEER capacity setting)
    reason: str = ""


def load_claims(path: Path) -> list[Claim]:
    """Parse and validate a claims file; every error names the file, the claim and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims file not found: {path}")
    data = read_toml(path)
    if (
        set(data) - {"description", "claims"}
        or not isinstance(data.get("claims"), list)
        or not data["claims"]
    ):
        raise ConfigError(
            f"{path}: expected a non-empty list of [[claims]] tables (and an optional description)"
        )
    return [_claim(f"{path}: claims[{i}]", raw) for i, raw in enumerate(data["claims"])]


def _claim(where: str, raw: dict) -> Claim:
    """One `[[claims]]` table, validated key by key."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}"
        )
    for key in ("kind", "agent", "baseline"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"{where}.{key}: expected a string, got {raw.get(key)!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    rule = raw.get("rule", "difference")
    if rule not in RULES or (rule != "difference" and kind != "return_gap"):
        raise ConfigError(f"{where}.rule: {rule!r} is not a rule of {kind} (return_gap: {', '.join(RULES)})")
    envs = raw.get("envs", [])
    if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
        raise ConfigError(f"{where}.envs: expected a list of env names, got {envs!r}")
    budget = raw.get("budget_gb")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
    ):
        raise ConfigError(f"{where}.budget_gb: expected a positive number, got {budget!r}")
    seer_capacity = raw.get("seer_capacity")
    if seer_capacity is not None and seer_capacity not in SEER_CAPACITIES:
        raise ConfigError(
            f"{where}.seer_capacity: expected one of {', '.join(SEER_CAPACITIES)}, got {seer_capacity!r}"
        )
    return Claim(
        name=str(raw.get("name", f"{raw['agent']} {kind} vs {raw['baseline']}")),
        kind=kind,
        agent=raw["agent"],
        baseline=raw["baseline"],
        threshold=_threshold(where, raw, kind, rule),
        rule=rule,
        envs=tuple(envs),
        budget_gb=None if budget is None else float(budget),
        min_seeds=_min_seeds(where, raw, rule),
        seer_capacity=seer_capacity,
    )


def _threshold(where: str, raw: dict, kind: str, rule: str) -> float:
    bound = KINDS[kind]
    other = {"max": "min", "min": "max"}[bound]
    if other in raw:
        raise ConfigError(f"{where}.{other}: {kind} takes `{bound}`, not `{other}`")
    threshold = raw.get(bound, 0.0 if rule == "ci_overlap" else None)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        # nan would make every verdict "fails", inf every verdict "holds"
        raise ConfigError(f"{where}.{bound}: expected a finite number, got {threshold!r}")
    return float(threshold)


def _min_seeds(where: str, raw: dict, rule: str) -> int:
    min_seeds = raw.get("min_seeds", 2 if rule == "ci_overlap" else 1)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 1:
        raise ConfigError(f"{where}.min_seeds: expected a positive integer, got {min_seeds!r}")
    if rule == "ci_overlap" and min_seeds < 2:
        raise ConfigError(f"{where}.min_seeds: ci_overlap needs confidence intervals, so at least 2 seeds")
    return min_seeds


def _measure(
    claim: Claim, mine: pd.DataFrame, theirs: pd.DataFrame, curves: dict, env: str, budget: float
) -> tuple[float, str]:
    """(measured value, reason it cannot be measured or "")."""
    if claim.kind == "flops_ratio":
        seeds = sorted(set(mine["seed"]) & set(theirs["seed"]))
        if len(seeds) < claim.min_seeds:
            return np.nan, (
                f"{len(seeds)} seed(s) finished for both {claim.agent} and {claim.baseline}, "
                f"need {claim.min_seeds}"
            )
        return flops_ratio(curves, env, claim.agent, budget, seeds, claim.baseline), ""
    short = [a for a, runs in ((claim.agent, mine), (claim.baseline, theirs)) if len(runs) < claim.min_seeds]
    if short:
        return np.nan, f"fewer than {claim.min_seeds} finished seed(s) of {', '.join(short)}"
    if claim.kind == "capacity_ratio":
        return float(mine["replay_capacity"].mean() / theirs["replay_capacity"].mean()), ""
    (a, _, a_hi), (b, b_lo, _) = mean_ci(mine["final_return"]), mean_ci(theirs["final_return"])
    return (a_hi - b_lo, "") if claim.rule == "ci_overlap" else (a - b, "")


def evaluate(claims: list[Claim], runs: pd.DataFrame, curves: dict) -> list[Verdict]:
    """One verdict per claim x env x budget, from finished runs only."""
    verdicts = []
    for claim in claims:
        pairs = _pairs(claim, runs)
        if not pairs:
            why = f"no runs of {claim.agent} or {claim.baseline} in the records"
            verdicts.append(Verdict(claim, "-", claim.budget_gb, np.nan, "undecided", why))
        verdicts += [_verdict(claim, runs, curves, env, budget) for env, budget in pairs]
    return verdicts


def _pairs(claim: Claim, runs: pd.DataFrame) -> list[tuple[str, float | None]]:
    """The (env, budget) pairs either agent ran, narrowed to the claim's; a named env or budget that no run
    has is still checked (and undecided), never skipped."""
    involved = runs[runs["agent"].isin([claim.agent, claim.baseline])] if not runs.empty else runs
    present = sorted(set(zip(involved["env"], involved["budget_gb"]))) if not involved.empty else []
    pairs = []
    for env in list(claim.envs) or sorted({e for e, _ in present}):
        budgets = [b for e, b in present if e == env and claim.budget_gb in (None, b)]
        pairs += [(env, b) for b in budgets or [claim.budget_gb]]
    return pairs


def _verdict(claim: Claim, runs: pd.DataFrame, curves: dict, env: str, budget: float | None) -> Verdict:
    done = runs[runs["status"] == "finished"] if not runs.empty else runs
    pick = done[(done["env"] == env) & (done["budget_gb"] == budget)] if not done.empty else done
    mine, theirs = (
        pick[pick["agent"] == a] if not pick.empty else pick for a in (claim.agent, claim.baseline)
    )
    result, reason = _not_measurable(claim, runs, mine, theirs, env, budget)
    if result:
        return Verdict(claim, env, budget, np.nan, result, reason)
    measured, reason = _measure(claim, mine, theirs, curves, env, budget)
    if reason or np.isnan(measured):
        return Verdict(
            claim,
            env,
            budget,
            measured,
            "undecided",
            reason or "no FLOPs counted by both at a shared env step",
        )
    return Verdict(claim, env, budget, measured, "pass" if claim.holds(measured) else "fail")


def _not_measurable(
    claim: Claim, runs: pd.DataFrame, mine: pd.DataFrame, theirs: pd.DataFrame, env: str, budget: float | None
) -> tuple[str, str]:
    """("undecided" or "n/a", why) when the records cannot or need not decide this pair, else ("", "")."""
    missing = [a for a, r in ((claim.agent, mine), (claim.baseline, theirs)) if r.empty]
    if missing:
        where = f" on {env} at {budget:g} GB" if budget is not None else ""
        return "undecided", f"no finished runs of {', '.join(missing)}{where}"
    every = runs[
        (runs["env"] == env)
        & (runs["budget_gb"] == budget)
        & runs["agent"].isin([claim.agent, claim.baseline])
    ]
    unfinished = every[every["status"] != "finished"]
    if len(unfinished):  # a gate must not pass on the seeds that happened to finish
        counts = ", ".join(f"{n} {status}" for status, n in unfinished["status"].value_counts().items())
        return "undecided", f"incomplete records: {counts} run(s) of {claim.agent} / {claim.baseline}"
    # "" is a record without SEER settings (not a SEER run): nothing to say it differs
    other = sorted(set(mine["seer_capacity"]) - {claim.seer_capacity, ""}) if claim.seer_capacity else []
    if other:
        return "n/a", (
            f"{claim.agent} ran with seer capacity = {', '.join(other)}; this claim is about "
            f"capacity = {claim.seer_capacity}"
        )
    return "", ""


def exit_code(verdicts: list[Verdict]) -> int:
    results = {v.result for v in verdicts}
    return 1 if "fail" in results else 2 if "undecided" in results else 0


def format_verdicts(verdicts: list[Verdict]) -> str:
    head = f"{'claim':<34} {'env':<20} {'budget':>7} {'measured':>10} {'threshold':>13} {'result':<9} reason"
    lines = [head]
    for v in verdicts:
        bound = "<=" if KINDS[v.claim.kind] == "max" else ">="
        budget = f"{v.budget_gb:g}GB" if v.budget_gb is not None else "-"
        measured = "n/a" if np.isnan(v.measured) else f"{v.measured:.3f}"
        lines.append(
            f"{v.claim.name[:34]:<34} {v.env:<20} {budget:>7} {measured:>10} {bound} "
            f"{v.claim.threshold:>10.3f} "
            f"{v.result:<9} {v.reason}"
        )
    counts = {r: sum(v.result == r for v in verdicts) for r in ("pass", "fail", "undecided", "n/a")}
    lines.append(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['undecided']} undecided, "
        f"{counts['n/a']} not applicable"
    )
    return "\n".join(lines)
