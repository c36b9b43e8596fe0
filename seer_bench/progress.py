"""One progress view for a sweep, whatever executes its runs.

Runs write `progress.json` in their directory (records.ProgressFile); this view reads those files on a
background thread, so it follows runs in this process, in local worker processes and on Ray workers that
share the output directory alike. It shows one overall line (runs finished, running, failed; env steps
done; ETA from the step rate measured since the sweep started) and one line per running run.

On a terminal these are tqdm bars. When output goes to a file (CI, cluster logs) there are no carriage
returns: a block of plain lines every `log_every` seconds, and one line as each run ends.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from seer_bench.records import read_progress, run_dir
from seer_bench.suites import RunSpec

BAR = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} env steps [{elapsed}{postfix}]"  # postfix: ", ..."
)


def _terminal_columns(stream: TextIO) -> int:
    """Width of the terminal `stream` writes to; 0 when it is a file or a terminal without a size (a
    headless pty), where bars would not render and plain lines are written instead."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or no rate yet
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class _Run:
    spec: RunSpec
    started: float = field(default_factory=time.time)
    first_steps: int = 0  # env steps this attempt began at (a resumed run starts part way)
    steps: int = 0
    eval_return: float = float("nan")
    phase: str = "starting"
    bar: tqdm | None = None

    def rate(self, now: float) -> float:
        """Env steps per second of this attempt."""
        return (self.steps - self.first_steps) / max(now - self.started, 1e-9)


class SweepProgress:
    """Start with `start()`, tell it `run_started(spec)` and `run_ended(spec, status, text)`, `close()`."""

    def __init__(
        self,
        out: Path,
        specs: list[RunSpec],
        skipped: int = 0,
        stream: TextIO | None = None,
        interval: float = 1.0,
        log_every: float = 30.0,
    ) -> None:
        self.out, self.stream = Path(out), stream or sys.stderr
        self.tty = _terminal_columns(self.stream) > 0
        self.interval, self.log_every = interval, log_every
        self.total_runs = len(specs) + skipped
        self.total_steps = sum(s.agent_steps * s.action_repeat for s in specs)
        self.done, self.failed, self.skipped = 0, 0, skipped
        self.steps_ended = 0  # env steps reached by the runs that ended in this sweep
        self.fresh_ended = 0  # of those, the ones run in this sweep (a resumed run started part way)
        self.running: dict[str, _Run] = {}
        self.queued: dict[str, _Run] = {}
        self.began = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._bar = (
            tqdm(
                total=self.total_steps,
                desc="sweep",
                position=0,
                file=self.stream,
                dynamic_ncols=True,
                bar_format=BAR,
                mininterval=0.5,
            )
            if self.tty
            else None
        )
        self._logged = 0.0

    # --- events from the executor ---------------------------------------------------------------------
    def start(self) -> "SweepProgress":
        self._print(
            f"sweep: {self.total_runs} run(s), {self.skipped} already finished (skipped), "
            f"{self.total_steps:,} env steps to run"
        )
        self._thread.start()
        return self

    def run_started(self, spec: RunSpec) -> None:
        with self._lock:
            self._begin(_Run(spec))

    def run_queued(self, spec: RunSpec) -> None:
        """A run handed to a scheduler (Ray) that may wait for resources: it counts as
        running once it writes progress."""
        with self._lock:
            self.queued[spec.run_id] = _Run(spec)

    def run_ended(self, spec: RunSpec, status: str, text: str) -> None:
        with self._lock:
            run = self.running.pop(spec.run_id, None) or self.queued.pop(spec.run_id, None)
            if run is not None:
                self._read(run)
                self.steps_ended += run.steps
                self.fresh_ended += run.steps - run.first_steps
                if status != "finished":  # what it will never run leaves the total
                    self.total_steps -= spec.agent_steps * spec.action_repeat - run.steps
                if run.bar is not None:
                    run.bar.close()
            self.done += status == "finished"
            self.failed += status == "failed"
            self._print(f"run {spec.run_id} {status}: {text} [{self._counts()}]")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            self._draw(final=True)
            if self._bar is not None:
                self._bar.close()

    # --- drawing --------------------------------------------------------------------------------------
    def _begin(self, run: _Run) -> None:
        self.running[run.spec.run_id] = run
        if self.tty:
            run.bar = tqdm(
                total=run.spec.agent_steps * run.spec.action_repeat,
                desc=run.spec.run_id,
                bar_format=BAR,
                position=len(self.running),
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def _counts(self) -> str:
        queued = f", {len(self.queued)} queued" if self.queued else ""
        return (
            f"{self.done + self.skipped}/{self.total_runs} finished, {len(self.running)} running{queued}, "
            f"{self.failed} failed"
        )

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _read(self, run: _Run) -> bool:
        """Update `run` from its progress.json; False when there is none from this attempt yet."""
        state = read_progress(run_dir(self.out, run.spec.run_id))
        if state is None or state.get("time", 0) < run.started - 1:  # none yet, or an earlier attempt's
            return False
        run.steps, run.phase = int(state["env_steps"]), state.get("phase", "")
        run.eval_return = float(state.get("eval_return", float("nan")))
        run.first_steps = int(state.get("start_env_steps", 0))
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for run_id, run in list(self.queued.items()):
                    if self._read(run):  # the scheduler started it
                        del self.queued[run_id]
                        run.started = time.time()
                        self._begin(run)
                for run in self.running.values():
                    self._read(run)
                self._draw()

    def _draw(self, final: bool = False) -> None:
        # steps reached count towards the total (a resumed run's earlier steps included); the rate, and so
        # the ETA, counts only the steps run since this sweep began
        stepped = self.steps_ended + sum(r.steps for r in self.running.values())
        fresh = self.fresh_ended + sum(r.steps - r.first_steps for r in self.running.values())
        elapsed = time.time() - self.began
        rate = fresh / elapsed if elapsed > 0 else 0.0
        remaining = self.total_steps - stepped
        eta = remaining / rate if rate > 0 else float("inf")
        now = time.time()
        if self._bar is not None:  # tqdm's own rate would count a resumed run's earlier steps as done now
            self._bar.total = self.total_steps
            self._bar.n = min(stepped, self.total_steps)
            self._bar.set_postfix_str(
                f"{rate:.1f} env steps/s, ETA {_clock(eta)}; {self._counts()}", refresh=False
            )
            self._bar.refresh()
            for run in self.running.values():
                if run.bar is not None:
                    run.bar.n = run.steps
                    run.bar.set_postfix_str(
                        f"{run.rate(now):.1f}/s, {run.phase}, eval return {run.eval_return:.1f}",
                        refresh=False,
                    )
                    run.bar.refresh()
            return
        if not final and now - self._logged < self.log_every:
            return
        self._logged = now
        lines = [
            f"[{time.strftime('%H:%M:%S')}] sweep: {self._counts()}; {stepped:,}/{self.total_steps:,} env "
            f"steps "
            f"({rate:.1f}/s), elapsed {_clock(elapsed)}, ETA {_clock(eta) if not final else '0:00:00'}"
        ]
        for run in self.running.values():
            total = run.spec.agent_steps * run.spec.action_repeat
            lines.append(
                f"  {run.spec.run_id}: {run.steps:,}/{total:,} env steps ({100 * run.steps / total:.0f}%), "
                f"{run.rate(now):.1f}/s, {run.phase}, eval return {run.eval_return:.1f}"
            )
        print("\n".join(lines), file=self.stream, flush=True)
