from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seer_bench.agents import agent_config
from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.encoders import PixelEncoder, conv_output_size
from seer_bench.agents.updates import soft_update
from seer_bench.errors import ConfigError

CFG = CurlConfig(batch_size=8, hidden_dim=64)


def make(seed=0):
    torch.manual_seed(seed)
    return CurlSac((9, 100, 100), 2, CFG, torch.device("cpu"), seed)


def snapshot(agent):
    params = {
        f"{name}.{k}": v.detach().clone()
        for name, m in agent.modules().items()
        for k, v in m.state_dict().items()
    }
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


# The optimizers of each reference code, read from it (not from seer_bench): name -> (the parameters it holds,
# lr and betas as its constructor sets them). "seer": lili-chen/SEER seer_dmc/curl_sac.py,
# RadSacAgent.__init__; "curl": MishaLaskin/curl curl_sac.py, CurlSacAgent.__init__. Both CURL modules hold W,
# the critic encoder and the target encoder (CURL(..., critic, critic_target)); the encoder Adams keep torch's
# default betas.
def public_optimizers(agent, wiring):
    cfg, c, a = agent.cfg, agent.critic, agent.actor
    curl_module = [agent.curl.W, *c.encoder.parameters(), *agent.critic_target.encoder.parameters()]
    table = {
        "seer": {
            "actor": (a.trunk.parameters(), cfg.actor_lr, (cfg.actor_beta, 0.999)),
            "critic": ([*c.q1.parameters(), *c.q2.parameters()], cfg.critic_lr, (cfg.critic_beta, 0.999)),
            "encoder_critic": (c.encoder.parameters(), cfg.encoder_lr, (0.9, 0.999)),
            "encoder_actor": (a.encoder.parameters(), cfg.encoder_lr, (0.9, 0.999)),
        },
        "curl": {
            "actor": (a.parameters(), cfg.actor_lr, (cfg.actor_beta, 0.999)),
            "critic": (c.parameters(), cfg.critic_lr, (cfg.critic_beta, 0.999)),
            "encoder": (c.encoder.parameters(), cfg.encoder_lr, (0.9, 0.999)),
        },
    }[wiring]
    table["cpc"] = (curl_module, cfg.encoder_lr, (0.9, 0.999))
    table["log_alpha"] = ([agent.log_alpha], cfg.alpha_lr, (cfg.alpha_beta, 0.999))
    # fused: the agent's kernel (test_fused_adam_applies_the_public_adam_rule checks it against
    # per-tensor Adam)
    return {
        k: torch.optim.Adam(list(ps), lr=lr, betas=betas, fused=True) for k, (ps, lr, betas) in table.items()
    }


# Which optimizers each loss zeroes and steps, in the reference code's order (update_critic,
# update_actor_and_alpha, update_cpc). Before T_f the SEER code's encoder Adams step with the critic's
# and the actor's.
LOSS_STEPS = {
    "seer": {
        "critic": ("critic", "encoder_critic"),
        "actor": ("actor", "encoder_actor"),
        "cpc": ("encoder_critic", "cpc"),
    },
    "curl": {"critic": ("critic",), "actor": ("actor",), "cpc": ("encoder", "cpc")},
}


def optimize(opts, names, loss):
    for n in names:
        opts[n].zero_grad(set_to_none=False)  # the torch of 2021 zeroed gradients in place
    loss.backward()
    for n in names:
        opts[n].step()


def reference_update(agent, opts, wiring, batch, step):
    """The public update, written naively: every encoder call recomputes its convs (3 passes on obs), every
    loss fills every gradient it reaches, and its own optimizers are stepped as the
    reference code steps them."""
    cfg, steps = agent.cfg, LOSS_STEPS[wiring]
    with torch.no_grad():
        _, pi, log_pi, _ = agent.actor.policy(agent.actor.encoder(batch["next_obs"]))
        tq1, tq2 = agent.critic_target(batch["next_obs"], pi)
        target_q = batch["reward"] + batch["not_done"] * cfg.discount * (
            torch.min(tq1, tq2) - agent.alpha * log_pi
        )
    q1, q2 = agent.critic(batch["obs"], batch["action"])
    optimize(opts, steps["critic"], F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q))
    if step % cfg.actor_update_freq == 0:
        h = agent.actor.encoder.conv(batch["obs"]).detach()
        _, pi, log_pi, _ = agent.actor.policy(agent.actor.encoder.head(h))
        aq1, aq2 = agent.critic.q(
            agent.critic.encoder.head(agent.critic.encoder.conv(batch["obs"]).detach()), pi
        )
        optimize(opts, steps["actor"], (agent.alpha.detach() * log_pi - torch.min(aq1, aq2)).mean())
        optimize(opts, ("log_alpha",), (agent.alpha * (-log_pi - agent.target_entropy).detach()).mean())
    if step % cfg.critic_target_update_freq == 0:
        soft_update(agent.critic.q1, agent.critic_target.q1, cfg.critic_tau)
        soft_update(agent.critic.q2, agent.critic_target.q2, cfg.critic_tau)
        soft_update(agent.critic.encoder, agent.critic_target.encoder, cfg.encoder_tau)
    z_a = agent.critic.encoder(batch["obs"])
    with torch.no_grad():
        z_pos = agent.critic_target.encoder(batch["pos"])
    logits = z_a @ (agent.curl.W @ z_pos.T)
    logits = logits - logits.max(1, keepdim=True).values
    optimize(opts, steps["cpc"], F.cross_entropy(logits, torch.arange(len(logits))))


def make_wired(wiring, seed=0):
    torch.manual_seed(seed)
    return CurlSac((9, 100, 100), 2, replace(CFG, encoder_optimizer=wiring), torch.device("cpu"), seed)


def ids(params):
    return {id(p) for p in params}


def test_seer_wiring_holds_the_public_seer_codes_parameters():
    agent = make_wired("seer")
    c, a = agent.critic, agent.actor
    # the default: the paper's baseline is the public SEER code's
    assert CurlConfig().encoder_optimizer == "seer"
    held = {
        name: ids(p for g in opt.param_groups for p in g["params"])
        for name, opt in (
            ("critic", agent.critic_opt),
            ("critic_encoder", agent.critic_encoder_opt),
            ("actor", agent.actor_opt),
            ("actor_encoder", agent.actor_encoder_opt),
            ("cpc", agent.cpc_opt),
        )
    }
    assert held["critic"] == ids([*c.q1.parameters(), *c.q2.parameters()])  # Q heads only
    assert held["critic_encoder"] == ids(c.encoder.parameters())  # convs, Linear, LayerNorm
    assert held["actor"] == ids(a.trunk.parameters())
    assert held["actor_encoder"] == ids(a.encoder.parameters())  # its Linear, LayerNorm and the tied convs
    assert held["cpc"] == ids([agent.curl.W, *c.encoder.parameters()])
    assert agent.critic_encoder_opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_curl_wiring_holds_the_original_curl_codes_parameters():
    agent = make_wired("curl")
    c = agent.critic
    assert not hasattr(agent, "critic_encoder_opt")
    assert ids(agent.critic_opt.param_groups[0]["params"]) == ids(c.parameters())  # encoder included
    assert ids(agent.actor_opt.param_groups[0]["params"]) == ids(agent.actor.parameters())
    assert ids(agent.encoder_opt.param_groups[0]["params"]) == ids(c.encoder.parameters())
    assert ids(agent.cpc_opt.param_groups[0]["params"]) == ids([agent.curl.W, *c.encoder.parameters()])


def adam_steps(opt, param):
    return int(opt.state[param]["step"]) if param in opt.state else 0


@pytest.mark.parametrize("wiring", ["seer", "curl"])
def test_encoder_adam_step_counts_after_k_updates(filled_replay, wiring):
    agent, k = make_wired(wiring), 5
    for step in range(k):
        agent.update(filled_replay, step)
    conv, fc = agent.critic.encoder.convs[0].weight, agent.critic.encoder.fc.weight
    actor_fc = agent.actor.encoder.fc.weight
    actor_updates = sum(step % CFG.actor_update_freq == 0 for step in range(k))
    if wiring == "seer":  # the critic loss, then the contrastive loss: two steps of one Adam per update
        assert adam_steps(agent.critic_encoder_opt, conv) == adam_steps(agent.critic_encoder_opt, fc) == 2 * k
        assert adam_steps(agent.critic_opt, agent.critic.q1[0].weight) == k
        assert adam_steps(agent.actor_encoder_opt, actor_fc) == actor_updates
        assert adam_steps(agent.actor_encoder_opt, agent.actor.encoder.convs[0].weight) == 0  # read detached
    else:  # the critic Adam with the critic loss, the encoder Adam with the contrastive loss
        assert adam_steps(agent.critic_opt, conv) == adam_steps(agent.encoder_opt, conv) == k
        assert adam_steps(agent.actor_opt, actor_fc) == actor_updates
    assert adam_steps(agent.cpc_opt, conv) == adam_steps(agent.cpc_opt, agent.curl.W) == k


def test_the_two_wirings_give_different_encoders_after_one_update(filled_replay):
    seer, curl = make_wired("seer"), make_wired("curl")
    a, b = snapshot(seer), snapshot(curl)
    assert all(torch.equal(a[k], b[k]) for k in a)  # identical weights before
    for agent in (seer, curl):
        agent.rng = np.random.default_rng(5)  # the same batch and crops
        torch.manual_seed(5)
        agent.update(filled_replay, step=2)
    a, b = snapshot(seer), snapshot(curl)
    differ = {k for k in a if not torch.equal(a[k], b[k])}
    assert {k for k in differ if k.startswith("critic.encoder.convs")}
    assert {"critic.encoder.fc.weight", "critic.encoder.ln.weight"} <= differ


def test_fused_adam_applies_the_public_adam_rule():
    """The agent's fused Adam against the public code's per-tensor Adam, same gradients, three steps.

    Not bitwise: the kernels round differently, and Adam amplifies rounding where a gradient is near zero
    (m / sqrt(v) of tiny numbers), which is why the update test's reference optimizers are fused too.
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


@pytest.mark.parametrize("wiring", ["seer", "curl"])
@pytest.mark.parametrize("step", [1, 2])
def test_update_equals_the_naive_public_update(filled_replay, step, wiring):
    fast, naive = make_wired(wiring), make_wired(wiring)
    opts = public_optimizers(naive, wiring)  # the reference's own optimizers, built from its code's facts
    for s in (2, 3, step):  # two updates to warm the optimizers so Adam moments matter, then the compared one
        naive.rng = np.random.default_rng(100 + s)
        batch = naive.sample(filled_replay)
        fast.rng = np.random.default_rng(100 + s)  # the same indices and crops as `batch`
        torch.manual_seed(s)
        fast.update(filled_replay, s)
        torch.manual_seed(s)
        reference_update(naive, opts, wiring, batch, s)
    a, b = snapshot(fast), snapshot(naive)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_act_is_bounded_and_deterministic_at_eval():
    agent = make()
    obs = np.random.default_rng(0).integers(0, 256, (9, 100, 100), dtype=np.uint8)
    a1, a2 = agent.act(obs, 0, eval_mode=True), agent.act(obs, 0, eval_mode=True)
    assert a1.shape == (2,) and np.array_equal(a1, a2) and np.all(np.abs(a1) <= 1)
    assert np.all(np.abs(agent.act(obs, 0, eval_mode=False)) <= 1)


def test_agent_overrides_are_checked():
    assert agent_config("curl", {"batch_size": 32}).batch_size == 32
    with pytest.raises(ConfigError, match="unknown setting 'batchsize'"):
        agent_config("curl", {"batchsize": 32})
    with pytest.raises(ConfigError, match="'batch_size' expects int"):
        agent_config("curl", {"batch_size": "big"})
