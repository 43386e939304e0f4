"""The Spark engine gives the DuckDB path's features, scores and set-aside rows.

One SparkSession (local mode, two cores) serves the module. Two small demo
worlds (200 customers, Parquet) are built once: a clean one, whose features
and scores are computed by both engines from the same export, and a dirty one,
with the demo's injected faults plus a few hand-made rows breaking the rules of
readings and fault codes (readings split over two files, so row numbers must
follow file order across files), which :func:`timing.engines.spark.run_spark`
checks, loads, features and scores end to end.

Floating-point results may differ in the last bits (Spark adds sums in
another order); they are compared within 1e-9 relative tolerance, everything
else exactly.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sqlglot", reason="the Spark engine needs sqlglot (pip install timing[spark])")

from timing.demo import generate_demo  # noqa: E402
from timing.engines.dialect import TranslationError, to_spark  # noqa: E402
from timing.engines.session import check_session  # noqa: E402
from timing.features.open_contracts import features_at  # noqa: E402
from timing.features.training import landmarks, monthly_origins, origin_features, outcomes_with_ends  # noqa: E402
from timing.ingest.load import ingest  # noqa: E402
from timing.models import REGISTRY  # noqa: E402
from timing.models.io import load_model, save_model  # noqa: E402
from timing.scores.scoring import score_frame  # noqa: E402
from timing.store.asof import open_snapshot  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import SparkSession

D = date(2026, 10, 31)
RTOL = 1e-9


# --- comparing frames --------------------------------------------------------------------------


def assert_same_frame(expected: pd.DataFrame, got: pd.DataFrame, key: str = "contract_id") -> None:
    """Same columns and rows (by ``key``); numbers within RTOL (NaN-aware), the rest exactly."""
    assert list(got.columns) == list(expected.columns)
    expected = expected.sort_values(key).reset_index(drop=True)
    got = got.sort_values(key).reset_index(drop=True)
    assert len(got) == len(expected) and got[key].tolist() == expected[key].tolist()
    for col in expected.columns:
        a, b = expected[col], got[col]
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            x, y = a.to_numpy(float, na_value=np.nan), b.to_numpy(float, na_value=np.nan)
            close = np.isclose(y, x, rtol=RTOL, atol=1e-12, equal_nan=True) | (x == y)
            assert close.all(), f"{col}: {(~close).sum()} rows differ, e.g. {x[~close][:3]} vs {y[~close][:3]}"
        elif pd.api.types.is_datetime64_any_dtype(a) or a.map(lambda v: isinstance(v, date)).any():
            x, y = pd.to_datetime(a), pd.to_datetime(b)
            y = y.dt.tz_localize(None) if y.dt.tz is not None else y
            assert x.astype("datetime64[us]").equals(y.astype("datetime64[us]")), col
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), col


# --- the worlds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    clean: Path  # a Parquet export
    clean_store: Path
    dirty: Path  # the dirty export plus hand-made rule breakers
    dirty_store: Path
    model: Path  # a discrete model fitted on the clean store


def _break_readings(export: Path) -> None:
    """Readings as a folder of two files, the second with rows breaking each rule."""
    table = pq.read_table(export / "readings.parquet")
    vehicles = pq.read_table(export / "vehicles.parquet")["vehicle_id"].to_pylist()
    with_readings = set(table["vehicle_id"].to_pylist())
    quiet = next(v for v in vehicles if v not in with_readings)  # its sequence is only these rows
    rows = [  # vehicle, recorded_at (text in a dirty export), odometer, battery
        (quiet, "2026-09-01T08:00:00Z", 1000.0, None),  # clean
        (quiet, " 2026-09-02 10:00:00+02:00 ", 1100.0, 95.0),  # clean: trimmed, offset to UTC
        (quiet, "2026-09-02T08:00:00Z", 1050.0, None),  # same time, lower: later in file order
        (quiet, "2026-09-03T08:00:00Z", 1200.0, 120.0),  # battery above 100
        (quiet, "2026-09-03T08:00:00Z", 1200.0, 120.0),  # ...and its exact duplicate
        (quiet, "2026-09-04T08:00:00Z", 1300.0, 0.0),  # battery must be above 0
        (quiet, "2026-09-05T08:00:00Z", float("nan"), None),  # odometer not a number
        (quiet, "   ", 1400.0, None),  # missing time
        ("  ", "2026-09-06T08:00:00Z", 1400.0, None),  # missing vehicle
        (quiet, "2026-11-01T00:00:00Z", 1500.0, None),  # after the as-of date
        (quiet, "2026-10-31T23:59:59Z", 1500.0, None),  # the as-of day's last second: clean
        ("VX-UNKNOWN", "2026-09-06T08:00:00Z", 1400.0, None),  # unknown vehicle
    ]
    extra = pa.table({name: pa.array([r[i] for r in rows], table.schema.field(name).type)
                      for i, name in enumerate(table.column_names)})
    (export / "readings.parquet").unlink()
    (export / "readings").mkdir()
    cut = table.num_rows * 2 // 5
    pq.write_table(table.slice(0, cut), export / "readings" / "part-0.parquet")
    pq.write_table(pa.concat_tables([table.slice(cut), extra]), export / "readings" / "part-1.parquet")


def _break_fault_codes(export: Path) -> None:
    """Fault codes with rows breaking each rule, in the middle of the file."""
    table = pq.read_table(export / "fault_codes.parquet")
    first = table.slice(0, 1).to_pylist()[0]
    at = first["recorded_at"]
    rows = [
        {**first, "severity": "fatal"},
        {**first, "code": None},
        {**first, "vehicle_id": "VX-UNKNOWN"},
        {**first, "recorded_at": pd.Timestamp("2026-11-01 10:00", tz="UTC").to_pydatetime()},
        {**first, "recorded_at": None},
        {**first, "recorded_at": at},  # an exact duplicate of the file's first row
    ]
    middle = table.num_rows // 2
    extra = pa.Table.from_pylist(rows, schema=table.schema)
    pq.write_table(pa.concat_tables([table.slice(0, middle), extra, table.slice(middle)]),
                   export / "fault_codes.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("spark")
    generate_demo(root / "clean", customers=200, as_of=D, seed=3, fmt="parquet")
    ingest(root / "clean", root / "clean.duckdb", as_of=D)
    generate_demo(root / "dirty", customers=200, as_of=D, seed=4, fmt="parquet", dirty=True)
    _break_readings(root / "dirty")
    _break_fault_codes(root / "dirty")
    ingest(root / "dirty", root / "dirty.duckdb", as_of=D)
    with open_snapshot(root / "clean.duckdb") as snap:
        feats = origin_features(snap.con, snap.schema, monthly_origins(D, 3))
        lm = landmarks(feats, outcomes_with_ends(snap.con, snap.schema), D, 12)
    save_model(REGISTRY["discrete"](months=12).fit(lm), root / "model", {"version": "spark-test"})
    return World(root / "clean", root / "clean.duckdb", root / "dirty", root / "dirty.duckdb", root / "model")


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    pytest.importorskip("pyspark", reason="the Spark engine needs pyspark (pip install timing[spark])")
    if shutil.which("java") is None:
        pytest.skip("the Spark engine needs Java 17 on the PATH")
    from timing.engines.session import spark_session

    # tiny data: adaptive execution's extra jobs cost more than they save (results are the same)
    conf = {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", "spark.sql.adaptive.enabled": "false"}
    session = spark_session("local[2]", conf)
    yield session
    session.stop()


def duckdb_features(store: Path) -> pd.DataFrame:
    with open_snapshot(store, D) as snap:
        return features_at(snap.con, snap.schema, D)


# --- features and scores from one export -------------------------------------------------------


@pytest.fixture(scope="module")
def clean_features(spark: SparkSession, world: World) -> pd.DataFrame:
    from timing.engines.spark import spark_features

    return spark_features(spark, world.clean, D)


def test_features_equal_the_duckdb_path(clean_features: pd.DataFrame, world: World) -> None:
    expected = duckdb_features(world.clean_store)
    assert len(expected) > 100
    assert clean_features.dtypes.to_dict() == expected.dtypes.to_dict()
    assert clean_features["contract_id"].tolist() == expected["contract_id"].tolist()  # same order
    assert_same_frame(expected, clean_features)


def test_scores_equal_the_duckdb_path(spark: SparkSession, clean_features: pd.DataFrame, world: World,
                                      tmp_path: Path) -> None:
    from timing.engines.spark import spark_score

    model, info = load_model(world.model)
    expected = score_frame(model, duckdb_features(world.clean_store), model.months, info["version"])
    spark_score(spark, clean_features, world.model, out=tmp_path / "scores")
    got = pd.read_parquet(tmp_path / "scores")
    assert_same_frame(expected, got)


def test_the_as_of_date_is_inferred_as_ingest_does(spark: SparkSession, world: World, tmp_path: Path) -> None:
    from timing.engines.spark import infer_as_of

    assert infer_as_of(spark, world.clean) == ingest(world.clean, tmp_path / "s.duckdb").as_of


# --- checks, loading, features and scores from a dirty export ----------------------------------


def test_run_sets_aside_the_same_rows_and_scores_the_same(spark: SparkSession, world: World, tmp_path: Path) -> None:
    from timing.engines.spark import run_spark

    run = run_spark(world.dirty, tmp_path / "out", world.model, D, spark=spark)
    con = duckdb.connect(str(world.dirty_store), read_only=True)
    try:
        expected = con.execute("SELECT * FROM quarantine ORDER BY table_name, source_row").df()
        loaded = {t: con.execute(f"SELECT * FROM {t}").df() for t in ("readings", "fault_codes")}
        reports = {r[0]: r[1:] for r in con.execute(
            "SELECT table_name, rows_read, rows_loaded, rows_set_aside, duplicates FROM ingest_log").fetchall()}
    finally:
        con.close()
    # the hand-made rows reach every rule of the big tables
    rules = set(expected.loc[expected["table_name"].isin(["readings", "fault_codes"]), "rule"])
    assert {"missing vehicle_id", "missing recorded_at", "recorded_at after the as-of date",
            "battery_soh_pct > 100", "battery_soh_pct <= 0", "odometer_km not a number", "unknown vehicle_id",
            "odometer_km lower than an earlier reading", "severity not one of info/warning/critical",
            "missing code"} <= rules

    got = pd.read_parquet(run.quarantine).sort_values(["table_name", "source_row"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["table_name", "source_file", "source_row", "rule"]],
                                  expected[["table_name", "source_file", "source_row", "rule"]])
    assert got["raw_values"].tolist() == expected["raw_values"].tolist()
    for report in run.big_tables.tables:
        assert (report.read, report.loaded, report.set_aside, report.duplicates) == reports[report.table]
        on_spark = pd.read_parquet(run.tables / report.table)
        on_spark["recorded_at"] = on_spark["recorded_at"].dt.tz_localize(None)
        columns = list(loaded[report.table].columns)
        pd.testing.assert_frame_equal(
            on_spark.sort_values(columns).reset_index(drop=True),
            loaded[report.table].sort_values(columns).reset_index(drop=True), check_dtype=False)

    expected_features = duckdb_features(world.dirty_store)
    assert_same_frame(expected_features, pd.read_parquet(run.features))
    model, info = load_model(world.model)
    expected_scores = score_frame(model, expected_features, model.months, info["version"])
    assert_same_frame(expected_scores, pd.read_parquet(run.scores))


# --- the translation layer ---------------------------------------------------------------------


@pytest.mark.parametrize(("duckdb_sql", "spark_sql"), [
    ("SELECT epoch(t) FROM store.main.readings", "SELECT (UNIX_MICROS(t) / 1e6) FROM store_main_readings"),
    ("SELECT datediff('day', t, DATE '2026-10-31')",
     "SELECT DATEDIFF(CAST(CAST('2026-10-31' AS DATE) AS DATE), CAST(t AS DATE))"),
    ("SELECT arg_max(x, t)", "SELECT MAX_BY(x, IF(x IS NULL, NULL, t))"),
    ("SELECT regexp_full_match(x, '[0-9]+')", "SELECT (x RLIKE '\\\\A(?:[0-9]+)\\\\z')"),
    ("SELECT CAST(x AS TIMESTAMP)", "SELECT CAST(x AS TIMESTAMP)"),
])
def test_duckdb_constructs_translate_with_their_meaning(duckdb_sql: str, spark_sql: str) -> None:
    assert to_spark(duckdb_sql) == spark_sql


@pytest.mark.parametrize("duckdb_sql", [
    "SELECT datediff('month', a, b)",
    "SELECT try_strptime(x, '%d/%m/%Y')",
    "SELECT regexp_full_match(x, pattern_column)",
])
def test_constructs_without_a_faithful_translation_are_refused(duckdb_sql: str) -> None:
    with pytest.raises(TranslationError):
        to_spark(duckdb_sql)


def test_a_session_outside_utc_is_refused() -> None:
    class Conf:
        def get(self, key: str) -> str:
            return "Europe/Berlin"

    class Session:
        conf = Conf()

    with pytest.raises(ValueError, match="UTC"):
        check_session(Session())  # type: ignore[arg-type]
