"""Wall time and FLOPs of one CURL-SAC update before T_f (pixels) and after (SEER's stored latents).

Cartpole-swingup shapes (9x100x100 pixels cropped to 84, one action), public SEER hyperparameters, on
whatever device torch picks (`--device`). Each phase is timed over `--updates` updates alternating step
parity (the actor and target update every second step, as in training), after warm-up updates, in one
process; FLOPs are torch's FlopCounterMode on one even and one odd update (2 flops per multiply-add,
forward and backward of what actually runs), averaged.

    python benchmarks/seer_update_speed.py [--batch-sizes 128,512] [--updates 10] [--device cpu]

Targets on the reference 2-core CPU (2 torch threads) at batch 128: pixels <= 540 ms per update (the
public code: about 640 ms), latents <= 20 ms (public: about 39 ms).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.replay import PaperReplay, TransitionSpec

OBS = (9, 100, 100)
TARGET_MS = {"pixels": 540.0, "latents": 20.0}  # batch 128 on the reference CPU


def filled_replay(n: int, seed: int = 0) -> PaperReplay:
    """Random pixels: an update's cost does not depend on what the pixels show."""
    spec = TransitionSpec(OBS, action_dim=1, frame_stack=3, episode_steps=125)
    replay = PaperReplay(spec, n)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n + 1, *OBS), dtype=np.uint8)
    for i in range(n):
        replay.add(frames[i], rng.uniform(-1, 1, 1), float(rng.normal()), frames[i + 1], False, (i + 1) % 125 == 0)
    return replay


def time_updates(agent: CurlSac, replay, updates: int, device: torch.device) -> float:
    """Mean seconds per update over `updates` updates (both parities), after 2 warm-up updates."""
    for step in range(2):
        agent.update(replay, step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(updates):
        agent.update(replay, step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / updates


def flops_per_update(agent: CurlSac, replay) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(replay, 0)
        agent.update(replay, 1)
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--transitions", type=int, default=1000, help="replay size before conversion")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.updates} timed updates per cell, replay of {args.transitions} transitions")

    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        torch.manual_seed(0)
        agent = CurlSac(OBS, 1, CurlConfig(batch_size=batch), device, seed=0)
        replay = filled_replay(args.transitions)
        pixel_s = time_updates(agent, replay, args.updates, device)
        pixel_flops = flops_per_update(agent, replay)
        seer = Seer(SeerConfig(freeze_at=1), budget_bytes=replay.allocated_bytes, seed=0, chunk=batch)
        start = time.perf_counter()
        latents, _ = seer.freeze(agent, replay, step=0)
        convert_s = time.perf_counter() - start
        latent_s = time_updates(agent, latents, args.updates, device)
        latent_flops = flops_per_update(agent, latents)
        rows.append((batch, pixel_s, latent_s, pixel_flops, latent_flops, convert_s))

    print(f"\n{'batch':>5} {'pixels ms':>10} {'latents ms':>11} {'speed-up':>9} {'pixels GFLOP':>13} "
          f"{'latents GFLOP':>14} {'FLOP ratio':>11} {'convert s':>10}")
    for batch, ps, ls, pf, lf, cs in rows:
        print(f"{batch:>5} {ps * 1e3:>10.1f} {ls * 1e3:>11.1f} {ps / ls:>8.1f}x {pf / 1e9:>13.2f} {lf / 1e9:>14.3f} "
              f"{pf / lf:>10.1f}x {cs:>10.1f}")
    for batch, ps, ls, *_ in rows:
        if batch == 128 and device.type == "cpu":
            for phase, sec in (("pixels", ps), ("latents", ls)):
                verdict = "meets" if sec * 1e3 <= TARGET_MS[phase] else "misses"
                print(f"batch 128 {phase}: {sec * 1e3:.1f} ms {verdict} the {TARGET_MS[phase]:g} ms target")
    print("GFLOP: torch FlopCounterMode, 2 flops per multiply-add, forward + backward, mean of an even and an odd step")


if __name__ == "__main__":
    main()
