"""Synthetic demo portfolio: a realistic export and the hidden truth behind it.

The export (one file per table of :mod:`timing.core.contract`) is what a leasing
company would hand over on the as-of date. The truth, in a sibling folder
``OUT.truth``, holds what the simulator knows and no model may read: each
contract's intended signing date, what set it, and what happened in the 25
months after the as-of date.

Modules, in the order the simulation runs:

- :mod:`~timing.demo.population`: customers and their hidden habits;
- :mod:`~timing.demo.vehicles`: cars, battery wear, faults;
- :mod:`~timing.demo.portfolio`: chains of contracts and when each is renewed;
- :mod:`~timing.demo.telematics`, :mod:`~timing.demo.workshop`,
  :mod:`~timing.demo.outreach`: readings, fault codes, visits, contacts;
- :mod:`~timing.demo.export`, :mod:`~timing.demo.dirty`,
  :mod:`~timing.demo.writer`: the files.
"""

from __future__ import annotations

from timing.demo.generate import DemoSummary, generate_demo

__all__ = ["DemoSummary", "generate_demo"]
