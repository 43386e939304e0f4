"""The package's foreseeable errors: each one a message for a person, turned into exit 1 by the CLI.

Every stage raises these (or ``ValueError`` / ``FileNotFoundError`` for a bad
argument or a missing file); anything else is a bug.
"""

from __future__ import annotations


class TimingError(Exception):
    """A foreseeable problem the user can fix; the message says what and how."""


class ConfigError(TimingError):
    """The settings file is missing, unreadable or holds an invalid value."""


class ExportError(TimingError):
    """The export cannot be ingested at all (missing table or column, unreadable file)."""


class StoreError(TimingError):
    """The store is missing, locked or not a timing store."""


class ModelError(TimingError):
    """A model folder is missing, incomplete, altered or not the registered one."""


class ThreadsError(TimingError, ValueError):
    """The thread budget is not a positive whole number."""


USER_ERRORS: tuple[type[Exception], ...] = (TimingError, ValueError, FileNotFoundError)
