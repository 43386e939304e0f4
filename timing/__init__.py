"""timing: when will each leasing customer sign their next contract?

The package follows the data's one-way flow: export -> ingest/store ->
features (as of a date) -> models -> scores -> schedule -> outputs.
"""

from __future__ import annotations

__version__ = "0.1.0"
