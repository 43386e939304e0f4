"""As-of features: one row per contract open on a date T, from what an export on T held.

The same function serves training (at many past origins) and scoring (at the
as-of date), so a feature can never mean one thing in training and another
in production. Everything is set-based SQL over the as-of views of
:mod:`timing.store.asof`, except the readings (the large table), which are fetched
sorted once and measured by vectorised numpy (:func:`timing.features.usage.measure_readings`)
for one date or, in training, for every origin at once.

Notes
-----
*Open on T* means no successor signed by T and not lost by T (a contract that
ended less than 180 days before T without successor is still open). Day
counts are calendar days; ``days_to_end`` is negative once the scheduled end
has passed. Usage is measured on readings taken during the contract in the
``USAGE_WINDOW_DAYS`` before T; cars without telematics fall back to their
allowance scaled by the portfolio's median usage ratio on T (flagged by
``has_telematics = 0``). The customer's habit is the offset, in days, between
a past contract's scheduled end and its successor's signing (negative: signed
early): the median over their past repurchases known on T, with its
standard deviation. Repurchases signed within ``HABIT_FAULT_DAYS`` after a
critical fault of the car are left out (a breakdown, not a habit, set their
date) unless nothing else is known. ``signed_months_mask`` has bit m-1 set
when the customer signed an earlier successor in calendar month m (model
launch seasons pull some customers' signings).
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd

from timing.features.usage import empty_usage, measure_readings, project_usage

USAGE_WINDOW_DAYS = 365  # also the window of the battery health's slope
MIN_USAGE_SPAN_DAYS = 21
#: A repurchase signed this soon after a critical fault says little about the customer's habit.
HABIT_FAULT_DAYS = 90

#: Columns that identify a contract rather than describe it (never model inputs).
ID_COLUMNS = (
    "contract_id",
    "customer_id",
    "vehicle_id",
    "branch_id",
    "region",
    "as_of",
    "scheduled_end_date",
    "start_date",
    "brand",
    "model",
)


def features_at(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    as_of: date,
    contracts: str | None = None,
    usage: str | None = None,
) -> pd.DataFrame:
    """Features of every contract open on ``as_of``.

    Parameters
    ----------
    con, schema
        A connection whose ``schema`` holds the as-of views at ``as_of``
        (:func:`timing.store.asof.create_views`).
    as_of
        The date T.
    contracts
        Optional SQL relation with a ``contract_id`` column restricting the
        contracts (used to subsample training origins).
    usage
        Optional relation of :func:`timing.features.usage.measure_readings` covering the
        contracts on ``as_of`` (training measures all its origins at once);
        measured here otherwise.

    Returns
    -------
    DataFrame sorted by ``contract_id``; see the module notes for meanings.
    """
    if usage is None:  # measured here, for the open contracts on T
        pairs = con.execute(pairs_sql(schema, as_of, contracts)).df()
        name = f"_usage_{abs(hash((schema, as_of, contracts))) % 10**9}"
        con.register(name, measure_usage(con, f"{schema}.readings", pairs))
        try:
            frame = con.execute(features_sql(schema, as_of, name, contracts)).df()
        finally:
            con.unregister(name)
    else:
        frame = con.execute(features_sql(schema, as_of, usage, contracts)).df()
    return project_usage(frame, min_span_days=MIN_USAGE_SPAN_DAYS)


def features_sql(schema: str, as_of: date, usage: str, contracts: str | None = None) -> str:
    """The SQL (DuckDB dialect) behind :func:`features_at`, before the usage projection.

    Both engines run this one statement: DuckDB as it stands, Spark after
    :func:`timing.engines.dialect.to_spark` translates it. ``schema`` qualifies the as-of
    views (``view_at.contracts``); ``usage`` names the relation of
    :func:`timing.features.usage.measure_readings` for (at least) the open contracts on ``as_of``
    (:func:`measure_usage`); ``contracts`` is as in :func:`features_at`.
    """
    s = schema
    t = f"DATE '{as_of.isoformat()}'"
    end_of_t = f"(DATE '{as_of.isoformat()}' + INTERVAL 1 DAY)"
    sql = f"""
    WITH open AS ({open_sql(s, contracts)}),
    fleet AS (  -- over every open contract of the customer, sampled or not
        SELECT c.customer_id, count(*) AS fleet_size
        FROM {s}.contracts c JOIN {s}.outcomes o USING (contract_id)
        WHERE o.outcome = 'open' AND c.customer_id IN (SELECT customer_id FROM open)
        GROUP BY c.customer_id
    ),
    usage AS (  -- the open contracts' readings on T (measure_usage), one row each
        SELECT * FROM {usage} WHERE as_of = {t}
    ),
    faults AS (
        SELECT o.contract_id,
               count(*) FILTER (WHERE f.severity = 'critical' AND f.recorded_at >= {t} - INTERVAL 90 DAY) AS critical_90d,
               count(*) FILTER (WHERE f.severity = 'critical' AND f.recorded_at >= {t} - INTERVAL 365 DAY) AS critical_365d,
               count(*) FILTER (WHERE f.severity = 'warning' AND f.recorded_at >= {t} - INTERVAL 90 DAY) AS warning_90d,
               count(*) FILTER (WHERE f.severity = 'info' AND f.recorded_at >= {t} - INTERVAL 90 DAY) AS info_90d,
               datediff('day', max(f.recorded_at) FILTER (WHERE f.severity = 'critical'), {t}) AS days_since_critical,
               max(f.recorded_at) FILTER (WHERE f.severity = 'critical') AS last_critical_at
        FROM open o JOIN {s}.fault_codes f ON f.vehicle_id = o.vehicle_id
        WHERE f.recorded_at >= o.start_date AND f.recorded_at < {end_of_t}
        GROUP BY o.contract_id
    ),
    visits AS (
        SELECT o.contract_id,
               count(*) FILTER (WHERE sv.visit_type = 'repair' AND sv.visit_date > {t} - INTERVAL 365 DAY) AS repairs_365d,
               count(*) FILTER (WHERE sv.visit_type IN ('warranty', 'recall') AND sv.visit_date > {t} - INTERVAL 365 DAY) AS warranty_365d,
               datediff('day', max(sv.visit_date) FILTER (WHERE sv.visit_type = 'repair'), {t}) AS days_since_repair,
               coalesce(sum(sv.cost) FILTER (WHERE sv.visit_date > {t} - INTERVAL 365 DAY), 0) AS visit_cost_365d
        FROM open o JOIN {s}.service_visits sv ON sv.vehicle_id = o.vehicle_id
        WHERE sv.visit_date >= o.start_date AND sv.visit_date <= {t}
        GROUP BY o.contract_id
    ),
    open_customers AS (  -- the customer-level history below is needed for these customers only
        SELECT DISTINCT customer_id FROM open
    ),
    after_fault AS (  -- past repurchases signed within 90 days after a critical fault of their car
        SELECT DISTINCT k.contract_id
        FROM {s}.contracts k JOIN {s}.outcomes o USING (contract_id)
        JOIN {s}.fault_codes f ON f.vehicle_id = k.vehicle_id
        WHERE o.outcome = 'repurchased' AND f.severity = 'critical'
          AND k.customer_id IN (SELECT customer_id FROM open_customers)
          AND f.recorded_at >= o.outcome_date - INTERVAL {HABIT_FAULT_DAYS} DAY
          AND f.recorded_at < o.outcome_date + INTERVAL 1 DAY
    ),
    past_all AS (
        SELECT k.customer_id, k.contract_id, o.outcome, o.outcome_date,
               datediff('day', k.scheduled_end_date, o.outcome_date) AS offset_days,
               o.outcome = 'repurchased' AND af.contract_id IS NULL AS habitual
        FROM {s}.contracts k JOIN {s}.outcomes o USING (contract_id)
        LEFT JOIN after_fault af USING (contract_id)
        WHERE o.outcome <> 'open' AND k.customer_id IN (SELECT customer_id FROM open_customers)
    ),
    past AS (  -- the customer's own history, as known on T
        SELECT customer_id,
               count(*) AS n_past_contracts,
               count(*) FILTER (WHERE outcome = 'repurchased') AS n_renewals,
               count(*) FILTER (WHERE outcome = 'lost') AS n_lost,
               coalesce(median(offset_days) FILTER (WHERE habitual),
                        median(offset_days) FILTER (WHERE outcome = 'repurchased')) AS habit_offset_days,
               CASE WHEN count(*) FILTER (WHERE habitual) > 0
                    THEN stddev_samp(offset_days) FILTER (WHERE habitual)
                    ELSE stddev_samp(offset_days) FILTER (WHERE outcome = 'repurchased') END AS habit_offset_sd,
               -- the latest signing; a fleet renewed in one deal signs several on one day: the contract id decides
               arg_max(offset_days, CAST(outcome_date AS VARCHAR) || contract_id)
                   FILTER (WHERE outcome = 'repurchased') AS last_offset_days,
               coalesce(sum(DISTINCT CAST(power(2, month(outcome_date) - 1) AS BIGINT))
                   FILTER (WHERE outcome = 'repurchased'), 0) AS signed_months_mask
        FROM past_all
        GROUP BY customer_id
    ),
    outreach AS (
        SELECT customer_id,
               datediff('day', max(contacted_at), {t}) AS days_since_contact,
               arg_max(outcome, contacted_at) AS last_contact_outcome,
               count(*) FILTER (WHERE contacted_at >= {t} - INTERVAL 365 DAY) AS contacts_365d,
               count(*) FILTER (WHERE contacted_at >= {t} - INTERVAL 180 DAY
                                AND outcome IN ('interested', 'appointment')) AS interested_180d,
               datediff('day', max(contacted_at) FILTER (WHERE outcome IN ('interested', 'appointment')), {t})
                   AS days_since_interest,
               datediff('day', max(contacted_at) FILTER (WHERE outcome = 'declined'), {t}) AS days_since_decline
        FROM {s}.contacts
        WHERE customer_id IN (SELECT customer_id FROM open_customers)
        GROUP BY customer_id
    )
    SELECT o.contract_id, o.customer_id, o.vehicle_id, o.branch_id, o.region,
           {t} AS as_of, o.scheduled_end_date, o.start_date, o.brand, o.model,
           o.customer_type, o.product, o.powertrain,
           o.annual_km_allowance::DOUBLE AS annual_km_allowance,
           o.monthly_payment, o.list_price,
           {as_of.year} - o.model_year AS vehicle_age_years,
           datediff('day', {t}, o.scheduled_end_date) AS days_to_end,
           datediff('day', o.start_date, o.scheduled_end_date) AS term_days,
           datediff('day', o.start_date, {t}) AS days_since_start,
           CASE WHEN o.actual_end_date IS NOT NULL THEN datediff('day', o.actual_end_date, {t}) END
               AS days_since_actual_end,
           f.fleet_size,
           coalesce(u.n_readings, 0) AS n_readings,
           datediff('day', u.last_reading_at, {t}) AS days_since_reading,
           u.odometer_last, u.odometer_first,
           datediff('day', o.start_date, u.first_reading_at) AS first_reading_day,
           CASE WHEN u.span_recent >= {MIN_USAGE_SPAN_DAYS} THEN u.n_recent ELSE u.n_all END AS fit_n,
           CASE WHEN u.span_recent >= {MIN_USAGE_SPAN_DAYS} THEN u.sxx_recent ELSE u.sxx_all END AS fit_sxx,
           CASE WHEN u.span_recent >= {MIN_USAGE_SPAN_DAYS} THEN u.sxy_recent ELSE u.sxy_all END AS fit_sxy,
           CASE WHEN u.span_recent >= {MIN_USAGE_SPAN_DAYS} THEN u.syy_recent ELSE u.syy_all END AS fit_syy,
           greatest(coalesce(u.span_recent, 0), coalesce(u.span_all, 0)) AS usage_span_days,
           u.battery_soh, u.battery_slope_per_year,
           coalesce(fa.critical_90d, 0) AS critical_90d,
           coalesce(fa.critical_365d, 0) AS critical_365d,
           coalesce(fa.warning_90d, 0) AS warning_90d,
           coalesce(fa.info_90d, 0) AS info_90d,
           fa.days_since_critical, CAST(fa.last_critical_at AS DATE) AS last_critical_date,
           coalesce(vi.repairs_365d, 0) AS repairs_365d,
           coalesce(vi.warranty_365d, 0) AS warranty_365d,
           vi.days_since_repair,
           coalesce(vi.visit_cost_365d, 0) AS visit_cost_365d,
           coalesce(p.n_past_contracts, 0) AS n_past_contracts,
           coalesce(p.n_renewals, 0) AS n_renewals,
           coalesce(p.n_lost, 0) AS n_lost,
           p.habit_offset_days, p.habit_offset_sd, p.last_offset_days,
           coalesce(p.signed_months_mask, 0) AS signed_months_mask,
           ot.days_since_contact, ot.last_contact_outcome,
           coalesce(ot.contacts_365d, 0) AS contacts_365d,
           coalesce(ot.interested_180d, 0) AS interested_180d,
           ot.days_since_interest, ot.days_since_decline
    FROM open o
    JOIN fleet f USING (customer_id)
    LEFT JOIN usage u USING (contract_id)
    LEFT JOIN faults fa USING (contract_id)
    LEFT JOIN visits vi USING (contract_id)
    LEFT JOIN past p USING (customer_id)
    LEFT JOIN outreach ot USING (customer_id)
    ORDER BY o.contract_id
    """
    return sql


def open_sql(schema: str, contracts: str | None = None) -> str:
    """The contracts open in the as-of views of ``schema``, with their customer and vehicle."""
    s = schema
    restrict = f"AND c.contract_id IN (SELECT contract_id FROM {contracts})" if contracts else ""
    return f"""
        SELECT c.*, cu.customer_type, cu.branch_id, cu.region,
               v.brand, v.model, v.model_year, v.powertrain, v.list_price
        FROM {s}.contracts c
        JOIN (SELECT contract_id, outcome FROM {s}.outcomes) o USING (contract_id)
        JOIN {s}.customers cu ON cu.customer_id = c.customer_id
        LEFT JOIN {s}.vehicles v ON v.vehicle_id = c.vehicle_id
        WHERE o.outcome = 'open' {restrict}"""


def pairs_sql(schema: str, as_of: date, contracts: str | None = None) -> str:
    """The (contract, date) pairs whose readings :func:`features_sql` reads: the open contracts on T."""
    return (f"SELECT contract_id, vehicle_id, start_date, DATE '{as_of.isoformat()}' AS as_of "
            f"FROM ({open_sql(schema, contracts)}) ORDER BY contract_id")


#: Vehicles whose readings are fetched and measured at once (about 2M readings rows at one reading
#: every 4 days): bounds the memory of a large portfolio's measurement.
USAGE_CHUNK_VEHICLES = 20_000


def measure_usage(con: duckdb.DuckDBPyConnection, readings: str, pairs: pd.DataFrame,
                  chunk_vehicles: int = USAGE_CHUNK_VEHICLES) -> pd.DataFrame:
    """:func:`timing.features.usage.measure_readings` for ``pairs`` (in their order), over the readings
    relation ``readings``.

    DuckDB fetches the readings of the pairs' vehicles between the earliest start and the end of
    the latest date, already in vehicle and time order, ``chunk_vehicles`` vehicles at a time.
    """
    pairs = pairs.reset_index(drop=True)
    # the vehicles sorted, and each pair's vehicle's place among them
    code, vehicles = pd.factorize(pairs["vehicle_id"].to_numpy(), sort=True)
    vehicles = np.asarray(vehicles)
    chunk_of = code // chunk_vehicles

    def measure(k: int, mine: pd.DataFrame) -> pd.DataFrame:
        chunk = vehicles[k * chunk_vehicles:(k + 1) * chunk_vehicles]
        lo = pd.Timestamp(pd.to_datetime(mine["start_date"]).min())
        hi = pd.Timestamp(pd.to_datetime(mine["as_of"]).max()) + pd.Timedelta(days=1)
        con.register("_usage_vehicles", pd.DataFrame({"vehicle_id": chunk, "code": np.arange(len(chunk))}))
        try:
            found = con.execute(
                f"""SELECT u.code AS vehicle_id, rd.recorded_at, rd.odometer_km, rd.battery_soh_pct
                FROM {readings} rd JOIN _usage_vehicles u ON u.vehicle_id = rd.vehicle_id
                WHERE rd.recorded_at >= TIMESTAMP '{lo}' AND rd.recorded_at < TIMESTAMP '{hi}'
                ORDER BY u.code, rd.recorded_at, rd.odometer_km, rd.battery_soh_pct"""
            ).fetchnumpy()
        finally:
            con.unregister("_usage_vehicles")
        coded = mine.assign(vehicle_id=code[mine.index] - k * chunk_vehicles)  # the chunk's own codes
        return measure_readings(found, coded, USAGE_WINDOW_DAYS).set_axis(mine.index)

    parts = [measure(k, mine) for k, mine in pairs.groupby(chunk_of, sort=True)]
    if not parts:
        return empty_usage()
    return pd.concat(parts).reindex(pairs.index).reset_index(drop=True)

