"""Backtests: how the toolkit would have done on past dates, judged against what happened.

The flow, per origin T (a past as-of date, the table's ``cutoff``):

- :mod:`~timing.backtest.origin`: fit, score and read contact rules from the
  as-of views at T, exactly as the daily job would have on T; plan the model's,
  the naive and the truth policy's windows at one capacity;
- :mod:`~timing.backtest.hindsight`: what really happened after T, from the
  full store and, past its as-of, a synthetic export's truth folder;
- :mod:`~timing.backtest.metrics`: capture, precision, concordance, Brier
  scores, calibration and portfolio volume as rows of one long table;
- :mod:`~timing.backtest.run`: origins in parallel processes, the table
  written to Parquet, CSV and the store (``backtest_results``);
- :mod:`~timing.backtest.strategies`: other planning strategies on the same
  fitted models.
"""

from __future__ import annotations

from timing.backtest.run import (
           DEFAULT_OUT,
           RESULT_COLUMNS,
           BacktestResult,
           default_origins,
           run_backtest,
)
from timing.backtest.strategies import (
           Strategy,
           StrategyResult,
           default_strategies,
           simulate_strategies,
)

__all__ = ["DEFAULT_OUT", "RESULT_COLUMNS", "BacktestResult", "Strategy", "StrategyResult", "default_origins",
           "default_strategies", "parse_origins", "run_backtest", "simulate_strategies"]
