"""Each contract's outcome, as the data contract defines a repurchase.

Contract K is *repurchased* on the day its successor is signed. The successor
is the contract whose ``predecessor_contract_id`` is K; where no contract
names K, it is inferred: a later contract of the same customer, signed after K
started and no later than 180 days after K's actual (else scheduled) end. Each
new contract replaces at most one earlier contract and is matched to the one
whose end is nearest its signing. A contract that ended with no successor
within 180 days is *lost* on its end date (a competing outcome). Any other
contract is *open*.

Notes
-----
Everything is relative to an as-of date T and to the contracts visible at T
(:mod:`timing.store.asof` passes the right relation). A contract that ended less
than 180 days before T without a successor is still open at T: the customer
may yet sign. The matching of inferred successors is a greedy assignment by
distance ``|end(K) - signed(N)|`` (ties by end date, then ids), computed in
rounds of mutually-best pairs; each round is one SQL statement, and the number
of rounds is bounded by the largest number of competing contracts of one
customer, not by the size of the portfolio.
"""

from __future__ import annotations

from datetime import date

import duckdb

from timing.core.contract import SUCCESSOR_GRACE_DAYS

OUTCOME_COLUMNS = (
    "contract_id",
    "customer_id",
    "end_date",
    "successor_contract_id",
    "successor_link",
    "outcome",
    "outcome_date",
)


def derive_outcomes(
    con: duckdb.DuckDBPyConnection, contracts: str, as_of: date, target: str
) -> None:
    """Create table ``target`` with one outcome row per contract in ``contracts``.

    Parameters
    ----------
    contracts
        A table or view name with the contract columns, as visible at ``as_of``.
    target
        Name of the table to create (replaced if present).

    Columns: ``contract_id, customer_id, end_date`` (actual, else scheduled),
    ``successor_contract_id, successor_link`` (``recorded`` | ``inferred``),
    ``outcome`` (``repurchased`` | ``lost`` | ``open``) and ``outcome_date``.
    """
    g = SUCCESSOR_GRACE_DAYS
    t = f"DATE '{as_of.isoformat()}'"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _k AS
        SELECT contract_id, customer_id, CAST(start_date AS DATE) AS start_date,
               CAST(signed_date AS DATE) AS signed_date,
               CAST(predecessor_contract_id AS VARCHAR) AS predecessor_contract_id,
               CAST(coalesce(actual_end_date, scheduled_end_date) AS DATE) AS end_date,
               CAST(actual_end_date AS DATE) AS actual_end_date
        FROM {contracts}"""
    )
    # recorded links: the earliest-signed contract naming K is K's successor
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _link AS
        SELECT k.contract_id AS k, arg_min(n.contract_id, (n.signed_date, n.contract_id)) AS n,
               'recorded' AS how
        FROM _k k JOIN _k n ON n.predecessor_contract_id = k.contract_id
                          AND n.contract_id <> k.contract_id
        GROUP BY k.contract_id"""
    )
    # candidates for inference: new contracts that name no predecessor, earlier contracts without a successor
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _cand AS
        SELECT k.contract_id AS k, n.contract_id AS n,
               abs(datediff('day', k.end_date, n.signed_date)) AS dist, k.end_date AS k_end
        FROM _k k JOIN _k n
          ON n.customer_id = k.customer_id AND n.contract_id <> k.contract_id
         AND n.signed_date > k.start_date
         AND n.signed_date <= k.end_date + INTERVAL {g} DAY
        WHERE n.predecessor_contract_id IS NULL
          AND k.contract_id NOT IN (SELECT k FROM _link)
          AND n.contract_id NOT IN (SELECT n FROM _link)"""
    )
    while True:
        added = con.execute(
            """INSERT INTO _link
            SELECT k, n, 'inferred' FROM (
                SELECT k, n,
                  row_number() OVER (PARTITION BY n ORDER BY dist, k_end, k) AS rn_n,
                  row_number() OVER (PARTITION BY k ORDER BY dist, k_end, n) AS rn_k
                FROM _cand) WHERE rn_n = 1 AND rn_k = 1"""
        ).fetchone()
        if not added or added[0] == 0:
            break
        con.execute(
            "DELETE FROM _cand WHERE k IN (SELECT k FROM _link) OR n IN (SELECT n FROM _link)"
        )
    con.execute(
        f"""CREATE OR REPLACE TABLE {target} AS
        SELECT k.contract_id, k.customer_id, k.end_date,
               l.n AS successor_contract_id, l.how AS successor_link,
               CASE WHEN l.n IS NOT NULL THEN 'repurchased'
                    WHEN k.actual_end_date IS NOT NULL
                         AND k.actual_end_date + INTERVAL {g} DAY <= {t} THEN 'lost'
                    ELSE 'open' END AS outcome,
               CASE WHEN l.n IS NOT NULL THEN s.signed_date
                    WHEN k.actual_end_date IS NOT NULL
                         AND k.actual_end_date + INTERVAL {g} DAY <= {t} THEN k.actual_end_date
               END AS outcome_date
        FROM _k k
        LEFT JOIN _link l ON l.k = k.contract_id
        LEFT JOIN _k s ON s.contract_id = l.n
        ORDER BY k.contract_id"""
    )
    for tmp in ("_k", "_link", "_cand"):
        con.execute(f"DROP TABLE {tmp}")


def build_outcomes(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    """The store's own ``outcomes`` table, at the export's as-of date."""
    derive_outcomes(con, "main.contracts", as_of, "main.outcomes")
