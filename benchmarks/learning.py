"""Evidence of learning: the `quick` scale of dmc6 on cartpole-swingup for one agent, on this machine.

Prints eval return over steps, the peak and final returns and the wall time, and exits 1 when the run
never reaches the bar (a uniformly random policy scores about 20 on this task; the issue asks that the
quick run reach 150). Single-seed CURL curves on cartpole-swingup are noisy at 10-40k env steps, so the
final return is printed beside the peak, not hidden behind it.

    python benchmarks/learning.py [--agent curl] [--out reports/learning] [--min-return 150] [-- BENCH FLAGS]

Flags after `--` go to bench.py unchanged, e.g. `--agent curl+seer -- --latent-dtype float16`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from seer_bench.cli import main as bench_main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agent", default="curl")
    parser.add_argument("--env", default="cartpole-swingup")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/learning"))
    parser.add_argument("--min-return", type=float, default=150.0)
    parser.add_argument("bench_flags", nargs="*", help="extra bench.py flags, after --")
    args = parser.parse_args()
    code = bench_main(
        [
            "--suite",
            "dmc6",
            "--scale",
            "quick",
            "--envs",
            args.env,
            "--agents",
            args.agent,
            "--seeds",
            str(args.seed + 1),
            "--out",
            str(args.out),
            *args.bench_flags,
        ]
    )
    if code != 0:
        return code
    runs = sorted((args.out / "runs" / args.agent / args.env).glob(f"budget_*/seed_{args.seed}"))
    metrics = pd.read_csv(runs[-1] / "metrics.csv")
    print(f"\n{args.agent} on {args.env}, quick scale, seed {args.seed} ({runs[-1]})")
    metrics["cum_gflop"] = metrics["cum_flops"] / 1e9
    print(
        metrics[
            [
                "step",
                "env_steps",
                "eval_return",
                "eval_return_std",
                "updates",
                "wall_s",
                "cum_gflop",
                "replay_capacity",
                "replay_size",
                "frozen",
            ]
        ].to_string(index=False)
    )
    final, peak = float(metrics["eval_return"].iloc[-1]), float(metrics["eval_return"].max())
    peak_at = int(metrics.loc[metrics["eval_return"].idxmax(), "env_steps"])
    verdict = "PASS" if peak >= args.min_return else "FAIL"
    print(
        f"peak eval return {peak:.1f} at {peak_at} env steps, final {final:.1f} (bar {args.min_return:g}: "
        f"{verdict}); wall {metrics['wall_s'].iloc[-1] / 60:.1f} min"
    )
    return 0 if peak >= args.min_return else 1


if __name__ == "__main__":
    sys.exit(main())
