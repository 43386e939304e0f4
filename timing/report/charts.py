"""The report's charts: data frames in, inline SVG text out.

Every chart is drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot,
no global state) inside one style context, and saved as SVG that is the same
byte for byte for the same data: a fixed hash salt, text kept as text
(``svg.fonttype = "none"``), no date or creator in the metadata, and every id
prefixed with the chart's name so that several charts can share one page.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from timing.core.conventions import CAPTURE_DAYS

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLOURS = {"actual": "#222222", "prophet": "#0072B2", "structural": "#009E73", "survival": "#D55E00",
           "plan": "#0072B2", "naive": "#999999", "capacity": "#D55E00", "accent": "#E69F00",
           "muted": "#56B4E9", "grey": "#BBBBBB"}
MODEL_NAMES = {"prophet": "prophet (counts)", "structural": "structural time series (counts)",
               "survival": "survival model (open contracts)", "actual": "actual"}

STYLE = {
    "svg.hashsalt": "timing-report",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "figure.dpi": 72,
}
NICE_RATIOS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
WIDTH = 10.0  # inches; the page shows it at up to 100% of a 1100 px column


@contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(cast("dict[Any, Any]", STYLE)):
        yield


def to_svg(fig: Figure, name: str, title: str) -> str:
    """``fig`` as inline SVG (no XML prolog, no namespace URLs), ids prefixed with ``name``."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = text.replace("xlink:href=", "href=")
    text = re.sub(r'\bid="', f'id="{name}-', text)
    text = text.replace('href="#', f'href="#{name}-').replace("url(#", f"url(#{name}-")
    text = re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                  lambda m: f'<svg class="chart" role="img" aria-label="{_attr(title)}" '
                            f'width="{m.group(1)}pt" height="{m.group(2)}pt"', text, count=1)
    return text.strip() + "\n"


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _figure(height: float, width: float = WIDTH) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _month_labels(months: pd.Series | pd.DatetimeIndex) -> list[str]:
    return [m.strftime("%b %Y") for m in pd.DatetimeIndex(months)]


def heatmap(ax: Axes, values: np.ndarray, rows: list[str], cols: list[str], cmap: str = "Blues",
            shade: np.ndarray | None = None, vmax: float | None = None) -> None:
    """Cells shaded by ``shade`` (default: the values) and labelled with the value (blank where zero)."""
    shade = values if shade is None else shade
    top = float(vmax if vmax is not None else max(shade.max(initial=0), 1))
    nr, nc = values.shape
    # vector cells (not an embedded bitmap): crisp at any zoom, and the same bytes every time
    ax.pcolormesh(np.arange(nc + 1) - 0.5, np.arange(nr + 1) - 0.5, shade, cmap=cmap, vmin=0, vmax=top,
                  edgecolors="white", linewidth=0.6)
    ax.set_xlim(-0.5, nc - 0.5)
    ax.set_ylim(nr - 0.5, -0.5)
    ax.set_xticks(range(nc), cols)
    ax.set_yticks(range(nr), rows)
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.tick_params(length=0)
    for (i, j), v in np.ndenumerate(values):
        if v == 0:
            continue
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=9,
                color="white" if shade[i, j] > 0.6 * top else "#222222")


# --- one function per chart ---------------------------------------------------------------------


def portfolio_chart(totals: pd.Series, by_branch: pd.DataFrame) -> str:
    """Open contracts by months to the scheduled end: all branches (bars), each branch (cells)."""
    title = "Open contracts by months to the scheduled end"
    with style():
        n = len(by_branch)
        fig = _figure(2.2 + 0.32 * n)
        top, bottom = fig.subplots(2, 1, height_ratios=[1.6, 0.32 * n], sharex=True)
        x = np.arange(len(totals))
        top.bar(x, totals.to_numpy(), color=COLOURS["muted"], edgecolor="white")
        for xi, v in zip(x, totals.to_numpy(), strict=True):
            top.text(xi, v, f"{int(v)}", ha="center", va="bottom", fontsize=9)
        top.set_ylabel("open contracts\n(all branches)")
        top.set_title(title, loc="left")
        top.margins(y=0.18)
        heatmap(bottom, by_branch.to_numpy(float), list(by_branch.index), list(by_branch.columns))
        bottom.set_xlabel("months to the scheduled end (\"passed\": the end date is behind us, no new contract yet)")
        bottom.set_ylabel("branch")
        return to_svg(fig, "portfolio", title)


def volume_chart(history: pd.DataFrame, forecast: pd.DataFrame, interval: float) -> str:
    """Monthly repurchases: the last months (line) and each model's forecast with its interval."""
    title = "Repurchases signed per month: history and forecast"
    with style():
        fig = _figure(4.6)
        ax = fig.subplots()
        hx = pd.to_datetime(history["month"])
        ax.plot(hx, history["repurchases"], color=COLOURS["actual"], marker="o", ms=3.5, lw=1.5,
                label="signed (history)")
        models = [m for m in ("prophet", "structural", "survival") if m in set(forecast["model"])]
        offsets = np.linspace(-7, 7, max(len(models), 1)) if len(models) > 1 else [0]
        for m, off in zip(models, offsets, strict=True):
            f = forecast[forecast["model"] == m]
            x = pd.to_datetime(f["month"]) + pd.Timedelta(days=14 + float(off))
            e = f["expected"].to_numpy()
            err = np.vstack([e - f["lower"].to_numpy(), f["upper"].to_numpy() - e])
            ax.errorbar(x, e, yerr=err, fmt="o", ms=5, capsize=3, lw=1.4, color=COLOURS[m],
                        label=f"{MODEL_NAMES[m]}, {interval:.0%} interval")
        if len(forecast):
            ax.axvline(pd.to_datetime(forecast["month"]).min(), color=COLOURS["grey"], ls="--", lw=1)
        ax.set_ylabel("repurchases signed in the month")
        ax.set_xlabel("month")
        ax.set_ylim(bottom=0)
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", ncols=2)
        ax.margins(y=0.25)
        return to_svg(fig, "volume", title)


def last_month_chart(table: pd.DataFrame) -> str:
    """Captured and missed repurchases under the plan and under the naive policy (stacked bars)."""
    title = "Last month's repurchases: caught by an outreach window or missed"
    with style():
        fig = _figure(2.8)
        ax = fig.subplots()
        parts = [("captured", f"captured (window started 0-{CAPTURE_DAYS} days before signing)", COLOURS["plan"]),
                 ("missed_other_window", "missed: window at another time", COLOURS["accent"]),
                 ("missed_no_window", "missed: no window", COLOURS["grey"])]
        y = np.arange(len(table))
        left = np.zeros(len(table))
        for col, label, colour in parts:
            v = table[col].to_numpy(float)
            ax.barh(y, v, left=left, color=colour, label=label, height=0.55)
            for yi, li, vi in zip(y, left, v, strict=True):
                if vi > 0:
                    ax.text(li + vi / 2, float(yi), f"{int(vi)}", ha="center", va="center", fontsize=10)
            left += v
        ax.set_yticks(y, table["policy"])
        ax.invert_yaxis()
        ax.set_xlabel("repurchases signed during the month")
        fig.suptitle(title, x=0.01, ha="left", fontsize=STYLE["axes.titlesize"])
        fig.legend(loc="outside lower center", ncols=3)
        ax.grid(axis="y", visible=False)
        return to_svg(fig, "last-month", title)


def backtest_chart(panels: dict[str, pd.DataFrame]) -> str:
    """One panel per metric family: each series' value at every backtest cutoff."""
    title = "Backtests: capture and concordance by cutoff"
    with style():
        fig = _figure(4.2)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        palette = [COLOURS[k] for k in ("prophet", "naive", "structural", "survival", "accent", "muted")]
        looks = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # lines that coincide stay visible
        for ax, (name, df) in zip(axes, panels.items(), strict=True):
            for i, (series, g) in enumerate(df.groupby("series", sort=True)):
                g = g.sort_values("cutoff")
                ls, marker = looks[i % len(looks)]
                ax.plot(pd.to_datetime(g["cutoff"]), g["value"], ls=ls, marker=marker, ms=5, lw=1.6,
                        color=palette[i % len(palette)], label=series)
            cutoffs = sorted(pd.to_datetime(df["cutoff"]).unique())
            shown = cutoffs[:: max(1, -(-len(cutoffs) // 8))]
            ax.set_xticks(shown, [pd.Timestamp(c).strftime("%b %Y") for c in shown])
            for lab in ax.get_xticklabels():
                lab.set_rotation(30)
                lab.set_horizontalalignment("right")
            ax.set_title(name, loc="left")
            ax.set_xlabel("backtest cutoff (as-of month)")
            ax.set_ylabel(name)
            ax.margins(x=0.08, y=0.15)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncols=2, fontsize=9)
        return to_svg(fig, "backtest", title)


def calibration_chart(cal: pd.DataFrame, interval: float) -> str:
    """Predicted vs observed signings per month of the holdout horizon."""
    title = "Calibration on the holdout: predicted and observed signings per month"
    with style():
        fig = _figure(3.8)
        ax = fig.subplots()
        x = cal["month"].to_numpy()
        ax.bar(x - 0.2, cal["observed"], width=0.4, color=COLOURS["grey"], label="observed")
        err = np.vstack([cal["predicted"] - cal["lower"], cal["upper"] - cal["predicted"]])
        ax.bar(x + 0.2, cal["predicted"], width=0.4, color=COLOURS["survival"], alpha=0.85,
               label=f"predicted, {interval:.0%} range of chance variation")
        ax.errorbar(x + 0.2, cal["predicted"], yerr=err, fmt="none", ecolor="#222222", capsize=3, lw=1)
        ax.set_xticks(x, [f"month {int(m)}" for m in x])
        ax.set_xlabel("month after the holdout date")
        ax.set_ylabel("signings")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left")
        ax.margins(y=0.2)
        return to_svg(fig, "calibration", title)


def workload_chart(total: pd.DataFrame, by_branch: pd.DataFrame, branch_capacity: pd.DataFrame | None) -> str:
    """Outreach starts per week: all branches against capacity (bars, line), each branch (cells)."""
    title = "Planned outreach starts per week against capacity"
    with style():
        n = len(by_branch)
        fig = _figure(2.6 + 0.32 * n)
        top, bottom = fig.subplots(2, 1, height_ratios=[2.0, 0.32 * n], sharex=True)
        x = np.arange(len(total))
        top.bar(x, total["planned"], color=COLOURS["plan"], label="planned starts")
        top.step(np.r_[x - 0.5, x[-1] + 0.5] if len(x) else x, np.r_[total["capacity"], total["capacity"].iloc[-1:]]
                 if len(x) else [], where="post", color=COLOURS["capacity"], lw=1.8, label="capacity")
        top.set_ylabel("starts\n(all branches)")
        top.set_title(title, loc="left")
        top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_ylim(0, max([1.0, *total["planned"].astype(float), *total["capacity"].astype(float)]) * 1.1)
        values = by_branch.to_numpy(float)
        if branch_capacity is not None:
            cap = branch_capacity.to_numpy(float)
            share = np.divide(values, cap, out=np.zeros_like(values), where=cap > 0)
            heatmap(bottom, values, list(by_branch.index), list(by_branch.columns), cmap="Oranges", shade=share,
                    vmax=1.0)
        else:
            heatmap(bottom, values, list(by_branch.index), list(by_branch.columns))
        bottom.set_ylabel("branch")
        bottom.set_xlabel("week starting (7-day weeks counted from the plan's as-of date)")
        for lab in bottom.get_xticklabels():
            lab.set_rotation(60)
            lab.set_horizontalalignment("right")
        return to_svg(fig, "workload", title)


def drivers_chart(drivers: pd.DataFrame) -> str:
    """Hazard ratios with 95% intervals on a log scale; 1 means no effect."""
    title = "What moves the chance of signing in a given month"
    with style():
        n = len(drivers)
        fig = _figure(1.4 + 0.5 * n)
        ax = fig.subplots()
        y = np.arange(n)
        hr = drivers["hazard_ratio"].to_numpy()
        colour = np.where(hr >= 1, COLOURS["prophet"], COLOURS["survival"])
        ax.hlines(y, drivers["hr_lower"], drivers["hr_upper"], color=colour, lw=2)
        ax.scatter(hr, y, color=colour, s=36, zorder=3)
        ax.axvline(1, color="#444444", lw=1)
        ax.set_xscale("log")
        lo = float(min(drivers["hr_lower"].min(), 1.0))
        hi = float(max(drivers["hr_upper"].max(), 1.0))
        wide = np.log10(hi / lo) > 3
        ticks = [t for t in NICE_RATIOS if lo / 1.5 <= t <= hi * 1.5 and (not wide or np.log10(t) % 1 == 0)]
        # plain numbers ("0.5", "20"), not powers of ten: easier to read, and no mathtext to typeset
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yticks(y, [textwrap.fill(t, 42) for t in drivers["label"]])
        ax.invert_yaxis()
        ax.set_xlabel("hazard ratio, log scale (1 = no effect)")
        fig.suptitle(title, x=0.01, ha="left", fontsize=STYLE["axes.titlesize"])
        ax.grid(axis="y", visible=False)
        return to_svg(fig, "drivers", title)


def quarantine_chart(counts: pd.DataFrame) -> str:
    """Rows set aside at ingest, by table and rule."""
    title = "Rows set aside at ingest, by reason"
    with style():
        fig = _figure(1.0 + 0.38 * len(counts))
        ax = fig.subplots()
        y = np.arange(len(counts))
        ax.barh(y, counts["rows"], color=COLOURS["accent"], height=0.6)
        for yi, v in zip(y, counts["rows"], strict=True):
            ax.text(float(v), float(yi), f" {int(v):,}", va="center", fontsize=9)
        ax.set_yticks(y, counts["table_name"] + ": " + counts["rule"])
        ax.invert_yaxis()
        ax.set_xlabel("rows set aside")
        ax.set_title(title, loc="left")
        ax.margins(x=0.12)
        ax.grid(axis="y", visible=False)
        return to_svg(fig, "quarantine", title)


def coverage_chart(coverage: pd.DataFrame, overall: float) -> str:
    """Share of open contracts with a telematics reading in the last 90 days, per branch."""
    title = "Telematics coverage: open contracts with a reading in the last 90 days"
    with style():
        fig = _figure(3.4)
        ax = fig.subplots()
        x = np.arange(len(coverage))
        ax.bar(x, coverage["coverage"] * 100, color=COLOURS["muted"])
        ax.axhline(overall * 100, color=COLOURS["actual"], ls="--", lw=1.2, label=f"all branches: {overall:.0%}")
        ax.set_xticks(x, coverage["branch_id"])
        for lab in ax.get_xticklabels():
            lab.set_rotation(60)
            lab.set_horizontalalignment("right")
        ax.set_ylim(0, 105)
        ax.set_ylabel("% of open contracts")
        ax.set_xlabel("branch")
        ax.set_title(title, loc="left")
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0))
        return to_svg(fig, "coverage", title)
