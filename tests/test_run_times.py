"""Train, evaluation and update time in metrics.csv, and `--tensorboard`'s event files, from one real run.

The shared run: curl on cartpole-swingup, 30 agent steps evaluated every 10 (rows at 0, 10, 20, 30), 4
updates (agent steps 26-29), train.csv windows of 2 updates, TensorBoard on.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import scalars, short_spec

from seer_bench.cli import main
from seer_bench.records import run_dir
from seer_bench.runner import RunOptions, run

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
    # row 0: one evaluation and nothing trained yet; wall time also counts start-up
    assert train.iloc[0] == 0 and 0 < evals.iloc[0] < wall.iloc[0]
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
