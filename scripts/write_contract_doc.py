"""Write docs/data-contract.md from the contract declared in timing/core/contract.py.

Run: python scripts/write_contract_doc.py   (tests/test_docs.py checks the file is current)
"""

from __future__ import annotations

import sys
from pathlib import Path

from timing.core.contract import SUCCESSOR_GRACE_DAYS, TABLES, describe_rules

HEADER = """# Input data contract

*Generated from `timing/core/contract.py` by `scripts/write_contract_doc.py`; the
customer's specification is `shared/spec/data-contract.md`.*

An export is a folder with one file per table, named after the table:
`contracts.csv` or `contracts.parquet` (a folder `contracts/` of Parquet parts
works too; CSV and Parquet may be mixed). CSV: UTF-8, a header row, comma
separated. An export is the complete state **as known on one date**, its as-of
date (`timing ingest --as-of`, else the latest date found in the export).

Column names are exact; extra columns are kept. Booleans accept `true/false`,
`1/0`, `yes/no` in any case. Dates are ISO (`2026-05-31`); timestamps are ISO
8601 with an offset or `Z`, or naive (read as UTC), and are stored in UTC.
"""

FOOTER = f"""
## What counts as a repurchase

Contract K is *repurchased* on the day its successor is signed. The successor
is the contract whose `predecessor_contract_id` is K; where none names K, it is
inferred: a later contract of the same customer, signed after K started and no
later than {SUCCESSOR_GRACE_DAYS} days after K's actual (else scheduled) end; each new contract
replaces at most one earlier contract and is matched to the one whose end is
nearest its signing. A contract that ended with no successor within {SUCCESSOR_GRACE_DAYS} days is
*lost* on its end date (a competing outcome, not censoring); otherwise it is
*open*. The store's `outcomes` table holds this for every contract
(`timing/store/outcomes.py`).

## Bad rows

Every source row is loaded, set aside in the store's `quarantine` table (with
its table, source file, 1-based data row number, the first rule it broke and
its raw values as JSON), or counted as an exact duplicate of an earlier row:
`read = loaded + set aside + duplicates`, per table, always. Rules are checked
in this order: exact duplicate; per-column rules (missing, unreadable, allowed
values, ranges, pattern, not after the as-of date); cross-column rules; a
repeated key (the first row keeps it); an unknown parent (orphan, including
rows whose parent was itself set aside); for readings, an odometer lower than
an earlier reading of the same vehicle (the later, lower reading).

A missing required table or column, an unreadable file, or a typed column none
of whose values parse stops the ingest with a message naming the file and the
column; the previous store is left untouched.
"""


def render() -> str:
    parts = [HEADER, "## Tables\n"]
    for table in TABLES:
        need = "required" if table.required else "optional"
        parts.append(f"### {table.name} ({need})\n\n{table.doc}\n")
        parts.append("| column | type | rule |\n|---|---|---|")
        for row in describe_rules(table):
            doc = table.column(row.column).doc
            rule = f"{row.rule} ({doc})" if doc and doc not in row.rule else row.rule
            parts.append(f"| {row.column} | {row.type} | {rule} |")
        for chk in table.checks:
            parts.append(f"| *row* | | {chk.name} is an error (valid when `{chk.valid_sql}`) |")
        parts.append("")
    return "\n".join(parts) + FOOTER


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "data-contract.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")
