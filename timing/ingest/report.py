"""What an ingest did, table by table: rows read, loaded, set aside (and why) and duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class TableReport:
    table: str
    source: str | None
    read: int
    loaded: int
    set_aside: int
    duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.set_aside + self.duplicates


class TableReports:
    """Look-ups over the ``tables`` of an ingest report (DuckDB's or Spark's)."""

    tables: tuple[TableReport, ...]

    def table(self, name: str) -> TableReport:
        return next(t for t in self.tables if t.table == name)

    @property
    def set_aside(self) -> int:
        return sum(t.set_aside for t in self.tables)


@dataclass(frozen=True)
class IngestReport(TableReports):
    export_dir: str
    store: str
    as_of: date
    as_of_inferred: bool
    tables: tuple[TableReport, ...]
    seconds: float

    def summary(self) -> str:
        """Rows read / loaded / set aside / duplicates per table, and the reasons."""
        how = "inferred from the data" if self.as_of_inferred else "given"
        lines = [
            f"ingested {self.export_dir} into {self.store} in {self.seconds:.1f} s "
            f"(as-of {self.as_of}, {how})",
            f"  {'table':<15}{'read':>12}{'loaded':>12}{'set aside':>12}{'duplicates':>12}",
        ]
        for t in self.tables:
            src = "" if t.source else "  (not in export)"
            lines.append(
                f"  {t.table:<15}{t.read:>12,}{t.loaded:>12,}{t.set_aside:>12,}{t.duplicates:>12,}{src}"
            )
        reasons = [(t.table, r, n) for t in self.tables for r, n in t.reasons.items()]
        if reasons:
            lines.append("  set aside (see the store's quarantine table):")
            lines += [f"    {table}: {rule}: {n:,}" for table, rule, n in reasons]
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# locating and reading files


