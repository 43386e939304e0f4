"""What every section reads: the store as of the report's date, and what a section hands back.

Notes
-----
A report covers a calendar month M and is written *as of* T: the store's
export date when it falls in M, else the last day of M (an earlier month is
seen through the as-of views, as an export then would have held it). Scores,
plans and models are the latest ones made on or before T. Rows set aside at
ingest exist only for the latest export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from timing.config import Settings
from timing.models import ModelResult
from timing.models.io import ModelError, load_model
from timing.store.asof import create_views
from timing.store.db import StoreError, configure, table_exists


@dataclass(frozen=True)
class Chart:
    svg: str
    caption: str


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, plain words, charts, and the charts' data."""

    key: str
    title: str
    text: str  # HTML paragraphs, already escaped
    charts: tuple[Chart, ...] = ()
    tables: tuple[str, ...] = ()  # small HTML tables
    data: dict[str, pd.DataFrame] = field(default_factory=dict)  # CSV file stem -> the numbers drawn
    missing: str | None = None  # what the section lacks, in words (also listed in the result)
    headline: tuple[tuple[str, str], ...] = ()  # (label, value) for the key figures at the top


@dataclass(frozen=True)
class ReportContext:
    """The store, read through one connection for the whole report (see :func:`open_context`).

    Plain table names (``scores``, ``schedules``, ``quarantine``...) read the
    store's tables; :meth:`views` gives the schema of the as-of views of a day.
    """

    con: duckdb.DuckDBPyConnection
    store: Path
    month: pd.Period
    as_of: date
    store_as_of: date
    settings: Settings
    interval: float = 0.8

    def views(self, day: date | None = None) -> str:
        """Schema of the as-of views (``contracts``, ``outcomes``, ...) of ``day`` (default: the as-of)."""
        day = day or self.as_of
        name = f"at_{day:%Y%m%d}"
        made = self.con.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = 'memory' "
                                "AND schema_name = ?", [name]).fetchone()
        if not (made and made[0]):
            create_views(self.con, "store.main", day, f"memory.{name}")
        return f"memory.{name}"

    def query(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def has_table(self, name: str) -> bool:
        return table_exists(self.con, name, catalog="store")

    def scores(self, day: date) -> pd.DataFrame:
        """The scores made on ``day`` (empty when there are none)."""
        if not self.has_table("scores"):
            return pd.DataFrame()
        return self.query("SELECT * FROM scores WHERE as_of = ? ORDER BY contract_id", [day])

    def _registered(self) -> tuple[Path, str] | None:
        """Folder and manifest hash of the latest model fitted on or before the as-of."""
        if not self.has_table("model_registry"):
            return None
        rows = self.query("SELECT path, manifest_sha256 FROM model_registry WHERE fit_as_of <= ? "
                          "ORDER BY fit_as_of DESC, registered_at DESC, version LIMIT 1", [self.as_of])
        return (Path(rows["path"].iloc[0]), str(rows["manifest_sha256"].iloc[0])) if len(rows) else None

    def model_info(self) -> dict[str, Any] | None:
        """That model's ``model.json`` (holdout metrics and calibration), or None without a model."""
        found = self._registered()
        if found is None or not (found[0] / "model.json").exists():
            return None
        return json.loads((found[0] / "model.json").read_text())

    def model(self) -> ModelResult:
        """That model, loaded with its hashes checked (raises ModelError, or ValueError when this
        version of the toolkit cannot read it)."""
        found = self._registered()
        if found is None:
            raise ModelError("no model has been fitted on or before the as-of date: run `timing fit`")
        return load_model(*found)[0]


@contextmanager
def open_context(store: Path, month: pd.Period, as_of: date, settings: Settings,
                 interval: float = 0.8) -> Iterator[ReportContext]:
    """A read-only view of ``store`` for one report; closed afterwards."""
    con = configure(duckdb.connect())
    try:
        con.execute(f"ATTACH '{str(Path(store)).replace(chr(39), chr(39) * 2)}' AS store (READ_ONLY)")
        con.execute("SET search_path = 'store.main'")
        row = con.execute("SELECT as_of FROM store.main.export_info").fetchone()
        if row is None:
            raise StoreError(f"{store}: the store holds no ingested export: run `timing ingest DIR`")
        store_as_of = row[0]
        yield ReportContext(con, Path(store), month, as_of, store_as_of, settings, interval)
    finally:
        con.close()
