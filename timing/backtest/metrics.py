"""The backtest's measurements, as rows of the long results table (metrics.md).

Every function here is pure: plans, forecasts and what really happened in,
rows out. A row is ``metric, policy, month, bin, value``; ``policy`` says
whose number it is (``model``, ``naive``, ``truth``, or ``km``, the
Kaplan-Meier baseline), ``month`` the month of the horizon (month k = days
``((k-1)*MONTH_DAYS, k*MONTH_DAYS]`` after the cutoff) and ``bin`` the bin of
the calibration curve.

Notes
-----
The portfolio volume interval: the number of signings in month k among the
contracts open on the cutoff is a sum of independent Bernoulli draws with the
model's per-contract probabilities, a Poisson-binomial variable; the interval
is its central 80% (:func:`timing.scores.volume.poisson_binomial_interval`). It
reflects which contracts sign, not the uncertainty of the probabilities
themselves, so a model that mistimes a whole month falls outside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timing.core.conventions import MONTH_DAYS
from timing.models.base import MonthlyForecast
from timing.models.metrics import Observed, calibration_by_month, calibration_curve, evaluate
from timing.schedule.policies import Capture, capture
from timing.scores.volume import signings_interval

COLUMNS = ["metric", "policy", "month", "bin", "value"]
CURVE_MONTH = 6


def row(metric: str, value: float, policy: str | None = None, month: int | None = None,
        bin: int | None = None) -> dict[str, object]:
    return {"metric": metric, "policy": policy, "month": month, "bin": bin, "value": float(value)}


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows as a table with fixed column types (months and bins are nullable integers)."""
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.astype({"metric": object, "policy": object, "month": "Int64", "bin": "Int64", "value": float})


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def decision_rows(starts: dict[str, np.ndarray], signing_day: np.ndarray, horizon_days: int,
                  capture_days: int) -> list[dict[str, object]]:
    """Capture and precision of each policy's start days (NaN: no window), lift and share of truth."""
    got: dict[str, Capture] = {p: capture(s, signing_day, horizon_days, capture_days) for p, s in starts.items()}
    rows = [row("repurchases", next(iter(got.values())).repurchases)] if got else []
    for policy, c in got.items():
        rows += [row("windows", c.windows, policy), row("captured", c.captured, policy),
                 row("capture", c.capture, policy), row("precision", c.precision, policy)]
    if "model" in got and "naive" in got:
        rows.append(row("lift", ratio(got["model"].capture, got["naive"].capture), "model"))
    if "truth" in got:
        for policy in ("model", "naive"):
            if policy in got:
                rows.append(row("share_of_truth", ratio(got[policy].capture, got["truth"].capture), policy))
    return rows


def signed_in_window(start_day: np.ndarray, signing_day: np.ndarray, horizon_days: int, window_days: int) -> int:
    """Repurchases in the horizon signed while their contract's window was open."""
    signed = (signing_day > 0) & (signing_day <= horizon_days)
    return int((signed & (signing_day >= start_day) & (signing_day < start_day + window_days)).sum())


def forecast_rows(forecast: MonthlyForecast, baseline: MonthlyForecast, obs: Observed,
                  months: int) -> list[dict[str, object]]:
    """Concordance and integrated Brier score (model and Kaplan-Meier), calibration per month and at 6 months."""
    m = evaluate(forecast.truncate(months), baseline.truncate(months), obs, months)
    contracts, signings, ibs_km = m.pop("contracts"), m.pop("signings"), m.pop("ibs_km")
    rows = [row("forecast_months", months), row("contracts_evaluated", contracts),
            row("signings_evaluated", signings), row("ibs", ibs_km, "km")]
    rows += [row(k, v, "model") for k, v in m.items()]
    rows.append(row("ibs_skill", 1 - ratio(m["ibs"], ibs_km), "model"))
    for r in calibration_by_month(forecast, obs, months).itertuples():
        rows += [row("calibration_predicted", r.predicted, "model", r.month),
                 row("calibration_observed", r.observed, "model", r.month),
                 row("calibration_contracts", r.contracts, "model", r.month)]
    if months >= CURVE_MONTH:
        for r in calibration_curve(forecast, obs, CURVE_MONTH).itertuples():
            rows += [row("curve_6m_predicted", r.predicted, "model", bin=int(r.bin)),
                     row("curve_6m_observed", r.observed, "model", bin=int(r.bin)),
                     row("curve_6m_contracts", r.contracts, "model", bin=int(r.bin))]
    return rows


def volume(forecast: MonthlyForecast, signing_day: np.ndarray, months: int, level: float = 0.8,
           error: float = 0.0) -> pd.DataFrame:
    """Expected signings per month of the horizon, their interval, and the actual count.

    The interval is chance (Poisson-binomial) widened by the model's relative ``error`` beyond
    chance (:func:`timing.scores.volume.model_error` of the origin's own holdout), as ``timing volume``
    gives it.
    """
    p = forecast.p_signed[:, :months]
    lo, hi = signings_interval(p, level, error)
    k = np.arange(1, months + 1)
    month_of = np.ceil(signing_day / MONTH_DAYS)
    inside = (month_of >= 1) & (month_of <= months)
    actual = np.bincount(month_of[inside].astype(int), minlength=months + 1)[1:]
    return pd.DataFrame({"month": k, "forecast": p.sum(axis=0), "lower": lo, "upper": hi, "actual": actual})


def volume_rows(v: pd.DataFrame, level: float = 0.8) -> list[dict[str, object]]:
    pct = round(100 * level)
    rows = []
    for r in v.itertuples():
        rows += [row("volume_forecast", r.forecast, "model", r.month), row("volume_actual", r.actual, None, r.month),
                 row(f"volume_lower_{pct}", r.lower, "model", r.month),
                 row(f"volume_upper_{pct}", r.upper, "model", r.month)]
    if len(v):
        seen = v[v["actual"] > 0]
        mape = float((abs(seen["forecast"] - seen["actual"]) / seen["actual"]).mean()) if len(seen) else float("nan")
        covered = float(((v["actual"] >= v["lower"]) & (v["actual"] <= v["upper"])).mean())
        rows += [row("volume_mape", mape, "model"), row(f"volume_coverage_{pct}", covered, "model")]
    return rows
