"""Where suite files are, by name or path: what `report` and `check` need of a suite, without the
simulators and agents that validating a whole suite imports."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Iterable

from seer_bench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


def suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"suite file not found: {path}")
        return path
    path = SUITES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown suite {name_or_path!r}; known: {', '.join(available_suites()) or 'none'}")
    return path


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml") if not p.stem.endswith(".claims"))


def read_toml(path: Path) -> dict[str, Any]:
    """A suite or claims file's tables; a file that is not UTF-8 TOML (a binary, a truncated copy) is one
    line naming it, not a decoder traceback."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) TOML file: byte {e.start} cannot be decoded") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None


def paper_steps(name_or_path: str) -> int:
    """The env steps of a suite's `paper` scale (its default scale where it has none of that name): what
    claims' evidence is a fraction of. Read from the file alone, so that `check` imports no agent."""
    path = suite_path(name_or_path)
    data = read_toml(path)
    scales = data.get("scales") if isinstance(data.get("scales"), dict) else {}
    scale = "paper" if "paper" in scales else data.get("default_scale")
    steps = scales.get(scale, {}).get("steps") if isinstance(scales.get(scale), dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"{path}: no paper scale (or default scale) with a positive `steps`")
    return steps


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean X, Y?)" with the closest known names, or "" (a misspelt task or agent)."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
