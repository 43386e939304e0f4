"""`timing run`: every stage on a small export, each output where the summary says.

The export is dated 30 April, one of the as-of dates (end of March to end of
July) whose holdout months are shorter in days than as many model months, and
the holdout is 3 months, too short for the 6-month concordance the summary
would otherwise quote.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from timing.config import FitSettings, Settings
from timing.demo import generate_demo
from timing.fitting.fit import holdout_origin
from timing.pipeline import STAGES, RunPaths, run_pipeline

D = date(2026, 4, 30)
FIT = FitSettings(lookback_months=12, holdout_months=3, families=("discrete",), max_contracts_per_origin=200)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, list[str]]:
    root = tmp_path_factory.mktemp("run")
    generate_demo(root / "export", customers=250, as_of=D, seed=3, fmt="parquet")
    said: list[str] = []
    result = run_pipeline(root / "export", root / "store.duckdb", Settings(fit=FIT), progress=said.append,
                          paths=RunPaths(models=root / "models", out=root / "out", reports=root / "reports"))
    return root, result, said


def test_every_stage_runs_and_says_so(ran: tuple) -> None:
    _, result, said = ran
    assert list(result.stage_seconds) == list(STAGES)
    for i, name in enumerate(STAGES, 1):
        assert f"[{i}/{len(STAGES)}] {name}" in said
    summary = result.summary()
    assert summary.startswith("timing run finished in ") and f"(as-of {D})" in summary


def test_every_output_is_where_the_summary_says(ran: tuple) -> None:
    root, result, _ = ran
    for name in ("store", "model", "scores", "schedule", "report"):
        assert Path(result.outputs[name]).exists(), name
    for name in ("due list", "CRM file"):  # "<path> (<what it holds>)"
        path = Path(result.outputs[name].split(" (")[0])
        assert path.exists() or "0 windows" in result.outputs[name], name
    scores = pd.read_parquet(result.outputs["scores"])
    assert len(scores) > 0 and scores["as_of"].astype(str).eq(D.isoformat()).all()


def test_a_holdout_shorter_than_six_months_is_summarised_without_the_six_month_concordance(ran: tuple) -> None:
    _, result, _ = ran
    note = next(n for n in result.notes if n.startswith("model: "))
    assert "Uno C at 6 months" not in note and "integrated Brier" in note


def test_the_holdout_months_end_by_the_as_of(ran: tuple) -> None:
    _, result, _ = ran
    info = json.loads((Path(result.outputs["model"]) / "model.json").read_text())
    T_h = date.fromisoformat(info["holdout_as_of"])
    assert T_h == holdout_origin(D, FIT) == date(2025, 12, 30)  # 30 January is 90 days back: 2.96 months
    calibration = pd.DataFrame(info["holdout_calibration"])
    assert calibration["month"].tolist() == [1, 2, 3]
    assert calibration["contracts"].nunique() == 1  # every contract's signings known through each month
