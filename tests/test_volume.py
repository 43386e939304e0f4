"""Portfolio volume: the forecasts recover a known seasonal pattern, stay quiet and repeat exactly.

The recovery tests simulate monthly counts from a known level, yearly wave
and launch-month bump (seeded), and ask each time-series model for the next
year. The Poisson-binomial interval is checked against a brute-force
convolution and, for equal chances, against the binomial distribution.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from timing.demo import generate_demo
from timing.ingest.load import ingest
from timing.scores.scoring import forecast_from_scores
from timing.scores.volume import (
    FORECAST_COLUMNS,
    forecast_volume,
    model_error,
    monthly_repurchases,
    poisson_binomial_interval,
    prophet_forecast,
    structural_forecast,
    survival_forecast,
    widened,
)

LAUNCH = (3, 9)
D = date(2026, 10, 31)


def true_mean(months: pd.DatetimeIndex) -> np.ndarray:
    m = months.month.to_numpy()
    return 40 + 12 * np.sin(2 * np.pi * (m - 1) / 12) + 18 * np.isin(m, LAUNCH)


def synthetic(n: int = 72, seed: int = 0) -> pd.DataFrame:
    months = pd.date_range("2019-01-01", periods=n, freq="MS")
    rng = np.random.default_rng(seed)
    y = np.clip(np.round(true_mean(months) + rng.normal(0, 3, n)), 0, None).astype(int)
    return pd.DataFrame({"month": months, "repurchases": y})


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def forecasts(history: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"prophet": prophet_forecast(history, 12, LAUNCH), "structural": structural_forecast(history, 12, LAUNCH)}


@pytest.mark.parametrize("model", ["prophet", "structural"])
def test_forecast_recovers_the_seasonal_pattern(forecasts: dict[str, pd.DataFrame], model: str) -> None:
    fc = forecasts[model]
    assert list(fc.columns) == FORECAST_COLUMNS
    assert list(fc["month"]) == list(pd.date_range("2025-01-01", periods=12, freq="MS"))
    truth = true_mean(pd.DatetimeIndex(fc["month"]))
    assert np.abs(fc["expected"] - truth).mean() < 5  # the noise sd is 3
    assert np.corrcoef(fc["expected"], truth)[0, 1] > 0.9
    launch = np.isin(pd.DatetimeIndex(fc["month"]).month, LAUNCH)
    assert fc["expected"][launch].mean() > fc["expected"][~launch].mean() + 8  # the bump is 18 on average


@pytest.mark.parametrize("model", ["prophet", "structural"])
def test_intervals_hold_the_point(forecasts: dict[str, pd.DataFrame], model: str) -> None:
    fc = forecasts[model]
    assert (fc["lower"] <= fc["expected"]).all() and (fc["expected"] <= fc["upper"]).all()
    assert (fc["lower"] >= 0).all() and (fc["upper"] > fc["lower"]).all()


def test_forecasts_repeat_exactly_and_leave_numpy_alone(history: pd.DataFrame,
                                                        forecasts: dict[str, pd.DataFrame]) -> None:
    np.random.seed(123)
    again = prophet_forecast(history, 12, LAUNCH)
    assert np.random.random() == np.random.RandomState(123).random_sample()  # the global state is restored
    pd.testing.assert_frame_equal(again, forecasts["prophet"])
    pd.testing.assert_frame_equal(structural_forecast(history, 12, LAUNCH), forecasts["structural"])


def test_prophet_is_quiet(history: pd.DataFrame, capfd: pytest.CaptureFixture[str]) -> None:
    prophet_forecast(history.iloc[:36], 3, LAUNCH)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def brute_force_pmf(p: np.ndarray) -> np.ndarray:
    pmf = np.array([1.0])
    for q in p:
        pmf = np.convolve(pmf, [1 - q, q])
    return pmf


def test_poisson_binomial_interval_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    p = rng.beta(0.5, 3, size=(300, 3))
    lower, upper = poisson_binomial_interval(p, 0.8)
    for j in range(3):
        cdf = np.cumsum(brute_force_pmf(p[:, j]))
        assert lower[j] == np.searchsorted(cdf, 0.1 - 1e-12)
        assert upper[j] == np.searchsorted(cdf, 0.9 - 1e-12)
    # equal chances: the binomial
    lo, hi = poisson_binomial_interval(np.full((500, 1), 0.07), 0.9)
    assert (lo[0], hi[0]) == (stats.binom.ppf(0.05, 500, 0.07), stats.binom.ppf(0.95, 500, 0.07))


def fake_scores(n: int = 200, months: int = 12, steps_per_month: int = 2, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = rng.dirichlet(np.ones(months * steps_per_month + 1), size=n)[:, :-1] * rng.uniform(0.2, 0.9, (n, 1))
    df = pd.DataFrame(steps, columns=[f"step_{k + 1:02d}" for k in range(steps.shape[1])])
    df.insert(0, "contract_id", [f"K{i:04d}" for i in range(n)])
    df.insert(1, "branch_id", np.where(np.arange(n) % 2, "B1", "B2"))
    df["steps_per_month"] = steps_per_month
    return df


def test_survival_forecast_adds_up_the_chances() -> None:
    scores = fake_scores()
    months = pd.date_range("2026-11-01", periods=14, freq="MS")
    fc = survival_forecast(scores, D, months)
    assert len(fc) == 12  # the last two months lie beyond the scores' 12-month horizon
    end = (pd.Timestamp("2027-10-31") - pd.Timestamp(D)).days
    total = forecast_from_scores(scores).cif_at_days(np.array([end]))[:, 0].sum()
    assert fc["expected"].sum() == pytest.approx(total, rel=1e-9)
    assert (fc["lower"] <= fc["expected"]).all() and (fc["expected"] <= fc["upper"]).all()
    seen = pd.Series([5.0], index=[months[0]])
    with_seen = survival_forecast(scores, D, months, seen)
    assert with_seen["expected"].iloc[0] == pytest.approx(fc["expected"].iloc[0] + 5)
    assert with_seen["lower"].iloc[0] == fc["lower"].iloc[0] + 5


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("volume")
    generate_demo(root / "export", customers=200, as_of=D, seed=2, fmt="parquet")
    ingest(root / "export", root / "store.duckdb", as_of=D)
    return root / "store.duckdb"


def test_history_from_the_store_adds_up(store: Path) -> None:
    overall = monthly_repurchases(store, history_months=None)
    by_branch = monthly_repurchases(store, by_branch=True, history_months=None)
    assert overall["month"].max() == pd.Timestamp("2026-10-01")  # 31 October closes the month
    assert overall["month"].is_monotonic_increasing and (overall["repurchases"] >= 0).all()
    summed = by_branch.groupby("month")["repurchases"].sum()
    assert summed.reindex(overall["month"]).to_numpy().tolist() == overall["repurchases"].tolist()
    mid = monthly_repurchases(store, as_of=date(2026, 10, 15), history_months=12)
    assert mid["month"].max() == pd.Timestamp("2026-09-01") and len(mid) == 12


def test_forecast_volume_from_the_store(store: Path) -> None:
    fc = forecast_volume(store, months=3, models=("structural", "survival"))
    assert list(fc.columns) == FORECAST_COLUMNS
    assert set(fc["model"]) == {"structural"}  # no scores in this store: no survival rows
    assert list(fc["month"]) == list(pd.date_range("2026-11-01", periods=3, freq="MS"))
    branches = forecast_volume(store, months=2, by_branch=True, models=("structural",), history_months=30)
    assert list(branches.columns) == ["branch_id", *FORECAST_COLUMNS]
    assert branches.groupby("branch_id").size().eq(2).all()
    with pytest.raises(ValueError, match="months"):
        forecast_volume(store, months=0)


def test_a_large_portfolio_gets_the_refined_normal_interval_within_one_signing(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(0.4, 4, size=(20_000, 4))  # about 1,800 +- 40 signings a month
    monkeypatch.setattr("timing.scores.volume.EXACT_MAX_TERMS", 10**12)  # force the exact FFT
    exact = poisson_binomial_interval(p, 0.8)
    monkeypatch.setattr("timing.scores.volume.EXACT_MAX_TERMS", 0)  # force the approximation
    approx = poisson_binomial_interval(p, 0.8)
    assert np.abs(exact[0] - approx[0]).max() <= 1 and np.abs(exact[1] - approx[1]).max() <= 1
    assert (approx[0] < p.sum(axis=0)).all() and (approx[1] > p.sum(axis=0)).all()


def months_with_model_error(sigma: float, months: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Monthly counts of 4,000 contracts whose chances are off by a common factor 1 + e per month,
    e ~ N(0, sigma): the calibration table a holdout would give, and each month's chances."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 30, size=(4_000, months))  # about 65 signings a month
    truth = np.clip(p * (1 + rng.normal(0, sigma, months)), 0, 1)
    observed = (rng.random(p.shape) < truth).sum(axis=0)
    cal = pd.DataFrame({"month": np.arange(1, months + 1), "predicted": p.sum(axis=0), "observed": observed,
                        "variance": (p * (1 - p)).sum(axis=0)})
    return cal, p


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.2])
def test_model_error_recovers_the_error_beyond_chance(sigma: float) -> None:
    cal, _ = months_with_model_error(sigma, 3_000, seed=int(sigma * 100))
    assert model_error(cal) == pytest.approx(sigma, abs=0.015)
    assert model_error(cal.drop(columns="variance")) <= model_error(cal) + 0.01  # the Poisson bound
    assert model_error(cal.iloc[:0]) == 0.0


def test_model_error_leaves_out_a_month_cut_short() -> None:
    # six months of a model that is right but for chance; models fitted before the holdout kept to
    # whole months could end with a month where only the contracts that had their event were left
    cal = pd.DataFrame({"month": range(1, 7), "predicted": [60.0, 55, 50, 48, 45, 40], "observed": [58, 57, 49, 47, 46, 0],
                        "contracts": [3000, 2990, 2980, 2975, 2970, 200], "variance": [58.0, 53, 48, 46, 43, 38]})
    assert model_error(cal) == 0.0
    assert model_error(cal.drop(columns="contracts")) > 0.2  # the cut month alone would claim 25%


def test_widened_intervals_hold_their_share_of_months_chance_alone_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # the error estimated on six "holdout" months, judged on 2,000 later months of the same model
    monkeypatch.setattr("timing.scores.volume.EXACT_MAX_TERMS", 0)  # the refined normal: within a signing, fast
    sigma = 0.15
    holdout, _ = months_with_model_error(sigma, 6, seed=11)
    later, p = months_with_model_error(sigma, 2_000, seed=12)
    lo, hi = poisson_binomial_interval(p, 0.8)
    chance = ((later["observed"] >= lo) & (later["observed"] <= hi)).mean()
    lo_w, hi_w = widened(p.sum(axis=0), lo, hi, model_error(holdout), 0.8)
    held = ((later["observed"] >= lo_w) & (later["observed"] <= hi_w)).mean()
    lo_t, hi_t = widened(p.sum(axis=0), lo, hi, sigma, 0.8)  # with the true error
    true_held = ((later["observed"] >= lo_t) & (later["observed"] <= hi_t)).mean()
    assert chance < 0.65
    assert 0.77 <= true_held <= 0.86  # whole signings outward: a little above 0.8
    assert 0.7 <= held <= 0.9  # six months make a rough estimate
    assert (lo_w <= lo).all() and (hi_w >= hi).all() and (lo_w >= 0).all()
    assert np.array_equal(lo_w, np.floor(lo_w)) and np.array_equal(hi_w, np.ceil(hi_w))
    assert widened(p.sum(axis=0), lo, hi, 0.0, 0.8)[0].tolist() == lo.tolist()


def test_survival_forecast_widens_by_the_models_error() -> None:
    scores = fake_scores()
    months = pd.date_range("2026-11-01", periods=12, freq="MS")
    plain, wide = survival_forecast(scores, D, months), survival_forecast(scores, D, months, error=0.2)
    assert wide["expected"].tolist() == plain["expected"].tolist()
    assert (wide["lower"] <= plain["lower"]).all() and (wide["upper"] >= plain["upper"]).all()
    assert (wide["upper"] - wide["lower"]).sum() > (plain["upper"] - plain["lower"]).sum()
