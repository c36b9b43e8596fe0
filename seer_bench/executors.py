"""Executors: who runs a sweep's runs. Every one writes the same records into the same `--out` tree.

- `local` (default): one after another in this process.
- `--jobs N`: N local worker processes at a time (`python -m seer_bench.worker`), each with
  `--cpus-per-run` torch threads; a worker that dies (killed, out of memory) is recorded as failed.
- `ray`: one Ray task per run on a cluster (`--address`, or a local one), with `--cpus-per-run` and
  `--gpus-per-run` as its resources, so fractional GPUs let several runs share one device.

How records come back from Ray workers: a worker writes its run directory under `--out` as it goes (config,
metrics, events, progress, checkpoints), which on a cluster should be a filesystem every node mounts
(NFS and the like): then progress is live and a resumed run finds its checkpoint from any node. When the
worker's `--out` is not the driver's, the task also returns the run's records (config.json, metrics.csv,
events.jsonl) and the driver writes them into its own `--out` when they differ, so summaries and figures
are complete either way; checkpoints and live progress then stay on the worker's node.

Resume: `plan` skips runs whose records say finished and refuses (before anything runs) a run directory
whose recorded spec differs from the one asked for; an interrupted run continues from its checkpoint
(runner.run). A run that raises is recorded as failed (an event with the reason and traceback) and the
sweep goes on.

Every executor runs a run through `execute`, which holds the run's lock (locks.RunLock) for its life: a run
another live process owns is skipped and named. SIGINT/SIGTERM (interrupts.Interrupted) reach every run of
the sweep, workers and Ray tasks included, and each records where it stopped before the sweep exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seer_bench.agents import agent_config
from seer_bench.errors import ConfigError
from seer_bench.interrupts import Interrupted, as_interrupted
from seer_bench.locks import RunLock, RunOwned, describe, read_owner
from seer_bench.progress import SweepProgress
from seer_bench.records import (
    append_event,
    atomic_file,
    last_event,
    read_events,
    read_progress,
    run_dir,
    status,
)
from seer_bench.runner import RunOptions, run
from seer_bench.suites import RunSpec

RECORD_FILES = ("config.json", "metrics.csv", "events.jsonl")
RUNSPEC_DEFAULTS = {
    f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    for f in dataclasses.fields(RunSpec)
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
}


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # finished | failed | interrupted | skipped (another process owns the run)
    text: str  # final return and wall time, or the reason it failed
    records: dict[str, str] | None = (
        None  # Ray: the run's record files, for a driver that does not share --out
    )


@dataclass(frozen=True)
class ExecutorOptions:
    executor: str = "local"  # local | ray
    jobs: int = 1  # local: runs at a time, each in its own process when > 1
    address: str | None = None  # ray: cluster address (None: start a local one, or use ray.init already done)
    cpus_per_run: float | None = None  # None: local all cores, --jobs the cores shared out, ray 1
    gpus_per_run: float = 0.0
    run: RunOptions = RunOptions()  # checkpoints and training-metric windows of each run

    @property
    def threads(self) -> int | None:
        """Torch threads per run, when --cpus-per-run says."""
        return max(1, int(self.cpus_per_run)) if self.cpus_per_run else None

    def validate(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, got {self.executor!r}")
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        if self.executor == "ray" and self.jobs != 1:
            raise ConfigError(
                "--jobs is for the local executor; Ray runs as many at once as --cpus-per-run and "
                "--gpus-per-run fit on the cluster"
            )
        if self.executor != "ray" and self.address:
            raise ConfigError("--address is for --executor ray")
        if (self.cpus_per_run is not None and self.cpus_per_run <= 0) or self.gpus_per_run < 0:
            raise ConfigError(
                f"--cpus-per-run must be > 0 and --gpus-per-run >= 0, got {self.cpus_per_run} and "
                f"{self.gpus_per_run}"
            )
        if self.executor == "local" and self.gpus_per_run not in (0, 1):
            raise ConfigError(
                "fractional --gpus-per-run needs --executor ray (local runs each see every GPU)"
            )
        self.run.validate()
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]'")


def plan(specs: list[RunSpec], out: Path) -> tuple[list[RunSpec], list[RunSpec]]:
    """(runs to do, runs already finished). Refuses a run directory recorded with a different spec or
    resolved agent config: its results would mix two configurations (a changed --steps, budget, T_f, or an
    agent default changed by an upgrade, such as CURL's optimizer wiring)."""
    todo, done = [], []
    for spec in specs:
        path = run_dir(out, spec.run_id)
        config = path / "config.json"
        if config.exists():
            record = json.loads(config.read_text())
            # a field added to RunSpec after the run was recorded reads as its default
            recorded = {**RUNSPEC_DEFAULTS, **record.get("spec", {})}
            changed = _differences(recorded, spec.to_dict())
            if (
                "agent_config" in record
            ):  # a setting added since reads as "absent": its default may change the agent
                changed += _differences(record["agent_config"], _resolved_agent_config(spec), "agent_config.")
            if changed:
                raise ConfigError(
                    f"{path}: this run was recorded with a different config ({'; '.join(changed)}); "
                    "to keep both in this --out, give the changed setting with --set (a labelled variant, "
                    "e.g. --set seer.freeze_at=N); else use another --out, or delete that run directory"
                )
        (done if status(read_events(path)) == "finished" else todo).append(spec)
    return todo, done


def _differences(recorded: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    absent = "absent"
    return [
        f"{prefix}{k}: recorded {recorded.get(k, absent)!r}, asked {wanted.get(k, absent)!r}"
        for k in sorted(set(recorded) | set(wanted))
        if recorded.get(k, absent) != wanted.get(k, absent)
    ]


def _resolved_agent_config(spec: RunSpec) -> dict[str, Any]:
    """The agent config a run of `spec` records in config.json (JSON types: tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(agent_config(spec.agent, spec.agent_overrides))))


def execute(spec: RunSpec, out: Path, options: RunOptions, threads: int | None = None) -> Outcome:
    """Run one spec here and record its outcome; never raises for a failure of the run itself."""
    if threads:
        torch.set_num_threads(threads)
    try:
        with RunLock(run_dir(out, spec.run_id)) as lock:
            if lock.stale:
                _took_over(out, spec, lock.stale)
            return _execute_owned(spec, out, options)
    except RunOwned as owned:  # another sweep trains it: never two writers on one run's records
        return Outcome(spec.run_id, "skipped", f"owned by {describe(owned.owner)}; left to it")


def _took_over(out: Path, spec: RunSpec, stale: dict[str, Any]) -> None:
    """Say (event and console) that this process took the run over from an owner that died holding it."""
    append_event(run_dir(out, spec.run_id), "lock_taken_over", run_id=spec.run_id, previous_owner=stale)
    print(f"run {spec.run_id}: its owner ({describe(stale)}) died holding it; taken over", file=sys.stderr)


def _execute_owned(spec: RunSpec, out: Path, options: RunOptions) -> Outcome:
    try:
        result = run(spec, out, options)
        return _finished(spec, result.final_return, result.wall_s)
    except KeyboardInterrupt as e:  # the runner records where its loop stopped; before it, here
        stop = as_interrupted(e)
        if spec.run_id not in dict(stop.runs):
            env_steps = (read_progress(run_dir(out, spec.run_id)) or {}).get("env_steps", 0)
            append_event(run_dir(out, spec.run_id), "interrupted", run_id=spec.run_id, env_steps=env_steps)
            stop.runs.append((spec.run_id, env_steps))
        raise stop from None
    except Exception as e:  # noqa: BLE001 - any failure of one run must not stop the sweep
        reason = f"{type(e).__name__}: {e}"
        try:
            record_failure(
                out,
                spec,
                reason,
                env_steps=getattr(e, "stopped_env_steps", None),
                traceback=traceback.format_exc(),
            )
        except OSError as unrecorded:  # a full disk can refuse even the failure record: say so, go on
            reason += f" (not recorded: {unrecorded})"
        return Outcome(spec.run_id, "failed", reason)


def _finished(spec: RunSpec, final_return: float, wall_s: float) -> Outcome:
    return Outcome(spec.run_id, "finished", f"final eval return {final_return:.1f}, {wall_s / 60:.1f} min")


def record_failure(
    out: Path, spec: RunSpec, reason: str, env_steps: int | None = None, **fields: str
) -> None:
    """A `failed` event with the reason and where the run stopped: `env_steps` when the run said (it
    raised), else its last progress.json (a killed worker: up to a couple of seconds before the kill)."""
    path = run_dir(out, spec.run_id)
    if env_steps is None:
        env_steps = (read_progress(path) or {}).get("env_steps", 0)
    append_event(path, "failed", run_id=spec.run_id, reason=reason, env_steps=env_steps, **fields)


def _run_local(specs: list[RunSpec], out: Path, opts: ExecutorOptions, view: SweepProgress) -> list[Outcome]:
    outcomes = []
    for spec in specs:
        view.run_started(spec)
        outcome = execute(spec, out, opts.run, opts.threads)
        view.run_ended(spec, outcome.status, outcome.text)
        outcomes.append(outcome)
    return outcomes


def _events_since(spec: RunSpec, out: Path, launched: float) -> list[dict[str, Any]]:
    """The run's events since its worker was `launched`: an earlier attempt's failure is not this one's."""
    return [e for e in read_events(run_dir(out, spec.run_id)) if e["time"] >= launched]


SKIPPED_EXIT = 75  # a worker whose run another process owns (EX_TEMPFAIL: try again later)


def _worker_outcome(spec: RunSpec, out: Path, code: int, launched: float) -> Outcome:
    """What a finished worker process did, from its exit code and the events it wrote."""
    events = _events_since(spec, out, launched)
    if code == 0 and status(events) == "finished":
        done = last_event(events, "finished")
        return _finished(spec, done["final_return"], done["wall_s"])
    if status(events) == "failed":
        return Outcome(spec.run_id, "failed", last_event(events, "failed").get("reason", ""))
    if code == SKIPPED_EXIT:
        return Outcome(spec.run_id, "skipped", f"owned by {describe(read_owner(run_dir(out, spec.run_id)))}")
    if status(events) == "interrupted":  # its own SIGTERM: the same command resumes it
        stopped = last_event(events, "interrupted")
        return Outcome(spec.run_id, "interrupted", f"interrupted at env step {stopped['env_steps']:,}")
    reason = (
        f"worker process killed by signal {-code}" + (" (SIGKILL: out of memory?)" if code == -9 else "")
        if code < 0
        else f"worker process exited with code {code}"
    )
    record_failure(out, spec, reason)
    return Outcome(spec.run_id, "failed", reason)


def _run_processes(
    specs: list[RunSpec], out: Path, opts: ExecutorOptions, view: SweepProgress
) -> list[Outcome]:
    threads = opts.threads or max(1, (os.cpu_count() or 1) // opts.jobs)  # by default the cores, shared out
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running, outcomes = list(specs), {}, []
    try:
        while pending or running:
            while pending and len(running) < opts.jobs:
                spec = pending.pop(0)
                cmd = [
                    sys.executable,
                    "-m",
                    "seer_bench.worker",
                    str(out),
                    json.dumps(dataclasses.asdict(opts.run)),
                    str(threads),
                    json.dumps(spec.to_dict()),
                ]
                running[spec.run_id] = (spec, subprocess.Popen(cmd, env=env), time.time())
                view.run_started(spec)
            outcomes += _poll_workers(running, out, view)
            time.sleep(0.2)
    except KeyboardInterrupt as e:
        raise _stop_workers(running, out, as_interrupted(e)) from None
    return outcomes


def _poll_workers(running: dict[str, tuple], out: Path, view: SweepProgress) -> list[Outcome]:
    """Outcomes of the workers that exited since the last poll (removed from `running`)."""
    ended = []
    for run_id, (spec, proc, launched) in list(running.items()):
        code = proc.poll()
        if code is not None:
            del running[run_id]
            outcome = _worker_outcome(spec, out, code, launched)
            view.run_ended(spec, outcome.status, outcome.text)
            ended.append(outcome)
    return ended


WORKER_GRACE_S = 60.0  # a worker records its interruption in well under a second; then it is killed


def _stop_workers(running: dict[str, tuple], out: Path, e: Interrupted) -> Interrupted:
    """Pass the sweep's signal on to its workers (Ctrl-C in a terminal reaches them already), wait for
    each to record where it stopped, and add those runs to `e`."""
    for _spec, proc, _launched in running.values():
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(e.signum)
    for spec, proc, launched in running.values():
        try:
            proc.wait(WORKER_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stopped = last_event(_events_since(spec, out, launched), "interrupted")
        e.runs.append((spec.run_id, stopped["env_steps"] if stopped else 0))
    return e


def _ray_task(spec: RunSpec, out: str, options: RunOptions, threads: int) -> Outcome:
    outcome = execute(spec, Path(out), options, threads)
    path = run_dir(Path(out), spec.run_id)
    records = {name: (path / name).read_text() for name in RECORD_FILES if (path / name).exists()}
    return Outcome(outcome.run_id, outcome.status, outcome.text, records)


def _write_back(out: Path, outcome: Outcome) -> None:
    """Make the driver's --out hold what the worker wrote (no-op on a shared filesystem)."""
    path = run_dir(out, outcome.run_id)
    for name, text in (outcome.records or {}).items():
        file = path / name
        if not file.exists() or file.read_text() != text:
            with atomic_file(file) as f:
                f.write(text)


def _check_fits(nodes: list[dict], cpus: float, gpus: float) -> None:
    """Refuse per-run resources no node of the cluster has: Ray would queue such tasks for ever."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in alive):
        have = "; ".join(f"{r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for r in alive) or "no live node"
        raise ConfigError(
            f"no node of the Ray cluster fits a run of {cpus:g} CPU and {gpus:g} GPU "
            f"(--cpus-per-run, --gpus-per-run); nodes: {have}"
        )


def _run_ray(specs: list[RunSpec], out: Path, opts: ExecutorOptions, view: SweepProgress) -> list[Outcome]:
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=opts.address, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"--address {opts.address}: cannot connect to a Ray cluster ({e})") from None
    cpus = opts.cpus_per_run or 1.0
    _check_fits(ray.nodes(), cpus, opts.gpus_per_run)
    task = ray.remote(num_cpus=cpus, num_gpus=opts.gpus_per_run, max_retries=0)(_ray_task)
    threads = max(1, int(cpus))
    refs = {task.remote(spec, str(Path(out).resolve()), opts.run, threads): spec for spec in specs}
    for spec in specs:  # Ray queues what does not fit now: the view counts them running once they report
        view.run_queued(spec)
    try:
        return _collect_ray(refs, out, view)
    except KeyboardInterrupt as e:
        raise _cancel_ray(refs, out, as_interrupted(e)) from None


def _cancel_ray(refs: dict, out: Path, e: Interrupted) -> Interrupted:
    """Cancel the sweep's Ray tasks: a running one gets a KeyboardInterrupt, which its runner records as
    an `interrupted` event (a queued one never starts); wait for them, and add the runs to `e`."""
    import ray

    since = time.time()
    for ref in refs:
        ray.cancel(ref)
    ray.wait(list(refs), num_returns=len(refs), timeout=WORKER_GRACE_S)
    for spec in refs.values():
        stopped = last_event(_events_since(spec, out, since), "interrupted")
        if stopped:
            e.runs.append((spec.run_id, stopped["env_steps"]))
    return e


def _collect_ray(refs: dict, out: Path, view: SweepProgress) -> list[Outcome]:
    """Outcomes of the sweep's Ray tasks as they finish; a task that died is recorded as failed."""
    import ray

    outcomes = []
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
        for ref in ready:
            spec = refs.pop(ref)
            try:
                outcome = ray.get(ref)
                _write_back(out, outcome)
            except Exception as e:  # noqa: BLE001 - the worker died (node lost, killed): record, go on
                reason = f"ray task failed: {type(e).__name__}: {e}".splitlines()[0]
                record_failure(out, spec, reason)
                outcome = Outcome(spec.run_id, "failed", reason)
            view.run_ended(spec, outcome.status, outcome.text)
            outcomes.append(outcome)
    return outcomes


EXECUTORS = {"local": _run_local, "processes": _run_processes, "ray": _run_ray}


def run_sweep(todo: list[RunSpec], skipped: int, out: Path, opts: ExecutorOptions) -> list[Outcome]:
    """Run `todo` (from `plan`) with the chosen executor; returns their outcomes."""
    kind = "ray" if opts.executor == "ray" else "processes" if opts.jobs > 1 else "local"
    view = SweepProgress(out, todo, skipped=skipped).start()
    try:
        return EXECUTORS[kind](todo, Path(out), opts, view)
    finally:
        view.close()
