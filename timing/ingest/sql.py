"""The data contract's rules as SQL: reading an export's files and checking their values.

Shared by :mod:`timing.ingest.check` (DuckDB) and the Spark engine, which
translates the same expressions (:mod:`timing.engines.dialect`).
"""

from __future__ import annotations

import csv
import gzip
import re
from datetime import date
from pathlib import Path

from timing.core.contract import FALSE_WORDS, TRUE_WORDS, Column, Table
from timing.core.errors import ExportError

#: The timestamp format of a typical export, tried before DuckDB's general parser.
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


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


def read_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    if path.is_dir():
        return f"read_parquet('{p}/*.parquet')"
    if path.name.endswith(".parquet"):
        return f"read_parquet('{p}')"
    return (
        f"read_csv('{p}', header = true, all_varchar = true, delim = ',', quote = '\"', "
        "escape = '\"', auto_detect = false, null_padding = false)"
    )


def csv_header(path: Path) -> list[str]:
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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def trimmed_sql(x: str) -> str:
    """``NULLIF(trim(x), '')``, skipping the trim where it cannot change anything.

    ``trim`` removes space separators (Unicode category Zs), of which ASCII has
    only the space, so ASCII text with no space at either end is already trimmed.
    (``strlen`` counts bytes, ``length`` characters: equal only for ASCII.)
    """
    return (
        f"CASE WHEN strlen({x}) = length({x}) AND NOT starts_with({x}, ' ') AND NOT ends_with({x}, ' ') "
        f"THEN NULLIF({x}, '') ELSE NULLIF(trim({x}), '') END"
    )


def parse_steps(col: Column, src_type: str) -> tuple[str, str]:
    """How the raw column becomes its contract type (NULL when it cannot).

    Returns ``(value, finish)``: ``value`` is SQL over the raw column, and
    ``finish`` is a template in which ``{v}`` stands for that value, so that a
    value used twice (``CASE WHEN isfinite(v) THEN v END``) can be computed
    once. Text is trimmed, and empty text is NULL; where a cast of the text as
    it stands succeeds it gives the same value, so it is tried first and the
    (costlier) trim is only needed when it fails.
    """
    x = quote(col.name)
    text = src_type == "VARCHAR"
    t = trimmed_sql(x) if text else x
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
                f"coalesce(try_strptime({x}, {literal(ISO_UTC)}), "
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
            trues = ", ".join(literal(w) for w in TRUE_WORDS)
            falses = ", ".join(literal(w) for w in FALSE_WORDS)
            return (
                f"lower({t})",
                f"CASE WHEN {{v}} IN ({trues}) THEN true WHEN {{v}} IN ({falses}) THEN false END",
            )
        return f"TRY_CAST({x} AS BOOLEAN)", same
    raise AssertionError(col.dtype)


def parse_sql(col: Column, src_type: str | None) -> str:
    """SQL that turns the raw column into its contract type (NULL when it cannot)."""
    if src_type is None:  # optional column absent from the file
        return f"CAST(NULL AS {col.sql_type})"
    value, finish = parse_steps(col, src_type)
    return finish.format(v=f"({value})") if finish != "{v}" else value


def is_blank_sql(col: Column, src_type: str | None) -> str:
    if src_type is None:
        return "true"
    x = quote(col.name)
    if src_type == "VARCHAR":
        return f"({x} IS NULL OR trim({x}) = '')"
    return f"({x} IS NULL)"


def column_rules(col: Column, src_type: str | None, as_of: date) -> list[tuple[str, str]]:
    """(rule name, SQL true when the row BREAKS the rule), over raw + parsed ``p_<col>``.

    A blank value always parses to NULL, so "missing" and "unreadable" are both
    written as ``p IS NULL AND ...``: the text is only looked at again for the
    few rows whose value did not parse.
    """
    p = quote("p_" + col.name)
    blank = is_blank_sql(col, src_type)
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
        allowed = ", ".join(literal(c) for c in col.choices)
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
                f"NOT regexp_full_match({p}, {literal(col.pattern)})",
            )
        )
    if col.le_asof:
        limit = f"DATE '{as_of.isoformat()}'"
        cmp = f"{p} >= {limit} + INTERVAL 1 DAY" if col.dtype == "timestamp" else f"{p} > {limit}"
        rules.append((f"{col.name} after the as-of date", cmp))
    return rules


def replace_word(expr: str, word: str, repl: str) -> str:
    return re.sub(rf"(?<![\w\"]){re.escape(word)}(?![\w\"])", repl, expr)


# ---------------------------------------------------------------------------
# reading one table


def orphan_rules(table: Table, parent_key: str | None = None) -> list[tuple[str, str]]:
    """A row whose reference is given but not among the parent's keys is an orphan.

    ``parent_key``, when given, is SQL for the parent key matched to the first
    reference by a join (NULL when there is none).
    """
    rules = []
    for i, ref in enumerate(table.references):
        c = quote("p_" + ref.column)
        if i == 0 and parent_key is not None:
            rules.append((ref.rule, f"({c} IS NOT NULL AND {parent_key} IS NULL)"))
        else:
            parents = f"SELECT {quote(ref.key)} FROM main.{quote(ref.table)}"
            rules.append((ref.rule, f"({c} IS NOT NULL AND {c} NOT IN ({parents}))"))
    return rules


