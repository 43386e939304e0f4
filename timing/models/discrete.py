"""Discrete-time competing-risks hazard: a multinomial logit on the person-month panel.

Each step (half a month by default) a contract is open, three things can happen: nothing, the customer
signs (the event), or the contract is lost (the competing event). The model
is a multinomial logit of those outcomes on the binned, projected covariates
of :mod:`timing.models.panel` — the discrete-time analogue of cause-specific
hazards. Cumulative incidence follows month by month:
``P(sign in k) = S(k-1) * h_sign(k)``, ``S(k) = S(k-1) * (1 - h_sign(k) - h_lost(k))``,
so monthly signing and lost probabilities never sum above one.

The panel is collapsed to its distinct covariate patterns (all covariates are
binned) with counts per outcome before fitting; the fit is a ridge-penalised
maximum likelihood by L-BFGS on that sparse, much smaller table. Standard
errors come from the inverse penalised information matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from timing.models.base import ModelResult, MonthlyForecast
from timing.models.landmarks import LOST, SIGNED, Landmarks
from timing.models.panel import COVARIATES, MONTH_DAYS, Design, encode, encode_codes, expand

OUTCOMES = ("signed", "lost")


def collapse(codes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``codes`` and, per row, counts of outcomes 0, 1, 2."""
    if len(codes) == 0:
        return codes, np.zeros((0, 3))
    radix = np.array([c.n_levels for c in COVARIATES], dtype=np.int64)
    mult = np.concatenate([[1], np.cumprod(radix[:-1])])
    key = codes.astype(np.int64) @ mult
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    counts = np.zeros((len(uniq), 3))
    for j in range(3):
        counts[:, j] = np.bincount(inverse, weights=(y == j).astype(float), minlength=len(uniq))
    return codes[first], counts


def _with_intercept(X: sp.csr_matrix) -> sp.csr_matrix:
    return sp.hstack([sp.csr_matrix(np.ones((X.shape[0], 1))), X], format="csr")


def _probabilities(X: sp.csr_matrix, B: np.ndarray) -> np.ndarray:
    eta = np.asarray(X @ B)  # (n, 2): log-odds of signed and lost vs nothing
    m = np.maximum(eta.max(axis=1, keepdims=True), 0)
    e = np.exp(eta - m)
    denom = np.exp(-m) + e.sum(axis=1, keepdims=True)
    return np.column_stack([np.exp(-m[:, 0]) / denom[:, 0], e / denom])


def fit_multinomial(X: sp.csr_matrix, counts: np.ndarray, penalty: float, max_iter: int = 100,
                    tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, int]:
    """Ridge-penalised multinomial logit on collapsed data; returns (B, covariance, iterations).

    Damped Newton with the exact information matrix: a few hundred parameters
    make the (2p x 2p) matrix cheap, it is needed for the standard errors
    anyway, and Newton converges in about ten steps where L-BFGS took hundreds.
    """
    Xi = _with_intercept(X)
    p = Xi.shape[1]
    total = counts.sum(axis=1)
    pen = np.full(p, penalty)
    pen[0] = 0.0  # the intercepts are not shrunk

    def objective(B: np.ndarray) -> tuple[float, np.ndarray]:
        P = _probabilities(Xi, B)
        ll = float((counts * np.log(np.clip(P, 1e-300, None))).sum())
        return -ll + 0.5 * float((pen[:, None] * B**2).sum()), P

    B = np.zeros((p, 2))
    B[0] = np.log(np.maximum(counts[:, 1:].sum(axis=0), 0.5) / max(counts[:, 0].sum(), 1.0))
    f, P = objective(B)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        grad = -(Xi.T @ (counts[:, 1:] - total[:, None] * P[:, 1:])) + pen[:, None] * B
        step = _solve(_information(Xi, P, total, pen), grad.ravel()).reshape(p, 2)
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
    H = _information(Xi, P, total, pen)
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


def _information(Xi: sp.csr_matrix, P: np.ndarray, total: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """The penalised observed information (negative Hessian), parameters interleaved (signed, lost)."""
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


def _covariance(Xi: sp.csr_matrix, B: np.ndarray, total: np.ndarray, pen: np.ndarray) -> np.ndarray:
    H = _information(Xi, _probabilities(Xi, B), total, pen)
    try:
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(H)


@dataclass(frozen=True)
class DiscreteHazard:
    """Specification of the discrete-time competing-risks hazard model."""

    months: int = 12
    steps_per_month: int = 2
    penalty: float = 1.0
    launch_months: tuple[int, ...] = (3, 9)
    name: str = "discrete"

    @property
    def step_days(self) -> float:
        return MONTH_DAYS / self.steps_per_month

    @property
    def steps(self) -> int:
        return self.months * self.steps_per_month

    def panel(self, lm: Landmarks) -> tuple[Design, np.ndarray]:
        """Contract-step rows while at risk and observed (whole months), with outcome codes."""
        observed = lm.observed_months.astype(int) * self.steps_per_month
        event_step = np.where(lm.event_type > 0, np.ceil(np.nan_to_num(lm.event_day) / self.step_days), 0)
        event_step = np.minimum(event_step, observed).astype(int)  # a same-day rounding edge stays inside
        last = np.where(lm.event_type > 0, event_step, observed)
        rows, k, tau = expand(lm.features, self.steps, self.step_days)
        keep = k <= np.repeat(last, self.steps)
        rows, k, tau = rows[keep].reset_index(drop=True), k[keep], tau[keep]
        y = np.where(k == np.repeat(event_step, self.steps)[keep], np.repeat(lm.event_type, self.steps)[keep], 0)
        design = encode(rows, tau, self.launch_months)
        return design, y.astype(np.int8)

    def fit(self, lm: Landmarks) -> DiscreteHazardResult:
        design, y = self.panel(lm)
        codes, counts = collapse(design.codes, y)
        X = encode_codes(codes)
        B, cov, nit = fit_multinomial(X, counts, self.penalty)
        return DiscreteHazardResult(
            spec=self, coef=B, cov=cov, columns=("intercept",) + design.columns,
            n_rows=int(len(y)), n_patterns=int(len(codes)),
            n_events=int((y == SIGNED).sum()), n_lost=int((y == LOST).sum()), iterations=nit,
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

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def months(self) -> int:
        return self.spec.months

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
        """(h_signed, h_lost, codes) with shapes (n, steps), (n, steps), (n*steps, covariates)."""
        steps = self.spec.steps
        rows, _k, tau = expand(features, steps, self.spec.step_days)
        design = encode(rows, tau, self.spec.launch_months)
        P = _probabilities(_with_intercept(design.X), self.coef)
        n = len(features)
        return P[:, 1].reshape(n, steps), P[:, 2].reshape(n, steps), design.codes

    def predict(self, features: pd.DataFrame) -> MonthlyForecast:
        h_s, h_l, codes = self.step_hazards(features)
        return MonthlyForecast.from_hazards(features["contract_id"].to_numpy(), h_s, h_l,
                                            drivers=self._drivers(codes, len(features)),
                                            steps_per_month=self.spec.steps_per_month)

    def _drivers(self, codes: np.ndarray, n: int) -> np.ndarray:
        """Per contract and step: each covariate's contribution to the log signing hazard."""
        offsets = np.cumsum([0] + [c.n_levels - 1 for c in COVARIATES[:-1]])
        beta = np.concatenate([[0.0], self.coef[1:, 0]])
        # level 0 (the reference) contributes nothing: index 0 of beta
        idx = np.where(codes > 0, codes - 1 + offsets + 1, 0)
        return beta[idx].reshape(n, self.spec.steps, codes.shape[1])

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
            from timing.modelio import ModelError

            raise ModelError("the saved model's covariates differ from this version's panel: fit it again")
        spec = DiscreteHazard(months=int(meta["months"]), steps_per_month=int(meta["steps_per_month"]),
                              penalty=float(meta["penalty"]),
                              launch_months=tuple(meta["launch_months"]))
        return cls(spec=spec, coef=params[list(OUTCOMES)].to_numpy(float),
                   cov=tables["covariance"].to_numpy(float), columns=tuple(params["column"]),
                   n_rows=meta["n_rows"], n_patterns=meta["n_patterns"], n_events=meta["n_events"],
                   n_lost=meta["n_lost"], iterations=meta["iterations"])
