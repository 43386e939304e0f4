"""``timing backtest``: rolling-origin evaluation, origins in parallel, one long results table.

The table (``RESULT_COLUMNS``), one row per measurement:

==================  ==========================================================
``cutoff``          the origin T (date)
``metric``          e.g. ``capture``, ``precision``, ``lift``, ``uno_c_6m``,
                    ``ibs``, ``calibration_observed``, ``volume_forecast``
``policy``          whose number: ``model``, ``naive``, ``truth``, ``km``;
                    empty for facts of the origin (``repurchases``,
                    ``capacity_per_week``, ``volume_actual``, ...)
``month``           month k of the horizon for per-month rows, else empty
``bin``             calibration-curve bin for ``curve_6m_*`` rows, else empty
``value``           the number
``partial``         the horizon passes what is known (no truth folder)
``observed_through`` the last day whose outcomes the evaluation knows
``model_family``    the family the fit on T chose
``capacity_basis``  where C came from (given, or 1.2 x real weekly repurchases)
==================  ==========================================================
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from timing.backtest.hindsight import Hindsight, read_hindsight
from timing.backtest.metrics import COLUMNS
from timing.backtest.origin import OriginRun, run_origin
from timing.config import FitSettings, ScheduleSettings
from timing.core import runtime
from timing.core.files import write_csv_atomic, write_parquet_atomic
from timing.store.db import StoreError, connect, export_as_of, writing
from timing.store.tables import BACKTEST_RESULTS, append_rows

DEFAULT_OUT = Path("data/out/backtest")
RESULT_COLUMNS = ["cutoff", *COLUMNS, "partial", "observed_through", "model_family", "capacity_basis"]
STORE_TABLE = BACKTEST_RESULTS.name


@dataclass(frozen=True)
class BacktestResult:
    """The long results table (one row per cutoff x metric x policy x month/bin) and the runs behind it."""

    table: pd.DataFrame
    runs: tuple[OriginRun, ...]
    seconds: float
    files: tuple[Path, ...] = ()
    recorded: bool = False  # rows appended to the store's history table

    def value(self, metric: str, policy: str | None = None) -> pd.Series:
        """One headline figure per cutoff (NaN where it was not measured)."""
        return pd.Series({r.model.cutoff: r.value(metric, policy) for r in self.runs}, name=metric, dtype=float)

    def headline(self) -> pd.DataFrame:
        """Per cutoff: the decision and forecast headline figures."""
        cols = {
            "C": ("capacity_per_week", None), "repurchases": ("repurchases", None),
            "model": ("capture", "model"), "naive": ("capture", "naive"), "truth": ("capture", "truth"),
            "lift": ("lift", "model"), "of_truth": ("share_of_truth", "model"),
            "precision": ("precision", "model"), "uno_c_6m": ("uno_c_6m", "model"),
            "harrell_c_6m": ("harrell_c_6m", "model"), "ibs": ("ibs", "model"), "ibs_km": ("ibs", "km"),
            "ibs_months": ("forecast_months", None),
            "vol_mape": ("volume_mape", "model"), "vol_cov80": ("volume_coverage_80", "model"),
        }
        out = pd.DataFrame({name: self.value(m, p) for name, (m, p) in cols.items()}).dropna(axis=1, how="all")
        out.insert(0, "partial", pd.Series({r.model.cutoff: r.partial for r in self.runs}))
        out.index.name = "cutoff"
        return out

    def summary(self) -> str:
        h = self.headline()
        lines = [f"backtest over {len(self.runs)} origins in {self.seconds:.0f} s "
                 "(capture at fixed capacity C per metrics.md; lift = model / naive)"]
        lines.append(h.to_string(float_format=lambda v: f"{v:.3f}"))
        for r in sorted(self.runs, key=lambda r: r.model.cutoff):
            note = f"  {r.model.cutoff}: {r.model.family}, C = {r.capacity_per_week} ({r.capacity_basis})"
            if r.partial:
                note += (f"; PARTIAL: outcomes known for {r.observed_days} of {r.horizon_days} days "
                         "(a truth folder would show more)")
            lines.append(note)
        if len(h) > 1:
            mean = h.drop(columns="partial").mean()
            lines.append("mean over origins: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()
                                                            if k not in ("C", "repurchases", "ibs_months")))
        where = [str(f) for f in self.files] + ([f"the store's {STORE_TABLE} table"] if self.recorded else [])
        if where:
            lines.append("results written to " + ", ".join(where))
        return "\n".join(lines)


def default_origins(store: Path, count: int = 4, every_months: int = 3) -> list[date]:
    """``count`` origins ``every_months`` apart, the latest ``every_months`` before the store's as-of."""
    con = connect(store)
    try:
        as_of = export_as_of(con)
    finally:
        con.close()
    end = pd.Timestamp(as_of)
    return sorted((end - pd.DateOffset(months=every_months * k)).date() for k in range(1, count + 1))


def parse_origins(text: str) -> list[date]:
    """``"2026-01-31,2026-04-30"`` -> dates; a clear error naming the bad one."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"origin '{part}' is not an ISO date (YYYY-MM-DD)") from None
    if not out:
        raise ValueError("no backtest origin given")
    return out


def results_table(runs: list[OriginRun]) -> pd.DataFrame:
    """Every origin's rows, with the cutoff and its context as columns."""
    frames = [r.rows.assign(cutoff=r.model.cutoff, partial=r.partial,
                            observed_through=r.model.cutoff + timedelta(days=r.observed_days),
                            model_family=r.model.family, capacity_basis=r.capacity_basis)
              for r in sorted(runs, key=lambda r: r.model.cutoff)]
    return pd.concat(frames, ignore_index=True)[RESULT_COLUMNS]


def save_files(table: pd.DataFrame, out_dir: Path) -> tuple[Path, ...]:
    """``backtest_results.parquet`` and ``.csv`` under ``out_dir``, each replaced atomically."""
    parquet, csv = Path(out_dir) / "backtest_results.parquet", Path(out_dir) / "backtest_results.csv"
    write_parquet_atomic(table, parquet)
    write_csv_atomic(table, csv)
    return parquet, csv


def record_results(store: Path, table: pd.DataFrame) -> None:
    """Append the rows to the store's history table, stamped with the time of the run."""
    rows = table.assign(run_at=datetime.now(UTC).replace(tzinfo=None))
    with writing(store) as con:
        append_rows(con, BACKTEST_RESULTS, rows)


def run_backtest(
    store: Path,
    origins: list[date],
    fit: FitSettings,
    schedule: ScheduleSettings,
    capacity_per_week: int | None = None,
    truth: Path | None = None,
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
    out_dir: Path | None = DEFAULT_OUT,
    record: bool = True,
) -> BacktestResult:
    """Rolling-origin backtest: on each origin T, fit, score and plan as on T, then judge against what happened.

    Parameters
    ----------
    store
        The store; each origin reads it read-only through the as-of views at T.
    origins
        Backtest origins (cutoffs), each on or before the store's as-of date.
    fit, schedule
        Settings for fitting (lookback, holdout, families) and planning
        (horizon H, contact rules, solver).
    capacity_per_week
        Window starts allowed per week for every policy; default: 1.2 x the
        average weekly number of real repurchases in (T, T+H] (metrics.md).
    truth
        A synthetic export's truth folder: outcomes after the store's as-of
        and the intended signing dates of the truth policy. Never read by a model.
    workers
        Origins run in this many processes (1: in this process).
    out_dir
        Where ``backtest_results.parquet`` and ``.csv`` go (None: no files).
    record
        Also append the rows to the store's history table ``backtest_results``.

    Returns
    -------
    BacktestResult
        ``table`` has the columns ``cutoff, metric, policy, month, bin, value,
        partial, observed_through, model_family, capacity_basis``.

    Notes
    -----
    Everything a model sees on T comes from the as-of views at T, so nothing
    after T reaches features, model selection or scaling. What happened after
    T comes from the full store (up to its as-of) and then the truth folder.
    An origin whose horizon passes what is known is marked ``partial`` and
    judged on the days observed.

    With ``workers > 1`` the origins run in spawned processes, so a script
    calling this needs the usual ``if __name__ == "__main__":`` guard.

    Examples
    --------
    >>> result = run_backtest(Path("data/timing.duckdb"), [date(2026, 1, 31), date(2026, 4, 30)],
    ...                       FitSettings(), ScheduleSettings(), truth=Path("data/demo.truth"))  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP

    Example (command line)::

        timing backtest --origins 2025-10-31,2026-01-31,2026-04-30,2026-07-31 --truth /tmp/bt.truth
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    hindsight = read_hindsight(Path(store), truth)
    cutoffs = check_origins(origins, hindsight)
    n, threads = runtime.split(min(workers, len(cutoffs)))
    say(f"backtest on {len(cutoffs)} origins ({', '.join(map(str, cutoffs))}) with {n} worker(s)")
    runs = list(each_origin(Path(store), cutoffs, fit, schedule, capacity_per_week, hindsight, n, threads, say))
    table = results_table(runs)
    files = save_files(table, out_dir) if out_dir is not None else ()
    if record:
        record_results(Path(store), table)
    return BacktestResult(table, tuple(sorted(runs, key=lambda r: r.model.cutoff)), time.perf_counter() - t0,
                          files, record)


def check_origins(origins: list[date], hindsight: Hindsight) -> list[date]:
    cutoffs = sorted(set(origins))
    if not cutoffs:
        raise ValueError("no backtest origin given")
    late = [d for d in cutoffs if d > hindsight.store_as_of]
    if late:
        raise StoreError(f"origin {late[0]} is after the store's export date {hindsight.store_as_of}: "
                         "the store cannot know it")
    return cutoffs


def each_origin(store: Path, cutoffs: list[date], fit: FitSettings, schedule: ScheduleSettings,
                capacity: int | None, hindsight: Hindsight, workers: int, threads: int,
                say: Callable[[str], None]) -> Iterator[OriginRun]:
    """Each origin's run, in the order they finish."""
    def done(r: OriginRun) -> OriginRun:
        figures = ", ".join(f"{p} {r.value('capture', p):.3f}" for p in r.starts)
        say(f"origin {r.model.cutoff}: {r.model.family} fitted in {r.model.seconds:.0f} s; capture {figures}")
        return r

    if workers == 1:
        for T in cutoffs:
            yield done(run_origin(store, T, fit, schedule, capacity, hindsight))
        return
    # spawn: DuckDB and BLAS threads do not survive a fork safely
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=runtime.worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(run_origin, store, T, fit, schedule, capacity, hindsight) for T in cutoffs]
        for f in as_completed(futures):
            yield done(f.result())
