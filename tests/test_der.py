"""Data-efficient Rainbow (`der`) and `der+seer`: the network's arithmetic, n-step and C51 targets against
direct loops, the FLOP ledger against torch's counter, SEER's freeze, and real runs on ALE."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import OpLog, assert_act_and_encode_priced, assert_calls_priced_as_torch_counts

from seer_bench.agents.contract import networks
from seer_bench.agents.der import Der, DerConfig
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.envs import ATARI_SCORES, human_normalized_score
from seer_bench.instrument.flops import FlopLedger
from seer_bench.replay import (
    CompactLatentReplay,
    CompactReplay,
    LatentSpec,
    PaperLatentReplay,
    PaperReplay,
    TransitionSpec,
)
from seer_bench.runner import run
from seer_bench.suites import RunSpec

CFG = DerConfig(batch_size=8, multi_step=5)  # the full-size network, a small batch
SPEC = TransitionSpec((4, 84, 84), action_dim=18, frame_stack=4, episode_steps=100, discrete=True)


def make(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return Der((4, 84, 84), 18, cfg, torch.device("cpu"), seed)


def fill_atari(replay, n, seed=0, episode_steps=23):
    """`n` transitions of random grayscale frames stacked like the env; episodes alternate terminal and
    truncated ends, so n-step windows meet both."""
    rng = np.random.default_rng(seed)
    frames, episode = None, 0
    for t in range(n):
        if frames is None:
            frames = [np.zeros((1, 84, 84), np.uint8)] * 3 + [
                rng.integers(0, 256, (1, 84, 84), dtype=np.uint8)
            ]
            start = t
        obs = np.concatenate(frames)
        frames = frames[1:] + [rng.integers(0, 256, (1, 84, 84), dtype=np.uint8)]
        last = t - start + 1 == episode_steps
        replay.add(
            obs,
            int(rng.integers(18)),
            float(rng.normal()),
            np.concatenate(frames),
            terminal=last and episode % 2 == 0,
            last=last,
        )
        if last:
            frames, episode = None, episode + 1


@pytest.fixture(scope="module")
def pixels():
    replay = CompactReplay(SPEC, 120)
    fill_atari(replay, 150)  # wrapped
    return replay


# --- the network ---------------------------------------------------------------------------------------
def test_conv_forward_at_batch_1_is_the_reference_1_28_m_multiply_adds():
    side1, side2 = (84 - 5) // 5 + 1, ((84 - 5) // 5 + 1 - 5) // 5 + 1  # 16, 3: 5x5 kernels, stride 5
    conv1, conv2 = side1**2 * 32 * 4 * 5 * 5, side2**2 * 64 * 32 * 5 * 5
    assert (conv1, conv2, side2**2 * 64) == (819_200, 460_800, 576)
    agent = make()
    assert agent.latent_streams("conv2") == (("conv", 576),)
    with torch.no_grad():
        _, price = FlopLedger(networks(agent)).measure(agent.online.conv, torch.zeros(1, 4, 84, 84))
    assert price == conv1 + conv2 == 1_280_000
    q = agent.online(torch.zeros(3, 4, 84, 84))
    assert q.shape == (3, 18, 51) and torch.allclose(q.sum(2), torch.ones(3, 18))


# --- targets against direct loops ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [PaperReplay, CompactReplay])
def test_n_step_returns_stop_at_episode_ends_like_a_direct_loop(cls):
    replay = cls(SPEC, 90)
    fill_atari(replay, 130, seed=2, episode_steps=7)
    n, gamma = 5, 0.9
    idx = replay.sample_indices(200, np.random.default_rng(0), horizon=n)
    assert idx.min() >= replay.tail and idx.max() <= replay.head - n  # the newest n - 1 are never drawn
    got = replay.n_step(idx, n, gamma)
    s = replay.scalars(np.arange(replay.tail, replay.head))
    for k, i in enumerate(idx):
        ret, j = 0.0, i - replay.tail
        for m in range(n):
            ret += gamma**m * s["reward"][j + m]
            if s["last"][j + m] or m == n - 1:
                break
        assert got["end"][k] == i + m
        assert got["return"][k] == pytest.approx(ret, rel=1e-5)
        assert got["discount"][k] == pytest.approx(gamma ** (m + 1) * s["not_done"][j + m])
    assert (got["discount"] == 0).any() and (got["end"] - idx < n - 1).any()  # terminals and truncations met
    with pytest.raises(ValueError, match="window"):
        replay.n_step(np.array([replay.head - 2]), n, gamma)


def test_c51_projection_matches_a_per_atom_loop():
    agent, cfg = make(), CFG
    rng = np.random.default_rng(1)
    b = cfg.batch_size
    ret = {
        "return": rng.uniform(-15, 15, b).astype(np.float32),  # some outside the support: clamped
        "discount": np.array([0.0, 0.9**5, 1.0, 0.5, 0.9**5, 0.0, 0.2, 0.9**5], np.float32),
    }
    ret["return"][2] = 0.0  # exact hits on atoms
    p = torch.softmax(torch.from_numpy(rng.normal(size=(b, 18, cfg.atoms)).astype(np.float32)), dim=2)
    online = torch.softmax(torch.from_numpy(rng.normal(size=(b, 18, cfg.atoms)).astype(np.float32)), dim=2)
    m = agent._target_distribution(ret, online, lambda: p).numpy()
    z = np.linspace(cfg.v_min, cfg.v_max, cfg.atoms)
    dz = z[1] - z[0]
    best = (online.numpy() * z).sum(2).argmax(1)
    for k in range(b):
        want = np.zeros(cfg.atoms)
        for j in range(cfg.atoms):
            tz = np.clip(ret["return"][k] + ret["discount"][k] * z[j], cfg.v_min, cfg.v_max)
            pos = (tz - cfg.v_min) / dz
            lo, hi = int(np.floor(pos + 1e-6)), int(np.ceil(pos - 1e-6))
            mass = p[k, best[k], j].item()
            if lo == hi:
                want[lo] += mass
            else:
                want[lo] += mass * (hi - pos)
                want[hi] += mass * (pos - lo)
        np.testing.assert_allclose(m[k], want, atol=1e-5)
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-5)


def test_evaluation_never_shifts_the_training_stream():
    replay = CompactReplay(SPEC, 120)
    fill_atari(replay, 150)
    obs = np.random.default_rng(5).integers(0, 256, (4, 84, 84), dtype=np.uint8)
    evaluated, plain = make(seed=3), make(seed=3)
    for agent in (evaluated, plain):
        agent.update(replay, 1)
    for _ in range(50):  # epsilon-greedy with the noise off draws from the evaluation stream only
        evaluated.act(obs, 0, eval_mode=True)
    assert evaluated.online.training  # back to noisy weights for training
    for agent in (evaluated, plain):
        agent.update(replay, 2)
    for p, q in zip(evaluated.online.parameters(), plain.online.parameters()):
        assert torch.equal(p, q)


# --- FLOP ledger against torch's own count ---------------------------------------------------------------
def frozen(agent, replay, split):
    seer = Seer(
        SeerConfig(freeze_at=1, num_copies=1, split=split),
        10**9,
        seed=0,
        chunk=8,
        layout=replay.layout,
        transitions=replay.spec,
        total_steps=150,  # the transitions fill_atari wrote: the latent replay holds every live one
    )
    return seer.freeze(agent, replay, step=0)


@pytest.mark.parametrize("split", [None, "conv2", "conv1"])
def test_update_act_and_encode_ledgers_equal_torch_counter(split):
    agent = make()
    replay = CompactReplay(SPEC, 120)
    fill_atari(replay, 150)
    if split is not None:
        replay, _ = frozen(agent, replay, split)
    assert_calls_priced_as_torch_counts(agent, lambda: agent.update(replay, 1))
    obs = np.random.default_rng(0).integers(0, 256, (4, 84, 84), dtype=np.uint8)
    assert_act_and_encode_priced(agent, obs, copies=1, frozen=split is not None)


# --- SEER on der
# ---------------------------------------------------------------------------------------------
def test_freeze_skips_the_convs_keeps_them_bitwise_and_still_copies_the_target():
    cfg = DerConfig(batch_size=8, multi_step=5, target_update=3)
    agent = make(cfg=cfg)
    replay = CompactReplay(SPEC, 120)
    fill_atari(replay, 150)
    for step in range(1, 3):
        agent.update(replay, step)
    with OpLog() as pixel_log:
        agent.update(replay, 4)
    assert "aten.convolution_backward.default" in pixel_log.ops  # the check sees convs on pixels
    ends = replay.scalars(np.arange(replay.tail, replay.head))["last"]
    latents, event = frozen(agent, replay, "conv2")
    # One conv pass per transition's next_obs, plus the obs of each episode start (and of the first one).
    assert event["observations_encoded"] == event["transitions_converted"] + 1 + int(ends[:-1].sum())
    convs = {k: v.clone() for k, v in agent.online.convs.state_dict().items()}
    assert all(torch.equal(v, agent.target.convs.state_dict()[k]) for k, v in convs.items())
    head = agent.online.fc_h_v.weight_mu.clone()
    with OpLog() as log:
        agent.update(latents, 5)
        agent.update(latents, 6)  # a target copy step
    assert not any("convolution" in op for op in log.ops)
    assert all(torch.equal(v, agent.online.convs.state_dict()[k]) for k, v in convs.items())
    assert not torch.equal(head, agent.online.fc_h_v.weight_mu)
    assert torch.equal(agent.target.fc_h_v.weight_mu, agent.online.fc_h_v.weight_mu)


@pytest.mark.parametrize(
    "pixel_cls,latent_cls", [(CompactReplay, CompactLatentReplay), (PaperReplay, PaperLatentReplay)]
)
def test_latents_equal_the_frozen_convs_output_for_obs_and_next_obs(pixel_cls, latent_cls):
    agent = make()
    replay = pixel_cls(SPEC, 120)
    fill_atari(replay, 150)
    live = np.arange(replay.tail, replay.head)
    corners = np.zeros((len(live), 2), np.int64)
    obs, nxt = replay.obs(live, corners, 84), replay.next_obs(live, corners, 84)
    latents, _ = frozen(agent, replay, "conv2")
    assert type(latents) is latent_cls and len(latents) == len(live)
    with torch.no_grad():
        want_obs = agent.online.conv(torch.from_numpy(obs).float() / 255).numpy()
        want_next = agent.online.conv(torch.from_numpy(nxt).float() / 255).numpy()
    idx, copy = np.arange(latents.tail, latents.head), np.zeros(len(live), np.int64)
    np.testing.assert_allclose(
        latents.latents(idx, copy, next_obs=False)["conv"], want_obs, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        latents.latents(idx, copy, next_obs=True)["conv"], want_next, rtol=1e-5, atol=1e-6
    )


def test_compact_latent_bytes_are_one_latent_per_state_and_match_numpy():
    spec = LatentSpec((("conv", 576),), copies=1, action_dim=18, discrete=True, episode_steps=27_000)
    replay = CompactLatentReplay(spec, 10_000, lambda x: {"conv": np.zeros((len(x), 1, 576), np.float32)})
    arrays = [*replay._states.values(), replay._newest, *replay._scalars.values()]
    assert replay.allocated_bytes == sum(a.nbytes for a in arrays)
    per = replay.allocated_bytes / replay.capacity
    # latent, state index, scalars; one spare state per episode
    assert 576 * 4 + 8 + 13 < per < 576 * 4 + 8 + 13 + 1
    long_episodes = TransitionSpec((4, 84, 84), 18, frame_stack=4, episode_steps=27_000, discrete=True)
    pixels_per = CompactReplay.total_bytes(long_episodes, 10_000) / 10_000
    # the public factor, from real arrays
    assert 84 * 84 / (576 * 4) == 3.0625 and 2.9 < pixels_per / per < 3.1


# --- real runs --------------------------------------------------------------------------------------------
def atari_spec(agent: str, capacity: str = "budget") -> RunSpec:
    seer = (
        SeerConfig(freeze_at=120, num_copies=1, split="conv2", capacity=capacity)
        if agent.endswith("+seer")
        else None
    )
    return RunSpec(
        suite="test",
        scale="tiny",
        agent=agent,
        env="alien",
        action_repeat=4,
        seed=1,
        budget_gb=0.01,
        steps=4 * 240,
        eval_every=4 * 120,
        eval_episodes=1,
        replay_layout="compact",
        device="cpu",
        agent_overrides={
            "batch_size": 8,
            "learn_start": 40,
            "multi_step": 5,
            "target_update": 30,
            "hidden_dim": 64,
        },
        seer=seer,
    )


def test_der_and_der_seer_match_until_freeze_then_seer_stores_latents(tmp_path):
    base, seer = (run(atari_spec(a), tmp_path) for a in ("der", "der+seer"))
    runs = tmp_path / "runs"
    m_base = pd.read_csv(runs / "der/alien/budget_0.01/seed_1/metrics.csv")
    m_seer = pd.read_csv(runs / "der+seer/alien/budget_0.01/seed_1/metrics.csv")
    assert m_base["step"].tolist() == m_seer["step"].tolist() == [0, 120, 240]
    assert (m_base["env_steps"] == 4 * m_base["step"]).all()  # frames
    same = ["eval_return", "updates", "train_episodes", "cum_flops", "replay_size"]
    pd.testing.assert_frame_equal(m_base.loc[:1, same], m_seer.loc[:1, same])  # identical up to T_f
    assert m_seer["frozen"].tolist() == [0, 0, 1] and m_base["frozen"].sum() == 0
    assert m_base["updates"].iloc[-1] == 240 - 40
    for m in (m_base, m_seer):
        want = [human_normalized_score("alien", r) for r in m["eval_return"]]
        np.testing.assert_allclose(m["hns"], want)
    r, h = ATARI_SCORES["alien"]
    assert m_base["hns"].iloc[0] == pytest.approx((m_base["eval_return"].iloc[0] - r) / (h - r))
    events = [
        json.loads(line)
        for line in (runs / "der+seer/alien/budget_0.01/seed_1/events.jsonl").read_text().splitlines()
    ]
    event = next(e for e in events if e["event"] == "frozen")
    assert event["layout"] == "latent-compact" and event["transitions_converted"] == 120
    assert event["capacity_policy"] == "budget" and event["capacity_after"] > 2.9 * event["capacity_before"]
    last = m_seer.iloc[-1]
    assert last["cum_flops_convert"] == event["observations_encoded"] * 1_280_000  # one conv pass per state
    adds = 240 - 120
    assert adds * 1_280_000 <= last["cum_flops_encode"] <= (adds + last["train_episodes"]) * 1_280_000
    assert last["cum_flops_encode"] % 1_280_000 == 0
    assert last["update_flops"] < 0.2 * m_base["update_flops"].iloc[-1]
    assert seer.final_return == last["eval_return"] and base.final_return == m_base["eval_return"].iloc[-1]


def test_der_seer_with_pixel_capacity_keeps_the_pixel_replays_capacity_as_the_public_atari_scripts(tmp_path):
    """The public Atari scripts do not pass --increase-buffer: after T_f the latent replay has the pixel
    replay's capacity. config.json and the frozen event say which setting ran, and what
    the budget would hold."""
    run(atari_spec("der+seer", capacity="pixel"), tmp_path)
    path = tmp_path / "runs/der+seer/alien/budget_0.01/seed_1"
    metrics = pd.read_csv(path / "metrics.csv")
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    event = next(e for e in events if e["event"] == "frozen")
    config = json.loads((path / "config.json").read_text())
    pixel_capacity = config["replay"]["capacity"]
    assert (
        event["capacity_policy"]
        == config["seer"]["capacity_policy"]
        == config["spec"]["seer"]["capacity"]
        == "pixel"
    )
    assert (
        event["capacity_before"]
        == event["capacity_after"]
        == pixel_capacity
        == config["seer"]["capacity_after"]
    )
    assert config["seer"]["capacity_budget"] > 2.9 * pixel_capacity  # what "budget" would have held
    assert metrics["replay_capacity"].tolist() == [pixel_capacity] * 3 and metrics["frozen"].tolist() == [
        0,
        0,
        1,
    ]
    # same count, fewer bytes
    assert metrics["replay_alloc_bytes"].iloc[-1] < metrics["replay_alloc_bytes"].iloc[0]
