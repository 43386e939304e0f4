"""Ingest: every contract rule, the accounting identity, fatal errors, atomic replacement."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import base_tables, write_csv, write_export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timing.core.contract import TABLES
from timing.core.errors import ExportError
from timing.ingest.load import ingest
from timing.ingest.sql import column_rules

AS_OF = date(2026, 6, 30)


def quarantine(store: Path) -> pd.DataFrame:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute("SELECT * FROM quarantine ORDER BY table_name, source_row").df()


def edit(table: str, row: int, **values: object) -> dict[str, list[dict[str, object]]]:
    t = base_tables()
    t[table][row].update(values)
    return {table: t[table]}


# (table, row, changes, expected rule): one case per rule of the data contract
RULE_CASES = [
    ("customers", 2, {"customer_id": ""}, "missing customer_id"),
    ("customers", 2, {"customer_type": "person"}, "customer_type not one of private/business"),
    ("customers", 2, {"customer_type": ""}, "missing customer_type"),
    ("customers", 2, {"birth_year": 1850}, "birth_year < 1900"),
    ("customers", 2, {"birth_year": 2031}, "birth_year after the as-of year"),
    ("customers", 2, {"birth_year": "19x0"}, "birth_year not an integer"),
    ("customers", 2, {"region": ""}, "missing region"),
    ("customers", 2, {"branch_id": " "}, "missing branch_id"),
    ("customers", 2, {"consent_email": "maybe"}, "consent_email not a boolean"),
    ("customers", 2, {"do_not_contact": "2"}, "do_not_contact not a boolean"),
    ("customers", 2, {"preferred_channel": "fax"}, "preferred_channel not one of phone/email/sms/letter"),
    ("vehicles", 5, {"vehicle_id": ""}, "missing vehicle_id"),
    ("vehicles", 5, {"vin": "WBA1234567890123O"}, "vin not 17 characters, no I, O, Q"),
    ("vehicles", 5, {"vin": "WBA123"}, "vin not 17 characters, no I, O, Q"),
    ("vehicles", 5, {"powertrain": "diesel"}, "powertrain not one of ice/hev/phev/bev"),
    ("vehicles", 5, {"list_price": -1}, "list_price < 0"),
    ("vehicles", 5, {"model_year": "2020.5"}, "model_year not an integer"),
    ("contracts", 3, {"contract_id": ""}, "missing contract_id"),
    ("contracts", 3, {"customer_id": ""}, "missing customer_id"),
    ("contracts", 3, {"customer_id": "C9"}, "unknown customer_id"),
    ("contracts", 3, {"vehicle_id": "V9"}, "unknown vehicle_id"),
    ("contracts", 3, {"product": "rent"}, "product not one of lease/balloon/hire_purchase"),
    ("contracts", 3, {"signed_date": "31/02/2022"}, "signed_date not a date"),
    ("contracts", 3, {"signed_date": "2026-07-01"}, "signed_date after the as-of date"),
    ("contracts", 3, {"start_date": "2022-05-01"}, "start_date before signed_date"),
    ("contracts", 3, {"scheduled_end_date": "2022-06-15"}, "scheduled_end_date not after start_date"),
    ("contracts", 3, {"annual_km_allowance": 0}, "annual_km_allowance <= 0"),
    ("contracts", 3, {"annual_km_allowance": ""}, "missing annual_km_allowance"),
    ("contracts", 3, {"monthly_payment": -5}, "monthly_payment < 0"),
    ("contracts", 3, {"currency": "euro"}, "currency not ISO 4217 code"),
    ("contracts", 3, {"actual_end_date": "2022-06-01", "end_type": "returned"}, "actual_end_date before start_date"),
    ("contracts", 3, {"actual_end_date": "2026-07-02", "end_type": "returned"}, "actual_end_date after the as-of date"),
    ("contracts", 3, {"actual_end_date": "2026-06-15"}, "end_type set exactly when actual_end_date is set"),
    ("contracts", 3, {"end_type": "returned"}, "end_type set exactly when actual_end_date is set"),
    ("contracts", 3, {"actual_end_date": "2026-06-15", "end_type": "stolen"}, "end_type not one of returned/bought_out/early_terminated/written_off"),
    ("readings", 0, {"vehicle_id": "V9"}, "unknown vehicle_id"),
    ("readings", 0, {"recorded_at": "yesterday"}, "recorded_at not a timestamp"),
    ("readings", 0, {"recorded_at": "2026-07-01T00:00:00Z"}, "recorded_at after the as-of date"),
    ("readings", 0, {"odometer_km": -3}, "odometer_km < 0"),
    ("readings", 0, {"odometer_km": ""}, "missing odometer_km"),
    ("readings", 0, {"odometer_km": "inf"}, "odometer_km not a number"),
    ("readings", 0, {"battery_soh_pct": 0}, "battery_soh_pct <= 0"),
    ("readings", 0, {"battery_soh_pct": 100.5}, "battery_soh_pct > 100"),
    ("readings", 1, {"odometer_km": 29000}, "odometer_km lower than an earlier reading"),
    ("fault_codes", 0, {"code": ""}, "missing code"),
    ("fault_codes", 0, {"severity": "fatal"}, "severity not one of info/warning/critical"),
    ("fault_codes", 0, {"vehicle_id": "V9"}, "unknown vehicle_id"),
    ("service_visits", 0, {"visit_type": "wash"}, "visit_type not one of maintenance/repair/warranty/recall/tyres"),
    ("service_visits", 0, {"visit_date": "2026-07-01"}, "visit_date after the as-of date"),
    ("service_visits", 0, {"cost": -1}, "cost < 0"),
    ("fault_codes", 0, {"recorded_at": "2026-06-30T23:59:59-02:00"}, "recorded_at after the as-of date"),
    ("service_visits", 0, {"vehicle_id": "V9"}, "unknown vehicle_id"),
    ("contacts", 0, {"contacted_at": "2026-07-01T00:00:00"}, "contacted_at after the as-of date"),
    ("contacts", 0, {"customer_id": "C9"}, "unknown customer_id"),
    ("contacts", 0, {"contract_id": "K9"}, "unknown contract_id"),
    ("contacts", 0, {"channel": "pigeon"}, "channel not one of phone/email/sms/letter"),
    ("contacts", 0, {"outcome": "maybe"}, "outcome not one of no_response/declined/interested/appointment"),
    ("contacts", 0, {"contacted_at": ""}, "missing contacted_at"),
]


# the row of each table that nothing else refers to, so that setting it aside orphans nothing
FREE_ROW = {"customers": 2, "vehicles": 5, "contracts": 3, "readings": 0, "fault_codes": 0,
            "service_visits": 0, "contacts": 0}
NOT_A = {"int": "not an integer", "float": "not a number", "decimal": "not a number",
         "date": "not a date", "timestamp": "not a timestamp", "bool": "not a boolean"}
# every required column left empty, and every typed column holding garbage
RULE_CASES += [
    (t.name, FREE_ROW[t.name], {c.name: ""}, f"missing {c.name}") for t in TABLES for c in t.columns if c.required
] + [
    (t.name, FREE_ROW[t.name], {c.name: "n/a?"}, f"{c.name} {NOT_A[c.dtype]}")
    for t in TABLES for c in t.columns if c.dtype != "string"
]
RULE_CASES = list({(c[0], c[3]): c for c in RULE_CASES}.values())


@pytest.mark.parametrize("table,row,changes,rule", RULE_CASES, ids=[f"{c[0]}: {c[3]}" for c in RULE_CASES])
def test_each_rule_sets_the_row_aside(
    make_export: Callable[..., Path], tmp_path: Path, table: str, row: int, changes: dict, rule: str
) -> None:
    export = make_export(**edit(table, row, **changes))
    store = tmp_path / "s.duckdb"
    report = ingest(export, store, as_of=AS_OF)
    q = quarantine(store)
    assert list(q["rule"]) == [rule]
    assert q.loc[0, "table_name"] == table
    assert q.loc[0, "source_row"] == row + 1
    raw = json.loads(q.loc[0, "raw_values"])
    key, value = next(iter(changes.items()))
    assert raw[key] == (None if value == "" else str(value))
    t = report.table(table)
    assert (t.set_aside, t.reasons) == (1, {rule: 1})
    assert all(r.balanced for r in report.tables)


def declared_rules() -> set[tuple[str, str]]:
    """Every (table, rule) ingest can charge a row with, derived from the schema."""
    rules = set()
    for table in TABLES:
        for col in table.columns:
            rules |= {(table.name, name) for name, _sql in column_rules(col, "VARCHAR", AS_OF)}
        rules |= {(table.name, chk.name) for chk in table.checks}
        rules |= {(table.name, ref.rule) for ref in table.references}
        if table.key:
            rules.add((table.name, f"repeated {table.key}"))
    rules.add(("readings", "odometer_km lower than an earlier reading"))
    return rules


# rules a CSV row cannot break on its own, covered by the tests named here
COVERED_ELSEWHERE = {
    ("customers", "repeated customer_id"),  # test_exact_duplicates_are_counted_not_set_aside
    ("vehicles", "repeated vehicle_id"),  # test_repeated_keys
    ("contracts", "repeated contract_id"),  # test_repeated_keys
}


def test_every_declared_rule_has_a_case() -> None:
    covered = {(c[0], c[3]) for c in RULE_CASES} | COVERED_ELSEWHERE
    assert declared_rules() - covered == set()


def test_repeated_keys(make_export: Callable[..., Path], tmp_path: Path) -> None:
    t = base_tables()
    vehicles = t["vehicles"] + [dict(t["vehicles"][5], brand="Other")]
    contracts = t["contracts"] + [dict(t["contracts"][3], monthly_payment=1)]
    report = ingest(make_export(vehicles=vehicles, contracts=contracts), tmp_path / "s.duckdb", as_of=AS_OF)
    assert report.table("vehicles").reasons == {"repeated vehicle_id": 1}
    assert report.table("contracts").reasons == {"repeated contract_id": 1}


def test_clean_export_loads_everything_and_derives_outcomes(make_export: Callable[..., Path], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    report = ingest(make_export(), store, as_of=AS_OF)
    assert report.set_aside == 0
    assert [t.loaded for t in report.tables] == [3, 6, 5, 4, 2, 2, 2]
    with duckdb.connect(str(store), read_only=True) as con:
        out = con.execute("SELECT contract_id, outcome, successor_contract_id, successor_link FROM outcomes ORDER BY 1").fetchall()
        ts = con.execute("SELECT recorded_at FROM readings ORDER BY recorded_at").fetchall()
        consent = con.execute("SELECT consent_email, consent_phone, consent_sms, consent_letter FROM customers ORDER BY 1").fetchall()
    assert out[0] == ("K1", "repurchased", "K2", "recorded")
    assert out[2] == ("K3", "repurchased", "K5", "inferred")
    assert [o[1] for o in out] == ["repurchased", "open", "repurchased", "open", "open"]
    # +01:00 is converted to UTC, a naive timestamp is read as UTC
    assert str(ts[1][0]) == "2026-02-01 07:00:00" and str(ts[2][0]) == "2026-03-01 08:00:00"
    # booleans: yes/1/true, empty defaults to false
    assert consent[:2] == [(True, True, False, False), (True, False, False, False)]


def test_exact_duplicates_are_counted_not_set_aside(make_export: Callable[..., Path], tmp_path: Path) -> None:
    t = base_tables()
    readings = t["readings"] + [copy.deepcopy(t["readings"][0]), copy.deepcopy(t["readings"][0])]
    customers = t["customers"] + [dict(t["customers"][0], region="elsewhere")]  # same key, other values
    store = tmp_path / "s.duckdb"
    report = ingest(make_export(readings=readings, customers=customers), store, as_of=AS_OF)
    assert (report.table("readings").duplicates, report.table("readings").set_aside) == (2, 0)
    assert report.table("customers").reasons == {"repeated customer_id": 1}
    assert quarantine(store)["source_row"].tolist() == [4]


def test_odometer_decrease_sets_aside_only_the_later_lower_reading(make_export: Callable[..., Path], tmp_path: Path) -> None:
    rows = [
        {"vehicle_id": "V2", "recorded_at": f"2026-0{m}-01T00:00:00Z", "odometer_km": km, "battery_soh_pct": ""}
        for m, km in [(1, 100), (2, 200), (3, 150), (4, 190), (5, 250)]
    ]
    # file order differs from time order: the rule follows recorded_at
    rows = [rows[4], rows[2], rows[0], rows[3], rows[1]]
    store = tmp_path / "s.duckdb"
    report = ingest(make_export(readings=rows), store, as_of=AS_OF)
    q = quarantine(store)
    assert sorted(json.loads(v)["odometer_km"] for v in q["raw_values"]) == ["150", "190"]
    assert report.table("readings").loaded == 3


def test_orphans_cascade_from_a_set_aside_parent(make_export: Callable[..., Path], tmp_path: Path) -> None:
    # a vehicle set aside for a bad price makes its contract an orphan, visibly
    store = tmp_path / "s.duckdb"
    report = ingest(make_export(**edit("vehicles", 4, list_price=-1)), store, as_of=AS_OF)
    assert report.table("contracts").reasons == {"unknown vehicle_id": 1}
    assert all(r.balanced for r in report.tables)


def test_extra_columns_are_kept_and_optional_columns_may_be_absent(tmp_path: Path) -> None:
    t = base_tables()
    for r in t["vehicles"]:
        r["colour"] = "blue"
        del r["vin"]
    store = tmp_path / "s.duckdb"
    ingest(write_export(tmp_path / "e", t), store, as_of=AS_OF)
    with duckdb.connect(str(store), read_only=True) as con:
        cols = [r[0] for r in con.execute("DESCRIBE vehicles").fetchall()]
    assert "colour" in cols and "vin" in cols


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    t = base_tables()
    for name in ("readings", "fault_codes", "service_visits", "contacts"):
        del t[name]
    report = ingest(write_export(tmp_path / "e", t), tmp_path / "s.duckdb", as_of=AS_OF)
    assert report.table("readings").source is None and report.table("readings").loaded == 0


def test_as_of_inferred_from_latest_date(make_export: Callable[..., Path], tmp_path: Path) -> None:
    report = ingest(make_export(), tmp_path / "s.duckdb")
    assert report.as_of_inferred and report.as_of == date(2026, 5, 1)


def test_parquet_and_mixed_formats(tmp_path: Path) -> None:
    t = base_tables()
    folder = write_export(tmp_path / "e", t)
    df = pd.read_csv(folder / "readings.csv")
    df["recorded_at"] = pd.to_datetime(df["recorded_at"], utc=True, format="ISO8601")
    df.to_parquet(folder / "readings.parquet")
    (folder / "readings.csv").unlink()
    vehicles = pd.read_csv(folder / "vehicles.csv")
    vehicles.to_parquet(folder / "vehicles.parquet")
    (folder / "vehicles.csv").unlink()
    store = tmp_path / "s.duckdb"
    report = ingest(folder, store, as_of=AS_OF)
    assert report.table("readings").loaded == 4 and report.table("vehicles").loaded == 6
    assert report.set_aside == 0


# --- fatal errors: exit with a message naming what is wrong, store untouched ------------


def store_digest(store: Path) -> str:
    return hashlib.sha256(store.read_bytes()).hexdigest()


@pytest.fixture
def good_store(make_export: Callable[..., Path], tmp_path: Path) -> Path:
    store = tmp_path / "good.duckdb"
    ingest(make_export("good"), store, as_of=AS_OF)
    return store


def test_missing_required_column_is_fatal_and_store_unchanged(good_store: Path, tmp_path: Path) -> None:
    t = base_tables()
    folder = write_export(tmp_path / "bad", t)
    cols = [c for c in t["contracts"][0] if c != "scheduled_end_date"]
    write_csv(folder / "contracts.csv", t["contracts"], cols)
    before = store_digest(good_store)
    with pytest.raises(ExportError, match=r"contracts\.csv: required column 'scheduled_end_date' is missing"):
        ingest(folder, good_store, as_of=AS_OF)
    assert store_digest(good_store) == before


def test_missing_folder_and_missing_table(good_store: Path, tmp_path: Path) -> None:
    before = store_digest(good_store)
    with pytest.raises(ExportError, match="no such export folder"):
        ingest(tmp_path / "nowhere", good_store)
    t = base_tables()
    del t["vehicles"]
    with pytest.raises(ExportError, match="required table 'vehicles' is missing"):
        ingest(write_export(tmp_path / "e", t), good_store)
    assert store_digest(good_store) == before


def test_unreadable_file_and_unreadable_column(good_store: Path, tmp_path: Path) -> None:
    before = store_digest(good_store)
    t = base_tables()
    folder = write_export(tmp_path / "e", t)
    (folder / "vehicles.csv").write_bytes(b"vehicle_id,vin\n\xff\xfe,\x00\x81\n")
    with pytest.raises(ExportError, match=r"vehicles\.csv"):
        ingest(folder, good_store)
    folder2 = write_export(tmp_path / "e2", t)
    (folder2 / "contracts.parquet").write_bytes(b"not parquet at all")
    (folder2 / "contracts.csv").unlink()
    with pytest.raises(ExportError, match=r"contracts\.parquet: cannot read"):
        ingest(folder2, good_store)
    for r in t["readings"]:
        r["odometer_km"] = "many"
    with pytest.raises(ExportError, match=r"readings\.csv: column 'odometer_km' is unreadable as float"):
        ingest(write_export(tmp_path / "e3", t), good_store)
    assert store_digest(good_store) == before


def test_same_export_twice_gives_same_state_and_newer_export_replaces(make_export: Callable[..., Path], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    export = make_export()

    def state() -> dict[str, list]:
        with duckdb.connect(str(store), read_only=True) as con:
            return {
                t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in [x.name for x in TABLES] + ["quarantine", "outcomes"]
            }

    ingest(export, store, as_of=AS_OF)
    first = state()
    ingest(export, store, as_of=AS_OF)
    assert state() == first
    t = base_tables()
    t["contracts"][3].update(actual_end_date="2026-06-20", end_type="returned")
    ingest(write_export(tmp_path / "newer", t), store, as_of=date(2026, 7, 15))
    newer = state()
    assert newer != first and len(newer["contracts"]) == 5
    with duckdb.connect(str(store), read_only=True) as con:
        log = con.execute("SELECT DISTINCT ingested_at, as_of FROM ingest_log ORDER BY 1").fetchall()
    assert [r[1] for r in log] == [AS_OF, AS_OF, date(2026, 7, 15)]


def test_history_tables_survive_a_new_ingest(make_export: Callable[..., Path], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    ingest(make_export(), store, as_of=AS_OF)
    with duckdb.connect(str(store)) as con:
        con.execute("CREATE TABLE schedule_history AS SELECT 1 AS run")
    ingest(make_export("again"), store, as_of=AS_OF)
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT * FROM schedule_history").fetchall() == [(1,)]


# --- the accounting identity under random corruption -----------------------------------

CORRUPTIONS = [(table, row, changes) for table, row, changes, _rule in RULE_CASES]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(st.sampled_from(range(len(CORRUPTIONS))), max_size=6),
    dups=st.lists(st.tuples(st.sampled_from([t.name for t in TABLES]), st.integers(0, 4)), max_size=4),
)
def test_read_equals_loaded_plus_set_aside_plus_duplicates(tmp_path_factory: pytest.TempPathFactory, picks: list[int], dups: list[tuple[str, int]]) -> None:
    t = base_tables()
    for i in picks:
        table, row, changes = CORRUPTIONS[i]
        t[table][row].update(changes)
    for table, row in dups:
        if t[table]:
            t[table].append(copy.deepcopy(t[table][row % len(t[table])]))
    folder = write_export(tmp_path_factory.mktemp("e"), t)
    store = folder.parent / "s.duckdb"
    report = ingest(folder, store, as_of=AS_OF)
    q = quarantine(store)
    with duckdb.connect(str(store), read_only=True) as con:
        for r in report.tables:
            assert r.balanced, r
            assert r.read == len(t[r.table])
            n = con.execute(f"SELECT count(*) FROM {r.table}").fetchone()[0]
            assert n == r.loaded
            assert (q["table_name"] == r.table).sum() == r.set_aside
            assert sum(r.reasons.values()) == r.set_aside


# --- readings against a plain reference of the documented check order ------------------
# (tests for the set-based fast paths: duplicates found among neighbours in time, the
# odometer rule computed only for vehicles that step down, parsing fast paths)

def _ts(y: int, mo: int, d: int, h: int) -> datetime:
    return datetime(y, mo, d, h)


# raw text -> parsed value, or the rule it breaks
READ_VEHICLE = {"V2": "V2", "V4": "V4", " V2": "V2", "V4 ": "V4", "V9": "unknown", "": "missing"}
READ_TIME = {
    "2026-01-01T08:00:00Z": _ts(2026, 1, 1, 8),
    "2026-01-01T09:00:00+01:00": _ts(2026, 1, 1, 8),  # the same instant as the line above
    "2026-01-02 08:00:00": _ts(2026, 1, 2, 8),
    "2026-01-03T08:00:00Z": _ts(2026, 1, 3, 8),
    " 2026-01-03T08:00:00Z": _ts(2026, 1, 3, 8),
    "2026-07-01T00:00:00Z": "recorded_at after the as-of date",
    "": "missing recorded_at",
    "yesterday": "recorded_at not a timestamp",
}
READ_ODOMETER = {
    "100": 100.0, "150": 150.0, "150.0": 150.0, "120": 120.0, " 90 ": 90.0,
    "-5": "odometer_km < 0", "": "missing odometer_km", "x": "odometer_km not a number",
    "inf": "odometer_km not a number",
}
READ_SOH = {"": None, "97.5": 97.5, "0": "battery_soh_pct <= 0", "100.5": "battery_soh_pct > 100"}


def expected_readings(rows: list[dict[str, str]]) -> tuple[dict[int, str], int, list[tuple]]:
    """(source row -> rule, duplicates, loaded rows in file order), following the module docstring."""
    seen: set[tuple] = set()
    rules: dict[int, str] = {}
    clean: list[tuple] = []
    dups = 0
    for i, r in enumerate(rows, start=1):
        raw = (r["vehicle_id"], r["recorded_at"], r["odometer_km"], r["battery_soh_pct"])
        if raw in seen:
            dups += 1
            continue
        seen.add(raw)
        v, t = READ_VEHICLE[r["vehicle_id"]], READ_TIME[r["recorded_at"]]
        o, s = READ_ODOMETER[r["odometer_km"]], READ_SOH[r["battery_soh_pct"]]
        broken = [x for x in (v if v == "missing" else None, t, o, s) if isinstance(x, str)]
        broken = [x if x != "missing" else "missing vehicle_id" for x in broken]
        if broken:
            rules[i] = broken[0]
        elif v == "unknown":
            rules[i] = "unknown vehicle_id"
        else:
            clean.append((i, v, t, o, s))
    top: dict[str, float] = {}
    for i, v, _t, o, _s in sorted(clean, key=lambda c: (c[1], c[2], c[0])):
        if o < top.get(v, o):
            rules[i] = "odometer_km lower than an earlier reading"
        top[v] = max(top.get(v, o), o)
    loaded = [(v, t, o, s) for i, v, t, o, s in clean if i not in rules]
    return rules, dups, loaded


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "vehicle_id": st.sampled_from(list(READ_VEHICLE)),
                "recorded_at": st.sampled_from(list(READ_TIME)),
                "odometer_km": st.sampled_from(list(READ_ODOMETER)),
                "battery_soh_pct": st.sampled_from(list(READ_SOH)),
            }
        ),
        min_size=1,
        max_size=30,
    ),
    copies=st.lists(st.integers(0, 29), max_size=8),
)
def test_readings_match_the_documented_check_order(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, str]], copies: list[int]
) -> None:
    # a first row that parses, so that no column is wholly unreadable (a fatal error)
    first = {"vehicle_id": "V4", "recorded_at": "2026-01-02 08:00:00", "odometer_km": "120", "battery_soh_pct": "97.5"}
    rows = [first] + rows + [dict(rows[i % len(rows)]) for i in copies]
    t = base_tables()
    t["readings"] = rows
    folder = write_export(tmp_path_factory.mktemp("r"), t)
    store = folder.parent / "s.duckdb"
    report = ingest(folder, store, as_of=AS_OF)
    rules, dups, loaded = expected_readings(rows)
    q = quarantine(store)
    got = {int(r.source_row): r.rule for r in q.itertuples() if r.table_name == "readings"}
    assert got == rules
    assert report.table("readings").duplicates == dups
    with duckdb.connect(str(store), read_only=True) as con:
        in_store = con.execute("SELECT * FROM readings").fetchall()  # insertion (file) order
    assert in_store == loaded


def test_raw_values_are_kept_as_read(make_export: Callable[..., Path], tmp_path: Path) -> None:
    # text is trimmed when parsed (an ASCII space or a no-break space), never in the quarantine
    t = base_tables()
    t["readings"][0].update(vehicle_id=" V9\u00a0", odometer_km=" 30000 ")
    t["readings"][1].update(vehicle_id="\u00a0V2 ")
    store = tmp_path / "s.duckdb"
    report = ingest(make_export(readings=t["readings"]), store, as_of=AS_OF)
    assert report.table("readings").reasons == {"unknown vehicle_id": 1}
    raw = json.loads(quarantine(store).loc[0, "raw_values"])
    assert raw["vehicle_id"] == " V9\u00a0" and raw["odometer_km"] == " 30000 "
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT vehicle_id FROM readings").fetchall() == [("V2",), ("V2",), ("V4",)]


def test_timestamps_in_parquet_are_utc(tmp_path: Path) -> None:
    # a time zone aware Parquet column is stored as the instant's UTC time
    t = base_tables()
    folder = write_export(tmp_path / "e", t)
    df = pd.read_csv(folder / "readings.csv")
    utc = pd.to_datetime(df["recorded_at"], utc=True, format="ISO8601")
    utc.iloc[3] = pd.Timestamp("2026-06-01 10:30:00", tz="UTC")  # summer time in Berlin
    df["recorded_at"] = utc.dt.tz_convert("Europe/Berlin")
    df.to_parquet(folder / "readings.parquet")
    (folder / "readings.csv").unlink()
    store = tmp_path / "s.duckdb"
    ingest(folder, store, as_of=AS_OF)
    with duckdb.connect(str(store), read_only=True) as con:
        ts = [r[0] for r in con.execute("SELECT recorded_at FROM readings").fetchall()]
    assert ts == [x.to_pydatetime() for x in utc.dt.tz_localize(None)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_large_table_is_loaded_in_file_order(fmt: str, tmp_path: Path) -> None:
    # several of DuckDB's row groups (122,880 rows), with rows set aside and a duplicate
    # among them: a join there would load the row groups out of file order
    n = 400_000
    tables = {k: v for k, v in base_tables().items() if k != "readings"}
    folder = write_export(tmp_path / "e", tables)
    src = (
        "SELECT CASE WHEN i % 2 = 0 THEN 'V2' ELSE 'V4' END AS vehicle_id, "
        "TIMESTAMP '2025-01-01' + to_seconds(i // 3) AS recorded_at, "
        "CASE WHEN i % 997 = 5 THEN -1.0 ELSE i / 100 END AS odometer_km, i AS seq "
        f"FROM range({n}) t(i) "
        "UNION ALL SELECT 'V4', TIMESTAMP '2025-01-01', 0.01, 1 "  # a copy of row 2 (seq 1)
        "ORDER BY seq"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        opts = "FORMAT parquet" if fmt == "parquet" else "HEADER, DELIMITER ','"
        con.execute(f"COPY ({src}) TO '{folder / f'readings.{fmt}'}' ({opts})")
    store = tmp_path / "s.duckdb"
    report = ingest(folder, store, as_of=AS_OF)
    r = report.table("readings")
    assert r.read == n + 1 and r.duplicates == 1
    assert r.reasons == {"odometer_km < 0": len(range(5, n, 997))}
    with duckdb.connect(str(store), read_only=True) as con:
        loaded = [int(row[0]) for row in con.execute("SELECT seq FROM readings").fetchall()]
    assert loaded == [i for i in range(n) if i % 997 != 5]
