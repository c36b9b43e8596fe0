"""Agents from outside the package, by import path: the example agent benchmarked end to end (with SEER), its
FLOPs cross-checked against torch's counter, and agents that miss part of the contract refused in one line."""

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fill_random, ledger_and_torch

from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.cli import main
from seer_bench.replay import PaperReplay, TransitionSpec

EXAMPLE = "examples.pixel_ddpg:PixelDdpg"
SMOKE = ["--suite", "dmc6", "--scale", "smoke", "--envs", "cartpole-swingup"]


def test_the_example_agent_runs_by_import_path_with_and_without_seer(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            *SMOKE,
            "--agents",
            f"{EXAMPLE},{EXAMPLE}+seer",
            "--seer-split",
            "encoder",
            "--num-copies",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    runs = {
        agent: out / "runs" / agent / "cartpole-swingup" / "budget_0.02" / "seed_0"
        for agent in (EXAMPLE, f"{EXAMPLE}+seer")
    }
    base, seer = (pd.read_csv(path / "metrics.csv") for path in runs.values())
    assert base["step"].tolist() == seer["step"].tolist() == [0, 25, 50] and base["eval_return"].notna().all()
    assert base["updates"].iloc[-1] == 30 and base["cum_flops_update"].iloc[-1] > 0
    # identical until T_f (agent step 30), then SEER's update skips the convs
    assert base.loc[1, "cum_flops"] == seer.loc[1, "cum_flops"] and seer["frozen"].tolist() == [0, 0, 1]
    assert seer["update_flops"].iloc[-1] < 0.1 * base["update_flops"].iloc[-1]
    events = [
        json.loads(line) for line in (runs[f"{EXAMPLE}+seer"] / "events.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in events] == ["started", "frozen", "finished"]
    train = pd.read_csv(runs[EXAMPLE] / "train.csv")
    assert set(train["metric"]) == {"critic_loss", "actor_loss"}
    assert f"| cartpole-swingup | {EXAMPLE} |" in capsys.readouterr().out  # in the printed report


@pytest.mark.parametrize("frozen", [False, True])
def test_the_example_agents_flops_equal_torch_counter(frozen):
    from examples.pixel_ddpg import DdpgConfig, PixelDdpg

    torch.manual_seed(0)
    agent = PixelDdpg((9, 100, 100), 2, DdpgConfig(batch_size=8), torch.device("cpu"), 0)
    replay = PaperReplay(TransitionSpec((9, 100, 100), action_dim=2, frame_stack=3, episode_steps=10), 64)
    fill_random(replay, 64)
    obs = np.random.default_rng(0).integers(0, 256, (9, 100, 100), dtype=np.uint8)
    if frozen:
        replay, _ = Seer(
            SeerConfig(freeze_at=1, num_copies=1, split="encoder"),
            10**9,
            seed=0,
            chunk=8,
            layout="paper",
            transitions=replay.spec,
            total_steps=100,
        ).freeze(agent, replay, step=0)
    for call in (
        lambda: agent.update(replay, 0),
        lambda: agent.act(obs, 0, eval_mode=False),
        lambda: agent.encode(np.stack([obs] * 3), np.random.default_rng(0), 1, "float32"),
    ):
        ledger, measured = ledger_and_torch(agent, call)
        assert ledger == pytest.approx(measured, rel=1e-3) and ledger > 0


class NoUpdate:
    """Everything but `update`."""

    from examples.pixel_ddpg import DdpgConfig as Config

    discrete, random_steps, learn_start, update_every, update_period, sample_horizon = False, 0, 1, 1, 1, 1

    def __init__(self, *args):
        pass

    def act(self, obs, step, eval_mode):
        return np.zeros(1, np.float32)


class NoSeer(NoUpdate):
    def update(self, replay, step):
        return {}


class NoBatchSize(NoSeer):
    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-3


@pytest.mark.parametrize(
    "agent,message",
    [
        (
            "test_open_agents:NoUpdate",
            "agent test_open_agents:NoUpdate does not meet the agent contract "
            "(seer_bench.agents.contract.Agent): missing update",
        ),
        (
            "test_open_agents:NoSeer+seer",
            "agent test_open_agents:NoSeer does not provide what SEER needs "
            "(seer_bench.agents.seer.Freezable): missing action_dim, random_crops, splits",
        ),
        ("nosuch.module:Agent", "agent 'nosuch.module:Agent': cannot import module 'nosuch.module'"),
        (
            "examples.pixel_ddpg:Nope",
            "agent 'examples.pixel_ddpg:Nope': module 'examples.pixel_ddpg' has no 'Nope'",
        ),
        ("examples.pixel_ddpg:Encoder", "expected a class with a dataclass `Config` attribute"),
        ("test_open_agents:NoBatchSize", "its Config has no `batch_size` field (agents.contract)"),
    ],
)
def test_an_agent_that_misses_the_contract_is_refused_in_one_line(capsys, tmp_path, agent, message):
    code = main(
        [
            *SMOKE,
            "--agents",
            agent,
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
