"""Data-efficient Rainbow (van Hasselt, Hessel, Aslanides 2019) with the settings of SEER's Atari scripts.

SEER's Atari code builds on Kaixhin's Rainbow; this follows it, minus prioritized replay (removed in both
SEER's baseline and SEER): the "data-efficient" two-conv network, dueling heads of factorised noisy
layers, C51 distributions on [-10, 10], 20-step returns truncated at episode ends, double-Q targets from
a target network copied every 2,000 steps, one update per agent step from step 1,600. Exploration is the
noisy layers' alone: the online network's noise is resampled before every action, and the update uses
that same noise, as Kaixhin's loop does; the target network's noise is resampled per update. Evaluation
switches the noise off (mean weights) and acts epsilon-greedily with epsilon 0.001.

Read top to bottom: config, noisy layer, network, then `Der.update`. Once SEER has frozen the convs
(`freeze`), `update` runs the same loss on stored conv outputs and `encode` computes what is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer_bench.agents.encoders import rowwise
from seer_bench.errors import ConfigError
from seer_bench.replay import LatentReplay, PixelReplay, RingReplay
from seer_bench.transfer import Transfer


@dataclass(frozen=True)
class DerConfig:
    """Defaults are SEER's Atari scripts' (Kaixhin's data-efficient Rainbow; see shared seer-reference.md)."""

    batch_size: int = 32
    learn_start: int = 1600  # agent steps before the first update; the noisy network acts from step 0
    hidden_dim: int = 256  # units of each dueling stream's hidden noisy layer
    noisy_std: float = 0.1  # initial sigma scale of the noisy layers
    atoms: int = 51  # C51 support size
    v_min: float = -10.0
    v_max: float = 10.0
    multi_step: int = 20
    discount: float = 0.99
    target_update: int = 2000  # agent steps between copies of the online network into the target
    lr: float = 1e-4
    adam_eps: float = 1.5e-4
    grad_clip: float = 10.0  # max global gradient norm
    eval_epsilon: float = 0.001  # epsilon-greedy evaluation with the noise off (Kaixhin's test)

    def __post_init__(self) -> None:
        """Reject settings that would crash or silently misbehave mid-run (ValueError names the field)."""
        for name in (
            "batch_size",
            "hidden_dim",
            "multi_step",
            "target_update",
            "lr",
            "adam_eps",
            "grad_clip",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.noisy_std < 0:
            raise ValueError(f"noisy_std must be >= 0, got {self.noisy_std}")
        if self.learn_start < self.multi_step:
            raise ValueError(
                f"learn_start {self.learn_start} must be >= multi_step {self.multi_step}: the first update "
                f"samples complete {self.multi_step}-step windows"
            )
        if self.atoms < 2 or not self.v_min < self.v_max:
            raise ValueError(
                f"need atoms >= 2 and v_min < v_max, got {self.atoms}, [{self.v_min}, {self.v_max}]"
            )
        for name in ("discount", "eval_epsilon"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


class NoisyLinear(nn.Module):
    """Factorised Gaussian noisy linear layer (Fortunato et al. 2018), initialised as Kaixhin's Rainbow.

    Training mode uses weight mu + sigma * epsilon; eval mode the mean weights alone. `reset_noise`
    draws new epsilon from `generator`, so a seeded run draws the same noise.
    """

    def __init__(self, inp: int, out: int, std_init: float) -> None:
        super().__init__()
        self.in_features, self.out_features = inp, out
        bound = 1 / math.sqrt(inp)
        self.weight_mu = nn.Parameter(torch.empty(out, inp).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out, inp), std_init / math.sqrt(inp)))
        self.bias_mu = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out,), std_init / math.sqrt(out)))
        self.register_buffer("weight_epsilon", torch.zeros(out, inp))
        self.register_buffer("bias_epsilon", torch.zeros(out))

    @staticmethod
    def _scaled(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        x = torch.randn(n, generator=generator, device=device)
        return x.sign() * x.abs().sqrt()

    def reset_noise(self, generator: torch.Generator) -> None:
        device = self.weight_mu.device
        eps_in = self._scaled(self.in_features, generator, device)
        eps_out = self._scaled(self.out_features, generator, device)
        self.weight_epsilon.copy_(torch.outer(eps_out, eps_in))
        self.bias_epsilon.copy_(eps_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return F.linear(
                x,
                self.weight_mu + self.weight_sigma * self.weight_epsilon,
                self.bias_mu + self.bias_sigma * self.bias_epsilon,
            )
        return F.linear(x, self.weight_mu, self.bias_mu)


SPLITS = ("conv1", "conv2")  # SEER freezes below one of these; "conv2" (both convs) is the paper's


class RainbowNet(nn.Module):
    """The data-efficient network: conv 32 5x5/5, conv 64 5x5/5 (84 -> 16 -> 3: 576 features), then dueling
    noisy streams of `hidden_dim` whose outputs combine into a distribution over `atoms` per action."""

    def __init__(self, channels: int, size: int, actions: int, cfg: DerConfig) -> None:
        super().__init__()
        self.actions, self.atoms = actions, cfg.atoms
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 5, stride=5), nn.ReLU(), nn.Conv2d(32, 64, 5, stride=5), nn.ReLU()
        )
        with torch.no_grad():
            shapes = [tuple(t.shape[1:]) for t in self._layer_outputs(torch.zeros(1, channels, size, size))]
        self.map_shapes = dict(zip(SPLITS, shapes))  # (C, H, W) after each conv
        feat = math.prod(shapes[-1])
        self.fc_h_v = NoisyLinear(feat, cfg.hidden_dim, cfg.noisy_std)
        self.fc_z_v = NoisyLinear(cfg.hidden_dim, cfg.atoms, cfg.noisy_std)
        self.fc_h_a = NoisyLinear(feat, cfg.hidden_dim, cfg.noisy_std)
        self.fc_z_a = NoisyLinear(cfg.hidden_dim, actions * cfg.atoms, cfg.noisy_std)

    def _layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(0, len(self.convs), 2):
            x = self.convs[i + 1](self.convs[i](x))
            outs.append(x)
        return outs

    def noisy_layers(self) -> tuple[NoisyLinear, ...]:
        return self.fc_h_v, self.fc_z_v, self.fc_h_a, self.fc_z_a

    def reset_noise(self, generator: torch.Generator) -> None:
        for layer in self.noisy_layers():
            layer.reset_noise(generator)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, 576) features."""
        return self.convs(x).flatten(1)

    def head(self, h: torch.Tensor, log: bool = False) -> torch.Tensor:
        """(B, 576) features -> (B, actions, atoms) probabilities (log-probabilities with `log`)."""
        v = self.fc_z_v(F.relu(self.fc_h_v(h))).view(-1, 1, self.atoms)
        a = self.fc_z_a(F.relu(self.fc_h_a(h))).view(-1, self.actions, self.atoms)
        q = v + a - a.mean(1, keepdim=True)
        return F.log_softmax(q, dim=2) if log else F.softmax(q, dim=2)

    def forward(self, x: torch.Tensor, log: bool = False) -> torch.Tensor:
        return self.head(self.conv(x), log)

    # --- SEER's split: the convs below `split` are frozen and their output stored ----------------------
    def lower_modules(self, split: str) -> list[nn.Module]:
        return list(self.convs[: 2 * (SPLITS.index(split) + 1)])

    def upper_convs(self, split: str) -> nn.Sequential:
        return self.convs[2 * (SPLITS.index(split) + 1) :]

    def lower(self, x: torch.Tensor, split: str) -> torch.Tensor:
        """Pixels -> the flattened map at `split` (what SEER stores)."""
        return nn.Sequential(*self.lower_modules(split))(x).flatten(1)

    def upper_conv(self, z: torch.Tensor, split: str) -> torch.Tensor:
        """A stored map at `split` -> the 576 features, through the convs above it."""
        return self.upper_convs(split)(z.view(-1, *self.map_shapes[split])).flatten(1)


class Der:
    """The agent: online and target networks, acting, and one update per call."""

    Config = DerConfig

    discrete = True
    random_crops = False  # no augmentation: SEER stores one latent per observation
    device_replay = True  # takes batches as tensors from a device-resident replay (seer_bench.device_replay)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        cfg: DerConfig,
        device: torch.device,
        seed: int,
    ) -> None:
        if obs_shape[-1] != obs_shape[-2]:
            raise ConfigError(f"der expects square frames, got {obs_shape}")
        self.cfg = cfg
        self.device = device
        self.transfer = Transfer(device)  # batches to the device (pinned, non-blocking on CUDA)
        self.action_dim = action_dim
        self.obs_shape = obs_shape
        # Child streams of the seed: 0 the runner's random actions, 1 replay sampling, 2 SEER's crops, 3 this
        # agent's evaluation epsilon (evaluating never shifts the training stream).
        streams = np.random.SeedSequence(seed).spawn(4)
        self.rng = np.random.default_rng(streams[1])
        self.eval_rng = np.random.default_rng(streams[3])
        self.noise = torch.Generator(device=device).manual_seed(seed)
        self.online = RainbowNet(obs_shape[0], obs_shape[-1], action_dim, cfg).to(device)
        self.target = RainbowNet(obs_shape[0], obs_shape[-1], action_dim, cfg).to(device)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)  # both stay in training mode (noisy), as in Kaixhin's code
        self.support = torch.linspace(cfg.v_min, cfg.v_max, cfg.atoms, device=device)
        self.opt = torch.optim.Adam(self.online.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        self.random_steps = 0  # no uniformly random phase: the noisy network explores from the start
        self.learn_start = cfg.learn_start
        self.update_every = 1
        self.update_period = 1  # every update computes the same (agents.contract)
        self.sample_horizon = cfg.multi_step  # a sample needs this many consecutive transitions
        self.split: str | None = None

    # --- acting -----------------------------------------------------------------------------------------
    def _to_input(self, pixels: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
        """uint8 pixels (host, or a device replay's) as floats in [0, 1] on the device; `name` keys the
        pinned staging of the transfer (seer_bench.transfer)."""
        return self.transfer(name, pixels, torch.float32).div_(255.0)

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, eval_mode: bool) -> int:
        """Greedy action for one uint8 (C, H, W) stack: with fresh noise at training (the exploration),
        with the noise off and epsilon-greedy at evaluation (epsilon drawn from this agent's own stream)."""
        if eval_mode:
            return int(self.act_batch(obs[None], step, [self.eval_rng])[0])
        self.online.reset_noise(self.noise)
        return int(self._q(self.online(self._to_input(obs[None], "act"))).argmax(1).item())

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, step: int, rngs: list[np.random.Generator]) -> np.ndarray:
        """Evaluation actions for a (B, C, H, W) batch: one conv pass with the noise off (the Linear
        layers per row: encoders.rowwise), then epsilon-greedy per row, row i's epsilon drawn from `rngs[i]`
        (its episode's own stream, so an episode's actions do not depend on which others share its batch)."""
        self.online.eval()
        h = self.online.conv(self._to_input(obs, "eval"))
        greedy = rowwise(lambda r: self._q(self.online.head(r)), h).argmax(1).cpu().numpy()
        self.online.train()
        eps = self.cfg.eval_epsilon
        return np.array(
            [int(r.integers(self.action_dim)) if r.random() < eps else int(g) for r, g in zip(rngs, greedy)]
        )

    def _q(self, probs: torch.Tensor) -> torch.Tensor:
        return (probs * self.support).sum(2)

    # --- learning ---------------------------------------------------------------------------------------
    def update(self, replay: RingReplay, step: int) -> dict[str, float]:
        """One update at agent step `step`, then the target copy every
        `target_update` steps (Kaixhin's order)."""
        cfg = self.cfg
        idx = replay.sample_indices(cfg.batch_size, self.rng, horizon=cfg.multi_step)
        ret = replay.n_step(idx, cfg.multi_step, cfg.discount)
        actions = self.transfer("action", replay.scalars(idx)["action"], torch.long)
        if self.split is None:
            obs, nxt = self._pixels(replay, idx, False), self._pixels(replay, ret["end"], True)
            log_p = self.online(obs, log=True)
            with torch.no_grad():
                target = self._target_distribution(ret, self.online(nxt), lambda: self.target(nxt))
        else:  # SEER after T_f: stored maps at the split, only the layers above it run
            obs, nxt = self._latents(replay, idx, False), self._latents(replay, ret["end"], True)
            log_p = self._upper(self.online, obs, log=True)
            with torch.no_grad():
                target = self._target_distribution(
                    ret, self._upper(self.online, nxt), lambda: self._upper(self.target, nxt)
                )
        log_p = log_p[torch.arange(cfg.batch_size, device=self.device), actions]
        loss = -(target * log_p).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self._trainable(), cfg.grad_clip)
        self.opt.step()
        if step % cfg.target_update == 0:
            self.target.load_state_dict(self.online.state_dict())
        return {"loss": loss.item()}

    def _pixels(self, replay: PixelReplay, idx: np.ndarray, next_obs: bool) -> torch.Tensor:
        # no augmentation: whole frames
        return self._to_input(replay.uncropped(idx, next_obs), "next_obs" if next_obs else "obs")

    def _latents(self, replay: LatentReplay, idx: np.ndarray, next_obs: bool) -> torch.Tensor:
        z = replay.latents(idx, np.zeros(len(idx), np.int64), next_obs)["conv"]
        return self.transfer("next" if next_obs else "obs", z, torch.float32)

    def _upper(self, net: RainbowNet, z: torch.Tensor, log: bool = False) -> torch.Tensor:
        h = net.upper_conv(z, self.split) if len(net.upper_convs(self.split)) else z
        return net.head(h, log)

    def _target_distribution(
        self, ret: dict[str, np.ndarray], online_next: torch.Tensor, target_next
    ) -> torch.Tensor:
        """C51's projected n-step target (B, atoms): double-Q action from the online network, its
        distribution from the target network (fresh noise), shifted by the return
        and projected onto the support."""
        cfg, b = self.cfg, self.cfg.batch_size
        best = (online_next * self.support).sum(2).argmax(1)
        self.target.reset_noise(self.noise)
        p_next = target_next()[torch.arange(b, device=self.device), best]
        reward = self.transfer("reward", ret["return"]).unsqueeze(1)
        discount = self.transfer("discount", ret["discount"]).unsqueeze(1)
        tz = (reward + discount * self.support).clamp(cfg.v_min, cfg.v_max)
        pos = (tz - cfg.v_min) / ((cfg.v_max - cfg.v_min) / (cfg.atoms - 1))
        lo, hi = pos.floor().long(), pos.ceil().long()
        lo[(hi > 0) & (lo == hi)] -= 1  # an exact hit on an atom keeps all its mass there
        hi[(lo < cfg.atoms - 1) & (lo == hi)] += 1
        m = torch.zeros(b, cfg.atoms, device=self.device)
        m.scatter_add_(1, lo, p_next * (hi.float() - pos))
        m.scatter_add_(1, hi, p_next * (pos - lo.float()))
        return m

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.online.parameters() if p.requires_grad]

    # --- SEER: freezing and encoding --------------------------------------------------------------------
    def splits(self) -> tuple[str, ...]:
        return SPLITS

    def freeze(self, split: str) -> None:
        """Freeze the convs below `split` in both networks; the target's become the online ones. The full
        target network is still copied every `target_update` steps (the frozen part is equal anyway)."""
        for online, target in zip(self.online.lower_modules(split), self.target.lower_modules(split)):
            online.requires_grad_(False)
            with torch.no_grad():
                for p, tp in zip(online.parameters(), target.parameters()):
                    tp.copy_(p)
        self.split = split

    def latent_streams(self, split: str) -> tuple[tuple[str, int], ...]:
        return (("conv", math.prod(self.online.map_shapes[split])),)

    @torch.no_grad()
    def encode(
        self, pixels: np.ndarray, rng: np.random.Generator, copies: int, dtype: str
    ) -> dict[str, np.ndarray]:
        """The frozen convs' output for each uint8 (N, C, H, W) observation, `batch_size` at a time. No
        augmentation, so `copies` must be 1 (checked before a run); `rng` is unused."""
        out = np.empty((len(pixels), copies, self.latent_streams(self.split)[0][1]), dtype)
        for lo in range(0, len(pixels), self.cfg.batch_size):
            z = self.online.lower(self._to_input(pixels[lo : lo + self.cfg.batch_size], "encode"), self.split)
            out[lo : lo + len(z)] = z.cpu().numpy()[:, None]
        return {"conv": out}

    def modules(self) -> dict[str, nn.Module]:
        return {"online": self.online, "target": self.target}
