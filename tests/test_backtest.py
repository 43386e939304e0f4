"""Backtests: blind to the future, and every metric checked against a reference on small known cases."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from timing.backtest import RESULT_COLUMNS, BacktestResult, run_backtest, simulate_strategies
from timing.backtest.hindsight import Hindsight, read_hindsight, realised_after
from timing.backtest.metrics import decision_rows, volume
from timing.backtest.origin import evaluate_origin
from timing.config import FitSettings, ScheduleSettings
from timing.core.conventions import MONTH_DAYS
from timing.demo import generate_demo
from timing.ingest.load import ingest
from timing.models.base import MonthlyForecast
from timing.models.metrics import (
    Observed,
    brier_scores,
    calibration_by_month,
    concordance,
    integrated_brier,
)
from timing.schedule.policies import NAIVE_LEAD_DAYS, naive_start_days

D = date(2026, 10, 31)  # the export's as-of
T = date(2026, 4, 30)  # the origin whose model must not see the future
LATE = date(2026, 8, 31)  # its horizon passes D: partial without the truth folder
FIT = FitSettings(lookback_months=18, holdout_months=6, families=("discrete",))
SCHEDULE = ScheduleSettings()
CAPACITY = 6


@dataclass(frozen=True)
class Backtested:
    root: Path
    store: Path
    truth: Path
    result: BacktestResult  # origins T and LATE on the real store, no truth folder, two workers
    blind: BacktestResult  # origin T on a store whose future after T is shuffled and partly deleted


def future_scrambled(export: Path, out: Path, day: date, seed: int = 0) -> Path:
    """The export with everything after ``day`` shuffled or deleted; what an export on ``day`` held stays."""
    rng = np.random.default_rng(seed)
    out.mkdir()
    after = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    T = pd.Timestamp(day)
    for f in export.glob("*.parquet"):
        df = pd.read_parquet(f)
        if f.stem == "contracts":
            late = pd.to_datetime(df["signed_date"]) > T
            for col in ("signed_date", "customer_id", "predecessor_contract_id"):  # other successors, other days
                df.loc[late, col] = rng.permutation(df.loc[late, col].to_numpy())
            # ends after T of contracts running on T move to other days after T
            ends = (pd.to_datetime(df["actual_end_date"]) > T) & (pd.to_datetime(df["start_date"]) <= T)
            df.loc[ends, "actual_end_date"] = rng.permutation(df.loc[ends, "actual_end_date"].to_numpy())
            df = df[~(late & (rng.random(len(df)) < 0.3))]
        elif f.stem in ("readings", "fault_codes", "contacts", "service_visits"):
            when = "visit_date" if f.stem == "service_visits" else ("contacted_at" if f.stem == "contacts"
                                                                   else "recorded_at")
            late = pd.to_datetime(df[when], utc=True) >= after
            shuffle = {"readings": "odometer_km", "fault_codes": "severity", "contacts": "outcome",
                       "service_visits": "visit_type"}[f.stem]
            df.loc[late, shuffle] = rng.permutation(df.loc[late, shuffle].to_numpy())
            df = df[~(late & (rng.random(len(df)) < 0.5))]
        df.to_parquet(out / f.name, index=False)
    return out


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory) -> Backtested:
    root = tmp_path_factory.mktemp("backtest")
    generate_demo(root / "export", customers=400, as_of=D, seed=3, fmt="parquet")
    ingest(root / "export", root / "store.duckdb", as_of=D)
    ingest(future_scrambled(root / "export", root / "scrambled", T), root / "scrambled.duckdb", as_of=D)
    result = run_backtest(root / "store.duckdb", [LATE, T], FIT, SCHEDULE, CAPACITY, workers=2,
                          out_dir=root / "out")
    blind = run_backtest(root / "scrambled.duckdb", [T], FIT, SCHEDULE, CAPACITY, workers=1, out_dir=None,
                         record=False)
    return Backtested(root, root / "store.duckdb", root / "export.truth", result, blind)


# --- honesty -----------------------------------------------------------------------------------


def test_the_model_on_an_origin_cannot_see_what_happened_after_it(backtested: Backtested) -> None:
    real, blind = backtested.result.runs[0], backtested.blind.runs[0]
    assert real.model.cutoff == blind.model.cutoff == T
    # the scrambled store really tells another future...
    assert not np.array_equal(real.realised.signing_day, blind.realised.signing_day, equal_nan=True)
    # ...yet the model, its scores and its schedule on T are the same to the last bit
    assert real.model.family == blind.model.family
    assert real.model.training_rows == blind.model.training_rows
    pd.testing.assert_frame_equal(real.model.scores, blind.model.scores)
    pd.testing.assert_frame_equal(real.model.facts, blind.model.facts)
    np.testing.assert_array_equal(real.starts["model"], blind.starts["model"])
    np.testing.assert_array_equal(real.starts["naive"], blind.starts["naive"])
    np.testing.assert_array_equal(real.model.baseline.step_signed, blind.model.baseline.step_signed)


def test_an_origin_after_the_store_is_refused(backtested: Backtested) -> None:
    from timing.store.db import StoreError

    with pytest.raises(StoreError, match="after the store's export date"):
        run_backtest(backtested.store, [D + timedelta(days=1)], FIT, SCHEDULE, out_dir=None, record=False)


# --- the results table -------------------------------------------------------------------------


def test_results_table_is_tidy_written_to_files_and_the_store(backtested: Backtested) -> None:
    r = backtested.result
    t = r.table
    assert list(t.columns) == RESULT_COLUMNS
    assert sorted(t["cutoff"].unique()) == [T, LATE]
    assert not t.duplicated(["cutoff", "metric", "policy", "month", "bin"]).any()
    assert set(t["policy"].dropna()) == {"model", "naive", "km"}  # no truth policy without a truth folder
    partial = t.groupby("cutoff")["partial"].first()
    assert not partial[T] and partial[LATE]  # LATE + 182 days passes the store's as-of
    assert (t.loc[t["cutoff"] == LATE, "observed_through"] == D).all()
    assert (r.value("capacity_per_week") == CAPACITY).all()
    assert (t["capacity_basis"] == "given").all()
    parquet, csv = r.files
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), t, check_dtype=False)
    assert len(pd.read_csv(csv)) == len(t)
    con = duckdb.connect(str(backtested.store), read_only=True)
    try:
        stored = con.execute("SELECT count(*), count(DISTINCT run_at) FROM backtest_results").fetchone()
    finally:
        con.close()
    assert stored == (len(t), 1)
    text = r.summary()
    assert "PARTIAL" in text and "lift" in text


def headline(rows: pd.DataFrame) -> pd.Series:
    """The rows without month or bin, by (metric, policy)."""
    return rows[rows["month"].isna() & rows["bin"].isna()].set_index(["metric", "policy"])["value"]


def test_headline_figures_are_sane(backtested: Backtested) -> None:
    v = headline(backtested.result.runs[0].rows)
    assert 0 < v[("capture", "model")] <= 1 and 0 < v[("capture", "naive")] <= 1
    assert v[("windows", "model")] <= CAPACITY * (SCHEDULE.horizon_days // 7 + 1)
    assert v[("lift", "model")] == pytest.approx(v[("capture", "model")] / v[("capture", "naive")])
    assert 0.5 < v[("uno_c_6m", "model")] <= 1
    assert v[("ibs", "model")] < v[("ibs", "km")]  # covariates help on the demo portfolio


def test_the_truth_folder_completes_a_partial_origin_and_adds_the_truth_policy(backtested: Backtested) -> None:
    late = backtested.result.runs[1]
    hindsight = read_hindsight(backtested.store, backtested.truth)
    run = evaluate_origin(late.model, hindsight, SCHEDULE)  # the same fitted model, judged further
    assert not run.partial and late.partial
    assert run.capacity_basis.startswith("1.2 x real weekly repurchases")
    v = headline(run.rows)
    assert v[("capture", "truth")] > v[("capture", "naive")]
    assert ("share_of_truth", "model") in v.index
    seen = np.isfinite(late.realised.signing_day)  # what the store saw, the truth keeps
    np.testing.assert_array_equal(run.realised.signing_day[seen], late.realised.signing_day[seen])
    assert np.isfinite(run.realised.signing_day).sum() > seen.sum()


def test_strategies_reuse_the_fitted_models_and_trade_contacts_for_capture(backtested: Backtested) -> None:
    s = simulate_strategies(backtested.result, SCHEDULE, workers=1)
    t = s.table
    assert set(t["cutoff"]) == {T, LATE}
    for policy in ("naive", "model"):
        curve = t[(t["policy"] == policy) & t["strategy"].str.contains(" x")].sort_values("capacity_multiplier")
        for _, g in curve.groupby("cutoff"):
            assert g["windows"].is_monotonic_increasing
    # the window length changes no plan, hence no capture (metrics.md counts window starts)
    w = t[t["strategy"].str.startswith("model window")].groupby("cutoff")["capture"].nunique()
    assert (w == 1).all()
    assert "lift_vs_naive" in s.tradeoff().columns and "model exact" in s.summary()


# --- hindsight ---------------------------------------------------------------------------------


def test_realised_signings_come_from_the_store_then_the_truth() -> None:
    d = pd.Timestamp
    store = pd.DataFrame({
        "contract_id": ["A", "B", "C", "D"],
        "outcome": ["repurchased", "open", "open", "open"],
        "outcome_date": [d("2026-03-01"), pd.NaT, pd.NaT, pd.NaT],
        "actual_end_date": [pd.NaT, pd.NaT, pd.NaT, d("2026-04-15")],
    })
    truth = pd.DataFrame({
        "contract_id": ["A", "B", "C", "D"],
        "outcome": ["repurchased", "repurchased", "repurchased", "lost"],
        # C: the truth's signing before the store's as-of disagrees with the store, which wins
        "outcome_date": [d("2026-03-02"), d("2026-07-10"), d("2026-04-20"), d("2026-04-15")],
        "intended_signing_date": [d("2026-03-01"), d("2026-07-01"), d("2026-04-20"), pd.NaT],
    })
    cutoff, store_as_of = date(2026, 1, 31), date(2026, 5, 31)
    alone = realised_after(Hindsight(store, store_as_of), np.array(["A", "B", "C", "D"]), cutoff)
    assert alone.known_days == (store_as_of - cutoff).days and alone.partial(182)
    np.testing.assert_array_equal(alone.signing_day, [29, np.nan, np.nan, np.nan])
    both = realised_after(Hindsight(store, store_as_of, truth, date(2027, 12, 31)), np.array(["A", "B", "C", "D"]),
                          cutoff)
    np.testing.assert_array_equal(both.signing_day, [29, 160, np.nan, np.nan])
    np.testing.assert_array_equal(both.intended_day, [29, 151, 79, np.nan])
    obs = both.observed(6)
    np.testing.assert_array_equal(obs.event_type, [1, 1, 0, 2])  # D lost at its end, C never signs
    assert obs.day[3] == (date(2026, 4, 15) - cutoff).days


# --- metrics against references ----------------------------------------------------------------


def test_capture_and_precision_by_hand() -> None:
    nan = np.nan
    signing = np.array([10, 50, 100, nan, 200, 170])  # 200 is after the horizon
    starts = {
        "model": np.array([0, 55, 45, 5, nan, 110]),  # hits: 10 (0), 100 (45), 170 (110); 50 starts too late
        "naive": np.array([nan, 0, 30, nan, 150, 100]),  # hits: 50 (0); 100 (30) is 70 days early
        "truth": np.array([0, 0, 40, nan, 150, 120]),  # hits all four
    }
    v = {(r["metric"], r["policy"]): r["value"] for r in decision_rows(starts, signing, 182, 60)}
    assert v[("repurchases", None)] == 4
    assert (v[("captured", "model")], v[("windows", "model")]) == (3, 5)
    assert v[("capture", "model")] == 3 / 4 and v[("precision", "model")] == 3 / 5
    assert v[("capture", "naive")] == 1 / 4 and v[("precision", "naive")] == 1 / 4
    assert v[("capture", "truth")] == 1 and v[("lift", "model")] == 3
    assert v[("share_of_truth", "model")] == 3 / 4 and v[("share_of_truth", "naive")] == 1 / 4


def test_harrell_c_matches_lifelines() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        day = rng.permutation(np.arange(1, n + 1)).astype(float) * 3.7  # no tied times
        kind = rng.choice([0, 1], n, p=[0.4, 0.6])
        risk = np.round(rng.random(n), 1)  # some tied predictions
        obs = Observed(day, kind)
        ours = concordance(risk, obs, tau=1e9)
        # lifelines: a higher score means a later event, so the risk of signing enters negated
        assert ours == pytest.approx(concordance_index(day, -risk, kind), abs=1e-12)


def test_uno_c_by_hand() -> None:
    # signings at days 1, 3, 5; censored at 2 and 4. Censoring KM: G(2) = 3/4, G(4) = 3/8.
    obs = Observed(np.array([1.0, 2, 3, 4, 5]), np.array([1, 0, 1, 0, 1]))
    risk = np.array([0.9, 0.5, 0.4, 0.6, 0.1])
    # pairs: day 1 vs the four later (all concordant, weight 1); day 3 vs days 4, 5 (one of two, weight (4/3)^2)
    w = (4 / 3) ** 2
    assert concordance(risk, obs, tau=10, ipcw=True) == pytest.approx((4 + w) / (4 + 2 * w))
    assert concordance(risk, obs, tau=10) == pytest.approx(5 / 6)  # Harrell: the same pairs unweighted
    assert concordance(risk, obs, tau=2, ipcw=True) == 1.0  # only the first signing counts by day 2


def test_brier_score_by_hand() -> None:
    # four contracts over two months: signed on day 10, lost on day 40, censored on day 50, open past day 100
    p_month = np.array([[0.6, 0.2], [0.1, 0.1], [0.3, 0.3], [0.05, 0.5]])
    fc = MonthlyForecast(np.arange(4), p_month, np.zeros_like(p_month))
    obs = Observed(np.array([10.0, 40, 50, 100]), np.array([1, 2, 0, 0]))
    F = np.cumsum(p_month, axis=1)
    # censoring KM: nothing censored before day 50 (G = 1); at 50, one of two at risk -> G = 1/2
    month1 = ((1 - F[0, 0]) ** 2 + F[1, 0] ** 2 + F[2, 0] ** 2 + F[3, 0] ** 2) / 4  # all but one still open
    month2 = ((1 - F[0, 1]) ** 2 + F[1, 1] ** 2 / 1 + 0 + F[3, 1] ** 2 / 0.5) / 4  # lost by then; censored: 0
    np.testing.assert_allclose(brier_scores(fc, obs, 2), [month1, month2])
    assert integrated_brier(fc, obs, 2) == pytest.approx((month1 + month2) / 2)
    assert 2 * MONTH_DAYS > 50 > MONTH_DAYS  # the hand computation's premise


def test_calibration_by_month_by_hand_and_without_a_month_cut_short() -> None:
    # five contracts over three months: signed on days 10 and 40, lost on day 20, two open past day 100
    p_month = np.array([[0.5, 0.2, 0.1], [0.1, 0.6, 0.1], [0.2, 0.1, 0.1], [0.1, 0.1, 0.3], [0.0, 0.2, 0.2]])
    fc = MonthlyForecast(np.arange(5), p_month, np.zeros_like(p_month))
    obs = Observed(np.array([10.0, 40, 20, 100, 100]), np.array([1, 1, 2, 0, 0]))
    cal = calibration_by_month(fc, obs, 3)
    assert cal["observed"].tolist() == [1, 1, 0]
    np.testing.assert_allclose(cal["predicted"], p_month.sum(axis=0))  # everyone's month is known
    np.testing.assert_allclose(cal["variance"], (p_month * (1 - p_month)).sum(axis=0))
    # observation stops two days before the third month ends (31 October to 30 April in six months):
    # only the contracts with an event would be left in it, so it is left out
    cut = Observed(np.array([10.0, 40, 20, 3 * MONTH_DAYS - 2, 3 * MONTH_DAYS - 2]), np.array([1, 1, 2, 0, 0]))
    assert calibration_by_month(fc, cut, 3)["month"].tolist() == [1, 2]
    # one contract of the two without an event seen through the month: still judged
    half = Observed(np.array([10.0, 40, 20, 3 * MONTH_DAYS - 2, 100]), np.array([1, 1, 2, 0, 0]))
    half_cal = calibration_by_month(fc, half, 3)
    assert half_cal["month"].tolist() == [1, 2, 3] and half_cal["contracts"].tolist() == [5, 5, 4]


def naive_by_loop(days_to_end: np.ndarray, eligible: np.ndarray, capacity: int, horizon: int) -> np.ndarray:
    """Today's practice, one contract at a time: earliest end first, spill to the next week with room."""
    out = np.full(len(days_to_end), np.nan)
    taken: dict[int, int] = {}
    for i in sorted(np.flatnonzero(eligible), key=lambda i: (days_to_end[i], i)):
        desired = max(days_to_end[i] - NAIVE_LEAD_DAYS, 0)
        week = int(desired // 7)
        while taken.get(week, 0) >= capacity:
            week += 1
        taken[week] = taken.get(week, 0) + 1
        day = desired if week == desired // 7 else week * 7
        if day <= horizon:
            out[i] = day
    return out


def test_naive_spill_closed_form_matches_the_loop() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(0, 80))
        days_to_end = rng.integers(-100, 400, n).astype(float)
        eligible = rng.random(n) < 0.8
        capacity, horizon = int(rng.integers(1, 6)), int(rng.choice([91, 182, 365]))
        np.testing.assert_array_equal(naive_start_days(days_to_end, eligible, capacity, horizon),
                                      naive_by_loop(days_to_end, eligible, capacity, horizon))


def test_volume_counts_signings_per_month_of_the_horizon() -> None:
    p = np.array([[0.5, 0.5], [0.2, 0.0], [0.0, 0.9]])
    fc = MonthlyForecast(np.arange(3), p, np.zeros_like(p))
    v = volume(fc, np.array([3.0, MONTH_DAYS + 1, np.nan]), 2)
    assert list(v["actual"]) == [1, 1]
    np.testing.assert_allclose(v["forecast"], [0.7, 1.4])
    assert (v["lower"] <= v["forecast"]).all() and (v["forecast"] <= v["upper"]).all()


def test_settings_variants_are_plain_schedule_settings() -> None:
    from timing.backtest import Strategy

    s = Strategy("model contact gap 90d", overrides=(("min_days_since_contact", 90),))
    assert s.settings(SCHEDULE) == dataclasses.replace(SCHEDULE, min_days_since_contact=90)
