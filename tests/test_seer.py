"""SEER: freeze semantics, latents, conversion, capacity, and the curl / curl+seer identity before T_f."""

import json
from copy import deepcopy

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import torch.nn.functional as F
from conftest import OpLog, fill_random, tiny_spec

from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig, public_capacity
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

CFG = CurlConfig(batch_size=8, hidden_dim=64)


def make(seed=0):
    torch.manual_seed(seed)
    return CurlSac((9, 100, 100), 2, CFG, torch.device("cpu"), seed)


def frozen_agent_and_replay(filled_replay, split="fc", dtype="float32"):
    agent = make()
    for step in range(4):  # train the encoder a little, so frozen weights are not the init
        agent.update(filled_replay, step)
    seer = Seer(
        SeerConfig(freeze_at=4, num_copies=3, split=split, latent_dtype=dtype),
        50_000_000,
        seed=0,
        chunk=8,
        layout="paper",
        transitions=filled_replay.spec,
        total_steps=100,
    )
    latent, event = seer.freeze(agent, filled_replay, step=4)
    return agent, latent, event


def encoder_params(agent):
    mods = {
        "critic": agent.critic.encoder,
        "actor": agent.actor.encoder,
        "target": agent.critic_target.encoder,
    }
    params = {f"{m}.{k}": v.detach().clone() for m, enc in mods.items() for k, v in enc.state_dict().items()}
    params["curl.W"] = agent.curl.W.detach().clone()
    return params


def test_after_freeze_updates_never_call_the_frozen_layers_and_leave_them_bitwise_equal(filled_replay):
    with OpLog() as pixel_log:  # the same check on a pixel update does see the convs
        make().update(filled_replay, 0)
    assert {"mkldnn._convolution_pointwise.default", "aten.convolution_backward.default"} <= set(
        pixel_log.ops
    )
    agent, latent, _ = frozen_agent_and_replay(filled_replay)
    # The target's frozen encoder was set equal to the online one.
    for k, v in agent.critic.encoder.state_dict().items():
        assert torch.equal(v, agent.critic_target.encoder.state_dict()[k]), k
    calls = []
    for enc in (agent.critic.encoder, agent.actor.encoder, agent.critic_target.encoder):
        enc.fc.register_forward_hook(lambda *a: calls.append("fc forward"))
    before = encoder_params(agent)
    heads = {k: v.detach().clone() for k, v in agent.critic.q1.state_dict().items()}
    trunk = {k: v.detach().clone() for k, v in agent.actor.trunk.state_dict().items()}
    with OpLog() as log:
        for step in range(4, 8):  # both parities: actor and target steps included
            agent.update(latent, step)
    assert calls == []
    assert not [op for op in log.ops if "conv" in op]  # no conv forward (fused or not), no conv backward
    assert any("addmm" in op for op in log.ops)  # the log does see the heads' work
    after = encoder_params(agent)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(v, agent.critic.q1.state_dict()[k]) for k, v in heads.items())
    assert any(not torch.equal(v, agent.actor.trunk.state_dict()[k]) for k, v in trunk.items())


def first_latent_critic_loss(agent, latent, step, target):
    """The critic loss of a latent update at `step` from the stored latents, computed here with `target` as
    the target critic; the same batch and policy noise as `agent.update` draws (rng 5, torch seed 9)."""
    rng, b = np.random.default_rng(5), agent.cfg.batch_size
    idx = latent.sample_indices(b, rng)
    crop = rng.integers(0, latent.spec.copies, size=b)  # which stored crop of each transition
    obs, nxt = (
        {k: torch.from_numpy(v) for k, v in latent.latents(idx, crop, next_obs=n).items()}
        for n in (False, True)
    )
    sc = {k: torch.from_numpy(v) for k, v in latent.scalars(idx).items()}
    torch.manual_seed(9)
    with torch.no_grad():
        _, pi, log_pi, _ = agent.actor.policy(agent.actor.encoder.ln(nxt["actor"]))
        tq1, tq2 = target.q(target.encoder.ln(nxt["critic"]), pi)
        target_q = sc["reward"][:, None] + sc["not_done"][:, None] * agent.cfg.discount * (
            torch.min(tq1, tq2) - agent.alpha * log_pi
        )
        q1, q2 = agent.critic.q(agent.critic.encoder.ln(obs["critic"]), sc["action"])
        return (F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)).item()


def test_at_freeze_the_whole_online_critic_is_copied_into_the_target(filled_replay):
    """The public code runs soft_update_params(critic, critic_target, 1) at T_f: encoder and Q heads."""
    agent = make()
    for step in range(4):
        agent.update(filled_replay, step)
    stale = deepcopy(agent.critic_target)
    assert not torch.equal(stale.q1[0].weight, agent.critic.q1[0].weight)  # soft updates left them apart
    seer = Seer(
        SeerConfig(freeze_at=4, num_copies=3),
        50_000_000,
        seed=0,
        chunk=8,
        layout="paper",
        transitions=filled_replay.spec,
        total_steps=100,
    )
    latent, _ = seer.freeze(agent, filled_replay, step=4)
    target = dict(agent.critic_target.named_parameters())
    for name, p in agent.critic.named_parameters():
        assert torch.equal(p, target[name]), name
    online = deepcopy(agent.critic)
    expected = first_latent_critic_loss(agent, latent, 4, online)
    with_stale_heads = first_latent_critic_loss(agent, latent, 4, stale)
    agent.rng = np.random.default_rng(5)
    torch.manual_seed(9)
    loss = agent.update(latent, 4)["critic_loss"]
    assert loss == pytest.approx(expected, rel=1e-6)
    assert abs(loss - with_stale_heads) > 1e-3 * abs(loss)  # the check can tell a stale target apart


def naive_latent_update(agent, latent, step, rng):
    """SEER's latent update as the public code writes it (lili-chen/SEER seer_dmc/curl_sac.py,
    update_with_latent): the LayerNorm recomputed for every network that reads a latent, every loss filling
    every gradient it reaches (the actor loss the critic heads' too), gradients zeroed in place, and after
    T_f only the critic's, the actor's and the temperature's Adam stepped (`step < steps_until_freeze`
    gates the encoder Adams), in that order, each by its own loss."""
    cfg, b = agent.cfg, agent.cfg.batch_size
    idx = latent.sample_indices(b, rng)
    copy = rng.integers(0, latent.spec.copies, size=b)
    obs, nxt = (
        {k: torch.from_numpy(v) for k, v in latent.latents(idx, copy, next_obs=n).items()}
        for n in (False, True)
    )
    sc = {k: torch.from_numpy(v) for k, v in latent.scalars(idx).items()}
    critic, actor, target = agent.critic, agent.actor, agent.critic_target

    def optimize(opt, loss):
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    with torch.no_grad():
        _, pi, log_pi, _ = actor.policy(actor.encoder.ln(nxt["actor"]))
        tq1, tq2 = target.q(target.encoder.ln(nxt["critic"]), pi)
        target_q = sc["reward"][:, None] + sc["not_done"][:, None] * cfg.discount * (
            torch.min(tq1, tq2) - agent.alpha * log_pi
        )
    q1, q2 = critic.q(critic.encoder.ln(obs["critic"]), sc["action"])
    optimize(agent.critic_opt, F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q))
    if step % cfg.actor_update_freq == 0:
        _, pi, log_pi, _ = actor.policy(actor.encoder.ln(obs["actor"]))
        aq1, aq2 = critic.q(critic.encoder.ln(obs["critic"]), pi)
        optimize(agent.actor_opt, (agent.alpha.detach() * log_pi - torch.min(aq1, aq2)).mean())
        optimize(agent.alpha_opt, (agent.alpha * (-log_pi - agent.target_entropy).detach()).mean())
    if step % cfg.critic_target_update_freq == 0:
        for net, tgt in ((critic.q1, target.q1), (critic.q2, target.q2)):
            with torch.no_grad():
                for p, tp in zip(net.parameters(), tgt.parameters()):
                    tp.copy_(cfg.critic_tau * p + (1 - cfg.critic_tau) * tp)


def test_latent_update_equals_the_naive_public_latent_update(filled_replay):
    """The agent's latent update against the public one written naively, from one frozen agent and its
    optimizers' state, over updates of both parities (actor, temperature and target steps included)."""
    agent, latent, _ = frozen_agent_and_replay(filled_replay)
    naive, trunk_before = deepcopy(agent), agent.actor.trunk[0].weight.detach().clone()
    for step in (4, 5, 6, 7):
        agent.rng = np.random.default_rng(50 + step)
        torch.manual_seed(step)
        agent.update(latent, step)
        torch.manual_seed(step)
        naive_latent_update(naive, latent, step, np.random.default_rng(50 + step))
    for name in agent.modules():
        mine, theirs = agent.modules()[name].state_dict(), naive.modules()[name].state_dict()
        for k in mine:
            torch.testing.assert_close(mine[k], theirs[k], rtol=1e-5, atol=1e-6, msg=f"{name}.{k}")
    torch.testing.assert_close(agent.log_alpha, naive.log_alpha, rtol=1e-5, atol=1e-6)
    assert not torch.equal(agent.actor.trunk[0].weight, trunk_before)  # the actor did step


def test_conv_split_freezes_only_lower_convs_and_upper_layers_keep_training(filled_replay):
    agent, latent, _ = frozen_agent_and_replay(filled_replay, split="conv2")
    assert latent.spec.streams == (("conv", 32 * 39 * 39),)  # 84 -> 41 -> 39 after two convs
    enc = agent.critic.encoder
    lower = [p.detach().clone() for m in enc.convs[:2] for p in m.parameters()]
    upper = [p.detach().clone() for m in enc.convs[2:] for p in m.parameters()]
    for step in range(4, 6):
        agent.update(latent, step)
    assert all(torch.equal(a, p) for a, p in zip(lower, [p for m in enc.convs[:2] for p in m.parameters()]))
    assert any(
        not torch.equal(a, p) for a, p in zip(upper, [p for m in enc.convs[2:] for p in m.parameters()])
    )


def reference_crops(pixels, rng, copies, size):
    """Independent re-derivation of the crops `encode` must use: corners 0..pad-1 from the same stream."""
    n, pad = len(pixels), pixels.shape[-1] - size
    corners = rng.integers(0, pad, size=(n * copies, 2))
    rows = np.repeat(np.arange(n), copies)
    return np.stack([pixels[r, :, y : y + size, x : x + size] for r, (y, x) in zip(rows, corners)])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_latents_equal_the_frozen_linear_output_on_the_same_crops(filled_replay, dtype):
    agent, _, _ = frozen_agent_and_replay(filled_replay)
    pixels = np.random.default_rng(5).integers(0, 256, (5, 9, 100, 100), dtype=np.uint8)
    got = agent.encode(pixels, np.random.default_rng(7), copies=3, dtype=dtype)
    crops = torch.from_numpy(reference_crops(pixels, np.random.default_rng(7), 3, 84)).float() / 255
    with torch.no_grad():
        for stream, encoder in (("critic", agent.critic.encoder), ("actor", agent.actor.encoder)):
            h = crops  # plain NCHW convs, not the channels_last path the agent uses
            for conv in encoder.convs:
                h = torch.relu(torch.nn.functional.conv2d(h, conv.weight, conv.bias, stride=conv.stride))
            h = h.permute(0, 2, 3, 1).flatten(1)  # the Linear reads the conv map in (H, W, C) order
            want = (h @ encoder.fc.weight.T + encoder.fc.bias).numpy().reshape(5, 3, 50)
            assert got[stream].dtype == np.dtype(dtype) and got[stream].shape == (5, 3, 50)
            np.testing.assert_allclose(
                got[stream],
                want.astype(dtype),
                rtol=1e-3 if dtype == "float16" else 1e-5,
                atol=1e-3 if dtype == "float16" else 1e-6,
            )


def digest_encoder(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """A deterministic, invertible-enough stand-in for the network: per-channel pixel sums, two 'copies'."""
    sums = pixels.reshape(len(pixels), pixels.shape[1], -1).sum(-1).astype(np.float32)
    return {"a": np.stack([sums, sums + 1], axis=1), "b": np.stack([-sums, -sums - 1], axis=1)}


@pytest.mark.parametrize("latent_cls", [PaperLatentReplay, CompactLatentReplay])
@pytest.mark.parametrize("cls,n", [(PaperReplay, 150), (CompactReplay, 150), (PaperReplay, 40)])
def test_conversion_keeps_scalars_aligned_with_observations_across_wraparound(cls, n, latent_cls):
    spec = TransitionSpec((9, 12, 12), action_dim=2, frame_stack=3, episode_steps=10)
    pixels = cls(spec, 64)
    fill_random(pixels, n, seed=3, episode_steps=7)
    live = np.arange(pixels.tail, pixels.head)
    corners = np.zeros((len(live), 2), int)
    want_obs, want_next = (
        digest_encoder(pixels.obs(live, corners, 12)),
        digest_encoder(pixels.next_obs(live, corners, 12)),
    )
    want_scalars = pixels.scalars(live)

    lspec = LatentSpec((("a", 9), ("b", 9)), copies=2, action_dim=2)
    latent = latent_cls(lspec, 100, digest_encoder)
    assert latent.fill_from(pixels, chunk=16) == len(live)
    assert len(pixels) == 0 and pixels.resident_bytes == 0
    idx = np.arange(latent.tail, latent.head)
    for copy in (0, 1):
        c = np.full(len(idx), copy)
        for stream in ("a", "b"):
            np.testing.assert_array_equal(
                latent.latents(idx, c, next_obs=False)[stream], want_obs[stream][:, copy]
            )
            np.testing.assert_array_equal(
                latent.latents(idx, c, next_obs=True)[stream], want_next[stream][:, copy]
            )
    for key, values in latent.scalars(idx).items():
        np.testing.assert_array_equal(values, want_scalars[key])
    # New transitions are encoded on add and evict the oldest, like any ring.
    rng = np.random.default_rng(4)
    for _ in range(120):
        obs, nxt = rng.integers(0, 256, (2, 9, 12, 12), dtype=np.uint8)
        latent.add(obs, np.ones(2), 1.0, nxt, terminal=False, last=False)
    assert len(latent) == 100
    newest = np.array([latent.head - 1])
    np.testing.assert_array_equal(
        latent.latents(newest, np.array([1]), next_obs=True)["b"], digest_encoder(nxt[None])["b"][:, 1]
    )


def test_latent_bytes_and_capacity_follow_from_array_sizes():
    spec = LatentSpec((("critic", 50), ("actor", 50)), copies=4, action_dim=1)
    # streams x (obs, next) x copies x dim x float32 + action, reward, not_done; last
    per = 2 * 2 * 4 * 50 * 4 + (1 + 1 + 1) * 4 + 1
    assert PaperLatentReplay.total_bytes(spec, 1) == per == 3213
    replay = PaperLatentReplay(spec, 1000, digest_encoder)
    arrays = [*replay._latents.values(), *replay._scalars.values()]
    assert replay.allocated_bytes == sum(a.nbytes for a in arrays) == 1000 * per
    assert PaperLatentReplay.capacity_for(spec, 600_000_000) == 600_000_000 // per
    half = LatentSpec(spec.streams, 4, 1, "float16")
    assert PaperLatentReplay.total_bytes(half, 1) == 1600 + 13


def test_the_latent_replay_is_allocated_for_the_runs_steps_and_reports_what_the_budget_holds(filled_replay):
    """A budget far above what the run can fill: the latent replay's capacity is the budget's figure, its
    arrays hold the run's 64 transitions, and the frozen event says both, and the bytes held at the peak."""
    agent = make()
    seer = Seer(
        SeerConfig(freeze_at=4, num_copies=3),
        10**12,
        seed=0,
        chunk=8,
        layout="paper",
        transitions=filled_replay.spec,
        total_steps=64,
    )
    # streams x (obs, next) x copies x 50 float32; float32 action (2), reward, not_done; uint8 last
    per = 2 * 2 * np.zeros((3, 50), np.float32).nbytes + np.zeros(4, np.float32).nbytes + 1
    pixel_per = 2 * np.zeros((9, 100, 100), np.uint8).nbytes + np.zeros(4, np.float32).nbytes + 1
    assert (seer.capacity(agent), seer.allocated_capacity(agent)) == (10**12 // per, 64)
    assert seer.allocated_bytes(agent) == 64 * per
    bytes_before = filled_replay.resident_bytes
    latent, event = seer.freeze(agent, filled_replay, step=4)
    arrays = [*latent._latents.values(), *latent._scalars.values()]
    assert (latent.capacity, latent.slots) == (10**12 // per, 64)
    assert latent.allocated_bytes == sum(a.nbytes for a in arrays) == seer.allocated_bytes(agent)
    assert event["capacity_after"] == 10**12 // per and event["allocated_capacity_after"] == 64
    assert event["capacity_before"] == event["allocated_capacity_before"] == 64  # the fixture's own ring
    assert event["bytes_peak"] == bytes_before == 64 * pixel_per > event["bytes_after"] == 64 * per


def test_public_formula_matches_the_reference_examples():
    assert public_capacity(1_000, 3 * 100 * 100, 50, 4, 2, 80_000) == 18_750
    assert public_capacity(80_000, 3 * 100 * 100, 50, 4, 2, 80_000) == 80_000


def test_capacity_settings_size_the_latent_replay_from_the_budget_the_pixel_replay_or_the_public_formula():
    spec = TransitionSpec((9, 100, 100), action_dim=1, frame_stack=3, episode_steps=125)
    budget = PaperReplay(
        spec, 1_000
    ).allocated_bytes  # numpy's bytes of the pixel arrays for 1,000 transitions
    assert PaperReplay.capacity_for(spec, budget) == 1_000
    agent = CurlSac((9, 100, 100), 1, CFG, torch.device("cpu"), 0)

    def capacity(policy, total_steps=80_000):
        return Seer(
            SeerConfig(freeze_at=10, capacity=policy),
            budget,
            seed=0,
            chunk=8,
            layout="paper",
            transitions=spec,
            total_steps=total_steps,
        ).capacity(agent)

    assert capacity("budget") == budget // 3213 == 56_026  # every byte, at 3,213 bytes per latent transition
    assert capacity("pixel") == 1_000
    assert capacity("public") == 18_750  # the public scripts' small buffer (shared seer-reference.md)
    assert capacity("public", total_steps=5_000) == 5_000  # the formula caps at the run length
    with pytest.raises(ValueError, match="capacity must be one of budget, pixel, public"):
        SeerConfig(freeze_at=10, capacity="double")


def test_conversion_never_holds_more_than_the_budget_and_returns_pixel_memory():
    spec = TransitionSpec((9, 100, 100), action_dim=1, frame_stack=3, episode_steps=125)
    budget = 120_000_000
    pixels = PaperReplay(spec, PaperReplay.capacity_for(spec, budget))
    fill_random(pixels, pixels.capacity + 50, seed=1, episode_steps=125)  # full and wrapped
    assert pixels.resident_bytes <= budget
    lspec = LatentSpec((("critic", 50), ("actor", 50)), copies=4, action_dim=1)
    latent = PaperLatentReplay(
        lspec,
        PaperLatentReplay.capacity_for(lspec, budget),
        lambda x: {name: np.zeros((len(x), 4, 50), np.float32) for name in ("critic", "actor")},
    )
    seen = []
    rss_before = psutil.Process().memory_info().rss
    latent.fill_from(pixels, chunk=32, on_chunk=seen.append)
    rss_after = psutil.Process().memory_info().rss
    assert len(seen) == -(-pixels.capacity // 32) and max(seen) <= budget
    assert seen[-1] == latent.resident_bytes == len(latent) * 3213
    # The pixel pages really went back to the OS, before the pixel replay object is even dropped.
    assert rss_before - rss_after > 0.8 * pixels.capacity * 180_000


def seer_spec(agent: str) -> RunSpec:
    seer = SeerConfig(freeze_at=20, num_copies=2) if agent.endswith("+seer") else None
    return tiny_spec(agent, seer, agent_overrides={"batch_size": 8, "init_steps": 10, "hidden_dim": 64})


def test_curl_and_curl_seer_are_identical_until_freeze_then_seer_records_the_conversion(tmp_path):
    run(seer_spec("curl"), tmp_path)
    run(seer_spec("curl+seer"), tmp_path)
    base = pd.read_csv(tmp_path / "runs/curl/cartpole-swingup/budget_0.01/seed_3/metrics.csv")
    path = tmp_path / "runs/curl+seer/cartpole-swingup/budget_0.01/seed_3"
    seer = pd.read_csv(path / "metrics.csv")
    assert seer["step"].tolist() == base["step"].tolist() == [0, 20, 40]
    same = [
        "eval_return",
        "updates",
        "replay_size",
        "replay_bytes",
        "replay_capacity",
        "cum_flops",
        "update_flops",
    ]
    # Step 20 is evaluated before freezing: 10 updates in, the deterministic policies must agree exactly.
    pd.testing.assert_frame_equal(seer.loc[:1, same], base.loc[:1, same])
    assert seer["frozen"].tolist() == [0, 0, 1] and base["frozen"].tolist() == [0, 0, 0]
    assert (seer["replay_bytes"] <= 0.01e9).all()

    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    frozen = [e for e in events if e["event"] == "frozen"]
    assert len(frozen) == 1 and frozen[0]["step"] == 20 and frozen[0]["transitions_converted"] == 20
    assert frozen[0]["bytes_after"] < frozen[0]["bytes_before"] == 20 * 180_013
    # FLOPs after T_f: the conversion (20 transitions x obs and next_obs x 2 copies, one encoder pass each)
    # and cheaper updates; the baseline never encodes.
    last, base_last = seer.iloc[-1], base.iloc[-1]
    per_crop = (last["cum_flops_convert"]) / (20 * 2 * 2)
    # convs + the critic's and actor's Linear
    assert per_crop == pytest.approx(44_240_992 + 1_960_000, rel=1e-4)
    assert last["cum_flops_encode"] == pytest.approx(20 * 2 * 2 * per_crop, rel=1e-9)  # 20 adds after T_f
    assert last["update_flops"] < 0.1 * base_last["update_flops"] and base_last["cum_flops_encode"] == 0
    # critic + actor, obs + next_obs, 2 copies, 50 floats; action, reward, not_done, last
    per = 2 * 2 * 2 * 50 * 4 + 13
    assert frozen[0]["capacity_after"] == 10_000_000 // per == seer["replay_capacity"].iloc[-1]
    assert frozen[0]["capacity_policy"] == "budget"
    config = json.loads((path / "config.json").read_text())
    # capped: 40 steps
    assert config["seer"]["capacity_public_formula"] == frozen[0]["capacity_public_formula"] == 40
    assert config["seer"]["latent_bytes_per_transition"] == per


def test_one_sweep_holds_curl_and_curl_seer_and_only_seer_reads_the_freeze_point():
    from seer_bench.agents import AGENTS
    from seer_bench.envs import KNOWN_TASKS
    from seer_bench.suites import Overrides, load_suite, resolve

    suite = load_suite("dmc6")
    envs = ["cartpole-swingup", "walker-walk"]

    def freeze_points(**flags):
        specs = resolve(
            suite, Overrides(envs=envs, agents=["curl", "curl+seer"], **flags), AGENTS, KNOWN_TASKS
        )
        assert all(s.seer is None for s in specs if s.agent == "curl")
        return {s.env: s.seer.freeze_at for s in specs if s.agent == "curl+seer"}

    assert freeze_points(scale="paper") == {
        "cartpole-swingup": 10_000,
        "walker-walk": 10_000,
    }  # [seer.freeze_at]
    assert freeze_points(scale="smoke") == {"cartpole-swingup": 30, "walker-walk": 30}  # the scale's own T_f
    assert freeze_points(scale="smoke", freeze_at=35, num_copies=2) == {
        "cartpole-swingup": 35,
        "walker-walk": 35,
    }
