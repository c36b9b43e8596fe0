"""Ctrl-C, SIGTERM and a parent's death: a run stops where it is, says where, and resumes from its
checkpoint when the same command runs again.

`Interrupted` is a KeyboardInterrupt (so Ctrl-C, Ray's cancel and our SIGTERM handler all take one path
through the runner) that carries the signal and, once a run has seen it, where that run stopped.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Interrupted(KeyboardInterrupt):
    """A signal asked this process to stop. `runs` collects (run id, env steps reached) as runs record
    their `interrupted` event on the way out."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.runs: list[tuple[str, int]] = []

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def as_interrupted(e: KeyboardInterrupt) -> Interrupted:
    """A plain KeyboardInterrupt (Python's own Ctrl-C, Ray's cancel) as an Interrupted by SIGINT."""
    return e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)


@contextmanager
def raise_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted in the main thread; later signals are ignored, so the records
    and the workers' shutdown that follow are not cut short by a second Ctrl-C."""

    def handler(signum: int, _frame: object) -> None:
        for s in HANDLED:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send `signum` to this process when its parent dies (even by SIGKILL), so a worker
    never goes on training and writing into --out as an orphan. A no-op elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
