"""Self-stabilization: the reduced ``(x, y)`` map, its four phases, and the constrained trajectory.

Expand the loss to third order around a point ``w*`` with ``S(w*) = 2/eta``, top Hessian
eigenvector ``u`` and ``grad S = D^3 L[u, u]``. With ``x = u . (w - w*)`` (displacement
along the unstable direction), ``y = grad S . (w - w*)`` (sharpness above ``2/eta``),
``alpha = -grad L . grad S`` (progressive sharpening) and ``beta = |grad S|^2``
(self-stabilization), GD reduces to

    x+ = -(1 + eta y) x,        y+ = y + eta (alpha - beta x^2 / 2).

This module holds that map (:class:`ReducedMap`) with its continuum limit and conserved
quantity, the detection of its four phases (:func:`detect_phases`), the constants
``alpha, beta, grad S`` of any model at any point (:func:`stabilization_constants`), and
the constrained trajectory: projected GD onto
``M = {S(w) <= 2/eta, grad L(w) . u(w) = 0}`` (:func:`project_to_stable_set`,
:func:`constrained_trajectory`).

References
----------
Damian, Nichani, Lee, "Self-stabilization: the implicit bias of gradient descent at the edge
of stability", arXiv 2209.15594, sections 3-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numba
import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import lambertw

from ._checks import as_float_array, positive_float, positive_int
from ._random import normal
from .flows import _Evaluator
from .models.base import Model

# ---------------------------------------------------------------------------------------
# the reduced map
# ---------------------------------------------------------------------------------------


@numba.njit(nogil=True, error_model="numpy")
def _reduced_run(x0, y0, eta, alpha, beta, steps, xs, ys):
    """Iterate the reduced map ``steps`` times for a batch; ``xs, ys`` of shape (steps+1, B)."""
    nb = x0.shape[0]
    for b in range(nb):
        xs[0, b] = x0[b]
        ys[0, b] = y0[b]
    for t in range(steps):
        for b in range(nb):
            x = xs[t, b]
            y = ys[t, b]
            xs[t + 1, b] = -(1.0 + eta * y) * x
            ys[t + 1, b] = y + eta * (alpha - 0.5 * beta * x * x)


@numba.njit(nogil=True, error_model="numpy", parallel=True)
def _stochastic_run(x0, y0, eta, alpha, beta, damping, noise, steps, burn, seed, keep, xs,
                    ys, y_mean, x2_mean, died):
    """The reduced map with gradient noise along ``u``, run by run (parallel over runs).

    Run ``b`` draws its noise at step ``t`` from ``normal(seed, b, t, 0)``, so the result
    does not depend on the threads. Averages of ``y`` and ``x^2`` over ``burn <= t <= steps``
    go to ``y_mean`` and ``x2_mean``; ``died[b]`` is the first step whose iterate is not
    finite (-1 if none). With ``keep`` the iterates are written to ``xs, ys``.
    """
    nb = x0.shape[0]
    for b in numba.prange(nb):
        x = x0[b]
        y = y0[b]
        sy = 0.0
        sx2 = 0.0
        died[b] = -1
        if keep:
            xs[0, b] = x
            ys[0, b] = y
        for t in range(steps + 1):
            if t >= burn:
                sy += y
                sx2 += x * x
            if t == steps:
                break
            xi = noise * normal(seed, b, t, 0)
            x_new = -(1.0 + eta * y) * x - eta * xi
            y = y + eta * (alpha - damping * y - 0.5 * beta * x * x)
            x = x_new
            if not (np.isfinite(x) and np.isfinite(y)):
                died[b] = t + 1
                break
            if keep:
                xs[t + 1, b] = x
                ys[t + 1, b] = y
        count = steps + 1 - burn
        y_mean[b] = sy / count
        x2_mean[b] = sx2 / count


def stochastic_sharpness_gap(eta: float, alpha: float, beta: float, sigma_u2: float) -> float:
    """Predicted equilibrium gap of the sharpness below ``2 / eta`` under gradient noise.

    Parameters
    ----------
    eta
        Step size, > 0.
    alpha
        Progressive-sharpening rate, > 0.
    beta
        Self-stabilization strength ``|grad S|^2``, > 0.
    sigma_u2
        Variance of the gradient noise projected on the top eigenvector ``u``, >= 0.

    Returns
    -------
    float
        ``Delta S = eta beta sigma_u2 / (4 alpha)``: the time-averaged sharpness settles at
        ``2 / eta - Delta S``.

    Notes
    -----
    SGD's gradient is ``grad L + xi`` with ``E xi = 0``; its component along ``u`` enters
    the reduced map through the step, ``x+ = -(1 + eta y) x - eta xi_u`` (variance
    ``eta^2 sigma_u2``), while ``y+ = y + eta (alpha - beta x^2 / 2)`` is unchanged. In a
    stationary state ``E[y+ - y] = 0`` gives ``E x^2 = 2 alpha / beta``, as without noise.
    Taking ``y`` as slow against ``x``,
    ``E x^2 = (1 + eta y)^2 E x^2 + eta^2 sigma_u2``; to first order in ``eta y``,
    ``-2 eta y E x^2 = eta^2 sigma_u2``, so ``-y = eta beta sigma_u2 / (4 alpha)``. Additive
    noise of variance ``s^2`` directly on ``x`` would give ``beta s^2 / (4 alpha eta)``
    instead. Neglected: the ``eta^2 E y^2`` term and the correlation of ``y`` with ``x^2``,
    which grow with the noise (see :func:`stochastic_equilibrium`).

    References
    ----------
    Liao, Kolomvaki, Kyrillidis, arXiv 2604.21016; Damian, Nichani, Lee, arXiv 2209.15594.

    Examples
    --------
    >>> stochastic_sharpness_gap(0.1, 1.0, 2.0, 0.5)
    0.025
    """
    eta = positive_float(eta, "eta")
    alpha = positive_float(alpha, "alpha")
    beta = positive_float(beta, "beta")
    sigma_u2 = positive_float(sigma_u2, "sigma_u2", allow_zero=True)
    return eta * beta * sigma_u2 / (4.0 * alpha)


@dataclass(frozen=True)
class StochasticEquilibrium:
    """Time averages of the stochastic reduced map (see :func:`stochastic_equilibrium`).

    Attributes
    ----------
    gap
        Measured gap ``-mean y`` (sharpness below ``2/eta``), averaged over the runs.
    gap_stderr
        Its standard error over the runs.
    predicted
        :func:`stochastic_sharpness_gap`.
    x2
        Time- and run-averaged ``x^2`` (``2 alpha / beta`` in a stationary state).
    diverged
        Number of runs that left the finite numbers (excluded from the averages).
    runs
        Number of runs.
    """

    gap: float
    gap_stderr: float
    predicted: float
    x2: float
    diverged: int
    runs: int

    @property
    def relative_error(self) -> float:
        """``|gap - predicted| / predicted``."""
        return abs(self.gap - self.predicted) / self.predicted


def stochastic_equilibrium(
    rmap: ReducedMap,
    sigma_u2: float,
    *,
    steps: int,
    burn_in: int,
    damping: float = 0.0,
    runs: int = 16,
    seed: int = 0,
) -> StochasticEquilibrium:
    """Measure the equilibrium sharpness gap of the reduced map under gradient noise.

    Parameters
    ----------
    rmap
        The reduced map ``(eta, alpha, beta)``.
    sigma_u2
        Variance of the gradient noise along ``u``, > 0.
    steps
        Steps per run.
    burn_in
        Steps discarded before the time average, ``< steps``.
    damping
        ``h >= 0``: the second update gains ``- eta h y`` (0 is the map of Damian et al.).
    runs
        Independent runs (noise seeds ``(seed, run)``), each started at the centre
        ``(x, y) = (sqrt(2 alpha / beta), 0)``.
    seed
        Seed of the counter-based noise: the result is the same bit for bit whatever the
        number of threads.

    Returns
    -------
    StochasticEquilibrium

    Notes
    -----
    Iterates ``x+ = -(1 + eta y) x - eta sigma_u xi_t``, ``y+ = y + eta (alpha - beta x^2/2)``
    with ``xi_t`` standard normal, and compares ``-mean y`` with
    :func:`stochastic_sharpness_gap`.
    """
    if not isinstance(rmap, ReducedMap):
        raise ValueError(f"rmap must be a ReducedMap; got {type(rmap).__name__}")
    sigma_u2 = positive_float(sigma_u2, "sigma_u2")
    damping = positive_float(damping, "damping", allow_zero=True)
    steps = positive_int(steps, "steps")
    burn_in = positive_int(burn_in, "burn_in", minimum=0)
    if burn_in >= steps:
        raise ValueError(f"burn_in must be < steps ({steps}); got {burn_in}")
    runs = positive_int(runs, "runs")
    seed = positive_int(seed, "seed", minimum=0)
    x0 = np.full(runs, np.sqrt(rmap.sigma2))
    y_mean, x2_mean = np.empty(runs), np.empty(runs)
    died = np.empty(runs, dtype=np.int64)
    empty = np.empty((0, 0))
    _stochastic_run(x0, np.zeros(runs), rmap.eta, rmap.alpha, rmap.beta, damping, np.sqrt(sigma_u2),
                    steps, burn_in, seed, False, empty, empty, y_mean, x2_mean, died)
    ok = died < 0
    gaps = -y_mean[ok]
    n = int(ok.sum())
    gap = float(gaps.mean()) if n else float("nan")
    err = float(gaps.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return StochasticEquilibrium(
        gap=gap,
        gap_stderr=err,
        predicted=stochastic_sharpness_gap(rmap.eta, rmap.alpha, rmap.beta, sigma_u2),
        x2=float(x2_mean[ok].mean()) if n else float("nan"),
        diverged=runs - n,
        runs=runs,
    )


def stochastic_gd(model: Model, theta0, steps: int, *, eta: float, sigma_u2: float, u,
                  seed: int = 0, run: int = 0) -> np.ndarray:
    """GD with Gaussian gradient noise along a fixed direction ``u``: the noisy cubic model.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model` (e.g. :meth:`CubicModel.at_edge`).
    theta0
        Start, shape ``(dim,)``.
    steps
        Number of steps.
    eta
        Step size, > 0.
    sigma_u2
        Noise variance along ``u``, >= 0.
    u
        The noise direction (normalised here), shape ``(dim,)``: the top eigenvector at the
        reference point.
    seed, run
        Keys of the counter-based draws: step ``t`` uses the same standard normal as step
        ``t`` of run ``run`` of :meth:`ReducedMap.run_stochastic` with this seed.

    Returns
    -------
    numpy.ndarray
        The iterates, shape ``(steps + 1, dim)``.

    Notes
    -----
    ``w+ = w - eta (grad L(w) + sigma_u xi_t u)`` with ``xi_t`` standard normal. On
    :meth:`CubicModel.at_edge` (``h = 0``) it is, in the frame's coordinates
    ``(x, Y = sqrt(beta) y)``, exactly the stochastic reduced map
    ``x+ = -(1 + eta Y) x - eta sigma_u xi``, ``Y+ = Y + eta (alpha - beta x^2 / 2)``.
    """
    _check_model(model)
    w = model.check_theta(theta0, "theta0").astype(float)
    steps = positive_int(steps, "steps", minimum=0)
    eta = positive_float(eta, "eta")
    noise = np.sqrt(positive_float(sigma_u2, "sigma_u2", allow_zero=True))
    direction = as_float_array(u, "u", ndim=1)
    if direction.shape != (model.dim,) or not np.linalg.norm(direction) > 0:
        raise ValueError(f"u must be a nonzero vector of shape ({model.dim},)")
    direction = direction / np.linalg.norm(direction)
    seed = positive_int(seed, "seed", minimum=0)
    run = positive_int(run, "run", minimum=0)
    out = np.empty((steps + 1, model.dim))
    out[0] = w
    for t in range(steps):
        w = w - eta * (model.grad(w) + noise * normal(seed, run, t, 0) * direction)
        out[t + 1] = w
    return out


@dataclass(frozen=True)
class OrbitExtent:
    """Extent of the continuum orbit through a point (see :meth:`ReducedMap.orbit_extent`).

    Attributes
    ----------
    y_max
        Largest ``|y|`` on the orbit: the predicted sharpness band is ``2/eta +- y_max``.
    x2_min, x2_max
        Smallest and largest ``x^2`` on the orbit.
    """

    y_max: float
    x2_min: float
    x2_max: float


@dataclass(frozen=True)
class ReducedMap:
    """The reduced map of self-stabilization with parameters ``(eta, alpha, beta)``.

    Parameters
    ----------
    eta
        Step size, > 0.
    alpha
        Progressive-sharpening rate, > 0.
    beta
        Self-stabilization strength ``|grad S|^2``, > 0.

    Notes
    -----
    ``x+ = -(1 + eta y) x``, ``y+ = y + eta (alpha - beta x^2 / 2)``.

    *Exactness.* GD on ``L(x, y) = x^2/eta + (sqrt(beta)/2) x^2 y - (alpha/sqrt(beta)) y``
    is this map in ``(x, Y = sqrt(beta) y)``
    (:meth:`minimal_eos.models.CubicModel.at_edge` builds it).

    *One essential parameter.* With ``X* = 2 alpha / beta``, ``x~ = x / sqrt(X*)`` and
    ``y~ = eta y``: ``x~+ = -(1 + y~) x~``, ``y~+ = y~ + a (1 - x~^2)`` with ``a = eta^2 alpha``.

    *Telescoping identity.* Summing ``y+ - y`` over ``T`` steps,
    ``mean_t x_t^2 = 2 alpha / beta - 2 (y_T - y_0) / (eta beta T)``: the time average of
    ``x^2`` is ``sigma^2 = 2 alpha / beta`` up to a boundary term.

    *Continuum limit.* For small ``eta y`` and ``eta alpha``, ``|x|`` and ``y`` follow
    ``d|x|/dt = eta y |x|``, ``dy/dt = eta (alpha - beta x^2 / 2)`` (time in steps), a
    Lotka-Volterra system with the conserved quantity
    ``E(x, y) = y^2 + beta x^2 / 2 - alpha log x^2``, minimal at the centre
    ``(x^2, y) = (2 alpha / beta, 0)``. Its orbits are closed, which is the four-phase cycle.

    References
    ----------
    Damian, Nichani, Lee, arXiv 2209.15594, section 4.

    Examples
    --------
    >>> rm = ReducedMap(eta=0.01, alpha=1.0, beta=2.0)
    >>> x, y = rm.run(1e-3, -1.0, 3)
    >>> float(y[1])   # y + eta (alpha - beta x^2 / 2)
    -0.99000001
    """

    eta: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", positive_float(self.eta, "eta"))
        object.__setattr__(self, "alpha", positive_float(self.alpha, "alpha"))
        object.__setattr__(self, "beta", positive_float(self.beta, "beta"))

    @property
    def sigma2(self) -> float:
        """The oscillation scale ``2 alpha / beta`` (the centre's ``x^2``)."""
        return 2.0 * self.alpha / self.beta

    @property
    def scaled_parameter(self) -> float:
        """``a = eta^2 alpha``, the map's only essential parameter."""
        return self.eta**2 * self.alpha

    def step(self, x, y):
        """One step of the map (floats or arrays)."""
        return -(1.0 + self.eta * y) * x, y + self.eta * (self.alpha - 0.5 * self.beta * x * x)

    def run(self, x0, y0, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Iterate from ``(x0, y0)`` (numbers, or arrays of shape ``(B,)``).

        Returns
        -------
        x, y
            Shape ``(steps + 1,)`` for scalar starts, ``(steps + 1, B)`` for arrays.
        """
        steps = positive_int(steps, "steps", minimum=0)
        x0a = np.atleast_1d(as_float_array(x0, "x0", ndim=(0, 1)))
        y0a = np.atleast_1d(as_float_array(y0, "y0", ndim=(0, 1)))
        x0a, y0a = np.broadcast_arrays(x0a, y0a)
        xs = np.empty((steps + 1, x0a.size))
        ys = np.empty((steps + 1, x0a.size))
        _reduced_run(np.ascontiguousarray(x0a, dtype=float), np.ascontiguousarray(y0a, dtype=float),
                     self.eta, self.alpha, self.beta, steps, xs, ys)
        if np.ndim(x0) == 0 and np.ndim(y0) == 0:
            return xs[:, 0], ys[:, 0]
        return xs, ys

    def run_stochastic(self, x0, y0, steps: int, sigma_u2: float, *, damping: float = 0.0,
                       seed: int = 0, runs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Iterate the map with gradient noise along ``u``, ``runs`` times from ``(x0, y0)``.

        ``x+ = -(1 + eta y) x - eta sigma_u xi``, ``y+ = y + eta (alpha - beta x^2 / 2)``,
        with ``xi`` standard normal drawn from a counter-based generator keyed by
        ``(seed, run, step)`` (see :func:`stochastic_sharpness_gap` for why the noise enters
        through the step). With ``damping = h > 0`` the second update gains ``- eta h y``
        (:meth:`CubicModel.at_edge` with damping). A run that leaves the finite numbers
        stops; its later entries are NaN.

        Returns
        -------
        x, y
            Shape ``(steps + 1, runs)``.
        """
        steps = positive_int(steps, "steps", minimum=0)
        sigma_u2 = positive_float(sigma_u2, "sigma_u2", allow_zero=True)
        damping = positive_float(damping, "damping", allow_zero=True)
        seed = positive_int(seed, "seed", minimum=0)
        runs = positive_int(runs, "runs")
        x0a = np.broadcast_to(as_float_array(x0, "x0", ndim=0), (runs,)).copy()
        y0a = np.broadcast_to(as_float_array(y0, "y0", ndim=0), (runs,)).copy()
        xs = np.full((steps + 1, runs), np.nan)
        ys = np.full((steps + 1, runs), np.nan)
        scratch = np.empty(runs)
        _stochastic_run(x0a, y0a, self.eta, self.alpha, self.beta, damping, np.sqrt(sigma_u2),
                        steps, 0, seed, True, xs, ys, scratch, scratch.copy(),
                        np.empty(runs, dtype=np.int64))
        return xs, ys

    def conserved(self, x, y):
        """``E(x, y) = y^2 + beta x^2 / 2 - alpha log x^2``, conserved by the continuum limit."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        return y * y + 0.5 * self.beta * x * x - self.alpha * np.log(x * x)

    def continuum_rhs(self, t: float, state) -> np.ndarray:
        """The continuum in ``(l = log x^2, y)``: ``(2 eta y, eta (alpha - beta e^l / 2))``."""
        ell, y = state
        dy = self.eta * (self.alpha - 0.5 * self.beta * np.exp(ell))
        return np.array([2.0 * self.eta * y, dy])

    def continuum(self, x0: float, y0: float, t, *, rtol: float = 1e-11, atol: float = 1e-12):
        """Solve the continuum limit from ``(|x0|, y0)``; return ``(|x(t)|, y(t))`` at times ``t``.

        Integrated in ``(log x^2, y)`` with DOP853 to the given tolerances.
        """
        x0 = float(x0)
        if x0 == 0.0 or not np.isfinite(x0):
            raise ValueError(f"x0 must be finite and nonzero (log x^2 is a coordinate); got {x0}")
        t = as_float_array(t, "t", ndim=1)
        if t.size == 0 or np.any(np.diff(t) < 0) or t[0] < 0:
            raise ValueError("t must be a non-empty increasing array of times >= 0")
        sol = solve_ivp(self.continuum_rhs, (0.0, float(t[-1])), [np.log(x0 * x0), float(y0)],
                        method="DOP853", t_eval=t, rtol=rtol, atol=atol)
        if not sol.success:
            raise ValueError(f"the continuum limit could not be integrated: {sol.message}")
        return np.exp(0.5 * sol.y[0]), sol.y[1]

    def orbit_extent(self, x0: float, y0: float) -> OrbitExtent:
        """Extent of the continuum orbit through ``(x0, y0)``, in closed form.

        Notes
        -----
        On the orbit ``E = E(x0, y0)``. At ``x^2 = 2 alpha/beta`` the ``|y|`` is largest:
        ``y_max^2 = E - E_min``, ``E_min = alpha (1 - log(2 alpha / beta))``. At ``y = 0``,
        ``x^2 = (2 alpha / beta) z`` with ``z - log z = E / alpha + log(2 alpha / beta)``, whose
        two roots are ``z = -W_k(-exp(-c))`` for the Lambert-W branches ``k = 0, -1``.
        """
        e = float(self.conserved(x0, y0))
        xs = self.sigma2
        e_min = self.alpha * (1.0 - np.log(xs))
        c = e / self.alpha + np.log(xs)
        arg = -np.exp(-c)
        z_lo = -lambertw(arg, 0).real
        z_hi = -lambertw(arg, -1).real
        return OrbitExtent(float(np.sqrt(max(e - e_min, 0.0))), float(xs * z_lo), float(xs * z_hi))


# ---------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------


class Phase(IntEnum):
    """The four phases of self-stabilization (Damian, Nichani, Lee, section 4.1)."""

    SHARPENING = 1  # y <= 0, x^2 < 2 alpha / beta: y grows, |x| does not
    BLOWUP = 2  # y > 0, x^2 < 2 alpha / beta: |x| grows, y grows
    STABILIZATION = 3  # y > 0, x^2 >= 2 alpha / beta: |x| grows, y falls
    RETURN = 4  # y <= 0, x^2 >= 2 alpha / beta: |x| shrinks, y falls


@dataclass(frozen=True)
class Phases:
    """Phase of every step of a run and where each phase begins.

    Attributes
    ----------
    labels
        :class:`Phase` value (1-4) of every step, shape ``(T,)``.
    starts
        Steps at which a new phase begins (the first step included), shape ``(K,)``.
    sequence
        The phase that begins at each of ``starts``, shape ``(K,)``.
    """

    labels: np.ndarray
    starts: np.ndarray
    sequence: np.ndarray

    @property
    def in_order(self) -> bool:
        """Whether every change of phase goes to the next one in the cycle 1, 2, 3, 4, 1, ..."""
        return bool(np.all(self.sequence[1:] == self.sequence[:-1] % 4 + 1))

    @property
    def cycles(self) -> int:
        """Number of completed returns to phase 1 (sharpening)."""
        return int(np.sum((self.sequence[1:] == Phase.SHARPENING) & (self.sequence[:-1] != 1)))

    def first_start(self, phase: int) -> int:
        """The first step at which ``phase`` begins, or -1."""
        hit = np.flatnonzero(self.sequence == phase)
        return int(self.starts[hit[0]]) if hit.size else -1


def detect_phases(x, y, alpha, beta) -> Phases:
    """Label each step of a run ``(x_t, y_t)`` with its phase of self-stabilization.

    Parameters
    ----------
    x, y
        The reduced coordinates along a run, shape ``(T,)``.
    alpha, beta
        The constants (> 0), numbers or arrays of shape ``(T,)`` (constants taken along a
        moving reference, such as the central flow); the threshold between small and
        large oscillation is ``x^2 = 2 alpha / beta``.

    Returns
    -------
    Phases

    Notes
    -----
    The phases are the quadrants of ``(y, x^2 - 2 alpha / beta)``: 1 sharpening
    (``y <= 0``, small ``x``), 2 blow-up (``y > 0``, small ``x``), 3 self-stabilization
    (``y > 0``, large ``x``), 4 return to stability (``y <= 0``, large ``x``). For the reduced
    map they can only be visited in this cyclic order while ``eta y >= -2``: ``y`` rises in
    1-2 and falls in 3-4, ``|x|`` grows iff ``y > 0``.
    """
    x = as_float_array(x, "x", ndim=1)
    y = as_float_array(y, "y", ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
    alpha = as_float_array(alpha, "alpha", ndim=(0, 1))
    beta = as_float_array(beta, "beta", ndim=(0, 1))
    for name, arr in (("alpha", alpha), ("beta", beta)):
        if np.any(arr <= 0):
            raise ValueError(f"{name} must be > 0 (a number or one value per step)")
        if arr.ndim == 1 and arr.shape != x.shape:
            raise ValueError(f"{name} must be a number or have shape {x.shape}; got {arr.shape}")
    large = x * x >= 2.0 * alpha / beta
    up = y > 0
    labels = np.where(up, np.where(large, 3, 2), np.where(large, 4, 1)).astype(np.int64)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change]) if labels.size else np.zeros(0, dtype=np.int64)
    return Phases(labels, starts.astype(np.int64), labels[starts])


# ---------------------------------------------------------------------------------------
# constants of any model
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StabilizationConstants:
    """The self-stabilization constants of a model at a point.

    Attributes
    ----------
    sharpness
        ``S(w)``.
    u
        Top Hessian eigenvector (unit; sign as in :meth:`Model.top_eigenpair`).
    grad_sharpness
        ``grad S(w) = D^3 L(w)[u, u]``.
    grad_loss
        ``grad L(w)``.
    alpha
        ``-grad L . grad S`` (progressive sharpening when > 0).
    beta
        ``|grad S|^2``.
    """

    sharpness: float
    u: np.ndarray
    grad_sharpness: np.ndarray
    grad_loss: np.ndarray
    alpha: float
    beta: float

    @property
    def sigma2(self) -> float:
        """Predicted oscillation scale ``x^2 ~ 2 alpha / beta`` (0 when ``alpha <= 0``)."""
        return max(2.0 * self.alpha / self.beta, 0.0) if self.beta > 0 else 0.0

    def steps_to_edge(self, eta: float) -> float:
        """Predicted steps until ``S`` reaches ``2/eta``: ``(2/eta - S) / (eta alpha)``.

        Sharpening phase: ``y+ = y + eta alpha`` with ``y = S - 2/eta``. Infinite when
        ``alpha <= 0``; 0 when already at or above the edge.
        """
        eta = positive_float(eta, "eta")
        gap = 2.0 / eta - self.sharpness
        if gap <= 0:
            return 0.0
        return gap / (eta * self.alpha) if self.alpha > 0 else float("inf")


def stabilization_constants(model: Model, theta) -> StabilizationConstants:
    """``S``, ``u``, ``grad S = D^3 L[u, u]``, ``alpha = -grad L . grad S``, ``beta = |grad S|^2``.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model`.
    theta
        The point, shape ``(dim,)``.

    Notes
    -----
    ``grad S = D^3 L[u, u]`` holds for a simple top eigenvalue (first-order perturbation
    theory). Damian, Nichani, Lee, arXiv 2209.15594, section 3.
    """
    _check_model(model)
    theta = model.check_theta(theta)
    lam, u = model.top_eigenpair(theta)
    gs = model.third_directional(theta, u)
    gl = model.grad(theta)
    return StabilizationConstants(lam, u, gs, gl, float(-gl @ gs), float(gs @ gs))


def reduced_coordinates(model: Model, thetas, reference) -> tuple[np.ndarray, np.ndarray]:
    """``x_t = u . (w_t - w_ref)`` and ``y_t = grad S . (w_t - w_ref)`` along a run.

    Parameters
    ----------
    thetas
        The iterates, shape ``(T, dim)``.
    reference
        One reference point (shape ``(dim,)``: ``u`` and ``grad S`` taken there), or one per
        iterate (shape ``(T, dim)``, e.g. the constrained trajectory).
    """
    _check_model(model)
    th = as_float_array(thetas, "thetas", ndim=2)
    if th.shape[1] != model.dim:
        raise ValueError(f"thetas must have shape (T, {model.dim}); got {th.shape}")
    ref = as_float_array(reference, "reference", ndim=(1, 2))
    if ref.ndim == 1:
        c = stabilization_constants(model, ref)
        delta = th - ref
        return delta @ c.u, delta @ c.grad_sharpness
    if ref.shape != th.shape:
        raise ValueError(f"reference must have shape ({model.dim},) or {th.shape}; got {ref.shape}")
    x = np.empty(len(th))
    y = np.empty(len(th))
    for i, (w, r) in enumerate(zip(th, ref, strict=True)):
        c = stabilization_constants(model, r)
        x[i] = (w - r) @ c.u
        y[i] = (w - r) @ c.grad_sharpness
    return x, y


def edge_onset(sharpness, eta: float) -> int:
    """First index at which a recorded sharpness reaches ``2/eta`` (-1 if never)."""
    eta = positive_float(eta, "eta")
    s = np.ma.filled(np.ma.asarray(sharpness, dtype=float), -np.inf)
    if s.ndim != 1:
        raise ValueError(f"sharpness must be one run's records, shape (R,); got {s.shape}")
    hit = np.flatnonzero(s >= 2.0 / eta)
    return int(hit[0]) if hit.size else -1


# ---------------------------------------------------------------------------------------
# the constrained trajectory
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Result of :func:`project_to_stable_set`.

    Attributes
    ----------
    theta
        The projected point.
    iterations
        Linearised steps taken.
    residual
        ``max(|grad L . u| / (|grad L| + S), max(S - 2/eta, 0) / (2/eta))`` at ``theta``.
    converged
        Whether the step and the residual fell below the tolerance.
    sharpness_active
        Whether the constraint ``S <= 2/eta`` was active.
    gap
        Relative gap ``(lambda_1 - lambda_2) / |lambda_1|`` of the top Hessian eigenvalues at
        ``theta`` (``inf`` in one dimension). ``M`` is smooth only where it is positive; a run
        that does not converge usually ends near a crossing, where it is small.
    """

    theta: np.ndarray
    iterations: int
    residual: float
    converged: bool
    sharpness_active: bool
    gap: float


def _constraints(ev: _Evaluator, theta: np.ndarray, eta: float, ref: np.ndarray | None = None):
    """``c1 = grad L . u``, ``c2 = S - 2/eta``, their gradients, a scale, ``u`` and the gap.

    ``grad c1 = lambda_1 u + D^3 L[u, v]`` with ``v = (lambda_1 I - H)^+ grad L`` (the
    derivative of the eigenvector, ``du = (lambda_1 I - H)^+ dH u``); ``grad c2 = D^3 L[u, u]``.
    The bilinear ``D^3 L[u, v]`` comes from the quadratic form by polarisation. The sign of
    ``u`` (hence of ``c1``) is chosen with ``u . ref >= 0``, so that it is continuous along a
    sequence of nearby points.
    """
    ev.at(theta)
    vals, vecs = np.linalg.eigh(ev.hessian())
    lam, u = vals[-1], vecs[:, -1]
    if ref is not None and u @ ref < 0:
        u = -u
    gl = ev.grad()
    gap = lam - vals[:-1]
    ok = gap > 1e-12 * max(abs(lam), 1.0)
    coef = np.where(ok, (vecs[:, :-1].T @ gl) / np.where(ok, gap, 1.0), 0.0)
    v = vecs[:, :-1] @ coef
    c1 = float(gl @ u)
    j1 = lam * u + ev.third_bilinear(u, v)
    c2 = float(lam - 2.0 / eta)
    j2 = ev.third(u)
    scale = float(np.linalg.norm(gl) + abs(lam))
    rel_gap = float(gap[-1] / max(abs(lam), 1e-300)) if gap.size else float("inf")
    return c1, j1, c2, j2, scale, u, rel_gap


def project_to_stable_set(
    model: Model, point, eta: float, *, tol: float = 1e-10, max_iter: int = 100
) -> Projection:
    """Euclidean projection of ``point`` onto ``M = {S <= 2/eta, grad L . u = 0}``.

    Parameters
    ----------
    model
        Any model whose top Hessian eigenvalue is simple near ``point``.
    point
        The point to project, shape ``(dim,)``.
    eta
        Step size (> 0).
    tol
        Stop when the step is below ``tol (1 + |theta|)`` and the constraints hold to ``tol``
        (relative: ``|c1| <= tol (|grad L| + S)``, ``S - 2/eta <= tol 2/eta``).
    max_iter
        Largest number of SQP steps; if they do not suffice the result says
        ``converged=False`` (it never raises).

    Returns
    -------
    Projection

    Notes
    -----
    Minimise ``|w - p|^2 / 2`` subject to ``c1(w) = grad L(w) . u(w) = 0`` and
    ``c2(w) = S(w) - 2/eta <= 0`` by sequential quadratic programming. With the active
    constraints' Jacobian ``J`` at the iterate ``w_k`` and ``B_k`` an approximation of the
    Lagrangian's Hessian ``I + sum_i mu_i grad^2 c_i``, the step ``d`` and multipliers
    ``mu`` solve ``B_k d + J^T mu = p - w_k``, ``J d = -c(w_k)``. ``c2`` is active when its
    linearisation would be violated without it and its multiplier is ``mu_2 >= 0``.
    ``B_0 = I`` (the first step projects ``p`` onto the linearised set); ``B_k`` is updated
    by damped BFGS (Powell) with ``s = d``,
    ``y = s + (J(w_{k+1}) - J(w_k))^T mu``, which brings in the curvature of ``M``: without
    it the linearised steps converge only linearly, or cycle, where ``|mu| grad^2 c`` is
    of order one (a two-layer network far from ``M``). Steps are halved until the merit
    ``|w - p|^2 / 2 + rho (|c1| + max(c2, 0))`` decreases, ``rho = 2 max |mu|``.
    A point of ``M`` with ``S < 2/eta`` is its own projection: then ``c1 = 0`` and the first
    step is zero.
    Damian, Nichani, Lee, arXiv 2209.15594, section 5 (projected GD onto the stable set);
    Nocedal and Wright, *Numerical Optimization*, sections 18.3 and 18.4 (damped BFGS, merit).
    """
    _check_model(model)
    p = model.check_theta(point, "point")
    eta = positive_float(eta, "eta")
    tol = positive_float(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    edge = 2.0 / eta
    ev = _Evaluator(model)
    w = p.copy()
    b = np.eye(model.dim)
    rho = 0.0
    active2 = False
    iterations = 0
    converged = False
    c1, j1, c2, j2, scale, u, gap = _constraints(ev, w, eta)
    residual = max(abs(c1) / scale, max(c2, 0.0) / edge)
    while iterations < max_iter and not converged:
        iterations += 1
        d, mu = _sqp_step(b, p - w, np.array([j1]), np.array([c1]))
        active2 = False
        if c2 + j2 @ d > 0:
            d2, mu2 = _sqp_step(b, p - w, np.stack([j1, j2]), np.array([c1, c2]))
            if mu2[1] >= 0:
                d, mu, active2 = d2, mu2, True
        rho = max(rho, 2.0 * float(np.max(np.abs(mu))))
        merit = 0.5 * (w - p) @ (w - p) + rho * (abs(c1) + max(c2, 0.0))
        t = 1.0
        while True:
            w_new = w + t * d
            n1, k1, n2, k2, n_scale, n_u, n_gap = _constraints(ev, w_new, eta, u)
            new_merit = 0.5 * (w_new - p) @ (w_new - p) + rho * (abs(n1) + max(n2, 0.0))
            if new_merit <= merit or t < 1e-3:
                break
            t *= 0.5
        s = w_new - w
        y = s + (k1 - j1) * mu[0]
        if active2:
            y += (k2 - j2) * mu[1]
        _damped_bfgs(b, s, y)
        w = w_new
        c1, j1, c2, j2, scale, u, gap = n1, k1, n2, k2, n_scale, n_u, n_gap
        residual = max(abs(c1) / scale, max(c2, 0.0) / edge)
        converged = np.linalg.norm(s) <= tol * (1.0 + np.linalg.norm(w)) and residual <= tol
    return Projection(w, iterations, float(residual), bool(converged), active2, gap)


def _sqp_step(b: np.ndarray, g: np.ndarray, jac: np.ndarray, c: np.ndarray):
    """Solve ``B d + J^T mu = g``, ``J d = -c``: the step and multipliers of one SQP step."""
    k = len(c)
    kkt = np.zeros((len(g) + k, len(g) + k))
    kkt[: len(g), : len(g)] = b
    kkt[: len(g), len(g):] = jac.T
    kkt[len(g):, : len(g)] = jac
    sol = np.linalg.lstsq(kkt, np.concatenate([g, -c]), rcond=None)[0]
    return sol[: len(g)], sol[len(g):]


def _damped_bfgs(b: np.ndarray, s: np.ndarray, y: np.ndarray) -> None:
    """Powell's damped BFGS update of ``B`` in place: ``y`` is moved towards ``B s`` until
    ``s . y >= 0.2 s . B s``, which keeps ``B`` positive definite."""
    bs = b @ s
    sbs = float(s @ bs)
    if sbs <= 0.0:
        return
    sy = float(s @ y)
    if sy < 0.2 * sbs:
        theta = 0.8 * sbs / (sbs - sy)
        y = theta * y + (1.0 - theta) * bs
        sy = float(s @ y)
    b += np.outer(y, y) / sy - np.outer(bs, bs) / sbs


@dataclass(frozen=True)
class ConstrainedTrajectory:
    """Projected GD onto the stable set (see :func:`constrained_trajectory`).

    Attributes
    ----------
    theta
        The constrained iterates ``w+_t``, shape ``(steps + 1, dim)``.
    loss, sharpness
        ``L(w+_t)`` and ``S(w+_t)``, shape ``(steps + 1,)``.
    active
        Whether ``S <= 2/eta`` was active in the projection of each step.
    residual
        The projection's constraint residual at each step.
    """

    theta: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    active: np.ndarray
    residual: np.ndarray


def constrained_trajectory(
    model: Model, theta0, steps: int, *, eta: float, tol: float = 1e-10, max_iter: int = 100
) -> ConstrainedTrajectory:
    """Projected GD ``w+_{t+1} = proj_M(w+_t - eta grad L(w+_t))``, ``w+_0 = proj_M(w_0)``.

    Notes
    -----
    ``M = {S(w) <= 2/eta, grad L(w) . u(w) = 0}``. GD at the edge of stability tracks this
    trajectory, and its loss is predicted as ``L(w_t) ~ L(w+_t) + x_t^2 / eta`` with
    ``x_t = u . (w_t - w+_t)``. Damian, Nichani, Lee, arXiv 2209.15594, section 5.
    Raises ValueError if a projection does not converge within ``max_iter`` steps.
    """
    _check_model(model)
    th = model.check_theta(theta0, "theta0")
    steps = positive_int(steps, "steps", minimum=0)
    eta = positive_float(eta, "eta")
    out = np.empty((steps + 1, model.dim))
    active = np.zeros(steps + 1, dtype=bool)
    residual = np.empty(steps + 1)
    point = th
    for t in range(steps + 1):
        proj = project_to_stable_set(model, point, eta, tol=tol, max_iter=max_iter)
        if not proj.converged:
            raise ValueError(
                f"the projection onto the stable set did not converge at step {t} "
                f"(residual {proj.residual:.3g}, relative eigenvalue gap {proj.gap:.3g}); the top "
                "eigenvalue may not be simple there"
            )
        out[t] = proj.theta
        active[t] = proj.sharpness_active
        residual[t] = proj.residual
        point = proj.theta - eta * model.grad(proj.theta)
    loss = np.array([model.loss(w) for w in out])
    sharp = np.array([model.sharpness(w) for w in out])
    return ConstrainedTrajectory(out, loss, sharp, active, residual)


def _check_model(model) -> None:
    if not isinstance(model, Model):
        raise ValueError(f"model must be a minimal_eos Model; got {type(model).__name__}")
