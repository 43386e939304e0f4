"""What really happened after a backtest origin: the full store's outcomes, then the truth folder.

Nothing here reaches a model: the per-origin models are fitted and scored
before any of this is looked at (:mod:`timing.backtest.origin`).

Notes
-----
The full store knows every contract's outcome up to its own as-of date:
a successor signed by then is visible, so the signing days of the contracts
open on an origin T are exact on ``(T, store as-of]``. Beyond the store's
as-of, a synthetic export's truth folder (if given) says what happened, up
to its ``horizon_end``. The store wins wherever both speak: the truth only
adds a repurchase signed after the store's as-of, or a loss of a contract the
store still calls open. Without a truth folder an origin whose horizon passes
the store's as-of is evaluated on what is observed, and marked partial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from timing.features.training import label, outcomes_with_ends
from timing.fitting.fit import observed_from, read_truth
from timing.models.metrics import Observed
from timing.store.asof import open_snapshot

#: How far the demo generator simulates after its as-of when meta.json does not say.
TRUTH_DAYS_DEFAULT = 760
#: Below this share of the open contracts found in the truth folder, it belongs to another store.
TRUTH_MIN_COVERAGE = 0.95


@dataclass(frozen=True)
class Hindsight:
    """Everything known after the fact, read once for all origins."""

    outcomes: pd.DataFrame  # the full store's outcomes: contract_id, outcome, outcome_date, actual_end_date
    store_as_of: date
    truth: pd.DataFrame | None = None  # contract_id, outcome, outcome_date, intended_signing_date
    truth_until: date | None = None  # the truth's outcomes are known up to this day

    @property
    def known_until(self) -> date:
        return self.truth_until if self.truth_until is not None else self.store_as_of


def read_hindsight(store: Path, truth: Path | None = None) -> Hindsight:
    """The store's outcomes at its as-of date, and the truth folder's outcomes when given."""
    with open_snapshot(store) as snap:
        outcomes = outcomes_with_ends(snap.con, snap.schema)
        store_as_of = snap.as_of
    outcomes = outcomes[["contract_id", "outcome", "outcome_date", "actual_end_date"]]
    if truth is None:
        return Hindsight(outcomes, store_as_of)
    t = read_truth(truth)[["contract_id", "outcome", "outcome_date", "intended_signing_date"]]
    for col in ("outcome_date", "intended_signing_date"):
        t[col] = pd.to_datetime(t[col])
    until = store_as_of + timedelta(days=TRUTH_DAYS_DEFAULT)
    meta = Path(truth) / "meta.json"
    if meta.exists():
        until = date.fromisoformat(json.loads(meta.read_text())["horizon_end"])
    return Hindsight(outcomes, store_as_of, t, until)


@dataclass(frozen=True)
class Realised:
    """What happened to the contracts open on ``cutoff`` (rows in the order of ``contract_id``)."""

    cutoff: date
    contract_id: np.ndarray
    signing_day: np.ndarray  # days after the cutoff of the successor's signing; NaN when none is known
    known_days: int  # outcomes are known through this many days after the cutoff
    outcomes: pd.DataFrame  # combined outcomes in label()'s terms, one row per contract
    intended_day: np.ndarray | None = None  # the truth's intended signing day, days after the cutoff

    def partial(self, horizon_days: int) -> bool:
        """Whether the horizon reaches past what is known."""
        return self.known_days < horizon_days

    def observed(self, months: int) -> Observed:
        """Signing / loss / censoring per contract over ``months`` months, as fitting labels them."""
        rows = pd.DataFrame({"contract_id": self.contract_id, "as_of": pd.Timestamp(self.cutoff)})
        known = self.cutoff + timedelta(days=self.known_days)
        return observed_from(label(rows, self.outcomes, known, months))


def realised_after(hindsight: Hindsight, contract_id: np.ndarray, cutoff: date) -> Realised:
    """Combine the store's and the truth's outcomes for the contracts open on ``cutoff``."""
    if cutoff > hindsight.store_as_of:
        raise ValueError(f"origin {cutoff} is after the store's as-of {hindsight.store_as_of}")
    o = hindsight.outcomes.set_index("contract_id").reindex(contract_id)
    o["outcome_date"] = pd.to_datetime(o["outcome_date"])
    o["actual_end_date"] = pd.to_datetime(o["actual_end_date"])
    T = pd.Timestamp(cutoff)
    intended = None
    if hindsight.truth is not None:
        t = hindsight.truth.set_index("contract_id").reindex(contract_id)
        found = float(t["outcome"].notna().mean()) if len(t) else 1.0
        if found < TRUTH_MIN_COVERAGE:
            raise ValueError(f"the truth folder knows only {found:.0%} of the contracts open on {cutoff}: "
                             "it belongs to another export")
        still_open = (o["outcome"] == "open").to_numpy()
        signed_later = still_open & (t["outcome"] == "repurchased").to_numpy() & \
            (t["outcome_date"] > pd.Timestamp(hindsight.store_as_of)).to_numpy()
        lost = still_open & (t["outcome"] == "lost").to_numpy()
        take = signed_later | lost
        o.loc[take, "outcome"] = t.loc[take, "outcome"].to_numpy()
        o.loc[take, "outcome_date"] = t.loc[take, "outcome_date"].to_numpy()
        # a truth loss is dated at the contract's end
        o.loc[lost, "actual_end_date"] = o.loc[lost, "actual_end_date"].fillna(t.loc[lost, "outcome_date"])
        intended = ((t["intended_signing_date"] - T).dt.days).to_numpy(float)
    known_days = (hindsight.known_until - cutoff).days
    day = (o["outcome_date"] - T).dt.days.to_numpy(float)
    signed = (o["outcome"] == "repurchased").to_numpy() & (day <= known_days)
    return Realised(cutoff, np.asarray(contract_id), np.where(signed, day, np.nan), known_days,
                    o.reset_index(), intended)
