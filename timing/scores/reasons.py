"""The reasons behind a forecast, in the leasing team's words.

For the discrete model, the reasons are the covariates that lift the log
signing hazard in the contract's likeliest step above their own usual level
(what makes *that* time likely), then those that raise it throughout (what
makes a signing likely at all); the words then
quote the contract's own figures ("mileage allowance reached in 41 days").
Families without per-covariate contributions fall back to a fixed order of
salience. Everything is built column-wise for the whole portfolio, and words only
for the covariates that make a contract's top three.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from timing.core.conventions import MONTH_DAYS
from timing.models.base import MonthlyForecast
from timing.models.covariates import COVARIATES, FAULT_EDGES, INTEREST_EDGES, SALIENCE

MAX_REASONS = 3
MIN_CONTRIBUTION = 0.05  # log-hazard units; smaller pushes are not worth a word
#: Interest shown, or a critical fault, longer ago than this (the last edge of their covariates'
#: bins: "6+ months ago") is no reason to call now: the phrase stays silent and the next reason
#: speaks ("showed interest 3218 days ago" was once offered as a reason).
STALE_INTEREST_DAYS = INTEREST_EDGES[-1]
STALE_FAULT_DAYS = FAULT_EDGES[-1]


def _int_str(x: pd.Series) -> pd.Series:
    """Whole numbers as text; empty where missing (each distinct number formatted once)."""
    codes, uniques = pd.factorize(x.astype(float).round())
    text = pd.Series(uniques, dtype=float).astype("Int64").astype(str).replace("<NA>", "").to_numpy(dtype=object)
    return pd.Series(np.append(text, "")[codes], index=x.index, dtype=object)  # code -1 (missing): ""


def _strftime(dates: pd.Series, fmt: str) -> pd.Series:
    """``pd.to_datetime(dates).dt.strftime(fmt)`` (NaN where missing), converting and formatting each
    distinct date once."""
    codes, uniques = pd.factorize(dates)
    text = pd.DatetimeIndex(pd.to_datetime(uniques)).strftime(fmt).to_numpy(dtype=object)
    return pd.Series(np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else np.nan, np.nan),
                     index=dates.index, dtype=object)


def _months_phrase(days: pd.Series) -> pd.Series:
    months = (days.astype(float).abs() / MONTH_DAYS).round()
    unit = np.where(months == 1, " month", " months")
    return pd.Series(np.where(months.fillna(0) >= 1, _int_str(months) + unit, _int_str(days.abs()) + " days"),
                     index=days.index)


# --- the words: one builder per covariate, on any rows of the features (elementwise, so the
# words for a subset are those for the whole portfolio, restricted); "" where it has nothing to say


def _end(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    d = f["days_to_end"].astype(float)
    end = _strftime(f["scheduled_end_date"], "%Y-%m-%d")
    return pd.Series(np.where(d >= 0, "scheduled end " + end + " (in " + _int_str(d) + " days)",
                              "scheduled end passed " + _int_str(-d) + " days ago, no successor yet"),
                     index=f.index)


def _habit(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    o = f["last_offset_days"].astype(float)
    words = _months_phrase(o)
    habit = np.where(o < -15, "signed " + words + " early last time",
                     np.where(o > 15, "signed " + words + " after the end last time", "signed on time last time"))
    return pd.Series(np.where(o.isna(), "", habit), index=f.index)


def _allowance(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    a = f["days_to_allowance"].astype(float)
    near = np.isfinite(a) & (a.abs() < 730)
    allowance = np.where(a >= 0, "mileage allowance reached in " + _int_str(a.clip(0, 1e6)) + " days",
                         "mileage allowance exceeded " + _int_str(-a.clip(-1e6, 0)) + " days ago")
    return pd.Series(np.where(near, allowance, ""), index=f.index)


def _fault(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    crit = pd.to_datetime(f["last_critical_date"])
    recent = (pd.to_datetime(f["as_of"]) - crit).dt.days <= STALE_FAULT_DAYS  # False where no fault
    return pd.Series(np.where(recent, "critical fault " + _strftime(crit, "%Y-%m-%d").fillna(""), ""),
                     index=f.index)


def _battery(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    soh = f["battery_soh"].astype(float)
    return pd.Series(np.where(soh.notna(), "battery health " + _int_str(soh) + "%", ""), index=f.index)


def _launch(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    when = pd.to_datetime(f["as_of"]) + pd.to_timedelta(day, unit="D")
    return "model launch season around " + _strftime(when, "%B %Y")


def _renewals(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    n = f["n_renewals"].astype(int)
    return pd.Series(np.where(n > 0, n.astype(str) + np.where(n == 1, " earlier renewal", " earlier renewals"), ""),
                     index=f.index)


def _lost_before(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    return pd.Series(np.where(f["n_lost"] > 0, "lost a contract to a competitor before", ""), index=f.index)


def _usage(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    return "drives " + _int_str(f["usage_ratio"] * 100) + "% of the allowance"


def _interest(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    interest = f["days_since_interest"].astype(float)
    return pd.Series(np.where(interest <= STALE_INTEREST_DAYS, "showed interest " + _int_str(interest) + " days ago", ""),
                     index=f.index)


def _contacted(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    contact = f["days_since_contact"].astype(float)
    declined = f["days_since_decline"].astype(float)
    return pd.Series(np.where(declined.fillna(1e9) <= 90, "declined " + _int_str(declined) + " days ago",
                              np.where(contact.fillna(1e9) <= 90, "contacted " + _int_str(contact) + " days ago", "")),
                     index=f.index)


def _repairs(f: pd.DataFrame, day: np.ndarray) -> pd.Series:
    return pd.Series(np.where(f["repairs_365d"] > 0, f["repairs_365d"].astype(str) + " repair(s) this year", ""),
                     index=f.index)


#: The words of each covariate, from the features and the day (after the as-of) of the likeliest step.
PHRASES: dict[str, Callable[[pd.DataFrame, np.ndarray], pd.Series]] = {
    "end": _end, "habit": _habit, "allowance": _allowance, "fault": _fault, "battery": _battery,
    "launch": _launch, "renewals": _renewals, "lost_before": _lost_before, "usage": _usage,
    "interest": _interest, "contacted": _contacted, "repairs": _repairs,
    # covariates split by what is known of the customer speak with one voice
    "end_with_history": _end, "end_consistent_habit": _end, "habit_consistent": _habit,
    "allowance_heavy_user": _allowance, "launch_pull": _launch, "launch_pull_launch_signer": _launch,
}


#: The feature columns the words read (the rows worded are copied with these columns only).
PHRASE_COLUMNS = ("as_of", "days_to_end", "scheduled_end_date", "last_offset_days", "days_to_allowance",
                  "last_critical_date", "battery_soh", "n_renewals", "n_lost", "usage_ratio", "days_since_interest",
                  "days_since_contact", "days_since_decline", "repairs_365d")


def _words(name: str, f: pd.DataFrame, day: np.ndarray) -> np.ndarray:
    """The covariate's phrase per row of ``f`` as text ("" for none)."""
    if name not in PHRASES:
        return np.full(len(f), "", dtype=object)
    return pd.Series(PHRASES[name](f, day), index=f.index).fillna("").astype(str).to_numpy(dtype=object)


def phrases(f: pd.DataFrame, day: np.ndarray) -> dict[str, pd.Series]:
    """One phrase per covariate per contract (empty where the covariate has nothing to say)."""
    return {c.name: pd.Series(_words(c.name, f, day), index=f.index) for c in COVARIATES}


def explain(features: pd.DataFrame, forecast: MonthlyForecast) -> pd.Series:
    """A ``;``-separated list of up to three reasons per contract.

    The covariates are ranked per contract first; words are then built only for the best ranked
    ones (a covariate with nothing to say gives way to the next), not for every covariate of every
    contract.
    """
    n = len(features)
    if n == 0:
        return pd.Series([], dtype=str)
    f = features[[c for c in PHRASE_COLUMNS if c in features.columns]].reset_index(drop=True)
    step = np.argmax(forecast.step_signed, axis=1)  # the most likely step of signing
    day = (step + 0.5) * forecast.step_days
    names = [c.name for c in COVARIATES if c.explains]
    if forecast.drivers is not None:
        idx = [i for i, c in enumerate(COVARIATES) if c.explains]
        by_covariate = np.moveaxis(forecast.drivers, 2, 0)  # (covariates, n, steps), a view
        contrib = np.empty((n, len(idx)))
        usual = np.empty((n, len(idx)))
        for i, j in enumerate(idx):
            contrib[:, i] = by_covariate[j][np.arange(n), step]
            usual[:, i] = _median_last_axis(by_covariate[j])  # over the steps
        # "why then": how much a covariate lifts the likeliest step above its usual level;
        # a covariate that pushes every step alike (loyalty) explains "how likely", ranked after
        timing = contrib - usual
        score = np.where(timing > MIN_CONTRIBUTION, 10 + timing, np.where(contrib > MIN_CONTRIBUTION, contrib, -np.inf))
    else:
        # a covariate outside the ranking (``end_with_history`` repeats ``end``) is never a filler
        rank = np.array([len(SALIENCE) - SALIENCE.index(nm) if nm in SALIENCE else -np.inf for nm in names], float)
        score = np.repeat(rank[None, :], n, axis=0)
        score[:, names.index("launch")] = -np.inf  # a calendar fact is no reason without a model saying so
    # covariates best first (ties in column order); a covariate without words is passed over
    order = np.argsort(-score, axis=1, kind="stable")
    ranked = np.take_along_axis(score, order, axis=1) > -np.inf
    UNKNOWN, SAYS, SILENT = 0, 1, 2  # noqa: N806 - what is known of a ranked covariate's words
    state = np.zeros(order.shape, np.int8)
    words = np.full(order.shape, "", dtype=object)
    while True:
        candidate = ranked & (state != SILENT)
        wanted = candidate & (np.cumsum(candidate, axis=1) <= MAX_REASONS)
        todo = wanted & (state == UNKNOWN)
        if not todo.any():
            break
        rows, at = np.nonzero(todo)
        cov = order[rows, at]
        for j in np.unique(cov):
            sel = cov == j
            r = rows[sel]
            text = _words(names[j], f.take(r).reset_index(drop=True), day[r])
            words[r, at[sel]] = text
            state[r, at[sel]] = np.where(text != "", SAYS, SILENT)
    # the wanted covariates all have words now: join them in rank order
    out = np.full(n, "", dtype=object)
    nth = np.cumsum(wanted, axis=1)
    for i in range(1, MAX_REASONS + 1):
        hit = wanted & (nth == i)
        has = hit.any(axis=1)
        if not has.any():
            break
        text = words[np.arange(n), np.argmax(hit, axis=1)]
        out = np.where(has, (out + "; " + text) if i > 1 else text, out)
    return pd.Series(out, index=features.index)


def _median_last_axis(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=-1)``: the same middle values, found by sorting (faster on short rows
    than numpy's partition); NaN where a row holds one (sorted last), as ``np.median`` gives."""
    s = a.shape[-1]
    if s == 0:
        return np.median(a, axis=-1)
    ordered = np.sort(a, axis=-1)
    h = s // 2
    # np.mean of the two middle values, as np.median takes them
    out = ordered[..., h].copy() if s % 2 else (ordered[..., h - 1] + ordered[..., h]) / 2
    out[np.isnan(ordered[..., -1])] = np.nan
    return out
