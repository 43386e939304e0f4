"""Forecast quality: concordance, Brier scores, calibration (metrics.md, "Forecast quality").

The event is the signing of a successor; a lost contract is a competing
event. Times are days after the as-of date (origin). Observations end at a
censoring day (the end of what is known).

Notes
-----
* Harrell's C at tau: pairs (i, j) where i signs at t_i <= tau and t_j > t_i;
  concordant when i's predicted probability of signing by tau is higher.
  Lost contracts and censored ones only ever play j. Ties in prediction count 1/2.
* Uno's C at tau: the same pairs weighted by 1 / G(t_i-)^2, G the Kaplan-Meier
  estimate of the censoring distribution (Uno et al. 2011).
* Brier score of the cumulative incidence at t with inverse probability of
  censoring weights (Graf et al. 1999; competing risks as in Gerds & Schumacher):
  a signing by t scores (1 - F)^2 / G(T-); a loss by t scores F^2 / G(T-); still
  open at t scores F^2 / G(t); censored before t scores 0.
* The integrated Brier score averages it over month ends 1..K.
Concordance compares each signing with all later contracts in chunks, so it
costs O(events x n); it is meant for evaluation samples (up to ~10^5), not for
the scoring path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from timing.core.conventions import LOST, MONTH_DAYS, SIGNED
from timing.models.base import MonthlyForecast


@dataclass(frozen=True)
class Observed:
    """What happened after the origin: event day (NaN if none), type, end of observation."""

    day: np.ndarray  # days after origin of the event, or of censoring when type == 0
    event_type: np.ndarray  # 0 censored, 1 signed, 2 lost

    @classmethod
    def from_arrays(cls, event_day: np.ndarray, event_type: np.ndarray, censor_day: np.ndarray | float) -> Observed:
        event_day = np.asarray(event_day, float)
        event_type = np.asarray(event_type, int)
        censor = np.broadcast_to(np.asarray(censor_day, float), event_day.shape)
        seen = (event_type > 0) & (event_day <= censor)
        return cls(np.where(seen, event_day, censor), np.where(seen, event_type, 0))


def censoring_survival(obs: Observed) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier of the censoring distribution: (times, G(t)) as a right-continuous step."""
    t = obs.day
    censored = obs.event_type == 0
    times = np.unique(t[censored])
    if len(times) == 0:
        return np.array([0.0]), np.array([1.0])
    order = np.sort(t)
    at_risk = len(t) - np.searchsorted(order, times, side="left")
    d = np.searchsorted(np.sort(t[censored]), times, side="right") - np.searchsorted(np.sort(t[censored]), times, side="left")
    G = np.cumprod(1 - d / np.maximum(at_risk, 1))
    return times, G


def _G(times: np.ndarray, G: np.ndarray, at: np.ndarray, left: bool) -> np.ndarray:
    idx = np.searchsorted(times, at, side="left" if left else "right") - 1
    return np.where(idx >= 0, G[np.clip(idx, 0, None)], 1.0)


def concordance(risk: np.ndarray, obs: Observed, tau: float, ipcw: bool = False, chunk: int = 2000) -> float:
    """Harrell's (``ipcw=False``) or Uno's (``ipcw=True``) C for signing by ``tau`` days."""
    risk = np.asarray(risk, float)
    t = obs.day
    events = np.flatnonzero((obs.event_type == SIGNED) & (t <= tau))
    if len(events) == 0:
        return float("nan")
    if ipcw:
        times, G = censoring_survival(obs)
        w = 1.0 / np.maximum(_G(times, G, t[events], left=True), 1e-6) ** 2
    else:
        w = np.ones(len(events))
    num = den = 0.0
    for s in range(0, len(events), chunk):
        e = events[s:s + chunk]
        later = t[None, :] > t[e][:, None]
        conc = (risk[None, :] < risk[e][:, None]) & later
        ties = (risk[None, :] == risk[e][:, None]) & later
        ww = w[s:s + chunk]
        num += float((ww * (conc.sum(axis=1) + 0.5 * ties.sum(axis=1))).sum())
        den += float((ww * later.sum(axis=1)).sum())
    return num / den if den else float("nan")


def brier_scores(forecast: MonthlyForecast, obs: Observed, months: int | None = None) -> np.ndarray:
    """IPCW Brier score of the signing cumulative incidence at each month end 1..months."""
    K = months or forecast.months
    times, G = censoring_survival(obs)
    t, e = obs.day, obs.event_type
    g_event = np.maximum(_G(times, G, t, left=True), 1e-6)
    out = np.zeros(K)
    F_all = forecast.cumulative_signed
    for k in range(1, K + 1):
        horizon = k * MONTH_DAYS
        F = F_all[:, k - 1]
        signed = (e == SIGNED) & (t <= horizon)
        lost = (e == LOST) & (t <= horizon)
        open_ = t > horizon
        g_t = max(float(_G(times, G, np.array([horizon]), left=False)[0]), 1e-6)
        score = np.where(signed, (1 - F) ** 2 / g_event, 0.0)
        score += np.where(lost, F**2 / g_event, 0.0)
        score += np.where(open_, F**2 / g_t, 0.0)
        out[k - 1] = score.mean()
    return out


def integrated_brier(forecast: MonthlyForecast, obs: Observed, months: int | None = None) -> float:
    return float(brier_scores(forecast, obs, months).mean())


def calibration_by_month(forecast: MonthlyForecast, obs: Observed, months: int | None = None) -> pd.DataFrame:
    """Predicted vs observed signings per month (contracts observed through that month).

    ``variance`` is the variance of the month's count were the probabilities exact (sum of
    p (1 - p)): what chance alone would scatter the observed count by. Months that most contracts
    without an event were not observed through are left out (with the later ones): there only the
    contracts that had their event would be compared, and the month would look all but empty (as
    the sixth month of a 181-day holdout, 31 October to 30 April, did before
    :func:`timing.fitting.fit.holdout_origin` kept holdouts to whole months).
    """
    K = months or forecast.months
    rows = []
    quiet = obs.day[obs.event_type == 0]  # contracts without an event, observed up to their day
    for k in range(1, K + 1):
        lo, hi = (k - 1) * MONTH_DAYS, k * MONTH_DAYS
        if len(quiet) and (quiet >= hi - 1e-9).mean() < 0.5:
            break
        seen = (obs.day >= hi) | (obs.event_type > 0)  # observed through month k, or had its event
        p = forecast.p_signed[seen, k - 1]
        observed = int(((obs.event_type == SIGNED) & (obs.day > lo) & (obs.day <= hi)).sum())
        rows.append({"month": k, "predicted": float(p.sum()), "observed": observed, "contracts": int(seen.sum()),
                     "variance": float((p * (1 - p)).sum())})
    return pd.DataFrame(rows, columns=["month", "predicted", "observed", "contracts", "variance"])


def calibration_curve(forecast: MonthlyForecast, obs: Observed, month: int = 6, bins: int = 10) -> pd.DataFrame:
    """Deciles of predicted P(signed by ``month``) against the observed share."""
    horizon = month * MONTH_DAYS
    p = forecast.cumulative_signed[:, month - 1]
    known = (obs.day >= horizon) | (obs.event_type > 0)
    p, obs_signed = p[known], ((obs.event_type == SIGNED) & (obs.day <= horizon))[known]
    if len(p) == 0:
        return pd.DataFrame(columns=["bin", "predicted", "observed", "contracts"])
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    df = pd.DataFrame({"bin": b, "p": p, "y": obs_signed})
    g = df.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), contracts=("p", "size"))
    return g.reset_index()


def evaluate(forecast: MonthlyForecast, baseline: MonthlyForecast, obs: Observed, months: int) -> dict[str, float]:
    """The headline forecast metrics of a model next to the no-covariate baseline."""
    out: dict[str, float] = {}
    for tau_m in (6, 12):
        if tau_m > months:
            continue
        risk = forecast.cumulative_signed[:, tau_m - 1]
        out[f"harrell_c_{tau_m}m"] = concordance(risk, obs, tau_m * MONTH_DAYS)
        out[f"uno_c_{tau_m}m"] = concordance(risk, obs, tau_m * MONTH_DAYS, ipcw=True)
    out["ibs"] = integrated_brier(forecast, obs, months)
    out["ibs_km"] = integrated_brier(baseline, obs, months)
    out["contracts"] = float(len(obs.day))
    out["signings"] = float((obs.event_type == SIGNED).sum())
    return out
