"""One run: an env <-> agent loop with replay, periodic evaluation and records.

The loop follows the public CURL/SEER training script: evaluate every `eval_every` env steps (and at step
0 and at the end), act uniformly at random for the agent's `random_steps` (CURL: 1,000; DER: none, its
noisy network explores), then from `learn_start` one update per agent step before the environment step
(DER's public loop updates after it: one transition's difference). Evaluation uses a separate
environment instance (the public script reuses the training env, which cuts the training episode short)
and the agent's evaluation policy, its episodes seeded by (run seed, step, episode index) and played in
worker processes side by side with `RunOptions.eval_workers` (seer_bench.evaluation); on Atari that env
follows the evaluation protocol (raw score, a whole game per episode) and records carry the
human-normalized score.

For SEER agents, at step T_f (after that step's evaluation, before its update) the agent freezes and the
pixel replay is converted to latents; nothing else in the loop changes.
"""

from __future__ import annotations

import contextlib
import platform
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import psutil
import torch

from seer_bench import checkpoint
from seer_bench.agents import agent_class, agent_config, make_agent
from seer_bench.agents.contract import Agent, missing_members, networks
from seer_bench.agents.seer import Freezable, Seer
from seer_bench.device_replay import STORAGES, placed_bytes, storage_of
from seer_bench.envs import PixelEnv, make_env, normalized_score
from seer_bench.envs.workers import EnvRecipe, RemoteEnv
from seer_bench.errors import ConfigError, CorruptCheckpoint
from seer_bench.evaluation import Evaluator, default_workers
from seer_bench.instrument.flops import CATEGORIES, FlopLedger
from seer_bench.instrument.memory import MemorySampler
from seer_bench.instrument.timing import TimeLedger
from seer_bench.interrupts import Interrupted, as_interrupted, deferred
from seer_bench.records import (
    METRICS_COLUMNS,
    CsvLog,
    ProgressFile,
    TrainLog,
    append_event,
    run_dir,
    write_config,
)
from seer_bench.replay import LatentReplay, TransitionSpec, budget_capacity, make_replay, replay_class
from seer_bench.suites import RunSpec

if TYPE_CHECKING:  # imported only with --tensorboard: the package is an optional extra
    from seer_bench.tensorboard import TensorBoardLog

# what every checkpoint holds (Workspace._save); one without them is corrupt, not a run's state
CHECKPOINT_KEYS = (
    "step",
    "frozen",
    "agent",
    "replay",
    "seer_rng",
    "rng",
    "init_actions_rng",
    "ledger",
    "train_episodes",
    "updates",
    "wall_s",
)
TRAIN_LOG_EVERY = 100  # updates averaged into each train.csv row


def resolve_device(name: str) -> torch.device:
    """The torch device of `--device`: `cuda:N` picks one of several GPUs (torch's numbering, which
    CUDA_VISIBLE_DEVICES sets)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, colon, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (colon and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available to torch on this machine")
    if colon and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def replay_storage(spec: RunSpec) -> torch.device | None:
    """The device a run's replay keeps its observations and latents on, None for host memory."""
    if spec.replay_device not in STORAGES:
        raise ConfigError(f"--replay-device must be one of {', '.join(STORAGES)}, got {spec.replay_device!r}")
    return resolve_device(spec.device) if spec.replay_device == "device" else None


def host_bytes(spec: RunSpec, cls: type, replay_spec: Any, capacity: int) -> int:
    """Bytes of a replay's arrays that host memory holds: all of them, but a CUDA device replay's
    observations or latents (torch refuses those at allocation, naming the sizes, if the GPU lacks them)."""
    storage = replay_storage(spec)
    where = "device" if storage is not None and storage.type == "cuda" else "host"
    return placed_bytes(cls, replay_spec, capacity, spec.agent_steps, where)["host_bytes"]


def transition_spec(env: PixelEnv) -> TransitionSpec:
    return TransitionSpec(
        env.obs_shape,
        env.action_dim,
        frame_stack=env.frame_stack,
        episode_steps=env.episode_steps,
        discrete=env.discrete,
    )


def build_env(spec: RunSpec, seed: int, train: bool = True) -> PixelEnv:
    return make_env(spec.env, spec.action_repeat, seed, train, spec.env_options)


def build_seer(spec: RunSpec, cfg: Any, env: PixelEnv, seed: int, observe: Any = None) -> Seer:
    return Seer(
        spec.seer,
        spec.budget_bytes,
        seed,
        chunk=cfg.batch_size,
        layout=spec.replay_layout,
        transitions=transition_spec(env),
        total_steps=spec.agent_steps,
        observe=observe,
        device=replay_storage(spec),
    )


def check_spec(spec: RunSpec, memory: bool = True) -> None:
    """Everything about a run that can fail, checked without training: agent settings, device, budget, and
    with `memory` that its replays fit in the memory available (`profile` allocates none, so skips it)."""
    cfg = agent_config(spec.agent, spec.agent_overrides)
    resolve_device(spec.device)
    env = build_env(spec, seed=0)
    try:
        if getattr(agent_class(spec.agent), "discrete", env.discrete) != env.discrete:
            kinds = {True: "discrete", False: "continuous"}
            raise ConfigError(
                f"{spec.run_id}: agent {spec.agent} takes {kinds[not env.discrete]} actions, env "
                f"{spec.env} has {kinds[env.discrete]} ones"
            )
        agent = make_agent(spec.agent, cfg, env.obs_shape, env.action_dim, torch.device("cpu"), 0)
        _check_contract(spec, agent)
        if replay_storage(spec) is not None and not getattr(agent, "device_replay", False):
            raise ConfigError(
                f"{spec.run_id}: agent {spec.agent} does not take batches from a device replay (it sets no "
                f"`device_replay = True`); use --replay-device host"
            )
        if spec.agent_steps <= agent.learn_start:
            raise ConfigError(
                f"{spec.run_id}: {spec.agent_steps} agent steps ({spec.steps} env steps) leave no update "
                f"before or at learn start ({agent.learn_start} agent steps); raise --steps"
            )
        _check_replay(spec, cfg, agent, env, memory)
        if spec.seer is not None:
            _check_seer(spec, cfg, agent, env, memory)
    finally:
        env.close()


def _check_replay(spec: RunSpec, cfg: Any, agent: Any, env: PixelEnv, memory: bool) -> None:
    """The budget holds a batch and a sample window, and the arrays the run allocates fit in memory (sized,
    never allocated: a budget the OS cannot map would fail here with ENOMEM, not a line)."""
    tspec, cls = transition_spec(env), replay_class(spec.replay_layout)
    # raises when too small
    capacity = budget_capacity(spec.replay_layout, tspec, spec.budget_bytes, cfg.batch_size)
    if memory:
        allocated = host_bytes(spec, cls, tspec, capacity)
        _check_allocation(spec, "replay", allocated, cls.slots_for(capacity, spec.agent_steps), capacity)
    if capacity < agent.sample_horizon:
        raise ConfigError(
            f"{spec.run_id}: the replay holds {capacity} transitions, fewer than one "
            f"{agent.sample_horizon}-step window; raise --budget-gb"
        )


def _check_allocation(spec: RunSpec, what: str, allocated: int, slots: int, capacity: int) -> None:
    """Refuse arrays larger than the memory available now: they are mapped lazily, but a run of this length
    can fill every slot, and the OS refuses a mapping far beyond its memory."""
    available = psutil.virtual_memory().available
    if allocated > available:
        raise ConfigError(
            f"{spec.run_id}: the {what} would allocate {_size(allocated)} for {slots:,} transitions (the "
            f"budget holds {capacity:,}, the run writes {spec.agent_steps:,}), more than the "
            f"{_size(available)} of memory available; lower --budget-gb or --steps"
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:,.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:,.1f} MB"


def _check_contract(spec: RunSpec, agent: Any) -> None:
    """The agent provides what the runner calls (and, for a SEER agent, what SEER calls): one line naming
    what is missing, before any training."""
    missing = missing_members(agent, Agent)
    if missing:
        raise ConfigError(
            f"{spec.run_id}: agent {spec.agent} does not meet the agent contract "
            f"(seer_bench.agents.contract.Agent): missing {', '.join(missing)}"
        )
    missing = missing_members(agent, Freezable) if spec.seer is not None else []
    if missing:
        raise ConfigError(
            f"{spec.run_id}: agent {spec.agent.removesuffix('+seer')} does not provide what SEER needs "
            f"(seer_bench.agents.seer.Freezable): missing {', '.join(missing)}"
        )


def _check_seer(spec: RunSpec, cfg: Any, agent: Any, env: PixelEnv, memory: bool) -> None:
    tf = spec.seer.freeze_at
    if tf <= agent.learn_start:
        raise ConfigError(
            f"{spec.run_id}: freeze_at {tf} agent steps is not after the first update (agent step "
            f"{agent.learn_start}): the encoder would freeze untrained"
        )
    if tf >= spec.agent_steps:
        raise ConfigError(
            f"{spec.run_id}: freeze_at {tf} agent steps is not before the run ends "
            f"({spec.agent_steps} agent steps = {spec.steps} env steps); lower --freeze-at"
        )
    if spec.seer.split not in agent.splits():
        raise ConfigError(
            f"{spec.run_id}: seer split {spec.seer.split!r} is not a layer boundary of {spec.agent}; "
            f"choose from {', '.join(agent.splits())}"
        )
    if spec.seer.num_copies > 1 and not agent.random_crops:
        raise ConfigError(
            f"{spec.run_id}: num_copies {spec.seer.num_copies}: {spec.agent} does not augment, so every "
            f"copy would be the same latent; set num_copies = 1"
        )
    seer = build_seer(spec, cfg, env, seed=0)
    need = max(cfg.batch_size, agent.sample_horizon)
    if seer.capacity(agent) < need:
        raise ConfigError(
            f"{spec.run_id}: after T_f the budget holds {seer.capacity(agent)} latent transitions, "
            f"fewer than the {need} a batch needs"
        )
    if memory:
        slots = seer.allocated_capacity(agent)
        allocated = host_bytes(spec, seer.replay_class(agent), seer.latent_spec(agent), seer.capacity(agent))
        _check_allocation(spec, "latent replay after T_f", allocated, slots, seer.capacity(agent))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("seer-bench", "torch", "numpy", "dm_control", "mujoco", "ale-py", "gymnasium"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def seer_sizing(seer: Seer, agent: Any) -> dict[str, Any]:
    """SEER's settings and its replay after T_f: the capacity its `capacity` setting gives, and the
    alternatives (the whole budget from real bytes, the public formula) for comparison."""
    spec = seer.latent_spec(agent)
    return {
        "config": asdict(seer.cfg),
        "latent_streams": [list(s) for s in spec.streams],
        "latent_layout": seer.replay_class(agent).layout,
        "latent_bytes_per_transition": seer.bytes_per_transition(agent),
        "capacity_policy": seer.cfg.capacity,
        "capacity_after": seer.capacity(agent),
        "allocated_capacity_after": seer.allocated_capacity(agent),  # the run's steps at most
        "allocated_bytes_after": seer.allocated_bytes(agent),
        # where they live: host memory, or the run's device with --replay-device device
        **{
            f"{where}_after": n
            for where, n in placed_bytes(
                seer.replay_class(agent),
                seer.latent_spec(agent),
                seer.capacity(agent),
                seer.total_steps,
                "host" if seer.device is None else "device",
            ).items()
        },
        "capacity_budget": seer.budget_capacity(agent),
        "capacity_public_formula": seer.public_capacity(agent),
    }


@dataclass
class RunResult:
    run_id: str
    final_return: float
    wall_s: float


def _reseeded(seed: int, step: int) -> int:
    """The env seed of a run resumed at `step`: new episodes, not a replay of the ones from step 0."""
    return seed if step == 0 else int(np.random.SeedSequence([seed, step]).generate_state(1)[0] % 2**31)


def check_finite(agent: Any, step: int) -> None:
    """Raise when a parameter went NaN or infinite: the run has diverged and every later number is noise."""
    for name, module in networks(agent).items():
        for pname, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise FloatingPointError(
                    f"non-finite parameter {name}.{pname} at agent step {step} (diverged)"
                )


@dataclass(frozen=True)
class RunOptions:
    """How a run is recorded (not what it computes: a run's identity is its RunSpec)."""

    checkpoint_every: int = 0  # env steps between checkpoints; 0: never
    train_log_every: int = TRAIN_LOG_EVERY  # updates averaged into one train.csv row per metric
    tensorboard: bool = False  # also write each row as TensorBoard scalars under <run dir>/tensorboard/
    # processes that play the evaluation episodes side by side; 0 or 1: here, one after another; None: the
    # cores given to the run (evaluation.default_workers). Equal returns either way (evaluation.py).
    eval_workers: int | None = None
    # step the training env in a worker process while the update runs (the update never reads the transition
    # being collected): the same transitions and results, sooner where the cores allow (docs/internals.md)
    async_env: bool = False

    def validate(self) -> None:
        if self.tensorboard:
            from seer_bench.tensorboard import check_available

            check_available()
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be >= 0 env steps, got {self.checkpoint_every}")
        if self.train_log_every < 1:
            raise ConfigError(f"--train-log-every must be >= 1 update, got {self.train_log_every}")
        if self.eval_workers is not None and self.eval_workers < 0:
            raise ConfigError(
                f"--eval-workers must be >= 0 (0 or 1: evaluate in the run's process), "
                f"got {self.eval_workers}"
            )

    def workers_for(self, episodes: int) -> int:
        """Evaluation worker processes for `episodes` episodes (0: none, evaluate in this process)."""
        n = default_workers(episodes) if self.eval_workers is None else min(self.eval_workers, episodes)
        return n if n > 1 else 0


def run(spec: RunSpec, out: Path, options: RunOptions = RunOptions()) -> RunResult:
    """Train and evaluate one RunSpec, writing config.json, metrics.csv, train.csv, events.jsonl and
    progress.json (see `Workspace`)."""
    return Workspace(spec, out, options).train()


class Workspace:
    """One run: its env, evaluation env, agent, replay and records, and the plain loop in `train()`.

    With `options.checkpoint_every` (env steps, 0 for never) the run saves a checkpoint at every multiple
    of it, after that step's evaluation (and SEER's freeze), and a run whose directory holds a checkpoint
    continues from it: metrics rows after the checkpoint, and the checkpoint step's row if a crash cut it, are
    dropped and evaluated again, the episode in progress is cut (a new one starts, with new env seeds), and
    counters, FLOP totals, wall, train, eval and update time and every random generator continue where they
    were. A corrupt checkpoint is set aside (kept) and the run starts again from zero.
    """

    def __init__(self, spec: RunSpec, out: Path, options: RunOptions = RunOptions()) -> None:
        set_up = time.perf_counter()
        self.spec, self.path = spec, run_dir(out, spec.run_id)
        saved = self._load_checkpoint()
        self.start_step = saved["step"] if saved else 0
        self.cfg, self.device = agent_config(spec.agent, spec.agent_overrides), resolve_device(spec.device)
        self.times = TimeLedger(self.device)
        self.async_env = options.async_env
        self._build()
        self.train_episodes, self.updates, wall_before = 0, 0, 0.0
        if saved is None:
            self._start()
        else:
            wall_before = self._restore(saved)
        del saved  # its replay copy would otherwise stay in memory (and in the RSS records) for the whole run
        keep_through = self.start_step if self.resumed else None  # rows a resumed run's checkpoint had seen
        self.metrics = CsvLog(self.path / "metrics.csv", METRICS_COLUMNS, keep_through)
        self.board = self._board(options, keep_through)
        self.train_log = TrainLog(
            self.path / "train.csv",
            spec.action_repeat,
            options.train_log_every,
            keep_through,
            on_row=self.board.train_row if self.board else None,
        )
        for log in (self.metrics, self.train_log.log):
            if log.torn:  # a crash cut it: dropped, and (metrics) evaluated again at the checkpoint's step
                append_event(
                    self.path, "torn_row_dropped", run_id=spec.run_id, file=str(log.file), line=log.torn
                )
        self.eval_every = max(1, spec.eval_every // spec.action_repeat)
        # agent steps, rounded up (0: never)
        self.save_every = -(-options.checkpoint_every // spec.action_repeat)
        self.last_eval = float("nan")
        self.memory = MemorySampler(self.device)
        self.memory.note_replay(self.replay.resident_bytes)  # a resumed run starts with its replay held
        self.progress = ProgressFile(
            self.path, spec.run_id, spec.agent_steps, spec.action_repeat, self.start_step
        )
        # last: its worker processes are ended by `_close`, which only `train` reaches
        self.evaluator = Evaluator(
            EnvRecipe(spec.env, spec.action_repeat, spec.seed, False, spec.env_options),
            options.workers_for(spec.eval_episodes),
        )
        self.times.add("setup", time.perf_counter() - set_up)
        self.started = set_up - wall_before  # wall time counts the set-up too

    def _board(self, options: RunOptions, keep_through: int | None) -> TensorBoardLog | None:
        """The TensorBoard observer with `options.tensorboard`, else None. A resumed run appends to the same
        event directory and purges what it logged after the checkpoint, which it logs again."""
        if not options.tensorboard:
            return None
        from seer_bench.tensorboard import TensorBoardLog

        kept = keep_through * self.spec.action_repeat if keep_through is not None else None
        return TensorBoardLog(self.path, kept_through_env_steps=kept)

    def _load_checkpoint(self) -> dict[str, Any] | None:
        """The run's checkpoint, or None to start from zero: when there is none, and when it is corrupt. A
        corrupt one would fail every re-run: it is set aside (kept), with a `checkpoint_discarded` event and
        a line saying the run restarts from zero."""
        try:
            return checkpoint.load(self.path, CHECKPOINT_KEYS)
        except CorruptCheckpoint as e:
            kept = checkpoint.set_aside(self.path)
            append_event(
                self.path,
                "checkpoint_discarded",
                run_id=self.spec.run_id,
                file=str(self.path / checkpoint.FILE),
                reason=str(e),
                set_aside=kept.name,
            )
            print(
                f"run {self.spec.run_id}: {e}; set aside as {kept.name}, restarting from zero",
                file=sys.stderr,
            )
            return None

    def _build(self) -> None:
        """Seeds, then the envs, agent, replay, FLOP ledger and SEER, in this order: a fixed random stream."""
        spec, cfg = self.spec, self.cfg
        if self.device.index is not None:  # `cuda:N`: torch.cuda's calls without a device mean this one
            torch.cuda.set_device(self.device)  # (it refuses a device without an index: plain `cuda`)
        random.seed(spec.seed)
        np.random.seed(spec.seed)
        torch.manual_seed(spec.seed)
        # the init phase's random actions
        self.rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(2)[0])
        seed = _reseeded(spec.seed, self.start_step)
        if self.async_env:
            self.env = RemoteEnv(EnvRecipe(spec.env, spec.action_repeat, seed, True, spec.env_options))
        else:
            self.env = build_env(spec, seed)
        self.env.section = self.times.section  # its physics and rendering, timed apart
        self.agent = make_agent(
            spec.agent, cfg, self.env.obs_shape, self.env.action_dim, self.device, spec.seed
        )
        self.replay = make_replay(
            spec.replay_layout,
            transition_spec(self.env),
            spec.budget_bytes,
            cfg.batch_size,
            spec.agent_steps,
            replay_storage(spec),
        )
        # training compute only: evaluation episodes measure the agent, they are not its cost
        self.ledger = FlopLedger(networks(self.agent))
        # the category of SEER's encodings: the conversion at T_f, then new transitions
        self.encoding = "convert"
        self.seer = build_seer(spec, cfg, self.env, spec.seed, self._observed_encode) if spec.seer else None

    def _observed_encode(self, encode: Callable) -> Callable:
        """SEER's encoder as both ledgers see it: FLOPs and seconds as conversion at T_f, encoding after."""
        timed = {c: self.times.wrap(c, encode) for c in ("convert", "encode")}
        return lambda pixels: self.ledger.observe(
            self.encoding, ("encode", len(pixels)), timed[self.encoding], pixels
        )

    @property
    def resumed(self) -> bool:
        return self.start_step > 0

    @property
    def phase(self) -> str:
        return "frozen" if isinstance(self.replay, LatentReplay) else "pixels"

    def _start(self) -> None:
        """A new run: config.json and the `started` event."""
        spec, env, replay = self.spec, self.env, self.replay
        write_config(
            self.path,
            {
                "spec": spec.to_dict(),
                "run_id": spec.run_id,
                "label": spec.label,  # the agent and its variant's settings: what reports group by
                "agent_config": asdict(self.cfg),
                "env": {
                    "obs_shape": list(env.obs_shape),
                    "action_dim": env.action_dim,
                    "discrete": env.discrete,
                    "frame_stack": env.frame_stack,
                    "episode_steps": env.episode_steps,
                },
                "replay": {
                    "layout": replay.layout,
                    "budget_bytes": spec.budget_bytes,
                    "capacity": replay.capacity,  # what the budget holds
                    "allocated_capacity": replay.slots,  # what the arrays hold: the run's steps at most
                    "bytes_per_transition": replay.bytes_per_transition,
                    "allocated_bytes": replay.allocated_bytes,
                    # where they live: "host" memory, or the run's "device" (--replay-device)
                    "storage": storage_of(replay),
                    **placed_bytes(
                        type(replay), replay.spec, replay.capacity, replay.max_transitions, storage_of(replay)
                    ),
                    "paper_layout_bytes_per_transition": replay_class("paper").total_bytes(
                        replay.spec, replay.capacity
                    )
                    / replay.capacity,
                },
                "seer": seer_sizing(self.seer, self.agent) if self.seer else None,
                "device": str(self.device),
                "torch_threads": torch.get_num_threads(),
                "versions": versions(),
                "host": platform.node(),
                "argv": sys.argv,
            },
        )
        append_event(self.path, "started", run_id=spec.run_id)

    def _restore(self, saved: dict[str, Any]) -> float:
        """Continue from a checkpoint (times included); returns the wall time it had run."""
        if saved["frozen"]:  # rebuild SEER's state (frozen layers, latent replay), then load into it
            self.encoding = "encode"
            self.agent.freeze(self.seer.cfg.split)
            self.replay = self.seer.latent_replay(self.agent)
            checkpoint.set_generator_state(self.seer.rng, saved["seer_rng"])
        checkpoint.load_object_state(self.agent, saved["agent"])
        self.replay.load_state_dict(saved["replay"])
        cut = self.replay.cut_episode()
        checkpoint.set_global_rng_state(saved["rng"])
        checkpoint.set_generator_state(self.rng, saved["init_actions_rng"])
        self.ledger.load_state_dict(saved["ledger"])
        self.train_episodes, self.updates = saved["train_episodes"] + cut, saved["updates"]
        self.times.load_state_dict(saved.get("times", {}))
        step = self.start_step
        append_event(
            self.path, "resumed", run_id=self.spec.run_id, step=step, env_steps=step * self.spec.action_repeat
        )
        return saved["wall_s"]

    # --- the loop -----------------------------------------------------------------------------------------
    def train(self) -> RunResult:
        """Act, update, step the env, store the transition; evaluation, SEER's freeze
        and checkpoints at their steps."""
        step = self.start_step
        try:
            self.memory.start()
            obs = self.env.reset()
            for step in range(self.start_step, self.spec.agent_steps):
                self._scheduled(step)
                obs = self.train_step(obs, step)
                with self.times.section("bookkeeping"):
                    self.progress.update(
                        step + 1,
                        phase="frozen" if self.phase == "frozen" else "training",
                        eval_return=self.last_eval,
                    )
            self._evaluate(self.spec.agent_steps)
        except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM (interrupts.Interrupted), Ray's cancel
            raise self._interrupted(as_interrupted(e), step) from None
        except BaseException as e:  # where it stopped, for the failure record
            e.stopped_env_steps = step * self.spec.action_repeat  # progress.json may be seconds old
            with contextlib.suppress(OSError):  # a full disk must not hide the error that stopped the run
                self.progress.update(step, force=True, phase="failed", eval_return=self.last_eval)
            raise
        finally:
            self._close()
        return self._finish()

    def train_step(self, obs: np.ndarray, step: int) -> np.ndarray:
        """One agent step of the loop: act, update at its steps, step the env and store the transition;
        returns the next observation. Public so that benchmarks/throughput.py times exactly what `train` runs
        between evaluations."""
        with self.times.section("loop"):
            action = self._act(obs, step)
            if self.async_env:  # the worker steps while this process updates
                self.env.step_async(action)
            if self._updates_at(step):
                self._update(step)
            return self._env_step(obs, action)

    def _interrupted(self, e: Interrupted, step: int) -> Interrupted:
        """Record where a signal stopped the run: an `interrupted` event (the run resumes from its latest
        checkpoint, which stays as it was) and progress.json."""
        env_steps = step * self.spec.action_repeat
        e.runs.append((self.spec.run_id, env_steps))
        with contextlib.suppress(OSError):
            self.progress.update(step, force=True, phase="interrupted", eval_return=self.last_eval)
            append_event(
                self.path,
                "interrupted",
                run_id=self.spec.run_id,
                step=step,
                env_steps=env_steps,
                signal=signal.Signals(e.signum).name,
                checkpoint_step=self.progress.checkpoint or self.start_step,  # where the same command resumes
            )
        return e

    def _scheduled(self, step: int) -> None:
        """What happens before step `step`'s action: evaluation, SEER's freeze, a checkpoint (each at most
        once
        per step: a resumed run did them before saving)."""
        if self.resumed and step == self.start_step:
            if step % self.eval_every == 0 and step not in self.metrics.steps:
                # its row was cut by a crash (torn_row_dropped): evaluated again from the checkpoint's state
                # (at T_f already frozen: the same policy, other replay columns; update_flops NaN, as prices
                # are observed again after a resume)
                self._evaluate(step)
            return
        if step % self.eval_every == 0:
            self._evaluate(step)
        if self.seer is not None and step == self.seer.cfg.freeze_at:
            self._freeze(step)
        if self.save_every and step % self.save_every == 0 and step > self.start_step:
            self._save(step)

    def _act(self, obs: np.ndarray, step: int) -> Any:
        if step < self.agent.random_steps:
            return self.env.random_action(self.rng)
        with self.times.section("bookkeeping"):  # the FLOP ledger's part: the call inside is `act`
            act = self.times.wrap("act", self.agent.act)  # looked up per call: an agent's method may change
            action = self.ledger.observe("act", ("act", self.phase), act, obs, step, eval_mode=False)
        if not np.all(np.isfinite(action)):  # before the env sees it (MuJoCo would reject it less clearly)
            raise FloatingPointError(f"non-finite action at agent step {step} (diverged)")
        return action

    def _updates_at(self, step: int) -> bool:
        start, every = self.agent.learn_start, self.agent.update_every
        return step >= start and (step - start) % every == 0

    def _update(self, step: int) -> None:
        key = ("update", self.phase, step % self.agent.update_period)
        with self.times.section("bookkeeping"):  # the FLOP ledger's part and train.csv: the call is `update`
            update = self.times.wrap("update", self.agent.update)
            metrics = self.ledger.observe("update", key, update, self.replay, step)
            self.updates += 1
            self.train_log.add(step, self.updates, metrics)

    def _env_step(self, obs: np.ndarray, action: Any) -> np.ndarray:
        """Step the env and store the transition (a latent replay encodes it, observed by the ledger)."""
        res = self.env.step_wait() if self.async_env else self.env.step(action)  # physics, render: the env's
        with self.times.section("replay"):  # and inside it SEER's `encode`
            self.replay.add(obs, action, res.reward, res.obs, res.terminal, res.last)
        with self.times.section("bookkeeping"):
            self.memory.note_replay(self.replay.resident_bytes)
        if not res.last:
            return res.obs
        self.train_episodes += 1
        return self.env.reset()

    # --- what happens at scheduled steps ------------------------------------------------------------------
    def _evaluate(self, step: int) -> None:
        with self.times.section("bookkeeping"):
            check_finite(self.agent, step)
        with self.times.section("eval"):
            mean, std = self.evaluator.evaluate(self.agent, self.spec.seed, self.spec.eval_episodes, step)
        with self.times.section("bookkeeping"):
            self._write_metrics(step, mean, std)

    def _write_metrics(self, step: int, mean: float, std: float) -> None:
        """metrics.csv's row of the evaluation at `step` (and its TensorBoard scalars)."""
        self.last_eval = mean
        replay, ledger = self.replay, self.ledger
        row = {
            "step": step,
            "env_steps": step * self.spec.action_repeat,
            "eval_return": mean,
            "eval_return_std": std,
            "hns": normalized_score(self.spec.env, mean),
            "train_episodes": self.train_episodes,
            "updates": self.updates,
            "wall_s": time.perf_counter() - self.started,
            **self.times.row(self.updates),
            "replay_capacity": replay.capacity,
            "replay_size": len(replay),
            "replay_bytes": replay.resident_bytes,
            "replay_alloc_bytes": replay.allocated_bytes,
            **self.memory.window().as_row(),
            "frozen": int(self.phase == "frozen"),
            "update_flops": ledger.mean_price(
                ("update", self.phase, s) for s in range(self.agent.update_period)
            ),
            "cum_flops": ledger.total,
            **{f"cum_flops_{c}": ledger.totals[c] for c in CATEGORIES},
        }
        self.metrics.write(row)
        if self.board:
            self.board.metrics_row(row)

    def _freeze(self, step: int) -> None:
        """SEER at T_f: the one place the replay is swapped (pixels -> latents)."""
        self.progress.update(step, force=True, phase="converting replay", eval_return=self.last_eval)
        self.train_log.flush()  # a window never mixes pixel and latent updates
        flops_at_freeze = self.ledger.total  # where T_f falls on a return-vs-FLOPs axis
        with self.times.section("convert"):  # part of SEER's training cost
            self.replay, event = self.seer.freeze(self.agent, self.replay, step, self.memory.note_replay)
        self.memory.note_replay(self.replay.resident_bytes)
        self.encoding = "encode"
        append_event(self.path, "frozen", **event, cum_flops=flops_at_freeze)

    def _save(self, step: int) -> None:
        """Write the checkpoint: CHECKPOINT_KEYS, everything `_restore` reads back."""
        # a signal now takes effect once the checkpoint and its bookkeeping are written
        with deferred(), self.times.section("checkpoint"):
            self._write_checkpoint(step)

    def _write_checkpoint(self, step: int) -> None:
        self.train_log.flush()  # rows up to the checkpoint are complete; later ones are redone on resume
        checkpoint.save(
            self.path,
            {
                "step": step,
                "frozen": self.phase == "frozen",
                "agent": checkpoint.object_state(self.agent),
                "replay": self.replay.state_dict(),
                "seer_rng": checkpoint.generator_state(self.seer.rng) if self.seer else {},
                "rng": checkpoint.global_rng_state(),
                "init_actions_rng": checkpoint.generator_state(self.rng),
                "ledger": self.ledger.state_dict(),
                "train_episodes": self.train_episodes,
                "updates": self.updates,
                "wall_s": time.perf_counter() - self.started,
                "times": self.times.state_dict(),
            },
        )
        self.progress.checkpoint = step
        self.progress.update(step, force=True, phase="checkpoint saved", eval_return=self.last_eval)

    def _close(self) -> None:
        try:
            self.memory.stop()
            self.metrics.close()
            self.train_log.close()
            if self.board:
                self.board.close()
        finally:  # whatever failed above, no env worker process outlives the run
            self.env.close()
            self.evaluator.close()

    def _finish(self) -> RunResult:
        wall = time.perf_counter() - self.started
        spec = self.spec
        self.progress.update(spec.agent_steps, force=True, phase="finished", eval_return=self.last_eval)
        append_event(
            self.path,
            "finished",
            run_id=spec.run_id,
            wall_s=wall,
            final_return=self.last_eval,
            flops=self.ledger.totals,
            fvcore_unsupported_ops=self.ledger.state_dict()["unsupported"],
        )
        checkpoint.discard(self.path)
        return RunResult(spec.run_id, self.last_eval, wall)
