"""One exception type for bad input, so the CLI can print one line and exit non-zero before any work."""

from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """Bad user input: unknown name, malformed suite file, impossible budget. The
    message names the culprit."""


def config_from(cls: type, values: dict[str, Any], where: str, noun: str = "setting") -> Any:
    """Dataclass `cls` built from a suite table: unknown keys, mistyped values (an int is accepted for a
    float) and values the dataclass rejects are reported with `where` and the key, before any work."""
    fields = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown {noun} {key!r}; known: {', '.join(fields)}")
        default = getattr(cls(), key)
        if type(value) is not type(default) and not (isinstance(default, float) and type(value) is int):
            raise ConfigError(f"{where}: {noun} {key!r} expects {type(default).__name__}, got {value!r}")
    try:
        return cls(**values)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


class DamagedRecord(ConfigError):
    """A record file that cannot be trusted (a garbage line, a cut header): the message names the file and
    line. Reports name such runs and report the rest; a sweep refuses to continue one."""


class CorruptCheckpoint(DamagedRecord):
    """A checkpoint torch cannot read, or one without the state a run needs: the message names the file.
    A run sets it aside (kept for inspection) and starts again rather than failing every re-run."""
