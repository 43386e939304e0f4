"""The person-month panel: each open contract, month by month over the horizon.

A contract open on T gets one row per month k = 1..K after T. Each row holds
the covariates *projected to the middle of that month*: where the contract
will stand against its scheduled end, against the customer's habitual signing
date, against the day its mileage allowance runs out, how long ago its last
critical fault was, what its battery health will be. These projections are
deterministic given what is known on T (future faults are not invented), so
the same panel serves fitting and prediction.

Every covariate is binned, and the panel is one-hot encoded into a sparse
matrix with a reference level per covariate, so a fitted coefficient reads as
a log hazard ratio against that reference.

Notes
-----
Month k covers days ``((k-1)*MONTH_DAYS, k*MONTH_DAYS]`` after T; its
covariates are evaluated at ``(k - 0.5) * MONTH_DAYS``. "Month 1" is the
month starting the day after T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

MONTH_DAYS = 30.4375
DEFAULT_LAUNCH_MONTHS = (3, 9)


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


def _cut(values: np.ndarray, edges: list[float], missing_code: int | None = None) -> np.ndarray:
    """Codes 1..len(edges)+1 by ``edges`` (right-open), or ``missing_code`` for NaN."""
    codes = np.digitize(values, edges) + 1
    if missing_code is not None:
        codes = np.where(np.isnan(values), missing_code, codes)
    return codes.astype(np.int16)


def _months(x: np.ndarray) -> np.ndarray:
    return np.floor(x / MONTH_DAYS)


# --- covariates: each maps (static features repeated per month, tau in days, context) -> codes


def _end(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    # months until the scheduled end at mid-month; reference: more than 12 months away
    m = _months(df["days_to_end"].to_numpy(float) - tau)
    edges = [-6, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 9, 13]
    codes = np.digitize(m, edges).astype(np.int16)  # 0: < -6 ... 13: >= 13
    return np.where(codes == 13, 0, codes + 1).astype(np.int16)


END_LABELS = ("more than a year to the scheduled end", "scheduled end passed 6+ months ago",
              "scheduled end passed 3-6 months ago", "scheduled end passed 2-3 months ago",
              "scheduled end passed 1-2 months ago", "scheduled end passed within the last month",
              "scheduled end within a month", "scheduled end in 1 month",
              "scheduled end in 2 months", "scheduled end in 3 months", "scheduled end in 4 months",
              "scheduled end in 5 months", "scheduled end in 6-8 months", "scheduled end in 9-12 months")


def _habit(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    # months from the customer's habitual signing date (scheduled end + average offset)
    off = df["habit_offset_days"].to_numpy(float)
    gap = _months(tau - df["days_to_end"].to_numpy(float) - off)
    codes = _cut(gap, [-3, -2, -1, 0, 1, 2, 3])  # 1: <-3 ... 8: >=3
    return np.where(np.isnan(off), 0, codes).astype(np.int16)


HABIT_LABELS = ("no earlier renewal", "habitual signing date more than 3 months ahead",
                "habitual signing date in 3 months", "habitual signing date in 2 months",
                "habitual signing date next month", "at the habitual signing date",
                "habitual signing date passed 1 month ago", "habitual signing date passed 2 months ago",
                "habitual signing date passed 3+ months ago")


def _allowance(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    # months since the projected day the total allowance is reached (negative: before)
    d = df["days_to_allowance"].to_numpy(float)
    gap = _months(tau - np.where(np.isfinite(d), d, 1e6))
    codes = _cut(gap, [-6, -3, -2, -1, 0, 1, 2, 3, 6])  # 1: < -6 ... 10: >= 6
    return np.where(codes == 1, 0, codes - 1).astype(np.int16)


ALLOWANCE_LABELS = ("allowance not reached for 6+ months", "allowance reached in 3-6 months",
                    "allowance reached in 2-3 months", "allowance reached in 1-2 months",
                    "allowance reached within a month", "allowance reached this month",
                    "allowance exceeded 1 month ago", "allowance exceeded 2 months ago",
                    "allowance exceeded 3-6 months ago", "allowance exceeded 6+ months ago")


def _fault(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    since = _months(df["days_since_critical"].to_numpy(float) + tau)
    return _cut(since, [1, 2, 3, 6], missing_code=0)


FAULT_LABELS = ("no critical fault", "critical fault within a month", "critical fault 1-2 months ago",
                "critical fault 2-3 months ago", "critical fault 3-6 months ago",
                "critical fault 6+ months ago")


def _battery(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    soh = df["battery_soh"].to_numpy(float)
    slope = np.nan_to_num(df["battery_slope_per_year"].to_numpy(float).clip(-20, 5))
    projected = soh + slope * tau / 365.25
    codes = _cut(projected, [80, 82, 85, 90])  # 1: <80 ... 5: >=90
    return np.where(np.isnan(soh) | (codes == 5), 0, codes).astype(np.int16)


BATTERY_LABELS = ("battery health 90%+ or no battery", "battery health below 80%", "battery health 80-82%",
                  "battery health 82-85%", "battery health 85-90%")


def _launch(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    month = ((ctx["as_of_month0"] + np.floor((tau + ctx["as_of_day0"]) / MONTH_DAYS)) % 12 + 1).astype(int)
    launch = np.isin(month, ctx["launch_months"])
    before = np.isin(month % 12 + 1, ctx["launch_months"])
    return np.where(launch, 1, np.where(before, 2, 0)).astype(np.int16)


LAUNCH_LABELS = ("no model launch near", "model launch month", "model launch next month")


def _static(column: str, edges: list[float], missing: int = 0) -> Callable:
    def code(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        values = df[column].to_numpy(float)
        return np.where(np.isnan(values), missing, _cut(values, edges) - 1).astype(np.int16)

    return code


def _category(column: str, levels: tuple[str, ...]) -> Callable:
    def code(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
        values = df[column].astype("string").fillna("").to_numpy()
        out = np.zeros(len(values), dtype=np.int16)
        for i, level in enumerate(levels[1:], start=1):
            out[values == level] = i
        return out

    return code


def _interest(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    interested = df["interested_180d"].to_numpy(float) > 0
    contacted = df["days_since_contact"].to_numpy(float) <= 180
    return np.where(interested, 2, np.where(contacted, 1, 0)).astype(np.int16)


COVARIATES: tuple[Binned, ...] = (
    Binned("end", END_LABELS, _end),
    Binned("habit", HABIT_LABELS, _habit),
    Binned("allowance", ALLOWANCE_LABELS, _allowance),
    Binned("fault", FAULT_LABELS, _fault),
    Binned("battery", BATTERY_LABELS, _battery),
    Binned("launch", LAUNCH_LABELS, _launch),
    Binned("renewals", ("no earlier renewal", "1 earlier renewal", "2 earlier renewals", "3+ earlier renewals"),
           _static("n_renewals", [1, 2, 3])),
    Binned("lost_before", ("never lost before", "lost a contract before"), _static("n_lost", [1])),
    Binned("customer_type", ("private customer", "business customer"), _category("customer_type", ("private", "business")),
           explains=False),
    Binned("fleet", ("single car", "fleet of 2-5", "fleet of 6+"), _static("fleet_size", [2, 6]), explains=False),
    Binned("product", ("lease", "balloon", "hire purchase"), _category("product", ("lease", "balloon", "hire_purchase")),
           explains=False),
    Binned("usage", ("usage 80-120% of allowance", "usage below 80% of allowance", "usage 120-150% of allowance",
                     "usage above 150% of allowance"),
           lambda df, tau, ctx: np.select(
               [df["usage_ratio"].to_numpy(float) < 0.8, df["usage_ratio"].to_numpy(float) >= 1.5,
                df["usage_ratio"].to_numpy(float) >= 1.2], [1, 3, 2], 0).astype(np.int16)),
    Binned("telematics", ("telematics", "no telematics"),
           lambda df, tau, ctx: (df["has_telematics"].to_numpy() == 0).astype(np.int16), explains=False),
    Binned("outreach", ("no recent contact", "contacted in the last 180 days", "showed interest in the last 180 days"),
           _interest),
    Binned("repairs", ("no repair this year", "repaired this year"), _static("repairs_365d", [1])),
)


def design_context(as_of: pd.Timestamp, launch_months: tuple[int, ...] = DEFAULT_LAUNCH_MONTHS) -> dict:
    return {
        "as_of_month0": as_of.month - 1,
        "as_of_day0": (as_of.day - 1) * MONTH_DAYS / as_of.days_in_month,
        "launch_months": np.asarray(launch_months),
    }


@dataclass(frozen=True)
class Design:
    """A sparse one-hot design over the panel, with the names of its columns."""

    X: sp.csr_matrix
    codes: np.ndarray  # (rows, covariates) level codes
    columns: tuple[str, ...]

    @staticmethod
    def column_names() -> tuple[str, ...]:
        return tuple(f"{c.name}={label}" for c in COVARIATES for label in c.labels[1:])


def encode_codes(codes: np.ndarray) -> sp.csr_matrix:
    """Sparse one-hot matrix from level codes (level 0 = reference, no column)."""
    n = len(codes)
    offsets = np.cumsum([0] + [c.n_levels - 1 for c in COVARIATES[:-1]])
    active = codes > 0
    rows = np.repeat(np.arange(n), active.sum(axis=1))
    cols = (codes - 1 + offsets)[active]
    p = sum(c.n_levels - 1 for c in COVARIATES)
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n, p))


def level_codes(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """Level code of every covariate for each row of ``df`` evaluated at mid-month ``tau``."""
    if len(df) == 0:
        return np.zeros((0, len(COVARIATES)), np.int16)
    return np.column_stack([c.code(df, tau, ctx) for c in COVARIATES]).astype(np.int16)


def encode(rows: pd.DataFrame, tau: np.ndarray, launch_months: tuple[int, ...]) -> Design:
    """Encode panel rows; the calendar covariate depends on each row's origin (``as_of``)."""
    codes = np.zeros((len(rows), len(COVARIATES)), dtype=np.int16)
    origins = pd.to_datetime(rows["as_of"]) if len(rows) else pd.Series([], dtype="datetime64[ns]")
    for origin in origins.unique():
        m = (origins == origin).to_numpy()
        codes[m] = level_codes(rows[m], tau[m], design_context(pd.Timestamp(origin), launch_months))
    return Design(X=encode_codes(codes), codes=codes, columns=Design.column_names())


def expand(features: pd.DataFrame, months: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Repeat each contract ``months`` times: (frame, month index k, mid-month day tau)."""
    n = len(features)
    idx = np.repeat(np.arange(n), months)
    k = np.tile(np.arange(1, months + 1), n)
    tau = (k - 0.5) * MONTH_DAYS
    return features.iloc[idx].reset_index(drop=True), k, tau
