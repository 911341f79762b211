"""Binary logistic regression ``L(w) = 1/n sum_i ln(1 + exp(-y_i x_i . w))``.

The kernels are written by hand and numerically stable for any margin ``s = y x . w``:
``ln(1 + e^-s)`` is ``log1p(e^-s)`` for ``s >= 0`` and ``-s + log1p(e^s)`` otherwise, and
``sigma(-s)`` is evaluated without overflow on both sides. They are tested against the
sympy derivation of :meth:`LogisticRegression.symbolic`.

:func:`logistic_gd` is a compiled gradient-descent loop over a batch of step sizes with a
constant step or the risk-adaptive step ``eta_t = eta / L(w_t)`` (Zhang, Wu, Lin,
Bartlett, arXiv 2504.04105). It records ``ln L(w_t)``, computed with the smallest margin
factored out so that losses far below the float64 range (``e^-1000``) stay exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
import sympy as sp

from .._checks import (
    batch_of_runs,
    choice,
    positive_float,
    positive_int,
    record_count,
)
from ..data import check_xy
from ..symbolic import JIT_OPTIONS, Kernels, SymbolicLoss, make_sharpness_kernel
from .base import Model, cached_kernels

# Parameter vector layout: [n, X (n*d, row-major), y (n, in {-1, +1})].


@numba.njit(**JIT_OPTIONS)
def _softplus_neg(s):
    """``ln(1 + exp(-s))`` without overflow or cancellation."""
    if s >= 0.0:
        return math.log1p(math.exp(-s))
    return -s + math.log1p(math.exp(s))


@numba.njit(**JIT_OPTIONS)
def _sigmoid_neg(s):
    """``sigma(-s) = 1 / (1 + exp(s))`` without overflow."""
    if s >= 0.0:
        e = math.exp(-s)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(s))


def _logistic_kernels() -> Kernels:
    """Kernels of ``L(w) = 1/n sum_i l(s_i)``, ``s_i = y_i x_i . w``, ``l(s) = ln(1 + e^-s)``.

    ``grad = -1/n sum_i sigma(-s_i) y_i x_i``; ``hess = 1/n sum_i phi(s_i) x_i x_i^T`` with
    ``phi(s) = sigma(s) sigma(-s)``; ``D^3 L[u, u] = 1/n sum_i phi'(s_i) y_i x_i (x_i . u)^2``
    with ``phi'(s) = phi(s) (sigma(-s) - sigma(s))``.
    """
    jit = numba.njit(**JIT_OPTIONS)

    @jit
    def margins(th, lo, hi, p, s):
        d = th.shape[0]
        n = int(p[0])
        oy = 1 + n * d
        for i in range(n):
            for b in range(lo, hi):
                s[i, b] = 0.0
            for k in range(d):
                xik = p[1 + i * d + k]
                for b in range(lo, hi):
                    s[i, b] += xik * th[k, b]
            yi = p[oy + i]
            for b in range(lo, hi):
                s[i, b] *= yi

    @jit
    def loss(th, lo, hi, p, out):
        n = int(p[0])
        s = np.empty((n, th.shape[1]))
        margins(th, lo, hi, p, s)
        for b in range(lo, hi):
            out[b] = 0.0
        for i in range(n):
            for b in range(lo, hi):
                out[b] += _softplus_neg(s[i, b]) / n

    @jit
    def grad(th, lo, hi, p, out):
        d = th.shape[0]
        n = int(p[0])
        oy = 1 + n * d
        s = np.empty((n, th.shape[1]))
        margins(th, lo, hi, p, s)
        for k in range(d):
            for b in range(lo, hi):
                out[k, b] = 0.0
        for i in range(n):
            yi = p[oy + i]
            for k in range(d):
                c = -yi * p[1 + i * d + k] / n
                for b in range(lo, hi):
                    out[k, b] += c * _sigmoid_neg(s[i, b])

    @jit
    def hess(th, lo, hi, p, out):
        d = th.shape[0]
        n = int(p[0])
        s = np.empty((n, th.shape[1]))
        margins(th, lo, hi, p, s)
        for k in range(d):
            for m in range(d):
                for b in range(lo, hi):
                    out[k, m, b] = 0.0
        for i in range(n):
            for k in range(d):
                for m in range(d):
                    c = p[1 + i * d + k] * p[1 + i * d + m] / n
                    for b in range(lo, hi):
                        sn = _sigmoid_neg(s[i, b])
                        out[k, m, b] += c * sn * (1.0 - sn)

    @jit
    def dir3(th, u, lo, hi, p, out):
        d = th.shape[0]
        n = int(p[0])
        oy = 1 + n * d
        s = np.empty((n, th.shape[1]))
        margins(th, lo, hi, p, s)
        xu = np.empty(th.shape[1])
        for k in range(d):
            for b in range(lo, hi):
                out[k, b] = 0.0
        for i in range(n):
            for b in range(lo, hi):
                xu[b] = 0.0
            for k in range(d):
                xik = p[1 + i * d + k]
                for b in range(lo, hi):
                    xu[b] += xik * u[k, b]
            yi = p[oy + i]
            for k in range(d):
                c = yi * p[1 + i * d + k] / n
                for b in range(lo, hi):
                    sn = _sigmoid_neg(s[i, b])
                    sp_ = 1.0 - sn
                    out[k, b] += c * sn * sp_ * (sn - sp_) * xu[b] * xu[b]

    sharp = make_sharpness_kernel(hess, 4)  # generic LAPACK branch, valid for any d
    return Kernels(loss, grad, hess, dir3, sharp)


@dataclass(frozen=True, eq=False)
class LogisticRegression(Model):
    """Logistic regression on ``(X, y)``: ``L(w) = 1/n sum_i ln(1 + exp(-y_i x_i . w))``.

    Parameters
    ----------
    X
        Features, shape ``(n, d)``, finite.
    y
        Labels in ``{-1, +1}`` or ``{0, 1}`` (stored as ``{-1, +1}``), shape ``(n,)``.

    Notes
    -----
    ``grad L = -1/n sum_i sigma(-s_i) y_i x_i`` and
    ``grad^2 L = 1/n sum_i sigma(s_i) sigma(-s_i) x_i x_i^T`` with ``s_i = y_i x_i . w``.
    The Hessian is bounded by ``|X|_2^2 / (4 n)``. On separable data the infimum 0 is
    not attained; on non-separable data the minimiser is finite and unique when ``X`` has
    full column rank.
    Wu, Bartlett, Telgarsky, Yu (arXiv 2402.15926); Meng, Orvieto, Cao, De Sa
    (arXiv 2406.05033).

    Examples
    --------
    >>> import numpy as np
    >>> model = LogisticRegression(np.array([[1.0], [-2.0]]), np.array([1, 0]))
    >>> round(model.loss([0.0]), 12) == round(float(np.log(2.0)), 12)
    True
    """

    X: np.ndarray
    y: np.ndarray
    name: ClassVar[str] = "logistic-regression"

    def __post_init__(self) -> None:
        x, y = check_xy(self.X, self.y)
        x.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "X", x)
        object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        """Number of data points."""
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    def param_vector(self) -> np.ndarray:
        return np.concatenate([[float(self.n)], self.X.ravel(), self.y])

    def example_params(self) -> np.ndarray:
        """Row ``i``: the loss ``ln(1 + exp(-y_i x_i . w))`` of point ``i`` alone."""
        return np.stack([LogisticRegression(self.X[i:i + 1], self.y[i:i + 1]).param_vector()
                         for i in range(self.n)])

    def kernels(self) -> Kernels:
        return cached_kernels("logistic-regression", _logistic_kernels)

    def symbolic(self) -> SymbolicLoss:
        """The loss in sympy, with ``X`` and ``y`` as constants (for small instances)."""
        n, d = self.X.shape
        w = sp.symbols(f"w0:{d}")
        xs = sp.symbols(f"x0:{n * d}")
        ys = sp.symbols(f"y0:{n}")
        expr = sum(
            sp.log(1 + sp.exp(-ys[i] * sum(xs[i * d + k] * w[k] for k in range(d))))
            for i in range(n)
        ) / n
        return SymbolicLoss(w, expr, (*xs, *ys))


# -- compiled gradient descent, constant or risk-adaptive steps ---------------------------


@numba.njit(**JIT_OPTIONS)
def _scaled_loss_and_grad(xmat, y, w, s, g):
    """``(ln L, e^m grad L, e^m L)`` with ``m = max(0, min_i s_i)`` factored out.

    For ``s >= m >= 0``: ``e^m ln(1 + e^-s) = e^(m - s) log1p(e^-s) / e^-s`` and
    ``e^m sigma(-s) = e^(m - s) / (1 + e^-s)``; both are exact when ``e^-s`` underflows.
    """
    n, d = xmat.shape
    m = np.inf
    for i in range(n):
        acc = 0.0
        for k in range(d):
            acc += xmat[i, k] * w[k]
        s[i] = y[i] * acc
        m = min(m, s[i])
    m = max(m, 0.0)
    for k in range(d):
        g[k] = 0.0
    lsum = 0.0
    for i in range(n):
        si = s[i]
        if m > 0.0:
            u = math.exp(-si)
            ratio = 1.0 if u < 1e-300 else math.log1p(u) / u
            lsum += math.exp(m - si) * ratio
            sn = math.exp(m - si) / (1.0 + u)
        else:
            lsum += _softplus_neg(si)
            sn = _sigmoid_neg(si)
        for k in range(d):
            g[k] -= sn * y[i] * xmat[i, k] / n
    lsum /= n
    return math.log(lsum) - m, m, lsum


@numba.njit(**JIT_OPTIONS)
def _logistic_gd_loop(xmat, y, w0, etas, adaptive, steps, every, bound, w_out, rec_log,
                      n_up, last_up, steps_done):
    n, d = xmat.shape
    nb = w0.shape[0]
    s = np.empty(n)
    g = np.empty(d)
    w = np.empty(d)
    for b in range(nb):
        for k in range(d):
            w[k] = w0[b, k]
        prev = np.inf
        n_up[b] = 0
        last_up[b] = -1
        steps_done[b] = steps
        r = 0
        for t in range(steps + 1):
            log_l, m, lsc = _scaled_loss_and_grad(xmat, y, w, s, g)
            if t % every == 0 or t == steps:
                rec_log[b, r] = log_l
                r += 1
            if log_l > prev:
                n_up[b] += 1
                last_up[b] = t
            prev = log_l
            if t == steps:
                break
            # constant: w -= eta e^-m (e^m grad);  adaptive: w -= (eta / L) grad
            step = etas[b] / lsc if adaptive else etas[b] * math.exp(-m)
            ok = True
            for k in range(d):
                wk = w[k] - step * g[k]
                if not abs(wk) <= bound:
                    ok = False
            if not ok:
                steps_done[b] = -(t + 1)
                for rr in range(r, rec_log.shape[1]):
                    rec_log[b, rr] = log_l
                break
            for k in range(d):
                w[k] -= step * g[k]
        for k in range(d):
            w_out[b, k] = w[k]


@dataclass(frozen=True, eq=False)
class LogisticRun:
    """What :func:`logistic_gd` returns; arrays are indexed by run first.

    Attributes
    ----------
    eta
        Step size (constant) or scale ``eta`` of ``eta / L(w_t)`` (adaptive), shape ``(B,)``.
    adaptive
        Whether the steps were ``eta / L(w_t)``.
    t
        Record times, shape ``(R,)``.
    log_loss
        ``ln L(w_t)`` at the record times, shape ``(B, R)`` (a diverged run repeats its last
        finite value).
    final_w
        Last iterate, shape ``(B, d)``.
    loss_increases, last_increase
        Number of steps ``t`` with ``L(w_t) > L(w_{t-1})`` and the last such ``t`` (-1 when
        the loss decreased monotonically).
    diverged_at
        The step whose iterate left ``bound``, or -1.
    """

    eta: np.ndarray
    adaptive: bool
    t: np.ndarray
    log_loss: np.ndarray
    final_w: np.ndarray
    loss_increases: np.ndarray
    last_increase: np.ndarray
    diverged_at: np.ndarray

    def __len__(self) -> int:
        return len(self.eta)


def logistic_gd(
    model: LogisticRegression,
    w0,
    steps: int,
    *,
    eta,
    schedule: str = "constant",
    every: int = 1,
    bound: float = 1e12,
) -> LogisticRun:
    """Gradient descent on logistic regression for a batch of step sizes, compiled.

    Parameters
    ----------
    model
        The :class:`LogisticRegression`.
    w0
        Initial point(s), shape ``(d,)`` or ``(B, d)``; broadcast against ``eta``.
    steps
        Number of steps.
    eta
        Step size(s), positive, a number or shape ``(B,)``.
    schedule
        ``"constant"`` (``eta_t = eta``) or ``"risk-adaptive"`` (``eta_t = eta / L(w_t)``).
    every
        Record ``ln L`` every ``every`` steps (and at the last step).
    bound
        A run stops as diverged when a coordinate would exceed ``bound``.

    Returns
    -------
    LogisticRun

    Notes
    -----
    ``w_{t+1} = w_t - eta_t grad L(w_t)``. The risk-adaptive step of Zhang, Wu, Lin,
    Bartlett (arXiv 2504.04105) normalises the gradient by the loss; since
    ``|grad L| <= L`` for ``|x_i| <= 1``, each step moves by at most ``eta``. Wu,
    Bartlett, Telgarsky, Yu (arXiv 2402.15926) study the constant step.
    """
    if not isinstance(model, LogisticRegression):
        raise ValueError(f"model must be a LogisticRegression; got {type(model).__name__}")
    choice(schedule, "schedule", ("constant", "risk-adaptive"))
    steps = positive_int(steps, "steps", minimum=0)
    every = positive_int(every, "every")
    bound = positive_float(bound, "bound")
    w, etas = batch_of_runs(w0, eta, model.dim, name="w0")
    nb = len(etas)
    n_rec = record_count(steps, every)
    w_out = np.empty((nb, model.dim))
    rec = np.empty((nb, n_rec))
    n_up = np.empty(nb, dtype=np.int64)
    last_up = np.empty(nb, dtype=np.int64)
    done = np.empty(nb, dtype=np.int64)
    _logistic_gd_loop(
        np.ascontiguousarray(model.X), np.ascontiguousarray(model.y), w, etas,
        schedule == "risk-adaptive", steps, every, bound, w_out, rec, n_up, last_up, done,
    )
    return LogisticRun(
        eta=etas.copy(), adaptive=schedule == "risk-adaptive",
        t=np.minimum(np.arange(n_rec) * every, steps), log_loss=rec, final_w=w_out,
        loss_increases=n_up, last_increase=last_up,
        diverged_at=np.where(done < 0, -done, -1),
    )
