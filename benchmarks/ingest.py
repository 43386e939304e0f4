"""Benchmark :func:`timing.ingest.load.ingest` on a large synthetic export.

Generates a deterministic (seeded) export with ``--rows`` readings rows
(default 10,000,000) over ~100,000 vehicles, customers and contracts that
satisfy the data contract (:mod:`timing.core.contract`), plus a small fraction
(``--bad-fraction``, default 0.1 %) of bad rows so that every validation path
runs: exact duplicates, an odometer lower than an earlier reading, a negative
odometer and an unknown vehicle in ``readings``; a start before signing and an
unknown customer in ``contracts``. The same export is written twice, as CSV
(UTF-8, header, comma, no quoting) and as Parquet (zstd, typed columns).
Timestamps are whole seconds, so a handful of clean readings coincide exactly
with another (same vehicle, second and odometer) and are duplicates too; the
checks therefore ask for *at least* the injected counts.

Each format is ingested with full validation in a fresh subprocess per run
(``--repeat`` runs per format, formats alternating; the median is reported),
which reports the wall time and CPU time of the ``ingest()`` call, its peak
resident set size (``VmHWM`` of the process: Python plus DuckDB's native
memory) and, by wrapping the ``progress`` callback, the time and peak RSS of
every stage; ``--profile`` adds the time of every SQL statement. CPU time
(every thread of the process) is given beside each wall time, and the
machine's 1-minute load average at the end of each run, since the wall time
of a shared machine depends on what else runs. The benchmark checks
``read = loaded + set_aside + duplicates`` for every table, that at least the
injected number of rows was set aside (and counted as duplicates), that the
store and its quarantine hold what the report says, and that the readings
were loaded in file order (the generated file is in time order, so the
stored times may never go back).

The results are printed and appended as a dated section to
``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/ingest.py                             # 10M rows, both formats
    python benchmarks/ingest.py --rows 200000 --no-record   # quick smoke run
    python benchmarks/ingest.py --keep --profile            # keep the export, time SQL

Generated files go to ``benchmarks/.cache/`` (ignored by git through a
``.gitignore`` the script writes there) and are deleted afterwards unless
``--keep`` is given; a kept export with the same parameters is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import code_version, cpu_and_memory  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".cache"
RESULTS = HERE / "RESULTS.md"

#: Bump when the generated data changes, so a kept cache is not reused by mistake.
GENERATOR_VERSION = 1
AS_OF = date(2025, 12, 31)
FORMATS = ("csv", "parquet")
#: Targets on the reference machine (2 cores, 24 GB).
TARGET_SECONDS = {"csv": 20.0, "parquet": 10.0}
TARGET_RSS_MIB = 2048.0
#: The code measured: uncommitted changes there are named with the results.
INGEST_CODE = ("timing/ingest/load.py", "timing/core/contract.py", "timing/store/db.py", "timing/store/outcomes.py")
TABLE_NAMES = ("customers", "vehicles", "contracts", "readings")

DAY_S = 86_400
EPOCH = np.datetime64("1970-01-01", "D")


def _days(d: date) -> int:
    return int((np.datetime64(d.isoformat(), "D") - EPOCH).astype(np.int64))


def _id_strings(prefix: str, idx: np.ndarray, width: int = 7) -> np.ndarray:
    """``prefix`` + zero-padded numbers, built without a Python loop."""
    if len(idx) == 0:
        return np.array([], dtype=str)
    return np.char.add(prefix, np.char.zfill(idx.astype(np.int64).astype(str), width))


def _ids(prefix: str, idx: np.ndarray, width: int = 7) -> pa.Array:
    return pa.array(_id_strings(prefix, idx, width), type=pa.string())


def _date_array(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=mask)


# ---------------------------------------------------------------------------
# generating the export


@dataclass
class Injected:
    """Bad rows put into the export on purpose, per table."""

    set_aside: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    detail: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Export:
    """The generated tables (typed, as written to Parquet) and the bad rows put in."""

    tables: dict[str, pa.Table]
    injected: Injected


def generate(rows: int, vehicles: int, seed: int, bad_fraction: float) -> Export:
    """Build the export in memory, vectorised; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    nv = vehicles
    nc = max(1, int(nv * 0.9))  # some customers lease several vehicles
    as_of = _days(AS_OF)

    # customers ---------------------------------------------------------------
    private = rng.random(nc) < 0.8
    birth = rng.integers(1940, 2006, nc)
    channels = np.array(["email", "phone", "sms", "letter"])
    pref = channels[rng.integers(0, 4, nc)]
    regions = np.array(["north", "south", "east", "west", "central", "coast", "alps", "capital"])
    customers = pa.table(
        {
            "customer_id": _ids("C", np.arange(nc)),
            "customer_type": pa.array(np.where(private, "private", "business")),
            "birth_year": pa.array(birth, type=pa.int64(), mask=~private),
            "region": pa.array(regions[rng.integers(0, len(regions), nc)]),
            "branch_id": _ids("B", rng.integers(1, 51, nc), 3),
            "consent_email": pa.array(rng.random(nc) < 0.7),
            "consent_phone": pa.array(rng.random(nc) < 0.5),
            "consent_sms": pa.array(rng.random(nc) < 0.3, mask=rng.random(nc) < 0.2),
            "consent_letter": pa.array(rng.random(nc) < 0.9),
            "do_not_contact": pa.array(rng.random(nc) < 0.03),
            "preferred_channel": pa.array(pref, mask=rng.random(nc) < 0.2),
        }
    )

    # contracts (one per vehicle) -----------------------------------------------
    first_start, last_start = _days(date(2018, 1, 1)), _days(date(2025, 9, 30))
    start = rng.integers(first_start, last_start + 1, nv)
    signed = start - rng.integers(0, 46, nv)
    term_months = rng.choice(np.array([24, 36, 48]), nv)
    sched_end = start + np.round(term_months * 30.4375).astype(np.int64)
    due = sched_end <= as_of
    ended = np.where(due, rng.random(nv) < 0.92, rng.random(nv) < 0.03)
    actual_end = np.where(
        due,
        sched_end + rng.integers(-90, 61, nv),
        start + 30 + (rng.random(nv) * np.maximum(as_of - start - 30, 1)).astype(np.int64),
    )
    actual_end = np.clip(actual_end, start + 1, as_of)
    end_types = np.array(["returned", "bought_out", "early_terminated", "written_off"])
    end_type = np.where(
        due,
        end_types[rng.choice(4, nv, p=[0.55, 0.3, 0.1, 0.05])],
        "early_terminated",
    )
    customer_of = rng.integers(0, nc, nv)
    list_price = np.round(rng.uniform(20_000, 90_000, nv), 2)
    annual_km = rng.choice(np.array([10_000, 15_000, 20_000, 25_000, 30_000]), nv)

    n_bad_contracts = int(round(nv * bad_fraction))
    bad = rng.choice(nv, n_bad_contracts, replace=False)
    swap, orphan = bad[: n_bad_contracts // 2], bad[n_bad_contracts // 2 :]
    contract_signed = signed.copy()
    contract_signed[swap] = start[swap] + rng.integers(1, 11, len(swap))  # signed after start
    customer_ids = _id_strings("C", customer_of).astype(object)
    customer_ids[orphan] = _id_strings("C9", orphan, 6)  # no such customer
    contracts = pa.table(
        {
            "contract_id": _ids("K", np.arange(nv)),
            "customer_id": pa.array(customer_ids, type=pa.string()),
            "vehicle_id": _ids("V", np.arange(nv)),
            "product": pa.array(
                np.array(["lease", "balloon", "hire_purchase"])[
                    rng.choice(3, nv, p=[0.7, 0.2, 0.1])
                ]
            ),
            "signed_date": _date_array(contract_signed),
            "start_date": _date_array(start),
            "scheduled_end_date": _date_array(sched_end),
            "annual_km_allowance": pa.array(annual_km, type=pa.int64()),
            "monthly_payment": pa.array(np.round(list_price * rng.uniform(0.012, 0.02, nv), 2)),
            "currency": pa.array(np.full(nv, "EUR")),
            "actual_end_date": _date_array(actual_end, ended),
            "end_type": pa.array(end_type, mask=~ended),
            "predecessor_contract_id": pa.nulls(nv, pa.string()),
        }
    )

    # vehicles ----------------------------------------------------------------
    alphabet = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"))
    vin = alphabet[rng.integers(0, len(alphabet), (nv, 17))].astype("<U1").view("<U17").ravel()
    powertrain = np.array(["ice", "hev", "phev", "bev"])[
        rng.choice(4, nv, p=[0.55, 0.2, 0.1, 0.15])
    ]
    brands = np.array(["Astra", "Borealis", "Corvid", "Delta", "Equinox", "Fjord"])
    start_year = start.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    vehicles_t = pa.table(
        {
            "vehicle_id": _ids("V", np.arange(nv)),
            "vin": pa.array(vin),
            "brand": pa.array(brands[rng.integers(0, len(brands), nv)]),
            "model": pa.array(np.char.add("M", rng.integers(1, 9, nv).astype(str))),
            "model_year": pa.array(start_year - rng.integers(0, 2, nv), type=pa.int64()),
            "powertrain": pa.array(powertrain),
            "list_price": pa.array(list_price),
        }
    )

    # readings ----------------------------------------------------------------
    n_bad = int(round(rows * bad_fraction))
    n_dup = int(round(n_bad * 0.30))
    n_down = int(round(n_bad * 0.25))
    n_neg = int(round(n_bad * 0.20))
    n_unk = n_bad - n_dup - n_down - n_neg
    n_clean = rows - n_dup

    window_end = np.where(ended, actual_end, as_of)  # readings stop when the contract ends
    t0 = start * DAY_S
    span = (window_end - start) * DAY_S + DAY_S - 1  # up to the last second of the last day
    counts = rng.multinomial(n_clean, span / span.sum())
    veh = np.repeat(np.arange(nv, dtype=np.int64), counts)
    key = veh + rng.random(n_clean)  # sorting veh + u sorts u within each vehicle
    key.sort()
    frac = key - veh
    del key
    ts = t0[veh] + np.floor(frac * span[veh]).astype(np.int64)
    del frac
    km_per_s = annual_km / (365.0 * DAY_S) * rng.uniform(0.6, 1.3, nv)
    initial_km = rng.uniform(10, 200, nv)
    odo = np.round(initial_km[veh] + km_per_s[veh] * (ts - t0[veh]), 1)
    electric = (powertrain == "bev") | (powertrain == "phev")
    years = (ts - t0[veh]) / (365.25 * DAY_S)
    soh = np.clip(
        np.round(100 - rng.uniform(1.0, 3.0, nv)[veh] * years - rng.normal(0, 0.3, n_clean), 1),
        60,
        100,
    )
    soh_valid = electric[veh]
    del years

    # bad rows: never a vehicle's first reading, so "lower than an earlier reading"
    # always has a clean earlier reading to be compared with
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))[counts > 0]
    eligible = np.ones(n_clean, dtype=bool)
    eligible[firsts] = False
    pool = np.flatnonzero(eligible)
    picked = pool[rng.choice(len(pool), n_dup + n_down + n_neg + n_unk, replace=False)]
    dup_src = picked[:n_dup]
    down = picked[n_dup : n_dup + n_down]
    neg = picked[n_dup + n_down : n_dup + n_down + n_neg]
    unk = picked[n_dup + n_down + n_neg :]
    first_odo = np.zeros(nv)
    first_odo[veh[firsts]] = odo[firsts]
    odo[down] = np.floor(first_odo[veh[down]] * rng.uniform(0.1, 0.9, n_down) * 10) / 10
    odo[neg] = -odo[neg]
    vid = veh.copy()
    vid[unk] = nv + np.arange(n_unk)  # codes past the last vehicle: ids that do not exist
    vehicle_names = pa.array(
        np.concatenate((_id_strings("V", np.arange(nv)), _id_strings("V9", np.arange(n_unk), 6))),
        type=pa.string(),
    )

    # exact duplicates appended, then the file is ordered by time (a stable sort keeps
    # each copy right after its original)
    src = np.concatenate((np.arange(n_clean), dup_src))
    order = np.argsort(ts[src], kind="stable")
    src = src[order]
    del order
    readings = pa.table(
        {
            "vehicle_id": vehicle_names.take(pa.array(vid[src])),
            "recorded_at": pa.array(ts[src] * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "odometer_km": pa.array(odo[src]),
            "battery_soh_pct": pa.array(soh[src], mask=~soh_valid[src]),
        }
    )
    injected = Injected(
        set_aside={
            "customers": 0,
            "vehicles": 0,
            "contracts": n_bad_contracts,
            "readings": n_down + n_neg + n_unk,
        },
        duplicates={"customers": 0, "vehicles": 0, "contracts": 0, "readings": n_dup},
        detail={
            "readings": {
                "exact duplicate": n_dup,
                "odometer lower than earlier": n_down,
                "negative odometer": n_neg,
                "unknown vehicle_id": n_unk,
            },
            "contracts": {"start before signed": len(swap), "unknown customer_id": len(orphan)},
        },
    )
    return Export(
        tables={
            "customers": customers,
            "vehicles": vehicles_t,
            "contracts": contracts,
            "readings": readings,
        },
        injected=injected,
    )


def _as_csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as ISO text with a Z, as the export would write them."""
    cols = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%SZ")
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_export(export: Export, root: Path) -> dict[str, float]:
    """Write ``root/csv`` and ``root/parquet``; return seconds per format."""
    seconds: dict[str, float] = {}
    for fmt in FORMATS:
        t = time.perf_counter()
        out = root / fmt
        out.mkdir(parents=True, exist_ok=True)
        for name, table in export.tables.items():
            if fmt == "csv":
                with (out / f"{name}.csv").open("wb") as f:
                    f.write((",".join(table.column_names) + "\n").encode())  # header unquoted
                    pacsv.write_csv(
                        _as_csv_table(table),
                        f,
                        pacsv.WriteOptions(quoting_style="none", include_header=False),
                    )
            else:
                pq.write_table(table, out / f"{name}.parquet", compression="zstd")
        seconds[fmt] = time.perf_counter() - t
    return seconds


# ---------------------------------------------------------------------------
# measuring one ingest in a fresh process


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread, DuckDB's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> float:
    """The 1-minute load average of the machine."""
    return os.getloadavg()[0]


def _rss_mib(field_name: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} not in /proc/self/status")


class _RssMonitor:
    """Polls this process's RSS; keeps the peak since each of its marks was reset."""

    def __init__(self, interval: float = 0.02) -> None:
        self._peaks: dict[str, float] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)
        self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.sample()

    def sample(self) -> float:
        rss = _rss_mib("VmRSS")
        with self._lock:
            for k, v in self._peaks.items():
                self._peaks[k] = max(v, rss)
        return rss

    def reset(self, mark: str) -> float:
        rss = _rss_mib("VmRSS")
        with self._lock:
            self._peaks[mark] = rss
        return rss

    def peak(self, mark: str) -> float:
        self.sample()
        with self._lock:
            return self._peaks[mark]

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class _TimedConnection:
    """Wraps a DuckDB connection; times every statement and its peak RSS (``--profile``)."""

    def __init__(self, con: Any, log: list[dict[str, Any]], stage: list[str], rss: _RssMonitor):
        self._con = con
        self._log = log
        self._stage = stage
        self._rss = rss

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        self._rss.reset("statement")
        t, cpu = time.perf_counter(), _cpu_seconds()
        result = getattr(self._con, method)(sql, *args)
        self._log.append(
            {
                "stage": self._stage[0],
                "sql": " ".join(sql.split())[:110],
                "seconds": time.perf_counter() - t,
                "cpu_seconds": _cpu_seconds() - cpu,
                "peak_rss_mib": self._rss.peak("statement"),
            }
        )
        return result

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def worker(export_dir: Path, store: Path, profile: bool) -> None:
    """Run one ingest and print a JSON line with timings, memory and the report.

    The peak is ``VmHWM``, not ``getrusage``: on Linux ``ru_maxrss`` of a
    freshly exec'd child can carry over its parent's high-water mark. Stages
    are delimited by the ``progress`` messages of ``ingest()``. With
    ``profile``, ``replace_store`` is wrapped (in this process only) so that
    the store connection times each SQL statement and the end of the build
    (history carry-over, checkpoint, swap) is marked; ``timing/ingest/load.py``
    itself is not changed.
    """
    import timing.ingest.load as ti

    rss = _RssMonitor()
    baseline = rss.reset("stage")
    stages: list[dict[str, Any]] = []
    current = ["start"]
    statements: list[dict[str, Any]] = []

    def close(now: float) -> None:
        if stages:
            stages[-1].update(
                seconds=now - stages[-1]["t"],
                cpu_seconds=_cpu_seconds() - stages[-1]["cpu"],
                peak_rss_mib=rss.peak("stage"),
            )

    def progress(msg: str) -> None:
        now = time.perf_counter()
        close(now)
        mib = rss.reset("stage")
        # "reading readings.csv" and "reading readings.parquet" are the same stage
        stage = re.sub(r"\.(csv|csv\.gz|parquet)$", "", msg)
        stages.append({"stage": stage, "t": now, "cpu": _cpu_seconds()})
        current[0] = stages[-1]["stage"]
        print(f"  [{now - started:6.1f} s, {mib:6,.0f} MiB] {msg}", file=sys.stderr, flush=True)

    if profile:
        original = ti.replace_store

        def replace_store(path: Any, build: Any) -> None:
            def timed_build(con: Any) -> None:
                build(_TimedConnection(con, statements, current, rss))
                progress("carry history, checkpoint, swap")

            original(path, timed_build)

        ti.replace_store = replace_store  # type: ignore[assignment]

    cpu = _cpu_seconds()
    started = time.perf_counter()
    progress("find files, open store")
    report = ti.ingest(export_dir, store, progress=progress)
    ended = time.perf_counter()
    cpu_seconds = _cpu_seconds() - cpu
    load = _load()
    close(ended)
    rss.stop()
    if not profile and stages[-1]["stage"] == "deriving outcomes":
        stages[-1]["stage"] = "deriving outcomes, log, checkpoint, swap"
    peak = _rss_mib("VmHWM")
    seconds = ended - started
    print(f"  [{seconds:6.1f} s, peak {peak:6,.0f} MiB] done", file=sys.stderr, flush=True)

    # cross-check the store against the report
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        in_store = {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
            for t in TABLE_NAMES
        }
        quarantined = dict(
            con.execute("SELECT table_name, count(*) FROM quarantine GROUP BY 1").fetchall()
        )
        # the generated readings file is in time order, so the loaded rows (kept in
        # file order) must be too: a time that goes back marks rows out of file order
        out_of_order = con.execute(
            "SELECT count(*) FROM (SELECT recorded_at < lag(recorded_at) OVER (ORDER BY rowid) "
            "AS back FROM readings) WHERE back"
        ).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    out = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load": load,
        "readings_out_of_order": out_of_order,
        "peak_rss_mib": peak,
        "baseline_rss_mib": baseline,
        "stages": [
            {
                "stage": s["stage"],
                "seconds": s["seconds"],
                "cpu_seconds": s["cpu_seconds"],
                "peak_rss_mib": s["peak_rss_mib"],
            }
            for s in stages
        ],
        "statements": sorted(statements, key=lambda x: -x["seconds"]),
        "as_of": report.as_of.isoformat(),
        "tables": [asdict(t) for t in report.tables],
        "in_store": in_store,
        "quarantined": quarantined,
        "duckdb": duckdb.__version__,
    }
    print(json.dumps(out))


@dataclass
class Run:
    fmt: str
    rows_read: int
    seconds: float
    cpu_seconds: float
    process_seconds: float
    peak_rss_mib: float
    baseline_rss_mib: float
    stages: list[dict[str, Any]]
    statements: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    problems: list[str]
    load: float = 0.0
    all_seconds: list[float] = field(default_factory=list)
    all_cpu: list[float] = field(default_factory=list)
    all_load: list[float] = field(default_factory=list)

    @property
    def time_ok(self) -> bool:
        return self.seconds <= TARGET_SECONDS[self.fmt]

    @property
    def memory_ok(self) -> bool:
        return self.peak_rss_mib <= TARGET_RSS_MIB

    @property
    def passed(self) -> bool:
        return self.time_ok and self.memory_ok and not self.problems


def summarise(runs: list[Run]) -> Run:
    """One row per format: the median run's figures, the highest peak, every problem."""
    ranked = sorted(runs, key=lambda r: r.seconds)
    median = ranked[(len(ranked) - 1) // 2]
    problems = sorted({p for r in runs for p in r.problems})
    return replace(
        median,
        peak_rss_mib=max(r.peak_rss_mib for r in runs),
        problems=problems,
        all_seconds=[r.seconds for r in runs],
        all_cpu=[r.cpu_seconds for r in runs],
        all_load=[r.load for r in runs],
    )


def measure(fmt: str, export_dir: Path, store: Path, injected: Injected, profile: bool) -> Run:
    """Ingest ``export_dir`` in a fresh subprocess and check the outcome."""
    for p in (store, store.with_name(store.name + ".wal")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(export_dir), str(store)]
    if profile:
        cmd.append("--profile")
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    process_seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{fmt}: the ingest process failed (exit {proc.returncode})")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    problems: list[str] = []
    for tb in res["tables"]:
        name = tb["table"]
        if tb["read"] != tb["loaded"] + tb["set_aside"] + tb["duplicates"]:
            problems.append(f"{name}: read {tb['read']} != loaded + set aside + duplicates")
        if name in injected.set_aside and tb["set_aside"] < injected.set_aside[name]:
            problems.append(
                f"{name}: set aside {tb['set_aside']} < injected {injected.set_aside[name]}"
            )
        if name in injected.duplicates and tb["duplicates"] < injected.duplicates[name]:
            problems.append(
                f"{name}: duplicates {tb['duplicates']} < injected {injected.duplicates[name]}"
            )
        if name in res["in_store"] and res["in_store"][name] != tb["loaded"]:
            problems.append(
                f"{name}: store holds {res['in_store'][name]}, report says {tb['loaded']}"
            )
        if res["quarantined"].get(name, 0) != tb["set_aside"]:
            problems.append(f"{name}: quarantine holds {res['quarantined'].get(name, 0)} rows")
    if res["readings_out_of_order"]:
        problems.append(
            f"readings: loaded out of file order ({res['readings_out_of_order']:,} times "
            "the time goes back in a file sorted by time)"
        )
    return Run(
        fmt=fmt,
        rows_read=next(tb["read"] for tb in res["tables"] if tb["table"] == "readings"),
        seconds=res["seconds"],
        cpu_seconds=res["cpu_seconds"],
        process_seconds=process_seconds,
        peak_rss_mib=res["peak_rss_mib"],
        baseline_rss_mib=res["baseline_rss_mib"],
        stages=res["stages"],
        statements=res["statements"],
        tables=res["tables"],
        problems=problems,
        load=res["load"],
    )


# ---------------------------------------------------------------------------
# reporting


def machine() -> dict[str, str]:
    import duckdb

    cpu, mem_gib = cpu_and_memory()
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_gib:.1f} GiB",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "code": code_version(INGEST_CODE),
    }


def _table(runs: list[Run]) -> list[str]:
    head = (
        "| format | rows read | seconds | CPU s | load | process s | peak RSS MiB | target | pass "
        "| all runs: s / CPU s / load |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|---|",
    )
    lines = list(head)
    for r in runs:
        target = f"<= {TARGET_SECONDS[r.fmt]:g} s, <= {TARGET_RSS_MIB:g} MiB"
        verdict = (
            "pass"
            if r.passed
            else "FAIL ("
            + ", ".join(
                x
                for x, bad in (
                    ("time", not r.time_ok),
                    ("memory", not r.memory_ok),
                    ("checks", bool(r.problems)),
                )
                if bad
            )
            + ")"
        )
        lines.append(
            f"| {r.fmt} | {r.rows_read:,} | {r.seconds:.1f} | {r.cpu_seconds:.1f} | {r.load:.1f} "
            f"| {r.process_seconds:.1f} "
            f"| {r.peak_rss_mib:,.0f} | {target} | {verdict} "
            f"| {', '.join(f'{x:.1f} / {c:.1f} / {ld:.1f}' for x, c, ld in zip(r.all_seconds, r.all_cpu, r.all_load, strict=True))} |"
        )
    return lines


def _stage_table(runs: list[Run]) -> list[str]:
    names: list[str] = []
    for r in runs:
        names += [s["stage"] for s in r.stages if s["stage"] not in names]
    lines = [
        "| stage | "
        + " | ".join(f"{r.fmt} s | {r.fmt} CPU s | {r.fmt} peak MiB" for r in runs)
        + " |",
        "|---|" + "--:|--:|--:|" * len(runs),
    ]
    for n in names:
        cells = []
        for r in runs:
            s = next((s for s in r.stages if s["stage"] == n), None)
            cells.append(
                "| |"
                if s is None
                else f"{s['seconds']:.2f} | {s.get('cpu_seconds', 0):.2f} | {s['peak_rss_mib']:,.0f}"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def _statements_table(runs: list[Run], top: int = 12) -> list[str]:
    lines = [
        "| format | stage | seconds | CPU s | peak MiB | statement (start) |",
        "|---|---|--:|--:|--:|---|",
    ]
    for r in runs:
        for st in r.statements[:top]:
            sql = st["sql"].replace("|", "\\|")
            lines.append(
                f"| {r.fmt} | {st['stage']} | {st['seconds']:.2f} | {st.get('cpu_seconds', 0):.2f} "
                f"| {st['peak_rss_mib']:,.0f} | `{sql}` |"
            )
    return lines


def _counts_table(runs: list[Run]) -> list[str]:
    lines = [
        "| format | table | read | loaded | set aside | duplicates |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for r in runs:
        for tb in r.tables:
            if tb["read"]:
                lines.append(
                    f"| {r.fmt} | {tb['table']} | {tb['read']:,} | {tb['loaded']:,} "
                    f"| {tb['set_aside']:,} | {tb['duplicates']:,} |"
                )
    return lines


RESULTS_HEADER = """# Benchmarks

Each section below is one run of a script in this folder, appended by the
script itself (newest last). Figures depend on the machine and on whatever
else it was doing; the machine and its load average are recorded per run.

## `benchmarks/ingest.py`: ingesting a large export

```
python benchmarks/ingest.py [--rows N] [--repeat R] [--keep] [--profile]
```

* Generates a deterministic export (seed 0): ~100,000 customers, vehicles and
  contracts that follow the data contract, and N readings rows (default
  10,000,000), of which ~0.1 % are bad (exact duplicates, an odometer lower
  than an earlier reading, negative odometer, unknown vehicle; a few bad
  contracts), written once as CSV (UTF-8, header, comma) and once as Parquet
  (zstd, typed columns) under `benchmarks/.cache/`.
* Runs `timing.ingest.load.ingest(export_dir, store)` with full validation in a
  fresh Python process per run, R runs per format (default 3, formats
  alternating). *seconds* is the median wall time of the `ingest()` call
  (reading, validating, writing the store, checkpoint); *CPU s* is the user +
  system CPU time of that call in the same run (up to 2 × seconds on 2
  cores); *process s* adds interpreter start-up and imports. *Peak RSS* is
  the process's `VmHWM` (Python plus DuckDB's native memory), the highest
  over the runs. Stage times (of the median run) come from the `progress`
  callback: a stage runs until the next message. `--profile` also times
  each SQL statement (by wrapping the store connection inside the benchmark
  process) and lists the slowest.
* Checks, per table, read = loaded + set aside + duplicates, that at least
  the injected bad rows were set aside / counted as duplicates, that the
  store and its quarantine hold exactly the reported rows, and that the
  readings were loaded in file order.
* *load* is the machine's 1-minute load average at the end of a run: on a
  shared machine the wall time grows with it, the CPU time much less.
* Targets (2 cores, 24 GB): CSV <= 20 s, Parquet <= 10 s, peak RSS <= 2 GiB
  (2048 MiB).

Machine of the first run: {machine}.
"""


def record(runs: list[Run], gen: dict[str, Any], info: dict[str, str], command: str) -> str:
    """Append a dated section to RESULTS.md (creating it with its header); return it."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    m = (
        f"{info['cpus']} × {info['cpu']}, {info['memory']} RAM, {info['os']}, "
        f"Python {info['python']}, duckdb {info['duckdb']}, pyarrow {info['pyarrow']}"
    )
    gen_line = (
        f"reused from the cache (generated earlier in {gen['seconds']:.1f} s)"
        if gen.get("cached")
        else f"{gen['seconds']:.1f} s (build {gen['build_seconds']:.1f} s, "
        f"CSV {gen['write_seconds']['csv']:.1f} s, Parquet {gen['write_seconds']['parquet']:.1f} s)"
    )
    sizes = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in gen["readings_bytes"].items())
    lines = [
        "",
        f"### ingest, {gen['rows']:,} readings rows: {now}",
        "",
        f"`{command}`; code: {info['code']}; machine: {m}; "
        f"load average before the run: {info['load']}.",
        f"Export generation: {gen_line}; readings file sizes: {sizes}. "
        f"RSS of a worker after its imports: {runs[0].baseline_rss_mib:,.0f} MiB.",
        "",
        *_table(runs),
        "",
        "Stages of the median run (time until the next progress message; peak RSS "
        "within the stage):",
        "",
        *_stage_table(runs),
        "",
        *_counts_table(runs),
    ]
    if any(r.statements for r in runs):
        lines += ["", "Slowest SQL statements (`--profile`):", "", *_statements_table(runs)]
    problems = [f"* {r.fmt}: {p}" for r in runs for p in r.problems]
    if problems:
        lines += ["", "Check failures:", "", *problems]
    section = "\n".join(lines) + "\n"
    if not RESULTS.exists():
        RESULTS.write_text(RESULTS_HEADER.format(machine=m))
    with RESULTS.open("a") as f:
        f.write(section)
    return section


# ---------------------------------------------------------------------------
# main


def prepare(
    cache: Path, rows: int, vehicles: int, seed: int, bad_fraction: float
) -> dict[str, Any]:
    """Generate the export into ``cache`` unless a matching one is there already."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".gitignore").write_text("*\n")
    manifest = cache / "manifest.json"
    params = {
        "version": GENERATOR_VERSION,
        "rows": rows,
        "vehicles": vehicles,
        "seed": seed,
        "bad_fraction": bad_fraction,
    }
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("params") == params and all((cache / f).is_dir() for f in FORMATS):
            print(f"reusing the export in {cache} (generated in {old['seconds']:.1f} s)")
            return {**old, "cached": True}
    for fmt in FORMATS:
        shutil.rmtree(cache / fmt, ignore_errors=True)
    manifest.unlink(missing_ok=True)
    print(f"generating {rows:,} readings rows over {vehicles:,} vehicles (seed {seed}) ...")
    t = time.perf_counter()
    export = generate(rows, vehicles, seed, bad_fraction)
    build = time.perf_counter() - t
    write = write_export(export, cache)
    total = time.perf_counter() - t
    gen = {
        "params": params,
        "rows": rows,
        "seconds": total,
        "build_seconds": build,
        "write_seconds": write,
        "injected": asdict(export.injected),
        "readings_bytes": {
            "csv": (cache / "csv" / "readings.csv").stat().st_size,
            "parquet": (cache / "parquet" / "readings.parquet").stat().st_size,
        },
    }
    manifest.write_text(json.dumps(gen, indent=2))
    print(
        f"generated in {total:.1f} s (build {build:.1f} s, CSV {write['csv']:.1f} s, "
        f"Parquet {write['parquet']:.1f} s)"
    )
    return gen


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="readings rows (default 10M)")
    parser.add_argument(
        "--vehicles",
        type=int,
        default=None,
        help="vehicles = contracts (default min(100,000, rows / 100))",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bad-fraction",
        type=float,
        default=0.001,
        help="share of bad rows injected (default 0.001)",
    )
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="ingest runs per format; the median time is reported (default 3)",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated export (and reuse it next time)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time every SQL statement of the ingest (slight overhead)",
    )
    parser.add_argument(
        "--worker", nargs=2, type=Path, metavar=("EXPORT", "STORE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rows < 1:
        parser.error("--repeat and --rows must be at least 1")

    if args.worker:
        export_dir, store_path = args.worker
        worker(export_dir, store_path, profile=args.profile)
        return 0

    vehicles = args.vehicles or max(100, min(100_000, args.rows // 100))
    cache: Path = args.cache_dir
    info = machine()
    gen = prepare(cache, args.rows, vehicles, args.seed, args.bad_fraction)
    injected = Injected(**gen["injected"])
    measured: dict[str, list[Run]] = {fmt: [] for fmt in args.formats}
    try:
        for i in range(args.repeat):  # formats alternate, so background noise hits both
            for fmt in args.formats:
                print(f"ingesting the {fmt} export (run {i + 1} of {args.repeat}) ...")
                store = cache / f"store-{fmt}.duckdb"
                measured[fmt].append(measure(fmt, cache / fmt, store, injected, args.profile))
                for p in (store, store.with_name(store.name + ".wal")):
                    p.unlink(missing_ok=True)
    finally:
        if not args.keep:
            for fmt in FORMATS:
                shutil.rmtree(cache / fmt, ignore_errors=True)
            (cache / "manifest.json").unlink(missing_ok=True)

    runs = [summarise(measured[fmt]) for fmt in args.formats]
    print()
    print("\n".join(_table(runs)))
    print()
    print("\n".join(_stage_table(runs)))
    print()
    print("\n".join(_counts_table(runs)))
    if args.profile:
        print()
        print("\n".join(_statements_table(runs)))
    print(f"\ninjected: {json.dumps(gen['injected']['detail'])}")
    for r in runs:
        for problem in r.problems:
            print(f"CHECK FAILED ({r.fmt}): {problem}")
    if not args.no_record:
        given = sys.argv[1:] if argv is None else argv
        command = " ".join(["python benchmarks/ingest.py", shlex.join(given)]).strip()
        record(runs, gen, info, command)
        print(f"\nappended to {RESULTS}")
    return 0 if all(r.passed for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
