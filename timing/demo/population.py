"""Customers: what the export shows of them, and the hidden traits that drive timing.

Every customer carries latent habits that repeat across their own contracts,
which is what makes their next signing learnable from their history:

- ``habit_days``: signing offset relative to the scheduled end, drawn from a
  mixture of early signers (months before), signers at the end (its last
  weeks) and late signers (after the end, within the successor grace) — the
  three groups the product brief names; nobody's habit is "90 days before";
- ``loyalty``: log-odds of renewing rather than leaving for a competitor;
- ``usage_ratio``: driven km over the contracted allowance (heavy users
  1.3-1.8x, who sign when the allowance is used up);
- sensitivities to critical faults, battery wear and model launches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timing.demo import catalog as cat

BUSINESS_SHARE = 0.20
DO_NOT_CONTACT_SHARE = 0.03
HEAVY_USER_SHARE = 0.09

#: Habit mixture: (weight, low, high) of the customer's mean offset in days.
HABITS: tuple[tuple[float, float, float], ...] = (
    (0.30, -210.0, -100.0),  # early: months before the scheduled end
    (0.36, -28.0, 0.0),  # at the end: in its last weeks
    (0.34, 15.0, 140.0),  # after it: within the 180-day grace
)


@dataclass(frozen=True)
class Customers:
    """One chunk of customers: arrays aligned by position."""

    number: np.ndarray  # global 1-based customer number
    business: np.ndarray
    birth_year: np.ndarray  # -1 when unknown
    region: np.ndarray  # index into REGIONS
    branch: np.ndarray  # index into BRANCHES
    consent: np.ndarray  # (n, 4) bool in CHANNELS order
    do_not_contact: np.ndarray
    preferred_channel: np.ndarray  # index into CHANNELS, -1 when none
    first_signed: np.ndarray  # day number of the first signing
    fleet_size: np.ndarray  # concurrent contracts (1 for private customers)
    habit_days: np.ndarray
    loyalty: np.ndarray
    annual_km: np.ndarray
    usage_ratio: np.ndarray
    ev_affinity: np.ndarray
    fault_trigger: np.ndarray  # probability that a critical fault makes them switch
    battery_sensitive: np.ndarray
    launch_sensitive: np.ndarray
    term_pref: np.ndarray  # months
    product_pref: np.ndarray  # index into PRODUCTS

    def __len__(self) -> int:
        return len(self.number)


def make_customers(
    rng: np.random.Generator, first_number: int, n: int, as_of_day: int
) -> Customers:
    """Draw ``n`` customers numbered from ``first_number``."""
    business = rng.random(n) < BUSINESS_SHARE
    as_of_year = int(cat.year_of(np.array([as_of_day]))[0])
    age = np.clip(rng.normal(48, 13, n), 19, 88).astype(np.int64)
    birth_year = np.where(business, -1, as_of_year - age)

    region = rng.integers(0, len(cat.REGIONS), n)
    local_branch = region * 3 + rng.integers(0, 3, n)
    fleet_team = np.asarray(cat.FLEET_BRANCHES)[rng.integers(0, 2, n)]
    branch = np.where(business & (rng.random(n) < 0.6), fleet_team, local_branch)

    consent_p = np.where(business[:, None], [0.95, 0.90, 0.30, 0.60], [0.75, 0.60, 0.40, 0.85])
    consent = rng.random((n, 4)) < consent_p
    do_not_contact = rng.random(n) < DO_NOT_CONTACT_SHARE
    # preferred channel: a random consented one (argmax of noise over consents)
    noise = np.where(consent, rng.random((n, 4)), -1.0)
    preferred = np.where(consent.any(axis=1) & (rng.random(n) < 0.85), noise.argmax(axis=1), -1)

    # 45% of the book was already there in 2015-16; the rest joined since
    start = cat.day_number(cat.BOOK_START)
    initial = rng.random(n) < 0.45
    first_signed = np.where(
        initial,
        rng.integers(start, start + 545, n),
        rng.integers(start, as_of_day - 30, n),
    )
    extra = np.minimum(rng.geometric(0.22, n), 19)
    fleet_size = np.where(business, 1 + extra, 1)

    kind = rng.choice(len(HABITS), n, p=[h[0] for h in HABITS])
    low = np.array([h[1] for h in HABITS])[kind]
    high = np.array([h[2] for h in HABITS])[kind]
    habit_days = low + (high - low) * rng.random(n)

    loyalty = rng.normal(0.7, 1.0, n) + np.where(business, 0.6, 0.0)
    median_km = np.where(business, 22_000, 15_000)
    annual_km = np.clip(median_km * rng.lognormal(0, 0.3, n), 6_000, 50_000)
    heavy = rng.random(n) < HEAVY_USER_SHARE
    usage_ratio = np.where(heavy, rng.uniform(1.3, 1.8, n), rng.lognormal(np.log(0.92), 0.10, n))

    product_pref = np.where(
        business,
        rng.choice(3, n, p=[0.85, 0.10, 0.05]),
        rng.choice(3, n, p=[0.55, 0.28, 0.17]),
    )
    return Customers(
        number=np.arange(first_number, first_number + n, dtype=np.int64),
        business=business,
        birth_year=birth_year,
        region=region,
        branch=branch,
        consent=consent,
        do_not_contact=do_not_contact,
        preferred_channel=preferred,
        first_signed=first_signed.astype(np.int64),
        fleet_size=fleet_size.astype(np.int64),
        habit_days=habit_days,
        loyalty=loyalty,
        annual_km=annual_km,
        usage_ratio=usage_ratio,
        ev_affinity=rng.random(n),
        fault_trigger=rng.uniform(0.2, 0.6, n),
        battery_sensitive=rng.random(n) < 0.5,
        launch_sensitive=rng.random(n) < 0.5,
        term_pref=rng.choice(cat.TERMS_MONTHS, n, p=cat.TERM_WEIGHTS),
        product_pref=product_pref,
    )
