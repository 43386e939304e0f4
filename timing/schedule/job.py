"""The schedule as a job: read scores and rules from the store, plan, write the plan back.

The store keeps every plan in ``schedules`` (one row per contract with a
window or a cancelled one, by ``as_of``); the latest as-of is the current
plan. Re-planning on the same as-of replaces that day's plan, compared with
the plan of the latest earlier as-of.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd

from timing.config import ScheduleSettings
from timing.core.files import write_csv_atomic
from timing.schedule import OUTPUT_COLUMNS, Plan, default_capacity, plan_windows
from timing.schedule.rules import contact_facts
from timing.scores.scoring import forecast_from_scores
from timing.store.asof import open_snapshot
from timing.store.db import StoreError, connect, table_exists, writing
from timing.store.tables import SCHEDULES, replace_rows


def read_scores(store: Path, as_of: date) -> pd.DataFrame:
    con = connect(store)
    try:
        if not table_exists(con, "scores"):
            raise StoreError("no scores in the store: run `timing score` first")
        scores = con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY contract_id", [as_of]).df()
    finally:
        con.close()
    if scores.empty:
        raise StoreError(f"no scores for {as_of}: run `timing score --as-of {as_of}` first")
    return scores


def previous_plan(store: Path, as_of: date) -> pd.DataFrame | None:
    con = connect(store)
    try:
        if not table_exists(con, "schedules"):
            return None
        return con.execute(
            """SELECT contract_id, window_start, window_end FROM schedules
               WHERE as_of = (SELECT max(as_of) FROM schedules WHERE as_of < ?) AND status <> 'cancelled'""",
            [as_of],
        ).df()
    finally:
        con.close()


def read_branch_capacity(path: str | None) -> pd.DataFrame | None:
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such branch capacity file")
    df = pd.read_csv(p, dtype={"branch_id": str})
    missing = {"branch_id", "week", "capacity"} - set(df.columns)
    if missing:
        raise ValueError(f"{p}: branch capacity needs columns branch_id, week, capacity (missing {sorted(missing)[0]})")
    if (df["capacity"] < 0).any() or df["week"].isna().any():
        raise ValueError(f"{p}: capacities must be non-negative and weeks given")
    return df




def save_plan(store: Path, plan: Plan) -> None:
    rows = plan.windows.copy()
    rows["as_of"] = plan.as_of
    rows["capacity_per_week"] = plan.capacity_per_week  # the report reads the capacity a plan had
    with writing(store) as con:
        replace_rows(con, SCHEDULES, rows, {"as_of": plan.as_of})


def run_schedule(
    store: Path,
    cfg: ScheduleSettings,
    as_of: date | None = None,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """Plan outreach windows from the store's scores on ``as_of`` and save the plan."""
    say = progress or (lambda _m: None)
    with open_snapshot(store, as_of) as snap:
        day = snap.as_of
        facts = contact_facts(snap.con, snap.schema, day)
    scores = read_scores(store, day)
    facts = facts[facts["contract_id"].isin(scores["contract_id"])].reset_index(drop=True)
    scores = scores.set_index("contract_id").loc[facts["contract_id"]].reset_index()
    forecast = forecast_from_scores(scores)
    capacity = cfg.capacity_per_week if cfg.capacity_per_week is not None else default_capacity(forecast, cfg)
    say(f"planning {len(facts):,} open contracts, capacity {capacity:,} starts a week")
    plan = plan_windows(facts, scores, forecast, day, cfg, capacity, read_branch_capacity(cfg.branch_capacity_csv),
                        previous_plan(store, day))
    save_plan(store, plan)
    if out is not None:
        planned = plan.planned[OUTPUT_COLUMNS].copy()
        planned["p_signing_in_window"] = planned["p_signing_in_window"].round(4)
        write_csv_atomic(planned, out)
    return plan
