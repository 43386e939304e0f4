"""The CRM import file: every rule of crm.md, checked by parsing the file with the stdlib csv module.

One small hand-built store serves the module, with three plans written by
the scheduler's own ``save_plan``: 2026-06-23 (first windows), 2026-06-30
(kept, moved, cancelled, new; customers who may no longer be contacted; a
reason holding a comma, quotes, a line break and non-ASCII text) and
2026-07-07 (a cancelled outreach planned again).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from timing.config import ConfigError, CrmSettings, settings_from_dict
from timing.core.contract import CONTRACTS, CUSTOMERS, VEHICLES
from timing.outputs.crm import CrmExport, export_crm, manifest_path
from timing.schedule import Plan
from timing.schedule.job import save_plan
from timing.store.db import StoreError

P1, P2, P3 = date(2026, 6, 23), date(2026, 6, 30), date(2026, 7, 7)
TRICKY = 'mileage allowance reached in 41 days, "high" use\r\nGröße: café; signed 1 month early last time'
ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
DEFAULT = CrmSettings()
F = DEFAULT.fields()  # plan column -> CRM field name


def customer(cid: str, *, kind: str = "private", phone: bool = True, dnc: bool = False,
             branch: str = "B1", region: str = "north") -> dict[str, object]:
    return {"customer_id": cid, "customer_type": kind, "birth_year": 1961, "region": region, "branch_id": branch,
            "consent_email": True, "consent_phone": phone, "consent_sms": False, "consent_letter": False,
            "do_not_contact": dnc, "preferred_channel": "phone"}


CUSTOMER_ROWS = [
    customer("C1"), customer("C2", kind="business"),
    customer("C3", dnc=True),  # do not contact
    customer("C4", phone=False),  # no consent to the planned channel
    customer("C5"), customer("C7", branch="Zürich-Süd", region="Île-de-France"),
]
OWNER = {"K1": "C1", "K2": "C2", "K3": "C3", "K4": "C4", "K5": "C5", "K6": "C6", "K7": "C7"}
EXCLUDED = {"C3", "C4", "C6"}  # C6 is missing from the customers table


def window(contract: str, plan: date, start: date | None, p: float, status: str, channel: str = "phone",
           reasons: str = "scheduled end 2026-08-01 (in 32 days)", expected: date | None = None) -> dict[str, object]:
    cust = next((c for c in CUSTOMER_ROWS if c["customer_id"] == OWNER[contract]), customer("C6"))
    return {
        "as_of": plan, "contract_id": contract, "customer_id": OWNER[contract], "branch_id": cust["branch_id"],
        "region": cust["region"], "window_start": start,
        "window_end": None if start is None else start + timedelta(days=27),
        "week": np.nan if start is None else float((start - plan).days // 7),
        "channel": channel if start is not None else None,
        "priority": 1 if p >= 0.5 else 2 if p >= 0.25 else 3,  # as the planner: 3 for a cancelled row
        "p_signing_in_window": p if start is not None else np.nan,
        "expected_signing_date": pd.Timestamp(expected) if expected else pd.NaT,
        "reasons": reasons, "status": status,
    }


PLANS = {
    P1: [window("K1", P1, P1, 0.55, "new", expected=date(2026, 7, 20)),
         window("K2", P1, P1 + timedelta(days=7), 0.61, "new", channel="account", expected=date(2026, 7, 25)),
         window("K5", P1, P1 + timedelta(days=14), 0.40, "new", expected=date(2026, 8, 1))],
    P2: [window("K1", P2, P2, 0.57, "kept", expected=date(2026, 7, 20)),  # kept: start clamped to the as-of
         window("K2", P2, P2 + timedelta(days=28), 0.64, "moved", channel="account", expected=date(2026, 8, 2)),
         window("K3", P2, P2, 0.90, "new", expected=date(2026, 7, 10)),
         window("K4", P2, P2, 0.80, "new", expected=date(2026, 7, 10)),
         window("K5", P2, None, 0.0, "cancelled", expected=date(2026, 8, 9)),
         window("K6", P2, P2, 0.70, "new", expected=date(2026, 7, 10)),
         window("K7", P2, P2 + timedelta(days=7), 0.3012345, "new", channel="email", reasons=TRICKY)],
    P3: [window("K1", P3, P3, 0.58, "kept", expected=date(2026, 7, 20)),
         window("K5", P3, P3 + timedelta(days=7), 0.45, "new", expected=date(2026, 8, 9)),
         window("K7", P3, P3, 0.33, "kept", channel="email", reasons="", expected=None)],
}


def write_plan(store: Path, as_of: date, rows: list[dict[str, object]]) -> None:
    windows = pd.DataFrame(rows)
    for col in ("window_start", "window_end"):
        windows[col] = pd.to_datetime(windows[col]).dt.date
    save_plan(store, Plan(as_of, windows, {}, pd.DataFrame(), 10, "exact", 0.0))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crm") / "store.duckdb"
    con = duckdb.connect(str(path))
    for table, rows in (
        (CUSTOMERS, CUSTOMER_ROWS),
        (VEHICLES, [{"vehicle_id": f"V{k}", "brand": "BMW", "model": "320d"} for k in OWNER]),
        (CONTRACTS, [{"contract_id": k, "customer_id": c, "vehicle_id": f"V{k}", "product": "lease",
                      "signed_date": date(2023, 8, 1), "start_date": date(2023, 8, 1),
                      "scheduled_end_date": date(2026, 8, 1), "annual_km_allowance": 15000}
                     for k, c in OWNER.items()]),
    ):
        con.execute(f"CREATE TABLE {table.name} ({', '.join(f'{c.name} {c.sql_type}' for c in table.columns)})")
        con.register("frame", pd.DataFrame(rows))
        con.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM frame")
        con.unregister("frame")
    con.execute(f"CREATE TABLE export_info AS SELECT DATE '{P3}' AS as_of")
    con.execute("CREATE TABLE scores (as_of DATE, contract_id VARCHAR, model_version VARCHAR)")
    con.execute(f"INSERT INTO scores VALUES (DATE '{P2}', 'K1', '2026-06-30-discrete-abc123')")
    con.close()
    for day, rows in PLANS.items():
        write_plan(path, day, rows)
    return path


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows, parsed the way a CRM's loader would."""
    text = path.read_bytes().decode("utf-8", errors="strict")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, *rows = list(reader)
    return header, [dict(zip(header, r, strict=True)) for r in rows]


def by_contract(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r[F["contract_id"]]: r for r in rows}


@pytest.fixture(scope="module")
def export(store: Path, tmp_path_factory: pytest.TempPathFactory) -> CrmExport:
    return export_crm(store, tmp_path_factory.mktemp("out") / "crm.csv", DEFAULT, as_of=P2)


def test_utf8_header_and_lf_line_endings(export: CrmExport) -> None:
    (part,) = export.parts
    data = part.path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")  # no byte-order mark: it would corrupt the first field name
    text = data.decode("utf-8", errors="strict")
    assert "\r" not in text and text.endswith("\n")
    header, rows = read(part.path)
    assert header == list(F.values())
    assert header[0] == "Timing_External_Id__c" and "Outreach_Window_Start__c" in header
    assert all(len(r) == len(header) for r in rows)
    assert by_contract(rows)["K7"][F["branch_id"]] == "Zürich-Süd"


def test_quoting_follows_rfc_4180(export: CrmExport) -> None:
    text = export.parts[0].path.read_text(encoding="utf-8")
    _, rows = read(export.parts[0].path)
    # a value with a comma, quotes and a line break round-trips (its CRLF stored as LF, the file's line ending)
    assert by_contract(rows)["K7"][F["reasons"]] == TRICKY.replace("\r\n", "\n")
    assert '"mileage allowance reached in 41 days, ""high"" use\nGröße: café; signed' in text
    # plain values are not quoted, and no spaces surround the delimiter
    k1_line = next(line for line in text.splitlines() if ",K1," in line)
    assert '"' not in k1_line and ", " not in k1_line.replace("; ", "")


def test_dates_are_iso_and_missing_values_follow_upsert_semantics(export: CrmExport, store: Path,
                                                                  tmp_path: Path) -> None:
    rows = by_contract(read(export.parts[0].path)[1])
    for r in rows.values():
        for col in ("window_start", "window_end", "expected_signing_date"):
            assert ISO.fullmatch(r[F[col]]) or r[F[col]] in ("", "#N/A")
    k2 = rows["K2"]
    assert (k2[F["window_start"]], k2[F["window_end"]]) == ("2026-07-28", "2026-08-24")
    assert (k2[F["channel"]], k2[F["priority"]], k2[F["p_signing_in_window"]]) == ("account", "1", "0.6400")
    assert rows["K7"][F["p_signing_in_window"]] == "0.3012"
    # a cancelled outreach keeps its last window in the CRM (empty = unchanged) and gets the status
    k5 = rows["K5"]
    assert k5[F["status"]] == "cancelled"
    assert [k5[F[c]] for c in ("window_start", "window_end", "channel", "priority", "p_signing_in_window")] == [
        ""] * 5
    assert k5[F["expected_signing_date"]] == "2026-08-09"
    # a value the plan no longer has is nulled with #N/A
    later = by_contract(read(export_crm(store, tmp_path / "p3.csv", DEFAULT, as_of=P3).parts[0].path)[1])
    assert later["K7"][F["expected_signing_date"]] == "#N/A" and later["K7"][F["reasons"]] == "#N/A"


def test_external_ids_are_stable_across_runs_and_moved_windows(store: Path, export: CrmExport,
                                                               tmp_path: Path) -> None:
    def ids(day: date, name: str) -> dict[str, str]:
        result = export_crm(store, tmp_path / name, DEFAULT, as_of=day)
        return {c: r[F["external_id"]] for c, r in by_contract(read(result.parts[0].path)[1]).items()}

    first, again = ids(P2, "a.csv"), ids(P2, "b.csv")
    assert first == again
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert len(set(first.values())) == len(first)
    p1, p3 = ids(P1, "p1.csv"), ids(P3, "p3.csv")
    assert p1["K1"] == first["K1"] == p3["K1"]  # kept, though the planner moved its start to each as-of
    assert p1["K2"] == first["K2"]  # moved window: the same record is updated
    assert p1["K5"] == first["K5"]  # cancelled: the same record is closed
    assert p3["K5"] != first["K5"]  # planned again after the cancellation: a new outreach
    assert first["K7"] == p3["K7"]
    # the documented recipe
    assert first["K2"] == hashlib.sha256(b"timing-outreach|K2|2026-06-23").hexdigest()[:32]
    assert p3["K5"] == hashlib.sha256(b"timing-outreach|K5|2026-07-07").hexdigest()[:32]


def test_no_customer_who_may_not_be_contacted_and_no_forbidden_column(export: CrmExport) -> None:
    header, rows = read(export.parts[0].path)
    assert {r[F["customer_id"]] for r in rows} == {"C1", "C2", "C5", "C7"}
    assert not EXCLUDED & {r[F["customer_id"]] for r in rows}
    assert export.excluded == 3 and export.rows == 4
    forbidden = re.compile(r"birth|consent|contact|odometer|battery|fault|reading|telemat|region|vehicle|vin",
                           re.IGNORECASE)
    assert not [h for h in header if forbidden.search(h)]
    assert len(header) == 12
    text = export.parts[0].path.read_text(encoding="utf-8")
    assert "1961" not in text  # the customers' birth year


def test_manifest_describes_the_parts(export: CrmExport) -> None:
    manifest = json.loads(export.manifest.read_text(encoding="utf-8"))
    assert export.manifest == manifest_path(export.parts[0].path)
    assert manifest["plan_as_of"] == "2026-06-30" and manifest["model_version"] == "2026-06-30-discrete-abc123"
    assert manifest["rows"] == 4 and manifest["rows_left_out_not_contactable"] == 3
    assert manifest["fields"] == F and manifest["external_id_field"] == "Timing_External_Id__c"
    assert manifest["line_ending"] == "LF" and manifest["null_value"] == "#N/A"
    for part in manifest["parts"]:
        data = (export.manifest.parent / part["file"]).read_bytes()
        assert part["sha256"] == hashlib.sha256(data).hexdigest()
        assert part["bytes"] == len(data)
    assert not list(export.manifest.parent.glob(".*tmp"))  # nothing half-written left behind


def test_large_exports_are_split_into_parts_each_with_the_header(store: Path, export: CrmExport,
                                                                 tmp_path: Path) -> None:
    small = CrmSettings(max_file_mb=0.0006)  # 600 bytes: a header and two or three rows
    out = tmp_path / "crm.csv"
    split = export_crm(store, out, small, as_of=P2)
    assert len(split.parts) >= 2 and not out.exists()
    assert [p.path.name for p in split.parts] == [f"crm-{i:03d}.csv" for i in range(1, len(split.parts) + 1)]
    rows: list[dict[str, str]] = []
    for part in split.parts:
        assert part.path.stat().st_size <= 600
        header, part_rows = read(part.path)
        assert header == list(F.values()) and part_rows and len(part_rows) == part.rows
        rows += part_rows
    assert rows == read(export.parts[0].path)[1]
    manifest = json.loads(split.manifest.read_text(encoding="utf-8"))
    assert [p["file"] for p in manifest["parts"]] == [p.path.name for p in split.parts]
    assert sum(p["rows"] for p in manifest["parts"]) == 4
    # an export that fits again replaces the parts listed by the previous manifest
    whole = export_crm(store, out, DEFAULT, as_of=P2)
    assert [p.path for p in whole.parts] == [out]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["crm.csv", "crm.manifest.json"]
    with pytest.raises(ValueError, match="does not fit"):
        export_crm(store, tmp_path / "tiny.csv", CrmSettings(max_file_mb=0.0003), as_of=P2)
    assert not (tmp_path / "tiny.csv").exists() and not list(tmp_path.glob(".*tmp"))


def test_field_mapping_line_ending_and_value_options(store: Path, tmp_path: Path) -> None:
    settings = CrmSettings(external_id_field="timing_id", branch_id_field="", line_ending="CRLF",
                           probability_as_percent=True, max_reasons_chars=30)
    result = export_crm(store, tmp_path / "hub.csv", settings, as_of=P2)
    data = result.parts[0].path.read_bytes().decode("utf-8")
    assert data.count("\r\n") == 5 and data.endswith("\r\n")  # header + 4 rows; the value's break stays LF
    header, rows = read(result.parts[0].path)
    assert header[0] == "timing_id" and "Branch_Id__c" not in header and len(header) == 11
    k7 = by_contract(rows)["K7"]
    assert k7["Signing_Probability__c"] == "30.12"
    assert k7["Timing_Reasons__c"] == TRICKY.replace("\r\n", "\n")[:29].rstrip() + "…"


def test_settings_are_validated() -> None:
    assert settings_from_dict({"crm": {"channel_field": "Channel__c"}}).crm.channel_field == "Channel__c"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"crm": {"nope": 1}}, "has no setting 'nope'"),
        ({"crm": {"external_id_field": ""}}, "external_id_field must be set"),
        ({"crm": {"channel_field": "Plan_Status__c"}}, "more than one column"),
        ({"crm": {"reasons_field": "A,B"}}, "is not a field name"),
        ({"crm": {"max_file_mb": 150}}, "at most 100"),
        ({"crm": {"line_ending": "CR"}}, "'LF' or 'CRLF'"),
    ]
    for bad, message in cases:
        with pytest.raises(ConfigError, match=message):
            settings_from_dict(bad)


def test_no_plan_is_a_clear_error(store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no outreach plan on or before 2026-01-01"):
        export_crm(store, tmp_path / "crm.csv", DEFAULT, as_of=date(2026, 1, 1))
    assert not list(tmp_path.iterdir())
