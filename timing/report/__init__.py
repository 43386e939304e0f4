"""``timing report``: the monthly report, one self-contained HTML page with its numbers beside it.

``reports/YYYY-MM/`` holds ``index.html`` (charts as inline SVG, no network,
no external CSS or JavaScript), one CSV file per chart with the numbers
drawn, and ``report.pdf`` when a PDF engine (Chromium or WeasyPrint) is
installed. The same store gives the same HTML and CSV files byte for byte;
the PDF carries its engine's creation date and is not compared.

Example::

    from timing.report import build_report
    result = build_report(Path("data/timing.duckdb"), month="2026-10")
    print(result.summary())

Notes
-----
See :mod:`timing.report.context` for the as-of date of a month's report.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from timing.config import Settings
from timing.core.files import new_dir_beside, replace_dir
from timing.report import health, sections
from timing.report.browser import print_pdf
from timing.report.context import ReportContext, Section, open_context
from timing.report.html import page
from timing.store.db import StoreError, connect, export_as_of

DEFAULT_REPORTS = Path("reports")
SECTIONS: tuple[Callable[[ReportContext], Section], ...] = (
    sections.portfolio, sections.volume, sections.last_month, health.backtest, health.calibration,
    sections.workload, health.drivers, health.data_quality,
)


@dataclass(frozen=True)
class ReportResult:
    month: str
    as_of: date
    folder: Path
    html: Path
    data_files: tuple[Path, ...]
    pdf: Path | None
    pdf_note: str
    missing: tuple[str, ...]  # what sections lacked, in words

    def summary(self) -> str:
        lines = [f"report for {self.month} (as of {self.as_of}) written to {self.html}",
                 f"  chart data: {len(self.data_files)} CSV files in {self.folder}", f"  PDF: {self.pdf_note}"]
        lines += [f"  note: {m}" for m in self.missing]
        return "\n".join(lines)


def report_as_of(store_as_of: date, month: str | None) -> tuple[pd.Period, date]:
    """The report's month and as-of date: the store's, or the last day of an earlier month."""
    if month is None:
        return pd.Period(store_as_of, freq="M"), store_as_of
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"month '{month}' is not a month like 2026-10")
    m = pd.Period(month, freq="M")
    store_month = pd.Period(store_as_of, freq="M")
    if m > store_month:
        raise ValueError(f"the store's export is of {store_as_of}: it knows nothing of {month}")
    return m, store_as_of if m == store_month else m.end_time.date()


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False, lineterminator="\n", float_format="%.6g")


def build_report(
    store: Path,
    month: str | None = None,
    out_root: Path = DEFAULT_REPORTS,
    settings: Settings | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of ``month`` (``YYYY-MM``; default: the month of the store's export).

    Parameters
    ----------
    store
        The DuckDB store (ingested; scores, plans, models and backtests are used when present).
    settings
        The fit settings give the model launch months; the schedule settings the capacity a plan had.
    pdf
        Also write ``report.pdf`` if a PDF engine is installed (skipped quietly otherwise).

    Returns
    -------
    ReportResult
        Where everything went, whether a PDF was made, and which sections lacked their inputs.
    """
    say = progress or (lambda _m: None)
    store = Path(store)
    con = connect(store)
    try:
        store_as_of = export_as_of(con)
    finally:
        con.close()
    period, as_of = report_as_of(store_as_of, month)
    parts = []
    with open_context(store, period, as_of, settings or Settings()) as ctx:
        for make in SECTIONS:
            say(f"section: {make.__name__.replace('_', ' ')}")
            parts.append(make(ctx))
    label = period.strftime("%B %Y")
    html = page(f"Repurchase timing report: {label}", f"As of {as_of:%d %B %Y}, from the store's export of "
                f"{store_as_of:%d %B %Y}.", parts, as_of,
                "Made by the timing toolkit from the store alone; the numbers behind every chart are in the CSV "
                "files beside this page.")

    folder = Path(out_root) / period.strftime("%Y-%m")
    tmp = new_dir_beside(folder)
    try:
        (tmp / "index.html").write_text(html, encoding="utf-8", newline="\n")
        names = []
        for s in parts:
            for stem, df in s.data.items():
                _write_csv(df, tmp / f"{stem}.csv")
                names.append(f"{stem}.csv")
        engine = None
        if pdf:
            say("printing the PDF")
            engine = print_pdf(tmp / "index.html", tmp / "report.pdf")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    note = (f"written with {engine}" if engine else
            "not asked for" if not pdf else "skipped: no PDF engine installed (chromium or weasyprint)")
    return ReportResult(period.strftime("%Y-%m"), as_of, folder, folder / "index.html",
                        tuple(folder / n for n in sorted(names)), folder / "report.pdf" if engine else None, note,
                        tuple(f"{s.title}: {s.missing}" for s in parts if s.missing))


__all__ = ["DEFAULT_REPORTS", "ReportResult", "StoreError", "build_report", "report_as_of"]
