"""The store's model registry: which model folders were fitted, on what date, with which manifest hash.

A model is used only when its folder's manifest hash is the one registered
when it was saved (:func:`timing.models.io.load_model` checks every file
against the manifest, and the manifest against the registry's hash).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from timing.core.errors import ModelError
from timing.models.io import SavedModel
from timing.store.db import connect, table_exists, writing
from timing.store.tables import MODEL_REGISTRY, replace_rows


def register_model(store: Path, saved: SavedModel, as_of: date, family: str) -> None:
    """Record the model in the store's history, with its manifest hash (checked on load)."""
    row = pd.DataFrame({"version": [saved.version], "path": [str(saved.path.resolve())], "fit_as_of": [as_of],
                        "family": [family], "manifest_sha256": [saved.manifest_sha256],
                        "registered_at": [datetime.now(UTC).replace(tzinfo=None)]})
    with writing(store) as con:
        replace_rows(con, MODEL_REGISTRY, row, {"version": saved.version})


def _registered(store: Path, tail: str, params: list | None = None) -> tuple[Path, str] | None:
    """(path, manifest hash) of the first model of the store's registry that ``tail`` (a WHERE /
    ORDER BY clause) selects; None where there is none or no registry."""
    con = connect(store)
    try:
        if not table_exists(con, "model_registry"):
            return None
        row = con.execute(f"SELECT path, manifest_sha256 FROM model_registry {tail} LIMIT 1", params or []).fetchone()
    finally:
        con.close()
    return (Path(row[0]), row[1]) if row else None


def latest_model(store: Path) -> tuple[Path, str]:
    """The most recently registered model and its manifest hash."""
    found = _registered(store, "ORDER BY registered_at DESC")
    if found is None:
        raise ModelError("no model has been fitted yet: run `timing fit` first")
    return found


def registered_model(store: Path, version: str) -> tuple[Path, str] | None:
    """The folder and manifest hash registered for model ``version`` (the latest registration)."""
    return _registered(store, "WHERE version = ? ORDER BY registered_at DESC", [version])


def registered_hash(store: Path, folder: Path) -> str | None:
    found = _registered(store, "WHERE path = ?", [str(folder.resolve())])
    return found[1] if found else None
