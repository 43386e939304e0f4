"""Shared fixtures: a tiny, hand-written export that every rule test starts from."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

Rows = list[dict[str, object]]


def base_tables() -> dict[str, Rows]:
    """A clean export as of 2026-06-30: two customers, a renewal, a fleet, a running contract."""
    customers: Rows = [
        {"customer_id": "C1", "customer_type": "private", "birth_year": 1980, "region": "north",
         "branch_id": "B1", "consent_email": "true", "consent_phone": "yes", "consent_sms": "no",
         "consent_letter": "0", "do_not_contact": "false", "preferred_channel": "email"},
        {"customer_id": "C2", "customer_type": "business", "birth_year": "", "region": "south",
         "branch_id": "B2", "consent_email": "1", "consent_phone": "", "consent_sms": "",
         "consent_letter": "", "do_not_contact": "", "preferred_channel": ""},
        # C3 has no contract yet: rule tests corrupt it without orphaning anything
        {"customer_id": "C3", "customer_type": "private", "birth_year": 1991, "region": "north",
         "branch_id": "B1", "consent_email": "true", "consent_phone": "", "consent_sms": "",
         "consent_letter": "", "do_not_contact": "true", "preferred_channel": "phone"},
    ]
    vehicles: Rows = [
        {"vehicle_id": f"V{i}", "vin": "WBA12345678901234", "brand": "Brand", "model": "M3",
         "model_year": 2020, "powertrain": "bev" if i == 2 else "ice", "list_price": 45000}
        for i in range(1, 7)  # V6 belongs to no contract
    ]
    contracts: Rows = [
        # C1: K1 ended, renewed by K2 (recorded link)
        {"contract_id": "K1", "customer_id": "C1", "vehicle_id": "V1", "product": "lease",
         "signed_date": "2021-01-10", "start_date": "2021-02-01", "scheduled_end_date": "2024-02-01",
         "annual_km_allowance": 15000, "monthly_payment": 450.5, "currency": "EUR",
         "actual_end_date": "2024-02-01", "end_type": "returned", "predecessor_contract_id": ""},
        {"contract_id": "K2", "customer_id": "C1", "vehicle_id": "V2", "product": "lease",
         "signed_date": "2023-12-01", "start_date": "2024-02-01", "scheduled_end_date": "2027-02-01",
         "annual_km_allowance": 20000, "monthly_payment": 520, "currency": "EUR",
         "actual_end_date": "", "end_type": "", "predecessor_contract_id": "K1"},
        # C2: a fleet of two concurrent contracts and one replacement (inferred link)
        {"contract_id": "K3", "customer_id": "C2", "vehicle_id": "V3", "product": "balloon",
         "signed_date": "2022-01-01", "start_date": "2022-01-15", "scheduled_end_date": "2025-01-15",
         "annual_km_allowance": 30000, "monthly_payment": "", "currency": "",
         "actual_end_date": "2025-01-15", "end_type": "returned", "predecessor_contract_id": ""},
        {"contract_id": "K4", "customer_id": "C2", "vehicle_id": "V4", "product": "lease",
         "signed_date": "2022-06-01", "start_date": "2022-06-15", "scheduled_end_date": "2026-06-15",
         "annual_km_allowance": 30000, "monthly_payment": 610, "currency": "EUR",
         "actual_end_date": "", "end_type": "", "predecessor_contract_id": ""},
        {"contract_id": "K5", "customer_id": "C2", "vehicle_id": "V5", "product": "lease",
         "signed_date": "2025-02-20", "start_date": "2025-03-01", "scheduled_end_date": "2028-03-01",
         "annual_km_allowance": 30000, "monthly_payment": 640, "currency": "EUR",
         "actual_end_date": "", "end_type": "", "predecessor_contract_id": ""},
    ]
    readings: Rows = [
        {"vehicle_id": "V2", "recorded_at": "2026-01-01T08:00:00Z", "odometer_km": 30000, "battery_soh_pct": 97.5},
        {"vehicle_id": "V2", "recorded_at": "2026-02-01T08:00:00+01:00", "odometer_km": 32000, "battery_soh_pct": 97.0},
        {"vehicle_id": "V2", "recorded_at": "2026-03-01 08:00:00", "odometer_km": 34000, "battery_soh_pct": ""},
        {"vehicle_id": "V4", "recorded_at": "2026-03-01T08:00:00Z", "odometer_km": 90000, "battery_soh_pct": ""},
    ]
    fault_codes: Rows = [
        {"vehicle_id": "V4", "recorded_at": "2026-04-01T10:00:00Z", "code": "P0420", "severity": "critical"},
        {"vehicle_id": "V2", "recorded_at": "2026-02-11T10:00:00Z", "code": "U0100", "severity": "info"},
    ]
    service_visits: Rows = [
        {"vehicle_id": "V4", "visit_date": "2026-04-05", "visit_type": "repair", "cost": 830.0},
        {"vehicle_id": "V2", "visit_date": "2025-02-01", "visit_type": "maintenance", "cost": 210.0},
    ]
    contacts: Rows = [
        {"customer_id": "C1", "contract_id": "K2", "contacted_at": "2026-05-01T09:00:00Z",
         "channel": "email", "outcome": "interested"},
        {"customer_id": "C2", "contract_id": "", "contacted_at": "2026-03-01T09:00:00Z",
         "channel": "phone", "outcome": "no_response"},
    ]
    return {"customers": customers, "vehicles": vehicles, "contracts": contracts,
            "readings": readings, "fault_codes": fault_codes, "service_visits": service_visits,
            "contacts": contacts}


def write_csv(path: Path, rows: Rows, columns: list[str] | None = None) -> None:
    cols = columns or (list(rows[0]) if rows else [])
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_export(folder: Path, tables: dict[str, Rows]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        write_csv(folder / f"{name}.csv", rows)
    return folder


@pytest.fixture
def make_export(tmp_path: Path) -> Callable[..., Path]:
    """``make_export(name, **changes)``: the base export with tables replaced or edited."""

    def make(name: str = "export", **tables: Rows) -> Path:
        t = base_tables()
        t.update(tables)
        return write_export(tmp_path / name, t)

    return make
