"""Pixel replay buffers sized from a byte budget.

Two layouts hold the same transitions and return identical batches for the same indices and crops:

- `paper`: obs and next_obs stored separately as uint8 stacks, as in CURL and SEER's public code
  (2 x 9 x 100 x 100 = 180,000 bytes of pixels per transition).
- `compact`: each rendered frame stored once; a transition keeps the absolute index of its newest frame
  and its stacks are rebuilt at sampling. An episode costs `frame_stack` frames for its first
  observation plus one frame per step, so about 6x less memory than `paper` for DMC
  (30,400 vs 180,032 bytes per transition on a 250-step episode).

Capacity is always the largest transition count whose arrays fit in the budget, computed from the arrays'
shapes and dtypes. Arrays come from `np.empty`, which the OS maps lazily: `resident_bytes` counts only the
slots written so far (the pages actually touched), `allocated_bytes` the full reservation.

Both layouts are FIFO rings over absolute transition indices [tail, head); sampling draws uniformly from
the live ones. Crops are taken while gathering, so a batch never materialises the full 100x100 stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from seer_bench.errors import ConfigError

LAYOUTS = ("paper", "compact")


@dataclass(frozen=True)
class TransitionSpec:
    """What one transition holds; `episode_steps` (agent steps) sizes the compact layout's frame ring."""

    obs_shape: tuple[int, int, int]  # (3 * frame_stack, H, W)
    action_dim: int
    frame_stack: int = 3
    episode_steps: int = 1000

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        c, h, w = self.obs_shape
        return (c // self.frame_stack, h, w)


def _nbytes(rows: int, row_shape: tuple[int, ...], dtype: type) -> int:
    return rows * math.prod(row_shape) * np.dtype(dtype).itemsize


def _scalar_fields(spec: TransitionSpec) -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-transition fields shared by both layouts, with CURL's dtypes."""
    return {"action": ((spec.action_dim,), np.float32), "reward": ((), np.float32), "not_done": ((), np.float32)}


class PixelReplay:
    """Common FIFO bookkeeping and scalar fields; subclasses store the pixels."""

    layout: str

    def __init__(self, spec: TransitionSpec, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.spec = spec
        self.capacity = capacity
        self.head = 0  # absolute index of the next transition to write
        self.tail = 0  # absolute index of the oldest live transition
        self._scalars = {k: np.empty((capacity, *shape), dtype) for k, (shape, dtype) in _scalar_fields(spec).items()}

    # --- sizing -----------------------------------------------------------------------------------------
    @classmethod
    def total_bytes(cls, spec: TransitionSpec, capacity: int) -> int:
        """Bytes of every array this layout allocates for `capacity` transitions."""
        scalars = sum(_nbytes(capacity, shape, dtype) for shape, dtype in _scalar_fields(spec).values())
        return scalars + cls._pixel_bytes(spec, capacity)

    @classmethod
    def _pixel_bytes(cls, spec: TransitionSpec, capacity: int) -> int:
        raise NotImplementedError

    @classmethod
    def capacity_for(cls, spec: TransitionSpec, budget_bytes: int) -> int:
        """Largest capacity whose arrays fit in `budget_bytes` (total_bytes is increasing in capacity)."""
        lo, hi = 0, max(1, budget_bytes)  # every transition costs at least one byte
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cls.total_bytes(spec, mid) <= budget_bytes:
                lo = mid
            else:
                hi = mid - 1
        return lo

    @property
    def allocated_bytes(self) -> int:
        return self.total_bytes(self.spec, self.capacity)

    @property
    def bytes_per_transition(self) -> float:
        return self.allocated_bytes / self.capacity

    @property
    def resident_bytes(self) -> int:
        """Bytes of the slots written so far: what the lazily mapped arrays really occupy."""
        written = min(self.head, self.capacity)
        scalars = sum(_nbytes(written, shape, dtype) for shape, dtype in _scalar_fields(self.spec).values())
        return scalars + self._pixel_resident_bytes()

    def _pixel_resident_bytes(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.head - self.tail

    # --- writing ----------------------------------------------------------------------------------------
    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminal: bool, last: bool) -> None:
        """Store one transition. `last` marks the end of an episode (terminal or truncated)."""
        if len(self) == self.capacity:
            self.tail += 1
        slot = self.head % self.capacity
        self._store_pixels(slot, obs, next_obs, last)
        self._scalars["action"][slot] = action
        self._scalars["reward"][slot] = reward
        self._scalars["not_done"][slot] = 0.0 if terminal else 1.0
        self.head += 1

    def _store_pixels(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        raise NotImplementedError

    # --- reading ----------------------------------------------------------------------------------------
    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Absolute indices of `batch_size` live transitions, uniformly with replacement (as CURL)."""
        return rng.integers(self.tail, self.head, size=batch_size)

    def scalars(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        slots = idx % self.capacity
        return {k: v[slots] for k, v in self._scalars.items()}

    def obs(self, idx: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
        """uint8 (B, C, size, size) crops of the observations at `idx`, top-left corners `offsets` (B, 2)."""
        return self._gather(idx, offsets, size, next_obs=False)

    def next_obs(self, idx: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
        return self._gather(idx, offsets, size, next_obs=True)

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        raise NotImplementedError


class PaperReplay(PixelReplay):
    """obs and next_obs stored separately, as the public CURL/SEER code does."""

    layout = "paper"

    def __init__(self, spec: TransitionSpec, capacity: int) -> None:
        super().__init__(spec, capacity)
        self._obs = np.empty((capacity, *spec.obs_shape), np.uint8)
        self._next_obs = np.empty((capacity, *spec.obs_shape), np.uint8)

    @classmethod
    def _pixel_bytes(cls, spec: TransitionSpec, capacity: int) -> int:
        return 2 * _nbytes(capacity, spec.obs_shape, np.uint8)

    def _pixel_resident_bytes(self) -> int:
        return self._pixel_bytes(self.spec, min(self.head, self.capacity))

    def _store_pixels(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        self._obs[slot] = obs
        self._next_obs[slot] = next_obs

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        src = self._next_obs if next_obs else self._obs
        out = np.empty((len(idx), self.spec.obs_shape[0], size, size), np.uint8)
        for i, (slot, (y, x)) in enumerate(zip(idx % self.capacity, offsets)):
            out[i] = src[slot, :, y:y + size, x:x + size]
        return out


class CompactReplay(PixelReplay):
    """Each frame stored once in a ring of frames; transitions point at their newest frame.

    Transition t with newest frame d (absolute frame index) has obs = frames d-k..d-1 and
    next_obs = frames d-k+1..d, with k = frame_stack. The first transition of an episode writes all k
    frames of its observation, so no frame of another episode is ever stacked in.

    The frame ring is sized for episodes of `spec.episode_steps`; shorter episodes use more frames per
    transition, and then the oldest transitions are evicted early, before their frames are overwritten.
    """

    layout = "compact"

    def __init__(self, spec: TransitionSpec, capacity: int) -> None:
        super().__init__(spec, capacity)
        self.frame_capacity = self._frame_capacity(spec, capacity)
        self._frames = np.empty((self.frame_capacity, *spec.frame_shape), np.uint8)
        self._newest = np.empty(capacity, np.int64)  # absolute frame index of each transition's next frame
        self._frame_head = 0  # absolute index of the next frame to write
        self._episode_open = False

    @staticmethod
    def _frame_capacity(spec: TransitionSpec, capacity: int) -> int:
        k = spec.frame_stack
        episodes = -(-capacity // spec.episode_steps) + 1  # a partial episode at each end of the ring
        return capacity + episodes * k

    @classmethod
    def _pixel_bytes(cls, spec: TransitionSpec, capacity: int) -> int:
        return _nbytes(cls._frame_capacity(spec, capacity), spec.frame_shape, np.uint8) + _nbytes(capacity, (), np.int64)

    def _pixel_resident_bytes(self) -> int:
        frames = _nbytes(min(self._frame_head, self.frame_capacity), self.spec.frame_shape, np.uint8)
        return frames + _nbytes(min(self.head, self.capacity), (), np.int64)

    def _write_frame(self, frame: np.ndarray) -> None:
        f = self._frame_head
        k = self.spec.frame_stack
        # Evict transitions whose oldest frame (newest - k) this write would overwrite.
        while len(self) and self._newest[self.tail % self.capacity] - k <= f - self.frame_capacity:
            self.tail += 1
        self._frames[f % self.frame_capacity] = frame
        self._frame_head += 1

    def _store_pixels(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        c = self.spec.frame_shape[0]
        if not self._episode_open:
            for j in range(self.spec.frame_stack):
                self._write_frame(obs[j * c:(j + 1) * c])
        self._write_frame(next_obs[-c:])
        self._newest[slot] = self._frame_head - 1
        self._episode_open = not last

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        k = self.spec.frame_stack
        c = self.spec.frame_shape[0]
        first = self._newest[idx % self.capacity] - (k - 1 if next_obs else k)
        out = np.empty((len(idx), k * c, size, size), np.uint8)
        for i, (f0, (y, x)) in enumerate(zip(first, offsets)):
            for j in range(k):
                out[i, j * c:(j + 1) * c] = self._frames[(f0 + j) % self.frame_capacity, :, y:y + size, x:x + size]
        return out


_LAYOUT_CLASSES: dict[str, type[PixelReplay]] = {"paper": PaperReplay, "compact": CompactReplay}


def replay_class(layout: str) -> type[PixelReplay]:
    if layout not in _LAYOUT_CLASSES:
        raise ConfigError(f"unknown replay layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return _LAYOUT_CLASSES[layout]


def make_replay(layout: str, spec: TransitionSpec, budget_bytes: int, batch_size: int) -> PixelReplay:
    """A replay of `layout` holding as many transitions as `budget_bytes` allows.

    Fails before any training when the budget cannot hold one batch. The capacity is not capped at the run
    length: the arrays are mapped lazily, so unused capacity costs address space, not memory.
    """
    cls = replay_class(layout)
    capacity = cls.capacity_for(spec, budget_bytes)
    if capacity < batch_size:
        need = cls.total_bytes(spec, batch_size)
        raise ConfigError(
            f"replay budget {budget_bytes / 1e9:g} GB ({budget_bytes} bytes) holds {capacity} transitions in the "
            f"{layout!r} layout, fewer than one batch of {batch_size}; it needs at least {need} bytes "
            f"({need / 1e9:.4g} GB)")
    return cls(spec, capacity)

