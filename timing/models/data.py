"""Training rows of the panel models: contracts at origins, their features then, and what followed.

:class:`Landmarks` is what every model family's ``fit`` reads: one row per
(contract, origin) with the features known at the origin and the labels known
later. It holds no knowledge of where the rows came from; the leasing pipeline
builds it from the store (:mod:`timing.features.training`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Landmarks:
    """Rows of (contract, origin) with features at the origin and labels."""

    features: pd.DataFrame
    event_month: np.ndarray  # month of the event (1..), 0 when censored
    event_type: np.ndarray  # event codes of timing.core.conventions: CENSORED, SIGNED or LOST
    observed_months: np.ndarray  # whole months observed after the origin (<= horizon)
    event_day: np.ndarray  # days after the origin of the event (NaN when censored)
    observed_day: np.ndarray  # days after the origin up to which the contract is observed

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, mask: np.ndarray) -> Landmarks:
        return Landmarks(renumbered(self.features[mask]), self.event_month[mask],
                         self.event_type[mask], self.observed_months[mask], self.event_day[mask],
                         self.observed_day[mask])


def renumbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` indexed 0..n-1, without copying its data where it is already so indexed (pandas'
    ``reset_index`` copies every column: a second or more for the training rows)."""
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame
    out = frame.copy(deep=False)
    out.index = pd.RangeIndex(len(out))
    return out
