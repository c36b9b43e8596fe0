"""CURL-SAC (Laskin, Srinivas, Abbeel 2020) with the hyperparameters of the public SEER cartpole scripts.

Read top to bottom: networks, then `CurlSac.update`, which follows the public update order exactly:
critic -> (every 2 steps) actor and temperature -> (every 2 steps) soft target update -> contrastive update.

What differs from the public code is only how much is computed, never the result:
- the conv pass on `obs` after the critic step, and the critic's Linear+LayerNorm on it, are computed once
  and shared by the actor update (as a detached input, as CURL's `detach_encoder=True`) and the
  contrastive anchor (with gradient); the public code runs them three times (actor encoder, critic encoder
  in the actor loss, CURL anchor);
- the actor's conv pass on `next_obs` for the critic target is the critic's (the weights are tied);
- pixels are converted to float once per batch, after cropping, instead of once per encoder call, into
  buffers reused across updates;
- the actor loss differentiates only the actor's parameters (the public code also fills the critic heads'
  gradients there, which the next critic step discards);
- Adam runs fused (the same rule, one kernel; tests/test_agent.py compares it with per-tensor Adam);
- the actor and temperature losses share one backward pass (they share no parameter);
- after T_f the frozen LayerNorm runs once per update on the critic's latents (the public code reruns it
  for the actor loss, and differentiates it in every loss though nothing steps it).

Once SEER has frozen the encoder (`freeze`, called by seer_bench.agents.seer), `update` runs the same
losses on stored latents (`_update_frozen`) and `encode` turns pixels into what the latent replay stores.

Optimizer wiring (`encoder_optimizer`), kept on purpose for faithfulness:
- "seer" (default), the public SEER DMC agent (lili-chen/SEER, seer_dmc/curl_sac.py, a RAD fork): the
  critic's Adam holds only the two Q heads; the critic encoder (convs, Linear, LayerNorm) has an Adam of its
  own, stepped by the critic loss and again by the contrastive loss in the same update (one set of moments
  for both gradients, two steps per update); the actor's Adam holds its trunk, and the actor encoder has an
  Adam of its own (encoder_lr, default betas); the contrastive Adam holds W and the critic encoder.
- "curl", the original CURL code (MishaLaskin/curl): the critic's Adam holds every critic parameter, encoder
  included, the actor's every actor parameter, and a separate encoder Adam is stepped only by the
  contrastive loss (with the contrastive Adam, which holds W and the critic encoder too).
In both the contrastive loss steps the critic encoder with two Adam optimizers. The public CURL module also
lists the target encoder among its parameters; no loss differentiates it, so Adam never touches it and it
is left out here. Optimizers that hold the actor's convs (tied to the critic's) never move them: the actor
loss reads the convs detached.

At T_f (`freeze`) the whole online critic is copied into the target critic (the public code's soft update
with tau = 1: encoder and Q heads), so the first latent updates bootstrap from the current Q heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer_bench.agents.encoders import PixelEncoder, conv_output_size, rowwise, weight_init
from seer_bench.agents.updates import holds_trainable, optimize, soft_update
from seer_bench.errors import ConfigError
from seer_bench.replay import LatentReplay, PixelReplay, RingReplay
from seer_bench.transfer import Transfer

ENCODER_OPTIMIZERS = ("seer", "curl")  # CurlConfig.encoder_optimizer: whose wiring (module docstring)


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
    encoder_optimizer: str = "seer"  # optimizer wiring: "seer" (the public SEER code) or "curl" (CURL's code)

    def __post_init__(self) -> None:
        """Reject settings that would crash or silently misbehave mid-run (ValueError names the field)."""
        positive = (
            "image_size",
            "batch_size",
            "init_steps",
            "hidden_dim",
            "feature_dim",
            "num_layers",
            "num_filters",
            "actor_update_freq",
            "critic_target_update_freq",
            "alpha_lr",
            "actor_lr",
            "critic_lr",
            "encoder_lr",
            "init_temperature",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("critic_tau", "encoder_tau", "discount", "alpha_beta", "actor_beta", "critic_beta"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.encoder_optimizer not in ENCODER_OPTIMIZERS:
            raise ValueError(
                f"encoder_optimizer must be one of {', '.join(ENCODER_OPTIMIZERS)}, "
                f"got {self.encoder_optimizer!r}"
            )
        if conv_output_size(self.image_size, self.num_layers) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {self.num_layers} conv layers")


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)
    )


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
        log_pi = (-0.5 * noise.pow(2) - log_std).sum(-1, keepdim=True) - 0.5 * math.log(
            2 * math.pi
        ) * noise.size(-1)
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


class Bilinear(nn.Module):
    """CURL's similarity of anchors and positives, z_a W z_pos^T: (B, B) logits."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.rand(dim, dim))

    def forward(self, z_a: torch.Tensor, z_pos: torch.Tensor) -> torch.Tensor:
        return z_a @ (self.W @ z_pos.T)


class CurlSac:
    """The agent: networks, optimizers, acting and one gradient update per call."""

    Config = CurlConfig

    discrete = False
    random_crops = True  # SEER's stored copies are independent random crops
    device_replay = True  # takes batches as tensors from a device-resident replay (seer_bench.device_replay)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        cfg: CurlConfig,
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.action_dim = action_dim
        self.pad = obs_shape[-1] - cfg.image_size
        if self.pad < 1:
            raise ConfigError(
                f"agent curl: image_size {cfg.image_size} leaves no room for random crops of "
                f"{obs_shape[-1]}px frames"
            )
        self.random_steps = self.learn_start = cfg.init_steps  # random actions, then an update every step
        self.sample_horizon = 1  # one-step targets
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])  # replay indices, crops
        channels = self.channels = obs_shape[0]

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
        self.curl = Bilinear(cfg.feature_dim).to(device)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=device, requires_grad=True)
        self.target_entropy = -float(action_dim)
        self.split: str | None = None  # SEER's freeze point once frozen (see `freeze`)
        self._buffers: dict[str, torch.Tensor] = {}  # reused batch inputs (see `_batch_input`)
        self.transfer = Transfer(device)  # sampled batches to the device (pinned, non-blocking on CUDA)
        self.update_every = 1
        # the actor and target update every few steps (agents.contract)
        self.update_period = cfg.actor_update_freq
        self._streams: dict[str, str] = {}

        self._build_optimizers()
        shared = {id(p) for p in self.critic.encoder.convs.parameters()}
        # What the actor loss differentiates (the convs it reads detached get no actor gradient); shrinks at
        # freeze when layers stop training.
        self._actor_trainable = [p for p in self.actor.parameters() if id(p) not in shared]

    def _build_optimizers(self) -> None:
        """The optimizers of `cfg.encoder_optimizer`'s wiring (module docstring), each holding the
        parameters its namesake holds in the reference code, and the groups each loss steps, in order.

        Fused Adam: the same update rule in one kernel per step; on a 2-core CPU the default per-tensor Adam
        spends 7-10x longer on these ~2M-parameter groups, a third of a latent update.
        """
        cfg, adam = self.cfg, partial(torch.optim.Adam, fused=True)
        # both reference codes leave these betas at their default
        encoder_adam = partial(adam, lr=cfg.encoder_lr)
        self.alpha_opt = adam([self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta, 0.999))
        self.cpc_opt = encoder_adam([self.curl.W, *self.critic.encoder.parameters()])
        if cfg.encoder_optimizer == "seer":
            self.actor_opt = adam(
                self.actor.trunk.parameters(), lr=cfg.actor_lr, betas=(cfg.actor_beta, 0.999)
            )
            self.actor_encoder_opt = encoder_adam(self.actor.encoder.parameters())
            heads = [*self.critic.q1.parameters(), *self.critic.q2.parameters()]
            self.critic_opt = adam(heads, lr=cfg.critic_lr, betas=(cfg.critic_beta, 0.999))
            # critic loss, then CURL's
            self.critic_encoder_opt = encoder_adam(self.critic.encoder.parameters())
            self._critic_opts = (self.critic_opt, self.critic_encoder_opt)
            self._actor_opts = (self.actor_opt, self.actor_encoder_opt)
            self._contrastive_opts = (self.critic_encoder_opt, self.cpc_opt)
        else:
            self.actor_opt = adam(self.actor.parameters(), lr=cfg.actor_lr, betas=(cfg.actor_beta, 0.999))
            self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(cfg.critic_beta, 0.999))
            self.encoder_opt = encoder_adam(self.critic.encoder.parameters())  # stepped by CURL's loss only
            self._critic_opts, self._actor_opts = (self.critic_opt,), (self.actor_opt,)
            self._contrastive_opts = (self.encoder_opt, self.cpc_opt)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # --- acting -----------------------------------------------------------------------------------------
    def _to_input(self, pixels: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(pixels).to(self.device)
        return x.to(torch.float32, memory_format=torch.channels_last).div_(255.0)

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> np.ndarray:
        """Action for one (C, H, W) uint8 observation, centre-cropped; sampled at training, mean at eval."""
        mu, pi, _, _ = self.actor.policy(self.actor.encoder(self._cropped(obs[None])))
        return (mu if eval_mode else pi)[0].cpu().numpy()

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, step: int, rngs: list[np.random.Generator]) -> np.ndarray:
        """Evaluation actions (the policy mean) for a (B, C, H, W) batch: one batched conv pass, the Linear
        layers per row (encoders.rowwise: bitwise `act`'s actions); no randomness."""
        encoder = self.actor.encoder
        h = encoder.conv(self._cropped(obs))
        return rowwise(lambda r: self.actor.policy(encoder.head(r))[0], h).cpu().numpy()

    def _cropped(self, obs: np.ndarray) -> torch.Tensor:
        top = self.pad // 2
        crop = obs[:, :, top : top + self.cfg.image_size, top : top + self.cfg.image_size]
        return self._to_input(np.ascontiguousarray(crop))

    # --- learning ---------------------------------------------------------------------------------------
    def sample(self, replay: PixelReplay) -> dict[str, torch.Tensor]:
        """A batch with CURL's augmentation: independent random crops of obs, next_obs and a positive."""
        b, size = self.cfg.batch_size, self.cfg.image_size
        idx = replay.sample_indices(b, self.rng)
        # CURL draws corners with np.random.randint(0, 100 - 84): 0..15, never the last row/column. Kept.
        offsets = self.rng.integers(0, self.pad, size=(3, b, 2))
        batch = {
            "obs": replay.obs(idx, offsets[0], size),
            "next_obs": replay.next_obs(idx, offsets[1], size),
            "pos": replay.obs(idx, offsets[2], size),
        }
        return {**{k: self._batch_input(k, v) for k, v in batch.items()}, **self._scalar_tensors(replay, idx)}

    def _batch_input(self, name: str, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Like `_to_input`, into a float buffer reused by every update (one per batch field).

        A batch-128 input is 32.5 MB: above glibc's 32 MB mmap threshold, a fresh tensor is mapped and
        page-faulted anew on every call (about 11 ms each on the reference CPU). Safe to reuse: an update
        finishes its backward passes before the next one samples.
        """
        buf = self._buffers.get(name)
        if buf is None or buf.shape != pixels.shape:
            buf = torch.empty(pixels.shape, device=self.device).contiguous(memory_format=torch.channels_last)
            self._buffers[name] = buf
        return buf.copy_(self.transfer(name, pixels)).div_(255.0)  # uint8 over the bus, float on the device

    def _scalar_tensors(self, replay: RingReplay, idx: np.ndarray) -> dict[str, torch.Tensor]:
        scalars, put = replay.scalars(idx), self.transfer
        return {
            "action": put("action", scalars["action"]),
            "reward": put("reward", scalars["reward"]).unsqueeze(1),
            "not_done": put("not_done", scalars["not_done"]).unsqueeze(1),
        }

    def update(self, replay: RingReplay, step: int) -> dict[str, float]:
        """One CURL-SAC update at agent step `step` (its parity gates the actor and target updates)."""
        if self.split is not None:
            return self._update_frozen(replay, step)
        cfg = self.cfg
        batch = self.sample(replay)
        with torch.no_grad():
            # The actor's convs are the critic's: one conv pass on next_obs for the policy.
            actor_next = self.actor.encoder.head(self.critic.encoder.conv(batch["next_obs"]))
            target_q = self._target_q(batch, actor_next, self.critic_target.encoder(batch["next_obs"]))
        metrics = {
            "critic_loss": self._critic_step(self.critic.encoder(batch["obs"]), batch["action"], target_q)
        }

        # One conv pass on obs with the post-critic-step weights, and one critic head pass on it, serve the
        # actor loss (detached: the critic's encoder gets no step from it) and the contrastive anchor. The
        # actor step and the target update change neither, so the anchor is what CURL computes after them.
        h_obs = self.critic.encoder.conv(batch["obs"])
        z_anchor = self.critic.encoder.head(h_obs)
        if step % cfg.actor_update_freq == 0:
            metrics.update(
                self._actor_and_alpha_step(self.actor.encoder.head(h_obs.detach()), z_anchor.detach())
            )
        if step % cfg.critic_target_update_freq == 0:
            self._soft_update_targets()
        metrics["curl_loss"] = self._update_contrastive(z_anchor, batch["pos"])
        return metrics

    def _update_frozen(self, replay: LatentReplay, step: int) -> dict[str, float]:
        """SEER's update after T_f: the same losses on stored latents; only the layers above the split run.

        No contrastive loss (the encoder it trains is frozen). The critic target reads the same latents as
        the online critic: the target's frozen layers were set equal to the online ones at T_f.
        """
        cfg, split = self.cfg, self.split
        idx = replay.sample_indices(cfg.batch_size, self.rng)
        copy = self.rng.integers(0, replay.spec.copies, size=cfg.batch_size)
        scalars = self._scalar_tensors(replay, idx)
        obs, nxt = (self._latent_tensors(replay.latents(idx, copy, next_obs=n), n) for n in (False, True))
        critic_in, actor_in = self._streams["critic"], self._streams["actor"]
        with torch.no_grad():
            actor_next = self.actor.encoder.upper(nxt[actor_in], split)
            target_q = self._target_q(
                scalars, actor_next, self.critic_target.encoder.upper(nxt[critic_in], split)
            )
        critic_features = self.critic.encoder.upper(obs[critic_in], split)
        metrics = {"critic_loss": self._critic_step(critic_features, scalars["action"], target_q)}
        if step % cfg.actor_update_freq == 0:
            if critic_features.requires_grad:  # layers above the split trained in the critic step: rerun them
                with torch.no_grad():
                    critic_features = self.critic.encoder.upper(obs[critic_in], split)
            # else (split "fc") only the frozen LayerNorm ran: its output stands, computed once
            metrics.update(
                self._actor_and_alpha_step(self.actor.encoder.upper(obs[actor_in], split), critic_features)
            )
        if step % cfg.critic_target_update_freq == 0:
            self._soft_update_targets()
        return metrics

    def _latent_tensors(self, latents: dict[str, np.ndarray], next_obs: bool) -> dict[str, torch.Tensor]:
        field = "next" if next_obs else "obs"
        return {k: self.transfer(f"{field}.{k}", v, torch.float32) for k, v in latents.items()}

    # --- the SAC losses, shared by both phases ------------------------------------------------------------
    def _target_q(
        self, batch: dict[str, torch.Tensor], actor_next: torch.Tensor, target_next: torch.Tensor
    ) -> torch.Tensor:
        _, pi, log_pi, _ = self.actor.policy(actor_next)
        tq1, tq2 = self.critic_target.q(target_next, pi)
        target_v = torch.min(tq1, tq2) - self.alpha * log_pi
        return batch["reward"] + batch["not_done"] * self.cfg.discount * target_v

    def _critic_step(self, features: torch.Tensor, action: torch.Tensor, target_q: torch.Tensor) -> float:
        q1, q2 = self.critic.q(features, action)
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        optimize(self._critic_opts, loss)  # frozen layers get no gradient: Adam skips them
        return loss.item()

    def _actor_and_alpha_step(
        self, actor_features: torch.Tensor, critic_features: torch.Tensor
    ) -> dict[str, float]:
        _, pi, log_pi, _ = self.actor.policy(actor_features)
        q1, q2 = self.critic.q(critic_features, pi)
        actor_loss = (self.alpha.detach() * log_pi - torch.min(q1, q2)).mean()
        alpha_loss = (self.alpha * (-log_pi - self.target_entropy).detach()).mean()
        # One backward pass for both losses, then the actor's Adam and the temperature's, in the reference
        # order: they share no parameter (the actor loss reads alpha detached, the alpha loss log_pi
        # detached), so each parameter gets exactly its own loss's gradient, and the alpha loss reads
        # log_alpha before its step either way. Only the actor's gradients: the public code also fills
        # the critic heads' .grad here, which the next critic step discards unused (about 7% of a latent
        # update's FLOPs).
        optimize(
            (*self._actor_opts, self.alpha_opt),
            actor_loss + alpha_loss,
            inputs=[*self._actor_trainable, self.log_alpha],
        )
        return {"actor_loss": actor_loss.item(), "alpha": self.alpha.item()}

    def _soft_update_targets(self) -> None:
        soft_update(self.critic.q1, self.critic_target.q1, self.cfg.critic_tau)
        soft_update(self.critic.q2, self.critic_target.q2, self.cfg.critic_tau)
        soft_update(self.critic.encoder, self.critic_target.encoder, self.cfg.encoder_tau)

    def _update_contrastive(self, z_a: torch.Tensor, pos: torch.Tensor) -> float:
        with torch.no_grad():
            z_pos = self.critic_target.encoder(pos)
        logits = self.curl(z_a, z_pos)
        logits = logits - logits.max(dim=1, keepdim=True).values
        loss = F.cross_entropy(logits, torch.arange(logits.shape[0], device=self.device))
        optimize(self._contrastive_opts, loss)
        return loss.item()

    # --- SEER: freezing and encoding --------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return self.critic.encoder.splits()

    def freeze(self, split: str) -> None:
        """Freeze the encoders below `split` and copy the whole online critic into the target critic.

        The copy is the public code's `soft_update_params(critic, critic_target, 1)` at T_f: encoder and Q
        heads, so the target's frozen layers equal the online ones (both read the same stored latents) and
        the first latent updates bootstrap from the current Q heads. Frozen parameters stop requiring
        gradients, so their `.grad` stays None and Adam skips them: they stay bitwise equal. The
        contrastive update stops (it only trains the frozen encoder).
        """
        for encoder in (self.critic.encoder, self.actor.encoder):
            for module in encoder.lower_modules(split):
                module.requires_grad_(False)
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                tp.copy_(p)
        self.curl.requires_grad_(False)
        self._actor_trainable = [p for p in self._actor_trainable if p.requires_grad]
        # an optimizer left with frozen parameters only (the encoder Adams at split fc) has nothing to step
        self._critic_opts, self._actor_opts = (
            tuple(o for o in opts if holds_trainable(o)) for opts in (self._critic_opts, self._actor_opts)
        )
        self.split = split
        # With split "fc" each Linear differs: a critic and an actor stream. Below it the convs are shared.
        self._streams = (
            {"critic": "critic", "actor": "actor"} if split == "fc" else {"critic": "conv", "actor": "conv"}
        )

    def latent_streams(self, split: str) -> tuple[tuple[str, int], ...]:
        """(name, dim) of what is stored at `split`: one stream per distinct module output."""
        dim = self.critic.encoder.latent_dim(split)
        return (("critic", dim), ("actor", dim)) if split == "fc" else (("conv", dim),)

    @torch.no_grad()
    def encode(
        self, pixels: np.ndarray, rng: np.random.Generator, copies: int, dtype: str
    ) -> dict[str, np.ndarray]:
        """Latents of `copies` independent random crops of each uint8 (N, C, H, W) observation.

        Crops are drawn like the training crops (corners 0..pad-1) and encoded `batch_size` at a time, so
        memory never holds more than one training batch of float pixels.
        """
        n, size = len(pixels), self.cfg.image_size
        corners = rng.integers(0, self.pad, size=(n * copies, 2))
        rows = np.repeat(np.arange(n), copies)
        out = {name: np.empty((n * copies, dim), dtype) for name, dim in self.latent_streams(self.split)}
        for lo in range(0, n * copies, self.cfg.batch_size):
            sl = slice(lo, lo + self.cfg.batch_size)
            crops = np.stack(
                [pixels[r, :, y : y + size, x : x + size] for r, (y, x) in zip(rows[sl], corners[sl])]
            )
            x = self._batch_input("encode", crops)
            if self.split == "fc":
                h = self.critic.encoder.conv(x)
                out["critic"][sl] = self.critic.encoder.fc(h).cpu().numpy()
                out["actor"][sl] = self.actor.encoder.fc(h).cpu().numpy()
            else:
                out["conv"][sl] = self.critic.encoder.lower(x, self.split).cpu().numpy()
        return {name: v.reshape(n, copies, -1) for name, v in out.items()}

    def modules(self) -> dict[str, nn.Module]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "curl": self.curl,
        }
