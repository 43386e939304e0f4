"""Telematics readings: odometer and battery health snapshots.

A car reports from its telematics start (from delivery for model year 2019 and
later, from 2023-01-01 for older cars); one car in five never reports. Readings
come every ``every_days`` days (daily for 4% of cars when that is 7), each car
at its own time of day, with up to three gaps of one to eight weeks and 2% of
single readings missing. The odometer (whole km) grows by the car's daily
distance times gamma noise between readings, so it never decreases; battery
health follows :func:`vehicles.battery_soh` plus noise (sd 0.3 points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timing.demo.portfolio import NEVER, Portfolio
from timing.demo.vehicles import battery_soh

DAILY_SHARE = 0.04


@dataclass(frozen=True)
class Readings:
    vehicle: np.ndarray  # position of the car's contract
    ms: np.ndarray  # epoch milliseconds, UTC
    odometer_km: np.ndarray
    battery_soh_pct: np.ndarray  # NaN for ice/hev

    def __len__(self) -> int:
        return len(self.vehicle)


def make_readings(
    rng: np.random.Generator, p: Portfolio, as_of_day: int, every_days: int
) -> Readings:
    """All readings recorded before the as-of day."""
    n = len(p)
    first = p.cars.telematics_from
    last = np.minimum(p.actual_end, as_of_day - 1)
    step = np.where((every_days == 7) & (rng.random(n) < DAILY_SHARE), 1, every_days)
    phase = (rng.random(n) * step).astype(np.int64)
    span = last - first - phase
    count = np.where((first < NEVER) & (span >= 0), span // step + 1, 0)

    vehicle = np.repeat(np.arange(n), count)
    k = np.arange(len(vehicle)) - np.repeat(np.cumsum(count) - count, count)
    day = first[vehicle] + phase[vehicle] + k * step[vehicle]

    # gaps: up to three missing stretches per car, plus single lost readings
    years = np.where(count > 0, (last - first) / 365.25, 0.0)
    n_gaps = np.minimum(rng.poisson(0.8 * years), 3)
    gap_start = first[:, None] + (rng.random((n, 3)) * np.maximum(last - first, 0)[:, None]).astype(
        np.int64
    )
    gap_end = gap_start + rng.integers(7, 57, (n, 3))
    keep = rng.random(len(vehicle)) >= 0.02
    for j in range(3):
        inside = (
            (day >= gap_start[vehicle, j]) & (day < gap_end[vehicle, j]) & (j < n_gaps[vehicle])
        )
        keep &= ~inside
    vehicle, day = vehicle[keep], day[keep]

    # a car uploads its snapshot at its own time of day
    second = rng.integers(0, 86_400, n)[vehicle]
    ms = (day * 86_400 + second) * 1_000
    odometer = _odometer(rng, p, vehicle, day + second / 86_400)

    electric = p.cars.electric[vehicle]
    age = day - p.start[vehicle]
    soh = battery_soh(p.cars.battery_wear[vehicle], age, odometer) + rng.normal(0, 0.3, len(day))
    soh = np.where(electric, np.round(np.clip(soh, 1.0, 100.0), 1), np.nan)
    return Readings(vehicle, ms, odometer, soh)


def _odometer(
    rng: np.random.Generator, p: Portfolio, vehicle: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Monotone odometer that follows the car's long-run rate, with seasons and week-to-week wobble.

    The allowance trigger in :mod:`timing.demo.portfolio` uses the long-run
    rate, so the realised odometer must not drift away from it: usage runs
    6% above the rate in summer and below it in winter (a bounded swing),
    plus a few days' worth of driving as noise per reading, never decreasing.
    """
    if len(vehicle) == 0:
        return np.zeros(0)
    new_car = np.r_[True, vehicle[1:] != vehicle[:-1]]
    per_day = p.annual_km[vehicle] / 365.25
    elapsed = np.maximum(t - p.start[vehicle], 0.0)
    season = 0.06 * 365.25 / (2 * np.pi) * (np.sin(2 * np.pi * (t - 100) / 365.25)
                                               - np.sin(2 * np.pi * (p.start[vehicle] - 100) / 365.25))
    delivery = rng.uniform(5, 60, len(p.start))[vehicle]
    km = delivery + per_day * (elapsed + season + rng.normal(0, 2.0, len(t)))
    km = np.maximum(km, 0.0)
    # never decreasing within a car: a running maximum that restarts at each car
    offset = np.cumsum(new_car) * 1e9
    return np.round(np.maximum.accumulate(km + offset) - offset)
