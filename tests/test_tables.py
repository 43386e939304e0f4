"""The store's own tables: declared once, grown additively, a re-run replaces only its own rows."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from timing.store.tables import (
    SCORES,
    StoreTable,
    append_rows,
    ensure,
    existing_columns,
    replace_rows,
)

RUNS = StoreTable("runs", (("as_of", "DATE"), ("contract_id", "VARCHAR"), ("p", "DOUBLE")), run_key=("as_of",),
                  open_columns=r"p_m\d{2}")


def frame(day: str, months: int, ids: tuple[str, ...] = ("K1", "K2")) -> pd.DataFrame:
    out = pd.DataFrame({"as_of": [pd.Timestamp(day)] * len(ids), "contract_id": list(ids), "p": 0.5})
    for k in range(1, months + 1):
        out[f"p_m{k:02d}"] = 0.1 * k
    return out


def test_a_longer_horizon_adds_columns_and_keeps_every_earlier_row() -> None:
    con = duckdb.connect()
    replace_rows(con, RUNS, frame("2026-01-31", 2), {"as_of": date(2026, 1, 31)})
    replace_rows(con, RUNS, frame("2026-02-28", 3), {"as_of": date(2026, 2, 28)})
    assert existing_columns(con, RUNS) == ["as_of", "contract_id", "p", "p_m01", "p_m02", "p_m03"]
    rows = con.execute("SELECT as_of, p_m03 FROM runs ORDER BY as_of, contract_id").fetchall()
    assert [r[1] for r in rows] == [None, None, pytest.approx(0.3), pytest.approx(0.3)]
    # a shorter horizon afterwards drops nothing: its rows hold NULL where they have no value
    replace_rows(con, RUNS, frame("2026-03-31", 1), {"as_of": date(2026, 3, 31)})
    assert len(existing_columns(con, RUNS) or []) == 6
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 6


def test_a_rerun_replaces_only_its_own_rows() -> None:
    con = duckdb.connect()
    replace_rows(con, RUNS, frame("2026-01-31", 1), {"as_of": date(2026, 1, 31)})
    replace_rows(con, RUNS, frame("2026-02-28", 1), {"as_of": date(2026, 2, 28)})
    replace_rows(con, RUNS, frame("2026-02-28", 1, ("K9",)), {"as_of": date(2026, 2, 28)})
    got = con.execute("SELECT as_of, contract_id FROM runs ORDER BY as_of, contract_id").fetchall()
    assert got == [(date(2026, 1, 31), "K1"), (date(2026, 1, 31), "K2"), (date(2026, 2, 28), "K9")]


def test_values_are_cast_to_the_declared_types() -> None:
    con = duckdb.connect()
    scores = pd.DataFrame({"as_of": ["2026-01-31"], "contract_id": ["K1"],
                           "scheduled_end_date": [pd.Timestamp("2027-05-01 00:00:00")]})
    append_rows(con, SCORES, scores)
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'scores'")
                 .fetchall())
    assert types["scheduled_end_date"] == "DATE" and types["as_of"] == "DATE"
    assert con.execute("SELECT scheduled_end_date FROM scores").fetchone()[0] == date(2027, 5, 1)


def test_a_column_without_a_place_in_the_table_is_refused() -> None:
    con = duckdb.connect()
    with pytest.raises(ValueError, match="no column 'surprise'"):
        append_rows(con, RUNS, frame("2026-01-31", 1).assign(surprise=1))
    with pytest.raises(ValueError, match="replaced by"):
        replace_rows(con, RUNS, frame("2026-01-31", 1), {"contract_id": "K1"})


def test_ensure_creates_the_declared_table_once_and_never_drops() -> None:
    con = duckdb.connect()
    ensure(con, RUNS)
    con.execute("ALTER TABLE runs ADD COLUMN kept_by_an_older_version VARCHAR")
    ensure(con, RUNS)
    assert "kept_by_an_older_version" in (existing_columns(con, RUNS) or [])
