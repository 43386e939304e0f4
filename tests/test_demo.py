"""The synthetic demo portfolio: contract, honesty, dirt and realism.

The realism checks are the product's premise: on this data today's timing
(outreach 90 days before the scheduled end) must miss most signings while the
customers' own history predicts them.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from timing.core import contract as schema
from timing.demo import DemoSummary, generate_demo
from timing.demo import generate as generate_module
from timing.schedule.policies import capture, naive_start_days

AS_OF = date(2026, 10, 31)
TS = pd.Timestamp(AS_OF)
TABLE_NAMES = [t.name for t in schema.TABLES]


def read(out: Path, table: str) -> pd.DataFrame:
    """A table as strings (CSV) or natural types (Parquet), then parsed like an ingest would."""
    csv = out / f"{table}.csv"
    if csv.exists():
        return pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    return pq.read_table(out / f"{table}.parquet").to_pandas()


def as_dates(s: pd.Series) -> pd.Series:
    """Parse ISO dates/timestamps; anything else becomes NaT (and is counted by the caller)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize(None) if s.dt.tz is not None else s
    text = s.astype("string")
    ok = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?").fillna(False)
    parsed = pd.to_datetime(
        text.where(ok).str.replace("Z", "", regex=False), errors="coerce", format="ISO8601"
    )
    return parsed


def load(out: Path) -> dict[str, pd.DataFrame]:
    tables = {t: read(out, t) for t in TABLE_NAMES}
    c = tables["contracts"]
    for col in ("signed_date", "start_date", "scheduled_end_date", "actual_end_date"):
        c[col] = as_dates(c[col])
    for t, col in (
        ("readings", "recorded_at"),
        ("fault_codes", "recorded_at"),
        ("contacts", "contacted_at"),
    ):
        tables[t][col] = as_dates(tables[t][col])
    tables["service_visits"]["visit_date"] = as_dates(tables["service_visits"]["visit_date"])
    tables["readings"]["odometer_km"] = tables["readings"]["odometer_km"].astype(float)
    tables["readings"]["battery_soh_pct"] = tables["readings"]["battery_soh_pct"].astype(float)
    return tables


def truth(out: Path) -> pd.DataFrame:
    t = pd.read_parquet(Path(str(out) + ".truth") / "contracts.parquet")
    for col in ("intended_signing_date", "outcome_date"):
        t[col] = pd.to_datetime(t[col])
    return t


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("big") / "export"
    return out, generate_demo(out, customers=2000, fmt="parquet", seed=7)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "export"
    generate_demo(out, customers=300, fmt="csv", seed=3)
    return out


@pytest.fixture(scope="module", params=["csv", "parquet"])
def dirty(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    out = tmp_path_factory.mktemp(f"dirty_{request.param}") / "export"
    generate_demo(out, customers=600, fmt=request.param, seed=5, dirty=True)
    return out


# --- files and honesty -------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    for fmt in ("csv", "parquet"):
        # same folder name in different places: even meta.json's command is the same
        a, b, c = (tmp_path / f"{run}_{fmt}" / "demo" for run in ("a", "b", "c"))
        generate_demo(a, customers=250, seed=11, fmt=fmt, dirty=True)
        generate_demo(b, customers=250, seed=11, fmt=fmt, dirty=True)
        generate_demo(c, customers=250, seed=12, fmt=fmt, dirty=True)
        for folder_a, folder_b in ((a, b), (Path(f"{a}.truth"), Path(f"{b}.truth"))):
            names = sorted(p.name for p in folder_a.iterdir())
            assert names == sorted(p.name for p in folder_b.iterdir())
            for name in names:
                assert (folder_a / name).read_bytes() == (folder_b / name).read_bytes(), name
        assert (a / f"contracts.{fmt}").read_bytes() != (c / f"contracts.{fmt}").read_bytes()


def test_truth_is_a_sibling_and_export_holds_only_tables(big: tuple[Path, DemoSummary]) -> None:
    out, summary = big
    assert summary.out == out and summary.truth == Path(str(out) + ".truth")
    assert summary.truth.parent == out.parent and not summary.truth.is_relative_to(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLE_NAMES)
    assert sorted(p.name for p in summary.truth.iterdir()) == [
        "contracts.parquet",
        "dirty.json",
        "meta.json",
    ]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    meta = json.loads((summary.truth / "meta.json").read_text())
    assert meta["seed"] == 7 and meta["customers"] == 2000 and meta["as_of"] == "2026-10-31"
    assert (
        meta["command"]
        == "timing demo-data export --customers 2000 --as-of 2026-10-31 --seed 7 --format parquet"
    )
    assert date.fromisoformat(meta["horizon_end"]) >= date(2028, 10, 31)
    assert summary.rows == {
        t: pq.ParquetFile(out / f"{t}.parquet").metadata.num_rows for t in TABLE_NAMES
    }
    assert all(v == 0 for per in summary.dirty.values() for v in per.values())


def test_columns_are_exactly_the_schema(big: tuple[Path, DemoSummary], small_csv: Path) -> None:
    for t in schema.TABLES:
        header = (small_csv / f"{t.name}.csv").read_text().split("\n", 1)[0]
        assert header.split(",") == list(t.column_names)
        pschema = pq.read_schema(big[0] / f"{t.name}.parquet")
        assert pschema.names == list(t.column_names)
        for col in t.columns:
            typ = pschema.field(col.name).type
            if col.dtype == "date":
                assert typ == pa.date32(), (t.name, col.name)
            elif col.dtype == "timestamp":
                assert pa.types.is_timestamp(typ) and typ.tz == "UTC", (t.name, col.name)
            elif col.dtype == "bool":
                assert typ == pa.bool_()


def test_csv_spelling(small_csv: Path) -> None:
    contracts = (small_csv / "contracts.csv").read_text()
    assert '"' not in contracts and "\r" not in contracts
    row = read(small_csv, "contracts").iloc[0]
    assert date.fromisoformat(row["signed_date"]) and row["currency"] == "EUR"
    customers = read(small_csv, "customers")
    assert set(customers["do_not_contact"]) <= {"true", "false"}
    stamp = read(small_csv, "readings")["recorded_at"]
    assert stamp.str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").all()


def test_nothing_after_the_as_of_date(big: tuple[Path, DemoSummary]) -> None:
    tables = load(big[0])
    c = tables["contracts"]
    assert (c["signed_date"] <= TS).all()
    assert (c["actual_end_date"].dropna() <= TS).all()
    for t, col in (
        ("readings", "recorded_at"),
        ("fault_codes", "recorded_at"),
        ("contacts", "contacted_at"),
    ):
        assert (tables[t][col] < TS + pd.Timedelta(days=1)).all(), t
    assert (tables["service_visits"]["visit_date"] <= TS).all()
    # the future is in the truth only
    t = truth(big[0])
    future = t[~t["in_export"]]
    assert len(future) > 100 and not future["contract_id"].isin(c["contract_id"]).any()
    assert set(t.loc[t["in_export"], "contract_id"]) == set(c["contract_id"])
    running = c[c["actual_end_date"].isna()]
    assert running["end_type"].isna().all() and len(running) > 500
    # a few contracts run past their scheduled end (extensions)
    assert 0 < (running["scheduled_end_date"] < TS).sum() < 0.05 * len(running)


def broken_rules(con: duckdb.DuckDBPyConnection, t: schema.Table) -> dict[str, int]:
    """Rows of table ``t`` breaking each rule the schema declares (0 everywhere when clean)."""
    rules: dict[str, str] = {}
    for col in t.columns:
        name = col.name
        if col.required:
            rules[f"{name} required"] = f"{name} IS NULL"
        if col.choices:
            rules[f"{name} choices"] = f"{name} NOT IN ({', '.join(repr(v) for v in col.choices)})"
        if col.min is not None:
            rules[f"{name} min"] = f"{name} {'<=' if col.min_exclusive else '<'} {col.min}"
        if col.max is not None:
            rules[f"{name} max"] = f"{name} > {col.max}"
        if col.pattern:
            rules[f"{name} pattern"] = f"NOT regexp_full_match({name}, '{col.pattern.strip('^$')}')"
        if col.max_asof_year:
            rules[f"{name} year"] = f"{name} NOT BETWEEN 1900 AND {AS_OF.year}"
        if col.unique:
            rules[f"{name} unique"] = (
                f"{name} IN (SELECT {name} FROM {t.name} GROUP BY 1 HAVING count(*) > 1)"
            )
    for check in t.checks:
        rules[check.name] = f"NOT ({check.valid_sql})"
    for ref in t.references:
        rules[ref.rule] = f"{ref.column} NOT IN (SELECT {ref.key} FROM {ref.table})"
    return {
        rule: int(con.sql(f"SELECT count(*) FROM {t.name} WHERE {where}").fetchall()[0][0])
        for rule, where in rules.items()
    }


def test_every_rule_of_the_contract_holds(big: tuple[Path, DemoSummary]) -> None:
    con = duckdb.connect()
    for t in schema.TABLES:
        con.execute(
            f"CREATE VIEW {t.name} AS SELECT * FROM read_parquet('{big[0] / t.name}.parquet')"
        )
    for t in schema.TABLES:
        broken = broken_rules(con, t)
        assert broken and set(broken.values()) == {0}, (t.name, broken)
    # odometer never decreases; battery health only for electrified cars
    drops = con.sql(
        "SELECT count(*) FROM (SELECT odometer_km < max(odometer_km) OVER (PARTITION BY vehicle_id "
        "ORDER BY recorded_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS d FROM readings) WHERE d"
    ).fetchall()
    assert drops == [(0,)]
    soh = con.sql(
        "SELECT v.powertrain IN ('phev', 'bev') AS electric, count(battery_soh_pct) > 0 AS any_soh, "
        "count(*) = count(battery_soh_pct) AS all_soh "
        "FROM readings r JOIN vehicles v USING (vehicle_id) GROUP BY 1"
    ).fetchall()
    assert sorted(soh) == [(False, False, False), (True, True, True)]


def infer_successors(c: pd.DataFrame) -> dict[str, str]:
    """The data contract's rule: recorded predecessor, else the nearest-ending earlier contract."""
    succ = {
        p: k
        for k, p in zip(c["contract_id"], c["predecessor_contract_id"], strict=True)
        if isinstance(p, str)
    }
    end = c["actual_end_date"].fillna(c["scheduled_end_date"])
    k = c.assign(end=end)[["contract_id", "customer_id", "start_date", "end"]]
    free = k[~k["contract_id"].isin(list(succ))]
    new = c[c["predecessor_contract_id"].isna()][["contract_id", "customer_id", "signed_date"]]
    pairs = new.merge(free, on="customer_id", suffixes=("", "_k"))
    pairs = pairs[
        (pairs["start_date"] < pairs["signed_date"])
        & (pairs["signed_date"] <= pairs["end"] + pd.Timedelta(days=180))
    ]
    pairs = pairs.assign(gap=(pairs["signed_date"] - pairs["end"]).abs()).sort_values(
        ["signed_date", "gap"]
    )
    taken = set(succ.values())
    for k_id, n_id in zip(pairs["contract_id_k"], pairs["contract_id"], strict=True):
        if k_id not in succ and n_id not in taken:
            succ[k_id] = n_id
            taken.add(n_id)
    return succ


def test_successors_follow_the_contract_rule(big: tuple[Path, DemoSummary]) -> None:
    c = load(big[0])["contracts"]
    t = truth(big[0]).set_index("contract_id")
    recorded = c["predecessor_contract_id"].notna().sum()
    successors_in_export = t["successor_contract_id"].isin(c["contract_id"]).sum()
    assert 0.6 <= recorded / successors_in_export <= 0.8  # ~70% name their predecessor
    inferred = infer_successors(c)
    shown = t.loc[c["contract_id"]]
    ids = set(c["contract_id"])
    expected = {
        k: s for k, s in zip(shown.index, shown["successor_contract_id"], strict=True) if s in ids
    }
    assert inferred == expected
    # lost means ended with no successor ever
    lost = t[t["outcome"] == "lost"]
    assert lost["successor_contract_id"].isna().all() and lost["intended_signing_date"].isna().all()
    ended = c.set_index("contract_id").loc[lost.index.intersection(c["contract_id"])]
    ended = ended[ended["actual_end_date"].notna()]
    assert (ended["actual_end_date"] == lost.loc[ended.index, "outcome_date"]).all()


# --- realism -----------------------------------------------------------------------------


def test_naive_timing_misses_most_and_truth_catches_all(big: tuple[Path, DemoSummary]) -> None:
    c = load(big[0])["contracts"]
    t = truth(big[0])
    m = c.merge(t, on=["contract_id", "customer_id"])
    soon = m[
        (m["outcome"] == "repurchased")
        & (m["outcome_date"] > TS)
        & (m["outcome_date"] <= TS + pd.Timedelta(days=182))
    ]
    assert len(soon) > 200
    # today's rule, "90 days before the end", with no capacity limit: nobody's habit sits there,
    # so it catches only what the as-of clipping (contracts already inside 90 days start now),
    # triggers and scatter bring into its window
    window = soon["scheduled_end_date"] - pd.Timedelta(days=90)
    pure = ((soon["outcome_date"] >= window) & (soon["outcome_date"] <= window + pd.Timedelta(days=60))).mean()
    days_to_end = (soon["scheduled_end_date"] - TS).dt.days.to_numpy(float)
    start = naive_start_days(days_to_end, np.ones(len(soon), bool), capacity=10**6, horizon_days=182)
    signing = (soon["outcome_date"] - TS).dt.days.to_numpy(float)
    naive = capture(start, signing, 182).capture
    assert pure < 0.15, pure
    assert 0.10 <= naive <= 0.40, naive
    start = soon["intended_signing_date"] - pd.Timedelta(days=30)
    oracle = (
        (soon["outcome_date"] >= start) & (soon["outcome_date"] <= start + pd.Timedelta(days=60))
    ).mean()
    assert oracle > 0.99
    assert ((soon["outcome_date"] - soon["intended_signing_date"]).dt.days.abs() <= 4).all()


def test_history_predicts_the_next_signing(big: tuple[Path, DemoSummary]) -> None:
    c = load(big[0])["contracts"].set_index("contract_id")
    t = truth(big[0])
    done = t[(t["outcome"] == "repurchased") & t["contract_id"].isin(c.index)].copy()
    done["offset"] = (
        done["outcome_date"] - c.loc[done["contract_id"], "scheduled_end_date"].to_numpy()
    ).dt.days
    pairs = done.merge(
        done, left_on="successor_contract_id", right_on="contract_id", suffixes=("", "_next")
    )
    assert len(pairs) > 1000
    assert np.corrcoef(pairs["offset"], pairs["offset_next"])[0, 1] >= 0.5
    # most customers have a history of 1-4 contracts
    per_customer = c.groupby("customer_id").size()
    assert per_customer.between(1, 4).mean() > 0.5 and (per_customer >= 2).mean() > 0.4


def test_heavy_users_sign_early(big: tuple[Path, DemoSummary]) -> None:
    """Usage from the odometer, as a model would see it, against the allowance."""
    tables = load(big[0])
    r, c = tables["readings"], tables["contracts"]
    span = r.groupby("vehicle_id").agg(first=("recorded_at", "min"), last=("recorded_at", "max"),
                                       km0=("odometer_km", "min"), km1=("odometer_km", "max"))  # fmt: skip
    span = span[(span["last"] - span["first"]).dt.days > 180]
    km_per_year = (span["km1"] - span["km0"]) / ((span["last"] - span["first"]).dt.days / 365.25)
    c = c.set_index("vehicle_id").join(km_per_year.rename("km"), how="inner")
    c["ratio"] = c["km"] / c["annual_km_allowance"]
    t = truth(big[0]).set_index("contract_id")
    c = c.join(t[["outcome", "outcome_date"]], on="contract_id")
    c = c[c["outcome"] == "repurchased"]
    offset = (c["outcome_date"] - c["scheduled_end_date"]).dt.days
    heavy = c["ratio"] > 1.25
    assert heavy.sum() > 30
    assert offset[heavy].mean() < offset[~heavy].mean() - 60


def test_portfolio_shape(big: tuple[Path, DemoSummary]) -> None:
    tables = load(big[0])
    cu, c, v = tables["customers"], tables["contracts"], tables["vehicles"]
    t = truth(big[0])
    assert 0.15 <= (cu["customer_type"] == "business").mean() <= 0.25
    assert 0.01 <= cu["do_not_contact"].mean() <= 0.06
    assert cu["branch_id"].nunique() == 20 and cu["region"].nunique() >= 5
    running = c[c["actual_end_date"].isna()].merge(cu, on="customer_id")
    fleet = running[running["customer_type"] == "business"].groupby("customer_id").size()
    assert fleet.max() >= 8 and (fleet >= 2).mean() > 0.5
    assert set(c["product"]) == {"lease", "balloon", "hire_purchase"}
    terms = ((c["scheduled_end_date"] - c["start_date"]).dt.days / 30.44).round()
    assert {24, 36, 48} <= set(terms)
    assert c["annual_km_allowance"].between(10_000, 40_000).all()
    assert c["signed_date"].min() < pd.Timestamp("2015-07-01")
    assert set(v["powertrain"]) == {"ice", "hev", "phev", "bev"}
    resolved = t[t["outcome"] != "open"]
    assert 0.15 <= (resolved["outcome"] == "lost").mean() <= 0.30
    assert set(t["driver"]) == {"habit", "mileage", "fault", "battery", "launch", "lost"}


def test_telematics_faults_visits_and_contacts(big: tuple[Path, DemoSummary]) -> None:
    tables = load(big[0])
    r, c, f, s, k = (
        tables[n] for n in ("readings", "contracts", "fault_codes", "service_visits", "contacts")
    )
    recent = c[
        (c["start_date"] >= pd.Timestamp("2023-01-01"))
        & (c["start_date"] < TS - pd.Timedelta(days=60))
    ]
    silent = ~recent["vehicle_id"].isin(r["vehicle_id"])
    assert 0.12 <= silent.mean() <= 0.30
    assert r["recorded_at"].min() >= pd.Timestamp("2018-06-01")  # model year 2019 onwards
    gaps = (
        r.sort_values(["vehicle_id", "recorded_at"])
        .groupby("vehicle_id")["recorded_at"]
        .diff()
        .dt.days.dropna()
    )
    assert (gaps.round() == 7).mean() > 0.6 and (gaps.round() == 1).any() and (gaps > 14).any()
    assert {"P0420", "P0300", "U0100", "B1234", "C0035"} <= set(f["code"])
    assert set(f["severity"]) == {"info", "warning", "critical"}
    assert set(s["visit_type"]) == {"maintenance", "repair", "warranty", "recall", "tyres"}
    # past outreach: about 90 days before the scheduled end; answers follow the real signing
    t = truth(big[0]).rename(columns={"outcome": "fate"})
    k = k.merge(c[["contract_id", "scheduled_end_date"]], on="contract_id").merge(
        t, on=["contract_id", "customer_id"]
    )
    first = k.sort_values("contacted_at").drop_duplicates("contract_id")
    lead = (first["scheduled_end_date"] - first["contacted_at"].dt.normalize()).dt.days
    assert lead.between(70, 110).mean() > 0.95
    days = (k["outcome_date"] - k["contacted_at"].dt.normalize()).dt.days
    soon = (k["fate"] == "repurchased") & days.between(0, 60)
    positive = k["outcome"].isin(["interested", "appointment"])
    assert soon.sum() > 50 and positive[soon].mean() > 0.6 and positive[~soon].mean() < 0.3
    blocked = tables["customers"].query("do_not_contact")["customer_id"]
    assert not k["customer_id"].isin(blocked).any()


# --- dirt --------------------------------------------------------------------------------


def test_clean_export_has_no_dirt(small_csv: Path) -> None:
    recorded = json.loads((Path(f"{small_csv}.truth") / "dirty.json").read_text())
    assert recorded.keys() == faults_found(small_csv).keys()
    assert all(v == 0 for per in recorded.values() for v in per.values())
    assert all(v == 0 for per in faults_found(small_csv).values() for v in per.values())


def test_clean_export_has_no_duplicate_rows(big: tuple[Path, DemoSummary]) -> None:
    con = duckdb.connect()
    for t in TABLE_NAMES:
        path = big[0] / f"{t}.parquet"
        rows, distinct = con.sql(
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM '{path}')) FROM '{path}'"
        ).fetchall()[0]
        assert rows == distinct, t


def faults_found(out: Path) -> dict[str, dict[str, int]]:
    raw = {t: read(out, t) for t in TABLE_NAMES}
    tables = load(out)
    c, r, cu, v = tables["contracts"], tables["readings"], tables["customers"], tables["vehicles"]
    raw_dates = {
        "contracts": "signed_date",
        "readings": "recorded_at",
        "service_visits": "visit_date",
    }
    parsed = {
        "contracts": c["signed_date"],
        "readings": r["recorded_at"],
        "service_visits": tables["service_visits"]["visit_date"],
    }
    good = r[
        r["recorded_at"].notna() & r["vehicle_id"].isin(v["vehicle_id"]) & (r["odometer_km"] >= 0)
    ].drop_duplicates()
    good = good.sort_values(["vehicle_id", "recorded_at"])
    before = good.groupby("vehicle_id")["odometer_km"].transform(lambda x: x.cummax().shift())
    return {
        "negative_odometer": {"readings": int((r["odometer_km"] < 0).sum())},
        "decreasing_odometer": {"readings": int((good["odometer_km"] < before).sum())},
        "unparseable_date": {
            t: int(parsed[t].isna().sum() - raw[t][col].isna().sum())
            for t, col in raw_dates.items()
        },
        "orphan": {
            "readings": int((~r["vehicle_id"].isin(v["vehicle_id"])).sum()),
            "contracts": int((~c["customer_id"].isin(cu["customer_id"])).sum()),
        },
        "duplicate": {
            t: int(raw[t].astype(str).duplicated().sum())
            for t in ("readings", "contracts", "customers")
        },
        "end_before_start": {"contracts": int((c["scheduled_end_date"] <= c["start_date"]).sum())},
    }


def test_dirty_faults_are_counted_and_present(dirty: Path) -> None:
    recorded = json.loads((Path(f"{dirty}.truth") / "dirty.json").read_text())
    assert all(v > 0 for per in recorded.values() for v in per.values())
    assert faults_found(dirty) == recorded


def test_dirty_rows_break_one_rule_each(dirty: Path) -> None:
    c = load(dirty)["contracts"]
    raw = read(dirty, "contracts")
    cu = read(dirty, "customers")
    bad = (
        c["signed_date"].isna()
        | (c["scheduled_end_date"] <= c["start_date"])
        | ~c["customer_id"].isin(cu["customer_id"])
    )
    assert (bad.astype(int) + raw.duplicated().astype(int)).max() == 1
    # nothing refers to a contract that will be set aside
    aside = set(
        c.loc[c["signed_date"].isna() | (c["scheduled_end_date"] <= c["start_date"]), "contract_id"]
    )
    assert len(aside) > 0
    assert not aside & set(read(dirty, "contacts")["contract_id"].dropna())
    assert not aside & set(c["predecessor_contract_id"].dropna())
    t = truth(dirty).set_index("contract_id")
    assert (t.loc[list(aside), "outcome"] == "lost").all() and t.loc[
        list(aside), "successor_contract_id"
    ].isna().all()
    if (dirty / "contracts.parquet").exists():
        schema_ = pq.read_schema(dirty / "contracts.parquet")
        assert schema_.field("signed_date").type == pa.string()
        assert schema_.field("start_date").type == pa.date32()


# --- arguments and files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"customers": -5}, "customers"),
        ({"customers": 2.5}, "customers"),
        ({"customers": True}, "customers"),
        ({"fmt": "xlsx"}, "fmt"),
        ({"readings_every_days": 0}, "readings_every_days"),
        ({"seed": -1}, "seed"),
        ({"as_of": date(2014, 1, 1)}, "as_of"),
        ({"as_of": "2026-10-31"}, "as_of"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_demo(tmp_path / "out", **{"customers": 10, **kwargs})
    assert not (tmp_path / "out").exists()


def test_foreign_content_is_never_overwritten(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        generate_demo(busy, customers=10)
    a_file = tmp_path / "file.csv"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        generate_demo(a_file, customers=10)
    # a real export with the same file names is not ours to replace
    real = tmp_path / "real"
    real.mkdir()
    (real / "contracts.csv").write_text("contract_id\n")
    with pytest.raises(ValueError, match="no earlier demo run"):
        generate_demo(real, customers=10)
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_demo(empty, customers=10)
    truth_busy = tmp_path / "other"
    Path(f"{truth_busy}.truth").mkdir()
    (Path(f"{truth_busy}.truth") / "model.pkl").write_text("x")
    with pytest.raises(ValueError, match="model.pkl"):
        generate_demo(truth_busy, customers=10)
    assert (busy / "notes.txt").read_text() == "mine" and a_file.read_text() == "x"
    assert (real / "contracts.csv").read_text() == "contract_id\n"


def test_rewriting_an_earlier_output_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    generate_demo(out, customers=40, fmt="csv")
    summary = generate_demo(out, customers=50, fmt="parquet", seed=2)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLE_NAMES)
    assert summary.rows["customers"] == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.truth"]


def test_a_failure_leaves_nothing_half_written(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    generate_demo(out, customers=30)
    before = (out / "contracts.csv").read_bytes()

    def boom(message: str) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        generate_demo(out, customers=60, seed=9, progress=boom)
    assert (out / "contracts.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.truth"]


def test_chunks_and_reading_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate_module, "CHUNK_CUSTOMERS", 120)
    messages: list[str] = []
    s = generate_demo(
        tmp_path / "d", customers=300, readings_every_days=30, dirty=True, progress=messages.append
    )
    assert len([m for m in messages if m.startswith("customers")]) == 3
    tables = load(tmp_path / "d")
    assert tables["customers"]["customer_id"].drop_duplicates().size == 300
    c = tables["contracts"]
    real = c[c["customer_id"].isin(tables["customers"]["customer_id"])].drop_duplicates()
    assert real["contract_id"].is_unique
    assert s.dirty["orphan"]["contracts"] == 3  # one per chunk
    r = tables["readings"].dropna(subset=["recorded_at"]).drop_duplicates()
    gaps = (
        r.sort_values(["vehicle_id", "recorded_at"])
        .groupby("vehicle_id")["recorded_at"]
        .diff()
        .dt.days.dropna()
    )
    assert (gaps.round() % 30 == 0).mean() > 0.99
