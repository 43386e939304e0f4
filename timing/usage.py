"""The usage layer: each car's odometer trajectory, projected to the allowance and the end.

A straight line per car, fitted by least squares on its recent readings, is
what the data supports: odometers grow almost linearly, readings have gaps,
and a million cars need one vectorised pass, not a million model fits. The
sufficient statistics (n, Sxx, Sxy, Syy) come from one SQL aggregation in
:mod:`timing.features`; the slope, its standard error and the projections are
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

    Expects the columns produced by :func:`timing.features.features_at`:
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
