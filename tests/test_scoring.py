"""Scores as the leasing team reads them: documented columns, ordered dates, reasons that quote facts.

One demo world (300 customers) is generated, fitted and scored once for the
module; the reason wording is checked on the hand-written export of
``conftest.py``, where one contract is built to reach its mileage allowance in
exactly 41 days.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from timing.config import FitSettings
from timing.core.conventions import MONTH_DAYS
from timing.demo import generate_demo
from timing.features.open_contracts import features_at
from timing.fitting.fit import FitReport, fit_models
from timing.ingest.load import ingest
from timing.models import BASELINE, MonthlyForecast
from timing.models.covariates import COVARIATES
from timing.models.discrete import DiscreteHazard, DiscreteHazardResult
from timing.models.io import load_model
from timing.models.km import KaplanMeier, KaplanMeierResult
from timing.models.panel import Design
from timing.scores.reasons import (
    MAX_REASONS,
    MIN_CONTRIBUTION,
    SALIENCE,
    STALE_INTEREST_DAYS,
    _median_last_axis,
    explain,
    phrases,
)
from timing.scores.scoring import (
    ID_COLUMNS,
    ScoreReport,
    forecast_from_scores,
    month_columns,
    score,
    score_frame,
)
from timing.store.asof import open_snapshot

D = date(2026, 10, 31)
MONTHS = 12
SETTINGS = FitSettings(lookback_months=18, holdout_months=6, families=("discrete", "cox"))
DOCUMENTED = ["as_of", *ID_COLUMNS, *month_columns(MONTHS), "p_signed", "p_lost", "expected_signing_date",
              "signing_date_q10", "signing_date_q50", "signing_date_q90", "reasons", "model_version"]


@dataclass(frozen=True)
class Scored:
    store: Path
    fit: FitReport
    report: ScoreReport
    features: pd.DataFrame  # the open contracts' features on D, as scored


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    root = tmp_path_factory.mktemp("scoring")
    generate_demo(root / "export", customers=300, as_of=D, seed=5, fmt="parquet")
    ingest(root / "export", root / "store.duckdb", as_of=D)
    fit = fit_models(root / "store.duckdb", settings=SETTINGS, model_root=root / "models")
    report = score(root / "store.duckdb", out_dir=root / "out", months=MONTHS)
    with open_snapshot(root / "store.duckdb") as snap:
        features = features_at(snap.con, snap.schema, snap.as_of)
    return Scored(root / "store.duckdb", fit, report, features)


# --- the table -------------------------------------------------------------------------------


def test_scores_hold_the_documented_columns_one_row_per_open_contract(scored: Scored) -> None:
    s = scored.report.scores
    assert list(s.columns[: len(DOCUMENTED)]) == DOCUMENTED
    # after the documented columns: the model's own steps, which the scheduler reads
    steps_per_month = int(s["steps_per_month"].iloc[0])
    steps = [f"step_{k:02d}" for k in range(1, MONTHS * steps_per_month + 1)]
    assert list(s.columns[len(DOCUMENTED):]) == ["steps_per_month", *steps]
    assert s["contract_id"].is_unique
    assert list(s["contract_id"]) == list(scored.features["contract_id"])
    assert (s["as_of"] == D).all() and (s["model_version"] == scored.report.model_version).all()
    assert scored.report.model_version == scored.fit.saved.version


def test_scores_are_written_to_the_store_and_the_parquet_file_alike(scored: Scored) -> None:
    s = scored.report.scores
    on_disk = pd.read_parquet(scored.report.parquet)
    dates = ["as_of", "scheduled_end_date", "expected_signing_date", "signing_date_q10", "signing_date_q50",
             "signing_date_q90"]
    for frame in (on_disk, s):
        assert list(frame.columns) == list(s.columns)
    pd.testing.assert_frame_equal(on_disk.drop(columns=dates), s.drop(columns=dates), check_dtype=False)
    for col in dates:  # empty dates come back from Parquet as None rather than NaT
        pd.testing.assert_series_equal(pd.to_datetime(on_disk[col]), pd.to_datetime(s[col]), check_dtype=False)
    con = duckdb.connect(str(scored.store), read_only=True)
    try:
        stored = con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY contract_id", [D]).df()
    finally:
        con.close()
    assert len(stored) == len(s)
    np.testing.assert_array_equal(stored["p_signed"].to_numpy(), s.sort_values("contract_id")["p_signed"].to_numpy())


def test_probabilities_add_up(scored: Scored) -> None:
    s = scored.report.scores
    p = s[month_columns(MONTHS)].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(s["p_signed"], p.sum(axis=1), atol=1e-12)
    assert (s["p_signed"] + s["p_lost"] <= 1 + 1e-9).all()
    # the steps add up to the months, and read back as the same forecast
    fc = forecast_from_scores(s)
    np.testing.assert_allclose(fc.p_signed, p, atol=1e-12)
    assert (s["p_signed"] > 0.5).any() and (s["p_signed"] < 0.1).any()  # the model tells contracts apart


def test_signing_dates_are_ordered_and_empty_when_never_reached(scored: Scored) -> None:
    s = scored.report.scores
    as_of = pd.to_datetime(s["as_of"])
    horizon_end = as_of + pd.Timedelta(days=MONTHS * MONTH_DAYS)
    q = {name: pd.to_datetime(s[f"signing_date_q{name}"]) for name in (10, 50, 90)}
    for level, dates in q.items():
        reached = s["p_signed"] >= level / 100 + 1e-9
        never = s["p_signed"] < level / 100 - 1e-9
        assert dates[reached].notna().all(), f"q{level} missing where the probability reaches {level}%"
        assert dates[never].isna().all(), f"q{level} set where the probability never reaches {level}%"
        present = dates.notna()
        assert (dates[present] > as_of[present]).all()
        assert (dates[present] <= horizon_end[present].dt.ceil("D")).all()
    both = q[10].notna() & q[50].notna()
    assert (q[10][both] <= q[50][both]).all()
    both = q[50].notna() & q[90].notna()
    assert (q[50][both] <= q[90][both]).all()
    assert q[90].isna().any() and q[10].notna().any()  # both cases occur in the portfolio
    expected = pd.to_datetime(s["expected_signing_date"])
    assert expected.notna().equals(s["p_signed"] > 1e-9)
    present = expected.notna()
    assert (expected[present] > as_of[present]).all()
    assert (expected[present] <= horizon_end[present]).all()


def test_a_shorter_horizon_trims_every_column(scored: Scored) -> None:
    model, _ = load_model(scored.fit.saved.path)
    six = score_frame(model, scored.features, 6, "v")
    full = scored.report.scores
    assert [c for c in six.columns if c.startswith("p_m")] == month_columns(6)
    np.testing.assert_allclose(six[month_columns(6)], full[month_columns(6)], atol=1e-15)
    np.testing.assert_allclose(six["p_signed"], full[month_columns(6)].sum(axis=1), atol=1e-12)
    last = pd.to_datetime(six["as_of"]) + pd.Timedelta(days=6 * MONTH_DAYS)
    q90 = pd.to_datetime(six["signing_date_q90"])
    assert (q90[q90.notna()] <= last[q90.notna()].dt.ceil("D")).all()
    assert q90.isna().sum() >= pd.to_datetime(full["signing_date_q90"]).isna().sum()
    with pytest.raises(ValueError, match="forecasts"):
        score_frame(model, scored.features, model.months + 1, "v")


# --- reasons ---------------------------------------------------------------------------------


def assert_phrase_lists(reasons: pd.Series) -> None:
    for text in reasons[reasons != ""]:
        parts = text.split("; ")
        assert 1 <= len(parts) <= MAX_REASONS
        assert all(p and p == p.strip() and ";" not in p for p in parts), text
        assert len(set(parts)) == len(parts), text


def test_reasons_are_short_lists_of_phrases_for_most_contracts(scored: Scored) -> None:
    reasons = scored.report.scores["reasons"]
    assert (reasons != "").mean() >= 0.9
    assert_phrase_lists(reasons)
    # a family without per-covariate contributions ranks the phrases by salience instead
    flat = explain(scored.features, flat_baseline().predict(scored.features))
    assert (flat != "").all()
    assert_phrase_lists(flat)


def test_reasons_quote_each_contracts_own_figures(scored: Scored) -> None:
    f = scored.features.set_index("contract_id")
    checked = 0
    for cid, text in zip(scored.report.scores["contract_id"], scored.report.scores["reasons"], strict=True):
        row = f.loc[cid]
        for m in re.finditer(r"mileage allowance reached in (\d+) days", text):
            assert int(m[1]) == int(np.round(row["days_to_allowance"])), (cid, text)
            checked += 1
        for m in re.finditer(r"mileage allowance exceeded (\d+) days ago", text):
            assert int(m[1]) == int(np.round(-row["days_to_allowance"])), (cid, text)
            checked += 1
        for m in re.finditer(r"scheduled end (\d{4}-\d{2}-\d{2}) \(in (\d+) days\)", text):
            assert m[1] == pd.Timestamp(row["scheduled_end_date"]).strftime("%Y-%m-%d"), (cid, text)
            assert int(m[2]) == row["days_to_end"], (cid, text)
            checked += 1
        for m in re.finditer(r"scheduled end passed (\d+) days ago", text):
            assert int(m[1]) == -row["days_to_end"], (cid, text)
            checked += 1
        for m in re.finditer(r"battery health (\d+)%", text):
            assert int(m[1]) == int(np.round(row["battery_soh"])), (cid, text)
            checked += 1
    assert checked >= 0.3 * len(f)  # figures are quoted for a good share of the portfolio


def allowance_in_41_days() -> list[dict]:
    """K2 (V2) read weekly at midnight since its start, at the rate that leaves 41 days of allowance.

    K2 runs 2024-02-01 to 2027-02-01 (1,096 days) with 20,000 km a year: 60,013.7 km in all.
    On 2026-06-30, 880 days in, a car doing total / (880 + 41) km a day has 41 days left.
    """
    rate = 20_000 * 1096 / 365.25 / (880 + 41)
    start = pd.Timestamp("2024-02-01", tz="UTC")
    rows = [{"vehicle_id": "V2", "recorded_at": (start + pd.Timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "odometer_km": repr(rate * d), "battery_soh_pct": ""} for d in range(0, 880, 7)]
    rows.append({"vehicle_id": "V4", "recorded_at": "2026-03-01T08:00:00Z", "odometer_km": 90_000,
                 "battery_soh_pct": ""})
    return rows


@pytest.fixture
def hand_features(make_export: Callable[..., Path], tmp_path: Path) -> pd.DataFrame:
    export = make_export(readings=allowance_in_41_days())
    ingest(export, tmp_path / "store.duckdb", as_of=date(2026, 6, 30))
    with open_snapshot(tmp_path / "store.duckdb") as snap:
        return features_at(snap.con, snap.schema, snap.as_of)


def flat_baseline() -> KaplanMeierResult:
    """The same curve for everyone and no covariate contributions: reasons follow their salience."""
    table = pd.DataFrame({"month": np.arange(1, MONTHS + 1), "at_risk": 100, "signed": 6, "lost": 1})
    return KaplanMeierResult(KaplanMeier(months=MONTHS), table)


def test_a_contract_reaching_its_allowance_in_41_days_says_so(hand_features: pd.DataFrame) -> None:
    k2 = hand_features.set_index("contract_id").loc["K2"]
    assert k2["has_telematics"] == 1 and k2["days_to_allowance"] == pytest.approx(41, abs=1e-6)
    scores = score_frame(flat_baseline(), hand_features, MONTHS, "hand").set_index("contract_id")
    reasons = scores.loc["K2", "reasons"].split("; ")
    assert reasons[0] == "mileage allowance reached in 41 days"
    # K1 was renewed by K2 62 days before its end; C1 said "interested" on 2026-05-01
    assert "signed 2 months early last time" in reasons
    assert "showed interest 60 days ago" in reasons


def test_interest_and_faults_long_past_are_no_reason(hand_features: pd.DataFrame) -> None:
    k2 = hand_features[hand_features["contract_id"] == "K2"].reset_index(drop=True)
    as_of = pd.Timestamp(k2.loc[0, "as_of"])
    day = np.zeros(1)
    for days_ago, worded in ((60, True), (STALE_INTEREST_DAYS, True), (STALE_INTEREST_DAYS + 1, False), (3218, False)):
        f = k2.assign(days_since_interest=float(days_ago),
                      last_critical_date=(as_of - pd.Timedelta(days=days_ago)).date())
        words = phrases(f, day)
        assert (words["interest"].iloc[0] == f"showed interest {days_ago} days ago") == worded, days_ago
        fault = f"critical fault {(as_of - pd.Timedelta(days=days_ago)).strftime('%Y-%m-%d')}"
        assert (words["fault"].iloc[0] == fault) == worded, days_ago
        assert worded or words["interest"].iloc[0] == words["fault"].iloc[0] == ""
    # a stale phrase gives way: the reasons name what is left, never the old interest
    drivers = np.zeros((1, MONTHS, len(COVARIATES)))
    names = [c.name for c in COVARIATES]
    for name in ("interest", "allowance"):
        drivers[:, :, names.index(name)] = 1.0
    fc = MonthlyForecast.from_hazards(k2["contract_id"].to_numpy(), np.full((1, MONTHS), 0.05),
                                      np.full((1, MONTHS), 0.01), drivers=drivers)
    reasons = explain(k2.assign(days_since_interest=900.0), fc).iloc[0]
    assert "interest" not in reasons and "mileage allowance reached in 41 days" in reasons


def test_a_renewing_customers_scheduled_end_can_be_the_reason(hand_features: pd.DataFrame) -> None:
    # the panel has one end covariate for first-time customers and one for those with a renewal
    # (C1 renewed K1 with K2); either may drive the forecast, and both must have words
    n, steps = len(hand_features), MONTHS
    names = [c.name for c in COVARIATES]
    for end in ("end", "end_with_history"):
        drivers = np.zeros((n, steps, len(COVARIATES)))
        drivers[:, :, names.index(end)] = 1.0
        h = np.full((n, steps), 0.05)
        fc = MonthlyForecast.from_hazards(hand_features["contract_id"].to_numpy(), h, h / 5, drivers=drivers)
        reasons = explain(hand_features, fc)
        k2 = reasons[hand_features["contract_id"] == "K2"].iloc[0]
        assert k2 == "scheduled end 2027-02-01 (in 216 days)", (end, k2)


# --- scoring in chunks, reasons worded only where needed: the same scores -------------------------


def random_discrete(seed: int) -> DiscreteHazardResult:
    """A discrete model with random coefficients: every covariate pushes, so many reasons compete."""
    columns = ("intercept",) + Design.column_names()
    rng = np.random.default_rng(seed)
    coef = rng.normal(0, 0.6, (len(columns), 2))
    coef[0] = (-3.0, -5.0)
    return DiscreteHazardResult(spec=DiscreteHazard(months=MONTHS), coef=coef, cov=np.eye(2 * len(columns)),
                                columns=columns, n_rows=0, n_patterns=0, n_events=0, n_lost=0, iterations=0)


def explain_every_phrase(features: pd.DataFrame, forecast: MonthlyForecast) -> pd.Series:
    """The reasons as first written: every phrase of every contract, then the top three with words."""
    n = len(features)
    step = np.argmax(forecast.step_signed, axis=1)
    texts = phrases(features.reset_index(drop=True), (step + 0.5) * forecast.step_days)
    names = [c.name for c in COVARIATES if c.explains]
    table = np.column_stack([texts[nm].fillna("").astype(str).to_numpy() for nm in names])
    has_text = table != ""
    if forecast.drivers is not None:
        drivers = forecast.drivers[:, :, [i for i, c in enumerate(COVARIATES) if c.explains]]
        contrib = drivers[np.arange(n), step]
        timing = contrib - np.median(drivers, axis=1)
        score = np.where(timing > MIN_CONTRIBUTION, 10 + timing, np.where(contrib > MIN_CONTRIBUTION, contrib, -np.inf))
        score = np.where(has_text, score, -np.inf)
    else:
        rank = np.array([len(SALIENCE) - SALIENCE.index(nm) if nm in SALIENCE else -np.inf for nm in names], float)
        score = np.where(has_text, rank[None, :], -np.inf)
        score[:, names.index("launch")] = -np.inf
    order = np.argsort(-score, axis=1, kind="stable")[:, :MAX_REASONS]
    picked = np.take_along_axis(table, order, axis=1)
    ok = np.take_along_axis(score, order, axis=1) > -np.inf
    picked = np.where(ok, picked, "")
    return pd.Series(["; ".join(p for p in row if p) for row in picked], index=features.index)


def test_reasons_are_those_of_ranking_every_phrase(scored: Scored) -> None:
    features = scored.features
    model, _info = load_model(scored.fit.saved.path)
    for m in (model, random_discrete(1), random_discrete(2), flat_baseline()):
        fc = m.predict(features)
        expected = explain_every_phrase(features, fc)
        assert (expected != "").any()
        pd.testing.assert_series_equal(explain(features, fc), expected)


def test_median_over_steps_is_numpys_median() -> None:
    rng = np.random.default_rng(4)
    for steps in (1, 2, 5, 24):
        a = rng.choice(rng.normal(size=6), size=(500, 3, steps))  # ties, as coefficients by level make
        a[5, 1, 0] = a[7, 0, -1] = np.nan
        np.testing.assert_array_equal(_median_last_axis(a), np.median(a, axis=-1))


def test_scores_in_tiny_chunks_equal_scores_at_once(scored: Scored) -> None:
    features = scored.features.sample(frac=1.0, random_state=3)  # any order, any index
    model, _info = load_model(scored.fit.saved.path)
    for m in (model, random_discrete(1)):
        whole = score_frame(m, features, MONTHS, "v")
        for chunk in (1, 7):
            chunked = score_frame(m, features, MONTHS, "v", chunk=chunk)
            pd.testing.assert_frame_equal(chunked, whole, check_exact=False, rtol=0, atol=1e-12)
            assert chunked["reasons"].equals(whole["reasons"])
    assert list(whole["contract_id"]) == list(features["contract_id"])


# --- the models earn their keep ---------------------------------------------------------------


def test_discrete_model_beats_kaplan_meier_on_the_holdout(scored: Scored) -> None:
    h = scored.fit.holdout.set_index("family")
    assert {"discrete", "cox", BASELINE} <= set(h.index)
    discrete, km = h.loc["discrete"], h.loc[BASELINE]
    assert km["uno_c_6m"] == pytest.approx(0.5)  # one curve for all: every pair a tie
    assert discrete["uno_c_6m"] > km["uno_c_6m"] + 0.1
    assert discrete["ibs"] < km["ibs"]
    assert discrete["ibs"] < discrete["ibs_km"] == pytest.approx(km["ibs"])
    assert scored.fit.chosen == h.drop(index=BASELINE)["ibs"].idxmin()
