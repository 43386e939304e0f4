"""The input data contract, declared once.

Every table, column, type and rule of ``docs/data-contract.md`` lives here as
data. Ingestion (:mod:`timing.ingest.load`) turns these declarations into set-based
SQL checks; the demo generator writes exactly these columns; the docs are
written from the same list.

Notes
-----
Rules that compare a value with the export's as-of date are declared with
``le_asof=True``. Cross-column rules are SQL predicates over the *parsed*
column values that are true when the row is **valid**; a NULL result counts as
valid (an optional column left empty breaks no cross-column rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from timing.core.conventions import CHANNELS

DType = Literal["string", "int", "float", "decimal", "date", "timestamp", "bool"]

#: SQL type each contract type is stored as.
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "decimal": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "bool": "BOOLEAN",
}

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


@dataclass(frozen=True)
class Column:
    """One column of the contract."""

    name: str
    dtype: DType
    required: bool = False
    unique: bool = False
    choices: tuple[str, ...] | None = None
    min: float | None = None
    min_exclusive: bool = False
    max: float | None = None
    pattern: str | None = None
    pattern_text: str | None = None
    le_asof: bool = False
    max_asof_year: bool = False
    default: bool | None = None
    doc: str = ""

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.dtype]


@dataclass(frozen=True)
class Check:
    """A rule across columns: ``valid_sql`` is true for a valid row."""

    name: str
    valid_sql: str


@dataclass(frozen=True)
class Reference:
    """A foreign key: ``column`` must exist in ``table.key`` (when given)."""

    column: str
    table: str
    key: str
    rule: str


@dataclass(frozen=True)
class Table:
    name: str
    required: bool
    columns: tuple[Column, ...]
    key: str | None = None
    checks: tuple[Check, ...] = ()
    references: tuple[Reference, ...] = ()
    doc: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


POWERTRAINS = ("ice", "hev", "phev", "bev")
PRODUCTS = ("lease", "balloon", "hire_purchase")
END_TYPES = ("returned", "bought_out", "early_terminated", "written_off")
SEVERITIES = ("info", "warning", "critical")
VISIT_TYPES = ("maintenance", "repair", "warranty", "recall", "tyres")
OUTCOMES = ("no_response", "declined", "interested", "appointment")

CUSTOMERS = Table(
    name="customers",
    required=True,
    key="customer_id",
    doc="One row per customer (private person or business).",
    columns=(
        Column("customer_id", "string", required=True, unique=True),
        Column("customer_type", "string", required=True, choices=("private", "business")),
        Column("birth_year", "int", min=1900, max_asof_year=True, doc="1900..as-of year"),
        Column("region", "string", required=True),
        Column("branch_id", "string", required=True, doc="the leasing team that owns the customer"),
        Column("consent_email", "bool", default=False),
        Column("consent_phone", "bool", default=False),
        Column("consent_sms", "bool", default=False),
        Column("consent_letter", "bool", default=False),
        Column("do_not_contact", "bool", default=False, doc="overrides every consent"),
        Column("preferred_channel", "string", choices=CHANNELS),
    ),
)

VEHICLES = Table(
    name="vehicles",
    required=True,
    key="vehicle_id",
    doc="One row per vehicle.",
    columns=(
        Column("vehicle_id", "string", required=True, unique=True),
        Column(
            "vin",
            "string",
            pattern="^[A-HJ-NPR-Z0-9]{17}$",
            pattern_text="17 characters, no I, O, Q",
        ),
        Column("brand", "string"),
        Column("model", "string"),
        Column("model_year", "int"),
        Column("powertrain", "string", choices=POWERTRAINS),
        Column("list_price", "decimal", min=0),
    ),
)

CONTRACTS = Table(
    name="contracts",
    required=True,
    key="contract_id",
    doc="One row per lease/finance contract, running or ended.",
    columns=(
        Column("contract_id", "string", required=True, unique=True),
        Column("customer_id", "string", required=True),
        Column("vehicle_id", "string", required=True),
        Column("product", "string", required=True, choices=PRODUCTS),
        Column("signed_date", "date", required=True, le_asof=True),
        Column("start_date", "date", required=True),
        Column("scheduled_end_date", "date", required=True),
        Column("annual_km_allowance", "int", required=True, min=0, min_exclusive=True),
        Column("monthly_payment", "decimal", min=0),
        Column("currency", "string", pattern="^[A-Z]{3}$", pattern_text="ISO 4217 code"),
        Column("actual_end_date", "date", le_asof=True, doc="empty while the contract runs"),
        Column("end_type", "string", choices=END_TYPES),
        Column("predecessor_contract_id", "string"),
    ),
    checks=(
        Check("start_date before signed_date", "start_date >= signed_date"),
        Check("scheduled_end_date not after start_date", "scheduled_end_date > start_date"),
        Check("actual_end_date before start_date", "actual_end_date >= start_date"),
        Check(
            "end_type set exactly when actual_end_date is set",
            "(actual_end_date IS NULL) = (end_type IS NULL)",
        ),
    ),
    references=(
        Reference("customer_id", "customers", "customer_id", "unknown customer_id"),
        Reference("vehicle_id", "vehicles", "vehicle_id", "unknown vehicle_id"),
    ),
)

READINGS = Table(
    name="readings",
    required=False,
    doc="Telematics / diagnostic snapshots: the large table.",
    columns=(
        Column("vehicle_id", "string", required=True),
        Column("recorded_at", "timestamp", required=True, le_asof=True),
        Column("odometer_km", "float", required=True, min=0),
        Column("battery_soh_pct", "float", min=0, min_exclusive=True, max=100),
    ),
    references=(Reference("vehicle_id", "vehicles", "vehicle_id", "unknown vehicle_id"),),
)

FAULT_CODES = Table(
    name="fault_codes",
    required=False,
    doc="Diagnostic trouble codes.",
    columns=(
        Column("vehicle_id", "string", required=True),
        Column("recorded_at", "timestamp", required=True, le_asof=True),
        Column("code", "string", required=True),
        Column("severity", "string", required=True, choices=SEVERITIES),
    ),
    references=(Reference("vehicle_id", "vehicles", "vehicle_id", "unknown vehicle_id"),),
)

SERVICE_VISITS = Table(
    name="service_visits",
    required=False,
    doc="Workshop visits.",
    columns=(
        Column("vehicle_id", "string", required=True),
        Column("visit_date", "date", required=True, le_asof=True),
        Column("visit_type", "string", required=True, choices=VISIT_TYPES),
        Column("cost", "decimal", min=0),
    ),
    references=(Reference("vehicle_id", "vehicles", "vehicle_id", "unknown vehicle_id"),),
)

CONTACTS = Table(
    name="contacts",
    required=False,
    doc="Outreach history and its outcome.",
    columns=(
        Column("customer_id", "string", required=True),
        Column("contract_id", "string"),
        Column("contacted_at", "timestamp", required=True, le_asof=True),
        Column("channel", "string", required=True, choices=CHANNELS),
        Column("outcome", "string", required=True, choices=OUTCOMES),
    ),
    references=(
        Reference("customer_id", "customers", "customer_id", "unknown customer_id"),
        Reference("contract_id", "contracts", "contract_id", "unknown contract_id"),
    ),
)

#: Tables in load order: a table's references point only to earlier tables.
TABLES: tuple[Table, ...] = (
    CUSTOMERS,
    VEHICLES,
    CONTRACTS,
    READINGS,
    FAULT_CODES,
    SERVICE_VISITS,
    CONTACTS,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: The date column that says when a row became known (for as-of views).
EVENT_TIME_COLUMN: dict[str, str] = {
    "contracts": "signed_date",
    "readings": "recorded_at",
    "fault_codes": "recorded_at",
    "service_visits": "visit_date",
    "contacts": "contacted_at",
}

#: Days after a contract's end within which a new contract still counts as its successor.
SUCCESSOR_GRACE_DAYS = 180


@dataclass(frozen=True)
class ContractDocRow:
    table: str
    column: str
    type: str
    rule: str


def describe_rules(table: Table) -> list[ContractDocRow]:
    """Human-readable rule per column, used for docs and error messages."""
    rows: list[ContractDocRow] = []
    for c in table.columns:
        parts: list[str] = ["required" if c.required else "optional"]
        if c.unique:
            parts.append("unique")
        if c.choices:
            parts.append("one of " + ", ".join(c.choices))
        if c.min is not None:
            parts.append(f"{'>' if c.min_exclusive else '>='} {c.min:g}")
        if c.max is not None:
            parts.append(f"<= {c.max:g}")
        if c.max_asof_year:
            parts.append("<= as-of year")
        if c.pattern_text:
            parts.append(c.pattern_text)
        if c.le_asof:
            parts.append("<= as-of")
        if c.default is not None:
            parts.append(f"default {str(c.default).lower()}")
        for r in table.references:
            if r.column == c.name:
                parts.append(f"must exist in {r.table}")
        rows.append(ContractDocRow(table.name, c.name, c.dtype, "; ".join(parts)))
    return rows

