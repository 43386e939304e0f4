"""Turn one simulated chunk into the export's tables (as known on the as-of day) and the truth.

Column names and order come from :mod:`timing.core.contract`; nothing after the
as-of day is written: contracts signed later are absent, running contracts
have no end, event tables stop before the as-of day (timestamps) or on it
(dates).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from timing.core import contract as schema
from timing.demo import catalog as cat
from timing.demo.outreach import Contacts
from timing.demo.population import Customers
from timing.demo.portfolio import NEVER, Portfolio
from timing.demo.telematics import Readings
from timing.demo.workshop import FaultRecords, Visits

TIMESTAMP = pa.timestamp("ms", tz="UTC")
OUTCOME_NAMES = ("repurchased", "lost", "open")
VIN_ALPHABET = np.frombuffer(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", dtype=np.uint8)
WMI = {
    "Volkswagen": "WVW", "Skoda": "TMB", "Renault": "VF1", "Peugeot": "VF3", "BMW": "WBA",
    "Mercedes-Benz": "WDD", "Toyota": "JTD", "Kia": "KNA", "Hyundai": "KMH", "Volvo": "YV1", "Tesla": "5YJ",
}  # fmt: skip
#: Contracts of chunk k are numbered from k * CHUNK_ID_SPAN + 1.
CHUNK_ID_SPAN = 10_000_000


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def customer_ids(numbers: np.ndarray) -> pa.Array:
    return ids("CU", numbers, 7)


def labels(index: np.ndarray, names: tuple[str, ...], valid: np.ndarray | None = None) -> pa.Array:
    safe = np.where(index >= 0, index, 0).astype(np.int32)
    arr = pa.DictionaryArray.from_arrays(pa.array(safe), pa.array(names)).cast(pa.string())
    if valid is None:
        return arr
    return pc.if_else(pa.array(valid), arr, pa.nulls(len(arr), pa.string()))


def dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(np.where(days < NEVER, days, 0).astype(np.int32), pa.date32(), mask=mask)


def _vins(rng: np.random.Generator, model: np.ndarray) -> pa.Array:
    wmi = np.array([WMI[b] for b in cat.MODEL_BRAND], dtype="S3")[model]
    body = VIN_ALPHABET[rng.integers(0, len(VIN_ALPHABET), (len(model), 14))]
    raw = np.concatenate([wmi.view(np.uint8).reshape(-1, 3), body], axis=1)
    return pa.array(np.ascontiguousarray(raw).view("S17").ravel().astype(str))


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    names = schema.TABLES_BY_NAME[name].column_names
    assert tuple(columns) == names, (name, tuple(columns))
    return pa.table(columns)


def contract_numbers(p: Portfolio, cust: Customers, chunk: int) -> np.ndarray:
    """Contract (and vehicle) numbers: chronological by signing within the chunk."""
    order = np.lexsort((p.chain, cust.number[p.customer], p.signed))
    number = np.empty(len(p), dtype=np.int64)
    number[order] = chunk * CHUNK_ID_SPAN + 1 + np.arange(len(p))
    return number


def exported_contracts(p: Portfolio, number: np.ndarray, as_of_day: int) -> np.ndarray:
    """Positions of the contracts signed by the as-of day, in export row order."""
    shown = np.flatnonzero(p.signed <= as_of_day)
    return shown[np.argsort(number[shown], kind="stable")]


def build_tables(
    rng: np.random.Generator,
    cust: Customers,
    p: Portfolio,
    number: np.ndarray,
    readings: Readings,
    faults: FaultRecords,
    visits: Visits,
    contacts: Contacts,
    as_of_day: int,
) -> dict[str, pa.Table]:
    """The export tables of one chunk, rows in a stable order."""
    contract_id = ids("K", number, 10)
    vehicle_id = ids("V", number, 10)
    cust_id = customer_ids(cust.number)
    tables: dict[str, pa.Table] = {}

    tables["customers"] = _table("customers", {
        "customer_id": cust_id,
        "customer_type": labels(cust.business.astype(np.int64), ("private", "business")),
        "birth_year": pa.array(cust.birth_year, pa.int64(), mask=cust.birth_year < 0),
        "region": labels(cust.region, cat.REGIONS),
        "branch_id": labels(cust.branch, cat.BRANCHES),
        **{f"consent_{ch}": pa.array(cust.consent[:, i]) for i, ch in enumerate(cat.CHANNELS)},
        "do_not_contact": pa.array(cust.do_not_contact),
        "preferred_channel": labels(cust.preferred_channel, cat.CHANNELS, cust.preferred_channel >= 0),
    })  # fmt: skip

    shown = exported_contracts(p, number, as_of_day)
    ended = p.actual_end[shown] <= as_of_day
    pred = p.predecessor[shown]
    has_pred = (pred >= 0) & p.predecessor_recorded[shown]
    pred_id = pc.take(contract_id, pa.array(np.where(has_pred, pred, 0)))
    cars = p.cars
    tables["vehicles"] = _table("vehicles", {
        "vehicle_id": pc.take(vehicle_id, pa.array(shown)),
        "vin": _vins(rng, cars.model[shown]),
        "brand": pa.array(cat.MODEL_BRAND[cars.model[shown]].astype(str)),
        "model": pa.array(cat.MODEL_NAME[cars.model[shown]].astype(str)),
        "model_year": pa.array(cars.model_year[shown], pa.int64()),
        "powertrain": labels(cars.powertrain[shown], cat.POWERTRAINS),
        "list_price": pa.array(cars.list_price[shown], pa.float64()),
    })  # fmt: skip
    tables["contracts"] = _table("contracts", {
        "contract_id": pc.take(contract_id, pa.array(shown)),
        "customer_id": pc.take(cust_id, pa.array(p.customer[shown])),
        "vehicle_id": pc.take(vehicle_id, pa.array(shown)),
        "product": labels(p.product[shown], cat.PRODUCTS),
        "signed_date": dates(p.signed[shown]),
        "start_date": dates(p.start[shown]),
        "scheduled_end_date": dates(p.scheduled_end[shown]),
        "annual_km_allowance": pa.array(p.allowance[shown], pa.int64()),
        "monthly_payment": pa.array(p.monthly_payment[shown], pa.float64()),
        "currency": pa.array(np.full(len(shown), "EUR")),
        "actual_end_date": dates(p.actual_end[shown], ended),
        "end_type": labels(p.end_type[shown], cat.END_TYPES, ended),
        "predecessor_contract_id": pc.if_else(pa.array(has_pred), pred_id, pa.nulls(len(shown), pa.string())),
    })  # fmt: skip
    tables["readings"] = _table("readings", {
        "vehicle_id": pc.take(vehicle_id, pa.array(readings.vehicle)),
        "recorded_at": pa.array(readings.ms, TIMESTAMP),
        "odometer_km": pa.array(readings.odometer_km, pa.float64()),
        "battery_soh_pct": pa.array(readings.battery_soh_pct, pa.float64(), from_pandas=True),
    })  # fmt: skip
    tables["fault_codes"] = _table("fault_codes", {
        "vehicle_id": pc.take(vehicle_id, pa.array(faults.vehicle)),
        "recorded_at": pa.array(faults.ms, TIMESTAMP),
        "code": labels(faults.code, cat.CODES),
        "severity": labels(faults.severity, cat.SEVERITIES),
    })  # fmt: skip
    tables["service_visits"] = _table("service_visits", {
        "vehicle_id": pc.take(vehicle_id, pa.array(visits.vehicle)),
        "visit_date": dates(visits.day),
        "visit_type": labels(visits.visit_type, cat.VISIT_TYPES),
        "cost": pa.array(visits.cost, pa.float64()),
    })  # fmt: skip
    about = contacts.contract >= 0
    tables["contacts"] = _table("contacts", {
        "customer_id": pc.take(cust_id, pa.array(contacts.customer)),
        "contract_id": pc.if_else(pa.array(about), pc.take(contract_id, pa.array(np.where(about, contacts.contract, 0))), pa.nulls(len(about), pa.string())),
        "contacted_at": pa.array(contacts.ms, TIMESTAMP),
        "channel": labels(contacts.channel, cat.CHANNELS),
        "outcome": labels(contacts.outcome, cat.OUTCOMES),
    })  # fmt: skip
    return tables


def build_truth(cust: Customers, p: Portfolio, number: np.ndarray, as_of_day: int) -> pa.Table:
    """One row per simulated contract: what the customer intended and what happened."""
    order = np.argsort(number, kind="stable")
    contract_id = ids("K", number, 10)
    succ = p.successor[order]
    intended = p.intended[order]
    outcome_day = p.outcome_day[order]
    return pa.table({
        "contract_id": pc.take(contract_id, pa.array(order)),
        "customer_id": pc.take(customer_ids(cust.number), pa.array(p.customer[order])),
        "intended_signing_date": dates(intended, intended < NEVER),
        "outcome": labels(p.outcome[order], OUTCOME_NAMES),
        "outcome_date": dates(outcome_day, outcome_day < NEVER),
        "successor_contract_id": pc.if_else(
            pa.array(succ >= 0), pc.take(contract_id, pa.array(np.where(succ >= 0, succ, 0))), pa.nulls(len(succ), pa.string())
        ),
        "driver": labels(p.driver[order], cat.DRIVERS),
        "in_export": pa.array(p.signed[order] <= as_of_day),
    })  # fmt: skip
