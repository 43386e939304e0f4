"""Validate an export and load it into the store, all or nothing.

Every rule of :mod:`timing.core.contract` becomes a SQL expression; a whole table is
checked in a few set-based statements. Each source row ends up in exactly one
place: loaded, set aside in ``quarantine`` (with its table, source row number,
the first rule it broke and its raw values as JSON), or counted as an exact
duplicate of an earlier row. So ``read = loaded + set_aside + duplicates``.

Notes
-----
Source row numbers are 1-based data rows (the header is not counted), in file
order. Checks run in this order and a row is charged to the first one it
fails:

1. exact duplicate (every raw value equal to an earlier row's; the first
   occurrence is kept and checked as usual);
2. per-column rules, column by column in contract order: missing,
   unreadable, allowed values, ranges, pattern, not after the as-of date;
3. cross-column rules;
4. a repeated key (the first row keeps the key);
5. an unknown parent (orphan), reference by reference;
6. for readings, an odometer lower than an earlier reading of the same
   vehicle (the later, lower reading is set aside; "earlier" is by
   ``recorded_at``, then file order).

How it runs
-----------
Every statement is set-based (no Python loop over rows); the cost is
dominated by the large table (readings), which is read once and sorted once.

*Reading.* Each file is read once, straight into a temporary
``parsed_<table>`` with one row per source row, in file order (a row's
number is ``rowid + 1``). Text is parsed there, once: typed columns keep
their text and gain the parsed value ``p_<col>``; contract text columns are
kept trimmed (``p_<col>``) plus, only where that changed anything, as read
(``r_<col>``). Parsing tries the common form first (text that needs no
trimming, the ISO timestamp ``...T...Z``) and falls back to the general
parser only for the rest. Values of typed (Parquet) columns are converted
inline where they are used, which is cheap. One aggregate over each table
checks that no typed column is wholly unreadable and finds its latest date
(for inferring the as-of date).

*Checking.* No table is ever rewritten. Rows that break a rule are noted in
a small ``marks_<table>`` (row number, rule number) and exact duplicates in
a small ``dups_<table>``: one statement finds each row's first broken
column / cross-column rule (and, for tables without a key, its orphan
check); duplicate candidates are the rows whose hash of all raw values
occurs more than once, and only those are compared exactly. Repeated keys
and orphans of keyed tables are then marked among the rows still clean.
Readings need a sort per vehicle in time order for the odometer rule; that
same window also finds the duplicate candidates (an exact duplicate shares
its vehicle and time, so it is a neighbour with an equal time), and the
costly running maximum is only computed for the few vehicles whose odometer
steps down somewhere or differs between readings at the same time (see
:func:`mark_rules_and_sequence`). The loaded table is then the parsed table
minus the marked and duplicate rows, in file order: those rows are flagged
in place (an update of a few rows) and the table is one filtered scan, since
a filter keeps file order where a join (``NOT IN`` a subquery) does not. The
quarantine rows are built from the marks, fetching only the marked rows.

DuckDB's memory is capped (:data:`MEMORY_LIMIT`); beyond that it spills to
a temporary folder beside the new store, removed when the store is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from timing.core.contract import TABLES
from timing.core.errors import ExportError
from timing.ingest.check import Staged, check_readable, empty_table, finish_table, stage
from timing.ingest.report import IngestReport
from timing.ingest.sql import find_table_file, literal
from timing.store.db import replace_store
from timing.store.outcomes import build_outcomes
from timing.store.tables import INGEST_LOG, ensure

#: Cap on DuckDB's own memory during an ingest (None: DuckDB's default, 80 % of RAM).
MEMORY_LIMIT: str | None = "1250MB"

# ---------------------------------------------------------------------------
# the whole export


def ingest(
    export_dir: str | Path,
    store_path: str | Path,
    as_of: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Validate the export in ``export_dir`` and make it the store's state.

    Parameters
    ----------
    export_dir
        Folder with one file per table (CSV or Parquet, mixed allowed).
    store_path
        The DuckDB store; replaced atomically, history tables carried over.
    as_of
        The export's as-of date. When None it is the latest date found in the
        export (signing, end, reading, fault, visit or contact date).

    Raises
    ------
    ExportError
        A required table or column is missing, a file cannot be read, or a
        whole column has the wrong type. The store is then left untouched.
    """
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: no such export folder")
    files: dict[str, Path] = {}
    for table in TABLES:
        f = find_table_file(export_dir, table)
        if f is None and table.required:
            raise ExportError(
                f"{export_dir}: required table '{table.name}' is missing "
                f"(expected {table.name}.csv or {table.name}.parquet)"
            )
        if f is not None:
            files[table.name] = f

    result: dict[str, object] = {}

    def build(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SET preserve_insertion_order = true")
        if MEMORY_LIMIT:
            # spills go to DuckDB's temporary folder beside the new store (removed on close)
            con.execute(f"SET memory_limit = {literal(MEMORY_LIMIT)}")
        staged: dict[str, Staged] = {}
        latest: list[date] = []
        for table in TABLES:
            if table.name in files:
                say(f"reading {files[table.name].name}")
                staged[table.name] = stage(con, table, files[table.name])
                day = check_readable(con, staged[table.name])
                if day is not None:
                    latest.append(day)
        inferred = as_of is None
        day = as_of or (max(latest) if latest else None)
        if day is None:
            raise ExportError(f"{export_dir}: no dates at all, cannot tell the export's as-of date")
        con.execute(
            "CREATE TABLE main.quarantine (table_name VARCHAR, source_file VARCHAR, "
            "source_row BIGINT, rule VARCHAR, raw_values VARCHAR)"
        )
        reports = []
        for table in TABLES:
            if table.name in staged:
                say(f"checking {table.name}")
                reports.append(finish_table(con, staged[table.name], day))
            else:
                reports.append(empty_table(con, table))
        say("deriving outcomes")
        build_outcomes(con, day)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute(
            "CREATE TABLE main.export_info AS SELECT ?::DATE AS as_of, ?::VARCHAR AS export_dir, "
            "?::TIMESTAMP AS ingested_at, ?::BOOLEAN AS as_of_inferred",
            [day, str(export_dir.resolve()), now, inferred],
        )
        ensure(con, INGEST_LOG)
        con.executemany(
            "INSERT INTO main.ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    now,
                    str(export_dir.resolve()),
                    day,
                    r.table,
                    r.source,
                    r.read,
                    r.loaded,
                    r.set_aside,
                    r.duplicates,
                ]
                for r in reports
            ],
        )
        result.update(reports=tuple(reports), as_of=day, inferred=inferred)

    replace_store(store_path, build)
    return IngestReport(
        export_dir=str(export_dir),
        store=str(store_path),
        as_of=result["as_of"],  # type: ignore[arg-type]
        as_of_inferred=bool(result["inferred"]),
        tables=result["reports"],  # type: ignore[arg-type]
        seconds=time.perf_counter() - started,
    )
