"""Orbits of gradient descent: periodic orbits, orbit diagrams, Lyapunov exponents, phases.

Every function here works on any :class:`~minimal_eos.models.Model` (or, for
:func:`periodic_orbits`, on any :class:`~analysis.maps.DiscreteMap`), through the model's
compiled kernels:

- :func:`periodic_orbits`: Newton's method on ``F^k(x) - x`` with the Jacobian
  ``DF^k = prod (I - eta H)``; the orbits' multipliers and stability; duplicates removed.
- :func:`orbit_diagram`: the attractor over a grid of step sizes, continuing from the
  previous step size's final state (or from independent starts).
- :func:`lyapunov_exponent`: the largest Lyapunov exponent by tangent dynamics with
  renormalisation at every step.
- :func:`phase_diagram`: converged (with the final sharpness), periodic (with the period),
  chaotic, diverged or undetermined, for every (step size, initialisation).
- :func:`feigenbaum_cascade`: superstable parameters of a one-dimensional GD map's
  period-doubling cascade and the ratios of their gaps (Feigenbaum's delta = 4.6692...).

All of them run one compiled loop per model structure (:func:`gd_loop`), whose innermost
loops run over the batch of runs. A run that leaves the bound is reported as diverged at
that step and frozen there; nothing raises mid-run and no NaN is returned silently.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import numba
import numpy as np

from minimal_eos._checks import as_float_array, positive_float, positive_int
from minimal_eos.models.base import Model
from minimal_eos.simulate import Status, classify
from minimal_eos.symbolic import Kernels

from .checks import check_etas, check_model, check_thetas
from .maps import DiscreteMap

FEIGENBAUM_DELTA = 4.669201609102990
# Tangent dynamics use the exact Hessian up to this dimension, and above it Hessian-vector
# products by central differences of the gradient, with step FD_STEP (1 + max|x|) along the
# unit tangent vector (relative error ~1e-10: truncation ~h^2, rounding ~eps/h).
EXACT_TANGENT_DIM = 32
FD_STEP = 1e-5


# -- the compiled loop ---------------------------------------------------------------------
_LOOP_CACHE: dict[int, tuple[Kernels, numba.core.registry.CPUDispatcher]] = {}


def gd_loop(kernels: Kernels):
    """The compiled GD loop around a model's ``kernels`` (cached per kernels object).

    Signature of the returned function::

        loop(th0, etas, p, steps, transient, bound, tangent, continuation, kick, v0, chunk,
             rec, hist, x_out, div_out, lyap_out)

    ``th0`` ``(d, B)`` initial points (with ``continuation`` only column 0 is used, and run
    ``b`` starts from run ``b - 1``'s final point plus ``kick`` times ``v0[:, 0]``, scaled
    by ``1 + max|x|``; after a divergence it restarts from ``th0[:, 0]``); ``etas`` ``(B,)``;
    ``p`` the model's parameter vector; ``steps`` GD steps per run, of which the first
    ``transient`` are not measured; ``bound`` the divergence bound; ``tangent`` whether to
    follow, over the measured steps, the tangent vector started at ``v0[:, b]`` (for the
    Lyapunov exponent; exact Hessian up to ``EXACT_TANGENT_DIM`` coordinates,
    Hessian-vector products by central differences above); ``chunk`` runs
    advanced together in independent mode. Outputs: ``rec`` ``(R, d, B)`` the last ``R``
    states, ``hist`` ``(H, d, B)`` the last ``H`` states, ``x_out`` ``(d, B)`` final states,
    ``div_out`` ``(B,)`` the step at which the run diverged (or -1), ``lyap_out`` ``(B,)``
    the mean log growth of the tangent vector over the measured steps.
    """
    key = id(kernels)
    if key not in _LOOP_CACHE or _LOOP_CACHE[key][0] is not kernels:
        jit = numba.njit(nogil=True, error_model="numpy")
        _LOOP_CACHE[key] = (kernels, jit(_make_loop(kernels)))
    return _LOOP_CACHE[key][1]


def _make_loop(kernels: Kernels):
    grad_k = kernels.grad
    hess_k = kernels.hess
    exact_dim = EXACT_TANGENT_DIM
    fd_step = FD_STEP

    def loop(th0, etas, p, steps, transient, bound, tangent, continuation, kick, v0, chunk,
             rec, hist, x_out, div, lyap):
        d = th0.shape[0]
        nb = etas.shape[0]
        width = 1 if continuation else min(chunk, nb)
        nblocks = nb if continuation else (nb + width - 1) // width
        nrec = rec.shape[0]
        nh = hist.shape[0]
        x = np.empty((d, width))
        v = np.empty((d, width))
        e = np.empty(width)
        g = np.empty((d, width))
        xn = np.empty((d, width))
        vn = np.empty((d, width))
        exact = d <= exact_dim
        hb = np.empty((d, d, width if tangent and exact else 0))
        fd = width if tangent and not exact else 0
        xp = np.empty((d, fd))
        xm = np.empty((d, fd))
        gp = np.empty((d, fd))
        gm = np.empty((d, fd))
        ok = np.empty(width)
        alive = np.empty(width)
        acc = np.empty(width)
        nrm = np.empty(width)
        for i in range(d):
            x[i, 0] = th0[i, 0]
        for c in range(nblocks):
            lo = c * width
            n = min(nb, lo + width) - lo
            # starting points of this block of runs
            if not continuation:
                for i in range(d):
                    for b in range(n):
                        x[i, b] = th0[i, lo + b]
            elif c > 0:
                if div[c - 1] >= 0:
                    for i in range(d):
                        x[i, 0] = th0[i, 0]
                else:
                    scale = 0.0
                    for i in range(d):
                        scale = max(scale, abs(x[i, 0]))
                    for i in range(d):
                        x[i, 0] += kick * (1.0 + scale) * v0[i, 0]
            for b in range(n):
                e[b] = etas[lo + b]
                div[lo + b] = -1
                alive[b] = 1.0
                acc[b] = 0.0
                for i in range(d):
                    v[i, b] = v0[i, lo + b]
            for t in range(steps):
                if tangent and t >= transient:
                    # v <- (I - eta H(x)) v, renormalised; the log of the growth accumulated
                    if exact:
                        hess_k(x, 0, n, p, hb)
                        for i in range(d):
                            for b in range(n):
                                vn[i, b] = v[i, b]
                            for j in range(d):
                                for b in range(n):
                                    vn[i, b] -= e[b] * hb[i, j, b] * v[j, b]
                    else:
                        # H v by central differences of the gradient along the unit v
                        for b in range(n):
                            nrm[b] = 0.0
                        for i in range(d):
                            for b in range(n):
                                nrm[b] = max(nrm[b], abs(x[i, b]))
                        for b in range(n):
                            nrm[b] = fd_step * (1.0 + nrm[b])
                        for i in range(d):
                            for b in range(n):
                                xp[i, b] = x[i, b] + nrm[b] * v[i, b]
                                xm[i, b] = x[i, b] - nrm[b] * v[i, b]
                        grad_k(xp, 0, n, p, gp)
                        grad_k(xm, 0, n, p, gm)
                        for i in range(d):
                            for b in range(n):
                                vn[i, b] = v[i, b] - e[b] * (gp[i, b] - gm[i, b]) / (
                                    2.0 * nrm[b])
                    for b in range(n):
                        nrm[b] = 0.0
                    for i in range(d):
                        for b in range(n):
                            nrm[b] += vn[i, b] * vn[i, b]
                    for b in range(n):
                        nrm[b] = math.sqrt(nrm[b])
                        if alive[b] > 0.0:
                            acc[b] += math.log(nrm[b]) if nrm[b] > 0.0 else -math.inf
                    for i in range(d):
                        for b in range(n):
                            if nrm[b] > 0.0 and alive[b] > 0.0:
                                v[i, b] = vn[i, b] / nrm[b]
                grad_k(x, 0, n, p, g)
                for i in range(d):
                    for b in range(n):
                        xn[i, b] = x[i, b] - e[b] * g[i, b]
                for b in range(n):
                    ok[b] = alive[b]
                for i in range(d):
                    for b in range(n):
                        ok[b] = ok[b] if abs(xn[i, b]) <= bound else 0.0
                for b in range(n):
                    if alive[b] > ok[b]:
                        div[lo + b] = t + 1
                    alive[b] = ok[b]
                for i in range(d):
                    for b in range(n):
                        if ok[b] > 0.0:
                            x[i, b] = xn[i, b]
                # the state after step t + 1 is kept when among the last nrec (nh) states
                r = t - (steps - nrec)
                if r >= 0:
                    for i in range(d):
                        for b in range(n):
                            rec[r, i, lo + b] = x[i, b]
                h = t - (steps - nh)
                if h >= 0:
                    for i in range(d):
                        for b in range(n):
                            hist[h, i, lo + b] = x[i, b]
            measured = max(steps - transient, 1)
            for b in range(n):
                lyap[lo + b] = acc[b] / measured
                for i in range(d):
                    x_out[i, lo + b] = x[i, b]

    return loop


def _run(model: Model, etas: np.ndarray, th0: np.ndarray, *, steps: int, transient: int = 0,
         bound: float = 1e8, tangent: bool = False, continuation: bool = False,
         kick: float = 0.0, seed: int = 0, nrec: int = 0, nhist: int = 0, chunk: int = 1024,
         tangents: np.ndarray | None = None):
    """Run the compiled loop; returns ``(rec, hist, x_final, diverged_at, lyap)``.

    ``tangents`` ``(d, B)`` are the initial tangent vectors; by default unit columns of a
    standard normal draw from ``seed``.
    """
    d = model.dim
    nb = len(etas)
    if tangents is None:
        rng = np.random.default_rng(seed)
        v0 = rng.standard_normal((d, nb))
        v0 /= np.linalg.norm(v0, axis=0)
    else:
        v0 = np.array(tangents, dtype=np.float64, order="C")
    rec = np.zeros((nrec, d, nb))
    hist = np.zeros((nhist, d, nb))
    x_out = np.empty((d, nb))
    div = np.full(nb, -1, dtype=np.int64)
    lyap = np.zeros(nb)
    loop = gd_loop(model.kernels())
    # fresh writable copies: one compiled signature whatever the caller passed
    loop(np.array(th0, dtype=np.float64, order="C"), np.array(etas, dtype=np.float64),
         model.param_vector(), int(steps), int(transient), float(bound), bool(tangent),
         bool(continuation), float(kick), v0, int(chunk), rec, hist, x_out, div, lyap)
    return rec, hist, x_out, div, lyap


# -- periodic orbits -----------------------------------------------------------------------
@dataclass(frozen=True)
class PeriodicOrbit:
    """A periodic orbit of a map.

    Attributes
    ----------
    points
        The ``period`` points ``x_0, F(x_0), ...``, shape ``(period, d)``.
    period
        The minimal period.
    multipliers
        Eigenvalues of ``DF^period(x_0)`` (complex), largest modulus first.
    stable
        True when every multiplier has modulus ``< 1 + 1e-9`` (linearly stable, allowing
        neutral directions such as those along a manifold of minima).
    residual
        ``max |F^period(x_0) - x_0|`` at the returned point.
    """

    points: np.ndarray
    period: int
    multipliers: np.ndarray
    stable: bool
    residual: float

    @property
    def spectral_radius(self) -> float:
        """The largest multiplier modulus."""
        return float(np.abs(self.multipliers[0]))


class OrbitList(list):
    """A list of :class:`PeriodicOrbit` with a report on the guesses that failed.

    Attributes
    ----------
    diverged
        Number of guesses whose Newton iteration (or orbit) left the bound.
    unconverged
        Number of guesses that did not converge within the iteration budget.
    other_period
        Number of converged guesses whose minimal period is a proper divisor of the
        requested one (kept only with ``minimal=False``).
    """

    def __init__(self, orbits, diverged: int, unconverged: int, other_period: int, period: int):
        super().__init__(orbits)
        self.diverged = diverged
        self.unconverged = unconverged
        self.other_period = other_period
        self.period = period

    @property
    def message(self) -> str:
        """A sentence on the search."""
        parts = [f"{len(self)} orbit(s) of period {self.period}"]
        if self.other_period:
            parts.append(f"{self.other_period} guess(es) converged to a lower period")
        if self.diverged:
            parts.append(f"{self.diverged} guess(es) diverged")
        if self.unconverged:
            parts.append(f"{self.unconverged} guess(es) did not converge")
        return "; ".join(parts) + "."


def periodic_orbits(
    map: DiscreteMap,
    period: int,
    guesses,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
    polish: int = 10,
    bound: float = 1e8,
    minimal: bool = True,
    unique_tol: float = 1e-7,
) -> OrbitList:
    """Periodic orbits of ``map`` of a given period, by Newton's method from ``guesses``.

    Parameters
    ----------
    map
        A :class:`~analysis.maps.DiscreteMap`, e.g. ``GDMap(model, eta)``.
    period
        The period ``k >= 1``.
    guesses
        Starting points, shape ``(d,)`` or ``(B, d)``; finite.
    tol
        Convergence when ``max|F^k(x) - x| <= tol (1 + max|x|)``.
    max_iter
        Newton iterations per guess.
    polish
        Newton iterations after convergence, kept while they lower the residual.
    bound
        A guess whose iterates leave ``|x| <= bound`` is reported as diverged.
    minimal
        Keep only orbits whose minimal period is ``k`` (drop fixed points when ``k = 2``).
        Points of an orbit closer than ``sqrt(tol) (1 + |x|)`` are taken as equal: an orbit
        smaller than that (just past a flip) is reported with the lower period.
    unique_tol
        Two orbits are the same when every point of one is within ``unique_tol (1 + |x|)``
        of a point of the other.

    Returns
    -------
    OrbitList
        The distinct orbits found (a list of :class:`PeriodicOrbit`), with counts of
        diverged and unconverged guesses.

    Notes
    -----
    Newton's step solves ``(DF^k(x) - I) dx = -(F^k(x) - x)`` with
    ``DF^k(x) = DF(x_{k-1}) ... DF(x_0)``; for GD ``DF = I - eta H``. The least-squares
    solution is used, so that orbits in continuous families (such as a manifold of minima,
    where ``DF^k - I`` is singular) are reached too. The multipliers are the eigenvalues of
    ``DF^p`` at the orbit, ``p`` its minimal period.

    Examples
    --------
    >>> import sympy as sp
    >>> from analysis import GDMap
    >>> from minimal_eos import SymbolicModel
    >>> x = sp.Symbol("x")
    >>> F = GDMap(SymbolicModel((x**2 - 1)**2 / 4, (x,)), eta=1.1)
    >>> orbits = periodic_orbits(F, 2, [[1.2], [0.8]])
    >>> len(orbits), orbits[0].stable
    (1, True)
    """
    if not isinstance(map, DiscreteMap):
        raise ValueError(f"map must be a DiscreteMap such as GDMap(model, eta); "
                         f"got {type(map).__name__}")
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise ValueError(f"period must be an integer >= 1; got {period!r}")
    period = int(period)
    x = map.check_batch(guesses, "guesses")
    tol = positive_float(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    polish = positive_int(polish, "polish", minimum=0)
    bound = positive_float(bound, "bound")
    nb = x.shape[1]

    state = np.zeros(nb, dtype=np.int64)  # 0 running, 1 converged, 2 diverged
    with np.errstate(all="ignore"):
        for _ in range(max_iter + 1):
            run = np.nonzero(state == 0)[0]
            if run.size == 0:
                break
            res, mats, bad = _newton_system(map, x[:, run], period, bound)
            done = ~bad & (np.max(np.abs(res), axis=0)
                           <= tol * (1.0 + np.max(np.abs(x[:, run]), axis=0)))
            state[run[bad]] = 2
            state[run[done]] = 1
            move = ~bad & ~done
            if not np.any(move):
                break
            step = run[move]
            x[:, step] += _newton_steps(mats[move], res[:, move], x[:, step])
            state[step[~np.all(np.isfinite(x[:, step]), axis=0)]] = 2
        # polish: further Newton steps while they lower the residual, so that points that
        # only approach a degenerate root (e.g. a fixed point at a flip) keep moving to it
        conv = np.nonzero(state == 1)[0]
        for _ in range(polish):
            if conv.size == 0:
                break
            res, mats, bad = _newton_system(map, x[:, conv], period, bound)
            ok = ~bad
            trial = x[:, conv].copy()
            trial[:, ok] += _newton_steps(mats[ok], res[:, ok], trial[:, ok])
            res_new, _, bad_new = _newton_system(map, trial, period, bound, jacobian=False)
            better = ok & ~bad_new & (np.max(np.abs(res_new), axis=0)
                                      <= np.max(np.abs(res), axis=0))
            x[:, conv[better]] = trial[:, better]

    orbits: list[PeriodicOrbit] = []
    other = 0
    for b in np.nonzero(state == 1)[0]:
        orbit = _orbit_at(map, x[:, b], period, tol)
        if orbit is None:
            state[b] = 2
            continue
        if orbit.period != period:
            other += 1
            if minimal:
                continue
        if not any(_same_orbit(orbit, o, unique_tol) for o in orbits):
            orbits.append(orbit)
    orbits.sort(key=lambda o: tuple(o.points[0]))
    return OrbitList(orbits, diverged=int(np.sum(state == 2)),
                     unconverged=int(np.sum(state == 0)), other_period=other, period=period)


def _newton_system(map: DiscreteMap, xr: np.ndarray, period: int, bound: float,
                   jacobian: bool = True):
    """Residuals ``F^k(x) - x`` ``(d, B)``, matrices ``DF^k - I`` ``(B, d, d)``, bad mask."""
    if jacobian:
        y, jac = map.iterate_with_jacobian_batch(xr, period)
        mats = np.transpose(jac, (2, 0, 1)) - np.eye(xr.shape[0])
    else:
        y = xr.copy()
        for _ in range(period):
            y = map.step_batch(y)
        mats = None
    res = y - xr
    bad = ~np.all(np.isfinite(res) & (np.abs(y) <= bound), axis=0)
    if mats is not None:
        bad |= ~np.all(np.isfinite(mats), axis=(1, 2))
    return res, mats, bad


def _newton_steps(mats: np.ndarray, res: np.ndarray, xr: np.ndarray) -> np.ndarray:
    """Least-squares Newton steps ``(d, B)``, each limited to ``max(1, |x|)`` in size."""
    dx = np.empty((res.shape[1], res.shape[0]))
    for j in range(res.shape[1]):
        dx[j] = np.linalg.lstsq(mats[j], -res[:, j], rcond=None)[0]
    size = np.maximum(1.0, np.max(np.abs(xr), axis=0))
    big = np.max(np.abs(dx), axis=1)
    factor = np.where(big > size, size / np.maximum(big, 1e-300), 1.0)
    return (dx * factor[:, None]).T


def _orbit_at(map: DiscreteMap, x0: np.ndarray, period: int, tol: float):
    """The orbit through ``x0`` with its minimal period, multipliers and stability."""
    traj = map.trajectory(x0, period)
    if not np.all(np.isfinite(traj)):
        return None
    scale = 1.0 + np.max(np.abs(x0))
    # the minimal period divides `period`; points closer than sqrt(tol) are not told apart
    # (near a flip, Newton approaches the degenerate fixed point only slowly)
    p = next(q for q in range(1, period + 1)
             if period % q == 0 and np.max(np.abs(traj[q] - x0)) <= math.sqrt(tol) * scale)
    points = traj[:p]
    # canonical starting point: the lexicographically smallest point of the orbit
    start = min(range(p), key=lambda i: tuple(points[i]))
    points = np.roll(points, -start, axis=0)
    _, jac = map.iterate_with_jacobian(points[0], p)
    mult = np.linalg.eigvals(jac)
    mult = mult[np.argsort(-np.abs(mult), kind="stable")]
    residual = float(np.max(np.abs(map.iterate(points[0], p) - points[0])))
    return PeriodicOrbit(points=points, period=p, multipliers=mult,
                         stable=bool(np.max(np.abs(mult)) < 1.0 + 1e-9), residual=residual)


def _same_orbit(a: PeriodicOrbit, b: PeriodicOrbit, tol: float) -> bool:
    if a.period != b.period:
        return False
    for pa in a.points:
        gap = np.min(np.max(np.abs(b.points - pa), axis=1))
        if gap > tol * (1.0 + np.max(np.abs(pa))):
            return False
    return True


# -- orbit diagrams ------------------------------------------------------------------------
@dataclass(frozen=True)
class OrbitDiagram:
    """What :func:`orbit_diagram` returns.

    Attributes
    ----------
    model
        The model.
    etas
        The step sizes, shape ``(E,)``.
    points
        The kept iterates of each step size, masked array ``(E, keep, d)`` (masked for a
        run that diverged).
    status
        :class:`~minimal_eos.simulate.Status` per step size (from the last kept iterates).
    period
        The detected period (1 converged, 0 none found).
    diverged_at
        The step (counted from the start of that step size's run) at which the run left
        the bound, or -1.
    final_theta
        The final iterate of each run, shape ``(E, d)``.
    continuation
        Whether each run started from the previous step size's final state.
    message
        A one-line summary.
    """

    model: Model
    etas: np.ndarray
    points: np.ma.MaskedArray
    status: np.ndarray
    period: np.ndarray
    diverged_at: np.ndarray
    final_theta: np.ndarray
    continuation: bool
    message: str = field(default="")

    @classmethod
    def concatenate(cls, parts: list[OrbitDiagram]) -> OrbitDiagram:
        """The diagram of the concatenated step sizes of ``parts`` (independent starts)."""
        status = np.concatenate([p.status for p in parts])
        period = np.concatenate([p.period for p in parts])
        points = np.ma.MaskedArray(np.concatenate([np.ma.getdata(p.points) for p in parts]),
                                   mask=np.concatenate([np.ma.getmaskarray(p.points)
                                                        for p in parts]))
        return cls(model=parts[0].model, etas=np.concatenate([p.etas for p in parts]),
                   points=points, status=status, period=period,
                   diverged_at=np.concatenate([p.diverged_at for p in parts]),
                   final_theta=np.concatenate([p.final_theta for p in parts]),
                   continuation=parts[0].continuation,
                   message=_status_summary(status, period, len(status)))

    def values(self, what=0) -> np.ma.MaskedArray:
        """The plotted quantity at every kept iterate, shape ``(E, keep)``.

        ``what`` is a coordinate index, ``"loss"``, ``"sharpness"``, or a function mapping
        points of shape ``(N, d)`` to ``(N,)``.
        """
        pts = np.ma.getdata(self.points)
        e, k, d = pts.shape
        flat = pts.reshape(e * k, d)
        if isinstance(what, int | np.integer) and not isinstance(what, bool):
            if not 0 <= what < d:
                raise ValueError(f"what must be a coordinate index in [0, {d}); got {what}")
            vals = flat[:, what]
        elif what in ("loss", "sharpness"):
            kern = getattr(self.model.kernels(), "loss" if what == "loss" else "sharp")
            vals = np.empty(e * k)
            kern(np.ascontiguousarray(flat.T), 0, e * k, self.model.param_vector(), vals)
        elif callable(what):
            vals = np.asarray(what(flat), dtype=float).reshape(e * k)
        else:
            raise ValueError(f"what must be a coordinate index, 'loss', 'sharpness' or a "
                             f"function of the points; got {what!r}")
        return np.ma.MaskedArray(vals.reshape(e, k), mask=np.ma.getmaskarray(self.points)[..., 0])

    def plot(self, what=0, **kwargs):
        """Draw the diagram with :func:`plot_orbit_diagram`."""
        return plot_orbit_diagram(self, what, **kwargs)


def orbit_diagram(
    model: Model,
    etas,
    theta0,
    *,
    transient: int = 1000,
    keep: int = 200,
    continuation: bool = True,
    kick: float = 1e-8,
    divergence_bound: float = 1e8,
    tol: float = 1e-9,
    max_period: int = 64,
    seed: int = 0,
) -> OrbitDiagram:
    """The orbit (bifurcation) diagram of GD on ``model`` over the step sizes ``etas``.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model`.
    etas
        Step sizes, shape ``(E,)``, non-empty, each finite and > 0. With ``continuation``
        they are visited in the given order.
    theta0
        The initial point ``(d,)``; without continuation also one per step size ``(E, d)``.
    transient
        Steps discarded before keeping.
    keep
        Steps kept per step size.
    continuation
        Start each step size from the previous one's final state (following an attractor
        as ``eta`` moves), nudged by ``kick (1 + max|x|)`` along a fixed random unit vector
        so that it does not stay on an orbit that has just lost stability. A run that
        diverged hands ``theta0`` to the next step size. Without continuation every step
        size starts from ``theta0`` (its own row when ``theta0`` is ``(E, d)``).
    kick
        Size of the nudge between step sizes (relative), ``>= 0``.
    divergence_bound
        A run diverges when a coordinate leaves ``[-bound, bound]`` (or is not finite).
    tol, max_period
        Period detection on the last kept iterates, as in :func:`minimal_eos.simulate`.
    seed
        Seed of the nudge direction.

    Returns
    -------
    OrbitDiagram

    Notes
    -----
    The whole loop over step sizes and steps is one compiled numba function
    (:func:`gd_loop`); without continuation the runs are advanced together, the innermost
    loops running over them.

    Examples
    --------
    >>> import numpy as np
    >>> from minimal_eos import ScalarNetwork
    >>> d = orbit_diagram(ScalarNetwork(depth=2), np.linspace(0.5, 1.2, 8), [1.2, 0.8],
    ...                   transient=500, keep=16)
    >>> d.points.shape
    (8, 16, 2)
    """
    model = check_model(model)
    etas = check_etas(etas)
    th = check_thetas(model, theta0)
    transient = positive_int(transient, "transient", minimum=0)
    keep = positive_int(keep, "keep")
    max_period = positive_int(max_period, "max_period")
    tol = positive_float(tol, "tol")
    kick = positive_float(kick, "kick", allow_zero=True)
    bound = positive_float(divergence_bound, "divergence_bound")
    if continuation and th.shape[0] != 1:
        raise ValueError("with continuation=True theta0 must be one point of shape (d,)")
    if th.shape[0] not in (1, len(etas)):
        raise ValueError(f"theta0 must have shape (d,) or (E, d) with E = {len(etas)} step "
                         f"sizes; got {th.shape}")
    th0 = np.broadcast_to(th, (len(etas), model.dim)).T
    nhist = min(2 * max_period, keep)
    rec, hist, x_out, div, _ = _run(model, etas, th0, steps=transient + keep,
                                    transient=transient, bound=bound, continuation=continuation,
                                    kick=kick, seed=seed, nrec=keep, nhist=nhist)
    status, period = classify(hist, div, tol, max_period)
    t = np.arange(transient + 1, transient + keep + 1)
    mask = (div[:, None] >= 0) & (t[None, :] >= div[:, None])
    # a transposed view of the records (no copy); a mask only where runs diverged
    full_mask = (np.repeat(mask[:, :, None], model.dim, axis=2) if mask.any()
                 else np.ma.nomask)
    points = np.ma.MaskedArray(np.transpose(rec, (2, 0, 1)), mask=full_mask, copy=False)
    return OrbitDiagram(model=model, etas=etas.copy(), points=points, status=status,
                        period=period, diverged_at=div, final_theta=x_out.T.copy(),
                        continuation=continuation,
                        message=_status_summary(status, period, len(etas)))


def _status_summary(status, period, n: int) -> str:
    counts = Counter(status)
    parts = [f"{n} step size(s):"]
    for s in (Status.CONVERGED, Status.PERIODIC, Status.DIVERGED, Status.RUNNING):
        if counts[s]:
            extra = ""
            if s is Status.PERIODIC:
                per = Counter(period[status == Status.PERIODIC])
                extra = " (" + ", ".join(f"period {p}: {c}" for p, c in sorted(per.items())) + ")"
            name = "no period found" if s is Status.RUNNING else str(s)
            parts.append(f"{counts[s]} {name}{extra};")
    return " ".join(parts).rstrip(";") + "."


def plot_orbit_diagram(diagram: OrbitDiagram, what=0, *, ax=None, s: float = 0.2,
                       color: str = "k", alpha: float = 0.5, label: str | None = None):
    """Scatter the kept iterates of ``diagram`` against the step size (matplotlib).

    ``what`` is as in :meth:`OrbitDiagram.values`. matplotlib is imported only here.
    Returns the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    vals = diagram.values(what)
    keep = vals.shape[1]
    xs = np.repeat(diagram.etas, keep)
    ys = vals.ravel()
    ok = ~np.ma.getmaskarray(ys)
    ax.scatter(xs[ok], np.ma.getdata(ys)[ok], s=s, c=color, alpha=alpha, linewidths=0,
               label=label)
    ax.set_xlabel("step size eta")
    ax.set_ylabel(what if isinstance(what, str) else f"coordinate {what}"
                  if isinstance(what, int) else "value")
    return ax


# -- Lyapunov exponents --------------------------------------------------------------------
@dataclass(frozen=True)
class LyapunovResult:
    """What :func:`lyapunov_exponent` returns.

    Attributes
    ----------
    eta
        Step size of each run, shape ``(B,)``.
    exponent
        The largest Lyapunov exponent (natural log per step), masked for runs that
        diverged; ``-inf`` when the tangent vector was mapped exactly to zero
        (a superstable orbit).
    diverged_at
        Step of divergence or -1.
    final_theta
        Final iterates, ``(B, d)``.
    message
        A one-line summary.
    """

    eta: np.ndarray
    exponent: np.ma.MaskedArray
    diverged_at: np.ndarray
    final_theta: np.ndarray
    message: str = ""

    def __float__(self) -> float:
        if len(self.eta) != 1:
            raise ValueError(f"float() needs a single run; this result holds {len(self.eta)}")
        if self.diverged_at[0] >= 0:
            raise ValueError(f"the run diverged at step {self.diverged_at[0]}: no exponent")
        return float(self.exponent[0])


def lyapunov_exponent(
    model: Model,
    eta,
    theta0,
    *,
    steps: int = 5000,
    transient: int = 1000,
    divergence_bound: float = 1e8,
    seed: int = 0,
) -> LyapunovResult:
    """The largest Lyapunov exponent of GD on ``model`` at step size(s) ``eta``.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model`.
    eta
        A step size or an array of them ``(B,)``.
    theta0
        Initial point(s), ``(d,)`` or ``(B, d)``, broadcast against ``eta``.
    steps
        Measured steps (after the transient).
    transient
        Steps before measuring.
    divergence_bound
        Runs leaving ``[-bound, bound]`` are reported as diverged.
    seed
        Seed of the initial tangent vectors (unit vectors with Gaussian directions).

    Returns
    -------
    LyapunovResult
        ``float(result)`` gives the exponent of a single run.

    Notes
    -----
    From the end of the transient the tangent vector follows
    ``v_{t+1} = (I - eta H(x_t)) v_t`` and is renormalised at every step; the exponent is
    ``1/T sum_t log |v_{t+1}|`` over the ``T`` measured steps (the exact Hessian for up to
    32 coordinates, central differences of the gradient along ``v`` above). For a
    stable fixed point of sharpness ``S`` this is ``log|1 - eta S|``; for a one-dimensional
    map it is the mean of ``log|F'(x_t)|``.

    Examples
    --------
    >>> from minimal_eos import Quadratic
    >>> round(float(lyapunov_exponent(Quadratic([1.0]), 0.5, [1.0], steps=100)), 6)
    -0.693147
    """
    model = check_model(model)
    etas = check_etas(eta, "eta")
    th = check_thetas(model, theta0)
    steps = positive_int(steps, "steps")
    transient = positive_int(transient, "transient", minimum=0)
    bound = positive_float(divergence_bound, "divergence_bound")
    if len(th) != len(etas) and 1 not in (len(th), len(etas)):
        raise ValueError(f"theta0 and eta disagree on the batch size: {len(th)} points, "
                         f"{len(etas)} step sizes")
    nb = max(len(th), len(etas))
    etas = np.ascontiguousarray(np.broadcast_to(etas, (nb,)))
    th0 = np.broadcast_to(th, (nb, model.dim)).T
    _, _, x_out, div, lyap = _run(model, etas, th0, steps=transient + steps,
                                  transient=transient, bound=bound, tangent=True, seed=seed)
    n_div = int(np.sum(div >= 0))
    msg = f"{nb} run(s) of {transient}+{steps} steps" + (f": {n_div} diverged." if n_div
                                                          else ".")
    return LyapunovResult(eta=etas.copy(), exponent=np.ma.MaskedArray(lyap, mask=div >= 0),
                          diverged_at=div, final_theta=x_out.T.copy(), message=msg)


# -- phase diagrams ------------------------------------------------------------------------
class Outcome(StrEnum):
    """Outcome of one cell of a phase diagram."""

    CONVERGED = "converged"
    PERIODIC = "periodic"
    CHAOTIC = "chaotic"
    DIVERGED = "diverged"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class PhaseDiagram:
    """What :func:`phase_diagram` returns; arrays are indexed ``[eta, initialisation]``.

    Attributes
    ----------
    etas
        Step sizes ``(E,)``.
    thetas0
        Initialisations ``(I, d)``.
    outcome
        :class:`Outcome` of every cell, ``(E, I)`` object array.
    period
        Period of periodic cells (1 for converged ones, 0 otherwise).
    final_sharpness
        Sharpness at the final iterate, masked except for converged cells.
    lyapunov
        Largest Lyapunov exponent over the measured steps, masked for diverged cells.
    final_theta
        Final iterates ``(E, I, d)``.
    diverged_at
        Step of divergence or -1.
    message
        Counts of the outcomes.
    """

    etas: np.ndarray
    thetas0: np.ndarray
    outcome: np.ndarray
    period: np.ndarray
    final_sharpness: np.ma.MaskedArray
    lyapunov: np.ma.MaskedArray
    final_theta: np.ndarray
    diverged_at: np.ndarray
    message: str = ""

    @classmethod
    def concatenate(cls, parts: list[PhaseDiagram]) -> PhaseDiagram:
        """The diagram of the concatenated step sizes of ``parts`` (same initialisations)."""
        cat = {name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("etas", "outcome", "period", "final_theta", "diverged_at")}
        masked = {name: np.ma.concatenate([getattr(p, name) for p in parts])
                  for name in ("final_sharpness", "lyapunov")}
        ne, ni = cat["outcome"].shape
        return cls(thetas0=parts[0].thetas0.copy(), **cat, **masked,
                   message=_phase_message(cat["outcome"], ne, ni))

    def codes(self) -> np.ndarray:
        """Integer codes of the outcomes (their order in :class:`Outcome`), for plotting."""
        order = {o: i for i, o in enumerate(Outcome)}
        return np.vectorize(order.__getitem__, otypes=[np.int64])(self.outcome)


def phase_diagram(
    model: Model,
    etas,
    thetas0,
    *,
    transient: int = 2000,
    measure: int = 2000,
    tol: float = 1e-9,
    max_period: int = 32,
    chaos_threshold: float = 0.01,
    divergence_bound: float = 1e8,
    seed: int = 0,
    tangents=None,
) -> PhaseDiagram:
    """Outcome of GD for every step size and initialisation.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model`.
    etas
        Step sizes ``(E,)``, non-empty, each finite and > 0.
    thetas0
        Initialisations ``(I, d)`` (or one point ``(d,)``).
    transient
        Steps before measuring.
    measure
        Steps over which the Lyapunov exponent is measured (the last ``2 max_period`` of
        them also decide the period).
    tol, max_period
        Period detection as in :func:`minimal_eos.simulate`.
    chaos_threshold
        A run with no period found is chaotic when its Lyapunov exponent exceeds this,
        and undetermined otherwise (slow convergence, quasi-periodic motion, or a period
        above ``max_period``).
    divergence_bound
        Runs leaving ``[-bound, bound]`` are diverged.
    seed
        Seed of the tangent vectors.
    tangents
        The initial tangent vectors themselves, ``(d, E I)`` with cell ``(i, j)`` in
        column ``i I + j`` (non-zero columns); by default unit columns of a standard
        normal draw from ``seed``. Giving a slice of that draw computes a block of step
        sizes exactly as the whole diagram would (see :mod:`analysis.distributed`).

    Returns
    -------
    PhaseDiagram

    Examples
    --------
    >>> from minimal_eos import Quadratic
    >>> pd = phase_diagram(Quadratic([1.0]), [0.5, 2.5], [[1.0]], transient=50, measure=50)
    >>> [str(o) for o in pd.outcome[:, 0]]
    ['converged', 'diverged']
    """
    model = check_model(model)
    etas = check_etas(etas)
    th = check_thetas(model, thetas0, "thetas0")
    transient = positive_int(transient, "transient", minimum=0)
    measure = positive_int(measure, "measure")
    tol = positive_float(tol, "tol")
    max_period = positive_int(max_period, "max_period")
    chaos = positive_float(chaos_threshold, "chaos_threshold")
    bound = positive_float(divergence_bound, "divergence_bound")
    ne, ni, d = len(etas), len(th), model.dim
    if tangents is not None:
        tangents = as_float_array(tangents, "tangents", ndim=2)
        if tangents.shape != (d, ne * ni) or np.any(np.linalg.norm(tangents, axis=0) == 0):
            raise ValueError(f"tangents must have shape ({d}, {ne * ni}) with non-zero "
                             f"columns; got {tangents.shape}")
    eta_flat = np.ascontiguousarray(np.repeat(etas, ni))
    th0 = np.tile(th, (ne, 1)).T
    nhist = min(2 * max_period, measure)
    _, hist, x_out, div, lyap = _run(model, eta_flat, th0, steps=transient + measure,
                                     transient=transient, bound=bound, tangent=True, seed=seed,
                                     nhist=nhist, tangents=tangents)
    status, period = classify(hist, div, tol, max_period)
    outcome = np.empty(ne * ni, dtype=object)
    for s, o in ((Status.CONVERGED, Outcome.CONVERGED), (Status.PERIODIC, Outcome.PERIODIC),
                 (Status.DIVERGED, Outcome.DIVERGED)):
        outcome[status == s] = o
    running = status == Status.RUNNING
    outcome[running & (lyap > chaos)] = Outcome.CHAOTIC
    outcome[running & ~(lyap > chaos)] = Outcome.UNDETERMINED
    sharp = np.empty(ne * ni)
    model.kernels().sharp(np.ascontiguousarray(x_out), 0, ne * ni, model.param_vector(), sharp)
    return PhaseDiagram(
        etas=etas.copy(), thetas0=th.copy(), outcome=outcome.reshape(ne, ni),
        period=period.reshape(ne, ni),
        final_sharpness=np.ma.MaskedArray(sharp, mask=outcome != Outcome.CONVERGED).reshape(
            ne, ni),
        lyapunov=np.ma.MaskedArray(lyap, mask=div >= 0).reshape(ne, ni),
        final_theta=x_out.T.reshape(ne, ni, d).copy(), diverged_at=div.reshape(ne, ni),
        message=_phase_message(outcome, ne, ni),
    )


def _phase_message(outcome: np.ndarray, ne: int, ni: int) -> str:
    counts = Counter(np.ravel(outcome))
    return (f"{ne} x {ni} cells: "
            + ", ".join(f"{counts[o]} {o}" for o in Outcome if counts[o]) + ".")


# -- Feigenbaum ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeigenbaumCascade:
    """Superstable step sizes of a period-doubling cascade and the ratios of their gaps.

    Attributes
    ----------
    etas
        ``eta_0 < eta_1 < ...``: at ``eta_n`` the critical point lies on a superstable
        orbit of period ``2^n``.
    ratios
        ``delta_n = (eta_n - eta_{n-1}) / (eta_{n+1} - eta_n)`` for ``n = 1, 2, ...``;
        they tend to Feigenbaum's ``delta = 4.6692...``.
    """

    etas: np.ndarray
    ratios: np.ndarray

    def table(self) -> str:
        """The superstable step sizes and gap ratios as a text table."""
        lines = ["  n  period  eta_n                 delta_n", "-" * 46]
        for n, eta in enumerate(self.etas):
            ratio = f"{self.ratios[n - 1]:.6f}" if 1 <= n <= len(self.ratios) else ""
            lines.append(f"{n:3d}  {2**n:6d}  {eta:.15f}  {ratio}")
        lines.append(f"Feigenbaum's delta = {FEIGENBAUM_DELTA:.6f}")
        return "\n".join(lines)


def feigenbaum_cascade(model: Model, minimum, *, levels: int = 9, eta_max: float | None = None,
                       grid: int = 256) -> FeigenbaumCascade:
    """Locate the superstable step sizes of GD's period-doubling cascade on a 1-D loss.

    Parameters
    ----------
    model
        A one-dimensional model (``dim == 1``) with a minimum at ``minimum``.
    minimum
        The minimum ``x*`` (``f'(x*) = 0``, ``f''(x*) = S > 0``) whose cascade is followed.
    levels
        Number of superstable orbits after the fixed point (periods 2, 4, ..., ``2^levels``).
    eta_max
        Upper end of the search for ``eta_1``; ``3 / S`` by default.
    grid
        Grid points per bracketing scan.

    Returns
    -------
    FeigenbaumCascade

    Notes
    -----
    For ``F(x) = x - eta f'(x)`` the critical point ``c(eta)`` solves
    ``F'(c) = 1 - eta f''(c) = 0`` (the branch through ``x*``, found by Newton with
    ``f'''``). At ``eta_0 = 1 / S`` the fixed point itself is superstable; ``eta_n`` is the
    first root after ``eta_{n-1}`` of ``G_n(eta) = F^{2^n}(c) - c``, bracketed on a grid
    (over ``(2/S, eta_max)`` for ``n = 1``, and over ``eta_{n-1} + (0.02 .. 0.9)`` times
    the previous gap after that) and refined by repeated grid bisection. The roots are
    evaluated for a whole grid of step sizes at once by the compiled loop.
    Feigenbaum (1978); the ratios tend to ``delta = 4.669201609...``.

    Examples
    --------
    >>> import sympy as sp
    >>> from minimal_eos import SymbolicModel
    >>> x = sp.Symbol("x")
    >>> c = feigenbaum_cascade(SymbolicModel((x**2 - 1)**2 / 4, (x,)), 1.0, levels=6)
    >>> round(float(c.ratios[-1]), 2)
    4.67
    """
    model = check_model(model)
    if model.dim != 1:
        raise ValueError(f"feigenbaum_cascade needs a one-dimensional model; got dim {model.dim}")
    xs = float(as_float_array(minimum, "minimum", ndim=(0, 1)).ravel()[0])
    levels = positive_int(levels, "levels")
    grid = positive_int(grid, "grid", minimum=8)
    s = model.hessian([xs])[0, 0]
    if not abs(model.grad([xs])[0]) <= 1e-8 * (1.0 + abs(xs)) or s <= 0:
        raise ValueError(f"minimum must be a minimum of the loss (f' = 0, f'' > 0); at "
                         f"{xs} f' = {model.grad([xs])[0]:.3g}, f'' = {s:.3g}")
    eta_max = 3.0 / s if eta_max is None else positive_float(eta_max, "eta_max")
    if eta_max <= 2.0 / s:
        raise ValueError(f"eta_max must exceed the first period doubling 2/S = {2.0 / s:.6g}")

    def crit(etas: np.ndarray) -> np.ndarray:
        c = np.full(len(etas), xs)
        p = model.param_vector()
        k = model.kernels()
        h = np.empty((1, 1, len(etas)))
        t3 = np.empty((1, len(etas)))
        ones = np.ones((1, len(etas)))
        for _ in range(60):
            th = c.reshape(1, -1).copy()
            k.hess(th, 0, len(etas), p, h)
            k.dir3(th, ones, 0, len(etas), p, t3)
            step = (h[0, 0] - 1.0 / etas) / t3[0]
            c = c - step
            if np.all(np.abs(step) <= 1e-15 * (1.0 + np.abs(c))):
                break
        return c

    def g(n: int, etas: np.ndarray) -> np.ndarray:
        c = crit(etas)
        _, _, x_out, div, _ = _run(model, etas, c.reshape(1, -1), steps=2**n)
        out = x_out[0] - c
        out[div >= 0] = np.nan
        return out

    def first_root(n: int, lo: float, hi: float) -> float:
        for _ in range(40):
            pts = np.linspace(lo, hi, grid)
            vals = g(n, pts)
            sign = np.sign(vals)
            flips = np.nonzero((sign[:-1] * sign[1:] < 0) & np.isfinite(vals[:-1])
                               & np.isfinite(vals[1:]))[0]
            zero = np.nonzero(vals == 0.0)[0]
            if zero.size and (not flips.size or zero[0] <= flips[0]):
                return float(pts[zero[0]])
            if not flips.size:
                raise ValueError(f"no superstable orbit of period {2**n} found in "
                                 f"[{lo:.12g}, {hi:.12g}]; raise eta_max or lower levels")
            lo, hi = float(pts[flips[0]]), float(pts[flips[0] + 1])
            if hi - lo <= 4e-16 * hi:
                break
        return 0.5 * (lo + hi)

    etas = [1.0 / s, first_root(1, 2.0 / s * (1 + 1e-9), eta_max)]
    for n in range(2, levels + 1):
        gap = etas[-1] - etas[-2]
        if gap <= 1e-13 * etas[-1]:
            break
        etas.append(first_root(n, etas[-1] + 0.02 * gap, etas[-1] + 0.9 * gap))
    arr = np.array(etas)
    gaps = np.diff(arr)
    return FeigenbaumCascade(etas=arr, ratios=gaps[:-1] / gaps[1:])


def main() -> None:
    """Print the Feigenbaum check for GD on the quartic ``f(x) = (x^2 - 1)^2 / 4``."""
    import sympy as sp

    from minimal_eos import SymbolicModel

    x = sp.Symbol("x")
    cascade = feigenbaum_cascade(SymbolicModel((x**2 - 1) ** 2 / 4, (x,)), 1.0, levels=11)
    print("GD on f(x) = (x^2 - 1)^2 / 4, superstable step sizes of the cascade from x* = 1:")
    print(cascade.table())


if __name__ == "__main__":
    main()


__all__ = [
    "FEIGENBAUM_DELTA",
    "FeigenbaumCascade",
    "LyapunovResult",
    "OrbitDiagram",
    "OrbitList",
    "Outcome",
    "PeriodicOrbit",
    "PhaseDiagram",
    "feigenbaum_cascade",
    "gd_loop",
    "lyapunov_exponent",
    "orbit_diagram",
    "periodic_orbits",
    "phase_diagram",
    "plot_orbit_diagram",
]
