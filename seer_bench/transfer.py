"""Sampled batches from the replay to the run's device, one code path for every device.

A replay hands an agent either numpy arrays (a host replay) or torch tensors already on the run's device
(a device replay, `--replay-device device`). `Transfer` turns both into tensors on the device:

- a tensor is moved only if it is elsewhere (a device replay's batch is never copied);
- a numpy batch on a CPU run is wrapped by `torch.from_numpy`, no copy: what the agents did before;
- a numpy batch on a CUDA run is copied into a pinned (page-locked) staging tensor kept per batch field and
  sent with `non_blocking=True`: the copy engine reads page-locked memory directly, and the host goes on
  to the next field while it runs. A staging tensor is rewritten only after its previous copy has finished
  (a CUDA event per field), so a batch is never overwritten while the GPU still reads it.

`Transfer(device, staged=True)` forces the staging path on a CPU too (unpinned, events skipped): how the
tests run the CUDA path's bookkeeping on a machine without a GPU.
"""

from __future__ import annotations

import numpy as np
import torch


def torch_dtype(dtype: np.dtype | type | str) -> torch.dtype:
    """The torch dtype of a numpy dtype (uint8 -> torch.uint8, float16 -> torch.float16, ...)."""
    return torch.from_numpy(np.empty(0, np.dtype(dtype))).dtype


def host_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing `array`'s memory where torch allows it (a read-only array is copied: torch
    cannot share memory it must treat as writable)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A host array of `x` (a device tensor is copied back; a numpy array is returned as it is)."""
    return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()


class Transfer:
    """Host -> device copies of sampled batches, each batch field by name (see the module docstring)."""

    def __init__(self, device: torch.device, staged: bool | None = None) -> None:
        self.device = device
        self.staged = device.type == "cuda" if staged is None else staged
        self._pinned = device.type == "cuda"
        self._staging: dict[str, torch.Tensor] = {}
        self._copied: dict[str, torch.cuda.Event] = {}  # per field: its last copy out of the staging tensor

    def __call__(
        self, name: str, x: np.ndarray | torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """`x` as a tensor on the device, in `dtype` (converted on the device, after the copy: a uint8
        batch crosses the bus as uint8, 4x fewer bytes than as float)."""
        if isinstance(x, torch.Tensor):
            return x.to(self.device, dtype)
        if not self.staged:
            return host_tensor(x).to(self.device, dtype)
        return self._staged_copy(name, x).to(dtype=dtype)

    def _staged_copy(self, name: str, x: np.ndarray) -> torch.Tensor:
        buf = self._staging.get(name)
        if buf is None or buf.shape != x.shape or buf.dtype != torch_dtype(x.dtype):
            buf = torch.empty(x.shape, dtype=torch_dtype(x.dtype), pin_memory=self._pinned)
            self._staging[name] = buf
        elif name in self._copied:
            self._copied[name].synchronize()  # the previous batch in `buf` has reached the device
        buf.numpy()[...] = x
        out = buf.to(self.device, non_blocking=True, copy=True)  # a CPU `out` must not alias `buf` either
        if self._pinned:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            self._copied[name] = event
        return out
