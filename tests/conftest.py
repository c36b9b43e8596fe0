import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from seer_bench.records import METRICS_COLUMNS, CsvLog, append_event, run_dir, write_config
from seer_bench.replay import PaperReplay, TransitionSpec

# pytest-xdist runs one test process per core (pyproject's addopts): each gets its share of the cores, so
# the processes do not oversubscribe them and a test's timing does not depend on its neighbour's.
torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


def fill_random(replay, n: int, seed: int = 0, episode_steps: int = 10) -> None:
    """Add `n` transitions of random pixels, stacked like the env stacks
    frames, episodes of `episode_steps`."""
    rng = np.random.default_rng(seed)
    c = replay.spec.frame_shape
    k = replay.spec.frame_stack
    frames = None
    for t in range(n):
        if frames is None:
            first = rng.integers(0, 256, c, dtype=np.uint8)
            frames = [first] * k
        obs = np.concatenate(frames)
        frames = frames[1:] + [rng.integers(0, 256, c, dtype=np.uint8)]
        last = (t + 1) % episode_steps == 0
        replay.add(
            obs,
            rng.uniform(-1, 1, replay.spec.action_dim),
            float(rng.normal()),
            np.concatenate(frames),
            terminal=bool(rng.random() < 0.05),
            last=last,
        )
        if last:
            frames = None


@pytest.fixture
def filled_replay():
    spec = TransitionSpec((9, 100, 100), action_dim=2, frame_stack=3, episode_steps=10)
    replay = PaperReplay(spec, 64)
    fill_random(replay, 64)
    return replay


def assert_calls_priced_as_torch_counts(agent, *calls) -> None:
    """For each call, the FLOP ledger's price equals torch's count (rel 1e-3: LayerNorm, which fvcore
    counts and torch does not)."""
    for call in calls:
        ledger, measured = ledger_and_torch(agent, call)
        assert ledger == pytest.approx(measured, rel=1e-3), (call, ledger, measured)


def assert_act_and_encode_priced(agent, obs, copies: int, frozen: bool) -> None:
    """An action on `obs`, and (once frozen) encoding 3 copies of it into `copies` latents each, are priced
    as torch's counter counts them."""
    pixels = np.stack([obs] * 3)
    encode = lambda: agent.encode(pixels, np.random.default_rng(0), copies, "float32")  # noqa: E731
    assert_calls_priced_as_torch_counts(
        agent, lambda: agent.act(obs, 0, eval_mode=False), *([encode] if frozen else [])
    )


def tiny_spec(agent: str, seer=None, **fields):
    """A run of a few hundred env steps on cartpole-swingup at action repeat 8: the runner tests' unit."""
    from seer_bench.suites import RunSpec

    base = dict(
        suite="test",
        scale="tiny",
        agent=agent,
        env="cartpole-swingup",
        action_repeat=8,
        seed=3,
        budget_gb=0.01,
        steps=320,
        eval_every=160,
        eval_episodes=1,
        replay_layout="paper",
        device="cpu",
    )
    return RunSpec(**{**base, "seer": seer, **fields})


def short_spec(agent: str, seer=None, eval_every: int = 30, init_steps: int = 29, **fields):
    """30 agent steps at action repeat 50 (episodes of 20 steps), evaluated every `eval_every` agent steps,
    updates from agent step `init_steps` (default: one update): a real run in a few seconds."""
    overrides = {"batch_size": 8, "init_steps": init_steps, "hidden_dim": 64}
    return tiny_spec(
        agent,
        seer,
        **{"action_repeat": 50, "steps": 50 * 30, "eval_every": 50 * eval_every, **fields},
        agent_overrides=overrides,
    )


def ledger_and_torch(agent, fn) -> tuple[int, float]:
    """(the FLOP ledger's price, torch's multiply-adds) of one call of `fn`, observed by both at once: the
    ledger watching the agent's modules, torch's counter every operator (2 flops per multiply-add)."""
    from seer_bench.agents.contract import networks
    from seer_bench.instrument.flops import CallRecorder, FlopLedger

    ledger, counter = FlopLedger(networks(agent)), FlopCounterMode(display=False)
    with counter, CallRecorder(ledger.modules) as recorder:
        fn()
    return ledger.price(recorder), counter.get_total_flops() / 2


class OpLog(TorchDispatchMode):
    """Every operator that runs, at the dispatcher (below modules, hooks and custom autograd functions)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


FLOPS_PER_STEP = {"curl": 10.0, "curl+seer": 4.0, "der": 10.0}


def write_run(
    out,
    env,
    agent,
    seed,
    final,
    steps=(0, 100, 200),
    status="finished",
    budget=0.6,
    atari=False,
    seer_capacity=None,
    layout="paper",
    length=200,
    env_shape=True,
):
    """Synthetic records with known values in every documented column: return `final` at the last
    evaluation (half before), cumulative FLOPs rate x env steps x (1 + seed), capacity 3000 for SEER agents
    and 1000 otherwise, no GPU. The spec asks for `length` env steps at the smoke scale in the replay
    `layout`; the config holds cartpole-swingup's transition shape (`env_shape=False`: none, as older
    records) and the budget in bytes."""
    run_id = f"{agent}/{env}/budget_{budget:g}/seed_{seed}"
    path = run_dir(out, run_id)
    seer = {"seer": {"capacity": seer_capacity}} if seer_capacity else {}
    capacity = 1000 * (3 if "+seer" in agent else 1)
    spec = {"env": env, "agent": agent, "budget_gb": budget, "seed": seed, "steps": length, "scale": "smoke"}
    shape = {
        "obs_shape": [9, 100, 100],
        "action_dim": 1,
        "discrete": False,
        "frame_stack": 3,
        "episode_steps": 125,
    }
    write_config(
        path,
        {
            "spec": {**spec, "replay_layout": layout, **seer},
            "replay": {"layout": layout, "budget_bytes": round(budget * 1e9), "capacity": capacity},
            **({"env": shape} if env_shape else {}),
        },
    )
    append_event(path, "started", run_id=run_id)
    writer = CsvLog(path / "metrics.csv", METRICS_COLUMNS)
    for i, e in enumerate(steps):
        ret = final if e == steps[-1] else final / 2
        writer.write(synthetic_row(agent, seed, i, e, ret, capacity, atari))
    writer.close()
    if status == "finished":
        append_event(path, "finished", run_id=run_id, wall_s=10.0 * len(steps) + 0.5)
    elif status == "failed":
        append_event(path, "failed", run_id=run_id, reason="RuntimeError: loss is NaN")


def synthetic_row(agent, seed, i, e, ret, capacity, atari):
    """Evaluation `i` at env step `e` of `write_run`: a value in every documented column."""
    flops = int(FLOPS_PER_STEP[agent] * e * (1 + seed))
    return {
        "step": e,
        "env_steps": e,
        "eval_return": ret,
        "eval_return_std": 0.0,
        "hns": ret / 1000 if atari else None,
        "train_episodes": i,
        "updates": e,
        "wall_s": 10.0 * (i + 1),
        "train_s": 6.0 * i + seed,  # nothing trained before the first evaluation
        "eval_s": 2.0 * (i + 1),
        "update_s_mean": 0.001 * (1 + seed) if e else float("nan"),  # no update before the first evaluation
        "replay_capacity": capacity,
        "replay_size": min(e, capacity),
        "replay_bytes": 10**6 * (i + 1) + seed,
        "replay_peak_bytes": 10**6 * (i + 1) + seed,  # nothing more held between two evaluations
        "replay_alloc_bytes": 10**7,
        "rss_bytes": 5 * 10**8,
        "rss_peak_bytes": 6 * 10**8 + seed,
        "gpu_bytes": None,  # no GPU: empty, as the runner writes it
        "gpu_alloc_bytes": None,
        "gpu_reserved_bytes": None,
        "frozen": 0,
        "update_flops": FLOPS_PER_STEP[agent],
        "cum_flops": flops,
        "cum_flops_act": 0,
        "cum_flops_update": flops,
        "cum_flops_encode": 0,
        "cum_flops_convert": 0,
    }


def scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's TensorBoard event files, read back by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_mib, read_only=False): a real small filesystem (tmpfs) to fill or to make read-only,
    unmounted after the test. Skips where this machine does not let the tests mount (not root)."""
    mounts = []

    def mount(size_mib: int, read_only: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounts)}"
        where.mkdir()
        opts = f"size={size_mib}m" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0 or os.geteuid() != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


ROOT = Path(__file__).resolve().parents[1]


def checkpoint_step(path: Path) -> int:
    """The agent step of the run's latest checkpoint, as its progress.json says (0 before the first)."""
    try:
        return json.loads((path / "progress.json").read_text()).get("checkpoint_step") or 0
    except (OSError, ValueError):
        return 0


def start_process(*argv: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """`python argv...` from the repository root in a process of its own: a sweep or worker to signal or
    kill from the test."""
    return subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True
    )


def wait_while_running(proc: subprocess.Popen, ready, timeout_s: float = 600.0) -> None:
    """Poll until `ready()` (e.g. a checkpoint saved); the process must still be running then."""
    deadline = time.time() + timeout_s
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the process ended before it could be stopped"
