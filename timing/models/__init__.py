"""Model families behind one interface: ``fit(Landmarks) -> ModelResult``.

The registry lets fitting, backtests and the contract tests loop over every
family. ``discrete`` is the default (it wins on the holdout, see
``timing fit``); ``km`` is the no-covariate baseline the metrics compare with.
"""

from __future__ import annotations

from typing import Any

from timing.models.base import ModelResult, MonthlyForecast
from timing.models.boost import BoostedHazard, BoostedHazardResult
from timing.models.cox import CoxHazard, CoxHazardResult
from timing.models.discrete import DiscreteHazard, DiscreteHazardResult
from timing.models.km import KaplanMeier, KaplanMeierResult

REGISTRY: dict[str, Any] = {"discrete": DiscreteHazard, "boost": BoostedHazard, "cox": CoxHazard, "km": KaplanMeier}
RESULTS: dict[str, Any] = {"discrete": DiscreteHazardResult, "boost": BoostedHazardResult, "cox": CoxHazardResult,
                           "km": KaplanMeierResult}
BASELINE = "km"

__all__ = ["BASELINE", "REGISTRY", "RESULTS", "ModelResult", "MonthlyForecast"]
