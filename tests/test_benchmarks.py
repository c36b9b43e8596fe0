"""benchmarks/throughput.py and `bench.py profile --timing` as short CPU dry runs: every component of every
phase is reported, and the shares account for the whole step, so a later change to the loop cannot drop a
component silently."""

import json
import subprocess
import sys
from pathlib import Path

from seer_bench.cli import main
from seer_bench.timing_profile import COMPONENTS, PHASES, format_timing

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
    names = {*COMPONENTS, "other"}
    for phase in PHASES:
        parts = result["phases"][phase]["components"]
        assert set(parts) == names
        assert abs(sum(c["share"] for c in parts.values()) - 100) < 1e-6
        assert parts["other"]["share"] >= 0  # exclusive times: nested calls are not counted twice
        assert parts["physics"]["share"] > 0 and parts["render"]["share"] > 0
        assert (parts["update"]["share"] > 0) == (phase != "random")
        assert (parts["encode"]["share"] > 0) == (phase == "frozen")
        # the ledger's own cost is reported: its sections per step were counted (act, physics, render, ...)
        assert result["phases"][phase]["ledger_sections_per_step"] >= 4
        assert result["phases"][phase]["ledger_share"] > 0
    lines = format_timing(result).splitlines()
    rows = [line for line in lines if line.startswith(tuple(names))]
    assert len(rows) == len(names)
    shares = [[float(cell[:-1]) for cell in row.split() if cell.endswith("%")] for row in rows]
    assert all(abs(sum(col) - 100) <= 0.05 * len(names) for col in zip(*shares))


def test_profile_timing_on_atari_reports_its_phases(capsys):
    """DER on an Atari game: no uniformly random phase (its noisy policy acts), the emulator's screen is its
    physics (no render category), and the update starts once the replay holds a batch."""
    argv = ["profile", "--timing", "--suite", "atari8", "--envs", "pong", "--agents", "der+seer"]
    assert main([*argv, "--timing-steps", "3", "--device", "cpu", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert list(result["phases"]) == list(PHASES) and result["device"] == "cpu"
    for phase, summary in result["phases"].items():
        parts = summary["components"]
        assert parts["physics"]["share"] > 0 and parts["render"]["share"] == 0
        assert parts["act"]["share"] > 0  # the noisy policy acts from step 0
        assert (parts["update"]["share"] > 0) == (phase != "random")
        assert (parts["encode"]["share"] > 0) == (phase == "frozen")
    assert result["convert_s"] > 0 and result["converted"] > 0


def test_profile_timing_refuses_no_steps(capsys):
    argv = ["profile", "--timing", "--suite", "dmc6", "--envs", "cartpole-swingup", "--timing-steps", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--timing-steps must be >= 1 agent step, got 0" in err and err.count("\n") == 1, err
