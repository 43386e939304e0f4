"""``timing score``: signing probabilities for every open contract, with the reasons behind them.

Notes
-----
Probabilities are conditional on the contract being open on the as-of date.
``p_m01`` .. ``p_mKK`` are the probabilities of signing in months 1..K (see
:mod:`timing.models.base` for what a month is); ``p_signed`` is their sum,
``p_lost`` the probability of losing the contract to a competitor within the
horizon. ``expected_signing_date`` is the mean signing date given a signing
within the horizon; the quantile dates are the days by which the signing
probability reaches 10/50/90% and are empty when it never does within the
horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from timing.core.files import write_parquet_atomic
from timing.core.progress import as_progress, current, reporting
from timing.features.open_contracts import features_at
from timing.fitting.registry import latest_model, registered_hash
from timing.models import ModelResult
from timing.models.base import MonthlyForecast
from timing.models.io import load_model
from timing.scores.reasons import explain
from timing.store.asof import open_snapshot
from timing.store.db import StoreError, writing
from timing.store.tables import SCORES, replace_rows

DEFAULT_OUT = Path("data/out")
ID_COLUMNS = ["contract_id", "customer_id", "vehicle_id", "branch_id", "region", "scheduled_end_date"]


def month_columns(months: int) -> list[str]:
    return [f"p_m{k:02d}" for k in range(1, months + 1)]


#: Contracts scored at once: a contract's scores depend on its own features only, and the model's
#: step-level arrays (a million contracts' covariate contributions are several GiB) stay bounded.
SCORE_CHUNK = 50_000


def score_frame(model: ModelResult, features: pd.DataFrame, months: int, version: str,
                chunk: int = SCORE_CHUNK) -> pd.DataFrame:
    """Pure scoring: features of open contracts in, one row of scores per contract out."""
    if months > model.months:
        raise ValueError(f"the model forecasts {model.months} months; asked for {months}")
    parts = []
    with current().task("scoring open contracts", total=len(features)) as task:
        for i in range(0, max(len(features), 1), chunk):
            parts.append(_score_chunk(model, features.iloc[i:i + chunk], months, version))
            task.advance(min(chunk, len(features) - i))
    if len(parts) == 1:
        return parts[0]
    # column by column: a frame-wise concat would turn a chunk's all-empty dates (NaT) into NaN
    return pd.DataFrame({c: pd.concat([p[c] for p in parts], ignore_index=True) for c in parts[0].columns},
                        copy=False)


def _score_chunk(model: ModelResult, features: pd.DataFrame, months: int, version: str) -> pd.DataFrame:
    fc = model.predict(features)
    as_of = pd.to_datetime(features["as_of"]).dt.normalize()
    out = features[ID_COLUMNS].reset_index(drop=True).copy()
    out.insert(0, "as_of", _dates(as_of))
    trimmed = fc.truncate(months)
    p = trimmed.p_signed
    for k, col in enumerate(month_columns(months)):
        out[col] = p[:, k]
    out["p_signed"] = p.sum(axis=1)
    out["p_lost"] = trimmed.p_lost.sum(axis=1)
    days = trimmed.expected_signing_day()
    q = trimmed.signing_day_quantiles()

    def to_date(d: np.ndarray) -> pd.Series:
        return pd.Series(_dates_after(as_of.reset_index(drop=True), np.round(d)))

    out["expected_signing_date"] = to_date(days)
    for i, name in enumerate(("signing_date_q10", "signing_date_q50", "signing_date_q90")):
        out[name] = to_date(q[:, i])
    out["reasons"] = explain(features, fc).to_numpy()
    out["model_version"] = version
    # the model's own time steps, for the scheduler's day-level windows
    out["steps_per_month"] = trimmed.steps_per_month
    for k in range(trimmed.step_signed.shape[1]):
        out[f"step_{k + 1:02d}"] = trimmed.step_signed[:, k]
    return out


def _dates(ts: pd.Series) -> np.ndarray:
    """``ts.dt.date`` as an array, converting each distinct timestamp once."""
    codes, uniques = pd.factorize(ts)
    missing = pd.Series([pd.NaT], dtype=ts.dtype).dt.date.to_numpy(dtype=object)  # what a missing one gives
    dates = np.concatenate([pd.Series(uniques, dtype=ts.dtype).dt.date.to_numpy(dtype=object), missing])
    return dates[codes]  # code -1 (missing): the last entry


def _dates_after(as_of: pd.Series, days: np.ndarray) -> np.ndarray:
    """``(as_of + days).dt.date`` as an array, computed once per distinct (as-of, days) pair."""
    a = pd.factorize(as_of)[0]
    d, uniq_d = pd.factorize(days)
    pair = (a + 1) * (len(uniq_d) + 1) + (d + 1)  # -1 (missing) is a value of its own
    codes, uniq = pd.factorize(pair)
    first = np.empty(len(uniq), np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # the first row of each pair
    stamps = as_of.iloc[first].reset_index(drop=True) + pd.to_timedelta(days[first], unit="D")
    return _dates(stamps)[codes]


def forecast_from_scores(scores: pd.DataFrame) -> MonthlyForecast:
    """The signing forecast held in a scores table (at the model's step resolution)."""
    steps = sorted(c for c in scores.columns if c.startswith("step_"))
    spm = int(scores["steps_per_month"].iloc[0]) if len(scores) else 1
    p = scores[steps].to_numpy(float)
    return MonthlyForecast(scores["contract_id"].to_numpy(), p, np.zeros_like(p), spm)


@dataclass(frozen=True)
class ScoreReport:
    as_of: date
    model_version: str
    scores: pd.DataFrame
    parquet: Path

    def summary(self) -> str:
        s = self.scores
        months = len([c for c in s.columns if c.startswith("p_m")])
        return (f"scored {len(s):,} open contracts as of {self.as_of} with model {self.model_version}\n"
                f"  expected signings in the next {months} months: {s['p_signed'].sum():,.1f}; "
                f"expected losses: {s['p_lost'].sum():,.1f}\n"
                f"  written to the store (table scores) and {self.parquet}")


def save_scores(store: Path, scores: pd.DataFrame | pa.Table) -> None:
    """Replace the store's scores for this as-of date (one transaction)."""
    # as Arrow: DuckDB reads it column by column, not Python object by Python object
    table = scores if isinstance(scores, pa.Table) else pa.Table.from_pandas(scores, preserve_index=False)
    as_of = table.column("as_of")[0].as_py() if len(table) else None
    with writing(store) as con:
        replace_rows(con, SCORES, table, {"as_of": as_of})


def score(
    store: Path,
    as_of: date | None = None,
    months: int = 12,
    model_dir: Path | None = None,
    out_dir: Path = DEFAULT_OUT,
    progress: Callable[[str], None] | None = None,
) -> ScoreReport:
    """Score every contract open on ``as_of`` with the latest (or the given) model."""
    say = as_progress(progress)
    expected: str | None
    if model_dir is None:
        folder, expected = latest_model(store)
    else:
        folder, expected = Path(model_dir), registered_hash(store, Path(model_dir))
    model, info = load_model(folder, expected)
    with open_snapshot(store, as_of) as snap:
        say(f"features of open contracts on {snap.as_of}")
        features = features_at(snap.con, snap.schema, snap.as_of)
        day = snap.as_of
    if features.empty:
        raise StoreError(f"no contract is open on {day}: nothing to score")
    say(f"scoring {len(features):,} contracts with {info['version']}")
    with reporting(say):
        scores = score_frame(model, features, months, info["version"])
    table = pa.Table.from_pandas(scores, preserve_index=False)  # once, for the store and the file
    save_scores(store, table)
    path = Path(out_dir) / f"scores-{day.isoformat()}.parquet"
    write_parquet_atomic(table, path)
    return ScoreReport(day, info["version"], scores, path)
