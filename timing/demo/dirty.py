"""Known data faults for ``dirty=True``: each injected row breaks exactly one rule.

Per chunk, ``n`` rows of every kind. Faults never cascade: corrupted contracts
are lost first contracts nothing refers to (no successor, no predecessor, no
contact), odometer faults sit on cars with no other fault, duplicates copy
untouched rows, orphans are extra rows. A negative odometer is always a car's
first reading, so it is not also a decrease; a decreasing reading is lower than
the one before it and nothing after it is affected.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from timing.demo.writer import iso_utc

#: kind -> tables it is injected into
KINDS: dict[str, tuple[str, ...]] = {
    "negative_odometer": ("readings",),
    "decreasing_odometer": ("readings",),
    "unparseable_date": ("contracts", "readings", "service_visits"),
    "orphan": ("readings", "contracts"),
    "duplicate": ("readings", "contracts", "customers"),
    "end_before_start": ("contracts",),
}
#: Columns that hold text in a dirty export, because some of their values are not dates.
TEXT_DATE_COLUMNS = {
    "contracts": "signed_date",
    "readings": "recorded_at",
    "service_visits": "visit_date",
}
BAD_DATES = ("2026-13-45", "31/02/2026", "2019-02-30", "not a date")

Counts = dict[str, dict[str, int]]


def empty_counts() -> Counts:
    return {kind: dict.fromkeys(tables, 0) for kind, tables in KINDS.items()}


def as_text(table: pa.Table, column: str) -> pa.Table:
    """The column as ISO text (``2026-05-31`` or ``2026-05-31T10:00:00Z``)."""
    col = table[column]
    text = iso_utc(col) if pa.types.is_timestamp(col.type) else pc.cast(col, pa.string())
    return table.set_column(table.schema.get_field_index(column), column, text)


def _set(table: pa.Table, column: str, rows: np.ndarray, values: list | np.ndarray) -> pa.Table:
    """Replace values of ``column`` at ``rows``."""
    col = table[column].combine_chunks()
    mask = np.zeros(len(col), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows)  # replace_with_mask consumes replacements in row order
    new = pc.replace_with_mask(
        col, pa.array(mask), pa.array(np.asarray(values, dtype=object)[order], col.type)
    )
    return table.set_column(table.schema.get_field_index(column), column, new)


def _with_duplicates(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """Each of ``rows`` repeated right after itself."""
    index = np.concatenate([np.arange(table.num_rows), rows])
    return table.take(pa.array(index[np.argsort(index, kind="stable")]))


def _pick(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    return (
        np.sort(rng.choice(pool, min(k, len(pool)), replace=False))
        if k and len(pool)
        else np.zeros(0, np.int64)
    )


def inject(
    rng: np.random.Generator,
    tables: dict[str, pa.Table],
    n: int,
    reading_vehicle: np.ndarray,
    safe_contracts: np.ndarray,
    orphan_number: int,
) -> tuple[dict[str, pa.Table], Counts]:
    """Inject ``n`` faults of each kind; return the new tables and what was injected."""
    counts = empty_counts()
    out = {
        name: as_text(t, TEXT_DATE_COLUMNS[name]) if name in TEXT_DATE_COLUMNS else t
        for name, t in tables.items()
    }

    # readings: one kind per car, on cars with at least five readings
    r = out["readings"]
    odo = r["odometer_km"].to_numpy().copy()
    first = (
        np.flatnonzero(np.r_[True, reading_vehicle[1:] != reading_vehicle[:-1]])
        if len(odo)
        else np.zeros(0, np.int64)
    )
    size = np.diff(np.r_[first, len(odo)])
    mid = first + size // 2
    usable = np.flatnonzero((size >= 5) & (odo[np.maximum(mid - 1, 0)] > 100))
    cars = rng.permutation(usable)
    n_cars = min(n, len(cars) // 5)  # a tiny chunk: fewer faults rather than two on one car
    neg, dec, bad, dup = (cars[i * n_cars : (i + 1) * n_cars] for i in range(4))
    odo[first[neg]] = -(odo[first[neg]] + 1.0)
    odo[mid[dec]] = np.round(odo[mid[dec] - 1] * rng.uniform(0.3, 0.8, len(dec)))
    r = r.set_column(r.schema.get_field_index("odometer_km"), "odometer_km", pa.array(odo))
    r = _set(
        r,
        "recorded_at",
        mid[bad],
        [
            BAD_DATES[i % 4] + "T10:00:00Z" if i % 2 == 0 else BAD_DATES[i % 4]
            for i in range(len(bad))
        ],
    )
    # clean timestamps from untouched cars, for the orphans: cars nobody knows
    spare = cars[4 * n_cars :]
    when = r["recorded_at"].take(pa.array(first[rng.choice(spare, n)])) if len(spare) else None
    r = _with_duplicates(r, np.sort(mid[dup]))
    if when is not None:
        orphans = pa.table({
            "vehicle_id": pa.array([f"VX{orphan_number + i:09d}" for i in range(n)]),
            "recorded_at": when,
            "odometer_km": pa.array(np.round(rng.uniform(1_000, 80_000, n))),
            "battery_soh_pct": pa.nulls(n, pa.float64()),
        })  # fmt: skip
        r = pa.concat_tables([r, orphans])
        counts["orphan"]["readings"] = n
    out["readings"] = r
    counts["negative_odometer"]["readings"] = len(neg)
    counts["decreasing_odometer"]["readings"] = len(dec)
    counts["unparseable_date"]["readings"] = len(bad)
    counts["duplicate"]["readings"] = len(dup)

    # contracts: unparseable and end-before-start only on safe rows
    c = out["contracts"]
    picked = _pick(rng, safe_contracts, 2 * n)
    unparseable, backwards = picked[::2], picked[1::2]
    c = _set(c, "signed_date", unparseable, [BAD_DATES[i % 4] for i in range(len(unparseable))])
    start = c["start_date"].to_numpy().astype("datetime64[D]")
    ends = start[backwards] - rng.integers(0, 30, len(backwards)).astype("timedelta64[D]")
    c = _set(c, "scheduled_end_date", backwards, ends.tolist())
    others = np.setdiff1d(np.arange(c.num_rows), picked)
    duplicated = _pick(rng, others, n)
    orphans = c.take(pa.array(_pick(rng, others, n)))
    orphans = orphans.set_column(
        0, "contract_id", pa.array([f"KX{orphan_number + i:09d}" for i in range(len(orphans))])
    )
    orphans = orphans.set_column(
        1, "customer_id", pa.array([f"CX{orphan_number + i:07d}" for i in range(len(orphans))])
    )
    orphans = orphans.set_column(12, "predecessor_contract_id", pa.nulls(len(orphans), pa.string()))
    out["contracts"] = pa.concat_tables([_with_duplicates(c, duplicated), orphans])
    counts["unparseable_date"]["contracts"] = len(unparseable)
    counts["end_before_start"]["contracts"] = len(backwards)
    counts["duplicate"]["contracts"] = len(duplicated)
    counts["orphan"]["contracts"] = len(orphans)

    v = out["service_visits"]
    rows = _pick(rng, np.arange(v.num_rows), n)
    out["service_visits"] = _set(
        v, "visit_date", rows, [BAD_DATES[i % 4] for i in range(len(rows))]
    )
    counts["unparseable_date"]["service_visits"] = len(rows)

    rows = _pick(rng, np.arange(out["customers"].num_rows), n)
    out["customers"] = _with_duplicates(out["customers"], rows)
    counts["duplicate"]["customers"] = len(rows)
    return out, counts
