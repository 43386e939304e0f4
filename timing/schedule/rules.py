"""Contact rules: who may be contacted, on which channel, and from which day.

Every open contract either gets a channel and an earliest start day, or an
exclusion reason; the reasons are countable. Business customers are routed
to their branch's account team (channel ``account``); private customers go
by their preferred channel when they consented to it, else the first
consented channel in the order phone, email, sms, letter.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from timing.config import ScheduleSettings
from timing.core.conventions import CHANNELS

DO_NOT_CONTACT = "do not contact"
NO_CONSENT = "no consent on any channel"
NO_START_DAY = "no start day allowed in the horizon"


def contact_facts(con: duckdb.DuckDBPyConnection, schema: str, as_of: date) -> pd.DataFrame:
    """Per open contract: consent, channel preferences and the last contact before the as-of."""
    t = f"DATE '{as_of.isoformat()}'"
    return con.execute(
        f"""SELECT c.contract_id, c.customer_id, cu.customer_type, cu.branch_id, cu.region,
                   cu.do_not_contact, cu.consent_email, cu.consent_phone, cu.consent_sms,
                   cu.consent_letter, cu.preferred_channel, c.monthly_payment,
                   CAST(lc.last_contact AS DATE) AS last_contact
            FROM {schema}.contracts c
            JOIN {schema}.outcomes o USING (contract_id)
            JOIN {schema}.customers cu ON cu.customer_id = c.customer_id
            LEFT JOIN (SELECT customer_id, max(contacted_at) AS last_contact
                       FROM {schema}.contacts WHERE contacted_at < {t} + INTERVAL 1 DAY
                       GROUP BY customer_id) lc ON lc.customer_id = c.customer_id
            WHERE o.outcome = 'open'
            ORDER BY c.contract_id"""
    ).df()


def choose_channel(facts: pd.DataFrame, cfg: ScheduleSettings) -> pd.Series:
    """The channel per contract, or empty where no channel is allowed."""
    consent = {ch: facts[f"consent_{ch}"].fillna(False).astype(bool).to_numpy() for ch in CHANNELS}
    first = np.full(len(facts), "", dtype=object)
    for ch in reversed(CHANNELS):
        first = np.where(consent[ch], ch, first)
    pref = facts["preferred_channel"].fillna("").astype(str).to_numpy()
    pref_ok = np.zeros(len(facts), dtype=bool)
    for ch in CHANNELS:
        pref_ok |= (pref == ch) & consent[ch]
    channel = np.where(pref_ok, pref, first)
    business = (facts["customer_type"] == "business").to_numpy()
    any_consent = np.any(list(consent.values()), axis=0) if len(facts) else np.zeros(0, bool)
    channel = np.where(business & any_consent, cfg.business_channel, channel)
    return pd.Series(channel, index=facts.index, dtype=object)


def apply_rules(facts: pd.DataFrame, as_of: date, cfg: ScheduleSettings) -> pd.DataFrame:
    """Add ``channel``, ``earliest_start`` (days after the as-of) and ``excluded`` (reason or '')."""
    out = facts.copy()
    out["channel"] = choose_channel(facts, cfg)
    dnc = facts["do_not_contact"].fillna(False).astype(bool).to_numpy()
    excluded = np.where(dnc, DO_NOT_CONTACT, np.where(out["channel"].to_numpy() == "", NO_CONSENT, ""))
    out["channel"] = np.where(excluded == "", out["channel"], "")
    last = pd.to_datetime(facts["last_contact"])
    earliest = (last + pd.Timedelta(days=cfg.min_days_since_contact) - pd.Timestamp(as_of)).dt.days
    out["earliest_start"] = earliest.fillna(0).clip(lower=0).astype(int).to_numpy()
    out["excluded"] = excluded
    return out


def blackout_mask(as_of: date, week_days: np.ndarray, cfg: ScheduleSettings) -> np.ndarray:
    """True for candidate start days (days after the as-of) that fall in a blackout period."""
    days = [as_of + timedelta(days=int(d)) for d in week_days]
    md = np.array([(d.month, d.day) for d in days]) if days else np.zeros((0, 2), int)
    key = md[:, 0] * 100 + md[:, 1] if len(md) else np.zeros(0, int)
    out = np.zeros(len(days), dtype=bool)
    for (m1, d1), (m2, d2) in cfg.blackout_days():
        a, b = m1 * 100 + d1, m2 * 100 + d2
        out |= (key >= a) & (key <= b) if a <= b else (key >= a) | (key <= b)
    return out
