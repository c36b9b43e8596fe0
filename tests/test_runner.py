"""A smoke run end to end through the real entry point: real env, real agent, records on disk."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import short_spec

from seer_bench.cli import main
from seer_bench.records import METRICS_COLUMNS, TRAIN_COLUMNS, run_dir
from seer_bench.runner import check_spec, run

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_config_metrics_and_events(tmp_path):
    out = tmp_path / "out"
    # a hang guard: 20-90 s normally
    proc = subprocess.run(
        [
            sys.executable,
            "bench.py",
            "--suite",
            "dmc6",
            "--scale",
            "smoke",
            "--envs",
            "cartpole-swingup",
            "--agents",
            "curl",
            "--seeds",
            "1",
            "--budget-gb",
            "0.02",
            "--replay-layout",
            "compact",
            "--out",
            str(out),
            "--train-log-every",
            "8",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = out / "runs" / "curl" / "cartpole-swingup" / "budget_0.02" / "seed_0"
    config = json.loads((run / "config.json").read_text())
    assert config["spec"]["steps"] == 400 and config["spec"]["replay_layout"] == "compact"
    assert config["agent_config"]["batch_size"] == 16 and config["versions"]["torch"]
    assert config["replay"]["capacity"] * config["replay"]["bytes_per_transition"] <= 0.02e9

    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.columns) == METRICS_COLUMNS
    assert metrics["step"].tolist() == [0, 25, 50]  # 400 env steps / repeat 8, eval every 200 env steps
    assert (metrics["env_steps"] == metrics["step"] * 8).all()
    assert metrics["replay_size"].tolist() == [0, 25, 50]
    assert metrics["updates"].iloc[-1] == 30  # 50 agent steps - 20 random init steps
    assert (metrics["rss_bytes"] > 0).all() and metrics["wall_s"].is_monotonic_increasing
    assert (metrics["rss_peak_bytes"] >= 0.99 * metrics["rss_bytes"]).all()  # a peak since the last row
    assert metrics[["gpu_bytes", "gpu_alloc_bytes", "gpu_reserved_bytes"]].isna().all().all()  # no GPU here
    assert metrics["replay_bytes"].iloc[-1] > metrics["replay_bytes"].iloc[1] > 0
    assert metrics["eval_return"].notna().all()
    # FLOPs: every category adds up, counted only when a pass runs (30 updates and actions, no SEER here).
    categories = metrics[[f"cum_flops_{c}" for c in ("act", "update", "encode", "convert")]]
    assert (categories.sum(axis=1) == metrics["cum_flops"]).all() and metrics[
        "cum_flops"
    ].is_monotonic_increasing
    assert (
        metrics["cum_flops"].iloc[0] == 0
        and (metrics[["cum_flops_encode", "cum_flops_convert"]] == 0).all().all()
    )
    last = metrics.iloc[-1]
    # 15 even + 15 odd steps
    assert last["cum_flops_update"] == pytest.approx(30 * last["update_flops"], rel=1e-12)
    assert last["cum_flops_act"] / 30 == pytest.approx(
        44_240_992 + 50 * 1024 + 1024 * 1024 + 1024 * 2, rel=1e-4
    )

    # Training metrics: what each update returned, averaged over windows of 8 updates; the checkpoint at agent
    # step 25 (the evaluation interval) ends a window, and so does the run's end.
    train = pd.read_csv(run / "train.csv")
    assert list(train.columns) == TRAIN_COLUMNS
    counts = train.pivot_table(index="updates", columns="metric", values="count")
    assert counts.index.tolist() == [5, 13, 21, 29, 30] and (train["env_steps"] == 8 * train["step"]).all()
    assert counts["critic_loss"].tolist() == counts["curl_loss"].tolist() == [5, 8, 8, 8, 1]
    # the actor updates on even steps: 20, 22, 24 in the first window, none at step 49
    assert counts["actor_loss"].tolist()[:4] == counts["alpha"].tolist()[:4] == [3, 4, 4, 4]
    assert counts[["actor_loss", "alpha"]].iloc[4].isna().all()
    # 20 random steps, then 1 update a step
    assert train.loc[train["updates"] == 5, "step"].unique().tolist() == [24]
    assert (train.loc[train["metric"] == "critic_loss", "mean"] > 0).all() and train["mean"].notna().all()

    events = [json.loads(line)["event"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert events == ["started", "finished"]
    # the report, printed and written
    assert "| cartpole-swingup | curl |" in proc.stdout and (out / "summary.md").is_file()


def pixel_transition_nbytes(action_dim: int) -> int:
    """Independent price of one paper-layout transition of 3 stacked 100x100 RGB frames: obs and next_obs
    uint8, float32 action, reward and not_done, uint8 last."""
    return 2 * np.zeros((9, 100, 100), np.uint8).nbytes + np.zeros(action_dim + 2, np.float32).nbytes + 1


def test_a_budget_far_above_memory_runs_and_records_capacity_beside_allocation(tmp_path):
    """Issue 17: `--budget-gb 10000` died of ENOMEM mapping 10 TB. The run allocates its 30 steps'
    transitions; records keep the budget's capacity beside what was allocated."""
    spec = short_spec("curl", budget_gb=10_000)
    check_spec(spec)
    run(spec, tmp_path)
    per, steps = pixel_transition_nbytes(1), 1500 // 50  # cartpole: 1 action; 1,500 env steps at repeat 50
    config = json.loads((run_dir(tmp_path, spec.run_id) / "config.json").read_text())["replay"]
    assert (config["capacity"], config["allocated_capacity"]) == (10**13 // per, steps)
    assert config["allocated_bytes"] == steps * per and config["bytes_per_transition"] == per
    metrics = pd.read_csv(run_dir(tmp_path, spec.run_id) / "metrics.csv")
    assert (metrics["replay_capacity"] == 10**13 // per).all()
    assert (metrics["replay_alloc_bytes"] == steps * per).all()
    assert metrics["replay_bytes"].tolist() == metrics["replay_peak_bytes"].tolist() == [0, 30 * per]


def test_a_budget_beyond_64_bits_or_an_allocation_beyond_memory_is_one_line(capsys, tmp_path):
    smoke = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"]
    code = main([*smoke, "--budget-gb", "1e30", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert (
        f"--budget-gb 1e+30 is 1e+39 bytes, more than a 64-bit byte count holds ({(2**63 - 1) / 1e9:.3g} GB)"
        in err
    )
    # 8e9 env steps at repeat 8: 1e9 transitions, which 1e8 GB would hold
    code = main([*smoke, "--budget-gb", "1e8", "--steps", "8000000000", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "runs").exists()
    allocated = 10**9 * pixel_transition_nbytes(1)
    assert f"the replay would allocate {allocated / 1e9:,.1f} GB for 1,000,000,000 transitions" in err
    available = re.search(r"more than the ([\d,.]+) (GB|MB) of memory available", err)
    scale = 1e9 if available[2] == "GB" else 1e6
    assert float(available[1].replace(",", "")) * scale == pytest.approx(
        psutil.virtual_memory().available, rel=0.2
    )
    # `profile` checks the same spec without the memory check, and checking maps no replay (29 TB here)
    check_spec(short_spec("curl", budget_gb=1e8, steps=8_000_000_000), memory=False)
