"""curl against curl+seer (float32 and float16 latents) at the dmc6 `quick` scale, same seed: return curves,
wall time and training FLOPs side by side, and the return difference float16 latents make.

Each configuration is one run of `bench.py` into `--out/<name>`; a configuration whose run already
finished there is read, not run again, so the comparison can be printed from runs made earlier (for
instance one at a time, with nothing else on the machine: their wall times are the point).

    python benchmarks/seer_learning.py [--env cartpole-swingup] [--seed 0] [--out reports/seer_learning]

Single-seed returns on cartpole-swingup swing by 100+ between evaluations at this scale: a difference
between two such curves is a measurement of this seed, not a verdict on the method.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from seer_bench.cli import main as bench_main
from seer_bench.records import read_events

CONFIGS = {  # name -> (agent, extra bench.py flags)
    "curl": ("curl", []),
    "seer": ("curl+seer", []),
    "seer-fp16": ("curl+seer", ["--latent-dtype", "float16"]),
}


def run_dir(out: Path, name: str, agent: str, env: str, seed: int) -> Path | None:
    found = sorted((out / name / "runs" / agent / env).glob(f"budget_*/seed_{seed}"))
    return found[-1] if found else None


def finished(path: Path | None) -> bool:
    return path is not None and any(e["event"] == "finished" for e in read_events(path))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="cartpole-swingup")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/seer_learning"))
    args = parser.parse_args()
    curves = {}
    for name, (agent, flags) in CONFIGS.items():
        path = run_dir(args.out, name, agent, args.env, args.seed)
        if not finished(path):
            code = bench_main(
                [
                    "--suite",
                    "dmc6",
                    "--scale",
                    "quick",
                    "--envs",
                    args.env,
                    "--agents",
                    agent,
                    "--seeds",
                    str(args.seed + 1),
                    "--out",
                    str(args.out / name),
                    *flags,
                ]
            )
            path = run_dir(args.out, name, agent, args.env, args.seed)
            if code != 0 or not finished(path):
                print(f"{name}: the run did not finish (exit {code})", file=sys.stderr)
                return 1
        curves[name] = pd.read_csv(path / "metrics.csv").set_index("env_steps")

    table = pd.DataFrame({f"{name} return": m["eval_return"] for name, m in curves.items()})
    for name, m in curves.items():
        table[f"{name} wall min"] = m["wall_s"] / 60
    for name, m in curves.items():
        if "cum_flops" in m:
            table[f"{name} TFLOP"] = m["cum_flops"] / 1e12
    table["frozen"] = curves["seer"]["frozen"]
    print(
        f"{args.env}, dmc6 quick scale, seed {args.seed}: eval return (10 episodes), wall minutes, training "
        f"TFLOP"
    )
    print(table.to_string(float_format=lambda v: f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"))

    after = curves["seer"]["frozen"] == 1
    fp32, fp16 = curves["seer"]["eval_return"][after], curves["seer-fp16"]["eval_return"][after]
    print(
        f"\nafter T_f, float16 - float32 latents: mean eval return {fp16.mean() - fp32.mean():+.1f} "
        f"({fp16.mean():.1f} vs {fp32.mean():.1f} over {after.sum()} evaluations), final "
        f"{fp16.iloc[-1] - fp32.iloc[-1]:+.1f}"
    )
    base, seer = curves["curl"], curves["seer"]
    print(
        f"wall time: curl {base['wall_s'].iloc[-1] / 60:.1f} min, curl+seer "
        f"{seer['wall_s'].iloc[-1] / 60:.1f} min "
        f"({base['wall_s'].iloc[-1] / seer['wall_s'].iloc[-1]:.2f}x); final return "
        f"{base['eval_return'].iloc[-1]:.1f} "
        f"vs {seer['eval_return'].iloc[-1]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
