"""Covariates of the contract-step panel that combine several features: launch pull, heavy users' allowance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from timing.models.covariates import COVARIATE_NAMES, COVARIATES, LAUNCH_PULL_LABELS
from timing.models.panel import design_context, level_codes

CTX = design_context(pd.Timestamp("2026-01-15"), (3, 9))  # March 1st is day 45 after T


def _codes(rows: list[dict], tau: list[float], name: str) -> np.ndarray:
    base = {c: np.nan for c in ("days_to_end", "habit_offset_days", "habit_offset_sd", "days_to_allowance",
                                "days_since_critical", "battery_soh", "battery_slope_per_year", "usage_ratio",
                                "days_since_interest", "days_since_decline", "days_since_contact")}
    base |= {"n_renewals": 1, "n_lost": 0, "fleet_size": 1, "repairs_365d": 0, "has_telematics": 1,
             "signed_months_mask": 0, "customer_type": "private", "product": "lease"}
    df = pd.DataFrame([{**base, **r} for r in rows])
    return level_codes(df, np.asarray(tau, float), CTX)[:, COVARIATE_NAMES.index(name)]


def test_a_habitual_date_just_before_a_launch_month_is_followed_into_it() -> None:
    # habitual date: day 40 after T (February 24th), five days before the March launch month
    near = {"days_to_end": 30, "habit_offset_days": 10}
    label = dict(enumerate(LAUNCH_PULL_LABELS))
    got = _codes([near] * 4, [20, 50, 65, 90], "launch_pull")
    assert [label[c] for c in got] == [
        "habitual date in the two months before a model launch",
        "model launch after the habitual date: first half of the launch month",
        "model launch after the habitual date: second half of the launch month",
        "model launch after the habitual date: launch month over",
    ]
    # a May habitual date is four months before September's launch; no history: nothing to pull
    far = {"days_to_end": 110, "habit_offset_days": 10}
    unknown = {"days_to_end": 30, "habit_offset_days": np.nan}
    assert (_codes([far, unknown], [130, 50], "launch_pull") == 0).all()


def test_customers_who_signed_in_a_launch_month_before_have_their_own_launch_pull() -> None:
    signer = {"days_to_end": 30, "habit_offset_days": 10, "signed_months_mask": 1 << 8}  # a September
    other = {"days_to_end": 30, "habit_offset_days": 10, "signed_months_mask": 1 << 5}  # a June
    assert list(_codes([signer, other], [50, 50], "launch_pull_launch_signer")) == [2, 0]
    assert list(_codes([signer, other], [50, 50], "launch_pull")) == [0, 2]


def test_customers_seen_signing_just_before_a_launch_have_their_own_launch_pull() -> None:
    """A signing in January, February, July or August (the two months before March's or September's
    launch) shows a customer who did not wait for the new model; with a launch-month signing too, or
    neither, nothing is known either way."""
    pull = ("launch_pull", "launch_pull_launch_signer", "launch_pull_launch_ignorer")
    cases = {
        "ignorer": 1 << 7,  # an August
        "ignorer (January)": 1 << 0,
        "signer": 1 << 8,  # a September
        "both": (1 << 8) | (1 << 1),  # a September and a February
        "neither": 1 << 5,  # a June
    }
    rows = [{"days_to_end": 30, "habit_offset_days": 10, "signed_months_mask": m} for m in cases.values()]
    got = {name: list(_codes(rows, [50] * len(rows), name)) for name in pull}
    assert got == {"launch_pull": [0, 0, 0, 2, 2], "launch_pull_launch_signer": [0, 0, 2, 0, 0],
                   "launch_pull_launch_ignorer": [2, 2, 0, 0, 0]}


def test_the_allowance_crossing_of_heavy_users_is_a_covariate_of_its_own() -> None:
    heavy = {"days_to_allowance": 40, "usage_ratio": 1.3}
    light = {"days_to_allowance": 40, "usage_ratio": 0.95}
    # step centred 10 days after the projected crossing
    assert list(_codes([heavy, light], [50, 50], "allowance_heavy_user")) == [5, 0]
    assert list(_codes([heavy, light], [50, 50], "allowance")) == [0, 5]
    labels = dict(enumerate(next(c for c in COVARIATES if c.name == "allowance").labels))
    assert labels[5] == "allowance exceeded within 15 days"
