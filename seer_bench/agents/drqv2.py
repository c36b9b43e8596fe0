"""DrQ-v2 (Yarats, Fergus, Lazaric, Pinto 2021) with the settings of its public code (facebookresearch/drqv2).

Read top to bottom: config, augmentation, networks, then `DrQV2.update`, which follows the public update:
random shifts of obs and next_obs -> encoder (next_obs without gradient) -> critic step (the critic's Adam,
then the encoder's) -> actor step on the detached encoding -> soft update of the target critic.

Facts read from the public code (drqv2.py, utils.py, replay_buffer.py, train.py, cfgs/):
- frames 84x84 from camera 0, 3 stacked, action repeat 2: the suite's env options and repeats;
- encoder: obs / 255 - 0.5, then 4 convs (3x3, 32 filters, strides 2,1,1,1, each with a ReLU), flattened:
  32 x 35 x 35 = 39,200 features, no Linear inside it; orthogonal init (ReLU gain for the convs);
- actor and critic each start with a trunk Linear(39,200 -> 50) -> LayerNorm -> Tanh; the actor's policy is
  a 1024-1024 MLP with a tanh mean and a truncated normal around it, whose std follows a linear schedule in
  agent steps (1.0 to 0.1 over 100,000 steps for the "easy" tasks, 500,000 for "medium"); the losses clip
  its noise at 0.3; the critic has two Q heads (1024-1024) on [trunk output, action];
- 3-step returns, discount 0.99, batch 256, Adam lr 1e-4 with default betas: the encoder's Adam holds the
  convs, the critic's the trunk and both heads, the actor's the trunk and policy; the critic loss steps the
  critic's and the encoder's, the actor loss the actor's;
- the target critic is trunk and heads, no encoder (targets read the online encoder on next_obs without
  gradient), soft-updated with tau 0.01 after every update;
- no update during the 4,000 seed frames (2,000 agent steps at action repeat 2), then one update every 2
  agent steps; actions are uniform for the first `num_expl_steps` = 2,000 agent steps (whatever the repeat);
- replay: an n-step window lies inside one episode, never across its end.

Computed differently, with the same result:
- the random shift is an integer crop of the replicate-padded frame, taken on uint8 before the conversion to
  float; the public bilinear grid_sample samples exactly those pixel centres (tests/test_drqv2.py compares
  the two: equal up to float rounding);
- the actor loss differentiates only the actor (the public code also computes the critic's weight gradients
  there, which the next critic step discards: about 2% of a pixel update's FLOPs, 10% of a latent one's, not
  counted here since they do not run), and the critic trunk in the actor loss runs without gradient;
- Adam runs fused (the same rule in one kernel);
- the runner draws the uniform actions of the first `num_expl_steps` agent steps (the public act() does).
The replay's deviations (sized by bytes, windows also from the episode in progress) are in the README.

SEER (`freeze`, called by seer_bench.agents.seer): split "convK" stores the map after the K-th conv (the
convs above it, the trunks and the heads keep training; every conv map, float32, takes more bytes than the
uint8 pixels it replaces); "fc" freezes the convs and both trunks' Linear and LayerNorm and stores the two
Linear outputs (50 values each), as SEER does for CURL's two encoders. At T_f the whole critic is copied
into the target, as the public SEER code does for CURL, so both read the same stored latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer_bench.agents.encoders import ConvNet, rowwise
from seer_bench.agents.updates import holds_trainable, optimize, soft_update
from seer_bench.errors import ConfigError
from seer_bench.replay import LatentReplay, PixelReplay, RingReplay
from seer_bench.transfer import Transfer

ACTION_EPS = 1e-6  # the truncated normal keeps samples inside (-1 + eps, 1 - eps), as the public code


@dataclass(frozen=True)
class DrQV2Config:
    """Defaults are the public DrQ-v2 config for its "easy" tasks (cfgs/config.yaml, cfgs/task/easy.yaml)."""

    batch_size: int = 256
    lr: float = 1e-4  # Adam for encoder, actor and critic
    feature_dim: int = 50  # trunk output
    hidden_dim: int = 1024
    discount: float = 0.99
    nstep: int = 3  # walker tasks: 1 (cfgs/task/walker_*.yaml, with batch 512)
    critic_target_tau: float = 0.01
    update_every_steps: int = 2  # agent steps between updates
    seed_steps: int = 2000  # agent steps before the first update (public: 4,000 seed frames at repeat 2)
    num_expl_steps: int = 2000  # agent steps of uniform random actions
    stddev_start: float = 1.0
    stddev_end: float = 0.1
    stddev_duration: int = 100_000  # agent steps of the linear std schedule: easy 100,000, medium 500,000
    stddev_clip: float = 0.3
    shift_pad: int = 4  # random shift: replicate padding, then a crop back to the frame size
    image_size: int = 84  # rendered frame side the encoder is built for (DrQ-v2: 84, a suite's env option)

    def __post_init__(self) -> None:
        """Reject settings that would crash or silently misbehave mid-run (ValueError names the field)."""
        for name in (
            "batch_size",
            "lr",
            "feature_dim",
            "hidden_dim",
            "nstep",
            "update_every_steps",
            "image_size",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("seed_steps", "num_expl_steps", "stddev_duration", "shift_pad"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("discount", "critic_target_tau"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("stddev_start", "stddev_end", "stddev_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.seed_steps < self.nstep:
            raise ValueError(
                f"seed_steps {self.seed_steps} must be >= nstep {self.nstep}: the first update samples "
                f"complete {self.nstep}-step windows"
            )

    def stddev(self, step: int) -> float:
        """The exploration std at agent step `step` (the public `linear(start, end, duration)` schedule)."""
        mix = min(max(step / self.stddev_duration, 0.0), 1.0) if self.stddev_duration else 1.0
        return (1.0 - mix) * self.stddev_start + mix * self.stddev_end


def random_shift(
    pixels: np.ndarray | torch.Tensor, offsets: np.ndarray, pad: int
) -> np.ndarray | torch.Tensor:
    """DrQ-v2's augmentation of uint8 (N, C, S, S) frames: replicate-pad by `pad`, then crop S x S at
    top-left corner `offsets[i]` = (y, x), each in [0, 2 pad]. A tensor (a device replay's batch) is shifted
    on its device, by the same corners."""
    if isinstance(pixels, torch.Tensor):
        return _random_shift_tensor(pixels, offsets, pad)
    padded = np.pad(pixels, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    side = pixels.shape[-1]
    out = np.empty_like(pixels)
    for i, (y, x) in enumerate(offsets):
        out[i] = padded[i, :, y : y + side, x : x + side]
    return out


def _random_shift_tensor(pixels: torch.Tensor, offsets: np.ndarray, pad: int) -> torch.Tensor:
    """`random_shift` as one gather: a replicate-padded frame's row y + i is the frame's row
    clamp(y + i - pad, 0, S - 1), so no padded copy is made."""
    n, c, side, device = *pixels.shape[:3], pixels.device
    corner = torch.from_numpy(np.ascontiguousarray(offsets, np.int64)).to(device)
    span = torch.arange(side, device=device) - pad
    rows = (corner[:, 0, None] + span).clamp_(0, side - 1)[:, None, :, None]
    cols = (corner[:, 1, None] + span).clamp_(0, side - 1)[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    return pixels[batch, torch.arange(c, device=device)[None, :, None, None], rows, cols]


def orthogonal_init(module: nn.Module) -> None:
    """The public init: orthogonal weights (convs with the ReLU gain), zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        gain = nn.init.calculate_gain("relu") if isinstance(module, nn.Conv2d) else 1.0
        weight = torch.empty(module.weight.shape)  # then copied: conv weights are channels_last
        nn.init.orthogonal_(weight, gain)
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.zero_()


def trunk(inp: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, out), nn.LayerNorm(out), nn.Tanh())


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)
    )


class Actor(nn.Module):
    def __init__(self, repr_dim: int, action_dim: int, cfg: DrQV2Config) -> None:
        super().__init__()
        self.trunk = trunk(repr_dim, cfg.feature_dim)
        self.policy = mlp(cfg.feature_dim, cfg.hidden_dim, action_dim)

    def mean(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.policy(features))


class Critic(nn.Module):
    def __init__(self, repr_dim: int, action_dim: int, cfg: DrQV2Config) -> None:
        super().__init__()
        self.trunk = trunk(repr_dim, cfg.feature_dim)
        self.q1 = mlp(cfg.feature_dim + action_dim, cfg.hidden_dim, 1)
        self.q2 = mlp(cfg.feature_dim + action_dim, cfg.hidden_dim, 1)

    def q(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], dim=-1)
        return self.q1(x), self.q2(x)


def sample_action(mu: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """The public TruncatedNormal.sample: Gaussian noise (clipped at `clip`) around `mu`, clamped into
    (-1, 1) with a straight-through gradient (the clamp passes the gradient on unchanged)."""
    eps = torch.randn_like(mu) * std
    if clip is not None:
        eps = eps.clamp(-clip, clip)
    x = mu + eps
    return x - x.detach() + x.detach().clamp(-1 + ACTION_EPS, 1 - ACTION_EPS)


def normal_log_prob_and_entropy(mu: torch.Tensor, std: float, x: torch.Tensor) -> tuple[float, float]:
    """Mean summed log-density of `x` and entropy of the untruncated Normal(mu, std) (the public metrics)."""
    normal = torch.distributions.Normal(mu, torch.full_like(mu, std))
    return normal.log_prob(x).sum(-1).mean().item(), normal.entropy().sum(-1).mean().item()


class Inputs(NamedTuple):
    """What the losses read, each below its trunk: encoder outputs (pixels, conv splits) or stored trunk
    Linear outputs (split "fc"). `critic` carries the encoder's gradient in the pixel phase."""

    critic: torch.Tensor
    actor: torch.Tensor
    critic_next: torch.Tensor
    actor_next: torch.Tensor


class DrQV2:
    """The agent: encoder, actor, critic and target critic, acting, and one update per call."""

    Config = DrQV2Config

    discrete = False
    random_crops = True  # SEER's stored copies are independent random shifts
    device_replay = True  # takes batches as tensors from a device-resident replay (seer_bench.device_replay)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        cfg: DrQV2Config,
        device: torch.device,
        seed: int,
    ) -> None:
        if obs_shape[-2:] != (cfg.image_size, cfg.image_size):
            raise ConfigError(
                f"agent drqv2 expects {cfg.image_size}x{cfg.image_size} frames (its image_size), got "
                f"{obs_shape[-2]}x{obs_shape[-1]}: render them with the suite's [env_options] size, or set "
                f"image_size"
            )
        self.cfg, self.device, self.action_dim = cfg, device, action_dim
        self.random_steps, self.learn_start = cfg.num_expl_steps, cfg.seed_steps
        self.update_every = cfg.update_every_steps
        self.update_period = 1  # every update computes the same (agents.contract)
        self.sample_horizon = cfg.nstep
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])  # replay indices, shifts
        self.encoder = ConvNet(obs_shape[0], obs_shape[-1]).to(device)
        repr_dim = self.encoder.repr_dim
        self.actor = Actor(repr_dim, action_dim, cfg).to(device)
        self.critic = Critic(repr_dim, action_dim, cfg).to(device)
        self.critic_target = Critic(repr_dim, action_dim, cfg).to(device)
        for net in (self.encoder, self.actor, self.critic):
            net.apply(orthogonal_init)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        adam = partial(torch.optim.Adam, lr=cfg.lr, fused=True)
        self.encoder_opt = adam(self.encoder.parameters())
        self.actor_opt = adam(self.actor.parameters())
        self.critic_opt = adam(self.critic.parameters())
        self._critic_opts = (self.critic_opt, self.encoder_opt)  # the public order of their steps
        self._actor_trainable = list(self.actor.parameters())
        self.split: str | None = None  # SEER's freeze point once frozen (see `freeze`)
        self._buffers: dict[str, torch.Tensor] = {}  # reused batch inputs (see `_batch_input`)
        self.transfer = Transfer(device)  # sampled batches to the device (pinned, non-blocking on CUDA)

    # --- acting -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> np.ndarray:
        """Action for one uint8 (C, H, W) observation: the policy mean at evaluation, a sample with the
        scheduled std (unclipped noise) at training."""
        mu = self.actor.mean(self.actor.trunk(self.encoder.conv(self._batch_input("act", obs[None]))))
        action = mu if eval_mode else sample_action(mu, self.cfg.stddev(step), clip=None)
        return action[0].cpu().numpy()

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, step: int, rngs: list[np.random.Generator]) -> np.ndarray:
        """Evaluation actions (the policy mean) for a (B, C, H, W) batch: one batched conv pass, the Linear
        layers per row (encoders.rowwise: bitwise `act`'s actions); no randomness."""
        h = self.encoder.conv(self._batch_input("eval", obs))
        return rowwise(lambda r: self.actor.mean(self.actor.trunk(r)), h).cpu().numpy()

    def _batch_input(self, name: str, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> float (x / 255 - 0.5, the public encoder's scaling) in a channels_last buffer
        reused across calls (a batch is 65 MB: a fresh one would be mapped and page-faulted every update)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != pixels.shape:
            buf = torch.empty(pixels.shape, device=self.device).contiguous(memory_format=torch.channels_last)
            self._buffers[name] = buf
        return buf.copy_(self.transfer(name, pixels)).div_(255.0).sub_(0.5)

    # --- sampling ---------------------------------------------------------------------------------------
    def sample_windows(self, replay: RingReplay) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """`batch_size` transitions whose n-step window lies inside one episode, uniformly among those (the
        public loader never samples the last n - 1 transitions of an episode), with their n-step returns."""
        n, b = self.cfg.nstep, self.cfg.batch_size
        idx = replay.sample_indices(b, self.rng, horizon=n)
        ret = replay.n_step(idx, n, self.cfg.discount)
        for _ in range(1000):
            short = ret["end"] - idx + 1 < n
            if not short.any():
                return idx, ret
            idx[short] = replay.sample_indices(int(short.sum()), self.rng, horizon=n)
            for key, value in replay.n_step(idx[short], n, self.cfg.discount).items():
                ret[key][short] = value
        raise ValueError(f"the replay holds almost no complete {n}-step window inside an episode")

    def _pixel_inputs(self, replay: PixelReplay, idx: np.ndarray, end: np.ndarray) -> Inputs:
        """Shifted obs and n-step next obs, through the encoder (next_obs without gradient)."""
        pad = self.cfg.shift_pad
        shifts = self.rng.integers(0, 2 * pad + 1, size=(2, len(idx), 2))
        obs = self._batch_input("obs", random_shift(replay.uncropped(idx, False), shifts[0], pad))
        nxt = self._batch_input("next_obs", random_shift(replay.uncropped(end, True), shifts[1], pad))
        h = self.encoder.conv(obs)
        with torch.no_grad():
            h_next = self.encoder.conv(nxt)
        return Inputs(h, h.detach(), h_next, h_next)

    def _latent_inputs(self, replay: LatentReplay, idx: np.ndarray, end: np.ndarray) -> Inputs:
        """Stored latents (one random copy for obs, another for next obs, the same for both streams), through
        the convs above a conv split."""
        copies = self.rng.integers(0, replay.spec.copies, size=(2, len(idx)))
        obs, nxt = (
            {k: self.transfer(f"{field}.{k}", v, torch.float32) for k, v in latents.items()}
            for field, latents in (
                ("obs", replay.latents(idx, copies[0], False)),
                ("next", replay.latents(end, copies[1], True)),
            )
        )
        if self.split == "fc":
            return Inputs(obs["critic"], obs["actor"], nxt["critic"], nxt["actor"])
        h = self.encoder.upper_conv(obs["conv"], self.split)
        with torch.no_grad():
            h_next = self.encoder.upper_conv(nxt["conv"], self.split)
        return Inputs(h, h.detach(), h_next, h_next)

    # --- learning ---------------------------------------------------------------------------------------
    def update(self, replay: RingReplay, step: int) -> dict[str, float]:
        """One DrQ-v2 update at agent step `step` (the std schedule's clock), on pixels or, once SEER has
        frozen the lower layers, on stored latents."""
        idx, ret = self.sample_windows(replay)
        inputs = (self._latent_inputs if self.split else self._pixel_inputs)(replay, idx, ret["end"])
        action = self.transfer("action", replay.scalars(idx)["action"])
        reward = self.transfer("reward", ret["return"]).unsqueeze(1)
        discount = self.transfer("discount", ret["discount"]).unsqueeze(1)
        std = self.cfg.stddev(step)
        metrics = {"batch_reward": reward.mean().item(), "stddev": std}
        metrics.update(self._critic_step(inputs, action, reward, discount, std))
        metrics.update(self._actor_step(inputs, std))
        soft_update(self.critic, self.critic_target, self.cfg.critic_target_tau)
        return metrics

    def _trunk(self, net: Actor | Critic, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output: all of it on an encoding; only LayerNorm and Tanh on a stored Linear output."""
        return net.trunk[2](net.trunk[1](x)) if self.split == "fc" else net.trunk(x)

    def _critic_step(
        self, x: Inputs, action: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, std: float
    ) -> dict[str, float]:
        with torch.no_grad():
            mu = self.actor.mean(self._trunk(self.actor, x.actor_next))
            next_action = sample_action(mu, std, self.cfg.stddev_clip)
            tq1, tq2 = self.critic_target.q(self._trunk(self.critic_target, x.critic_next), next_action)
            target_q = reward + discount * torch.min(tq1, tq2)
        q1, q2 = self.critic.q(self._trunk(self.critic, x.critic), action)
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        optimize(self._critic_opts, loss)  # frozen layers get no gradient: Adam skips them
        return {
            "critic_loss": loss.item(),
            "critic_q1": q1.mean().item(),
            "critic_q2": q2.mean().item(),
            "critic_target_q": target_q.mean().item(),
        }

    def _actor_step(self, x: Inputs, std: float) -> dict[str, float]:
        """The actor loss on the encoding from before the critic step, through the critic's updated trunk and
        heads (as the public update_actor); only the actor's parameters are differentiated."""
        mu = self.actor.mean(self._trunk(self.actor, x.actor))
        action = sample_action(mu, std, self.cfg.stddev_clip)
        with torch.no_grad():
            features = self._trunk(self.critic, x.critic.detach())
        q1, q2 = self.critic.q(features, action)
        loss = -torch.min(q1, q2).mean()
        optimize((self.actor_opt,), loss, inputs=self._actor_trainable)
        log_prob, entropy = normal_log_prob_and_entropy(mu.detach(), std, action.detach())
        return {"actor_loss": loss.item(), "actor_logprob": log_prob, "actor_ent": entropy}

    # --- SEER: freezing and encoding --------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return (*self.encoder.splits(), "fc")

    def _frozen_modules(self, split: str) -> list[nn.Module]:
        if split != "fc":
            return self.encoder.lower_modules(split)
        trunks = [m for net in (self.actor, self.critic) for m in net.trunk[:2]]
        return [*self.encoder.convs, *trunks]

    def freeze(self, split: str) -> None:
        """Freeze the layers below `split` and copy the whole online critic into the target (SEER's copy at
        T_f: the target's frozen trunk then equals the online one, and both read the same stored latents).
        Frozen parameters stop requiring gradients, so Adam skips them and they stay bitwise equal."""
        for module in self._frozen_modules(split):
            module.requires_grad_(False)
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                tp.copy_(p)
        self._critic_opts = tuple(o for o in self._critic_opts if holds_trainable(o))
        self._actor_trainable = [p for p in self._actor_trainable if p.requires_grad]
        self.split = split

    def latent_streams(self, split: str) -> tuple[tuple[str, int], ...]:
        """(name, dim) of what is stored at `split`: both trunks' Linear outputs at "fc", else a conv map."""
        if split == "fc":
            return (("critic", self.cfg.feature_dim), ("actor", self.cfg.feature_dim))
        return (("conv", self.encoder.latent_dim(split)),)

    @torch.no_grad()
    def encode(
        self, pixels: np.ndarray, rng: np.random.Generator, copies: int, dtype: str
    ) -> dict[str, np.ndarray]:
        """Latents of `copies` independent random shifts of each uint8 (N, C, H, W) observation, encoded
        `batch_size` at a time (memory never holds more than one training batch of float pixels)."""
        n, pad = len(pixels), self.cfg.shift_pad
        shifts = rng.integers(0, 2 * pad + 1, size=(n * copies, 2))
        rows = np.repeat(np.arange(n), copies)
        out = {name: np.empty((n * copies, dim), dtype) for name, dim in self.latent_streams(self.split)}
        for lo in range(0, n * copies, self.cfg.batch_size):
            sl = slice(lo, lo + self.cfg.batch_size)
            x = self._batch_input("encode", random_shift(pixels[rows[sl]], shifts[sl], pad))
            if self.split == "fc":
                h = self.encoder.conv(x)
                out["critic"][sl] = self.critic.trunk[0](h).cpu().numpy()
                out["actor"][sl] = self.actor.trunk[0](h).cpu().numpy()
            else:
                out["conv"][sl] = self.encoder.lower(x, self.split).cpu().numpy()
        return {name: v.reshape(n, copies, -1) for name, v in out.items()}
