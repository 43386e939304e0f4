"""As-of features: a subsampled training origin describes its contracts exactly as the full one does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import base_tables

from timing.demo import generate_demo
from timing.features.open_contracts import features_at
from timing.ingest.load import ingest
from timing.store.asof import create_views, open_snapshot

D = date(2026, 6, 30)
T = date(2025, 12, 31)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    generate_demo(root / "export", customers=400, as_of=D, seed=5, fmt="parquet")
    ingest(root / "export", root / "store.duckdb", as_of=D)
    return root / "store.duckdb"


def test_a_sample_of_contracts_gets_the_same_features_as_the_full_origin(store: Path) -> None:
    with open_snapshot(store) as snap:
        create_views(snap.con, snap.schema, T, "at_t")
        full = features_at(snap.con, "at_t", T).set_index("contract_id")
        # every second contract of every fleet: the sample splits fleets
        snap.con.execute(
            "CREATE TEMP TABLE pick AS SELECT contract_id FROM at_t.outcomes "
            "WHERE outcome = 'open' AND hash(contract_id) % 2 = 0")
        part = features_at(snap.con, "at_t", T, "pick").set_index("contract_id")
    assert 0 < len(part) < len(full)
    split = full.loc[part.index]
    assert (split["fleet_size"] > 1).any()
    assert (full.groupby("customer_id").size().reindex(part["customer_id"]).to_numpy()
            > part.groupby("customer_id").size().reindex(part["customer_id"]).to_numpy()).any()
    # cars without telematics fall back on the median usage of the contracts described (documented in
    # timing.features.usage): an estimate from the sample; everything else is the same to the last digit
    fallback = ["km_per_day", "km_per_day_se", "usage_ratio", "km_driven", "days_to_allowance",
                "days_to_allowance_low", "days_to_allowance_high", "projected_km_at_end", "projected_overage_km"]
    measured = split["has_telematics"] == 1
    assert measured.any() and (~measured).any()
    pd.testing.assert_frame_equal(part[measured], split[measured], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(part.drop(columns=fallback), split.drop(columns=fallback),
                                  check_exact=False, rtol=1e-9)


def _history_export(make_export: Callable[..., Path], fault_before_second_renewal: bool) -> Path:
    """C1 renewed twice before K2: K0 -> K1 signed 22 days early, K1 -> K2 signed 62 days early."""
    t = base_tables()
    k0 = {**t["contracts"][0], "contract_id": "K0", "vehicle_id": "V6", "signed_date": "2017-01-10",
          "start_date": "2017-02-01", "scheduled_end_date": "2021-02-01", "actual_end_date": "2021-02-01"}
    contracts = [k0, {**t["contracts"][0], "predecessor_contract_id": "K0"}, *t["contracts"][1:]]
    faults = list(t["fault_codes"])
    if fault_before_second_renewal:  # K1's car broke down two weeks before its successor was signed
        faults.append({"vehicle_id": "V1", "recorded_at": "2023-11-15T10:00:00Z", "code": "P0300",
                       "severity": "critical"})
    return make_export("history" if fault_before_second_renewal else "plain", contracts=contracts,
                       fault_codes=faults)


@pytest.mark.parametrize("fault", [False, True])
def test_the_habit_leaves_out_renewals_signed_right_after_a_critical_fault(
        make_export: Callable[..., Path], tmp_path: Path, fault: bool) -> None:
    export = _history_export(make_export, fault)
    ingest(export, tmp_path / f"s{fault}.duckdb", as_of=date(2026, 6, 30))
    with open_snapshot(tmp_path / f"s{fault}.duckdb") as snap:
        k2 = features_at(snap.con, snap.schema, snap.as_of).set_index("contract_id").loc["K2"]
    assert k2["n_renewals"] == 2
    assert k2["last_offset_days"] == -62  # what happened last time is still said
    if fault:
        assert k2["habit_offset_days"] == -22 and pd.isna(k2["habit_offset_sd"])
    else:
        assert k2["habit_offset_days"] == -42 and k2["habit_offset_sd"] == pytest.approx(np.std([-22, -62], ddof=1))
    # months in which the customer signed: January 2021 and December 2023
    assert k2["signed_months_mask"] == (1 << 0) | (1 << 11)


def test_last_time_is_the_latest_signing_and_the_contract_id_breaks_a_tie(
        make_export: Callable[..., Path], tmp_path: Path) -> None:
    # C1 renews two cars in one deal on 2023-12-01: K1 (62 days early) and K1b (91 days early)
    t = base_tables()
    k1, k2 = t["contracts"][0], t["contracts"][1]
    k1b = {**k1, "contract_id": "K1b", "vehicle_id": "V6", "scheduled_end_date": "2024-03-01",
           "actual_end_date": "2024-03-01"}
    k2b = {**k2, "contract_id": "K2b", "vehicle_id": "V7", "predecessor_contract_id": "K1b"}
    vehicles = [*t["vehicles"], {**t["vehicles"][0], "vehicle_id": "V7"}]
    export = make_export("deal", contracts=[k1, k1b, k2, k2b, *t["contracts"][2:]], vehicles=vehicles)
    ingest(export, tmp_path / "deal.duckdb", as_of=date(2026, 6, 30))
    with open_snapshot(tmp_path / "deal.duckdb") as snap:
        f = features_at(snap.con, snap.schema, snap.as_of).set_index("contract_id")
    assert f.loc[["K2", "K2b"], "last_offset_days"].tolist() == [-91, -91]  # 'K1b' > 'K1'
    assert f.loc["K2", "habit_offset_days"] == pytest.approx((-62 - 91) / 2)
