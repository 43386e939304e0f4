"""Successor inference on the tricky cases, and the as-of view (nothing after T is visible at T)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timing.core.contract import TABLES
from timing.store.asof import open_snapshot
from timing.store.db import configure
from timing.store.outcomes import derive_outcomes

D = date.fromisoformat


def contract(cid: str, cust: str, signed: str, start: str, end: str, actual: str | None = None, pred: str | None = None) -> dict:
    return {"contract_id": cid, "customer_id": cust, "vehicle_id": "V" + cid, "product": "lease",
            "signed_date": D(signed), "start_date": D(start), "scheduled_end_date": D(end),
            "annual_km_allowance": 15000, "monthly_payment": 400.0, "currency": "EUR",
            "actual_end_date": D(actual) if actual else None, "end_type": "returned" if actual else None,
            "predecessor_contract_id": pred}


def outcomes(rows: list[dict], as_of: str) -> dict[str, tuple]:
    con = configure(duckdb.connect())
    con.register("src", pd.DataFrame(rows))
    con.execute("CREATE TABLE contracts AS SELECT * FROM src")
    derive_outcomes(con, "contracts", D(as_of), "out")
    res = con.execute("SELECT contract_id, outcome, successor_contract_id, outcome_date FROM out").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in res}


def test_fleet_with_concurrent_contracts_matches_nearest_end() -> None:
    rows = [
        contract("K1", "F", "2021-01-01", "2021-03-01", "2024-03-01", "2024-03-01"),
        contract("K2", "F", "2021-04-01", "2021-06-01", "2024-06-01", "2024-06-01"),
        contract("K3", "F", "2021-07-01", "2021-09-01", "2024-09-01", "2024-09-01"),
        contract("N1", "F", "2024-05-20", "2024-06-01", "2027-06-01"),
        contract("N2", "F", "2024-02-15", "2024-03-01", "2027-03-01"),
        contract("N3", "F", "2024-09-10", "2024-09-15", "2027-09-15"),
    ]
    out = outcomes(rows, "2026-01-01")
    assert out["K1"][:2] == ("repurchased", "N2")
    assert out["K2"][:2] == ("repurchased", "N1")
    assert out["K3"][:2] == ("repurchased", "N3")
    assert out["K2"][2] == D("2024-05-20")
    assert {out[n][0] for n in ("N1", "N2", "N3")} == {"open"}


def test_one_new_contract_replaces_at_most_one_old_one() -> None:
    rows = [
        contract("K1", "F", "2021-01-01", "2021-03-01", "2024-03-01", "2024-03-01"),
        contract("K2", "F", "2021-01-05", "2021-03-05", "2024-03-05", "2024-03-05"),
        contract("N1", "F", "2024-03-04", "2024-03-05", "2027-03-05"),
    ]
    out = outcomes(rows, "2025-06-01")
    assert out["K2"][:2] == ("repurchased", "N1")  # 1 day from K2's end, 3 from K1's
    assert out["K1"] == ("lost", None, D("2024-03-01"))


def test_late_signing_after_the_end_within_180_days_is_a_repurchase() -> None:
    rows = [
        contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01"),
        contract("N1", "P", "2024-05-01", "2024-05-10", "2027-05-10"),
    ]
    assert outcomes(rows, "2025-01-01")["K1"][:2] == ("repurchased", "N1")


def test_signing_more_than_180_days_after_the_end_is_not_a_successor() -> None:
    rows = [
        contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01"),
        contract("N1", "P", "2024-07-15", "2024-07-20", "2027-07-20"),
    ]
    out = outcomes(rows, "2025-01-01")
    assert out["K1"] == ("lost", None, D("2024-01-01"))


def test_no_successor_is_open_until_180_days_after_the_end_then_lost() -> None:
    rows = [contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01")]
    assert outcomes(rows, "2024-06-28")["K1"][0] == "open"  # 179 days after the end
    assert outcomes(rows, "2024-06-29")["K1"] == ("lost", None, D("2024-01-01"))
    # a running contract past its scheduled end (an extension) is never lost
    running = [contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01")]
    assert outcomes(running, "2026-01-01")["K1"][0] == "open"


def test_recorded_link_wins_over_inference_and_first_signed_namer_is_successor() -> None:
    rows = [
        contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01"),
        contract("K2", "P", "2019-12-01", "2020-07-01", "2024-06-01", "2024-06-01"),
        contract("N1", "P", "2024-01-02", "2024-01-05", "2027-01-05", pred="K2"),
        contract("N2", "P", "2024-02-01", "2024-02-05", "2027-02-05", pred="K2"),
    ]
    out = outcomes(rows, "2026-01-01")
    assert out["K2"][:2] == ("repurchased", "N1")
    assert out["K1"][0] == "lost"  # N1 is recorded for K2; N2 names K2 too, so neither is inferred for K1


def test_a_second_car_signed_during_a_running_contract_can_be_its_inferred_successor() -> None:
    # the contract's rule: any later contract of the customer signed after K started counts,
    # matched by nearest end; a replacement signed near K's end wins over an older second car
    rows = [
        contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01"),
        contract("K2", "P", "2020-06-01", "2020-07-01", "2024-06-01"),
        contract("N1", "P", "2023-12-01", "2024-01-01", "2027-01-01"),
    ]
    out = outcomes(rows, "2026-01-01")
    assert out["K1"][:2] == ("repurchased", "N1")
    assert out["K2"][0] == "open"
    assert outcomes(rows[:2], "2026-01-01")["K1"][:2] == ("repurchased", "K2")


def test_contract_signed_before_the_old_one_started_is_not_its_successor() -> None:
    rows = [
        contract("K1", "P", "2020-01-01", "2021-01-01", "2024-01-01", "2024-01-01"),
        contract("N1", "P", "2020-06-01", "2020-06-05", "2023-06-05", "2023-06-05"),
    ]
    out = outcomes(rows, "2026-01-01")
    assert out["K1"][0] == "lost"
    assert out["N1"][:2] == ("lost", None)


def test_other_customers_contracts_are_never_successors() -> None:
    rows = [
        contract("K1", "A", "2020-01-01", "2020-02-01", "2024-01-01", "2024-01-01"),
        contract("N1", "B", "2023-12-01", "2024-01-01", "2027-01-01"),
    ]
    assert outcomes(rows, "2026-01-01")["K1"][0] == "lost"


# --- the as-of view -------------------------------------------------------------------

ORIGIN = date(2018, 1, 1)


def make_store(path: Path, frames: dict[str, pd.DataFrame], as_of: date) -> Path:
    """A store holding ``frames`` as the export on ``as_of`` (bypasses ingest, for speed)."""
    con = configure(duckdb.connect(str(path)))
    for table in TABLES:
        cols = ", ".join(f'"{c.name}" {c.sql_type}' for c in table.columns)
        con.execute(f"CREATE TABLE {table.name} ({cols})")
        if table.name in frames and len(frames[table.name]):
            con.register("src", frames[table.name])
            con.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM src")
            con.unregister("src")
    con.execute("CREATE TABLE export_info AS SELECT ?::DATE AS as_of", [as_of])
    con.close()
    return path


def export_on(frames: dict[str, pd.DataFrame], day: date) -> dict[str, pd.DataFrame]:
    """What an export on ``day`` holds, computed independently of timing.store.asof with pandas."""
    ts = pd.Timestamp(day) + pd.Timedelta(days=1)
    c = frames["contracts"]
    c = c[c["signed_date"] <= day].copy()
    ended = c["actual_end_date"].notna() & (c["actual_end_date"] <= day)
    c.loc[~ended, ["actual_end_date", "end_type"]] = None
    return {
        "customers": frames["customers"][frames["customers"]["customer_id"].isin(c["customer_id"])],
        "vehicles": frames["vehicles"][frames["vehicles"]["vehicle_id"].isin(c["vehicle_id"])],
        "contracts": c,
        "readings": frames["readings"][(frames["readings"]["recorded_at"] < ts)
                                       & frames["readings"]["vehicle_id"].isin(c["vehicle_id"])],
    }


@st.composite
def portfolios(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    n = draw(st.integers(1, 12))
    rows, readings = [], []
    for i in range(n):
        cust = f"C{draw(st.integers(0, 3))}"
        signed = ORIGIN + timedelta(days=draw(st.integers(0, 2500)))
        start = signed + timedelta(days=draw(st.integers(0, 60)))
        end = start + timedelta(days=draw(st.sampled_from([730, 1095, 1460])))
        actual = draw(st.one_of(st.none(), st.integers(1, 1600)))
        actual_end = start + timedelta(days=actual) if actual else None
        r = contract(f"K{i}", cust, str(signed), str(start), str(end), str(actual_end) if actual_end else None)
        if i and draw(st.booleans()):
            r["predecessor_contract_id"] = f"K{draw(st.integers(0, i - 1))}"
        rows.append(r)
        for k in range(draw(st.integers(0, 4))):
            day = start + timedelta(days=draw(st.integers(0, 1500)), seconds=draw(st.integers(0, 86399)))
            readings.append({"vehicle_id": f"VK{i}", "recorded_at": pd.Timestamp(day), "odometer_km": 100.0 * k,
                             "battery_soh_pct": None})
    contracts = pd.DataFrame(rows)
    customers = pd.DataFrame({"customer_id": sorted(contracts["customer_id"].unique())})
    customers = customers.assign(customer_type="private", region="r", branch_id="B1")
    vehicles = pd.DataFrame({"vehicle_id": contracts["vehicle_id"]})
    cols = ["vehicle_id", "recorded_at", "odometer_km", "battery_soh_pct"]
    return {"customers": customers, "vehicles": vehicles, "contracts": contracts,
            "readings": pd.DataFrame(readings, columns=cols)}


def view_state(store: Path, day: date) -> dict[str, list]:
    with open_snapshot(store, day) as snap:
        return {t: snap.con.execute(f"SELECT * FROM {snap.t(t)} ORDER BY ALL").fetchall()
                for t in ("customers", "vehicles", "contracts", "readings", "outcomes")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=portfolios(), t_days=st.integers(0, 3000), later_days=st.integers(1, 1500))
def test_nothing_after_t_is_visible_at_t(tmp_path_factory: pytest.TempPathFactory, frames: dict, t_days: int, later_days: int) -> None:
    t = ORIGIN + timedelta(days=t_days)
    full_day = ORIGIN + timedelta(days=5000)
    later = t + timedelta(days=later_days)
    folder = tmp_path_factory.mktemp("asof")
    full = make_store(folder / "full.duckdb", export_on(frames, full_day), full_day)
    at_later = make_store(folder / "later.duckdb", export_on(frames, later), later)
    exactly_t = make_store(folder / "t.duckdb", export_on(frames, t), t)
    seen = view_state(full, t)
    # no date after T in anything visible at T
    for row in seen["contracts"]:  # signed by T, an end only if reached by T
        assert row[4] <= t and (row[10] is None or row[10] <= t)
    assert all(r[1] < pd.Timestamp(t) + pd.Timedelta(days=1) for r in seen["readings"])
    for r in seen["outcomes"]:
        assert r[-1] is None or r[-1] <= t
    # a store that never held anything after T, or held more, shows the same at T
    assert view_state(at_later, t) == seen
    assert view_state(exactly_t, t) == seen


def test_a_later_date_than_the_store_is_refused(tmp_path: Path) -> None:
    frames = {"contracts": pd.DataFrame([contract("K1", "P", "2020-01-01", "2020-02-01", "2024-01-01")])}
    store = make_store(tmp_path / "s.duckdb", frames, date(2024, 6, 1))
    from timing.store.db import StoreError

    with pytest.raises(StoreError, match="after the store's export date"):
        open_snapshot(store, date(2024, 6, 2))
