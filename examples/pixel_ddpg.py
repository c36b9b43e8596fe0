"""A pixel DDPG agent brought to seer-bench from outside the package: the agent contract and nothing else.

    python bench.py --suite dmc6 --scale smoke --envs cartpole-swingup --agents examples.pixel_ddpg:PixelDdpg
    python bench.py --suite dmc6 --scale smoke --envs cartpole-swingup \
        --agents examples.pixel_ddpg:PixelDdpg,examples.pixel_ddpg:PixelDdpg+seer --seer-split encoder
        --num-copies 1

seer-bench measures its FLOPs (by watching its modules run), memory and returns, checkpoints it, and with
"+seer" freezes its encoder at T_f and stores latents: it implements SEER's protocol too (`splits`, `freeze`,
`latent_streams`, `encode`). Deterministic policy gradient (Lillicrap et al. 2016) on a small conv encoder
of the full 100x100 frames, Gaussian exploration noise, target networks by Polyak averaging.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DdpgConfig:
    batch_size: int = 128
    init_steps: int = 1000  # agent steps of uniformly random actions
    feature_dim: int = 50
    hidden_dim: int = 256
    lr: float = 1e-3
    tau: float = 0.01  # target networks' Polyak rate
    discount: float = 0.99
    noise_std: float = 0.2  # exploration noise on the deterministic action


class Encoder(nn.Module):
    """Pixels (B, C, 100, 100) in [0, 1] -> 2 strided convs -> Linear -> LayerNorm -> (B, feature_dim)."""

    def __init__(self, channels: int, size: int, feature_dim: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, size, size)).shape[1]
        self.fc, self.ln = nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.fc(self.convs(x)))


class PixelDdpg:
    """Actor and critic share the encoder, which the critic loss trains (the actor reads it detached)."""

    Config = DdpgConfig
    discrete = False  # continuous actions in [-1, 1]
    random_crops = False  # SEER: no augmentation, so one latent per observation

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        cfg: DdpgConfig,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg, self.device, self.action_dim = cfg, device, action_dim
        self.random_steps = self.learn_start = cfg.init_steps
        self.update_every, self.update_period, self.sample_horizon = 1, 1, 1
        self.rng = np.random.default_rng(seed)
        self.encoder = Encoder(obs_shape[0], obs_shape[-1], cfg.feature_dim).to(device)

        def mlp(inp: int, out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(inp, cfg.hidden_dim), nn.ReLU(), nn.Linear(cfg.hidden_dim, out))

        self.actor = mlp(cfg.feature_dim, action_dim).to(device)
        self.critic = mlp(cfg.feature_dim + action_dim, 1).to(device)
        self.target_encoder, self.target_actor, self.target_critic = (
            copy.deepcopy(m).requires_grad_(False) for m in (self.encoder, self.actor, self.critic)
        )
        self.critic_opt = torch.optim.Adam([*self.encoder.parameters(), *self.critic.parameters()], lr=cfg.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.frozen = False

    def _pixels(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device).float().div_(255.0)

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> np.ndarray:
        action = torch.tanh(self.actor(self.encoder(self._pixels(obs[None]))))[0].cpu().numpy()
        if not eval_mode:
            action = action + self.rng.normal(0.0, self.cfg.noise_std, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _features(self, replay, idx: np.ndarray, next_obs: bool, target: bool) -> torch.Tensor:
        """Encoder features of a batch: from pixels, or once frozen the stored latents themselves."""
        if self.frozen:
            z = replay.latents(idx, np.zeros(len(idx), np.int64), next_obs)["z"]
            return torch.as_tensor(z, device=self.device)
        return (self.target_encoder if target else self.encoder)(
            self._pixels(replay.uncropped(idx, next_obs))
        )

    def update(self, replay, step: int) -> dict[str, float]:
        cfg = self.cfg
        idx = replay.sample_indices(cfg.batch_size, self.rng)
        sc = {k: torch.as_tensor(v, device=self.device) for k, v in replay.scalars(idx).items()}
        with torch.no_grad():
            nxt = self._features(replay, idx, next_obs=True, target=True)
            q_next = self.target_critic(torch.cat([nxt, torch.tanh(self.target_actor(nxt))], 1))
            target = sc["reward"][:, None] + cfg.discount * sc["not_done"][:, None] * q_next
        h = self._features(replay, idx, next_obs=False, target=False)
        critic_loss = F.mse_loss(self.critic(torch.cat([h, sc["action"]], 1)), target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        h = h.detach()
        actor_loss = -self.critic(torch.cat([h, torch.tanh(self.actor(h))], 1)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(self.actor.parameters()))
        self.actor_opt.step()
        with torch.no_grad():
            for net, target_net in (
                (self.encoder, self.target_encoder),
                (self.actor, self.target_actor),
                (self.critic, self.target_critic),
            ):
                for p, tp in zip(net.parameters(), target_net.parameters()):
                    if p.requires_grad:
                        tp.lerp_(p, cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    # --- SEER's protocol ----------------------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return ("encoder",)  # freeze the whole encoder and store its output

    def freeze(self, split: str) -> None:
        self.encoder.requires_grad_(False)
        self.target_encoder.load_state_dict(self.encoder.state_dict())  # both read the same stored latents
        self.frozen = True

    def latent_streams(self, split: str) -> tuple[tuple[str, int], ...]:
        return (("z", self.cfg.feature_dim),)

    @torch.no_grad()
    def encode(
        self, pixels: np.ndarray, rng: np.random.Generator, copies: int, dtype: str
    ) -> dict[str, np.ndarray]:
        z = self.encoder(self._pixels(pixels)).cpu().numpy().astype(dtype)
        return {"z": np.repeat(z[:, None], copies, axis=1)}
