"""The capture metric and the reference policies of ``metrics.md``.

A repurchase signed on day d (T < d <= T+H) is *captured* when its contract's
window starts within the 60 days before it: ``d - 60 <= start <= d``.
capture = captured / repurchases in (T, T+H]; precision = captured / windows.

* **naive**: today's practice — outreach starts 90 days before the scheduled
  end, earliest end first, spilling into the next weeks when a week is full.
  Contracts already inside those 90 days start on the as-of date (nobody can
  start in the past), in the same end order.
* **truth** (synthetic data only): the planner fed the simulator's intended
  signing dates, an upper reference no model can reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAIVE_LEAD_DAYS = 90


def naive_start_days(days_to_end: np.ndarray, eligible: np.ndarray, capacity: int, horizon_days: int) -> np.ndarray:
    """Start day (after the as-of) of each contract's naive window; NaN when none fits.

    Weeks are counted from the as-of date. With contracts sorted by end date the
    desired weeks never decrease, so the greedy spill has a closed form over
    "slots" (slot = week * C + position): slot_j = j + max_{k<=j}(desired_k * C - k).
    """
    n = len(days_to_end)
    out = np.full(n, np.nan)
    if capacity <= 0 or n == 0:
        return out
    idx = np.flatnonzero(eligible)
    idx = idx[np.argsort(days_to_end[idx], kind="stable")]
    desired_day = np.maximum(days_to_end[idx] - NAIVE_LEAD_DAYS, 0)
    desired_week = np.floor(desired_day / 7).astype(np.int64)
    j = np.arange(len(idx))
    slot = j + np.maximum.accumulate(desired_week * capacity - j)
    week = slot // capacity
    # a spilled window starts at the start of its week; an unspilled one on its own day
    day = np.where(week == desired_week, desired_day, week * 7)
    ok = day <= horizon_days
    out[idx[ok]] = day[ok]
    return out


@dataclass(frozen=True)
class Capture:
    repurchases: int
    captured: int
    windows: int

    @property
    def capture(self) -> float:
        return self.captured / self.repurchases if self.repurchases else float("nan")

    @property
    def precision(self) -> float:
        return self.captured / self.windows if self.windows else float("nan")


def capture(start_day: np.ndarray, signing_day: np.ndarray, horizon_days: int, capture_days: int = 60) -> Capture:
    """Capture of a plan: start days and actual signing days (NaN: none), both after the as-of."""
    signed = (signing_day > 0) & (signing_day <= horizon_days)
    caught = signed & (start_day >= signing_day - capture_days) & (start_day <= signing_day)
    return Capture(int(signed.sum()), int(caught.sum()), int(np.isfinite(start_day).sum()))


def truth_values(intended_day: np.ndarray, start_days: np.ndarray, capture_days: int = 60) -> np.ndarray:
    """Value matrix of the truth policy: 1 where the intended signing falls in the capture span."""
    d = intended_day[:, None]
    s = start_days[None, :]
    return ((d >= s) & (d <= s + capture_days)).astype(float)
