"""The company's past outreach: today's practice, and how customers answered.

Every contract gets a contact about 90 days before its scheduled end (on a
working day, 08:00-18:00 UTC) unless the customer has already signed, has left,
opted out, or consented to no channel; 40% of those who do not answer get a
second contact three to five weeks later. A customer who signs within 60 days
after a contact mostly answers ``interested`` or ``appointment``; the others
mostly do not respond or decline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timing.demo.catalog import first_of_runs
from timing.demo.population import Customers
from timing.demo.portfolio import LOST, REPURCHASED, Portfolio

#: P(no_response, declined, interested, appointment) by situation.
ANSWERS = {
    "signs_soon": (0.12, 0.05, 0.38, 0.45),
    "leaves": (0.45, 0.43, 0.10, 0.02),
    "other": (0.62, 0.20, 0.14, 0.04),
}


@dataclass(frozen=True)
class Contacts:
    contract: np.ndarray  # position, -1 when not about a contract
    customer: np.ndarray  # position in the customers chunk
    ms: np.ndarray
    channel: np.ndarray  # index into CHANNELS
    outcome: np.ndarray  # index into OUTCOMES


def _working_day(day: np.ndarray) -> np.ndarray:
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    return day + np.select([weekday == 5, weekday == 6], [2, 1], 0)


def _answer(rng: np.random.Generator, situation: np.ndarray) -> np.ndarray:
    probs = np.array([ANSWERS["signs_soon"], ANSWERS["leaves"], ANSWERS["other"]]).cumsum(axis=1)
    return (rng.random(len(situation))[:, None] >= probs[situation]).sum(axis=1).clip(0, 3)


def make_contacts(
    rng: np.random.Generator, p: Portfolio, cust: Customers, as_of_day: int
) -> Contacts:
    """Contacts made before the as-of day."""
    c = p.customer
    reachable = ~cust.do_not_contact[c] & cust.consent[c].any(axis=1)
    signing = np.where(p.outcome == REPURCHASED, p.outcome_day, np.iinfo(np.int64).max)

    parts = []
    day = _working_day(p.scheduled_end - 90 + np.round(rng.normal(0, 5, len(p))).astype(np.int64))
    for attempt in range(2):
        ok = (
            reachable
            & (day < signing)
            & (day <= p.actual_end)
            & (day >= p.start)
            & (day < as_of_day)
        )
        soon = (signing - day >= 0) & (signing - day <= 60)
        situation = np.where(soon, 0, np.where(p.outcome == LOST, 1, 2))
        outcome = _answer(rng, situation)
        idx = np.flatnonzero(ok)
        parts.append((idx, day[idx], outcome[idx]))
        # a second try for 40% of those who did not answer
        again = ok & (outcome == 0) & (rng.random(len(p)) < 0.4)
        reachable = reachable & again if attempt == 0 else reachable
        day = _working_day(day + rng.integers(21, 36, len(p)))

    contract = np.concatenate([x[0] for x in parts])
    day = np.concatenate([x[1] for x in parts])
    outcome = np.concatenate([x[2] for x in parts])
    customer = c[contract]

    consent = cust.consent[customer]
    preferred = cust.preferred_channel[customer]
    use_preferred = (preferred >= 0) & (rng.random(len(contract)) < 0.7)
    channel = np.where(
        use_preferred, preferred, np.where(consent, rng.random(consent.shape), -1.0).argmax(axis=1)
    )
    ms = (day * 86_400 + rng.integers(8 * 3_600, 18 * 3_600, len(day))) * 1_000
    contract = np.where(rng.random(len(contract)) < 0.03, -1, contract)
    order = np.lexsort((customer, ms))
    order = order[first_of_runs(ms[order], customer[order])]  # never two at the same instant
    return Contacts(contract[order], customer[order], ms[order], channel[order], outcome[order])
