"""Fixed catalogues of the synthetic portfolio: regions, branches, cars, codes.

Everything here is plain data. Dates inside the simulator are ``int`` day
numbers since 1970-01-01 (numpy ``datetime64[D]`` as integers), which keeps the
generation loop in integer arithmetic.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from timing.core import conventions

EPOCH = date(1970, 1, 1)

#: First day of the simulated book: the oldest contracts start here.
BOOK_START = date(2015, 1, 1)
#: Cars of older model years only report telematics from this day (retrofit).
TELEMATICS_RETROFIT = date(2023, 1, 1)
TELEMATICS_MODEL_YEAR = 2019
#: Months (1-12) in which the makers launch new models; signings bunch there.
LAUNCH_MONTHS = (3, 9)

REGIONS = ("north", "south", "east", "west", "central", "metro")
#: 18 regional teams (three per region) and two national fleet teams.
BRANCH_REGION = tuple(REGIONS[i // 3] for i in range(18))
BRANCHES = tuple(f"BR{i + 1:02d}" for i in range(20))
FLEET_BRANCHES = (18, 19)  # indices into BRANCHES

#: The generator's own order of the channels (its seeded draws index into it, so the demo export
#: depends on it); the same channels as :data:`timing.core.conventions.CHANNELS`.
CHANNELS = ("email", "phone", "sms", "letter")
assert sorted(CHANNELS) == sorted(conventions.CHANNELS)
PRODUCTS = ("lease", "balloon", "hire_purchase")
POWERTRAINS = ("ice", "hev", "phev", "bev")
END_TYPES = ("returned", "bought_out", "early_terminated", "written_off")
OUTCOMES = ("no_response", "declined", "interested", "appointment")
VISIT_TYPES = ("maintenance", "repair", "warranty", "recall", "tyres")
SEVERITIES = ("info", "warning", "critical")
DRIVERS = ("habit", "mileage", "fault", "battery", "launch", "lost")

TERMS_MONTHS = np.array([24, 30, 36, 42, 48])
TERM_WEIGHTS = np.array([0.25, 0.05, 0.40, 0.05, 0.25])
ALLOWANCES_KM = np.array([10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000])

#: (brand, model, powertrain, list price in EUR in 2015 money)
MODELS: tuple[tuple[str, str, str, int], ...] = (
    ("Volkswagen", "Golf", "ice", 31_000),
    ("Volkswagen", "Passat", "ice", 41_000),
    ("Skoda", "Octavia", "ice", 29_000),
    ("Renault", "Clio", "ice", 19_500),
    ("Peugeot", "308", "ice", 28_000),
    ("BMW", "320d", "ice", 47_000),
    ("Mercedes-Benz", "C 220 d", "ice", 51_000),
    ("Toyota", "Corolla Hybrid", "hev", 30_000),
    ("Toyota", "RAV4 Hybrid", "hev", 40_000),
    ("Kia", "Niro Hybrid", "hev", 31_000),
    ("Hyundai", "Kona Hybrid", "hev", 29_000),
    ("Volkswagen", "Passat GTE", "phev", 47_000),
    ("BMW", "330e", "phev", 53_000),
    ("Mercedes-Benz", "C 300 e", "phev", 57_000),
    ("Kia", "Sportage PHEV", "phev", 43_000),
    ("Volvo", "XC60 Recharge", "phev", 64_000),
    ("Volkswagen", "ID.3", "bev", 39_000),
    ("Skoda", "Enyaq", "bev", 46_000),
    ("Tesla", "Model 3", "bev", 44_000),
    ("Tesla", "Model Y", "bev", 49_000),
    ("Hyundai", "Ioniq 5", "bev", 47_000),
    ("Renault", "Megane E-Tech", "bev", 37_000),
    ("BMW", "i4", "bev", 61_000),
)
MODEL_BRAND = np.array([m[0] for m in MODELS], dtype=object)
MODEL_NAME = np.array([m[1] for m in MODELS], dtype=object)
MODEL_POWERTRAIN = np.array([POWERTRAINS.index(m[2]) for m in MODELS])
MODEL_PRICE = np.array([m[3] for m in MODELS], dtype=float)

#: Diagnostic trouble codes by severity, for combustion and electric drivetrains.
FAULT_CODES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("info", False): ("B1234", "U0100", "B1318", "P0456"),
    ("warning", False): ("P0420", "C0035", "P0171", "P0128"),
    ("critical", False): ("P0300", "P0301", "P0524", "P0217"),
    ("info", True): ("B1234", "U0100", "B1318", "U0293"),
    ("warning", True): ("C0035", "P0C73", "P1E00", "U0100"),
    ("critical", True): ("P0A80", "P0AA6", "P0A7F", "C0035"),
}
#: Every code once; faults carry an index into this tuple.
CODES: tuple[str, ...] = tuple(sorted({c for codes in FAULT_CODES.values() for c in codes}))


def first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """True at the first row of every run of equal keys (rows sorted by the keys)."""
    first = np.ones(len(keys[0]), dtype=bool)
    if len(first) > 1:
        first[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in keys])
    return first


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def to_date(day: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(day))


def add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Calendar month arithmetic on day numbers (31 Jan + 1 month = 28/29 Feb)."""
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    target = m + months.astype(np.int64)
    month_days = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    dom = np.minimum((d - m).astype(np.int64), month_days - 1)
    return (target.astype("datetime64[D]") + dom).astype(np.int64)


def year_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def next_launch(days: np.ndarray) -> np.ndarray:
    """First launch day (the 1st of a launch month) strictly after each day."""
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    best = np.full(days.shape, np.iinfo(np.int64).max)
    for launch in LAUNCH_MONTHS:
        month_in_year = months % 12 + 1
        add = (launch - month_in_year) % 12
        add = np.where(add == 0, 12, add)  # same month: the next year's launch
        cand = (months + add).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        best = np.minimum(best, cand)
    return best
