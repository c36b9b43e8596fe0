"""Pixel replay buffers sized from a byte budget.

Two layouts hold the same transitions and return identical batches for the same indices and crops:

- `paper`: obs and next_obs stored separately as uint8 stacks, as in CURL and SEER's public code
  (2 x 9 x 100 x 100 = 180,000 bytes of pixels per transition).
- `compact`: each rendered frame stored once; a transition keeps the absolute index of its newest frame
  and its stacks are rebuilt at sampling. An episode costs `frame_stack` frames for its first
  observation plus one frame per step, so about 6x less memory than `paper` for DMC
  (30,400 vs 180,032 bytes per transition on a 250-step episode).

Capacity is always the largest transition count whose arrays fit in the budget, computed from the arrays'
shapes and dtypes: the figure records and capacity claims are about. The arrays hold `slots` =
min(capacity, `max_transitions`) transitions, since a run never writes more than its length (the public
SEER code caps its capacity at the run's length too): a budget far above what a run can fill (`--budget-gb
10000`) then allocates what the run can use, not terabytes of address space the OS refuses to map. Every
ring index is taken modulo `slots`. Arrays are mapped lazily: `resident_bytes` counts only the slots written
so far (the pages actually touched), `allocated_bytes` the arrays as allocated (for `slots`).

Both layouts are FIFO rings over absolute transition indices [tail, head); sampling draws uniformly from
the live ones. Crops are taken while gathering, so a batch never materialises the full 100x100 stacks.

`LatentReplay` is the same ring holding SEER's latents instead of pixels (see its docstring). Arrays live
on private anonymous memory maps rather than `np.empty`: equally lazy, and `release_before` can hand the
pages of converted transitions back to the OS one chunk at a time, so converting a full pixel buffer to
latents never holds more than the budget (the pixel rows go before their latents are written).
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from seer_bench.errors import ConfigError

if TYPE_CHECKING:  # torch is imported only where a replay meets it (checkpoints, device replays)
    import torch

LAYOUTS = ("paper", "compact")


@dataclass(frozen=True)
class TransitionSpec:
    """What one transition holds; `episode_steps` (agent steps) sizes the compact layout's frame ring."""

    obs_shape: tuple[int, int, int]  # (channels per frame * frame_stack, H, W)
    action_dim: int  # number of actions when `discrete`, else the action vector's length
    frame_stack: int = 3
    episode_steps: int = 1000
    discrete: bool = False  # integer actions (Atari), stored as one int32

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        c, h, w = self.obs_shape
        return (c // self.frame_stack, h, w)


def _nbytes(rows: int, row_shape: tuple[int, ...], dtype: type) -> int:
    return rows * math.prod(row_shape) * np.dtype(dtype).itemsize


def lazy_array(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """An uninitialised array on a private anonymous mapping: pages are backed only when first written."""
    count = math.prod(shape)
    nbytes = count * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype, count=count).reshape(shape)


def release_rows(array: np.ndarray, start: int, stop: int) -> None:
    """Give rows [start, stop) of a `lazy_array` back to the OS (they read as zeros afterwards).

    Only whole pages inside the range are released: at most one page at each end stays resident until the
    array itself is freed, so the byte accounting (by rows) is exact to within two pages per call.
    """
    if not isinstance(array, np.ndarray) or stop <= start or array.nbytes == 0:
        return  # a device replay's tensor (seer_bench.device_replay) keeps its memory until it is freed
    base = array
    while not isinstance(base, mmap.mmap):  # ndarray views -> frombuffer's memoryview -> the mapping
        base = base.obj if isinstance(base, memoryview) else base.base
    row = array.strides[0]
    lo = -(-start * row // mmap.PAGESIZE) * mmap.PAGESIZE
    hi = stop * row // mmap.PAGESIZE * mmap.PAGESIZE
    if hi > lo:
        base.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def _saved_rows(array: "np.ndarray | torch.Tensor", rows: int) -> "torch.Tensor":
    """The first `rows` rows as a CPU tensor holding only them (a device replay's are copied to the host,
    so a checkpoint loads on any device and into either storage)."""
    import torch

    if isinstance(array, np.ndarray):
        return torch.from_numpy(array[:rows])
    return array[:rows].to("cpu", copy=True)


def _ring_segments(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Slot ranges of absolute indices [start, stop) in a ring of `size` slots (at most two segments)."""
    n = min(stop - start, size)
    first = start % size
    if first + n <= size:
        return [(first, first + n)]
    return [(first, size), (0, first + n - size)]


def _scalar_fields(spec: "TransitionSpec | LatentSpec") -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-transition fields shared by every layout: CURL's dtypes, an int32 action when actions are
    discrete, and `last` (the episode ended here, by termination or time limit), which multi-step returns
    and the compact latent layout need to find episode ends."""
    action = ((), np.int32) if spec.discrete else ((spec.action_dim,), np.float32)
    return {
        "action": action,
        "reward": ((), np.float32),
        "not_done": ((), np.float32),
        "last": ((), np.uint8),
    }


class RingReplay:
    """FIFO bookkeeping, scalar fields and byte accounting shared by pixel and latent replays.

    `spec` is a TransitionSpec or a LatentSpec: both say `action_dim`, which sizes the scalar fields.
    Subclasses say what else a transition stores (`_data_bytes`, `_store`) and how to free it.
    """

    layout: str

    def __init__(
        self, spec: "TransitionSpec | LatentSpec", capacity: int, max_transitions: int | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        if max_transitions is not None and max_transitions < 1:
            raise ValueError(f"max_transitions must be >= 1, got {max_transitions}")
        self.spec = spec
        self.capacity = capacity  # transitions the budget holds (what records and claims report)
        self.max_transitions = max_transitions  # transitions the run will ever write; None: no cap
        self.slots = self.slots_for(capacity, max_transitions)  # transitions the arrays hold
        self.head = 0  # absolute index of the next transition to write
        self.tail = 0  # absolute index of the oldest live transition
        self._scalars = {
            k: lazy_array((self.slots, *shape), dtype) for k, (shape, dtype) in _scalar_fields(spec).items()
        }

    # --- sizing -----------------------------------------------------------------------------------------
    @staticmethod
    def slots_for(capacity: int, max_transitions: int | None) -> int:
        """Transitions allocated: no more than the budget holds, nor than the run can ever write."""
        return capacity if max_transitions is None else min(capacity, max_transitions)

    @classmethod
    def total_bytes(cls, spec, capacity: int, max_transitions: int | None = None) -> int:
        """Bytes of every array this layout allocates for `capacity` transitions in a run that writes at most
        `max_transitions`; without it, what `capacity` transitions cost (what the budget is spent on)."""
        slots = cls.slots_for(capacity, max_transitions)
        scalars = sum(_nbytes(slots, shape, dtype) for shape, dtype in _scalar_fields(spec).values())
        return scalars + cls._data_bytes(spec, capacity, max_transitions)

    @classmethod
    def _data_bytes(cls, spec, capacity: int, max_transitions: int | None) -> int:
        raise NotImplementedError

    @classmethod
    def capacity_for(cls, spec, budget_bytes: int) -> int:
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
        """Bytes of the arrays as allocated (for `slots`), mapped lazily."""
        return self.total_bytes(self.spec, self.capacity, self.max_transitions)

    @property
    def bytes_per_transition(self) -> float:
        """What one transition costs of the budget (the capacity's price, whatever the run allocates)."""
        return self.total_bytes(self.spec, self.capacity) / self.capacity

    @property
    def resident_bytes(self) -> int:
        """Bytes of the slots written and not released: what the lazily mapped arrays really occupy."""
        return self._data_resident_bytes() + sum(
            _nbytes(self._resident_rows(), shape, dtype)
            for shape, dtype in _scalar_fields(self.spec).values()
        )

    def _resident_rows(self) -> int:
        return min(self.head, self.slots)

    def _data_array(self, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """Where observations or latents are stored: a lazily mapped host array here; a device replay
        (seer_bench.device_replay) allocates a tensor on its device instead. Scalars and ring indices stay
        on the host in both (the ring's bookkeeping reads them one at a time)."""
        return lazy_array(shape, dtype)

    def _data_resident_bytes(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.head - self.tail

    # --- writing ----------------------------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminal: bool,
        last: bool,
    ) -> None:
        """Store one transition. `last` marks the end of an episode (terminal or truncated)."""
        if len(self) == self.slots:
            self.tail += 1
        slot = self.head % self.slots
        self._store(slot, obs, next_obs, last)
        self._scalars["action"][slot] = action
        self._scalars["reward"][slot] = reward
        self._scalars["not_done"][slot] = 0.0 if terminal else 1.0
        self._scalars["last"][slot] = last
        self.head += 1

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        raise NotImplementedError

    def cut_episode(self) -> bool:
        """End the episode in progress here, as a time limit would (no terminal): a resumed run starts a
        new one, and n-step windows and frame stacks must not join the two. Returns whether one was open."""
        newest = (self.head - 1) % self.slots
        was_open = bool(len(self)) and not self._scalars["last"][newest]
        if was_open:
            self._scalars["last"][newest] = 1
        if hasattr(self, "_episode_open"):
            self._episode_open = False
        return was_open

    # --- checkpoints ------------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, tuple[np.ndarray, int]]:
        """Every array, with how many of its leading rows were ever written: what a checkpoint saves."""
        rows = min(self.head, self.slots)
        return {f"scalars.{k}": (v, rows) for k, v in self._scalars.items()}

    def _sizes(self) -> dict[str, int]:
        """What the arrays were allocated for: a checkpoint loads only into a replay of the same sizes."""
        return {"capacity": self.capacity, "slots": self.slots}

    def state_dict(self) -> dict:
        """Counters and the written rows of every array (never the unwritten, lazily mapped rest), as
        arrays a `torch.save(..., weights_only)` checkpoint can hold without pickling numpy."""

        return {
            "layout": self.layout,
            "counters": {k: v for k, v in vars(self).items() if type(v) in (int, bool)},
            "arrays": {name: _saved_rows(array, rows) for name, (array, rows) in self._arrays().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        counters, arrays = state["counters"], state["arrays"]
        # checkpoints written before slots existed allocated the whole capacity
        saved = {k: counters.get(k, counters["capacity"] if k == "slots" else None) for k in self._sizes()}
        if state["layout"] != self.layout or saved != self._sizes():
            sizes = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
            raise ValueError(
                f"checkpoint holds a {state['layout']} replay of {sizes(saved)}, this run a {self.layout} "
                f"replay of {sizes(self._sizes())}"
            )
        vars(self).update(counters)
        for name, (array, _) in self._arrays().items():
            saved = arrays[name]
            if isinstance(array, np.ndarray):
                array[: len(saved)] = saved.numpy()
            else:
                array[: len(saved)].copy_(saved)

    # --- reading ----------------------------------------------------------------------------------------
    def sample_indices(self, batch_size: int, rng: np.random.Generator, horizon: int = 1) -> np.ndarray:
        """Absolute indices of `batch_size` live transitions, uniformly with replacement (as CURL).

        `horizon` n > 1 leaves out the newest n - 1 transitions, whose n-step window is not written yet
        (the textbook n-step replay; the public SEER Atari replay samples them, a quirk not copied: README).
        """
        if self.head - horizon + 1 <= self.tail:
            raise ValueError(
                f"cannot sample: {len(self)} transitions held, a {horizon}-step window needs {horizon}"
            )
        return rng.integers(self.tail, self.head - horizon + 1, size=batch_size)

    def n_step(self, idx: np.ndarray, n: int, discount: float) -> dict[str, np.ndarray]:
        """Multi-step targets from each transition in `idx`, truncated at the end of its episode.

        Returns `return` (sum of discount^j r_{t+j} over the m <= n steps up to and including the first
        transition marked `last`), `end` (absolute index t + m - 1: its next observation is the bootstrap
        state) and `discount` (discount^m, or 0 when the episode terminated inside the window).
        """
        if np.any(idx + n > self.head) or np.any(idx < self.tail):
            raise ValueError(f"an {n}-step window leaves the live transitions [{self.tail}, {self.head})")
        rows = (idx[:, None] + np.arange(n)) % self.slots
        last = self._scalars["last"][rows].astype(bool)
        alive = np.cumsum(last, axis=1) - last == 0  # no episode end before step j
        steps = alive.sum(axis=1)
        powers = discount ** np.arange(n + 1, dtype=np.float64)
        ret = (self._scalars["reward"][rows] * alive * powers[:n]).sum(axis=1)
        end = idx + steps - 1
        not_done = self._scalars["not_done"][end % self.slots]
        return {
            "return": ret.astype(np.float32),
            "end": end,
            "discount": (powers[steps] * not_done).astype(np.float32),
        }

    def scalars(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        rows = idx % self.slots
        return {k: v[rows] for k, v in self._scalars.items()}


class PixelReplay(RingReplay):
    """Pixel observations: crops are gathered at sampling; `release_before` frees converted transitions."""

    def __init__(self, spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> None:
        super().__init__(spec, capacity, max_transitions)
        self._rows_released = 0  # transition rows handed back to the OS by `release_before`
        self._rows_freed_to = 0  # absolute index below which every written row was released

    def obs(self, idx: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
        """uint8 (B, C, size, size) crops of the observations at `idx`, top-left corners `offsets` (B, 2)."""
        return self._gather(idx, offsets, size, next_obs=False)

    def next_obs(self, idx: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
        return self._gather(idx, offsets, size, next_obs=True)

    def uncropped(self, idx: np.ndarray, next_obs: bool) -> np.ndarray:
        """Whole stacks (no crop): for agents without augmentation, and for SEER's
        encoder, which crops itself."""
        return self._gather(idx, np.zeros((len(idx), 2), np.int64), self.spec.obs_shape[-1], next_obs)

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        raise NotImplementedError

    def release_before(self, index: int) -> None:
        """Drop every transition older than absolute `index` and return its memory to the OS.

        Used once, by SEER's conversion, which walks the buffer from oldest to newest;
        nothing is added afterwards.
        """
        index = min(max(index, self.tail), self.head)
        start = max(self._rows_freed_to, self.head - self.slots)  # rows evicted early were written too
        if index > start:
            self._release(start, index)
            self._rows_released += index - start
            self._rows_freed_to = index
        self.tail = index

    def _release(self, start: int, stop: int) -> None:
        """Free the storage of written rows [start, stop) (absolute indices)."""
        raise NotImplementedError

    def _resident_rows(self) -> int:
        return min(self.head, self.slots) - self._rows_released


class PaperReplay(PixelReplay):
    """obs and next_obs stored separately, as the public CURL/SEER code does."""

    layout = "paper"

    def __init__(self, spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> None:
        super().__init__(spec, capacity, max_transitions)
        self._obs = self._data_array((self.slots, *spec.obs_shape), np.uint8)
        self._next_obs = self._data_array((self.slots, *spec.obs_shape), np.uint8)

    @classmethod
    def _data_bytes(cls, spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> int:
        return 2 * _nbytes(cls.slots_for(capacity, max_transitions), spec.obs_shape, np.uint8)

    def _data_resident_bytes(self) -> int:
        return self._data_bytes(self.spec, self._resident_rows())

    def _arrays(self) -> dict[str, tuple[np.ndarray, int]]:
        rows = min(self.head, self.slots)
        return {**super()._arrays(), "obs": (self._obs, rows), "next_obs": (self._next_obs, rows)}

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        self._obs[slot] = obs
        self._next_obs[slot] = next_obs

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        src = self._next_obs if next_obs else self._obs
        out = np.empty((len(idx), self.spec.obs_shape[0], size, size), np.uint8)
        for i, (slot, (y, x)) in enumerate(zip(idx % self.slots, offsets)):
            out[i] = src[slot, :, y : y + size, x : x + size]
        return out

    def _release(self, start: int, stop: int) -> None:
        for lo, hi in _ring_segments(start, stop, self.slots):
            for array in (self._obs, self._next_obs, *self._scalars.values()):
                release_rows(array, lo, hi)


class CompactReplay(PixelReplay):
    """Each frame stored once in a ring of frames; transitions point at their newest frame.

    Transition t with newest frame d (absolute frame index) has obs = frames d-k..d-1 and
    next_obs = frames d-k+1..d, with k = frame_stack. The first transition of an episode writes the frames
    of its observation that the ring does not already end with: all k after a reset (DMC, a new Atari
    game), only the newest one when the stack carries on from the previous transition (Atari after a lost
    life, where the training episode ends but the game and its frames go on). Either way an observation is
    exactly the frames it was stacked from.

    The frame ring is sized for episodes of `spec.episode_steps`; shorter episodes use more frames per
    transition, and then the oldest transitions are evicted early, before their frames are overwritten:
    `len()` then stays a little below `capacity`. A run of `max_transitions` gets no more frames than it
    can write at worst (k + 1 per transition, each one starting an episode), so the cap never evicts a
    transition that the budget's ring would keep.
    """

    layout = "compact"

    def __init__(self, spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> None:
        super().__init__(spec, capacity, max_transitions)
        self.frame_capacity = self._frame_capacity(spec, capacity, max_transitions)
        self._frames = self._data_array((self.frame_capacity, *spec.frame_shape), np.uint8)
        # absolute frame index of each transition's next frame
        self._newest = lazy_array((self.slots,), np.int64)
        self._frame_head = 0  # absolute index of the next frame to write
        self._frames_freed_to = 0  # absolute frame index below which frames were released
        self._frames_released = 0
        self._episode_open = False

    @staticmethod
    def _frame_capacity(spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> int:
        k = spec.frame_stack
        episodes = -(-capacity // spec.episode_steps) + 1  # a partial episode at each end of the ring
        ring = capacity + episodes * k
        return ring if max_transitions is None else min(ring, max_transitions * (k + 1))

    @classmethod
    def _data_bytes(cls, spec: TransitionSpec, capacity: int, max_transitions: int | None = None) -> int:
        frames = cls._frame_capacity(spec, capacity, max_transitions)
        return _nbytes(frames, spec.frame_shape, np.uint8) + _nbytes(
            cls.slots_for(capacity, max_transitions), (), np.int64
        )

    def _sizes(self) -> dict[str, int]:
        return {**super()._sizes(), "frame_capacity": self.frame_capacity}

    def _data_resident_bytes(self) -> int:
        frames = min(self._frame_head, self.frame_capacity) - self._frames_released
        return _nbytes(frames, self.spec.frame_shape, np.uint8) + _nbytes(self._resident_rows(), (), np.int64)

    def _arrays(self) -> dict[str, tuple[np.ndarray, int]]:
        return {
            **super()._arrays(),
            "frames": (self._frames, min(self._frame_head, self.frame_capacity)),
            "newest": (self._newest, min(self.head, self.slots)),
        }

    def _write_frame(self, frame: np.ndarray) -> None:
        f = self._frame_head
        k = self.spec.frame_stack
        # Evict transitions whose oldest frame (newest - k) this write would overwrite.
        while len(self) and self._newest[self.tail % self.slots] - k <= f - self.frame_capacity:
            self.tail += 1
        self._frames[f % self.frame_capacity] = frame
        self._frame_head += 1

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        c, k = self.spec.frame_shape[0], self.spec.frame_stack
        if not self._episode_open:
            for j in range(k - 1 if self._continues(obs) else 0, k):
                self._write_frame(obs[j * c : (j + 1) * c])
        self._write_frame(next_obs[-c:])
        self._newest[slot] = self._frame_head - 1
        self._episode_open = not last

    def _continues(self, obs: np.ndarray) -> bool:
        """Whether the ring's newest k-1 frames are `obs`'s oldest k-1 (a stack that carries on)."""
        k, f = self.spec.frame_stack, self._frame_head
        if f < k - 1 or f - (k - 1) < self._frames_freed_to:
            return False
        c = self.spec.frame_shape[0]
        ring = self._frames[np.arange(f - k + 1, f) % self.frame_capacity]
        return np.array_equal(ring.reshape(-1, *obs.shape[1:]), obs[: (k - 1) * c])

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> np.ndarray:
        k = self.spec.frame_stack
        c = self.spec.frame_shape[0]
        first = self._newest[idx % self.slots] - (k - 1 if next_obs else k)
        out = np.empty((len(idx), k * c, size, size), np.uint8)
        for i, (f0, (y, x)) in enumerate(zip(first, offsets)):
            for j in range(k):
                out[i, j * c : (j + 1) * c] = self._frames[
                    (f0 + j) % self.frame_capacity, :, y : y + size, x : x + size
                ]
        return out

    def _release(self, start: int, stop: int) -> None:
        # Frames older than the oldest frame of the first transition kept are no longer needed.
        keep_from = (
            int(self._newest[stop % self.slots]) - self.spec.frame_stack
            if stop < self.head
            else self._frame_head
        )
        lo = max(self._frames_freed_to, self._frame_head - self.frame_capacity)
        if keep_from > lo:
            for a, b in _ring_segments(lo, keep_from, self.frame_capacity):
                release_rows(self._frames, a, b)
                self._frames_released += b - a
        self._frames_freed_to = max(self._frames_freed_to, keep_from)
        for a, b in _ring_segments(start, stop, self.slots):
            for array in (self._newest, *self._scalars.values()):
                release_rows(array, a, b)


@dataclass(frozen=True)
class LatentSpec:
    """What one latent transition holds: for each named stream (e.g. the critic's and the actor's Linear
    output), `copies` latents of `dim` values for obs and again for next_obs, in `dtype`."""

    streams: tuple[tuple[str, int], ...]  # (name, dim)
    copies: int
    action_dim: int
    dtype: str = "float32"
    discrete: bool = False
    episode_steps: int = 1000  # sizes the compact layout's state ring, as TransitionSpec does for frames

    def __post_init__(self) -> None:
        if self.dtype not in LATENT_DTYPES:
            raise ValueError(f"latent dtype must be one of {', '.join(LATENT_DTYPES)}, got {self.dtype!r}")
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}")


LATENT_DTYPES = ("float32", "float16")
Encoder = Callable[[np.ndarray], dict[str, np.ndarray]]  # uint8 (N, C, H, W) -> {stream: (N, copies, dim)}


class LatentReplay(RingReplay):
    """SEER's buffer: latents per stream and crop copy instead of pixels, plus the scalar fields.

    `add` takes pixels like a pixel replay and encodes them with `encode` (the frozen lower layers), so the
    training loop does not change at T_f. `fill_from` converts a pixel replay once, oldest first, in chunks
    of `chunk` transitions: each chunk is encoded, its pixel rows are released, then its latents written,
    so the two buffers together never hold more than the pixel buffer held (when latents are smaller) or
    than this buffer's own budget (when they are not). `encoded` counts the observations encoded so far
    (each of `copies` crops), which is what the FLOP ledger charges.

    Two layouts, like the pixel replays: `PaperLatentReplay` stores obs and next_obs latents per transition
    (the public DMC code); `CompactLatentReplay` stores each state's latent once (the public Atari code).
    """

    def __init__(
        self, spec: LatentSpec, capacity: int, encode: Encoder, max_transitions: int | None = None
    ) -> None:
        super().__init__(spec, capacity, max_transitions)
        self.encode = encode
        self.encoded = 0

    def _encode(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        self.encoded += len(pixels)
        return self.encode(pixels)

    def latents(self, idx: np.ndarray, copy: np.ndarray, next_obs: bool) -> dict[str, np.ndarray]:
        """{stream: (B, dim)}: copy `copy[i]` of transition `idx[i]`, the same pick for every stream."""
        raise NotImplementedError

    def fill_from(
        self, pixels: PixelReplay, chunk: int, on_chunk: Callable[[int], None] | None = None
    ) -> int:
        """Convert every live transition of `pixels` (the newest `slots` if fewer fit) and release them.

        `on_chunk(bytes)` is called after each chunk with the bytes both buffers hold (for tests and
        progress). Returns the number of transitions converted.
        """
        if len(self):
            raise ValueError("fill_from needs an empty latent replay")
        pixels.release_before(pixels.head - self.slots)  # transitions that would not fit are dropped first
        converted = 0
        while len(pixels):
            idx = np.arange(pixels.tail, min(pixels.tail + chunk, pixels.head))
            scalars = pixels.scalars(idx)
            encoded = self._encode_chunk(pixels, idx, scalars["last"])
            pixels.release_before(int(idx[-1]) + 1)
            rows = (self.head + np.arange(len(idx))) % self.slots
            self._write_chunk(rows, encoded, scalars["last"])
            for key, values in scalars.items():
                self._scalars[key][rows] = values
            self.head += len(idx)
            converted += len(idx)
            if on_chunk is not None:
                on_chunk(pixels.resident_bytes + self.resident_bytes)
        return converted

    def _encode_chunk(self, pixels: PixelReplay, idx: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _write_chunk(self, slots: np.ndarray, encoded: dict[str, np.ndarray], last: np.ndarray) -> None:
        raise NotImplementedError


class PaperLatentReplay(LatentReplay):
    """obs and next_obs latents stored per transition, as the public SEER DMC code does."""

    layout = "latent"

    def __init__(
        self, spec: LatentSpec, capacity: int, encode: Encoder, max_transitions: int | None = None
    ) -> None:
        super().__init__(spec, capacity, encode, max_transitions)
        shape = (self.slots, spec.copies)
        self._latents = {
            (name, nxt): self._data_array((*shape, dim), np.dtype(spec.dtype))
            for name, dim in spec.streams
            for nxt in (False, True)
        }

    def _arrays(self) -> dict[str, tuple[np.ndarray, int]]:
        rows = min(self.head, self.slots)
        return {
            **super()._arrays(),
            **{
                f"latents.{name}.{'next' if nxt else 'obs'}": (array, rows)
                for (name, nxt), array in self._latents.items()
            },
        }

    @classmethod
    def _data_bytes(cls, spec: LatentSpec, capacity: int, max_transitions: int | None = None) -> int:
        slots = cls.slots_for(capacity, max_transitions)
        return sum(2 * _nbytes(slots, (spec.copies, dim), np.dtype(spec.dtype)) for _, dim in spec.streams)

    def _data_resident_bytes(self) -> int:
        return self._data_bytes(self.spec, self._resident_rows())

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        encoded = self._encode(np.stack([obs, next_obs]))
        for name, _ in self.spec.streams:
            self._latents[name, False][slot] = encoded[name][0]
            self._latents[name, True][slot] = encoded[name][1]

    def latents(self, idx: np.ndarray, copy: np.ndarray, next_obs: bool) -> dict[str, np.ndarray]:
        rows = idx % self.slots
        return {name: self._latents[name, next_obs][rows, copy] for name, _ in self.spec.streams}

    def _encode_chunk(self, pixels: PixelReplay, idx: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
        return self._encode(np.concatenate([pixels.uncropped(idx, False), pixels.uncropped(idx, True)]))

    def _write_chunk(self, slots: np.ndarray, encoded: dict[str, np.ndarray], last: np.ndarray) -> None:
        n = len(slots)
        for name, _ in self.spec.streams:
            self._latents[name, False][slots] = encoded[name][:n]
            self._latents[name, True][slots] = encoded[name][n:]


class CompactLatentReplay(LatentReplay):
    """Each state's latent stored once, in a ring of states; a transition points at its next state.

    Transition t with next state s (absolute state index) has obs = state s-1 and next_obs = state s; the
    first transition of an episode writes both, later ones only their next state. So a transition costs
    one latent (plus one per episode), and one encoding: the public Atari SEER code's layout, whose
    memory stores each timestep once. With random crops (DMC), obs of t+1 and next_obs of t share their
    crops, where the paper layout draws them independently.

    The state ring is sized for episodes of `spec.episode_steps`; shorter episodes evict the oldest
    transitions early, as in `CompactReplay`; a run of `max_transitions` gets no more states than it can
    write at worst (2 per transition).
    """

    layout = "latent-compact"

    def __init__(
        self, spec: LatentSpec, capacity: int, encode: Encoder, max_transitions: int | None = None
    ) -> None:
        super().__init__(spec, capacity, encode, max_transitions)
        self.state_capacity = self._state_capacity(spec, capacity, max_transitions)
        self._states = {
            name: self._data_array((self.state_capacity, spec.copies, dim), np.dtype(spec.dtype))
            for name, dim in spec.streams
        }
        self._newest = lazy_array(
            (self.slots,), np.int64
        )  # absolute state index of each transition's next_obs
        self._state_head = 0
        self._episode_open = False

    @staticmethod
    def _state_capacity(spec: LatentSpec, capacity: int, max_transitions: int | None = None) -> int:
        ring = capacity + -(-capacity // spec.episode_steps) + 1
        return ring if max_transitions is None else min(ring, 2 * max_transitions)

    @staticmethod
    def _bytes(spec: LatentSpec, states: int, transitions: int) -> int:
        """Bytes of `states` latents (every stream and copy) and the state index of `transitions`."""
        return sum(
            _nbytes(states, (spec.copies, dim), np.dtype(spec.dtype)) for _, dim in spec.streams
        ) + _nbytes(transitions, (), np.int64)

    @classmethod
    def _data_bytes(cls, spec: LatentSpec, capacity: int, max_transitions: int | None = None) -> int:
        states = cls._state_capacity(spec, capacity, max_transitions)
        return cls._bytes(spec, states, cls.slots_for(capacity, max_transitions))

    def _sizes(self) -> dict[str, int]:
        return {**super()._sizes(), "state_capacity": self.state_capacity}

    def _data_resident_bytes(self) -> int:
        return self._bytes(self.spec, min(self._state_head, self.state_capacity), self._resident_rows())

    def _arrays(self) -> dict[str, tuple[np.ndarray, int]]:
        states = min(self._state_head, self.state_capacity)
        return {
            **super()._arrays(),
            "newest": (self._newest, min(self.head, self.slots)),
            **{f"states.{name}": (array, states) for name, array in self._states.items()},
        }

    def _write_state(self, encoded: dict[str, np.ndarray], row: int) -> None:
        s = self._state_head
        # Evict transitions whose obs state (next state - 1) this write would overwrite.
        while len(self) and self._newest[self.tail % self.slots] - 1 <= s - self.state_capacity:
            self.tail += 1
        for name, _ in self.spec.streams:
            self._states[name][s % self.state_capacity] = encoded[name][row]
        self._state_head += 1

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        new_episode = not self._episode_open
        encoded = self._encode(np.stack([obs, next_obs]) if new_episode else next_obs[None])
        for row in range(len(encoded[self.spec.streams[0][0]])):
            self._write_state(encoded, row)
        self._newest[slot] = self._state_head - 1
        self._episode_open = not last

    def latents(self, idx: np.ndarray, copy: np.ndarray, next_obs: bool) -> dict[str, np.ndarray]:
        states = (self._newest[idx % self.slots] - (0 if next_obs else 1)) % self.state_capacity
        return {name: self._states[name][states, copy] for name, _ in self.spec.streams}

    def _starts(self, last: np.ndarray) -> np.ndarray:
        """Which transitions of a chunk begin an episode here (their obs state must be written too)."""
        starts = np.empty(len(last), bool)
        starts[0] = not self._episode_open
        starts[1:] = last[:-1].astype(bool)
        return starts

    def _encode_chunk(self, pixels: PixelReplay, idx: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
        starts = self._starts(last)
        return self._encode(
            np.concatenate([pixels.uncropped(idx[starts], False), pixels.uncropped(idx, True)])
        )

    def _write_chunk(self, slots: np.ndarray, encoded: dict[str, np.ndarray], last: np.ndarray) -> None:
        starts = self._starts(last)
        first_row = np.cumsum(starts) - 1  # row of each starting transition's obs latent
        n_starts = int(starts.sum())
        for i, slot in enumerate(slots):
            if starts[i]:
                self._write_state(encoded, first_row[i])
            self._write_state(encoded, n_starts + i)
            self._newest[slot] = self._state_head - 1
            self._episode_open = not last[i]


_LAYOUT_CLASSES: dict[str, type[PixelReplay]] = {"paper": PaperReplay, "compact": CompactReplay}


def replay_class(layout: str) -> type[PixelReplay]:
    if layout not in _LAYOUT_CLASSES:
        raise ConfigError(f"unknown replay layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return _LAYOUT_CLASSES[layout]


def latent_replay_class(pixel_layout: str, random_crops: bool) -> type[LatentReplay]:
    """The latent layout SEER converts a pixel layout into: per state (compact) when the pixels were stored
    per frame and one observation has one latent; per transition (paper) otherwise. With random crops
    (CURL), obs and next_obs latents come from independent crops, as the public DMC code stores them."""
    replay_class(pixel_layout)
    return CompactLatentReplay if pixel_layout == "compact" and not random_crops else PaperLatentReplay


def budget_capacity(layout: str, spec: TransitionSpec, budget_bytes: int, batch_size: int) -> int:
    """Transitions `budget_bytes` holds in `layout`, without allocating any: fails before any training when
    the budget cannot hold one batch. Not capped at the run length: it is what the budget buys, the figure
    records and capacity claims are about."""
    cls = replay_class(layout)
    capacity = cls.capacity_for(spec, budget_bytes)
    if capacity < batch_size:
        need = cls.total_bytes(spec, batch_size)
        raise ConfigError(
            f"replay budget {budget_bytes / 1e9:g} GB ({budget_bytes} bytes) holds {capacity} transitions in "
            f"the "
            f"{layout!r} layout, fewer than one batch of {batch_size}; it needs at least {need} bytes "
            f"({need / 1e9:.4g} GB)"
        )
    return capacity


def make_replay(
    layout: str,
    spec: TransitionSpec,
    budget_bytes: int,
    batch_size: int,
    max_transitions: int | None = None,
    device: "torch.device | None" = None,
) -> PixelReplay:
    """A replay of `layout` of the capacity `budget_capacity` gives, allocated for no more than the
    `max_transitions` a run writes (its agent steps); with `device`, its frames live there as tensors
    (seer_bench.device_replay)."""
    from seer_bench.device_replay import allocate  # it imports this module (and torch)

    capacity = budget_capacity(layout, spec, budget_bytes, batch_size)
    return allocate(replay_class(layout), spec, capacity, max_transitions, device=device)
