"""Records on disk: the only contract between a run and everything after it.

`<out>/plan.json`: every run the latest sweep into `out` asked for (run id -> RunSpec), so that reports
show runs that never started instead of silently averaging the ones that did.

Per run directory `<out>/runs/<agent>/<env>/budget_<gb>/seed_<n>/`:
- `config.json`: the fully resolved RunSpec, agent config, replay sizing, versions and device;
- `metrics.csv`: one row per evaluation (columns: METRICS_COLUMNS);
- `events.jsonl`: one JSON object per event (run started, finished, failed, ...).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

METRICS_COLUMNS = [
    "step",  # agent steps
    "env_steps",  # agent steps x action repeat
    "eval_return",  # mean return of the evaluation episodes (the agent's evaluation policy; Atari: raw game score)
    "eval_return_std",
    "hns",  # Atari: human-normalized score of eval_return, (score - random) / (human - random); else empty
    "train_episodes",  # training episodes finished (Atari: each lost life ends one)
    "updates",
    "wall_s",  # seconds since the run started, evaluation included
    "replay_capacity",  # transitions the budget holds
    "replay_size",  # transitions held now
    "replay_bytes",  # bytes of replay slots written so far (resident)
    "replay_alloc_bytes",  # bytes the replay arrays reserve (mapped lazily)
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


def write_json(file: Path, data: Any) -> None:
    """Atomically: a reader (or a crash) sees the old file or the new one, never half of one."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")  # two processes writing never share a temp file
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(file)


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
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "events.jsonl", "a") as f:
        f.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")


class MetricsWriter:
    """Appends rows to metrics.csv, flushed per row so a crash keeps every finished evaluation.

    `keep_through` (a resumed run): keep the rows up to that agent step, the ones its checkpoint had seen,
    and drop later ones, which the resumed run evaluates again; otherwise start a new file.
    """

    def __init__(self, path: Path, keep_through: int | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        file = path / "metrics.csv"
        kept = []
        if keep_through is not None and file.exists():
            with open(file, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= keep_through]
        tmp = path / "metrics.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        tmp.replace(file)
        self._file = open(file, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=METRICS_COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    file = path / "events.jsonl"
    return [json.loads(line) for line in file.read_text().splitlines() if line] if file.exists() else []


def load_runs(out: Path) -> list[tuple[dict[str, Any], pd.DataFrame, list[dict[str, Any]]]]:
    """(config, metrics, events) for every run directory under `out` that has a config."""
    runs = []
    for cfg_file in sorted(Path(out).glob("runs/*/*/*/*/config.json")):
        d = cfg_file.parent
        file = d / "metrics.csv"
        # a run killed before its header reached the disk leaves an empty file: no evaluations, like no file
        metrics = pd.read_csv(file) if file.exists() and file.stat().st_size else pd.DataFrame(columns=METRICS_COLUMNS)
        runs.append((json.loads(cfg_file.read_text()), metrics, read_events(d)))
    return runs
