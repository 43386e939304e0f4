"""The model families: one contract for all, recovery, cross-checks, no leakage, tamper-proof files.

The tests on portfolio data share one small demo world (300 customers,
exported on ``D = 2026-10-31``) built once per module:

* ``full``: the store after ingesting the whole export;
* ``at_t``: the store after ingesting what an export on ``T = D - 365 days``
  would have held, cut from the same files with pandas and the as-of rules
  written out below (independently of :mod:`timing.store.asof`).

Recovery tests simulate from known coefficients; cross-checks use public data
bundled with lifelines (``load_rossi``), so nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi
from statsmodels.duration.hazard_regression import PHReg

import timing.models.io as modelio
from timing.config import FitSettings
from timing.core.conventions import LOST, MONTH_DAYS, SIGNED
from timing.demo import generate_demo
from timing.features.open_contracts import features_at, features_sql, measure_usage, pairs_sql
from timing.features.training import (
    _features_at_origin,
    landmarks,
    monthly_origins,
    origin_features,
    outcomes_with_ends,
)
from timing.fitting.fit import (
    FitReport,
    fit_models,
    holdout_origin,
    register_model,
    signings_through,
)
from timing.ingest.load import ingest
from timing.models import MODEL_COLUMNS, REGISTRY, RESULTS, ModelResult, MonthlyForecast
from timing.models import covariates as covariates_module
from timing.models import panel as panel_module
from timing.models.base import predict_probabilities
from timing.models.boost import INPUTS, BoostedHazard, BoostedHazardResult
from timing.models.covariates import COVARIATES
from timing.models.cox import MIN_LEVEL_ROWS, CoxHazard, fit_cox, origin_covariates
from timing.models.data import Landmarks, renumbered
from timing.models.discrete import (
    DiscreteHazard,
    _Gram,
    _information,
    _probabilities,
    _with_intercept,
    collapse,
    fit_multinomial,
)
from timing.models.io import MANIFEST, ModelError, SavedModel, load_model, save_model
from timing.models.panel import Design, encode, encode_codes, expand
from timing.scores.scoring import score
from timing.store.asof import create_views, open_snapshot

D = date(2026, 10, 31)
T = D - timedelta(days=365)
CUSTOMERS = 300
SEED = 11
SETTINGS = FitSettings(lookback_months=18, holdout_months=6, families=("discrete", "cox"))
FAMILIES = sorted(REGISTRY)


# --- the demo world -----------------------------------------------------------------------


def export_on(src: Path, day: date, dst: Path) -> Path:
    """Cut the export an ``export on day`` would have been from a later one (Parquet in, Parquet out).

    The rules, as an export system applies them: contracts signed by ``day``,
    an end (and its type) only when reached by then; the customers and
    vehicles those contracts name; readings, faults and contacts recorded
    before the end of ``day``; service visits on or before it; contacts only
    about visible customers and contracts.
    """
    dst.mkdir(parents=True)
    tables = {p.stem: pq.read_table(p) for p in src.glob("*.parquet")}
    frames = {name: t.to_pandas() for name, t in tables.items()}
    day_ts, end_of_day = pd.Timestamp(day), pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)

    c = frames["contracts"]
    signed = (pd.to_datetime(c["signed_date"]) <= day_ts).to_numpy()
    not_yet_ended = pa.array((pd.to_datetime(c["actual_end_date"]) > day_ts).to_numpy())
    contracts = tables["contracts"]
    for col in ("actual_end_date", "end_type"):
        i = contracts.schema.get_field_index(col)
        null = pa.scalar(None, contracts.schema.field(col).type)
        contracts = contracts.set_column(i, col, pc.if_else(not_yet_ended, null, contracts[col]))
    contracts = contracts.filter(pa.array(signed))
    ids, customers, vehicles = (set(c.loc[signed, col]) for col in ("contract_id", "customer_id", "vehicle_id"))

    f = frames
    keep = {
        "customers": f["customers"]["customer_id"].isin(customers),
        "vehicles": f["vehicles"]["vehicle_id"].isin(vehicles),
        "readings": (f["readings"]["recorded_at"] < end_of_day) & f["readings"]["vehicle_id"].isin(vehicles),
        "fault_codes": (f["fault_codes"]["recorded_at"] < end_of_day) & f["fault_codes"]["vehicle_id"].isin(vehicles),
        "service_visits": (pd.to_datetime(f["service_visits"]["visit_date"]) <= day_ts)
        & f["service_visits"]["vehicle_id"].isin(vehicles),
        "contacts": (f["contacts"]["contacted_at"] < end_of_day) & f["contacts"]["customer_id"].isin(customers)
        & (f["contacts"]["contract_id"].isna() | f["contacts"]["contract_id"].isin(ids)),
    }
    pq.write_table(contracts, dst / "contracts.parquet")
    for name, mask in keep.items():
        pq.write_table(tables[name].filter(pa.array(mask.to_numpy())), dst / f"{name}.parquet")
    return dst


@dataclass(frozen=True)
class World:
    root: Path
    full: Path  # store holding the export on D
    at_t: Path  # store holding only what an export on T held


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    generate_demo(root / "export", customers=CUSTOMERS, as_of=D, seed=SEED, fmt="parquet")
    ingest(root / "export", root / "full.duckdb", as_of=D)
    ingest(export_on(root / "export", T, root / "export_t"), root / "at_t.duckdb", as_of=T)
    return World(root, root / "full.duckdb", root / "at_t.duckdb")


@dataclass(frozen=True)
class Training:
    lm: Landmarks  # labelled rows at 6 monthly origins before D
    open_now: pd.DataFrame  # features of the contracts open on D


@pytest.fixture(scope="module")
def training(world: World) -> Training:
    with open_snapshot(world.full) as snap:
        feats = origin_features(snap.con, snap.schema, monthly_origins(snap.as_of, 6))
        lm = landmarks(feats, outcomes_with_ends(snap.con, snap.schema), snap.as_of, 12)
        open_now = features_at(snap.con, snap.schema, snap.as_of)
    assert len(lm) > 1000 and len(open_now) > 100  # the world is big enough to mean something
    return Training(lm, open_now)


@pytest.fixture(scope="module")
def fitted(training: Training) -> dict[str, ModelResult]:
    return {family: REGISTRY[family](months=12).fit(training.lm) for family in FAMILIES}


# --- 1. one contract for every family -----------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_forecasts_probabilities_that_add_up(family: str, fitted: dict, training: Training) -> None:
    features = training.open_now
    fc = fitted[family].predict(features)
    assert isinstance(fc, MonthlyForecast)
    assert fc.p_signed.shape == fc.p_lost.shape == (len(features), 12)
    for p in (fc.p_signed, fc.p_lost, fc.cumulative_signed, fc.cumulative_lost):
        assert np.isfinite(p).all()
        assert (p >= 0).all() and (p <= 1).all()
    # signed and lost are competing outcomes of one contract: together at most certain
    assert (fc.p_signed.sum(axis=1) + fc.p_lost.sum(axis=1) <= 1 + 1e-9).all()
    assert (np.diff(fc.cumulative_signed, axis=1) >= -1e-12).all()
    assert (np.diff(fc.cumulative_lost, axis=1) >= -1e-12).all()
    # the day-level curve the scheduler reads is non-decreasing too, and meets the monthly one
    days = np.linspace(0, 12 * MONTH_DAYS, 200)
    cif = fc.cif_at_days(days)
    assert (np.diff(cif, axis=1) >= -1e-12).all()
    np.testing.assert_allclose(fc.cif_at_days(np.array([6 * MONTH_DAYS]))[:, 0], fc.cumulative_signed[:, 5], atol=1e-12)
    # one row per open contract, none missing, in the input order
    assert list(fc.contract_id) == list(features["contract_id"])
    long = fc.to_frame()
    assert long.groupby("contract_id").size().eq(12).all()
    assert set(long["contract_id"]) == set(features["contract_id"])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_needs_only_the_model_columns(family: str, fitted: dict, training: Training) -> None:
    # training keeps only MODEL_COLUMNS of the origins' features: a family reading any other column
    # would fail here (KeyError) or forecast differently from the same rows in full
    lm = training.lm
    slim = dataclasses.replace(lm, features=lm.features[list(MODEL_COLUMNS)])
    assert len(MODEL_COLUMNS) < lm.features.shape[1]
    refit = REGISTRY[family](months=12).fit(slim)
    features = training.open_now
    full, narrow = fitted[family].predict(features), refit.predict(features[list(MODEL_COLUMNS)])
    np.testing.assert_allclose(narrow.p_signed, full.p_signed, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(narrow.p_lost, full.p_lost, rtol=1e-9, atol=1e-12)


def test_renumbered_rows_keep_their_values_and_share_an_indexed_frame() -> None:
    frame = pd.DataFrame({"a": np.arange(6.0), "b": list("uvwxyz")})
    assert renumbered(frame) is frame  # already 0..n-1: nothing copied
    part = renumbered(frame[frame["a"] % 2 == 1])
    assert list(part.index) == [0, 1, 2] and list(part["b"]) == ["v", "x", "z"]
    assert isinstance(part.index, pd.RangeIndex)
    taken = frame[frame["a"] > 2]
    assert np.shares_memory(renumbered(taken)["a"].to_numpy(), taken["a"].to_numpy())  # not copied again


@pytest.mark.parametrize("family", FAMILIES)
def test_forecasts_follow_the_input_order(family: str, fitted: dict, training: Training) -> None:
    features = training.open_now
    fc = fitted[family].predict(features)
    order = np.random.default_rng(0).permutation(len(features))
    shuffled = fitted[family].predict(features.iloc[order])
    assert list(shuffled.contract_id) == list(features["contract_id"].iloc[order])
    np.testing.assert_allclose(shuffled.p_signed, fc.p_signed[order], rtol=0, atol=1e-15)
    np.testing.assert_allclose(shuffled.p_lost, fc.p_lost[order], rtol=0, atol=1e-15)


@pytest.mark.parametrize("family", FAMILIES)
def test_predicting_fewer_months_gives_the_first_months_of_the_forecast(family: str, fitted: dict,
                                                                          training: Training) -> None:
    features = training.open_now
    whole = fitted[family].predict(features)
    first = fitted[family].predicting(4).predict(features)
    assert first.months >= 4
    k = first.step_signed.shape[1]
    np.testing.assert_allclose(first.step_signed, whole.step_signed[:, :k], rtol=0, atol=1e-15)
    np.testing.assert_allclose(first.step_lost, whole.step_lost[:, :k], rtol=0, atol=1e-15)
    if family == "boost":  # the one family where it saves time: the later steps are not predicted
        assert first.months == 4
        assert fitted[family].predict(features).months == fitted[family].months  # the model is not changed


@pytest.mark.parametrize("family", FAMILIES)
def test_tables_round_trip_predicts_identically(family: str, fitted: dict, training: Training, tmp_path: Path) -> None:
    result = fitted[family]
    features = training.open_now
    before = result.predict(features)
    again = RESULTS[family].from_tables(result.to_tables())
    saved = save_model(result, tmp_path / "model", {"version": f"test-{family}"})
    loaded, info = load_model(saved.path, saved.manifest_sha256)
    assert info["family"] == family
    for other in (again, loaded):
        after = other.predict(features)
        np.testing.assert_array_equal(after.p_signed, before.p_signed)
        np.testing.assert_array_equal(after.p_lost, before.p_lost)
        assert other.months == result.months
    summary = loaded.summary()
    assert isinstance(summary, pd.DataFrame) and len(summary) > 0


# --- 2. the discrete hazard recovers the parameters it was simulated from -----------------


def test_discrete_hazard_recovers_simulated_coefficients() -> None:
    rng = np.random.default_rng(20240611)
    n = 60_000
    columns = ("intercept",) + Design.column_names()
    # four binned covariates in play (level codes drawn at random), the others at their reference
    play = [f for f, c in enumerate(COVARIATES) if c.n_levels >= 3][:4]
    codes = np.zeros((n, len(COVARIATES)), np.int16)
    for f in play:
        codes[:, f] = rng.integers(0, COVARIATES[f].n_levels, n)
    offsets = np.cumsum([0] + [c.n_levels - 1 for c in COVARIATES[:-1]])

    def col(f: int, level: int) -> int:  # row of B for covariate f at level (>= 1)
        return 1 + offsets[f] + level - 1

    B = np.zeros((len(columns), 2))
    B[0] = (-2.0, -3.0)  # monthly log-odds of signing / losing against nothing, at the references
    designated = {
        (col(play[0], 1), 0): 1.2, (col(play[0], COVARIATES[play[0]].n_levels - 1), 1): 0.9,
        (col(play[1], 2), 0): -0.7, (col(play[2], 1), 0): 0.6,
        (col(play[3], COVARIATES[play[3]].n_levels - 1), 0): 0.8, (col(play[3], 1), 1): -0.8,
    }
    for (i, j), value in designated.items():
        B[i, j] = value
    P = _probabilities(_with_intercept(encode_codes(codes)), B)
    u = rng.random(n)
    y = (u > P[:, 0]).astype(np.int8) + (u > P[:, 0] + P[:, 1]).astype(np.int8)  # 0 nothing, 1 signed, 2 lost

    patterns, counts = collapse(codes, y)
    assert counts.sum() == n and (counts.sum(axis=0) == np.bincount(y, minlength=3)).all()
    estimate, cov, _ = fit_multinomial(encode_codes(patterns), counts, penalty=1e-6)
    se = np.sqrt(np.diag(cov)).reshape(-1, 2)
    inside = np.abs(estimate - B) <= 1.96 * se

    for (i, j), value in designated.items():
        assert inside[i, j], f"{columns[i]} ({'signed' if j == 0 else 'lost'}): {estimate[i, j]:.3f} ± {1.96 * se[i, j]:.3f}, truth {value}"
        assert np.sign(estimate[i, j]) == np.sign(value)
    in_play = [0] + [i for i, name in enumerate(columns) if name.split("=")[0] in {COVARIATES[f].name for f in play}]
    coverage = inside[in_play].mean()
    assert coverage >= 0.90, f"only {coverage:.0%} of the 95% intervals cover the truth"


def test_discrete_hazard_matches_statsmodels_mnlogit() -> None:
    # the collapsed, sparse, L-BFGS fit is the plain multinomial logit on the expanded rows
    rng = np.random.default_rng(7)
    n = 6_000
    play = [f for f, c in enumerate(COVARIATES) if 3 <= c.n_levels <= 4][:2]  # small: MNLogit is dense
    codes = np.zeros((n, len(COVARIATES)), np.int16)
    for f in play:
        codes[:, f] = rng.integers(0, COVARIATES[f].n_levels, n)
    y = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])
    y = np.where((codes[:, play[0]] == 1) & (rng.random(n) < 0.3), 1, y)
    patterns, counts = collapse(codes, y)
    assert len(patterns) < 20  # the 6,000 rows collapse to their covariate patterns
    estimate, cov, _ = fit_multinomial(encode_codes(patterns), counts, penalty=1e-9)
    Xi = _with_intercept(encode_codes(codes)).toarray()
    used = np.flatnonzero(Xi.any(axis=0))
    ref = sm.MNLogit(y, Xi[:, used]).fit(method="newton", disp=0, maxiter=100)
    se = np.sqrt(np.diag(cov)).reshape(-1, 2)
    np.testing.assert_allclose(estimate[used], ref.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(se[used], ref.bse, rtol=1e-5)


# --- 2b. the panel in chunks is the materialised panel ------------------------------------


def materialised_panel(spec: DiscreteHazard, lm: Landmarks) -> tuple[Design, np.ndarray]:
    """The contract-step panel as the fit built it before it went by chunks: every row at once."""
    observed = lm.observed_months.astype(int) * spec.steps_per_month
    event_step = np.where(lm.event_type > 0, np.ceil(np.nan_to_num(lm.event_day) / spec.step_days), 0)
    event_step = np.minimum(event_step, observed).astype(int)
    last = np.where(lm.event_type > 0, event_step, observed)
    rows, k, tau = expand(lm.features, spec.steps, spec.step_days)
    keep = k <= np.repeat(last, spec.steps)
    rows, k, tau = rows[keep].reset_index(drop=True), k[keep], tau[keep]
    y = np.where(k == np.repeat(event_step, spec.steps)[keep], np.repeat(lm.event_type, spec.steps)[keep], 0)
    return encode(rows, tau, spec.launch_months), y.astype(np.int8)


def test_panel_in_tiny_chunks_collapses_to_the_materialised_panels_patterns(training: Training) -> None:
    spec = DiscreteHazard(months=12)
    design, y = materialised_panel(spec, training.lm)
    patterns, counts = collapse(design.codes, y)
    assert len(patterns) < len(y) and counts.sum() == len(y)
    for chunk in (7, 1_000, None):  # a chunk is a handful of rows, some contracts, or all of them
        got_patterns, got_counts = spec.patterns(training.lm, chunk_rows=chunk)
        np.testing.assert_array_equal(got_patterns, patterns)
        np.testing.assert_array_equal(got_counts, counts)
    panel, panel_y = spec.panel(training.lm, chunk_rows=97)
    np.testing.assert_array_equal(panel.codes, design.codes)  # by contract, then step, as materialised
    np.testing.assert_array_equal(panel_y, y)
    assert (panel.X != design.X).nnz == 0


def test_fit_and_forecasts_do_not_depend_on_the_chunk_size(training: Training, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DiscreteHazard(months=12)
    whole = spec.fit(training.lm)
    features = training.open_now
    fc = whole.predict(features)
    monkeypatch.setattr(panel_module, "CHUNK_ROWS", 13)
    small = spec.fit(training.lm)
    small_fc = small.predict(features)
    np.testing.assert_array_equal(small.coef, whole.coef)
    np.testing.assert_array_equal(small.cov, whole.cov)
    assert (small.n_rows, small.n_patterns, small.n_events, small.n_lost) == \
        (whole.n_rows, whole.n_patterns, whole.n_events, whole.n_lost)
    np.testing.assert_allclose(small_fc.step_signed, fc.step_signed, rtol=0, atol=1e-12)
    np.testing.assert_allclose(small_fc.drivers, fc.drivers, rtol=0, atol=1e-12)
    # the forecast is the sparse design of the materialised panel times the coefficients
    n, steps = len(features), spec.steps
    rows, _k, tau = expand(features, steps, spec.step_days)
    design = encode(rows, tau, spec.launch_months)
    P = _probabilities(_with_intercept(design.X), whole.coef)
    expected = MonthlyForecast.from_hazards(features["contract_id"].to_numpy(), P[:, 1].reshape(n, steps),
                                            P[:, 2].reshape(n, steps), steps_per_month=spec.steps_per_month)
    for got in (fc, small_fc):
        np.testing.assert_allclose(got.step_signed, expected.step_signed, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.step_lost, expected.step_lost, rtol=0, atol=1e-9)
    offsets = np.cumsum([0] + [c.n_levels - 1 for c in COVARIATES[:-1]])
    beta = np.concatenate([[0.0], whole.coef[1:, 0]])
    drivers = beta[np.where(design.codes > 0, design.codes + offsets, 0)].reshape(n, steps, len(COVARIATES))
    np.testing.assert_array_equal(fc.drivers, drivers)


def test_information_from_the_pair_operator_is_the_sparse_product(training: Training) -> None:
    codes, counts = DiscreteHazard(months=12).patterns(training.lm)
    rng = np.random.default_rng(3)
    Xi = _with_intercept(encode_codes(codes))
    P = rng.dirichlet([6.0, 1.0, 1.0], size=Xi.shape[0])
    total, pen = counts.sum(axis=1), np.r_[0.0, np.full(Xi.shape[1] - 1, 0.7)]
    np.testing.assert_allclose(_Gram(Xi).information(P, total, pen), _information(Xi, P, total, pen),
                               rtol=1e-12, atol=1e-9)
    # any sparse matrix, values other than one and empty rows included
    X = sp.random(300, 17, density=0.2, format="csr", random_state=4)
    w = rng.normal(size=(300, 2))
    got = _Gram(X).products(w)
    for j in range(2):
        np.testing.assert_allclose(got[j], (X.T @ X.multiply(w[:, [j]])).toarray(), rtol=1e-12, atol=1e-12)


def test_a_warm_started_fit_reaches_the_same_optimum_in_fewer_steps(training: Training) -> None:
    spec = DiscreteHazard(months=12)
    cold = spec.fit(training.lm)
    origin = pd.to_datetime(training.lm.features["as_of"])
    early = spec.fit(training.lm.subset((origin < origin.max()).to_numpy()))
    warm = spec.fit(training.lm, start=early)
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.coef, cold.coef, rtol=0, atol=1e-4)
    np.testing.assert_allclose(warm.cov, cold.cov, rtol=1e-3, atol=1e-8)
    fc_cold, fc_warm = cold.predict(training.open_now), warm.predict(training.open_now)
    np.testing.assert_allclose(fc_warm.step_signed, fc_cold.step_signed, rtol=0, atol=1e-6)
    # a start far off the optimum (or worse than the intercepts alone) still converges there
    bad = dataclasses.replace(early, coef=early.coef + 5.0)
    np.testing.assert_allclose(spec.fit(training.lm, start=bad).coef, cold.coef, rtol=0, atol=1e-4)


def test_next_launch_month_by_table_is_the_month_by_month_search() -> None:
    month = np.arange(-40.0, 40.0)  # month indices (from the origin's year), as the launch pull computes them
    for launch_months in ((3, 9), (1,), (12,), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), ()):
        ctx = {"launch_months": np.asarray(launch_months)}
        searched = np.full(len(month), np.nan)
        for k in range(12, 0, -1):  # the search the launch pull first did on every panel row
            searched = np.where(np.isin((month + k) % 12 + 1, ctx["launch_months"]), month + k, searched)
        looked_up = month + covariates_module._months_to_next_launch(ctx)[(month % 12).astype(int)]
        np.testing.assert_array_equal(looked_up, searched)


# --- 3. Cox coefficients: lifelines and statsmodels on the Rossi recidivism data ----------

ROSSI_EFRON = {"fin": -0.379, "age": -0.057, "race": 0.314, "wexp": -0.150, "mar": -0.434, "paro": -0.085, "prio": 0.091}


def test_fit_cox_reproduces_lifelines_published_rossi_coefficients() -> None:
    cph = fit_cox(load_rossi(), "week", "arrest")
    assert cph.params_.round(3).to_dict() == ROSSI_EFRON


def test_statsmodels_efron_gives_the_same_rossi_coefficients() -> None:
    rossi = load_rossi()
    X = rossi.drop(columns=["week", "arrest"])
    cph = fit_cox(rossi, "week", "arrest")
    efron = PHReg(rossi["week"], X, status=rossi["arrest"], ties="efron").fit()
    np.testing.assert_allclose(efron.params, cph.params_[X.columns], atol=1e-6)
    np.testing.assert_allclose(efron.bse, cph.standard_errors_[X.columns], rtol=1e-4)
    # statsmodels' (and scikit-survival's) default is Breslow's approximation. Rossi's arrests are
    # recorded by week, so 114 arrests share 49 distinct weeks; Breslow lets every arrest in a
    # tied week face the week's full risk set, Efron removes the tied arrests from it gradually,
    # which is closer to the exact partial likelihood. The estimates then differ in the third
    # decimal (wexp: -0.151 against -0.150), so a reference must name its ties method.
    breslow = PHReg(rossi["week"], X, status=rossi["arrest"], ties="breslow").fit()
    assert np.abs(breslow.params - cph.params_[X.columns].to_numpy()).max() > 1e-3


# --- 4. saved Cox parameters predict what lifelines itself predicts ------------------------


def test_cox_predictions_from_plain_tables_equal_lifelines(fitted: dict, training: Training) -> None:
    result = fitted["cox"]
    spec = result.spec
    assert isinstance(spec, CoxHazard)
    lm = training.lm
    # the fit CoxHazard.fit makes, redone with the lifelines object kept
    X, stratum = origin_covariates(lm.features, spec.launch_months)
    X = X.loc[:, list(result.columns)]
    duration = np.where(lm.event_type > 0, lm.event_month, lm.observed_months).astype(float)
    grid = np.arange(1, spec.months + 1, dtype=float)
    Xn, stratum_n = origin_covariates(training.open_now, spec.launch_months)
    Xn = Xn.reindex(columns=list(result.columns), fill_value=0.0)
    assert set(stratum_n) <= set(stratum)  # lifelines refuses strata it has not seen
    for cause, code in (("signed", SIGNED), ("lost", LOST)):
        df = X.assign(duration=duration, event=(lm.event_type == code).astype(int), stratum=stratum)
        cph = fit_cox(df, "duration", "event", strata=["stratum"], penalizer=spec.penalizer)
        np.testing.assert_allclose(result.parts[cause][0][cph.params_.index], cph.params_, rtol=1e-12)
        theirs = cph.predict_cumulative_hazard(Xn.assign(stratum=stratum_n), times=grid)
        theirs = theirs[Xn.index].to_numpy().T  # (contracts, months)
        ours = np.cumsum(-np.log1p(-result._monthly_hazard(cause, Xn, stratum_n)), axis=1)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_cox_estimates_only_levels_it_has_seen_enough_of(fitted: dict, training: Training) -> None:
    # on a small portfolio the lost model has a few dozen events; a level seen on a handful of
    # rows once sent lifelines' Newton to its step limit with hazard ratios like e^40
    result = fitted["cox"]
    X, _ = origin_covariates(training.lm.features, result.spec.launch_months)
    assert (X[list(result.columns)].sum() >= MIN_LEVEL_ROWS).all()
    for cause in ("signed", "lost"):
        params = result.parts[cause][0]
        assert np.isfinite(params).all() and (params.abs() < 10).all(), params[params.abs() >= 10]


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_predicts_block_by_block_without_drivers(family: str, fitted: dict, training: Training) -> None:
    whole = fitted[family].predict(training.open_now)
    blocks = predict_probabilities(fitted[family], training.open_now, chunk=7)
    assert blocks.drivers is None and blocks.steps_per_month == whole.steps_per_month
    np.testing.assert_array_equal(blocks.contract_id, whole.contract_id)
    np.testing.assert_allclose(blocks.step_signed, whole.step_signed, rtol=1e-12, atol=0)
    np.testing.assert_allclose(blocks.step_lost, whole.step_lost, rtol=1e-12, atol=0)


def test_cox_sees_a_seeded_sample_of_a_large_training_set(fitted: dict, training: Training) -> None:
    n = len(training.lm)
    whole = CoxHazard(max_rows=n).fit(training.lm)  # the cap reached exactly: no sample
    pd.testing.assert_series_equal(whole.parts["signed"][0], fitted["cox"].parts["signed"][0])
    a, b = (CoxHazard(max_rows=n // 2).fit(training.lm) for _ in range(2))
    pd.testing.assert_series_equal(a.parts["signed"][0], b.parts["signed"][0])  # reproducible
    other = CoxHazard(max_rows=n // 2, seed=1).fit(training.lm)
    assert not a.parts["signed"][0].equals(other.parts["signed"][0])  # a different half: other estimates


def test_boost_trains_on_a_weighted_case_control_sample_beyond_its_row_cap(training: Training) -> None:
    lm = training.lm
    spec = BoostedHazard()
    event_step, last = DiscreteHazard(spec.months, spec.steps_per_month).outcome_steps(lm)
    total = int(last.sum())
    events = int(((event_step >= 1) & (event_step <= spec.steps)).sum())
    assert 0 < events < total // 8
    X, y, w = BoostedHazard(max_rows=total).training_rows(lm)  # the cap reached exactly: every row, weight 1
    assert len(y) == total and (y != 0).sum() == events and np.all(w == 1)
    def near(weighted_count: float, n: int, rate: float) -> bool:  # within 4 binomial standard deviations
        return abs(weighted_count - n) <= 4 * np.sqrt(n * rate * (1 - rate)) / rate + 1e-9

    for cap in (total // 2, total // 4, events):
        capped = BoostedHazard(max_rows=cap)
        keep_events, keep_quiet = capped.sampling_rates(lm)
        assert keep_quiet < 1 and (keep_events == 1 or keep_events == pytest.approx(4 * keep_quiet))
        a, b = capped.training_rows(lm), capped.training_rows(lm)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)  # reproducible
        Xa, ya, wa = a
        assert abs(len(ya) - cap) < 0.05 * cap  # about the cap
        assert np.allclose(wa[ya != 0], 1 / keep_events) and np.allclose(wa[ya == 0], 1 / keep_quiet)
        # the weights restore the panel: event and event-free counts, and the event-free rows' mean step
        assert near(wa[ya != 0].sum(), events, keep_events)
        assert near(wa[ya == 0].sum(), total - events, keep_quiet)
        day = list(INPUTS).index("day")
        quiet_day = X[y == 0, day].mean()
        assert abs(np.average(Xa[ya == 0, day], weights=wa[ya == 0]) - quiet_day) < 0.03 * quiet_day
    other = BoostedHazard(max_rows=total // 4, seed=1).training_rows(lm)
    assert len(other[1]) != len(ya) or not np.array_equal(other[0], Xa)  # another seed, another sample


def test_boost_weights_undo_the_case_control_sampling(training: Training) -> None:
    """Fitted on a sample holding events at four times the rate of event-free rows, the weighted
    trees forecast signing and loss probabilities near the whole panel's fit; the same sample
    without its weights forecasts them far too high. Few, large leaves: on this small world the
    default trees overfit towards the sample's event share (+15% signings; at 100k contracts the
    bias at the default cap is +3%)."""
    import lightgbm as lgb

    lm, now = training.lm, training.open_now
    small = {"trees": 60, "learning_rate": 0.1, "min_rows_in_leaf": 1000, "leaves": 8, "bags": 1, "early_stopping": 0}
    total = int(DiscreteHazard(12, 2).outcome_steps(lm)[1].sum())
    full = BoostedHazard(max_rows=total, **small).fit(lm).predict(now)
    capped = BoostedHazard(max_rows=total // 3, **small)
    weighted = capped.fit(lm).predict(now)
    X, y, _w = capped.training_rows(lm)
    booster = lgb.train(capped.params(), lgb.Dataset(X, y), num_boost_round=capped.trees)
    raw = BoostedHazardResult(capped, (booster.model_to_string(),), len(y), 0, 0).predict(now)
    for attr in ("cumulative_signed", "cumulative_lost"):
        f = getattr(full, attr)[:, -1]
        w_err = abs(getattr(weighted, attr)[:, -1].mean() / f.mean() - 1)
        u_err = abs(getattr(raw, attr)[:, -1].mean() / f.mean() - 1)
        # measured: signed 0.07 / 0.34, lost 0.22 / 0.85 (0.06 / 0.32, 0.16 / 0.75 before the trees read the
        # battery per step: a small world's few large leaves)
        assert w_err < 0.25 and u_err > 3 * w_err, (attr, w_err, u_err)
        assert np.corrcoef(f, getattr(weighted, attr)[:, -1])[0, 1] > 0.8  # measured 0.86 for losses


def test_boost_sees_each_step_s_battery_health_projected_along_its_slope(training: Training) -> None:
    """The trees read the battery's health at each step (as the binned covariate does), not only on the
    as-of date: 84% falling 7.3 points a year is 82% a hundred days on; no battery stays NaN; an unknown
    slope keeps the last reading."""
    from timing.models.boost import _design, _raw

    f = training.open_now.iloc[:3].copy()
    f["battery_soh"] = [84.0, np.nan, 90.0]
    f["battery_slope_per_year"] = [-7.305, np.nan, np.nan]
    codes = np.zeros((len(COVARIATES), 3), np.int16)
    X = _design(_raw(f), np.arange(3), np.full(3, 100.0), codes)
    col = X[:, INPUTS.index("battery_soh_at_step")]
    np.testing.assert_allclose(col[[0, 2]], [82.0, 90.0], atol=1e-3)
    assert np.isnan(col[1])
    tau = np.array([0.0, 50.0, 100.0])
    proj = covariates_module.battery_at(np.full(3, 84.0), np.full(3, -7.305), tau)
    np.testing.assert_allclose(proj, [84.0, 83.0, 82.0], atol=1e-3)


def test_boost_learns_a_sharper_habit_than_the_average(fitted: dict, training: Training) -> None:
    """Customers with a known habit: the trees put more of their signing mass near the habitual date
    than the Kaplan-Meier baseline does (the covariates are read, not ignored)."""
    f = training.open_now
    habitual = (f["days_to_end"] + f["habit_offset_days"]).to_numpy(float)
    rows = np.flatnonzero(np.isfinite(habitual) & (habitual > 45) & (habitual < 300))
    assert len(rows) > 20
    near = {}
    for family in ("boost", "km"):
        fc = fitted[family].predict(f.iloc[rows])
        near[family] = float(np.mean(fc.cif_rowwise(habitual[rows] + 30) - fc.cif_rowwise(habitual[rows] - 30)))
    assert near["boost"] > 1.5 * near["km"], near


def test_boost_reasons_name_covariates_away_from_their_reference_level(fitted: dict, training: Training) -> None:
    from timing.models.panel import step_codes
    from timing.scores.reasons import SALIENCE, explain

    f = training.open_now
    spec = fitted["boost"].spec
    fc = fitted["boost"].predict(f)
    codes = np.moveaxis(step_codes(f, spec.steps, spec.step_days, spec.launch_months), 0, 2)  # (n, steps, cov)
    assert fc.drivers is not None and fc.drivers.shape == codes.shape
    assert not fc.drivers[codes == 0].any()  # a covariate at its reference level is never a reason
    names = [c.name for c in COVARIATES]
    habit, allowance = names.index("habit"), names.index("allowance")
    active = codes[..., allowance] != 0
    assert (fc.drivers[..., allowance][active] == len(SALIENCE)).all()  # the most telling, where it speaks
    assert (fc.drivers[..., allowance][active] > fc.drivers[..., habit][active]).all()
    reasons = explain(f, fc)
    assert (reasons != "").mean() > 0.9


def _step_hazards(fc: MonthlyForecast) -> tuple[np.ndarray, np.ndarray]:
    """The step hazards behind a forecast: each step's probabilities over the survival before it."""
    before = 1 - np.cumsum(fc.step_signed + fc.step_lost, axis=1) + fc.step_signed + fc.step_lost
    return fc.step_signed / before, fc.step_lost / before


def test_boost_chooses_its_number_of_trees_on_contracts_set_aside_and_keeps_it_when_refitting(
        training: Training) -> None:
    """Trees stop where the loss on a fifth of the contracts set aside is lowest (a fast learner on a
    small world overfits long before its 300 trees); the refit from that fit grows as many trees on
    every row."""
    import lightgbm as lgb

    lm = training.lm
    spec = BoostedHazard(trees=300, learning_rate=0.3, early_stopping=10, bags=1, seed=2)
    tuned = spec.fit(lm)
    (kept,) = tuned.rounds
    assert 1 <= kept < 300
    assert tuned.boosters()[0].num_trees() == 3 * kept  # one tree per class and round
    # the fifth set aside for seed 2, and the count kept is its best against a full run's
    ids = lm.features["contract_id"].to_numpy()
    aside = (pd.util.hash_array(ids).astype(np.uint64) + np.uint64(2)) % np.uint64(5) == 0
    assert 0.1 < aside.mean() < 0.3
    assert tuned.n_rows == len(spec.training_rows(lm.subset(~aside))[1])  # trained without them
    X, y, w = spec.training_rows(lm.subset(aside))
    Xt, yt, wt = spec.training_rows(lm.subset(~aside))
    full = lgb.train(spec.params(), lgb.Dataset(Xt, yt, weight=wt), num_boost_round=300)

    def loss(n: int) -> float:
        p = full.predict(X, num_iteration=n)[np.arange(len(y)), y]
        return float(np.average(-np.log(p), weights=w))

    losses = {n: loss(n) for n in (kept, 300, max(kept // 2, 1), min(kept + 20, 300))}
    assert losses[kept] <= min(losses.values()) + 1e-9, losses
    refit = spec.fit(lm, start=tuned)
    assert refit.rounds == (kept,) and refit.boosters()[0].num_trees() == 3 * kept
    assert refit.n_rows == len(spec.training_rows(lm)[1])  # on every row
    assert replace(spec, early_stopping=0).fit(lm).rounds == (300,)  # stopping switched off


def test_boost_bags_average_the_step_hazards_of_ensembles_on_their_own_samples(training: Training) -> None:
    lm, now = training.lm, training.open_now
    total = int(DiscreteHazard(12, 2).outcome_steps(lm)[1].sum())
    spec = BoostedHazard(trees=40, bags=2, seed=5, max_rows=total // 2, early_stopping=0)  # sampled: bags differ
    both = spec.fit(lm)
    one, two = replace(spec, bags=1).fit(lm), replace(spec, bags=1, seed=6).fit(lm)
    assert both.model_texts == one.model_texts + two.model_texts and both.rounds == (40, 40)
    assert one.model_texts != two.model_texts
    assert both.n_rows == one.n_rows + two.n_rows
    hs, hl = _step_hazards(both.predict(now))
    (hs1, hl1), (hs2, hl2) = _step_hazards(one.predict(now)), _step_hazards(two.predict(now))
    np.testing.assert_allclose(hs, (hs1 + hs2) / 2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hl, (hl1 + hl2) / 2, rtol=1e-9, atol=1e-12)
    again = BoostedHazardResult.from_tables(both.to_tables())
    assert again.rounds == both.rounds and again.spec.bags == 2
    np.testing.assert_array_equal(again.predict(now).step_signed, both.predict(now).step_signed)


def test_boost_bags_only_a_panel_of_at_most_bag_rows_and_a_refit_keeps_its_start_s_count(
        training: Training) -> None:
    lm = training.lm
    total = int(DiscreteHazard(12, 2).outcome_steps(lm)[1].sum())
    spec = BoostedHazard(trees=20, bags=3, bag_rows=total, early_stopping=0)
    assert spec.bags_for(lm) == 3 and replace(spec, bag_rows=total - 1).bags_for(lm) == 1
    large = replace(spec, bag_rows=total - 1)
    one = large.fit(lm)
    assert one.rounds == (20,) and len(one.model_texts) == 1
    assert one.model_texts == replace(spec, bags=1).fit(lm).model_texts  # the first bag's ensemble
    three = spec.fit(lm)
    assert len(three.model_texts) == 3 and three.rounds == (20, 20, 20)
    # the refit on every origin keeps the holdout fit's count, whatever the larger panel would get
    assert len(large.fit(lm, start=three).model_texts) == 3
    assert len(spec.fit(lm, start=one).model_texts) == 1
    assert BoostedHazardResult.from_tables(one.to_tables()).spec.bag_rows == total - 1


def test_a_boosted_model_from_another_panel_is_refused(fitted: dict) -> None:
    tables = fitted["boost"].to_tables()
    assert tables["meta"]["inputs"] == list(INPUTS)
    BoostedHazardResult.from_tables(tables)  # as saved: loads
    tables["meta"] = {**tables["meta"], "inputs": list(INPUTS[:-1])}
    with pytest.raises(ModelError, match="fit it again"):
        BoostedHazardResult.from_tables(tables)


# --- 5. the Kaplan-Meier baseline is lifelines' Kaplan-Meier / Aalen-Johansen --------------


def test_km_baseline_equals_lifelines_aalen_johansen(fitted: dict, training: Training) -> None:
    lm = training.lm
    fc = fitted["km"].predict(training.open_now.head(1))
    months = np.arange(1, 13)
    duration = np.where(lm.event_type > 0, lm.event_month, lm.observed_months).astype(float)
    # overall survival: any event ends the contract's time at risk
    kmf = KaplanMeierFitter().fit(duration, event_observed=lm.event_type > 0)
    surv = kmf.survival_function_at_times(months).to_numpy()
    np.testing.assert_allclose(1 - fc.cumulative_signed[0] - fc.cumulative_lost[0], surv, rtol=1e-10)
    # Aalen-Johansen jitters times tied between event types at random; a fixed order within the
    # month (signings, then losses, then censorings) changes no month-end value and keeps it exact
    ordered = duration + np.select([lm.event_type == SIGNED, lm.event_type == LOST], [0.0, 0.001], 0.002)
    for cause, cumulative in ((SIGNED, fc.cumulative_signed[0]), (LOST, fc.cumulative_lost[0])):
        aj = AalenJohansenFitter(calculate_variance=False).fit(ordered, lm.event_type.astype(int), event_of_interest=cause)
        cif = aj.cumulative_density_.iloc[:, 0]
        at_month_end = cif.reindex(cif.index.union(months + 0.003)).ffill().loc[months + 0.003].to_numpy()
        np.testing.assert_allclose(cumulative, at_month_end, rtol=1e-10)


# --- 6. no leakage: a fit and a score on T do not depend on anything after T --------------


@dataclass(frozen=True)
class FitPair:
    on_full: FitReport  # fitted on the full store with as_of = T
    on_t: FitReport  # fitted on the store that only ever held the export on T


@pytest.fixture(scope="module")
def fits_at_t(world: World) -> FitPair:
    on_full = fit_models(world.full, as_of=T, settings=SETTINGS, model_root=world.root / "models_full")
    on_t = fit_models(world.at_t, settings=SETTINGS, model_root=world.root / "models_t")
    return FitPair(on_full, on_t)


def test_the_holdout_starts_whole_model_months_before_the_fit_date() -> None:
    six = FitSettings(holdout_months=6)
    assert holdout_origin(date(2026, 10, 31), six) == date(2026, 4, 30)  # 184 days: six model months
    # 31 October to 30 April is 181 days, 5.95 model months: a month earlier, for every as-of from
    # the end of March to the end of July
    assert holdout_origin(date(2026, 4, 30), six) == date(2025, 9, 30)
    assert holdout_origin(date(2026, 7, 31), six) == date(2025, 12, 31)
    for T in pd.date_range("2024-01-31", "2026-12-31", freq="ME").date:
        T_h = holdout_origin(T, six)
        assert 6 * MONTH_DAYS <= (T - T_h).days < 7 * MONTH_DAYS + 1, T
        assert T_h in monthly_origins(T, six.lookback_months)  # its features are computed with the others
    # the shortest lookback the settings allow still holds such an origin (a month adds 28+ days)
    assert holdout_origin(date(2026, 4, 30), FitSettings(lookback_months=6, holdout_months=5)) == date(2025, 10, 30)


def test_signings_are_known_through_the_holdout_for_every_contract(training: Training) -> None:
    lm = training.lm
    days = 6 * MONTH_DAYS
    obs = signings_through(lm, days)
    signed = (lm.event_type == SIGNED) & (lm.event_day <= days)
    assert (obs.event_type == np.where(signed, SIGNED, 0)).all()
    np.testing.assert_array_equal(obs.day, np.where(signed, lm.event_day, days))
    # contracts whose competing-risks observation stops early (ended, fate not known yet) count as
    # not signed through the holdout: they had not signed by then
    assert ((lm.observed_day < days) & (lm.event_type == 0)).any()


def test_fit_on_t_ignores_what_the_store_knows_after_t(fits_at_t: FitPair) -> None:
    a, b = fits_at_t.on_full, fits_at_t.on_t
    assert a.as_of == b.as_of == T
    assert a.chosen == b.chosen and a.training_rows == b.training_rows
    pd.testing.assert_frame_equal(a.holdout, b.holdout, check_exact=True)
    # the saved folders are byte-identical: same tables, same metadata, same manifest
    files_a = sorted(p.name for p in a.saved.path.iterdir())
    assert files_a == sorted(p.name for p in b.saved.path.iterdir())
    for name in files_a:
        assert (a.saved.path / name).read_bytes() == (b.saved.path / name).read_bytes(), name
    assert a.saved.version == b.saved.version


def test_origin_features_from_held_tables_equal_those_from_the_views(world: World) -> None:
    # origin_features copies the snapshot's views into tables once; each origin's features must be
    # those its views over the snapshot's own views give, and what a store holding only T gives
    with open_snapshot(world.full, T) as snap, open_snapshot(world.at_t) as at_t:
        origins = monthly_origins(T, 4)
        held = origin_features(snap.con, snap.schema, origins, 150, seed=3)
        for con, schema in ((snap.con, snap.schema), (at_t.con, at_t.schema)):
            direct = pd.concat([_features_at_origin(con, schema, o, 150, 3) for o in origins], ignore_index=True)
            pd.testing.assert_frame_equal(held, direct, check_exact=False, rtol=1e-12)
        leftover = snap.con.execute("SELECT schema_name FROM duckdb_schemas() WHERE schema_name LIKE '\\_held%' "
                                    "ESCAPE '\\' OR schema_name LIKE '\\_origins%' ESCAPE '\\' "
                                    "OR schema_name LIKE 'origin%'").fetchall()
        assert leftover == []


def test_a_sample_s_outcomes_for_its_customers_alone_give_the_portfolio_s_sample_and_features(world: World) -> None:
    # sampling derives outcomes only for the customers of the first candidates in hash order; the
    # sample and its features must be those of deriving every contract's outcome first
    with open_snapshot(world.full, T) as snap:
        con, schema = snap.con, snap.schema
        for origin in monthly_origins(T, 3):
            for cap in (40, 400, 10**6):
                create_views(con, schema, origin, "whole")
                con.execute(f"""CREATE TABLE whole._sample AS SELECT contract_id FROM whole.outcomes
                    WHERE outcome = 'open' ORDER BY hash(contract_id || '{origin}' || '7'), contract_id
                    LIMIT {cap}""")
                expected = features_at(con, "whole", origin, "whole._sample")
                got = _features_at_origin(con, schema, origin, cap, 7)
                con.execute("DROP SCHEMA whole CASCADE")
                if cap == 40:
                    assert len(got) == 40  # a strict subset of the open contracts
                pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def test_features_of_a_subset_of_contracts_equal_their_rows_among_all(world: World) -> None:
    # the customer-level history is computed for the customers of the contracts asked for only
    with open_snapshot(world.full, T) as snap:
        con = snap.con
        con.register("_usage", measure_usage(con, f"{snap.schema}.readings", con.execute(pairs_sql(snap.schema, T)).df()))
        every = con.execute(features_sql(snap.schema, T, "_usage")).df()
        con.execute(f"CREATE TEMP TABLE _some AS SELECT contract_id FROM ({features_sql(snap.schema, T, '_usage')}) "
                    "WHERE hash(contract_id) % 3 = 0")
        some = con.execute(features_sql(snap.schema, T, "_usage", "_some")).df()
    assert 0 < len(some) < len(every)
    expected = every[every["contract_id"].isin(some["contract_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, expected, check_exact=True)


def test_scores_on_t_ignore_what_the_store_knows_after_t(world: World, fits_at_t: FitPair, tmp_path: Path) -> None:
    on_full = score(world.full, as_of=T, model_dir=fits_at_t.on_full.saved.path, out_dir=tmp_path / "a")
    on_t = score(world.at_t, model_dir=fits_at_t.on_t.saved.path, out_dir=tmp_path / "b")
    assert on_full.as_of == on_t.as_of == T
    assert len(on_full.scores) > 100
    pd.testing.assert_frame_equal(on_full.scores, on_t.scores, check_exact=True)


# --- 7. model folders are tamper-proof -----------------------------------------------------


@pytest.fixture
def registered_copy(world: World, fits_at_t: FitPair, tmp_path: Path) -> tuple[Path, SavedModel]:
    """A copy of the store on T and of its model, registered together (so tests may break them)."""
    store = tmp_path / "store.duckdb"
    shutil.copy(world.at_t, store)
    saved = fits_at_t.on_t.saved
    folder = tmp_path / "models" / saved.version
    shutil.copytree(saved.path, folder)
    copy = SavedModel(folder, saved.version, saved.manifest_sha256, saved.meta)
    register_model(store, copy, T, fits_at_t.on_t.chosen)
    return store, copy


def model_files(fits_at_t: FitPair) -> list[str]:
    return sorted(p.name for p in fits_at_t.on_t.saved.path.iterdir())


def flip_byte(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * where), len(data) - 1)
    data[i] ^= 0x20
    path.write_bytes(bytes(data))


def test_saved_model_holds_only_plain_tables(fits_at_t: FitPair) -> None:
    names = model_files(fits_at_t)
    assert MANIFEST in names and "model.json" in names
    assert all(n.endswith((".parquet", ".json")) for n in names)
    # Parquet and JSON only; nothing in the loading path can unpickle
    source = Path(modelio.__file__).read_text()
    assert not re.search(r"\b(pickle|joblib|dill|cloudpickle|marshal|shelve)\b|\beval\(|\bexec\(", source)


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_altering_any_byte_of_any_file_is_refused(registered_copy: tuple[Path, SavedModel], fits_at_t: FitPair,
                                                  where: float) -> None:
    store, saved = registered_copy
    pristine = saved.path.parent / "pristine"
    shutil.copytree(saved.path, pristine)
    load_model(saved.path, saved.manifest_sha256)  # intact: loads
    for name in model_files(fits_at_t):
        flip_byte(saved.path / name, where)
        with pytest.raises(ModelError):
            load_model(saved.path, saved.manifest_sha256)
        with pytest.raises(ModelError):
            load_model(saved.path)  # even without the registered hash, each file's own hash is checked
        with pytest.raises(ModelError):
            score(store, out_dir=store.parent / "out")
        shutil.copy(pristine / name, saved.path / name)
    load_model(saved.path, saved.manifest_sha256)


def test_an_added_or_missing_file_is_refused(registered_copy: tuple[Path, SavedModel]) -> None:
    store, saved = registered_copy
    (saved.path / "extra.parquet").write_bytes(b"PAR1")
    with pytest.raises(ModelError, match="extra.parquet"):
        load_model(saved.path)
    with pytest.raises(ModelError):
        score(store, out_dir=store.parent / "out")
    (saved.path / "extra.parquet").unlink()
    victim = next(p for p in saved.path.iterdir() if p.suffix == ".parquet")
    victim.unlink()
    with pytest.raises(ModelError):
        load_model(saved.path, saved.manifest_sha256)
    (saved.path / MANIFEST).unlink()
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(saved.path)


def test_a_consistently_rehashed_change_is_caught_by_the_registered_manifest(
        registered_copy: tuple[Path, SavedModel]) -> None:
    # someone edits a coefficient and rewrites the manifest to match: only the hash the
    # store recorded when the model was registered can tell
    store, saved = registered_copy
    params = next(p for p in sorted(saved.path.iterdir()) if p.suffix == ".parquet")
    table = pd.read_parquet(params)
    num = table.select_dtypes("number").columns[0]
    table[num] = table[num] + 1.0
    table.to_parquet(params, index=False)
    manifest = json.loads((saved.path / MANIFEST).read_text())
    manifest["sha256"][params.name] = modelio.sha256_file(params)
    (saved.path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    load_model(saved.path)  # self-consistent, so the folder alone cannot tell
    with pytest.raises(ModelError, match=MANIFEST):
        load_model(saved.path, saved.manifest_sha256)
    with pytest.raises(ModelError, match=MANIFEST):
        score(store, out_dir=store.parent / "out")


def test_a_reformatted_manifest_is_refused(registered_copy: tuple[Path, SavedModel]) -> None:
    store, saved = registered_copy
    manifest = saved.path / MANIFEST
    manifest.write_text(json.dumps(json.loads(manifest.read_text())))  # same content, other bytes
    with pytest.raises(ModelError):
        load_model(saved.path, saved.manifest_sha256)
    with pytest.raises(ModelError):
        score(store, out_dir=store.parent / "out")


def test_boost_fits_the_same_trees_whatever_the_thread_budget_and_counts_them(training: Training) -> None:
    """The thread budget changes the speed, never the model; every tree grown is reported as progress."""
    from timing.core import progress, runtime

    spec = BoostedHazard(trees=30, bags=1, early_stopping=0, max_rows=50_000)
    seen: list[float] = []

    class Counting(progress.Progress):
        def _start(self, description: str, total: float | None) -> progress.Task:
            task = progress.Task(description, total)
            original = task.finish
            task.finish = lambda: (seen.append(task.completed), original())  # type: ignore[method-assign]
            return task

    texts = []
    try:
        for n in (1, 2):
            runtime.set_threads(n)
            with progress.reporting(Counting()):
                texts.append(spec.fit(training.lm).model_texts)
    finally:
        runtime.set_threads(None)

    def trees(text: str) -> str:
        return text.split("end of trees")[0]

    assert [trees(t) for t in texts[0]] == [trees(t) for t in texts[1]]
    assert seen == [30, 30]
