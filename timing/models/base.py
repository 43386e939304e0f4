"""What every model family returns: monthly signing and lost probabilities per contract.

Notes
-----
``p_signed[i, k-1]`` is the probability that contract i's successor is signed
in month k after the as-of date, given the contract is open on that date
(month k = days ``((k-1)*MONTH_DAYS, k*MONTH_DAYS]``). Within a month the
cumulative incidence is taken as linear in time, which is what daily
quantities (the scheduler's windows, signing-date quantiles) use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd

from timing.models.panel import MONTH_DAYS


@dataclass(frozen=True)
class MonthlyForecast:
    contract_id: np.ndarray
    p_signed: np.ndarray  # (n, K)
    p_lost: np.ndarray  # (n, K)
    drivers: np.ndarray | None = None  # (n, K, covariates): contributions to the log signing hazard

    @classmethod
    def from_hazards(cls, contract_id: np.ndarray, h_signed: np.ndarray, h_lost: np.ndarray,
                     drivers: np.ndarray | None = None) -> MonthlyForecast:
        h_s = np.clip(h_signed, 0, 1)
        h_l = np.clip(h_lost, 0, 1 - h_s)
        surv = np.cumprod(1 - h_s - h_l, axis=1)
        before = np.column_stack([np.ones(len(h_s)), surv[:, :-1]]) if h_s.shape[1] else surv
        return cls(contract_id, before * h_s, before * h_l, drivers)

    @property
    def months(self) -> int:
        return int(self.p_signed.shape[1])

    @property
    def cumulative_signed(self) -> np.ndarray:
        return np.cumsum(self.p_signed, axis=1)

    @property
    def cumulative_lost(self) -> np.ndarray:
        return np.cumsum(self.p_lost, axis=1)

    def cif_at_days(self, days: np.ndarray) -> np.ndarray:
        """Cumulative signing probability at each of ``days`` after the as-of (n, len(days))."""
        grid = np.arange(self.months + 1) * MONTH_DAYS
        cif = np.column_stack([np.zeros(len(self.p_signed)), self.cumulative_signed])
        d = np.clip(np.asarray(days, float), 0, grid[-1])
        j = np.minimum((d // MONTH_DAYS).astype(int), self.months - 1)
        frac = (d - grid[j]) / MONTH_DAYS
        return cif[:, j] + (cif[:, j + 1] - cif[:, j]) * frac

    def signing_day_quantiles(self, qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Days after the as-of by which the signing probability reaches q; NaN if not in the horizon."""
        cif = np.column_stack([np.zeros(len(self.p_signed)), self.cumulative_signed])
        out = np.full((len(cif), len(qs)), np.nan)
        for i, q in enumerate(qs):
            reached = cif >= q
            j = np.argmax(reached, axis=1)  # first grid point at or above q
            ok = reached.any(axis=1) & (j > 0)
            jj = np.where(ok, j, 1)
            lo, hi = cif[np.arange(len(cif)), jj - 1], cif[np.arange(len(cif)), jj]
            frac = np.where(hi > lo, (q - lo) / np.where(hi > lo, hi - lo, 1), 0)
            out[:, i] = np.where(ok, (jj - 1 + frac) * MONTH_DAYS, np.nan)
        return out

    def expected_signing_day(self) -> np.ndarray:
        """Mean signing day after the as-of, given a signing within the horizon (NaN if ~0)."""
        mid = (np.arange(self.months) + 0.5) * MONTH_DAYS
        total = self.p_signed.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 1e-9, (self.p_signed * mid).sum(axis=1) / total, np.nan)

    def to_frame(self) -> pd.DataFrame:
        """Long format: contract_id, month, p_signed, p_lost."""
        n, k = self.p_signed.shape
        return pd.DataFrame({
            "contract_id": np.repeat(self.contract_id, k),
            "month": np.tile(np.arange(1, k + 1), n),
            "p_signed": self.p_signed.ravel(),
            "p_lost": self.p_lost.ravel(),
        })


class ModelResult(ABC):
    """A fitted model: immutable, predicts, summarises, saves to plain tables."""

    name: str
    months: int

    @abstractmethod
    def predict(self, features: pd.DataFrame) -> MonthlyForecast: ...

    @abstractmethod
    def summary(self) -> pd.DataFrame: ...

    @abstractmethod
    def to_tables(self) -> dict[str, pd.DataFrame | dict]: ...
