"""Strategy simulation: other ways of planning outreach, on the same origins and the same fitted models.

Each origin's model is fitted once (by :func:`timing.backtest.run_backtest`);
a strategy only changes the plan: the policy (naive, model, truth), the
solver, the window length, a contact rule, or the weekly capacity as a
multiple of the origin's comparison capacity. Every plan is judged by the
capture definition of metrics.md.

Notes
-----
Capture counts a repurchase when its window *starts* within the ``CAPTURE_DAYS`` (60) days
before the signing, so the window length does not change it (nor the plan:
the planner values a start by the capture span). What a longer window
changes is how many signings fall while the window is open
(``signed_in_window``), which the table reports beside capture.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from timing.backtest.metrics import signed_in_window
from timing.backtest.origin import OriginRun, policy_starts
from timing.backtest.run import BacktestResult
from timing.config import ScheduleSettings
from timing.core import runtime
from timing.schedule.policies import capture

CAPACITY_MULTIPLIERS = (0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Strategy:
    """A policy with its schedule settings, at a multiple of the comparison capacity."""

    name: str
    policy: str = "model"  # "model", "naive" or "truth"
    capacity_multiplier: float = 1.0
    overrides: tuple[tuple[str, Any], ...] = ()  # ScheduleSettings fields, e.g. (("solver", "exact"),)

    def settings(self, base: ScheduleSettings) -> ScheduleSettings:
        return dataclasses.replace(base, **dict(self.overrides))


def default_strategies(with_truth: bool = False) -> list[Strategy]:
    """Naive and model at 0.5x..2x capacity, greedy vs exact, window lengths, contact-gap rules."""
    out = [Strategy(f"{p} x{m:g}", p, m) for p in ("naive", "model", *(("truth",) if with_truth else ()))
           for m in CAPACITY_MULTIPLIERS]
    out += [Strategy(f"model {s}", overrides=(("solver", s),)) for s in ("greedy", "exact")]
    out += [Strategy(f"model window {d}d", overrides=(("window_days", d),)) for d in (14, 28, 42)]
    out += [Strategy(f"model contact gap {d}d", overrides=(("min_days_since_contact", d),)) for d in (30, 60, 90)]
    return out


@dataclass(frozen=True)
class StrategyResult:
    """The trade-off table: one row per origin and strategy."""

    table: pd.DataFrame
    seconds: float

    def tradeoff(self) -> pd.DataFrame:
        """Mean over origins per strategy, in the order the strategies were given."""
        cols = ["capacity_per_week", "windows", "captured", "repurchases", "capture", "precision",
                "signed_in_window_share", "plan_seconds"]
        g = self.table.groupby("strategy", sort=False)[cols].mean()
        naive = g["capture"].get("naive x1")
        if naive is not None and naive > 0:
            g["lift_vs_naive"] = g["capture"] / naive
        return g

    def summary(self) -> str:
        n = self.table["cutoff"].nunique()
        lines = [f"strategies on {n} origins in {self.seconds:.0f} s (means over origins; "
                 "windows = contacts used; capture/precision per metrics.md)",
                 self.tradeoff().to_string(float_format=lambda v: f"{v:.3f}")]
        return "\n".join(lines)


def simulate_origin(run: OriginRun, strategies: Sequence[Strategy], base: ScheduleSettings) -> pd.DataFrame:
    """Plan and judge every strategy on one origin (plans only: the model is already fitted)."""
    rows, planned = [], {}  # planned: (policy, settings, capacity) -> start days, seconds
    signing = run.realised.signing_day
    horizon = min(base.horizon_days, max(run.realised.known_days, 0))
    for s in strategies:
        if s.policy == "truth" and run.realised.intended_day is None:
            continue
        cfg = s.settings(base)
        C = max(1, round(s.capacity_multiplier * run.capacity_per_week))
        key = (s.policy, cfg, C)
        if key not in planned:
            t0 = time.perf_counter()
            planned[key] = (policy_starts(run.model, run.realised, cfg, C, (s.policy,))[s.policy],
                            time.perf_counter() - t0)
        start, seconds = planned[key]
        c = capture(start, signing, horizon, cfg.capture_days)
        inside = signed_in_window(start, signing, horizon, cfg.window_days)
        rows.append({
            "cutoff": run.model.cutoff, "strategy": s.name, "policy": s.policy,
            "capacity_multiplier": s.capacity_multiplier, "capacity_per_week": C, "solver": cfg.solver,
            "window_days": cfg.window_days, "min_days_since_contact": cfg.min_days_since_contact,
            "windows": c.windows, "captured": c.captured, "repurchases": c.repurchases,
            "capture": c.capture, "precision": c.precision,
            "signed_in_window_share": inside / c.repurchases if c.repurchases else np.nan,
            "partial": run.partial, "plan_seconds": seconds,
        })
    return pd.DataFrame(rows)


def simulate_strategies(
    backtest: BacktestResult,
    schedule: ScheduleSettings,
    strategies: Sequence[Strategy] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> StrategyResult:
    """Compare planning strategies on the origins of a backtest, reusing its fitted models and scores.

    Parameters
    ----------
    backtest
        A :func:`~timing.backtest.run_backtest` result: its models, contact
        facts, outcomes and comparison capacities per origin.
    schedule
        The base schedule settings each strategy modifies (the backtest's own).
    strategies
        Default: :func:`default_strategies` (with the truth policy when the
        backtest had a truth folder).
    workers
        Origins planned in this many processes (1: in this process).

    Examples
    --------
    >>> bt = run_backtest(store, origins, FitSettings(), ScheduleSettings(), truth=truth)  # doctest: +SKIP
    >>> print(simulate_strategies(bt, ScheduleSettings()).summary())  # doctest: +SKIP
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    runs = list(backtest.runs)
    if strategies is None:
        strategies = default_strategies(any(r.realised.intended_day is not None for r in runs))
    say(f"{len(strategies)} strategies on {len(runs)} origins")
    if workers <= 1 or len(runs) <= 1:
        frames = [simulate_origin(r, strategies, schedule) for r in runs]
    else:
        n, threads = runtime.split(min(workers, len(runs)))
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=runtime.worker_init, initargs=(threads,)) as pool:
            frames = list(pool.map(simulate_origin, runs, [strategies] * len(runs), [schedule] * len(runs)))
    table = pd.concat(frames, ignore_index=True)
    return StrategyResult(table, time.perf_counter() - t0)
