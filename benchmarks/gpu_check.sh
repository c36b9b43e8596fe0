#!/usr/bin/env bash
# What a GPU run of seer-bench costs, in one table: updates/s (seer-bench with a host and with a device
# replay, and the public code's update; pixels and latents), env steps/s end to end, and peak GPU memory
# from NVML next to torch's. At most 5 minutes on one GPU; `--device cpu` is a dry run (tiny sizes) for CI.
#
#   benchmarks/gpu_check.sh [--device cuda|cuda:N|cpu] [--updates N] [--transitions N] [--steps N]
#                           [--batch-size N]
# Run from the repository root in the environment seer-bench is installed in (PYTHON overrides `python`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec timeout 300 "${PYTHON:-python}" "$here/gpu_check.py" "$@"
