"""Settings: frozen dataclasses validated on creation, loaded from TOML by the CLI only.

``timing.toml`` has one table per step, each optional::

    [fit]
    months = 12
    lookback_months = 36

Unknown tables or keys are errors (a typo must not silently fall back to a
default). Library code receives a :class:`Settings` object, never a path.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("timing.toml")
FAMILIES = ("discrete", "cox", "km")


class ConfigError(Exception):
    """The settings file is missing, unreadable or holds an invalid value."""


@dataclass(frozen=True)
class FitSettings:
    """How models are fitted (see :mod:`timing.fitting`)."""

    months: int = 12
    lookback_months: int = 36
    holdout_months: int = 6
    families: tuple[str, ...] = ("discrete", "cox")
    max_contracts_per_origin: int | None = None
    seed: int = 0
    launch_months: tuple[int, ...] = (3, 9)

    def __post_init__(self) -> None:
        if not 1 <= self.months <= 36:
            raise ConfigError("fit.months must be within 1..36")
        if self.holdout_months < 1 or self.holdout_months >= self.lookback_months:
            raise ConfigError("fit.holdout_months must be at least 1 and below fit.lookback_months")
        unknown = [f for f in self.families if f not in FAMILIES or f == "km"]
        if unknown or not self.families:
            raise ConfigError(f"fit.families: '{(unknown or [''])[0]}' is not a model family (known: discrete, cox)")
        if any(not 1 <= m <= 12 for m in self.launch_months):
            raise ConfigError("fit.launch_months must be months 1..12")
        if self.max_contracts_per_origin is not None and self.max_contracts_per_origin < 1:
            raise ConfigError("fit.max_contracts_per_origin must be positive")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the toolkit, by step."""

    fit: FitSettings = field(default_factory=FitSettings)


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"[{section}] has no setting '{unknown[0]}' (known: {', '.join(known)})")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"[{section}]: {e}") from e


def settings_from_dict(raw: dict[str, Any]) -> Settings:
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown settings table [{unknown[0]}] (known: {', '.join(sections)})")
    built = {}
    for name, value in raw.items():
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
        default = sections[name].default_factory()  # type: ignore[misc]
        built[name] = _build(type(default), value, name)
    return Settings(**built)


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
    return settings_from_dict(raw)
