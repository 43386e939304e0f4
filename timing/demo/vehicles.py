"""Cars: model, price, battery wear and the faults they will develop.

One new car per contract. Electrified cars get more common every year, and a
customer who chose one tends to choose one again. Faults arrive as a Poisson
process whose rate grows with the car's age; battery state of health falls with
age and distance, faster for some batteries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timing.demo import catalog as cat

NO_TELEMATICS_SHARE = 0.20
#: Battery health below this makes a battery-sensitive customer upgrade early.
BATTERY_UPGRADE_SOH = 82.0
BATTERY_KM_WEAR = 0.5  # SoH points lost per 10,000 km


@dataclass(frozen=True)
class Cars:
    """One car per contract, aligned with the contracts of one generation."""

    model: np.ndarray  # index into MODELS
    powertrain: np.ndarray  # index into POWERTRAINS
    list_price: np.ndarray
    model_year: np.ndarray
    battery_wear: np.ndarray  # SoH points per year; 0 for ice/hev
    telematics_from: np.ndarray  # day number, or a huge number for never

    @property
    def electric(self) -> np.ndarray:
        return self.powertrain >= 2


@dataclass(frozen=True)
class Faults:
    """Diagnostic trouble codes over the whole life of each car."""

    contract: np.ndarray  # position of the car's contract in its generation
    day: np.ndarray
    severity: np.ndarray  # index into SEVERITIES
    code: np.ndarray  # index into CODES
    second: np.ndarray  # second of the day it was recorded


def draw_cars(rng: np.random.Generator, start: np.ndarray, ev_affinity: np.ndarray) -> Cars:
    """Draw the car of each contract starting on ``start`` (day numbers)."""
    n = len(start)
    year = cat.year_of(start)
    t = np.clip((year - 2015) / 11.0, 0.0, 1.3)
    bev, phev, hev = 0.02 + 0.25 * t, 0.03 + 0.12 * t, 0.05 + 0.15 * t
    # the customer's own taste most of the time, so choices repeat
    q = np.where(rng.random(n) < 0.7, ev_affinity, rng.random(n))
    powertrain = np.select([q < bev, q < bev + phev, q < bev + phev + hev], [3, 2, 1], 0)

    # a model of that powertrain, uniformly
    counts = np.bincount(cat.MODEL_POWERTRAIN, minlength=4)
    order = np.argsort(cat.MODEL_POWERTRAIN, kind="stable")
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    model = order[first[powertrain] + (rng.random(n) * counts[powertrain]).astype(np.int64)]

    inflation = 1.02 ** (year - 2015)
    list_price = np.round(cat.MODEL_PRICE[model] * inflation * rng.lognormal(0, 0.06, n), -1)
    month = start.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    model_year = year + ((month >= 9) & (rng.random(n) < 0.3))

    fast = rng.random(n) < 0.2
    wear = np.where(fast, rng.uniform(4.5, 7.0, n), rng.uniform(1.5, 2.5, n))
    wear = np.where(powertrain == 2, wear * 1.2, np.where(powertrain == 3, wear, 0.0))

    never = rng.random(n) < NO_TELEMATICS_SHARE
    retrofit = cat.day_number(cat.TELEMATICS_RETROFIT)
    from_day = np.where(model_year >= cat.TELEMATICS_MODEL_YEAR, start, np.maximum(start, retrofit))
    telematics_from = np.where(never, np.iinfo(np.int64).max // 4, from_day)
    return Cars(model, powertrain, list_price, model_year, wear, telematics_from)


def battery_soh(wear: np.ndarray, age_days: np.ndarray, odometer_km: np.ndarray) -> np.ndarray:
    """Expected state of health (%) of a battery."""
    return 100.0 - wear * age_days / 365.25 - BATTERY_KM_WEAR * odometer_km / 10_000


def battery_upgrade_day(cars: Cars, start: np.ndarray, annual_km: np.ndarray) -> np.ndarray:
    """Day the battery falls below the upgrade threshold (huge for ice/hev)."""
    per_year = cars.battery_wear + BATTERY_KM_WEAR * annual_km / 10_000
    years = np.where(cars.electric, (100.0 - BATTERY_UPGRADE_SOH) / np.maximum(per_year, 1e-9), 1e6)
    return start + np.round(years * 365.25).astype(np.int64)


def draw_faults(
    rng: np.random.Generator, start: np.ndarray, life_days: np.ndarray, electric: np.ndarray
) -> Faults:
    """Faults over each car's life: rate (0.4 + 0.5 * age in years) per year, times a car factor.

    Thinning of a homogeneous process at the car's peak rate keeps it vectorised.
    """
    n = len(start)
    proneness = rng.lognormal(0, 0.5, n)
    life_years = life_days / 365.25
    peak = proneness * (0.4 + 0.5 * life_years)
    k = rng.poisson(peak * life_years)
    contract = np.repeat(np.arange(n), k)
    age = rng.random(len(contract)) * life_years[contract]
    keep = rng.random(len(contract)) * peak[contract] < proneness[contract] * (0.4 + 0.5 * age)
    contract, age = contract[keep], age[keep]
    day = start[contract] + (age * 365.25).astype(np.int64)

    p_critical = np.minimum(0.04 + 0.03 * age, 0.25)
    p_warning = np.full(len(age), 0.32)
    u = rng.random(len(age))
    severity = np.where(u < p_critical, 2, np.where(u < p_critical + p_warning, 1, 0))
    code = np.zeros(len(age), dtype=np.int64)
    pick = rng.integers(0, 4, len(age))
    for s, name in enumerate(cat.SEVERITIES):
        for is_ev in (False, True):
            m = (severity == s) & (electric[contract] == is_ev)
            table = np.array([cat.CODES.index(c) for c in cat.FAULT_CODES[(name, is_ev)]])
            code[m] = table[pick[m]]
    second = rng.integers(6 * 3600, 22 * 3600, len(age))
    order = np.lexsort((second, day, contract))
    order = order[cat.first_of_runs(contract[order], day[order], second[order])]
    return Faults(contract[order], day[order], severity[order], code[order], second[order])
