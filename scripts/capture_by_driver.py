"""Where the model's plan loses to the truth reference: capture by what set each signing's date.

Synthetic exports only: the truth folder's ``driver`` column says what set
each intended signing date (habit, mileage, launch, fault, battery). Runs the
backtest of ``timing backtest`` (no records written) and splits every
repurchase in the origins' horizons by driver and by whether the customer's
habit was known on T (an earlier renewal), then prints the share each policy
captured.

    python scripts/capture_by_driver.py --store data/timing.duckdb --truth data/demo.truth \\
        --origins 2025-10-31,2026-01-31,2026-04-30,2026-07-31 [--oracles]
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from timing.backtest import run_backtest
from timing.backtest.origin import start_day
from timing.config import FitSettings, ScheduleSettings
from timing.features.open_contracts import features_at
from timing.fitting.fit import read_truth
from timing.schedule import plan_windows, start_days, window_values
from timing.schedule.policies import capture, truth_values
from timing.store.asof import open_snapshot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path("data/timing.duckdb"))
    p.add_argument("--truth", type=Path, default=Path("data/demo.truth"))
    p.add_argument("--origins", default="2025-10-31,2026-01-31,2026-04-30,2026-07-31")
    p.add_argument("--families", default=",".join(FitSettings().families))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--oracles", action="store_true",
                   help="also plan with partly clairvoyant values: how much each kind of knowledge is worth")
    a = p.parse_args(argv)
    origins = [date.fromisoformat(x) for x in a.origins.split(",")]
    fit = FitSettings(families=tuple(a.families.split(",")))
    cfg = ScheduleSettings()
    result = run_backtest(a.store, origins, fit, cfg, truth=a.truth, workers=a.workers, out_dir=None, record=False)
    driver = read_truth(a.truth).set_index("contract_id")["driver"]
    stay = simulated_stay(a.truth) if a.oracles else None
    frames, oracle_rows = [], []
    for run in result.runs:
        ids = run.model.facts["contract_id"].to_numpy()
        day = run.realised.signing_day
        signed = (day > 0) & (day <= cfg.horizon_days)
        with open_snapshot(a.store, run.model.cutoff) as snap:
            known = features_at(snap.con, snap.schema, run.model.cutoff).set_index("contract_id")["habit_offset_days"]
        if a.oracles:
            oracle_rows.append(oracles(run, known.reindex(ids).notna().to_numpy(), cfg,
                                       stay.reindex(ids).to_numpy(float)))
        rows = pd.DataFrame({"driver": driver.reindex(ids).to_numpy()[signed],
                             "habit known": known.reindex(ids).notna().to_numpy()[signed]})
        for policy, start in run.starts.items():
            rows[policy] = ((start >= day - cfg.capture_days) & (start <= day))[signed]
        frames.append(rows)
    d = pd.concat(frames, ignore_index=True)
    policies = [c for c in ("model", "naive", "truth") if c in d]
    table = d.groupby(["driver", "habit known"])[policies].mean().round(2)
    table.insert(0, "repurchases", d.groupby(["driver", "habit known"]).size())
    table.loc[("all", ""), :] = [len(d), *np.round(d[policies].mean().to_numpy(), 3)]
    print(f"capture by driver over {len(origins)} origins ({', '.join(map(str, origins))}), families {a.families}")
    print(table.to_string())
    if a.oracles:
        o = pd.DataFrame(oracle_rows).set_index("cutoff")
        o.loc["mean"] = o.mean()
        print("\ncapture with partly clairvoyant plans (same planner, capacity and rules; see the docstring)")
        print(o.round(3).to_string())
    return 0


def simulated_stay(truth: Path) -> pd.Series:
    """Each contract's probability of renewing rather than leaving, as the simulator drew it
    (``timing.demo.portfolio``: ``sigmoid(loyalty + 0.45 min(generation, 4))``, the customer's latent
    loyalty), by contract id: the generator run again from the truth folder's seed and arguments
    (the demo's truth holds the outcome of that draw, not its probability)."""
    from timing.demo import catalog as cat
    from timing.demo.export import contract_numbers
    from timing.demo.generate import chunks, simulate_chunk
    from timing.demo.portfolio import stay_probability

    meta = json.loads((truth / "meta.json").read_text())
    as_of_day = cat.day_number(date.fromisoformat(meta["as_of"]))
    parts = []
    for k, seq, first, n in chunks(meta["seed"], int(meta["customers"])):
        _rng, cust, p = simulate_chunk(seq, first + 1, n, as_of_day)
        parts.append(pd.Series(stay_probability(cust.loyalty[p.customer], p.generation),
                               index=[f"K{x:010d}" for x in contract_numbers(p, cust, k)]))
    out = pd.concat(parts)
    truth_ids = read_truth(truth)["contract_id"]
    if not truth_ids.isin(out.index).all() or len(out) != len(truth_ids):
        raise ValueError("the generator run again does not give the truth folder's contracts")
    return out


def oracles(run, known: np.ndarray, cfg: ScheduleSettings, stay: np.ndarray) -> dict:  # noqa: ANN001
    """Capture of plans whose window values know part of what happened (synthetic data only).

    - ``model``: the model's values, P(signing in [s, s+60]);
    - ``knows_stay``: the model's values with its odds of renewing rather than being lost (from its
      12-month cumulative incidences) replaced by the simulator's own probability (``stay``, the
      customer's latent loyalty): the best any model of *whether* could know, short of the draw
      itself (contracts with under 5% of either outcome in 12 months keep their values);
    - ``knows_who``: the model's values of the contracts that will sign within the horizon (+60 days)
      rescaled to certainty, zero for the others (knows *whether*, not when);
    - ``knows_when_habit_known``: for customers with a known habit who will sign, the model's
      probability of signing placed exactly on the right windows (knows *when*, not whether; the
      others keep the model's values);
    - ``knows_when``: the same for every contract that will sign;
    - ``truth``, ``naive``: the reference policies.
    """
    m, T = run.model, run.model.cutoff
    ids = m.facts["contract_id"].to_numpy()
    starts = start_days(cfg)
    values = window_values(m.forecast, starts, cfg.capture_days)
    intended = run.realised.intended_day
    will = np.isfinite(intended) & (intended > 0) & (intended <= cfg.horizon_days + cfg.capture_days)
    p_sign = m.forecast.cif_at_days(np.array([cfg.horizon_days + cfg.capture_days]))[:, 0]
    exact = truth_values(np.where(np.isfinite(intended), intended, -1e9), starts, cfg.capture_days) * p_sign[:, None]
    fc = m.forecast
    signs, lost = fc.cumulative_signed[:, -1], fc.cumulative_lost[:, -1]
    resolved = signs + lost >= 0.05
    stay_model = np.where(resolved, signs / np.maximum(signs + lost, 1e-12), 1.0)
    ratio = np.where(resolved & np.isfinite(stay), stay / np.maximum(stay_model, 1e-6), 1.0)
    variants = {
        "model": values,
        "knows_stay": np.clip(values * ratio[:, None], 0, 1),
        "knows_who": values / np.maximum(p_sign, 1e-12)[:, None] * will[:, None],
        "knows_when_habit_known": np.where((will & known)[:, None], exact, values),
        "knows_when": np.where(will[:, None], exact, values),
    }
    out = {"cutoff": T}
    for name, v in variants.items():
        plan = plan_windows(m.facts, m.scores, m.forecast, T, cfg, run.capacity_per_week, values=v)
        out[name] = capture(start_day(plan.planned, ids, T), run.realised.signing_day, cfg.horizon_days,
                            cfg.capture_days).capture
    for policy in ("truth", "naive"):
        out[policy] = capture(run.starts[policy], run.realised.signing_day, cfg.horizon_days,
                              cfg.capture_days).capture
    return out


if __name__ == "__main__":
    raise SystemExit(main())
