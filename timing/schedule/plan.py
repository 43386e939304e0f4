"""Choosing one outreach start per contract within weekly capacity: exact and greedy.

The problem: contracts i, candidate start weeks w, value ``v[i, w]`` (the
probability that the signing falls within the capture span after that start,
optionally weighted by contract value); at most one start per contract, at
most ``C_w`` starts in week w overall and ``C_bw`` per branch, and at most N
outreaches per customer in any 13 weeks (the 90-day rule). Maximise the total value.

A customer's windows that start in the same week are one outreach (the
planner gives them one start day): one conversation about several contracts,
as a fleet's account manager has about the cars due together. They still
take one unit of weekly capacity each. The 90-day rule counts a customer's
weeks with a start, not their windows.

* :func:`solve_exact` states it as a 0/1 program for HiGHS
  (``scipy.optimize.milp``). Without the customer rule the constraint matrix
  is totally unimodular (two laminar families), so the LP relaxation is
  already integral and HiGHS solves it at LP speed. The customer rule adds,
  for customers with candidates on two or more contracts, a 0/1 variable per
  customer-week ("an outreach that week") that each of its windows needs,
  and caps those in every 13-week span.
* :func:`solve_greedy` is a vectorised deferred-acceptance auction: every
  unplaced contract proposes its best remaining week; each branch-week and
  week keeps its highest-value proposals up to capacity and rejects the rest,
  who propose again. Each round is a few sorts over the pool, and rounds are
  bounded by the candidates per contract; no Python loop touches a contract.

Both work on a candidate list (``Candidates``) so that each contract carries
only its best few weeks. ``tests/test_schedule.py`` checks the exact solver
against brute force and measures the greedy's gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

WEEKS_PER_90_DAYS = 13


@dataclass(frozen=True)
class Candidates:
    """Feasible (contract, week) pairs with their value."""

    contract: np.ndarray  # index into the contract table
    week: np.ndarray
    value: np.ndarray
    branch: np.ndarray  # integer code per candidate
    customer: np.ndarray  # integer code per candidate

    def __len__(self) -> int:
        return len(self.contract)

    @classmethod
    def from_matrix(cls, values: np.ndarray, feasible: np.ndarray, branch: np.ndarray, customer: np.ndarray,
                    top_k: int = 0, always: np.ndarray | None = None, min_value: float = 1e-6) -> Candidates:
        """Keep each contract's ``top_k`` feasible weeks by value (all when 0), plus ``always``."""
        v = np.where(feasible, values, -np.inf)
        n, W = v.shape
        keep = np.isfinite(v) & (v > min_value)
        if top_k and top_k < W:
            order = np.argsort(-v, axis=1, kind="stable")[:, :top_k]
            top = np.zeros_like(keep)
            np.put_along_axis(top, order, True, axis=1)
            keep &= top
        if always is not None:  # e.g. the week of the last plan's window, for stability
            rows = np.flatnonzero(always >= 0)
            ok = feasible[rows, always[rows]]
            keep[rows[ok], always[rows[ok]]] = True
        i, w = np.nonzero(keep)
        return cls(i, w, values[i, w], branch[i], customer[i])


@dataclass(frozen=True)
class Capacity:
    week: np.ndarray  # (W,) overall starts allowed per week
    branch_week: np.ndarray | None = None  # (branches, W) or None
    per_customer_90d: int | None = None


def _rank_within(keys: list[np.ndarray], value: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each row within its group of equal ``keys``, by value then ``tie``."""
    order = np.lexsort((tie, -value, *reversed(keys)))
    sorted_keys = [k[order] for k in keys]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = np.any([np.diff(k) != 0 for k in sorted_keys], axis=0) if keys else False
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - group_start
    return rank


def _customer_keep(customer: np.ndarray, week: np.ndarray, value: np.ndarray, tie: np.ndarray,
                   limit: int) -> np.ndarray:
    """Which rows a customer keeps under "at most ``limit`` outreach weeks in any 13 weeks", best value first.

    Rows of one customer in the same week are one outreach. Each pass keeps,
    for every customer, the undecided rows of its best week (the largest total
    value: the outreach worth most), then every undecided row in a week the
    customer already has a kept row in (the same outreach), and drops the
    undecided rows with ``limit`` kept weeks within 12 weeks of them. For a
    limit of one this is exactly the rule; above one it is slightly stricter
    (it may drop a start the rule would allow), never looser.
    """
    n = len(customer)
    ok = np.zeros(n, dtype=bool)
    undecided = np.ones(n, dtype=bool)
    # rows of customers with a single row in the pool never conflict
    codes = np.unique(customer, return_inverse=True)[1] if n else np.zeros(0, int)
    single = np.bincount(codes)[codes] == 1 if n else np.zeros(0, bool)
    ok[single] = True
    undecided[single] = False
    while undecided.any():
        idx = np.flatnonzero(undecided)
        bundles = pd.DataFrame({"c": customer[idx], "w": week[idx], "v": value[idx], "t": tie[idx]})
        g = bundles.groupby(["c", "w"], sort=False).agg(v=("v", "sum"), t=("t", "min")).reset_index()
        top = g.iloc[np.flatnonzero(_rank_within([g["c"].to_numpy()], g["v"].to_numpy(), g["t"].to_numpy()) == 0)]
        best = idx[pd.MultiIndex.from_arrays([bundles["c"], bundles["w"]]).isin(
            pd.MultiIndex.from_arrays([top["c"], top["w"]]))]
        ok[best] = True
        undecided[best] = False
        idx = np.flatnonzero(undecided)
        if len(idx) == 0:
            break
        kept = np.flatnonzero(ok)
        pairs = pd.DataFrame({"row": idx, "c": customer[idx], "w": week[idx]}).merge(
            pd.DataFrame({"c": customer[kept], "kw": week[kept]}).drop_duplicates(), on="c")
        same = pairs.loc[pairs["w"] == pairs["kw"], "row"].unique()
        ok[same] = True
        undecided[same] = False
        near = pairs[((pairs["w"] - pairs["kw"]).abs() < WEEKS_PER_90_DAYS) & ~pairs["row"].isin(same)]
        crowded = near.groupby("row").size()
        drop = crowded.index[crowded.to_numpy() >= limit].to_numpy()
        undecided[drop] = False
    return ok


def solve_greedy(cands: Candidates, cap: Capacity, max_rounds: int = 10_000) -> np.ndarray:
    """Deferred acceptance; returns a boolean mask over candidates (the chosen ones)."""
    m = len(cands)
    chosen = np.zeros(m, dtype=bool)
    if m == 0:
        return chosen
    # each contract's candidates, best first
    order = np.lexsort((cands.week, -cands.value, cands.contract))
    contract_sorted = cands.contract[order]
    first = np.searchsorted(contract_sorted, contract_sorted, side="left")
    n_contracts = int(cands.contract.max()) + 1
    start = np.full(n_contracts, -1)
    start[contract_sorted[::-1]] = first[::-1]
    count = np.bincount(cands.contract, minlength=n_contracts)
    pointer = np.zeros(n_contracts, dtype=np.int64)  # offset of the next candidate to propose
    held = np.full(n_contracts, -1)  # candidate index currently held
    for _ in range(max_rounds):
        free = np.flatnonzero((held < 0) & (pointer < count) & (count > 0))
        if len(free) == 0:
            break
        proposals = order[start[free] + pointer[free]]
        pool = np.concatenate([held[held >= 0], proposals])
        v, w, tie = cands.value[pool], cands.week[pool], cands.contract[pool]
        ok = _within_capacity(v, w, tie, cands.branch[pool], cap.week, cap.branch_week)
        if cap.per_customer_90d is not None:
            idx = np.flatnonzero(ok)
            ok[idx] = _customer_keep(cands.customer[pool[idx]], w[idx], v[idx], tie[idx], cap.per_customer_90d)
        rejected = pool[~ok]
        rc = cands.contract[rejected]
        held[rc] = -1
        pointer[rc] += 1
        accepted = pool[ok]
        held[cands.contract[accepted]] = accepted
    chosen[held[held >= 0]] = True
    if cap.per_customer_90d is not None:
        _join_outreaches(cands, cap, chosen)
    return chosen


def _join_outreaches(cands: Candidates, cap: Capacity, chosen: np.ndarray) -> None:
    """Add, in place, the windows of contracts left without one to an outreach their customer already has
    in one of their candidate weeks (one more conversation topic: no new outreach), best value first, where
    the week (and branch-week) has capacity left. The auction above does not see that such a window costs
    the customer nothing under the 90-day rule."""
    placed = np.zeros(int(cands.contract.max()) + 1, dtype=bool)
    placed[cands.contract[chosen]] = True
    W = len(cap.week)
    outreach = np.unique(cands.customer[chosen] * W + cands.week[chosen])
    pool = np.flatnonzero(~placed[cands.contract] & np.isin(cands.customer * W + cands.week, outreach))
    if len(pool) == 0:
        return
    left = cap.week - np.bincount(cands.week[chosen], minlength=W)
    branch_left = None
    if cap.branch_week is not None:
        branch_left = cap.branch_week.copy()
        np.subtract.at(branch_left, (cands.branch[chosen], cands.week[chosen]), 1)
    # each contract's best such week, then each week's best contracts within what is left
    pool = pool[_rank_within([cands.contract[pool]], cands.value[pool], cands.week[pool]) == 0]
    chosen[pool[_within_capacity(cands.value[pool], cands.week[pool], cands.contract[pool], cands.branch[pool],
                                 left, branch_left)]] = True


def _within_capacity(v: np.ndarray, w: np.ndarray, tie: np.ndarray, b: np.ndarray, week_cap: np.ndarray,
                     branch_cap: np.ndarray | None) -> np.ndarray:
    """Which rows (value ``v``, week ``w``, branch ``b``) fit, best value first (``tie`` breaks ties): within
    each branch-week's capacity (when given), then within each week's among those."""
    ok = np.ones(len(v), dtype=bool)
    if branch_cap is not None:
        ok &= _rank_within([b, w], v, tie) < branch_cap[b, w]
    idx = np.flatnonzero(ok)
    ok[idx] = _rank_within([w[idx]], v[idx], tie[idx]) < week_cap[w[idx]]
    return ok


def solve_exact(cands: Candidates, cap: Capacity, time_limit: float = 120.0) -> np.ndarray:
    """The optimal choice on the candidate set, by HiGHS; returns a boolean mask over candidates."""
    m = len(cands)
    if m == 0:
        return np.zeros(0, dtype=bool)
    cols = np.arange(m)
    blocks, upper = [], []
    _, ci = np.unique(cands.contract, return_inverse=True)
    blocks.append(sp.csr_matrix((np.ones(m), (ci, cols)), shape=(ci.max() + 1, m)))
    upper.append(np.ones(ci.max() + 1))
    W = len(cap.week)
    blocks.append(sp.csr_matrix((np.ones(m), (cands.week, cols)), shape=(W, m)))
    upper.append(cap.week.astype(float))
    if cap.branch_week is not None:
        B = cap.branch_week.shape[0]
        row = cands.branch * W + cands.week
        blocks.append(sp.csr_matrix((np.ones(m), (row, cols)), shape=(B * W, m)))
        upper.append(cap.branch_week.ravel().astype(float))
    ny = 0  # customer-week variables of the 90-day rule, after the m candidates
    if cap.per_customer_90d is not None:
        blocks, upper, ny = _customer_rule(cands, cap, blocks, upper)
    A = sp.vstack([b if b.shape[1] == m + ny else sp.hstack([b, sp.csr_matrix((b.shape[0], ny))]) for b in blocks],
                  format="csr")
    cost = np.concatenate([-cands.value.astype(float), np.zeros(ny)])
    res = milp(c=cost, constraints=[LinearConstraint(A, -np.inf, np.concatenate(upper))],
               integrality=np.ones(m + ny), bounds=Bounds(0, 1),
               options={"time_limit": time_limit, "disp": False})
    if res.x is None:
        raise RuntimeError(f"the exact scheduler found no solution: {res.message}")
    return res.x[:m] > 0.5


def _customer_rule(cands: Candidates, cap: Capacity, blocks: list, upper: list) -> tuple[list, list, int]:
    """The 90-day rule for :func:`solve_exact`: a 0/1 variable per (customer, week) for the customers with
    candidates on two or more contracts (the others cannot break it), which each of their windows in that
    week needs (x - y <= 0), and at most ``per_customer_90d`` of them in any 13 weeks. Returns the blocks
    and bounds with these rows added (over m + ny columns) and ny, the number of new variables."""
    m, W = len(cands), len(cap.week)
    cust_contracts = pd.Series(cands.contract).groupby(cands.customer).nunique()
    sel = np.flatnonzero(np.isin(cands.customer, cust_contracts.index[cust_contracts.to_numpy() > 1]))
    if len(sel) == 0:
        return blocks, upper, 0
    _, cu = np.unique(cands.customer[sel], return_inverse=True)
    keys, yi = np.unique(cu * W + cands.week[sel], return_inverse=True)
    ny = len(keys)
    k = len(sel)
    link = sp.csr_matrix((np.concatenate([np.ones(k), -np.ones(k)]),
                          (np.tile(np.arange(k), 2), np.concatenate([sel, m + yi]))), shape=(k, m + ny))
    # the outreach week w belongs to the 13-week spans starting at w-12 .. w
    y_customer, y_week = keys // W, keys % W
    span_start = y_week[:, None] - np.arange(WEEKS_PER_90_DAYS)[None, :]
    valid = span_start >= 0
    rows = (y_customer[:, None] * W + span_start)[valid]
    cols = np.repeat(np.arange(ny), WEEKS_PER_90_DAYS).reshape(-1, WEEKS_PER_90_DAYS)[valid]
    spans = sp.csr_matrix((np.ones(len(rows)), (rows, m + cols)), shape=((y_customer.max() + 1) * W, m + ny))
    return [*blocks, link, spans], [*upper, np.zeros(k), np.full(spans.shape[0], float(cap.per_customer_90d or 0))], ny


def total_value(cands: Candidates, chosen: np.ndarray) -> float:
    return float(cands.value[chosen].sum())
