"""Training data: contracts open at past origins, their features then, and what happened next.

For each origin T_j before the fit date T, the contracts open on T_j are
described by :func:`timing.features.open_contracts.features_at` on the as-of views at T_j
(so a training row sees exactly what a score on T_j would have seen), and
labelled with the outcome known on T (from the views at T, never later).

Notes
-----
Labels, in months after the origin (:data:`timing.models.panel.MONTH_DAYS`):

* **signed** in month ``ceil((signing - T_j) / MONTH_DAYS)``;
* **lost** in the month of the contract's actual end when that end is after
  T_j; for a contract that had already ended at T_j (and was open because
  180 days had not passed), in the month its 180 days expire;
* **censored** after the last whole month observed before T. A contract that
  ended before T with no successor yet, and whose 180 days have not passed by
  T, may yet be lost (dated at its end) or sign: it is censored at its end.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from timing.core import runtime
from timing.core.contract import SUCCESSOR_GRACE_DAYS, TABLES
from timing.core.conventions import CENSORED as NONE
from timing.core.conventions import LOST, MONTH_DAYS, SIGNED
from timing.core.progress import Progress, as_progress
from timing.features.open_contracts import features_at, measure_usage, pairs_sql
from timing.models.data import Landmarks, renumbered
from timing.store.asof import create_views
from timing.store.outcomes import derive_outcomes


def monthly_origins(fit_as_of: date, lookback_months: int, every_months: int = 1) -> list[date]:
    """Origins a whole number of calendar months before ``fit_as_of``, oldest first (the fit date
    excluded). The day of the month follows the fit date's, clipped to the month's length: from 31
    October they are month ends, but from 30 April six months back is 30 October."""
    end = pd.Timestamp(fit_as_of)
    stamps = [end - pd.DateOffset(months=m) for m in range(every_months, lookback_months + 1, every_months)]
    return sorted(s.date() for s in stamps)


def label(features: pd.DataFrame, outcomes: pd.DataFrame, fit_as_of: date, horizon: int) -> Landmarks:
    """Attach outcome labels (known on ``fit_as_of``) to features taken at their ``as_of``.

    ``outcomes`` is the outcomes table at ``fit_as_of`` with the contracts'
    ``actual_end_date`` as known then.
    """
    out = outcomes.set_index("contract_id").reindex(features["contract_id"])
    kind = out["outcome"].to_numpy()
    when = pd.to_datetime(out["outcome_date"]).to_numpy()
    actual_end = pd.to_datetime(out["actual_end_date"]).to_numpy()
    origin = pd.to_datetime(features["as_of"]).to_numpy()
    day = np.timedelta64(1, "D")
    grace = np.timedelta64(SUCCESSOR_GRACE_DAYS, "D")

    def days_after(t: np.ndarray) -> np.ndarray:
        return (t - origin) / day

    observed_day = days_after(np.full(len(origin), np.datetime64(pd.Timestamp(fit_as_of))))
    signed = kind == "repurchased"
    lost = kind == "lost"
    # lost: dated at its end when that lies after the origin, else when its 180 days expire
    lost_at = np.where(when > origin, when, when + grace)
    event_day = np.where(signed, days_after(when), np.where(lost, days_after(lost_at), np.nan))
    event_type = np.where(signed, SIGNED, np.where(lost, LOST, NONE)).astype(np.int8)
    # ended after the origin, no successor yet, 180 days not over: its fate after the end is unknown
    with np.errstate(invalid="ignore"):
        pending = (kind == "open") & ~np.isnat(actual_end) & (actual_end > origin)
    observed_day = np.where(pending, days_after(actual_end), observed_day)
    event_month = np.ceil(event_day / MONTH_DAYS)
    observed = np.minimum(np.floor(observed_day / MONTH_DAYS), horizon)
    late = ~(event_month <= observed) | (event_day <= 0)
    event_type[late] = NONE
    event_month = np.where(late, 0, event_month)
    event_day[late] = np.nan
    observed_day = np.minimum(observed_day, horizon * MONTH_DAYS)
    return Landmarks(renumbered(features), event_month.astype(np.int16), event_type,
                     observed.astype(np.int16), event_day, observed_day)


def outcomes_with_ends(con: duckdb.DuckDBPyConnection, schema: str) -> pd.DataFrame:
    """The outcomes table of a view schema, with each contract's actual end as known there."""
    return con.execute(
        f"SELECT o.*, c.actual_end_date FROM {schema}.outcomes o JOIN {schema}.contracts c USING (contract_id)"
    ).df()


def origin_features(
    con: duckdb.DuckDBPyConnection,
    source: str,
    origins: list[date],
    max_contracts_per_origin: int | None = None,
    seed: int = 0,
    progress: Progress | Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Features of the contracts open at each origin, from as-of views over ``source``.

    ``source`` holds the tables as of some date T >= every origin (the views of
    a snapshot); the origin views are built on top of it, so nothing after an
    origin can reach its features, and nothing after T can reach anything.

    In three passes: the views and (sampled) open contracts at every origin, two
    origins at a time; the readings of all (contract, origin) pairs measured at
    once (:func:`timing.features.open_contracts.measure_usage`, each pair's windows ending with
    its origin's day); then each origin's feature statement over those measures.
    """
    say = as_progress(progress)
    if len(origins) == 1:
        return _features_at_origin(con, source, origins[0], max_contracts_per_origin, seed)
    held = _hold(con, source)
    base = held or source
    threads = runtime.threads()
    workers = max(1, min(ORIGIN_WORKERS, threads)) if held else 1
    run = f"_origins_{abs(hash((source, id(con)))) % 10**9}"
    schemas = {o: f"{run}_{o.strftime('%Y%m%d')}" for o in origins}

    def on_cursor(fn: Callable[[duckdb.DuckDBPyConnection, date], pd.DataFrame]) -> Callable[[date], pd.DataFrame]:
        def call(origin: date) -> pd.DataFrame:  # on its own connection to the same (in-memory) database
            cur = con.cursor() if held else con
            try:
                return fn(cur, origin)
            finally:
                if held:
                    cur.close()
        return call

    def open_at(cur: duckdb.DuckDBPyConnection, origin: date) -> pd.DataFrame:
        restrict = _origin_views(cur, base, origin, schemas[origin], max_contracts_per_origin, seed)
        return cur.execute(pairs_sql(schemas[origin], origin, restrict)).df()

    def features_of(cur: duckdb.DuckDBPyConnection, origin: date) -> pd.DataFrame:
        restrict = f"{schemas[origin]}._sample" if max_contracts_per_origin else None
        return features_at(cur, schemas[origin], origin, restrict, usage=f"{run}.usage")

    frames = []
    con.execute(f"CREATE SCHEMA {run}")
    try:
        # two origins at a time where DuckDB may use two threads: one origin's statements keep 1.6 of
        # 2 cores busy (the view and outcome set-up run on one)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            with say.task("open contracts at training origins", total=len(origins)) as t:
                parts = []
                for part in pool.map(on_cursor(open_at), origins):
                    parts.append(part)
                    t.advance()
            pairs = pd.concat(parts, ignore_index=True)
            with say.task(f"readings of {len(pairs):,} contracts at {len(origins)} training origins"):
                # every origin's readings in one pass (the usage definition of timing.features.open_contracts)
                usage = measure_usage(con, f"{base}.readings", pairs)
                con.register(f"{run}_frame", usage)
                con.execute(f"CREATE TABLE {run}.usage AS SELECT * FROM {run}_frame")
                con.unregister(f"{run}_frame")
            with say.task("features at training origins", total=len(origins)) as t:
                for frame in pool.map(on_cursor(features_of), origins):  # in the origins' order
                    frames.append(frame)
                    t.advance()
    finally:
        for schema in [*schemas.values(), run, *([held] if held else [])]:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return pd.concat(frames, ignore_index=True)


#: Training origins whose features are computed at once (each on its own connection).
ORIGIN_WORKERS = 2


#: Tables left where they are (a view in the held schema): the readings are read once, in one
#: pass over every origin, so copying them into memory would cost gigabytes for nothing.
NOT_HELD = ("readings",)


def _hold(con: duckdb.DuckDBPyConnection, source: str) -> str | None:
    """Copy the tables of ``source`` (as-of views, evaluated once) into an in-memory schema, so the
    views at each origin filter plain tables instead of re-evaluating the views beneath them; the
    ``NOT_HELD`` tables are only views onto ``source``. Returns the schema, or None where the
    connection's own database is not in memory."""
    in_memory = con.execute(
        "SELECT path IS NULL FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if not in_memory or not in_memory[0]:
        return None
    schema = f"_held_{abs(hash((source, id(con)))) % 10**9}"
    con.execute(f"CREATE SCHEMA {schema}")
    for t in TABLES:
        kind = "VIEW" if t.name in NOT_HELD else "TABLE"
        con.execute(f"CREATE {kind} {schema}.{t.name} AS SELECT * FROM {source}.{t.name}")
    return schema


def _origin_views(con: duckdb.DuckDBPyConnection, source: str, origin: date, schema: str,
                  max_contracts_per_origin: int | None, seed: int) -> str | None:
    """The as-of views at ``origin`` in ``schema`` and, when sampling, the sampled open contracts
    (``schema._sample``, a deterministic sample: the first open contracts in the order of a hash of
    contract, origin and seed); returns the relation restricting the contracts, or None.

    When sampling, ``schema.outcomes`` holds the outcomes of the sampled contracts' customers only,
    which is all the features read: a contract's outcome depends on its own customer's contracts and
    on the contracts naming it as their predecessor (:func:`timing.store.outcomes.derive_outcomes`),
    so deriving them for those customers' contracts and the contracts naming one of them gives the
    same outcomes as deriving them for the whole portfolio, at a fraction of the cost. Candidates are
    taken in hash order, enough of them to find the sample's open contracts among them."""
    if not max_contracts_per_origin:
        create_views(con, source, origin, schema)
        return None
    create_views(con, source, origin, schema, outcomes=False)
    need = int(max_contracts_per_origin)
    t = f"DATE '{origin.isoformat()}'"
    # every contract that may be open on the origin (not lost by then), in sampling order
    con.execute(
        f"""CREATE TABLE {schema}._candidates AS
        SELECT row_number() OVER (ORDER BY hash(contract_id || '{origin}' || '{seed}'), contract_id) AS rank,
               contract_id, customer_id
        FROM {schema}.contracts
        WHERE actual_end_date IS NULL OR actual_end_date + INTERVAL {SUCCESSOR_GRACE_DAYS} DAY > {t}"""
    )
    total = _count(con, f"SELECT count(*) FROM {schema}._candidates")
    take = min(total, 2 * need)
    while True:
        _outcomes_of_first(con, schema, origin, take)
        found = _count(con, f"""SELECT count(*) FROM {schema}._candidates c JOIN {schema}.outcomes o
            USING (contract_id) WHERE c.rank <= {take} AND o.outcome = 'open'""")
        if found >= need or take >= total:
            break
        take = min(total, 2 * take)
    con.execute(
        f"""CREATE TABLE {schema}._sample AS
        SELECT c.contract_id FROM {schema}._candidates c JOIN {schema}.outcomes o USING (contract_id)
        WHERE c.rank <= {take} AND o.outcome = 'open'
        ORDER BY c.rank LIMIT {need}"""
    )
    return f"{schema}._sample"


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _outcomes_of_first(con: duckdb.DuckDBPyConnection, schema: str, origin: date, take: int) -> None:
    """``schema.outcomes``: the outcomes of every contract of the customers of the first ``take``
    candidates (exact, see :func:`_origin_views`)."""
    s = schema
    con.execute(
        f"""CREATE OR REPLACE TABLE {s}._customers AS
        SELECT DISTINCT customer_id FROM {s}._candidates WHERE rank <= {take}"""
    )
    relevant = f"""(SELECT * FROM {s}.contracts
        WHERE customer_id IN (SELECT customer_id FROM {s}._customers)
           OR predecessor_contract_id IN (SELECT contract_id FROM {s}.contracts
                                          WHERE customer_id IN (SELECT customer_id FROM {s}._customers)))"""
    derive_outcomes(con, relevant, origin, f"{s}._outcomes_all")
    con.execute(
        f"""CREATE OR REPLACE TABLE {s}.outcomes AS SELECT * FROM {s}._outcomes_all
        WHERE customer_id IN (SELECT customer_id FROM {s}._customers) ORDER BY contract_id"""
    )


def _features_at_origin(con: duckdb.DuckDBPyConnection, source: str, origin: date,
                        max_contracts_per_origin: int | None, seed: int) -> pd.DataFrame:
    """One origin's features, on their own (the usage measured for this origin alone)."""
    schema = f"origin_{origin.strftime('%Y%m%d')}"
    try:
        restrict = _origin_views(con, source, origin, schema, max_contracts_per_origin, seed)
        return features_at(con, schema, origin, restrict)
    finally:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def landmarks(features: pd.DataFrame, outcomes: pd.DataFrame, fit_as_of: date, horizon: int) -> Landmarks:
    """Labelled training rows, keeping those observed for at least one whole month."""
    lm = label(features, outcomes, fit_as_of, horizon)
    return lm.subset(lm.observed_months > 0)
