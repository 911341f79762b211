"""Diagonal linear networks ``beta = u * v`` and ``beta = u * u - v * v`` on sparse regression.

The model is the squared loss of a linear predictor whose weights are a coordinate-wise
product of two layers,

    L(u, v) = 1/(2n) |X beta(u, v) - y|^2,      beta = u * v   or   beta = u * u - v * v,

with ``X`` of shape ``(n, d)`` and ``n < d`` (over-parametrised regression, many
interpolators). The parameter vector is ``theta = (u, v)`` of length ``2 d``.

Gradient descent on this model is multiplicative in a rotated pair of coordinates, which
gives an exact description of its limit (:mod:`minimal_eos.implicit_bias`). The batch
kernels are written by hand (the innermost loop runs over the batch) and tested against the
sympy derivation of :meth:`DiagonalNetwork.symbolic` on a small instance;
:func:`dln_gd` is a compiled gradient-descent loop that also accumulates the sums over the
run's own gradients that fix the effective initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np
import sympy as sp

from .._checks import (
    as_float_array,
    batch_of_runs,
    choice,
    positive_float,
    positive_int,
    record_count,
)
from ..data import check_xy
from ..schedules import Constant, Drop, Warmup, check_schedule
from ..symbolic import JIT_OPTIONS, Kernels, SymbolicLoss, make_sharpness_kernel
from .base import Model, cached_kernels

PARAMETRIZATIONS = ("uv", "uu-vv")

# Parameter vector layout:
# [n, kind (0: u v, 1: u^2 - v^2), X (n*d, row-major), y (n), H = X^T X / n (d*d, row-major)].
# The parametrization is read at run time, so that one compiled set of kernels serves both.


@numba.njit(**JIT_OPTIONS)
def _offsets(p, d):
    """``n`` and the offsets of ``X``, ``y`` and ``H`` in the parameter vector."""
    n = int(p[0])
    return n, 2, 2 + n * d, 2 + n * d + n


@numba.njit(**JIT_OPTIONS)
def _second_derivatives(p):
    """``(b_uu, b_uv, b_vv)``: ``(0, 1, 0)`` for ``u v``, ``(2, 0, -2)`` for ``u^2 - v^2``."""
    if p[1] == 0.0:
        return 0.0, 1.0, 0.0
    return 2.0, 0.0, -2.0


def _helpers():
    """Shared pieces of the kernels: ``beta`` and its Jacobian, residual, ``g``, ``H w``."""
    jit = numba.njit(**JIT_OPTIONS)

    @jit
    def jacobian(th, lo, hi, p, beta, ju, jv):
        d = th.shape[0] // 2
        if p[1] == 0.0:
            for j in range(d):
                for b in range(lo, hi):
                    beta[j, b] = th[j, b] * th[d + j, b]
                    ju[j, b] = th[d + j, b]
                    jv[j, b] = th[j, b]
        else:
            for j in range(d):
                for b in range(lo, hi):
                    u = th[j, b]
                    v = th[d + j, b]
                    beta[j, b] = u * u - v * v
                    ju[j, b] = 2.0 * u
                    jv[j, b] = -2.0 * v

    @jit
    def residual(beta, lo, hi, p, r):
        d = beta.shape[0]
        n, ox, oy, _ = _offsets(p, d)
        for i in range(n):
            yi = p[oy + i]
            for b in range(lo, hi):
                r[i, b] = -yi
            for j in range(d):
                xij = p[ox + i * d + j]
                for b in range(lo, hi):
                    r[i, b] += xij * beta[j, b]

    @jit
    def data_grad(r, lo, hi, p, g):
        d = g.shape[0]
        n, ox, _, _ = _offsets(p, d)
        inv_n = 1.0 / n
        for j in range(d):
            for b in range(lo, hi):
                g[j, b] = 0.0
        for i in range(n):
            for j in range(d):
                xij = p[ox + i * d + j] * inv_n
                for b in range(lo, hi):
                    g[j, b] += xij * r[i, b]

    @jit
    def hmul(vec, lo, hi, p, out):
        d = vec.shape[0]
        _, _, _, oh = _offsets(p, d)
        for j in range(d):
            for b in range(lo, hi):
                out[j, b] = 0.0
            for k in range(d):
                hjk = p[oh + j * d + k]
                for b in range(lo, hi):
                    out[j, b] += hjk * vec[k, b]

    return jacobian, residual, data_grad, hmul


_HELPERS: list = []


def _cached_helpers():
    if not _HELPERS:
        _HELPERS.append(_helpers())
    return _HELPERS[0]


def _diagonal_kernels() -> Kernels:
    """Hand-written batch kernels for ``beta = u v`` and ``beta = u^2 - v^2`` (``p[1]``).

    With ``J_u = d beta / du`` and ``J_v = d beta / dv`` (coordinate-wise) and the constant
    second derivatives ``(b_uu, b_uv, b_vv)`` of ``beta`` -- ``(0, 1, 0)`` for ``u v`` and
    ``(2, 0, -2)`` for ``u^2 - v^2`` -- and ``g = X^T (X beta - y) / n``:

    - ``grad_u = J_u g``, ``grad_v = J_v g``;
    - ``d2L/du_j du_k = J_u,j H_jk J_u,k + delta_jk b_uu g_j`` (and likewise ``uv``, ``vv``);
    - along a direction ``w = (a, b)``: ``beta(theta + t w) = beta + t c + t^2 e`` with
      ``c = J_u a + J_v b`` and ``e = (b_uu a^2 + 2 b_uv a b + b_vv b^2) / 2``, so
      ``w^T H(theta) w = 2 g.e + c^T H c`` and its gradient (``D^3 L[w, w]``) is
      ``2 J_u (H e) + 2 (b_uu a + b_uv b) (H c)`` on ``u`` and
      ``2 J_v (H e) + 2 (b_uv a + b_vv b) (H c)`` on ``v``.
    """
    jit = numba.njit(**JIT_OPTIONS)
    jacobian, residual, data_grad, hmul = _cached_helpers()

    @jit
    def loss(th, lo, hi, p, out):
        d = th.shape[0] // 2
        n = int(p[0])
        nb = th.shape[1]
        beta = np.empty((d, nb))
        ju = np.empty((d, nb))
        jv = np.empty((d, nb))
        r = np.empty((n, nb))
        jacobian(th, lo, hi, p, beta, ju, jv)
        residual(beta, lo, hi, p, r)
        half_inv_n = 0.5 / n
        for b in range(lo, hi):
            out[b] = 0.0
        for i in range(n):
            for b in range(lo, hi):
                out[b] += half_inv_n * r[i, b] * r[i, b]

    @jit
    def grad(th, lo, hi, p, out):
        d = th.shape[0] // 2
        n = int(p[0])
        nb = th.shape[1]
        beta = np.empty((d, nb))
        ju = np.empty((d, nb))
        jv = np.empty((d, nb))
        r = np.empty((n, nb))
        g = np.empty((d, nb))
        jacobian(th, lo, hi, p, beta, ju, jv)
        residual(beta, lo, hi, p, r)
        data_grad(r, lo, hi, p, g)
        for j in range(d):
            for b in range(lo, hi):
                out[j, b] = ju[j, b] * g[j, b]
                out[d + j, b] = jv[j, b] * g[j, b]

    @jit
    def hess(th, lo, hi, p, out):
        d = th.shape[0] // 2
        n, _, _, oh = _offsets(p, d)
        nb = th.shape[1]
        beta = np.empty((d, nb))
        ju = np.empty((d, nb))
        jv = np.empty((d, nb))
        r = np.empty((n, nb))
        g = np.empty((d, nb))
        jacobian(th, lo, hi, p, beta, ju, jv)
        residual(beta, lo, hi, p, r)
        data_grad(r, lo, hi, p, g)
        b_uu, b_uv, b_vv = _second_derivatives(p)
        for j in range(d):
            for k in range(d):
                hjk = p[oh + j * d + k]
                for b in range(lo, hi):
                    out[j, k, b] = ju[j, b] * hjk * ju[k, b]
                    out[j, d + k, b] = ju[j, b] * hjk * jv[k, b]
                    out[d + j, k, b] = jv[j, b] * hjk * ju[k, b]
                    out[d + j, d + k, b] = jv[j, b] * hjk * jv[k, b]
            for b in range(lo, hi):
                out[j, j, b] += b_uu * g[j, b]
                out[j, d + j, b] += b_uv * g[j, b]
                out[d + j, j, b] += b_uv * g[j, b]
                out[d + j, d + j, b] += b_vv * g[j, b]

    @jit
    def dir3(th, w, lo, hi, p, out):
        d = th.shape[0] // 2
        nb = th.shape[1]
        beta = np.empty((d, nb))
        ju = np.empty((d, nb))
        jv = np.empty((d, nb))
        c = np.empty((d, nb))
        e = np.empty((d, nb))
        hc = np.empty((d, nb))
        he = np.empty((d, nb))
        jacobian(th, lo, hi, p, beta, ju, jv)
        b_uu, b_uv, b_vv = _second_derivatives(p)
        for j in range(d):
            for b in range(lo, hi):
                a = w[j, b]
                bb = w[d + j, b]
                c[j, b] = ju[j, b] * a + jv[j, b] * bb
                e[j, b] = 0.5 * (b_uu * a * a + 2.0 * b_uv * a * bb + b_vv * bb * bb)
        hmul(c, lo, hi, p, hc)
        hmul(e, lo, hi, p, he)
        for j in range(d):
            for b in range(lo, hi):
                a = w[j, b]
                bb = w[d + j, b]
                out[j, b] = 2.0 * ju[j, b] * he[j, b] + 2.0 * (b_uu * a + b_uv * bb) * hc[j, b]
                out[d + j, b] = (
                    2.0 * jv[j, b] * he[j, b] + 2.0 * (b_uv * a + b_vv * bb) * hc[j, b]
                )

    sharp = make_sharpness_kernel(hess, 4)  # generic LAPACK branch (any dim > 2)
    return Kernels(loss, grad, hess, dir3, sharp)


@dataclass(frozen=True, eq=False)
class DiagonalNetwork(Model):
    """The two-layer diagonal linear network on the regression data ``(X, y)``.

    Parameters
    ----------
    X
        Design matrix, shape ``(n, d)``, finite; typically ``n < d``.
    y
        Targets, shape ``(n,)``, finite.
    parametrization
        ``"uv"`` for ``beta = u * v`` or ``"uu-vv"`` for ``beta = u * u - v * v``.

    Notes
    -----
    ``L(u, v) = 1/(2n) |X beta - y|^2``; with ``g = X^T (X beta - y) / n`` the gradient is
    ``(v g, u g)`` for ``u * v`` and ``(2 u g, -2 v g)`` for ``u * u - v * v``.
    GD with step ``eta`` is therefore multiplicative in ``w_+ = u + v``, ``w_- = u - v``
    (for ``u * v``; ``w_+ = u``, ``w_- = v`` for ``u * u - v * v``):

        w_+ <- (1 - x) w_+,   w_- <- (1 + x) w_-,   x = eta g  (resp. 2 eta g),

    so that ``u^2 - v^2 = w_+ w_-`` (resp. ``u v``) is multiplied by ``1 - x^2`` at every
    step. At an interpolator (``g = 0``) the Hessian is ``J^T H J`` with
    ``H = X^T X / n`` and ``J = [diag(J_u), diag(J_v)]``, whose top eigenvalue is that of
    ``D H D`` with ``D = diag(sqrt(J_u^2 + J_v^2))``.
    Even, Pesme, Gunasekar, Flammarion (arXiv 2302.08982); Woodworth et al.
    (arXiv 2002.09277).

    Examples
    --------
    >>> import numpy as np
    >>> net = DiagonalNetwork(np.array([[1.0, 2.0]]), np.array([1.0]))
    >>> net.loss(net.init(1.0))  # u = sqrt(2), v = 0 gives beta = 0
    0.5
    """

    X: np.ndarray
    y: np.ndarray
    parametrization: str = "uv"
    hessian_data: np.ndarray = field(init=False, repr=False)
    name: ClassVar[str] = "diagonal-network"

    def __post_init__(self) -> None:
        choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
        x, y = check_xy(self.X, self.y, labels=False)
        h = x.T @ x / x.shape[0]
        for arr in (x, y, h):
            arr.setflags(write=False)
        object.__setattr__(self, "X", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "hessian_data", h)

    # -- structure -----------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of data points."""
        return self.X.shape[0]

    @property
    def d(self) -> int:
        """Number of features (half the number of coordinates)."""
        return self.X.shape[1]

    @property
    def dim(self) -> int:
        return 2 * self.d

    @property
    def kind(self) -> int:
        """Kernel code: 0 for ``u * v``, 1 for ``u * u - v * v``."""
        return PARAMETRIZATIONS.index(self.parametrization)

    def param_vector(self) -> np.ndarray:
        return np.concatenate(
            [[float(self.n), float(self.kind)], self.X.ravel(), self.y,
             self.hessian_data.ravel()]
        )

    def example_params(self) -> np.ndarray:
        """Row ``i``: the loss ``(x_i . beta - y_i)^2 / 2`` of point ``i`` alone."""
        return np.stack([
            DiagonalNetwork(self.X[i:i + 1], self.y[i:i + 1], self.parametrization).param_vector()
            for i in range(self.n)
        ])

    def kernels(self) -> Kernels:
        return cached_kernels("diagonal-network", _diagonal_kernels)

    # -- coordinates ---------------------------------------------------------------------
    def init(self, alpha) -> np.ndarray:
        """The standard initialisation of scale ``alpha`` (a number or shape ``(d,)``).

        ``u = sqrt(2) alpha, v = 0`` for ``u * v`` and ``u = v = alpha`` for
        ``u * u - v * v``: both give ``beta = 0`` and the hyperbolic-entropy scale
        ``alpha^2`` for ``u * v`` and ``2 alpha^2`` for ``u * u - v * v`` (see
        :func:`hyperbolic_scale`).
        """
        a = as_float_array(alpha, "alpha", ndim=(0, 1))
        if np.any(a <= 0):
            raise ValueError("alpha must be > 0")
        a = np.broadcast_to(a, (self.d,)).astype(float)
        if a.shape != (self.d,):
            raise ValueError(f"alpha must be a number or have shape ({self.d},)")
        if self.parametrization == "uv":
            return np.concatenate([math.sqrt(2.0) * a, np.zeros(self.d)])
        return np.concatenate([a, a])

    def beta(self, theta) -> np.ndarray:
        """The linear predictor ``beta(u, v)`` of one point or of rows of points."""
        th = as_float_array(theta, "theta", ndim=(1, 2))
        if th.shape[-1] != self.dim:
            raise ValueError(f"theta must have last dimension {self.dim}; got {th.shape}")
        u, v = th[..., : self.d], th[..., self.d :]
        return u * v if self.parametrization == "uv" else u * u - v * v

    def symbolic(self) -> SymbolicLoss:
        """The same loss in sympy with ``X`` and ``y`` as constants (for small instances).

        The constants' order matches :meth:`param_vector` entries ``2 .. 2 + n d + n``.
        """
        n, d = self.n, self.d
        u = sp.symbols(f"u0:{d}")
        v = sp.symbols(f"v0:{d}")
        xs = sp.symbols(f"x0:{n * d}")
        ys = sp.symbols(f"y0:{n}")
        beta = [
            ui * vi if self.parametrization == "uv" else ui**2 - vi**2
            for ui, vi in zip(u, v, strict=True)
        ]
        expr = sum(
            (sum(xs[i * d + j] * beta[j] for j in range(d)) - ys[i]) ** 2 for i in range(n)
        ) / (2 * n)
        return SymbolicLoss((*u, *v), expr, (*xs, *ys))


def hyperbolic_scale(model: DiagonalNetwork, theta) -> np.ndarray:
    """The scale ``A`` of the hyperbolic entropy carried by a point ``theta``.

    Notes
    -----
    Writing ``w_+^2 = k alpha_+^2 exp(z)``, ``w_-^2 = k alpha_-^2 exp(-z)`` gives
    ``beta = A sinh(z + c)`` with ``c = ln(alpha_+ / alpha_-)`` and
    ``A = |u^2 - v^2| / 2`` for ``u * v`` (``w_pm = u pm v``, ``beta = (w_+^2 - w_-^2)/4``)
    and ``A = 2 |u v|`` for ``u * u - v * v`` (``w_+ = u``, ``w_- = v``). GD multiplies
    ``A`` by ``|1 - x^2|`` at every step (:class:`DiagonalNetwork`).
    """
    th = model.check_theta(theta)
    u, v = th[: model.d], th[model.d :]
    if model.parametrization == "uv":
        return np.abs(u * u - v * v) / 2.0
    return 2.0 * np.abs(u * v)


def hyperbolic_shift(model: DiagonalNetwork, theta) -> np.ndarray:
    """The shift ``c = ln|w_+ / w_-|`` of a point (0 for the standard initialisation)."""
    th = model.check_theta(theta)
    u, v = th[: model.d], th[model.d :]
    wp, wm = (u + v, u - v) if model.parametrization == "uv" else (u, v)
    with np.errstate(divide="ignore"):
        out = np.log(np.abs(wp)) - np.log(np.abs(wm))
    if not np.all(np.isfinite(out)):
        raise ValueError("theta has a coordinate with w_+ = 0 or w_- = 0: no finite shift")
    return out




# -- compiled gradient descent with the sums that fix the effective initialisation ---------

RUNNING, CONVERGED, DIVERGED = 0, 1, 2
STATUS_NAMES = ("running", "converged", "diverged")


@numba.njit(**JIT_OPTIONS)
def _q_and_r(x):
    """``q(x) = -ln|1 - x^2|`` and ``r(x) = ln|1 + x| - ln|1 - x| - 2 x``.

    ``r`` is summed as its odd series ``2 (x^3/3 + x^5/5 + ... + x^15/15)`` for
    ``|x| < 0.05``, avoiding the cancellation in ``2 artanh(x) - 2 x``; the first omitted
    term is below ``1e-19`` relative to ``r``.
    """
    if abs(x) < 0.05:
        x2 = x * x
        s = 0.0
        term = x * x2
        for m in range(3, 17, 2):
            s += term / m
            term *= x2
        return -math.log1p(-x2), 2.0 * s
    q = -math.log(abs(1.0 - x * x))
    r = math.log(abs(1.0 + x)) - math.log(abs(1.0 - x)) - 2.0 * x
    return q, r


def _make_gd_loop():
    jacobian, residual, data_grad, _ = _cached_helpers()

    def loop(th0, etas, factors, p, loss_tol, floor, bound, every, x, status, steps_done,
             sum_q, sum_r, n_up, last_up, max_x, rec_loss):
        d = th0.shape[0] // 2
        nb = th0.shape[1]
        n = int(p[0])
        steps = factors.shape[0]
        beta = np.empty((d, nb))
        ju = np.empty((d, nb))
        jv = np.empty((d, nb))
        r = np.empty((n, nb))
        g = np.empty((d, nb))
        xn = np.empty((2 * d, nb))
        ok = np.empty(nb, dtype=np.bool_)
        cur = np.empty(nb)
        prev = np.full(nb, np.inf)
        grad_scale = 1.0 if p[1] == 0.0 else 2.0
        for k in range(2 * d):
            for b in range(nb):
                x[k, b] = th0[k, b]
        for j in range(d):
            for b in range(nb):
                sum_q[j, b] = 0.0
                sum_r[j, b] = 0.0
        for b in range(nb):
            status[b] = RUNNING
            steps_done[b] = 0
            n_up[b] = 0
            last_up[b] = -1
            max_x[b] = 0.0
        rec = 0
        for t in range(steps + 1):
            jacobian(x, 0, nb, p, beta, ju, jv)
            residual(beta, 0, nb, p, r)
            for b in range(nb):
                cur[b] = 0.0
            for i in range(n):
                for b in range(nb):
                    cur[b] += r[i, b] * r[i, b]
            for b in range(nb):
                cur[b] *= 0.5 / n
            if t % every == 0 or t == steps:
                for b in range(nb):
                    rec_loss[rec, b] = cur[b]
                rec += 1
            alive = 0
            for b in range(nb):
                if status[b] == RUNNING:
                    if cur[b] > prev[b] and prev[b] > floor:
                        n_up[b] += 1
                        last_up[b] = t
                    prev[b] = cur[b]
                    if cur[b] <= loss_tol:
                        status[b] = CONVERGED
                    else:
                        alive += 1
            if alive == 0 or t == steps:
                break
            data_grad(r, 0, nb, p, g)
            for j in range(d):
                for b in range(nb):
                    e = etas[b] * factors[t]
                    xn[j, b] = x[j, b] - e * ju[j, b] * g[j, b]
                    xn[d + j, b] = x[d + j, b] - e * jv[j, b] * g[j, b]
            for b in range(nb):
                ok[b] = status[b] == RUNNING
            for k in range(2 * d):
                for b in range(nb):
                    if not abs(xn[k, b]) <= bound:
                        ok[b] = False
            for b in range(nb):
                if status[b] == RUNNING:
                    if ok[b]:
                        steps_done[b] = t + 1
                    else:
                        status[b] = DIVERGED
                        steps_done[b] = -(t + 1)
            for j in range(d):
                for b in range(nb):
                    if ok[b]:
                        xg = grad_scale * etas[b] * factors[t] * g[j, b]
                        q, rr = _q_and_r(xg)
                        sum_q[j, b] += q
                        sum_r[j, b] += rr
                        max_x[b] = max(max_x[b], abs(xg))
                        x[j, b] = xn[j, b]
                        x[d + j, b] = xn[d + j, b]
        return rec

    return numba.njit(**JIT_OPTIONS)(loop)


_GD_LOOPS: list = []


@dataclass(frozen=True, eq=False)
class DLNRun:
    """What :func:`dln_gd` returns; arrays are indexed by run first.

    Attributes
    ----------
    eta
        Base step size of each run, shape ``(B,)``.
    factors
        The schedule's multipliers ``eta_t / eta``, shape ``(steps,)``.
    theta0, final_theta
        First and last iterates, shape ``(B, 2 d)``.
    status
        ``"converged"`` (loss below ``loss_tol``), ``"diverged"`` (the next iterate would
        have left ``bound``; the last iterate inside is kept) or ``"running"``, shape ``(B,)``.
    steps
        Steps taken by each run, shape ``(B,)``.
    diverged_at
        For diverged runs the step whose iterate left the bound, else -1.
    sum_q, sum_r
        ``sum_t q(x_t)`` and ``sum_t r(x_t)`` per coordinate, shape ``(B, d)``, with
        ``x_t = eta_t g_t`` (``2 eta_t g_t`` for ``u * u - v * v``).
    loss_increases, last_increase
        Number of steps with ``L(theta_{t}) > L(theta_{t-1})`` and the last such ``t``
        (-1 if the loss never increased). Increases from a loss below
        ``1e-20 max(1, mean(y^2))`` are not counted: there the residual (``~1e-10``) is a
        few thousand ulps of the terms it sums, and its changes are rounding.
    max_step
        ``max_t |x_t|_inf``: the largest coordinate-wise multiplicative step.
    t, loss
        Record times and the recorded losses, shape ``(R,)`` and ``(B, R)``; after a run
        stops, its records repeat its last loss (the records end when every run stopped).
    """

    eta: np.ndarray
    factors: np.ndarray
    theta0: np.ndarray
    final_theta: np.ndarray
    status: np.ndarray
    steps: np.ndarray
    diverged_at: np.ndarray
    sum_q: np.ndarray
    sum_r: np.ndarray
    loss_increases: np.ndarray
    last_increase: np.ndarray
    max_step: np.ndarray
    t: np.ndarray
    loss: np.ndarray

    def __len__(self) -> int:
        return len(self.eta)


def _schedule_factors(schedule, steps: int) -> np.ndarray:
    sched = check_schedule(schedule)
    if not isinstance(sched, Constant | Drop | Warmup):
        raise ValueError(
            "schedule must be Constant(), Drop(at, factor) or Warmup(steps) (or their "
            f"names) for dln_gd; got {sched!r}"
        )
    return np.array([sched.step(1.0, t) for t in range(steps)], dtype=np.float64)


def dln_gd(
    model: DiagonalNetwork,
    theta0,
    steps: int,
    *,
    eta,
    schedule="constant",
    loss_tol: float | None = None,
    bound: float = 1e8,
    every: int = 1,
) -> DLNRun:
    """Gradient descent on a diagonal network for a batch of step sizes, compiled.

    Parameters
    ----------
    model
        The :class:`DiagonalNetwork`.
    theta0
        Initial point(s), shape ``(2 d,)`` or ``(B, 2 d)``; broadcast against ``eta``.
    steps
        Largest number of steps.
    eta
        Base step size(s), a positive number or shape ``(B,)``.
    schedule
        ``Constant()``, ``Drop(at, factor)`` or ``Warmup(steps)`` (or a name):
        ``eta_t = eta * factor_t``.
    loss_tol
        A run is converged once ``L(theta_t) <= loss_tol``; default
        ``1e-26 * max(1, mean(y^2))``, where float64 rounding of the residual dominates.
    bound
        A run diverges once a coordinate exceeds ``bound`` in magnitude (or is not finite).
    every
        Record the loss every ``every`` steps (and at the last step).

    Returns
    -------
    DLNRun

    Notes
    -----
    ``theta_{t+1} = theta_t - eta_t grad L(theta_t)``. Along the run the loop accumulates,
    per coordinate, ``sum_t q(x_t)`` and ``sum_t r(x_t)`` with ``x_t = eta_t g_t`` (or
    ``2 eta_t g_t``), ``q(x) = -ln|1 - x^2|`` and ``r(x) = ln|(1 + x)/(1 - x)| - 2 x``;
    they give the effective initialisation exactly
    (:func:`minimal_eos.implicit_bias.effective_initialization`).
    Even, Pesme, Gunasekar, Flammarion (arXiv 2302.08982).
    """
    if not isinstance(model, DiagonalNetwork):
        raise ValueError(f"model must be a DiagonalNetwork; got {type(model).__name__}")
    steps = positive_int(steps, "steps", minimum=0)
    every = positive_int(every, "every")
    bound = positive_float(bound, "bound")
    y_scale = max(1.0, float(np.mean(model.y**2)))
    if loss_tol is None:
        loss_tol = 1e-26 * y_scale
    loss_tol = positive_float(loss_tol, "loss_tol", allow_zero=True)
    th, etas = batch_of_runs(theta0, eta, model.dim)
    nb = len(etas)
    factors = _schedule_factors(schedule, steps)

    d = model.d
    n_rec = record_count(steps, every)
    x = np.empty((2 * d, nb))
    status = np.empty(nb, dtype=np.int64)
    steps_done = np.empty(nb, dtype=np.int64)
    sum_q = np.empty((d, nb))
    sum_r = np.empty((d, nb))
    n_up = np.empty(nb, dtype=np.int64)
    last_up = np.empty(nb, dtype=np.int64)
    max_x = np.empty(nb)
    rec_loss = np.zeros((n_rec, nb))
    if not _GD_LOOPS:
        _GD_LOOPS.append(_make_gd_loop())
    n_done = _GD_LOOPS[0](
        np.ascontiguousarray(th.T), etas, factors, model.param_vector(), float(loss_tol),
        1e-20 * y_scale, bound, every, x, status, steps_done, sum_q, sum_r, n_up, last_up,
        max_x, rec_loss,
    )
    t = np.minimum(np.arange(n_rec) * every, steps)[:n_done]
    diverged_at = np.where(steps_done < 0, -steps_done, -1)
    steps_done = np.abs(steps_done)
    return DLNRun(
        eta=etas.copy(), factors=factors, theta0=th.copy(), final_theta=x.T.copy(),
        status=np.array([STATUS_NAMES[s] for s in status], dtype=object),
        steps=steps_done, diverged_at=diverged_at, sum_q=sum_q.T.copy(),
        sum_r=sum_r.T.copy(), loss_increases=n_up, last_increase=last_up, max_step=max_x,
        t=t, loss=rec_loss[:n_done].T.copy(),
    )
