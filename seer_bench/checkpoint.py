"""Checkpoints of a run: everything needed to continue it after the process dies.

A checkpoint is one file, `<run dir>/checkpoint.pt`, written with `torch.save` to a temporary name, flushed
to disk and renamed over the previous one, so a kill at any moment leaves the old checkpoint or the new
one, never half of one. It is read with `torch.load(..., weights_only=True)`: only tensors, containers and
plain numbers, no pickled code. Numpy arrays and generator states are stored as tensors and plain
numbers for that reason.

What an agent holds is found by type, so any agent checkpoints without code of its own: its modules and
optimizers (state dicts), free tensors (e.g. SAC's log alpha) and random generators (numpy and torch).
Everything else an agent has is either configuration or derived from those (pass caches, parameter lists
for the losses), and SEER's frozen state is rebuilt by freezing again before loading.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from seer_bench.errors import CorruptCheckpoint
from seer_bench.records import atomic_file

FORMAT = 1
FILE = "checkpoint.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to path/checkpoint.pt atomically (temp file, fsync, rename). A failed write (a full
    disk, which torch reports as "unexpected pos") raises OSError naming the file and the free space."""
    try:
        with atomic_file(path / FILE, "wb", durable=True) as f:
            torch.save({"format": FORMAT, **state}, f)
    except (OSError, RuntimeError) as e:
        free = shutil.disk_usage(path).free / 2**20
        raise OSError(f"{path / FILE}: the checkpoint could not be written ({e}); {free:.1f} MiB free") from e


def load(path: Path, keys: Iterable[str] = ()) -> dict[str, Any] | None:
    """The checkpoint under `path`, or None when there is none. A file torch cannot read (cut, overwritten)
    or without one of `keys` raises CorruptCheckpoint naming it: torch's own message names neither the file
    nor the damage (a garbage file reads as "mmap can only be used with files saved with ...")."""
    file = path / FILE
    if not file.exists():
        return None
    try:
        # mmap: the replay's arrays are read from the file as they are copied in, not held twice in memory
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, MemoryError):  # the disk or this machine, not the file: never a reason to set it aside
        raise
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError... for damage
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise CorruptCheckpoint(f"{file}: not a readable checkpoint, damaged or cut (torch: {reason})") from e
    missing = [k for k in ("format", *keys) if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptCheckpoint(f"{file}: not a run checkpoint, it lacks {', '.join(missing)}")
    if state["format"] != FORMAT:
        raise ValueError(f"{file}: checkpoint format {state['format']}, this version reads {FORMAT}")
    return state


def set_aside(path: Path) -> Path:
    """Rename a corrupt path/checkpoint.pt to checkpoint.pt.corrupt-<time>, never deleting it: it may still
    hold what someone wants to recover, and a run must not fail on it again. Returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path / f"{FILE}.corrupt-{stamp}"
    n = 1
    while target.exists():  # two in the same second
        target, n = path / f"{FILE}.corrupt-{stamp}-{n}", n + 1
    (path / FILE).rename(target)
    return target


def discard(path: Path) -> None:
    """Remove the checkpoint of a finished run: it holds the whole replay, and nothing needs it now."""
    (path / FILE).unlink(missing_ok=True)
    for tmp in path.glob(FILE + ".*.tmp"):  # a save killed half way
        tmp.unlink(missing_ok=True)


def generator_state(g: np.random.Generator) -> dict[str, Any]:
    return g.bit_generator.state  # plain ints and strings for every numpy bit generator but MT19937


def set_generator_state(g: np.random.Generator, state: dict[str, Any]) -> None:
    g.bit_generator.state = state


def object_state(obj: Any) -> dict[str, Any]:
    """Modules, optimizers, free tensors and random generators among `obj`'s attributes."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if isinstance(value, (nn.Module, torch.optim.Optimizer)):
            out[name] = value.state_dict()
        elif isinstance(value, torch.Tensor):
            out[name] = value.detach().cpu()
        elif isinstance(value, np.random.Generator):
            out[name] = generator_state(value)
        elif isinstance(value, torch.Generator):
            out[name] = value.get_state()
    return out


def load_object_state(obj: Any, state: dict[str, Any]) -> None:
    """Restore what `object_state` saved, in place (optimizers keep pointing at the same parameters)."""
    for name, saved in state.items():
        value = getattr(obj, name)
        if isinstance(value, (nn.Module, torch.optim.Optimizer)):
            value.load_state_dict(saved)
        elif isinstance(value, torch.Tensor):
            with torch.no_grad():
                value.copy_(saved)
        elif isinstance(value, np.random.Generator):
            set_generator_state(value, saved)
        elif isinstance(value, torch.Generator):
            value.set_state(saved)


def global_rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's global generators (CPU and every CUDA device)."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            **np_state,
            "state": {
                "key": torch.from_numpy(np_state["state"]["key"].copy()),
                "pos": np_state["state"]["pos"],
            },
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(
        {**np_state, "state": {"key": np_state["state"]["key"].numpy(), "pos": np_state["state"]["pos"]}}
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
