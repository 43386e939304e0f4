"""The usage layer: each car's odometer trajectory, projected to the allowance and the end.

A straight line per car, fitted by least squares on its recent readings, is
what the data supports: odometers grow almost linearly, readings have gaps,
and a million cars need one vectorised pass, not a million model fits. The
sufficient statistics (n, Sxx, Sxy, Syy) come from one SQL aggregation in
:mod:`timing.features.open_contracts`; the slope, its standard error and the projections are
computed here on whole columns. ``tests/test_usage.py`` checks slope and
standard error against statsmodels OLS car by car.

Notes
-----
Cars without telematics, or with readings spanning less than
``min_span_days``, take their contract allowance scaled by the portfolio's
median usage ratio on the same date (``has_telematics = 0``); their band is
that of the spread of usage ratios. Bands are 80% (z = 1.2816) on the rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Z80 = 1.2816


def slope_and_se(n: pd.Series, sxx: pd.Series, sxy: pd.Series, syy: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Least-squares slope and its standard error from sufficient statistics."""
    n = n.astype(float)
    slope = sxy / sxx.where(sxx > 0)
    ssr = (syy - slope * sxy).clip(lower=0)
    se = np.sqrt(ssr / (n - 2).where(n > 2) / sxx.where(sxx > 0))
    return slope, se


def project_usage(df: pd.DataFrame, min_span_days: int = 21) -> pd.DataFrame:
    """Add usage rate, kilometres driven and allowance projections to a feature frame.

    Expects the columns produced by :func:`timing.features.open_contracts.features_at`:
    ``fit_n, fit_sxx, fit_sxy, fit_syy, usage_span_days, odometer_last,
    odometer_first, first_reading_day, days_since_reading, annual_km_allowance,
    term_days, days_since_start, days_to_end``.
    """
    slope, se = slope_and_se(df["fit_n"], df["fit_sxx"], df["fit_sxy"], df["fit_syy"])
    ok = (df["usage_span_days"] >= min_span_days) & slope.notna() & (slope >= 0)
    allowance_per_day = df["annual_km_allowance"] / 365.25
    measured = slope.where(ok)
    ratio = measured / allowance_per_day
    typical = float(np.nanmedian(ratio)) if ratio.notna().any() else 1.0
    spread = float(np.nanstd(ratio)) if ratio.notna().sum() > 1 else 0.25
    df["has_telematics"] = ok.astype(int)
    df["km_per_day"] = measured.fillna(allowance_per_day * typical)
    df["km_per_day_se"] = se.where(ok).fillna(allowance_per_day * spread).fillna(0)
    df["usage_ratio"] = df["km_per_day"] / allowance_per_day
    # the odometer at the start: the first reading of the contract, rolled back at the rate
    start_odo = (df["odometer_first"] - df["km_per_day"] * df["first_reading_day"].clip(lower=0)).clip(lower=0)
    driven = (df["odometer_last"] - start_odo).clip(lower=0)
    driven = driven + df["km_per_day"] * df["days_since_reading"].fillna(0).clip(lower=0)
    fallback = df["km_per_day"] * df["days_since_start"].clip(lower=0)
    df["km_driven"] = driven.where(ok, fallback)
    df["allowance_total_km"] = df["annual_km_allowance"] * df["term_days"] / 365.25
    remaining = df["allowance_total_km"] - df["km_driven"]
    rate = df["km_per_day"].where(df["km_per_day"] > 0)
    # at a rate of ~0 an allowance ahead is never reached, one already passed was passed long ago
    never = pd.Series(np.where(remaining < 0, -np.inf, np.inf), index=df.index)
    df["days_to_allowance"] = (remaining / rate).fillna(never)
    # 80% band: a faster rate reaches the allowance sooner, or (once it is exceeded) had passed it
    # more recently; so the band's ends swap sides when ``remaining`` is negative
    fast = (df["km_per_day"] + Z80 * df["km_per_day_se"]).where(lambda x: x > 0)
    slow = (df["km_per_day"] - Z80 * df["km_per_day_se"]).where(lambda x: x > 0)
    at_fast, at_slow = (remaining / fast).fillna(never), (remaining / slow).fillna(never)
    df["days_to_allowance_low"] = np.minimum(at_fast, at_slow)
    df["days_to_allowance_high"] = np.maximum(at_fast, at_slow)
    df["projected_km_at_end"] = df["km_driven"] + df["km_per_day"] * df["days_to_end"].clip(lower=0)
    df["projected_overage_km"] = df["projected_km_at_end"] - df["allowance_total_km"]
    return df.drop(columns=["fit_n", "fit_sxx", "fit_sxy", "fit_syy", "odometer_first", "first_reading_day"])


# ---------------------------------------------------------------------------
# measuring readings: one pass for any number of (contract, date) pairs

#: Columns of :func:`measure_readings` besides ``contract_id, as_of``, with their dtypes; the
#: feature statement (:func:`timing.features.open_contracts.features_sql`) reads them as the relation ``usage``.
READING_COLUMNS: dict[str, str] = {  # after ``contract_id`` and ``as_of`` (a timestamp at midnight)
    "n_readings": "Int64", "last_reading_at": "datetime64[us]", "odometer_last": "float64",
    "odometer_first": "float64", "first_reading_at": "datetime64[us]", "n_recent": "Int64",
    "sxx_recent": "float64", "sxy_recent": "float64", "syy_recent": "float64", "span_recent": "float64",
    "n_all": "Int64", "sxx_all": "float64", "sxy_all": "float64", "syy_all": "float64", "span_all": "float64",
    "battery_soh": "float64", "battery_slope_per_year": "float64",
}

_SPAN = np.int64(2**34)  # seconds in a vehicle's slot of the search key (544 years)
_DAY_US = 86_400 * 1_000_000


def _micros(values: object) -> np.ndarray:
    """Timestamps or dates (naive, UTC) as integer microseconds since the epoch."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return np.ma.getdata(values).astype("datetime64[us]").astype(np.int64)
    t = pd.to_datetime(values if isinstance(values, pd.Series) else pd.Series(np.ma.getdata(np.asarray(values))))
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.to_numpy("datetime64[us]").astype(np.int64)


def _floats(values: object) -> np.ndarray:
    """A column as floats, NaN where empty (pandas, numpy or DuckDB's masked numpy columns)."""
    if isinstance(values, pd.Series):
        return values.to_numpy(float, na_value=np.nan)
    if np.ma.isMaskedArray(values):
        return np.ma.filled(values.astype(float), np.nan)
    return np.asarray(values, dtype=float)


def _codes(vehicles: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in the sorted ``vehicles`` (-1: not there); by arithmetic or binary
    search for integer codes."""
    ids = np.ma.getdata(ids)
    if len(vehicles) and np.issubdtype(vehicles.dtype, np.integer) and np.issubdtype(ids.dtype, np.integer):
        known = vehicles.to_numpy()
        if known[0] == 0 and known[-1] == len(known) - 1:  # the codes 0..V-1 themselves
            return np.where((ids >= 0) & (ids < len(known)), ids, -1).astype(np.int64)
        at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return np.where(known[at] == ids, at, -1).astype(np.int64)
    return vehicles.get_indexer(ids).astype(np.int64)


def empty_usage() -> pd.DataFrame:
    """:func:`measure_readings`' frame for no pair, typed as any other."""
    none = pd.DataFrame({"vehicle_id": pd.Series(dtype="int64"), "recorded_at": pd.Series(dtype="datetime64[us]"),
                         "odometer_km": pd.Series(dtype=float), "battery_soh_pct": pd.Series(dtype=float)})
    pairs = pd.DataFrame({"contract_id": pd.Series(dtype=str), "vehicle_id": pd.Series(dtype="int64"),
                          "start_date": pd.Series(dtype="datetime64[us]"), "as_of": pd.Series(dtype="datetime64[us]")})
    return measure_readings(none, pairs, 365)


def measure_readings(readings: pd.DataFrame | dict, pairs: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """What each contract's readings said on a date: counts, odometer line sums, battery health.

    Parameters
    ----------
    readings
        ``vehicle_id, recorded_at, odometer_km, battery_soh_pct`` (a frame, or columns as arrays),
        in any order, holding at least the readings of the pairs' vehicles before their dates
        (others are ignored).
    pairs
        ``contract_id, vehicle_id, start_date, as_of``: one row per contract and date T.
    window_days
        The recent window: readings from ``T - window_days`` on.

    Returns
    -------
    One row per pair (in the pairs' order): ``contract_id, as_of`` and :data:`READING_COLUMNS`.
    For pair (contract, T) the readings counted are its vehicle's from the contract's start to
    the end of day T; ``*_recent`` ones are those of the recent window among them. ``n_*`` are
    ``regr_count``, ``sxx/sxy/syy`` SQL's ``regr_sxx/sxy/syy`` of odometer on day; spans are in
    days; the battery slope is ``regr_slope`` of health on day over recent readings, per year.
    Empty (NULL) where a pair has no reading, as SQL's aggregates over no rows.

    Notes
    -----
    The readings are sorted by vehicle and time once; each pair's windows are then index ranges,
    found by binary search, and their sums are added up over the readings in them by one
    ``np.add.reduceat`` per statistic (directly, as SQL's aggregates do: nothing is taken from a
    difference of running totals). Days and odometers are centred on the vehicle's first reading
    so the sums of squares stay small. Training measures 720,000 (contract, origin) pairs in one
    call instead of joining the readings once per origin; both engines call this function (Spark
    through a pandas UDF), so the definition is one.
    """
    start, as_of = _micros(pairs["start_date"]), _micros(pairs["as_of"])
    out = pd.DataFrame({"contract_id": np.asarray(pairs["contract_id"]), "as_of": as_of.astype("datetime64[us]")})
    vehicles = pd.Index(np.sort(pd.unique(np.asarray(pairs["vehicle_id"]))))  # the readings' order
    v = _codes(vehicles, np.asarray(readings["vehicle_id"]) if isinstance(readings, pd.DataFrame)
               else readings["vehicle_id"])
    ts, y, b = _micros(readings["recorded_at"]), _floats(readings["odometer_km"]), _floats(readings["battery_soh_pct"])
    keep = v >= 0
    if not keep.all():
        v, ts, y, b = v[keep], ts[keep], y[keep], b[keep]
    if len(v) and (np.any(np.diff(v) < 0) or np.any((np.diff(v) == 0) & (np.diff(ts) < 0))):
        order = np.lexsort((b, y, ts, v))  # vehicle, time, then values for a deterministic tie order
        v, ts, y, b = v[order], ts[order], y[order], b[order]
    n = len(v)
    seg = np.flatnonzero(np.r_[True, v[1:] != v[:-1]]) if n else np.zeros(0, np.int64)
    seg_len = np.diff(np.r_[seg, n])
    vy, vb = ~np.isnan(y), ~np.isnan(b)
    with np.errstate(invalid="ignore"):
        x = (ts - ts[seg].repeat(seg_len)) / _DAY_US if n else np.zeros(0)  # days since the vehicle's first
        yc = np.where(vy, y - np.fmin.reduceat(y, seg).repeat(seg_len), 0.0) if n else np.zeros(0)
        bc = np.where(vb, b - np.fmin.reduceat(b, seg).repeat(seg_len), 0.0) if n else np.zeros(0)
    xy, xb = np.where(vy, x, 0.0), np.where(vb, x, 0.0)

    key = v * _SPAN + ts // 1_000_000  # readings' search keys (whole seconds; bounds are midnights)
    pv = _codes(vehicles, np.asarray(pairs["vehicle_id"]))

    def position(bound_us: np.ndarray) -> np.ndarray:  # first reading of the pair's vehicle at or after
        q = pv * _SPAN + bound_us // 1_000_000
        order = np.argsort(q, kind="stable")  # sorted queries: the binary searches walk forward
        at = np.empty_like(order)
        at[order] = np.searchsorted(key, q[order], side="left")
        return at

    lo, hi = position(start), position(as_of + _DAY_US)
    rec = position(np.maximum(start, as_of - window_days * _DAY_US))
    # windows [lo, hi) (every reading) and [rec, hi) (recent ones), in the order of their starts
    starts, stops = np.concatenate([lo, rec]), np.concatenate([hi, hi])
    order = np.argsort(starts, kind="stable")
    bounds = np.empty(2 * len(order), np.int64)
    bounds[0::2], bounds[1::2] = starts[order], stops[order]
    empty = stops <= starts

    def summed(a: np.ndarray) -> np.ndarray:  # each window's sum of ``a`` (0 when empty)
        if not len(order):
            return np.zeros(0)
        total = np.empty(len(order))
        total[order] = np.add.reduceat(np.r_[a, 0.0], bounds)[0::2]  # a zero at the end: a window may end there
        total[empty] = 0.0  # an empty window: reduceat gave its first element
        return total

    m = len(pv)
    count = np.where(empty, 0, stops - starts)

    def counted_in(flag: np.ndarray) -> np.ndarray:  # each window's number of flagged readings (exact)
        running = np.r_[0, np.cumsum(flag, dtype=np.int64)]
        return np.where(empty, 0, running[stops] - running[starts]).astype(float)

    ny, nb = counted_in(vy), counted_in(vb)
    sx, sxx, sy, sxy, syy = summed(xy), summed(xy * xy), summed(yc), summed(xy * yc), summed(yc * yc)
    bx, bxx, bs, bxs = summed(xb), summed(xb * xb), summed(bc), summed(xb * bc)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(ny > 0, ny, np.nan)
        line_xx, line_xy, line_yy = sxx - sx * sx / k, sxy - sx * sy / k, syy - sy * sy / k
        kb = np.where(nb > 0, nb, np.nan)
        b_xx, b_xy = bxx - bx * bx / kb, bxs - bx * bs / kb
        slope = b_xy / np.where(b_xx != 0, b_xx, np.nan) * 365.25
    rows, has = count[:m], count[:m] > 0
    has_recent = count[m:] > 0

    idx = np.arange(n)
    last_y = np.maximum.accumulate(np.where(vy, idx, -1)) if n else idx
    next_y = np.minimum.accumulate(np.where(vy, idx, n)[::-1])[::-1] if n else idx
    last_b = np.maximum.accumulate(np.where(vb, idx, -1)) if n else idx
    at_last = np.clip(hi - 1, 0, max(n - 1, 0))  # the last reading before the end of T (if any)
    at_first = np.clip(lo, 0, max(n - 1, 0))
    at_first_recent = np.clip(rec, 0, max(n - 1, 0))

    def pick(values: np.ndarray, at: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, values[at], np.nan) if n else np.full(m, np.nan)

    def day_span(at: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, (ts[at_last] - ts[at]) / _DAY_US, np.nan) if n else np.full(m, np.nan)

    def moment(at: np.ndarray, ok: np.ndarray) -> pd.Series:
        us = ts[at] if n else np.zeros(m, np.int64)
        return pd.Series(us.astype("datetime64[us]")).where(ok)

    def counted(c: np.ndarray, ok: np.ndarray) -> pd.Series:
        return pd.Series(np.rint(c).astype(np.int64), dtype="Int64").where(ok)

    columns = {
        "n_readings": counted(rows, has),
        "last_reading_at": moment(at_last, has),
        "odometer_last": pick(y, last_y[at_last] if n else at_last, ny[:m] > 0),
        "odometer_first": pick(y, next_y[at_first] if n else at_first, ny[:m] > 0),
        "first_reading_at": moment(at_first, has),
        "n_recent": counted(ny[m:], has),
        "sxx_recent": line_xx[m:], "sxy_recent": line_xy[m:], "syy_recent": line_yy[m:],
        "span_recent": day_span(at_first_recent, has_recent),
        "n_all": counted(ny[:m], has),
        "sxx_all": line_xx[:m], "sxy_all": line_xy[:m], "syy_all": line_yy[:m],
        "span_all": day_span(at_first, has),
        "battery_soh": pick(b, last_b[at_last] if n else at_last, nb[:m] > 0),
        "battery_slope_per_year": slope[m:],
    }
    for name, values in columns.items():
        out[name] = values.to_numpy() if isinstance(values, pd.Series) else values
    return out.astype(READING_COLUMNS)
