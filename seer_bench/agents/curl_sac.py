"""CURL-SAC (Laskin, Srinivas, Abbeel 2020) with the hyperparameters of the public SEER cartpole scripts.

Read top to bottom: networks, then `CurlSac.update`, which follows the public update order exactly:
critic -> (every 2 steps) actor and temperature -> (every 2 steps) soft target update -> contrastive update.

What differs from the public code is only how much is computed, never the result:
- the conv pass on `obs` after the critic step is computed once and shared by the actor update (as a
  detached input, as CURL's `detach_encoder=True`) and the contrastive anchor (with gradient); the public
  code runs it three times (actor encoder, critic encoder in the actor loss, CURL anchor);
- the actor's conv pass on `next_obs` for the critic target is the critic's (the weights are tied);
- pixels are converted to float once per batch, after cropping, instead of once per encoder call.

Kept on purpose for faithfulness: the contrastive loss steps the critic encoder with two Adam optimizers
(CURL's `encoder_optimizer` and `cpc_optimizer` both hold it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer_bench.agents.encoders import PixelEncoder, conv_output_size, weight_init
from seer_bench.replay import PixelReplay


@dataclass(frozen=True)
class CurlConfig:
    """Defaults are the public SEER/CURL cartpole-swingup settings (see shared seer-reference.md)."""

    image_size: int = 84  # random crop at training, centre crop when acting
    batch_size: int = 128  # SEER's scripts; CURL's final runs used 512
    init_steps: int = 1000  # agent steps of uniformly random actions before the first update
    hidden_dim: int = 1024
    feature_dim: int = 50
    num_layers: int = 4
    num_filters: int = 32
    discount: float = 0.99
    init_temperature: float = 0.1
    alpha_lr: float = 1e-4
    alpha_beta: float = 0.5
    actor_lr: float = 1e-3
    actor_beta: float = 0.9
    actor_log_std_min: float = -10.0
    actor_log_std_max: float = 2.0
    actor_update_freq: int = 2
    critic_lr: float = 1e-3
    critic_beta: float = 0.9
    critic_tau: float = 0.01
    critic_target_update_freq: int = 2
    encoder_lr: float = 1e-3
    encoder_tau: float = 0.05

    def __post_init__(self) -> None:
        """Reject settings that would crash or silently misbehave mid-run (ValueError names the field)."""
        positive = ("image_size", "batch_size", "init_steps", "hidden_dim", "feature_dim", "num_layers",
                    "num_filters", "actor_update_freq", "critic_target_update_freq", "alpha_lr", "actor_lr",
                    "critic_lr", "encoder_lr", "init_temperature")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("critic_tau", "encoder_tau", "discount", "alpha_beta", "actor_beta", "critic_beta"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if conv_output_size(self.image_size, self.num_layers) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {self.num_layers} conv layers")


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy on the encoder's features."""

    def __init__(self, encoder: PixelEncoder, action_dim: int, cfg: CurlConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(encoder.feature_dim, cfg.hidden_dim, 2 * action_dim)
        self.log_std_min, self.log_std_max = cfg.actor_log_std_min, cfg.actor_log_std_max

    def policy(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (tanh(mu), sampled action, its log-prob, log_std)."""
        mu, log_std = self.trunk(features).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        noise = torch.randn_like(mu)
        pi = mu + noise * log_std.exp()
        log_pi = (-0.5 * noise.pow(2) - log_std).sum(-1, keepdim=True) - 0.5 * math.log(2 * math.pi) * noise.size(-1)
        mu, pi = torch.tanh(mu), torch.tanh(pi)
        log_pi = log_pi - torch.log(F.relu(1 - pi.pow(2)) + 1e-6).sum(-1, keepdim=True)
        return mu, pi, log_pi, log_std


class Critic(nn.Module):
    """Two Q-functions on the encoder's features and the action."""

    def __init__(self, encoder: PixelEncoder, action_dim: int, cfg: CurlConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.q1 = mlp(encoder.feature_dim + action_dim, cfg.hidden_dim, 1)
        self.q2 = mlp(encoder.feature_dim + action_dim, cfg.hidden_dim, 1)

    def q(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], dim=1)
        return self.q1(x), self.q2(x)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q(self.encoder(obs), action)


def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


class CurlSac:
    """The agent: networks, optimizers, acting and one gradient update per call."""

    def __init__(self, obs_shape: tuple[int, int, int], action_dim: int, cfg: CurlConfig,
                 device: torch.device, seed: int) -> None:
        self.cfg = cfg
        self.device = device
        self.action_dim = action_dim
        self.pad = obs_shape[-1] - cfg.image_size
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])  # replay indices, crops
        channels = obs_shape[0]

        def encoder() -> PixelEncoder:
            return PixelEncoder(channels, cfg.image_size, cfg.feature_dim, cfg.num_layers, cfg.num_filters)

        self.critic = Critic(encoder(), action_dim, cfg).to(device)
        self.actor = Actor(encoder(), action_dim, cfg).to(device)
        self.critic.apply(weight_init)
        self.actor.apply(weight_init)
        self.actor.encoder.tie_convs_to(self.critic.encoder)
        self.critic_target = Critic(encoder(), action_dim, cfg).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.W = nn.Parameter(torch.rand(cfg.feature_dim, cfg.feature_dim, device=device))
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=device, requires_grad=True)
        self.target_entropy = -float(action_dim)

        shared = {id(p) for p in self.critic.encoder.convs.parameters()}
        actor_own = [p for p in self.actor.parameters() if id(p) not in shared]  # convs get no actor gradient
        self.actor_opt = torch.optim.Adam(actor_own, lr=cfg.actor_lr, betas=(cfg.actor_beta, 0.999))
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(cfg.critic_beta, 0.999))
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta, 0.999))
        self.encoder_opt = torch.optim.Adam(self.critic.encoder.parameters(), lr=cfg.encoder_lr)
        self.cpc_opt = torch.optim.Adam([self.W, *self.critic.encoder.parameters()], lr=cfg.encoder_lr)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # --- acting -----------------------------------------------------------------------------------------
    def _to_input(self, pixels: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(pixels).to(self.device)
        return x.to(torch.float32, memory_format=torch.channels_last).div_(255.0)

    @torch.no_grad()
    def act(self, obs: np.ndarray, sample: bool) -> np.ndarray:
        """Action for one (C, H, W) uint8 observation, centre-cropped; sampled at training, mean at eval."""
        top = self.pad // 2
        crop = obs[None, :, top:top + self.cfg.image_size, top:top + self.cfg.image_size]
        mu, pi, _, _ = self.actor.policy(self.actor.encoder(self._to_input(np.ascontiguousarray(crop))))
        return (pi if sample else mu)[0].cpu().numpy()

    # --- learning ---------------------------------------------------------------------------------------
    def sample(self, replay: PixelReplay) -> dict[str, torch.Tensor]:
        """A batch with CURL's augmentation: independent random crops of obs, next_obs and a positive."""
        b, size = self.cfg.batch_size, self.cfg.image_size
        idx = replay.sample_indices(b, self.rng)
        # CURL draws corners with np.random.randint(0, 100 - 84): 0..15, never the last row/column. Kept.
        offsets = self.rng.integers(0, self.pad, size=(3, b, 2))
        batch = {"obs": replay.obs(idx, offsets[0], size), "next_obs": replay.next_obs(idx, offsets[1], size),
                 "pos": replay.obs(idx, offsets[2], size)}
        out = {k: self._to_input(v) for k, v in batch.items()}
        scalars = replay.scalars(idx)
        out["action"] = torch.from_numpy(scalars["action"]).to(self.device)
        out["reward"] = torch.from_numpy(scalars["reward"]).to(self.device).unsqueeze(1)
        out["not_done"] = torch.from_numpy(scalars["not_done"]).to(self.device).unsqueeze(1)
        return out

    def update(self, replay: PixelReplay, step: int) -> dict[str, float]:
        """One CURL-SAC update at agent step `step` (its parity gates the actor and target updates)."""
        cfg = self.cfg
        batch = self.sample(replay)
        metrics = {"critic_loss": self._update_critic(batch)}

        # One conv pass on obs with the post-critic-step weights serves the actor and the contrastive loss.
        h_obs = self.critic.encoder.conv(batch["obs"])
        if step % cfg.actor_update_freq == 0:
            metrics.update(self._update_actor_and_alpha(h_obs.detach()))
        if step % cfg.critic_target_update_freq == 0:
            soft_update(self.critic.q1, self.critic_target.q1, cfg.critic_tau)
            soft_update(self.critic.q2, self.critic_target.q2, cfg.critic_tau)
            soft_update(self.critic.encoder, self.critic_target.encoder, cfg.encoder_tau)
        metrics["curl_loss"] = self._update_contrastive(h_obs, batch["pos"])
        return metrics

    def _update_critic(self, batch: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            # The actor's convs are the critic's: one conv pass on next_obs for the policy.
            h_next = self.critic.encoder.conv(batch["next_obs"])
            _, pi, log_pi, _ = self.actor.policy(self.actor.encoder.head(h_next))
            tq1, tq2 = self.critic_target(batch["next_obs"], pi)
            target_v = torch.min(tq1, tq2) - self.alpha * log_pi
            target_q = batch["reward"] + batch["not_done"] * self.cfg.discount * target_v
        q1, q2 = self.critic(batch["obs"], batch["action"])
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        return loss.item()

    def _update_actor_and_alpha(self, h_obs: torch.Tensor) -> dict[str, float]:
        _, pi, log_pi, _ = self.actor.policy(self.actor.encoder.head(h_obs))
        with torch.no_grad():  # the critic's encoder head gets no step from the actor loss
            critic_features = self.critic.encoder.head(h_obs)
        q1, q2 = self.critic.q(critic_features, pi)
        actor_loss = (self.alpha.detach() * log_pi - torch.min(q1, q2)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = (self.alpha * (-log_pi - self.target_entropy).detach()).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"actor_loss": actor_loss.item(), "alpha": self.alpha.item()}

    def _update_contrastive(self, h_anchor: torch.Tensor, pos: torch.Tensor) -> float:
        z_a = self.critic.encoder.head(h_anchor)
        with torch.no_grad():
            z_pos = self.critic_target.encoder(pos)
        logits = z_a @ (self.W @ z_pos.T)
        logits = logits - logits.max(dim=1, keepdim=True).values
        loss = F.cross_entropy(logits, torch.arange(logits.shape[0], device=self.device))
        self.encoder_opt.zero_grad(set_to_none=True)
        self.cpc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.encoder_opt.step()
        self.cpc_opt.step()
        return loss.item()

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}
