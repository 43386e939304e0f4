"""The due list: which windows are due, filters, ordering, and the three output formats.

One small hand-built store serves the module: two plans (2026-06-23 and the
current one of 2026-06-30) written with the scheduler's own ``save_plan``,
and customers who may or may no longer be contacted.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from timing.core.contract import CONTRACTS, CUSTOMERS, VEHICLES
from timing.outputs.due import DUE_COLUMNS, due_list, empty_message, format_due
from timing.schedule import Plan
from timing.schedule.job import save_plan
from timing.store.db import StoreError

AS_OF = date(2026, 6, 30)
EARLIER = date(2026, 6, 23)
ANSI = re.compile(r"\x1b\[")


def customer(cid: str, branch: str, region: str, *, kind: str = "private", email: bool = True,
             phone: bool = True, dnc: bool = False) -> dict[str, object]:
    return {"customer_id": cid, "customer_type": kind, "birth_year": 1980, "region": region, "branch_id": branch,
            "consent_email": email, "consent_phone": phone, "consent_sms": False, "consent_letter": False,
            "do_not_contact": dnc, "preferred_channel": "phone"}


CUSTOMERS_ROWS = [
    customer("C1", "B1", "north"),
    customer("C2", "B2", "south", kind="business", phone=False),
    customer("C3", "B1", "north", dnc=True),  # opted out after the plan was made
    customer("C4", "B1", "north", phone=False),  # withdrew phone consent since
    customer("C5", "B1", "north"),
    customer("C7", "Zürich-Süd", "Île-de-France"),
]
VEHICLE_MODELS = {"K1": ("BMW", "320d"), "K2": ("Skoda", "Octavia"), "K3": ("Kia", "EV6"),
                  "K4": ("Peugeot", "308"), "K5": ("Renault", "Clio"), "K6": ("Tesla", "Model 3"),
                  "K7": ("Mercedes-Benz", "C 220 d Limousine Exclusive"), "K8": ("Volkswagen", "Passat"),
                  "K9": ("Hyundai", "Kona")}
OWNER = {"K1": "C1", "K2": "C2", "K3": "C3", "K4": "C4", "K5": "C5", "K6": "C6", "K7": "C7", "K8": "C1",
         "K9": "C1"}


def window(contract: str, start: date | None, p: float, status: str, channel: str | None = "phone",
           reasons: str = "scheduled end 2026-08-01 (in 32 days); signed 1 month early last time",
           plan: date = AS_OF) -> dict[str, object]:
    cust = next((c for c in CUSTOMERS_ROWS if c["customer_id"] == OWNER[contract]),
                {"branch_id": "B1", "region": "north"})
    return {
        "as_of": plan, "contract_id": contract, "customer_id": OWNER[contract], "branch_id": cust["branch_id"],
        "region": cust["region"], "window_start": start,
        "window_end": None if start is None else start + timedelta(days=27),
        "week": np.nan if start is None else float((start - plan).days // 7),
        "channel": channel if start is not None else None,
        "priority": 1 if p >= 0.5 else 2 if p >= 0.25 else 3,
        "p_signing_in_window": p if start is not None else np.nan,
        "expected_signing_date": pd.Timestamp(plan + timedelta(days=40)), "reasons": reasons, "status": status,
    }


def current_plan() -> list[dict[str, object]]:
    return [
        window("K1", AS_OF, 0.62, "kept"),
        window("K2", AS_OF + timedelta(days=21), 0.81, "moved", channel="account"),
        window("K3", AS_OF, 0.90, "new"),  # do_not_contact now
        window("K4", AS_OF, 0.85, "new"),  # no phone consent now
        window("K5", None, 0.0, "cancelled"),
        window("K6", AS_OF, 0.88, "new"),  # customer missing from the customers table
        window("K7", AS_OF + timedelta(days=7), 0.30, "new", channel="email",
               reasons="fault [bold]P0420[/bold] [/]; a very long reason that goes on and on "
                       "beyond any column width; third; fourth"),
        window("K8", AS_OF + timedelta(days=14), 0.20, "new", channel="email"),
        window("K9", AS_OF + timedelta(days=56), 0.95, "new"),  # opens beyond 30 days
    ]


def write_plan(store: Path, as_of: date, rows: list[dict[str, object]]) -> None:
    windows = pd.DataFrame(rows)
    windows["as_of"] = as_of
    windows["window_start"] = pd.to_datetime(windows["window_start"]).dt.date
    windows["window_end"] = pd.to_datetime(windows["window_end"]).dt.date
    save_plan(store, Plan(as_of, windows, {}, pd.DataFrame(), 10, "exact", 0.0))


def build_store(path: Path, plans: bool = True) -> Path:
    con = duckdb.connect(str(path))
    for table, rows in (
        (CUSTOMERS, CUSTOMERS_ROWS),
        (VEHICLES, [{"vehicle_id": f"V{k}", "brand": b, "model": m} for k, (b, m) in VEHICLE_MODELS.items()]),
        (CONTRACTS, [{"contract_id": k, "customer_id": OWNER[k], "vehicle_id": f"V{k}", "product": "lease",
                      "signed_date": date(2023, 8, 1), "start_date": date(2023, 8, 1),
                      "scheduled_end_date": date(2026, 8, 1) + timedelta(days=i), "annual_km_allowance": 15000}
                     for i, k in enumerate(OWNER)]),
    ):
        con.execute(f"CREATE TABLE {table.name} ({', '.join(f'{c.name} {c.sql_type}' for c in table.columns)})")
        con.register("frame", pd.DataFrame(rows))
        con.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM frame")
        con.unregister("frame")
    con.execute(f"CREATE TABLE export_info AS SELECT DATE '{AS_OF}' AS as_of")
    con.close()
    if plans:
        write_plan(path, EARLIER, [window("K1", EARLIER, 0.55, "new", plan=EARLIER),
                                   window("K5", EARLIER + timedelta(days=7), 0.40, "new", plan=EARLIER)])
        write_plan(path, AS_OF, current_plan())
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("due") / "store.duckdb")


def test_due_windows_are_open_or_opening_within_the_horizon_most_valuable_first(store: Path) -> None:
    df = due_list(store)
    assert list(df.columns) == DUE_COLUMNS
    # K3/K4/K6: not contactable now; K5: cancelled; K9: opens in 56 days
    assert list(df["contract_id"]) == ["K2", "K1", "K7", "K8"]
    key = list(zip(-df["p_signing_in_window"], df["priority"], strict=True))
    assert key == sorted(key)
    assert df.attrs["as_of"] == AS_OF and df.attrs["plan_as_of"] == AS_OF
    k1 = df.set_index("contract_id").loc["K1"]
    assert k1["vehicle"] == "BMW 320d"
    assert k1["scheduled_end_date"] == pd.Timestamp("2026-08-01")
    assert k1["window_start"] == pd.Timestamp(AS_OF) and k1["window_end"] == pd.Timestamp("2026-07-27")
    assert k1["opens_in_days"] == 0 and k1["status"] == "kept" and k1["channel"] == "phone"
    assert df.set_index("contract_id").loc["K2", "opens_in_days"] == 21


def test_within_bounds_the_start_and_an_ended_window_is_no_longer_due(store: Path) -> None:
    assert "K9" in set(due_list(store, within=56)["contract_id"])
    assert "K9" not in set(due_list(store, within=55)["contract_id"])
    assert list(due_list(store, within=0)["contract_id"]) == ["K1"]  # open on the day itself
    # 2026-07-28: K1's window (06-30..07-27) has closed, K8's (07-14..08-10) is open
    later = due_list(store, as_of=date(2026, 7, 28), within=0)
    assert list(later["contract_id"]) == ["K2", "K7", "K8"]


def test_filters(store: Path) -> None:
    assert list(due_list(store, branch="B2")["contract_id"]) == ["K2"]
    assert list(due_list(store, region="Île-de-France")["contract_id"]) == ["K7"]
    assert list(due_list(store, channel="email")["contract_id"]) == ["K7", "K8"]
    assert list(due_list(store, min_priority=1)["contract_id"]) == ["K2", "K1"]
    assert list(due_list(store, min_priority=2)["contract_id"]) == ["K2", "K1", "K7"]
    assert list(due_list(store, branch="B1", channel="phone", min_priority=1)["contract_id"]) == ["K1"]
    assert due_list(store, branch="B1", channel="phone", min_priority=1).attrs["filters"] == (
        "branch B1, channel phone, priority 1..1")


def test_an_earlier_day_uses_the_plan_in_force_then(store: Path) -> None:
    df = due_list(store, as_of=date(2026, 6, 25), within=10)
    assert df.attrs["plan_as_of"] == EARLIER
    assert list(df["contract_id"]) == ["K1", "K5"]


def test_no_plan_is_a_clear_error(store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no outreach plan on or before 2026-01-01"):
        due_list(store, as_of=date(2026, 1, 1))
    with pytest.raises(StoreError, match="run `timing schedule` first"):
        due_list(build_store(tmp_path / "empty.duckdb", plans=False))
    with pytest.raises(ValueError, match="within"):
        due_list(store, within=-1)
    with pytest.raises(ValueError, match="min_priority"):
        due_list(store, min_priority=4)


def test_table_fits_100_columns_and_cuts_long_reasons(store: Path) -> None:
    df = due_list(store)
    text = format_due(df, "table")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert not ANSI.search(text)
    assert lines[0].startswith("4 outreach windows open on 2026-06-30 or opening within 30 days")
    for cid in df["contract_id"]:
        assert cid in text
    assert "2026-07-21" in text and "81%" in text and "P1" in text and "moved" in text
    # the second reason is cut with an ellipsis and the other two are counted; markup stays literal
    assert "[bold]P0420[/bold] [/]" in text
    k7 = next(i for i, line in enumerate(lines) if line.startswith("K7"))
    assert lines[k7 + 1].rstrip().endswith("… (+2)")
    assert "Mercedes-Benz C…" in text
    coloured = format_due(df, "table", color=True)
    assert ANSI.search(coloured)


def test_csv_has_every_column_iso_dates_and_the_same_order(store: Path) -> None:
    df = due_list(store)
    text = format_due(df, "csv")
    assert "\r" not in text and text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == DUE_COLUMNS
    assert [r["contract_id"] for r in rows] == list(df["contract_id"])
    for r in rows:
        for col in ("scheduled_end_date", "window_start", "window_end", "expected_signing_date"):
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r[col])
    k7 = next(r for r in rows if r["contract_id"] == "K7")
    assert k7["region"] == "Île-de-France" and k7["reasons"].endswith("third; fourth")
    assert float(k7["p_signing_in_window"]) == 0.3


def test_json_lines(store: Path) -> None:
    df = due_list(store)
    records = [json.loads(line) for line in format_due(df, "json").splitlines()]
    assert [r["contract_id"] for r in records] == list(df["contract_id"])
    assert records[0]["window_start"] == "2026-07-21" and records[0]["priority"] == 1
    assert set(records[0]) == set(DUE_COLUMNS)


def test_an_empty_list_says_so_plainly(store: Path) -> None:
    df = due_list(store, branch="NOPE", channel="sms")
    assert df.empty and list(df.columns) == DUE_COLUMNS
    message = ("No outreach windows open on 2026-06-30 or opening within 30 days "
               "(filters: branch NOPE, channel sms).")
    assert empty_message(df) == message
    assert format_due(df, "table") == message + "\n"
    assert format_due(df, "csv") == ",".join(DUE_COLUMNS) + "\n"
    assert format_due(df, "json") == ""
    with pytest.raises(ValueError, match="unknown format"):
        format_due(df, "xml")
