"""The usage layer: straight lines through odometers, checked car by car against statsmodels OLS.

The slope and its standard error come from sufficient statistics (n, Sxx, Sxy,
Syy) aggregated in SQL; here the same statistics are aggregated by DuckDB
exactly as :mod:`timing.features.open_contracts` does and compared with ``statsmodels.OLS``
on the raw readings. The projections (days until the allowance is reached,
its 80% band) are then checked on cars whose answer is known by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from timing.features.open_contracts import MIN_USAGE_SPAN_DAYS, USAGE_WINDOW_DAYS, features_at
from timing.features.usage import Z80, measure_readings, project_usage, slope_and_se
from timing.ingest.load import ingest
from timing.store.asof import open_snapshot

AS_OF = date(2026, 6, 30)  # the as-of of the hand-written export in conftest.py


def readings_of(car: str, days: np.ndarray, km: np.ndarray | list[float], start: str = "2026-01-01") -> pd.DataFrame:
    t = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(days, unit="D")
    return pd.DataFrame({"car": car, "recorded_at": t, "odometer_km": km})


def synthetic_cars() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    cars = []
    weekly = np.arange(0, 180, 7.0)
    cars.append(readings_of("weekly", weekly, 12_000 + 45 * weekly + rng.normal(0, 30, len(weekly))))
    gap = np.concatenate([np.arange(0, 50, 5.0), np.arange(120, 175, 5.0)])  # two months in the workshop
    cars.append(readings_of("gap", gap, 40_000 + 80 * gap + rng.normal(0, 60, len(gap))))
    jittered = np.sort(rng.uniform(0, 90, 70))  # irregular times of day
    cars.append(readings_of("irregular", jittered, 3_000 + 20 * jittered + rng.normal(0, 5, len(jittered))))
    few = np.array([0.0, 13.5, 40.25])
    cars.append(readings_of("three", few, [500.0, 1_210.0, 2_600.0]))
    parked = np.arange(0, 60, 10.0)
    cars.append(readings_of("parked", parked, np.full(len(parked), 77_000.0)))
    cars.append(readings_of("two", np.array([0.0, 30.0]), [100.0, 1_000.0]))
    cars.append(readings_of("one", np.array([0.0]), [100.0]))
    return pd.concat(cars, ignore_index=True)


def sufficient_statistics(readings: pd.DataFrame) -> pd.DataFrame:
    """n, Sxx, Sxy, Syy per car, measured as features_at does (x in days): one pair per car whose
    contract window holds all its readings."""
    t = pd.to_datetime(readings["recorded_at"]).dt.tz_localize(None)
    cars = readings.assign(recorded_at=t).groupby("car")["recorded_at"].agg(["min", "max"])
    pairs = pd.DataFrame({"contract_id": cars.index, "vehicle_id": cars.index,
                          "start_date": cars["min"].dt.normalize(), "as_of": cars["max"].dt.normalize()})
    r = pd.DataFrame({"vehicle_id": readings["car"], "recorded_at": t, "odometer_km": readings["odometer_km"],
                      "battery_soh_pct": np.nan})
    m = measure_readings(r, pairs, window_days=10_000).set_index("contract_id")
    return pd.DataFrame({"n": m["n_all"].astype(float), "sxx": m["sxx_all"], "sxy": m["sxy_all"],
                         "syy": m["syy_all"]}).rename_axis("car")


def test_slope_and_standard_error_equal_statsmodels_ols_car_by_car() -> None:
    readings = synthetic_cars()
    stats = sufficient_statistics(readings)
    slope, se = slope_and_se(stats["n"], stats["sxx"], stats["sxy"], stats["syy"])
    for car, r in readings.groupby("car"):
        if len(r) < 3:
            continue
        x = r["recorded_at"].astype("int64").to_numpy() / 1e9 / 86400  # the same x as the SQL
        ols = sm.OLS(r["odometer_km"].to_numpy(), sm.add_constant(x)).fit()
        assert slope[car] == pytest.approx(ols.params[1], rel=1e-9, abs=1e-9), car
        assert se[car] == pytest.approx(ols.bse[1], rel=1e-6, abs=1e-9), car
    assert slope["parked"] == 0 and se["parked"] == 0
    # two readings give a slope but no standard error; one gives neither
    assert slope["two"] == pytest.approx(30.0) and np.isnan(se["two"])
    assert np.isnan(slope["one"]) and np.isnan(se["one"])


# --- the usage window, through features_at on a hand-written export ----------------------


def linear_readings(rate_before: float, rate_after: float) -> list[dict]:
    """V2's odometer every 9 days: slower until the usage window opens, then faster, with a gap and noise."""
    rng = np.random.default_rng(3)
    turn = pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=USAGE_WINDOW_DAYS)  # the window's first day
    days = pd.date_range(turn - pd.Timedelta(days=180), pd.Timestamp(AS_OF, tz="UTC"), freq="9D") + pd.Timedelta(hours=8)
    gap = (days > turn + pd.Timedelta(days=USAGE_WINDOW_DAYS // 3)) & (days < turn + pd.Timedelta(days=USAGE_WINDOW_DAYS // 2))
    days = days[~gap & (days < pd.Timestamp(AS_OF, tz="UTC"))]
    t = (days - turn).total_seconds().to_numpy() / 86400
    km = 20_000 + np.where(t < 0, rate_before * t, rate_after * t) + rng.normal(0, 25, len(t))
    rows = [{"vehicle_id": "V2", "recorded_at": d.strftime("%Y-%m-%dT%H:%M:%SZ"), "odometer_km": round(k, 1),
             "battery_soh_pct": ""} for d, k in zip(days, km, strict=True)]
    # V4 reports once: not enough for a line, so it falls back to its allowance
    rows.append({"vehicle_id": "V4", "recorded_at": "2026-03-01T08:00:00Z", "odometer_km": 90_000,
                 "battery_soh_pct": ""})
    return rows


@pytest.fixture
def usage_features(make_export: Callable[..., Path], tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = linear_readings(30.0, 60.0)
    export = make_export(readings=rows)
    ingest(export, tmp_path / "store.duckdb", as_of=AS_OF)
    with open_snapshot(tmp_path / "store.duckdb") as snap:
        f = features_at(snap.con, snap.schema, snap.as_of).set_index("contract_id")
    return f, pd.DataFrame(rows)


def test_usage_is_measured_on_the_recent_window_only(usage_features: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, rows = usage_features
    k2 = f.loc["K2"]
    assert k2["has_telematics"] == 1
    r = rows[rows["vehicle_id"] == "V2"].copy()
    r["t"] = pd.to_datetime(r["recorded_at"], utc=True)
    recent = r[r["t"] >= pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=USAGE_WINDOW_DAYS)]
    assert (recent["t"].max() - recent["t"].min()).days >= MIN_USAGE_SPAN_DAYS
    x = recent["t"].astype("int64").to_numpy() / 1e9 / 86400
    ols = sm.OLS(recent["odometer_km"].to_numpy(float), sm.add_constant(x)).fit()
    assert k2["km_per_day"] == pytest.approx(ols.params[1], rel=1e-9)
    assert k2["km_per_day_se"] == pytest.approx(ols.bse[1], rel=1e-6)
    assert 57 < k2["km_per_day"] < 63  # the older, slower readings are not averaged in
    assert k2["usage_ratio"] == pytest.approx(k2["km_per_day"] / (20_000 / 365.25))
    last = r["t"].max()
    assert k2["days_since_reading"] == (pd.Timestamp(AS_OF) - last.tz_localize(None).normalize()).days


def test_cars_without_telematics_fall_back_to_allowance_times_median_ratio(
        usage_features: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, _ = usage_features
    measured = f[f["has_telematics"] == 1]
    assert list(measured.index) == ["K2"]  # the only car with a usable line
    typical = float(np.median(measured["usage_ratio"]))
    for cid in ("K4", "K5"):  # one reading only; no readings at all
        car = f.loc[cid]
        assert car["has_telematics"] == 0
        per_day = car["annual_km_allowance"] / 365.25
        assert car["km_per_day"] == pytest.approx(per_day * typical)
        assert car["usage_ratio"] == pytest.approx(typical)
        assert car["km_driven"] == pytest.approx(car["km_per_day"] * max(car["days_since_start"], 0))
        assert car["km_per_day_se"] == pytest.approx(per_day * 0.25)  # one measured car: the default spread
        assert car["days_to_allowance_low"] <= car["days_to_allowance"] <= car["days_to_allowance_high"]


# --- projections on cars whose answer is known --------------------------------------------


def car(**over: float) -> dict:
    """The sufficient statistics of a car read every day for 90 days at ``rate`` km/day (no noise)."""
    rate, n = over.pop("rate", 50.0), 91
    x = np.arange(n, dtype=float)
    sxx = float(((x - x.mean()) ** 2).sum())
    row = {"fit_n": n, "fit_sxx": sxx, "fit_sxy": rate * sxx, "fit_syy": rate**2 * sxx, "usage_span_days": 90,
           "odometer_last": 0.0, "odometer_first": 0.0, "first_reading_day": 0, "days_since_reading": 0,
           "annual_km_allowance": 15_000.0, "term_days": 1096, "days_since_start": 0, "days_to_end": 0}
    row.update(over)
    return row


def projected(*cars: dict) -> pd.DataFrame:
    return project_usage(pd.DataFrame(list(cars)), min_span_days=MIN_USAGE_SPAN_DAYS)


def test_allowance_projection_on_an_exact_line() -> None:
    total = 15_000 * 1096 / 365.25
    # read daily from the start for 880 days at 50 km/day, the allowance is 41 days away
    driven = total - 41 * 50
    out = projected(car(odometer_first=0.0, odometer_last=driven, days_since_start=880, days_to_end=216)).iloc[0]
    assert out["has_telematics"] == 1
    assert out["km_per_day"] == pytest.approx(50.0)
    assert out["km_per_day_se"] == pytest.approx(0.0, abs=1e-9)
    assert out["km_driven"] == pytest.approx(driven)
    assert out["days_to_allowance"] == pytest.approx(41.0)
    assert out["days_to_allowance_low"] == pytest.approx(41.0) == out["days_to_allowance_high"]
    assert out["projected_km_at_end"] == pytest.approx(driven + 50 * 216)
    assert out["projected_overage_km"] == pytest.approx(driven + 50 * 216 - total)


def test_band_is_ordered_before_and_after_the_allowance_is_exceeded() -> None:
    total = 15_000 * 1096 / 365.25
    noisy = {"fit_syy": 50.0**2 * car()["fit_sxx"] + 200_000.0}  # residual scatter: a real band
    ahead = car(odometer_last=total - 3_000, **noisy)
    passed = car(odometer_last=total + 3_000, **noisy)
    out = projected(ahead, passed)
    assert (out["km_per_day_se"] > 0).all()
    low, mid, high = (out[c].to_numpy() for c in ("days_to_allowance_low", "days_to_allowance", "days_to_allowance_high"))
    assert mid[0] == pytest.approx(60.0) and mid[1] == pytest.approx(-60.0)
    assert (low < mid).all() and (mid < high).all()
    # the ends are the line at the 80% band's faster and slower rates
    fast = out["km_per_day"] + Z80 * out["km_per_day_se"]
    assert low[0] == pytest.approx(3_000 / fast[0]) and high[1] == pytest.approx(-3_000 / fast[1])


def test_a_parked_car_never_reaches_its_allowance_and_an_exceeded_one_stays_exceeded() -> None:
    total = 15_000 * 1096 / 365.25
    out = projected(car(rate=0.0, odometer_last=1_000.0), car(rate=0.0, odometer_last=total + 500))
    assert (out["has_telematics"] == 1).all() and (out["km_per_day"] == 0).all()
    assert out.loc[0, ["days_to_allowance_low", "days_to_allowance", "days_to_allowance_high"]].tolist() == [np.inf] * 3
    assert out.loc[1, ["days_to_allowance_low", "days_to_allowance", "days_to_allowance_high"]].tolist() == [-np.inf] * 3


def test_too_short_or_falling_odometers_are_not_trusted() -> None:
    measured = car(rate=40.0)
    short = car(rate=40.0, usage_span_days=MIN_USAGE_SPAN_DAYS - 1)
    falling = car(rate=-5.0)  # a swapped instrument cluster, say
    out = projected(measured, short, falling)
    assert out["has_telematics"].tolist() == [1, 0, 0]
    # the fallback is the allowance scaled by the measured cars' median ratio
    assert out.loc[1, "km_per_day"] == pytest.approx(40.0)
    assert out.loc[2, "km_per_day"] == pytest.approx(40.0)


@settings(max_examples=60, deadline=None, derandomize=True)  # the same examples on every run
@given(rate=st.floats(0, 300), noise=st.floats(0, 1e7), used=st.floats(0, 2.0), span=st.integers(0, 180),
       since_reading=st.integers(0, 400), allowance=st.floats(5_000, 60_000))
def test_projection_band_always_brackets_the_estimate(rate: float, noise: float, used: float, span: int,
                                                      since_reading: int, allowance: float) -> None:
    sxx = car()["fit_sxx"]
    total = allowance * 1096 / 365.25
    row = car(rate=rate, fit_syy=rate**2 * sxx + noise, usage_span_days=span, annual_km_allowance=allowance,
              odometer_last=used * total, days_since_reading=since_reading, days_since_start=700)
    other = car(rate=30.0)  # a second, measured car sets the portfolio's median
    out = projected(row, other)
    for _, r in out.iterrows():
        assert r["km_per_day"] >= 0 and r["km_per_day_se"] >= 0 and r["has_telematics"] in (0, 1)
        assert r["days_to_allowance_low"] <= r["days_to_allowance"] <= r["days_to_allowance_high"]


# --- measuring readings for many (contract, date) pairs at once ----------------------------

#: The direct definition: per pair, SQL aggregates over the vehicle's readings in its windows.
REFERENCE_SQL = """
SELECT p.contract_id, p.as_of,
       count(r.recorded_at) AS n_readings, max(r.recorded_at) AS last_reading_at,
       arg_max(r.odometer_km, r.recorded_at) AS odometer_last, arg_min(r.odometer_km, r.recorded_at) AS odometer_first,
       min(r.recorded_at) AS first_reading_at,
       regr_count(r.odometer_km, r.day) FILTER (WHERE r.recorded_at >= p.recent_from) AS n_recent,
       regr_sxx(r.odometer_km, r.day) FILTER (WHERE r.recorded_at >= p.recent_from) AS sxx_recent,
       regr_sxy(r.odometer_km, r.day) FILTER (WHERE r.recorded_at >= p.recent_from) AS sxy_recent,
       regr_syy(r.odometer_km, r.day) FILTER (WHERE r.recorded_at >= p.recent_from) AS syy_recent,
       max(r.day) FILTER (WHERE r.recorded_at >= p.recent_from)
         - min(r.day) FILTER (WHERE r.recorded_at >= p.recent_from) AS span_recent,
       regr_count(r.odometer_km, r.day) AS n_all, regr_sxx(r.odometer_km, r.day) AS sxx_all,
       regr_sxy(r.odometer_km, r.day) AS sxy_all, regr_syy(r.odometer_km, r.day) AS syy_all,
       max(r.day) - min(r.day) AS span_all,
       arg_max(r.battery_soh_pct, r.recorded_at) FILTER (WHERE r.battery_soh_pct IS NOT NULL) AS battery_soh,
       regr_slope(r.battery_soh_pct, r.day) FILTER (WHERE r.recorded_at >= p.recent_from) * 365.25
         AS battery_slope_per_year
FROM (SELECT *, greatest(CAST(start_date AS TIMESTAMP), CAST(as_of AS TIMESTAMP) - INTERVAL 30 DAY) AS recent_from
      FROM pairs) p
LEFT JOIN (SELECT *, epoch(recorded_at) / 86400.0 AS day FROM readings) r
  ON r.vehicle_id = p.vehicle_id AND r.recorded_at >= p.start_date AND r.recorded_at < p.as_of + INTERVAL 1 DAY
GROUP BY p.contract_id, p.as_of ORDER BY p.contract_id
"""


@settings(max_examples=40, deadline=None, derandomize=True)  # the same examples on every run
@given(seed=st.integers(0, 2**31 - 1))
def test_measured_readings_equal_the_direct_sql_aggregates(seed: int) -> None:
    """Random cars and (contract, date) pairs: readings at midnight bounds, ties, missing battery
    values, cars without readings, contracts starting after their date, several dates per car."""
    rng = np.random.default_rng(seed)
    cars = [f"V{i}" for i in range(rng.integers(1, 8))]
    n = int(rng.integers(0, 300))
    day = rng.integers(0, 120, n)
    moment = np.where(rng.random(n) < 0.2, 0, rng.integers(0, 86_400, n))  # a fifth exactly at midnight
    t = pd.Timestamp("2026-01-01") + pd.to_timedelta(day, "D") + pd.to_timedelta(moment, "s")
    readings = pd.DataFrame({"vehicle_id": rng.choice(cars[:-1] or cars, n), "recorded_at": t,
                             "odometer_km": np.round(rng.uniform(0, 90_000, n), 1),
                             "battery_soh_pct": np.where(rng.random(n) < 0.4, np.nan, np.round(rng.uniform(70, 100, n), 1))})
    readings = readings.drop_duplicates(["vehicle_id", "recorded_at"])  # ties in time order differently
    k = int(rng.integers(1, 40))
    start = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(-10, 100, k), "D")
    pairs = pd.DataFrame({"contract_id": [f"K{i:03d}" for i in range(k)], "vehicle_id": rng.choice(cars, k),
                          "start_date": start, "as_of": start + pd.to_timedelta(rng.integers(-5, 90, k), "D")})
    got = measure_readings(readings.sample(frac=1, random_state=seed % 1000), pairs, window_days=30)
    con = duckdb.connect()
    con.register("readings", readings)
    con.register("pairs", pairs)
    want = con.execute(REFERENCE_SQL).df()
    got = got.sort_values("contract_id").reset_index(drop=True)
    assert list(got["contract_id"]) == list(want["contract_id"])
    for c in got.columns[2:]:
        a, b = got[c], want[c]
        if c == "n_readings":  # SQL counts 0 over no reading, measure_readings leaves it empty
            assert a.fillna(0).astype(int).tolist() == b.astype(int).tolist()
        elif c.startswith("n_"):
            b = b.where(want["n_readings"] > 0)
            assert a.astype("float").fillna(-1).tolist() == b.astype("float").fillna(-1).tolist(), c
        elif a.dtype.kind == "M":
            assert pd.to_datetime(a).equals(pd.to_datetime(b).astype(a.dtype)), c
        else:
            # 1e-6: two readings seconds apart make a battery slope of ~1e4 a year whose two
            # summation orders differ at 3e-9; a wrong window differs at order 1
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6, atol=1e-6, err_msg=c)
