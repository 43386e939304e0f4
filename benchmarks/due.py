"""Benchmark :func:`timing.outputs.due.due_list` on a store whose current plan holds 1,000,000 windows.

Synthesises (seeded, numpy) a scratch DuckDB store with the tables the due
list reads, shaped like the real ones: ``customers``, ``vehicles`` and
``contracts`` with the data contract's columns (:mod:`timing.core.contract`), and
``schedules`` with two plans of ``--windows`` rows each (the previous plan a
week earlier, then the current plan), written in the order
:func:`timing.schedule.plan_windows` writes them (by window start, priority,
probability). Windows start on weekly days over 26 weeks and last 28 days;
``--branches`` branches (default 200, so about 5,000 windows a branch) in 6
regions; each window's channel chosen as the planner's contact rules do, and
about 1 % of customers have withdrawn every consent since the plan was made.

Times ``due_list()`` (open the store, find the plan, run the query, build the
DataFrame) for a few typical queries, ``--repeat`` times each in this process
(median and slowest reported), and the branch query once more as the first
call of a fresh Python process (DuckDB has nothing cached). Also times
``format_due`` for the branch result (table) and the unfiltered one (CSV).
``--explain`` prints DuckDB's plan of the branch query, to see the filters
pushed into the scan of ``schedules``.

Target: the branch query within 2 s. The results are printed and appended as
a dated section to ``benchmarks/RESULTS.md`` unless ``--no-record``.

Usage::

    python benchmarks/due.py                     # 1,000,000 windows in the current plan
    python benchmarks/due.py --windows 100000 --no-record
    python benchmarks/due.py --keep --explain    # keep the scratch store for the next run

The scratch store goes to ``benchmarks/.cache/due/`` (ignored by git) and is
deleted afterwards unless ``--keep``; a kept store built with the same
parameters is reused.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import code_version, machine  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CACHE = HERE / ".cache" / "due"
AS_OF = date(2026, 10, 31)
TARGET_SECONDS = 2.0
DUE_CODE = ("timing/outputs", "timing/store/db.py")  # the code measured: uncommitted changes there are named
REGIONS = np.array(["north", "south", "east", "west", "central", "islands"])
CHANNELS = np.array(["account", "phone", "email", "sms", "letter"])
VEHICLES = np.array(["BMW 320d", "Volkswagen Passat", "Skoda Octavia", "Mercedes-Benz C 220 d", "Peugeot 308",
                     "Hyundai Kona Hybrid", "Skoda Enyaq", "Tesla Model 3", "Renault Clio", "Kia EV6"])
SECTION_HEADER = """
## `benchmarks/due.py`: the due list on a 1,000,000-window plan

```
python benchmarks/due.py [--windows N] [--branches B] [--repeat R] [--keep] [--explain]
```

A scratch store (seeded, numpy) with two plans of N windows (the previous and
the current one), 1.25 N contracts and vehicles, N customers, B branches.
*median s* / *slowest s*: wall time of `due_list()` over R calls in one
process (each call opens the store, finds the plan, runs the one query and
builds the DataFrame); *fresh process s*: the branch query as the first call
of a new Python process. Target: a branch query within 2 s.
"""


def _ids(prefix: str, idx: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(idx.astype(str), width)).astype(object)


def _days(start: date, offsets: np.ndarray) -> np.ndarray:
    return (np.datetime64(start.isoformat(), "D") + offsets.astype("timedelta64[D]")).astype("datetime64[s]")


def _reason_pool(rng: np.random.Generator, n: int) -> np.ndarray:
    days = rng.integers(1, 400, n)
    ends = _days(AS_OF, days).astype("datetime64[D]").astype(str)
    early = rng.integers(1, 16, n)
    renewals = rng.integers(1, 40, n)
    fault = _days(AS_OF, -rng.integers(1, 60, n)).astype("datetime64[D]").astype(str)
    kind = rng.integers(0, 3, n)
    out = []
    for i in range(n):
        first = f"scheduled end {ends[i]} (in {days[i]} days)"
        second = (f"signed {early[i]} months early last time", f"critical fault {fault[i]}",
                  "mileage allowance reached in 41 days")[kind[i]]
        out.append(f"{first}; {second}; {renewals[i]} earlier renewals")
    return np.array(out, dtype=object)


def build_store(path: Path, windows: int, branches: int, seed: int) -> dict[str, float]:
    """Write the scratch store; return the seconds taken and the table sizes."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_contracts = windows * 5 // 4
    n_customers = windows
    branch_ids = _ids("BR", np.arange(1, branches + 1), 3)
    branch_region = REGIONS[np.arange(branches) % len(REGIONS)]

    cust_branch = rng.integers(0, branches, n_customers)
    consent = rng.random((n_customers, 4)) < np.array([0.7, 0.8, 0.4, 0.5])  # phone, email, sms, letter
    consent[:, 1] |= ~consent.any(axis=1)
    preferred = rng.integers(0, 4, n_customers)
    # the planner's channel: business -> account; else the preferred channel if consented, else the first one
    kind = np.where(rng.random(n_customers) < 0.3, "business", "private")
    own = consent[np.arange(n_customers), preferred]
    planned_channel = np.where(kind == "business", "account",
                               CHANNELS[1:][np.where(own, preferred, consent.argmax(axis=1))])
    withdrawn = rng.random(n_customers) < 0.01  # withdrew every consent after the plan was made
    consent[withdrawn] = False
    customers = pd.DataFrame({
        "customer_id": _ids("CU", np.arange(n_customers), 8),
        "customer_type": kind,
        "birth_year": rng.integers(1940, 2005, n_customers),
        "region": branch_region[cust_branch], "branch_id": branch_ids[cust_branch],
        "consent_phone": consent[:, 0], "consent_email": consent[:, 1],
        "consent_sms": consent[:, 2], "consent_letter": consent[:, 3],
        "do_not_contact": False,
        "preferred_channel": CHANNELS[1:][preferred],
    })
    model = VEHICLES[rng.integers(0, len(VEHICLES), n_contracts)]
    vehicles = pd.DataFrame({
        "vehicle_id": _ids("V", np.arange(n_contracts), 8),
        "vin": None,
        "brand": [m.split(" ", 1)[0] for m in model], "model": [m.split(" ", 1)[1] for m in model],
        "model_year": rng.integers(2018, 2027, n_contracts),
        "powertrain": np.array(["ice", "hev", "phev", "bev"])[rng.integers(0, 4, n_contracts)],
        "list_price": rng.uniform(20_000, 90_000, n_contracts).round(2),
    })
    owner = rng.integers(0, n_customers, n_contracts)
    start = rng.integers(-1500, -30, n_contracts)
    contracts = pd.DataFrame({
        "contract_id": _ids("K", np.arange(n_contracts), 9),
        "customer_id": customers["customer_id"].to_numpy()[owner],
        "vehicle_id": vehicles["vehicle_id"].to_numpy(),
        "product": np.array(["lease", "balloon", "hire_purchase"])[rng.integers(0, 3, n_contracts)],
        "signed_date": _days(AS_OF, start - 20), "start_date": _days(AS_OF, start),
        "scheduled_end_date": _days(AS_OF, start + rng.choice([730, 1095, 1461], n_contracts)),
        "annual_km_allowance": rng.choice([10_000, 15_000, 20_000, 30_000], n_contracts),
        "monthly_payment": rng.uniform(150, 1200, n_contracts).round(2), "currency": "EUR",
        "actual_end_date": pd.NaT, "end_type": None, "predecessor_contract_id": None,
    })
    reasons = _reason_pool(rng, 50_000)

    def plan(as_of: date, planned: np.ndarray, status: np.ndarray) -> pd.DataFrame:
        m = len(planned)
        week = rng.integers(0, 27, m)
        p = np.clip(rng.beta(2, 5, m) * 1.3, 0.01, 0.99)
        cust = owner[planned]
        channel = planned_channel[cust]
        df = pd.DataFrame({
            "as_of": np.datetime64(as_of.isoformat(), "s"),
            "contract_id": contracts["contract_id"].to_numpy()[planned],
            "customer_id": customers["customer_id"].to_numpy()[cust],
            "branch_id": customers["branch_id"].to_numpy()[cust], "region": customers["region"].to_numpy()[cust],
            "window_start": _days(as_of, week * 7), "window_end": _days(as_of, week * 7 + 27),
            "week": week.astype(float), "channel": channel,
            "priority": np.where(p >= 0.5, 1, np.where(p >= 0.25, 2, 3)),
            "p_signing_in_window": p,
            "expected_signing_date": _days(as_of, week * 7 + rng.integers(0, 60, m)),
            "reasons": reasons[rng.integers(0, len(reasons), m)], "status": status,
        })
        return df.sort_values(["window_start", "priority", "p_signing_in_window", "contract_id"],
                              ascending=[True, True, False, True])

    previous = plan(AS_OF - timedelta(days=7), rng.choice(n_contracts, windows, replace=False),
                    np.full(windows, "new"))
    status = rng.choice(["new", "kept", "moved"], windows, p=[0.2, 0.7, 0.1])
    current = plan(AS_OF, rng.choice(n_contracts, windows, replace=False), status)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, df in (("customers", customers), ("vehicles", vehicles), ("contracts", contracts)):
            con.register("frame", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
        con.register("frame", pd.concat([previous, current], ignore_index=True))
        con.execute("""CREATE TABLE schedules AS SELECT CAST(as_of AS DATE) AS as_of, contract_id, customer_id,
                       branch_id, region, CAST(window_start AS DATE) AS window_start,
                       CAST(window_end AS DATE) AS window_end, week, channel, priority, p_signing_in_window,
                       CAST(expected_signing_date AS TIMESTAMP) AS expected_signing_date, reasons, status
                       FROM frame""")
        con.unregister("frame")
        con.execute(f"CREATE TABLE export_info AS SELECT DATE '{AS_OF.isoformat()}' AS as_of")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"seconds": time.perf_counter() - t0, "contracts": n_contracts, "customers": n_customers,
            "schedule_rows": 2 * windows, "mib": path.stat().st_size / 2**20}


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("branch, within 30 days", {"branch": "BR017"}),
    ("branch + channel + priority <= 2, within 7 days", {"branch": "BR017", "channel": "phone",
                                                         "min_priority": 2, "within": 7}),
    ("region, within 30 days", {"region": "north"}),
    ("no filter, within 30 days", {}),
]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def fresh_process(store: Path, kwargs: dict[str, Any]) -> float:
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from timing.outputs.due import due_list\n"
        "t0 = time.perf_counter()\n"
        f"due_list(Path({str(store)!r}), **json.loads({json.dumps(kwargs)!r}))\n"
        "print(time.perf_counter() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def explain(store: Path) -> str:
    from timing.outputs.due import _DUE_SQL

    con = duckdb.connect(str(store), read_only=True)
    try:
        params = {"day": AS_OF, "last_day": AS_OF + timedelta(days=30), "plan": AS_OF, "branch": "BR017",
                  "region": None, "channel": None, "min_priority": None}
        rows = con.execute("EXPLAIN ANALYZE " + _DUE_SQL, params).fetchall()
        return "\n".join(r[1] for r in rows)
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=1_000_000, help="windows in the current plan")
    ap.add_argument("--branches", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the scratch store for the next run")
    ap.add_argument("--explain", action="store_true", help="print DuckDB's plan of the branch query")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)

    from timing.outputs.due import due_list, format_due

    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE.parent / ".gitignore").write_text("*\n")
    store = CACHE / f"due-{args.windows}-{args.branches}-{args.seed}.duckdb"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if store.exists():
        built: dict[str, Any] = {"cached": True}
        print(f"reusing {store}")
    else:
        print(f"building {store} ...", flush=True)
        built = build_store(store, args.windows, args.branches, args.seed)
        print(f"  built in {built['seconds']:.1f} s ({built['mib']:,.0f} MiB)")
    try:
        rows: list[dict[str, Any]] = []
        frames: dict[str, pd.DataFrame] = {}
        for name, kwargs in QUERIES:
            times, df = timed(functools.partial(due_list, store, **kwargs), args.repeat)
            frames[name] = df
            rows.append({"query": name, "rows": len(df), "median": statistics.median(times), "max": max(times)})
            print(f"  {name}: {len(df):,} rows, median {rows[-1]['median']:.3f} s, slowest {max(times):.3f} s")
        fresh = fresh_process(store, QUERIES[0][1])
        print(f"  branch query as the first call of a fresh process: {fresh:.3f} s")
        fmt_table, _ = timed(lambda: format_due(frames[QUERIES[0][0]], "table"), 3)
        fmt_csv, _ = timed(lambda: format_due(frames[QUERIES[-1][0]], "csv"), 3)
        print(f"  format_due: branch table {statistics.median(fmt_table):.3f} s, "
              f"unfiltered CSV {statistics.median(fmt_csv):.3f} s")
        if args.explain:
            print(explain(store))
        branch = rows[0]["median"]
        verdict = "pass" if max(branch, fresh) <= TARGET_SECONDS else "FAIL"
        print(f"target: branch query <= {TARGET_SECONDS:.0f} s: {verdict}")
        if not args.no_record:
            record(args, rows, fresh, fmt_table, fmt_csv, built, load, verdict)
    finally:
        if not args.keep:
            shutil.rmtree(CACHE, ignore_errors=True)
    return 0


def record(args: argparse.Namespace, rows: list[dict[str, Any]], fresh: float, fmt_table: list[float],
           fmt_csv: list[float], built: dict[str, Any], load: str, verdict: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/due.py " + shlex.join(sys.argv[1:])
    store_line = ("scratch store reused from the cache" if built.get("cached") else
                  f"scratch store built in {built['seconds']:.1f} s ({built['mib']:,.0f} MiB; "
                  f"{built['schedule_rows']:,} schedule rows, {built['contracts']:,} contracts, "
                  f"{built['customers']:,} customers)")
    lines = [
        "",
        f"### due list, {args.windows:,} windows in the current plan: {now}",
        "",
        f"`{command.strip()}`; code: {code_version(DUE_CODE)}; machine: {machine()}; "
        f"load average before the run: {load}; {store_line}.",
        "",
        "| query | rows | median s | slowest s |",
        "|---|--:|--:|--:|",
        *[f"| {r['query']} | {r['rows']:,} | {r['median']:.3f} | {r['max']:.3f} |" for r in rows],
        "",
        f"Branch query as the first call of a fresh process: {fresh:.3f} s. "
        f"`format_due`: branch result as a table {statistics.median(fmt_table):.3f} s, "
        f"unfiltered result as CSV {statistics.median(fmt_csv):.3f} s. "
        f"Target (branch query <= {TARGET_SECONDS:.0f} s): {verdict}.",
    ]
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmarks\n"
    section = ("" if "## `benchmarks/due.py`" in text else SECTION_HEADER) + "\n".join(lines) + "\n"
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    sys.exit(main())
