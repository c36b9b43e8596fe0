"""One owner per run directory: a second sweep into the same --out leaves a run another process trains
alone (and says who owns it); a run whose owner died is taken over, saying so, and resumed."""

import json
import os
import platform
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, checkpoint_step, start_process, wait_while_running

from seer_bench.cli import main
from seer_bench.locks import RunLock, RunOwned
from seer_bench.records import read_events, run_dir
from seer_bench.reports import _interrupted_section
from seer_bench.reports.tables import run_table

RUN = "curl/cartpole-swingup/budget_0.02/seed_0"
# 30 agent steps (action repeat 8): evaluations at 0, 15, 30, a checkpoint every 5, updates from 20
COMMAND = [
    *("--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl"),
    *("--steps", "240", "--eval-every", "120", "--checkpoint-every", "40"),
]
HOLD = """import sys, time
from seer_bench.locks import RunLock
with RunLock(sys.argv[1]):
    print(1, flush=True)
    time.sleep(600)
"""


def test_a_lock_held_by_a_live_process_is_refused_naming_it_and_a_dead_owners_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"1"
    with pytest.raises(RunOwned, match=rf"owned by host {platform.node()}, pid {holder.pid}"):
        RunLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path) as lock:  # the kernel released the dead owner's lock; its record names it
        assert (lock.stale["pid"], lock.stale["host"]) == (holder.pid, platform.node())
    with RunLock(tmp_path) as lock:  # a clean release leaves no owner to take over from
        assert lock.stale is None


def test_two_sweeps_into_one_out_never_train_one_run_twice(tmp_path, capsys):
    out = tmp_path / "out"
    path = run_dir(out, RUN)
    first = start_process("bench.py", *COMMAND, "--out", str(out))
    wait_while_running(first, lambda: checkpoint_step(path) >= 5)  # then the second sweep starts

    assert main([*COMMAND, "--out", str(out)]) == 0  # the second sweep: the run is the first's
    err = capsys.readouterr().err
    assert f"{RUN}: owned by host {platform.node()}, pid {first.pid}; left to it" in err

    runs, _ = run_table(out)
    assert runs.set_index("seed").loc[0, "status"] == "running"  # its owner lives: running
    assert main(["list", "--out", str(out)]) == 0  # where it stands, and how fresh that news is
    assert f"{RUN}: running, " in (listed := capsys.readouterr().out) and " s ago" in listed
    first.send_signal(signal.SIGKILL)  # dies holding the lock
    first.wait()
    # a report no longer calls it running for ever: its lock is free, so it is interrupted where it stopped
    runs, _ = run_table(out)
    stopped = json.loads((path / "progress.json").read_text())["env_steps"]
    assert list(runs[["status", "stopped_env_steps"]].iloc[0]) == ["interrupted", stopped]
    assert f"- {RUN}: interrupted at env step {stopped:,}" in _interrupted_section(runs)
    assert main([*COMMAND, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert (
        f"run {RUN}: its owner (host {platform.node()}, pid {first.pid}) died holding it; taken over" in err
    )
    events = [e["event"] for e in read_events(path)]
    assert events == ["started", "lock_taken_over", "resumed", "finished"]  # one writer at a time
    assert os.path.getsize(path / "lock") == 0  # released cleanly
