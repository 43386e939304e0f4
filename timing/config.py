"""Settings: frozen dataclasses validated on creation, loaded from TOML by the CLI only.

``timing.toml`` has one table per step, each optional::

    [fit]
    months = 12
    lookback_months = 60

Unknown tables or keys are errors (a typo must not silently fall back to a
default). Library code receives a :class:`Settings` object, never a path.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from timing.core.conventions import ACCOUNT_CHANNEL, CAPTURE_DAYS
from timing.core.errors import ConfigError

DEFAULT_CONFIG = Path("timing.toml")
FAMILIES = ("discrete", "boost", "cox", "km")


@dataclass(frozen=True)
class FitSettings:
    """How models are fitted (see :mod:`timing.fitting.fit`)."""

    months: int = 12
    #: Monthly training origins. Five years: more than one whole lease (terms of two to four years), so a
    #: customer's previous renewal is itself a training example, and ten launch seasons.
    lookback_months: int = 60
    holdout_months: int = 6
    families: tuple[str, ...] = ("discrete", "boost", "cox")
    #: Contracts drawn (deterministically, by hash) at each training origin; 0 or None: all of them.
    #: The models' few hundred parameters need far fewer than a large portfolio's contract-origins,
    #: and the cap keeps the fit's cost flat beyond that size.
    max_contracts_per_origin: int | None = 12_000
    seed: int = 0
    launch_months: tuple[int, ...] = (3, 9)

    def __post_init__(self) -> None:
        if not 1 <= self.months <= 36:
            raise ConfigError("fit.months must be within 1..36")
        if self.holdout_months < 1 or self.holdout_months >= self.lookback_months:
            raise ConfigError("fit.holdout_months must be at least 1 and below fit.lookback_months")
        unknown = [f for f in self.families if f not in FAMILIES or f == "km"]
        if unknown or not self.families:
            raise ConfigError(f"fit.families: '{(unknown or [''])[0]}' is not a model family (known: "
                              f"{', '.join(f for f in FAMILIES if f != 'km')})")
        if any(not 1 <= m <= 12 for m in self.launch_months):
            raise ConfigError("fit.launch_months must be months 1..12")
        if self.max_contracts_per_origin is not None and self.max_contracts_per_origin < 0:
            raise ConfigError("fit.max_contracts_per_origin must be 0 (no cap) or positive")




def _month_day(text: str, key: str) -> tuple[int, int]:
    try:
        month, day = (int(x) for x in text.split("-"))
        date(2000, month, day)  # a leap year accepts 02-29
    except (ValueError, TypeError):
        raise ConfigError(f"{key}: '{text}' is not a month-day like 12-24") from None
    return month, day


@dataclass(frozen=True)
class ScheduleSettings:
    """Contact rules, capacity and how windows are chosen (see :mod:`timing.schedule`).

    ``blackout`` lists yearly periods as ``["MM-DD", "MM-DD"]`` pairs (inclusive)
    on which no outreach may start. ``keep_threshold``: a window from the last
    plan is kept unless another start is better by more than this share.
    ``branch_capacity_per_week`` caps every branch's weekly starts;
    ``branch_capacity_csv`` (``branch_id, week, capacity``) overrides it per week.
    """

    horizon_days: int = 182
    window_days: int = 28
    capture_days: int = CAPTURE_DAYS
    capacity_per_week: int | None = None
    capacity_factor: float = 1.2
    branch_capacity_per_week: int | None = None
    branch_capacity_csv: str | None = None
    min_days_since_contact: int = 60
    #: Outreaches per customer in any 90 days (13 weeks); a customer's windows starting in one week are one.
    max_starts_per_customer_90d: int = 2
    blackout: tuple[tuple[str, str], ...] = (("12-24", "12-31"),)
    keep_threshold: float = 0.15
    weight: str = "probability"
    solver: str = "auto"
    exact_max_variables: int = 50_000  # beyond this many candidates the exact solver is too slow
    candidate_weeks: int = 6
    business_channel: str = ACCOUNT_CHANNEL

    def __post_init__(self) -> None:
        if not 7 <= self.horizon_days <= 731:
            raise ConfigError("schedule.horizon_days must be within 7..731")
        if not 1 <= self.window_days <= 120:
            raise ConfigError("schedule.window_days must be within 1..120")
        if self.capacity_per_week is not None and self.capacity_per_week < 0:
            raise ConfigError("schedule.capacity_per_week must not be negative")
        if self.capacity_factor <= 0:
            raise ConfigError("schedule.capacity_factor must be positive")
        if self.max_starts_per_customer_90d < 1:
            raise ConfigError("schedule.max_starts_per_customer_90d must be at least 1")
        if self.min_days_since_contact < 0:
            raise ConfigError("schedule.min_days_since_contact must not be negative")
        if self.weight not in ("probability", "value"):
            raise ConfigError("schedule.weight must be 'probability' or 'value'")
        if self.solver not in ("auto", "exact", "greedy"):
            raise ConfigError("schedule.solver must be 'auto', 'exact' or 'greedy'")
        if not 0 <= self.keep_threshold < 10:
            raise ConfigError("schedule.keep_threshold must be within 0..10")
        for pair in self.blackout:
            if len(pair) != 2:
                raise ConfigError("schedule.blackout entries must be [start, end] pairs")
            for text in pair:
                _month_day(text, "schedule.blackout")

    def blackout_days(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        return [(_month_day(a, "blackout"), _month_day(b, "blackout")) for a, b in self.blackout]


#: The CRM file's columns in order: plan column -> the :class:`CrmSettings` field naming it.
CRM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("external_id", "external_id_field"),
    ("contract_id", "contract_id_field"),
    ("customer_id", "customer_id_field"),
    ("branch_id", "branch_id_field"),
    ("window_start", "window_start_field"),
    ("window_end", "window_end_field"),
    ("channel", "channel_field"),
    ("priority", "priority_field"),
    ("p_signing_in_window", "probability_field"),
    ("expected_signing_date", "expected_signing_date_field"),
    ("reasons", "reasons_field"),
    ("status", "status_field"),
)


@dataclass(frozen=True)
class CrmSettings:
    """The CRM import file (see :mod:`timing.outputs.crm` and ``crm.md``).

    ``*_field`` settings are the CRM's field names (Salesforce API names by
    default) of the file's columns; an empty name leaves that column out,
    except ``external_id_field`` (every upsert matches on it) and
    ``status_field`` (it closes a cancelled outreach). Defaults::

        external_id_field            Timing_External_Id__c
        contract_id_field            Contract_Id__c
        customer_id_field            Customer_Id__c
        branch_id_field              Branch_Id__c
        window_start_field           Outreach_Window_Start__c
        window_end_field             Outreach_Window_End__c
        channel_field                Outreach_Channel__c
        priority_field               Outreach_Priority__c
        probability_field            Signing_Probability__c
        expected_signing_date_field  Expected_Signing_Date__c
        reasons_field                Timing_Reasons__c
        status_field                 Plan_Status__c

    ``max_file_mb``: the largest part in MB of 1,000,000 bytes (the Bulk API
    2.0 upload limit is 100 MB of CSV); larger exports are split into numbered
    parts. ``line_ending``: ``"LF"`` (the Bulk API default) or ``"CRLF"``
    (only when the ingest job declares ``lineEnding=CRLF``).
    ``probability_as_percent``: write 95.11 (a Percent field) instead of
    0.9511 (a Number(1, 4) field). ``max_reasons_chars``: reasons longer than
    this are cut with an ellipsis (255 fits a Text(255) field; 0 keeps all).
    """

    external_id_field: str = "Timing_External_Id__c"
    contract_id_field: str = "Contract_Id__c"
    customer_id_field: str = "Customer_Id__c"
    branch_id_field: str = "Branch_Id__c"
    window_start_field: str = "Outreach_Window_Start__c"
    window_end_field: str = "Outreach_Window_End__c"
    channel_field: str = "Outreach_Channel__c"
    priority_field: str = "Outreach_Priority__c"
    probability_field: str = "Signing_Probability__c"
    expected_signing_date_field: str = "Expected_Signing_Date__c"
    reasons_field: str = "Timing_Reasons__c"
    status_field: str = "Plan_Status__c"
    max_file_mb: float = 100.0
    line_ending: str = "LF"
    probability_as_percent: bool = False
    max_reasons_chars: int = 255

    def __post_init__(self) -> None:
        names = []
        for _column, key in CRM_COLUMNS:
            name = getattr(self, key)
            if not isinstance(name, str):
                raise ConfigError(f"crm.{key} must be a string")
            if name != name.strip() or any(ch in name for ch in ',"\r\n\t;'):
                raise ConfigError(f"crm.{key}: '{name}' is not a field name (no spaces around it, "
                                  "no comma, quote, semicolon, tab or line break)")
            if name:
                names.append(name)
        if not self.external_id_field:
            raise ConfigError("crm.external_id_field must be set: an upsert matches rows on it")
        if not self.status_field:
            raise ConfigError("crm.status_field must be set: it is how a cancelled outreach is closed")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"crm: field name '{duplicates[0]}' is used for more than one column")
        if not 0 < self.max_file_mb <= 100:
            raise ConfigError("crm.max_file_mb must be above 0 and at most 100 (the Bulk API upload limit)")
        if self.line_ending not in ("LF", "CRLF"):
            raise ConfigError("crm.line_ending must be 'LF' or 'CRLF'")
        if self.max_reasons_chars < 0 or 0 < self.max_reasons_chars < 16:
            raise ConfigError("crm.max_reasons_chars must be 0 (no limit) or at least 16")

    def fields(self) -> dict[str, str]:
        """Plan column -> CRM field name, in file order, without the columns left out."""
        return {column: getattr(self, key) for column, key in CRM_COLUMNS if getattr(self, key)}

    @property
    def max_part_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    @property
    def line_terminator(self) -> str:
        return "\r\n" if self.line_ending == "CRLF" else "\n"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the toolkit, by step."""

    fit: FitSettings = field(default_factory=FitSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    crm: CrmSettings = field(default_factory=CrmSettings)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"[{section}] has no setting '{unknown[0]}' (known: {', '.join(known)})")
    kwargs = {k: _tuples(v) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"[{section}]: {e}") from e


def settings_from_dict(raw: dict[str, Any]) -> Settings:
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown settings table [{unknown[0]}] (known: {', '.join(sections)})")
    built = {}
    for name, value in raw.items():
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
        default = sections[name].default_factory()  # type: ignore[misc,operator]
        built[name] = _build(type(default), value, name)
    return Settings(**built)


def load_settings(path: Path | None) -> Settings:
    """Read ``path`` (or ``timing.toml`` when present); defaults when neither exists."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return Settings()
        path = DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError(f"{path}: no such settings file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read settings: {e}") from e
    return settings_from_dict(raw)
