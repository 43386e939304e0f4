"""The monthly report: every section there, self-contained, its numbers beside it, the same every time.

One small demo world is generated, fitted once (short lookback, one family:
the report is under test, not the model), scored and planned on 30 September
and 31 October, given a small backtest table, and reported twice into two
folders. The browser check runs only where Chromium is installed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from timing.config import FitSettings, ScheduleSettings, Settings
from timing.demo import generate_demo
from timing.fitting.fit import fit_models
from timing.fitting.registry import register_model
from timing.ingest.load import ingest
from timing.models.io import load_model, save_model
from timing.report import ReportResult, browser, build_report, health, report_as_of, sections
from timing.report.context import open_context
from timing.schedule.job import run_schedule
from timing.scores.scoring import score
from timing.scores.volume import (
    forecast_volume,
    future_months,
    model_error,
    scores_model_error,
    survival_forecast,
)

D = date(2026, 10, 31)
P = date(2026, 9, 30)
FIT = FitSettings(lookback_months=9, holdout_months=3, families=("discrete",), max_contracts_per_origin=150)
HEADINGS = ["Portfolio overview", "Expected signings, next 6 months", "Last month's plan against what happened",
            "Backtest trend: capture and concordance", "Calibration: predicted against observed",
            "Workload per week against capacity", "The main drivers", "Data quality"]
DATA_FILES = {"portfolio", "volume", "last_month", "backtest", "calibration", "workload", "drivers", "quarantine",
              "telematics"}
CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Built:
    store: Path
    first: ReportResult
    second: ReportResult

    @property
    def html(self) -> str:
        return self.first.html.read_text(encoding="utf-8")


def add_backtest(store: Path) -> None:
    """A backtest table shaped like ``timing backtest`` writes it: long, one row per cutoff x metric x policy."""
    rows = []
    for i, cutoff in enumerate([date(2026, 1, 31), date(2026, 4, 30), date(2026, 7, 31)]):
        for policy, cap in (("model", 0.50 + 0.02 * i), ("naive", 0.30), ("truth", 0.80)):
            rows.append({"cutoff": cutoff, "metric": "capture", "policy": policy, "month": None, "value": cap})
        rows.append({"cutoff": cutoff, "metric": "uno_c_6m", "policy": "model", "month": None, "value": 0.90 + 0.01 * i})
        rows.append({"cutoff": cutoff, "metric": "capture", "policy": "model", "month": 1, "value": 0.99})  # per month
    df = pd.DataFrame(rows).astype({"month": "Int64"}).assign(bin=pd.array([None] * len(rows), dtype="Int64"),
                                                              run_at=pd.Timestamp("2026-11-01 08:00"))
    con = duckdb.connect(str(store))
    try:
        con.register("bt", df)
        con.execute("CREATE TABLE backtest_results AS SELECT * FROM bt")
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("report")
    store = root / "store.duckdb"
    generate_demo(root / "export", customers=250, as_of=D, seed=7, fmt="parquet")
    ingest(root / "export", store, as_of=D)
    fit_models(store, settings=FIT, model_root=root / "models")
    for day in (P, D):
        score(store, as_of=day, out_dir=root / "out")
        run_schedule(store, ScheduleSettings(), as_of=day)
    add_backtest(store)
    settings = Settings(fit=FIT)
    first = build_report(store, out_root=root / "a", settings=settings, pdf=False)
    second = build_report(store, out_root=root / "b", settings=settings, pdf=False)
    return Built(store, first, second)


def test_every_section_is_there(built: Built) -> None:
    assert re.findall(r"<h2>(.*?)</h2>", built.html) == [h.replace("'", "&#x27;") for h in HEADINGS]
    assert built.first.month == "2026-10" and built.first.as_of == D
    assert built.first.html == built.first.folder / "index.html" and built.first.folder.name == "2026-10"
    assert built.first.missing == ()  # this store has everything, last month's plan and a backtest too
    assert "2026-10-31" in built.html and "30 September" in built.html


def test_charts_are_inline_svg(built: Built) -> None:
    html = built.html
    figures = re.findall(r"<figure>(.*?)</figure>", html, flags=re.S)
    assert len(figures) >= len(HEADINGS)
    assert all(f.lstrip().startswith("<svg") and "</svg>" in f and "<figcaption>" in f for f in figures)
    assert "<img" not in html and "<image" not in html and "<script" not in html and "<link" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # charts share one page: no id clashes


def test_nothing_is_fetched(built: Built) -> None:
    html = built.html
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"\bsrc=", html)
    assert re.findall(r"url\((?!#)", html) == []
    assert re.findall(r'href="(?!#)', html) == []


def test_chart_data_sits_beside_the_page(built: Built) -> None:
    files = {p.stem: p for p in built.first.data_files}
    assert set(files) == DATA_FILES
    for p in files.values():
        assert p.exists() and p.parent == built.first.folder
        assert p.read_text(encoding="utf-8").count("\n") >= 1
    last = pd.read_csv(files["last_month"])
    assert list(last["plan_as_of"]) == [P.isoformat()] * 2
    assert (last["captured"] + last["missed_other_window"] + last["missed_no_window"] == last["repurchases"]).all()
    volume = pd.read_csv(files["volume"])
    assert {"actual", "prophet", "structural", "survival"} <= set(volume["model"])
    backtest = pd.read_csv(files["backtest"])
    assert (backtest["value"] < 0.99).all()  # per-month rows are left out
    drivers = pd.read_csv(files["drivers"])
    assert 0 < len(drivers) <= health.TOP_DRIVERS
    assert drivers.groupby("factor").size().max() <= health.PER_FACTOR
    assert (drivers["hr_lower"] <= drivers["hazard_ratio"]).all() and (drivers["hazard_ratio"] <= drivers["hr_upper"]).all()


def test_the_survival_interval_carries_the_models_holdout_error(built: Built, tmp_path: Path) -> None:
    con = duckdb.connect(str(built.store), read_only=True)
    try:
        scores = con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY contract_id", [D]).df()
        path, = con.execute("SELECT path FROM model_registry WHERE version = ?",
                            [scores["model_version"].iloc[0]]).fetchone()
    finally:
        con.close()
    model, info = load_model(Path(path))
    calibration = pd.DataFrame(info["holdout_calibration"])
    assert {"predicted", "observed", "variance"} <= set(calibration.columns)
    assert scores_model_error(built.store, scores) == model_error(calibration)
    # the same model, registered (in a copy of the store) with a holdout whose totals it missed threefold
    copy = tmp_path / "store.duckdb"
    shutil.copy(built.store, copy)
    missed = calibration.assign(observed=(3 * calibration["predicted"]).round() + 5)
    meta = {k: v for k, v in info.items() if k not in ("family", "libraries", "tables")}
    saved = save_model(model, tmp_path / "models" / info["version"],
                       {**meta, "holdout_calibration": missed.to_dict(orient="records")})
    register_model(copy, saved, D, info["family"])
    error = model_error(missed)
    assert error > 0.3 and scores_model_error(copy, scores) == error
    months = future_months(pd.Timestamp("2026-10-01"), 6)
    fc = forecast_volume(copy, as_of=D, months=6, models=("survival",))
    widened_direct = survival_forecast(scores, D, months, error=error)
    assert fc[["lower", "upper"]].to_numpy().tolist() == widened_direct[["lower", "upper"]].to_numpy().tolist()
    plain = survival_forecast(scores, D, months)
    assert (fc["upper"] - fc["lower"]).sum() > (plain["upper"] - plain["lower"]).sum()
    assert fc.attrs["survival_model_error"] == error
    # a model folder altered after it was registered lends no error: the chance interval stands, and
    # the report says so
    (saved.path / "model.json").write_text((saved.path / "model.json").read_text() + " ")
    assert scores_model_error(copy, scores) is None
    chance = forecast_volume(copy, as_of=D, months=6, models=("survival",))
    assert chance.attrs["survival_model_error"] is None
    assert chance[["lower", "upper"]].to_numpy().tolist() == plain[["lower", "upper"]].to_numpy().tolist()
    with open_context(copy, pd.Period("2026-10", freq="M"), D, Settings(fit=FIT)) as ctx:
        assert "could not be found or checked" in sections.volume(ctx).text
    with open_context(built.store, pd.Period("2026-10", freq="M"), D, Settings(fit=FIT)) as ctx:
        assert "off on its own holdout" in sections.volume(ctx).text


def test_the_same_store_gives_the_same_report(built: Built) -> None:
    a, b = built.first.folder, built.second.folder
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_missing_inputs_are_said_in_words(built: Built, tmp_path: Path) -> None:
    bare = tmp_path / "bare.duckdb"
    shutil.copy(built.store, bare)
    con = duckdb.connect(str(bare))
    con.execute("DROP TABLE backtest_results")
    con.execute("DELETE FROM schedules WHERE as_of = ?", [P])
    con.close()
    with open_context(bare, pd.Period("2026-10", freq="M"), D, Settings(fit=FIT)) as ctx:
        assert (health.backtest(ctx).missing or "").startswith("No backtest run yet")
        assert "plan made a month ago" in (sections.last_month(ctx).missing or "")


def test_the_month_chooses_the_as_of() -> None:
    assert report_as_of(D, None) == (pd.Period("2026-10", freq="M"), D)
    assert report_as_of(D, "2026-09") == (pd.Period("2026-09", freq="M"), P)
    with pytest.raises(ValueError, match="knows nothing"):
        report_as_of(D, "2026-11")
    with pytest.raises(ValueError, match="not a month"):
        report_as_of(D, "2026-13")


def test_pdf_is_skipped_quietly_without_an_engine(built: Built, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    engine = browser.print_pdf(built.first.html, tmp_path / "r.pdf")
    assert engine in (None, "weasyprint")
    assert (tmp_path / "r.pdf").exists() == (engine is not None)


def test_renders_in_headless_chromium(built: Built, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not installed: {CHROMIUM} is absent (the report needs no browser; only this check does)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_report", Path(__file__).parents[1] / "scripts/render_report.py")
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    shot = tmp_path / "shot.png"
    assert render.main([str(built.first.html), "--screenshot", str(shot)]) == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.print_pdf(built.first.html, tmp_path / "r.pdf") == "chromium"
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
