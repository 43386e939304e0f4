"""The store's model registry: which model folders were fitted, on what date, with which manifest hash.

A model is used only when its folder's manifest hash is the one registered
when it was saved (:func:`timing.models.io.load_model` checks every file
against the manifest, and the manifest against the registry's hash).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from timing.core.errors import ModelError
from timing.models.io import SavedModel
from timing.store.db import connect, table_exists, writing


def register_model(store: Path, saved: SavedModel, as_of: date, family: str) -> None:
    """Record the model in the store's history, with its manifest hash (checked on load)."""
    with writing(store) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS model_registry (version VARCHAR, path VARCHAR, fit_as_of DATE, "
            "family VARCHAR, manifest_sha256 VARCHAR, registered_at TIMESTAMP)"
        )
        con.execute("DELETE FROM model_registry WHERE version = ?", [saved.version])
        con.execute(
            "INSERT INTO model_registry VALUES (?, ?, ?, ?, ?, ?)",
            [saved.version, str(saved.path.resolve()), as_of, family, saved.manifest_sha256,
             datetime.now(UTC).replace(tzinfo=None)],
        )


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
