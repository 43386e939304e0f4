"""The store's own tables: what the pipeline keeps beside the export, declared, created and grown in one place.

Every history table is declared here: its columns with their SQL types and the
columns naming one run's rows (``run_key``: a re-run for the same key replaces
those rows and nothing else). A few tables also take a family of columns whose
number follows the settings (a score's monthly probabilities ``p_mNN`` and its
model steps ``step_NN``): ``open_columns``, a regular expression, all of
``open_type``.

Migrations are additive: a column that a new version or a longer horizon
writes is added (older rows hold NULL there); no column, and no row of
history, is dropped because a later run writes fewer columns. A column that
a run does not write is NULL in its rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd


@dataclass(frozen=True)
class StoreTable:
    name: str
    columns: tuple[tuple[str, str], ...]
    run_key: tuple[str, ...] = ()
    open_columns: str | None = None
    open_type: str = "DOUBLE"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def type_of(self, column: str) -> str | None:
        """The SQL type of ``column`` in this table, or None where it has no place in it."""
        for c, t in self.columns:
            if c == column:
                return t
        if self.open_columns and re.fullmatch(self.open_columns, column):
            return self.open_type
        return None


SCORES = StoreTable("scores", (
    ("as_of", "DATE"), ("contract_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("vehicle_id", "VARCHAR"),
    ("branch_id", "VARCHAR"), ("region", "VARCHAR"), ("scheduled_end_date", "DATE"), ("p_signed", "DOUBLE"),
    ("p_lost", "DOUBLE"), ("expected_signing_date", "DATE"), ("signing_date_q10", "DATE"),
    ("signing_date_q50", "DATE"), ("signing_date_q90", "DATE"), ("reasons", "VARCHAR"),
    ("model_version", "VARCHAR"), ("steps_per_month", "BIGINT"),
), run_key=("as_of",), open_columns=r"p_m\d{2}|step_\d{2}")

SCHEDULES = StoreTable("schedules", (
    ("as_of", "DATE"), ("contract_id", "VARCHAR"), ("customer_id", "VARCHAR"), ("branch_id", "VARCHAR"),
    ("region", "VARCHAR"), ("window_start", "DATE"), ("window_end", "DATE"), ("week", "DOUBLE"),
    ("channel", "VARCHAR"), ("priority", "BIGINT"), ("p_signing_in_window", "DOUBLE"),
    ("expected_signing_date", "DATE"), ("reasons", "VARCHAR"), ("status", "VARCHAR"),
    ("capacity_per_week", "BIGINT"),
), run_key=("as_of",))

MODEL_REGISTRY = StoreTable("model_registry", (
    ("version", "VARCHAR"), ("path", "VARCHAR"), ("fit_as_of", "DATE"), ("family", "VARCHAR"),
    ("manifest_sha256", "VARCHAR"), ("registered_at", "TIMESTAMP"),
), run_key=("version",))

BACKTEST_RESULTS = StoreTable("backtest_results", (
    ("cutoff", "DATE"), ("metric", "VARCHAR"), ("policy", "VARCHAR"), ("month", "BIGINT"), ("bin", "BIGINT"),
    ("value", "DOUBLE"), ("partial", "BOOLEAN"), ("observed_through", "DATE"), ("model_family", "VARCHAR"),
    ("capacity_basis", "VARCHAR"), ("run_at", "TIMESTAMP"),
))

INGEST_LOG = StoreTable("ingest_log", (
    ("ingested_at", "TIMESTAMP"), ("export_dir", "VARCHAR"), ("as_of", "DATE"), ("table_name", "VARCHAR"),
    ("source_file", "VARCHAR"), ("rows_read", "BIGINT"), ("rows_loaded", "BIGINT"), ("rows_set_aside", "BIGINT"),
    ("duplicates", "BIGINT"),
))

#: Every history table, by name.
HISTORY: dict[str, StoreTable] = {t.name: t for t in (SCORES, SCHEDULES, MODEL_REGISTRY, BACKTEST_RESULTS, INGEST_LOG)}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def existing_columns(con: duckdb.DuckDBPyConnection, table: StoreTable) -> list[str] | None:
    rows = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
                       "AND database_name = current_database() ORDER BY column_index", [table.name]).fetchall()
    return [r[0] for r in rows] or None


def ensure(con: duckdb.DuckDBPyConnection, table: StoreTable, columns: list[str] | tuple[str, ...] = ()) -> None:
    """Create ``table`` if the store lacks it, and add any of its declared columns, or of ``columns``
    (which must have a place in it), that the store's copy lacks. Never drops anything."""
    stray = [c for c in columns if table.type_of(c) is None]
    if stray:
        raise ValueError(f"table {table.name} has no column '{stray[0]}'")
    wanted = list(table.names) + [c for c in columns if c not in table.names]
    have = existing_columns(con, table)
    if have is None:
        cols = ", ".join(f"{_quote(c)} {table.type_of(c)}" for c in wanted)
        con.execute(f"CREATE TABLE main.{_quote(table.name)} ({cols})")
        return
    for c in wanted:
        if c not in have:
            con.execute(f"ALTER TABLE main.{_quote(table.name)} ADD COLUMN {_quote(c)} {table.type_of(c)}")


def replace_rows(con: duckdb.DuckDBPyConnection, table: StoreTable, rows: Any, key: dict[str, Any]) -> None:
    """Make ``rows`` (a pandas frame or an Arrow table) the rows of ``table`` whose ``run_key`` columns
    equal ``key``: earlier rows for that key go, every other row stays. Call inside a transaction."""
    if set(key) != set(table.run_key):
        raise ValueError(f"table {table.name} is replaced by {table.run_key}, not {tuple(key)}")
    where = " AND ".join(f"{_quote(k)} IS NOT DISTINCT FROM ?" for k in key)
    append_rows(con, table, rows, delete=(f"DELETE FROM main.{_quote(table.name)} WHERE {where}", list(key.values())))


def append_rows(con: duckdb.DuckDBPyConnection, table: StoreTable, rows: Any,
                delete: tuple[str, list[Any]] | None = None) -> None:
    """Add ``rows`` to ``table`` (created or grown first); columns are matched by name and cast to the
    declared types. Call inside a transaction."""
    names = list(rows.column_names) if hasattr(rows, "column_names") else list(pd.DataFrame(rows).columns)
    ensure(con, table, names)
    view = f"_new_{table.name}"
    con.register(view, rows)
    try:
        if delete is not None:
            con.execute(*delete)
        cols = ", ".join(_quote(c) for c in names)
        casts = ", ".join(f"CAST({_quote(c)} AS {table.type_of(c)})" for c in names)
        con.execute(f"INSERT INTO main.{_quote(table.name)} ({cols}) SELECT {casts} FROM {view}")
    finally:
        con.unregister(view)
