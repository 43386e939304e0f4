"""The reasons behind a forecast, in the leasing team's words.

For the discrete model, the reasons are the covariates that lift the log
signing hazard in the contract's likeliest step above their own usual level
(what makes *that* time likely), then those that raise it throughout (what
makes a signing likely at all); the words then
quote the contract's own figures ("mileage allowance reached in 41 days").
Families without per-covariate contributions fall back to a fixed order of
salience. Everything is built column-wise for the whole portfolio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timing.models.base import MonthlyForecast
from timing.models.panel import COVARIATES, MONTH_DAYS

MAX_REASONS = 3
MIN_CONTRIBUTION = 0.05  # log-hazard units; smaller pushes are not worth a word


def _int_str(x: pd.Series) -> pd.Series:
    """Whole numbers as text; empty where missing."""
    return x.astype(float).round().astype("Int64").astype(str).replace("<NA>", "")


def _months_phrase(days: pd.Series) -> pd.Series:
    months = (days.astype(float).abs() / MONTH_DAYS).round()
    unit = np.where(months == 1, " month", " months")
    return pd.Series(np.where(months.fillna(0) >= 1, _int_str(months) + unit, _int_str(days.abs()) + " days"),
                     index=days.index)


def phrases(f: pd.DataFrame, day: np.ndarray) -> dict[str, pd.Series]:
    """One phrase per covariate per contract (empty where the covariate has nothing to say)."""
    empty = pd.Series("", index=f.index)
    out: dict[str, pd.Series] = {}
    d = f["days_to_end"].astype(float)
    end = pd.to_datetime(f["scheduled_end_date"]).dt.strftime("%Y-%m-%d")
    out["end"] = pd.Series(np.where(d >= 0, "scheduled end " + end + " (in " + _int_str(d) + " days)",
                                    "scheduled end passed " + _int_str(-d) + " days ago, no successor yet"),
                           index=f.index)
    o = f["last_offset_days"].astype(float)
    words = _months_phrase(o)
    habit = np.where(o < -15, "signed " + words + " early last time",
                     np.where(o > 15, "signed " + words + " after the end last time", "signed on time last time"))
    out["habit"] = pd.Series(np.where(o.isna(), "", habit), index=f.index)
    a = f["days_to_allowance"].astype(float)
    near = np.isfinite(a) & (a.abs() < 730)
    allowance = np.where(a >= 0, "mileage allowance reached in " + _int_str(a.clip(0, 1e6)) + " days",
                         "mileage allowance exceeded " + _int_str(-a.clip(-1e6, 0)) + " days ago")
    out["allowance"] = pd.Series(np.where(near, allowance, ""), index=f.index)
    crit = pd.to_datetime(f["last_critical_date"])
    out["fault"] = pd.Series(np.where(crit.notna(), "critical fault " + crit.dt.strftime("%Y-%m-%d").fillna(""), ""), index=f.index)
    soh = f["battery_soh"].astype(float)
    out["battery"] = pd.Series(np.where(soh.notna(), "battery health " + _int_str(soh) + "%", ""),
                               index=f.index)
    when = pd.to_datetime(f["as_of"]) + pd.to_timedelta(day, unit="D")
    out["launch"] = "model launch season around " + when.dt.strftime("%B %Y")
    n = f["n_renewals"].astype(int)
    out["renewals"] = pd.Series(np.where(n > 0, n.astype(str) + np.where(n == 1, " earlier renewal", " earlier renewals"), ""),
                                index=f.index)
    out["lost_before"] = pd.Series(np.where(f["n_lost"] > 0, "lost a contract to a competitor before", ""), index=f.index)
    out["usage"] = "drives " + _int_str(f["usage_ratio"] * 100) + "% of the allowance"
    interest = f["days_since_interest"].astype(float)
    out["interest"] = pd.Series(np.where(interest.notna(), "showed interest " + _int_str(interest) + " days ago", ""),
                                index=f.index)
    contact = f["days_since_contact"].astype(float)
    declined = f["days_since_decline"].astype(float)
    out["contacted"] = pd.Series(np.where(declined.fillna(1e9) <= 90, "declined " + _int_str(declined) + " days ago",
                                          np.where(contact.fillna(1e9) <= 90, "contacted " + _int_str(contact) + " days ago", "")),
                                 index=f.index)
    out["repairs"] = pd.Series(np.where(f["repairs_365d"] > 0, f["repairs_365d"].astype(str) + " repair(s) this year", ""),
                               index=f.index)
    # covariates split by what is known of the customer speak with one voice
    for split, base in (("end_with_history", "end"), ("end_consistent_habit", "end"), ("habit_consistent", "habit")):
        out[split] = out[base]
    for c in COVARIATES:
        out.setdefault(c.name, empty)
    return out


# fallback ranking for families without contributions: most telling first
SALIENCE = ("allowance", "fault", "habit", "battery", "interest", "end", "contacted", "launch", "renewals", "repairs",
            "usage", "lost_before")


def explain(features: pd.DataFrame, forecast: MonthlyForecast) -> pd.Series:
    """A ``;``-separated list of up to three reasons per contract."""
    n = len(features)
    if n == 0:
        return pd.Series([], dtype=str)
    step = np.argmax(forecast.step_signed, axis=1)  # the most likely step of signing
    texts = phrases(features.reset_index(drop=True), (step + 0.5) * forecast.step_days)
    names = [c.name for c in COVARIATES if c.explains]
    table = np.column_stack([texts[nm].fillna("").astype(str).to_numpy() for nm in names])
    has_text = table != ""
    if forecast.drivers is not None:
        idx = [i for i, c in enumerate(COVARIATES) if c.explains]
        drivers = forecast.drivers[:, :, idx]
        contrib = drivers[np.arange(n), step]
        # "why then": how much a covariate lifts the likeliest step above its usual level;
        # a covariate that pushes every step alike (loyalty) explains "how likely", ranked after
        timing = contrib - np.median(drivers, axis=1)
        score = np.where(timing > MIN_CONTRIBUTION, 10 + timing, np.where(contrib > MIN_CONTRIBUTION, contrib, -np.inf))
        score = np.where(has_text, score, -np.inf)
    else:
        # a covariate outside the ranking (``end_with_history`` repeats ``end``) is never a filler
        rank = np.array([len(SALIENCE) - SALIENCE.index(nm) if nm in SALIENCE else -np.inf for nm in names], float)
        score = np.where(has_text, rank[None, :], -np.inf)
        score[:, names.index("launch")] = -np.inf  # a calendar fact is no reason without a model saying so
    order = np.argsort(-score, axis=1, kind="stable")[:, :MAX_REASONS]
    picked = np.take_along_axis(table, order, axis=1)
    ok = np.take_along_axis(score, order, axis=1) > -np.inf
    picked = np.where(ok, picked, "")
    joined = ["; ".join(p for p in row if p) for row in picked]
    return pd.Series(joined, index=features.index)
