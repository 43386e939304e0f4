"""Model families behind one interface: ``fit(Landmarks) -> ModelResult``.

The registry lets fitting, backtests and the contract tests loop over every
family. ``timing fit`` compares the families of its settings on a temporal
holdout and keeps the best; ``km`` is the no-covariate baseline the metrics
compare with.
"""

from __future__ import annotations

from typing import Any

from timing.models.base import ModelResult, MonthlyForecast
from timing.models.boost import RAW_COLUMNS, BoostedHazard, BoostedHazardResult
from timing.models.cox import CoxHazard, CoxHazardResult
from timing.models.discrete import DiscreteHazard, DiscreteHazardResult
from timing.models.km import KaplanMeier, KaplanMeierResult
from timing.models.panel import PANEL_COLUMNS

REGISTRY: dict[str, Any] = {"discrete": DiscreteHazard, "boost": BoostedHazard, "cox": CoxHazard, "km": KaplanMeier}
RESULTS: dict[str, Any] = {"discrete": DiscreteHazardResult, "boost": BoostedHazardResult, "cox": CoxHazardResult,
                           "km": KaplanMeierResult}
BASELINE = "km"

#: The feature columns any family reads when fitting or predicting (training keeps only these: the
#: identifiers and descriptions besides them are text, slow to copy and of no use to a model).
MODEL_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(
    ("contract_id", *PANEL_COLUMNS, *RAW_COLUMNS)))

__all__ = ["BASELINE", "MODEL_COLUMNS", "REGISTRY", "RESULTS", "ModelResult", "MonthlyForecast"]
