"""Contracts: every customer's chains of contracts, simulated generation by generation.

A private customer has one chain; a fleet has one chain per car, all signed in
one deal and then drifting apart (different terms, habits applied per car). For
each running contract the simulator decides, from the customer's hidden traits,
whether they renew or leave, and on which day they intend to sign the successor:

- ``habit``: scheduled end + the customer's own offset + noise (sd ``HABIT_NOISE_DAYS``);
- ``mileage``: the day the odometer reaches the whole allowance, for cars driven
  more than 1.15x their allowance, when that comes first;
- ``fault``: 15-75 days after a critical fault in the contract's last 15
  months (and not in its first year), for a share of critical faults;
- ``battery``: 0-60 days after state of health drops below 82%, for
  battery-sensitive customers;
- ``launch``: a habit date in the two months before a launch (March, September)
  moves into the launch month, for launch-sensitive customers.

The successor is signed within four days of the intended date; the predecessor
then ends at the successor's start (early) or at its scheduled end (possibly
extended to the successor's start). Leaving customers end at the scheduled end,
or early, and never come back on that chain.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from timing.demo import catalog as cat
from timing.demo.population import Customers
from timing.demo.vehicles import Cars, Faults, battery_upgrade_day, draw_cars, draw_faults

NEVER = np.iinfo(np.int64).max // 4
REPURCHASED, LOST, OPEN = 0, 1, 2
#: Contract-to-contract scatter of a customer's signing offset around their habit.
HABIT_NOISE_DAYS = 12.0
HEAVY_RATIO = 1.15
PREDECESSOR_BLANK_SHARE = 0.30
GRACE = 180


@dataclass(frozen=True)
class Portfolio:
    """All simulated contracts of a chunk (positions are internal ids)."""

    customer: np.ndarray  # position in the Customers chunk
    chain: np.ndarray
    generation: np.ndarray
    signed: np.ndarray
    start: np.ndarray
    scheduled_end: np.ndarray
    term_months: np.ndarray
    product: np.ndarray
    allowance: np.ndarray
    annual_km: np.ndarray  # really driven
    monthly_payment: np.ndarray
    actual_end: np.ndarray  # simulated, may lie after the as-of date
    end_type: np.ndarray
    predecessor: np.ndarray  # position, -1 for none
    successor: np.ndarray  # position, -1 for none within the horizon
    predecessor_recorded: np.ndarray  # False where the source system left it empty
    intended: np.ndarray  # NEVER when the customer leaves
    driver: np.ndarray  # index into DRIVERS
    outcome: np.ndarray
    outcome_day: np.ndarray  # NEVER when open
    cars: Cars
    faults: Faults

    def __len__(self) -> int:
        return len(self.signed)


def _grid_allowance(km: np.ndarray) -> np.ndarray:
    """The allowance a customer books for an expected distance: the next 5,000 km step up."""
    return np.clip(np.ceil(km / 5_000 - 0.2) * 5_000, 10_000, 40_000).astype(np.int64)


def _monthly_payment(
    rng: np.random.Generator,
    price: np.ndarray,
    term: np.ndarray,
    product: np.ndarray,
    allowance: np.ndarray,
) -> np.ndarray:
    rate = 0.03 + 0.02 * rng.random(len(price))
    i = rate / 12
    residual = np.clip(0.62 - 0.0045 * term - 0.004 * (allowance / 1_000 - 15), 0.25, 0.6) * price
    lease = (price - residual) / term + (price + residual) * rate / 24
    annuity = i / (1 - (1 + i) ** -term)
    balloon = (0.9 * price - residual / (1 + i) ** term) * annuity
    hire_purchase = 0.9 * price * annuity
    return np.round(np.select([product == 0, product == 1], [lease, balloon], hire_purchase), 2)


def _intended_day(
    rng: np.random.Generator,
    cust: Customers,
    c: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    allowance: np.ndarray,
    km: np.ndarray,
    cars: Cars,
    faults: Faults,
) -> tuple[np.ndarray, np.ndarray]:
    """Day each customer intends to sign the successor, and what set it."""
    n = len(c)
    habit = end + np.round(cust.habit_days[c] + rng.normal(0, HABIT_NOISE_DAYS, n)).astype(np.int64)
    reached = start + np.round((end - start) * allowance / km + rng.normal(0, 10, n)).astype(
        np.int64
    )
    mileage = np.where(km / allowance > HEAVY_RATIO, reached, NEVER)

    fc = faults.contract
    trigger = (
        (faults.severity == 2)
        & (faults.day >= np.maximum(start[fc] + 365, end[fc] - 456))
        & (rng.random(len(fc)) < cust.fault_trigger[c][fc])
    )
    first_trigger = np.full(n, NEVER)
    np.minimum.at(first_trigger, fc[trigger], faults.day[trigger])
    fault = np.where(first_trigger < NEVER, first_trigger + rng.integers(15, 76, n), NEVER)

    wants_new_battery = cust.battery_sensitive[c] & cars.electric
    battery = np.where(
        wants_new_battery, battery_upgrade_day(cars, start, km) + rng.integers(0, 61, n), NEVER
    )

    candidates = np.stack([habit, mileage, fault, battery])
    driver = candidates.argmin(axis=0)
    intended = candidates.min(axis=0)

    launch = cat.next_launch(intended)
    pull = (driver == 0) & cust.launch_sensitive[c] & (launch - intended <= 61)
    intended = np.where(pull, launch + rng.integers(0, 21, n), intended)
    driver = np.where(pull, cat.DRIVERS.index("launch"), driver)
    return np.clip(intended, start + 180, end + 170), driver


def stay_probability(loyalty: np.ndarray, generation: np.ndarray | int) -> np.ndarray:
    """A contract's chance of being renewed rather than lost: the customer's loyalty, and more with
    every earlier renewal in the chain (up to four)."""
    return 1 / (1 + np.exp(-(loyalty + 0.45 * np.minimum(generation, 4))))


def simulate(rng: np.random.Generator, cust: Customers, horizon_end: int) -> Portfolio:
    """Simulate every chain of every customer until it is lost or runs past ``horizon_end``."""
    c = np.repeat(np.arange(len(cust)), cust.fleet_size)
    chain = np.arange(len(c))
    chain_km = cust.annual_km[c] * rng.lognormal(0, np.where(cust.business[c], 0.15, 0.0))
    signed = cust.first_signed[c]
    start = signed + rng.integers(7, 121, len(c))
    pred = np.full(len(c), -1)
    parts: list[dict[str, np.ndarray]] = []
    cars_parts: list[Cars] = []
    fault_parts: list[Faults] = []
    offset, gen = 0, 0
    while len(c):
        n = len(c)
        term = np.where(
            rng.random(n) < 0.7,
            cust.term_pref[c],
            rng.choice(cat.TERMS_MONTHS, n, p=cat.TERM_WEIGHTS),
        )
        product = np.where(
            rng.random(n) < 0.85, cust.product_pref[c], rng.choice(3, n, p=[0.6, 0.25, 0.15])
        )
        km = chain_km[chain] * rng.lognormal(0, 0.05, n)
        allowance = _grid_allowance(
            chain_km[chain] / cust.usage_ratio[c] * rng.lognormal(0, 0.04, n)
        )
        end = cat.add_months(start, term)
        cars = draw_cars(rng, start, cust.ev_affinity[c])
        payment = _monthly_payment(rng, cars.list_price, term, product, allowance)
        faults = draw_faults(rng, start, end + GRACE - start, cars.electric)

        intended, driver = _intended_day(rng, cust, c, start, end, allowance, km, cars, faults)
        stay = stay_probability(cust.loyalty[c], gen)
        lost = rng.random(n) >= stay
        next_signed = np.minimum(
            intended + np.clip(np.round(rng.normal(0, 1.5, n)), -4, 4).astype(np.int64), end + 175
        )
        next_start = next_signed + rng.integers(7, 61, n)

        # ending of a renewed contract: at the successor's start when that is early
        early = next_start < end
        actual = np.where(early, next_start - rng.integers(0, 4, n), end)
        extend = ~early & (next_start > end + 14) & (rng.random(n) < 0.35)
        actual = np.where(extend, next_start - rng.integers(0, 3, n), actual)
        bought = rng.random(n) < np.array([0.12, 0.45, 0.6])[product]
        end_type = np.where(early & (end - actual > 30), 2, np.where(bought & ~extend, 1, 0))

        # ending of a lost contract: mostly at the scheduled end, a quarter early
        can_early = end - 30 > start + 365
        early_lost = can_early & (rng.random(n) < 0.25)
        lost_day = rng.integers(start + 365, np.where(can_early, end - 30, start + 366))
        lost_end = np.where(early_lost, lost_day, end)
        lost_type = np.where(
            early_lost, np.where(rng.random(n) < 0.15, 3, 2), np.where(bought, 1, 0)
        )
        actual = np.where(lost, lost_end, actual)
        end_type = np.where(lost, lost_type, end_type)
        intended = np.where(lost, NEVER, intended)
        driver = np.where(lost, cat.DRIVERS.index("lost"), driver)

        renew = ~lost & (next_signed <= horizon_end)
        outcome = np.select([renew, lost & (lost_end <= horizon_end)], [REPURCHASED, LOST], OPEN)
        outcome_day = np.select(
            [outcome == REPURCHASED, outcome == LOST], [next_signed, lost_end], NEVER
        )
        successor = np.full(n, -1)
        successor[renew] = offset + n + np.arange(renew.sum())

        parts.append(dict(
            customer=c, chain=chain, generation=np.full(n, gen), signed=signed, start=start,
            scheduled_end=end, term_months=term, product=product, allowance=allowance,
            annual_km=km, monthly_payment=payment, actual_end=actual, end_type=end_type,
            predecessor=pred, successor=successor, intended=intended, driver=driver,
            outcome=outcome, outcome_day=outcome_day,
        ))  # fmt: skip
        cars_parts.append(cars)
        fault_parts.append(
            Faults(faults.contract + offset, *(getattr(faults, f.name) for f in fields(Faults)[1:]))
        )

        pred = offset + np.flatnonzero(renew)
        c, chain, signed, start = c[renew], chain[renew], next_signed[renew], next_start[renew]
        offset += n
        gen += 1

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cars = Cars(*(np.concatenate([getattr(p, f.name) for p in cars_parts]) for f in fields(Cars)))
    faults = Faults(
        *(np.concatenate([getattr(p, f.name) for p in fault_parts]) for f in fields(Faults))
    )
    # a car is returned at the contract's end: no faults after that
    keep = faults.day <= cols["actual_end"][faults.contract]
    faults = Faults(*(getattr(faults, f.name)[keep] for f in fields(Faults)))
    recorded = _recorded_predecessors(rng, cols)
    return Portfolio(**cols, predecessor_recorded=recorded, cars=cars, faults=faults)


def _recorded_predecessors(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> np.ndarray:
    """Which successors name their predecessor; about 30% do not.

    Only a successor whose predecessor the data contract's inference rule finds
    unambiguously may be left empty: exactly one contract of the customer (the
    true predecessor) started before the successor was signed and ended (or is
    scheduled to end, whichever is later) at most 180 days before it. Fleet
    deals are signed before any of their cars start, so first contracts never
    look like successors either.
    """
    cust, signed, start = cols["customer"], cols["signed"], cols["start"]
    end_w = np.maximum(cols["actual_end"], cols["scheduled_end"]) + GRACE + 1
    big = np.int64(1) << 32
    starts = np.sort(cust * big + start)
    ends = np.sort(cust * big + end_w)
    key = cust * big + signed
    # contracts of the customer started on/before the signing, minus those ended long before
    candidates = np.searchsorted(starts, key, "right") - np.searchsorted(ends, key, "left")
    successor = cols["predecessor"] >= 0
    eligible = successor & (candidates == 1)
    share = min(1.0, PREDECESSOR_BLANK_SHARE * successor.sum() / max(eligible.sum(), 1))
    blank = eligible & (rng.random(len(cust)) < share)
    return successor & ~blank
