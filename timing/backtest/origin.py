"""One backtest origin: the model as it would have been on T, its plans, and how they fared.

:func:`model_at` sees only the as-of views at T (what an export on T held):
it fits, scores and reads the contact rules there, exactly as ``timing fit``,
``timing score`` and ``timing schedule`` would have on T. :func:`evaluate_origin`
then plans the policies at one capacity and judges them, and the forecast,
against what really happened (:mod:`timing.backtest.hindsight`).

Notes
-----
The comparison capacity (metrics.md) is ``COMPARISON_FACTOR`` x the average
weekly number of real repurchases in ``(T, T+H]``; on a partial origin, the
weekly rate over the days observed. It is a yardstick chosen with
hindsight, the same for every policy, and never reaches the model. When
nothing after T is observed it falls back to the model's own default (its
expected signings).

The naive policy (:func:`timing.schedule.policies.naive_start_days`) honours
consent and do-not-contact, but, like today's practice, neither the gap since
the last contact nor blackout days; the model and truth policies go through
the planner with every rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from timing.backtest.hindsight import Hindsight, Realised, realised_after
from timing.backtest.metrics import decision_rows, forecast_rows, frame, row, volume, volume_rows
from timing.config import FitSettings, ScheduleSettings
from timing.core.conventions import MONTH_DAYS
from timing.features.open_contracts import features_at
from timing.features.training import landmarks, monthly_origins, outcomes_with_ends
from timing.fitting.fit import fit_at, make_spec
from timing.models import BASELINE, ModelResult, MonthlyForecast
from timing.schedule import default_capacity, plan_windows, start_days
from timing.schedule.policies import naive_start_days, truth_values
from timing.schedule.rules import apply_rules, contact_facts
from timing.scores.scoring import forecast_from_scores, score_frame
from timing.scores.volume import model_error
from timing.store.asof import create_views, open_snapshot

COMPARISON_FACTOR = 1.2


@dataclass(frozen=True)
class OriginModel:
    """What the model made of origin T from what an export on T held (no hindsight)."""

    cutoff: date
    family: str
    scores: pd.DataFrame  # score_frame rows, aligned with ``facts``
    facts: pd.DataFrame  # contact_facts rows of the same contracts
    baseline: MonthlyForecast  # Kaplan-Meier on the same training origins, for the same contracts
    training_rows: int
    seconds: float
    #: The model's relative error of monthly totals beyond chance, on its own holdout (timing.scores.volume.model_error).
    volume_error: float = 0.0

    @property
    def forecast(self) -> MonthlyForecast:
        return forecast_from_scores(self.scores)


def km_baseline(con: duckdb.DuckDBPyConnection, source: str, T: date, cfg: FitSettings) -> ModelResult:
    """Kaplan-Meier on the contracts open at the training origins of a fit on T.

    The same origins and labels as :func:`timing.fitting.fit.fit_at` (which keeps
    its own baseline to itself), on every open contract rather than a sample.
    """
    frames = []
    for origin in monthly_origins(T, cfg.lookback_months):
        schema = f"km_{origin.strftime('%Y%m%d')}"
        create_views(con, source, origin, schema)
        frames.append(con.execute(
            f"SELECT contract_id, DATE '{origin.isoformat()}' AS as_of FROM {schema}.outcomes "
            "WHERE outcome = 'open'").df())
        con.execute(f"DROP SCHEMA {schema} CASCADE")
    rows = landmarks(pd.concat(frames, ignore_index=True), outcomes_with_ends(con, source), T, cfg.months)
    return make_spec(cfg, BASELINE).fit(rows)


def model_at(store: Path, T: date, fit: FitSettings) -> OriginModel:
    """Fit on what the store knew on ``T``, score the contracts open on T and read their contact facts."""
    t0 = time.perf_counter()
    with open_snapshot(store, T) as snap:
        fitted = fit_at(snap.con, snap.schema, T, fit)
        features = features_at(snap.con, snap.schema, T)
        facts = contact_facts(snap.con, snap.schema, T)
        km = km_baseline(snap.con, snap.schema, T, fit)
    if features.empty:
        raise ValueError(f"no contract is open on {T}: nothing to backtest")
    scores = score_frame(fitted.model, features, fit.months, f"backtest-{T.isoformat()}-{fitted.chosen}")
    facts = facts[facts["contract_id"].isin(scores["contract_id"])].reset_index(drop=True)
    scores = scores.set_index("contract_id").loc[facts["contract_id"]].reset_index()
    return OriginModel(T, fitted.chosen, scores, facts, km.predict(scores), fitted.training_rows,
                       time.perf_counter() - t0, model_error(fitted.calibration))


def comparison_capacity(realised: Realised, horizon_days: int) -> int | None:
    """``COMPARISON_FACTOR`` x the real repurchases per week over the (observed) horizon."""
    days = min(horizon_days, realised.known_days)
    if days <= 0:
        return None
    real = int(((realised.signing_day > 0) & (realised.signing_day <= days)).sum())
    return max(1, round(COMPARISON_FACTOR * real / (days / 7)))


def start_day(windows: pd.DataFrame, contract_id: np.ndarray, T: date) -> np.ndarray:
    """Each contract's window start in days after T; NaN where it has none."""
    start = pd.to_datetime(windows.set_index("contract_id")["window_start"]).reindex(contract_id)
    return ((start - pd.Timestamp(T)).dt.days).to_numpy(float)


def policy_starts(m: OriginModel, realised: Realised | None, cfg: ScheduleSettings, capacity: int,
                  policies: tuple[str, ...] = ("model", "naive", "truth")) -> dict[str, np.ndarray]:
    """Start day per contract of each policy's plan at ``capacity`` (the truth only with intended dates)."""
    ids, T, out = m.facts["contract_id"].to_numpy(), m.cutoff, {}
    if "model" in policies:
        plan = plan_windows(m.facts, m.scores, m.forecast, T, cfg, capacity)
        out["model"] = start_day(plan.planned, ids, T)
    if "naive" in policies:
        eligible = apply_rules(m.facts, T, cfg)["excluded"].to_numpy() == ""
        days_to_end = (pd.to_datetime(m.scores["scheduled_end_date"]) - pd.Timestamp(T)).dt.days.to_numpy(float)
        out["naive"] = naive_start_days(days_to_end, eligible, capacity, cfg.horizon_days)
    if "truth" in policies and realised is not None and realised.intended_day is not None:
        values = truth_values(realised.intended_day, start_days(cfg), cfg.capture_days)
        plan = plan_windows(m.facts, m.scores, m.forecast, T, cfg, capacity, values=values)
        out["truth"] = start_day(plan.planned, ids, T)
    return out


@dataclass(frozen=True)
class OriginRun:
    """One origin of a backtest: the model, what happened, the plans' start days and the result rows."""

    model: OriginModel
    realised: Realised
    capacity_per_week: int
    capacity_basis: str
    starts: dict[str, np.ndarray]  # policy -> start day per contract (NaN: no window)
    rows: pd.DataFrame  # metric, policy, month, bin, value
    horizon_days: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return self.realised.partial(self.horizon_days)

    def value(self, metric: str, policy: str | None = None) -> float:
        """One headline figure of this origin (NaN when it was not measured)."""
        r = self.rows
        sel = (r["metric"] == metric) & r["month"].isna() & r["bin"].isna()
        sel &= r["policy"].isna() if policy is None else r["policy"] == policy
        return float(r.loc[sel, "value"].iloc[0]) if sel.any() else float("nan")

    @property
    def observed_days(self) -> int:
        """Days of the horizon whose outcomes are known."""
        return min(self.horizon_days, max(self.realised.known_days, 0))


def evaluate_origin(m: OriginModel, hindsight: Hindsight, cfg: ScheduleSettings,
                    capacity_per_week: int | None = None) -> OriginRun:
    """Plan every policy at one capacity and judge plans and forecast against what happened after T."""
    t0 = time.perf_counter()
    T, H = m.cutoff, cfg.horizon_days
    realised = realised_after(hindsight, m.facts["contract_id"].to_numpy(), T)
    capacity, basis = capacity_per_week, "given"
    if capacity is None:
        capacity = comparison_capacity(realised, H)
        basis = f"{COMPARISON_FACTOR:g} x real weekly repurchases"
        if capacity is None:
            capacity, basis = default_capacity(m.forecast, cfg), "model's expected signings (nothing observed)"
        elif realised.partial(H):
            basis += f" over the {realised.known_days} days observed"
    starts = policy_starts(m, realised, cfg, capacity)
    observed = min(H, max(realised.known_days, 0))
    rows = [row("open_contracts", len(m.facts)), row("capacity_per_week", capacity), row("horizon_days", H),
            row("observed_days", observed), row("training_rows", m.training_rows)]
    rows += decision_rows(starts, realised.signing_day, observed, cfg.capture_days)
    months = int(min(m.forecast.months, np.floor(max(realised.known_days, 0) / MONTH_DAYS)))
    if months >= 1:
        rows += forecast_rows(m.forecast, m.baseline, realised.observed(months), months)
        rows += volume_rows(volume(m.forecast, realised.signing_day, months, error=m.volume_error))
    return OriginRun(m, realised, int(capacity), basis, starts, frame(rows), H,
                     {"model": m.seconds, "evaluate": time.perf_counter() - t0})


def run_origin(store: Path, T: date, fit: FitSettings, cfg: ScheduleSettings, capacity_per_week: int | None,
               hindsight: Hindsight) -> OriginRun:
    """Everything for one origin; a top-level function so that worker processes can run it."""
    return evaluate_origin(model_at(store, T, fit), hindsight, cfg, capacity_per_week)
