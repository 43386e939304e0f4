"""Discrete-time competing-risks hazard by gradient-boosted trees on the contract-step panel.

The same panel and labels as :mod:`timing.models.discrete` (each open
contract step by step, outcome nothing / signed / lost), but the step's
outcome is predicted by a multiclass LightGBM model instead of a multinomial
logit on binned covariates. The trees see the binned covariate codes *and*
the continuous projections behind them (days to the scheduled end, to the
habitual signing date, to the allowance crossing, since the last critical
fault, the battery's health at the step, the spread of past signings), so
they can find interactions an additive logit misses (for instance the habit
of a customer whose past signings were irregular).

Notes
-----
- Hazards per step come from the class probabilities; cumulative incidence
  follows as in the discrete model (:meth:`MonthlyForecast.from_hazards`).
- The number of trees is chosen by early stopping on a fifth of the training contracts set
  aside (:meth:`BoostedHazard.fit`), and kept for the refit on every origin. The temporal
  holdout is not used for it: it judges the fit and sets the width of the volume interval.
- On a small panel (at most ``bag_rows`` contract-step rows), ``bags`` ensembles, each on its own
  sample and its own fifth set aside, are averaged: the seed of a single fit moves its forecast
  most where events are few. A larger panel gets one ensemble, which gains more from more rows
  than from more ensembles (:meth:`BoostedHazard.bags_for`).
- Training is capped at ``max_rows`` contract-step rows: beyond it, a
  weighted case-control sample (:meth:`BoostedHazard.training_rows`) keeps
  signing and loss rows at ``event_oversampling`` times the rate of the
  event-free ones, each row weighted by the inverse of its rate, so the
  weighted loss estimates the whole panel's and the cost of a fit stays flat
  at any portfolio size.
- Threads: each fit and prediction takes the cores other processes leave idle
  when it starts, within the budget (:func:`timing.core.runtime.threads_now`);
  the trees are the same whatever the number.
- The fitted model is saved as LightGBM's own text format inside the
  model folder's JSON (parsed on load, never executed) and checked by the
  folder's manifest like every other family.
- Trees have no additive per-covariate contributions, and exact tree SHAP
  values cost about seven predictions (minutes for a million contracts). The
  forecast's ``drivers`` instead give each covariate, at every step, its
  weight in the salience order of :data:`timing.models.panel.SALIENCE` where it is
  away from its reference level and zero where it is not. The reasons then
  name first what changes at the contract's likeliest step against the other
  steps (the habitual date reached, the allowance crossed, a fault's
  aftermath), then what holds throughout (earlier renewals, usage), as
  :func:`timing.scores.reasons.explain` ranks contributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from timing.core import runtime
from timing.core.conventions import LOST, SIGNED
from timing.core.errors import ModelError
from timing.core.progress import Task, current
from timing.models.base import ModelResult, MonthlyForecast, StepGrid
from timing.models.covariates import COVARIATES, SALIENCE, battery_at
from timing.models.data import Landmarks
from timing.models.discrete import DiscreteHazard
from timing.models.panel import panel_chunks

#: Feature columns read besides the covariates' codes (projected to each step by :func:`_design`).
RAW_COLUMNS = ("as_of", "days_to_end", "habit_offset_days", "habit_offset_sd", "last_offset_days",
               "days_to_allowance", "days_since_critical", "usage_ratio", "n_renewals", "n_lost", "battery_soh",
               "battery_slope_per_year")
#: The trees' inputs: every covariate's level code, then the continuous projections.
INPUTS = tuple(c.name for c in COVARIATES) + (
    "day", "days_to_end_at_step", "days_from_habit", "habit_spread_days", "days_from_last_offset",
    "days_from_allowance", "days_since_critical_at_step", "usage_ratio_value", "renewals_count", "lost_count",
    "battery_soh_at_step", "day_of_year")

def _raw(features: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {c: features[c].to_numpy(dtype=float, na_value=np.nan) for c in RAW_COLUMNS if c != "as_of"}
    out["day_of_year"] = pd.to_datetime(features["as_of"]).dt.dayofyear.to_numpy(float)
    return out


def _design(raw: dict[str, np.ndarray], pos: np.ndarray, tau: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rows of the trees' inputs for contracts ``pos`` at mid-step days ``tau`` (codes by covariate)."""
    g = {k: v[pos] for k, v in raw.items()}
    to_end = g["days_to_end"] - tau
    cont = np.column_stack([
        tau, to_end, -to_end - g["habit_offset_days"], g["habit_offset_sd"], -to_end - g["last_offset_days"],
        tau - g["days_to_allowance"], g["days_since_critical"] + tau, g["usage_ratio"], g["n_renewals"],
        g["n_lost"], battery_at(g["battery_soh"], g["battery_slope_per_year"], tau), (g["day_of_year"] + tau) % 365.25,
    ])
    return np.hstack([codes.T.astype(np.float32), cont.astype(np.float32)])


@dataclass(frozen=True)
class BoostedHazard(StepGrid):
    """Specification of the boosted discrete-time competing-risks hazard."""

    months: int = 12
    steps_per_month: int = 2
    launch_months: tuple[int, ...] = (3, 9)
    #: The most trees a fit may grow: it stops where the loss on a fifth of the contracts set aside
    #: has not improved for ``early_stopping`` trees and keeps the best count (0: always ``trees``).
    trees: int = 300
    learning_rate: float = 0.05
    early_stopping: int = 20
    #: Ensembles fitted on their own samples (seeds ``seed``, ``seed + 1``, ...) and averaged, on
    #: panels of at most ``bag_rows`` rows (one ensemble beyond).
    bags: int = 2
    bag_rows: int = 3_000_000
    leaves: int = 31
    min_rows_in_leaf: int = 200
    #: Contract-step rows one ensemble trains on (a weighted case-control sample beyond it).
    max_rows: int = 350_000
    #: Event rows are sampled at this many times the rate of event-free rows beyond ``max_rows``.
    event_oversampling: float = 4.0
    seed: int = 0
    name: str = "boost"

    def params(self) -> dict[str, Any]:
        return {"objective": "multiclass", "num_class": 3, "learning_rate": self.learning_rate,
                "num_leaves": self.leaves, "min_data_in_leaf": self.min_rows_in_leaf, "lambda_l2": 1.0,
                "feature_fraction": 0.9, "seed": self.seed, "deterministic": True, "force_row_wise": True,
                "num_threads": runtime.threads_now(), "verbose": -1}

    def sampling_rates(self, lm: Landmarks) -> tuple[float, float]:
        """The shares of ``lm``'s panel rows kept for training: of event rows (signed or lost) and of
        event-free rows. Within ``max_rows``, event rows are kept at ``event_oversampling`` times the
        rate of event-free rows (all of them where that rate would pass 1)."""
        event_step, last = DiscreteHazard(self.months, self.steps_per_month).outcome_steps(lm)
        events = int(((event_step >= 1) & (event_step <= self.steps)).sum())
        quiet = int(last.sum()) - events
        k = self.event_oversampling
        keep_quiet = min(1.0, self.max_rows / max(quiet + k * events, 1))
        keep_events = min(1.0, k * keep_quiet)
        if keep_events == 1.0 and quiet:
            keep_quiet = min(1.0, max(self.max_rows - events, 0) / quiet)
        return keep_events, keep_quiet

    def bags_for(self, lm: Landmarks) -> int:
        """How many ensembles a fit on ``lm`` averages: ``bags`` where its panel holds at most
        ``bag_rows`` contract-step rows, otherwise one."""
        _event_step, last = DiscreteHazard(self.months, self.steps_per_month).outcome_steps(lm)
        return max(self.bags, 1) if int(last.sum()) <= self.bag_rows else 1

    def training_rows(self, lm: Landmarks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trees' inputs, outcome codes and weights of the panel rows kept for training.

        A weighted case-control sample: beyond ``max_rows``, rows are kept at seeded rates
        (:meth:`sampling_rates`; events, about 2% of the panel, at a higher rate) and weighted by
        the inverse of their rate, so the weighted loss estimates the whole panel's.
        """
        keep_events, keep_quiet = self.sampling_rates(lm)
        rng = np.random.default_rng(self.seed)
        discrete = DiscreteHazard(self.months, self.steps_per_month, launch_months=self.launch_months)
        raw = _raw(lm.features)
        sample = None
        if keep_events < 1 or keep_quiet < 1:
            def sample(y: np.ndarray) -> np.ndarray:
                return np.flatnonzero(rng.random(len(y)) < np.where(y != 0, keep_events, keep_quiet))
        X, Y, W = [], [], []
        for pos, k, codes, y in discrete.labelled_chunks(lm, sample=sample):
            X.append(_design(raw, pos, (k - 0.5) * self.step_days, codes))
            Y.append(y)
            W.append(1.0 / np.where(y != 0, keep_events, keep_quiet))
        if not X:
            raise ValueError("no contract-step row to learn from")
        return np.vstack(X), np.concatenate(Y), np.concatenate(W)

    def fit(self, lm: Landmarks, start: BoostedHazardResult | None = None) -> BoostedHazardResult:
        """Fit tree ensembles on the landmark rows, from scratch: :meth:`bags_for` of them, or as many
        as ``start`` has; each draws its own sample (seed ``seed + b``) and the forecast averages
        their step probabilities.

        How many trees: with ``start`` (the holdout's fit, when refitting on every origin), the counts
        that fit kept, on all the rows. Otherwise each ensemble sets aside a fifth of the contracts
        (another fifth for every bag), adds trees on the rest until the set-aside rows' weighted
        multiclass log loss has not improved for ``early_stopping`` trees, and keeps the best count
        (the temporal holdout stays untouched for judging the fit).
        """
        texts, rounds, sizes = [], [], []
        given_rounds = start.rounds if isinstance(start, BoostedHazardResult) else ()
        bags = len(given_rounds) or self.bags_for(lm)
        for b in range(bags):
            given = given_rounds[b] if given_rounds else None
            with current().task(f"boosted trees, ensemble {b + 1} of {bags}", total=given or self.trees) as task:
                text, kept, y = replace(self, seed=self.seed + b)._fit_one(lm, given, task)
            texts.append(text)
            rounds.append(kept)
            sizes.append((len(y), int((y == SIGNED).sum()), int((y == LOST).sum())))
        n_rows, n_events, n_lost = (int(v) for v in np.sum(sizes, axis=0))
        return BoostedHazardResult(self, tuple(texts), n_rows, n_events, n_lost, tuple(rounds))

    def _fit_one(self, lm: Landmarks, rounds: int | None, task: Task | None = None) -> tuple[str, int, np.ndarray]:
        """One ensemble on this spec's sample: (LightGBM text model, boosting rounds kept, outcome codes).
        ``task`` counts the trees grown."""
        import lightgbm as lgb

        counting = [lambda _env: task.advance()] if task is not None else []

        aside = np.zeros(len(lm), bool)
        if rounds is None and self.early_stopping:
            ids = lm.features["contract_id"].to_numpy()
            aside = (pd.util.hash_array(ids).astype(np.uint64) + np.uint64(self.seed)) % np.uint64(5) == 0
        if rounds is not None or not aside.any() or aside.all():
            X, y, w = self.training_rows(lm)
            kept = min(rounds or self.trees, self.trees)
            data = lgb.Dataset(X, y, weight=w, feature_name=list(INPUTS), free_raw_data=True)
            booster = lgb.train(self.params(), data, num_boost_round=kept, callbacks=counting)
            return booster.model_to_string(), kept, y
        X, y, w = self.training_rows(lm.subset(~aside))
        Xv, yv, wv = self.training_rows(lm.subset(aside))
        data = lgb.Dataset(X, y, weight=w, feature_name=list(INPUTS), free_raw_data=True)
        held = lgb.Dataset(Xv, yv, weight=wv, reference=data, free_raw_data=True)
        booster = lgb.train(self.params(), data, num_boost_round=self.trees, valid_sets=[held],
                            callbacks=[*counting, lgb.early_stopping(self.early_stopping, verbose=False)])
        kept = max(int(booster.best_iteration), 1)
        return booster.model_to_string(num_iteration=kept), kept, y


@dataclass(frozen=True)
class BoostedHazardResult(ModelResult):
    """A fitted boosted hazard: LightGBM's text models (one per bag) and fit statistics."""

    spec: BoostedHazard
    model_texts: tuple[str, ...]
    n_rows: int
    n_events: int
    n_lost: int
    rounds: tuple[int, ...] = ()  # boosting rounds (trees per class) of each bag
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def boosters(self) -> list[Any]:
        import lightgbm as lgb

        if "boosters" not in self._cache:
            self._cache["boosters"] = [lgb.Booster(model_str=t) for t in self.model_texts]
        return self._cache["boosters"]

    def predicting(self, months: int) -> BoostedHazardResult:
        """The same trees predicting only the first ``months`` months: each step's hazards are the
        same, and the steps after them are not computed."""
        if months >= self.spec.months:
            return self
        return BoostedHazardResult(replace(self.spec, months=max(int(months), 1)), self.model_texts, self.n_rows,
                                   self.n_events, self.n_lost, self.rounds, self._cache)

    def predict(self, features: pd.DataFrame) -> MonthlyForecast:
        n, steps = len(features), self.spec.steps
        h_s, h_l = np.zeros((n, steps)), np.zeros((n, steps))
        raw = _raw(features) if n else {}
        drivers = np.zeros((n, steps, len(COVARIATES)))
        weight = _salience_weights()
        threads = runtime.threads_now() if n else 1
        for pos, k, codes in panel_chunks(features, np.full(n, steps), self.spec.step_days,
                                          self.spec.launch_months):
            X = _design(raw, pos, (k - 0.5) * self.spec.step_days, codes)
            P = sum(b.predict(X, num_threads=threads) for b in self.boosters()) / len(self.boosters())
            h_s[pos, k - 1], h_l[pos, k - 1] = P[:, SIGNED], P[:, LOST]
            drivers[pos, k - 1] = (codes.T != 0) * weight
        return MonthlyForecast.from_hazards(features["contract_id"].to_numpy(), h_s, h_l, drivers=drivers,
                                            steps_per_month=self.spec.steps_per_month)

    def summary(self) -> pd.DataFrame:
        """Each input's total gain in the trees (how much it sharpened the fit), largest first."""
        gain = sum(b.feature_importance("gain") for b in self.boosters())
        splits = sum(b.feature_importance("split") for b in self.boosters())
        return (pd.DataFrame({"outcome": "all", "covariate": list(INPUTS), "gain": gain, "splits": splits})
                .sort_values(["gain", "covariate"], ascending=[False, True]).reset_index(drop=True))

    def to_tables(self) -> dict[str, pd.DataFrame | dict]:
        s = self.spec
        meta = {"family": self.name, "months": s.months, "steps_per_month": s.steps_per_month,
                "launch_months": list(s.launch_months), "trees": s.trees, "learning_rate": s.learning_rate,
                "leaves": s.leaves, "min_rows_in_leaf": s.min_rows_in_leaf, "max_rows": s.max_rows,
                "event_oversampling": s.event_oversampling, "early_stopping": s.early_stopping, "bags": s.bags,
                "bag_rows": s.bag_rows, "seed": s.seed,
                "inputs": list(INPUTS), "n_rows": self.n_rows, "n_events": self.n_events, "n_lost": self.n_lost,
                "rounds": list(self.rounds)}
        return {"meta": meta, "trees": {"lightgbm_text_models": list(self.model_texts)}}

    @classmethod
    def from_tables(cls, tables: dict) -> BoostedHazardResult:
        meta = tables["meta"]
        if tuple(meta["inputs"]) != INPUTS:
            raise ModelError("the saved model's inputs differ from this version's panel: fit it again")
        spec = BoostedHazard(months=int(meta["months"]), steps_per_month=int(meta["steps_per_month"]),
                             launch_months=tuple(meta["launch_months"]), trees=int(meta["trees"]),
                             learning_rate=float(meta["learning_rate"]), leaves=int(meta["leaves"]),
                             min_rows_in_leaf=int(meta["min_rows_in_leaf"]), max_rows=int(meta["max_rows"]),
                             event_oversampling=float(meta.get("event_oversampling", 4.0)),
                             early_stopping=int(meta["early_stopping"]), bags=int(meta["bags"]),
                             bag_rows=int(meta["bag_rows"]), seed=int(meta["seed"]))
        texts, rounds = tables["trees"]["lightgbm_text_models"], meta["rounds"]
        return cls(spec, tuple(str(t) for t in texts), int(meta["n_rows"]), int(meta["n_events"]),
                   int(meta["n_lost"]), tuple(int(r) for r in rounds))


def _salience_weights() -> np.ndarray:
    """Per covariate: its rank in :data:`timing.models.panel.SALIENCE` (most telling highest), by the
    covariate it splits (``habit_consistent`` as ``habit``); 0 for covariates never given as reasons."""
    out = np.zeros(len(COVARIATES))
    for f, c in enumerate(COVARIATES):
        base = next((s for s in SALIENCE if c.name == s or c.name.startswith(s + "_")), None)
        if base is not None and c.explains:
            out[f] = len(SALIENCE) - SALIENCE.index(base)
    return out
