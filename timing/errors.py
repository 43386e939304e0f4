"""The package's foreseeable errors, turned into a message and exit 1 by the CLI."""

from __future__ import annotations

from timing.config import ConfigError
from timing.ingest import ExportError
from timing.modelio import ModelError
from timing.store import StoreError

USER_ERRORS: tuple[type[Exception], ...] = (ExportError, StoreError, ConfigError, ModelError, ValueError, FileNotFoundError)
