"""Ingest checks for the big tables (readings, fault codes) on Spark.

The rules are :mod:`timing.ingest.load`'s own: the parse of every column and
every rule come from its SQL generators (``parse_sql``, ``column_rules``,
``orphan_rules``) and are translated by :mod:`timing.engines.dialect`, so a
rule is defined once for both engines.
Only the orchestration is Spark's: one pass that joins each row to its
parent vehicle, windows each vehicle's readings in time order for the
odometer rule, and numbers exact duplicates.

Notes
-----
A row is charged exactly as :mod:`timing.ingest.load` charges it: exact
duplicates first (the first occurrence is kept and checked), then the column
rules in contract order, the unknown vehicle, then a reading lower than an
earlier clean reading of the same vehicle (by ``recorded_at``, then file
order). Source row numbers are 1-based positions in file order (Parquet files
of a folder in name order), as DuckDB numbers them, from Spark's
``_metadata.row_index``; so quarantine rows name the same rows in both
engines. Exports must be Parquet: Spark cannot number CSV rows in file order.

Differences from the DuckDB ingest: the loaded Parquet is not in file order,
and in ``raw_values`` numbers of 1e7 and more (or below 1e-3) are spelled as
Java spells them (``1.0E7``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from timing.core.contract import TABLES_BY_NAME, Table
from timing.core.errors import ExportError
from timing.engines.dialect import to_spark
from timing.engines.session import check_session
from timing.ingest.check import NON_DECREASING
from timing.ingest.report import TableReport, TableReports
from timing.ingest.sql import (
    column_rules,
    find_table_file,
    literal,
    orphan_rules,
    parse_sql,
    quote,
    replace_word,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: The tables checked on Spark; the others are small and go through :func:`timing.ingest.load.ingest`.
BIG_TABLES = ("readings", "fault_codes")
QUARANTINE_COLUMNS = ("table_name", "source_file", "source_row", "rule", "raw_values")


@dataclass(frozen=True)
class StagedTable:
    """A table read on Spark: the contract table, its source and its columns' types."""

    table: Table
    path: Path
    types: dict[str, str]  # source column -> the DuckDB type it would be read as, in file order


@dataclass(frozen=True)
class SparkIngestReport(TableReports):
    """What the Spark checks did: one :class:`~timing.ingest.load.TableReport` per big table."""

    out_dir: Path
    as_of: date
    tables: tuple[TableReport, ...]
    latest: date | None  # the latest date in the checked tables, for inferring the as-of date
    seconds: float


def duckdb_type(spark_type: object) -> str:
    """The DuckDB type name a Parquet column of this Spark type is read as (for ``parse_sql``)."""
    from pyspark.sql import types as T

    simple = {
        T.StringType: "VARCHAR", T.LongType: "BIGINT", T.IntegerType: "INTEGER", T.ShortType: "SMALLINT",
        T.ByteType: "TINYINT", T.DoubleType: "DOUBLE", T.FloatType: "FLOAT", T.DateType: "DATE",
        T.BooleanType: "BOOLEAN", T.TimestampType: "TIMESTAMP WITH TIME ZONE",
        T.TimestampNTZType: "TIMESTAMP",
    }
    for cls, name in simple.items():
        if isinstance(spark_type, cls):
            return name
    if isinstance(spark_type, T.DecimalType):
        return f"DECIMAL({spark_type.precision},{spark_type.scale})"
    return "VARCHAR" if isinstance(spark_type, T.CharType | T.VarcharType) else str(spark_type).upper()


def read_numbered(spark: SparkSession, path: Path) -> DataFrame:
    """A Parquet file or folder with ``_row``: the 1-based row number in file order."""
    from pyspark.sql import functions as F

    if not (path.is_dir() or path.name.endswith(".parquet")):
        raise ExportError(f"{path}: the Spark engine reads Parquet exports; convert CSV first "
                          "(or ingest with the DuckDB engine)")
    source = str(path / "*.parquet") if path.is_dir() else str(path)
    try:
        raw = spark.read.parquet(source)
    except Exception as e:  # AnalysisException: missing or unreadable files
        raise ExportError(f"{path}: cannot read the file: {str(e).splitlines()[0]}") from e
    cols = [F.col(_bq(c)) for c in raw.columns]
    meta = raw.select(*cols, F.col("_metadata.file_name").alias("_file"),
                      F.col("_metadata.row_index").alias("_index"))
    counts = sorted(meta.groupBy("_file").count().collect())
    offsets, start = [], 0
    for file_name, n in counts:  # DuckDB reads a folder's files in name order
        offsets.append((file_name, start))
        start += n
    if len(offsets) <= 1:
        return meta.select(*cols, (F.col("_index") + 1).alias("_row"))
    table = spark.createDataFrame(offsets, "_file string, _offset long")
    return meta.join(F.broadcast(table), "_file").select(*cols, (F.col("_offset") + F.col("_index") + 1).alias("_row"))


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def staged_table(spark: SparkSession, table: Table, path: Path, view: str) -> StagedTable:
    """Read ``path`` as temp view ``view`` (raw columns + ``_row``); what ingest's rules need to know of it."""
    df = read_numbered(spark, path)
    types = {f.name: duckdb_type(f.dataType) for f in df.schema.fields if f.name != "_row"}
    missing = [c for c in table.required_columns if c not in types]
    if missing:
        raise ExportError(f"{path}: required column '{missing[0]}' is missing")
    df.createOrReplaceTempView(view)
    return StagedTable(table, path, types)


def parsed_rows_sql(staged: StagedTable, view: str) -> str:
    """DuckDB SQL: ``_row``, the raw columns and the parsed ``p_<col>`` of every contract column."""
    raw = "".join(f", {quote(c)}" for c in staged.types)
    parsed = "".join(f", {parse_sql(c, staged.types.get(c.name))} AS {quote('p_' + c.name)}"
                     for c in staged.table.columns)
    return f"SELECT _row{raw}{parsed} FROM {view}"


def _scan(spark: SparkSession, staged: StagedTable, rows: str) -> date | None:
    """Refuse a typed column none of whose values parse; return the latest date (as ingest does)."""
    table, types = staged.table, staged.types
    typed = [c for c in table.columns if c.dtype != "string" and c.name in types]
    dated = [c for c in table.columns if c.le_asof and c.name in types]
    sel = [f"count({quote('p_' + c.name)})" for c in typed]
    sel += [f"count(CASE WHEN NOT ({_blank(c.name, types[c.name])}) THEN 1 END)" for c in typed]
    sel += [f"max(CAST({quote('p_' + c.name)} AS DATE))" for c in dated]
    if not typed and not dated:
        return None
    row = spark.sql(to_spark(f"SELECT {', '.join(sel)} FROM {rows}")).first()
    assert row is not None
    n = len(typed)
    for i, c in enumerate(typed):
        if row[i] == 0 and row[n + i] > 0:
            raise ExportError(f"{staged.path}: column '{c.name}' is unreadable as {c.dtype} "
                              f"(none of its {row[n + i]} values parse)")
    dates = [d for d in row[2 * n:] if d is not None]
    return max(dates) if dates else None


def _blank(name: str, src_type: str) -> str:
    x = quote(name)
    return f"({x} IS NULL OR trim({x}) = '')" if src_type == "VARCHAR" else f"({x} IS NULL)"


def first_rule_sql(staged: StagedTable, as_of: date, parent_key: str) -> str:
    """CASE naming the first rule a row breaks (NULL: none), in :mod:`timing.ingest.load`'s order.

    Per-column rules column by column, cross-column rules, then the unknown
    parent; ``parent_key`` is SQL for the parent's key found by a join (NULL
    when there is none).
    """
    table = staged.table
    rules: list[tuple[str, str]] = []
    for c in table.columns:
        rules += column_rules(c, staged.types.get(c.name), as_of)
    for chk in table.checks:  # written over column names: point them at the parsed values
        expr = chk.valid_sql
        for c in table.columns:
            expr = replace_word(expr, c.name, quote("p_" + c.name))
        rules.append((chk.name, f"NOT coalesce({expr}, true)"))
    rules += orphan_rules(table, parent_key)
    return "CASE " + " ".join(f"WHEN {cond} THEN {literal(name)}" for name, cond in rules) + " END"


def classify_sql(staged: StagedTable, rows: str, parents: str, as_of: date) -> str:
    """DuckDB SQL: every row with ``_rule`` (the first rule it breaks, else NULL) and ``_dup``.

    ``rows`` is :func:`parsed_rows_sql` (a view or a parenthesised query);
    ``parents`` a view of the loaded parent table (the vehicles).
    """
    table = staged.table
    assert table.key is None and table.references, f"{table.name}: only keyless child tables run on Spark"
    ref = table.references[0]
    first_rule = first_rule_sql(staged, as_of, parent_key="_parent._k")
    raw = ", ".join(quote(c) for c in staged.types)
    if table.name in NON_DECREASING:
        by, at, value, rule = NON_DECREASING[table.name]
        assert by == ref.column
        later_lower = (
            f"coalesce(_rule IS NULL AND {quote('p_' + value)} < max(CASE WHEN _rule IS NULL THEN {quote('p_' + value)} END) "
            f"OVER (PARTITION BY _k ORDER BY {quote('p_' + at)} NULLS LAST, _row "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)"
        )
        final_rule = f"CASE WHEN _rule IS NOT NULL THEN _rule WHEN {later_lower} THEN '{rule}' END"
    else:
        final_rule = "_rule"
    kept = ", ".join(["_row", raw, *(quote("p_" + c.name) for c in table.columns)])
    return f"""
    SELECT {kept}, {final_rule} AS _rule,
           row_number() OVER (PARTITION BY {raw} ORDER BY _row) > 1 AS _dup
    FROM (
        SELECT r.*, _parent._k, {first_rule} AS _rule
        FROM {rows} AS r
        LEFT JOIN (SELECT DISTINCT {quote(ref.key)} AS _key, {quote(ref.key)} AS _k FROM {parents}) AS _parent
          ON _parent._key = r.{quote('p_' + ref.column)}
    )"""


def _parents_view(spark: SparkSession, export_dir: Path, vehicles: DataFrame | str | Path | None) -> str:
    """Temp view of the vehicles the orphan check looks up (the loaded ones, when given)."""
    view = "parents_vehicles"
    if vehicles is None:
        # the export's own vehicles: exact as long as none of them is set aside
        path = find_table_file(export_dir, TABLES_BY_NAME["vehicles"])
        if path is None:
            raise ExportError(f"{export_dir}: required table 'vehicles' is missing")
        staged = staged_table(spark, TABLES_BY_NAME["vehicles"], path, "raw_vehicles")
        col = TABLES_BY_NAME["vehicles"].column("vehicle_id")
        sql = f"SELECT {parse_sql(col, staged.types['vehicle_id'])} AS vehicle_id FROM raw_vehicles"
        spark.sql(to_spark(sql)).createOrReplaceTempView(view)
    elif isinstance(vehicles, str | Path):
        read_numbered(spark, Path(vehicles)).createOrReplaceTempView(view)
    else:
        vehicles.createOrReplaceTempView(view)
    return view


def _raw_json(staged: StagedTable) -> Column:
    """The row's raw values as JSON, spelled as DuckDB's ``to_json`` spells them.

    Nulls are kept; timestamps are text (``2026-01-01 10:00:00.12+00``, the
    fraction only when there is one); NaN and infinities are bare. Numbers of
    1e7 and more, or below 1e-3, are spelled by Java (``1.0E7``), not DuckDB.
    """
    from pyspark.sql import functions as F

    fields, special = [], []
    for name, kind in staged.types.items():
        col = F.col(_bq(name))
        if kind in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
            text = F.regexp_replace(F.date_format(col, "yyyy-MM-dd HH:mm:ss.SSSSSS"), r"\.?0+$", "")
            col = F.concat(text, F.lit("+00")) if kind != "TIMESTAMP" else text
        elif kind in ("DOUBLE", "FLOAT"):
            special.append(name)
        fields.append(col.alias(name))
    json = F.to_json(F.struct(*fields), {"ignoreNullFields": "false"})
    for name in special:  # Spark quotes them ("NaN"); the key is a float column's, so never text
        key = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '":'
        json = F.regexp_replace(json, re.escape(key) + '"(NaN|Infinity|-Infinity)"', key.replace("$", "\\$") + "$1")
    return json


def _check_one(spark: SparkSession, staged: StagedTable, parents: str, as_of: date,
               out_dir: Path) -> tuple[TableReport, DataFrame, date | None]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    t = staged.table.name
    rows = f"({parsed_rows_sql(staged, f'raw_{t}')})"
    classified = spark.sql(to_spark(classify_sql(staged, rows, parents, as_of)))
    classified = classified.persist(StorageLevel.MEMORY_AND_DISK)  # parsing text is the costly part: once
    try:
        classified.createOrReplaceTempView(f"classified_{t}")
        latest = _scan(spark, staged, f"classified_{t}")
        tally = classified.groupBy("_rule", "_dup").count().collect()
        out_cols = []
        for c in staged.table.columns:
            p = F.col(_bq("p_" + c.name))
            if c.default is not None:
                p = F.coalesce(p, F.lit(c.default))
            out_cols.append(p.alias(c.name))
        out_cols += [F.col(_bq(c)) for c in staged.types if c not in staged.table.column_names]
        clean = classified.where(F.col("_rule").isNull() & ~F.col("_dup"))
        clean.select(*out_cols).write.mode("overwrite").parquet(str(out_dir / t))
        quarantine = classified.where(F.col("_rule").isNotNull() & ~F.col("_dup")).select(
            F.lit(t).alias("table_name"), F.lit(staged.path.name).alias("source_file"),
            F.col("_row").alias("source_row"), F.col("_rule").alias("rule"), _raw_json(staged).alias("raw_values"))
        quarantine = quarantine.localCheckpoint()  # small; lets `classified` go before the union is written
    finally:
        classified.unpersist()
    read = sum(r["count"] for r in tally)
    duplicates = sum(r["count"] for r in tally if r["_dup"])
    loaded = sum(r["count"] for r in tally if r["_rule"] is None and not r["_dup"])
    reasons = sorted(((r["_rule"], r["count"]) for r in tally if r["_rule"] is not None and not r["_dup"]),
                     key=lambda x: (-x[1], x[0]))
    set_aside = sum(n for _, n in reasons)
    assert read == loaded + set_aside + duplicates
    report = TableReport(t, staged.path.name, read, loaded, set_aside, duplicates, dict(reasons))
    return report, quarantine, latest


def spark_ingest_checks(
    spark: SparkSession,
    export_dir: str | Path,
    out_dir: str | Path,
    as_of: date,
    vehicles: DataFrame | str | Path | None = None,
    tables: Sequence[str] = BIG_TABLES,
    quarantine: str | Path | None = None,
) -> SparkIngestReport:
    """Check the big tables of a Parquet export on Spark; write loaded rows and quarantine as Parquet.

    Parameters
    ----------
    spark
        A session with ``spark.sql.session.timeZone=UTC``
        (:func:`timing.engines.spark.spark_session` makes one).
    export_dir
        The export folder (Parquet files or folders, as for :func:`timing.ingest.load.ingest`).
    out_dir
        Receives ``<table>/`` (the loaded rows, contract types) per table.
    as_of
        The export's as-of date.
    vehicles
        The loaded vehicles (DataFrame or Parquet path) that orphans are
        checked against; by default the export's own vehicles, which is exact
        when the DuckDB ingest sets none of them aside.
    tables
        Which tables to check (each must be a table without a key whose first
        reference is to the vehicles).
    quarantine
        Folder for the set-aside rows (columns as the store's ``quarantine``);
        ``out_dir/quarantine`` by default.

    Raises
    ------
    ExportError
        A file is not Parquet or cannot be read, a required column is
        missing, or a whole column has the wrong type.
    """
    check_session(spark)
    started = time.perf_counter()
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: no such export folder")
    parents = _parents_view(spark, export_dir, vehicles)
    reports: list[TableReport] = []
    quarantines: list[DataFrame] = []
    latest: list[date] = []
    for name in tables:
        table = TABLES_BY_NAME[name]
        path = find_table_file(export_dir, table)
        if path is None:
            reports.append(TableReport(name, None, 0, 0, 0, 0, {}))
            _empty(spark, table).write.mode("overwrite").parquet(str(out_dir / name))
            continue
        staged = staged_table(spark, table, path, f"raw_{name}")
        report, set_aside, day = _check_one(spark, staged, parents, as_of, out_dir)
        if day is not None:
            latest.append(day)
        reports.append(report)
        quarantines.append(set_aside)
    schema = "table_name string, source_file string, source_row long, rule string, raw_values string"
    union = spark.createDataFrame([], schema)
    for q in quarantines:
        union = union.unionByName(q)
    union.coalesce(1).write.mode("overwrite").parquet(str(quarantine or out_dir / "quarantine"))
    return SparkIngestReport(out_dir, as_of, tuple(reports), max(latest) if latest else None,
                             time.perf_counter() - started)


def _empty(spark: SparkSession, table: Table) -> DataFrame:
    from timing.core.contract import SQL_TYPES

    spark_types = {"VARCHAR": "string", "BIGINT": "long", "DOUBLE": "double", "DATE": "date",
                   "TIMESTAMP": "timestamp", "BOOLEAN": "boolean"}
    return spark.createDataFrame([], ", ".join(f"{_bq(c.name)} {spark_types[SQL_TYPES[c.dtype]]}"
                                               for c in table.columns))
