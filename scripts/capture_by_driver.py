"""Where the model's plan loses to the truth reference: capture by what set each signing's date.

Synthetic exports only: the truth folder's ``driver`` column says what set
each intended signing date (habit, mileage, launch, fault, battery). Runs the
backtest of ``timing backtest`` (no records written) and splits every
repurchase in the origins' horizons by driver and by whether the customer's
habit was known on T (an earlier renewal), then prints the share each policy
captured.

    python scripts/capture_by_driver.py --store data/timing.duckdb --truth data/demo.truth \\
        --origins 2025-10-31,2026-01-31,2026-04-30,2026-07-31
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from timing.asof import open_snapshot
from timing.backtest import run_backtest
from timing.config import FitSettings, ScheduleSettings
from timing.features import features_at
from timing.fitting import read_truth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path("data/timing.duckdb"))
    p.add_argument("--truth", type=Path, default=Path("data/demo.truth"))
    p.add_argument("--origins", default="2025-10-31,2026-01-31,2026-04-30,2026-07-31")
    p.add_argument("--families", default="discrete,cox")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    origins = [date.fromisoformat(x) for x in a.origins.split(",")]
    fit = FitSettings(families=tuple(a.families.split(",")))
    cfg = ScheduleSettings()
    result = run_backtest(a.store, origins, fit, cfg, truth=a.truth, workers=a.workers, out_dir=None, record=False)
    driver = read_truth(a.truth).set_index("contract_id")["driver"]
    frames = []
    for run in result.runs:
        ids = run.model.facts["contract_id"].to_numpy()
        day = run.realised.signing_day
        signed = (day > 0) & (day <= cfg.horizon_days)
        with open_snapshot(a.store, run.model.cutoff) as snap:
            known = features_at(snap.con, snap.schema, run.model.cutoff).set_index("contract_id")["habit_offset_days"]
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
