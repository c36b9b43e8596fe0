"""What a GPU run of seer-bench costs, in one table (run by benchmarks/gpu_check.sh, in at most 5 minutes).

Columns: seer-bench's CURL-SAC with its replay in host memory (batches gathered there, pinned and copied
without blocking), seer-bench with a device-resident replay (`--replay-device device`: batches gathered
and cropped on the GPU), and the public code's update as benchmarks/public_curl.py emulates it (its own
host arrays and crop loop). Rows:

- updates/s on pixels and on SEER's latents (after a real freeze and conversion), at cartpole-swingup
  shapes and `--batch-size` (default 128), `--updates` timed updates after 2 warm-up ones, each timed
  between `torch.cuda.synchronize(device)` calls so queued kernels count where they were queued;
- env steps/s end to end, the pixels and frozen phases of a real `curl+seer` Workspace on cartpole-swingup
  at the run's device and replay storage, through its own `train_step` (act, update, physics, rendering,
  replay add, SEER's encoding);
- peak GPU memory of each column's section: NVML's (this process, or the whole GPU where NVML cannot see
  this process's pid, sampled every 20 ms) next to torch's max_memory_allocated and max_memory_reserved.

The columns run one after another, each from an empty CUDA cache, so each peak is that column's.
`--device cpu` is a dry run of the same code (tiny sizes by default, memory columns "n/a (cpu)"), for CI.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seer_bench.agents import AGENTS
from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.device_replay import on_device
from seer_bench.envs import KNOWN_ENVS
from seer_bench.instrument.memory import nvml_handle
from seer_bench.replay import PaperReplay
from seer_bench.runner import Workspace, resolve_device
from seer_bench.suites import Overrides, RunSpec, load_suite, resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_curl import PublicCurl  # noqa: E402
from seer_update_speed import OBS, filled_replay, random_frames  # noqa: E402

COLUMNS = ("host replay", "device replay", "public")
# (updates, replay transitions, env steps per phase, batch): a GPU's defaults, and the CPU dry run's
SIZES = {"cuda": (100, 2000, 300, 128), "cpu": (2, 40, 4, 8)}


class NvmlPeak:
    """The most GPU memory NVML reports while running, sampled every `period` seconds on a daemon thread:
    this process's (as MemorySampler reads it) or, where NVML lists no process of this pid (a container's
    own PID namespace), everything used on the GPU. NVML is shut down by `close`."""

    def __init__(self, device: torch.device, period: float = 0.02) -> None:
        import pynvml

        self.pynvml, self.period, self.peak = pynvml, period, 0
        pynvml.nvmlInit()
        self.handle = nvml_handle(pynvml, device)
        self.whole_gpu = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def read(self) -> int:
        import os

        try:
            procs = self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.pynvml.NVMLError:  # not supported here: the whole GPU's, as below
            procs = []
        mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory is not None]
        if mine:
            return sum(mine)
        self.whole_gpu = True
        return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self.read())

    def reset(self) -> None:
        self.peak = self.read()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pynvml.nvmlShutdown()


def start_nvml(device: torch.device) -> NvmlPeak | None:
    """NVML's sampler, or None (its row then reads n/a) where NVML cannot start: the rest still measures."""
    try:
        return NvmlPeak(device)
    except Exception as e:  # noqa: BLE001 - no driver library, no permission: one row lost, not the check
        print(f"NVML unavailable ({type(e).__name__}: {e}); its row reads n/a", file=sys.stderr)
        return None


def synchronized(device: torch.device) -> float:
    """The clock once `device` has run every kernel queued so far (CUDA queues them asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed_rate(update: Callable[[int], Any], n: int, device: torch.device) -> float:
    """Updates per second of `update(step)` over `n` steps (both parities) after 2 warm-up steps."""
    for step in range(2):
        update(step)
    start = synchronized(device)
    for step in range(n):
        update(step)
    return n / (synchronized(device) - start)


def ours(storage: str, frames: np.ndarray, cfg: CurlConfig, device: torch.device, n: int) -> dict[str, float]:
    """seer-bench's updates/s on pixels, then on latents after a real freeze, with the replay in `storage`."""
    host = filled_replay(frames)
    replay = host
    if storage == "device":
        replay = on_device(PaperReplay)(host.spec, host.capacity, device=device)
        replay.load_state_dict(host.state_dict())
    del host
    agent = CurlSac(OBS, 1, cfg, device, seed=0)
    pixels = timed_rate(partial(agent.update, replay), n, device)
    seer = Seer(
        SeerConfig(freeze_at=1),
        replay.allocated_bytes,
        seed=0,
        chunk=cfg.batch_size,
        layout=replay.layout,
        transitions=replay.spec,
        total_steps=len(replay),
        device=device if storage == "device" else None,
    )
    latent, _ = seer.freeze(agent, replay, step=0)
    del replay  # the pixels' memory goes back before the latent updates are timed
    return {"pixels": pixels, "latents": timed_rate(lambda step: agent.update(latent, step), n, device)}


def public(frames: np.ndarray, cfg: CurlConfig, device: torch.device, n: int) -> dict[str, float]:
    """The public code's updates/s (benchmarks/public_curl.py), on pixels, then on latents."""
    emulation = PublicCurl(frames[:-1], frames[1:], 1, cfg, device)
    pixels = timed_rate(emulation.update, n, device)
    emulation.freeze()
    return {"pixels": pixels, "latents": timed_rate(emulation.update, n, device)}


def env_spec(storage: str, device: torch.device, phase: int, batch: int) -> RunSpec:
    """dmc6's `curl+seer` on cartpole-swingup, three phases of `phase` agent steps (random, pixels,
    frozen: learning starts after the first, T_f after the second), nothing else scheduled."""
    overrides = Overrides(
        envs=["cartpole-swingup"], agents=["curl+seer"], seeds=1, device=str(device), replay_device=storage
    )
    spec = resolve(load_suite("dmc6"), overrides, AGENTS, KNOWN_ENVS)[0]
    return replace(
        spec,
        steps=3 * phase * spec.action_repeat,
        eval_every=3 * phase * spec.action_repeat,
        agent_overrides={**spec.agent_overrides, "batch_size": batch, "init_steps": phase},
        seer=replace(spec.seer, freeze_at=2 * phase),
    )


def env_rates(storage: str, device: torch.device, steps: int, batch: int) -> dict[str, float]:
    """Env steps/s of the pixels and frozen phases of a real Workspace, through `train_step` (what the run
    loop runs between evaluations: act, update, physics, rendering, replay add, SEER's encoding), `steps`
    timed agent steps each after 2 untimed ones (the FLOP ledger's first observations)."""
    spec, rates = env_spec(storage, device, steps + 2, batch), {}
    with tempfile.TemporaryDirectory() as out:
        ws = Workspace(spec, Path(out))
        ws.memory.start()
        try:
            obs, first = ws.env.reset(), 0
            for phase in ("random", "pixels", "frozen"):
                if phase == "frozen":
                    ws._freeze(first)  # SEER's T_f, as the loop's schedule does it (not timed)
                for step in range(first, first + 2):
                    obs = ws.train_step(obs, step)
                start = synchronized(device)
                for step in range(first + 2, first + 2 + steps):
                    obs = ws.train_step(obs, step)
                rates[phase] = steps * spec.action_repeat / (synchronized(device) - start)
                first += steps + 2
        finally:
            ws._close()
    return {phase: rates[phase] for phase in ("pixels", "frozen")}


def attempt(measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    """`measure()`, or no numbers (its cells read n/a) if it fails: one failing part (no EGL to render, out
    of memory) must not cost the rest of the table."""
    try:
        return measure()
    except Exception as e:  # noqa: BLE001 - reported, and the check goes on
        print(f"  failed: {type(e).__name__}: {e}", file=sys.stderr)
        return {}


def section(measure: Callable[[], dict[str, float]], device: torch.device, nvml: NvmlPeak | None) -> dict:
    """`measure()`'s numbers and the peak GPU memory it used, from an emptied cache (None on a CPU)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        if nvml is not None:
            nvml.reset()
    numbers = measure()
    if device.type != "cuda":
        return {**numbers, "nvml": None, "allocated": None, "reserved": None}
    torch.cuda.synchronize(device)
    nvml_peak = None
    if nvml is not None:
        time.sleep(2 * nvml.period)  # one more NVML sample after the last kernel
        nvml_peak = max(nvml.peak, nvml.read())
    peaks = {
        "allocated": torch.cuda.max_memory_allocated(device),
        "reserved": torch.cuda.max_memory_reserved(device),
    }
    return {**numbers, "nvml": nvml_peak, **peaks}


def progress(column: str, numbers: dict) -> dict:
    """Print a finished column's numbers at once (stderr): a check cut by its time limit still shows them."""
    print(f"  {column}: " + ", ".join(f"{k} {_cell(v)}" for k, v in numbers.items()), file=sys.stderr)
    return numbers


def measure_all(args: argparse.Namespace, device: torch.device, nvml: NvmlPeak | None) -> dict[str, dict]:
    """Each column's update rates, env rates (seer-bench only) and peak memory, one column at a time."""
    cfg, frames = CurlConfig(batch_size=args.batch_size), random_frames(args.transitions)
    cols = {}
    for storage in ("host", "device"):
        print(f"measuring seer-bench, {storage} replay ...", file=sys.stderr)

        def measure(storage: str = storage) -> dict[str, float]:
            rates = attempt(lambda: ours(storage, frames, cfg, device, args.updates))
            env = attempt(lambda: env_rates(storage, device, args.steps, args.batch_size))
            return {**rates, **{f"env {phase}": v for phase, v in env.items()}}

        cols[f"{storage} replay"] = progress(f"{storage} replay", section(measure, device, nvml))
    print("measuring the public update ...", file=sys.stderr)
    cols["public"] = progress(
        "public", section(lambda: attempt(lambda: public(frames, cfg, device, args.updates)), device, nvml)
    )
    return cols


def table(cols: dict[str, dict], device: torch.device) -> str:
    """The result as `|`-separated rows: measure | host replay | device replay | public | unit."""
    mb = "n/a (cpu)" if device.type != "cuda" else None
    rows: list[tuple[str, str, Callable[[dict], Any]]] = [
        ("updates/s pixels", "updates/s", lambda c: c.get("pixels")),
        ("updates/s latents", "updates/s", lambda c: c.get("latents")),
        ("x public pixels", "ratio", lambda c: _ratio(c.get("pixels"), cols["public"].get("pixels"))),
        ("x public latents", "ratio", lambda c: _ratio(c.get("latents"), cols["public"].get("latents"))),
        ("env steps/s pixels", "env steps/s", lambda c: c.get("env pixels")),
        ("env steps/s frozen", "env steps/s", lambda c: c.get("env frozen")),
        ("peak gpu nvml", "MB", lambda c: mb or _mb(c["nvml"])),
        ("peak gpu torch allocated", "MB", lambda c: mb or _mb(c["allocated"])),
        ("peak gpu torch reserved", "MB", lambda c: mb or _mb(c["reserved"])),
    ]
    lines = [f"{'measure':<26}|" + "".join(f"{c:>15} |" for c in COLUMNS) + " unit"]
    for name, unit, cell in rows:
        values = [
            cell(cols[c]) if not (c == "public" and name.startswith(("env", "x "))) else None for c in COLUMNS
        ]
        lines.append(f"{name:<26}|" + "".join(f"{_cell(v):>15} |" for v in values) + f" {unit}")
    return "\n".join(lines)


def _mb(nbytes: int | None) -> float | None:
    return None if nbytes is None else nbytes / 1e6


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    parser.add_argument("--updates", type=int, help="timed updates per cell (cuda 100, cpu 2)")
    parser.add_argument("--transitions", type=int, help="replay transitions (cuda 2000, cpu 40)")
    parser.add_argument("--steps", type=int, help="timed agent steps per env phase (cuda 300, cpu 4)")
    parser.add_argument("--batch-size", type=int, help="batch of an update (cuda 128, cpu 8)")
    # one thread on a CPU: on cores other jobs share, more threads wait on each other (docs/internals.md)
    parser.add_argument("--threads", type=int, help="torch threads (cuda: torch's default, cpu 1)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    defaults = dict(zip(("updates", "transitions", "steps", "batch_size"), SIZES[device.type]))
    for key, value in defaults.items():
        setattr(args, key, getattr(args, key) or value)
    if device.index is not None:  # set_device refuses a device without an index
        torch.cuda.set_device(device)
    torch.set_num_threads(args.threads or (torch.get_num_threads() if device.type == "cuda" else 1))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU dry run"
    print(
        f"gpu_check: {device} ({name}), torch {torch.__version__}, batch {args.batch_size}, "
        f"{args.updates} timed updates per cell, replay of {args.transitions} transitions, "
        f"{args.steps} agent steps per env phase, {torch.get_num_threads()} torch threads"
    )
    nvml = start_nvml(device) if device.type == "cuda" else None
    try:
        cols = measure_all(args, device, nvml)
    finally:
        if nvml is not None:
            nvml.close()
    print(table(cols, device))
    if nvml is not None and nvml.whole_gpu:
        print("peak gpu nvml: NVML lists no process of this pid here, so it is the whole GPU's used memory")


if __name__ == "__main__":
    main()
