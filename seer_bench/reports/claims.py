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

A capacity claim names the pixel replay layout of the baseline it compares with (`baseline_layout =
"paper"` or `"compact"`: the same budget holds 3,333 or 19,512 pixel transitions on cartpole-swingup at
0.6 GB, so a ratio means nothing without it). Baseline runs of that layout are compared as recorded; runs of
the other have their capacity in the claim's layout computed from their budget and transition shape
(tables.layout_capacities), which the verdict says; records too old to have that shape are undecided,
naming both layouts.

Evidence: a claim states what it needs, or its file does for all of its claims (top-level keys; a claim's
own win): `min_seeds` (finished seeds of both agents), and either `min_env_steps` or `min_scale_fraction`
(a fraction of the steps of the suite's paper scale, or its default scale where it has no `paper`; the suite
is the one `check --suite` names, else the one the file is named after, `<suite>.claims.toml`). Without
either, a claim needs the whole paper length (fraction 1): records shorter than that are undecided
("smoke-scale records: 400 env steps < 500,000"), so a smoke run cannot pass a gate.

A claim may name the SEER capacity setting it is about (`seer_capacity = "budget"`: the agent's latent
replay fills the byte budget; see seer_bench.agents.seer). Where the agent's runs used another setting the
claim does not apply: it is reported "n/a" with the setting found, and does not move the exit code.

A check that the records cannot decide (an agent, env or budget without finished runs, a run of either
agent there that failed, is still running, never started or has damaged records (untrusted), fewer seeds
than `min_seeds`, runs shorter than the claim's minimum env steps) is reported as such, with the reason:
the gate's exit code is 1 when a claim fails, else 2 when one cannot be decided, else 0. A malformed claims
file (or any other bad input to `check`) exits 3, so that CI can tell a broken gate from records that are
not complete yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seer_bench.errors import ConfigError
from seer_bench.replay import LAYOUTS
from seer_bench.reports.tables import flops_ratio, mean_ci
from seer_bench.suite_files import paper_steps, read_toml

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
    "seer_capacity",
    "baseline_layout",
}
EVIDENCE_KEYS = {"min_seeds", "min_env_steps", "min_scale_fraction"}  # per claim, or for the whole file
_KEYS |= EVIDENCE_KEYS
SEER_CAPACITIES = ("budget", "pixel", "public")  # seer_bench.agents.seer.CAPACITIES, without importing torch
DEFAULT_SCALE_FRACTION = 1.0  # no stated evidence: the whole paper length


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
    min_env_steps: int = 0  # the shortest run (env steps, as its spec asked) that can decide the claim
    seer_capacity: str | None = (
        None  # None: any; else the claim applies to the agent's runs with this setting
    )
    baseline_layout: str | None = None  # capacity_ratio: the baseline's pixel replay layout

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


def load_claims(path: Path, suite: str | None = None) -> list[Claim]:
    """Parse and validate a claims file; every error names the file, the claim and the key. `suite`: whose
    paper scale `min_scale_fraction` is a fraction of (default: the suite the file is named after)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims file not found: {path}")
    data = read_toml(path)
    if (
        set(data) - {"description", "claims"} - EVIDENCE_KEYS
        or not isinstance(data.get("claims"), list)
        or not data["claims"]
    ):
        raise ConfigError(
            f"{path}: expected a non-empty list of [[claims]] tables (and an optional description and "
            f"evidence defaults: {', '.join(sorted(EVIDENCE_KEYS))})"
        )
    defaults = {key: data[key] for key in EVIDENCE_KEYS & set(data)}
    _positive_seeds(f"{path}: min_seeds", defaults, 1)
    paper = _PaperSteps(suite or path.name.removesuffix(".claims.toml"))
    return [_claim(f"{path}: claims[{i}]", raw, defaults, paper) for i, raw in enumerate(data["claims"])]


class _PaperSteps:
    """The env steps of a suite's paper scale, read once and only when a claim states a fraction of them:
    a claims file with absolute evidence needs no suite."""

    def __init__(self, suite: str) -> None:
        self.suite, self._steps = suite, None

    def steps(self, where: str) -> int:
        if self._steps is None:
            try:
                self._steps = paper_steps(self.suite)
            except ConfigError as e:
                raise ConfigError(
                    f"{where}.min_scale_fraction: a fraction of suite {self.suite!r}'s paper scale, which "
                    f"cannot be read ({e}); pass --suite, or state min_env_steps"
                ) from None
        return self._steps


def _claim(where: str, raw: dict, defaults: dict, paper: _PaperSteps) -> Claim:
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
    evidence = {**defaults, **raw} if not {"min_env_steps", "min_scale_fraction"} & set(raw) else raw
    return Claim(
        name=str(raw.get("name", f"{raw['agent']} {kind} vs {raw['baseline']}")),
        kind=kind,
        agent=raw["agent"],
        baseline=raw["baseline"],
        threshold=_threshold(where, raw, kind, rule),
        rule=rule,
        envs=tuple(envs),
        budget_gb=None if budget is None else float(budget),
        min_seeds=_min_seeds(where, raw, defaults, rule),
        min_env_steps=_min_env_steps(where, evidence, paper),
        seer_capacity=seer_capacity,
        baseline_layout=_baseline_layout(where, raw, kind),
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


def _min_seeds(where: str, raw: dict, defaults: dict, rule: str) -> int:
    """A claim's own `min_seeds` must suit its rule; the file's applies to claims of every rule, so a
    ci_overlap claim takes at least the 2 seeds its confidence intervals need from it."""
    floor = 2 if rule == "ci_overlap" else 1
    if "min_seeds" not in raw:
        return max(floor, defaults.get("min_seeds", floor))  # the file's, checked by load_claims
    min_seeds = _positive_seeds(f"{where}.min_seeds", raw, floor)
    if min_seeds < floor:
        raise ConfigError(f"{where}.min_seeds: ci_overlap needs confidence intervals, so at least 2 seeds")
    return min_seeds


def _positive_seeds(where: str, table: dict, default: int) -> int:
    min_seeds = table.get("min_seeds", default)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {min_seeds!r}")
    return min_seeds


def _min_env_steps(where: str, raw: dict, paper: _PaperSteps) -> int:
    """The claim's minimum run length in env steps: stated, a fraction of the paper scale's, or all of it."""
    if "min_env_steps" in raw and "min_scale_fraction" in raw:
        raise ConfigError(f"{where}: state min_env_steps or min_scale_fraction, not both")
    if "min_env_steps" in raw:
        steps = raw["min_env_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"{where}.min_env_steps: expected a non-negative integer, got {steps!r}")
        return steps
    fraction = raw.get("min_scale_fraction", DEFAULT_SCALE_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < math.inf:
        raise ConfigError(f"{where}.min_scale_fraction: expected a positive number, got {fraction!r}")
    return math.ceil(fraction * paper.steps(where))


def _baseline_layout(where: str, raw: dict, kind: str) -> str | None:
    """A capacity claim must name the baseline's pixel layout: the ratio depends on it several-fold."""
    layout = raw.get("baseline_layout")
    if kind != "capacity_ratio":
        if layout is not None:
            raise ConfigError(f"{where}.baseline_layout: only capacity_ratio claims compare replay layouts")
        return None
    if layout not in LAYOUTS:
        raise ConfigError(
            f"{where}.baseline_layout: a capacity_ratio claim names the baseline's replay layout, one of "
            f"{', '.join(LAYOUTS)}; got {layout!r}"
        )
    return layout


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
        baseline, note = _baseline_capacity(claim, theirs)
        return float(mine["replay_capacity"].mean() / baseline), note
    (a, _, a_hi), (b, b_lo, _) = mean_ci(mine["final_return"]), mean_ci(theirs["final_return"])
    return (a_hi - b_lo, "") if claim.rule == "ci_overlap" else (a - b, "")


def _baseline_capacity(claim: Claim, theirs: pd.DataFrame) -> tuple[float, str]:
    """The baseline's replay capacity in the claim's layout, and a note when it is computed rather than
    recorded (the baseline ran with the other layout); NaN, naming both layouts, when it cannot be."""
    layout = claim.baseline_layout
    ran = sorted(set(theirs["replay_layout"]))
    if ran == [layout]:
        return float(theirs["replay_capacity"].mean()), ""
    named = ", ".join(r or "an unrecorded" for r in ran)
    computed = theirs[f"pixel_capacity_{layout}"]
    if computed.notna().all():
        return float(computed.mean()), (
            f"{claim.baseline} ran with the {named} replay layout; its {layout} capacity is computed "
            f"from its budget ({computed.mean():,.0f} transitions)"
        )
    return np.nan, (
        f"{claim.baseline} ran with the {named} replay layout, this claim compares with {layout}, and its "
        f"records lack the transition shape to compute {layout}'s capacity"
    )


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
    short = _too_short(claim, pd.concat([mine, theirs]))
    if short:
        return Verdict(claim, env, budget, np.nan, "undecided", short)
    measured, reason = _measure(claim, mine, theirs, curves, env, budget)
    if np.isnan(measured):
        return Verdict(
            claim,
            env,
            budget,
            measured,
            "undecided",
            reason or "no FLOPs counted by both at a shared env step",
        )
    # a decided verdict's reason notes how it was measured (a baseline capacity computed for its layout)
    return Verdict(claim, env, budget, measured, "pass" if claim.holds(measured) else "fail", reason)


def _too_short(claim: Claim, both: pd.DataFrame) -> str:
    """Why runs shorter than the claim's evidence cannot decide it ("" when long enough): a smoke run's
    FLOPs ratio or capacity is not the paper's, however it comes out."""
    steps = int(both["steps"].min())
    if steps >= claim.min_env_steps:
        return ""
    scales = sorted(set(both.loc[both["steps"] < claim.min_env_steps, "scale"]) - {""})
    which = "/".join(scales) + "-scale" if scales else "short"
    return f"{which} records: {steps:,} env steps < {claim.min_env_steps:,}"


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
