"""``timing run``: the main job, stage by stage, with a summary of where every output went.

ingest -> fit -> score -> schedule -> due list -> CRM file -> report. Each
stage is the same library call its own command makes; this module only
sequences them, times them and collects the paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from timing.config import Settings
from timing.ingest.load import ingest
from timing.ingest.report import IngestReport

STAGES = ("ingest", "fit", "score", "schedule", "due list", "CRM file", "report")


@dataclass(frozen=True)
class RunResult:
    ingest: IngestReport
    stage_seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        total = sum(self.stage_seconds.values())
        lines = [f"timing run finished in {total:.0f} s (as-of {self.ingest.as_of})", "", "stages:"]
        lines += [f"  {name:<10}{secs:7.1f} s" for name, secs in self.stage_seconds.items()]
        lines += ["", "outputs:"]
        lines += [f"  {name:<14}{where}" for name, where in self.outputs.items()]
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class RunPaths:
    """Where ``timing run`` writes; the defaults are the README's."""

    models: Path = Path("data/models")
    out: Path = Path("data/out")
    reports: Path = Path("reports")


def run_pipeline(
    export_dir: Path,
    store: Path,
    settings: Settings,
    progress: Callable[[str], None] | None = None,
    paths: RunPaths | None = None,
) -> RunResult:
    """Run every stage on ``export_dir`` and say where each output went."""
    from timing.core.files import write_csv_atomic
    from timing.fitting.fit import fit_models
    from timing.outputs.crm import export_crm
    from timing.outputs.due import due_list, format_due
    from timing.report import build_report
    from timing.schedule.job import run_schedule
    from timing.scores.scoring import score

    say = progress or (lambda _m: None)
    where = paths or RunPaths()
    stages: dict[str, float] = {}
    outputs: dict[str, str] = {}
    notes: list[str] = []

    def stage(i: int, name: str) -> float:
        say(f"[{i}/{len(STAGES)}] {name}")
        return time.perf_counter()

    t = stage(1, "ingest")
    report = ingest(export_dir, store, progress=say)
    stages["ingest"] = time.perf_counter() - t
    outputs["store"] = str(store)
    if report.set_aside:
        notes.append(f"{report.set_aside:,} input rows were set aside (see `timing ingest` or the quarantine table)")

    t = stage(2, "fit")
    fitted = fit_models(store, settings=settings.fit, model_root=where.models, progress=say)
    stages["fit"] = time.perf_counter() - t
    outputs["model"] = str(fitted.saved.path)
    holdout = fitted.holdout.set_index("family")
    chosen = holdout.loc[fitted.chosen]
    # Uno's C at 6 months exists where the holdout spans 6 months (fit.holdout_months >= 6)
    uno = f"holdout Uno C at 6 months {chosen['uno_c_6m']:.3f}, " if pd.notna(chosen.get("uno_c_6m")) else "holdout "
    notes.append(f"model: {fitted.chosen}; {uno}integrated Brier {chosen['ibs']:.4f} "
                 f"(Kaplan-Meier {chosen['ibs_km']:.4f})")

    t = stage(3, "score")
    scored = score(store, months=settings.fit.months, out_dir=where.out, progress=say)
    stages["score"] = time.perf_counter() - t
    outputs["scores"] = str(scored.parquet)

    t = stage(4, "schedule")
    schedule_csv = where.out / f"schedule-{scored.as_of.isoformat()}.csv"
    plan = run_schedule(store, settings.schedule, out=schedule_csv, progress=say)
    stages["schedule"] = time.perf_counter() - t
    outputs["schedule"] = str(schedule_csv)
    notes.append(f"plan: {len(plan.planned):,} windows at {plan.capacity_per_week:,} starts a week; "
                 f"{plan.planned['p_signing_in_window'].sum():,.0f} signings expected inside them")

    t = stage(5, "due list")
    due = due_list(store)
    due_csv = where.out / f"due-{scored.as_of.isoformat()}.csv"
    write_csv_atomic(due, due_csv) if len(due) else due_csv.unlink(missing_ok=True)
    stages["due list"] = time.perf_counter() - t
    outputs["due list"] = f"{due_csv} ({len(due):,} windows open now or within 30 days; `timing due` shows them)"
    notes.append(format_due(due.head(10), "table") if len(due) else "no outreach window is due in the next 30 days")

    t = stage(6, "CRM file")
    crm_csv = where.out / f"crm-{scored.as_of.isoformat()}.csv"
    crm = export_crm(store, crm_csv, settings.crm)
    stages["CRM file"] = time.perf_counter() - t
    outputs["CRM file"] = f"{crm_csv} ({crm.rows:,} rows, manifest beside it)"

    t = stage(7, "report")
    rep = build_report(store, out_root=where.reports, settings=settings, progress=say)
    stages["report"] = time.perf_counter() - t
    outputs["report"] = str(rep.html)
    return RunResult(ingest=report, stage_seconds=stages, outputs=outputs, notes=notes)
