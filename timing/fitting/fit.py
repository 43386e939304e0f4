"""``timing fit``: choose a model family on a temporal holdout, refit it on everything, save it.

Notes
-----
On a fit date T (the as-of), training rows are the contracts open at monthly
origins over ``lookback_months`` before T, labelled with what was known on T.
The holdout repeats that one step back in time: the families are fitted on
origins before ``T_h`` (``T - holdout_months``, or a month earlier where
those calendar months are shorter than as many model months: :func:`holdout_origin`)
with labels known on T_h, then judged on the contracts open on T_h against
what happened up to T. The
family with the lower integrated Brier score is refitted on all origins and
saved. Features at an origin are the same whether seen from T or from T_h
(the as-of views guarantee it), so they are computed once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from timing.config import FitSettings
from timing.core.conventions import MONTH_DAYS, SIGNED
from timing.core.progress import Progress, current, reporting
from timing.features.open_contracts import features_at
from timing.features.training import landmarks, monthly_origins, origin_features, outcomes_with_ends
from timing.fitting.registry import register_model
from timing.models import BASELINE, MODEL_COLUMNS, REGISTRY, ModelResult
from timing.models.base import predict_probabilities
from timing.models.data import Landmarks, renumbered
from timing.models.io import SavedModel, save_model
from timing.models.metrics import Observed, calibration_by_month, evaluate
from timing.store.asof import create_views, open_snapshot

DEFAULT_MODEL_ROOT = Path("data/models")


def make_spec(cfg: FitSettings, family: str) -> Any:
    """The registry's specification of ``family`` with these settings."""
    if family == BASELINE:
        return REGISTRY[family](months=cfg.months)
    return REGISTRY[family](months=cfg.months, launch_months=cfg.launch_months)


@dataclass(frozen=True)
class FitReport:
    as_of: date
    chosen: str
    holdout_as_of: date
    holdout: pd.DataFrame  # one row per family: metrics
    calibration: pd.DataFrame  # chosen family, per month on the holdout
    saved: SavedModel
    training_rows: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    truth: dict[str, float] | None = None

    def summary(self) -> str:
        lines = [f"fitted on what was known on {self.as_of}: {self.training_rows:,} contract-origin rows",
                 f"holdout: fitted before {self.holdout_as_of}, judged on what happened up to {self.as_of}"]
        cols = [c for c in ("family", "uno_c_6m", "harrell_c_6m", "ibs", "ibs_km") if c in self.holdout]
        lines.append(self.holdout[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        lines.append(f"chosen: {self.chosen} (lowest integrated Brier score); saved to {self.saved.path}")
        if self.truth:
            t = self.truth
            lines.append("against the truth folder (open contracts on the as-of date): "
                         f"Uno C 6m {t.get('uno_c_6m', float('nan')):.4f}, IBS {t['ibs']:.4f} "
                         f"vs Kaplan-Meier {t['ibs_km']:.4f}")
        return "\n".join(lines)


def observed_from(lm: Landmarks) -> Observed:
    return Observed.from_arrays(lm.event_day, lm.event_type, lm.observed_day)


def data_fingerprint(con, schema: str) -> str:  # noqa: ANN001
    counts = {t: con.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]
              for t in ("customers", "vehicles", "contracts", "readings", "fault_codes", "service_visits", "contacts")}
    latest = con.execute(f"SELECT max(signed_date), max(actual_end_date) FROM {schema}.contracts").fetchone()
    return hashlib.sha256(json.dumps([counts, [str(x) for x in latest]]).encode()).hexdigest()


@dataclass(frozen=True)
class Fitted:
    """What fitting on one date produced, before anything is saved."""

    as_of: date
    model: ModelResult
    chosen: str
    holdout_as_of: date
    holdout: pd.DataFrame
    calibration: pd.DataFrame
    origins: list[date]
    training_rows: int
    fingerprint: str
    stage_seconds: dict[str, float]
    truth: dict[str, float] | None = None


def fit_at(
    con: Any,
    source: str,
    T: date,
    cfg: FitSettings,
    truth: Path | None = None,
    progress: Progress | Callable[[str], None] | None = None,
) -> Fitted:
    """Fit on the views in ``source`` (as of ``T``): holdout comparison, then the chosen family on all.

    Pure with respect to the store: nothing is written. Backtests call it at
    each origin with the views of that origin.
    """
    with reporting(progress):
        return _fit_at(con, source, T, cfg, truth)


def _fit_at(con: Any, source: str, T: date, cfg: FitSettings, truth: Path | None) -> Fitted:
    import time

    say = current()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    origins = monthly_origins(T, cfg.lookback_months)
    T_h = holdout_origin(T, cfg)
    feats = origin_features(con, source, origins, cfg.max_contracts_per_origin, cfg.seed, say)
    if feats.empty:
        raise ValueError(f"no contract was open at any training origin before {T}: nothing to learn from")
    feats = feats[list(MODEL_COLUMNS)]
    outcomes_T = outcomes_with_ends(con, source)
    holdout_schema = f"holdout_{T.strftime('%Y%m%d')}"
    create_views(con, source, T_h, holdout_schema)
    outcomes_h = outcomes_with_ends(con, holdout_schema)
    con.execute(f"DROP SCHEMA {holdout_schema} CASCADE")
    fingerprint = data_fingerprint(con, source)
    open_at_T = features_at(con, source, T) if truth else None
    stages["features"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    origin = pd.to_datetime(feats["as_of"]).dt.date
    train_h = landmarks(renumbered(feats[(origin < T_h).to_numpy()]), outcomes_h, T_h, cfg.months)
    eval_h = landmarks(renumbered(feats[(origin == T_h).to_numpy()]), outcomes_T, T, cfg.months)
    if len(train_h) == 0 or len(eval_h) == 0:
        raise ValueError(f"too little history before {T} for a {cfg.holdout_months}-month holdout "
                         f"(lookback {cfg.lookback_months} months)")
    obs_h = observed_from(eval_h)
    horizon_h = min(cfg.months, cfg.holdout_months)
    baseline_h = make_spec(cfg, BASELINE).fit(train_h)
    base_fc = predict_probabilities(baseline_h, eval_h.features)
    rows, fitted, results = [], {}, {}
    for family in (*cfg.families, BASELINE):
        with say.task(f"holdout: fitting {family}"):
            res = baseline_h if family == BASELINE else make_spec(cfg, family).fit(train_h)
            fc = predict_probabilities(res.predicting(horizon_h), eval_h.features)  # over horizon_h months
        fitted[family], results[family] = fc, res
        rows.append({"family": family, **evaluate(fc, base_fc, obs_h, horizon_h)})
    holdout = pd.DataFrame(rows)
    candidates = holdout[holdout["family"] != BASELINE]
    chosen = str(candidates.sort_values(["ibs", "family"]).iloc[0]["family"])
    calibration = calibration_by_month(fitted[chosen], signings_through(eval_h, (T - T_h).days), horizon_h)
    stages["holdout"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    with say.task(f"refitting {chosen} on all {len(origins)} origins"):
        train = landmarks(feats, outcomes_T, T, cfg.months)
        # from the holdout fit where the family can use it (the discrete model's Newton: same optimum, fewer steps)
        final: ModelResult = make_spec(cfg, chosen).fit(train, start=results[chosen])
    stages["fit"] = time.perf_counter() - t2

    truth_metrics = None
    if truth is not None and open_at_T is not None:
        truth_metrics = evaluate_against_truth(final, make_spec(cfg, BASELINE).fit(train), open_at_T, truth, T,
                                               cfg.months)
    return Fitted(T, final, chosen, T_h, holdout, calibration, origins, len(train), fingerprint, stages,
                  truth_metrics)


def holdout_origin(T: date, cfg: FitSettings) -> date:
    """The holdout's origin ``T_h``: the latest training origin (:func:`monthly_origins`) at least
    ``holdout_months`` whole model months (of ``MONTH_DAYS``) before T, so that every month the holdout
    is judged on ends by T. Usually T - ``holdout_months``; a month earlier where those calendar months fall short
    (31 October to 30 April is 181 days, 5.95 model months: the sixth month's Brier score and count
    would have been judged on the contracts that had their event alone)."""
    need = cfg.holdout_months * MONTH_DAYS
    for origin in reversed(monthly_origins(T, cfg.lookback_months)):
        if (T - origin).days >= need - 1e-9:
            return origin
    raise ValueError(f"too little history before {T} for a {cfg.holdout_months}-month holdout "
                     f"(lookback {cfg.lookback_months} months)")


def signings_through(lm: Landmarks, days: float) -> Observed:
    """The signings of ``lm``'s contracts within ``days`` of their origin, every contract observed that
    long: whether a contract signed by then is known for each one (an open one has not, a lost one did
    not), where its competing-risks observation (:func:`observed_from`) stops at the end of a contract
    whose successor or loss is not known yet. For counting signings per month (the calibration)."""
    signed = (lm.event_type == SIGNED) & (lm.event_day <= days)
    return Observed.from_arrays(np.where(signed, lm.event_day, np.nan), np.where(signed, SIGNED, 0), float(days))


def fit_models(
    store: Path,
    as_of: date | None = None,
    settings: FitSettings | None = None,
    model_root: Path = DEFAULT_MODEL_ROOT,
    truth: Path | None = None,
    progress: Progress | Callable[[str], None] | None = None,
) -> FitReport:
    """Fit on what the store knew on ``as_of``, save the chosen model and register it."""
    cfg = settings or FitSettings()
    with open_snapshot(store, as_of) as snap:
        f = fit_at(snap.con, snap.schema, snap.as_of, cfg, truth, progress)
    version = f"{f.as_of.isoformat()}-{f.chosen}-{f.fingerprint[:8]}"
    meta = {
        "version": version, "fit_as_of": f.as_of.isoformat(), "origins": [o.isoformat() for o in f.origins],
        "holdout_as_of": f.holdout_as_of.isoformat(), "months": cfg.months, "training_rows": f.training_rows,
        "data_fingerprint": f.fingerprint, "holdout_metrics": f.holdout.to_dict(orient="records"),
        "holdout_calibration": f.calibration.to_dict(orient="records"), "truth_metrics": f.truth,
        "settings": asdict(cfg),
    }
    saved = save_model(f.model, Path(model_root) / version, meta)
    register_model(store, saved, f.as_of, f.chosen)
    return FitReport(f.as_of, f.chosen, f.holdout_as_of, f.holdout, f.calibration, saved, f.training_rows,
                     f.stage_seconds, f.truth)


def read_truth(truth: Path) -> pd.DataFrame:
    """The generator's truth table (contract outcomes after the as-of), for evaluation only."""
    for name in ("contracts.parquet", "contracts.csv"):
        p = Path(truth) / name
        if p.exists():
            return pd.read_parquet(p) if name.endswith(".parquet") else pd.read_csv(p)
    raise FileNotFoundError(f"{truth}: no contracts.parquet or contracts.csv in the truth folder")


def truth_observed(features: pd.DataFrame, truth: Path, as_of: date, months: int) -> Observed:
    """What the truth folder says happened to each contract open on ``as_of``."""
    t = read_truth(truth).set_index("contract_id").reindex(features["contract_id"])
    when = pd.to_datetime(t["outcome_date"])
    day = (when - pd.Timestamp(as_of)).dt.days.to_numpy(float)
    kind = t["outcome"].map({"repurchased": 1, "lost": 2}).fillna(0).to_numpy(int)
    return Observed.from_arrays(day, kind, months * MONTH_DAYS)


def evaluate_against_truth(model: ModelResult, baseline: ModelResult, features: pd.DataFrame, truth: Path,
                           as_of: date, months: int) -> dict[str, float]:
    obs = truth_observed(features, truth, as_of, months)
    return evaluate(predict_probabilities(model, features), predict_probabilities(baseline, features), obs, months)


