"""DrQ-v2 against facts read from its public code (facebookresearch/drqv2: drqv2.py, utils.py,
replay_buffer.py, cfgs/). The reference pieces below are written from that code, not from this agent: the
augmentation as a bilinear grid sample, the update in the public order with the public optimizers."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_act_and_encode_priced,
    assert_calls_priced_as_torch_counts,
    fill_random,
    ledger_and_torch,
    tiny_spec,
)

from seer_bench.agents import AGENTS, agent_config
from seer_bench.agents.drqv2 import DrQV2, DrQV2Config, random_shift, sample_action
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.envs import DMC_TASKS, KNOWN_ENVS
from seer_bench.errors import ConfigError
from seer_bench.replay import PaperReplay, TransitionSpec, make_replay
from seer_bench.runner import run
from seer_bench.suites import Overrides, RunSpec, load_suite, resolve

CFG = DrQV2Config(batch_size=8, seed_steps=3)  # full-size networks, a small batch
SHAPE = (9, 84, 84)


def make(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    return DrQV2(SHAPE, 2, cfg, torch.device("cpu"), seed)


@pytest.fixture
def replay():
    """One 40-step episode then 24 steps of the next: windows near the first episode's end are incomplete."""
    replay = PaperReplay(TransitionSpec(SHAPE, action_dim=2, frame_stack=3, episode_steps=40), 64)
    fill_random(replay, 64, episode_steps=40)
    return replay


def public_random_shifts_aug(x: torch.Tensor, shift_xy: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """The public RandomShiftsAug.forward, its torch.randint shift given (integer pixels, (x, y) order)."""
    n, _, h, _ = x.shape
    x = F.pad(x, (pad,) * 4, "replicate")
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad)[:h]
    arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
    base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
    shift = shift_xy.view(n, 1, 1, 2).float() * (2.0 / (h + 2 * pad))
    return F.grid_sample(x, base_grid + shift, padding_mode="zeros", align_corners=False)


def test_random_shift_is_the_public_bilinear_grid_sample_at_integer_shifts():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 9, 84, 84), dtype=np.uint8)
    offsets = rng.integers(0, 9, size=(16, 2))  # (y, x), each in [0, 2 pad]
    ours = random_shift(pixels, offsets, 4).astype(np.float32)
    public = public_random_shifts_aug(
        torch.from_numpy(pixels).float(), torch.from_numpy(offsets[:, ::-1].copy())
    )
    # the same pixels up to float rounding of the grid's coordinates (at most 0.005 of a 0..255 level)
    assert np.array_equal(np.rint(public.numpy()), ours) and np.abs(ours - public.numpy()).max() < 5e-3
    # and it is a shift, not a crop of a smaller frame: a shift of (4, 4) is the frame itself
    assert np.array_equal(random_shift(pixels, np.full((16, 2), 4), 4), pixels)


def test_optimizers_hold_what_the_public_ones_hold():
    agent = make()

    def held(opt):
        return {id(p) for group in opt.param_groups for p in group["params"]}

    ids = lambda module: {id(p) for p in module.parameters()}  # noqa: E731
    assert held(agent.encoder_opt) == ids(agent.encoder)  # convs only: no Linear in the public encoder
    assert held(agent.actor_opt) == ids(agent.actor)  # trunk and policy
    assert held(agent.critic_opt) == ids(agent.critic)  # trunk and both Q heads
    for opt in (agent.encoder_opt, agent.actor_opt, agent.critic_opt):
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["eps"]) == (1e-4, (0.9, 0.999), 1e-8)
    # the target critic has no encoder (targets read the online one) and starts equal to the critic
    assert not any(isinstance(m, torch.nn.Conv2d) for m in agent.critic_target.modules())
    for p, tp in zip(agent.critic.parameters(), agent.critic_target.parameters()):
        assert torch.equal(p, tp) and not tp.requires_grad
    assert agent.encoder.repr_dim == 32 * 35 * 35


def test_networks_are_the_public_ones():
    """drqv2.py's Actor, Critic and Encoder, and utils.weight_init: orthogonal weights (ReLU gain for convs),
    zero biases."""
    agent = make()
    for net in (agent.actor, agent.critic):
        assert [type(m) for m in net.trunk] == [torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Tanh]
        assert (net.trunk[0].in_features, net.trunk[0].out_features) == (39_200, 50)
    linears = lambda seq: [(m.in_features, m.out_features) for m in seq if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert linears(agent.actor.policy) == [(50, 1024), (1024, 1024), (1024, 2)]
    assert linears(agent.critic.q1) == linears(agent.critic.q2) == [(52, 1024), (1024, 1024), (1024, 1)]
    convs = list(agent.encoder.convs)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (9, 32, (3, 3), (2, 2)),
        *[(32, 32, (3, 3), (1, 1))] * 3,
    ]
    gain = math.sqrt(2.0)  # nn.init.calculate_gain("relu")
    for conv in convs:  # 32 orthogonal rows of norm `gain`
        w = conv.weight.detach().reshape(32, -1)
        torch.testing.assert_close(w @ w.T, gain**2 * torch.eye(32), atol=1e-4, rtol=0)
        assert not conv.bias.any()
    for linear in (agent.actor.trunk[0], agent.critic.q1[0], agent.actor.policy[4]):
        w = linear.weight.detach()
        rows = min(w.shape)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(gram, torch.eye(rows), atol=1e-4, rtol=0)
        assert not linear.bias.any()


def test_acting_samples_unclipped_noise_at_the_scheduled_std_and_evaluates_the_mean():
    agent = make()
    obs = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    mean = agent.act(obs, 0, eval_mode=True)
    assert np.array_equal(mean, agent.act(obs, 0, eval_mode=True)) and np.all(np.abs(mean) < 1)
    torch.manual_seed(0)
    early = np.stack([agent.act(obs, 0, eval_mode=False) for _ in range(400)])  # std 1.0
    late = np.stack([agent.act(obs, 10**6, eval_mode=False) for _ in range(400)])  # std 0.1
    assert np.abs(early - mean).max() > 0.5  # noise beyond the losses' clip of 0.3: unclipped
    assert np.all(np.abs(early) < 1)  # clamped into (-1, 1)
    assert np.std(late - mean) == pytest.approx(0.1, rel=0.15)


def test_the_target_follows_the_updated_critic_by_polyak_averaging_after_every_update(replay):
    agent = make()
    target_before = {k: v.clone() for k, v in agent.critic_target.state_dict().items()}
    agent.update(replay, 4)
    critic, target = agent.critic.state_dict(), agent.critic_target.state_dict()
    for k, old in target_before.items():  # tau 0.01 towards the critic after its step, every update
        torch.testing.assert_close(target[k], 0.99 * old + 0.01 * critic[k], rtol=0, atol=1e-7)
    assert not torch.equal(target["q1.0.weight"], target_before["q1.0.weight"])


def test_public_defaults_and_schedule():
    cfg = DrQV2Config()
    assert (cfg.batch_size, cfg.lr, cfg.nstep, cfg.discount, cfg.critic_target_tau) == (
        256,
        1e-4,
        3,
        0.99,
        0.01,
    )
    assert (cfg.feature_dim, cfg.hidden_dim, cfg.stddev_clip, cfg.update_every_steps) == (50, 1024, 0.3, 2)
    assert (cfg.seed_steps, cfg.num_expl_steps) == (4000 // 2, 2000)  # seed frames at action repeat 2
    # utils.schedule('linear(1.0,0.1,100000)', step): clip(step / duration) mixes init and final
    for step, std in ((0, 1.0), (50_000, 0.55), (100_000, 0.1), (300_000, 0.1)):
        assert cfg.stddev(step) == pytest.approx(std)
    agent = make(cfg)
    assert (agent.random_steps, agent.learn_start, agent.update_every, agent.sample_horizon) == (
        2000,
        2000,
        2,
        3,
    )


def test_windows_lie_inside_one_episode_uniformly(replay):
    agent = make(DrQV2Config(batch_size=4000, seed_steps=3))
    idx, ret = agent.sample_windows(replay)
    # episode 0 is transitions 0..39: the public loader starts windows at 0..37 only; episode 1 (open) at
    # 40..61 (the newest two have no complete window yet)
    valid = [*range(0, 38), *range(40, 62)]
    assert set(idx.tolist()) == set(valid)
    assert np.array_equal(ret["end"], idx + 2)
    counts = np.bincount(idx, minlength=64)[valid]
    assert counts.min() > 0.6 * counts.mean()  # uniform over the valid starts
    # the n-step return and discount of the public loader: sum_i gamma^i r_{t+i}, gamma^n (1 if no terminal)
    rewards, not_done = replay.scalars(np.arange(64))["reward"], replay.scalars(np.arange(64))["not_done"]
    t = int(idx[0])
    assert ret["return"][0] == pytest.approx(sum(0.99**i * rewards[t + i] for i in range(3)), rel=1e-5)
    assert ret["discount"][0] == pytest.approx(0.99**3 * not_done[t + 2], rel=1e-6)


def test_truncated_normal_sample_clips_noise_clamps_actions_and_passes_gradients():
    mu = torch.full((10_000, 2), 0.95, requires_grad=True)
    torch.manual_seed(0)
    a = sample_action(mu, std=1.0, clip=0.3)
    assert a.max() <= 1 - 1e-6 and a.min() >= 0.95 - 0.3 - 1e-6
    a.sum().backward()  # straight through the clamp: d a / d mu = 1 everywhere
    assert torch.equal(mu.grad, torch.ones_like(mu))


def reference_encoder(agent, x):
    """The public Encoder.forward on the agent's conv weights: obs / 255 - 0.5, conv + ReLU x 4, flatten
    (in the (H, W, C) column order this agent's trunks read)."""
    h = x / 255.0 - 0.5
    for conv in agent.encoder.convs:
        h = torch.relu(F.conv2d(h, conv.weight, conv.bias, conv.stride))
    return h.permute(0, 2, 3, 1).flatten(1)


def reference_update(ref, opts, replay, step):
    """The public DrQV2Agent.update (update_critic, update_actor, soft_update_params) on `ref`'s weights,
    with the batch (indices and shifts) that the agent draws from the same generator."""
    cfg = ref.cfg
    idx, ret = ref.sample_windows(replay)
    shifts = torch.from_numpy(ref.rng.integers(0, 9, size=(2, len(idx), 2))[..., ::-1].copy())  # (x, y)
    # The public augmentation, rounded to the pixel levels it lands within 0.005 of (test above): without
    # rounding, Adam's first steps turn its 1e-5 rounding noise in near-zero gradients into +-lr steps.
    obs, nxt = (
        public_random_shifts_aug(torch.from_numpy(replay.uncropped(i, n)).float(), shift).round()
        for i, n, shift in ((idx, False, shifts[0]), (ret["end"], True, shifts[1]))
    )
    action = torch.from_numpy(replay.scalars(idx)["action"])
    reward, discount = (torch.from_numpy(ret[k]).unsqueeze(1) for k in ("return", "discount"))
    obs = reference_encoder(ref, obs)
    with torch.no_grad():
        nxt = reference_encoder(ref, nxt)
    stddev = 1.0 + (0.1 - 1.0) * min(step / 100_000, 1.0)

    def dist_sample(mu):  # utils.TruncatedNormal(mu, stddev).sample(clip=0.3)
        eps = torch.distributions.utils._standard_normal(mu.shape, dtype=mu.dtype, device=mu.device)
        x = mu + (eps * stddev).clamp(-0.3, 0.3)
        return x - x.detach() + torch.clamp(x, -1 + 1e-6, 1 - 1e-6).detach()

    def critic(net, h, a):
        z = torch.cat([net.trunk(h), a], dim=-1)
        return net.q1(z), net.q2(z)

    with torch.no_grad():
        next_action = dist_sample(torch.tanh(ref.actor.policy(ref.actor.trunk(nxt))))
        target_q = reward + discount * torch.min(*critic(ref.critic_target, nxt, next_action))
    q1, q2 = critic(ref.critic, obs, action)
    critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
    opts["encoder"].zero_grad(set_to_none=True)
    opts["critic"].zero_grad(set_to_none=True)
    critic_loss.backward()
    opts["critic"].step()
    opts["encoder"].step()

    a = dist_sample(torch.tanh(ref.actor.policy(ref.actor.trunk(obs.detach()))))
    actor_loss = -torch.min(*critic(ref.critic, obs.detach(), a)).mean()
    opts["actor"].zero_grad(set_to_none=True)
    actor_loss.backward()
    opts["actor"].step()
    with torch.no_grad():
        for p, tp in zip(ref.critic.parameters(), ref.critic_target.parameters()):
            tp.data.copy_(cfg.critic_target_tau * p.data + (1 - cfg.critic_target_tau) * tp.data)
    return critic_loss.item(), actor_loss.item()


def snapshot(agent):
    return {
        f"{name}.{k}": v.detach().clone()
        for name in ("encoder", "actor", "critic", "critic_target")
        for k, v in getattr(agent, name).state_dict().items()
    }


def test_update_equals_the_public_update(replay):
    fast, ref = make(), make()
    opts = {  # the public constructors: Adam(module.parameters(), lr=lr)
        name: torch.optim.Adam(getattr(ref, name).parameters(), lr=CFG.lr)
        for name in ("encoder", "actor", "critic")
    }
    for step in (4, 6, 8):  # Adam moments warm up over the first two; all three compared
        ref.rng, fast.rng = np.random.default_rng(step), np.random.default_rng(step)
        torch.manual_seed(step)
        metrics = fast.update(replay, step)
        torch.manual_seed(step)
        critic_loss, actor_loss = reference_update(ref, opts, replay, step)
        assert metrics["critic_loss"] == pytest.approx(critic_loss, rel=1e-4)
        assert metrics["actor_loss"] == pytest.approx(actor_loss, rel=1e-4, abs=1e-6)
    a, b, start = snapshot(fast), snapshot(ref), snapshot(make())
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-6, msg=k)
    moved = {k.split(".")[0] for k in a if not torch.equal(a[k], start[k])}
    assert moved == {"encoder", "actor", "critic", "critic_target"}


def test_config_errors_name_the_setting():
    with pytest.raises(ConfigError, match="nstep"):
        agent_config("drqv2", {"nstep": 0})
    with pytest.raises(ConfigError, match="seed_steps 2 must be >= nstep 3"):
        agent_config("drqv2", {"seed_steps": 2})
    with pytest.raises(ConfigError, match="expects 84x84 frames .* got 100x100: render them"):
        DrQV2((9, 100, 100), 2, CFG, torch.device("cpu"), 0)
    assert (
        DrQV2((9, 100, 100), 2, DrQV2Config(image_size=100), torch.device("cpu"), 0).encoder.repr_dim
        == 32 * 43 * 43
    )


def freeze(agent, replay, split, copies=2, dtype="float32"):
    seer = Seer(
        SeerConfig(freeze_at=1, num_copies=copies, split=split, latent_dtype=dtype),
        10**10,
        seed=0,
        chunk=8,
        layout="paper",
        transitions=replay.spec,
        total_steps=100,
    )
    return seer, seer.freeze(agent, replay, step=0)[0]


def test_fc_split_stores_both_trunks_linear_outputs_and_freezes_everything_below(replay):
    agent = make()
    for s in range(3):
        agent.update(replay, s)
    pixels = {i: replay.uncropped(np.array([i]), False)[0] for i in (0, 5)}
    seer, latents = freeze(agent, replay, "fc")
    assert latents.spec.streams == (("critic", 50), ("actor", 50))
    frozen = {k: v.clone() for k, v in snapshot(agent).items() if ".trunk.2" not in k}
    heads_before = agent.critic.q1[0].weight.clone()
    # the target's frozen trunk is the online one, and the whole critic was copied (SEER's copy at T_f)
    for p, tp in zip(agent.critic.parameters(), agent.critic_target.parameters()):
        assert torch.equal(p, tp)
    for s in range(4):
        agent.update(latents, s)
    after = snapshot(agent)
    lower = [k for k in frozen if k.startswith("encoder.") or ".trunk.0." in k or ".trunk.1." in k]
    assert len(lower) == 8 + 3 * 4  # 4 convs; the critic's, target's and actor's Linear + LayerNorm
    assert all(torch.equal(frozen[k], after[k]) for k in lower)
    assert not torch.equal(heads_before, agent.critic.q1[0].weight)  # the heads keep training
    # a stored latent is the trunk's Linear output of a shifted frame (one of the 9 x 9 shifts)
    with torch.no_grad():
        stored = latents.latents(np.array([0]), np.array([1]), next_obs=False)["critic"][0]
        shifted = [random_shift(pixels[0][None], np.array([[y, x]]), 4) for y in range(9) for x in range(9)]
        x = torch.from_numpy(np.concatenate(shifted)).float()
        candidates = agent.critic.trunk[0](reference_encoder(agent, x)).numpy()
    assert np.abs(candidates - stored).max(axis=1).min() < 1e-4


def test_conv_split_keeps_the_upper_convs_and_trunks_training(replay):
    agent = make()
    agent.update(replay, 0)
    _, latents = freeze(agent, replay, "conv2", copies=1)
    assert latents.spec.streams == (("conv", 32 * 39 * 39),)
    before = snapshot(agent)
    agent.update(latents, 2)
    after = snapshot(agent)
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if k.startswith(("encoder.convs.0", "encoder.convs.1"))
    )
    for k in (
        "encoder.convs.2.weight",
        "encoder.convs.3.weight",
        "critic.trunk.0.weight",
        "actor.trunk.0.weight",
    ):
        assert not torch.equal(before[k], after[k]), k


@pytest.mark.parametrize("split", [None, "fc", "conv2", "conv4"])
def test_update_act_and_encode_ledgers_equal_torch_counter(replay, split):
    agent = make()
    target = replay if split is None else freeze(agent, replay, split)[1]
    assert_calls_priced_as_torch_counts(agent, lambda: agent.update(target, 4))
    obs = replay.uncropped(np.array([0]), False)[0]
    assert_act_and_encode_priced(agent, obs, copies=2, frozen=split is not None)


def test_act_costs_the_public_networks_arithmetic():
    """Multiply-adds of one action: 4 convs on 84x84x9 (42.28 M), trunk 39,200 -> 50, policy 1024-1024."""
    convs, side, channels = 0, 84, 9
    for k in range(4):
        side = (side - 3) // (2 if k == 0 else 1) + 1
        convs += side * side * 32 * channels * 9
        channels = 32
    expected = convs + 39_200 * 50 + 50 * 1024 + 1024 * 1024 + 1024 * 2
    agent = make()
    obs = np.zeros(SHAPE, np.uint8)
    _, measured = ledger_and_torch(agent, lambda: agent.act(obs, 0, eval_mode=True))
    assert measured == pytest.approx(expected, rel=1e-6)
    assert math.isclose(convs, 42_280_992)


def test_the_suite_applies_drqv2s_per_task_settings_and_the_quick_scales_deviations():
    suite = load_suite("dmc6_drqv2")
    specs = {s.env: s for s in resolve(suite, Overrides(agents=["drqv2"]), AGENTS, KNOWN_ENVS)}
    assert set(specs) == set(DMC_TASKS) and all(s.action_repeat == 2 for s in specs.values())
    assert specs["walker-walk"].agent_overrides == {"nstep": 1, "batch_size": 512}
    assert specs["cheetah-run"].agent_overrides == {"stddev_duration": 500_000}
    assert specs["cartpole-swingup"].agent_overrides == {}
    assert all(s.env_options == {"size": 84, "camera_id": 0, "frame_stack": 3} for s in specs.values())
    quick = {s.env: s for s in resolve(suite, Overrides(scale="quick"), AGENTS, KNOWN_ENVS)}
    assert quick["cartpole-swingup"].action_repeat == 8 and quick["walker-walk"].action_repeat == 2
    assert quick["cartpole-swingup"].agent_steps == 12_500
    # the scale's settings win over the per-task ones
    assert quick["walker-walk"].agent_overrides["batch_size"] == 128
    assert quick["walker-walk"].agent_overrides["nstep"] == 1


def drq_tiny_spec(agent: str) -> RunSpec:
    seer = SeerConfig(freeze_at=40, num_copies=2) if agent.endswith("+seer") else None
    return tiny_spec(
        agent,
        seer,
        steps=640,
        eval_every=320,
        replay_layout="compact",
        agent_overrides={"batch_size": 8, "seed_steps": 20, "num_expl_steps": 20, "hidden_dim": 64},
        env_options={"size": 84},
    )


def test_drqv2_and_drqv2_seer_are_identical_until_freeze_then_seer_stores_latents(tmp_path):
    run(drq_tiny_spec("drqv2"), tmp_path)
    run(drq_tiny_spec("drqv2+seer"), tmp_path)
    base = pd.read_csv(tmp_path / "runs/drqv2/cartpole-swingup/budget_0.01/seed_3/metrics.csv")
    path = tmp_path / "runs/drqv2+seer/cartpole-swingup/budget_0.01/seed_3"
    seer = pd.read_csv(path / "metrics.csv")
    assert seer["step"].tolist() == base["step"].tolist() == [0, 40, 80]
    same = ["eval_return", "updates", "replay_size", "replay_bytes", "replay_capacity", "cum_flops"]
    # step 40 is evaluated before the freeze: 10 updates (steps 20, 22, ..., 38) in, nothing may differ
    pd.testing.assert_frame_equal(seer.loc[:1, same], base.loc[:1, same])
    assert base.loc[1, "updates"] == 10 and base.loc[2, "updates"] == 30
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    frozen = next(e for e in events if e["event"] == "frozen")
    assert (frozen["step"], frozen["split"], frozen["transitions_converted"]) == (40, "fc", 40)
    # two 50-d streams (critic and actor trunks), obs and next_obs, 2 copies, float32; 1 action + scalars
    per = 2 * 2 * 2 * 50 * 4 + 13
    assert frozen["bytes_per_transition_after"] == pytest.approx(per, rel=1e-3)
    assert frozen["capacity_ratio"] > 6  # one 84x84 RGB frame (21,168 bytes) per pixel transition
    last = seer.iloc[-1]
    assert last["update_flops"] < 0.15 * base.iloc[-1]["update_flops"] and last["cum_flops_convert"] > 0


def test_a_conv_split_is_allowed_and_the_event_says_the_capacity_fell():
    """SEER's freeze as the runner calls it: the pixel replay of the budget, converted at conv4."""
    spec = TransitionSpec(SHAPE, action_dim=2, frame_stack=3, episode_steps=40)
    pixels = make_replay("compact", spec, 10**8, 8)
    fill_random(pixels, 64, episode_steps=40)
    agent = make()
    agent.update(pixels, 0)
    seer = Seer(
        SeerConfig(freeze_at=1, num_copies=1, split="conv4"),
        10**8,
        seed=0,
        chunk=8,
        layout="compact",
        transitions=spec,
        total_steps=100,
    )
    capacity_before = pixels.capacity
    _, event = seer.freeze(agent, pixels, step=0)
    # 2 x 39,200 float32 per transition against one 84x84 RGB frame: about 14x fewer transitions
    assert event["capacity_after"] == 10**8 // (2 * 39_200 * 4 + 2 * 4 + 4 + 4 + 1)  # + action (2), scalars
    assert event["capacity_ratio"] == event["capacity_after"] / capacity_before < 0.1
