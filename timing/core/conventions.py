"""Facts every stage shares: time, outcomes, channels, the capture window, priority bands.

Time
    A model month is ``MONTH_DAYS`` days (the mean Gregorian month), so month k
    after a date T holds the days ``((k - 1) * MONTH_DAYS, k * MONTH_DAYS]``
    after T. Dates are calendar days in UTC.

Outcomes of a contract
    ``"open"`` (no successor yet), ``"repurchased"`` (a successor contract was
    signed: the event the toolkit predicts) or ``"lost"`` (ended without a
    successor within the grace period of the data contract). As event codes
    of a competing-risks observation: ``CENSORED`` 0, ``SIGNED`` 1, ``LOST`` 2.

Channels
    The customer's consented channels in the order the scheduler prefers them
    when the customer named none (``CHANNELS``); a business customer's outreach
    goes to its account manager (``ACCOUNT_CHANNEL``).

Capture
    An outreach window captures a signing when it starts within
    ``CAPTURE_DAYS`` days before it (``docs/metrics.md``).

Priority
    A planned window's priority from the chance that the signing falls in it:
    1 at ``PRIORITY_BANDS[0]`` or more, 2 at ``PRIORITY_BANDS[1]`` or more, else 3.
"""

from __future__ import annotations

import numpy as np

MONTH_DAYS = 30.4375

OUTCOME_OPEN, OUTCOME_REPURCHASED, OUTCOME_LOST = "open", "repurchased", "lost"
OUTCOMES = (OUTCOME_OPEN, OUTCOME_REPURCHASED, OUTCOME_LOST)

CENSORED, SIGNED, LOST = 0, 1, 2
#: Outcome name -> event code of a competing-risks observation.
EVENT_CODES = {OUTCOME_OPEN: CENSORED, OUTCOME_REPURCHASED: SIGNED, OUTCOME_LOST: LOST}

#: Consented channels, in the scheduler's order of preference.
CHANNELS = ("phone", "email", "sms", "letter")
ACCOUNT_CHANNEL = "account"
#: Every channel an outreach can go through.
OUTREACH_CHANNELS = (*CHANNELS, ACCOUNT_CHANNEL)

CAPTURE_DAYS = 60

PRIORITY_BANDS = (0.5, 0.25)


def priority(p_in_window: np.ndarray) -> np.ndarray:
    """Priority 1 (most urgent), 2 or 3 of windows whose signing chance inside them is ``p_in_window``."""
    p = np.asarray(p_in_window, float)
    return np.where(p >= PRIORITY_BANDS[0], 1, np.where(p >= PRIORITY_BANDS[1], 2, 3))
