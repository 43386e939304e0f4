"""Cause-specific Cox models (lifelines) on the landmark rows, stratified by time to the end.

Time is months since the origin, with monthly ties (which lifelines handles
quickly, by Efron's method). A proportional-hazards model cannot move the
peak of a curve, and where a contract stands against its scheduled end moves
the peak most; so the baseline hazard is stratified by that position at the
origin, and the other covariates (at the origin, binned as in the panel)
scale it. One model for signing, one for losing the contract; they combine
into monthly cumulative incidences as in the discrete model.

Fitted parameters are kept as plain tables (coefficients, covariate means,
baseline cumulative hazard per stratum at whole months), so a saved model
predicts without lifelines objects and without pickle.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter

from timing.core.conventions import LOST, SIGNED
from timing.models.base import ModelResult, MonthlyForecast
from timing.models.covariates import COVARIATES, END_LABELS, end_codes
from timing.models.data import Landmarks
from timing.models.panel import design_context, level_codes

STRATA = {  # 'end' level at the origin -> stratum
    0: "more than 12 months to the end", 12: "6-12 months to the end", 13: "6-12 months to the end",
    9: "3-6 months to the end", 10: "3-6 months to the end", 11: "3-6 months to the end",
    6: "0-3 months to the end", 7: "0-3 months to the end", 8: "0-3 months to the end",
}
PASSED = "scheduled end passed"
MIN_LEVEL_ROWS = 10  # rows a covariate level needs at the origins to get its own coefficient
EXCLUDED = ("end", "end_with_history", "end_consistent_habit", "launch")  # the stratum, and a calendar effect that is not proportional


def fit_cox(df: pd.DataFrame, duration_col: str, event_col: str, strata: list[str] | None = None,
            penalizer: float = 0.0) -> CoxPHFitter:
    """lifelines' CoxPHFitter (Efron ties), the one place this project calls it."""
    cph = CoxPHFitter(penalizer=penalizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph.fit(df, duration_col=duration_col, event_col=event_col, strata=strata)
    return cph


def origin_covariates(features: pd.DataFrame, launch_months: tuple[int, ...]) -> tuple[pd.DataFrame, pd.Series]:
    """Dummies of the panel covariates evaluated at the origin, and each row's stratum."""
    codes = np.zeros((len(features), len(COVARIATES)), dtype=np.int16)
    origins = pd.to_datetime(features["as_of"])
    tau = np.zeros(len(features))
    for origin in origins.unique():
        m = (origins == origin).to_numpy()
        codes[m] = level_codes(features[m], tau[m], design_context(pd.Timestamp(origin), launch_months))
    cols = {}
    for f, cov in enumerate(COVARIATES):
        if cov.name in EXCLUDED:
            continue
        for level in range(1, cov.n_levels):
            cols[f"{cov.name}={cov.labels[level]}"] = (codes[:, f] == level).astype(float)
    end = end_codes(features, tau, {})
    names = np.array([STRATA.get(level, PASSED) for level in range(len(END_LABELS))], dtype=object)
    stratum = pd.Series(names[end], index=features.index, name="stratum")
    return pd.DataFrame(cols, index=features.index), stratum


@dataclass(frozen=True)
class CoxHazard:
    months: int = 12
    penalizer: float = 0.05
    launch_months: tuple[int, ...] = (3, 9)
    name: str = "cox"
    #: Training rows lifelines sees at most (a seeded uniform sample beyond): its dense design and
    #: Newton steps took 27 s and 5 GB at 600k rows, for coefficients whose standard errors are
    #: already small at 150k. At 100k contracts 60k rows fit in 2.0 s against 4.2 s for 150k, with
    #: the same holdout IBS (0.0386) and Uno C (0.926).
    max_rows: int = 60_000
    seed: int = 0

    def fit(self, lm: Landmarks, start: CoxHazardResult | None = None) -> CoxHazardResult:
        """Fit on the landmark rows (``start``, an earlier fit, is not used: this family fits from scratch)."""
        if len(lm) > self.max_rows:
            keep = np.zeros(len(lm), bool)
            keep[np.random.default_rng(self.seed).choice(len(lm), self.max_rows, replace=False)] = True
            lm = lm.subset(keep)
        X, stratum = origin_covariates(lm.features, self.launch_months)
        # a level seen on a handful of rows cannot be estimated: lifelines' penalty acts on standardised
        # columns, weakly on a rare dummy, and Newton runs to its step limit with hazard ratios like
        # e^40 (seen on the lost model of a 400-customer demo); such rows take the reference level
        X = X.loc[:, (X.std() > 0) & (X.sum() >= MIN_LEVEL_ROWS)]
        duration = np.where(lm.event_type > 0, lm.event_month, lm.observed_months).astype(float)
        parts = {}
        for cause, code in (("signed", SIGNED), ("lost", LOST)):
            df = X.assign(duration=duration, event=(lm.event_type == code).astype(int), stratum=stratum)
            cph = fit_cox(df, "duration", "event", strata=["stratum"], penalizer=self.penalizer)
            base = cph.baseline_cumulative_hazard_
            grid = np.arange(self.months + 1, dtype=float)
            H = base.reindex(base.index.union(grid)).sort_index().ffill().fillna(0).loc[grid]
            H.columns = [c[0] if isinstance(c, tuple) else c for c in H.columns]
            parts[cause] = (cph.params_, cph._norm_mean, H, cph.summary)
        return CoxHazardResult(self, tuple(X.columns), parts)


@dataclass(frozen=True)
class CoxHazardResult(ModelResult):
    spec: CoxHazard
    columns: tuple[str, ...]
    parts: dict  # cause -> (params, norm_mean, baseline cumulative hazard by stratum, summary)

    def _monthly_hazard(self, cause: str, X: pd.DataFrame, stratum: pd.Series) -> np.ndarray:
        params, mean, H, _ = self.parts[cause]
        risk = np.exp((X[params.index] - mean[params.index]).to_numpy() @ params.to_numpy())
        dH = np.diff(H.to_numpy(), axis=0).T  # (strata, months)
        col = {s: i for i, s in enumerate(H.columns)}
        idx = np.array([col.get(s, -1) for s in stratum])
        base = np.where(idx[:, None] >= 0, dH[np.maximum(idx, 0)], 0.0)
        return 1 - np.exp(-base * risk[:, None])

    def predict(self, features: pd.DataFrame) -> MonthlyForecast:
        X, stratum = origin_covariates(features, self.spec.launch_months)
        X = X.reindex(columns=list(self.columns), fill_value=0.0)
        h_s = self._monthly_hazard("signed", X, stratum)
        h_l = self._monthly_hazard("lost", X, stratum)
        return MonthlyForecast.from_hazards(features["contract_id"].to_numpy(), h_s, h_l)

    def summary(self) -> pd.DataFrame:
        rows = []
        for cause, (_p, _m, _H, summ) in self.parts.items():
            s = summ.reset_index().rename(columns={"covariate": "covariate"})
            rows.append(pd.DataFrame({
                "outcome": cause, "covariate": s.iloc[:, 0], "coef": s["coef"], "se": s["se(coef)"],
                "hazard_ratio": s["exp(coef)"], "hr_lower": s["exp(coef) lower 95%"],
                "hr_upper": s["exp(coef) upper 95%"]}))
        return pd.concat(rows, ignore_index=True)

    def to_tables(self) -> dict[str, pd.DataFrame | dict]:
        out: dict[str, pd.DataFrame | dict] = {
            "meta": {"family": self.name, "months": self.months, "penalizer": self.spec.penalizer,
                     "launch_months": list(self.spec.launch_months), "columns": list(self.columns)},
            "summary": self.summary(),
        }
        for cause, (params, mean, H, _s) in self.parts.items():
            out[f"{cause}_params"] = pd.DataFrame({"covariate": params.index, "coef": params.to_numpy(),
                                                   "mean": mean[params.index].to_numpy()})
            out[f"{cause}_baseline"] = H.reset_index(drop=True).rename_axis("month").reset_index()
        return out

    @classmethod
    def from_tables(cls, tables: dict) -> CoxHazardResult:
        meta = tables["meta"]
        spec = CoxHazard(months=int(meta["months"]), penalizer=float(meta["penalizer"]),
                         launch_months=tuple(meta["launch_months"]))
        summary = tables["summary"]
        parts = {}
        for cause in ("signed", "lost"):
            p = tables[f"{cause}_params"]
            params = pd.Series(p["coef"].to_numpy(), index=p["covariate"].to_numpy())
            mean = pd.Series(p["mean"].to_numpy(), index=p["covariate"].to_numpy())
            H = tables[f"{cause}_baseline"].drop(columns=["month"])
            s = summary[summary["outcome"] == cause].set_index("covariate")
            summ = pd.DataFrame({"coef": s["coef"], "se(coef)": s["se"], "exp(coef)": s["hazard_ratio"],
                                 "exp(coef) lower 95%": s["hr_lower"], "exp(coef) upper 95%": s["hr_upper"]})
            parts[cause] = (params, mean, H, summ)
        return cls(spec, tuple(meta["columns"]), parts)
