"""Run a list of RunSpecs. A run that raises is recorded as failed and the sweep goes on."""

from __future__ import annotations

import traceback
from pathlib import Path

from seer_bench.records import append_event, run_dir
from seer_bench.runner import run
from seer_bench.suites import RunSpec


def run_local(specs: list[RunSpec], out: Path) -> list[str]:
    """Run every spec in this process, one after another; returns the ids of failed runs."""
    failed = []
    for spec in specs:
        try:
            result = run(spec, out)
            print(f"run {result.run_id} finished: final eval return {result.final_return:.1f}, "
                  f"{result.wall_s / 60:.1f} min", flush=True)
        except Exception as e:  # noqa: BLE001 - any failure of one run must not stop the sweep
            reason = f"{type(e).__name__}: {e}"
            append_event(run_dir(out, spec.run_id), "failed", run_id=spec.run_id, reason=reason,
                         traceback=traceback.format_exc())
            print(f"run {spec.run_id} failed: {reason}", flush=True)
            failed.append(spec.run_id)
    return failed
