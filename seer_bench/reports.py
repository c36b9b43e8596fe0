"""Summary tables read from records only (never from agents)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seer_bench.records import load_runs


def summary(out: Path) -> pd.DataFrame:
    """Per agent x env x budget: seeds finished/failed, final eval return, env steps, wall time, memory."""
    rows = []
    for cfg, metrics, events in load_runs(out):
        spec = cfg["spec"]
        kinds = {e["event"] for e in events}
        status = "failed" if "failed" in kinds else "finished" if "finished" in kinds else "incomplete"
        last = metrics.iloc[-1] if len(metrics) else None
        rows.append({
            "agent": spec["agent"], "env": spec["env"], "budget_gb": spec["budget_gb"], "seed": spec["seed"],
            "status": status,
            "env_steps": int(last["env_steps"]) if last is not None else 0,
            "final_return": float(last["eval_return"]) if last is not None else np.nan,
            "wall_s": float(last["wall_s"]) if last is not None else np.nan,
            "replay_capacity": cfg["replay"]["capacity"],
            "peak_replay_bytes": metrics["replay_bytes"].max() if len(metrics) else np.nan,
            # rss_peak_bytes since the memory sampler; runs recorded before it have rss_bytes only
            "peak_rss_bytes": metrics.get("rss_peak_bytes", metrics["rss_bytes"]).max() if len(metrics) else np.nan,
        })
    if not rows:
        return pd.DataFrame()
    runs = pd.DataFrame(rows)
    done = runs[runs.status == "finished"]
    keys = ["agent", "env", "budget_gb"]
    table = runs.groupby(keys).agg(
        seeds=("seed", "size"), failed=("status", lambda s: int((s == "failed").sum())),
        incomplete=("status", lambda s: int((s == "incomplete").sum())),
        replay_capacity=("replay_capacity", "max"), peak_replay_mb=("peak_replay_bytes", lambda b: b.max() / 1e6),
        peak_rss_mb=("peak_rss_bytes", lambda b: b.max() / 1e6))
    finished = done.groupby(keys).agg(env_steps=("env_steps", "max"), return_mean=("final_return", "mean"),
                                      return_std=("final_return", "std"), wall_s=("wall_s", "mean"))
    return table.join(finished).reset_index()


def format_summary(table: pd.DataFrame) -> str:
    if table.empty:
        return "no runs found"
    return table.to_string(index=False, formatters={"budget_gb": "{:g}".format}, float_format=lambda v: f"{v:.1f}")
