"""The ``timing`` command: a thin click layer over the :mod:`timing` package.

Each command parses its options, calls one library function, and turns the
package's foreseeable errors into a one-line message and exit code 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from timing.config import Settings, load_settings
from timing.core import errors, runtime
from timing.core import progress as prog
from timing.core.conventions import OUTREACH_CHANNELS
from timing.store.db import default_store_path

F = TypeVar("F", bound=Callable[..., Any])

DEMO_EXPORT = Path("data") / "demo"


def _demo_export() -> Path:
    """The bundled demo export: under the working directory, else beside this file."""
    here = DEMO_EXPORT
    return here if here.is_dir() else Path(__file__).resolve().parent / DEMO_EXPORT


def boundary(fn: F) -> F:
    """Turn the package's foreseeable errors into a clean message and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.USER_ERRORS as e:
            raise click.ClickException(str(e)) from e

    return wrapper  # type: ignore[return-value]


class Ctx:
    def __init__(self, store: Path, settings: Settings) -> None:
        self.store = store
        self.settings = settings


pass_ctx = click.make_pass_decorator(Ctx)


def _iso_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO date (YYYY-MM-DD)") from None


as_of_option = click.option(
    "--as-of",
    callback=_iso_date,
    metavar="DATE",
    help="As-of date (ISO). Default: the as-of date of the last ingested export.",
)


def echo(msg: str) -> None:
    click.echo(msg)




@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The DuckDB store (default data/timing.duckdb, or $TIMING_STORE).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings (default timing.toml when present).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar=runtime.ENV, show_envvar=True,
              help="Threads for DuckDB, LightGBM and BLAS together [default: the cores this process may use].")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.version_option(package_name="timing")
@click.pass_context
@boundary
def main(ctx: click.Context, store: Path | None, config: Path | None, threads: int | None, quiet: bool) -> None:
    """When will each leasing customer sign their next contract?

    Ingest an export, fit survival models, score open contracts, plan
    outreach within capacity, and hand the plan to the team and the CRM.

    Example:

        timing demo-data demo-out --customers 2000 --seed 1

        timing --store data/timing.duckdb ingest demo-out

    Progress goes to stderr (bars on a terminal, lines in a log; none with
    --quiet). TIMING_THREADS or --threads caps the threads of DuckDB, LightGBM
    and BLAS together.
    """
    ctx.obj = Ctx(store or default_store_path(), load_settings(config))
    runtime.set_threads(threads)
    shown = prog.for_terminal(quiet)
    ctx.with_resource(prog.reporting(shown))
    ctx.call_on_close(getattr(shown, "close", lambda: None))


@main.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--customers", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--as-of", callback=_iso_date, default="2026-10-31", show_default=True, metavar="DATE")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--dirty", is_flag=True, help="Inject the faults real exports have (counted in OUT.truth/dirty.json).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--readings-every-days", type=click.IntRange(min=1), default=7, show_default=True)
@boundary
def demo_data(
    out: Path, customers: int, as_of: date, seed: int, dirty: bool, fmt: str, readings_every_days: int
) -> None:
    """Write a realistic synthetic export to OUT, and its ground truth to OUT.truth/.

    Example:

        timing demo-data demo-out --customers 10000 --dirty --seed 1
    """
    from timing.demo import generate_demo

    summary = generate_demo(
        out,
        customers=customers,
        as_of=as_of,
        seed=seed,
        dirty=dirty,
        fmt=fmt,  # type: ignore[arg-type]
        readings_every_days=readings_every_days,
        progress=prog.current(),
    )
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    echo(f"export written to {summary.out}: {rows}")
    echo(f"ground truth written to {summary.truth} (never read by any model)")


@main.command()
@click.argument("export_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--as-of", callback=_iso_date, metavar="DATE", help="The export's as-of date (default: its latest date).")
@pass_ctx
@boundary
def ingest(obj: Ctx, export_dir: Path, as_of: date | None) -> None:
    """Validate the export in DIR and load it into the store, all or nothing.

    Prints rows read / loaded / set aside / duplicates per table and the
    reasons rows were set aside. The previous store is kept if anything fails.

    Example:

        timing ingest data/demo
    """
    from timing.ingest.load import ingest as run_ingest

    report = run_ingest(export_dir, obj.store, as_of=as_of, progress=prog.current())
    echo(report.summary())


@main.command()
@as_of_option
@click.option("--truth", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Also judge the model against a synthetic export's truth folder (never used for fitting).")
@click.option("--models", "model_root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data/models"), show_default=True, help="Where model folders are saved.")
@pass_ctx
@boundary
def fit(obj: Ctx, as_of: date | None, truth: Path | None, model_root: Path) -> None:
    """Fit the models on what was known on the as-of date and save a versioned model.

    Compares the model families on a temporal holdout (concordance, integrated
    Brier score against Kaplan-Meier, calibration), refits the best one on all
    training origins and saves it (parameters as Parquet/JSON with a manifest
    of SHA-256 hashes).

    Example:

        timing fit --as-of 2026-10-31
    """
    from timing.fitting.fit import fit_models

    report = fit_models(obj.store, as_of, obj.settings.fit, model_root, truth, progress=prog.current())
    echo(report.summary())


@main.command()
@as_of_option
@click.option("--months", type=click.IntRange(1, 36), default=12, show_default=True,
              help="Months of monthly signing probabilities.")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A model folder (default: the latest fitted model).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/out"),
              show_default=True, help="Folder for the scores Parquet file.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="spark: check a Parquet export, build features and score it on PySpark (see docs/spark.md).")
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="With --engine spark: the Parquet export to read.")
@click.option("--spark-master", default="local[2]", show_default=True,
              help="With --engine spark: the Spark master URL ('' when launched by spark-submit).")
@pass_ctx
@boundary
def score(obj: Ctx, as_of: date | None, months: int, model_dir: Path | None, out_dir: Path, engine: str,
          export_dir: Path | None, spark_master: str) -> None:
    """Score every open contract: monthly signing probabilities, dates, reasons.

    Writes the scores to the store (table scores) and to
    OUT/scores-<as-of>.parquet. With --engine spark the heavy work (checking
    readings and faults, features, batch scoring) runs on PySpark and writes
    Parquet under OUT/spark/.

    Example:

        timing score --months 12

        timing score --engine spark --export data/demo
    """
    if engine == "spark":
        from timing.engines.spark import run_spark
        from timing.fitting.registry import latest_model

        if export_dir is None:
            raise click.UsageError("--engine spark needs --export DIR (a Parquet export)")
        folder, expected = (model_dir, None) if model_dir else latest_model(obj.store)
        result = run_spark(export_dir, out_dir / "spark", folder, as_of, spark_master or None, months,
                           expected_manifest_sha256=expected, progress=prog.current())
        echo(result.summary())
        return
    from timing.scores.scoring import score as run_score

    report = run_score(obj.store, as_of, months, model_dir, out_dir, progress=prog.current())
    echo(report.summary())


@main.command()
@as_of_option
@click.option("--horizon-days", type=click.IntRange(7, 731), default=None,
              help="Plan windows starting up to this many days ahead [default 182].")
@click.option("--capacity-per-week", type=click.IntRange(min=0), default=None,
              help="Outreach starts allowed per week [default: 1.2 x expected weekly signings].")
@click.option("--window-days", type=click.IntRange(1, 120), default=None, help="Window length [default 28].")
@click.option("--solver", type=click.Choice(["auto", "exact", "greedy"]), default=None,
              help="exact (HiGHS) or greedy; auto picks exact where the problem is small enough.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the planned windows as CSV.")
@pass_ctx
@boundary
def schedule(obj: Ctx, as_of: date | None, horizon_days: int | None, capacity_per_week: int | None,
             window_days: int | None, solver: str | None, out: Path | None) -> None:
    """Plan one outreach window per contract worth contacting, within capacity and contact rules.

    Rules (consent, do-not-contact, days since the last contact, starts per
    customer per 90 days, blackout dates, branch capacity) come from the
    [schedule] table of timing.toml; options here override it.

    Example:

        timing schedule --capacity-per-week 40 --out data/out/schedule.csv
    """
    import dataclasses

    from timing.schedule.job import run_schedule

    overrides: dict[str, Any] = {k: v for k, v in {"horizon_days": horizon_days, "capacity_per_week": capacity_per_week,
                                   "window_days": window_days, "solver": solver}.items() if v is not None}
    cfg = dataclasses.replace(obj.settings.schedule, **overrides)
    plan = run_schedule(obj.store, cfg, as_of, out, progress=prog.current())
    echo(plan.summary())
    if out is not None:
        echo(f"  windows written to {out}")


@main.command()
@as_of_option
@click.option("--within", type=click.IntRange(min=0), default=30, show_default=True,
              help="Also list windows opening within this many days.")
@click.option("--branch", default=None, help="Only this branch.")
@click.option("--region", default=None, help="Only this region.")
@click.option("--channel", type=click.Choice(OUTREACH_CHANNELS), default=None,
              help="Only this channel.")
@click.option("--min-priority", type=click.IntRange(1, 3), default=None,
              help="Only this priority or more urgent (1 is the most urgent).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@pass_ctx
@boundary
def due(obj: Ctx, as_of: date | None, within: int, branch: str | None, region: str | None,
        channel: str | None, min_priority: int | None, fmt: str) -> None:
    """The leasing team's query: whom to contact now, most valuable first.

    Lists the contracts whose outreach window is open on the as-of date or
    opens within --within days, with channel, probability, expected signing
    date, the reasons, and whether the window is new, kept or moved since the
    last plan.

    Example:

        timing due --branch BR03 --within 14

        timing due --format csv > due.csv
    """
    from timing.outputs.due import due_list, format_due

    df = due_list(obj.store, as_of, within, branch, region, channel, min_priority)
    tty = sys.stdout.isatty()
    click.echo(format_due(df, fmt, color=fmt == "table" and tty))


@main.group()
def export() -> None:
    """Files for other systems (the CRM import file)."""


@export.command("crm")
@as_of_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The CSV to write (parts and a manifest go beside it).")
@pass_ctx
@boundary
def export_crm_cmd(obj: Ctx, as_of: date | None, out: Path) -> None:
    """The CRM bulk-upsert file for the current plan, with a manifest beside it.

    UTF-8, comma, LF, RFC 4180 quoting, ISO dates, a stable external id per
    planned outreach; only the fields the CRM needs (names in [crm] of
    timing.toml); customers who may not be contacted are never in it.

    Example:

        timing export crm --out data/out/crm.csv
    """
    from timing.outputs.crm import export_crm

    result = export_crm(obj.store, out, obj.settings.crm, as_of)
    echo(result.summary())


@main.command()
@click.option("--month", default=None, metavar="YYYY-MM", help="The report's month (default: the month of the as-of).")
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Reports go to OUT/YYYY-MM/.")
@pass_ctx
@boundary
def report(obj: Ctx, month: str | None, out_root: Path) -> None:
    """The monthly report: reports/YYYY-MM/index.html (self-contained) and its chart data.

    Example:

        timing report --month 2026-10
    """
    from timing.report import build_report

    result = build_report(obj.store, month, out_root, obj.settings, progress=prog.current())
    echo(result.summary())


@main.command()
@click.option("--origins", default=None, metavar="DATE,DATE,...",
              help="Backtest origins (default: four quarterly origins ending 6 months before the as-of).")
@click.option("--horizon-days", type=click.IntRange(7, 731), default=None, help="Horizon H [default 182].")
@click.option("--capacity-per-week", type=click.IntRange(min=0), default=None,
              help="Starts a week for every policy [default: 1.2 x the real weekly signings in (T, T+H]].")
@click.option("--truth", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A synthetic export's truth folder: the truth policy and outcomes past the store's as-of.")
@click.option("--simulate", is_flag=True, help="Also compare planning strategies (capacity 0.5x-2x, windows, rules).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Parallel processes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/out/backtest"),
              show_default=True)
@pass_ctx
@boundary
def backtest(obj: Ctx, origins: str | None, horizon_days: int | None, capacity_per_week: int | None,
             truth: Path | None, simulate: bool, workers: int, out_dir: Path) -> None:
    """Rolling-origin evaluation: what the schedule would have caught, against today's practice.

    At each origin T the models are fitted and scored and the plan made on
    what an export on T held; capture and precision (model, naive, truth),
    concordance, Brier scores, calibration and volume are then judged on what
    happened after T. Results go to OUT (Parquet and CSV) and the store.

    Example:

        timing backtest --origins 2025-10-31,2026-01-31,2026-04-30 --truth data/demo.truth --simulate
    """
    import dataclasses

    from timing.backtest import default_origins, run_backtest, simulate_strategies
    from timing.backtest.run import parse_origins

    cfg = obj.settings.schedule
    if horizon_days is not None:
        cfg = dataclasses.replace(cfg, horizon_days=horizon_days)
    cutoffs = parse_origins(origins) if origins else default_origins(obj.store)
    result = run_backtest(obj.store, cutoffs, obj.settings.fit, cfg, capacity_per_week, truth, workers,
                          progress=prog.current(), out_dir=out_dir)
    echo(result.summary())
    if simulate:
        echo(simulate_strategies(result, cfg, workers=workers, progress=prog.current()).summary())


@main.command()
@click.option("--export", "export_dir", type=click.Path(path_type=Path), default=None,
              help="Export folder (default: the bundled demo in data/demo).")
@pass_ctx
@boundary
def run(obj: Ctx, export_dir: Path | None) -> None:
    """The main job end to end on the bundled demo export.

    Example:

        timing run
    """
    from timing.pipeline import run_pipeline

    result = run_pipeline(export_dir or _demo_export(), obj.store, obj.settings, progress=prog.current())
    echo(result.summary())


if __name__ == "__main__":
    main()
