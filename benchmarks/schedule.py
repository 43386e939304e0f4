"""Benchmark the outreach schedule (issue 4): 1,000,000 open contracts over 26 weeks.

Synthesises (seeded, numpy) a scratch DuckDB store shaped like an ingested
one (:mod:`timing.core.contract` columns): ``--contracts`` open contracts (default
1,000,000) of N / 1.19 customers (80 % private with one car, fleets sharing
the rest, as in the demo book), 20 branches in 6 regions, consent flags and
preferred channels drawn as :mod:`timing.demo.population` draws them, 3 %
do-not-contact, a last contact in the past year for 40 % of customers;
scheduled ends from 5 months ago to 3 years ahead. The ``scores`` table
(the columns ``timing score`` writes) holds, per contract, a signing
probability spread over the model's 24 half-month steps as a bump around a
date near the scheduled end (total 5-95 %). Scores are written for the as-of
date and for a week earlier, and a plan is made (greedy, not timed) for the
week before, so the measured run sees a previous plan and keeps or moves its
windows, as a weekly production run does.

Each measured :func:`timing.schedule.job.run_schedule` (default settings:
182-day horizon = 27 weekly start days, 28-day windows, capacity 1.2 x the
expected weekly signings, 60 days since the last contact, at most 2 starts a
customer in 90 days, the Christmas blackout, 6 candidate weeks a contract)
runs in a fresh Python process and reports its wall time, CPU time, peak RSS
(``VmHWM``), the plan's size and objective, and the time of its sub-steps
(wrapped library functions). ``--solver greedy`` (default) is measured at
every ``--contracts`` size; ``--exact-sizes`` then runs ``solver = "exact"``
(HiGHS) at growing sizes until one takes longer than 60 s, to say how large
the exact solver can go, and compares its objective with the greedy's on
the same store.

Target (issue 4, 2 cores): 1M open contracts over 26 weeks <= 60 s and <= 4 GB.

Usage::

    python benchmarks/schedule.py                                  # greedy at 1M, exact up the sizes
    python benchmarks/schedule.py --contracts 100000 1000000 --exact-sizes
    python benchmarks/schedule.py --contracts 200000 --no-record --profile

Stores go to ``benchmarks/.cache/schedule/`` (ignored by git) and are
reused when built with the same parameters; ``--clean`` deletes them at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402
    CACHE,
    RESULTS,
    Probe,
    _normalise,
    append_results,
    code_version,
    command_line,
    loadavg,
    machine,
    mib,
    now_utc,
    profile_table,
    profiled,
    run_worker,
    steps_table,
    wrap,
)

SCRIPT = Path(__file__).resolve()
SCHED_CACHE = CACHE / "schedule"
AS_OF = date(2026, 10, 31)
BUILD_VERSION = 2
TARGET_SECONDS = 60.0
TARGET_RSS_MIB = 4 * 1024.0
CONTRACTS_PER_CUSTOMER = 1.19  # open contracts per customer in the demo book (11,898 / 10,000)
BRANCHES = tuple(f"BR{i + 1:02d}" for i in range(20))
REGIONS = ("north", "south", "east", "west", "central", "metro")
CHANNELS = ("email", "phone", "sms", "letter")
STEPS = 24
MARKS = [
    ("timing.schedule.job:open_snapshot", "open snapshot (as-of views, outcomes)"),
    ("timing.schedule.job:contact_facts", "contact facts (SQL)"),
    ("timing.schedule.job:read_scores", "read scores"),
    ("timing.schedule.job:forecast_from_scores", "forecast from scores"),
    ("timing.schedule.job:default_capacity", "default capacity"),
    ("timing.schedule.job:previous_plan", "previous plan"),
    ("timing.schedule:apply_rules", "contact rules"),
    ("timing.schedule:window_values", "window values"),
    ("timing.schedule:Candidates.from_matrix", "candidates (top weeks)"),
    ("timing.schedule:solve_greedy", "solve (greedy)"),
    ("timing.schedule:solve_exact", "solve (exact, HiGHS)"),
    ("timing.schedule.job:save_plan", "save plan to the store"),
    ("timing.core.files:write_csv_atomic", "write plan CSV"),
]


# ---------------------------------------------------------------------------
# the scratch store


def build_store(path: Path, n: int, seed: int) -> dict[str, Any]:
    """Write the scratch store (every table of the data contract, scores for two days, last week's plan)."""
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from timing.core import contract as schema

    rng = np.random.default_rng(seed)
    T = np.datetime64(AS_OF.isoformat(), "D")
    n_cust = max(1, round(n / CONTRACTS_PER_CUSTOMER))
    business = rng.random(n_cust) < 0.2
    # every customer holds one contract; the others go to fleets (business customers, skewed)
    fleet_ids = np.flatnonzero(business) if business.any() else np.arange(n_cust)
    weights = rng.pareto(1.5, len(fleet_ids)) + 1
    extra = rng.choice(fleet_ids, n - n_cust, p=weights / weights.sum()) if n > n_cust else np.zeros(0, int)
    owner = np.concatenate([np.arange(min(n, n_cust)), extra])
    owner = owner[rng.permutation(n)]

    def ids(prefix: str, idx: np.ndarray, width: int) -> pa.Array:
        return pa.array(np.char.add(prefix, np.char.zfill(idx.astype(str), width)))

    region = rng.integers(0, len(REGIONS), n_cust)
    branch = np.where(business & (rng.random(n_cust) < 0.6), rng.integers(18, 20, n_cust),
                      np.minimum(region * 3 + rng.integers(0, 3, n_cust), 17))
    # consent in CHANNELS order: email, phone, sms, letter
    consent_p = np.where(business[:, None], [0.90, 0.95, 0.30, 0.60], [0.60, 0.75, 0.40, 0.85])
    consent = rng.random((n_cust, 4)) < consent_p
    noise = np.where(consent, rng.random((n_cust, 4)), -1.0)
    preferred = np.where(consent.any(axis=1) & (rng.random(n_cust) < 0.85), noise.argmax(axis=1), -1)
    customers = pa.table({
        "customer_id": ids("CU", np.arange(n_cust), 8),
        "customer_type": pa.array(np.where(business, "business", "private")),
        "birth_year": pa.array(rng.integers(1940, 2006, n_cust), pa.int64(), mask=business),
        "region": pa.array(np.array(REGIONS)[region]),
        "branch_id": pa.array(np.array(BRANCHES)[branch]),
        **{f"consent_{ch}": pa.array(consent[:, i]) for i, ch in enumerate(CHANNELS)},
        "do_not_contact": pa.array(rng.random(n_cust) < 0.03),
        "preferred_channel": pa.array(np.array(CHANNELS)[np.maximum(preferred, 0)], mask=preferred < 0),
    })
    days_to_end = rng.integers(-150, 3 * 365, n)
    term_days = rng.choice(np.array([730, 1096, 1461]), n)
    term_days = np.where(term_days < days_to_end + 30, 1461, term_days)  # every contract started by T - 30
    start = T + (days_to_end - term_days)
    # a customer's contracts were all signed before the first of them started (a fleet deal), so the
    # data contract's successor inference never links them and every contract stays open
    first_start = np.full(n_cust, np.iinfo(np.int64).max)
    np.minimum.at(first_start, owner, start.astype(np.int64))
    signed = (first_start - rng.integers(7, 60, n_cust))[owner].astype("datetime64[D]")
    contracts = pa.table({
        "contract_id": ids("K", np.arange(n), 10),
        "customer_id": ids("CU", owner, 8),
        "vehicle_id": ids("V", np.arange(n), 10),
        "product": pa.array(np.array(["lease", "balloon", "hire_purchase"])[rng.choice(3, n, p=[0.7, 0.2, 0.1])]),
        "signed_date": pa.array(signed),
        "start_date": pa.array(start),
        "scheduled_end_date": pa.array(T + days_to_end),
        "annual_km_allowance": pa.array(rng.choice(np.array([10_000, 15_000, 20_000, 25_000, 30_000]), n)),
        "monthly_payment": pa.array(np.round(rng.lognormal(np.log(450), 0.35, n), 2)),
        "currency": pa.array(np.full(n, "EUR")),
        "actual_end_date": pa.nulls(n, pa.date32()),
        "end_type": pa.nulls(n, pa.string()),
        "predecessor_contract_id": pa.nulls(n, pa.string()),
    })
    contacted = np.flatnonzero(rng.random(n_cust) < 0.4)
    contacts = pa.table({
        "customer_id": ids("CU", contacted, 8),
        "contract_id": pa.nulls(len(contacted), pa.string()),
        "contacted_at": pa.array((T - rng.integers(1, 366, len(contacted))).astype("datetime64[s]")
                                 + rng.integers(8 * 3600, 18 * 3600, len(contacted)).astype("timedelta64[s]")),
        "channel": pa.array(np.array(CHANNELS)[rng.integers(0, 4, len(contacted))]),
        "outcome": pa.array(np.array(["no_response", "declined", "interested", "appointment"])[
            rng.choice(4, len(contacted), p=[0.5, 0.2, 0.2, 0.1])]),
    })

    # scores: a bump of signing probability around a date near the scheduled end, in half-month steps
    step_days = 30.4375 / 2
    peak_day = days_to_end + rng.normal(-40, 80, n)
    width = rng.uniform(1.0, 3.5, n)
    total = rng.beta(3, 1.5, n) * 0.9 + 0.05
    k = np.arange(STEPS)
    bump = np.exp(-0.5 * ((k[None, :] + 0.5 - peak_day[:, None] / step_days) / width[:, None]) ** 2)
    full = np.sqrt(2 * np.pi) * width  # the bump's whole mass, partly beyond the horizon
    step = (total / full)[:, None] * bump
    step = np.minimum(step, 0.95 / STEPS * 4)
    cif = np.cumsum(step, axis=1)
    p_lost = 0.1 * (1 - cif[:, -1])
    months = step.reshape(n, 12, 2).sum(axis=2)
    mid = (k + 0.5) * step_days
    expected = np.where(cif[:, -1] > 0, (step * mid).sum(axis=1) / np.maximum(cif[:, -1], 1e-12), np.nan)

    def quantile_day(q: float) -> np.ndarray:
        hit = cif >= q * 1.0
        first = hit.argmax(axis=1)
        return np.where(hit.any(axis=1), (first + 1) * step_days, np.nan)

    def dates(offsets: np.ndarray, base: np.datetime64) -> pa.Array:
        ok = ~np.isnan(offsets)
        return pa.array(base + np.where(ok, np.round(offsets), 0).astype("timedelta64[D]"), mask=~ok)

    reasons_pool = np.array([
        "scheduled end in 2 months; signed 3 months early last time; 2 earlier renewals",
        "mileage allowance reached in 41 days; scheduled end in 5 months",
        "critical fault 2026-10-11; scheduled end passed 19 days ago, no successor yet",
        "signed 1 month after the end last time; battery health 81%",
        "habitual signing date just ahead; model launch next month",
        "scheduled end within a month",
    ])
    cust_of = np.asarray(owner)
    base_cols = {
        "contract_id": contracts["contract_id"], "customer_id": contracts["customer_id"],
        "vehicle_id": contracts["vehicle_id"], "branch_id": pa.array(np.array(BRANCHES)[branch[cust_of]]),
        "region": pa.array(np.array(REGIONS)[region[cust_of]]), "scheduled_end_date": contracts["scheduled_end_date"],
    }
    month_cols = {f"p_m{m + 1:02d}": pa.array(months[:, m]) for m in range(12)}
    step_cols = {f"step_{s + 1:02d}": pa.array(step[:, s]) for s in range(STEPS)}

    def scores_at(day: np.datetime64) -> pa.Table:
        return pa.table({
            "as_of": pa.array(np.full(n, day)), **base_cols, **month_cols,
            "p_signed": pa.array(cif[:, -1]), "p_lost": pa.array(p_lost),
            "expected_signing_date": dates(expected, day),
            "signing_date_q10": dates(quantile_day(0.1), day), "signing_date_q50": dates(quantile_day(0.5), day),
            "signing_date_q90": dates(quantile_day(0.9), day),
            "reasons": pa.array(reasons_pool[rng.integers(0, len(reasons_pool), n)]),
            "model_version": pa.array(np.full(n, "2026-10-31-discrete-bench")),
            "steps_per_month": pa.array(np.full(n, 2, dtype=np.int64)), **step_cols,
        })

    for q in (path, path.with_name(path.name + ".wal")):
        q.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    given = {"customers": customers, "contracts": contracts, "contacts": contacts}
    for t in schema.TABLES:
        cols = ", ".join(f'"{c.name}" {c.sql_type}' for c in t.columns)
        con.execute(f'CREATE TABLE "{t.name}" ({cols})')
        if t.name in given:
            con.register("src", given[t.name])
            con.execute(f'INSERT INTO "{t.name}" BY NAME SELECT * FROM src')
            con.unregister("src")
    con.execute("INSERT INTO vehicles (vehicle_id) SELECT vehicle_id FROM contracts")
    con.execute("CREATE TABLE export_info (as_of DATE, export_dir VARCHAR, ingested_at TIMESTAMP, "
                "as_of_inferred BOOLEAN)")
    con.execute("INSERT INTO export_info VALUES (?, 'synthetic (benchmarks/schedule.py)', now(), false)", [AS_OF])
    week_before = T - 7
    con.register("s0", scores_at(week_before))
    con.execute("CREATE TABLE scores AS SELECT * FROM s0")
    con.unregister("s0")
    con.register("s1", scores_at(T))
    con.execute("INSERT INTO scores SELECT * FROM s1")
    con.unregister("s1")
    con.execute("CHECKPOINT")
    con.close()

    # last week's plan (not timed): the measured run keeps or moves its windows
    from timing.config import ScheduleSettings
    from timing.schedule.job import run_schedule

    run_schedule(path, ScheduleSettings(solver="greedy"), as_of=AS_OF - timedelta(days=7))
    return {"customers": n_cust, "contracts": n, "contacts": len(contacted),
            "expected_signings_26w": float(pd.Series(cif[:, 12]).sum())}


def store_for(n: int, seed: int) -> tuple[Path, dict[str, Any]]:
    SCHED_CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / ".gitignore").exists():
        (CACHE / ".gitignore").write_text("*\n")
    path = SCHED_CACHE / f"n{n}-s{seed}.duckdb"
    manifest = path.with_suffix(".json")
    params = {"version": BUILD_VERSION, "contracts": n, "seed": seed}
    if path.exists() and manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("params") == params:
            return path, {**m, "cached": True}
    print(f"  building a scratch store of {n:,} open contracts ...")
    res = run_worker(SCRIPT, {"kind": "build", "path": str(path), "contracts": n, "seed": seed}, "build")
    m = {"params": params, "seconds": res["seconds"], "peak_rss_mib": res["peak_rss_mib"], **res["info"]}
    manifest.write_text(json.dumps(m, indent=2))
    return path, m


# ---------------------------------------------------------------------------
# the measured run


def worker(a: dict[str, Any]) -> dict[str, Any]:
    probe = Probe("imports", _normalise)
    info: dict[str, Any] = {}
    if a["kind"] == "plan":
        for target, label in MARKS:
            wrap(probe, target, label)

    def body() -> None:
        if a["kind"] == "build":
            probe.begin("build")
            info.update(build_store(Path(a["path"]), a["contracts"], a["seed"]))
            return
        from timing.config import ScheduleSettings
        from timing.schedule.job import run_schedule

        cfg = ScheduleSettings(solver=a["solver"])
        out = Path(a["path"]).with_name(Path(a["path"]).stem + f"-{a['solver']}.csv")
        probe.begin("plan")
        plan = run_schedule(Path(a["path"]), cfg, out=out, progress=probe.say)
        status = plan.planned["status"].value_counts().to_dict()
        info.update(windows=len(plan.planned), objective=plan.objective, solver=plan.solver,
                    capacity=plan.capacity_per_week, candidates=int(plan.stats["candidates"]),
                    contracts=int(plan.stats["contracts"]), status=status,
                    cancelled=int((plan.windows["status"] == "cancelled").sum()),
                    expected_in_windows=float(plan.planned["p_signing_in_window"].sum()),
                    reasons=plan.reasons)
        out.unlink(missing_ok=True)

    _r, prof = profiled(body, a.get("profile", False))
    res = probe.finish()
    res.update(info=info, profile=prof)
    return res


def measure(n: int, solver: str, seed: int, profile: bool) -> dict[str, Any]:
    path, built = store_for(n, seed)
    print(f"  run_schedule, {n:,} contracts, solver {solver} (load {loadavg()}) ...")
    res = run_worker(SCRIPT, {"kind": "plan", "path": str(path), "solver": solver, "profile": profile},
                     f"{solver} {n}", allow_fail=True)
    res.update(n=n, solver=solver, built=built)
    if res.get("failed"):
        print(f"    FAILED after {res['seconds']:.0f} s: {res['error'].splitlines()[-1]}")
        return res
    solve = next((s["seconds"] for s in res["steps"] if s["step"].startswith("solve")), float("nan"))
    res["solve_seconds"] = solve
    i = res["info"]
    print(f"    {res['seconds']:.1f} s (CPU {res['cpu_seconds']:.1f} s, solve {solve:.1f} s), peak "
          f"{mib(res['peak_rss_mib'])} MiB; {i['windows']:,} windows, objective {i['objective']:,.1f}, "
          f"{i['candidates']:,} candidates")
    return res


SECTION_HEADER = """
## `benchmarks/schedule.py`: the outreach plan for 1,000,000 open contracts (issue 4)

```
python benchmarks/schedule.py [--contracts N ...] [--solver greedy] [--exact-sizes N ...] [--profile]
```

* A scratch store (seeded, numpy; every table of the data contract) with N
  open contracts of N / 1.19 customers (fleets included), 20 branches,
  consent and last contacts as in the demo book, and `scores` for the as-of
  date and a week earlier (a bump of signing probability over the model's
  24 half-month steps around a date near each scheduled end); last week's
  plan is made beforehand (greedy, not timed), so the measured run keeps or
  moves windows as a weekly run does.
* `run_schedule` with the default settings (182-day horizon, 27 weekly
  start days, capacity 1.2 × expected weekly signings, 2 starts a customer
  in 90 days, 6 candidate weeks a contract), in a fresh process: *seconds*
  is its wall time (snapshot, facts, scores, planning, saving the plan,
  writing the CSV), *CPU s* user + system, *peak RSS* the process's `VmHWM`.
* The exact solver (HiGHS via `scipy.optimize.milp`) runs at growing sizes
  until one takes over 60 s; *gap* is the greedy's shortfall from the exact
  objective on the same store.
* Target (issue 4, 2 cores): 1M open contracts over 26 weeks <= 60 s, <= 4 GB.
"""


def render(results: list[dict[str, Any]], command: str, load: str) -> str:
    lines = ["", f"### schedule: {now_utc()}", "",
             f"`{command}`; code: {code_version()}; machine: {machine()}; load average before the run: {load}.", "",
             "| contracts | customers | solver | candidates | capacity a week | windows | kept / moved / new | "
             "objective | gap to exact | seconds | solve s | CPU s | peak RSS MiB | load | target | pass |",
             "|--:|--:|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|---|---|"]
    exact = {r["n"]: r["info"]["objective"] for r in results if r["solver"] == "exact" and not r.get("failed")}
    for r in results:
        if r.get("failed"):
            lines.append(f"| {r['n']:,} | {r['built']['customers']:,} | {r['solver']} | | | | | | | "
                         f"{r['seconds']:.1f} (process) | | | | {r['load_before'].split()[0]} | | FAIL: "
                         f"{r['error'].splitlines()[-1].replace('|', '/')[:160]} |")
            continue
        i = r["info"]
        st = i["status"]
        gap = ""
        if r["solver"] == "greedy" and r["n"] in exact and exact[r["n"]] > 0:
            gap = f"{100 * (1 - i['objective'] / exact[r['n']]):.2f} %"
        ok = r["seconds"] <= TARGET_SECONDS and r["peak_rss_mib"] <= TARGET_RSS_MIB
        lines.append(
            f"| {r['n']:,} | {r['built']['customers']:,} | {r['solver']} | {i['candidates']:,} | {i['capacity']:,} | "
            f"{i['windows']:,} | {st.get('kept', 0):,} / {st.get('moved', 0):,} / {st.get('new', 0):,} | "
            f"{i['objective']:,.1f} | {gap} | {r['seconds']:.1f} | {r['solve_seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | {mib(r['peak_rss_mib'])} | {r['load_before'].split()[0]} | "
            f"<= {TARGET_SECONDS:.0f} s, <= {mib(TARGET_RSS_MIB)} MiB | {'pass' if ok else 'FAIL'} |")
    exact_runs = [r for r in results if r["solver"] == "exact"]
    if exact_runs:
        within = [r for r in exact_runs if r["seconds"] <= TARGET_SECONDS and not r.get("failed")]
        largest = max(within, key=lambda r: r["n"]) if within else None
        lines += ["", "Exact solver: " + (
            f"the largest size run within 60 s was {largest['n']:,} contracts ({largest['info']['candidates']:,} "
            f"candidate variables) in {largest['seconds']:.1f} s (solve {largest['solve_seconds']:.1f} s)."
            if largest else "no size ran within 60 s.")
            + " Sizes tried: " + ", ".join(f"{r['n']:,} ({r['seconds']:.0f} s)" for r in exact_runs) + "."]
    lines += ["", "Steps (time until the next step; wrapped library calls):", "",
              *steps_table([(f"{r['solver']} {r['n']:,}", r) for r in results if not r.get("failed")], 0.05)]
    for r in results:
        if r.get("profile"):
            lines += ["", f"cProfile of {r['solver']} at {r['n']:,} (top by cumulative time):", "",
                      *profile_table(r["profile"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--solver", nargs="+", choices=("greedy", "exact", "auto"), default=["greedy"])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[10_000, 30_000, 50_000, 100_000],
                        help="sizes for solver=exact, smallest first, until one exceeds 60 s (none: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--clean", action="store_true", help="delete the scratch stores afterwards")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker)), default=str))
        return 0

    load = loadavg()
    results = []
    for n in sorted(args.contracts):
        for solver in args.solver:
            results.append(measure(n, solver, args.seed, args.profile))
    for n in sorted(args.exact_sizes):
        r = measure(n, "exact", args.seed, args.profile)
        results.append(r)
        if not any(x["n"] == n and x["solver"] == "greedy" for x in results):
            results.append(measure(n, "greedy", args.seed, False))
        if r["seconds"] > TARGET_SECONDS or r.get("failed"):
            break
    section = render(results, command_line("schedule.py", argv), load)
    print(section)
    if not args.no_record:
        append_results(section, SECTION_HEADER)
        print(f"appended to {RESULTS}")
    if args.clean:
        shutil.rmtree(SCHED_CACHE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
