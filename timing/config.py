"""Settings: a frozen dataclass, validated on creation, loaded from TOML by the CLI.

Only the CLI reads files; library code takes a :class:`Settings` object.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("timing.toml")


class ConfigError(Exception):
    """The settings file is missing, unreadable or holds an invalid value."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the toolkit, with its default."""

    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] in the settings must be a table")
        return value


def load_settings(path: Path | None) -> Settings:
    """Read ``path`` (or ``timing.toml`` when present); defaults when neither exists."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return Settings()
        path = DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError(f"{path}: no such settings file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read settings: {e}") from e
    return Settings(raw=raw)


