"""Executors: worker processes, a real local Ray cluster, and failures that do not stop a sweep."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from seer_bench.agents import AGENTS
from seer_bench.cli import main
from seer_bench.envs import KNOWN_ENVS
from seer_bench.executors import _worker_outcome
from seer_bench.records import append_event, read_events, run_dir
from seer_bench.suites import Overrides, load_suite, resolve

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup"]
RUNS = ("curl/cartpole-swingup/budget_0.02/seed_0", "curl+seer/cartpole-swingup/budget_0.02/seed_0")


def assert_complete(out: Path, run_id: str) -> None:
    """Finished, with its config and every evaluation of the smoke scale (steps 0, 25, 50) once."""
    path = run_dir(out, run_id)
    assert json.loads((path / "config.json").read_text())["run_id"] == run_id
    assert [e["event"] for e in read_events(path) if e["event"] != "frozen"][-1] == "finished"
    assert list(pd.read_csv(path / "metrics.csv")["step"]) == [0, 25, 50]


def test_ray_cluster_runs_two_smoke_runs_with_complete_records(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main([*SMOKE, "--executor", "ray", "--cpus-per-run", "1", "--out", str(tmp_path)]) == 0
        err = capsys.readouterr().err
        nodes = ray.nodes()
        # resources no node has would queue for ever: refused, naming the flags
        assert (
            main([*SMOKE, "--executor", "ray", "--gpus-per-run", "0.5", "--out", str(tmp_path / "gpu")]) == 2
        )
        assert "no node of the Ray cluster fits a run of 1 CPU and 0.5 GPU" in capsys.readouterr().err
    finally:
        ray.shutdown()
    for run_id in RUNS:
        assert_complete(tmp_path, run_id)
    hosts = {json.loads((run_dir(tmp_path, r) / "config.json").read_text())["torch_threads"] for r in RUNS}
    assert hosts == {1} and len(nodes) == 1  # one CPU (one torch thread) per run, on the local cluster
    assert "sweep: 2/2 finished, 0 running, 0 failed" in err


def test_a_killed_worker_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "bench.py", *SMOKE, "--jobs", "2", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim, deadline = None, time.time() + 300
    while victim is None and time.time() < deadline:
        time.sleep(0.2)
        for child in psutil.Process(proc.pid).children():
            if (
                '"agent": "curl"' in " ".join(child.cmdline())
                and (run_dir(tmp_path, RUNS[0]) / "config.json").exists()
            ):
                victim = child
    assert victim is not None, "no curl worker process appeared"
    victim.kill()  # SIGKILL, as the out-of-memory killer would
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr
    assert_complete(tmp_path, RUNS[1])  # the other run finished
    failed = pd.read_csv(tmp_path / "failures.csv")
    assert list(failed["agent"]) == ["curl"] and "killed by signal 9" in failed["reason"].item()
    assert "sweep: 1/2 finished, 0 running, 1 failed" in stderr and "killed by signal 9" in stderr
    assert "| 0/1 finished, 1 failed" in stdout
    assert "Failed runs (also in failures.csv)" in (tmp_path / "summary.md").read_text()


DIVERGING = """
description = "a learning rate that makes CURL diverge"
agents = ["curl"]
default_scale = "smoke"
budget_gb = 0.02
replay_layout = "paper"
[envs]
cartpole-swingup = 8
[scales.smoke]
steps = 400
eval_every = 200
eval_episodes = 1
seeds = 2
[scales.smoke.agent]
critic_lr = 1e30
actor_lr = 1e30
batch_size = 16
init_steps = 10
"""


def test_a_diverging_run_fails_with_its_reason_and_the_next_one_still_runs(tmp_path, capsys):
    suite = tmp_path / "diverge.toml"
    suite.write_text(DIVERGING)
    assert main(["--suite", str(suite), "--out", str(tmp_path / "out")]) == 1
    failed = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert list(failed["seed"]) == [0, 1]  # seed 1 ran after seed 0 failed
    assert all(r.startswith("FloatingPointError: non-finite") and "(diverged)" in r for r in failed["reason"])
    assert (
        failed["stopped_env_steps"] > 10 * 8
    ).all()  # after the 10 random agent steps, where updates begin
    err = capsys.readouterr().err
    assert "2 run(s) failed" in err and "FloatingPointError: non-finite" in err


def test_a_worker_that_dies_is_not_given_an_earlier_attempts_reason(tmp_path):
    spec_run = RUNS[0]
    append_event(run_dir(tmp_path, spec_run), "failed", reason="FloatingPointError: an earlier attempt")
    spec = next(
        s
        for s in resolve(
            load_suite("dmc6"), Overrides(scale="smoke", envs=["cartpole-swingup"]), AGENTS, KNOWN_ENVS
        )
        if s.run_id == spec_run
    )
    outcome = _worker_outcome(spec, tmp_path, -9, launched=time.time())  # died before writing any event
    assert outcome.status == "failed" and "killed by signal 9" in outcome.text
    assert read_events(run_dir(tmp_path, spec_run))[-1]["reason"] == outcome.text  # recorded this time
