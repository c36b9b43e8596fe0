"""One owner per run directory: an advisory lock (flock) on `<run dir>/lock`, held for the run's life.

Two sweeps into one --out (or a --jobs worker and a Ray task, or two nodes on a shared filesystem that
supports locks) would otherwise both train the same run and interleave its records. The lock file holds its
owner (host, pid, since) while held and is emptied on a clean release, so an owner found there by the next
taker is one that died holding it: the kernel released its lock, the run is resumed and the takeover is said.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

LOCK_FILE = "lock"


class RunOwned(Exception):
    """Another live process holds the run's lock."""

    def __init__(self, path: Path, owner: dict[str, Any]) -> None:
        super().__init__(f"{path} is owned by {describe(owner)}")
        self.owner = owner


def describe(owner: dict[str, Any]) -> str:
    return f"host {owner.get('host', '?')}, pid {owner.get('pid', '?')}" if owner else "another process"


def read_owner(path: Path) -> dict[str, Any]:
    """The owner recorded in the run's lock file ({} when none, or unreadable)."""
    try:
        return json.loads((path / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def held(path: Path) -> bool | None:
    """Whether a live process holds the run's lock now (None: no lock file, a run from before locks).

    Reports ask this of a run whose events say "running": the kernel drops a dead owner's flock, so a free
    lock means the run died (kill -9, a lost node) and is interrupted, not running. The probe takes a shared
    lock for an instant; RunLock retries briefly so a run starting at that instant is not turned away."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


class RunLock:
    """`with RunLock(path) as lock:` owns the run at `path` or raises RunOwned; `lock.stale` is the owner
    that died holding it (or None)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd):
            os.close(fd)
            raise RunOwned(self.path, read_owner(self.path))
        self.stale = read_owner(self.path) or None  # written by an owner that never released it
        me = {"host": platform.node(), "pid": os.getpid(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # a clean release: the next owner finds no one to take over from
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def _lock(fd: int, tries: int = 10, wait_s: float = 0.05) -> bool:
    """An exclusive flock on `fd`, retried for half a second: a report's `held` probe holds a shared lock
    for an instant, which must not make a starting run think another process owns it."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < tries - 1:
                time.sleep(wait_s)
    return False
