"""The contract-step panel: each open contract, step by step over the horizon.

A contract open on T gets one row per time step k = 1..K after T (half a
month by default: signing timing matters to the week, and a 60-day capture
window is only four steps wide). Each row holds the covariates of
:mod:`timing.models.covariates` projected to the middle of its step, and the
panel is one-hot encoded into a sparse matrix with a reference level per
covariate. The machinery here builds a bounded number of contract-step rows
at a time from compact copies of the columns the covariates read
(:func:`panel_chunks`), and does not change when a covariate is added.

Notes
-----
Step k covers days ``((k-1)*step, k*step]`` after T and its covariates are
evaluated at ``(k - 0.5) * step``. A month is ``MONTH_DAYS`` days; "month 1"
starts the day after T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from timing.core.conventions import MONTH_DAYS
from timing.models.covariates import (
    COVARIATES,
    DEFAULT_LAUNCH_MONTHS,
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
    """Level code of every covariate for each row of ``df`` evaluated at mid-step ``tau``."""
    if len(df) == 0:
        return np.zeros((0, len(COVARIATES)), np.int16)
    return np.ascontiguousarray(covariate_codes(df, tau, ctx).T)


def covariate_codes(df: pd.DataFrame, tau: np.ndarray, ctx: dict) -> np.ndarray:
    """:func:`level_codes` laid out by covariate: ``(covariates, rows)``."""
    out = np.empty((len(COVARIATES), len(df)), np.int16)
    ctx = {**ctx, "memo": {}}  # the codes and groups split across covariates, computed once
    for f, c in enumerate(COVARIATES):
        out[f] = c.code(df, tau, ctx)
        if len(df) and not 0 <= out[f].min() <= out[f].max() < c.n_levels:
            raise ValueError(f"covariate {c.name}: level codes outside 0..{c.n_levels - 1}")
    return out


def encode(rows: pd.DataFrame, tau: np.ndarray, launch_months: tuple[int, ...]) -> Design:
    """Encode panel rows; the calendar covariate depends on each row's origin (``as_of``)."""
    codes = np.zeros((len(rows), len(COVARIATES)), dtype=np.int16)
    origins = pd.to_datetime(rows["as_of"]) if len(rows) else pd.Series([], dtype="datetime64[ns]")
    for origin in origins.unique():
        m = (origins == origin).to_numpy()
        codes[m] = level_codes(rows[m], tau[m], design_context(pd.Timestamp(origin), launch_months))
    return Design(X=encode_codes(codes), codes=codes, columns=Design.column_names())


#: The feature columns the covariates read (the panel repeats only these).
PANEL_COLUMNS = ("as_of", "days_to_end", "habit_offset_days", "habit_offset_sd", "days_to_allowance",
                 "days_since_critical", "battery_soh", "battery_slope_per_year", "n_renewals", "n_lost",
                 "customer_type", "fleet_size", "product", "usage_ratio", "has_telematics", "days_since_interest",
                 "days_since_decline", "days_since_contact", "repairs_365d", "signed_months_mask")


def expand(features: pd.DataFrame, steps: int, step_days: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Repeat each contract ``steps`` times: (frame, step index k, mid-step day tau)."""
    n = len(features)
    idx = np.repeat(np.arange(n), steps)
    k = np.tile(np.arange(1, steps + 1), n)
    tau = (k - 0.5) * step_days
    return features[list(PANEL_COLUMNS)].iloc[idx].reset_index(drop=True), k, tau


# --- the panel, chunk by chunk ------------------------------------------------------------------
#
# The covariates above are written for a frame of panel rows. Materialising the whole panel (a
# million contracts make 15-24 million rows) copied every feature column as many times, so the
# rows are built here a chunk at a time, from compact columns: the covariates see the same values
# (``_col``'s floats) on fewer rows at once. A chunk holds contracts of one origin only, so the
# calendar context is one per chunk, as in :func:`encode`.

#: Contract-step rows evaluated at once: bounds the memory of fitting and scoring at any size.
CHUNK_ROWS = 250_000  # a few MiB an array: cache-sized work, faster than larger chunks


def compact_columns(features: pd.DataFrame) -> dict[str, np.ndarray | pd.Categorical]:
    """The columns the covariates read, once: numbers as floats (as ``_col`` reads them), dates as
    ``datetime64``, anything else (text) as a categorical, cheap to repeat and to match by value."""
    out: dict[str, np.ndarray | pd.Categorical] = {}
    for name in PANEL_COLUMNS:
        s = features[name]
        if pd.api.types.is_bool_dtype(s.dtype) or (pd.api.types.is_numeric_dtype(s.dtype)
                                                   and not pd.api.types.is_object_dtype(s.dtype)):
            out[name] = s.to_numpy(dtype=float, na_value=np.nan)
        elif isinstance(s.dtype, np.dtype) and s.dtype.kind == "M":
            out[name] = s.to_numpy()
        else:
            out[name] = pd.Categorical(s)
    return out


def _take(columns: dict[str, np.ndarray | pd.Categorical], part: np.ndarray, steps: np.ndarray) -> pd.DataFrame:
    """Panel rows: each contract at positions ``part`` repeated ``steps`` times."""
    return _rows(columns, np.repeat(part, steps))


def _rows(columns: dict[str, np.ndarray | pd.Categorical], pos: np.ndarray) -> pd.DataFrame:
    """Panel rows: the contracts at positions ``pos``, one row each."""
    data = {}
    for name, values in columns.items():
        if isinstance(values, pd.Categorical):
            data[name] = pd.Categorical.from_codes(values.codes[pos], dtype=values.dtype)
        else:
            data[name] = values[pos]
    return pd.DataFrame(data, copy=False)  # no copy into 2-D blocks: each column is read on its own


def panel_chunks(features: pd.DataFrame, last_step: np.ndarray, step_days: float,
                 launch_months: tuple[int, ...], chunk_rows: int | None = None,
                 select: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The contract-step panel in chunks: ``(contract position, step k, level codes)`` per chunk.

    Contract ``i`` has rows ``k = 1..last_step[i]`` evaluated at mid-step ``(k - 0.5) * step_days``;
    within a chunk, rows are by contract (in input order) then step. The codes, laid out by
    covariate ``(covariates, rows)``, are those :func:`encode` gives the same rows of the
    materialised panel. A contract without an origin (``as_of`` missing) has every covariate at its
    reference level, as in :func:`encode`. ``select(pos, k)``, if given, returns the indices of the
    chunk's rows to keep; codes are computed for those rows only.
    """
    n = len(features)
    last_step = np.asarray(last_step, dtype=np.int64)
    if n == 0 or last_step.sum() == 0:
        return
    chunk_rows = chunk_rows or CHUNK_ROWS
    columns = compact_columns(features)
    origin, uniques = pd.factorize(pd.to_datetime(features["as_of"]).to_numpy(), sort=True)
    for g in range(-1, len(uniques)):
        members = np.flatnonzero(origin == g)
        members = members[last_step[members] > 0]
        if len(members) == 0:
            continue
        ctx = design_context(pd.Timestamp(uniques[g]), launch_months) if g >= 0 else None
        # contracts per chunk: whole contracts, about ``chunk_rows`` rows
        ends = np.cumsum(last_step[members])
        cuts = np.searchsorted(ends, np.arange(chunk_rows, ends[-1], chunk_rows), side="right")
        for part in np.split(members, np.unique(cuts[(cuts > 0) & (cuts < len(members))])):
            steps = last_step[part]
            pos = np.repeat(part, steps)
            first = np.repeat(np.cumsum(steps) - steps, steps)
            k = np.arange(len(pos)) - first + 1
            if select is not None:
                kept = select(pos, k)
                pos, k = pos[kept], k[kept]
            if ctx is None:
                codes = np.zeros((len(COVARIATES), len(pos)), np.int16)
            elif select is None:
                codes = covariate_codes(_take(columns, part, steps), (k - 0.5) * step_days, ctx)
            else:
                codes = covariate_codes(_rows(columns, pos), (k - 0.5) * step_days, ctx)
            yield pos, k, codes


def step_codes(features: pd.DataFrame, steps: int, step_days: float, launch_months: tuple[int, ...],
               chunk_rows: int | None = None) -> np.ndarray:
    """Level codes of every contract at every step, laid out by covariate: ``(covariates, contracts, steps)``."""
    n = len(features)
    out = np.zeros((len(COVARIATES), n, steps), np.int16)
    for pos, _k, codes in panel_chunks(features, np.full(n, steps), step_days, launch_months, chunk_rows):
        part = pos[::steps]  # every contract has all its steps, in order
        if part[-1] - part[0] == len(part) - 1:
            out[:, part[0]:part[-1] + 1] = codes.reshape(len(COVARIATES), len(part), steps)
        else:
            out[:, part] = codes.reshape(len(COVARIATES), len(part), steps)
    return out
