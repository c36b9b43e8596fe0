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
        if _deferral["active"]:
            _deferral["pending"] = signum  # raised when the deferred block ends
            return
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


_deferral: dict = {"active": False, "pending": None}


@contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives inside the block raises Interrupted only once the block is done: a checkpoint
    is written whole, and what names it (progress.json's checkpoint step) is updated with it. A SIGTERM in
    the middle of torch.save otherwise fails the run with a torn file instead of interrupting it."""
    outer = _deferral["active"]
    _deferral["active"] = True
    try:
        yield
    finally:
        _deferral["active"] = outer
    pending = _deferral["pending"]
    if not outer and pending is not None:
        _deferral["pending"] = None
        raise Interrupted(pending)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send `signum` to this process when its parent dies (even by SIGKILL), so a worker
    never goes on training and writing into --out as an orphan. A no-op elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
