"""What did an export on date T hold? As-of views over a later store.

Backtests and training rest on this: every feature, label and model input for
an as-of date T is read through a :class:`Snapshot` at T, never from the store's
tables directly.

Notes
-----
An export on T holds contracts signed by T, with ``actual_end_date`` and
``end_type`` only where the end was reached by T; readings, faults and
contacts recorded before the end of day T; service visits on or before T; and
the customers and vehicles those contracts refer to. Outcomes are derived
again from the visible contracts, so a successor signed after T is invisible
and a contract's loss is known only 180 days after its end.

Customers' consent flags exist only as the latest export states them; the
store keeps no history of them, so a view at T shows today's consent. They are
used for contact rules, never as model features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from timing.core.contract import TABLES
from timing.store.db import StoreError, configure, export_as_of
from timing.store.outcomes import derive_outcomes


@dataclass
class Snapshot:
    """A read-only view of the store as an export on ``as_of`` would hold it."""

    con: duckdb.DuckDBPyConnection
    as_of: date
    store_as_of: date
    schema: str = "view_at"

    def t(self, table: str) -> str:
        """Qualified name of a table as of ``as_of``."""
        return f"{self.schema}.{table}"

    def df(self, table: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM {self.t(table)}").df()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_views(con: duckdb.DuckDBPyConnection, source: str, as_of: date, schema: str,
                 outcomes: bool = True) -> None:
    """Create, in ``schema``, one view per contract table at ``as_of``, and (unless ``outcomes`` is
    False, for a caller that derives them for some customers only) the table ``outcomes``.

    ``source`` is the catalog or schema holding the full tables (e.g. ``store.main``).
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    columns = [d[0] for d in con.execute(f"SELECT * FROM {source}.contracts LIMIT 0").description]
    for name, sql in view_sql(source, as_of, schema, columns).items():
        con.execute(f"CREATE OR REPLACE VIEW {schema}.{name} AS {sql}")
    if outcomes:
        derive_outcomes(con, f"{schema}.contracts", as_of, f"{schema}.outcomes")


def view_sql(source: str, as_of: date, schema: str, contract_columns: Sequence[str]) -> dict[str, str]:
    """The query behind each as-of view (DuckDB dialect), in the order they must be created.

    Both engines create their views from these: DuckDB as they stand, Spark
    after :mod:`timing.engines.dialect` translates them. Tables are read as
    ``{source}.<table>``, and views refer to each other as ``{schema}.<view>``.
    ``contract_columns`` are the columns of ``{source}.contracts``, in order:
    the view keeps them all, blanking the end of a contract not reached by T.
    """
    t = f"DATE '{as_of.isoformat()}'"
    end_of_t = f"(DATE '{as_of.isoformat()}' + INTERVAL 1 DAY)"
    blanked = {"actual_end_date", "end_type"}
    contract_cols = ", ".join(
        f"CASE WHEN actual_end_date <= {t} THEN {_q(c)} END AS {_q(c)}" if c in blanked else _q(c)
        for c in contract_columns
    )
    views = {
        "contracts": f"SELECT {contract_cols} FROM {source}.contracts WHERE signed_date <= {t}",
        "customers": f"""SELECT * FROM {source}.customers
        WHERE customer_id IN (SELECT customer_id FROM {schema}.contracts)""",
        "vehicles": f"""SELECT * FROM {source}.vehicles
        WHERE vehicle_id IN (SELECT vehicle_id FROM {schema}.contracts)""",
    }
    for name, col in (("readings", "recorded_at"), ("fault_codes", "recorded_at")):
        views[name] = f"""SELECT * FROM {source}.{name}
            WHERE {col} < {end_of_t}
              AND vehicle_id IN (SELECT vehicle_id FROM {schema}.vehicles)"""
    views["service_visits"] = f"""SELECT * FROM {source}.service_visits
        WHERE visit_date <= {t} AND vehicle_id IN (SELECT vehicle_id FROM {schema}.vehicles)"""
    views["contacts"] = f"""SELECT * FROM {source}.contacts
        WHERE contacted_at < {end_of_t}
          AND customer_id IN (SELECT customer_id FROM {schema}.customers)
          AND (contract_id IS NULL OR contract_id IN (SELECT contract_id FROM {schema}.contracts))"""
    return views


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_snapshot(store_path: str | Path, as_of: date | None = None) -> Snapshot:
    """Open the store read-only, as an export on ``as_of`` would have held it.

    ``as_of`` defaults to the as-of date of the last ingested export; a later
    date is refused, since the store cannot know what happened after its export.
    """
    path = Path(store_path)
    if not path.exists():
        raise StoreError(f"no store at {path}: run `timing ingest DIR` (or `timing run`) first")
    con = configure(duckdb.connect())
    try:
        con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS store (READ_ONLY)")
        con.execute("USE store")
        store_as_of = export_as_of(con)
        con.execute("USE memory")
    except (duckdb.Error, StoreError) as e:
        con.close()
        raise StoreError(f"cannot read store {path}: {e}") from e
    day = as_of or store_as_of
    if day > store_as_of:
        con.close()
        raise StoreError(
            f"as-of {day} is after the store's export date {store_as_of}: the store cannot know it"
        )
    create_views(con, "store.main", day, "view_at")
    return Snapshot(con, day, store_as_of)


def table_names() -> tuple[str, ...]:
    return tuple(t.name for t in TABLES) + ("outcomes",)
