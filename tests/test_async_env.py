"""--async-env: the training env stepped in a worker process while the agent updates gives the run it gives
in process (records and replay, to the bit), before and after SEER's freeze, and resumes from a checkpoint."""

import numpy as np
import pandas as pd
import psutil
from conftest import short_spec

from seer_bench.agents.seer import SeerConfig
from seer_bench.records import read_events
from seer_bench.runner import RunOptions, Workspace

# 30 agent steps: evaluations at 0, 10, 20, 30, updates from 15, T_f at 22, a checkpoint every 10 steps
SPEC = short_spec("curl+seer", SeerConfig(freeze_at=22, num_copies=1), eval_every=10, init_steps=15)
RECORDED = ["eval_return", "updates", "train_episodes", "replay_size", "cum_flops", "frozen"]


def trained(out, async_env: bool, fail_at: int | None = None) -> Workspace:
    ws = Workspace(SPEC, out, RunOptions(async_env=async_env, eval_workers=0, checkpoint_every=500))
    if fail_at is not None:
        update = ws.agent.update
        ws.agent.update = lambda replay, step: 1 / 0 if step == fail_at else update(replay, step)
    try:
        ws.train()
    except ZeroDivisionError:
        assert fail_at is not None
    return ws


def test_async_env_gives_the_in_process_run_bit_for_bit(tmp_path):
    local, remote = trained(tmp_path / "local", False), trained(tmp_path / "async", True)
    worker = remote.env._worker.process
    assert not worker.is_alive() and not psutil.pid_exists(worker.pid)  # ended with the run
    metrics = [pd.read_csv(ws.path / "metrics.csv") for ws in (local, remote)]
    pd.testing.assert_frame_equal(metrics[0][RECORDED], metrics[1][RECORDED])
    assert metrics[0]["frozen"].tolist() == [0, 0, 0, 1]
    a, b = local.replay.state_dict(), remote.replay.state_dict()
    assert a["counters"] == b["counters"] and a["arrays"].keys() == b["arrays"].keys()
    for key in a["arrays"]:
        np.testing.assert_array_equal(np.asarray(a["arrays"][key]), np.asarray(b["arrays"][key]))


def test_an_async_run_resumes_from_its_checkpoint(tmp_path):
    trained(tmp_path, True, fail_at=25)  # after the checkpoint at 20 and T_f
    resumed = trained(tmp_path, True)
    assert resumed.start_step == 20
    metrics = pd.read_csv(resumed.path / "metrics.csv")
    assert metrics["step"].tolist() == [0, 10, 20, 30] and metrics["replay_size"].iloc[-1] == 30
    assert [e["event"] for e in read_events(resumed.path) if e["event"] == "resumed"] == ["resumed"]
