"""Resume: a run killed with SIGKILL continues from its checkpoint, and its records end complete."""

import json
import signal

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import checkpoint_step, fill_random, scalars, start_process, wait_while_running

from seer_bench import checkpoint
from seer_bench.cli import main
from seer_bench.instrument.timing import TRAIN_CATEGORIES
from seer_bench.records import read_events, run_dir
from seer_bench.replay import TransitionSpec, replay_class

RUN = "curl+seer/cartpole-swingup/budget_0.02/seed_0"
# smoke scale: 50 agent steps (action repeat 8), evaluations at 0, 25, 50, T_f at 30; a checkpoint every 10
COMMAND = [
    "--suite",
    "dmc6",
    "--scale",
    "smoke",
    "--envs",
    "cartpole-swingup",
    "--agents",
    "curl+seer",
    "--checkpoint-every",
    "80",
    "--tensorboard",  # the resumed run appends to the killed one's event files
]


def test_a_run_killed_mid_run_resumes_from_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "out"
    path = run_dir(out, RUN)
    proc = start_process("bench.py", *COMMAND, "--out", str(out))
    # the checkpoint after T_f (30): progress.json is rewritten as each one is saved
    wait_while_running(proc, lambda: checkpoint_step(path) == 30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the newest checkpoint when it died (30, or 40 if it got that far)
    last = checkpoint_step(path)
    assert last in (30, 40) and (path / "checkpoint.pt").exists() and not list(path.glob("*.tmp"))
    times = checkpoint.load(path)["times"]  # the time ledger's seconds per category when it was saved
    times["train"] = sum(times[c] for c in TRAIN_CATEGORIES)

    assert main([*COMMAND, "--out", str(out)]) == 0
    events = read_events(path)
    resumed = [e for e in events if e["event"] == "resumed"]
    # from the newest: at most one interval (10 agent steps) lost
    assert [e["step"] for e in resumed] == [last]
    # the killed process still held the run lock: the resume takes it over and says so
    assert [e["event"] for e in events if e["event"] != "frozen"] == [
        "started",
        "lock_taken_over",
        "resumed",
        "finished",
    ]
    assert len([e for e in events if e["event"] == "frozen"]) == 1  # frozen state came from the checkpoint
    # exact floats: the times below are compared with the checkpoint's to the bit
    metrics = pd.read_csv(path / "metrics.csv", float_precision="round_trip")
    assert list(metrics["step"]) == [0, 25, 50]  # every evaluation once: none missing, none duplicated
    learn_start = json.loads((path / "config.json").read_text())["agent_config"]["init_steps"]
    # counted across
    assert list(metrics["frozen"]) == [0, 0, 1] and metrics["updates"].iloc[-1] == 50 - learn_start
    assert metrics["replay_size"].iloc[-1] == 50  # every transition kept across the resume
    assert metrics["train_episodes"].iloc[-1] == 1  # the 125-agent-step episode cut at the resume counts
    assert metrics["cum_flops"].is_monotonic_increasing and metrics["wall_s"].is_monotonic_increasing
    # train and eval time continue from the checkpoint's (no evaluation between the row at 25 and it)
    assert times["eval"] == metrics["eval_s"].iloc[1] and times["train"] > metrics["train_s"].iloc[1] > 0
    assert metrics["eval_s"].iloc[2] > times["eval"] and metrics["train_s"].iloc[2] > times["train"]
    assert (metrics["train_s"] + metrics["eval_s"] <= metrics["wall_s"]).all()
    # every category continues from the checkpoint's; set-up adds the resumed process's own
    last_row = metrics.iloc[-1]
    for category, seconds in times.items():
        if category != "train":
            assert last_row[f"time_{category}_s"] >= seconds, category
    assert last_row["time_setup_s"] > times["setup"] and last_row["time_checkpoint_s"] > 0
    assert not (path / "checkpoint.pt").exists()  # a finished run drops its checkpoint
    board = scalars(path)  # both attempts' event files, read together: every evaluation once
    assert [step for step, _ in board["eval/return"]] == metrics["env_steps"].tolist()
    assert [value for _, value in board["eval/return"]] == pytest.approx(metrics["eval_return"].tolist())
    printed = capsys.readouterr().out
    assert "1/1 finished" in printed

    # the same command again skips it
    assert main([*COMMAND, "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().out and [e["event"] for e in read_events(path)][-1] == "finished"


def test_a_changed_config_for_a_recorded_run_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    path = run_dir(out, RUN)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"spec": {"steps": 800}}))
    assert main([*COMMAND, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "steps: recorded 800, asked 400" in err and "different config" in err


def test_a_run_recorded_before_an_agent_setting_existed_is_refused(tmp_path, capsys):
    """Runs recorded before CURL's optimizer wiring became a setting used CURL's wiring: resuming them under
    the new default (the public SEER code's) would mix two agents in one run."""
    from dataclasses import asdict

    from seer_bench.agents import AGENTS, agent_config
    from seer_bench.envs import KNOWN_ENVS
    from seer_bench.suites import Overrides, load_suite, resolve

    spec = resolve(
        load_suite("dmc6"),
        Overrides(scale="smoke", envs=["cartpole-swingup"], agents=["curl+seer"]),
        AGENTS,
        KNOWN_ENVS,
    )[0]
    cfg = asdict(agent_config(spec.agent, spec.agent_overrides))
    del cfg["encoder_optimizer"]
    path = run_dir(tmp_path / "out", spec.run_id)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"spec": spec.to_dict(), "agent_config": cfg}))
    assert main([*COMMAND, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "agent_config.encoder_optimizer: recorded 'absent', asked 'seer'" in err and err.count("\n") == 1


@pytest.mark.parametrize("layout", ["paper", "compact"])
def test_replay_state_round_trips_through_a_weights_only_checkpoint(tmp_path, layout):
    spec = TransitionSpec((9, 100, 100), action_dim=2, frame_stack=3, episode_steps=10)
    replay = replay_class(layout)(spec, 64)
    fill_random(replay, 100)  # wrapped around: the tail has moved
    checkpoint.save(tmp_path, {"replay": replay.state_dict(), "rng": checkpoint.global_rng_state()})
    state = checkpoint.load(tmp_path)  # weights_only=True: no pickled numpy or code
    twin = replay_class(layout)(spec, 64)
    twin.load_state_dict(state["replay"])
    idx = np.arange(replay.tail, replay.head)
    offsets = np.zeros((len(idx), 2), int)
    assert (twin.head, twin.tail, len(twin)) == (replay.head, replay.tail, len(replay))
    np.testing.assert_array_equal(twin.obs(idx, offsets, 84), replay.obs(idx, offsets, 84))
    np.testing.assert_array_equal(twin.next_obs(idx, offsets, 84), replay.next_obs(idx, offsets, 84))
    for key, values in replay.scalars(idx).items():
        np.testing.assert_array_equal(twin.scalars(idx)[key], values)
    checkpoint.set_global_rng_state(state["rng"])
    a = (np.random.random(), torch.rand(1).item())
    checkpoint.set_global_rng_state(state["rng"])
    assert (np.random.random(), torch.rand(1).item()) == a
