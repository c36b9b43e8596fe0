"""Memory of this process: host RSS sampled in the background (psutil), GPU memory from NVML and torch.

A run's memory peaks fall between evaluation rows (SEER's conversion at T_f, a burst of updates), so one
reading per row would miss them: `MemorySampler` reads RSS on a daemon thread about once a second and each
row takes the peak since the previous row. GPU memory has two honest sources that disagree on purpose:
NVML sees everything the driver gave this process (CUDA context, cuDNN workspaces, torch's cache), torch
sees only its own allocator. Rows keep the NVML peak as `gpu_bytes` (torch's reserved peak where NVML
cannot see this process, e.g. in a container with its own PID namespace) and torch's allocated and
reserved peaks beside it. On a machine without a GPU these are empty, never an error.

Replay bytes peak between rows too: SEER's conversion at T_f can fall between two evaluations, after the
pixel replay held its most and before rows see only the smaller latents. They change only where the run
writes or converts the replay, so the runner reports them there (`note_replay`) instead of a thread
polling a replay that the main thread may be swapping.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import psutil
import torch

_PROCESS = psutil.Process()


def rss_bytes() -> int:
    return _PROCESS.memory_info().rss


def nvml_handle(pynvml: Any, device: torch.device) -> Any:
    """NVML's handle of torch's CUDA `device` (NVML must be initialised). Found by the GPU's UUID: NVML
    numbers every GPU of the machine, torch only those CUDA_VISIBLE_DEVICES shows, so index 0 in torch can
    be another NVML index. Falls back to torch's index where the UUID is unknown to NVML (a MIG slice)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)  # torch writes it without NVML's prefix
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    except (pynvml.NVMLError, AttributeError):
        return pynvml.nvmlDeviceGetHandleByIndex(index)


class _Nvml:
    """This process's device memory as NVML reports it; `used()` is None where NVML cannot tell."""

    def __init__(self, device: torch.device) -> None:
        self.handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.pynvml = pynvml
            self.handle = nvml_handle(pynvml, device)
        except Exception:  # noqa: BLE001 - no driver or no library: NVML readings are simply absent
            self.handle = None

    def used(self) -> int | None:
        if self.handle is None:
            return None
        try:
            procs = self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.pynvml.NVMLError:
            return None
        mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory is not None]
        return sum(mine) if mine else None


@dataclass
class MemoryWindow:
    """Readings for one metrics row: now, and peaks since the previous row."""

    rss_bytes: int
    rss_peak_bytes: int
    replay_peak_bytes: int  # the most replay bytes held since the previous row (the row's own included)
    gpu_bytes: int | None
    gpu_alloc_bytes: int | None
    gpu_reserved_bytes: int | None

    def as_row(self) -> dict[str, int | str]:
        return {k: ("" if v is None else v) for k, v in vars(self).items()}


class MemorySampler:
    """Samples RSS (and NVML's view of this process) every `period` seconds until `stop()`.

    Stop it in a `finally` (or use it as a context manager), so the thread ends when the run ends or raises.
    """

    def __init__(self, device: torch.device, period: float = 1.0) -> None:
        self.device = device
        self.period = period
        self._nvml = _Nvml(device)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._rss_peak = 0
        self._gpu_peak: int | None = None
        self._replay_now = 0
        self._replay_peak = 0
        self.samples = 0

    def note_replay(self, nbytes: int) -> None:
        """The replay holds `nbytes` now: called wherever that changes (after adds, during SEER's
        conversion), so the next row keeps the peak even when the replay shrank before it."""
        with self._lock:
            self._replay_now = nbytes
            self._replay_peak = max(self._replay_peak, nbytes)

    def _sample(self) -> None:
        rss, gpu = rss_bytes(), self._nvml.used()
        with self._lock:
            self._rss_peak = max(self._rss_peak, rss)
            if gpu is not None:
                self._gpu_peak = max(self._gpu_peak or 0, gpu)
            self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def start(self) -> "MemorySampler":
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> "MemorySampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def window(self) -> MemoryWindow:
        """Readings now and peaks since the last call (which this call resets)."""
        self._sample()
        with self._lock:
            rss_peak, gpu_peak, replay_peak = self._rss_peak, self._gpu_peak, self._replay_peak
            # what the replay holds now is held at the start of the next window too
            self._rss_peak, self._gpu_peak, self._replay_peak = 0, None, self._replay_now
        alloc = reserved = None
        if self.device.type == "cuda":
            alloc, reserved = (
                torch.cuda.max_memory_allocated(self.device),
                torch.cuda.max_memory_reserved(self.device),
            )
            torch.cuda.reset_peak_memory_stats(self.device)
            gpu_peak = gpu_peak if gpu_peak is not None else reserved
        return MemoryWindow(rss_bytes(), rss_peak, replay_peak, gpu_peak, alloc, reserved)
