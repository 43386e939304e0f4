"""Workshop side: recorded fault codes and service visits.

A fault is recorded when the car reports telematics at that time, or when it is
critical (the car goes to the workshop anyway). Visits: yearly maintenance,
tyres (about one car-year in three), a repair after 45% of warnings and 90% of
critical faults, warranty claims in the first three years, and recalls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timing.demo import catalog as cat
from timing.demo.portfolio import Portfolio


@dataclass(frozen=True)
class FaultRecords:
    vehicle: np.ndarray
    ms: np.ndarray
    code: np.ndarray  # index into CODES
    severity: np.ndarray


@dataclass(frozen=True)
class Visits:
    vehicle: np.ndarray
    day: np.ndarray
    visit_type: np.ndarray  # index into VISIT_TYPES
    cost: np.ndarray


def recorded_faults(p: Portfolio, as_of_day: int) -> FaultRecords:
    f = p.faults
    seen = (f.day >= p.cars.telematics_from[f.contract]) | (f.severity == 2)
    keep = seen & (f.day < as_of_day)
    ms = (f.day[keep] * 86_400 + f.second[keep]) * 1_000
    return FaultRecords(f.contract[keep], ms, f.code[keep], f.severity[keep])


def _per_year(
    rng: np.random.Generator, start: np.ndarray, life: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Events at ``rate`` per year uniformly over each car's life."""
    k = rng.poisson(rate * life / 365.25)
    car = np.repeat(np.arange(len(start)), k)
    return car, start[car] + (rng.random(len(car)) * life[car]).astype(np.int64)


def make_visits(rng: np.random.Generator, p: Portfolio, as_of_day: int) -> Visits:
    """Service visits on or before the as-of day, while the car is under contract."""
    start = p.start
    last = np.minimum(p.actual_end, as_of_day)
    life = np.maximum(last - start, 0)
    ev = p.cars.powertrain == 3

    years = life // 365
    m_car = np.repeat(np.arange(len(start)), years)
    m_k = np.arange(len(m_car)) - np.repeat(np.cumsum(years) - years, years) + 1
    m_day = start[m_car] + 365 * m_k + np.round(rng.normal(0, 20, len(m_car))).astype(np.int64)
    m_cost = rng.lognormal(np.log(320), 0.3, len(m_car)) * np.where(ev[m_car], 0.7, 1.0)

    t_car, t_day = _per_year(rng, start, life, 0.35)
    t_cost = rng.lognormal(np.log(650), 0.25, len(t_car))

    f = p.faults
    p_repair = np.array([0.0, 0.45, 0.9])[f.severity]
    hit = rng.random(len(f.day)) < p_repair
    r_car, r_day = f.contract[hit], f.day[hit] + rng.integers(0, 15, hit.sum())
    r_cost = np.where(
        f.severity[hit] == 2,
        rng.lognormal(np.log(1600), 0.5, hit.sum()),
        rng.lognormal(np.log(450), 0.6, hit.sum()),
    )

    w_car, w_day = _per_year(rng, start, np.minimum(life, 3 * 365), 0.25)
    c_car = np.flatnonzero(rng.random(len(start)) < 0.08)
    c_day = start[c_car] + (rng.random(len(c_car)) * 4 * 365).astype(np.int64)

    car = np.concatenate([m_car, t_car, r_car, w_car, c_car])
    day = np.concatenate([m_day, t_day, r_day, w_day, c_day])
    kind = np.concatenate(
        [
            np.full(len(x), cat.VISIT_TYPES.index(name))
            for x, name in (
                (m_car, "maintenance"),
                (t_car, "tyres"),
                (r_car, "repair"),
                (w_car, "warranty"),
                (c_car, "recall"),
            )
        ]
    )
    cost = np.round(np.concatenate([m_cost, t_cost, r_cost, np.zeros(len(w_car) + len(c_car))]), 2)
    keep = (day >= start[car]) & (day <= last[car])
    car, day, kind, cost = car[keep], day[keep], kind[keep], cost[keep]
    order = np.lexsort((kind, day, car))
    # one visit of a kind per car and day: a clean export has no duplicate rows
    order = order[cat.first_of_runs(car[order], day[order], kind[order])]
    return Visits(car[order], day[order], kind[order], cost[order])
