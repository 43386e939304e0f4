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
:func:`_mark_rules_and_sequence`). The loaded table is then the parsed table
minus the marked and duplicate rows, in file order: those rows are flagged
in place (an update of a few rows) and the table is one filtered scan, since
a filter keeps file order where a join (``NOT IN`` a subquery) does not. The
quarantine rows are built from the marks, fetching only the marked rows.

DuckDB's memory is capped (:data:`MEMORY_LIMIT`); beyond that it spills to
a temporary folder beside the new store, removed when the store is closed.
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

#: Cap on DuckDB's own memory during an ingest (None: DuckDB's default, 80 % of RAM).
MEMORY_LIMIT: str | None = "1250MB"

#: Per table, a value that may not fall over time within each parent:
#: (column naming the parent, time column, value column, rule).
NON_DECREASING: dict[str, tuple[str, str, str, str]] = {
    "readings": (
        "vehicle_id",
        "recorded_at",
        "odometer_km",
        "odometer_km lower than an earlier reading",
    ),
}

#: The timestamp format of a typical export, tried before DuckDB's general parser.
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


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


class TableReports:
    """Look-ups over the ``tables`` of an ingest report (DuckDB's or Spark's)."""

    tables: tuple[TableReport, ...]

    def table(self, name: str) -> TableReport:
        return next(t for t in self.tables if t.table == name)

    @property
    def set_aside(self) -> int:
        return sum(t.set_aside for t in self.tables)


@dataclass(frozen=True)
class IngestReport(TableReports):
    export_dir: str
    store: str
    as_of: date
    as_of_inferred: bool
    tables: tuple[TableReport, ...]
    seconds: float

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


# ---------------------------------------------------------------------------
# parsing


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _trimmed_sql(x: str) -> str:
    """``NULLIF(trim(x), '')``, skipping the trim where it cannot change anything.

    ``trim`` removes space separators (Unicode category Zs), of which ASCII has
    only the space, so ASCII text with no space at either end is already trimmed.
    (``strlen`` counts bytes, ``length`` characters: equal only for ASCII.)
    """
    return (
        f"CASE WHEN strlen({x}) = length({x}) AND NOT starts_with({x}, ' ') AND NOT ends_with({x}, ' ') "
        f"THEN NULLIF({x}, '') ELSE NULLIF(trim({x}), '') END"
    )


def _parse_steps(col: Column, src_type: str) -> tuple[str, str]:
    """How the raw column becomes its contract type (NULL when it cannot).

    Returns ``(value, finish)``: ``value`` is SQL over the raw column, and
    ``finish`` is a template in which ``{v}`` stands for that value, so that a
    value used twice (``CASE WHEN isfinite(v) THEN v END``) can be computed
    once. Text is trimmed, and empty text is NULL; where a cast of the text as
    it stands succeeds it gives the same value, so it is tried first and the
    (costlier) trim is only needed when it fails.
    """
    x = _q(col.name)
    text = src_type == "VARCHAR"
    t = _trimmed_sql(x) if text else x
    same = "{v}"
    if not text and src_type == col.sql_type and col.dtype != "string":
        # already of the contract type (a typed Parquet column): nothing to convert
        return x, ("CASE WHEN isfinite({v}) THEN {v} END" if col.sql_type == "DOUBLE" else same)
    if col.dtype == "string":
        return (t if text else f"CAST({x} AS VARCHAR)"), same
    if col.dtype == "int":
        if text:
            return (
                f"CASE WHEN regexp_full_match({t}, '[+-]?[0-9]+') THEN TRY_CAST({t} AS BIGINT) END",
                same,
            )
        if src_type in ("FLOAT", "DOUBLE") or src_type.startswith("DECIMAL"):
            return x, "CASE WHEN {v} = round({v}) THEN TRY_CAST({v} AS BIGINT) END"
        return f"TRY_CAST({x} AS BIGINT)", same
    if col.dtype in ("float", "decimal"):
        v = (
            f"coalesce(TRY_CAST({x} AS DOUBLE), TRY_CAST({t} AS DOUBLE))"
            if text
            else f"TRY_CAST({x} AS DOUBLE)"
        )
        return v, "CASE WHEN isfinite({v}) THEN {v} END"
    if col.dtype == "date":
        return f"TRY_CAST({t} AS DATE)", same
    if col.dtype == "timestamp":
        if text:
            # offsets are converted to UTC and a naive time is read as UTC (the
            # session time zone); the fixed ISO form with a Z parses the same, faster
            return (
                f"coalesce(try_strptime({x}, {_lit(ISO_UTC)}), "
                f"CAST(TRY_CAST({t} AS TIMESTAMPTZ) AS TIMESTAMP))"
            ), same
        if "TIME ZONE" in src_type or src_type.startswith("TIMESTAMPTZ"):
            # the instant's UTC time; the plain cast (time zone rules) is only needed
            # for what has no epoch (infinity)
            tz = src_type in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")
            return (
                x if tz else f"TRY_CAST({x} AS TIMESTAMPTZ)",
                "coalesce(make_timestamp(epoch_us({v})), CAST({v} AS TIMESTAMP))",
            )
        return f"TRY_CAST({x} AS TIMESTAMP)", same
    if col.dtype == "bool":
        if text:
            trues = ", ".join(_lit(w) for w in TRUE_WORDS)
            falses = ", ".join(_lit(w) for w in FALSE_WORDS)
            return (
                f"lower({t})",
                f"CASE WHEN {{v}} IN ({trues}) THEN true WHEN {{v}} IN ({falses}) THEN false END",
            )
        return f"TRY_CAST({x} AS BOOLEAN)", same
    raise AssertionError(col.dtype)


def _parse_sql(col: Column, src_type: str | None) -> str:
    """SQL that turns the raw column into its contract type (NULL when it cannot)."""
    if src_type is None:  # optional column absent from the file
        return f"CAST(NULL AS {col.sql_type})"
    value, finish = _parse_steps(col, src_type)
    return finish.format(v=f"({value})") if finish != "{v}" else value


def _is_blank_sql(col: Column, src_type: str | None) -> str:
    if src_type is None:
        return "true"
    x = _q(col.name)
    if src_type == "VARCHAR":
        return f"({x} IS NULL OR trim({x}) = '')"
    return f"({x} IS NULL)"


def _column_rules(col: Column, src_type: str | None, as_of: date) -> list[tuple[str, str]]:
    """(rule name, SQL true when the row BREAKS the rule), over raw + parsed ``p_<col>``.

    A blank value always parses to NULL, so "missing" and "unreadable" are both
    written as ``p IS NULL AND ...``: the text is only looked at again for the
    few rows whose value did not parse.
    """
    p = _q("p_" + col.name)
    blank = _is_blank_sql(col, src_type)
    rules: list[tuple[str, str]] = []
    if col.required:
        if col.dtype == "string" and src_type == "VARCHAR":
            rules.append((f"missing {col.name}", f"{p} IS NULL"))  # trimmed text, NULL when empty
        else:
            rules.append((f"missing {col.name}", f"({p} IS NULL AND {blank})"))
    if src_type is not None and col.dtype != "string":
        what = {"bool": "not a boolean", "date": "not a date", "timestamp": "not a timestamp"}.get(
            col.dtype, "not a number"
        )
        if col.dtype == "int":
            what = "not an integer"
        rules.append((f"{col.name} {what}", f"({p} IS NULL AND NOT {blank})"))
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
            (
                f"{col.name} not {col.pattern_text}",
                f"NOT regexp_full_match({p}, {_lit(col.pattern)})",
            )
        )
    if col.le_asof:
        limit = f"DATE '{as_of.isoformat()}'"
        cmp = f"{p} >= {limit} + INTERVAL 1 DAY" if col.dtype == "timestamp" else f"{p} > {limit}"
        rules.append((f"{col.name} after the as-of date", cmp))
    return rules


def _replace_word(expr: str, word: str, repl: str) -> str:
    return re.sub(rf"(?<![\w\"]){re.escape(word)}(?![\w\"])", repl, expr)


# ---------------------------------------------------------------------------
# reading one table


@dataclass(frozen=True)
class _Staged:
    """A table read into ``parsed_<name>``: where it came from and what it holds.

    ``parsed_<name>`` has one row per source row, in file order. Columns read
    as text that the contract types (numbers, dates, ...) are kept as read
    and parsed once into ``p_<col>``. Contract text columns are kept trimmed
    (``p_<col>``, NULL when empty) and, only where that differs from what was
    read, as read (``r_<col>``). Every other column is kept as read.
    """

    table: Table
    path: Path
    types: dict[str, str]  # source column -> DuckDB type, in file order
    parsed_cols: frozenset[str]  # typed contract columns read as text: raw + p_<col>
    trimmed_cols: frozenset[str]  # text contract columns read as text: p_<col> + r_<col>

    @property
    def name(self) -> str:
        return self.table.name

    def parsed(self, col: Column) -> str:
        """SQL for the parsed value of ``col`` over ``parsed_<name>``."""
        if col.name in self.parsed_cols or col.name in self.trimmed_cols:
            return _q("p_" + col.name)
        return _parse_sql(col, self.types.get(col.name))

    def raw(self, name: str) -> str:
        """SQL for the value of source column ``name`` as read."""
        if name in self.trimmed_cols:
            return f"coalesce({_q('r_' + name)}, {_q('p_' + name)})"
        return _q(name)

    def raw_list(self) -> str:
        return ", ".join(self.raw(c) for c in self.types)

    def rows(self, only: str | None = None) -> str:
        """Every source row: ``_row``, the raw columns and ``p_<col>`` for each contract column.

        Used as a subquery; DuckDB reads only the columns a statement needs.
        ``only``, SQL selecting ``_row``, restricts it to those rows, which are then
        fetched by row id rather than found by a scan of the whole table.
        """
        raw = "".join(f", {self.raw(c)} AS {_q(c)}" for c in self.types)
        parsed = "".join(f", {self.parsed(c)} AS {_q('p_' + c.name)}" for c in self.table.columns)
        where = f" WHERE rowid IN (SELECT _row - 1 FROM ({only}))" if only else ""
        return f"(SELECT rowid + 1 AS _row{raw}{parsed} FROM parsed_{self.name}{where})"


def _stage(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> _Staged:
    """Read the file once into ``parsed_<table>`` (see :class:`_Staged`)."""
    try:
        if not path.is_dir() and not path.name.endswith(".parquet"):
            # the header decides the columns; every value is read as text
            types = dict.fromkeys(_csv_header(path), "VARCHAR")
            spec = ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in types)
            src = _read_sql(path).replace(
                "auto_detect = false", f"auto_detect = false, columns = {{{spec}}}"
            )
        else:
            src = _read_sql(path)
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        text = [c for c in table.columns if types.get(c.name) == "VARCHAR"]
        parsed = [c for c in text if c.dtype != "string"]
        trimmed = {c.name for c in text if c.dtype == "string"}
        # each value is parsed once, in an inner query (#<col>); the outer one finishes it
        inner = "".join(f", {_parse_steps(c, 'VARCHAR')[0]} AS {_q('#' + c.name)}" for c in text)
        cols = []
        for name in types:
            x, v = _q(name), _q("#" + name)
            if name in trimmed:
                cols.append(f"{v} AS {_q('p_' + name)}")
                cols.append(f"CASE WHEN {x} IS DISTINCT FROM {v} THEN {x} END AS {_q('r_' + name)}")
            else:
                cols.append(x)
        for c in parsed:
            finish = _parse_steps(c, "VARCHAR")[1]
            cols.append(f"{finish.format(v=_q('#' + c.name))} AS {_q('p_' + c.name)}")
        # "#bad" is set for the rows that are not loaded (see _finish_table)
        cols.append('false AS "#bad"')
        con.execute(
            f"CREATE TEMP TABLE parsed_{table.name} AS "
            f"SELECT {', '.join(cols)} FROM (SELECT *{inner} FROM {src})"
        )
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0]
        raise ExportError(f"{path}: cannot read the file: {msg}") from e
    missing = [c for c in table.required_columns if c not in types]
    if missing:
        raise ExportError(f"{path}: required column '{missing[0]}' is missing")
    return _Staged(table, path, types, frozenset(c.name for c in parsed), frozenset(trimmed))


def _check_readable(con: duckdb.DuckDBPyConnection, staged: _Staged) -> date | None:
    """Fail on a typed column none of whose values parse; return the table's latest date.

    A wholly unreadable column is a wrong type, not bad rows. The latest date
    (of the columns that may not be after the as-of date) is for inferring the
    export's as-of date; one scan does both.
    """
    table, types = staged.table, staged.types
    typed = [c for c in table.columns if c.dtype != "string" and c.name in types]
    dated = [c for c in table.columns if c.le_asof and c.name in types]
    sel = [f"count({staged.parsed(c)})" for c in typed]
    sel += [f"max(CAST({staged.parsed(c)} AS DATE))" for c in dated]
    if not sel:
        return None
    row = con.execute(f"SELECT {', '.join(sel)} FROM parsed_{staged.name}").fetchone()
    assert row is not None
    for c, ok in zip(typed, row[: len(typed)], strict=True):
        if ok == 0:
            blank = _is_blank_sql(c, types[c.name])
            given = con.execute(
                f"SELECT count(*) FILTER (WHERE NOT {blank}) FROM parsed_{staged.name}"
            ).fetchone()
            if given and given[0] > 0:
                raise ExportError(
                    f"{staged.path}: column '{c.name}' is unreadable as {c.dtype} "
                    f"(none of its {given[0]} values parse)"
                )
    dates = [d for d in row[len(typed) :] if d is not None]
    return max(dates) if dates else None


# ---------------------------------------------------------------------------
# checking one table


@dataclass(frozen=True)
class _Rules:
    """A table's rules in check order, each as (name, SQL true when the row breaks it).

    Rows are marked with a rule's number (its position in :attr:`names`, from
    1) rather than its name: a small number is cheap to carry through sorts.
    """

    column: list[tuple[str, str]]  # per-column, then cross-column rules
    orphan: list[tuple[str, str]]  # reference checks
    names: list[str]  # every rule a row can be charged with

    def code(self, name: str) -> int:
        return self.names.index(name) + 1

    def first(self, rules: list[tuple[str, str]]) -> str:
        """SQL for the number of the first of ``rules`` a row breaks (NULL: none)."""
        whens = " ".join(f"WHEN {cond} THEN {self.code(name)}" for name, cond in rules)
        return f"CAST(CASE {whens} END AS SMALLINT)"

    def name_sql(self, code: str) -> str:
        """SQL for the name of rule number ``code``."""
        return f"[{', '.join(_lit(n) for n in self.names)}][{code}]"


def _rules(staged: _Staged, as_of: date, parent_key: str | None = None) -> _Rules:
    """Every rule of ``staged``'s table. See :func:`_orphan_rules` for ``parent_key``."""
    table = staged.table
    column: list[tuple[str, str]] = []
    for c in table.columns:
        column += _column_rules(c, staged.types.get(c.name), as_of)
    # cross-column rules are written over column names: point them at the parsed values
    for chk in table.checks:
        expr = chk.valid_sql
        for c in table.columns:
            expr = _replace_word(expr, c.name, _q("p_" + c.name))
        column.append((chk.name, f"NOT coalesce({expr}, true)"))
    orphan = _orphan_rules(table, parent_key)
    names = [name for name, _ in column + orphan]
    if table.key:
        names.append(f"repeated {table.key}")
    if table.name in NON_DECREASING:
        names.append(NON_DECREASING[table.name][3])
    return _Rules(column, orphan, list(dict.fromkeys(names)))


def _orphan_rules(table: Table, parent_key: str | None = None) -> list[tuple[str, str]]:
    """A row whose reference is given but not among the parent's keys is an orphan.

    ``parent_key``, when given, is SQL for the parent key matched to the first
    reference by a join (NULL when there is none).
    """
    rules = []
    for i, ref in enumerate(table.references):
        c = _q("p_" + ref.column)
        if i == 0 and parent_key is not None:
            rules.append((ref.rule, f"({c} IS NOT NULL AND {parent_key} IS NULL)"))
        else:
            parents = f"SELECT {_q(ref.key)} FROM main.{_q(ref.table)}"
            rules.append((ref.rule, f"({c} IS NOT NULL AND {c} NOT IN ({parents}))"))
    return rules


def _mark_rules(con: duckdb.DuckDBPyConnection, staged: _Staged, rules: _Rules) -> str:
    """Mark rows breaking a column / cross-column rule (or, without a key, an orphan).

    Returns SQL selecting the ``_row`` of every duplicate candidate.
    """
    t = staged.name
    checks = rules.column + (rules.orphan if staged.table.key is None else [])
    con.execute(
        f"INSERT INTO marks_{t} SELECT _row, _rule FROM ("
        f"SELECT _row, {rules.first(checks)} AS _rule FROM {staged.rows()}"
        ") WHERE _rule IS NOT NULL"
    )
    # exact duplicates have equal hashes: only rows sharing a hash are compared
    raw = staged.raw_list()
    return (
        f"SELECT _row FROM (SELECT rowid + 1 AS _row, hash({raw}) AS _h FROM parsed_{t}) "
        f"WHERE _h IN (SELECT _h FROM (SELECT hash({raw}) AS _h FROM parsed_{t}) "
        "GROUP BY _h HAVING count(*) > 1)"
    )


def _mark_rules_and_sequence(
    con: duckdb.DuckDBPyConnection, staged: _Staged, as_of: date
) -> tuple[_Rules, str]:
    """Like :func:`_mark_rules`, plus the non-decreasing rule (:data:`NON_DECREASING`).

    One pass windows the rows per parent (found by joining the parent table,
    which is also the orphan check) in time order, marks the column rules and
    orphans, and compares each row with its neighbours:

    * exact duplicates of a row share its parent and time, so they are
      neighbours: any row whose neighbour has the same time is a duplicate
      candidate;
    * a clean row breaks the non-decreasing rule if its value is below the
      largest value of the clean rows before it (in time, then file order).
      That needs a running maximum, which costs; but a parent has such a row
      only if somewhere its values step down from one row to the next
      (counting every other row as minus infinity), or differ between two
      rows of the same time (whose order this window leaves open). Only
      those parents get the exact running maximum, in a second, much
      smaller window.

    Duplicates are not known yet: counting them as clean changes nothing,
    since the first occurrence, with the same value, comes before them.
    """
    t = staged.name
    table = staged.table
    by, at, value, rule = NON_DECREASING[t]
    assert table.key is None and table.references and table.references[0].column == by
    assert table.column(value).dtype in ("float", "decimal")
    ref = table.references[0]
    rules = _rules(staged, as_of, parent_key="_parent._k")
    parents = f"(SELECT {_q(ref.key)} AS _key, rowid AS _k FROM main.{_q(ref.table)})"
    p_by, p_at, p_value = (_q("p_" + c) for c in (by, at, value))
    scan = f"scan_{t}"
    con.execute(
        f"""CREATE TEMP TABLE {scan} AS
        SELECT _row, _k, _rule, _cand, _step FROM (
            SELECT _row, _k, _rule,
                   lag(_at) OVER w IS NOT DISTINCT FROM _at
                   OR lead(_at) OVER w IS NOT DISTINCT FROM _at AS _cand,
                   lag(_v) OVER w > _v
                   OR (lag(_at) OVER w = _at AND lag(_v) OVER w <> _v) AS _step
            FROM (
                SELECT _row, _at, _k, _rule,
                       CASE WHEN _rule IS NULL THEN _value ELSE '-inf'::DOUBLE END AS _v
                FROM (
                    SELECT r._row, r.{p_at} AS _at, r.{p_value} AS _value, _parent._k,
                           {rules.first(rules.column + rules.orphan)} AS _rule
                    FROM {staged.rows()} AS r LEFT JOIN {parents} AS _parent ON _parent._key = r.{p_by}
                )
            )
            WINDOW w AS (PARTITION BY _k ORDER BY _at)
        ) WHERE _rule IS NOT NULL OR _cand OR _step"""
    )
    con.execute(f"INSERT INTO marks_{t} SELECT _row, _rule FROM {scan} WHERE _rule IS NOT NULL")
    con.execute(
        f"""INSERT INTO marks_{t} SELECT _row, {rules.code(rule)} FROM (
            SELECT _row, _value < max(_value) OVER (
                PARTITION BY _k ORDER BY _at, _row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS _down
            FROM (
                SELECT r._row, r.{p_at} AS _at, r.{p_value} AS _value, _parent._k
                FROM {staged.rows()} AS r JOIN {parents} AS _parent ON _parent._key = r.{p_by}
                WHERE _parent._k IN (SELECT _k FROM {scan} WHERE _step)
                  AND r._row NOT IN (SELECT _row FROM marks_{t})
            )
        ) WHERE _down"""
    )
    return rules, f"SELECT _row FROM {scan} WHERE _cand"


def _finish_table(con: duckdb.DuckDBPyConnection, staged: _Staged, as_of: date) -> TableReport:
    """Apply every rule, write the loaded table and its quarantine rows."""
    t = staged.name
    table = staged.table
    rows = staged.rows()
    names = ", ".join(_q(c) for c in staged.types)
    marks, dups = f"marks_{t}", f"dups_{t}"
    clean = f"_row NOT IN (SELECT _row FROM {marks}) AND _row NOT IN (SELECT _row FROM {dups})"
    con.execute(f"CREATE TEMP TABLE {marks} (_row BIGINT, _rule SMALLINT)")

    # per-column and cross-column rules (and orphans, when no key comes first)
    if t in NON_DECREASING:
        rules, candidates = _mark_rules_and_sequence(con, staged, as_of)
    else:
        rules = _rules(staged, as_of)
        candidates = _mark_rules(con, staged, rules)

    # exact duplicates: every raw value equal to an earlier row's
    con.execute(
        f"""CREATE TEMP TABLE {dups} AS SELECT _row FROM (
            SELECT _row, row_number() OVER (PARTITION BY {names} ORDER BY _row) AS _n
            FROM {staged.rows(only=candidates)}
        ) WHERE _n > 1"""
    )

    if table.key:
        k = _q("p_" + table.key)
        con.execute(
            f"""INSERT INTO {marks} SELECT _row, {rules.code(f"repeated {table.key}")} FROM (
                SELECT _row, row_number() OVER (PARTITION BY {k} ORDER BY _row) AS _n
                FROM {rows} WHERE {clean}
            ) WHERE _n > 1"""
        )
        if rules.orphan:
            con.execute(
                f"INSERT INTO {marks} SELECT _row, _rule FROM ("
                f"SELECT _row, {rules.first(rules.orphan)} AS _rule FROM {rows} WHERE {clean}"
                ") WHERE _rule IS NOT NULL"
            )

    extras = [c for c in staged.types if c not in table.column_names]
    out_cols = []
    for c in table.columns:
        p = staged.parsed(c)
        # bool columns with a default take it when left empty
        if c.default is not None:
            p = f"coalesce({p}, {str(c.default).lower()})"
        out_cols.append(f"{p} AS {_q(c.name)}")
    out_cols += [_q(c) for c in extras]
    # A filtered scan keeps file order, a join does not (DuckDB's documented order
    # preservation): `WHERE rowid NOT IN (SELECT ...)` is planned as a hash join and
    # loaded the row groups of a large table out of order. So the rows not loaded
    # are flagged in place first (few rows; the order of an update is immaterial).
    con.execute(
        f'UPDATE parsed_{t} SET "#bad" = true '
        f"WHERE rowid IN (SELECT _row - 1 FROM {marks} UNION ALL SELECT _row - 1 FROM {dups})"
    )
    row = con.execute(
        f"CREATE TABLE main.{_q(t)} AS SELECT {', '.join(out_cols)} FROM parsed_{t} "
        'WHERE NOT "#bad"'
    ).fetchone()
    loaded = row[0] if row else 0
    raw_json = "to_json({" + ", ".join(f"{_lit(c)}: r.{_q(c)}" for c in staged.types) + "})"
    con.execute(
        f"""INSERT INTO main.quarantine
        SELECT {_lit(t)}, {_lit(staged.path.name)}, m._row, {rules.name_sql("m._rule")}, {raw_json}
        FROM {marks} AS m JOIN {staged.rows(only=f"SELECT _row FROM {marks}")} AS r ON r._row = m._row
        WHERE m._row NOT IN (SELECT _row FROM {dups}) ORDER BY m._row"""
    )
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM parsed_{t}), (SELECT count(*) FROM {dups})"
    ).fetchone()
    assert counts is not None
    read, n_dups = counts
    reasons = dict(
        con.execute(
            f"SELECT {rules.name_sql('_rule')} AS _name, count(*) FROM {marks} "
            f"WHERE _row NOT IN (SELECT _row FROM {dups}) GROUP BY _rule ORDER BY count(*) DESC, _name"
        ).fetchall()
    )
    set_aside = sum(reasons.values())
    assert read == loaded + set_aside + n_dups, (t, read, loaded, set_aside, n_dups)
    for temp in (f"scan_{t}", marks, dups, f"parsed_{t}"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return TableReport(t, staged.path.name, read, loaded, set_aside, n_dups, reasons)


def _empty_table(con: duckdb.DuckDBPyConnection, table: Table) -> TableReport:
    cols = ", ".join(f"{_q(c.name)} {c.sql_type}" for c in table.columns)
    con.execute(f"CREATE TABLE main.{_q(table.name)} ({cols})")
    return TableReport(table.name, None, 0, 0, 0, 0, {})


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
            con.execute(f"SET memory_limit = {_lit(MEMORY_LIMIT)}")
        staged: dict[str, _Staged] = {}
        latest: list[date] = []
        for table in TABLES:
            if table.name in files:
                say(f"reading {files[table.name].name}")
                staged[table.name] = _stage(con, table, files[table.name])
                day = _check_readable(con, staged[table.name])
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
                reports.append(_finish_table(con, staged[table.name], day))
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
