"""The business sections: the portfolio, the coming signings, last month's plan, this plan's workload."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from timing.core.conventions import CAPTURE_DAYS, MONTH_DAYS
from timing.report import charts
from timing.report.context import Chart, ReportContext, Section
from timing.report.html import paragraphs, table
from timing.schedule import default_capacity
from timing.schedule.job import read_branch_capacity
from timing.schedule.policies import capture, naive_start_days
from timing.schedule.rules import apply_rules, contact_facts
from timing.scores.scoring import forecast_from_scores
from timing.scores.volume import forecast_volume, monthly_repurchases

FORECAST_MONTHS = 6
END_BUCKETS = ["passed", *[f"{m}-{m + 1}" for m in range(12)], "12-24", "24+"]


def _end_bucket(months: np.ndarray) -> np.ndarray:
    idx = np.where(months < 0, 0, np.where(months < 12, months + 1, np.where(months < 24, 13, 14)))
    return np.asarray(END_BUCKETS, dtype=object)[idx.astype(int)]


def _n(x: float) -> str:
    return f"{x:,.0f}"


# --- portfolio ------------------------------------------------------------------------------


def portfolio(ctx: ReportContext) -> Section:
    v = ctx.views()
    open_ = ctx.query(f"""SELECT cu.branch_id, c.scheduled_end_date
                          FROM {v}.outcomes o JOIN {v}.contracts c USING (contract_id)
                          JOIN {v}.customers cu ON cu.customer_id = c.customer_id
                          WHERE o.outcome = 'open' ORDER BY c.contract_id""")
    days = (pd.to_datetime(open_["scheduled_end_date"]) - pd.Timestamp(ctx.as_of)).dt.days.to_numpy(float)
    open_["months_to_end"] = _end_bucket(np.floor(days / MONTH_DAYS))
    grid = (open_.groupby(["branch_id", "months_to_end"]).size().unstack(fill_value=0)
            .reindex(columns=END_BUCKETS, fill_value=0).sort_index())
    long = grid.stack().rename("open_contracts").reset_index()
    total = grid.sum(axis=0)
    n = len(open_)
    soon = int(total[[f"{m}-{m + 1}" for m in range(6)]].sum())
    passed = int(total["passed"])
    busiest = grid[[f"{m}-{m + 1}" for m in range(6)]].sum(axis=1)
    text = paragraphs(
        f"{_n(n)} contracts are open on {ctx.as_of:%d %B %Y} across {len(grid)} branches. "
        f"{_n(soon)} of them reach their scheduled end within the next six months, and {_n(passed)} have "
        "passed it without a new contract yet (a customer can still sign up to 180 days after the end).",
        (f"Branch {busiest.idxmax()} has the most contracts ending in the next six months ({int(busiest.max())})."
         if len(busiest) and busiest.max() > 0 else ""),
    )
    chart = Chart(charts.portfolio_chart(total, grid),
                  "Top: all branches. Below: one row per branch; darker cells hold more contracts. "
                  "A column is a month-wide band of time to the scheduled end, counted from the as-of date.")
    return Section("portfolio", "Portfolio overview", text, (chart,), data={"portfolio": long},
                   headline=(("open contracts", _n(n)), ("ending in the next 6 months", _n(soon))))


# --- the next months' signings ---------------------------------------------------------------


def volume(ctx: ReportContext) -> Section:
    fc = forecast_volume(ctx.store, FORECAST_MONTHS, as_of=ctx.as_of, interval=ctx.interval,
                         launch_months=ctx.settings.fit.launch_months)
    history = monthly_repurchases(ctx.store, ctx.as_of, history_months=24)
    title = f"Expected signings, next {FORECAST_MONTHS} months"
    if fc.empty:
        return Section("volume", title, "", missing="Too little history (24 months) and no scores: nothing to forecast "
                                                       "yet. Run `timing score` after ingesting more history.")
    totals = fc.groupby("model")["expected"].sum()
    words = {m: f"{totals[m]:,.0f} ({charts.MODEL_NAMES[m]})" for m in ("survival", "prophet", "structural")
             if m in totals}
    lines = [f"Over the next {FORECAST_MONTHS} months the models expect "
             + ", ".join(words.values()) + " repurchases in all."]
    if "survival" in totals:
        error = fc.attrs.get("survival_model_error")
        spread = (f"and, beyond that, how far the model's monthly totals were off on its own holdout "
                  f"({error:.0%} of a month's total)" if error is not None else
                  "only: the model that made the scores could not be found or checked, so errors in the "
                  "chances themselves are not in it and it is too narrow")
        lines.append("The survival model adds up each open contract's chance of signing in each month; its "
                     f"{ctx.interval:.0%} interval covers which contracts happen to sign {spread}. The count "
                     "models extend the monthly history "
                     "(yearly pattern and the model launch months " +
                     ", ".join(pd.Timestamp(2000, m, 1).strftime("%B") for m in ctx.settings.fit.launch_months)
                     + ") and know nothing about today's contracts.")
    else:
        lines.append("No scores in the store yet, so the survival model's forecast is missing: run `timing score`.")
    show = fc.assign(month=pd.to_datetime(fc["month"]).dt.strftime("%b %Y"),
                     value=[f"{e:,.1f} ({lo:,.0f}-{hi:,.0f})" for e, lo, hi in
                            zip(fc["expected"], fc["lower"], fc["upper"], strict=True)])
    wide = show.pivot(index="month", columns="model", values="value")
    wide = wide.reindex(index=list(dict.fromkeys(show["month"])),
                        columns=[m for m in ("survival", "prophet", "structural") if m in wide.columns])
    wide.columns = [charts.MODEL_NAMES[c] for c in wide.columns]
    data = pd.concat([
        history.assign(model="actual", expected=history["repurchases"].astype(float), lower=np.nan,
                       upper=np.nan).drop(columns="repurchases"),
        fc], ignore_index=True)
    data["month"] = pd.to_datetime(data["month"]).dt.strftime("%Y-%m")
    chart = Chart(charts.volume_chart(history, fc, ctx.interval),
                  f"Black: repurchases signed per month up to the as-of date. Dots with bars: each model's expected "
                  f"count for the month and its {ctx.interval:.0%} interval.")
    head = (("expected signings, next 6 months", f"{totals.get('survival', totals.iloc[0]):,.0f}"),)
    return Section("volume", title, paragraphs(*lines), (chart,),
                   (table(wide.reset_index(), words=("month",)),), {"volume": data}, headline=head)


# --- last month's plan against what happened ---------------------------------------------------


def _plan_a_month_ago(ctx: ReportContext) -> date | None:
    if not ctx.has_table("schedules"):
        return None
    prev = ctx.month - 1
    rows = ctx.query("SELECT max(as_of) AS d FROM schedules WHERE as_of BETWEEN ? AND ? AND as_of < ?",
                     [prev.start_time.date(), prev.end_time.date(), ctx.as_of])
    d = rows["d"].iloc[0] if len(rows) else None
    return None if d is None or pd.isna(d) else pd.Timestamp(d).date()


def _capacity(ctx: ReportContext, day: date, plan: pd.DataFrame) -> tuple[int, str]:
    """The weekly capacity a plan made on ``day`` had: as stored with it, configured, or as the planner derives it."""
    cfg = ctx.settings.schedule
    if "capacity_per_week" in ctx.query("SELECT * FROM schedules LIMIT 0").columns:
        stored = ctx.query("SELECT max(capacity_per_week) AS c FROM schedules WHERE as_of = ?", [day])["c"].iloc[0]
        if pd.notna(stored):
            return int(stored), "as stored with the plan"
    if cfg.capacity_per_week is not None:
        return cfg.capacity_per_week, "as configured"
    scores = ctx.scores(day)
    if len(scores):
        return default_capacity(forecast_from_scores(scores), cfg), "as the planner derived it from that day's scores"
    busiest = int(plan.groupby("week").size().max()) if len(plan) else 0
    return busiest, "the plan's busiest week (no scores of that day to derive it)"


def last_month(ctx: ReportContext) -> Section:
    title = "Last month's plan against what happened"
    P = _plan_a_month_ago(ctx)
    prev = ctx.month - 1
    if P is None:
        return Section("last-month", title, "", missing=(
            f"This needs the outreach plan made a month ago (in {prev.strftime('%B %Y')}), and the store has none. "
            "Run `timing schedule` every month; next month's report will compare this month's plan with "
            "what happened."))
    cfg = ctx.settings.schedule
    plan = ctx.query("SELECT contract_id, window_start, week FROM schedules WHERE as_of = ? AND status <> 'cancelled' "
                     "ORDER BY contract_id", [P])
    then, now = ctx.views(P), ctx.views()
    facts = apply_rules(contact_facts(ctx.con, then, P), P, cfg)
    ends = ctx.query(f"SELECT contract_id, scheduled_end_date FROM {then}.contracts")
    signed = ctx.query(f"SELECT contract_id, outcome_date FROM {now}.outcomes "
                       "WHERE outcome = 'repurchased' AND outcome_date > ? AND outcome_date <= ?", [P, ctx.as_of])
    facts = facts.merge(ends, on="contract_id", how="left")
    T0 = pd.Timestamp(P)
    horizon = (ctx.as_of - P).days
    signing = (pd.to_datetime(facts["contract_id"].map(signed.set_index("contract_id")["outcome_date"]))
               - T0).dt.days.to_numpy(float)
    plan_start = (pd.to_datetime(facts["contract_id"].map(plan.set_index("contract_id")["window_start"]))
                  - T0).dt.days.to_numpy(float)
    C, how = _capacity(ctx, P, plan)
    days_to_end = (pd.to_datetime(facts["scheduled_end_date"]) - T0).dt.days.to_numpy(float)
    naive_start = naive_start_days(days_to_end, (facts["excluded"] == "").to_numpy(), C, cfg.horizon_days)
    rows = []
    for policy, start in (("model plan", plan_start), ("naive: 90 days before the end", naive_start)):
        c = capture(start, signing, horizon, cfg.capture_days)
        did_sign = (signing > 0) & (signing <= horizon)
        has_window = np.isfinite(start)
        rows.append({"policy": policy, "repurchases": c.repurchases, "captured": c.captured,
                     "missed_other_window": int((did_sign & has_window).sum()) - c.captured,
                     "missed_no_window": int((did_sign & ~has_window).sum()), "capture": c.capture,
                     "capacity_per_week": C})
    res = pd.DataFrame(rows)
    cap_plan, cap_naive = res["capture"].iloc[0], res["capture"].iloc[1]
    lift = cap_plan / cap_naive if cap_naive > 0 else float("nan")
    res["lift_over_naive"] = [lift, 1.0]
    res.insert(0, "plan_as_of", P.isoformat())
    res.insert(1, "through", ctx.as_of.isoformat())
    n = int(res["repurchases"].iloc[0])
    if n == 0:
        text = paragraphs(f"No contract open on {P:%d %B %Y} signed a new one by {ctx.as_of:%d %B %Y}: "
                          "nothing to capture yet.")
        return Section("last-month", title, text, data={"last_month": res})
    lift_words = (f"a lift of {lift:.2f}x over the naive policy" if np.isfinite(lift)
                  else "the naive policy caught none, so no lift can be given")
    text = paragraphs(
        f"Between {P:%d %B} and {ctx.as_of:%d %B %Y}, {n:,} customers whose contract was open on {P:%d %B} signed "
        f"a new one. The plan made on {P:%d %B} had started an outreach window in time (0-{CAPTURE_DAYS} days before the "
        f"signing) for {int(res['captured'].iloc[0]):,} of them ({cap_plan:.0%}); today's practice of starting "
        f"90 days before the scheduled end would have caught {int(res['captured'].iloc[1]):,} ({cap_naive:.0%}) "
        f"at the same capacity of {C:,} starts a week ({how}): {lift_words}.",
        "One month is a small sample: read the backtests below for the steadier picture.")
    chart = Chart(charts.last_month_chart(res), "Each bar is one policy; the segments add up to the month's "
                  "repurchases among the contracts open when the plan was made.")
    head = (("captured last month (plan / naive)", f"{cap_plan:.0%} / {cap_naive:.0%}"),)
    return Section("last-month", title, text, (chart,), data={"last_month": res}, headline=head)


# --- this plan's workload ----------------------------------------------------------------------


def _branch_caps(ctx: ReportContext, branches: list[str], weeks: int) -> pd.DataFrame | None:
    cfg = ctx.settings.schedule
    if cfg.branch_capacity_per_week is None and not cfg.branch_capacity_csv:
        return None
    default = cfg.branch_capacity_per_week if cfg.branch_capacity_per_week is not None else np.nan
    caps = pd.DataFrame(default, index=branches, columns=range(weeks), dtype=float)
    table_ = read_branch_capacity(cfg.branch_capacity_csv)
    if table_ is not None:
        for r in table_[table_["branch_id"].isin(branches) & table_["week"].between(0, weeks - 1)].itertuples():
            caps.loc[r.branch_id, int(r.week)] = float(r.capacity)
    return caps


def workload(ctx: ReportContext) -> Section:
    title = "Workload per week against capacity"
    d = None
    if ctx.has_table("schedules"):
        d = ctx.query("SELECT max(as_of) AS d FROM schedules WHERE as_of <= ?", [ctx.as_of])["d"].iloc[0]
    if d is None or pd.isna(d):
        return Section("workload", title, "", missing="No outreach plan in the store yet: run `timing schedule`.")
    P = pd.Timestamp(d).date()
    cfg = ctx.settings.schedule
    plan = ctx.query("SELECT branch_id, week FROM schedules WHERE as_of = ? AND status <> 'cancelled' "
                     "ORDER BY branch_id, week", [P])
    weeks = cfg.horizon_days // 7 + 1
    branches = sorted(plan["branch_id"].astype(str).unique())
    grid = (plan.assign(week=plan["week"].astype(int)).groupby(["branch_id", "week"]).size().unstack(fill_value=0)
            .reindex(index=branches, columns=range(weeks), fill_value=0))
    C, how = _capacity(ctx, P, plan)
    labels = [(P + timedelta(days=7 * w)).strftime("%d %b") for w in range(weeks)]
    total = pd.DataFrame({"week": range(weeks), "week_start": [(P + timedelta(days=7 * w)).isoformat()
                                                               for w in range(weeks)],
                          "planned": grid.sum(axis=0).to_numpy(), "capacity": C})
    caps = _branch_caps(ctx, branches, weeks)
    long = grid.stack().rename("planned").reset_index()
    long["week_start"] = [(P + timedelta(days=7 * int(w))).isoformat() for w in long["week"]]
    long["capacity"] = np.nan if caps is None else caps.stack().reindex(
        pd.MultiIndex.from_frame(long[["branch_id", "week"]])).to_numpy()
    data = pd.concat([total.assign(branch_id="all branches"), long], ignore_index=True)[
        ["branch_id", "week", "week_start", "planned", "capacity"]]
    shown = grid.copy()
    shown.columns = labels
    full = int((total["planned"] >= C).sum()) if C > 0 else 0
    peak = long.loc[long["planned"].idxmax()] if len(long) and long["planned"].max() > 0 else None
    lines = [f"The current plan (made on {P:%d %B %Y}) starts {int(total['planned'].sum()):,} outreach windows over "
             f"the next {weeks} weeks. Capacity is {C:,} starts a week for all branches ({how}); {full} of the "
             f"{weeks} weeks are full."]
    if peak is not None:
        lines.append(f"The busiest branch-week is {peak['branch_id']} in the week of "
                     f"{pd.Timestamp(peak['week_start']):%d %B} with {int(peak['planned'])} starts.")
    if caps is None:
        lines.append("No capacity per branch is configured (schedule.branch_capacity_per_week or "
                     "schedule.branch_capacity_csv), so branch cells show counts only.")
    else:
        at_cap = int(((grid.to_numpy() >= caps.to_numpy()) & (caps.to_numpy() > 0)).sum())
        lines.append(f"Branch cells are shaded by their share of the branch's capacity; {at_cap} branch-weeks are at it.")
    gaps = total[(total["planned"] == 0)]
    if len(gaps):
        lines.append("Weeks without starts (blackout periods, or nothing worth starting): "
                     + ", ".join(pd.Timestamp(w).strftime("%d %b") for w in gaps["week_start"]) + ".")
    chart = Chart(charts.workload_chart(total.assign(label=labels), shown,
                                        None if caps is None else caps.set_axis(labels, axis=1)),
                  "Top: starts a week for all branches, with the capacity line. Below: starts per branch and week.")
    return Section("workload", title, paragraphs(*lines), (chart,), data={"workload": data},
                   headline=(("outreach windows in the current plan", f"{int(total['planned'].sum()):,}"),))
