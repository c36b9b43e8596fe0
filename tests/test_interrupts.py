"""Signals: Ctrl-C and SIGTERM stop a sweep in one line with exit 130/143 and an `interrupted` event per
run; a sweep's workers never outlive it (also when it is killed with SIGKILL); the same command resumes."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import checkpoint_step, start_process, wait_while_running

from seer_bench import checkpoint
from seer_bench.cli import main
from seer_bench.interrupts import Interrupted, deferred, raise_on_signals
from seer_bench.records import last_event, read_events, run_dir

RUNS = [f"{agent}/cartpole-swingup/budget_0.02/seed_0" for agent in ("curl", "curl+seer")]
# 30 agent steps (action repeat 8): evaluations at 0, 15, 30, a checkpoint every 5, updates from 20, T_f 22
COMMAND = [
    *("--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup", "--agents", "curl,curl+seer"),
    *("--steps", "240", "--eval-every", "120", "--freeze-at", "22", "--checkpoint-every", "40"),
]


def start_sweep(out: Path, *flags: str) -> subprocess.Popen:
    return start_process("bench.py", *COMMAND, *flags, "--out", str(out), stderr=subprocess.PIPE)


def wait_for_checkpoints(proc: subprocess.Popen, paths: list[Path]) -> None:
    wait_while_running(proc, lambda: min(checkpoint_step(p) for p in paths) >= 5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_jobs_sweep_leaves_no_orphan_and_records_where_each_run_stopped(tmp_path, sig, capsys):
    out = tmp_path / "out"
    paths = [run_dir(out, r) for r in RUNS]
    proc = start_sweep(out, "--jobs", "2", "--cpus-per-run", "1")
    wait_for_checkpoints(proc, paths)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) == 2
    proc.send_signal(sig)  # the sweep's own process only, as `kill PID` does
    _, err = proc.communicate(timeout=120)
    gone, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"workers outlived the sweep: {alive}"
    for path in paths:
        stopped = last_event(read_events(path), "interrupted")
        assert stopped is not None and stopped["signal"] == "SIGTERM", read_events(path)
        assert stopped["checkpoint_step"] >= 5 and stopped["env_steps"] >= 40
        assert checkpoint.load(path)["step"] == stopped["checkpoint_step"]  # the checkpoint stays as it was
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return  # the workers learnt of it from Linux (PR_SET_PDEATHSIG), and recorded it
    last = err.strip().splitlines()[-1]  # after the progress log (stderr is not a terminal here)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert last.startswith("interrupted at env step ") and last.endswith(
        "(and 1 other run(s)); run the same command to resume"
    )

    assert main([*COMMAND, "--out", str(out)]) == 0  # the same command resumes both
    for path in paths:
        events = [e["event"] for e in read_events(path) if e["event"] != "frozen"]
        assert events == ["started", "interrupted", "resumed", "finished"]
        assert list(pd.read_csv(path / "metrics.csv")["step"]) == [0, 15, 30]  # every evaluation once
    printed = capsys.readouterr()
    assert "2/2 finished" in printed.out + printed.err


def test_ctrl_c_is_one_line_exit_130_and_an_interrupted_event(tmp_path):
    out = tmp_path / "out"
    path = run_dir(out, RUNS[0])
    proc = start_sweep(out)  # local: the runs one after another in this process
    wait_for_checkpoints(proc, [path])
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]  # after the progress log (stderr is not a terminal here)
    assert proc.returncode == 130 and "Traceback" not in err, err
    stopped = last_event(read_events(path), "interrupted")
    assert stopped["signal"] == "SIGINT"
    assert (
        last
        == f"interrupted at env step {stopped['env_steps']:,} of {RUNS[0]}; run the same command to resume"
    )
    assert not run_dir(out, RUNS[1]).exists()  # the sweep stopped: the next run never started


def test_a_signal_during_a_checkpoint_write_interrupts_once_the_write_is_whole():
    """A SIGTERM that lands inside torch.save failed the run with a torn checkpoint ("unexpected pos"): the
    runner writes checkpoints in a deferred block, where a real signal takes effect only at its end."""
    written = []
    with pytest.raises(Interrupted) as stopped, raise_on_signals():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now: it must not have cut the block
            written.append("checkpoint")
        written.append("after the block")  # never reached: the deferred signal is raised at the block's end
    assert written == ["checkpoint"] and stopped.value.signum == signal.SIGTERM
