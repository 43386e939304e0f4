"""``timing due``: the leasing team's query, what to work on now.

Contracts whose outreach window in the current plan is open on the as-of day
or opens within the next ``within`` days, most valuable first, as a
DataFrame (:func:`due_list`) and as a terminal table, CSV or JSON lines
(:func:`format_due`).

Notes
-----
The *as-of day* defaults to the as-of date of the store's export. The plan
used is the latest plan made on or before that day (see
:mod:`timing.outputs`). A window ``[window_start, window_end]`` (both days
included) is *due* when ``window_start <= day + within`` and
``window_end >= day``: ``within=0`` lists the windows open on the day itself.
Cancelled rows (no window) are never due, and neither is a customer who may no
longer be contacted on the planned channel.

The whole query is one DuckDB statement with every filter in its ``WHERE``
clause, so DuckDB filters the plan before joining contracts, vehicles and
customers (``benchmarks/due.py`` measures it on a plan of a million windows).
"""

from __future__ import annotations

import io
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from timing.outputs import contactable_sql, default_day, plan_as_of
from timing.store.db import connect

#: Columns of the due list, in order.
DUE_COLUMNS = [
    "contract_id", "customer_id", "branch_id", "region", "vehicle", "scheduled_end_date",
    "window_start", "window_end", "opens_in_days", "channel", "priority", "p_signing_in_window",
    "expected_signing_date", "reasons", "status",
]
DATE_COLUMNS = ["scheduled_end_date", "window_start", "window_end", "expected_signing_date"]
FORMATS = ("table", "csv", "json")
TABLE_WIDTH = 100

_DUE_SQL = f"""
SELECT s.contract_id, s.customer_id, s.branch_id, s.region,
       nullif(trim(concat_ws(' ', v.brand, v.model)), '') AS vehicle,
       CAST(c.scheduled_end_date AS DATE) AS scheduled_end_date,
       CAST(s.window_start AS DATE) AS window_start, CAST(s.window_end AS DATE) AS window_end,
       greatest(date_diff('day', $day, CAST(s.window_start AS DATE)), 0) AS opens_in_days,
       s.channel, CAST(s.priority AS INTEGER) AS priority, s.p_signing_in_window,
       CAST(s.expected_signing_date AS DATE) AS expected_signing_date, s.reasons, s.status
FROM schedules s
JOIN customers cu ON cu.customer_id = s.customer_id
LEFT JOIN contracts c ON c.contract_id = s.contract_id
LEFT JOIN vehicles v ON v.vehicle_id = c.vehicle_id
WHERE s.as_of = $plan
  AND s.status <> 'cancelled'
  AND s.window_start <= $last_day AND s.window_end >= $day
  AND ($branch IS NULL OR s.branch_id = $branch)
  AND ($region IS NULL OR s.region = $region)
  AND ($channel IS NULL OR s.channel = $channel)
  AND ($min_priority IS NULL OR s.priority <= $min_priority)
  AND {contactable_sql("s", "cu")}
ORDER BY s.p_signing_in_window DESC NULLS LAST, s.priority, s.window_start, s.contract_id
"""


def due_list(
    store: Path,
    as_of: date | None = None,
    within: int = 30,
    branch: str | None = None,
    region: str | None = None,
    channel: str | None = None,
    min_priority: int | None = None,
) -> pd.DataFrame:
    """Outreach windows open on ``as_of`` or opening within ``within`` days, most valuable first.

    Parameters
    ----------
    store
        The DuckDB store holding a plan (``timing schedule``).
    as_of
        The day asked about; default the as-of date of the store's export.
    within
        Days ahead (0 or more): windows starting up to ``as_of + within`` are listed.
    branch, region, channel
        Keep only windows of this branch, region or channel (exact match).
    min_priority
        Keep only windows of this priority or a more urgent one (1 is the most
        urgent, 3 the least): ``min_priority=2`` keeps priorities 1 and 2.

    Returns
    -------
    pandas.DataFrame
        :data:`DUE_COLUMNS`, one row per window, ordered by
        ``p_signing_in_window`` (highest first), then priority, window start
        and contract. Date columns are ``datetime64`` at midnight;
        ``vehicle`` is brand and model. ``df.attrs`` holds ``as_of``,
        ``plan_as_of``, ``within`` and ``filters`` (used by :func:`format_due`).

    Raises
    ------
    StoreError
        No store, or no plan on or before ``as_of``.
    ValueError
        ``within`` negative or ``min_priority`` outside 1..3.

    Example
    -------
    >>> df = due_list(Path("data/timing.duckdb"), within=14, branch="BR02")  # doctest: +SKIP
    >>> print(format_due(df, "table"))  # doctest: +SKIP
    """
    if within < 0:
        raise ValueError(f"within must be 0 or more days, not {within}")
    if min_priority is not None and not 1 <= min_priority <= 3:
        raise ValueError(f"min_priority must be 1, 2 or 3 (1 is the most urgent), not {min_priority}")
    con = connect(store)
    try:
        day = as_of if as_of is not None else default_day(con)
        plan = plan_as_of(con, day)
        params: dict[str, Any] = {
            "day": day, "last_day": day + timedelta(days=within), "plan": plan, "branch": branch,
            "region": region, "channel": channel, "min_priority": min_priority,
        }
        df = con.execute(_DUE_SQL, params).df()
    finally:
        con.close()
    for col in DATE_COLUMNS:
        df[col] = pd.to_datetime(df[col])
    df["priority"] = df["priority"].astype("Int64")
    df["opens_in_days"] = df["opens_in_days"].astype("Int64")
    df.attrs.update(as_of=day, plan_as_of=plan, within=within,
                    filters=_filters(branch, region, channel, min_priority))
    return df[DUE_COLUMNS]


def _filters(branch: str | None, region: str | None, channel: str | None, min_priority: int | None) -> str:
    parts = [f"{name} {value}" for name, value in
             (("branch", branch), ("region", region), ("channel", channel)) if value is not None]
    if min_priority is not None:
        parts.append(f"priority 1..{min_priority}")
    return ", ".join(parts) or "none"


def empty_message(df: pd.DataFrame) -> str:
    """What an empty due list means, in words (uses the attrs :func:`due_list` sets)."""
    day = df.attrs.get("as_of", "the as-of day")
    within = df.attrs.get("within", "?")
    filters = df.attrs.get("filters", "none")
    return f"No outreach windows open on {day} or opening within {within} days (filters: {filters})."


def format_due(df: pd.DataFrame, fmt: str = "table", *, color: bool = False, width: int = TABLE_WIDTH) -> str:
    """Render a :func:`due_list` frame as a terminal table, CSV or JSON lines.

    Parameters
    ----------
    df
        The frame :func:`due_list` returns.
    fmt
        ``"table"``: a table ``width`` columns wide (two lines per window:
        the first two reasons, each cut to fit, with a count of the others);
        an empty list gives one sentence saying so. ``"csv"``: every column,
        comma-separated, LF line endings, ISO dates (just the header when
        empty). ``"json"``: one JSON object per line (nothing when empty).
    color
        Style the table with ANSI colours (pass ``sys.stdout.isatty()``).

    Example
    -------
    >>> text = format_due(due_list(Path("data/timing.duckdb"), within=7), "csv")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    if fmt == "table":
        return empty_message(df) + "\n" if df.empty else _table(df, color, width)
    out = df.copy()
    for col in DATE_COLUMNS:
        out[col] = _iso(out[col]).replace("", None)
    out["p_signing_in_window"] = out["p_signing_in_window"].round(4)
    if fmt == "csv":
        return str(out.to_csv(index=False, lineterminator="\n"))
    if out.empty:
        return ""
    return str(out.to_json(orient="records", lines=True, force_ascii=False)).rstrip("\n") + "\n"


def _iso(values: pd.Series) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` strings, '' for a missing one (numpy's cast, far quicker than strftime)."""
    days = pd.to_datetime(values).to_numpy().astype("datetime64[D]")
    return pd.Series(np.where(np.isnat(days), "", days.astype(str)), index=values.index, dtype=object)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _reason_lines(reasons: object, width: int) -> str:
    """The two most important reasons on two lines, each cut to ``width``; '(+N)' counts the rest."""
    items = [r.strip() for r in str(reasons or "").replace("\n", " ").split(";") if r.strip()]
    lines = [_cut(r, width) for r in items[:2]]
    if len(items) > 2:
        suffix = f" (+{len(items) - 2})"
        lines[-1] = _cut(items[1], width - len(suffix)) + suffix
    return "\n".join(lines)


def _table(df: pd.DataFrame, color: bool, width: int) -> str:
    day, within, plan = df.attrs.get("as_of"), df.attrs.get("within"), df.attrs.get("plan_as_of")
    title = (f"{len(df):,} outreach window{'s' if len(df) != 1 else ''} open on {day} or opening within "
             f"{within} days (plan of {plan}; filters: {df.attrs.get('filters', 'none')}), most valuable first")
    # fixed widths keep the layout the same on every terminal; reasons get what is left
    columns = [("contract\nvehicle", 16), ("customer\nends", 10), ("window\n", 10), ("channel\nplan", 7),
               ("chance\nprio", 6)]
    # columns are parted by one space of padding and the box's one-space divider
    reasons_width = max(20, width - sum(w for _, w in columns) - 2 * len(columns))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False, leading=1,
                  header_style="bold" if color else "")
    for name, w in columns:
        table.add_column(name, width=w, no_wrap=True, overflow="ellipsis",
                         justify="right" if name.startswith("chance") else "left")
    table.add_column("reasons (most important first)", width=reasons_width, no_wrap=True, overflow="ellipsis",
                     style="dim" if color else "")

    def iso(col: str) -> pd.Series:
        return _iso(df[col])

    def text(col: str) -> pd.Series:
        return df[col].astype(object).where(df[col].notna(), "").astype(str)

    vehicle_width = columns[0][1]
    p = df["p_signing_in_window"]
    cells = [
        text("contract_id") + "\n" + text("vehicle").map(lambda v: _cut(v, vehicle_width)),
        text("customer_id") + "\n" + iso("scheduled_end_date"),
        iso("window_start") + "\n" + iso("window_end"),
        text("channel") + "\n" + text("status"),
        (p * 100).round().astype("Int64").astype(str).where(p.notna(), "").str.replace("<NA>", "") + "%\n"
        + ("P" + df["priority"].astype(str)).where(df["priority"].notna(), ""),
        df["reasons"].map(lambda r: _reason_lines(r, reasons_width)),
    ]
    for row in zip(*(c.tolist() for c in cells), strict=True):
        table.add_row(*(Text(c) for c in row))  # Text: a '[' in the data is not rich markup
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, emoji=False, legacy_windows=False)
    console.print(Text(textwrap.fill(title, width=width)), soft_wrap=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
