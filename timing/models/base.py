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
from typing import Any

import numpy as np
import pandas as pd

from timing.core.conventions import MONTH_DAYS


@dataclass(frozen=True)
class MonthlyForecast:
    """Signing and lost probabilities per time step (``steps_per_month`` steps a month).

    ``p_signed``/``p_lost`` are per calendar month (steps summed); daily
    quantities interpolate the cumulative incidence linearly within a step.
    """

    contract_id: np.ndarray
    step_signed: np.ndarray  # (n, K * steps_per_month)
    step_lost: np.ndarray
    steps_per_month: int = 1
    drivers: np.ndarray | None = None  # (n, steps, covariates): contributions to the log signing hazard

    @classmethod
    def from_hazards(cls, contract_id: np.ndarray, h_signed: np.ndarray, h_lost: np.ndarray,
                     drivers: np.ndarray | None = None, steps_per_month: int = 1) -> MonthlyForecast:
        h_s = np.clip(h_signed, 0, 1)
        h_l = np.clip(h_lost, 0, 1 - h_s)
        surv = np.cumprod(1 - h_s - h_l, axis=1)
        before = np.column_stack([np.ones(len(h_s)), surv[:, :-1]]) if h_s.shape[1] else surv
        return cls(contract_id, before * h_s, before * h_l, steps_per_month, drivers)

    @property
    def step_days(self) -> float:
        return MONTH_DAYS / self.steps_per_month

    @property
    def months(self) -> int:
        return int(self.step_signed.shape[1] // self.steps_per_month)

    def _monthly(self, a: np.ndarray) -> np.ndarray:
        n = len(a)
        return a[:, : self.months * self.steps_per_month].reshape(n, self.months, self.steps_per_month).sum(axis=2)

    @property
    def p_signed(self) -> np.ndarray:
        return self._monthly(self.step_signed)

    @property
    def p_lost(self) -> np.ndarray:
        return self._monthly(self.step_lost)

    @property
    def cumulative_signed(self) -> np.ndarray:
        """Monthly cumulative signing probability (n, months)."""
        return np.cumsum(self.p_signed, axis=1)

    @property
    def cumulative_lost(self) -> np.ndarray:
        return np.cumsum(self.p_lost, axis=1)

    def truncate(self, months: int) -> MonthlyForecast:
        k = months * self.steps_per_month
        d = None if self.drivers is None else self.drivers[:, :k]
        return MonthlyForecast(self.contract_id, self.step_signed[:, :k], self.step_lost[:, :k], self.steps_per_month, d)

    def subset(self, rows: np.ndarray) -> MonthlyForecast:
        d = None if self.drivers is None else self.drivers[rows]
        return MonthlyForecast(self.contract_id[rows], self.step_signed[rows], self.step_lost[rows],
                               self.steps_per_month, d)

    def _cif_grid(self) -> tuple[np.ndarray, np.ndarray]:
        steps = self.step_signed.shape[1]
        grid = np.arange(steps + 1) * self.step_days
        cif = np.column_stack([np.zeros(len(self.step_signed)), np.cumsum(self.step_signed, axis=1)])
        return grid, cif

    def cif_at_days(self, days: np.ndarray) -> np.ndarray:
        """Cumulative signing probability at each of ``days`` after the as-of (n, len(days))."""
        grid, cif = self._cif_grid()
        steps = len(grid) - 1
        d = np.clip(np.asarray(days, float), 0, grid[-1])
        j = np.minimum((d // self.step_days).astype(int), steps - 1)
        frac = (d - grid[j]) / self.step_days
        return cif[:, j] + (cif[:, j + 1] - cif[:, j]) * frac

    def cif_rowwise(self, days: np.ndarray) -> np.ndarray:
        """Row i's cumulative signing probability at ``days[i]`` (n,)."""
        grid, cif = self._cif_grid()
        steps = len(grid) - 1
        d = np.clip(np.asarray(days, float), 0, grid[-1])
        j = np.minimum((d // self.step_days).astype(int), steps - 1)
        rows = np.arange(len(cif))
        frac = (d - grid[j]) / self.step_days
        return cif[rows, j] + (cif[rows, j + 1] - cif[rows, j]) * frac

    def signing_day_quantiles(self, qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Days after the as-of by which the signing probability reaches q; NaN if not in the horizon."""
        grid, cif = self._cif_grid()
        rows = np.arange(len(cif))
        out = np.full((len(cif), len(qs)), np.nan)
        for i, q in enumerate(qs):
            reached = cif >= q
            j = np.argmax(reached, axis=1)  # first grid point at or above q
            ok = reached.any(axis=1) & (j > 0)
            jj = np.where(ok, j, 1)
            lo, hi = cif[rows, jj - 1], cif[rows, jj]
            frac = np.where(hi > lo, (q - lo) / np.where(hi > lo, hi - lo, 1), 0)
            out[:, i] = np.where(ok, (jj - 1 + frac) * self.step_days, np.nan)
        return out

    def expected_signing_day(self) -> np.ndarray:
        """Mean signing day after the as-of, given a signing within the horizon (NaN if ~0)."""
        mid = (np.arange(self.step_signed.shape[1]) + 0.5) * self.step_days
        total = self.step_signed.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 1e-9, (self.step_signed * mid).sum(axis=1) / total, np.nan)

    def to_frame(self) -> pd.DataFrame:
        """Long format: contract_id, month, p_signed, p_lost."""
        n, k = self.p_signed.shape
        return pd.DataFrame({
            "contract_id": np.repeat(self.contract_id, k),
            "month": np.tile(np.arange(1, k + 1), n),
            "p_signed": self.p_signed.ravel(),
            "p_lost": self.p_lost.ravel(),
        })


class StepGrid:
    """The time steps of a panel model's specification: ``steps_per_month`` steps a month over ``months``."""

    months: int
    steps_per_month: int

    @property
    def step_days(self) -> float:
        return MONTH_DAYS / self.steps_per_month

    @property
    def steps(self) -> int:
        return self.months * self.steps_per_month


class ModelResult(ABC):
    """A fitted model: immutable, predicts, summarises, saves to plain tables.

    Every family's result holds the specification it was fitted with (``spec``), which names the
    family and its horizon.
    """

    spec: Any

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def months(self) -> int:
        return self.spec.months

    @abstractmethod
    def predict(self, features: pd.DataFrame) -> MonthlyForecast: ...

    def predicting(self, months: int) -> ModelResult:
        """This model, predicting at least its first ``months`` months (for judging it over a shorter
        horizon, where the later months are not needed). The model itself unless predicting fewer
        months saves time (the boosted model, whose predictions cost a pass of its trees per step)."""
        return self

    @abstractmethod
    def summary(self) -> pd.DataFrame: ...

    @abstractmethod
    def to_tables(self) -> dict[str, pd.DataFrame | dict]: ...


#: Contracts predicted at a time by :func:`predict_probabilities` (bounds the per-covariate drivers).
PREDICT_CHUNK = 50_000


def predict_probabilities(model: ModelResult, features: pd.DataFrame, chunk: int = PREDICT_CHUNK) -> MonthlyForecast:
    """``model.predict`` block by block, keeping the probabilities and dropping the drivers.

    For evaluation (holdout, truth folder), which needs no reasons: the
    drivers hold covariates x steps numbers per contract, gigabytes for a
    whole large portfolio at once, while the probabilities hold 2 x steps.
    """
    parts = [model.predict(features.iloc[i:i + chunk]) for i in range(0, max(len(features), 1), chunk)]
    if len(parts) == 1:
        return MonthlyForecast(parts[0].contract_id, parts[0].step_signed, parts[0].step_lost,
                               parts[0].steps_per_month)
    return MonthlyForecast(np.concatenate([p.contract_id for p in parts]),
                           np.concatenate([p.step_signed for p in parts]),
                           np.concatenate([p.step_lost for p in parts]), parts[0].steps_per_month)
