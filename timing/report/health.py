"""How far to trust it: backtests, calibration, the model's main drivers, and the data's quality."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from scipy import stats

from timing.core.conventions import CAPTURE_DAYS
from timing.models.io import ModelError
from timing.report import charts
from timing.report.context import Chart, ReportContext, Section
from timing.report.html import paragraphs, table

TOP_DRIVERS = 12
PER_FACTOR = 2  # levels per factor among the drivers, so that one factor cannot fill the list
TELEMATICS_DAYS = 90
#: Words for factors whose levels share their wording with another factor's.
FACTOR_WORDS = {"end": "first contract", "end_with_history": "returning customer",
                "end_consistent_habit": "returning customer with a steady habit",
                "habit_consistent": "steady habit"}


# --- backtests -------------------------------------------------------------------------------


SERIES_WORDS = {"model": "model plan", "naive": "naive (90 days before the end)", "truth": "truth (upper reference)",
                "uno_c_6m": "Uno's C, 6 months", "harrell_c_6m": "Harrell's C, 6 months",
                "uno_c_12m": "Uno's C, 12 months", "harrell_c_12m": "Harrell's C, 12 months"}


def backtest_series(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Capture by policy and concordance by measure, per cutoff (``cutoff, series, value``).

    Reads the long table of :mod:`timing.backtest` (``cutoff, metric, policy,
    month, bin, value``, appended per run with ``run_at``): the latest run of
    each cutoff, whole-horizon rows only.
    """
    t = raw.copy()
    if "run_at" in t.columns and len(t):
        t = t[t["run_at"] == t.groupby("cutoff")["run_at"].transform("max")]
    for c in ("month", "bin"):
        if c in t.columns:
            t = t[t[c].isna()]
    policy = t["policy"].astype("string").fillna("") if "policy" in t.columns else pd.Series("", index=t.index)
    metric = t["metric"].astype(str)
    t = t.assign(cutoff=pd.to_datetime(t["cutoff"]), value=pd.to_numeric(t["value"], errors="coerce"))
    capture = t[metric == "capture"].assign(series=policy.map(lambda p: SERIES_WORDS.get(p, p or "capture")))
    conc = t[metric.str.fullmatch(r"(uno|harrell)_c_\d+m") & policy.isin(["model", ""])]
    conc = conc.assign(series=conc["metric"].map(lambda m: SERIES_WORDS.get(m, m)))
    panels = {"capture": capture, "concordance (C index)": conc}
    return {k: v.dropna(subset=["value"])[["cutoff", "series", "value"]].sort_values(["series", "cutoff"])
            .reset_index(drop=True) for k, v in panels.items() if v["value"].notna().any()}


def backtest(ctx: ReportContext) -> Section:
    title = "Backtest trend: capture and concordance"
    if not ctx.has_table("backtest_results"):
        return Section("backtest", title, "", missing="No backtest run yet: `timing backtest` replays past "
                       "months against what really happened, and its results will show here.")
    raw = ctx.query("SELECT * FROM backtest_results WHERE cutoff <= ?", [ctx.as_of])
    panels = backtest_series(raw)
    if not panels:
        return Section("backtest", title, "", missing="No backtest run yet with capture or concordance figures "
                       "for cutoffs on or before the as-of date.")
    cutoffs = sorted({c for v in panels.values() for c in v["cutoff"]})
    lines = [f"{len(cutoffs)} backtest cutoffs from {cutoffs[0]:%d %B %Y} to {cutoffs[-1]:%d %B %Y}: at each one "
             "the models saw only what an export on that day held, and were judged on what happened next.",
             f"Capture is the share of repurchases whose outreach window started 0-{CAPTURE_DAYS} days before the "
             "signing, "
             "every policy at the same weekly capacity; concordance (0.5 = guessing, 1 = perfect order) says how "
             "well the model ranks who signs first."]
    if "partial" in raw.columns and raw["partial"].fillna(False).astype(bool).any():
        lines.append("Cutoffs less than a horizon before the as-of date are judged on the part of the horizon "
                     "seen so far.")
    data = pd.concat([v.assign(panel=k) for k, v in panels.items()], ignore_index=True)
    data["cutoff"] = data["cutoff"].dt.strftime("%Y-%m-%d")
    chart = Chart(charts.backtest_chart(panels), "One point per backtest cutoff; a flat or rising line means the "
                  "model keeps up as the portfolio changes.")
    return Section("backtest", title, paragraphs(*lines), (chart,), data={"backtest": data})


# --- calibration -----------------------------------------------------------------------------


def calibration(ctx: ReportContext) -> Section:
    title = "Calibration: predicted against observed"
    info = ctx.model_info()
    if info is None:
        return Section("calibration", title, "", missing="No model fitted on or before the as-of date: run `timing fit`.")
    cal = pd.DataFrame(info.get("holdout_calibration") or [])
    if cal.empty:
        return Section("calibration", title, "", missing=f"Model {info['version']} holds no holdout calibration.")
    tail = (1 - ctx.interval) / 2
    cal = cal.sort_values("month").reset_index(drop=True)
    cal["lower"] = stats.poisson.ppf(tail, cal["predicted"])
    cal["upper"] = stats.poisson.ppf(1 - tail, cal["predicted"])
    outside = cal[(cal["observed"] < cal["lower"]) | (cal["observed"] > cal["upper"])]
    p, o = cal["predicted"].sum(), cal["observed"].sum()
    lines = [f"Model {info['version']} was also fitted on what was known on {info.get('holdout_as_of')} and asked "
             f"about the {len(cal)} months after. It predicted {p:,.0f} signings; {o:,.0f} happened "
             f"({o / p:.0%} of the prediction)." if p > 0 else ""]
    if len(outside):
        lines.append("Months outside the range chance alone explains: "
                     + ", ".join(f"month {int(m)}" for m in outside["month"]) + ".")
    else:
        lines.append("Every month is within the range chance alone explains.")
    metrics = pd.DataFrame(info.get("holdout_metrics") or [])
    tables: tuple[str, ...] = ()
    if len(metrics):
        cols = [c for c in ("family", "uno_c_6m", "harrell_c_6m", "ibs", "ibs_km") if c in metrics.columns]
        shown = metrics[cols].copy()
        for c in cols[1:]:
            shown[c] = shown[c].map(lambda v: f"{v:.3f}")
        shown["family"] = [f"{f} (chosen)" if f == info.get("family") else f for f in shown["family"]]
        shown = shown.rename(columns={"family": "model family", "uno_c_6m": "Uno's C, 6 months",
                                      "harrell_c_6m": "Harrell's C, 6 months", "ibs": "integrated Brier score",
                                      "ibs_km": "same, no covariates"})
        tables = (table(shown, words=("model family",)),)
        lines.append("The table compares the model families on the same holdout (lower Brier score is better).")
    chart = Chart(charts.calibration_chart(cal, ctx.interval),
                  f"Grey: signings that happened. Orange: the model's expected number, with the {ctx.interval:.0%} range "
                  "a Poisson count around it would fall in by chance.")
    data = cal.assign(model_version=info["version"], holdout_as_of=info.get("holdout_as_of"))
    return Section("calibration", title, paragraphs(*lines), (chart,), tables, {"calibration": data})


# --- drivers ---------------------------------------------------------------------------------


def _reference_levels() -> dict[str, str]:
    from timing.models.covariates import COVARIATES

    return {c.name: c.labels[0] for c in COVARIATES}


def top_drivers(summary: pd.DataFrame, n: int = TOP_DRIVERS, per_factor: int = PER_FACTOR) -> pd.DataFrame:
    """The strongest covariate levels for signing by |log hazard ratio|, at most ``per_factor`` per factor."""
    s = summary
    if "outcome" in s.columns:
        s = s[s["outcome"] == "signed"]
    s = s[s["covariate"].astype(str).str.contains("=")].copy()
    s[["factor", "level"]] = s["covariate"].astype(str).str.split("=", n=1, expand=True)
    s["strength"] = np.abs(np.log(s["hazard_ratio"].astype(float)))
    s = s.sort_values(["strength", "covariate"], ascending=[False, True], kind="stable")
    s = s[s.groupby("factor", sort=False).cumcount() < per_factor].head(n)
    refs = _reference_levels()
    s["reference"] = s["factor"].map(refs).fillna("the reference group")
    # a level worded like another factor's level says which factor it belongs to
    shared = s["level"].duplicated(keep=False)
    qualifier = [FACTOR_WORDS.get(f, f.replace("_", " ") if dup else None)
                 for f, dup in zip(s["factor"], shared, strict=True)]
    s["label"] = [(lv[0].upper() + lv[1:]) + (f" ({q})" if q else "")
                  for lv, q in zip(s["level"], qualifier, strict=True)]
    s["in_words"] = [_in_words(r) for r in s.itertuples()]
    cols = ["factor", "level", "label", "hazard_ratio", "hr_lower", "hr_upper", "reference", "in_words"]
    return s.sort_values(["hazard_ratio", "covariate"], ascending=[False, True], kind="stable")[cols].reset_index(drop=True)


def _ratio(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def _in_words(r: object) -> str:
    hr, lo, hi = float(r.hazard_ratio), float(r.hr_lower), float(r.hr_upper)  # type: ignore[attr-defined]
    ci = f"(95% interval {_ratio(lo)} to {_ratio(hi)})"
    ref = r.reference  # type: ignore[attr-defined]
    if hr >= 1:
        return f"{_ratio(hr)} times as likely to sign in a given month as with {ref} {ci}"
    return f"{(1 - hr):.0%} less likely to sign in a given month than with {ref} {ci}"


def drivers(ctx: ReportContext) -> Section:
    title = "The main drivers"
    info = ctx.model_info()
    if info is None:
        return Section("drivers", title, "", missing="No model fitted on or before the as-of date: run `timing fit`.")
    try:
        summary = ctx.model().summary()
    except (ModelError, ValueError) as e:
        return Section("drivers", title, "", missing=f"Model {info['version']} cannot be read: {e}. "
                       "Refit it with `timing fit`.")
    if not {"covariate", "hazard_ratio", "hr_lower", "hr_upper"} <= set(summary.columns):
        return Section("drivers", title, "", missing=f"The chosen model ({info['family']}) uses no customer or "
                       "contract facts, so it has no drivers to show.")
    top = top_drivers(summary)
    text = paragraphs(
        f"What the model ({info['family']}, version {info['version']}) learned moves a contract's chance of being "
        f"renewed in a given month the most: the {len(top)} strongest effects, at most {PER_FACTOR} per factor. "
        "Each compares contracts that differ in that one respect and are alike in all the others.")
    words = top[["label", "in_words"]].rename(columns={"label": "when", "in_words": "the chance of signing is"})
    chart = Chart(charts.drivers_chart(top), "Dots: hazard ratio; lines: 95% interval. Blue raises the monthly "
                  "chance of signing, orange lowers it; the vertical line at 1 is no effect.")
    return Section("drivers", title, text, (chart,), (table(words, words=tuple(words.columns)),),
                   {"drivers": top.assign(model_version=info["version"])})


# --- data quality ----------------------------------------------------------------------------


def data_quality(ctx: ReportContext) -> Section:
    title = "Data quality"
    charts_: list[Chart] = []
    data: dict[str, pd.DataFrame] = {}
    lines = []
    export = ctx.store_as_of
    if ctx.has_table("quarantine"):
        q = ctx.query("SELECT table_name, rule, count(*) AS rows FROM quarantine GROUP BY ALL "
                      "ORDER BY rows DESC, table_name, rule")
        data["quarantine"] = q
        if len(q):
            lines.append(f"The export of {export:%d %B %Y} had {int(q['rows'].sum()):,} rows set aside at ingest "
                         f"for {len(q)} reasons; they are in the store's quarantine table with the rule they broke.")
            charts_.append(Chart(charts.quarantine_chart(q), "Rows set aside, by table and the rule they broke."))
        else:
            lines.append(f"No row of the export of {export:%d %B %Y} was set aside at ingest.")
    tables: tuple[str, ...] = ()
    if ctx.has_table("ingest_log"):
        log = ctx.query("SELECT table_name AS \"table\", rows_read, rows_loaded, rows_set_aside, duplicates "
                        "FROM ingest_log WHERE ingested_at = (SELECT max(ingested_at) FROM ingest_log) "
                        "ORDER BY table_name")
        if len(log):
            tables = (table(log.assign(**{c: log[c].map(lambda v: f"{int(v):,}") for c in log.columns[1:]})
                            .rename(columns=lambda c: c.replace("_", " ")), words=("table",)),)
    v = ctx.views()
    cov = ctx.query(
        f"""SELECT cu.branch_id, count(*) AS open_contracts,
                   count(*) FILTER (WHERE r.vehicle_id IS NOT NULL) AS with_readings
            FROM {v}.outcomes o JOIN {v}.contracts c USING (contract_id)
            JOIN {v}.customers cu ON cu.customer_id = c.customer_id
            LEFT JOIN (SELECT DISTINCT vehicle_id FROM {v}.readings
                       WHERE recorded_at > CAST(? AS DATE)) r ON r.vehicle_id = c.vehicle_id
            WHERE o.outcome = 'open' GROUP BY ALL ORDER BY cu.branch_id""",
        [ctx.as_of - timedelta(days=TELEMATICS_DAYS)])
    if len(cov):
        cov["coverage"] = cov["with_readings"] / cov["open_contracts"]
        overall = float(cov["with_readings"].sum() / cov["open_contracts"].sum())
        low = cov.sort_values(["coverage", "branch_id"]).iloc[0]
        lines.append(f"Telematics coverage: {overall:.0%} of the open contracts have a reading from the last "
                     f"{TELEMATICS_DAYS} days (lowest: {low['branch_id']}, {low['coverage']:.0%}). Cars without "
                     "readings are scored from their allowance and the portfolio's typical usage instead.")
        charts_.append(Chart(charts.coverage_chart(cov, overall), "Bars: each branch; dashed line: all branches."))
        data["telematics"] = cov
    head = (("telematics coverage", f"{overall:.0%}"),) if len(cov) else ()
    return Section("data-quality", title, paragraphs(*lines), tuple(charts_), tables, data, headline=head)
