"""The public CURL/SEER update, computed the way the public code computes it: the speed baseline.

Written from the public code's structure (see shared seer-reference.md), for timing only; seer_bench's
agent does the same math (tests/test_agent.py checks it against a naive update). What makes this slower,
and what seer_bench's agent removes:
- every encoder call divides the uint8->float batch by 255 and runs its convs: on actor steps 7 conv
  passes (actor and target on next_obs, critic on obs, actor and critic again on obs in the actor loss,
  the CURL anchor, the target on the positive), against seer_bench's 5;
- NCHW convs with a separate ReLU after each, per-tensor (for-loop) Adam with gradients zeroed in place (the
  torch of 2021), the actor loss also filling the critic heads' gradients;
- crops cut by a numpy loop from full 100x100 copies of the sampled observations.
After T_f it runs SEER's update on stored latents (LayerNorm then heads, no contrastive loss), sampling
one crop copy per transition, as the public SEER code does.

Optimizers follow the public SEER DMC agent (seer_dmc/curl_sac.py, RadSacAgent): the critic's Adam holds the
Q heads, the critic encoder's Adam is stepped by the critic loss and again by the contrastive loss, the
actor's Adam holds its trunk and the actor encoder's Adam its encoder (tied convs included), the contrastive
Adam holds the CURL module's parameters (W, the critic encoder and the target encoder). After T_f only the
critic's and the actor's Adams step (`step < steps_until_freeze` gates the encoder Adams).

Parameters are random (orthogonal init is not needed to time an update); shapes and hyperparameters are
the agent's (CurlConfig).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer_bench.agents.curl_sac import Actor, Critic, CurlConfig
from seer_bench.agents.encoders import conv_output_size


def _optimize(loss: torch.Tensor, *optimizers: torch.optim.Optimizer) -> None:
    """zero_grad (in place, as the torch of 2021), backward, step: in the public code's order."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=False)
    loss.backward()
    for opt in optimizers:
        opt.step()


class PublicEncoder(nn.Module):
    """CURL's PixelEncoder: obs / 255 -> 4 x (conv, ReLU) in NCHW -> view -> Linear -> LayerNorm."""

    def __init__(self, channels: int, cfg: CurlConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, cfg.num_filters, 3, stride=2)])
        self.convs.extend(nn.Conv2d(cfg.num_filters, cfg.num_filters, 3) for _ in range(cfg.num_layers - 1))
        out = conv_output_size(cfg.image_size, cfg.num_layers)
        self.fc = nn.Linear(cfg.num_filters * out * out, cfg.feature_dim)
        self.ln = nn.LayerNorm(cfg.feature_dim)
        self.feature_dim = cfg.feature_dim

    def forward(self, obs: torch.Tensor, detach: bool = False) -> torch.Tensor:
        h = obs / 255.0
        for conv in self.convs:
            h = torch.relu(conv(h))
        h = h.view(h.size(0), -1)
        if detach:
            h = h.detach()
        return self.ln(self.fc(h))


class PublicCurl:
    """CURL-SAC as the public code runs it, on pixels until `freeze`, then SEER's update on latents."""

    def __init__(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action_dim: int,
        cfg: CurlConfig,
        device: torch.device,
        copies: int = 4,
    ) -> None:
        self.cfg, self.device, self.copies = cfg, device, copies
        self.obs, self.next_obs = obs, next_obs  # (N, C, 100, 100) uint8
        n = len(obs)
        rng = np.random.default_rng(1)
        self.action = rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)
        self.reward = rng.normal(size=(n, 1)).astype(np.float32)
        self.not_done = np.ones((n, 1), np.float32)
        self.rng = rng
        channels = obs.shape[1]
        self.critic = Critic(PublicEncoder(channels, cfg), action_dim, cfg).to(device)
        self.actor = Actor(PublicEncoder(channels, cfg), action_dim, cfg).to(device)
        self.actor.encoder.convs = self.critic.encoder.convs  # tied convs, as CURL
        self.critic_target = Critic(PublicEncoder(channels, cfg), action_dim, cfg).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.W = nn.Parameter(torch.rand(cfg.feature_dim, cfg.feature_dim, device=device))
        self.log_alpha = torch.tensor(np.log(cfg.init_temperature), device=device, requires_grad=True)
        self.target_entropy = -float(action_dim)

        # Per-tensor Adam, as the torch of the public code (2021) ran it; on a GPU a current torch would pick
        # foreach Adam for the public code, so GPU speed-ups against this baseline are upper bounds.
        def adam(params, lr: float, beta: float = 0.9) -> torch.optim.Adam:
            return torch.optim.Adam(list(params), lr=lr, betas=(beta, 0.999), foreach=False)

        self.actor_opt = adam(self.actor.trunk.parameters(), cfg.actor_lr, cfg.actor_beta)
        self.critic_opt = adam(
            [*self.critic.q1.parameters(), *self.critic.q2.parameters()], cfg.critic_lr, cfg.critic_beta
        )
        self.alpha_opt = adam([self.log_alpha], cfg.alpha_lr, cfg.alpha_beta)
        self.encoder_opt_critic = adam(self.critic.encoder.parameters(), cfg.encoder_lr)
        self.encoder_opt_actor = adam(self.actor.encoder.parameters(), cfg.encoder_lr)
        self.cpc_opt = adam(
            [self.W, *self.critic.encoder.parameters(), *self.critic_target.encoder.parameters()],
            cfg.encoder_lr,
        )
        self.latents: dict[str, torch.Tensor] | None = None

    # --- sampling -----------------------------------------------------------------------------------------
    def _crop(self, imgs: np.ndarray) -> np.ndarray:
        size, pad = self.cfg.image_size, imgs.shape[-1] - self.cfg.image_size
        corners = self.rng.integers(0, pad, (len(imgs), 2))
        return np.stack([img[:, y : y + size, x : x + size] for img, (y, x) in zip(imgs, corners)])

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=self.device).float()

    def sample_cpc(self) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(0, len(self.obs), self.cfg.batch_size)
        obses, next_obses = self.obs[idx], self.next_obs[idx]  # full 100x100 copies, as the public buffer
        pos = obses.copy()
        return {
            "obs": self._tensor(self._crop(obses)),
            "next_obs": self._tensor(self._crop(next_obses)),
            "pos": self._tensor(self._crop(pos)),
            "action": self._tensor(self.action[idx]),
            "reward": self._tensor(self.reward[idx]),
            "not_done": self._tensor(self.not_done[idx]),
        }

    # --- the public update --------------------------------------------------------------------------------
    def update(self, step: int) -> None:
        if self.latents is not None:
            return self._update_latents(step)
        b = self.sample_cpc()

        def critic_q(
            obs: torch.Tensor, act: torch.Tensor, detach: bool = False
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return self.critic.q(self.critic.encoder(obs, detach), act)

        with torch.no_grad():
            _, pi, log_pi, _ = self.actor.policy(self.actor.encoder(b["next_obs"]))
            tq1, tq2 = self.critic_target.q(self.critic_target.encoder(b["next_obs"]), pi)
            target_q = b["reward"] + b["not_done"] * self.cfg.discount * (
                torch.min(tq1, tq2) - self.alpha.detach() * log_pi
            )
        self._critic_step(*critic_q(b["obs"], b["action"]), target_q, self.encoder_opt_critic)
        if step % self.cfg.actor_update_freq == 0:
            _, pi, log_pi, _ = self.actor.policy(self.actor.encoder(b["obs"], detach=True))
            self._actor_step(*critic_q(b["obs"], pi, detach=True), log_pi, self.encoder_opt_actor)
        if step % self.cfg.critic_target_update_freq == 0:
            self._soft_update(encoder=True)
        z_a = self.critic.encoder(b["obs"])
        with torch.no_grad():
            z_pos = self.critic_target.encoder(b["pos"])
        logits = z_a @ (self.W @ z_pos.T)
        logits = logits - logits.max(1, keepdim=True).values
        loss = F.cross_entropy(logits, torch.arange(len(logits), device=self.device))
        _optimize(loss, self.encoder_opt_critic, self.cpc_opt)

    def _critic_step(self, q1: torch.Tensor, q2: torch.Tensor, target_q: torch.Tensor, *encoder_opt) -> None:
        _optimize(F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q), self.critic_opt, *encoder_opt)

    def _actor_step(self, q1: torch.Tensor, q2: torch.Tensor, log_pi: torch.Tensor, *encoder_opt) -> None:
        # also fills the critic heads' .grad, as the public code does
        _optimize((self.alpha.detach() * log_pi - torch.min(q1, q2)).mean(), self.actor_opt, *encoder_opt)
        _optimize((self.alpha * (-log_pi - self.target_entropy).detach()).mean(), self.alpha_opt)

    def _soft_update(self, encoder: bool) -> None:
        with torch.no_grad():
            pairs = [
                (self.critic.q1, self.critic_target.q1, self.cfg.critic_tau),
                (self.critic.q2, self.critic_target.q2, self.cfg.critic_tau),
            ]
            if encoder:
                pairs.append((self.critic.encoder, self.critic_target.encoder, self.cfg.encoder_tau))
            for net, target, tau in pairs:
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.data.copy_(tau * p.data + (1 - tau) * tp.data)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # --- SEER -----------------------------------------------------------------------------------------------
    def freeze(self) -> None:
        """Store `copies` random-crop latents (Linear output) per observation for critic
        and actor, as SEER."""
        self.critic_target.load_state_dict(self.critic.state_dict())  # soft_update_params(critic, target, 1)
        out: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("critic_obs", "critic_next", "actor_obs", "actor_next")
        }
        with torch.no_grad():
            for lo in range(0, len(self.obs), self.cfg.batch_size):
                for name, src in (("obs", self.obs), ("next", self.next_obs)):
                    h = (
                        self._tensor(
                            self._crop(np.repeat(src[lo : lo + self.cfg.batch_size], self.copies, axis=0))
                        )
                        / 255.0
                    )
                    for conv in self.critic.encoder.convs:  # the actor's convs are these
                        h = torch.relu(conv(h))
                    h = h.view(h.size(0), -1)
                    for who, enc in (("critic", self.critic.encoder), ("actor", self.actor.encoder)):
                        out[f"{who}_{name}"].append(enc.fc(h).view(-1, self.copies, enc.feature_dim))
        self.latents = {k: torch.cat(v) for k, v in out.items()}

    def _update_latents(self, step: int) -> None:
        cfg, lat = self.cfg, self.latents
        idx = self.rng.integers(0, len(self.obs), cfg.batch_size)
        copy = self.rng.integers(0, self.copies, cfg.batch_size)
        idx_t, copy_t = torch.as_tensor(idx, device=self.device), torch.as_tensor(copy, device=self.device)
        pick = lambda key: lat[key][idx_t, copy_t]  # noqa: E731
        action, reward, not_done = (self._tensor(a[idx]) for a in (self.action, self.reward, self.not_done))
        with torch.no_grad():
            _, pi, log_pi, _ = self.actor.policy(self.actor.encoder.ln(pick("actor_next")))
            tq1, tq2 = self.critic_target.q(self.critic_target.encoder.ln(pick("critic_next")), pi)
            target_q = reward + not_done * cfg.discount * (torch.min(tq1, tq2) - self.alpha.detach() * log_pi)
        # The encoders still require gradients (the public code never turns them off): every loss also
        # differentiates the LayerNorm it runs, and no optimizer steps it.
        self._critic_step(*self.critic.q(self.critic.encoder.ln(pick("critic_obs")), action), target_q)
        if step % cfg.actor_update_freq == 0:
            _, pi, log_pi, _ = self.actor.policy(self.actor.encoder.ln(pick("actor_obs")))
            self._actor_step(*self.critic.q(self.critic.encoder.ln(pick("critic_obs")), pi), log_pi)
        if step % cfg.critic_target_update_freq == 0:
            self._soft_update(encoder=False)
