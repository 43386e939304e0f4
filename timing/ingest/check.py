"""One table of an export, read and checked: every source row loaded, set aside or counted as a duplicate.

See :mod:`timing.ingest.load` for the order of the checks and how they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from timing.core.contract import Column, Table
from timing.core.errors import ExportError
from timing.ingest.report import TableReport
from timing.ingest.sql import (
    column_rules,
    csv_header,
    is_blank_sql,
    literal,
    orphan_rules,
    parse_sql,
    parse_steps,
    quote,
    read_sql,
    replace_word,
)

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


@dataclass(frozen=True)
class Staged:
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
            return quote("p_" + col.name)
        return parse_sql(col, self.types.get(col.name))

    def raw(self, name: str) -> str:
        """SQL for the value of source column ``name`` as read."""
        if name in self.trimmed_cols:
            return f"coalesce({quote('r_' + name)}, {quote('p_' + name)})"
        return quote(name)

    def raw_list(self) -> str:
        return ", ".join(self.raw(c) for c in self.types)

    def rows(self, only: str | None = None) -> str:
        """Every source row: ``_row``, the raw columns and ``p_<col>`` for each contract column.

        Used as a subquery; DuckDB reads only the columns a statement needs.
        ``only``, SQL selecting ``_row``, restricts it to those rows, which are then
        fetched by row id rather than found by a scan of the whole table.
        """
        raw = "".join(f", {self.raw(c)} AS {quote(c)}" for c in self.types)
        parsed = "".join(f", {self.parsed(c)} AS {quote('p_' + c.name)}" for c in self.table.columns)
        where = f" WHERE rowid IN (SELECT _row - 1 FROM ({only}))" if only else ""
        return f"(SELECT rowid + 1 AS _row{raw}{parsed} FROM parsed_{self.name}{where})"


def stage(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> Staged:
    """Read the file once into ``parsed_<table>`` (see :class:`Staged`)."""
    try:
        if not path.is_dir() and not path.name.endswith(".parquet"):
            # the header decides the columns; every value is read as text
            types = dict.fromkeys(csv_header(path), "VARCHAR")
            spec = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in types)
            src = read_sql(path).replace(
                "auto_detect = false", f"auto_detect = false, columns = {{{spec}}}"
            )
        else:
            src = read_sql(path)
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        text = [c for c in table.columns if types.get(c.name) == "VARCHAR"]
        parsed = [c for c in text if c.dtype != "string"]
        trimmed = {c.name for c in text if c.dtype == "string"}
        # each value is parsed once, in an inner query (#<col>); the outer one finishes it
        inner = "".join(f", {parse_steps(c, 'VARCHAR')[0]} AS {quote('#' + c.name)}" for c in text)
        cols = []
        for name in types:
            x, v = quote(name), quote("#" + name)
            if name in trimmed:
                cols.append(f"{v} AS {quote('p_' + name)}")
                cols.append(f"CASE WHEN {x} IS DISTINCT FROM {v} THEN {x} END AS {quote('r_' + name)}")
            else:
                cols.append(x)
        for c in parsed:
            finish = parse_steps(c, "VARCHAR")[1]
            cols.append(f"{finish.format(v=quote('#' + c.name))} AS {quote('p_' + c.name)}")
        # "#bad" is set for the rows that are not loaded (see finish_table)
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
    return Staged(table, path, types, frozenset(c.name for c in parsed), frozenset(trimmed))


def check_readable(con: duckdb.DuckDBPyConnection, staged: Staged) -> date | None:
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
            blank = is_blank_sql(c, types[c.name])
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
class Rules:
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
        return f"[{', '.join(literal(n) for n in self.names)}][{code}]"


def table_rules(staged: Staged, as_of: date, parent_key: str | None = None) -> Rules:
    """Every rule of ``staged``'s table. See :func:`orphan_rules` for ``parent_key``."""
    table = staged.table
    column: list[tuple[str, str]] = []
    for c in table.columns:
        column += column_rules(c, staged.types.get(c.name), as_of)
    # cross-column rules are written over column names: point them at the parsed values
    for chk in table.checks:
        expr = chk.valid_sql
        for c in table.columns:
            expr = replace_word(expr, c.name, quote("p_" + c.name))
        column.append((chk.name, f"NOT coalesce({expr}, true)"))
    orphan = orphan_rules(table, parent_key)
    names = [name for name, _ in column + orphan]
    if table.key:
        names.append(f"repeated {table.key}")
    if table.name in NON_DECREASING:
        names.append(NON_DECREASING[table.name][3])
    return Rules(column, orphan, list(dict.fromkeys(names)))


def mark_rules(con: duckdb.DuckDBPyConnection, staged: Staged, rules: Rules) -> str:
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


def mark_rules_and_sequence(
    con: duckdb.DuckDBPyConnection, staged: Staged, as_of: date
) -> tuple[Rules, str]:
    """Like :func:`mark_rules`, plus the non-decreasing rule (:data:`NON_DECREASING`).

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
    rules = table_rules(staged, as_of, parent_key="_parent._k")
    parents = f"(SELECT {quote(ref.key)} AS _key, rowid AS _k FROM main.{quote(ref.table)})"
    p_by, p_at, p_value = (quote("p_" + c) for c in (by, at, value))
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


def finish_table(con: duckdb.DuckDBPyConnection, staged: Staged, as_of: date) -> TableReport:
    """Apply every rule, write the loaded table and its quarantine rows."""
    t = staged.name
    table = staged.table
    rows = staged.rows()
    names = ", ".join(quote(c) for c in staged.types)
    marks, dups = f"marks_{t}", f"dups_{t}"
    clean = f"_row NOT IN (SELECT _row FROM {marks}) AND _row NOT IN (SELECT _row FROM {dups})"
    con.execute(f"CREATE TEMP TABLE {marks} (_row BIGINT, _rule SMALLINT)")

    # per-column and cross-column rules (and orphans, when no key comes first)
    if t in NON_DECREASING:
        rules, candidates = mark_rules_and_sequence(con, staged, as_of)
    else:
        rules = table_rules(staged, as_of)
        candidates = mark_rules(con, staged, rules)

    # exact duplicates: every raw value equal to an earlier row's
    con.execute(
        f"""CREATE TEMP TABLE {dups} AS SELECT _row FROM (
            SELECT _row, row_number() OVER (PARTITION BY {names} ORDER BY _row) AS _n
            FROM {staged.rows(only=candidates)}
        ) WHERE _n > 1"""
    )

    if table.key:
        k = quote("p_" + table.key)
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
        out_cols.append(f"{p} AS {quote(c.name)}")
    out_cols += [quote(c) for c in extras]
    # A filtered scan keeps file order, a join does not (DuckDB's documented order
    # preservation): `WHERE rowid NOT IN (SELECT ...)` is planned as a hash join and
    # loaded the row groups of a large table out of order. So the rows not loaded
    # are flagged in place first (few rows; the order of an update is immaterial).
    con.execute(
        f'UPDATE parsed_{t} SET "#bad" = true '
        f"WHERE rowid IN (SELECT _row - 1 FROM {marks} UNION ALL SELECT _row - 1 FROM {dups})"
    )
    row = con.execute(
        f"CREATE TABLE main.{quote(t)} AS SELECT {', '.join(out_cols)} FROM parsed_{t} "
        'WHERE NOT "#bad"'
    ).fetchone()
    loaded = row[0] if row else 0
    raw_json = "to_json({" + ", ".join(f"{literal(c)}: r.{quote(c)}" for c in staged.types) + "})"
    con.execute(
        f"""INSERT INTO main.quarantine
        SELECT {literal(t)}, {literal(staged.path.name)}, m._row, {rules.name_sql("m._rule")}, {raw_json}
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


def empty_table(con: duckdb.DuckDBPyConnection, table: Table) -> TableReport:
    cols = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in table.columns)
    con.execute(f"CREATE TABLE main.{quote(table.name)} ({cols})")
    return TableReport(table.name, None, 0, 0, 0, 0, {})


