"""Engines: where the heavy steps run.

``duckdb`` (the default) is the rest of the package: one process, one store
file. ``spark`` (:mod:`timing.engines.spark`) runs the same steps on PySpark
for portfolios beyond one machine: reading a Parquet export, the ingest checks
of the big tables, the feature aggregation over readings and faults, and
batch scoring.

One definition serves both: the SQL is written once, in DuckDB's dialect
(:func:`timing.store.asof.view_sql`, :func:`timing.features.open_contracts.features_sql`, the rule
generators of :mod:`timing.ingest.load`), and :mod:`timing.engines.dialect`
translates it for Spark. Nothing here imports PySpark until a Spark function
is called; install it with the ``spark`` extra (``pip install timing[spark]``).
"""

from __future__ import annotations

ENGINES = ("duckdb", "spark")
