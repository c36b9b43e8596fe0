"""The time ledger (train, eval and update time, and each category) in metrics.csv, and `--tensorboard`'s
event files, from one real run.

The shared run: curl on cartpole-swingup, 30 agent steps evaluated every 10 (rows at 0, 10, 20, 30), 4
updates (agent steps 26-29), train.csv windows of 2 updates, TensorBoard on.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import scalars, short_spec

from seer_bench.cli import main
from seer_bench.instrument.timing import CATEGORIES, TRAIN_CATEGORIES, TimeLedger
from seer_bench.instrument.timing import column as time_column
from seer_bench.records import run_dir
from seer_bench.runner import RunOptions, build_env, run

EVALS = [0, 10, 20, 30]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("times")
    spec = short_spec("curl", eval_every=10, init_steps=26)
    run(spec, out, RunOptions(train_log_every=2, tensorboard=True))
    path = run_dir(out, spec.run_id)
    return path, pd.read_csv(path / "metrics.csv")


def test_train_and_eval_time_add_up_within_wall_time(shared_run):
    _, metrics = shared_run
    assert metrics["step"].tolist() == EVALS and metrics["updates"].tolist() == [0, 0, 0, 4]
    train, evals, wall = metrics["train_s"], metrics["eval_s"], metrics["wall_s"]
    # row 0: one evaluation and nothing trained yet but the training env's first reset; wall time also
    # counts start-up
    first = metrics.iloc[0]
    assert train.iloc[0] == pytest.approx(first["time_physics_s"] + first["time_render_s"])
    assert 0 < evals.iloc[0] < wall.iloc[0]
    assert (train + evals <= wall).all()
    # each row adds its interval's training and its own evaluation: both grow at every later row
    assert (train.diff().iloc[1:] > 0).all() and (evals.diff().iloc[1:] > 0).all()
    # wall time (its own clock, from the run's start) between rows is spent almost all in the two
    covered = (train + evals).diff().iloc[1:] / wall.diff().iloc[1:]
    assert (covered > 0.75).all() and (covered <= 1).all(), covered.tolist()
    # the 4 updates all fall between the rows at steps 20 and 30: inside that interval's training time
    update_s = metrics["update_s_mean"].iloc[-1] * 4
    assert metrics["update_s_mean"].iloc[:3].isna().all()
    assert 0 < update_s <= train.iloc[3] - train.iloc[2]


def test_the_time_ledger_covers_the_wall_time_by_category(shared_run):
    _, metrics = shared_run
    ledger = metrics[[time_column(c) for c in CATEGORIES]]
    covered = ledger.sum(axis=1)
    # exclusive categories add up to the wall time (its own clock); the rest is the loop's glue
    assert (covered <= metrics["wall_s"] + 1e-6).all()
    assert ((metrics["wall_s"] - covered) < 0.01 * metrics["wall_s"]).all(), (
        metrics["wall_s"] - covered
    ).tolist()
    last = metrics.iloc[-1]
    assert last["train_s"] == pytest.approx(sum(last[time_column(c)] for c in TRAIN_CATEGORIES))
    assert last["eval_s"] == last["time_eval_s"]
    assert last["update_s_mean"] * 4 == pytest.approx(last["time_update_s"])
    # random actions until step 26, then 4 policy actions; no SEER, no checkpoints in this run
    assert last["time_act_s"] > 0 and metrics["time_act_s"].iloc[2] == 0
    assert last[["time_encode_s", "time_convert_s", "time_checkpoint_s"]].tolist() == [0, 0, 0]
    for category in ("setup", "physics", "render", "replay", "loop", "bookkeeping"):
        assert last[time_column(category)] > 0, category
    assert metrics["time_setup_s"].nunique() == 1  # once, before the first row


def test_render_time_matches_renders_timed_apart(shared_run):
    """An independent clock on the same work: the run rendered 31 training frames (a reset and 30 steps);
    the same env's frames timed here, one by one, cost about as much each."""
    _, metrics = shared_run
    spec = short_spec("curl", eval_every=10, init_steps=26)
    env = build_env(spec, seed=0)
    env.reset()
    start = time.perf_counter()
    for _ in range(10):
        env.step(np.zeros(env.action_dim))
    env.close()
    per_step = (time.perf_counter() - start) / 10
    per_render = metrics["time_render_s"].iloc[-1] / 31
    per_physics = metrics["time_physics_s"].iloc[-1] / 31
    # a frame costs a software-rendered 100x100 image; the ledger splits a step into render and physics
    assert 0.2 < (per_render + per_physics) / per_step < 5, (per_render, per_physics, per_step)


def test_sections_are_exclusive_and_nest():
    ledger = TimeLedger(torch.device("cpu"))
    with ledger.section("update"):
        time.sleep(0.02)
        with ledger.section("bookkeeping"):
            time.sleep(0.05)
        ledger.wrap("act", time.sleep)(0.03)
    assert ledger.totals["bookkeeping"] == pytest.approx(0.05, abs=0.02)
    assert ledger.totals["act"] == pytest.approx(0.03, abs=0.02)
    assert ledger.totals["update"] == pytest.approx(0.02, abs=0.02)
    assert sum(ledger.totals.values()) == pytest.approx(0.10, abs=0.03)
    with pytest.raises(RuntimeError), ledger.section("eval"):  # an exception still closes the section
        raise RuntimeError
    assert not ledger._open and ledger.totals["eval"] >= 0
    resumed = TimeLedger(torch.device("cpu"))
    resumed.load_state_dict({"update": 1.0})  # a checkpoint from before the other categories: NaN, not 0
    assert resumed.totals["update"] == 1.0 and np.isnan(resumed.totals["render"])


def test_more_evaluation_episodes_take_longer_to_evaluate(shared_run, tmp_path):
    """An independent check of eval_s: 3 episodes per evaluation instead of 1 (the env and policy alike)."""
    _, metrics = shared_run
    spec = short_spec("curl", eval_episodes=3)  # evaluations at agent steps 0 and 30 only
    run(spec, tmp_path)
    longer = pd.read_csv(run_dir(tmp_path, spec.run_id) / "metrics.csv")
    per_eval_one = metrics["eval_s"].iloc[-1] / len(metrics)
    per_eval_three = longer["eval_s"].iloc[-1] / len(longer)
    assert per_eval_three > 1.5 * per_eval_one, (per_eval_one, per_eval_three)


def test_tensorboard_holds_the_records_at_their_env_steps(shared_run):
    path, _ = shared_run
    board = scalars(path)
    metrics = pd.read_csv(path / "metrics.csv")  # an independent read of the records
    steps = metrics["env_steps"].tolist()
    for tag, column in [
        ("eval/return", "eval_return"),
        ("flops/cum_flops", "cum_flops"),
        ("memory/rss_bytes", "rss_bytes"),
        ("memory/replay_bytes", "replay_bytes"),
        ("time/train_s", "train_s"),
        ("time/eval_s", "eval_s"),
        ("time_ledger/render_s", "time_render_s"),
        ("time_ledger/update_s", "time_update_s"),
    ]:
        assert [s for s, _ in board[tag]] == steps, tag
        np.testing.assert_allclose([v for _, v in board[tag]], metrics[column], rtol=1e-6, err_msg=tag)
    # measured only after the first update (NaN before): one point, at the last row
    assert [s for s, _ in board["time/update_s_mean"]] == [steps[-1]]
    assert "memory/gpu_bytes" not in board  # no GPU here: nothing measured, nothing drawn
    train = pd.read_csv(path / "train.csv")
    for metric, rows in train.groupby("metric"):
        got = board[f"train/{metric}"]
        assert [s for s, _ in got] == rows["env_steps"].tolist(), metric
        np.testing.assert_allclose([v for _, v in got], rows["mean"], rtol=1e-6, err_msg=metric)
    assert len(board["train/critic_loss"]) == 2  # windows of 2 updates out of 4


def test_tensorboard_without_the_package_is_refused_before_any_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what importing it does where it is not installed
    argv = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"]
    code = main([*argv, "--tensorboard", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--tensorboard needs the tensorboard package" in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
