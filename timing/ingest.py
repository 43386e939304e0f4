"""Validate an export and load it into the store, all or nothing.

Every rule of :mod:`timing.schema` becomes a SQL expression; a whole table is
checked in a few set-based statements. Each source row ends up in exactly one
place: loaded, set aside in ``quarantine`` (with its table, source row number,
the first rule it broke and its raw values as JSON), or counted as an exact
duplicate of an earlier row. So ``read = loaded + set_aside + duplicates``.

Notes
-----
Source row numbers are 1-based data rows (the header is not counted), in file
order. Checks run in this order and a row is charged to the first one it
fails: exact duplicate; per-column rules (missing, unreadable, allowed values,
ranges, pattern, not after the as-of date); cross-column rules; a repeated key
(the first row keeps the key); an unknown parent (orphan); for readings, an
odometer lower than an earlier reading of the same vehicle (the later, lower
reading is set aside).
"""

from __future__ import annotations

import csv
import gzip
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from timing.outcomes import build_outcomes
from timing.schema import FALSE_WORDS, TABLES, TRUE_WORDS, Column, Table
from timing.store import replace_store


class ExportError(Exception):
    """The export cannot be ingested at all (missing table/column, unreadable file)."""


@dataclass(frozen=True)
class TableReport:
    table: str
    source: str | None
    read: int
    loaded: int
    set_aside: int
    duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.set_aside + self.duplicates


@dataclass(frozen=True)
class IngestReport:
    export_dir: str
    store: str
    as_of: date
    as_of_inferred: bool
    tables: tuple[TableReport, ...]
    seconds: float

    def table(self, name: str) -> TableReport:
        return next(t for t in self.tables if t.table == name)

    @property
    def set_aside(self) -> int:
        return sum(t.set_aside for t in self.tables)

    def summary(self) -> str:
        """Rows read / loaded / set aside / duplicates per table, and the reasons."""
        how = "inferred from the data" if self.as_of_inferred else "given"
        lines = [
            f"ingested {self.export_dir} into {self.store} in {self.seconds:.1f} s "
            f"(as-of {self.as_of}, {how})",
            f"  {'table':<15}{'read':>12}{'loaded':>12}{'set aside':>12}{'duplicates':>12}",
        ]
        for t in self.tables:
            src = "" if t.source else "  (not in export)"
            lines.append(
                f"  {t.table:<15}{t.read:>12,}{t.loaded:>12,}{t.set_aside:>12,}{t.duplicates:>12,}{src}"
            )
        reasons = [(t.table, r, n) for t in self.tables for r, n in t.reasons.items()]
        if reasons:
            lines.append("  set aside (see the store's quarantine table):")
            lines += [f"    {table}: {rule}: {n:,}" for table, rule, n in reasons]
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# locating and reading files


def find_table_file(export_dir: Path, table: Table) -> Path | None:
    """The file (or Parquet folder) holding ``table``, or None if absent."""
    candidates = [
        export_dir / f"{table.name}.csv",
        export_dir / f"{table.name}.csv.gz",
        export_dir / f"{table.name}.parquet",
        export_dir / table.name,
    ]
    found = [p for p in candidates if p.exists()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ExportError(f"{export_dir}: table '{table.name}' is given twice ({names}); keep one")
    return found[0] if found else None


def _read_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    if path.is_dir():
        return f"read_parquet('{p}/*.parquet')"
    if path.name.endswith(".parquet"):
        return f"read_parquet('{p}')"
    return (
        f"read_csv('{p}', header = true, all_varchar = true, delim = ',', quote = '\"', "
        "escape = '\"', auto_detect = false, null_padding = false)"
    )


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ExportError(f"{path}: cannot read the header row: {e}") from e
    if not header:
        raise ExportError(f"{path}: the file is empty (no header row)")
    header = [h.strip().lstrip("\ufeff") for h in header]
    seen = {h for h in header if header.count(h) > 1}
    if seen:
        raise ExportError(f"{path}: column '{sorted(seen)[0]}' appears twice in the header")
    return header


def _stage_raw(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> dict[str, str]:
    """Load the file as-is into ``raw_<table>``; return its column types."""
    try:
        if not path.is_dir() and not path.name.endswith(".parquet"):
            # the header decides the columns; every value is read as text
            cols = _csv_header(path)
            spec = ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in cols)
            src = _read_sql(path).replace("auto_detect = false", f"auto_detect = false, columns = {{{spec}}}")
        else:
            src = _read_sql(path)
        con.execute(f"CREATE TEMP TABLE raw_{table.name} AS SELECT * FROM {src}")
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0]
        raise ExportError(f"{path}: cannot read the file: {msg}") from e
    types = {
        r[0]: r[1]
        for r in con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = ? AND database_name = 'temp' ORDER BY column_index",
            [f"raw_{table.name}"],
        ).fetchall()
    }
    missing = [c for c in table.required_columns if c not in types]
    if missing:
        raise ExportError(f"{path}: required column '{missing[0]}' is missing")
    return types


# ---------------------------------------------------------------------------
# parsing and per-column rules


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _parse_sql(col: Column, src_type: str | None) -> str:
    """SQL that turns the raw column into its contract type (NULL when it cannot)."""
    if src_type is None:  # optional column absent from the file
        return f"CAST(NULL AS {col.sql_type})"
    x = _q(col.name)
    text = src_type == "VARCHAR"
    t = f"NULLIF(trim({x}), '')" if text else x
    if col.dtype == "string":
        return t if text else f"CAST({x} AS VARCHAR)"
    if col.dtype == "int":
        if text:
            return f"CASE WHEN regexp_full_match({t}, '[+-]?[0-9]+') THEN TRY_CAST({t} AS BIGINT) END"
        if src_type in ("FLOAT", "DOUBLE") or src_type.startswith("DECIMAL"):
            return f"CASE WHEN {x} = round({x}) THEN TRY_CAST({x} AS BIGINT) END"
        return f"TRY_CAST({x} AS BIGINT)"
    if col.dtype in ("float", "decimal"):
        v = f"TRY_CAST({t} AS DOUBLE)"
        return f"CASE WHEN isfinite({v}) THEN {v} END"
    if col.dtype == "date":
        return f"TRY_CAST({t} AS DATE)"
    if col.dtype == "timestamp":
        if text or "TIME ZONE" in src_type or src_type.startswith("TIMESTAMPTZ"):
            return f"CAST(TRY_CAST({t} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return f"TRY_CAST({x} AS TIMESTAMP)"
    if col.dtype == "bool":
        if text:
            trues = ", ".join(_lit(w) for w in TRUE_WORDS)
            falses = ", ".join(_lit(w) for w in FALSE_WORDS)
            return (
                f"CASE WHEN lower({t}) IN ({trues}) THEN true "
                f"WHEN lower({t}) IN ({falses}) THEN false END"
            )
        return f"TRY_CAST({x} AS BOOLEAN)"
    raise AssertionError(col.dtype)


def _is_blank_sql(col: Column, src_type: str | None) -> str:
    if src_type is None:
        return "true"
    x = _q(col.name)
    if src_type == "VARCHAR":
        return f"({x} IS NULL OR trim({x}) = '')"
    return f"({x} IS NULL)"


def _column_rules(col: Column, src_type: str | None, as_of: date) -> list[tuple[str, str]]:
    """(rule name, SQL true when the row BREAKS the rule), over raw + parsed ``p_<col>``."""
    p = _q("p_" + col.name)
    blank = _is_blank_sql(col, src_type)
    rules: list[tuple[str, str]] = []
    if col.required:
        rules.append((f"missing {col.name}", blank))
    if src_type is not None and col.dtype != "string":
        what = {"bool": "not a boolean", "date": "not a date", "timestamp": "not a timestamp"}.get(
            col.dtype, "not a number"
        )
        if col.dtype == "int":
            what = "not an integer"
        rules.append((f"{col.name} {what}", f"(NOT {blank} AND {p} IS NULL)"))
    if col.choices:
        allowed = ", ".join(_lit(c) for c in col.choices)
        rules.append((f"{col.name} not one of {'/'.join(col.choices)}", f"{p} NOT IN ({allowed})"))
    if col.min is not None:
        op = "<=" if col.min_exclusive else "<"
        rules.append((f"{col.name} {op} {col.min:g}", f"{p} {op} {col.min!r}"))
    if col.max is not None:
        rules.append((f"{col.name} > {col.max:g}", f"{p} > {col.max!r}"))
    if col.max_asof_year:
        rules.append((f"{col.name} after the as-of year", f"{p} > {as_of.year}"))
    if col.pattern:
        rules.append(
            (f"{col.name} not {col.pattern_text}", f"NOT regexp_full_match({p}, {_lit(col.pattern)})")
        )
    if col.le_asof:
        limit = f"DATE '{as_of.isoformat()}'"
        cmp = f"{p} >= {limit} + INTERVAL 1 DAY" if col.dtype == "timestamp" else f"{p} > {limit}"
        rules.append((f"{col.name} after the as-of date", cmp))
    return rules


# ---------------------------------------------------------------------------
# one table


def _parse_table(con: duckdb.DuckDBPyConnection, table: Table, types: dict[str, str]) -> None:
    """``parsed_<t>``: source row, duplicate flag, raw columns and parsed ``p_`` columns."""
    raw_cols = list(types)
    part = ", ".join(_q(c) for c in raw_cols)
    parsed = ", ".join(
        f"{_parse_sql(c, types.get(c.name))} AS {_q('p_' + c.name)}" for c in table.columns
    )
    con.execute(
        f"""CREATE TEMP TABLE parsed_{table.name} AS
        SELECT rowid + 1 AS _row,
               row_number() OVER (PARTITION BY {part} ORDER BY rowid) > 1 AS _dup,
               *, {parsed}
        FROM raw_{table.name}"""
    )
    con.execute(f"DROP TABLE raw_{table.name}")


def _check_readable(con: duckdb.DuckDBPyConnection, table: Table, types: dict[str, str], path: Path) -> None:
    """A typed column none of whose values parse is a wrong type, not bad rows."""
    typed = [c for c in table.columns if c.dtype != "string" and c.name in types]
    if not typed:
        return
    sel = ", ".join(
        f"count(*) FILTER (WHERE NOT {_is_blank_sql(c, types[c.name])}), count({_q('p_' + c.name)})"
        for c in typed
    )
    row = con.execute(f"SELECT {sel} FROM parsed_{table.name}").fetchone()
    assert row is not None
    for i, c in enumerate(typed):
        given, ok = row[2 * i], row[2 * i + 1]
        if given > 0 and ok == 0:
            raise ExportError(
                f"{path}: column '{c.name}' is unreadable as {c.dtype} (none of its {given} values parse)"
            )


def _finish_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    types: dict[str, str],
    path: Path,
    as_of: date,
) -> TableReport:
    """Apply every rule, write the loaded table and its quarantine rows."""
    t = table.name
    rules: list[tuple[str, str]] = []
    for c in table.columns:
        rules += _column_rules(c, types.get(c.name), as_of)
    # cross-column rules are written over column names: point them at the parsed values
    for chk in table.checks:
        expr = chk.valid_sql
        for c in table.columns:
            expr = _replace_word(expr, c.name, _q("p_" + c.name))
        rules.append((chk.name, f"NOT coalesce({expr}, true)"))
    first_rule = "CASE " + " ".join(f"WHEN {cond} THEN {_lit(name)}" for name, cond in rules) + " END"
    con.execute(f"ALTER TABLE parsed_{t} ADD COLUMN _rule VARCHAR")
    con.execute(f"UPDATE parsed_{t} SET _rule = {first_rule} WHERE NOT _dup")

    if table.key:
        k = _q("p_" + table.key)
        con.execute(
            f"""UPDATE parsed_{t} SET _rule = 'repeated {table.key}'
            WHERE _row IN (SELECT _row FROM (
                SELECT _row, row_number() OVER (PARTITION BY {k} ORDER BY _row) AS n
                FROM parsed_{t} WHERE NOT _dup AND _rule IS NULL) WHERE n > 1)"""
        )
    for ref in table.references:
        c = _q("p_" + ref.column)
        con.execute(
            f"""UPDATE parsed_{t} SET _rule = {_lit(ref.rule)}
            WHERE NOT _dup AND _rule IS NULL AND {c} IS NOT NULL
              AND {c} NOT IN (SELECT {_q(ref.key)} FROM main.{_q(ref.table)})"""
        )
    if t == "readings":
        con.execute(
            """UPDATE parsed_readings SET _rule = 'odometer_km lower than an earlier reading'
            WHERE _row IN (SELECT _row FROM (
                SELECT _row, p_odometer_km < max(p_odometer_km) OVER (
                    PARTITION BY p_vehicle_id ORDER BY p_recorded_at, _row
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS down
                FROM parsed_readings WHERE NOT _dup AND _rule IS NULL) WHERE down)"""
        )

    extras = [c for c in types if c not in table.column_names]
    out_cols = [f"{_q('p_' + c.name)} AS {_q(c.name)}" for c in table.columns]
    out_cols += [_q(c) for c in extras]
    # bool columns with a default take it when left empty
    for i, c in enumerate(table.columns):
        if c.default is not None:
            out_cols[i] = f"coalesce({_q('p_' + c.name)}, {str(c.default).lower()}) AS {_q(c.name)}"
    con.execute(
        f"CREATE TABLE main.{_q(t)} AS SELECT {', '.join(out_cols)} "
        f"FROM parsed_{t} WHERE NOT _dup AND _rule IS NULL ORDER BY _row"
    )
    raw_json = "to_json({" + ", ".join(f"{_lit(c)}: {_q(c)}" for c in types) + "})"
    con.execute(
        f"""INSERT INTO main.quarantine
        SELECT {_lit(t)}, {_lit(path.name)}, _row, _rule, {raw_json}
        FROM parsed_{t} WHERE NOT _dup AND _rule IS NOT NULL ORDER BY _row"""
    )
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE _dup), "
        f"count(*) FILTER (WHERE NOT _dup AND _rule IS NULL) FROM parsed_{t}"
    ).fetchone()
    assert row is not None
    read, dups, loaded = row
    reasons = dict(
        con.execute(
            f"SELECT _rule, count(*) FROM parsed_{t} WHERE NOT _dup AND _rule IS NOT NULL "
            "GROUP BY _rule ORDER BY count(*) DESC, _rule"
        ).fetchall()
    )
    con.execute(f"DROP TABLE parsed_{t}")
    return TableReport(t, path.name, read, loaded, read - loaded - dups, dups, reasons)


def _replace_word(expr: str, word: str, repl: str) -> str:
    return re.sub(rf"(?<![\w\"]){re.escape(word)}(?![\w\"])", repl, expr)


def _empty_table(con: duckdb.DuckDBPyConnection, table: Table) -> TableReport:
    cols = ", ".join(f"{_q(c.name)} {c.sql_type}" for c in table.columns)
    con.execute(f"CREATE TABLE main.{_q(table.name)} ({cols})")
    return TableReport(table.name, None, 0, 0, 0, 0, {})


def _infer_as_of(con: duckdb.DuckDBPyConnection, staged: dict[str, dict[str, str]]) -> date | None:
    parts = []
    for table in TABLES:
        if table.name not in staged:
            continue
        for c in table.columns:
            if c.le_asof and c.name in staged[table.name]:
                parts.append(f"SELECT max(CAST({_q('p_' + c.name)} AS DATE)) AS d FROM parsed_{table.name}")
    if not parts:
        return None
    row = con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()
    return row[0] if row else None


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
        staged: dict[str, dict[str, str]] = {}
        for table in TABLES:
            if table.name in files:
                say(f"reading {files[table.name].name}")
                staged[table.name] = _stage_raw(con, table, files[table.name])
                _parse_table(con, table, staged[table.name])
                _check_readable(con, table, staged[table.name], files[table.name])
        inferred = as_of is None
        day = as_of or _infer_as_of(con, staged)
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
                reports.append(_finish_table(con, table, staged[table.name], files[table.name], day))
            else:
                reports.append(_empty_table(con, table))
        say("deriving outcomes")
        build_outcomes(con, day)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute(
            "CREATE TABLE main.export_info AS SELECT ?::DATE AS as_of, ?::VARCHAR AS export_dir, "
            "?::TIMESTAMP AS ingested_at, ?::BOOLEAN AS as_of_inferred",
            [day, str(export_dir.resolve()), now, inferred],
        )
        con.execute(
            "CREATE TABLE main.ingest_log (ingested_at TIMESTAMP, export_dir VARCHAR, as_of DATE, "
            "table_name VARCHAR, source_file VARCHAR, rows_read BIGINT, rows_loaded BIGINT, "
            "rows_set_aside BIGINT, duplicates BIGINT)"
        )
        con.executemany(
            "INSERT INTO main.ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [now, str(export_dir.resolve()), day, r.table, r.source, r.read, r.loaded, r.set_aside, r.duplicates]
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
