"""benchmarks/throughput.py as a short CPU dry run: every component of every phase is reported, and the
shares account for the whole step, so a later change to the loop cannot drop a component silently."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
GPU_CHECK_ROWS = (
    "updates/s pixels",
    "updates/s latents",
    "x public pixels",
    "x public latents",
    "env steps/s pixels",
    "env steps/s frozen",
    "peak gpu nvml",
    "peak gpu torch allocated",
    "peak gpu torch reserved",
)


def test_gpu_check_dry_run_prints_every_row_with_numbers():
    """benchmarks/gpu_check.sh --device cpu: the GPU check's code end to end at tiny sizes. Every row is
    there; rates parse as positive numbers for both seer-bench columns (and the public one's updates); the
    memory columns say they are not measured on a CPU."""
    import os

    out = subprocess.run(
        ["bash", str(GPU_CHECK), "--device", "cpu"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    ).stdout
    lines = [line for line in out.splitlines() if "|" in line]
    header = [cell.strip() for cell in lines[0].split("|")]
    assert header == ["measure", "host replay", "device replay", "public", "unit"]
    rows = {cells[0]: cells[1:4] for cells in ([c.strip() for c in line.split("|")] for line in lines[1:])}
    assert tuple(rows) == GPU_CHECK_ROWS
    for name, cells in rows.items():
        if name.startswith("peak"):
            assert cells == ["n/a (cpu)"] * 3
            continue
        measured = cells if name.startswith("updates") else cells[:2]
        assert all(float(cell) > 0 for cell in measured), (name, cells)
        assert name.startswith("updates") or cells[2] == "n/a"


def _module():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_throughput_dry_run_accounts_for_every_component():
    args = [
        "--steps",
        "4",
        "--warmup",
        "2",
        "--batch-size",
        "8",
        "--envs",
        "cartpole-swingup",
        "--threads",
        "1",
    ]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json"], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)["results"][0]
    bench = _module()
    names = {*bench.COMPONENTS, "other"}
    for phase in bench.PHASES:
        parts = result["phases"][phase]["components"]
        assert set(parts) == names
        assert abs(sum(c["share"] for c in parts.values()) - 100) < 1e-6
        assert parts["other"]["share"] >= 0  # exclusive times: nested calls are not counted twice
        assert parts["env physics"]["share"] > 0 and parts["render"]["share"] > 0
        assert (parts["update"]["share"] > 0) == (phase != "random")
        assert (parts["encode"]["share"] > 0) == (phase == "frozen")
    lines = bench.table(result, 4).splitlines()
    rows = [line for line in lines if line.startswith(tuple(names))]
    assert len(rows) == len(names)
    shares = [[float(cell[:-1]) for cell in row.split() if cell.endswith("%")] for row in rows]
    assert all(abs(sum(col) - 100) <= 0.05 * len(names) for col in zip(*shares))
