"""``generate_demo``: a synthetic export and its hidden truth, chunk by chunk."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from timing.core import contract as schema
from timing.demo import catalog as cat
from timing.demo.dirty import TEXT_DATE_COLUMNS, Counts, empty_counts, inject
from timing.demo.export import build_tables, build_truth, contract_numbers, exported_contracts
from timing.demo.outreach import make_contacts
from timing.demo.population import Customers, make_customers
from timing.demo.portfolio import LOST, Portfolio, simulate
from timing.demo.telematics import make_readings
from timing.demo.workshop import make_visits, recorded_faults
from timing.demo.writer import TableSink, arrow_schema, check_target, swap_in, temp_sibling

VERSION = "timing.demo 1"
#: Customers simulated together; fixed, so output never depends on the machine.
CHUNK_CUSTOMERS = 10_000
#: The simulated future: at least 24 months after the as-of date.
HORIZON_DAYS = 760
FORMATS = ("csv", "parquet")
EXPORT_FILES = {f"{t.name}.{f}" for t in schema.TABLES for f in FORMATS}
TRUTH_FILES = {"contracts.parquet", "dirty.json", "meta.json"}
TRUTH_SCHEMA = pa.schema([
    ("contract_id", pa.string()), ("customer_id", pa.string()), ("intended_signing_date", pa.date32()),
    ("outcome", pa.string()), ("outcome_date", pa.date32()), ("successor_contract_id", pa.string()),
    ("driver", pa.string()), ("in_export", pa.bool_()),
])  # fmt: skip


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote."""

    out: Path  # the export folder
    truth: Path  # the sibling truth folder, ``out.truth``
    rows: dict[str, int]  # rows written per table, injected faults included
    dirty: Counts  # {kind: {table: rows}} of injected faults, zeros when clean
    customers: int
    as_of: date
    horizon_end: date  # the end of the simulated future
    seed: int
    fmt: str
    command: str = field(default="")  # the equivalent ``timing demo-data`` call


def _check_args(
    customers: object, as_of: object, seed: object, fmt: object, every: object, dirty: object
) -> None:
    if isinstance(customers, bool) or not isinstance(customers, int | np.integer) or customers < 1:
        raise ValueError(f"customers must be a whole number of at least 1, got {customers!r}")
    if not isinstance(as_of, date) or not date(2016, 1, 1) <= as_of <= date(2100, 12, 31):
        raise ValueError(f"as_of must be a date between 2016-01-01 and 2100-12-31, got {as_of!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(every, bool) or not isinstance(every, int | np.integer) or not 1 <= every <= 365:
        raise ValueError(f"readings_every_days must be a whole number from 1 to 365, got {every!r}")
    if not isinstance(dirty, bool | np.bool_):
        raise ValueError(f"dirty must be True or False, got {dirty!r}")


def _written_by_us(truth: Path) -> bool:
    try:
        meta = json.loads((truth / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("generator", "")).startswith("timing.demo")


def generate_demo(
    out: str | Path,
    customers: int = 2000,
    as_of: date = date(2026, 10, 31),
    seed: int = 1,
    dirty: bool = False,
    fmt: Literal["csv", "parquet"] = "csv",
    readings_every_days: int = 7,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Write a synthetic export to ``out`` and its ground truth to ``out.truth``.

    Parameters
    ----------
    out
        Folder for the export: one file per table. It may not exist yet, be
        empty, or hold an earlier output of this generator, recognised by
        ``out.truth/meta.json`` (then both folders are replaced).
    customers
        Number of customers; about one in five is a fleet with 2-20 cars.
    as_of
        The export's date: nothing in ``out`` lies after it.
    seed
        Same seed and arguments give byte-identical files.
    dirty
        Inject known faults (see :mod:`timing.demo.dirty`), counted in
        ``out.truth/dirty.json``.
    fmt
        ``"csv"`` or ``"parquet"``.
    readings_every_days
        Telematics interval (some cars report daily when it is 7).
    progress
        Called with a short message after each step.

    Returns
    -------
    DemoSummary

    Notes
    -----
    The future is simulated for 760 days after ``as_of``; the truth's
    ``outcome`` is as of that horizon. Each folder is written under a hidden
    sibling and renamed into place when complete.

    Examples
    --------
    >>> generate_demo("demo-out", customers=500, fmt="parquet")  # doctest: +SKIP
    """
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    _check_args(customers, as_of, seed, fmt, readings_every_days, dirty)
    customers, seed, every, dirty = int(customers), int(seed), int(readings_every_days), bool(dirty)
    say = progress or (lambda message: None)
    out = Path(os.path.abspath(out))
    truth = Path(str(out) + ".truth")
    ours = _written_by_us(truth)
    check_target(out, EXPORT_FILES, ours)
    check_target(truth, TRUTH_FILES, ours)
    out.parent.mkdir(parents=True, exist_ok=True)

    as_of_day = cat.day_number(as_of)
    horizon_end = as_of + timedelta(days=HORIZON_DAYS)
    text_columns = TEXT_DATE_COLUMNS if dirty else {}
    tmp_out, tmp_truth = temp_sibling(out, "tmp"), temp_sibling(truth, "tmp")
    sinks: dict[str, TableSink] = {}
    try:
        for t in schema.TABLES:
            cols = (text_columns[t.name],) if t.name in text_columns else ()
            sinks[t.name] = TableSink(tmp_out / f"{t.name}.{fmt}", arrow_schema(t.name, cols), fmt)
        sinks["truth"] = TableSink(tmp_truth / "contracts.parquet", TRUTH_SCHEMA, "parquet")
        counts = empty_counts()
        for k, seq, first, n in chunks(seed, customers):
            tables, truth_table, chunk_counts = _chunk(
                k, seq, first + 1, n, as_of_day, every, dirty
            )
            for name, table in tables.items():
                sinks[name].write(table)
            sinks["truth"].write(truth_table)
            for kind, per_table in chunk_counts.items():
                for name, c in per_table.items():
                    counts[kind][name] += c
            say(f"customers {first + 1}-{first + n} of {customers} written")
        for sink in sinks.values():
            sink.close()
        rows = {t.name: sinks[t.name].rows for t in schema.TABLES}
        command = (
            f"timing demo-data {out.name} --customers {customers} --as-of {as_of.isoformat()} --seed {seed}"
            + (" --dirty" if dirty else "")
            + f" --format {fmt}"
        )
        meta = {
            "generator": VERSION,
            "seed": seed,
            "as_of": as_of.isoformat(),
            "customers": customers,
            "format": fmt,
            "dirty": dirty,
            "readings_every_days": every,
            "horizon_end": horizon_end.isoformat(),
            "truth_contracts": "contracts.parquet",
            "rows": rows,
            "command": command,
        }
        (tmp_truth / "dirty.json").write_text(json.dumps(counts, indent=2) + "\n")
        (tmp_truth / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        swap_in(tmp_truth, truth)
        swap_in(tmp_out, out)
    except BaseException:
        for sink in sinks.values():
            with contextlib.suppress(Exception):  # already failing; the temp folders go anyway
                sink.close()
        shutil.rmtree(tmp_out, ignore_errors=True)
        shutil.rmtree(tmp_truth, ignore_errors=True)
        raise
    say(f"export in {out}, truth in {truth}")
    return DemoSummary(out, truth, rows, counts, customers, as_of, horizon_end, seed, fmt, command)


def chunks(seed: int, customers: int) -> Iterator[tuple[int, np.random.SeedSequence, int, int]]:
    """The generator's chunks: (index, seed sequence, customers before it, customers in it)."""
    n_chunks = -(-customers // CHUNK_CUSTOMERS)
    for k, seq in enumerate(np.random.SeedSequence(seed).spawn(n_chunks)):
        first = k * CHUNK_CUSTOMERS
        yield k, seq, first, min(CHUNK_CUSTOMERS, customers - first)


def simulate_chunk(
    seq: np.random.SeedSequence, first_number: int, n: int, as_of_day: int
) -> tuple[list[np.random.Generator], Customers, Portfolio]:
    """One chunk's random streams, customers and simulated contracts (the truth behind the export)."""
    # one stream per step, so e.g. the reading interval or dirt never changes the contracts
    rng = [np.random.default_rng(s) for s in seq.spawn(7)]
    cust = make_customers(rng[0], first_number, n, as_of_day)
    return rng, cust, simulate(rng[1], cust, as_of_day + HORIZON_DAYS)


def _chunk(
    k: int,
    seq: np.random.SeedSequence,
    first_number: int,
    n: int,
    as_of_day: int,
    every: int,
    dirty: bool,
) -> tuple[dict[str, pa.Table], pa.Table, Counts]:
    """Simulate and tabulate customers ``first_number .. first_number + n - 1``."""
    rng, cust, p = simulate_chunk(seq, first_number, n, as_of_day)
    number = contract_numbers(p, cust, k)
    readings = make_readings(rng[2], p, as_of_day, every)
    visits = make_visits(rng[3], p, as_of_day)
    contacts = make_contacts(rng[4], p, cust, as_of_day)
    tables = build_tables(
        rng[5],
        cust,
        p,
        number,
        readings,
        recorded_faults(p, as_of_day),
        visits,
        contacts,
        as_of_day,
    )
    truth = build_truth(cust, p, number, as_of_day)
    counts = empty_counts()
    if dirty:
        shown = exported_contracts(p, number, as_of_day)
        referenced = np.isin(shown, contacts.contract)
        safe = (
            (p.outcome[shown] == LOST)
            & (p.predecessor[shown] < 0)
            & (p.actual_end[shown] <= as_of_day)
            & ~referenced
        )
        per_kind = max(1, (n + 100) // 200)
        tables, counts = inject(
            rng[6], tables, per_kind, readings.vehicle, np.flatnonzero(safe), k * 1_000_000 + 1
        )
    return tables, truth, counts
