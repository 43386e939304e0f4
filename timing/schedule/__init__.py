"""``timing schedule``: from signing probabilities to outreach windows a team can work.

Notes
-----
Weeks are counted from the as-of date T: week w holds start days
``[7w, 7w + 6]`` after T, and a window may start on days 0..horizon. The
value of starting on day s is the predicted probability that the signing
falls in ``[s, s + capture_days]`` (the capture definition of metrics.md),
times the contract's monthly payment relative to the median when
``weight = "value"``. A contract gets at most one window, of
``window_days`` days. A customer's windows that start in the same week are
one outreach (one conversation about several contracts, as with a fleet's
account manager): they start on the same day, and the rule of at most
``max_starts_per_customer_90d`` outreaches in any 90 days counts them once
(each still takes one unit of the week's capacity).

Stability: the last plan (the latest run before T) keeps a contract's window
unless another start is better by more than ``keep_threshold`` (15% by
default); a kept window keeps its start date. Each contract's plan status is
``new``, ``kept``, ``moved`` or ``cancelled`` (it had a window, now has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from timing.config import ScheduleSettings
from timing.core.conventions import priority
from timing.models.base import MonthlyForecast
from timing.schedule.plan import Candidates, Capacity, solve_exact, solve_greedy, total_value
from timing.schedule.rules import NO_START_DAY, apply_rules, blackout_mask

NOT_PLANNED = "not planned: capacity or a low chance within the horizon"
OUTPUT_COLUMNS = ["contract_id", "customer_id", "branch_id", "window_start", "window_end", "channel", "priority",
                  "p_signing_in_window", "expected_signing_date", "reasons", "status"]


@dataclass(frozen=True)
class Plan:
    as_of: date
    windows: pd.DataFrame  # planned windows (OUTPUT_COLUMNS + region, week, as_of) and cancelled rows
    reasons: dict[str, int]  # why open contracts got no window
    load: pd.DataFrame  # week, planned, capacity (overall)
    capacity_per_week: int
    solver: str
    objective: float
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def planned(self) -> pd.DataFrame:
        return self.windows[self.windows["status"] != "cancelled"]

    def summary(self) -> str:
        p = self.planned
        lines = [f"planned {len(p):,} outreach windows from {self.as_of} "
                 f"(capacity {self.capacity_per_week:,} starts a week, solver {self.solver})"]
        status = p["status"].value_counts().reindex(["new", "kept", "moved"], fill_value=0)
        cancelled = int((self.windows["status"] == "cancelled").sum())
        lines.append(f"  since the last plan: {status['new']:,} new, {status['kept']:,} kept, "
                     f"{status['moved']:,} moved, {cancelled:,} cancelled")
        lines.append(f"  expected signings inside their window: {p['p_signing_in_window'].sum():,.1f}")
        if self.reasons:
            lines.append("  open contracts without a window:")
            lines += [f"    {r}: {n:,}" for r, n in self.reasons.items()]
        lines.append("  load per week (planned / capacity):")
        row = "    " + "  ".join(f"w{int(r.week):02d} {int(r.planned)}/{int(r.capacity)}" for r in self.load.itertuples())
        lines.append(row)
        return "\n".join(lines)


def start_days(cfg: ScheduleSettings) -> np.ndarray:
    return np.arange(0, cfg.horizon_days + 1, 7)


def window_values(forecast: MonthlyForecast, starts: np.ndarray, capture_days: int) -> np.ndarray:
    """P(signing within ``capture_days`` after each start day), shape (contracts, starts)."""
    return forecast.cif_at_days(starts + capture_days) - forecast.cif_at_days(starts)


def default_capacity(forecast: MonthlyForecast, cfg: ScheduleSettings) -> int:
    """``capacity_factor`` x the expected signings per week over the horizon."""
    expected = float(forecast.cif_at_days(np.array([cfg.horizon_days]))[:, 0].sum())
    return max(1, round(cfg.capacity_factor * expected / (cfg.horizon_days / 7)))


def plan_windows(
    facts: pd.DataFrame,
    scores: pd.DataFrame,
    forecast: MonthlyForecast,
    as_of: date,
    cfg: ScheduleSettings,
    capacity_per_week: int,
    branch_capacity: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    values: np.ndarray | None = None,
) -> Plan:
    """Plan windows for the contracts in ``facts`` (rows aligned with ``scores`` and ``forecast``).

    ``values`` overrides the model's window values (the truth policy uses it).
    """
    facts = apply_rules(facts.reset_index(drop=True), as_of, cfg)
    n = len(facts)
    starts = start_days(cfg)
    W = len(starts)
    base_values = window_values(forecast, starts, cfg.capture_days) if values is None else values
    v = base_values.copy()
    if cfg.weight == "value":
        pay = facts["monthly_payment"].astype(float)
        v *= (pay / pay.median()).fillna(1.0).to_numpy()[:, None]
    allowed = ~blackout_mask(as_of, starts, cfg)
    feasible = (facts["excluded"].to_numpy() == "")[:, None] & allowed[None, :]
    feasible &= starts[None, :] >= facts["earliest_start"].to_numpy()[:, None]
    no_day = (facts["excluded"].to_numpy() == "") & ~feasible.any(axis=1)
    facts.loc[no_day, "excluded"] = NO_START_DAY

    # stability: the week of the last plan's window gets a bonus of keep_threshold
    prev_week = np.full(n, -1)
    prev_start = pd.Series(pd.NaT, index=facts.index, dtype="datetime64[ns]")
    if previous is not None and len(previous):
        prev = previous.set_index("contract_id").reindex(facts["contract_id"])
        ps = pd.to_datetime(prev["window_start"]).to_numpy()
        pe = pd.to_datetime(prev["window_end"]).to_numpy()
        T = np.datetime64(pd.Timestamp(as_of))
        live = ~np.isnat(ps) & (pe >= T)
        day = ((ps - T) / np.timedelta64(1, "D"))
        wk = np.floor(np.where(live, np.maximum(day, 0), -1) / 7).astype(np.int64)
        prev_week = np.where(live & (wk < W), wk, -1)
        prev_start = pd.Series(np.where(prev_week >= 0, ps, np.datetime64("NaT")), index=facts.index,
                               dtype="datetime64[ns]")
        rows = np.flatnonzero(prev_week >= 0)
        v[rows, prev_week[rows]] *= 1 + cfg.keep_threshold

    branches, branch_code = np.unique(facts["branch_id"].astype(str).to_numpy(), return_inverse=True)
    _, customer_code = np.unique(facts["customer_id"].astype(str).to_numpy(), return_inverse=True)
    cands = Candidates.from_matrix(v, feasible, branch_code, customer_code, cfg.candidate_weeks, prev_week)
    cap = Capacity(np.full(W, int(capacity_per_week)), _branch_caps(branches, W, cfg, branch_capacity, as_of),
                   cfg.max_starts_per_customer_90d)
    solver = cfg.solver
    if solver == "auto":
        solver = "exact" if len(cands) <= cfg.exact_max_variables else "greedy"
    chosen = solve_exact(cands, cap) if solver == "exact" else solve_greedy(cands, cap)

    week = np.full(n, -1)
    week[cands.contract[chosen]] = cands.week[chosen]
    planned = week >= 0
    kept = planned & (week == prev_week)
    start = pd.Series(pd.NaT, index=facts.index, dtype="datetime64[ns]")
    t0 = pd.Timestamp(as_of)
    start[planned] = t0 + pd.to_timedelta(starts[week[planned]], unit="D")
    keep_start = kept & prev_start.notna().to_numpy()
    start[keep_start] = prev_start[keep_start].clip(lower=t0)
    # a customer's windows in one week are one outreach, on one day: a kept window's where there is one
    group = np.where(planned, customer_code * W + week, -1)
    anchor = pd.Series(start.to_numpy()[keep_start], index=group[keep_start])
    anchor = anchor[~anchor.index.duplicated()]
    follow = planned & ~keep_start & np.isin(group, anchor.index.to_numpy())
    start[follow] = anchor.reindex(group[follow]).to_numpy()
    offset = ((start - t0).dt.days).to_numpy(float)
    p_in = np.full(n, np.nan)
    if planned.any():
        rows = np.flatnonzero(planned)
        if values is None:  # the model's probability for the actual start day (a kept start may be mid-week)
            sub = forecast.subset(rows)
            p_in[rows] = sub.cif_rowwise(offset[rows] + cfg.capture_days) - sub.cif_rowwise(offset[rows])
        else:
            p_in[rows] = base_values[rows, week[rows]]

    status = np.where(planned, np.where(prev_week < 0, "new", np.where(kept, "kept", "moved")), "")
    had_previous = prev_week >= 0
    status = np.where(~planned & had_previous, "cancelled", status)
    out = pd.DataFrame({
        "as_of": as_of,
        "contract_id": facts["contract_id"], "customer_id": facts["customer_id"], "branch_id": facts["branch_id"],
        "region": facts["region"],
        "window_start": start.dt.date, "window_end": (start + pd.Timedelta(days=cfg.window_days - 1)).dt.date,
        "week": np.where(planned, np.floor(offset / 7), np.nan),
        "channel": np.where(planned, facts["channel"], None),
        "priority": priority(p_in),
        "p_signing_in_window": p_in,
        "expected_signing_date": scores["expected_signing_date"].to_numpy(),
        "reasons": scores["reasons"].to_numpy(),
        "status": status,
    })
    out = out[status != ""].sort_values(["window_start", "priority", "p_signing_in_window", "contract_id"],
                                        ascending=[True, True, False, True], na_position="last")
    reasons = facts.loc[~planned, "excluded"].replace("", NOT_PLANNED).value_counts().to_dict()
    load = pd.DataFrame({"week": np.arange(W), "planned": np.bincount(week[planned], minlength=W)[:W],
                         "capacity": cap.week})
    return Plan(as_of, out.reset_index(drop=True), {str(k): int(n_) for k, n_ in reasons.items()}, load,
                int(capacity_per_week), solver, total_value(cands, chosen),
                {"candidates": float(len(cands)), "contracts": float(n)})


def _branch_caps(branches: np.ndarray, W: int, cfg: ScheduleSettings, table: pd.DataFrame | None,
                 as_of: date) -> np.ndarray | None:
    if table is None and cfg.branch_capacity_per_week is None:
        return None
    default = cfg.branch_capacity_per_week if cfg.branch_capacity_per_week is not None else np.iinfo(np.int32).max
    caps = np.full((len(branches), W), default, dtype=np.int64)
    if table is not None and len(table):
        code = {b: i for i, b in enumerate(branches)}
        t = table[table["branch_id"].astype(str).isin(code) & table["week"].between(0, W - 1)]
        caps[t["branch_id"].astype(str).map(code).to_numpy(), t["week"].astype(int).to_numpy()] = t["capacity"].astype(int)
    return caps
