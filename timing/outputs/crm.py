"""``timing export crm``: the current plan as a CRM bulk-upsert file (``crm.md``).

The reference is a Salesforce Bulk API 2.0 upsert job's CSV: UTF-8 without a
byte-order mark, a header row of field names (:class:`~timing.config.CrmSettings`
maps the plan's columns to them), comma-separated, LF line endings, RFC 4180
quoting (a value holding a comma, a double quote or a line break is quoted,
inner quotes doubled), dates as ``YYYY-MM-DD``. One row per outreach of the
plan, contactable customers only (see :mod:`timing.outputs`), ordered by
contract.

Notes
-----
**External id.** The same planned outreach must carry the same external id in
every export, so that a re-import updates the CRM record instead of adding
one. An outreach is a contract's run of consecutive plans with a window: it
begins on the plan where the contract's status is ``new`` and lasts while
later plans keep or move the window, up to the plan that cancels it. Its
external id is the first 32 hex digits of
``sha256("timing-outreach|" + contract_id + "|" + cycle_start)``, where
``cycle_start`` is the as-of date (``YYYY-MM-DD``) of that ``new`` plan: the
latest plan on or before the exported one where the contract was ``new``
(if the store's plan history no longer holds it, the contract's earliest
plan in the store). So re-exporting a plan, re-planning with the window kept
or moved, and cancelling it all update one record; a window planned again
after a cancellation is a new outreach with a new record. The id does not
depend on the window's dates, which the planner may shift.

**Empty values.** On an upsert an empty value leaves the CRM field unchanged
and ``#N/A`` sets it to null. A value the plan does not have (an expected
signing date beyond the horizon, no reasons) is written ``#N/A``, so a stale
value is cleared. A cancelled outreach has no window: its window, channel,
priority and probability are left empty, so the CRM keeps the last planned
window beside the status ``cancelled``.

**What is left out.** Only the mapped columns are written: no birth year,
telematics or consent flags. A plan row whose customer may not be contacted
now (``do_not_contact``, no consent to the planned channel, or missing from
the customers table) is never written, cancelled rows included; the
manifest counts them. The CRM's own records for such customers are its own
to close.

**Parts and manifest.** A file larger than ``max_file_mb`` is split into
numbered parts (``crm-001.csv``, ``crm-002.csv``, ...), each under the limit
and each with the header row; a single part is written to ``out`` itself.
Beside it, ``<stem>.manifest.json`` lists each part's rows, bytes and
SHA-256, the plan's as-of date, the model version and the field mapping.
Every file is written to a temporary file and moved into place with
:func:`os.replace`; the manifest goes last, so a complete manifest always
describes complete parts. Parts listed by the previous manifest at the same
place and not written again are removed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import duckdb

from timing.config import CrmSettings
from timing.core.files import atomic_writer, temp_beside
from timing.outputs import contactable_sql, plan_as_of
from timing.store.db import connect, table_exists

NULL_VALUE = "#N/A"
EXTERNAL_ID_PREFIX = "timing-outreach|"
FETCH_ROWS = 50_000


@dataclass(frozen=True)
class CrmPart:
    """One file of the export."""

    path: Path
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class CrmExport:
    """What :func:`export_crm` wrote."""

    plan_as_of: date
    model_version: str | None
    parts: tuple[CrmPart, ...]
    manifest: Path
    rows: int
    excluded: int
    fields: dict[str, str]

    def summary(self) -> str:
        files = ", ".join(str(p.path) for p in self.parts)
        return (f"CRM file for the plan of {self.plan_as_of}: {self.rows:,} outreach rows in "
                f"{len(self.parts)} part{'s' if len(self.parts) != 1 else ''} ({files}); "
                f"{self.excluded:,} rows left out (customer may not be contacted); manifest {self.manifest}")


def _text(expr: str) -> str:
    """A text value with every line break as LF (Python's csv module leaves a lone CR unquoted)."""
    return f"replace(replace({expr}, chr(13) || chr(10), chr(10)), chr(13), chr(10))"


def _select_sql(settings: CrmSettings) -> str:
    cancelled = "s.status = 'cancelled'"
    na = f"'{NULL_VALUE}'"

    def window_value(expr: str) -> str:  # left unchanged on a cancelled outreach
        return f"CASE WHEN {cancelled} THEN '' ELSE coalesce({expr}, {na}) END"

    p = "CASE WHEN isnan(s.p_signing_in_window) THEN NULL ELSE s.p_signing_in_window END"
    probability = (f"printf('%.2f', 100 * ({p}))" if settings.probability_as_percent else f"printf('%.4f', {p})")
    n = settings.max_reasons_chars
    reasons = _text("s.reasons")
    if n:
        reasons = f"CASE WHEN length({reasons}) > {n} THEN rtrim(left({reasons}, {n - 1})) || '…' ELSE {reasons} END"
    columns = {
        "external_id": f"substr(sha256('{EXTERNAL_ID_PREFIX}' || s.contract_id || '|' || "
                       "strftime(cy.cycle_start, '%Y-%m-%d')), 1, 32)",
        "contract_id": f"coalesce({_text('s.contract_id')}, {na})",
        "customer_id": f"coalesce({_text('s.customer_id')}, {na})",
        "branch_id": f"coalesce({_text('s.branch_id')}, {na})",
        "window_start": window_value("strftime(CAST(s.window_start AS DATE), '%Y-%m-%d')"),
        "window_end": window_value("strftime(CAST(s.window_end AS DATE), '%Y-%m-%d')"),
        "channel": window_value(_text("s.channel")),
        "priority": window_value("CAST(CAST(s.priority AS BIGINT) AS VARCHAR)"),
        "p_signing_in_window": window_value(probability),
        "expected_signing_date": f"coalesce(strftime(CAST(s.expected_signing_date AS DATE), '%Y-%m-%d'), {na})",
        "reasons": f"coalesce(nullif({reasons}, ''), {na})",
        "status": f"coalesce({_text('s.status')}, {na})",
    }
    select = ",\n       ".join(f'{columns[c]} AS "{c}"' for c in settings.fields())
    return f"""
WITH s AS (SELECT * FROM schedules WHERE as_of = $plan),
cy AS (  -- the plan on which each contract's current outreach began
    SELECT h.contract_id,
           coalesce(max(h.as_of) FILTER (WHERE h.status = 'new'), min(h.as_of)) AS cycle_start
    FROM schedules h SEMI JOIN s USING (contract_id)
    WHERE h.as_of <= $plan
    GROUP BY h.contract_id)
SELECT {select}
FROM s
JOIN cy USING (contract_id)
JOIN customers cu ON cu.customer_id = s.customer_id
WHERE {contactable_sql("s", "cu")}
ORDER BY s.contract_id
"""


def _count_excluded(con: duckdb.DuckDBPyConnection, plan: date) -> int:
    row = con.execute(
        f"""SELECT count(*) FROM schedules s
            LEFT JOIN customers cu ON cu.customer_id = s.customer_id
            WHERE s.as_of = $plan AND (cu.customer_id IS NULL OR NOT {contactable_sql("s", "cu")})""",
        {"plan": plan},
    ).fetchone()
    return int(row[0]) if row else 0


def _model_version(con: duckdb.DuckDBPyConnection, plan: date) -> str | None:
    if not table_exists(con, "scores"):
        return None
    row = con.execute("SELECT string_agg(DISTINCT model_version, ',' ORDER BY model_version) FROM scores "
                      "WHERE as_of = ?", [plan]).fetchone()
    return row[0] if row and row[0] else None


class _Lines:
    """A file-like target for :class:`csv.writer` that keeps each row's text (one ``write`` per row)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


class _PartWriter:
    """Writes rows into temporary part files of at most ``limit`` bytes, each starting with ``header``."""

    def __init__(self, out: Path, header: bytes, limit: int) -> None:
        self.out, self.header, self.limit = out, header, limit
        self.done: list[tuple[Path, int, int, str]] = []  # tmp path, rows, bytes, sha256
        self._fh: IO[bytes] | None = None
        self._open()

    def _open(self) -> None:
        self._tmp = temp_beside(self.out.with_name(f"{self.out.stem}-part{len(self.done) + 1:03d}"))
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 (closed in _close or discard)
        self._hash, self._rows, self._bytes = hashlib.sha256(), 0, 0
        self._append([self.header])

    def _append(self, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        assert self._fh is not None
        self._fh.write(data)
        self._hash.update(data)
        self._bytes += len(data)

    def _close(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        self.done.append((self._tmp, self._rows, self._bytes, self._hash.hexdigest()))

    def add(self, lines: list[str]) -> None:
        pending: list[bytes] = []
        size = self._bytes
        for line in lines:
            data = line.encode("utf-8")
            if size + len(data) > self.limit:
                if len(self.header) + len(data) > self.limit:
                    raise ValueError(f"a CRM row of {len(data):,} bytes does not fit in a part of "
                                     f"{self.limit:,} bytes with its header: raise crm.max_file_mb")
                self._append(pending)
                self._rows += len(pending)
                pending = []
                self._close()
                self._open()
                size = self._bytes
            pending.append(data)
            size += len(data)
        self._append(pending)
        self._rows += len(pending)

    def finish(self) -> list[tuple[Path, int, int, str]]:
        self._close()
        return self.done

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self.done.append((self._tmp, 0, 0, ""))
        for tmp, *_ in self.done:
            tmp.unlink(missing_ok=True)


def part_paths(out: Path, n: int) -> list[Path]:
    """Where ``n`` parts go: ``out`` itself for one, else ``<stem>-001<suffix>``, ..."""
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i:03d}{out.suffix}") for i in range(1, n + 1)]


def manifest_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.manifest.json")


def _previous_parts(manifest: Path) -> list[Path]:
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
        return [manifest.parent / Path(p["file"]).name for p in old.get("parts", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def export_crm(
    store: Path,
    out: Path,
    settings: CrmSettings,
    as_of: date | None = None,
    model_version: str | None = None,
) -> CrmExport:
    """Write the plan as a CRM bulk-upsert CSV (split into parts when large) and its manifest.

    Parameters
    ----------
    store
        The DuckDB store holding a plan (``timing schedule``).
    out
        The CSV file; parts of a split export are named after it, the manifest
        is ``<stem>.manifest.json`` beside it.
    settings
        Field names, part size, line ending (``[crm]`` of ``timing.toml``).
    as_of
        Export the plan in force on this day (the latest plan on or before
        it); default the store's latest plan.
    model_version
        Recorded in the manifest; default the version that scored the plan's
        day (from the store's ``scores``).

    Returns
    -------
    CrmExport
        The parts written (path, rows, bytes, SHA-256), the manifest, the
        number of rows written and left out, and the field mapping.

    Raises
    ------
    StoreError
        No store, or no plan on or before ``as_of``.
    ValueError
        A single row does not fit in ``max_file_mb``.

    Example
    -------
    >>> from timing.config import CrmSettings
    >>> result = export_crm(Path("data/timing.duckdb"), Path("data/out/crm.csv"),
    ...                     CrmSettings())  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = settings.fields()
    con = connect(store)
    try:
        plan = plan_as_of(con, as_of)
        version = model_version if model_version is not None else _model_version(con, plan)
        excluded = _count_excluded(con, plan)
        lines = _Lines()
        writer = csv.writer(lines, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL,
                            lineterminator=settings.line_terminator, strict=True)
        writer.writerow(list(fields.values()))
        parts = _PartWriter(out, lines.lines.pop().encode("utf-8"), settings.max_part_bytes)
        try:
            cur = con.execute(_select_sql(settings), {"plan": plan})
            while rows := cur.fetchmany(FETCH_ROWS):
                writer.writerows(rows)
                parts.add(lines.lines)
                lines.lines = []
            written = parts.finish()
        except BaseException:
            parts.discard()
            raise
    finally:
        con.close()

    targets = part_paths(out, len(written))
    manifest = manifest_path(out)
    stale = [p for p in _previous_parts(manifest) if p not in targets]
    try:
        for (tmp, *_), target in zip(written, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp, *_ in written:
            tmp.unlink(missing_ok=True)
    result = CrmExport(
        plan_as_of=plan, model_version=version, manifest=manifest,
        parts=tuple(CrmPart(t, r, b, h) for (_, r, b, h), t in zip(written, targets, strict=True)),
        rows=sum(r for _, r, _, _ in written), excluded=excluded, fields=fields,
    )
    with atomic_writer(manifest, newline="\n") as fh:
        json.dump(_manifest(result, settings, as_of), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return result


def _manifest(result: CrmExport, settings: CrmSettings, as_of: date | None) -> dict[str, Any]:
    return {
        "kind": "timing CRM upsert file",
        "reference": "Salesforce Bulk API 2.0 upsert job, CSV data",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "as_of": (as_of or result.plan_as_of).isoformat(),
        "plan_as_of": result.plan_as_of.isoformat(),
        "model_version": result.model_version,
        "rows": result.rows,
        "rows_left_out_not_contactable": result.excluded,
        "external_id_field": settings.external_id_field,
        "external_id": (f"first 32 hex digits of sha256('{EXTERNAL_ID_PREFIX}' + contract_id + '|' + "
                        "as-of date of the plan where the outreach began)"),
        "fields": result.fields,
        "encoding": "UTF-8",
        "column_delimiter": "COMMA",
        "line_ending": settings.line_ending,
        "null_value": NULL_VALUE,
        "max_part_bytes": settings.max_part_bytes,
        "parts": [{"file": p.path.name, "rows": p.rows, "bytes": p.bytes, "sha256": p.sha256}
                  for p in result.parts],
    }
