"""Records on disk: the only contract between a run and everything after it.

`<out>/plan.json`: every run the latest sweep into `out` asked for (run id -> RunSpec), so that reports
show runs that never started instead of silently averaging the ones that did.

Per run directory `<out>/runs/<agent>/<env>/budget_<gb>/seed_<n>/`:
- `config.json`: the fully resolved RunSpec, agent config, replay sizing, versions and device;
- `metrics.csv`: one row per evaluation (columns: METRICS_COLUMNS);
- `events.jsonl`: one JSON object per event (run started, resumed, frozen, finished, failed, ...);
- `progress.json`: where the run is now (`ProgressFile`);
- `tensorboard/`: with `--tensorboard`, the metrics.csv and train.csv rows as TensorBoard scalars (a mirror,
  never read by reports: seer_bench.tensorboard).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import pandas as pd

from seer_bench.errors import DamagedRecord
from seer_bench.instrument.timing import CATEGORIES as TIME_CATEGORIES
from seer_bench.instrument.timing import column as time_column

METRICS_COLUMNS = [
    "step",  # agent steps
    "env_steps",  # agent steps x action repeat
    # mean return of the evaluation episodes (the agent's evaluation policy; Atari: raw game score)
    "eval_return",
    "eval_return_std",
    "hns",  # Atari: human-normalized score of eval_return, (score - random) / (human - random); else empty
    "train_episodes",  # training episodes finished (Atari: each lost life ends one)
    "updates",
    "wall_s",  # seconds since the run started: start-up, evaluation and checkpoints included
    # seconds in the training loop so far (acting, updates, env steps, replay adds, SEER's conversion)
    "train_s",
    "eval_s",  # seconds evaluating so far, this row's evaluation included
    # mean seconds of one update over the run so far (CUDA-synchronized); NaN before the first update
    "update_s_mean",
    # the time ledger (seer_bench.instrument.timing): cumulative exclusive seconds per kind of work; wall_s
    # less their sum is the loop's untimed rest. Empty in rows from before the ledger
    *(time_column(c) for c in TIME_CATEGORIES),
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
    A last row a crash cut is dropped too (`torn`: its line), so the resumed run can write it again whole
    (`steps`: the steps of the rows kept); any other damage raises DamagedRecord rather than be copied on.
    """

    def __init__(self, file: Path, columns: list[str], keep_through: int | None = None) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        self.file = file
        kept: list[dict[str, str]] = []
        self.torn: int | None = None
        if keep_through is not None and file.exists():
            records = parse_records(file, columns)
            kept = [row for row in records.rows if _typed("int", row["step"]) <= keep_through]
            self.torn = records.torn
        self.steps = [_typed("int", row["step"]) for row in kept]
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

    def __init__(
        self,
        file: Path,
        action_repeat: int,
        every: int,
        keep_through: int | None = None,
        on_row: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.log = CsvLog(file, TRAIN_COLUMNS, keep_through)
        self.on_row = on_row  # told of each row once it is written (runner: the TensorBoard observer)
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
            row = {
                "step": self._step,
                "env_steps": self._step * self.action_repeat,
                "updates": self._updates,
                "metric": name,
                "mean": self._sums[name] / self._counts[name],
                "count": self._counts[name],
            }
            self.log.write(row)
            if self.on_row is not None:
                self.on_row(row)
        self._sums.clear()
        self._counts.clear()
        self._window = 0

    def close(self) -> None:
        self.flush()
        self.log.close()


# The kind of every documented column of metrics.csv and train.csv: how a row is checked when it is read.
# "int" and "float" must parse as such ("nan" is a float); a "?" kind may also be empty (not measured).
COLUMN_KINDS = {
    **dict.fromkeys(METRICS_COLUMNS + TRAIN_COLUMNS, "int"),  # steps, counts, bytes and FLOPs; the rest:
    **dict.fromkeys(["eval_return", "eval_return_std", "wall_s", "update_flops", "mean"], "float"),
    **dict.fromkeys(["train_s", "eval_s"], "float"),
    "update_s_mean": "float?",  # not measured before the first update (written as nan, or empty by pandas)
    **dict.fromkeys((time_column(c) for c in TIME_CATEGORIES), "float?"),  # rows from before the ledger
    **dict.fromkeys(["gpu_bytes", "gpu_alloc_bytes", "gpu_reserved_bytes"], "int?"),  # empty without a GPU
    "hns": "float?",  # empty outside Atari
    "metric": "str",
}
KIND_NAMES = {"int": "an integer", "float": "a number", "str": "text"}


def _typed(kind: str, text: str) -> Any:
    """`text` as a value of `kind` (NaN for an empty optional value); ValueError when it is not one."""
    if kind.endswith("?") and text in ("", "nan"):  # not measured: empty as written, "nan" as pandas writes
        return math.nan
    if text == "":
        raise ValueError("empty")
    if kind == "str":
        return text
    try:
        return int(text)
    except ValueError:
        number = float(text)
    if kind.startswith("int"):
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    return number


@dataclass
class Records:
    """A CSV record file as read: its header, its whole rows (text, each checked), and the line of a last
    row that a crash cut (None when there is none), which is left out of `rows`."""

    header: list[str]
    rows: list[dict[str, str]]
    torn: int | None = None


def parse_records(file: Path, columns: list[str]) -> Records:
    """Read a CSV record file written with (a subset of) `columns`, checking the header, and each row's
    field count and the kind (COLUMN_KINDS) of each field. The writer ends every row with a newline, so a
    last line without one is a row cut mid-write: it is left out when it is the start of a row. Anything
    else raises DamagedRecord naming the file and line: pandas would read it as shifted or empty values.
    A missing or empty file (a run killed before its header reached the disk) has no rows."""
    text = file.read_text(encoding="utf-8", errors="replace") if file.exists() else ""
    if not text:
        return Records([], [])
    lines = text.split("\n")
    complete, last = lines[:-1], lines[-1]  # last: "" when the file ends with a newline
    if not complete:
        raise DamagedRecord(f"{file}:1: the header is cut ({last[:60]!r}); delete the file or its run")
    header = _header(file, complete[0], columns)
    rows = [_row(file, n, line, header) for n, line in enumerate(complete[1:], start=2) if line.strip()]
    if not last.strip():
        return Records(header, rows)
    _torn_row(file, len(lines), last, header)
    return Records(header, rows, torn=len(lines))


def _fields(file: Path, number: int, line: str) -> list[str]:
    try:
        return next(csv.reader([line.rstrip("\r")]), [])
    except csv.Error as e:
        raise DamagedRecord(f"{file}:{number}: not a CSV row ({e}); fix or delete that line") from None


def _header(file: Path, line: str, columns: list[str]) -> list[str]:
    """The header's column names: documented ones (older records hold fewer), each once, `step` among them."""
    names = _fields(file, 1, line)
    unknown = [n for n in names if n not in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if unknown:
        wrong = f"unknown column(s) {', '.join(map(repr, unknown))}"
    elif twice:
        wrong = f"column(s) named twice: {', '.join(twice)}"
    elif "step" not in names:
        wrong = "no step column"
    else:
        return names
    raise DamagedRecord(f"{file}:1: damaged header ({wrong}); the rows cannot be read by column")


def _bad_field(header: list[str], values: list[str]) -> str:
    """The first field that is not of its column's kind, described; "" when every one is."""
    for name, value in zip(header, values):
        try:
            _typed(COLUMN_KINDS[name], value)
        except ValueError:
            return f"{name} = {value[:30]!r} is not {KIND_NAMES[COLUMN_KINDS[name].rstrip('?')]}"
    return ""


def _row(file: Path, number: int, line: str, header: list[str]) -> dict[str, str]:
    values = _fields(file, number, line)
    wrong = (
        f"{len(values)} fields, the header has {len(header)}"
        if len(values) != len(header)
        else _bad_field(header, values)
    )
    if wrong:
        raise DamagedRecord(f"{file}:{number}: {wrong}; fix or delete that line")
    return dict(zip(header, values))


def _torn_row(file: Path, number: int, line: str, header: list[str]) -> None:
    """Raise unless `line` (the last, without a newline) is the start of a row: no more fields than the
    header, each but the last (which the cut may have shortened) of its column's kind."""
    values = _fields(file, number, line)
    if len(values) > len(header) or _bad_field(header, values[:-1]):
        raise DamagedRecord(
            f"{file}:{number}: damaged last line ({line[:60]!r}), not a row cut mid-write; fix or delete it"
        )


def read_records(file: Path, columns: list[str], finished: bool = False) -> pd.DataFrame:
    """The rows of a CSV record file (`parse_records`), typed: ints, floats (NaN where not measured) and
    strings. A cut last row is left out, unless the run is `finished`: its records were complete when it
    finished, so a cut row there is damage, and the run's final numbers would come from the row before."""
    records = parse_records(file, columns)
    if records.torn and finished:
        raise DamagedRecord(f"{file}:{records.torn}: the last row is cut, yet the run is recorded finished")
    return pd.DataFrame(
        {
            name: [_typed(COLUMN_KINDS[name], row[name]) for row in records.rows]
            for name in records.header or columns
        }
    )


def read_metrics(path: Path, finished: bool = False) -> pd.DataFrame:
    """The run's metrics.csv (`read_records`): no rows when it has none yet."""
    return read_records(path / "metrics.csv", METRICS_COLUMNS, finished)


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


def load_runs(
    out: Path,
) -> list[tuple[dict[str, Any], pd.DataFrame, list[dict[str, Any]], list[str]]]:
    """(config, metrics, events, problems) for every run directory under `out` that has a config.
    `problems` holds a line naming each record of the run that cannot be trusted (DamagedRecord's message);
    such a record reads as empty, so that a report names the run and reports the others."""
    runs = []
    for cfg_file in sorted(Path(out).glob("runs/*/*/*/*/config.json")):
        d, problems = cfg_file.parent, []
        events = _unless_damaged(lambda: read_events(d), [], problems)
        finished = status(events) == "finished"
        metrics = _unless_damaged(
            lambda: read_metrics(d, finished), pd.DataFrame(columns=METRICS_COLUMNS), problems
        )
        runs.append((json.loads(cfg_file.read_text()), metrics, events, problems))
    return runs


def _unless_damaged(read: Callable[[], Any], instead: Any, problems: list[str]) -> Any:
    """`read()`, or `instead` when the record is damaged, its message added to `problems`."""
    try:
        return read()
    except DamagedRecord as e:
        problems.append(str(e))
        return instead
