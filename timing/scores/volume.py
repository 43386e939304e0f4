"""Portfolio volume: repurchases signed per month, and how many to expect next.

Three forecasts of the next months' signings, side by side:

* ``prophet``: trend, yearly seasonality and the model launch months
  (``FitSettings.launch_months``) as a 0/1 regressor, fitted to the monthly
  counts;
* ``structural``: a statsmodels unobserved-components model on the same counts
  (local level, trigonometric yearly seasonal, the launch months as regressor);
* ``survival``: the scored signing probabilities of the open contracts,
  summed per calendar month, with a Poisson-binomial interval.

The two time-series models see only the count history; the survival model
sees every open contract but knows nothing about contracts opened later (which
rarely repurchase within months of signing).

Notes
-----
A month is a calendar month, identified by its first day. The history holds
the complete months up to the as-of date T (T's own month only when T is its
last day), from the outcomes an export on T held. Forecast months are the
``months`` calendar months after the last complete one. The survival forecast
is made from the scores of the latest as-of S <= T in the store; for a month
that started before S it adds the signings already seen from the month's
first day to S. Its interval combines two things: which of the contracts sign
were the probabilities exact (the Poisson-binomial interval), and how far the
model's monthly totals were off on its own holdout beyond that chance
(:func:`model_error`, added in quadrature by :func:`widened`). On the demo
backtest the 80% intervals held 0.69 of the months (chance alone: 0.58): a
small holdout (50 signings a month) sees little of a 7% model error beside
14% chance, and the misses come in a few large ones. Time-series lower bounds
are clipped at zero.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from timing.config import FitSettings
from timing.fitting.registry import registered_model
from timing.scores.scoring import forecast_from_scores
from timing.store.asof import open_snapshot
from timing.store.db import connect, table_exists

MODELS = ("prophet", "structural", "survival")
FORECAST_COLUMNS = ["month", "model", "expected", "lower", "upper"]
#: Time-series models need two full seasonal cycles.
MIN_HISTORY_MONTHS = 24
_QUIET_LOGGERS = ("cmdstanpy", "prophet", "prophet.plot", "prophet.models")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence prophet's and cmdstanpy's chatter (and the optimisers' warnings), then restore."""
    loggers = [logging.getLogger(n) for n in _QUIET_LOGGERS]
    saved = [(lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
        lg.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, (level, disabled) in zip(loggers, saved, strict=True):
            lg.setLevel(level)
            lg.disabled = disabled


def month_start(day: date | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(day).to_period("M").to_timestamp()


def last_complete_month(as_of: date) -> pd.Timestamp:
    """The first day of the last calendar month fully known on ``as_of``."""
    t = pd.Timestamp(as_of)
    this = month_start(t)
    return this if t.is_month_end else this - pd.DateOffset(months=1)


def launch_flags(months: pd.DatetimeIndex | pd.Series, launch_months: tuple[int, ...]) -> np.ndarray:
    return np.isin(pd.DatetimeIndex(months).month, list(launch_months)).astype(float)


# --- history -------------------------------------------------------------------------------


def monthly_repurchases(store: Path, as_of: date | None = None, by_branch: bool = False,
                        history_months: int | None = 60) -> pd.DataFrame:
    """Repurchases signed per complete calendar month, as an export on ``as_of`` held them.

    Columns ``month, repurchases`` (and ``branch_id`` first when ``by_branch``;
    the branch is the customer's branch). Months without a signing count 0.
    ``history_months`` keeps only the latest months (``None``: all since the first signing).
    """
    with open_snapshot(store, as_of) as snap:
        T = snap.as_of
        rows = snap.con.execute(
            f"""SELECT cu.branch_id, date_trunc('month', o.outcome_date) AS month, count(*) AS repurchases
                FROM {snap.t('outcomes')} o JOIN {snap.t('customers')} cu USING (customer_id)
                WHERE o.outcome = 'repurchased'
                GROUP BY ALL"""
        ).df()
        branches = sorted(
            r[0] for r in snap.con.execute(f"SELECT DISTINCT branch_id FROM {snap.t('customers')}").fetchall()
        )
    last = last_complete_month(T)
    rows["month"] = pd.to_datetime(rows["month"])
    rows = rows[rows["month"] <= last]
    first = rows["month"].min() if len(rows) else last
    if history_months is not None:
        first = max(first, last - pd.DateOffset(months=history_months - 1))
    months = pd.date_range(first, last, freq="MS")
    if by_branch:
        grid = pd.MultiIndex.from_product([branches, months], names=["branch_id", "month"])
        counts = rows.groupby(["branch_id", "month"])["repurchases"].sum().reindex(grid, fill_value=0)
        return counts.reset_index().astype({"repurchases": int})
    counts = rows.groupby("month")["repurchases"].sum().reindex(months, fill_value=0)
    return counts.rename_axis("month").reset_index().astype({"repurchases": int})


# --- time-series models -----------------------------------------------------------------------


def future_months(last: pd.Timestamp, months: int) -> pd.DatetimeIndex:
    return pd.date_range(last + pd.DateOffset(months=1), periods=months, freq="MS")


def prophet_forecast(history: pd.DataFrame, months: int, launch_months: tuple[int, ...] = (),
                     interval: float = 0.8, seed: int = 0) -> pd.DataFrame:
    """Prophet on monthly counts (``month, repurchases``): the next ``months`` months.

    The yearly seasonality has 4 Fourier pairs (prophet's default of 10 would
    chase noise with 12 points a year); the launch months are a 0/1 regressor
    that catches the sharp spikes the smooth wave cannot. MAP fitting (no
    MCMC), a fixed optimiser seed and a fixed NumPy seed for the interval
    draws, so the same history gives the same numbers; NumPy's global random
    state is restored afterwards.
    """
    with quiet():
        from prophet import Prophet

        df = pd.DataFrame({"ds": pd.to_datetime(history["month"]), "y": history["repurchases"].astype(float)})
        use_launch = bool(launch_months) and 0 < launch_flags(df["ds"], launch_months).sum() < len(df)
        m = Prophet(yearly_seasonality=4, weekly_seasonality=False, daily_seasonality=False,
                    mcmc_samples=0, uncertainty_samples=1000, interval_width=interval)
        if use_launch:
            df["launch"] = launch_flags(df["ds"], launch_months)
            m.add_regressor("launch")
        m.fit(df, seed=seed)
        future = pd.DataFrame({"ds": future_months(df["ds"].iloc[-1], months)})
        if use_launch:
            future["launch"] = launch_flags(future["ds"], launch_months)
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            fc = m.predict(future)
        finally:
            np.random.set_state(state)
    return _frame(future["ds"], fc["yhat"], fc["yhat_lower"], fc["yhat_upper"], "prophet")


def structural_forecast(history: pd.DataFrame, months: int, launch_months: tuple[int, ...] = (),
                        interval: float = 0.8) -> pd.DataFrame:
    """statsmodels unobserved components: local level + yearly trigonometric seasonal + launch months."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = history["repurchases"].astype(float).to_numpy()
    ds = pd.DatetimeIndex(pd.to_datetime(history["month"]))
    fut = future_months(ds[-1], months)
    exog = launch_flags(ds, launch_months) if launch_months else None
    if exog is not None and not 0 < exog.sum() < len(exog):
        exog = None
    with quiet():
        model = UnobservedComponents(y, level="local level", freq_seasonal=[{"period": 12, "harmonics": 4}],
                                     exog=exog)
        res = model.fit(disp=False, maxiter=500)
        fc = res.get_forecast(months, exog=None if exog is None else launch_flags(fut, launch_months)[:, None])
        ci = fc.conf_int(alpha=1 - interval)
    ci = np.asarray(ci)
    return _frame(fut, fc.predicted_mean, ci[:, 0], ci[:, 1], "structural")


def _frame(months: pd.Series | pd.DatetimeIndex, expected: object, lower: object, upper: object,
           model: str) -> pd.DataFrame:
    e = np.clip(np.asarray(expected, float), 0, None)
    lo = np.clip(np.asarray(lower, float), 0, None)
    hi = np.clip(np.asarray(upper, float), 0, None)
    return pd.DataFrame({"month": pd.DatetimeIndex(months), "model": model, "expected": e,
                         "lower": np.minimum(lo, e), "upper": np.maximum(hi, e)})


# --- the survival model ------------------------------------------------------------------------


#: Above this many (contract x grid point) terms per column the interval comes from the refined
#: normal approximation instead of the exact FFT (whose cost grows with contracts x expected count).
EXACT_MAX_TERMS = 20_000_000


def poisson_binomial_interval(p: np.ndarray, interval: float = 0.8, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Central ``interval`` of the number of successes among independent Bernoulli(p_i), per column.

    ``p`` is (contracts, columns). While ``contracts x grid`` stays within
    :data:`EXACT_MAX_TERMS`, the distribution is exact up to aliasing of mass
    beyond ``mean + 12 sd`` (negligible): the characteristic function
    prod_i (1 - p_i + p_i e^{iw}) is evaluated on a grid and inverted with an
    FFT. Beyond that (large portfolios, where the count's standard deviation
    is in the tens or more) the refined normal approximation with a skewness
    term (Volkova 1996; Hong 2013, section 3.2) is used; at that size its
    quantiles agree with the exact ones to within one signing (tested).
    """
    p = np.clip(np.asarray(p, float), 0, 1)
    if p.ndim == 1:
        p = p[:, None]
    n, m = p.shape
    mean, sd = p.sum(axis=0), np.sqrt((p * (1 - p)).sum(axis=0))
    size = int(min(n + 1, np.ceil(mean.max(initial=0) + 12 * sd.max(initial=0) + 20)))
    if n * size > EXACT_MAX_TERMS:
        return _refined_normal_interval(p, mean, sd, interval)
    w = 2 * np.pi * np.arange(size) / size
    e = np.exp(1j * w)
    log_phi = np.zeros((m, size), complex)
    with np.errstate(divide="ignore"):
        for s in range(0, n, chunk):
            q = p[s:s + chunk]
            log_phi += np.log(1 - q[:, :, None] + q[:, :, None] * e[None, None, :]).sum(axis=0)
    pmf = np.clip(np.fft.fft(np.exp(log_phi), axis=1).real / size, 0, None)
    cdf = np.cumsum(pmf, axis=1) / pmf.sum(axis=1, keepdims=True)
    tail = (1 - interval) / 2
    lower = (cdf < tail - 1e-12).sum(axis=1).astype(float)
    upper = (cdf < 1 - tail - 1e-12).sum(axis=1).astype(float)
    return lower, upper


def _refined_normal_interval(p: np.ndarray, mean: np.ndarray, sd: np.ndarray,
                             interval: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of the refined normal approximation: F(k) = G((k + 0.5 - mean) / sd),
    G(x) = Phi(x) + gamma (1 - x^2) phi(x) / 6, gamma the skewness."""
    from scipy import stats

    sd = np.maximum(sd, 1e-12)
    gamma = (p * (1 - p) * (1 - 2 * p)).sum(axis=0) / sd**3
    half = int(np.ceil(10 * sd.max(initial=0))) + 2
    k = np.floor(mean)[:, None] + np.arange(-half, half + 1)[None, :]  # (columns, grid)
    x = (k + 0.5 - mean[:, None]) / sd[:, None]
    cdf = np.clip(stats.norm.cdf(x) + gamma[:, None] * (1 - x**2) * stats.norm.pdf(x) / 6, 0, 1)
    cdf = np.maximum.accumulate(cdf, axis=1)  # the correction may wiggle in the far tails
    tail = (1 - interval) / 2
    lower = k[np.arange(len(k)), np.argmax(cdf >= tail - 1e-12, axis=1)]
    upper = k[np.arange(len(k)), np.argmax(cdf >= 1 - tail - 1e-12, axis=1)]
    n = p.shape[0]
    return np.clip(lower, 0, n).astype(float), np.clip(upper, 0, n).astype(float)


def model_error(calibration: pd.DataFrame) -> float:
    """Relative standard deviation of a month's signings beyond chance, from a holdout's calibration.

    ``calibration`` holds per month the predicted and observed signings and, where known, the
    chance variance of the count (:func:`timing.models.metrics.calibration_by_month`; the predicted
    count stands in for it where absent: the Poisson bound). A month's count is taken as chance
    around the model's total times ``1 + e``, ``e`` with standard deviation ``s`` common to the
    month's contracts (the model's error for that month), so ``(observed - predicted)^2``
    estimates ``variance + s^2 predicted^2``. Pooled over the months (method of moments, each
    month weighted by its size): ``s^2 = sum((O - P)^2 - V) / sum(P^2)``, 0 where chance explains
    the errors. Six holdout months leave it rough (about 30% either way). Months with fewer than
    half the first month's contracts (a month cut short, in models fitted before that was
    prevented) are left out.
    """
    if calibration is None or len(calibration) == 0:
        return 0.0
    c = calibration
    if "contracts" in c:
        c = c[c["contracts"] >= 0.5 * c["contracts"].iloc[0]]
    P = c["predicted"].to_numpy(float)  # noqa: N806
    O = c["observed"].to_numpy(float)  # noqa: E741, N806
    V = c["variance"].to_numpy(float) if "variance" in c else P  # noqa: N806
    ok = P > 0
    if not ok.any():
        return 0.0
    s2 = float(((O[ok] - P[ok]) ** 2 - V[ok]).sum() / (P[ok] ** 2).sum())
    return float(np.sqrt(max(s2, 0.0)))


def widened(expected: np.ndarray, lower: np.ndarray, upper: np.ndarray, error: float,
            interval: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A chance interval (``lower``, ``upper`` around ``expected``) widened by the model's relative
    error (:func:`model_error`): each side's half-width and the normal quantile of ``error x
    expected`` added in quadrature; whole signings, the lower bound at least 0."""
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + interval / 2))
    extra = z * error * np.asarray(expected, float)
    lo = expected - np.hypot(expected - lower, extra)
    hi = expected + np.hypot(upper - expected, extra)
    return np.maximum(np.floor(lo + 1e-9), 0.0), np.ceil(hi - 1e-9)


def signings_interval(p: np.ndarray, interval: float = 0.8, error: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The central ``interval`` of each column's signings count, contracts' probabilities ``p``
    (contracts x months): chance (:func:`poisson_binomial_interval`), widened by the model's
    relative ``error`` beyond chance (:func:`widened`) where it is positive."""
    lower, upper = poisson_binomial_interval(p, interval)
    if error > 0:
        lower, upper = widened(p.sum(axis=0), lower, upper, error, interval)
    return lower, upper


def survival_forecast(scores: pd.DataFrame, scored_on: date, months: pd.DatetimeIndex,
                      seen_so_far: pd.Series | None = None, interval: float = 0.8,
                      error: float = 0.0) -> pd.DataFrame:
    """Expected signings per calendar month from a scores table scored on ``scored_on``.

    ``seen_so_far`` (indexed by month) adds the signings already seen in a month
    that started before ``scored_on``. Months beyond the scores' horizon are left out.
    ``error`` is the model's relative error beyond chance (:func:`model_error`), which widens the
    interval of the months still to come.
    """
    fc = forecast_from_scores(scores)
    S = pd.Timestamp(scored_on)
    start = np.array([max((mo - S).days - 1, 0) for mo in months], float)
    end = np.array([((mo + pd.offsets.MonthEnd(0)) - S).days for mo in months], float)
    horizon = fc.step_signed.shape[1] * fc.step_days
    keep = end <= horizon + 1  # a month is covered when it ends within the horizon (rounding: 1 day)
    months, start, end = months[keep], start[keep], end[keep]
    if len(fc.contract_id) == 0:
        p = np.zeros((0, len(months)))
    else:
        p = np.clip(fc.cif_at_days(end) - fc.cif_at_days(start), 0, 1)
    lower, upper = signings_interval(p, interval, error)
    seen = np.zeros(len(months)) if seen_so_far is None else seen_so_far.reindex(months, fill_value=0).to_numpy(float)
    return _frame(months, p.sum(axis=0) + seen, lower + seen, upper + seen, "survival")


def scores_model_error(store: Path, scores: pd.DataFrame) -> float | None:
    """:func:`model_error` of the model that made ``scores``, from its holdout calibration (its
    folder checked against the hashes registered in the store); None where that cannot be known
    (no scores, several models, a model not registered, moved, altered or without a calibration)."""
    from timing.models.io import ModelError, verified_info

    if scores.empty or "model_version" not in scores or scores["model_version"].nunique() != 1:
        return None
    found = registered_model(store, str(scores["model_version"].iloc[0]))
    if found is None:
        return None
    try:
        calibration = pd.DataFrame(verified_info(*found).get("holdout_calibration") or [])
        return model_error(calibration) if {"predicted", "observed"} <= set(calibration.columns) else None
    except (ModelError, OSError, ValueError, TypeError):
        return None


def _latest_scores(store: Path, as_of: date) -> tuple[pd.DataFrame, date | None]:
    con = connect(store)
    try:
        if not table_exists(con, "scores"):
            return pd.DataFrame(), None
        row = con.execute("SELECT max(as_of) FROM scores WHERE as_of <= ?", [as_of]).fetchone()
        if row is None or row[0] is None:
            return pd.DataFrame(), None
        scores = con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY contract_id", [row[0]]).df()
        return scores, row[0]
    finally:
        con.close()


def _signed_between(store: Path, as_of: date, first: pd.Timestamp, last: date) -> pd.DataFrame:
    """Repurchases signed from ``first`` to ``last`` (inclusive) by branch and month."""
    with open_snapshot(store, as_of) as snap:
        return snap.con.execute(
            f"""SELECT cu.branch_id, date_trunc('month', o.outcome_date) AS month, count(*) AS n
                FROM {snap.t('outcomes')} o JOIN {snap.t('customers')} cu USING (customer_id)
                WHERE o.outcome = 'repurchased' AND o.outcome_date BETWEEN ? AND ?
                GROUP BY ALL""", [first.date(), last]).df().astype({"month": "datetime64[ns]"})


# --- all together -----------------------------------------------------------------------------


def forecast_volume(
    store: Path,
    months: int = 6,
    by_branch: bool = False,
    as_of: date | None = None,
    interval: float = 0.8,
    launch_months: tuple[int, ...] | None = None,
    history_months: int | None = 60,
    models: tuple[str, ...] = MODELS,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected repurchases in each of the next ``months`` calendar months, by model.

    Returns columns ``month, model, expected, lower, upper`` (``branch_id``
    first when ``by_branch``), sorted by (branch,) month and model; ``lower``
    and ``upper`` bound the central ``interval`` (80% by default). A model
    without what it needs (24 months of history; scores in the store) gives
    no rows. ``attrs["survival_model_error"]`` is the model error that widened
    the survival interval (:func:`scores_model_error`), None where it could not
    be known and the interval is chance alone.

    Example::

        forecast_volume(Path("data/timing.duckdb"), months=6)

    Notes
    -----
    See the module notes for what a month is and what each interval covers.
    """
    if months < 1:
        raise ValueError("months must be at least 1")
    if not 0 < interval < 1:
        raise ValueError("interval must be within (0, 1)")
    launch = FitSettings().launch_months if launch_months is None else tuple(launch_months)
    with open_snapshot(store, as_of) as snap:
        T = snap.as_of
    history = monthly_repurchases(store, T, by_branch=True, history_months=history_months)
    future = future_months(last_complete_month(T), months)
    groups: list[tuple[str | None, pd.DataFrame]]
    if by_branch:
        groups = [(str(b), h[["month", "repurchases"]].reset_index(drop=True))
                  for b, h in history.groupby("branch_id", sort=True)]
    else:
        groups = [(None, history.groupby("month", as_index=False)["repurchases"].sum())]

    scores, scored_on = _latest_scores(store, T) if "survival" in models else (pd.DataFrame(), None)
    error = scores_model_error(store, scores) if scored_on is not None else None
    seen = pd.DataFrame(columns=["branch_id", "month", "n"])
    if scored_on is not None and future[0] <= pd.Timestamp(scored_on):
        seen = _signed_between(store, T, future[0], scored_on)

    out = []
    for branch, h in groups:
        parts = []
        if len(h) >= MIN_HISTORY_MONTHS:
            if "prophet" in models:
                parts.append(prophet_forecast(h, months, launch, interval, seed))
            if "structural" in models:
                parts.append(structural_forecast(h, months, launch, interval))
        if scored_on is not None:
            s = scores if branch is None else scores[scores["branch_id"].astype(str) == branch]
            sn = seen if branch is None else seen[seen["branch_id"].astype(str) == branch]
            parts.append(survival_forecast(s, scored_on, future, sn.groupby("month")["n"].sum(), interval,
                                           error or 0.0))
        for part in parts:
            if branch is not None:
                part.insert(0, "branch_id", branch)
            out.append(part)
    cols = (["branch_id"] if by_branch else []) + FORECAST_COLUMNS
    if not out:
        return pd.DataFrame(columns=cols)
    df = pd.concat(out, ignore_index=True)
    order = {m: i for i, m in enumerate(MODELS)}
    df["_m"] = df["model"].map(order)
    keys = (["branch_id"] if by_branch else []) + ["month", "_m"]
    df = df.sort_values(keys, kind="stable").drop(columns="_m").reset_index(drop=True)[cols]
    # the survival interval's model error (None: not known, chance alone), for whoever words the table
    df.attrs["survival_model_error"] = error
    return df
