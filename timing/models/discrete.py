"""Discrete-time competing-risks hazard: a multinomial logit on the person-month panel.

Each step (half a month by default) a contract is open, three things can happen: nothing, the customer
signs (the event), or the contract is lost (the competing event). The model
is a multinomial logit of those outcomes on the binned, projected covariates
of :mod:`timing.models.panel` — the discrete-time analogue of cause-specific
hazards. Cumulative incidence follows month by month:
``P(sign in k) = S(k-1) * h_sign(k)``, ``S(k) = S(k-1) * (1 - h_sign(k) - h_lost(k))``,
so monthly signing and lost probabilities never sum above one.

The panel is collapsed to its distinct covariate patterns (all covariates are
binned) with counts per outcome before fitting, chunk by chunk of panel rows
(:func:`timing.models.panel.panel_chunks`), so the whole panel is never held;
the fit is a ridge-penalised maximum likelihood by damped Newton on that
sparse, much smaller table. Standard errors come from the inverse penalised
information matrix. Predictions look each covariate's coefficient up by its
level code (no sparse design), in the same order of summation as the design's
product.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from timing.core.conventions import LOST, SIGNED
from timing.core.errors import ModelError
from timing.models import panel as panel_module
from timing.models.base import ModelResult, MonthlyForecast, StepGrid
from timing.models.covariates import COVARIATES
from timing.models.data import Landmarks
from timing.models.panel import Design, encode_codes, panel_chunks, step_codes

OUTCOMES = ("signed", "lost")
HAZARD_BLOCK = 8192  # contracts whose hazards are computed at once (arrays of about 1.5 MiB)


def collapse(codes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``codes`` and, per row, counts of outcomes 0, 1, 2."""
    return _collapse(np.asarray(codes).T, y)


def _collapse(codes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`collapse` of codes laid out by covariate, ``(covariates, rows)``."""
    y = np.asarray(y, dtype=np.int64)
    return _merge(codes, np.eye(3)[y] if len(y) else np.zeros((0, 3)))


def _merge(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of ``codes`` ``(covariates, rows)`` as rows, in the order of their
    pattern key, with their ``counts`` (rows, 3) summed."""
    if codes.shape[1] == 0:
        return np.zeros((0, len(COVARIATES)), np.int16), np.zeros((0, 3))
    mult = _key_multipliers()
    if mult is not None:
        keys, out = _merge_keys(_pattern_keys(codes, mult), counts)
        return _decode_keys(keys, mult), out
    # too many covariate levels for one integer key: compare whole rows
    patterns, inverse = np.unique(codes.T, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    out = np.zeros((len(patterns), 3))
    for j in range(3):
        out[:, j] = np.bincount(inverse, weights=counts[:, j], minlength=len(patterns))
    return patterns, out


def _key_multipliers() -> np.ndarray | None:
    """Place values of the mixed-radix pattern key (covariate f's code times ``mult[f]``), or None
    when the levels' product does not fit in one 64-bit integer."""
    radix = np.array([c.n_levels for c in COVARIATES], dtype=np.int64)
    if np.prod(radix.astype(float)) >= 2.0**62:
        return None
    return np.concatenate([[1], np.cumprod(radix[:-1])]).astype(np.int64)


def _pattern_keys(codes: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """One integer per column of ``codes`` ``(covariates, rows)``: its mixed-radix key."""
    key = np.zeros(codes.shape[1], np.int64)
    for f in range(len(mult)):
        key += mult[f] * codes[f].astype(np.int64)
    return key


def _decode_keys(keys: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """The codes ``(rows, covariates)`` (int16) behind mixed-radix keys."""
    radix = np.array([c.n_levels for c in COVARIATES], dtype=np.int64)
    out = np.empty((len(keys), len(mult)), np.int16)
    for f in range(len(mult)):
        out[:, f] = (keys // mult[f]) % radix[f]
    return out


def _merge_keys(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys``, sorted, with their ``counts`` (rows, 3) summed."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    out = np.zeros((len(uniq), 3))
    for j in range(3):
        out[:, j] = np.bincount(inverse, weights=counts[:, j], minlength=len(uniq))
    return uniq, out


def _collapse_keys(keys: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys``, sorted, with counts of outcomes 0, 1, 2 among their rows."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    cell = inverse.ravel() * 3 + np.asarray(y, dtype=np.int64)
    out = np.bincount(cell, minlength=3 * len(uniq)).reshape(len(uniq), 3).astype(float)
    return uniq, out


def _with_intercept(X: sp.csr_matrix) -> sp.csr_matrix:
    return sp.hstack([sp.csr_matrix(np.ones((X.shape[0], 1))), X], format="csr")


def _probabilities(X: sp.csr_matrix, B: np.ndarray) -> np.ndarray:
    eta = np.asarray(X @ B)  # (n, 2): log-odds of signed and lost vs nothing
    return np.column_stack(_outcome_probabilities(eta[:, 0], eta[:, 1]))


def _outcome_probabilities(eta_signed: np.ndarray, eta_lost: np.ndarray) -> tuple[np.ndarray, ...]:
    """(nothing, signed, lost) probabilities from the log-odds of signed and lost vs nothing."""
    m = np.maximum(np.maximum(eta_signed, eta_lost), 0)
    e_signed, e_lost, e_nothing = np.exp(eta_signed - m), np.exp(eta_lost - m), np.exp(-m)
    denom = e_nothing + (e_signed + e_lost)
    return e_nothing / denom, e_signed / denom, e_lost / denom


def _linear_predictor(codes: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``_with_intercept(encode_codes(codes)) @ B`` for codes laid out by covariate ``(covariates, ...)``,
    without the sparse matrix: the intercept, then each covariate's coefficient at its level, added
    in column order (the same sums, term by term). Returns ``(B.shape[1], ...)``."""
    eta = np.empty((B.shape[1],) + codes.shape[1:])
    term = np.empty(codes.shape[1:])
    start = 1
    for j in range(B.shape[1]):
        eta[j] = B[0, j]
    for f, c in enumerate(COVARIATES):
        for j in range(B.shape[1]):
            table = np.concatenate([[0.0], B[start:start + c.n_levels - 1, j]])  # level 0: nothing
            np.take(table, codes[f], out=term, mode="clip")  # codes are in range (covariate_codes checks)
            eta[j] += term
        start += c.n_levels - 1
    return eta


def fit_multinomial(X: sp.csr_matrix, counts: np.ndarray, penalty: float, max_iter: int = 100,
                    tol: float = 1e-9, start: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Ridge-penalised multinomial logit on collapsed data; returns (B, covariance, iterations).

    Damped Newton with the exact information matrix: a few hundred parameters
    make the (2p x 2p) matrix cheap, it is needed for the standard errors
    anyway, and Newton converges in about ten steps where L-BFGS took hundreds.
    ``start`` (coefficients ``(1 + p, 2)``, e.g. of a fit on related data) is where Newton
    starts instead of the intercepts alone; the problem is strictly convex and the stopping
    rule the same, so it changes the iterations, not the optimum.
    """
    Xi = _with_intercept(X)
    p = Xi.shape[1]
    total = counts.sum(axis=1)
    pen = np.full(p, penalty)
    pen[0] = 0.0  # the intercepts are not shrunk
    gram = _Gram(Xi)

    def objective(B: np.ndarray) -> tuple[float, np.ndarray]:
        P = _probabilities(Xi, B)
        ll = float((counts * np.log(np.clip(P, 1e-300, None))).sum())
        return -ll + 0.5 * float((pen[:, None] * B**2).sum()), P

    B = np.zeros((p, 2))
    B[0] = np.log(np.maximum(counts[:, 1:].sum(axis=0), 0.5) / max(counts[:, 0].sum(), 1.0))
    f, P = objective(B)
    if start is not None and np.shape(start) == B.shape and np.all(np.isfinite(start)):
        f_start, P_start = objective(np.asarray(start, dtype=float))
        if f_start < f:  # never start worse than the intercepts alone
            B, f, P = np.array(start, dtype=float), f_start, P_start
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        grad = -(Xi.T @ (counts[:, 1:] - total[:, None] * P[:, 1:])) + pen[:, None] * B
        step = _solve(gram.information(P, total, pen), grad.ravel()).reshape(p, 2)
        decrease = float((grad * step).sum())
        t = 1.0
        while True:  # backtracking: Newton's full step can overshoot far from the optimum
            f_new, P_new = objective(B - t * step)
            if f_new <= f - 1e-4 * t * decrease or t < 1e-8:
                break
            t *= 0.5
        B, P, converged = B - t * step, P_new, f - f_new <= tol * max(1.0, abs(f))
        f = f_new
        if converged and decrease <= 1e-8 * max(1.0, abs(f)):
            break
    H = gram.information(P, total, pen)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(H)
    return B, cov, it


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(H, g, rcond=None)[0]


class _Gram:
    """``Xi.T @ diag(w) @ Xi`` for one sparse ``Xi`` and many weight vectors ``w``.

    Each row of ``Xi`` adds ``w * x_a * x_b`` to cell (a, b) for every pair a <= b of its
    non-zero columns; those (cell, row, x_a x_b) triples are laid out once as a sparse
    (cells x rows) operator, after which each product is one sparse matrix-vector product
    (a few tens of milliseconds where a sparse matrix-matrix product took several hundred).
    """

    def __init__(self, Xi: sp.csr_matrix) -> None:
        Xi = Xi.tocsr(copy=True)
        Xi.sum_duplicates()
        Xi.sort_indices()
        n, p = Xi.shape
        self.p = p
        nnz = np.diff(Xi.indptr)
        # the operator's columns are the rows in order of their number of entries (a permutation of
        # the rows, undone on the weights), so that rows of one width lay out as one dense block
        self.order = np.argsort(nnz, kind="stable")
        widths, starts = np.unique(nnz[self.order], return_index=True)
        bounds = np.append(starts, n)
        cells, values = [], []
        for i, k in enumerate(widths):
            if k == 0:
                continue
            r = self.order[bounds[i]:bounds[i + 1]]
            pos = Xi.indptr[r][:, None] + np.arange(k)
            col, val = Xi.indices[pos].astype(np.int64), Xi.data[pos]
            ia, ib = np.triu_indices(int(k))
            cells.append((col[:, ia] * p + col[:, ib]).ravel())
            values.append((val[:, ia] * val[:, ib]).ravel())
        pairs = nnz[self.order] * (nnz[self.order] + 1) // 2
        indptr = np.concatenate([[0], np.cumsum(pairs)])
        cell = np.concatenate(cells) if cells else np.zeros(0, np.int64)
        value = np.concatenate(values) if values else np.zeros(0)
        index_type = np.int32 if p * p < 2**31 and len(cell) < 2**31 else np.int64
        self.op = sp.csc_matrix((value, cell.astype(index_type), indptr.astype(index_type)), shape=(p * p, n))

    def products(self, W: np.ndarray) -> np.ndarray:
        """``Xi.T @ diag(W[:, j]) @ Xi`` for each column j of ``W`` (n, m): shape (m, p, p)."""
        upper = np.asarray(self.op @ W[self.order]).T.reshape(-1, self.p, self.p)  # cells a <= b only
        lower = upper.transpose(0, 2, 1).copy()
        idx = np.arange(self.p)
        lower[:, idx, idx] = 0.0
        return upper + lower

    def information(self, P: np.ndarray, total: np.ndarray, pen: np.ndarray) -> np.ndarray:
        """As :func:`_information`, from the operator."""
        p = self.p
        W = np.column_stack([total * P[:, 1] * (1 - P[:, 1]), total * P[:, 1] * (0 - P[:, 2]),
                             total * P[:, 2] * (1 - P[:, 2])])
        ss, sl, ll = self.products(W)
        H = np.zeros((2 * p, 2 * p))
        H[0::2, 0::2] = ss
        H[0::2, 1::2] = sl
        H[1::2, 0::2] = sl.T
        H[1::2, 1::2] = ll
        H += np.diag(np.repeat(pen, 2))
        return H


def _information(Xi: sp.csr_matrix, P: np.ndarray, total: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """The penalised observed information (negative Hessian), parameters interleaved (signed, lost).

    By sparse matrix products: the plain definition that :class:`_Gram` computes faster (the tests
    hold the two equal)."""
    p = Xi.shape[1]
    H = np.zeros((2 * p, 2 * p))
    for a in range(2):
        for b in range(a, 2):
            w = total * P[:, 1 + a] * ((a == b) - P[:, 1 + b])
            block = (Xi.T @ Xi.multiply(w[:, None])).toarray()
            H[a::2, b::2] = block
            if a != b:
                H[b::2, a::2] = block.T
    H += np.diag(np.repeat(pen, 2))
    return H


@dataclass(frozen=True)
class DiscreteHazard(StepGrid):
    """Specification of the discrete-time competing-risks hazard model."""

    months: int = 12
    steps_per_month: int = 2
    penalty: float = 1.0
    launch_months: tuple[int, ...] = (3, 9)
    name: str = "discrete"

    def outcome_steps(self, lm: Landmarks) -> tuple[np.ndarray, np.ndarray]:
        """Per contract: the step of its event (0: none), and the last step it is at risk and observed."""
        observed = lm.observed_months.astype(int) * self.steps_per_month
        event_step = np.where(lm.event_type > 0, np.ceil(np.nan_to_num(lm.event_day) / self.step_days), 0)
        event_step = np.minimum(event_step, observed).astype(int)  # a same-day rounding edge stays inside
        last = np.where(lm.event_type > 0, event_step, observed)
        return event_step, np.minimum(last, self.steps)

    def labelled_chunks(self, lm: Landmarks, chunk_rows: int | None = None,
                        sample: Callable[[np.ndarray], np.ndarray] | None = None,
                        ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(contract position, step, level codes by covariate, outcome code) of the contract-step rows,
        chunk by chunk; ``sample(y)``, if given, returns the indices of the chunk's rows to keep given
        their outcome codes (the codes of the others are never computed)."""
        event_step, last = self.outcome_steps(lm)
        event_type = np.asarray(lm.event_type)

        def outcome(pos: np.ndarray, k: np.ndarray) -> np.ndarray:
            return np.where(k == event_step[pos], event_type[pos], 0).astype(np.int8)

        select = None if sample is None else (lambda pos, k: sample(outcome(pos, k)))
        for pos, k, codes in panel_chunks(lm.features, last, self.step_days, self.launch_months, chunk_rows,
                                          select):
            yield pos, k, codes, outcome(pos, k)

    def panel(self, lm: Landmarks, chunk_rows: int | None = None) -> tuple[Design, np.ndarray]:
        """Contract-step rows while at risk and observed (whole months), with outcome codes.

        The whole panel, by contract then step: for inspection and small data; :meth:`fit` never
        holds it, it collapses the panel chunk by chunk (:meth:`patterns`).
        """
        parts = list(self.labelled_chunks(lm, chunk_rows))
        if not parts:
            codes, y = np.zeros((0, len(COVARIATES)), np.int16), np.zeros(0, np.int8)
        else:
            pos, k, y = (np.concatenate(a) for a in zip(*[(p[0], p[1], p[3]) for p in parts], strict=True))
            codes = np.concatenate([p[2] for p in parts], axis=1).T
            order = np.lexsort((k, pos))
            codes, y = np.ascontiguousarray(codes[order]), y[order]
        return Design(X=encode_codes(codes), codes=codes, columns=Design.column_names()), y

    def patterns(self, lm: Landmarks, chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The panel collapsed to its distinct covariate patterns with outcome counts, as
        :func:`collapse` gives on the whole panel, built ``chunk_rows`` rows at a time."""
        mult = _key_multipliers()
        if mult is not None:  # by pattern key: integers sorted and counted, codes decoded once at the end
            acc_keys: list[np.ndarray] = []
            acc_n: list[np.ndarray] = []
            held, bound = 0, 2 * (chunk_rows or panel_module.CHUNK_ROWS)
            for _pos, _k, codes, y in self.labelled_chunks(lm, chunk_rows):
                keys, n = _collapse_keys(_pattern_keys(codes, mult), y)
                acc_keys.append(keys)
                acc_n.append(n)
                held += len(keys)
                if held > bound and len(acc_keys) > 1:  # keep what is held bounded too
                    keys, n = _merge_keys(np.concatenate(acc_keys), np.concatenate(acc_n))
                    acc_keys, acc_n, held = [keys], [n], len(keys)
            if not acc_keys:
                return np.zeros((0, len(COVARIATES)), np.int16), np.zeros((0, 3))
            keys, n = _merge_keys(np.concatenate(acc_keys), np.concatenate(acc_n))
            return _decode_keys(keys, mult), n
        acc_codes: list[np.ndarray] = []
        acc_counts: list[np.ndarray] = []
        held, bound = 0, 2 * (chunk_rows or panel_module.CHUNK_ROWS)
        for _pos, _k, codes, y in self.labelled_chunks(lm, chunk_rows):
            c, n = _collapse(codes, y)
            acc_codes.append(c)
            acc_counts.append(n)
            held += len(c)
            if held > bound and len(acc_codes) > 1:  # keep what is held bounded too
                c, n = _merge(np.concatenate(acc_codes).T, np.concatenate(acc_counts))
                acc_codes, acc_counts, held = [c], [n], len(c)
        if not acc_codes:
            return np.zeros((0, len(COVARIATES)), np.int16), np.zeros((0, 3))
        return _merge(np.concatenate(acc_codes).T, np.concatenate(acc_counts))

    def fit(self, lm: Landmarks, start: DiscreteHazardResult | None = None) -> DiscreteHazardResult:
        """Fit on the landmark rows; ``start``, a fit of the same covariates on related rows (the
        holdout's, before the refit on all origins), is where Newton starts: same optimum, fewer steps."""
        codes, counts = self.patterns(lm)
        X = encode_codes(codes)
        B0 = start.coef if start is not None and start.columns == ("intercept",) + Design.column_names() else None
        B, cov, nit = fit_multinomial(X, counts, self.penalty, start=B0)
        n_outcome = counts.sum(axis=0)
        return DiscreteHazardResult(
            spec=self, coef=B, cov=cov, columns=("intercept",) + Design.column_names(),
            n_rows=int(round(n_outcome.sum())), n_patterns=int(len(codes)),
            n_events=int(round(n_outcome[SIGNED])), n_lost=int(round(n_outcome[LOST])), iterations=nit,
        )


@dataclass(frozen=True)
class DiscreteHazardResult(ModelResult):
    """A fitted discrete-time hazard: coefficients, covariance, fit statistics."""

    spec: DiscreteHazard
    coef: np.ndarray  # (1 + p, 2)
    cov: np.ndarray  # (2(1 + p), 2(1 + p)), interleaved (signed, lost)
    columns: tuple[str, ...]
    n_rows: int
    n_patterns: int
    n_events: int
    n_lost: int
    iterations: int

    def summary(self) -> pd.DataFrame:
        """Hazard ratios (odds ratios of the monthly hazard) with 95% intervals."""
        se = np.sqrt(np.clip(np.diag(self.cov), 0, None)).reshape(-1, 2)
        rows = []
        for j, outcome in enumerate(OUTCOMES):
            for i, col in enumerate(self.columns):
                b, s = self.coef[i, j], se[i, j]
                rows.append({"outcome": outcome, "covariate": col, "coef": b, "se": s,
                             "hazard_ratio": np.exp(b), "hr_lower": np.exp(b - 1.96 * s),
                             "hr_upper": np.exp(b + 1.96 * s)})
        return pd.DataFrame(rows)

    def step_hazards(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h_signed, h_lost, codes) with shapes (n, steps), (n, steps), (covariates, n, steps)."""
        codes = step_codes(features, self.spec.steps, self.spec.step_days, self.spec.launch_months)
        h_signed, h_lost = self._hazards(codes)
        return h_signed, h_lost, codes

    def predict(self, features: pd.DataFrame) -> MonthlyForecast:
        codes = step_codes(features, self.spec.steps, self.spec.step_days, self.spec.launch_months)
        drivers = self._drivers(codes)
        h_s, h_l = self._hazards(codes, drivers)
        return MonthlyForecast.from_hazards(features["contract_id"].to_numpy(), h_s, h_l, drivers=drivers,
                                            steps_per_month=self.spec.steps_per_month)

    def _hazards(self, codes: np.ndarray, drivers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Signing and lost hazards (n, steps) from the codes; the signing terms are the ``drivers``
        when given (:meth:`_drivers`), added up in the same order as :func:`_linear_predictor` adds.
        Computed ``HAZARD_BLOCK`` contracts at a time, so that the arrays summed stay in cache."""
        n, steps = codes.shape[1:]
        terms = None if drivers is None else np.moveaxis(drivers, 2, 0)  # (covariates, n, steps)
        h_signed, h_lost = np.empty((n, steps)), np.empty((n, steps))
        for a in range(0, n, HAZARD_BLOCK):
            block = codes[:, a:a + HAZARD_BLOCK]
            if terms is None:
                eta_signed, eta_lost = _linear_predictor(block, self.coef)
            else:
                eta_signed = np.empty(block.shape[1:])
                eta_signed[...] = self.coef[0, 0]
                for f in range(len(COVARIATES)):
                    eta_signed += terms[f, a:a + HAZARD_BLOCK]
                eta_lost = _linear_predictor(block, self.coef[:, 1:])[0]
            _nothing, h_signed[a:a + HAZARD_BLOCK], h_lost[a:a + HAZARD_BLOCK] = \
                _outcome_probabilities(eta_signed, eta_lost)
        return h_signed, h_lost

    def _drivers(self, codes: np.ndarray) -> np.ndarray:
        """Per contract and step: each covariate's contribution to the log signing hazard.

        ``(n, steps, covariates)``, a transposed view of an array laid out by covariate, contract,
        step: a covariate's contributions are contiguous, as the reasons read them.
        """
        ncov, n, steps = codes.shape
        out = np.empty((ncov, n, steps))
        start = 1
        for f, c in enumerate(COVARIATES):
            table = np.concatenate([[0.0], self.coef[start:start + c.n_levels - 1, 0]])  # level 0: nothing
            np.take(table, codes[f], out=out[f], mode="clip")  # codes are in range (covariate_codes checks)
            start += c.n_levels - 1
        return out.transpose(1, 2, 0)

    def to_tables(self) -> dict[str, pd.DataFrame | dict]:
        params = pd.DataFrame(self.coef, columns=list(OUTCOMES)).assign(column=list(self.columns))
        cov = pd.DataFrame(self.cov)
        cov.columns = [str(c) for c in cov.columns]
        meta = {"family": self.name, "months": self.months, "steps_per_month": self.spec.steps_per_month,
                "penalty": self.spec.penalty,
                "launch_months": list(self.spec.launch_months), "n_rows": self.n_rows,
                "n_patterns": self.n_patterns, "n_events": self.n_events, "n_lost": self.n_lost,
                "iterations": self.iterations}
        return {"params": params, "covariance": cov, "meta": meta}

    @classmethod
    def from_tables(cls, tables: dict) -> DiscreteHazardResult:
        meta = tables["meta"]
        params = tables["params"]
        if tuple(params["column"]) != ("intercept",) + Design.column_names():
            raise ModelError("the saved model's covariates differ from this version's panel: fit it again")
        spec = DiscreteHazard(months=int(meta["months"]), steps_per_month=int(meta["steps_per_month"]),
                              penalty=float(meta["penalty"]),
                              launch_months=tuple(meta["launch_months"]))
        return cls(spec=spec, coef=params[list(OUTCOMES)].to_numpy(float),
                   cov=tables["covariance"].to_numpy(float), columns=tuple(params["column"]),
                   n_rows=meta["n_rows"], n_patterns=meta["n_patterns"], n_events=meta["n_events"],
                   n_lost=meta["n_lost"], iterations=meta["iterations"])
