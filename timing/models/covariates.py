"""The covariates of the panel models: what each contract-step row is described by, and its levels.

Each covariate is *projected to the middle of its step*: where the contract
will stand against its scheduled end, how far it is from the customer's
habitual signing date, from the day its mileage allowance runs out, since its
last critical fault, what its battery health will be. These projections are
deterministic given what is known on the as-of date (future faults are not
invented), so the same covariates serve fitting and prediction.

Every covariate is binned into levels; level 0 is the reference, so a fitted
coefficient reads as a log hazard ratio against it. The habit gap is scaled
by the customer's own consistency: ``z = (day - habitual date) / sqrt(sd^2 +
20^2)`` where sd is the spread of their past signing offsets, capped at
``HABIT_SD_CAP_DAYS`` (also used when only one offset is known).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from timing.core.conventions import MONTH_DAYS

DEFAULT_LAUNCH_MONTHS = (3, 9)
HABIT_NOISE_DAYS = 20.0
CONSISTENT_SD_DAYS = 25.0
#: A spread of past offsets above this mostly comes from one signing set by something else (a
#: breakdown, the mileage): their median still places the next signing within weeks, so the
#: habit's bins are not widened beyond it (backtest: IBS 0.0459 -> 0.0445 on the demo).
HABIT_SD_CAP_DAYS = 25.0
HEAVY_USAGE_RATIO = 1.1
LAUNCH_PULL_DAYS = 61.0


@dataclass(frozen=True)
class Binned:
    """A covariate cut into levels; level 0 is the reference."""

    name: str
    labels: tuple[str, ...]
    code: Callable[[pd.DataFrame, np.ndarray, dict], np.ndarray]
    explains: bool = True

    @property
    def n_levels(self) -> int:
        return len(self.labels)


def _cut(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Codes 0..len(edges) by right-open ``edges``."""
    return np.digitize(values, edges).astype(np.int16)


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(dtype=float, na_value=np.nan)


# --- covariates: each maps (static features repeated per step, tau in days, context) -> codes

END_EDGES = [-6, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 9, 13]
END_LABELS = ("more than a year to the scheduled end", "scheduled end passed 6+ months ago",
              "scheduled end passed 3-6 months ago", "scheduled end passed 2-3 months ago",
              "scheduled end passed 1-2 months ago", "scheduled end passed within the last month",
              "scheduled end within a month", "scheduled end in 1 month",
              "scheduled end in 2 months", "scheduled end in 3 months", "scheduled end in 4 months",
              "scheduled end in 5 months", "scheduled end in 6-8 months", "scheduled end in 9-12 months")


def _once(fn: Callable) -> Callable:
    """A code or group several covariates share: computed once per :func:`covariate_codes` call.

    ``covariate_codes`` puts a fresh ``memo`` dict in the context; called
    without one (``ctx = {}``) the function simply runs.
    """

    @functools.wraps(fn)
    def shared(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        memo = ctx.get("memo")
        if memo is None:
            return fn(df, tau, ctx)
        if fn.__name__ not in memo:
            memo[fn.__name__] = fn(df, tau, ctx)
        return memo[fn.__name__]

    return shared


def _split(base: Callable, group: Callable, inside: bool = True) -> Callable:
    """A covariate: ``base``'s levels for the rows in ``group`` (or outside it), the reference level elsewhere.

    Splitting one binned effect by what is known of the customer lets each
    group have its own curve (first contract vs a steady habit, heavy users vs
    the others) without an interaction for every level.
    """

    def code(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        return np.where(group(df, tau, ctx) == inside, base(df, tau, ctx), 0).astype(np.int16)

    return code


@_once
def end_codes(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    # months until the scheduled end at mid-step; reference: more than 12 months away
    m = np.floor((_col(df, "days_to_end") - tau) / MONTH_DAYS)
    codes = np.digitize(m, END_EDGES).astype(np.int16)  # 0: < -6 ... 13: >= 13
    return np.where(codes == 13, 0, codes + 1).astype(np.int16)


@_once
def _has_history(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    return ~np.isnan(_col(df, "habit_offset_days"))


@_once
def _varying_habit(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Earlier renewals known, but not a steady habit."""
    return _has_history(df, tau, ctx) & ~_consistent(df, tau, ctx)


HABIT_EDGES = [-2.5, -1.5, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 1.5, 2.5]
HABIT_LABELS = ("no earlier renewal", "habitual signing date far ahead", "habitual signing date 1.5-2.5 sd ahead",
                "habitual signing date 1-1.5 sd ahead", "habitual signing date 0.5-1 sd ahead",
                "habitual signing date just ahead", "at the habitual signing date",
                "habitual signing date just passed", "habitual signing date passed 0.5-1 sd ago",
                "habitual signing date passed 1-1.5 sd ago", "habitual signing date passed 1.5-2.5 sd ago",
                "habitual signing date passed long ago")


@_once
def _habit_codes(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    off = _col(df, "habit_offset_days")
    sd = _col(df, "habit_offset_sd")
    sd = np.fmin(sd, HABIT_SD_CAP_DAYS)  # one offset known (no spread): the cap
    z = (tau - _col(df, "days_to_end") - off) / np.sqrt(sd**2 + HABIT_NOISE_DAYS**2)
    return np.where(np.isnan(off), 0, _cut(z, HABIT_EDGES) + 1).astype(np.int16)


@_once
def _consistent(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Two or more past signings within a few weeks of each other."""
    return np.nan_to_num(_col(df, "habit_offset_sd"), nan=np.inf) <= CONSISTENT_SD_DAYS


ALLOWANCE_EDGES = [-120, -60, -30, -15, 0, 15, 30, 60, 120, 240]
ALLOWANCE_LABELS = ("allowance not reached for 4+ months", "allowance reached in 2-4 months",
                    "allowance reached in 1-2 months", "allowance reached in 15-30 days",
                    "allowance reached within 15 days", "allowance exceeded within 15 days",
                    "allowance exceeded 15-30 days ago", "allowance exceeded 1-2 months ago",
                    "allowance exceeded 2-4 months ago", "allowance exceeded 4-8 months ago",
                    "allowance exceeded 8+ months ago")


@_once
def _allowance_codes(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    # days since the projected day the total allowance is reached (negative: before)
    d = _col(df, "days_to_allowance")
    gap = tau - np.where(np.isfinite(d), d, 1e7)
    return _cut(gap, ALLOWANCE_EDGES)


@_once
def _heavy(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Drives clearly more than the contract allows (reaches the allowance before the scheduled end)."""
    return np.nan_to_num(_col(df, "usage_ratio"), nan=0.0) >= HEAVY_USAGE_RATIO


FAULT_EDGES = [15, 30, 45, 60, 75, 90, 180]
FAULT_LABELS = ("no critical fault", "critical fault within 15 days", "critical fault 15-30 days ago",
                "critical fault 30-45 days ago", "critical fault 45-60 days ago", "critical fault 60-75 days ago",
                "critical fault 75-90 days ago", "critical fault 3-6 months ago", "critical fault 6+ months ago")


def _fault(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    since = _col(df, "days_since_critical") + tau
    return np.where(np.isnan(since), 0, _cut(since, FAULT_EDGES) + 1).astype(np.int16)


BATTERY_LABELS = ("battery health 90%+ or no battery", "battery health below 80%", "battery health 80-82%",
                  "battery health 82-85%", "battery health 85-90%")


def battery_at(soh: np.ndarray, slope_per_year: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Battery health projected ``tau`` days ahead along its slope (clipped to -20..+5 points a year;
    flat where the slope is unknown); NaN where there is no battery reading."""
    return soh + np.nan_to_num(np.clip(slope_per_year, -20, 5)) * tau / 365.25


def _battery(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    soh = _col(df, "battery_soh")
    projected = battery_at(soh, _col(df, "battery_slope_per_year"), tau)
    codes = _cut(projected, [80, 82, 85, 90]) + 1  # 1: <80 ... 5: >=90
    return np.where(np.isnan(soh) | (codes == 5), 0, codes).astype(np.int16)


LAUNCH_LABELS = ("no model launch near", "model launch month", "model launch next month")


def _launch(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    month = ((ctx["as_of_month0"] + np.floor((tau + ctx["as_of_day0"]) / MONTH_DAYS)) % 12 + 1).astype(int)
    launch = np.isin(month, ctx["launch_months"])
    before = np.isin(month % 12 + 1, ctx["launch_months"])
    return np.where(launch, 1, np.where(before, 2, 0)).astype(np.int16)


LAUNCH_PULL_LABELS = ("habitual date not just before a model launch",
                      "habitual date in the two months before a model launch",
                      "model launch after the habitual date: first half of the launch month",
                      "model launch after the habitual date: second half of the launch month",
                      "model launch after the habitual date: launch month over")


@_once
def _launch_pull(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Where a model launch may pull the customer's habitual signing date forward.

    A habitual date that falls in the ``LAUNCH_PULL_DAYS`` before a launch
    month's start may move to the launch itself (customers who wait for the
    new model): the step's position against that launch month.
    """
    habitual = _col(df, "days_to_end") + _col(df, "habit_offset_days")  # days after T
    m0, d0 = ctx["as_of_month0"], ctx["as_of_day0"]
    month = m0 + np.floor((np.nan_to_num(habitual) + d0) / MONTH_DAYS)  # month index of the habitual date
    launch = month + _months_to_next_launch(ctx)[(month % 12).astype(int)]  # the first launch month after it
    start = (launch - m0) * MONTH_DAYS - d0  # day (after T) the launch month starts
    pulled = ~np.isnan(habitual) & (start - habitual <= LAUNCH_PULL_DAYS)
    since = tau - start
    codes = np.select([since < 0, since < MONTH_DAYS / 2, since < MONTH_DAYS], [1, 2, 3], 4)
    return np.where(pulled, codes, 0).astype(np.int16)


def _months_to_next_launch(ctx: dict) -> np.ndarray:
    """Months (1-12) from each month of the year (0-11) to the first launch month after it; NaN: none."""
    ahead = np.full(12, np.nan)
    for k in range(12, 0, -1):  # the nearest last
        ahead[np.isin((np.arange(12) + k) % 12 + 1, ctx["launch_months"])] = k
    return ahead


def _months_bits(months: np.ndarray) -> int:
    return int(sum(1 << (int(m) - 1) for m in set(int(m) for m in months)))


@_once
def _signed_in_launch_month(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    mask = np.nan_to_num(_col(df, "signed_months_mask")).astype(np.int64)
    return (mask & _months_bits(ctx["launch_months"])) != 0


@_once
def _signed_before_launch(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Signed an earlier contract in one of the two months before a launch month: a habitual date
    there, which a customer who waits for the new model would have moved to the launch."""
    launch = np.asarray(ctx["launch_months"], int)
    before = np.concatenate([(launch - 2) % 12 + 1, (launch - 3) % 12 + 1])  # e.g. March: February, January
    before = before[~np.isin(before, launch)]
    mask = np.nan_to_num(_col(df, "signed_months_mask")).astype(np.int64)
    return (mask & _months_bits(before)) != 0


@_once
def _launch_signer(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Signed an earlier contract in a model launch month, and none in the two months before one."""
    return _signed_in_launch_month(df, tau, ctx) & ~_signed_before_launch(df, tau, ctx)


@_once
def _launch_ignorer(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Signed an earlier contract in the two months before a launch month, and none in a launch month:
    seen not to wait for a new model. On the demo backtest, of the signers whose habitual date fell
    in a launch's pull, 8 of these 60 waited for the launch, against 146 of the 286 others."""
    return _signed_before_launch(df, tau, ctx) & ~_signed_in_launch_month(df, tau, ctx)


@_once
def _launch_unknown(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Neither of the above: no earlier signing in or just before a launch month, or both."""
    return ~_launch_signer(df, tau, ctx) & ~_launch_ignorer(df, tau, ctx)




def _static(column: str, edges: list[float]) -> Callable:
    def code(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        values = _col(df, column)
        return np.where(np.isnan(values), 0, _cut(values, edges)).astype(np.int16)

    return code


def _category(column: str, levels: tuple[str, ...]) -> Callable:
    def code(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        # the value as text (missing: "") against each level; matched once per distinct value
        values = pd.Categorical(df[column])
        names = values.categories.astype("string")
        lut = np.array([_level_of(v, levels) for v in names] + [_level_of("", levels)],
                       dtype=np.int16)
        return lut[values.codes]  # code -1 (missing) takes the last entry

    return code


def _level_of(text: str, levels: tuple[str, ...]) -> int:
    return levels.index(text) if text in levels[1:] else 0


def _usage(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    r = _col(df, "usage_ratio")
    return np.select([r < 0.8, r >= 1.5, r >= 1.2], [1, 3, 2], 0).astype(np.int16)


INTEREST_EDGES = [30, 60, 90, 180]
INTEREST_LABELS = ("no interest shown", "showed interest within 30 days", "showed interest 30-60 days ago",
                   "showed interest 60-90 days ago", "showed interest 3-6 months ago",
                   "showed interest 6+ months ago")


def _interest(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    since = _col(df, "days_since_interest") + tau
    return np.where(np.isnan(since), 0, _cut(since, INTEREST_EDGES) + 1).astype(np.int16)


def _contacted(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    declined = np.nan_to_num(_col(df, "days_since_decline"), nan=1e9) + tau <= 90
    contacted = np.nan_to_num(_col(df, "days_since_contact"), nan=1e9) + tau <= 90
    return np.where(declined, 2, np.where(contacted, 1, 0)).astype(np.int16)


#: Covariates by how telling they are as a reason to a person, most telling first: the ranking of
#: the reasons where a model family has no additive contributions to rank them by.
SALIENCE = ("allowance", "fault", "habit", "battery", "interest", "end", "contacted", "launch", "renewals", "repairs",
            "usage", "lost_before")

COVARIATES: tuple[Binned, ...] = (
    Binned("end", END_LABELS, _split(end_codes, _has_history, inside=False)),
    Binned("end_with_history", END_LABELS, _split(end_codes, _varying_habit)),
    Binned("end_consistent_habit", END_LABELS, _split(end_codes, _consistent)),
    Binned("habit", HABIT_LABELS, _split(_habit_codes, _consistent, inside=False)),
    Binned("habit_consistent", HABIT_LABELS, _split(_habit_codes, _consistent)),
    Binned("allowance", ALLOWANCE_LABELS, _split(_allowance_codes, _heavy, inside=False)),
    Binned("allowance_heavy_user", ALLOWANCE_LABELS, _split(_allowance_codes, _heavy)),
    Binned("fault", FAULT_LABELS, _fault),
    Binned("battery", BATTERY_LABELS, _battery),
    Binned("launch", LAUNCH_LABELS, _launch),
    Binned("launch_pull", LAUNCH_PULL_LABELS, _split(_launch_pull, _launch_unknown)),
    Binned("launch_pull_launch_signer", LAUNCH_PULL_LABELS, _split(_launch_pull, _launch_signer)),
    # a customer seen not to wait for launches signs at the habitual date: the habit is the reason
    Binned("launch_pull_launch_ignorer", LAUNCH_PULL_LABELS, _split(_launch_pull, _launch_ignorer), explains=False),
    Binned("renewals", ("no earlier renewal", "1 earlier renewal", "2 earlier renewals", "3+ earlier renewals"),
           _static("n_renewals", [1, 2, 3])),
    Binned("lost_before", ("never lost before", "lost a contract before"), _static("n_lost", [1])),
    Binned("customer_type", ("private customer", "business customer"),
           _category("customer_type", ("private", "business")), explains=False),
    Binned("fleet", ("single car", "fleet of 2-5", "fleet of 6+"), _static("fleet_size", [2, 6]), explains=False),
    Binned("product", ("lease", "balloon", "hire purchase"),
           _category("product", ("lease", "balloon", "hire_purchase")), explains=False),
    Binned("usage", ("usage 80-120% of allowance", "usage below 80% of allowance", "usage 120-150% of allowance",
                     "usage above 150% of allowance"), _usage),
    Binned("telematics", ("telematics", "no telematics"),
           lambda df, tau, ctx: (_col(df, "has_telematics") == 0).astype(np.int16), explains=False),
    Binned("interest", INTEREST_LABELS, _interest),
    Binned("contacted", ("no contact in the last 90 days", "contacted in the last 90 days",
                         "declined in the last 90 days"), _contacted),
    Binned("repairs", ("no repair this year", "repaired this year"), _static("repairs_365d", [1])),
)
COVARIATE_NAMES = tuple(c.name for c in COVARIATES)


