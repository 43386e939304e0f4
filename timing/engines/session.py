"""The Spark session every step of the Spark engine runs in, and the settings it needs.

Notes
-----
The session must run in UTC (``spark.sql.session.timeZone=UTC``), as the
store's DuckDB connections do: timestamps are compared with dates and cut
into calendar days, and a reading at 23:30 UTC belongs to its UTC day in
both engines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Settings every session of this engine needs (they override the caller's).
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Parquet timestamps as DuckDB and pandas write them (INT64 micros, UTC), not INT96
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
#: Defaults for a local session (the caller's settings override them).
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
UTC_NAMES = ("UTC", "Etc/UTC", "GMT", "Z", "+00:00")


def spark_session(master: str | None = "local[2]", conf: Mapping[str, str] | None = None,
                  app_name: str = "timing") -> SparkSession:
    """A session with :data:`REQUIRED_CONF`; ``master=None`` leaves the master to ``spark-submit``."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    settings: dict[str, str] = {}
    if master and master.startswith("local"):
        settings.update(LOCAL_CONF)
        # local workers run this interpreter, which has timing and its dependencies (PySpark
        # reads the variable when it starts the context; its default is whatever python3 is)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update(conf or {})
    settings.update(REQUIRED_CONF)
    if master:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def check_session(spark: SparkSession) -> None:
    """Refuse a session whose time zone is not UTC (days would be cut elsewhere)."""
    tz = spark.conf.get("spark.sql.session.timeZone")
    if tz not in UTC_NAMES:
        raise ValueError(f"the Spark session's time zone is {tz}; set spark.sql.session.timeZone=UTC "
                         "(timing.engines.session.spark_session does)")
