"""Outputs of the current plan: the leasing team's due list and the CRM import file.

Both read the store's ``schedules`` table (written by :mod:`timing.schedule`)
and the customers it refers to; neither knows anything of the models.

Notes
-----
*The plan on a day* is the latest plan whose ``as_of`` is on or before that
day: the current plan, unless an earlier day is asked for. A row of a plan is
*contactable* when its customer is in the store's customers table, is not
marked ``do_not_contact`` and consents to the planned channel (for the
business ``account`` channel, and for cancelled rows, which have none: to at
least one channel). The plan already applied these rules when it was made;
outputs check them again against the customers table as it is now, because a
customer may have withdrawn consent since.
"""

from __future__ import annotations

from datetime import date

import duckdb

from timing.core.conventions import CHANNELS
from timing.store.db import StoreError, export_as_of, table_exists

__all__ = ["contactable_sql", "default_day", "plan_as_of"]


def contactable_sql(plan: str = "s", customers: str = "cu") -> str:
    """SQL predicate: the plan row ``plan`` may be contacted per its customer row ``customers``.

    The customer row must come from an inner join (a customer missing from
    the customers table is never contactable).
    """
    consent = {ch: f"coalesce({customers}.consent_{ch}, false)" for ch in CHANNELS}
    by_channel = " ".join(f"WHEN '{ch}' THEN {flag}" for ch, flag in consent.items())
    any_consent = " OR ".join(consent.values())
    return (f"(NOT coalesce({customers}.do_not_contact, false) "
            f"AND CASE {plan}.channel {by_channel} ELSE ({any_consent}) END)")


def default_day(con: duckdb.DuckDBPyConnection) -> date:
    """The as-of date of the store's export, else of its latest plan."""
    if table_exists(con, "export_info"):
        return export_as_of(con)
    return plan_as_of(con, None)


def plan_as_of(con: duckdb.DuckDBPyConnection, day: date | None) -> date:
    """The as-of date of the plan in force on ``day`` (the latest plan when ``None``)."""
    if not table_exists(con, "schedules"):
        raise StoreError("no outreach plan in the store: run `timing schedule` first")
    if day is None:
        row = con.execute("SELECT max(as_of) FROM schedules").fetchone()
    else:
        row = con.execute("SELECT max(as_of) FROM schedules WHERE as_of <= ?", [day]).fetchone()
    if row is None or row[0] is None:
        when = "" if day is None else f" on or before {day}"
        raise StoreError(f"no outreach plan{when} in the store: run `timing schedule` first")
    return row[0]


