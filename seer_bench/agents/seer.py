"""SEER (Chen et al., NeurIPS 2021) as one mechanism for any agent that can freeze its lower layers.

At T_f (`freeze_at`, agent steps) `Seer.freeze`:
1. asks the agent to freeze its encoder below `split` (the agent also sets its target's frozen layers
   equal to the online ones and stops any loss that only trains them);
2. builds a `LatentReplay` sized from the same byte budget and the real bytes of one latent transition,
   in a layout that follows the pixel replay's (`latent_replay_class`: each state's latent once after a
   compact pixel replay when observations are not randomly cropped, as the public Atari code; obs and
   next_obs latents per transition otherwise, as the public DMC code);
3. converts the pixel replay into it once (oldest first, one batch at a time, releasing pixels as it goes)
   and hands it back: from then on the loop adds pixels as before and the replay encodes them on add.

An agent takes part by providing `splits()`, `freeze(split)`, `latent_streams()` and
`encode(pixels, rng, copies, dtype)`, and by updating from a `LatentReplay` once frozen. An agent without
augmentation (`random_crops` False) encodes each observation one way only, so it takes `num_copies` 1.

The latent replay's capacity is a setting (`capacity`), since the paper runs two experiments:
- "budget": every byte of the budget, from the real bytes of one latent transition (the constrained-memory
  experiments, and what the public DMC scripts always do: they raise the capacity at T_f). The capacity is
  not capped at the run's length: it is what the budget buys (the quantity SEER's claim is about). Its
  arrays are: they hold no more transitions than the run has steps (`allocated_capacity`; the public code
  caps its capacity there), so a budget far above what a run can fill allocates only what it can write;
- "pixel": the pixel replay's capacity (factor 1), as the public Atari scripts run: they do not pass
  `--increase-buffer`, so SEER there saves compute and memory, not capacity;
- "public": the public DMC code's formula (`public_capacity`: capped at the run length, a pixel transition
  priced at one RGB frame), never more than the budget holds, to reproduce the public protocol exactly.
The public formula's figure is reported beside the one used, whichever it is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from seer_bench.replay import (
    LATENT_DTYPES,
    Encoder,
    LatentReplay,
    LatentSpec,
    PixelReplay,
    TransitionSpec,
    latent_replay_class,
    replay_class,
)

if TYPE_CHECKING:
    import torch

# SeerConfig.capacity: how the latent replay is sized (module docstring)
CAPACITIES = ("budget", "pixel", "public")


@dataclass(frozen=True)
class SeerConfig:
    """SEER's settings; the defaults are the paper's and the public DMC scripts'."""

    freeze_at: int  # T_f in agent steps: the update at this step is the first on latents
    num_copies: int = 4  # random crops stored per observation (public scripts: 4)
    split: str = "fc"  # freeze point, a layer boundary of the agent's encoder ("fc": after the Linear layer)
    latent_dtype: str = "float32"  # "float16" halves latent bytes; its effect on return must be measured
    capacity: str = "budget"  # latent replay size after T_f: "budget", "pixel" or "public" (module docstring)

    def __post_init__(self) -> None:
        if self.freeze_at < 1:
            raise ValueError(f"freeze_at must be a positive number of agent steps, got {self.freeze_at}")
        if self.num_copies < 1:
            raise ValueError(f"num_copies must be >= 1, got {self.num_copies}")
        if self.latent_dtype not in LATENT_DTYPES:
            raise ValueError(
                f"latent_dtype must be one of {', '.join(LATENT_DTYPES)}, got {self.latent_dtype!r}"
            )
        if self.capacity not in CAPACITIES:
            raise ValueError(f"capacity must be one of {', '.join(CAPACITIES)}, got {self.capacity!r}")


class Freezable(Protocol):
    """What an agent provides to be used with SEER."""

    action_dim: int
    random_crops: bool  # `encode` draws random crops, so `copies` > 1 stores different latents

    def splits(self) -> tuple[str, ...]: ...
    def freeze(self, split: str) -> None: ...
    def latent_streams(self, split: str) -> tuple[tuple[str, int], ...]: ...
    def encode(
        self, pixels: np.ndarray, rng: np.random.Generator, copies: int, dtype: str
    ) -> dict[str, np.ndarray]: ...


def public_capacity(
    pixel_capacity: int, frame_pixels: int, latent_dim: int, num_copies: int, streams: int, total_steps: int
) -> int:
    """The public SEER code's capacity after T_f: min(total steps, floor(C * p / (l * 4 * streams * copies))).

    C is the pixel capacity, p the pixels of one frame, l the latent size, 4 bytes per float32, one latent
    buffer per stream. DMC: p = 3 x 100 x 100 (one RGB frame), 2 streams (critic and actor), 4 copies; it
    prices a pixel transition at p bytes though the pixel buffer holds obs and next_obs stacks (6 frames).
    Atari: p = 84 x 84, one stream, one copy: the factor 84*84 / (576*4) = 3.0625, which matches a memory
    that stores each frame once. The harness reports it for comparison and sizes its own buffer from
    real bytes.
    """
    return min(total_steps, pixel_capacity * frame_pixels // (latent_dim * 4 * streams * num_copies))


class Seer:
    """Applies SEER to one agent in one run: sizes, converts and hands back the latent replay."""

    def __init__(
        self,
        cfg: SeerConfig,
        budget_bytes: int,
        seed: int,
        chunk: int,
        layout: str,
        transitions: TransitionSpec,
        total_steps: int,
        observe: Callable[[Encoder], Encoder] | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device  # where the latent replay keeps its latents (None: host memory)
        # wraps every encoding call (conversion and new transitions): how a harness watches SEER's compute
        # without SEER knowing about it (the runner's FLOP ledger)
        self.observe = observe or (lambda encode: encode)
        self.budget_bytes = budget_bytes
        self.total_steps = total_steps  # agent steps of the run (the public formula caps at it)
        self.chunk = chunk  # transitions converted at a time (the agent's batch size: one batch of memory)
        self.layout = layout  # the pixel replay's layout, which with the agent decides the latent one
        self.transitions = transitions
        # Crops for stored latents: a stream of its own, so an agent's stream is identical to its
        # non-SEER twin up to T_f.
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])

    def replay_class(self, agent: Freezable) -> type[LatentReplay]:
        return latent_replay_class(self.layout, agent.random_crops)

    def latent_spec(self, agent: Freezable) -> LatentSpec:
        """What one latent transition will hold: known before T_f, so sizes can be reported at the start."""
        t = self.transitions
        return LatentSpec(
            agent.latent_streams(self.cfg.split),
            self.cfg.num_copies,
            t.action_dim,
            self.cfg.latent_dtype,
            t.discrete,
            t.episode_steps,
        )

    def capacity(self, agent: Freezable) -> int:
        """The latent replay's capacity under `cfg.capacity`, never more than the budget holds."""
        budget = self.budget_capacity(agent)
        if self.cfg.capacity == "pixel":
            return min(budget, self.pixel_capacity)
        if self.cfg.capacity == "public":
            return min(budget, self.public_capacity(agent))
        return budget

    def budget_capacity(self, agent: Freezable) -> int:
        """Latent transitions the budget holds, from the real bytes of one (all copies, streams, scalars)."""
        return self.replay_class(agent).capacity_for(self.latent_spec(agent), self.budget_bytes)

    @property
    def pixel_capacity(self) -> int:
        """Transitions the pixel replay of this budget and layout holds before T_f."""
        return replay_class(self.layout).capacity_for(self.transitions, self.budget_bytes)

    def public_capacity(self, agent: Freezable) -> int:
        """The public code's formula for this run (see `public_capacity`)."""
        streams = self.latent_spec(agent).streams
        return public_capacity(
            self.pixel_capacity,
            math.prod(self.transitions.frame_shape),
            streams[0][1],
            self.cfg.num_copies,
            len(streams),
            self.total_steps,
        )

    def allocated_capacity(self, agent: Freezable) -> int:
        """Latent transitions the replay's arrays hold: its capacity, or the run's steps if fewer (every
        transition a run writes, converted or added, is one of its steps)."""
        return self.replay_class(agent).slots_for(self.capacity(agent), self.total_steps)

    def allocated_bytes(self, agent: Freezable) -> int:
        """Bytes of the latent replay's arrays as allocated (for `allocated_capacity`)."""
        cls = self.replay_class(agent)
        return cls.total_bytes(self.latent_spec(agent), self.capacity(agent), self.total_steps)

    def bytes_per_transition(self, agent: Freezable) -> float:
        capacity = self.capacity(agent)
        return self.replay_class(agent).total_bytes(self.latent_spec(agent), capacity) / max(capacity, 1)

    def latent_replay(self, agent: Freezable) -> LatentReplay:
        """An empty latent replay for the frozen `agent`, encoding with SEER's own crop stream (a resumed
        run rebuilds its replay with this, then loads the checkpoint's contents)."""
        cfg = self.cfg

        def encode(obs: np.ndarray) -> dict[str, np.ndarray]:
            return agent.encode(obs, self.rng, cfg.num_copies, cfg.latent_dtype)

        from seer_bench.device_replay import allocate  # it imports seer_bench.replay (and torch)

        args = (self.latent_spec(agent), self.capacity(agent), self.observe(encode), self.total_steps)
        return allocate(self.replay_class(agent), *args, device=self.device)

    def freeze(
        self, agent: Freezable, pixels: PixelReplay, step: int, on_chunk: Callable[[int], None] | None = None
    ) -> tuple[LatentReplay, dict[str, Any]]:
        """Freeze `agent`, convert `pixels`, and return the latent replay and the event to record.

        `on_chunk(bytes)` sees the replay bytes both buffers hold after each converted chunk; the event's
        `bytes_peak` is the most they held (before the conversion or after a chunk: a chunk's pixels go
        before its latents are written): what rows taken only at evaluations would miss."""
        start = time.perf_counter()
        bytes_before, live_before = pixels.resident_bytes, len(pixels)
        held = [bytes_before]

        def chunk_done(nbytes: int) -> None:
            held.append(nbytes)
            if on_chunk is not None:
                on_chunk(nbytes)

        agent.freeze(self.cfg.split)
        cfg, latent = self.cfg, self.latent_replay(agent)
        converted = latent.fill_from(pixels, self.chunk, chunk_done)
        return latent, {
            "step": step,
            "split": cfg.split,
            "capacity_policy": cfg.capacity,
            "transitions_converted": converted,
            "observations_encoded": latent.encoded,
            "layout": latent.layout,
            "transitions_dropped": live_before - len(latent),
            "seconds": time.perf_counter() - start,
            "bytes_before": bytes_before,
            "bytes_after": latent.resident_bytes + pixels.resident_bytes,
            "bytes_peak": max(held),
            "capacity_before": pixels.capacity,
            "capacity_after": latent.capacity,
            "allocated_capacity_before": pixels.slots,
            "allocated_capacity_after": latent.slots,
            # below 1 when the latents are larger than the pixels they replace (a conv split of DrQ-v2)
            "capacity_ratio": latent.capacity / pixels.capacity,
            "capacity_public_formula": self.public_capacity(agent),
            "bytes_per_transition_before": pixels.bytes_per_transition,
            "bytes_per_transition_after": latent.bytes_per_transition,
        }
