"""Records on disk: the only contract between a run and everything after it.

`<out>/plan.json`: every run the latest sweep into `out` asked for (run id -> RunSpec), so that reports
show runs that never started instead of silently averaging the ones that did.

Per run directory `<out>/runs/<agent>/<env>/budget_<gb>/seed_<n>/`:
- `config.json`: the fully resolved RunSpec, agent config, replay sizing, versions and device;
- `metrics.csv`: one row per evaluation (columns: METRICS_COLUMNS);
- `events.jsonl`: one JSON object per event (run started, resumed, frozen, finished, failed, ...);
- `progress.json`: where the run is now (`ProgressFile`).
"""

from __future__ import annotations

import csv
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import pandas as pd

from seer_bench.errors import DamagedRecord

METRICS_COLUMNS = [
    "step",  # agent steps
    "env_steps",  # agent steps x action repeat
    # mean return of the evaluation episodes (the agent's evaluation policy; Atari: raw game score)
    "eval_return",
    "eval_return_std",
    "hns",  # Atari: human-normalized score of eval_return, (score - random) / (human - random); else empty
    "train_episodes",  # training episodes finished (Atari: each lost life ends one)
    "updates",
    "wall_s",  # seconds since the run started, evaluation included
    "replay_capacity",  # transitions the budget holds
    "replay_size",  # transitions held now
    "replay_bytes",  # bytes of replay slots written so far (resident)
    # the most replay bytes held since the previous row, this row's included (SEER's pixels before T_f)
    "replay_peak_bytes",
    "replay_alloc_bytes",  # bytes of the replay arrays as allocated (mapped lazily; for the run's length)
    "rss_bytes",  # resident set size of this process, read at this row
    "rss_peak_bytes",  # peak resident set size since the previous row (sampled about once a second)
    "gpu_bytes",  # peak device memory of this process since the previous row (NVML); empty without a GPU
    "gpu_alloc_bytes",  # torch's peak allocated device memory since the previous row; empty without a GPU
    "gpu_reserved_bytes",  # torch's peak reserved (cached) device memory since the previous row
    "frozen",  # 1 once SEER has frozen the encoder and the replay holds latents, else 0
    "update_flops",  # FLOPs of one update in the current phase (mean over the actor-update period)
    "cum_flops",  # training FLOPs so far, all categories (fvcore convention: 1 multiply-add = 1 FLOP)
    "cum_flops_act",  # policy forwards for training actions
    "cum_flops_update",  # gradient updates: forward and backward of every pass that runs
    "cum_flops_encode",  # SEER: encoding each new transition after T_f (all crop copies)
    "cum_flops_convert",  # SEER: the one-off conversion of the pixel replay at T_f
]


def run_dir(out: Path, run_id: str) -> Path:
    return Path(out) / "runs" / run_id


@contextmanager
def atomic_file(file: Path, mode: str = "w", durable: bool = False) -> Iterator[IO]:
    """Write `file` through a temporary file renamed over it once complete: a reader, or a crash, sees
    the old file or the new one, never half of one. `durable` also fsyncs it before the rename (a
    checkpoint that must survive the machine, not just the process)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")  # two processes writing never share a temp file
    try:
        with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(file)
    except BaseException:  # a full disk, a kill: a half-written temp file must not keep the disk full
        tmp.unlink(missing_ok=True)
        raise


def write_json(file: Path, data: Any) -> None:
    with atomic_file(file) as f:
        f.write(json.dumps(data, indent=2, sort_keys=True))


def write_config(path: Path, config: dict[str, Any]) -> None:
    write_json(path / "config.json", config)


def read_plan(out: Path) -> dict[str, dict[str, Any]]:
    file = Path(out) / "plan.json"
    return json.loads(file.read_text()) if file.exists() else {}


def write_plan(out: Path, specs: dict[str, dict[str, Any]]) -> None:
    """Record the runs (run id -> spec dict) the latest sweep into `out` asked for. It replaces the
    previous plan: runs of earlier sweeps keep their records, and a narrower re-run does not leave the
    runs it dropped "not started" for ever."""
    write_json(Path(out) / "plan.json", specs)


def append_event(path: Path, kind: str, **fields: Any) -> None:
    """One line per event, written with one `write` call. A line a crash left torn (no newline at the
    end of the file) is cut first, so the new event starts a line of its own."""
    path.mkdir(parents=True, exist_ok=True)
    file = path / "events.jsonl"
    _cut_torn_line(file)
    with open(file, "a") as f:
        f.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")


def _cut_torn_line(file: Path) -> None:
    """Truncate `file` after its last newline when it does not end with one (a write cut by a crash)."""
    if not file.exists() or file.stat().st_size == 0:
        return
    data = file.read_bytes()  # an events log is a few kB
    if not data.endswith(b"\n"):
        with open(file, "rb+") as f:
            f.truncate(data.rfind(b"\n") + 1)


class CsvLog:
    """Appends rows to a CSV file of fixed `columns`, flushed per row so a crash keeps every finished row.

    `keep_through` (a resumed run): keep the rows up to that agent step (column `step`), the ones its
    checkpoint had seen, and drop later ones, which the resumed run writes again; otherwise start a new file.
    """

    def __init__(self, file: Path, columns: list[str], keep_through: int | None = None) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_through is not None and file.exists():
            with open(file, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= keep_through]
        with atomic_file(file) as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(kept)
        self._file = open(file, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


TRAIN_COLUMNS = [
    "step",  # agent step of the last update in the window
    "env_steps",  # step x action repeat
    "updates",  # updates so far
    # a key of the dict the agent's update returns (critic_loss, actor_loss, alpha, curl_loss, loss...)
    "metric",
    "mean",  # its mean over the window's updates that reported it
    "count",  # how many updates of the window reported it (e.g. the actor's loss: every second update)
]


class TrainLog:
    """train.csv: the training metrics `update` returns, averaged over windows of `every` updates, one row
    per metric (long format: `pandas.read_csv(...).pivot_table(index="step", columns="metric", values="mean")`
    gives one column per metric). A window also ends at SEER's freeze and at each checkpoint."""

    def __init__(self, file: Path, action_repeat: int, every: int, keep_through: int | None = None) -> None:
        self._log = CsvLog(file, TRAIN_COLUMNS, keep_through)
        self.action_repeat, self.every = action_repeat, every
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._window, self._step, self._updates = 0, 0, 0

    def add(self, step: int, updates: int, metrics: dict[str, float] | None) -> None:
        for name, value in (metrics or {}).items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
            self._counts[name] = self._counts.get(name, 0) + 1
        self._window, self._step, self._updates = self._window + 1, step, updates
        if self._window >= self.every:
            self.flush()

    def flush(self) -> None:
        for name in sorted(self._sums):
            self._log.write(
                {
                    "step": self._step,
                    "env_steps": self._step * self.action_repeat,
                    "updates": self._updates,
                    "metric": name,
                    "mean": self._sums[name] / self._counts[name],
                    "count": self._counts[name],
                }
            )
        self._sums.clear()
        self._counts.clear()
        self._window = 0

    def close(self) -> None:
        self.flush()
        self._log.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The run's events. A torn last line (a crash mid-write: no newline after it) is left out; any other
    line that is not a JSON event raises DamagedRecord naming the file and line."""
    file = path / "events.jsonl"
    if not file.exists():
        return []
    text = file.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete, torn = lines[:-1], lines[-1]  # "" when the file ends with a newline
    events = []
    for number, line in enumerate(complete, start=1):
        if line.strip():
            events.append(_event(file, number, line))
    if torn.strip():
        try:
            events.append(_event(file, len(lines), torn))
        except DamagedRecord:
            pass  # the crash case: the next append_event cuts it
    return events


def _event(file: Path, number: int, line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or "time" not in event:
        raise DamagedRecord(f"{file}:{number}: not an event record ({line[:60]!r}); fix or delete that line")
    return event


LIFECYCLE = {
    "started": "running",
    "resumed": "running",
    "finished": "finished",
    "failed": "failed",
    "interrupted": "interrupted",  # stopped by a signal; the same command resumes it
}


def status(events: list[dict[str, Any]]) -> str:
    """What a run's latest lifecycle event says it is: running, finished, failed or interrupted (a run
    started again after failing is running); "not started" without one."""
    states = [LIFECYCLE[e["event"]] for e in events if e["event"] in LIFECYCLE]
    return states[-1] if states else "not started"


def last_event(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The latest event of `kind` (e.g. the failure a failed run's status comes from), or None."""
    return next((e for e in reversed(events) if e["event"] == kind), None)


class ProgressFile:
    """`progress.json` in a run directory, rewritten at most every `interval` seconds: how a sweep's
    progress view (and a failure record) follows a run in this process, another process
    or another node alike."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        agent_steps: int,
        action_repeat: int,
        start_step: int,
        interval: float = 2.0,
    ) -> None:
        self.file, self.run_id, self.interval = path / "progress.json", run_id, interval
        self.agent_steps, self.action_repeat = agent_steps, action_repeat
        self.start_step = start_step  # where this attempt began: 0, or the checkpoint it resumed from
        self.checkpoint: int | None = None  # agent step of the latest checkpoint saved
        self._written = 0.0

    def update(self, step: int, force: bool = False, **fields: Any) -> None:
        now = time.time()
        if force or now - self._written >= self.interval:
            write_json(
                self.file,
                {
                    "run_id": self.run_id,
                    "step": step,
                    "total": self.agent_steps,
                    "env_steps": step * self.action_repeat,
                    "checkpoint_step": self.checkpoint,
                    "start_env_steps": self.start_step * self.action_repeat,
                    "time": now,
                    **fields,
                },
            )
            self._written = now


def read_progress(path: Path) -> dict[str, Any] | None:
    """The run's progress.json, or None when there is none (not written yet, or on another node's disk)."""
    try:
        return json.loads((path / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def load_runs(out: Path) -> list[tuple[dict[str, Any], pd.DataFrame, list[dict[str, Any]]]]:
    """(config, metrics, events) for every run directory under `out` that has a config."""
    runs = []
    for cfg_file in sorted(Path(out).glob("runs/*/*/*/*/config.json")):
        d = cfg_file.parent
        file = d / "metrics.csv"
        # a run killed before its header reached the disk leaves an empty file: no evaluations, like no file
        metrics = (
            pd.read_csv(file)
            if file.exists() and file.stat().st_size
            else pd.DataFrame(columns=METRICS_COLUMNS)
        )
        runs.append((json.loads(cfg_file.read_text()), metrics, read_events(d)))
    return runs
