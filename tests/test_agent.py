import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seer_bench.agents import agent_config
from seer_bench.agents.curl_sac import CurlConfig, CurlSac, soft_update
from seer_bench.agents.encoders import PixelEncoder, conv_output_size
from seer_bench.errors import ConfigError

CFG = CurlConfig(batch_size=8, hidden_dim=64)


def make(seed=0):
    torch.manual_seed(seed)
    return CurlSac((9, 100, 100), 2, CFG, torch.device("cpu"), seed)


def snapshot(agent):
    params = {f"{name}.{k}": v.detach().clone() for name, m in agent.modules().items()
              for k, v in m.state_dict().items()}
    params["log_alpha"] = agent.log_alpha.detach().clone()
    return params


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_encoder_shapes_follow_the_reference():
    assert conv_output_size(84, 4) == 35
    enc = PixelEncoder(9, 84)
    assert enc.fc.in_features == 32 * 35 * 35 == 39_200 and enc.fc.out_features == 50
    assert enc(torch.rand(2, 9, 84, 84)).shape == (2, 50)


def test_actor_shares_conv_weights_with_critic_but_not_its_head():
    agent = make()
    for a, c in zip(agent.actor.encoder.convs, agent.critic.encoder.convs):
        assert a.weight is c.weight and a.bias is c.bias
    assert agent.actor.encoder.fc.weight is not agent.critic.encoder.fc.weight
    assert agent.actor.encoder.ln.weight is not agent.critic.encoder.ln.weight


def test_odd_step_updates_critic_encoder_and_contrastive_only(filled_replay):
    agent = make()
    before = snapshot(agent)
    agent.update(filled_replay, step=1)  # actor and target update only on even steps
    diff = changed(before, snapshot(agent))
    assert diff, "an update must change parameters"
    own = {k for k in diff if not k.startswith("actor.encoder.convs")}  # tied to the critic's convs
    prefixes = {".".join(k.split(".")[:2]) for k in own}
    assert prefixes == {"critic.encoder", "critic.q1", "critic.q2", "curl.W"}
    assert {k for k in diff if k.startswith("critic.encoder.convs")}  # convs train through critic + CURL


def test_even_step_also_updates_actor_temperature_and_targets(filled_replay):
    agent = make()
    before = snapshot(agent)
    agent.update(filled_replay, step=2)
    diff = changed(before, snapshot(agent))
    assert {"log_alpha", "curl.W"} <= diff
    assert {k for k in diff if k.startswith("actor.trunk")}
    assert {k for k in diff if k.startswith("actor.encoder.fc")}
    assert {k for k in diff if k.startswith("critic_target.encoder")}
    assert {k for k in diff if k.startswith("critic_target.q1")}
    # The actor encoder's convs are the critic's: they change only as the critic's do.
    for k in diff:
        if k.startswith("actor.encoder.convs"):
            assert torch.equal(snapshot(agent)[k], snapshot(agent)[k.replace("actor.", "critic.", 1)])


def reference_update(agent, batch, step):
    """The public CURL update, written naively: every encoder call recomputes its convs (3 passes on obs)."""
    cfg = agent.cfg
    with torch.no_grad():
        _, pi, log_pi, _ = agent.actor.policy(agent.actor.encoder(batch["next_obs"]))
        tq1, tq2 = agent.critic_target(batch["next_obs"], pi)
        target_q = batch["reward"] + batch["not_done"] * cfg.discount * (torch.min(tq1, tq2) - agent.alpha * log_pi)
    q1, q2 = agent.critic(batch["obs"], batch["action"])
    loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
    agent.critic_opt.zero_grad()
    loss.backward()
    agent.critic_opt.step()
    if step % cfg.actor_update_freq == 0:
        h = agent.actor.encoder.conv(batch["obs"]).detach()
        _, pi, log_pi, _ = agent.actor.policy(agent.actor.encoder.head(h))
        aq1, aq2 = agent.critic.q(agent.critic.encoder.head(agent.critic.encoder.conv(batch["obs"]).detach()), pi)
        actor_loss = (agent.alpha.detach() * log_pi - torch.min(aq1, aq2)).mean()
        agent.actor_opt.zero_grad()
        actor_loss.backward()
        agent.actor_opt.step()
        alpha_loss = (agent.alpha * (-log_pi - agent.target_entropy).detach()).mean()
        agent.alpha_opt.zero_grad()
        alpha_loss.backward()
        agent.alpha_opt.step()
    if step % cfg.critic_target_update_freq == 0:
        soft_update(agent.critic.q1, agent.critic_target.q1, cfg.critic_tau)
        soft_update(agent.critic.q2, agent.critic_target.q2, cfg.critic_tau)
        soft_update(agent.critic.encoder, agent.critic_target.encoder, cfg.encoder_tau)
    z_a = agent.critic.encoder(batch["obs"])
    with torch.no_grad():
        z_pos = agent.critic_target.encoder(batch["pos"])
    logits = z_a @ (agent.curl.W @ z_pos.T)
    logits = logits - logits.max(1, keepdim=True).values
    cpc = F.cross_entropy(logits, torch.arange(len(logits)))
    agent.encoder_opt.zero_grad()
    agent.cpc_opt.zero_grad()
    cpc.backward()
    agent.encoder_opt.step()
    agent.cpc_opt.step()


def test_fused_adam_applies_the_public_adam_rule():
    """The agent's fused Adam against the public code's per-tensor Adam, same gradients, three steps.

    Not bitwise: the kernels round differently, and Adam amplifies rounding where a gradient is near zero
    (m / sqrt(v) of tiny numbers), which is why the update test compares against the agent's own optimizers.
    """
    torch.manual_seed(0)
    params = [torch.randn(64, 32), torch.randn(32)]
    fused = [p.clone().requires_grad_() for p in params]
    public = [p.clone().requires_grad_() for p in params]
    opt_f = torch.optim.Adam(fused, lr=1e-3, betas=(0.9, 0.999), fused=True)
    opt_p = torch.optim.Adam(public, lr=1e-3, betas=(0.9, 0.999), foreach=False)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in params]
        for ps, opt in ((fused, opt_f), (public, opt_p)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opt.step()
    for f, p in zip(fused, public):
        torch.testing.assert_close(f, p, rtol=0, atol=1e-7)
        assert not torch.equal(f, torch.zeros_like(f))


@pytest.mark.parametrize("step", [1, 2])
def test_update_equals_the_naive_public_update(filled_replay, step):
    fast, naive = make(), make()
    for s in (2, 3):  # warm the optimizers so Adam moments matter
        torch.manual_seed(s)
        fast.update(filled_replay, s)
        torch.manual_seed(s)
        naive.update(filled_replay, s)
    naive.rng = np.random.default_rng(123)
    batch = naive.sample(filled_replay)
    fast.rng = np.random.default_rng(123)  # the same indices and crops as `batch`
    torch.manual_seed(7)
    fast.update(filled_replay, step)
    torch.manual_seed(7)
    reference_update(naive, batch, step)
    a, b = snapshot(fast), snapshot(naive)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_act_is_bounded_and_deterministic_at_eval():
    agent = make()
    obs = np.random.default_rng(0).integers(0, 256, (9, 100, 100), dtype=np.uint8)
    a1, a2 = agent.act(obs, sample=False), agent.act(obs, sample=False)
    assert a1.shape == (2,) and np.array_equal(a1, a2) and np.all(np.abs(a1) <= 1)
    assert np.all(np.abs(agent.act(obs, sample=True)) <= 1)


def test_agent_overrides_are_checked():
    assert agent_config("curl", {"batch_size": 32}).batch_size == 32
    with pytest.raises(ConfigError, match="unknown setting 'batchsize'"):
        agent_config("curl", {"batchsize": 32})
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        agent_config("curl", {"batch_size": "big"})
