"""The Spark engine: features and batch scores on PySpark, from Parquet to Parquet.

What runs where:

- the as-of views and the feature aggregation are the DuckDB statements of
  :func:`timing.store.asof.view_sql` and :func:`timing.features.open_contracts.features_sql`,
  translated by :func:`timing.engines.dialect.to_spark` and run over Spark
  temporary views: the readings and fault codes never leave the cluster;
- the readings are measured per contract by :func:`timing.features.usage.measure_readings`
  itself, in a ``cogroup().applyInPandas`` UDF over buckets of vehicles (the
  open contracts and their cars' readings meet in the same bucket);
- the contract outcomes (one row per contract) are derived on the driver by
  :func:`timing.store.outcomes.derive_outcomes` itself, in an in-memory DuckDB;
- the per-contract feature table is collected to the driver, where
  :func:`timing.features.usage.project_usage` completes it (it needs the portfolio's
  median usage ratio, a statistic of the whole table);
- scoring is :func:`timing.scores.scoring.score_frame` in a ``mapInPandas`` UDF, with
  the fitted model's parameter tables broadcast and the model rebuilt from
  them on each executor.

Notes
-----
The session must run in UTC (:mod:`timing.engines.session`). Features and
scores equal the DuckDB path's within floating-point rounding (sums are
added in another order); ``tests/test_spark.py`` checks this.
``docs/spark.md`` says how to run on a cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa

from timing.core.contract import TABLES, Table
from timing.core.errors import ExportError
from timing.engines.dialect import to_spark
from timing.engines.session import check_session, spark_session
from timing.engines.spark_ingest import (
    BIG_TABLES,
    SparkIngestReport,
    duckdb_type,
    spark_ingest_checks,
)
from timing.features.open_contracts import (
    MIN_USAGE_SPAN_DAYS,
    USAGE_WINDOW_DAYS,
    features_sql,
    pairs_sql,
)
from timing.features.usage import READING_COLUMNS, empty_usage, measure_readings, project_usage
from timing.ingest.load import ingest
from timing.ingest.report import IngestReport
from timing.ingest.sql import find_table_file, parse_sql, quote
from timing.models.io import load_model
from timing.scores.scoring import score_frame
from timing.store.asof import create_views, view_sql
from timing.store.db import configure
from timing.store.outcomes import derive_outcomes

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return fetch()


# ---------------------------------------------------------------------------
# the tables, typed, and the as-of views


def _duckdb_columns(table: Table) -> str:
    from timing.core.contract import SQL_TYPES

    return ", ".join(f"{quote(c.name)} {SQL_TYPES[c.dtype]}" for c in table.columns)


def typed_sql(table: Table, view: str | None, types: Mapping[str, str]) -> str:
    """DuckDB SQL: the contract columns of raw ``view`` parsed to their types, as ingest loads them.

    With ``view=None`` (an optional table the export lacks): no rows.
    """
    if view is None:
        cols = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {quote(c.name)}" for c in table.columns)
        return f"SELECT {cols} WHERE false"
    out = []
    for c in table.columns:
        p = parse_sql(c, types.get(c.name))
        if c.default is not None:
            p = f"coalesce({p}, {str(c.default).lower()})"
        out.append(f"{p} AS {quote(c.name)}")
    return f"SELECT {', '.join(out)} FROM {view}"


def register_tables(spark: SparkSession, tables: str | Path | Mapping[str, DataFrame],
                    prefix: str = "src") -> None:
    """Temp views ``<prefix>_<table>`` of every contract table, with the contract's column types.

    ``tables`` is a folder of Parquet tables (an export, or the loaded tables
    :func:`run_spark` writes) or a mapping of table name to DataFrame. Values
    are parsed as :mod:`timing.ingest.load` parses them; rows are not checked.
    """
    for table in TABLES:
        raw_view: str | None = None
        if isinstance(tables, Mapping):
            df = tables.get(table.name)
        else:
            path = find_table_file(Path(tables), table)
            if path is not None and not (path.is_dir() or path.name.endswith(".parquet")):
                raise ExportError(f"{path}: the Spark engine reads Parquet tables")
            df = None if path is None else spark.read.parquet(str(path / "*.parquet") if path.is_dir() else str(path))
        types: dict[str, str] = {}
        if df is None:
            if table.required:
                raise ExportError(f"{tables}: required table '{table.name}' is missing")
        else:
            raw_view = f"raw_{prefix}_{table.name}"
            df.createOrReplaceTempView(raw_view)
            types = {f.name: duckdb_type(f.dataType) for f in df.schema.fields}
        spark.sql(to_spark(typed_sql(table, raw_view, types))).createOrReplaceTempView(f"{prefix}_{table.name}")


def create_spark_views(spark: SparkSession, as_of: date, source: str = "src", schema: str = "view_at") -> None:
    """The as-of views of :func:`timing.store.asof.create_views`, as temp views ``<schema>_<table>``.

    ``outcomes`` is derived on the driver by the DuckDB function itself, from
    the contracts visible at ``as_of`` (one row per contract).
    """
    contract_columns = spark.table(f"{source}_contracts").columns
    for name, sql in view_sql(source, as_of, schema, contract_columns).items():
        spark.sql(to_spark(sql)).createOrReplaceTempView(f"{schema}_{name}")
    visible = spark.table(f"{schema}_contracts").toArrow()
    con = configure(duckdb.connect())
    try:
        con.register("visible_contracts", visible)
        derive_outcomes(con, "visible_contracts", as_of, "outcomes")
        outcomes = _arrow(con, "SELECT * FROM outcomes")
    finally:
        con.close()
    spark.createDataFrame(outcomes).createOrReplaceTempView(f"{schema}_outcomes")


# ---------------------------------------------------------------------------
# features


def _duckdb_feature_schema(as_of: date) -> pa.Schema:
    """The column types DuckDB gives the feature statement (over empty tables)."""
    con = configure(duckdb.connect())
    try:
        con.execute("CREATE SCHEMA src")
        for table in TABLES:
            con.execute(f"CREATE TABLE src.{table.name} ({_duckdb_columns(table)})")
        create_views(con, "src", as_of, "view_at")
        con.register("no_usage", empty_usage())
        return _arrow(con, features_sql("view_at", as_of, "no_usage")).schema
    finally:
        con.close()


def spark_features(spark: SparkSession, tables: str | Path | Mapping[str, DataFrame], as_of: date) -> pd.DataFrame:
    """Features of every contract open on ``as_of``, as :func:`timing.features.open_contracts.features_at` computes them.

    Parameters
    ----------
    spark
        A session in UTC (:func:`spark_session`).
    tables
        A folder of Parquet tables (an export, or :func:`run_spark`'s loaded
        ``tables/``), or a mapping of table name to DataFrame.
    as_of
        The date T; the tables may hold later rows, which the as-of views hide.

    Returns
    -------
    The same frame as :func:`~timing.features.open_contracts.features_at` (columns, dtypes,
    order by ``contract_id``), computed on Spark up to the usage projection.
    """
    check_session(spark)
    register_tables(spark, tables, "src")
    create_spark_views(spark, as_of, "src", "view_at")
    spark_usage(spark, as_of, "view_at").createOrReplaceTempView("view_at_usage")
    result = spark.sql(to_spark(features_sql("view_at", as_of, "view_at.usage"))).toArrow()
    # through DuckDB's own conversion, so that types and pandas dtypes are those of features_at
    result = result.cast(_duckdb_feature_schema(as_of))
    con = duckdb.connect()
    try:
        con.register("spark_features", result)
        frame = con.execute("SELECT * FROM spark_features").df()
    finally:
        con.close()
    return project_usage(frame, min_span_days=MIN_USAGE_SPAN_DAYS)


def _usage_schema() -> StructType:
    from pyspark.sql import types as T

    kinds = {"Int64": T.LongType(), "datetime64[us]": T.TimestampType(), "float64": T.DoubleType()}
    return T.StructType([T.StructField("contract_id", T.StringType()), T.StructField("as_of", T.TimestampType()),
                         *(T.StructField(name, kinds[kind]) for name, kind in READING_COLUMNS.items())])


def spark_usage(spark: SparkSession, as_of: date, schema: str = "view_at", buckets: int | None = None) -> DataFrame:
    """The readings of the contracts open on ``as_of``, measured by
    :func:`timing.features.usage.measure_readings` on the executors: the open contracts (``pairs_sql``) and
    their vehicles' readings are cogrouped by a hash bucket of the vehicle, each bucket measured
    by the same function the DuckDB path calls."""
    from pyspark.sql import functions as F

    pairs = spark.sql(to_spark(pairs_sql(schema, as_of)))
    readings = (spark.table(f"{schema}_readings")
                .select("vehicle_id", "recorded_at", "odometer_km", "battery_soh_pct")
                .join(pairs.select("vehicle_id").distinct(), "vehicle_id", "left_semi"))
    n = buckets or max(2 * spark.sparkContext.defaultParallelism, 1)

    def bucket(df: DataFrame) -> DataFrame:
        return df.withColumn("_bucket", F.pmod(F.xxhash64("vehicle_id"), F.lit(n)))

    def measure(p: pd.DataFrame, r: pd.DataFrame) -> pd.DataFrame:
        return measure_readings(r, p, USAGE_WINDOW_DAYS)

    return (bucket(pairs).groupBy("_bucket").cogroup(bucket(readings).groupBy("_bucket"))
            .applyInPandas(measure, schema=_usage_schema()))


# ---------------------------------------------------------------------------
# scoring


#: Columns of :func:`~timing.scores.scoring.score_frame` holding calendar dates (``datetime.date``).
SCORE_DATES = ("as_of", "expected_signing_date", "signing_date_q10", "signing_date_q50", "signing_date_q90")


def _scores_schema(sample: pd.DataFrame) -> StructType:
    from pyspark.sql import types as T

    fields = []
    for name, dtype in sample.dtypes.items():
        if name in SCORE_DATES:
            kind: T.DataType = T.DateType()
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            kind = T.TimestampType()
        elif pd.api.types.is_bool_dtype(dtype):
            kind = T.BooleanType()
        elif pd.api.types.is_integer_dtype(dtype):
            kind = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            kind = T.DoubleType()
        else:
            kind = T.StringType()
        fields.append(T.StructField(str(name), kind, True))
    return T.StructType(fields)


def _dates_for_spark(scores: pd.DataFrame) -> pd.DataFrame:
    """Date columns as ``datetime.date`` or None (a column of only NaT is datetime64 otherwise)."""
    for name in SCORE_DATES:
        when = pd.to_datetime(scores[name])
        scores[name] = when.dt.date.astype(object).where(when.notna(), None)
    return scores


def spark_score(
    spark: SparkSession,
    features: pd.DataFrame | DataFrame,
    model_folder: str | Path,
    months: int | None = None,
    out: str | Path | None = None,
    expected_manifest_sha256: str | None = None,
) -> DataFrame:
    """Score the contracts in ``features`` with the model in ``model_folder``, on Spark.

    The model is loaded (and its files' hashes checked) on the driver; its
    parameter tables are broadcast and each task rebuilds the fitted result
    with ``from_tables`` and runs :func:`timing.scores.scoring.score_frame` on its
    batches, so the scores are those of ``timing score``, row for row.

    Parameters
    ----------
    features
        :func:`spark_features`' frame (pandas), or the same as a Spark DataFrame.
    months
        The horizon; the model's own by default.
    out
        When given, the scores are also written there as Parquet.

    Returns
    -------
    A Spark DataFrame with :func:`~timing.scores.scoring.score_frame`'s columns
    (not sorted: sort by ``contract_id`` where order matters).
    """
    from timing.models import RESULTS

    check_session(spark)
    model, info = load_model(Path(model_folder), expected_manifest_sha256)
    horizon = months or model.months
    version = str(info.get("version", Path(model_folder).name))
    frame = spark.createDataFrame(features) if isinstance(features, pd.DataFrame) else features
    head = frame.limit(1).toPandas()
    if head.empty:
        raise ValueError("no contract to score: the feature table is empty")
    schema = _scores_schema(score_frame(model, head, horizon, version))
    payload = spark.sparkContext.broadcast((model.name, model.to_tables()))

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        family, tables = payload.value
        fitted = RESULTS[family].from_tables(tables)
        for batch in batches:
            if len(batch):
                yield _dates_for_spark(score_frame(fitted, batch, horizon, version))

    scores = frame.mapInPandas(score_batches, schema)
    if out is not None:
        scores.write.mode("overwrite").parquet(str(out))
    return scores


# ---------------------------------------------------------------------------
# the whole job


SMALL_TABLES = tuple(t.name for t in TABLES if t.name not in BIG_TABLES)


def infer_as_of(spark: SparkSession, export_dir: str | Path) -> date:
    """The latest date in the export, as :func:`timing.ingest.load.ingest` infers it."""
    latest: list[date] = []
    for table in TABLES:
        path = find_table_file(Path(export_dir), table)
        dated = [c for c in table.columns if c.le_asof]
        if path is None or not dated:
            continue
        df = spark.read.parquet(str(path / "*.parquet") if path.is_dir() else str(path))
        df.createOrReplaceTempView("raw_latest")
        types = {f.name: duckdb_type(f.dataType) for f in df.schema.fields}
        sel = [f"max(CAST({parse_sql(c, types[c.name])} AS DATE))" for c in dated if c.name in types]
        if sel:
            row = spark.sql(to_spark(f"SELECT {', '.join(sel)} FROM raw_latest")).first()
            latest += [d for d in (row or []) if d is not None]
    if not latest:
        raise ExportError(f"{export_dir}: no dates at all, cannot tell the export's as-of date")
    return max(latest)


@dataclass(frozen=True)
class SparkRunResult:
    """Where :func:`run_spark` wrote what, and what the checks set aside."""

    as_of: date
    small_tables: IngestReport  # customers, vehicles, contracts, visits, contacts (DuckDB)
    big_tables: SparkIngestReport  # readings, fault codes (Spark)
    tables: Path
    quarantine: Path
    features: Path
    scores: Path
    store: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"spark run as of {self.as_of}: {sum(self.stage_seconds.values()):.0f} s"]
        lines += [f"  {name:<10}{secs:7.1f} s" for name, secs in self.stage_seconds.items()]
        reports = [*(t for t in self.small_tables.tables if t.table in SMALL_TABLES), *self.big_tables.tables]
        lines.append(f"  {'table':<15}{'read':>12}{'loaded':>12}{'set aside':>12}{'duplicates':>12}")
        lines += [f"  {t.table:<15}{t.read:>12,}{t.loaded:>12,}{t.set_aside:>12,}{t.duplicates:>12,}"
                  for t in reports]
        lines += [f"  loaded tables  {self.tables}", f"  quarantine     {self.quarantine}",
                  f"  features       {self.features}", f"  scores         {self.scores}",
                  f"  small store    {self.store}"]
        return "\n".join(lines)


def _small_export(export_dir: Path, folder: Path) -> Path:
    """A folder naming only the small tables of the export (links, no copies)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for table in TABLES:
        path = find_table_file(export_dir, table)
        if path is not None and table.name in SMALL_TABLES:
            os.symlink(path.resolve(), folder / path.name)
    return folder


def run_spark(
    export_dir: str | Path,
    out_dir: str | Path,
    model_folder: str | Path,
    as_of: date | None = None,
    master: str | None = "local[2]",
    months: int | None = None,
    conf: Mapping[str, str] | None = None,
    spark: SparkSession | None = None,
    expected_manifest_sha256: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SparkRunResult:
    """Check a Parquet export, compute the features on ``as_of`` and score them, on Spark.

    Writes into ``out_dir``: ``tables/`` (every loaded table as Parquet),
    ``quarantine/`` (the set-aside rows of every table),
    ``features-<as_of>.parquet``, ``scores-<as_of>/`` (Parquet) and
    ``store.duckdb`` (the small tables as the DuckDB ingest loads them, with
    their quarantine and outcomes; readings and fault codes are in ``tables/``).

    The small tables are checked by :func:`timing.ingest.load.ingest` on the
    driver, the big ones by :func:`~timing.engines.spark_ingest.spark_ingest_checks`
    against the vehicles that ingest loaded.

    Parameters
    ----------
    as_of
        The export's as-of date; inferred from the data (as ingest does) when None.
    master
        Spark master URL; None when launched by ``spark-submit`` (which sets it).
    conf
        Extra Spark settings (``spark.executor.memory``, ...).
    spark
        An existing session to use (then ``master`` and ``conf`` are ignored
        and the session is left running).
    """
    say = progress or (lambda _m: None)
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    if out_dir.resolve() == export_dir.resolve() or out_dir.resolve() in export_dir.resolve().parents:
        raise ValueError(f"{out_dir}: the output folder may not hold the export; give another folder")
    own = spark is None
    session = spark if spark is not None else spark_session(master, conf)
    seconds: dict[str, float] = {}
    try:
        check_session(session)
        out_dir.mkdir(parents=True, exist_ok=True)
        tables, quarantine = out_dir / "tables", out_dir / "quarantine"
        started = time.perf_counter()
        day = as_of or infer_as_of(session, export_dir)
        say(f"checking the small tables on the driver (as of {day})")
        store = out_dir / "store.duckdb"
        small = ingest(_small_export(export_dir, out_dir / ".small-export"), store, as_of=day)
        shutil.rmtree(out_dir / ".small-export")
        if tables.exists():
            shutil.rmtree(tables)
        tables.mkdir()
        con = duckdb.connect(str(store), read_only=True)
        try:
            for name in SMALL_TABLES:
                target = str(tables / f"{name}.parquet").replace("'", "''")
                con.execute(f"COPY main.{name} TO '{target}' (FORMAT parquet)")
            small_quarantine = _arrow(con, "SELECT * FROM main.quarantine")
        finally:
            con.close()
        seconds["small tables"] = time.perf_counter() - started

        started = time.perf_counter()
        say("checking readings and fault codes on Spark")
        big = spark_ingest_checks(session, export_dir, tables, day, vehicles=tables / "vehicles.parquet",
                                  quarantine=quarantine)
        import pyarrow.parquet as pq

        pq.write_table(small_quarantine, quarantine / "small-tables.parquet")
        seconds["big tables"] = time.perf_counter() - started

        started = time.perf_counter()
        say("features on Spark")
        features = spark_features(session, tables, day)
        features_path = out_dir / f"features-{day.isoformat()}.parquet"
        features.to_parquet(features_path, index=False)
        seconds["features"] = time.perf_counter() - started

        started = time.perf_counter()
        say(f"scoring {len(features):,} open contracts on Spark")
        scores_path = out_dir / f"scores-{day.isoformat()}"
        spark_score(session, features, model_folder, months, scores_path, expected_manifest_sha256)
        seconds["scores"] = time.perf_counter() - started
    finally:
        if own:
            session.stop()
    return SparkRunResult(day, small, big, tables, quarantine, features_path, scores_path, store, seconds)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point for ``spark-submit``: ``timing/engines/spark.py EXPORT OUT --model DIR [--as-of D]``."""
    parser = argparse.ArgumentParser(
        prog="timing-spark", description="Check a Parquet export, compute its features and score them, on Spark.")
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="a fitted model folder")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--months", type=int, default=None)
    parser.add_argument("--master", default=None, help="leave unset under spark-submit")
    args = parser.parse_args(argv)
    result = run_spark(args.export_dir, args.out_dir, args.model, args.as_of, master=args.master,
                       months=args.months, progress=print)
    print(result.summary())


if __name__ == "__main__":
    main()
