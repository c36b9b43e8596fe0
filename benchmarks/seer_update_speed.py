"""Wall time and FLOPs of one CURL-SAC update before T_f (pixels) and after (SEER's stored latents), next to
the public code's update (benchmarks/public_curl.py) measured in the same process.

Cartpole-swingup shapes (9x100x100 pixels cropped to 84, one action), the public SEER hyperparameters.
For each batch size and phase, seer-bench's update and the public one are timed alternately, update by
update, over `--updates` updates of both step parities (the actor and target update every second step, as
in training), after warm-up updates: a machine whose speed drifts (shared VMs do, by 30%) slows both
alike, so the speed-up column is the figure to trust. FLOPs are torch's FlopCounterMode (2 flops per
multiply-add, forward and backward of what actually runs), mean of an even and an odd update.

    python benchmarks/seer_update_speed.py [--batch-sizes 128,512] [--updates 10] [--device cpu] [--threads 2]
        [--phases pixels,latents]

Targets at batch 128, as speed-ups over the public update measured in the same run (the public code's own
time depends on the machine: about 830 ms on pixels and 35-40 ms on latents on the reference 2-core CPU with
2 torch threads, with its optimizer wiring): on a CPU >= 1.5x on pixels and >= 2x on latents; on a GPU
>= 2x the public code's updates per second. Measured ratios, and why the latent target is out of reach at
batch 128 on the reference CPU (the update is matrix products the public update runs too):
docs/internals.md, "The latent update's speed".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.replay import PaperReplay, TransitionSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_curl import PublicCurl  # noqa: E402

OBS = (9, 100, 100)
TARGET_SPEEDUP = {"cpu": {"pixels": 1.5, "latents": 2.0}, "cuda": {"pixels": 2.0, "latents": 2.0}}


def random_frames(n: int, seed: int = 0) -> np.ndarray:
    """Random pixels: an update's cost does not depend on what the pixels show."""
    return np.random.default_rng(seed).integers(0, 256, (n + 1, *OBS), dtype=np.uint8)


def filled_replay(frames: np.ndarray) -> PaperReplay:
    spec = TransitionSpec(OBS, action_dim=1, frame_stack=3, episode_steps=125)
    n = len(frames) - 1
    replay = PaperReplay(spec, n)
    rng = np.random.default_rng(1)
    for i in range(n):
        replay.add(
            frames[i], rng.uniform(-1, 1, 1), float(rng.normal()), frames[i + 1], False, (i + 1) % 125 == 0
        )
    return replay


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_alternately(
    updates: dict[str, Callable[[int], None]], n: int, device: torch.device
) -> dict[str, float]:
    """Mean seconds per update of each callable, timed update by update in turn, after 2 warm-up updates."""
    for step in range(2):
        for update in updates.values():
            update(step)
    total = dict.fromkeys(updates, 0.0)
    for step in range(n):
        for name, update in updates.items():
            sync(device)
            start = time.perf_counter()
            update(step)
            sync(device)
            total[name] += time.perf_counter() - start
    return {name: t / n for name, t in total.items()}


def flops_per_update(update: Callable[[int], None]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        update(0)
        update(1)
    return counter.get_total_flops() / 2


def measure(
    batch: int, transitions: int, updates: int, device: torch.device, phases: tuple[str, ...]
) -> list[dict]:
    cfg = CurlConfig(batch_size=batch)
    frames = random_frames(transitions)
    torch.manual_seed(0)
    ours = CurlSac(OBS, 1, cfg, device, seed=0)
    replay = filled_replay(frames)
    public = PublicCurl(frames[:-1], frames[1:], 1, cfg, device)
    rows = []
    for phase in ("pixels", "latents"):
        if phase == "latents":
            seer = Seer(
                SeerConfig(freeze_at=1),
                budget_bytes=replay.allocated_bytes,
                seed=0,
                chunk=batch,
                layout=replay.layout,
                transitions=replay.spec,
                total_steps=len(replay),
            )
            start = time.perf_counter()
            replay, _ = seer.freeze(ours, replay, step=0)
            convert_s = time.perf_counter() - start
            public.freeze()
        if phase not in phases:
            continue
        fns = {"ours": lambda step: ours.update(replay, step), "public": public.update}
        seconds = time_alternately(fns, updates, device)
        flops = {name: flops_per_update(fn) for name, fn in fns.items()}
        rows.append(
            {
                "batch": batch,
                "phase": phase,
                "ours_s": seconds["ours"],
                "public_s": seconds["public"],
                "ours_flops": flops["ours"],
                "public_flops": flops["public"],
                "convert_s": convert_s if phase == "latents" else float("nan"),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per agent and cell")
    parser.add_argument("--transitions", type=int, default=1000, help="replay size before conversion")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--phases", default="pixels,latents", help="which updates to time (latents alone skips minutes)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.updates} "
        f"timed "
        f"updates per agent and cell (alternating), replay of {args.transitions} transitions"
    )

    rows = [
        row
        for batch in args.batch_sizes.split(",")
        for row in measure(int(batch), args.transitions, args.updates, device, tuple(args.phases.split(",")))
    ]
    print(
        f"\n{'batch':>5} {'phase':>8} {'seer-bench ms':>14} {'public ms':>10} {'speed-up':>9} "
        f"{'seer-bench GFLOP':>17} {'public GFLOP':>13} {'convert s':>10}"
    )
    for r in rows:
        print(
            f"{r['batch']:>5} {r['phase']:>8} {r['ours_s'] * 1e3:>14.1f} {r['public_s'] * 1e3:>10.1f} "
            f"{r['public_s'] / r['ours_s']:>8.2f}x {r['ours_flops'] / 1e9:>17.2f} "
            f"{r['public_flops'] / 1e9:>13.2f} "
            f"{r['convert_s']:>10.1f}"
        )
    by_batch = {b: [r for r in rows if r["batch"] == b] for b in {r["batch"] for r in rows}}
    for b, (pix, lat) in sorted((b, rs) for b, rs in by_batch.items() if len(rs) == 2):
        print(
            f"batch {b}: SEER update on latents is {pix['ours_s'] / lat['ours_s']:.1f}x faster than on "
            f"pixels "
            f"({pix['ours_flops'] / lat['ours_flops']:.1f}x fewer FLOPs)"
        )
    for r in rows:
        if r["batch"] != 128:
            continue
        phase, speedup = r["phase"], r["public_s"] / r["ours_s"]
        need = TARGET_SPEEDUP["cuda" if device.type == "cuda" else "cpu"][phase]
        print(
            f"batch 128 {phase}: {r['ours_s'] * 1e3:.1f} ms, {speedup:.2f}x the public update's rate "
            f"({'meets' if speedup >= need else 'misses'} the {need:g}x {device.type} target)"
        )
    print(
        "GFLOP: torch FlopCounterMode, 2 flops per multiply-add, forward + backward, mean of an even and an "
        "odd step"
    )


if __name__ == "__main__":
    main()
