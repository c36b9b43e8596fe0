"""Environments stepped in worker processes: evaluation episodes side by side, and the training env stepped
while the update runs.

A worker holds one env and answers commands over a pipe. Workers are started with `spawn` (a fresh
interpreter: no forked MuJoCo EGL context or torch thread pool, both unsafe to fork), import only the envs
(not torch), ask Linux to end them with their parent (a run killed with SIGKILL leaves none behind) and
ignore SIGINT (Ctrl-C in a terminal reaches the whole process group: the run, not its workers, decides
what happens; its `close` ends them).
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from seer_bench.envs.base import StepResult, untimed

FACTS = ("name", "discrete", "obs_shape", "frame_stack", "action_dim", "episode_steps")  # PixelEnv's
CLOSE_GRACE_S = 5.0  # a worker ends within milliseconds of `close`; one still stepping is then killed


@dataclass(frozen=True)
class EnvRecipe:
    """What `make_env` needs to build an env in another process (plain values: it crosses a pipe)."""

    name: str
    action_repeat: int
    seed: int
    train: bool
    options: dict[str, Any]

    def build(self) -> Any:
        from seer_bench.envs import make_env

        return make_env(self.name, self.action_repeat, self.seed, self.train, self.options)


def _serve(recipe: EnvRecipe, conn: Connection) -> None:
    """A worker's loop: build the env, then answer (command, argument) until `close` or a closed pipe."""
    from seer_bench.interrupts import die_with_parent

    die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = recipe.build()
    try:
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:  # the run's end of the pipe is gone
                return
            if command == "close":
                return
            try:
                conn.send(_answer(env, command, arg))
            except (BrokenPipeError, OSError):  # the run closed its end while this worker was stepping
                return
    finally:
        env.close()


def _answer(env: Any, command: str, arg: Any) -> Any:
    if command == "step":
        return env.step(arg)
    if command == "facts":
        return {"cls": type(env), **{name: getattr(env, name) for name in FACTS}}
    if command == "reset":  # with a seed: the next episode drawn from it (PixelEnv.seed_episode)
        if arg is not None:
            env.seed_episode(arg)
        return env.reset()
    raise ValueError(f"unknown env worker command {command!r}")


class EnvWorker:
    """One env in a worker process. `send` a command, then `recv` its answer: the run computes meanwhile."""

    def __init__(self, recipe: EnvRecipe) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(recipe, child), daemon=True, name="seer-bench-env")
        self.process.start()
        child.close()

    def send(self, command: str, arg: Any = None) -> None:
        self._conn.send((command, arg))

    def recv(self) -> Any:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(
                f"env worker process {self.process.pid} died (exit code {self.process.exitcode})"
            ) from None

    def call(self, command: str, arg: Any = None) -> Any:
        self.send(command, arg)
        return self.recv()

    def close(self) -> None:
        """End the worker: ask, wait briefly, then kill. Safe to call twice and on a dead worker."""
        if self.process.pid is None or self.process.exitcode is not None:
            self._conn.close()
            return
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._conn.close()  # a worker still sending a step's result (the run was interrupted) gets EPIPE
        self.process.join(CLOSE_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class RemoteEnv:
    """A PixelEnv stepped in a worker process. `step_async` sends the action and returns at once,
    `step_wait` returns its result: the run updates the agent in between (runner: `RunOptions.async_env`).
    Everything else waits for its answer."""

    def __init__(self, recipe: EnvRecipe) -> None:
        self._worker = EnvWorker(recipe)
        try:
            facts = self._worker.call("facts")
        except BaseException:
            self._worker.close()
            raise
        self._cls = facts.pop("cls")
        for name, value in facts.items():
            setattr(self, name, value)

    # The run's time ledger sets its own (envs.base.untimed). Physics and rendering run in the worker, out of
    # the ledger's sight: what it sees, as `physics`, is the wait for them, less what the update overlapped.
    section = staticmethod(untimed)

    def reset(self) -> np.ndarray:
        with self.section("physics"):
            return self._worker.call("reset")

    def step_async(self, action: Any) -> None:
        self._worker.send("step", action)

    def step_wait(self) -> StepResult:
        with self.section("physics"):
            return self._worker.recv()

    def step(self, action: Any) -> StepResult:
        self.step_async(action)
        return self.step_wait()

    def random_action(self, rng: np.random.Generator) -> Any:
        """The env class's own draw (it reads only `action_dim`), here: the generator is the run's."""
        return self._cls.random_action(self, rng)

    def close(self) -> None:
        self._worker.close()
