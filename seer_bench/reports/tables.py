"""Summary tables and aggregate scores, computed from records only (never from agents).

`run_table` has one row per run directory; `summary` one row per env x agent x budget; `aggregates` one row
per agent x budget x score domain x metric, with rliable's stratified-bootstrap confidence intervals.

Partial sweeps are reported, not dropped: final returns are over finished runs only, runs still going are
reported beside them at their latest evaluation, and each group says how many seeds are finished, running,
failed and not started (from the sweep plan), and the least env steps any live one reached.

A run whose records are damaged (records.load_runs' problems) is "untrusted": its `damage` column says
what is wrong, and it is left out of every number, aggregate and figure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from seer_bench.errors import DamagedRecord
from seer_bench.instrument.timing import CATEGORIES as TIME_CATEGORIES
from seer_bench.instrument.timing import column as time_column
from seer_bench.locks import held
from seer_bench.names import base_label, baseline_of, label, run_id, uses_seer
from seer_bench.records import last_event, load_runs, read_events, read_plan, read_progress, run_dir, status
from seer_bench.replay import LAYOUTS, TransitionSpec, replay_class
from seer_bench.scores import ATARI_SCORES, domain

GROUP = ["env", "agent", "budget_gb"]


def _target_env_steps(spec: dict) -> int:
    repeat = spec.get("action_repeat", 1)
    return spec["steps"] // repeat * repeat  # what the run's last agent step reaches


def _evidence(spec: dict) -> dict:
    """What a claim asks of a run before trusting it: the scale it was run at, its length in env steps as
    the spec asked for, and the pixel replay layout (older records without one: "")."""
    return {
        "scale": spec.get("scale", ""),
        "steps": spec["steps"],
        "replay_layout": spec.get("replay_layout", ""),
    }


def layout_capacities(cfg: dict | None) -> dict[str, float]:
    """`pixel_capacity_<layout>`: transitions the run's budget buys in a pixel replay of each layout, from
    the replay classes' arithmetic on config.json's transition shape and budget bytes, so that a capacity
    claim can compare with a baseline layout other than the one the run used (NaN where the config lacks
    them: records from before it wrote its env's shape)."""
    env, budget = (cfg or {}).get("env"), ((cfg or {}).get("replay") or {}).get("budget_bytes")
    if not env or budget is None:
        return {f"pixel_capacity_{layout}": np.nan for layout in LAYOUTS}
    shape = TransitionSpec(
        tuple(env["obs_shape"]),
        env["action_dim"],
        frame_stack=env["frame_stack"],
        episode_steps=env["episode_steps"],
        discrete=env["discrete"],
    )
    return {
        f"pixel_capacity_{layout}": replay_class(layout).capacity_for(shape, budget) for layout in LAYOUTS
    }


def _failure(state: str, events: list[dict]) -> dict:
    """Why and where a failed run stopped (its latest failed event); empty for any other status."""
    failed = last_event(events, "failed") if state == "failed" else None
    return {
        "reason": failed.get("reason", "") if failed else "",
        "stopped_env_steps": failed.get("env_steps", 0) if failed else None,
    }


def identity(spec: dict) -> dict:
    """Where a run sits in the tables: env, agent, budget and seed, the agent as labelled with its variant's
    settings (`curl+seer[freeze_at=5000]`: variants are rows of their own), the variant's settings (JSON),
    and the baseline its FLOPs are compared with (the base agent with the same agent settings)."""
    variant = spec.get("variant") or {}
    return {
        "env": spec["env"],
        "agent": label(spec["agent"], variant),
        "budget_gb": spec["budget_gb"],
        "seed": spec["seed"],
        "base_agent": spec["agent"],
        "variant": json.dumps(variant, sort_keys=True) if variant else "",
        "baseline": base_label(spec["agent"], variant) if uses_seer(spec["agent"]) else "",
        "run_id": run_id(label(spec["agent"], variant), spec["env"], spec["budget_gb"], spec["seed"]),
    }


def _key(spec: dict) -> tuple:
    """A run's key in `curves`: (env, agent label, budget, seed)."""
    row = identity(spec)
    return row["env"], row["agent"], row["budget_gb"], row["seed"]


def _unmeasured_row(spec: dict, events: list[dict], damage: str = "") -> dict:
    """A run without usable measurements: of the sweep plan without a config (not started, or failed before
    it wrote one, with the reason its events give), or untrusted (`damage`: its damaged records)."""
    state = "untrusted" if damage else status(events)
    failure = _failure(state, events)
    return {
        **identity(spec),
        "status": state,
        "reason": failure["reason"],
        "damage": damage,
        "domain": domain(spec["env"]),
        "target_env_steps": _target_env_steps(spec),
        "env_steps": 0,
        "stopped_env_steps": failure["stopped_env_steps"] or 0,
        "final_return": np.nan,
        "score": np.nan,
        "cum_flops": np.nan,
        "wall_s": np.nan,
        **dict.fromkeys(TIME_COLUMNS, np.nan),
        "replay_capacity": np.nan,
        "peak_replay_bytes": np.nan,
        "peak_rss_bytes": np.nan,
        "peak_gpu_bytes": np.nan,
        "freeze_env_steps": np.nan,
        "freeze_flops": np.nan,
        "seer_capacity": seer_capacity(spec),
        **_evidence(spec),
        **layout_capacities(None),
    }


def _planned_row(out: Path, run_id: str, spec: dict) -> dict:
    """A run of the sweep plan without a config; untrusted when its events are damaged."""
    try:
        return _unmeasured_row(spec, read_events(run_dir(out, run_id)))
    except DamagedRecord as e:
        return _unmeasured_row(spec, [], damage=str(e))


def seer_capacity(spec: dict) -> str:
    """How a SEER run sized its latent replay ("" without SEER); records from before the setting filled the
    budget, which is what they read as."""
    return (spec.get("seer") or {}).get("capacity", "budget") if spec.get("seer") else ""


def run_table(out: Path) -> tuple[pd.DataFrame, dict[tuple, pd.DataFrame]]:
    """One row per run under `out` (status, last evaluation, costs), and each run's metrics by run key.

    Runs of the sweep plan (records.write_plan) without a config yet are rows too: "not started", or
    "failed" when they failed before writing one. A run with damaged records is "untrusted", and has no
    curve: nothing of it is measured.
    """
    rows, curves = [], {}
    for cfg, metrics, events, problems in load_runs(out):
        spec = cfg["spec"]
        if problems:
            rows.append(_unmeasured_row(spec, events, damage="; ".join(problems)))
            continue
        curves[_key(spec)] = metrics
        rows.append(_run_row(cfg, metrics, events, run_dir(out, identity(spec)["run_id"])))
    seen = {(r["env"], r["agent"], r["budget_gb"], r["seed"]) for r in rows}
    rows += [
        _planned_row(out, planned, spec) for planned, spec in read_plan(out).items() if _key(spec) not in seen
    ]
    return pd.DataFrame(rows), curves


def _alive(path: Path) -> bool:
    """Whether a run recorded as running still is: a live process holds its lock, or (records from before
    run locks) its progress.json heartbeat is recent. A run killed without a word (kill -9, a lost node) is
    interrupted, not running for ever."""
    owned = held(path)
    if owned is not None:
        return owned
    beat = read_progress(path)
    return beat is None or time.time() - beat.get("time", 0.0) < STALE_HEARTBEAT_S


def _reached(path: Path, events: list[dict], evaluated: int) -> int:
    """Where an interrupted run stopped: its last progress heartbeat, else its `interrupted` event, else its
    last evaluation (the same command resumes it from its latest checkpoint)."""
    stopped = (read_progress(path) or last_event(events, "interrupted") or {}).get("env_steps")
    return int(stopped) if stopped is not None else evaluated


def _run_row(cfg: dict, metrics: pd.DataFrame, events: list[dict], path: Path) -> dict:
    spec = cfg["spec"]
    state = status(events)
    if state == "not started":  # its config is written just before the started event: it has started
        state = "running"
    if state == "running" and not _alive(path):
        state = "interrupted"
    failure = _failure(state, events)
    last = metrics.iloc[-1] if len(metrics) else None
    frozen = last_event(events, "frozen")  # SEER's T_f, where it froze: on the env-step and the FLOPs axes
    evaluated = int(last["env_steps"]) if last is not None else 0  # env steps of the last evaluation
    return {
        **identity(spec),
        "status": state,
        "reason": failure["reason"],
        "damage": "",
        "domain": domain(spec["env"]),
        "target_env_steps": _target_env_steps(spec),
        "env_steps": evaluated,
        # where a failed run stopped (its failed event), else where it evaluated last
        "stopped_env_steps": failure["stopped_env_steps"]
        if state == "failed"
        else _reached(path, events, evaluated)
        if state == "interrupted"
        else evaluated,
        **_last_evaluation(cfg, metrics, last),
        "wall_s": last_event(events, "finished")["wall_s"] if state == "finished" else _last(last, "wall_s"),
        # training, evaluation and mean update time at the last evaluation (NaN in records from before them)
        **{column: _last(last, column) for column in TIME_COLUMNS},
        "freeze_env_steps": frozen["step"] * spec.get("action_repeat", 1) if frozen else np.nan,
        "freeze_flops": frozen.get("cum_flops", np.nan) if frozen else np.nan,  # older records lack it
        "seer_capacity": seer_capacity(spec),
        **_evidence(spec),
        **layout_capacities(cfg),
    }


# where a run's time went, beside its wall time: the loop's totals, then the time ledger's categories
TIME_COLUMNS = ["train_s", "eval_s", "update_s_mean", *(time_column(c) for c in TIME_CATEGORIES)]


def _last(last: pd.Series | None, column: str) -> float:
    return float(last[column]) if last is not None and column in last else np.nan


def _last_evaluation(cfg: dict, metrics: pd.DataFrame, last: pd.Series | None) -> dict:
    """Return, score, FLOPs and memory of a run at its last evaluation (NaN without one)."""
    env = cfg["spec"]["env"]
    atari = domain(env) == "atari"
    scored = last is not None and (not atari or ("hns" in metrics and pd.notna(last["hns"])))
    # The score rliable aggregates: human-normalized on Atari (NaN for games without a human reference,
    # which aggregates leave out), return / 1000 on DMC (its maximum).
    score = (float(last["hns"]) if atari else float(last["eval_return"]) / 1000) if scored else np.nan

    def peak(*columns: str) -> float:
        present = [c for c in columns if c in metrics]
        return float(metrics[present].max().max()) if last is not None and present else np.nan

    return {
        "final_return": _last(last, "eval_return"),
        "score": score,
        "cum_flops": _last(last, "cum_flops"),
        "replay_capacity": last["replay_capacity"] if last is not None else cfg["replay"]["capacity"],
        # replay_peak_bytes keeps what was held between rows (SEER's pixels until a T_f between two
        # evaluations); runs recorded before it have replay_bytes only
        "peak_replay_bytes": peak("replay_bytes", "replay_peak_bytes"),
        # rss_peak_bytes since the memory sampler; runs recorded before it have rss_bytes only
        "peak_rss_bytes": peak("rss_peak_bytes" if "rss_peak_bytes" in metrics else "rss_bytes"),
        "peak_gpu_bytes": peak("gpu_bytes"),
    }


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over seeds (NaN bounds for fewer than two)."""
    values = np.asarray(values, float)
    mean = float(values.mean()) if len(values) else np.nan
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def flops_ratio(
    curves: dict[tuple, pd.DataFrame],
    env: str,
    agent: str,
    budget: float,
    seeds: list[int],
    baseline: str | None = None,
) -> float:
    """Mean over seeds of cum_flops(agent) / cum_flops(baseline) at one env step shared by every seed: the
    largest that each seed of both agents reached. Cumulative FLOPs are piecewise linear between evaluations,
    so each curve is interpolated there, and runs on different evaluation grids compare too. The baseline
    defaults to the agent without SEER; NaN when nothing is comparable (no shared step, no FLOPs yet)."""
    base = baseline or baseline_of(agent)
    pairs = [(curves.get((env, agent, budget, s)), curves.get((env, base, budget, s))) for s in seeds]
    # records from before the FLOP ledger have no cum_flops
    pairs = [
        (a, b)
        for a, b in pairs
        if a is not None and b is not None and "cum_flops" in a and "cum_flops" in b and len(a) and len(b)
    ]
    if not pairs:
        return np.nan
    at = min(min(a["env_steps"].max(), b["env_steps"].max()) for a, b in pairs)
    ratios = []
    for a, b in pairs:
        denominator = np.interp(at, b["env_steps"], b["cum_flops"])
        if denominator > 0:  # zero before the baseline's first update
            ratios.append(float(np.interp(at, a["env_steps"], a["cum_flops"]) / denominator))
    return float(np.mean(ratios)) if ratios else np.nan


STALE_HEARTBEAT_S = 1800.0  # runs without a lock file: silent this long means dead (evaluations write none)
UNFINISHED = ("running", "interrupted")  # partial records: reported apart (running_*), never as final
UNTRUSTED = "untrusted"  # damaged records: named, left out of every number


def _status(group: pd.DataFrame) -> str:
    counts = group["status"].value_counts()
    text = f"{int(counts.get('finished', 0))}/{len(group)} finished"
    for what in ("running", "interrupted", "failed", UNTRUSTED, "not started"):
        if counts.get(what, 0):
            text += f", {int(counts[what])} {what}"
    target = int(group["target_env_steps"].max())
    live = group[group["status"].isin(["finished", *UNFINISHED])]
    reached = int(live["env_steps"].min()) if len(live) else 0
    if reached < target:
        text += f" (partial: {reached:,} of {target:,} env steps)"
    return text


def summary(runs: pd.DataFrame, curves: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """Per env x agent x budget: final return (mean, 95% CI over finished seeds),
    compute, memory, time, status.

    Final returns, FLOPs and times (wall; train, eval and mean update: TIME_COLUMNS) are over finished
    runs; runs still going are reported apart (`running_*`: how many are running or interrupted, their
    mean latest return and the least env steps they reached), so a partial sweep never mixes a seed at
    10% of its steps into a final number.
    """
    if runs.empty:
        return pd.DataFrame()
    out = [_summary_row(runs, curves, key, group) for key, group in runs.groupby(GROUP, sort=True)]
    table = pd.DataFrame(out)
    table["replay_capacity"] = table["replay_capacity"].astype("Int64")  # a count; <NA> before any record
    return table


def _summary_row(runs: pd.DataFrame, curves: dict, key: tuple, group: pd.DataFrame) -> dict:
    env, agent, budget = key
    done = group[(group["status"] == "finished") & group["final_return"].notna()]
    running = group[group["status"].isin(UNFINISHED) & (group["env_steps"] > 0)]
    mean, lo, hi = mean_ci(done["final_return"].to_numpy())
    base = group["baseline"].iloc[0] if "baseline" in group else baseline_of(agent)
    measured = group[~group["status"].isin(["not started", UNTRUSTED])]
    return {
        "env": env,
        "agent": agent,
        "budget_gb": budget,
        "base_agent": group["base_agent"].iloc[0],
        "variant": group["variant"].iloc[0],
        "seeds": len(group),
        "finished": len(done),
        "failed": int((group["status"] == "failed").sum()),
        "untrusted": int((group["status"] == UNTRUSTED).sum()),
        "status": _status(group),
        "env_steps": int(done["env_steps"].min()) if len(done) else 0,
        "return_mean": mean,
        "return_ci_low": lo,
        "return_ci_high": hi,
        "running": len(running),
        "running_return_mean": float(running["final_return"].mean()) if len(running) else np.nan,
        "running_env_steps": int(running["env_steps"].min()) if len(running) else 0,
        "cum_flops": float(done["cum_flops"].mean()) if len(done) else np.nan,
        "baseline": base or "",
        "flops_ratio_to_baseline": _ratio_to_baseline(runs, curves, key, done, base),
        "peak_replay_bytes": measured["peak_replay_bytes"].max(),
        "replay_capacity": measured["replay_capacity"].max(),
        "peak_rss_bytes": measured["peak_rss_bytes"].max(),
        "peak_gpu_bytes": measured["peak_gpu_bytes"].max(),
        "wall_s": float(done["wall_s"].mean()) if len(done) else np.nan,
        # over finished seeds that recorded them (NaN when none did: records from before the columns)
        **{column: float(done[column].mean()) if len(done) else np.nan for column in TIME_COLUMNS},
    }


def _ratio_to_baseline(
    runs: pd.DataFrame, curves: dict, key: tuple, done: pd.DataFrame, base: str | None
) -> float:
    """FLOPs over the baseline's, over the seeds finished for both agents (as `check` measures it): a
    baseline seed that failed early would otherwise set the shared env step for every seed."""
    if not base:
        return np.nan
    env, agent, budget = key
    theirs = runs[(runs["env"] == env) & (runs["agent"] == base) & (runs["budget_gb"] == budget)]
    seeds = sorted(set(done["seed"]) & set(theirs.loc[theirs["status"] == "finished", "seed"]))
    return flops_ratio(curves, env, agent, budget, seeds, baseline=base)


def score_matrices(runs: pd.DataFrame) -> list[tuple[float, str, dict[str, dict]]]:
    """Per budget x domain, each agent's seeds x envs matrix of finished final scores (rliable's input),
    with what went in (`envs`, `seeds`, `runs_left_out`); the matrix is None when no seed finished every env.

    Agents of one budget and domain are compared on the same envs: every env any of them ran. Only finished
    runs count, and only seeds finished with a finite score on every one of those envs, so an agent missing
    an env has no matrix rather than a score over an easier set. An Atari game without a human reference has
    no score: left out of every Atari matrix, whatever the state of its runs.
    """
    # an Atari game without a human reference has no score: left out of every Atari aggregate, whatever
    # the state of its runs (the report names it: `unscored_games`)
    scorable = runs[~runs["env"].isin(unscored_games(runs))]
    cells = []
    for (budget, kind), cell in scorable.groupby(["budget_gb", "domain"], sort=True):
        envs, agents = sorted(cell["env"].unique()), {}
        for agent, every in cell.groupby("agent", sort=True):
            group = every[(every["status"] == "finished") & np.isfinite(every["score"].astype(float))]
            seeds = sorted(set.intersection(*(set(group.loc[group["env"] == e, "seed"]) for e in envs)))
            scores = group.pivot_table(index="seed", columns="env", values="score") if seeds else None
            agents[agent] = {
                "matrix": scores.loc[seeds, envs].to_numpy() if seeds else None,
                "envs": len(envs),
                "seeds": len(seeds),
                "runs_left_out": len(every) - len(envs) * len(seeds),
            }
        cells.append((budget, kind, agents))
    return cells


def aggregates(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM and mean of normalized final scores across envs per agent x budget x domain, with rliable's
    stratified bootstrap 95% CIs (seeds resampled within each env), over `score_matrices`.

    `seeds` and `envs` say what went in and `runs_left_out` how many of the agent's runs did not (running,
    failed, untrusted, not started, finished without a finite score (a NaN return, no evaluation), or
    finished on only some envs): an agent without a matrix gets NaN values. With one seed the bootstrap has
    nothing to resample: no CI (NaN).
    """
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for budget, kind, agents in score_matrices(runs):
        for agent, cell in agents.items():
            base = {
                "agent": agent,
                "budget_gb": budget,
                "domain": kind,
                **{k: cell[k] for k in ("envs", "seeds", "runs_left_out")},
                "score": "human-normalized" if kind == "atari" else "return / 1000",
            }
            if cell["matrix"] is None:
                point, ci = np.full(2, np.nan), np.full((2, 2), np.nan)
            else:
                points, cis = _bootstrap({agent: cell["matrix"]}, _iqm_and_mean, reps, seed)
                point, ci = points[agent], cis[agent] if cell["seeds"] > 1 else np.full((2, 2), np.nan)
            for i, name in enumerate(("IQM", "mean")):
                rows.append(
                    {**base, "metric": name, "value": point[i], "ci_low": ci[0, i], "ci_high": ci[1, i]}
                )
    # columns named: a sweep of unscored games only has no aggregate row, and still an aggregates.csv
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def _iqm_and_mean(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])


def unscored_games(runs: pd.DataFrame) -> list[str]:
    """The Atari games of the records without a human reference score (seer_bench.scores): reported with
    raw returns, but no human-normalized score exists for them to aggregate."""
    if runs.empty:
        return []
    atari = runs.loc[runs["domain"] == "atari", "env"]
    return sorted(set(atari) - set(ATARI_SCORES))


AGGREGATE_COLUMNS = ["agent", "budget_gb", "domain", "score", "metric", "value", "ci_low", "ci_high", "envs",
                     "seeds", "runs_left_out"]  # fmt: skip


MIN_SCORES = 3  # seeds x envs per agent before a profile or a probability of improvement is worth drawing


def comparable(runs: pd.DataFrame) -> list[tuple[float, str, dict[str, np.ndarray]]]:
    """The budget x domain cells of `score_matrices` where at least two agents have MIN_SCORES or more scores
    (seeds x envs): where performance profiles and probabilities of improvement say more than IQM alone."""
    cells = []
    for budget, kind, agents in score_matrices(runs) if not runs.empty else []:
        enough = {a: c["matrix"] for a, c in agents.items() if c["seeds"] * c["envs"] >= MIN_SCORES}
        if len(enough) >= 2:
            cells.append((budget, kind, enough))
    return cells


IMPROVEMENT_COLUMNS = ["budget_gb", "domain", "agent", "over", "probability", "ci_low", "ci_high", "envs",
                       "seeds", "seeds_over"]  # fmt: skip


def _pairs(agents: list[str], baselines: dict[str, str]) -> list[tuple[str, str]]:
    """Which agents to compare: each with its baseline (curl+seer over curl) where both are there, else
    every pair once."""
    paired = [(a, baselines[a]) for a in agents if baselines.get(a) in agents]
    return paired or [(a, b) for i, a in enumerate(agents) for b in agents[i + 1 :]]


def improvement(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """rliable's probability of improvement P(agent > over) per `comparable` cell, with stratified
    (independent) bootstrap 95% CIs: the chance that a run of `agent` scores above a run of `over` on a
    random env of the cell (0.5: neither is better)."""
    from rliable import metrics

    baselines = dict(zip(runs["agent"], runs["baseline"])) if "baseline" in runs else {}
    rows = []
    for budget, kind, agents in comparable(runs):
        pairs = {f"{a} > {b}": (a, b) for a, b in _pairs(sorted(agents), baselines)}
        scores = {key: (agents[a], agents[b]) for key, (a, b) in pairs.items()}
        points, cis = _bootstrap(scores, metrics.probability_of_improvement, reps, seed)
        for key, (a, b) in pairs.items():
            low, high = np.ravel(cis[key])  # rliable gives a 2 x 1 interval for a scalar
            rows.append(
                [budget, kind, a, b, float(points[key]), low, high, *agents[a].shape[::-1], len(agents[b])]
            )
    return pd.DataFrame(rows, columns=IMPROVEMENT_COLUMNS)


def profiles(runs: pd.DataFrame, reps: int = 2000, seed: int = 0, points: int = 101) -> pd.DataFrame:
    """rliable's performance profiles per `comparable` cell: for each score threshold tau, the fraction of
    runs (seeds x envs) scoring above it, with stratified bootstrap 95% CIs; tau spans 0 to the cell's best
    score. `seeds`: the agent's seeds in the cell."""
    from rliable import library as rly

    rows = []
    for budget, kind, agents in comparable(runs):
        top = max(float(np.max(m)) for m in agents.values())
        taus = np.linspace(0.0, top if top > 0 else 1.0, points)
        with _seeded(seed):
            fractions, cis = rly.create_performance_profile(agents, taus, reps=reps)
        for agent in agents:
            low, high = cis[agent]
            frame = pd.DataFrame({"tau": taus, "fraction": fractions[agent], "ci_low": low, "ci_high": high})
            rows.append(frame.assign(budget_gb=budget, domain=kind, agent=agent, seeds=len(agents[agent])))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """rliable 1.2's bootstraps draw from numpy's global generator whatever random_state they are given:
    seed that for reproducible CIs, and give the caller's state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _bootstrap(scores: dict, func: Callable, reps: int, seed: int) -> tuple[dict, dict]:
    """rliable's get_interval_estimates (stratified bootstrap, 95%) of `func` on `scores`, seeded."""
    from rliable import library as rly

    with _seeded(seed):
        return rly.get_interval_estimates(scores, func, reps=reps)
