"""Saving and loading fitted models: plain tables, a manifest of hashes, nothing executable.

A model folder holds ``model.json`` (family, training window, data
fingerprint, metrics, library versions), one Parquet file per parameter table,
and ``MANIFEST.json`` with the SHA-256 of every other file. Loading checks
every hash, and the manifest's own hash against the one recorded in the store
when the model was registered, and refuses a folder that was altered. Nothing
is unpickled: Parquet and JSON cannot execute code when read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from timing.core.errors import ModelError
from timing.core.files import new_dir_beside, recover_dir, replace_dir
from timing.models import RESULTS, ModelResult

MANIFEST = "MANIFEST.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _own_version() -> str:
    try:
        return metadata.version("timing")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def library_versions() -> dict[str, str]:
    import duckdb
    import lifelines
    import numpy
    import scipy
    import statsmodels

    return {"timing": _own_version(), "numpy": numpy.__version__, "pandas": pd.__version__,
            "scipy": scipy.__version__, "lifelines": lifelines.__version__,
            "statsmodels": statsmodels.__version__, "duckdb": duckdb.__version__}


@dataclass(frozen=True)
class SavedModel:
    path: Path
    version: str
    manifest_sha256: str
    meta: dict[str, Any]


def save_model(result: ModelResult, folder: Path, meta: dict[str, Any]) -> SavedModel:
    """Write ``result`` into ``folder`` atomically (a temp folder renamed into place)."""
    folder = Path(folder)
    tmp = new_dir_beside(folder)
    try:
        tables = result.to_tables()
        files: dict[str, str] = {}
        info = dict(meta)
        info["family"] = result.name
        info["libraries"] = library_versions()
        for name, table in tables.items():
            if isinstance(table, pd.DataFrame):
                fname = f"{name}.parquet"
                table.to_parquet(tmp / fname, index=False)
            else:
                fname = f"{name}.json"
                (tmp / fname).write_text(json.dumps(table, indent=2, sort_keys=True, default=str))
            files[name] = fname
        info["tables"] = files
        (tmp / "model.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        digests = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"sha256": digests}, indent=2, sort_keys=True))
        manifest_sha = sha256_file(tmp / MANIFEST)
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SavedModel(folder, folder.name, manifest_sha, info)


def load_model(folder: Path, expected_manifest_sha256: str | None = None) -> tuple[ModelResult, dict[str, Any]]:
    """Load a model folder after checking every file's hash; refuse it if anything differs."""
    folder = Path(folder)
    info = verified_info(folder, expected_manifest_sha256)
    tables: dict[str, Any] = {}
    for name, fname in info["tables"].items():
        path = folder / fname
        tables[name] = pd.read_parquet(path) if fname.endswith(".parquet") else json.loads(path.read_text())
    family = info["family"]
    if family not in RESULTS:
        raise ModelError(f"{folder}: unknown model family '{family}'")
    return RESULTS[family].from_tables(tables), info


def verified_info(folder: Path, expected_manifest_sha256: str | None = None) -> dict[str, Any]:
    """The description (``model.json``) of a model folder, after checking every file's hash."""
    folder = Path(folder)
    recover_dir(folder)
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise ModelError(f"{folder}: not a model folder (no {MANIFEST})")
    if expected_manifest_sha256 and sha256_file(manifest) != expected_manifest_sha256:
        raise ModelError(f"{folder}: {MANIFEST} differs from the one registered when the model was saved")
    try:
        digests = json.loads(manifest.read_text())["sha256"]
        if not isinstance(digests, dict):
            raise TypeError("sha256 is not a table of file hashes")
    except (ValueError, KeyError, TypeError) as e:  # a damaged manifest is an altered folder too
        raise ModelError(f"{folder}: {MANIFEST} is damaged ({e}); refusing to load it") from e
    present = {p.name for p in folder.iterdir() if p.name != MANIFEST}
    if present != set(digests):
        extra = sorted(present ^ set(digests))
        raise ModelError(f"{folder}: files differ from the manifest ({', '.join(extra)})")
    for name, digest in digests.items():
        if sha256_file(folder / name) != digest:
            raise ModelError(f"{folder}: {name} was altered after the model was saved; refusing to load it")
    return json.loads((folder / "model.json").read_text())
