"""The no-covariate baseline: Kaplan-Meier / Aalen-Johansen on months since the as-of date.

Pooled over all training origins, the monthly life table gives the discrete
cause-specific hazards ``h_k = events_k / at_risk_k`` for signing and for
losing the contract; every open contract gets the same curve. This is the
reference the forecast metrics are judged against (integrated Brier score
"against Kaplan-Meier").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from timing.core.conventions import LOST, SIGNED
from timing.models.base import ModelResult, MonthlyForecast
from timing.models.data import Landmarks


def life_table(lm: Landmarks, months: int) -> pd.DataFrame:
    """Per month: at risk, signed, lost (discrete times, pooled origins)."""
    last = np.where(lm.event_type > 0, lm.event_month, lm.observed_months).astype(int)
    k = np.arange(1, months + 1)
    at_risk = (last[:, None] >= k[None, :]).sum(axis=0)
    signed = np.bincount(lm.event_month[lm.event_type == SIGNED], minlength=months + 1)[1:months + 1]
    lost = np.bincount(lm.event_month[lm.event_type == LOST], minlength=months + 1)[1:months + 1]
    return pd.DataFrame({"month": k, "at_risk": at_risk, "signed": signed, "lost": lost})


@dataclass(frozen=True)
class KaplanMeier:
    months: int = 12
    name: str = "km"

    def fit(self, lm: Landmarks, start: KaplanMeierResult | None = None) -> KaplanMeierResult:
        """Fit on the landmark rows (``start``, an earlier fit, is not used: this family fits from scratch)."""
        return KaplanMeierResult(self, life_table(lm, self.months))


@dataclass(frozen=True)
class KaplanMeierResult(ModelResult):
    spec: KaplanMeier
    table: pd.DataFrame

    def hazards(self) -> tuple[np.ndarray, np.ndarray]:
        risk = np.maximum(self.table["at_risk"].to_numpy(float), 1)
        return self.table["signed"].to_numpy() / risk, self.table["lost"].to_numpy() / risk

    def predict(self, features: pd.DataFrame) -> MonthlyForecast:
        h_s, h_l = self.hazards()
        n = len(features)
        return MonthlyForecast.from_hazards(features["contract_id"].to_numpy(),
                                            np.tile(h_s, (n, 1)), np.tile(h_l, (n, 1)))

    def summary(self) -> pd.DataFrame:
        h_s, h_l = self.hazards()
        return self.table.assign(h_signed=h_s, h_lost=h_l)

    def to_tables(self) -> dict[str, pd.DataFrame | dict]:
        return {"life_table": self.table, "meta": {"family": self.name, "months": self.months}}

    @classmethod
    def from_tables(cls, tables: dict) -> KaplanMeierResult:
        return cls(KaplanMeier(months=int(tables["meta"]["months"])), tables["life_table"])
