"""timing: when will each leasing customer sign their next contract?

The package follows the data's one-way flow: export -> ingest/store ->
features (as of a date) -> models -> scores -> schedule -> outputs.
"""

from __future__ import annotations

from timing.core import runtime as _runtime

__version__ = "0.1.0"

_runtime.prepare_environment()  # before any OpenMP runtime loads
