"""The implicit bias of gradient descent on diagonal linear networks, with large steps.

GD on a diagonal network (:class:`~minimal_eos.models.DiagonalNetwork`) is multiplicative
in ``w_pm`` (``u pm v`` for ``beta = u v``; ``u``, ``v`` for ``beta = u^2 - v^2``):
``w_+ <- (1 - x_t) w_+``, ``w_- <- (1 + x_t) w_-`` with ``x_t = eta_t g_t`` (resp.
``2 eta_t g_t``) and ``g_t = X^T (X beta_t - y) / n``. Splitting

    ln (1 -+ x)^2 = -+ 2 x - q(x) -+ r(x),
    q(x) = -ln|1 - x^2|,      r(x) = ln|(1 + x) / (1 - x)| - 2 x,

gives, exactly and at every step,

    beta_t = A_t sinh(z_t + c_t),      z_t = -2 sum_s x_s  in  range(X^T),
    A_t = A_0 exp(-sum_s q(x_s)),      c_t = c_0 - sum_s r(x_s),

where ``A_0`` and ``c_0`` come from the initialisation (:func:`hyperbolic_scale`,
:func:`hyperbolic_shift`). At the limit ``X beta = y``, these are the optimality
conditions of

    min  sum_j A_j h(beta_j / A_j) - c_j beta_j   subject to  X beta = y,
    h(s) = s arcsinh(s) - sqrt(1 + s^2) + 1,

the *hyperbolic entropy* with the effective scale ``A_infinity`` and shift
``c_infinity``. With the standard initialisation of scale ``alpha`` (``c_0 = 0``) the
effective initialisation is ``alpha_infinity = alpha exp(-1/2 sum_t q(x_t))``, the
quantity of Even et al.; the shift is third order in the steps (``r(x) = 2 x^3 / 3 +
O(x^5)``). Gradient flow keeps ``A = A_0``, ``c = c_0``.

References
----------
Even, Pesme, Gunasekar, Flammarion, "(S)GD over diagonal linear networks: implicit
regularisation, large stepsizes and edge of stability", arXiv 2302.08982.
Woodworth et al., "Kernel and rich regimes in overparametrized models", arXiv 2002.09277.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ._checks import as_float_array, positive_float, positive_int
from .models.diagonal import (
    DiagonalNetwork,
    DLNRun,
    dln_gd,
    hyperbolic_scale,
    hyperbolic_shift,
)

__all__ = [
    "EffectiveInitialization",
    "divergence_threshold",
    "effective_initialization",
    "eos_onset",
    "gradient_flow_limit",
    "hyperbolic_entropy",
    "hyperbolic_minimizer",
    "initial_sharpness",
    "interpolator_sharpness",
    "optimality_residual",
    "predicted_limit",
]


def _check_problem(X, y, scale, shift):
    x = as_float_array(X, "X", ndim=2)
    yy = as_float_array(y, "y", ndim=1)
    if yy.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match X {x.shape}; got {yy.shape}")
    a = np.broadcast_to(as_float_array(scale, "scale", ndim=(0, 1)), (x.shape[1],)).copy()
    if np.any(a <= 0):
        raise ValueError("scale must be > 0 in every coordinate")
    c = np.zeros(x.shape[1]) if shift is None else np.broadcast_to(
        as_float_array(shift, "shift", ndim=(0, 1)), (x.shape[1],)
    ).copy()
    return x, yy, a, c


def hyperbolic_entropy(beta, scale, shift=None) -> float:
    """The potential ``sum_j A_j h(beta_j / A_j) - c_j beta_j``.

    Parameters
    ----------
    beta
        Point, shape ``(d,)``.
    scale
        ``A > 0``, a number or shape ``(d,)``.
    shift
        ``c``, a number or shape ``(d,)`` (zero by default).

    Notes
    -----
    ``h(s) = s arcsinh(s) - sqrt(1 + s^2) + 1``, so that the gradient is
    ``arcsinh(beta / A) - c``. For ``A -> 0`` the potential behaves like
    ``ln(1/A) |beta|_1`` (sparsity); for ``A -> infinity`` like ``|beta|^2 / (2 A)``.
    Woodworth et al. (arXiv 2002.09277); Even et al. (arXiv 2302.08982).

    Examples
    --------
    >>> hyperbolic_entropy([0.0, 0.0], 1.0)
    0.0
    """
    b = as_float_array(beta, "beta", ndim=1)
    a = np.broadcast_to(as_float_array(scale, "scale", ndim=(0, 1)), b.shape)
    c = 0.0 if shift is None else np.broadcast_to(as_float_array(shift, "shift", ndim=(0, 1)),
                                                  b.shape)
    s = b / a
    return float(np.sum(a * (s * np.arcsinh(s) - np.sqrt(1.0 + s * s) + 1.0) - c * b))


def hyperbolic_minimizer(X, y, scale, shift=None, *, gtol: float = 1e-13) -> np.ndarray:
    """The minimiser of the hyperbolic entropy subject to ``X beta = y``.

    Parameters
    ----------
    X, y
        The constraint, shapes ``(n, d)`` and ``(n,)``; ``X`` must have full row rank.
    scale, shift
        ``A > 0`` and ``c`` of :func:`hyperbolic_entropy`.
    gtol
        Tolerance on the constraint residual ``|X beta - y|_inf``, relative to
        ``max(1, |y|_inf, ||X| |beta||_inf)`` (the size of the terms it sums).

    Returns
    -------
    numpy.ndarray
        ``beta``, shape ``(d,)``.

    Notes
    -----
    The minimiser has the form ``beta(lam) = A sinh(X^T lam + c)``, and ``lam`` minimises
    the smooth, strictly convex dual ``D(lam) = sum_j A_j cosh((X^T lam + c)_j) - y . lam``
    (gradient ``X beta(lam) - y``, Hessian ``X diag(A cosh(.)) X^T``), solved by
    scipy's ``trust-exact``. The exponentials are evaluated as
    ``exp(ln A_j +- (z_j + c_j)) / 2``, so tiny scales (``1e-30``) do not underflow
    the solution.
    """
    x, yy, a, c = _check_problem(X, y, scale, shift)
    return _dual_minimizer(x, yy, np.log(a) + c, np.log(a) - c, positive_float(gtol, "gtol"))


def _dual_minimizer(x, yy, log_p, log_m, gtol: float = 1e-13) -> np.ndarray:
    """``beta = (P e^z - M e^-z) / 2`` at the dual optimum, from ``ln P = ln A + c``,
    ``ln M = ln A - c`` (so that vanishing scales stay representable)."""
    n = x.shape[0]
    if np.linalg.matrix_rank(x) < n:
        raise ValueError("X must have full row rank (n independent rows) for X beta = y")

    def parts(lam):
        z = x.T @ lam
        ep = np.exp(np.minimum(log_p + z, 700.0))
        em = np.exp(np.minimum(log_m - z, 700.0))
        return ep, em

    def fun(lam):
        ep, em = parts(lam)
        return 0.5 * np.sum(ep + em) - yy @ lam

    def jac(lam):
        ep, em = parts(lam)
        return x @ (0.5 * (ep - em)) - yy

    def hess(lam):
        ep, em = parts(lam)
        return (x * (0.5 * (ep + em))) @ x.T

    def tol_at(lam):
        # the constraint residual X beta - y is computed to ~eps |X| |beta| at best
        ep, em = parts(lam)
        size = np.max(np.abs(x) @ (0.5 * (ep + em)))
        return gtol * max(1.0, float(np.max(np.abs(yy))), float(size))

    res = optimize.minimize(fun, np.zeros(n), jac=jac, hess=hess, method="trust-exact",
                            options={"gtol": tol_at(np.zeros(n)), "maxiter": 5000})
    lam = res.x
    # trust-exact stalls ("bad approximation") when the dual decrease reaches rounding;
    # full Newton steps then converge quadratically from where it stopped
    for _ in range(20):
        g = jac(lam)
        if np.max(np.abs(g)) <= tol_at(lam):
            break
        lam = lam - np.linalg.solve(hess(lam), g)
    if not np.max(np.abs(jac(lam))) <= 1e3 * tol_at(lam):
        raise RuntimeError(
            "the dual of the hyperbolic-entropy problem did not converge: constraint "
            f"residual {np.max(np.abs(jac(lam))):.3g} ({res.message})"
        )
    ep, em = parts(lam)
    return 0.5 * (ep - em)


def optimality_residual(X, beta, scale, shift=None) -> float:
    """How far ``grad psi(beta) = arcsinh(beta / A) - c`` is from ``range(X^T)``.

    Returns ``|(I - P) grad psi(beta)|_inf`` with ``P`` the orthogonal projector onto
    ``range(X^T)``: zero exactly at the minimiser of :func:`hyperbolic_minimizer` (together
    with ``X beta = y``).
    """
    b = as_float_array(beta, "beta", ndim=1)
    x, _, a, c = _check_problem(X, np.zeros(np.shape(X)[0]), scale, shift)
    grad = np.arcsinh(b / a) - c
    q, _ = np.linalg.qr(x.T)
    return float(np.max(np.abs(grad - q @ (q.T @ grad))))


@dataclass(frozen=True)
class EffectiveInitialization:
    """The effective hyperbolic-entropy parameters of GD runs (arrays of shape ``(B, d)``).

    Attributes
    ----------
    scale
        ``A_infinity = A_0 exp(-sum_t q(x_t))``.
    shift
        ``c_infinity = c_0 - sum_t r(x_t)``.
    alpha
        ``alpha_infinity = alpha_0 exp(-1/2 sum_t q(x_t))``, where ``alpha_0`` is the scale
        of the standard initialisation with the same ``A_0`` (``A_0 = alpha_0^2`` for
        ``u * v``, ``2 alpha_0^2`` for ``u * u - v * v``).
    """

    scale: np.ndarray
    shift: np.ndarray
    alpha: np.ndarray


def _alpha_from_scale(model: DiagonalNetwork, scale):
    return np.sqrt(scale) if model.parametrization == "uv" else np.sqrt(scale / 2.0)


def effective_initialization(model: DiagonalNetwork, run: DLNRun) -> EffectiveInitialization:
    """The effective initialisation of each run of :func:`dln_gd`, from its own gradients.

    Notes
    -----
    ``A_infinity = A_0 exp(-sum_t q(eta_t g_t))`` and
    ``c_infinity = c_0 - sum_t r(eta_t g_t)`` with the sums accumulated by the compiled
    loop over the steps actually taken (for ``u * u - v * v`` the argument is
    ``2 eta_t g_t``). Even et al. (arXiv 2302.08982), Theorem 1:
    ``alpha_infinity = alpha exp(-1/2 sum_t q(gamma_t grad L(beta_t)))``.
    """
    a0 = np.array([hyperbolic_scale(model, th) for th in run.theta0])
    c0 = np.array([hyperbolic_shift(model, th) for th in run.theta0])
    scale = a0 * np.exp(-run.sum_q)
    return EffectiveInitialization(
        scale=scale, shift=c0 - run.sum_r, alpha=_alpha_from_scale(model, scale)
    )


def predicted_limit(model: DiagonalNetwork, run: DLNRun, *, exact: bool = True,
                    which=None) -> np.ndarray:
    """The minimiser predicted for the runs ``which`` (default: all), shape ``(B, d)``.

    With ``exact=True`` the prediction uses ``A_infinity`` and ``c_infinity``
    (:func:`effective_initialization`), for which it is the limit of GD exactly; with
    ``exact=False`` it drops the shift's change (``c = c_0``), keeping only
    ``alpha_infinity`` -- the prediction of Even et al. without its perturbation term
    ``beta_0 = A sinh(c_infinity)`` (the Bregman divergence ``D_psi(beta, beta_0)`` has the
    same minimiser as ``psi(beta) - c_infinity . beta``).
    """
    idx = np.arange(len(run)) if which is None else np.atleast_1d(np.asarray(which, dtype=int))
    out = np.empty((len(idx), model.d))
    for j, b in enumerate(idx):
        log_a = np.log(hyperbolic_scale(model, run.theta0[b])) - run.sum_q[b]
        c0 = hyperbolic_shift(model, run.theta0[b])
        c = c0 - run.sum_r[b] if exact else c0
        out[j] = _dual_minimizer(model.X, model.y, log_a + c, log_a - c)
    return out


def gradient_flow_limit(model: DiagonalNetwork, theta0) -> np.ndarray:
    """The limit of gradient flow from ``theta0``: the minimiser with ``A_0``, ``c_0``."""
    return hyperbolic_minimizer(
        model.X, model.y, hyperbolic_scale(model, theta0), hyperbolic_shift(model, theta0)
    )


def interpolator_sharpness(model: DiagonalNetwork, beta, scale) -> float:
    """The sharpness of the interpolator ``beta`` reached with the effective scale ``A``.

    Notes
    -----
    At ``X beta = y`` the gradient ``g`` vanishes and the Hessian is ``J^T H J`` with
    ``H = X^T X / n``, ``J = [diag(J_u), diag(J_v)]``; its top eigenvalue is that of
    ``D H D``, ``D^2 = J_u^2 + J_v^2``. For ``u * v``: ``D^2 = u^2 + v^2 =
    2 sqrt(beta^2 + A^2)`` (``u v = beta``, ``|u^2 - v^2| = 2A``); for ``u * u - v * v``:
    ``D^2 = 4 (u^2 + v^2) = 4 sqrt(beta^2 + A^2)`` (``u^2 - v^2 = beta``, ``2|uv| = A``).
    So ``S = k lambda_max(diag(r) H diag(r))``, ``r = (beta^2 + A^2)^(1/4)``, ``k = 2``
    or 4: it depends on the run only through ``beta`` and ``A_infinity``.
    """
    b = as_float_array(beta, "beta", ndim=1)
    if b.shape != (model.d,):
        raise ValueError(f"beta must have shape ({model.d},); got {b.shape}")
    a = np.broadcast_to(as_float_array(scale, "scale", ndim=(0, 1)), b.shape)
    k = 2.0 if model.parametrization == "uv" else 4.0
    r = (b * b + a * a) ** 0.25
    return float(k * np.linalg.eigvalsh(r[:, None] * model.hessian_data * r[None, :])[-1])


def eos_onset(model: DiagonalNetwork, theta0) -> float:
    """``eta_eos = 2 / S(beta_GF)``: the step size at which the gradient-flow solution
    stops being linearly stable for GD.

    A statement about the interpolator, not the path. Below it GD converges near the
    gradient-flow limit, to a point with ``eta S < 2``; the loss need not fall at every
    step on the way: early iterates can be sharper than ``2 / eta`` and a step raises the
    loss only if the curvature along it, ``g^T H g / |g|^2``, passes ``2 / eta`` (descent
    lemma). At ``0.75 eta_eos`` on ``sparse_regression(5, 14, 3, seed=2087,
    amplitude=1.5)`` (``"uv"``, ``init(0.1)``) ``eta S(theta_4) = 2.78`` and the loss rises
    once, at step 5. Above it GD cannot
    converge to that solution (``eta S > 2`` repels) and, when it converges, does so to an
    interpolator at the edge, ``eta S(theta_inf) ~ 2``, with a shrunken, uneven effective
    scale -- the edge-of-stability window below the divergence threshold of
    Even et al. (arXiv 2302.08982).
    """
    beta = gradient_flow_limit(model, theta0)
    return 2.0 / interpolator_sharpness(model, beta, hyperbolic_scale(model, theta0))


def initial_sharpness(model: DiagonalNetwork, theta0) -> float:
    """The sharpness at the initialisation, ``S(theta_0)``.

    For the standard initialisation of small scale ``alpha`` it is close to
    ``|X^T y / n|_inf`` (``u * v``) or ``2 |X^T y / n|_inf`` (``u * u - v * v``): at
    ``beta = 0`` the Hessian is ``J^T H J`` (of size ``O(alpha^2)``) plus the blocks
    ``diag(g)`` (``u * v``) or ``diag(+-2 g)``. The divergence threshold
    (:func:`divergence_threshold`) is close to ``2 / S(theta_0)``.
    """
    return model.sharpness(theta0)


def divergence_threshold(
    model: DiagonalNetwork,
    theta0,
    *,
    eta_max: float,
    steps: int = 2000,
    grid: int = 64,
    bisections: int = 12,
) -> float:
    """The smallest step size at which GD from ``theta0`` diverges, measured.

    A grid of ``grid`` step sizes on ``(0, eta_max]`` brackets the first divergence
    (a coordinate above ``1e8`` within ``steps`` steps), then ``bisections`` bisections
    refine it. Raises ``ValueError`` if no step size up to ``eta_max`` diverges.

    Notes
    -----
    Divergence happens within a few dozen steps when it happens (the multiplicative
    factors ``|1 -+ x|`` both exceed 1 once ``|x| > 2``), so ``steps`` only needs to
    cover that transient. Divergence need not be monotone in ``eta`` near the threshold
    (isolated diverging step sizes inside the oscillating window occur); the result is the
    first one the grid meets. The threshold is close to ``2 / S(theta_0)``
    (:func:`initial_sharpness`).
    """
    eta_max = positive_float(eta_max, "eta_max")
    grid = positive_int(grid, "grid", minimum=2)
    bisections = positive_int(bisections, "bisections", minimum=0)
    steps = positive_int(steps, "steps")
    etas = np.linspace(eta_max / grid, eta_max, grid)

    def diverges(e):
        run = dln_gd(model, theta0, steps, eta=e)
        return np.array([s == "diverged" for s in run.status])

    div = diverges(etas)
    if not div.any():
        raise ValueError(f"no step size up to eta_max={eta_max} diverges within {steps} steps")
    k = int(np.argmax(div))
    lo = 0.0 if k == 0 else etas[k - 1]
    hi = etas[k]
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        if diverges(np.array([mid]))[0]:
            hi = mid
        else:
            lo = mid
    return hi
