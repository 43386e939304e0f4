"""As-of features: a subsampled training origin describes its contracts exactly as the full one does."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from timing.asof import create_views, open_snapshot
from timing.demo import generate_demo
from timing.features import features_at
from timing.ingest import ingest

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
    # timing.usage): an estimate from the sample; everything else is the same to the last digit
    fallback = ["km_per_day", "km_per_day_se", "usage_ratio", "km_driven", "days_to_allowance",
                "days_to_allowance_low", "days_to_allowance_high", "projected_km_at_end", "projected_overage_km"]
    measured = split["has_telematics"] == 1
    assert measured.any() and (~measured).any()
    pd.testing.assert_frame_equal(part[measured], split[measured], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(part.drop(columns=fallback), split.drop(columns=fallback),
                                  check_exact=False, rtol=1e-9)
