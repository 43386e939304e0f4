"""The embedded DuckDB store: opening it, and replacing it atomically.

The store holds two kinds of tables:

* **export state** (the contract's tables, ``quarantine``, ``outcomes``,
  ``export_info``): replaced as a whole by every ingest, because an export is
  the full state on its as-of date;
* **history** (``ingest_log`` and whatever later steps keep, such as scores and
  schedules): carried over from the previous store into the new one.

A new store is always built in a temporary file beside the target and moved
into place with :func:`os.replace`, so a crash at any point leaves the last
good store untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import duckdb

from timing.core import runtime
from timing.core.contract import TABLES
from timing.core.errors import StoreError

DEFAULT_STORE = Path("data/timing.duckdb")

#: Tables that one ingest replaces; every other table is history and is carried over.
EXPORT_STATE_TABLES: frozenset[str] = frozenset(
    [t.name for t in TABLES] + ["quarantine", "outcomes", "export_info"]
)


def default_store_path() -> Path:
    return Path(os.environ.get("TIMING_STORE", str(DEFAULT_STORE)))


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Session settings every connection uses: UTC, quiet progress bar, the thread budget
    (:func:`timing.core.runtime.threads`)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads = {runtime.threads()}")
    return con


def connect(path: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open an existing store."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no store at {path}: run `timing ingest DIR` (or `timing run`) first")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as e:  # locked by another process, or not a DuckDB file
        raise StoreError(f"cannot open store {path}: {e}") from e
    return configure(con)


def export_as_of(con: duckdb.DuckDBPyConnection) -> date:
    """The as-of date of the export the store holds."""
    try:
        row = con.execute("SELECT as_of FROM export_info").fetchone()
    except duckdb.CatalogException as e:
        raise StoreError("the store holds no ingested export: run `timing ingest DIR`") from e
    if row is None:
        raise StoreError("the store holds no ingested export: run `timing ingest DIR`")
    return row[0]


def table_exists(con: duckdb.DuckDBPyConnection, name: str, catalog: str | None = None) -> bool:
    q = "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?"
    args: list[object] = [name]
    if catalog is not None:
        q += " AND database_name = ?"
        args.append(catalog)
    row = con.execute(q, args).fetchone()
    return bool(row and row[0])


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _remove_db_files(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def replace_store(path: str | Path, build: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """Build a new store with ``build(con)`` and swap it in atomically.

    History tables of the previous store (any table not in
    :data:`EXPORT_STATE_TABLES`) are copied into the new one after ``build``.
    If ``build`` raises, the previous store is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    _remove_db_files(tmp)
    try:
        con = configure(duckdb.connect(str(tmp)))
        try:
            build(con)
            if path.exists():
                _carry_history(con, path)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + ".wal").unlink()
    finally:
        _remove_db_files(tmp)


def _carry_history(con: duckdb.DuckDBPyConnection, old: Path) -> None:
    try:
        con.execute(f"ATTACH '{old}' AS old_store (READ_ONLY)")
    except duckdb.Error as e:
        raise StoreError(f"cannot read the previous store {old}: {e}") from e
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'old_store' "
                "AND schema_name = 'main' ORDER BY table_name"
            ).fetchall()
        ]
        new_names = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        for name in names:
            if name in EXPORT_STATE_TABLES:
                continue
            if name in new_names:
                # the new store already wrote this history table (the log): old rows go first
                con.execute(f'CREATE TEMP TABLE _new_rows AS SELECT * FROM main."{name}"')
                con.execute(f'DELETE FROM main."{name}"')
                con.execute(f'INSERT INTO main."{name}" BY NAME SELECT * FROM old_store.main."{name}"')
                con.execute(f'INSERT INTO main."{name}" BY NAME SELECT * FROM _new_rows')
                con.execute("DROP TABLE _new_rows")
            else:
                con.execute(f'CREATE TABLE main."{name}" AS SELECT * FROM old_store.main."{name}"')
    finally:
        con.execute("DETACH old_store")


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection whose changes commit only if the block succeeds.

    Used for history tables (scores, schedules) that are added to an existing
    store; DuckDB's transaction makes the write all-or-nothing.
    """
    con = connect(path, read_only=False)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
