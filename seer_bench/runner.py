"""One run: an env <-> agent loop with replay, periodic evaluation and records.

The loop follows the public CURL/SEER training script: evaluate every `eval_every` env steps (and at step
0 and at the end), act uniformly at random for the agent's `random_steps` (CURL: 1,000; DER: none, its
noisy network explores), then from `learn_start` one update per agent step before the environment step
(DER's public loop updates after it: one transition's difference). Evaluation uses a separate
environment instance (the public script reuses the training env, which cuts the training episode short)
and the agent's evaluation policy; on Atari that env follows the evaluation protocol (raw score, a whole
game per episode) and records carry the human-normalized score.

For SEER agents, at step T_f (after that step's evaluation, before its update) the agent freezes and the
pixel replay is converted to latents; nothing else in the loop changes.
"""

from __future__ import annotations

import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seer_bench.agents import AGENTS, agent_config, make_agent
from seer_bench.agents.contract import networks
from seer_bench.agents.seer import Seer
from seer_bench.envs import PixelEnv, make_env, normalized_score
from seer_bench.errors import ConfigError
from seer_bench.instrument.flops import CATEGORIES, FlopLedger
from seer_bench.instrument.memory import MemorySampler
from seer_bench import checkpoint
from seer_bench.records import MetricsWriter, ProgressFile, append_event, run_dir, write_config
from seer_bench.replay import LatentReplay, TransitionSpec, make_replay, replay_class
from seer_bench.suites import RunSpec

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share the training env's random stream


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to torch on this machine")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def transition_spec(env: PixelEnv) -> TransitionSpec:
    return TransitionSpec(env.obs_shape, env.action_dim, frame_stack=env.frame_stack,
                          episode_steps=env.episode_steps, discrete=env.discrete)


def build_env(spec: RunSpec, seed: int, train: bool = True) -> PixelEnv:
    return make_env(spec.env, spec.action_repeat, seed, train, spec.env_options)


def build_seer(spec: RunSpec, cfg: Any, env: PixelEnv, seed: int, observe: Any = None) -> Seer:
    return Seer(spec.seer, spec.budget_bytes, seed, chunk=cfg.batch_size, layout=spec.replay_layout,
                transitions=transition_spec(env), total_steps=spec.agent_steps, observe=observe)


def check_spec(spec: RunSpec) -> None:
    """Everything about a run that can fail, checked without training: agent settings, device, budget."""
    cfg = agent_config(spec.agent, spec.agent_overrides)
    resolve_device(spec.device)
    env = build_env(spec, seed=0)
    try:
        if AGENTS[spec.agent][1].discrete != env.discrete:
            kinds = {True: "discrete", False: "continuous"}
            raise ConfigError(f"{spec.run_id}: agent {spec.agent} takes {kinds[not env.discrete]} actions, env "
                              f"{spec.env} has {kinds[env.discrete]} ones")
        agent = make_agent(spec.agent, cfg, env.obs_shape, env.action_dim, torch.device("cpu"), 0)
        if spec.agent_steps <= agent.learn_start:
            raise ConfigError(f"{spec.run_id}: {spec.agent_steps} agent steps ({spec.steps} env steps) leave no update "
                              f"before or at learn start ({agent.learn_start} agent steps); raise --steps")
        replay = make_replay(spec.replay_layout, transition_spec(env), spec.budget_bytes, cfg.batch_size)  # raises when too small
        if replay.capacity < agent.sample_horizon:
            raise ConfigError(f"{spec.run_id}: the replay holds {replay.capacity} transitions, fewer than one "
                              f"{agent.sample_horizon}-step window; raise --budget-gb")
        if spec.seer is not None:
            _check_seer(spec, cfg, agent, env)
    finally:
        env.close()


def _check_seer(spec: RunSpec, cfg: Any, agent: Any, env: PixelEnv) -> None:
    tf = spec.seer.freeze_at
    if tf <= agent.learn_start:
        raise ConfigError(f"{spec.run_id}: freeze_at {tf} agent steps is not after the first update (agent step "
                          f"{agent.learn_start}): the encoder would freeze untrained")
    if tf >= spec.agent_steps:
        raise ConfigError(f"{spec.run_id}: freeze_at {tf} agent steps is not before the run ends "
                          f"({spec.agent_steps} agent steps = {spec.steps} env steps); lower --freeze-at")
    if spec.seer.split not in agent.splits():
        raise ConfigError(f"{spec.run_id}: seer split {spec.seer.split!r} is not a layer boundary of {spec.agent}; "
                          f"choose from {', '.join(agent.splits())}")
    if spec.seer.num_copies > 1 and not agent.random_crops:
        raise ConfigError(f"{spec.run_id}: num_copies {spec.seer.num_copies}: {spec.agent} does not augment, so every "
                          f"copy would be the same latent; set num_copies = 1")
    seer = build_seer(spec, cfg, env, seed=0)
    need = max(cfg.batch_size, agent.sample_horizon)
    if seer.capacity(agent) < need:
        raise ConfigError(f"{spec.run_id}: after T_f the budget holds {seer.capacity(agent)} latent transitions, "
                          f"fewer than the {need} a batch needs")


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
        "config": asdict(seer.cfg), "latent_streams": [list(s) for s in spec.streams],
        "latent_layout": seer.replay_class(agent).layout, "latent_bytes_per_transition": seer.bytes_per_transition(agent),
        "capacity_policy": seer.cfg.capacity, "capacity_after": seer.capacity(agent),
        "capacity_budget": seer.budget_capacity(agent), "capacity_public_formula": seer.public_capacity(agent)}


@dataclass
class RunResult:
    run_id: str
    final_return: float
    wall_s: float


def evaluate(env: PixelEnv, agent: Any, episodes: int) -> tuple[float, float]:
    returns = []
    for _ in range(episodes):
        obs, total, last = env.reset(), 0.0, False
        while not last:
            res = env.step(agent.act(obs, sample=False))
            obs, total, last = res.obs, total + res.reward, res.last
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns))


def _reseeded(seed: int, step: int) -> int:
    """The env seed of a run resumed at `step`: new episodes, not a replay of the ones from step 0."""
    return seed if step == 0 else int(np.random.SeedSequence([seed, step]).generate_state(1)[0] % 2**31)


def check_finite(agent: Any, step: int) -> None:
    """Raise when a parameter went NaN or infinite: the run has diverged and every later number is noise."""
    for name, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            for pname, p in value.named_parameters():
                if not torch.isfinite(p).all():
                    raise FloatingPointError(f"non-finite parameter {name}.{pname} at agent step {step} (diverged)")


def run(spec: RunSpec, out: Path, checkpoint_every: int = 0) -> RunResult:
    """Train and evaluate one RunSpec, writing config.json, metrics.csv, events.jsonl and progress.json.

    With `checkpoint_every` (env steps, 0 for never) the run saves a checkpoint at every multiple of it,
    after that step's evaluation (and SEER's freeze), and a run whose directory holds a checkpoint
    continues from it: metrics rows after the checkpoint are dropped and evaluated again, the episode in
    progress is cut (a new one starts, with new env seeds), and counters, FLOP totals, wall time and every
    random generator continue where they were.
    """
    path = run_dir(out, spec.run_id)
    saved = checkpoint.load(path)
    start_step = saved["step"] if saved else 0
    cfg = agent_config(spec.agent, spec.agent_overrides)
    device = resolve_device(spec.device)
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(2)[0])  # init-phase random actions

    env = build_env(spec, _reseeded(spec.seed, start_step))
    eval_env = build_env(spec, _reseeded(spec.seed + EVAL_SEED_OFFSET, start_step), train=False)
    agent = make_agent(spec.agent, cfg, env.obs_shape, env.action_dim, device, spec.seed)
    replay = make_replay(spec.replay_layout, transition_spec(env), spec.budget_bytes, cfg.batch_size)
    # training compute only: evaluation episodes measure the agent, they are not its cost
    ledger = FlopLedger(networks(agent))
    encoding = ["convert"]  # the category of SEER's encodings: the conversion at T_f, then new transitions

    def observed_encode(encode):
        return lambda pixels: ledger.observe(encoding[0], ("encode", len(pixels)), encode, pixels)

    seer = build_seer(spec, cfg, env, spec.seed, observed_encode) if spec.seer else None
    sizing = seer_sizing(seer, agent) if seer else None
    train_episodes, updates, wall_before = 0, 0, 0.0
    if saved is None:
        write_config(path, {
            "spec": spec.to_dict(), "run_id": spec.run_id, "agent_config": asdict(cfg),
            "env": {"obs_shape": list(env.obs_shape), "action_dim": env.action_dim, "discrete": env.discrete,
                    "frame_stack": env.frame_stack, "episode_steps": env.episode_steps},
            "replay": {"layout": replay.layout, "budget_bytes": spec.budget_bytes, "capacity": replay.capacity,
                       "bytes_per_transition": replay.bytes_per_transition, "allocated_bytes": replay.allocated_bytes,
                       "paper_layout_bytes_per_transition":
                           replay_class("paper").total_bytes(replay.spec, replay.capacity) / replay.capacity},
            "seer": sizing,
            "device": str(device), "torch_threads": torch.get_num_threads(), "versions": versions(),
            "host": platform.node(), "argv": sys.argv})
        append_event(path, "started", run_id=spec.run_id)
        writer = MetricsWriter(path)
    else:
        if saved["frozen"]:  # rebuild SEER's state (frozen layers, latent replay), then load into it
            encoding[0] = "encode"
            agent.freeze(seer.cfg.split)
            replay = seer.latent_replay(agent)
            checkpoint.set_generator_state(seer.rng, saved["seer_rng"])
        checkpoint.load_object_state(agent, saved["agent"])
        replay.load_state_dict(saved["replay"])
        cut = replay.cut_episode()
        checkpoint.set_global_rng_state(saved["rng"])
        checkpoint.set_generator_state(rng, saved["init_actions_rng"])
        ledger.load_state_dict(saved["ledger"])
        train_episodes, updates, wall_before = saved["train_episodes"] + cut, saved["updates"], saved["wall_s"]
        append_event(path, "resumed", run_id=spec.run_id, step=start_step, env_steps=start_step * spec.action_repeat)
        writer = MetricsWriter(path, keep_through=start_step)
    resumed = saved is not None
    del saved  # its replay copy would otherwise stay in memory (and in the RSS records) for the whole run

    total = spec.agent_steps
    eval_every = max(1, spec.eval_every // spec.action_repeat)
    save_every = -(-checkpoint_every // spec.action_repeat)  # agent steps, rounded up (0: never)
    start = time.perf_counter() - wall_before
    last_eval = float("nan")
    memory = MemorySampler(device)
    progress = ProgressFile(path, spec.run_id, spec.agent_steps, spec.action_repeat, start_step)

    def phase() -> str:
        return "frozen" if isinstance(replay, LatentReplay) else "pixels"

    def log_eval(step: int) -> None:
        nonlocal last_eval
        check_finite(agent, step)
        mean, std = evaluate(eval_env, agent, spec.eval_episodes)
        last_eval = mean
        writer.write({
            "step": step, "env_steps": step * spec.action_repeat, "eval_return": mean, "eval_return_std": std,
            "hns": normalized_score(spec.env, mean),
            "train_episodes": train_episodes, "updates": updates, "wall_s": time.perf_counter() - start,
            "replay_capacity": replay.capacity, "replay_size": len(replay), "replay_bytes": replay.resident_bytes,
            "replay_alloc_bytes": replay.allocated_bytes, **memory.window().as_row(),
            "frozen": int(isinstance(replay, LatentReplay)),
            "update_flops": ledger.mean_price(("update", phase(), s) for s in range(agent.update_period)),
            "cum_flops": ledger.total,
            **{f"cum_flops_{c}": ledger.totals[c] for c in CATEGORIES}})

    def save(step: int) -> None:
        frozen = isinstance(replay, LatentReplay)
        checkpoint.save(path, {
            "step": step, "frozen": frozen, "agent": checkpoint.object_state(agent), "replay": replay.state_dict(),
            "seer_rng": checkpoint.generator_state(seer.rng) if seer else {}, "rng": checkpoint.global_rng_state(),
            "init_actions_rng": checkpoint.generator_state(rng), "ledger": ledger.state_dict(),
            "train_episodes": train_episodes, "updates": updates, "wall_s": time.perf_counter() - start})

    step = start_step
    try:
        memory.start()
        obs = env.reset()
        for step in range(start_step, total):
            resuming = resumed and step == start_step  # this step's evaluation and freeze are done
            if step % eval_every == 0 and not resuming:
                log_eval(step)
            if seer is not None and step == seer.cfg.freeze_at and not resuming:
                progress.update(step, force=True, phase="converting replay", eval_return=last_eval)
                flops_at_freeze = ledger.total  # where T_f falls on a return-vs-FLOPs axis
                replay, event = seer.freeze(agent, replay, step)
                encoding[0] = "encode"
                append_event(path, "frozen", **event, capacity_public_formula=sizing["capacity_public_formula"],
                             cum_flops=flops_at_freeze)
            if save_every and step % save_every == 0 and step > start_step:
                save(step)
                progress.checkpoint = step
                progress.update(step, force=True, phase="checkpoint saved", eval_return=last_eval)
            if step < agent.random_steps:
                action = env.random_action(rng)
            else:
                action = ledger.observe("act", ("act", phase()), agent.act, obs, sample=True)
                if not np.all(np.isfinite(action)):  # before the env sees it (MuJoCo would reject it less clearly)
                    raise FloatingPointError(f"non-finite action at agent step {step} (diverged)")
            if step >= agent.learn_start:
                ledger.observe("update", ("update", phase(), step % agent.update_period), agent.update, replay, step)
                updates += 1
            res = env.step(action)
            replay.add(obs, action, res.reward, res.obs, res.terminal, res.last)  # SEER's replay encodes (observed)
            obs = res.obs
            if res.last:
                train_episodes += 1
                obs = env.reset()
            progress.update(step + 1, phase="frozen" if isinstance(replay, LatentReplay) else "training",
                            eval_return=last_eval)
        log_eval(total)
    except BaseException:  # where it stopped, for the failure record (the executor reads it back)
        progress.update(step, force=True, phase="failed", eval_return=last_eval)
        raise
    finally:
        memory.stop()
        writer.close()
        env.close()
        eval_env.close()
    wall = time.perf_counter() - start
    progress.update(total, force=True, phase="finished", eval_return=last_eval)
    append_event(path, "finished", run_id=spec.run_id, wall_s=wall, final_return=last_eval, flops=ledger.totals,
                 fvcore_unsupported_ops=ledger.state_dict()["unsupported"])
    checkpoint.discard(path)
    return RunResult(spec.run_id, last_eval, wall)
