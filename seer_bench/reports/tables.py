"""Summary tables and aggregate scores, computed from records only (never from agents).

`run_table` has one row per run directory; `summary` one row per env x agent x budget; `aggregates` one row
per agent x budget x score domain x metric, with rliable's stratified-bootstrap confidence intervals.

Partial sweeps are reported, not dropped: a run still going contributes its latest evaluation and its group
says how many seeds are finished, running and failed, and the least env steps any of them reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from seer_bench.agents import baseline_of
from seer_bench.envs.atari import ATARI_GAMES
from seer_bench.records import load_runs

GROUP = ["env", "agent", "budget_gb"]
def run_table(out: Path) -> tuple[pd.DataFrame, dict[tuple, pd.DataFrame]]:
    """One row per run under `out` (status, last evaluation, costs), and each run's metrics by run key."""
    rows, curves = [], {}
    for cfg, metrics, events in load_runs(out):
        spec = cfg["spec"]
        kinds = {e["event"]: e for e in events}
        status = "failed" if "failed" in kinds else "finished" if "finished" in kinds else "running"
        last = metrics.iloc[-1] if len(metrics) else None
        atari = spec["env"] in ATARI_GAMES  # by name: most ALE games have no human reference, so no hns
        scored = last is not None and (not atari or ("hns" in metrics and pd.notna(last["hns"])))
        key = (spec["env"], spec["agent"], spec["budget_gb"], spec["seed"])
        curves[key] = metrics
        frozen = kinds.get("frozen")  # SEER's T_f, where it froze: on the env-step and the FLOPs axes
        rows.append({
            **dict(zip([*GROUP, "seed"], key)), "status": status,
            "reason": kinds["failed"].get("reason", "") if status == "failed" else "",
            "domain": "atari" if atari else "dmc",
            "target_env_steps": spec["steps"],
            "env_steps": int(last["env_steps"]) if last is not None else 0,
            "final_return": float(last["eval_return"]) if last is not None else np.nan,
            # the score rliable aggregates: human-normalized on Atari (NaN for games without a human reference,
            # which aggregates leave out), return / 1000 on DMC (its maximum)
            "score": (float(last["hns"]) if atari else float(last["eval_return"]) / 1000) if scored else np.nan,
            "cum_flops": float(last["cum_flops"]) if last is not None and "cum_flops" in metrics else np.nan,
            "wall_s": kinds["finished"]["wall_s"] if status == "finished" else
                      float(last["wall_s"]) if last is not None else np.nan,
            "replay_capacity": int(last["replay_capacity"]) if last is not None else cfg["replay"]["capacity"],
            "peak_replay_bytes": metrics["replay_bytes"].max() if last is not None else np.nan,
            # rss_peak_bytes since the memory sampler; runs recorded before it have rss_bytes only
            "peak_rss_bytes": metrics.get("rss_peak_bytes", metrics["rss_bytes"]).max() if last is not None else np.nan,
            "peak_gpu_bytes": metrics["gpu_bytes"].max() if "gpu_bytes" in metrics and last is not None else np.nan,
            "freeze_env_steps": frozen["step"] * spec["action_repeat"] if frozen else np.nan,
            "freeze_flops": frozen.get("cum_flops", np.nan) if frozen else np.nan,  # older records lack it
        })
    return pd.DataFrame(rows), curves


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over seeds (NaN bounds for fewer than two)."""
    values = np.asarray(values, float)
    mean = float(values.mean()) if len(values) else np.nan
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def flops_ratio(curves: dict[tuple, pd.DataFrame], env: str, agent: str, budget: float, seeds: list[int],
                baseline: str | None = None) -> float:
    """Mean over seeds of cum_flops(agent) / cum_flops(baseline) at one env step shared by every seed: the
    largest that each seed of both agents reached. Cumulative FLOPs are piecewise linear between evaluations,
    so each curve is interpolated there, and runs on different evaluation grids compare too. The baseline
    defaults to the agent without SEER; NaN when nothing is comparable (no shared step, no FLOPs yet)."""
    base = baseline or baseline_of(agent)
    pairs = [(curves.get((env, agent, budget, s)), curves.get((env, base, budget, s))) for s in seeds]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None and "cum_flops" in a and "cum_flops" in b
             and len(a) and len(b)]  # records from before the FLOP ledger have no cum_flops
    if not pairs:
        return np.nan
    at = min(min(a["env_steps"].max(), b["env_steps"].max()) for a, b in pairs)
    ratios = []
    for a, b in pairs:
        denominator = np.interp(at, b["env_steps"], b["cum_flops"])
        if denominator > 0:  # zero before the baseline's first update
            ratios.append(float(np.interp(at, a["env_steps"], a["cum_flops"]) / denominator))
    return float(np.mean(ratios)) if ratios else np.nan


def _status(group: pd.DataFrame) -> str:
    counts = group["status"].value_counts()
    done, running, failed = (int(counts.get(k, 0)) for k in ("finished", "running", "failed"))
    text = f"{done}/{len(group)} finished"
    if running:
        text += f", {running} running"
    if failed:
        text += f", {failed} failed"
    target = int(group["target_env_steps"].max())
    reached = int(group.loc[group["status"] != "failed", "env_steps"].min()) if done + running else 0
    if reached < target:
        text += f" (partial: {reached:,} of {target:,} env steps)"
    return text


def summary(runs: pd.DataFrame, curves: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """Per env x agent x budget: final return (mean, 95% CI over seeds), compute, memory, time and status.

    Returns use every run that has evaluated and did not fail (a running one at its latest evaluation);
    `status` says when that is partial.
    """
    if runs.empty:
        return pd.DataFrame()
    out = []
    for (env, agent, budget), group in runs.groupby(GROUP, sort=True):
        live = group[group["status"] != "failed"]
        live = live[live["env_steps"] > 0]
        mean, lo, hi = mean_ci(live["final_return"].to_numpy())
        base = baseline_of(agent)
        out.append({
            "env": env, "agent": agent, "budget_gb": budget, "seeds": len(group),
            "failed": int((group["status"] == "failed").sum()), "status": _status(group),
            "env_steps": int(live["env_steps"].min()) if len(live) else 0,
            "return_mean": mean, "return_ci_low": lo, "return_ci_high": hi,
            "cum_flops": float(live["cum_flops"].mean()) if len(live) else np.nan,
            "baseline": base or "",
            "flops_ratio_to_baseline": flops_ratio(curves, env, agent, budget, sorted(live["seed"])) if base else np.nan,
            "peak_replay_bytes": group["peak_replay_bytes"].max(), "replay_capacity": int(group["replay_capacity"].max()),
            "peak_rss_bytes": group["peak_rss_bytes"].max(), "peak_gpu_bytes": group["peak_gpu_bytes"].max(),
            "wall_s": float(live["wall_s"].mean()) if len(live) else np.nan,
        })
    return pd.DataFrame(out)


def aggregates(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM and mean of normalized final scores across envs per agent x budget x domain, with rliable's
    stratified bootstrap 95% CIs. Only finished runs count, and only seeds finished on every env of the
    group (rliable needs a seeds x envs matrix); `seeds` and `envs` say what went in, `runs_left_out` how
    many runs of the group did not (running, failed, or missing on some env), and a group with no complete
    seed gets NaN values rather than no row."""
    from rliable import library as rly
    from rliable import metrics

    rows = []
    if runs.empty:
        return pd.DataFrame()
    for (agent, budget, domain), every in runs[runs["score"].notna() | (runs["status"] != "finished")].groupby(
            ["agent", "budget_gb", "domain"], sort=True):
        group = every[every["status"] == "finished"]
        envs = sorted(every["env"].unique())
        seeds = sorted(set.intersection(*(set(group.loc[group["env"] == e, "seed"]) for e in envs)))
        left_out = len(every) - len(envs) * len(seeds)  # running, failed, or finished on only some envs
        if not seeds:
            rows += [{"agent": agent, "budget_gb": budget, "domain": domain, "metric": m, "value": np.nan,
                      "ci_low": np.nan, "ci_high": np.nan, "envs": len(envs), "seeds": 0, "runs_left_out": left_out,
                      "score": "human-normalized" if domain == "atari" else "return / 1000"} for m in ("IQM", "mean")]
            continue
        table = group.pivot_table(index="seed", columns="env", values="score").loc[seeds, envs].to_numpy()
        np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
        point, ci = rly.get_interval_estimates(
            {agent: table}, lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]), reps=reps)
        for i, name in enumerate(("IQM", "mean")):
            rows.append({"agent": agent, "budget_gb": budget, "domain": domain,
                         "score": "human-normalized" if domain == "atari" else "return / 1000", "metric": name,
                         "value": point[agent][i], "ci_low": ci[agent][0, i], "ci_high": ci[agent][1, i],
                         "envs": len(envs), "seeds": len(seeds), "runs_left_out": left_out})
    return pd.DataFrame(rows)
