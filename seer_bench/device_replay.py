"""Replays whose observations or latents live as torch tensors on the run's device (`--replay-device device`).

On a GPU a host replay's every batch is gathered on the host and copied over the bus (pinned and
non-blocking: seer_bench.transfer); a device replay keeps the uint8 pixels, and SEER's latents, in the GPU's
memory and gathers each batch there: the crops are one indexing kernel per batch field, and what crosses
the bus per batch is the sampled indices and crop corners (a few KB), never pixels.

Each class here is its host twin (seer_bench.replay) with the observation or latent arrays allocated as
tensors on `device`: the same ring bookkeeping, the same byte counts, and for the same indices and crop
corners the same batches, bit for bit (tests/test_replay.py compares them on a CPU, where a device replay is
a replay of CPU tensors). The scalar fields and the compact layouts' ring indices stay on the host, where
the ring reads them one at a time and the n-step targets are computed; their batch slices are small.

What differs, by design:
- memory: a tensor is allocated whole when the replay is built (a GPU has no lazily mapped pages), so
  `allocated_bytes` is what the device holds from the start; `resident_bytes` still counts the rows
  written, as a host replay's does, so the records of the two storages agree. `release_before` cannot
  hand a tensor's rows back: at SEER's T_f the device holds the pixel and the latent replay until the
  pixel one is dropped after the conversion;
- SEER's encodings: agents encode numpy pixels (the agent contract), so the conversion at T_f reads each
  chunk of pixels back to the host once, and each new transition's latents are copied to the device when
  it is added: once per transition, never per batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seer_bench.replay import (
    CompactLatentReplay,
    CompactReplay,
    Encoder,
    LatentSpec,
    PaperLatentReplay,
    PaperReplay,
    PixelReplay,
    RingReplay,
    _nbytes,
)
from seer_bench.transfer import host_tensor, to_numpy, torch_dtype

STORAGES = ("host", "device")  # RunSpec.replay_device: where a run's replay keeps observations and latents


class OnDevice:
    """What makes a replay class device-resident: tensors for the observation or latent arrays. Its
    constructor is the host twin's, with `device=` in addition (set first: the twin allocates through
    `_data_array`)."""

    def __init__(self, *args: Any, device: torch.device = torch.device("cpu"), **kwargs: Any) -> None:
        self.device = device
        super().__init__(*args, **kwargs)

    def _data_array(self, shape: tuple[int, ...], dtype: Any) -> torch.Tensor:
        return torch.empty(shape, dtype=torch_dtype(dtype), device=self.device)

    def _put(self, x: np.ndarray) -> torch.Tensor:
        return host_tensor(np.ascontiguousarray(x)).to(self.device)

    def _index(self, idx: np.ndarray) -> torch.Tensor:
        """Host indices as an int64 tensor on the device (indexing a CUDA tensor with them stays there)."""
        return torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(self.device)

    def _crop_grid(self, offsets: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column indices (B, 1, size, 1) and (B, 1, 1, size) of crops with top-left `offsets`."""
        corner = self._index(offsets)
        span = torch.arange(size, device=self.device)
        rows = (corner[:, 0, None] + span)[:, None, :, None]
        cols = (corner[:, 1, None] + span)[:, None, None, :]
        return rows, cols


class DevicePaperReplay(OnDevice, PaperReplay):
    """`PaperReplay` with obs and next_obs on `device`."""

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        super()._store(slot, self._put(obs), self._put(next_obs), last)

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> torch.Tensor:
        src = self._next_obs if next_obs else self._obs
        rows, cols = self._crop_grid(offsets, size)
        channels = torch.arange(src.shape[1], device=self.device)[None, :, None, None]
        return src[self._index(idx % self.slots)[:, None, None, None], channels, rows, cols]


class DeviceCompactReplay(OnDevice, CompactReplay):
    """`CompactReplay` with its frame ring on `device` (the transitions' frame indices stay on the host)."""

    def _store(self, slot: int, obs: np.ndarray, next_obs: np.ndarray, last: bool) -> None:
        super()._store(slot, self._put(obs), self._put(next_obs), last)

    def _continues(self, obs: torch.Tensor) -> bool:
        k, f = self.spec.frame_stack, self._frame_head
        if f < k - 1 or f - (k - 1) < self._frames_freed_to:
            return False
        c = self.spec.frame_shape[0]
        ring = self._frames[self._index(np.arange(f - k + 1, f) % self.frame_capacity)]
        return bool(torch.equal(ring.reshape(-1, *obs.shape[1:]), obs[: (k - 1) * c]))

    def _gather(self, idx: np.ndarray, offsets: np.ndarray, size: int, next_obs: bool) -> torch.Tensor:
        k, c = self.spec.frame_stack, self.spec.frame_shape[0]
        first = self._newest[idx % self.slots] - (k - 1 if next_obs else k)
        frames = (first[:, None] + np.repeat(np.arange(k), c)) % self.frame_capacity  # (B, k*c)
        channels = self._index(np.tile(np.arange(c), k))[None, :, None, None]
        rows, cols = self._crop_grid(offsets, size)
        return self._frames[self._index(frames)[:, :, None, None], channels, rows, cols]


class _HostPixels:
    """A pixel replay whose uncropped stacks are read back to the host: what an agent's `encode` takes."""

    def __init__(self, pixels: PixelReplay) -> None:
        self.pixels = pixels

    def uncropped(self, idx: np.ndarray, next_obs: bool) -> np.ndarray:
        return to_numpy(self.pixels.uncropped(idx, next_obs))


class DeviceLatents(OnDevice):
    """What both device latent replays share: the encoder's latents copied to the device as they come."""

    def __init__(
        self,
        spec: LatentSpec,
        capacity: int,
        encode: Encoder,
        max_transitions: int | None = None,
        device: torch.device = torch.device("cpu"),
    ) -> None:
        def on_device(pixels: Any) -> dict[str, torch.Tensor]:
            return {k: self._put(v) for k, v in encode(pixels).items()}

        super().__init__(spec, capacity, on_device, max_transitions, device=device)

    def _encode_chunk(self, pixels: PixelReplay, idx: np.ndarray, last: np.ndarray) -> Any:
        return super()._encode_chunk(_HostPixels(pixels), idx, last)


class DevicePaperLatentReplay(DeviceLatents, PaperLatentReplay):
    """`PaperLatentReplay` with its latents on `device`."""

    def latents(self, idx: np.ndarray, copy: np.ndarray, next_obs: bool) -> dict[str, torch.Tensor]:
        rows, copies = self._index(idx % self.slots), self._index(copy)
        return {name: self._latents[name, next_obs][rows, copies] for name, _ in self.spec.streams}

    def _write_chunk(self, slots: np.ndarray, encoded: dict, last: np.ndarray) -> None:
        super()._write_chunk(self._index(slots), encoded, last)


class DeviceCompactLatentReplay(DeviceLatents, CompactLatentReplay):
    """`CompactLatentReplay` with its state ring on `device` (the state indices stay on the host)."""

    def _write_state(self, encoded: dict, row: int) -> None:
        super()._write_state(encoded, int(row))

    def latents(self, idx: np.ndarray, copy: np.ndarray, next_obs: bool) -> dict[str, torch.Tensor]:
        states = (self._newest[idx % self.slots] - (0 if next_obs else 1)) % self.state_capacity
        rows, copies = self._index(states), self._index(copy)
        return {name: self._states[name][rows, copies] for name, _ in self.spec.streams}


_ON_DEVICE: dict[type[RingReplay], type[RingReplay]] = {
    PaperReplay: DevicePaperReplay,
    CompactReplay: DeviceCompactReplay,
    PaperLatentReplay: DevicePaperLatentReplay,
    CompactLatentReplay: DeviceCompactLatentReplay,
}


def on_device(cls: type[RingReplay]) -> type[RingReplay]:
    """The device-resident twin of a host replay class (its constructor takes `device=` in addition)."""
    return _ON_DEVICE[cls]


def allocate(cls: type[RingReplay], *args: Any, device: torch.device | None = None) -> RingReplay:
    """A `cls` replay built from `args`: in host memory, or with `device` its device-resident twin there."""
    return cls(*args) if device is None else on_device(cls)(*args, device=device)


def placed_bytes(
    cls: type[RingReplay], spec: Any, capacity: int, max_transitions: int | None, storage: str
) -> dict[str, int]:
    """Where the arrays of a `cls` replay live, in bytes: {"host_bytes", "device_bytes"}, which sum to its
    `total_bytes`. With `storage` "device" the observations or latents are on the device; the scalar
    fields and a compact layout's ring index (int64 per transition) stay on the host."""
    total = cls.total_bytes(spec, capacity, max_transitions)
    if storage == "host":
        return {"host_bytes": total, "device_bytes": 0}
    data = cls._data_bytes(spec, capacity, max_transitions)
    if issubclass(cls, (CompactReplay, CompactLatentReplay)):
        data -= _nbytes(cls.slots_for(capacity, max_transitions), (), np.int64)
    return {"host_bytes": total - data, "device_bytes": data}


def storage_of(replay: RingReplay) -> str:
    """ "device" for a device-resident replay, "host" for a host one."""
    return "device" if isinstance(replay, OnDevice) else "host"
