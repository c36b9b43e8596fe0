"""What the instrumentation costs: wall time per training step with the FLOP ledger and the memory sampler
on, and with both off, alternating in blocks in one process, in ABBA order (a machine whose speed drifts
slows both alike).

A step here is what the runner does per agent step once updates start: choose an action, run one update,
and, with instrumentation, hand both calls to the FLOP ledger (which observes each kind of call once, then
adds its remembered price) while the sampler thread reads memory. Both phases: pixels (before T_f) and
SEER's latents (after), where an update is ~30x cheaper and a fixed per-step cost weighs most. The ledger
also observes every key again every `REOBSERVE_EVERY` calls: that observation's extra time, amortized over
those calls, is reported as its own column.

    python benchmarks/overhead.py [--batch-size 128] [--blocks 6] [--block 4]

Target: at most 1% overhead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seer_bench.agents.contract import networks
from seer_bench.agents.curl_sac import CurlConfig, CurlSac
from seer_bench.agents.seer import Seer, SeerConfig
from seer_bench.instrument.flops import REOBSERVE_EVERY, FlopLedger
from seer_bench.instrument.memory import MemorySampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seer_update_speed import OBS, filled_replay, random_frames  # noqa: E402


def timed_blocks(agent: CurlSac, replay, obs: np.ndarray, blocks: int, block: int) -> dict[str, float]:
    """Mean seconds per step with instrumentation on and off, blocks alternating, after a warm-up block."""
    ledger, device = FlopLedger(networks(agent)), torch.device("cpu")
    totals, counts, step = {"on": 0.0, "off": 0.0}, {"on": 0, "off": 0}, 0

    def run(instrumented: bool, n: int) -> float:
        nonlocal step
        start = time.perf_counter()
        for _ in range(n):
            if instrumented:
                ledger.observe("act", "act", agent.act, obs, step, eval_mode=False)
                ledger.observe("update", ("update", step % 2), agent.update, replay, step)
            else:
                agent.act(obs, step, eval_mode=False)
                agent.update(replay, step)
            step += 1
        return time.perf_counter() - start

    with MemorySampler(device):  # warm-up: pays fvcore's one-off tracing, as a run's first step does
        run(True, 2)
    run(False, 2)
    for b in range(blocks):
        for mode in ("on", "off") if b % 2 == 0 else ("off", "on"):  # ABBA: a linear drift cancels
            if mode == "on":
                with MemorySampler(device):
                    totals[mode] += run(True, block)
            else:
                totals[mode] += run(False, block)
            counts[mode] += block
    return {mode: totals[mode] / counts[mode] for mode in totals}


def bookkeeping_seconds(n: int = 20000) -> float:
    """Seconds per step of the ledger's two `observe` calls on known keys, around calls that do nothing: the
    part of the overhead that does not depend on the machine's noise, so it can be resolved far below 1%."""
    ledger = FlopLedger()
    ledger.prices.update({"act": 1, ("update", 0): 1, ("update", 1): 1})
    start = time.perf_counter()
    for step in range(n):
        ledger.observe("act", "act", int)
        ledger.observe("update", ("update", step % 2), int)
    observed = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(n):
        int(), int()
    return (observed - (time.perf_counter() - start)) / n


def observation_seconds(agent: CurlSac, replay, n: int = 4) -> float:
    """Extra seconds of one observed update (hooks, recording, pricing from the warm fvcore cache) over a
    plain one, mean over both parities."""
    ledger = FlopLedger(networks(agent))
    ledger.measure(agent.update, replay, 0)  # fvcore's traces, paid once per run
    extra = 0.0
    for step in range(n):
        start = time.perf_counter()
        agent.update(replay, step)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        ledger.measure(agent.update, replay, step)
        extra += time.perf_counter() - start - plain
    return extra / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=8, help="blocks per mode")
    parser.add_argument("--block", type=int, default=4, help="steps per block (even: both update parities)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.blocks} blocks of {args.block} steps per mode, alternating"
    )
    torch.manual_seed(0)
    agent = CurlSac(OBS, 1, CurlConfig(batch_size=args.batch_size), torch.device("cpu"), seed=0)
    frames = random_frames(1000)
    replay = filled_replay(frames)
    obs = frames[0]
    book = bookkeeping_seconds()
    rows = [
        (
            "pixels",
            timed_blocks(agent, replay, obs, args.blocks, args.block),
            observation_seconds(agent, replay),
        )
    ]
    latents, _ = Seer(
        SeerConfig(freeze_at=1),
        replay.allocated_bytes,
        seed=0,
        chunk=args.batch_size,
        layout=replay.layout,
        transitions=replay.spec,
        total_steps=len(replay),
    ).freeze(agent, replay, 0)
    rows.append(
        (
            "latents",
            timed_blocks(agent, latents, obs, args.blocks * 4, args.block * 4),
            observation_seconds(agent, latents),
        )
    )
    print(
        f"\n{'phase':>8} {'off ms/step':>12} {'on ms/step':>11} {'overhead':>9} {'ledger us/step':>15} "
        f"{'ledger share':>13} {'re-observe ms':>14} {'amortized':>10}"
    )
    for phase, t, again in rows:
        overhead = t["on"] / t["off"] - 1
        ledger = (book + again / REOBSERVE_EVERY) / t["off"]
        print(
            f"{phase:>8} {t['off'] * 1e3:>12.2f} {t['on'] * 1e3:>11.2f} {overhead * 100:>8.2f}% "
            f"{book * 1e6:>15.1f} "
            f"{book / t['off'] * 100:>12.3f}% {again * 1e3:>14.2f} "
            f"{again / REOBSERVE_EVERY / t['off'] * 100:>9.3f}%"
            f"  (ledger {ledger * 100:.3f}%: {'meets' if ledger <= 0.01 else 'misses'} the 1% target)"
        )
    print(
        "overhead: measured on - off, memory sampler included (noisy at the 1% level on a shared VM); ledger "
        "share: the ledger's bookkeeping alone over the step time; re-observe: the extra time of one "
        "observed "
        f"update, amortized over the {REOBSERVE_EVERY} calls between two observations of a key"
    )


if __name__ == "__main__":
    main()
