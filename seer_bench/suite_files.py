"""Where suite files are, by name or path: what `report` and `check` need of a suite, without the
simulators and agents that validating a whole suite imports."""

from __future__ import annotations

from pathlib import Path

from seer_bench.errors import ConfigError

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
