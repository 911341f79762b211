"""Stability thresholds of linear update maps, derived symbolically.

On the quadratic ``f(x) = a x^2 / 2`` every optimizer of :mod:`minimal_eos.optimizers` is a
linear map ``s+ = M(a, eta, beta) s`` of its state. The map is stable iff every root of
the characteristic polynomial ``p(z) = det(z I - M)`` lies inside the unit circle
(Schur stability). The Schur-Cohn recursion turns that into polynomial inequalities
``D_k(a) > 0``; the threshold is the smallest positive root of a ``D_k`` at which stability
is lost. The derivation applies the optimizer's own ``update`` rule to sympy symbols, so it
works for any linear update map, and a matrix can also be given directly.

References
----------
Cohen et al., arXiv 2103.00065 (thresholds of GD and momentum at the edge of stability);
Jury, *Theory and Application of the z-Transform Method* (1964), for the Schur-Cohn test.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

a_sym, eta_sym, beta_sym, z_sym = sp.symbols("a eta beta z", real=True)

DEFAULT_RANGES: dict[str, tuple[float, float]] = {"eta": (0.05, 3.0), "beta": (0.0, 0.95)}


def update_matrix(optimizer, a: sp.Symbol = a_sym, eta: sp.Symbol = eta_sym) -> sp.Matrix:
    """The matrix ``M`` of the optimizer's update on ``f(x) = a x^2 / 2``.

    The optimizer's ``init``, ``query`` and ``update`` rules are applied to symbols (a map
    without ``init`` has the state ``(x, v)``); state components that never change and never
    feed the others (the velocity of plain GD) are dropped, since their eigenvalue 1 says
    nothing about stability. A map that is not linear in its state on the quadratic (Adam,
    RMSProp) is refused: its linear view with a frozen preconditioner (``opt.frozen()``,
    where ``a`` stands for an eigenvalue of ``P^{-1} H``) has the threshold.

    Examples
    --------
    >>> from minimal_eos import HeavyBall
    >>> update_matrix(HeavyBall(beta=sp.Symbol("beta")))
    Matrix([
    [-a*eta + 1, beta],
    [    -a*eta, beta]])
    """
    x = sp.Symbol("_x")
    size = len(optimizer.init(x)) if hasattr(optimizer, "init") else 2
    state = (x, sp.Symbol("_v"), *sp.symbols(f"_s2:{size}"))[:size]
    new = optimizer.update(state, a * optimizer.query(state), eta)
    m = sp.Matrix([[sp.expand(sp.diff(ni, s)) for s in state] for ni in new])
    if m.free_symbols & set(state):
        raise ValueError(
            f"the update of {type(optimizer).__name__} is not linear in its state on a "
            f"quadratic; derive the threshold of its frozen() view"
        )
    keep = [
        j for j in range(m.shape[0])
        if not (m.row(j) == sp.eye(m.shape[0]).row(j) and m.col(j) == sp.eye(m.shape[0]).col(j))
    ]
    return m.extract(keep, keep)


def characteristic_polynomial(m: sp.Matrix, z: sp.Symbol = z_sym) -> sp.Poly:
    """``det(z I - M)`` as a polynomial in ``z``."""
    return sp.Poly(sp.expand((z * sp.eye(m.shape[0]) - m).det()), z)


def schur_cohn_conditions(poly: sp.Poly) -> list[sp.Expr]:
    """Expressions ``D_n, ..., D_1`` with: every root of ``poly`` in ``|z| < 1`` iff all ``> 0``.

    Notes
    -----
    With ``p_n = poly`` of coefficients ``c_n, ..., c_0`` and ``p*(z) = z^k p(1/z)``,
    ``D_k = c_k^2 - c_0^2`` and ``p_{k-1}(z) = (c_k p_k(z) - c_0 p_k*(z)) / z``.
    """
    coeffs = [sp.expand(c) for c in poly.all_coeffs()]  # c_n, ..., c_0
    out = []
    while len(coeffs) > 1:
        ck, c0 = coeffs[0], coeffs[-1]
        out.append(sp.factor(ck**2 - c0**2))
        # coefficients of c_k p(z) - c_0 p*(z); the constant term cancels exactly
        nxt = [sp.expand(ck * ci - c0 * cr) for ci, cr in zip(coeffs, coeffs[::-1], strict=True)]
        coeffs = nxt[:-1]
    return out


@dataclass(frozen=True)
class Threshold:
    """A derived stability threshold.

    Attributes
    ----------
    expr
        The critical sharpness ``a*`` as a sympy expression in the map's parameters: the
        map is stable for ``0 < a < a*`` and unstable just above it.
    matrix
        The update matrix ``M(a, ...)``.
    polynomial
        Its characteristic polynomial.
    conditions
        The Schur-Cohn expressions ``D_k``.
    """

    expr: sp.Expr
    matrix: sp.Matrix
    polynomial: sp.Poly
    conditions: tuple[sp.Expr, ...]

    def __call__(self, **values: float) -> float:
        """Evaluate the threshold at numerical parameter values."""
        return float(self.expr.subs({sp.Symbol(k, real=True): v for k, v in values.items()}))


def spectral_radius(m: sp.Matrix, values: Mapping[sp.Symbol, float]) -> float:
    """Largest modulus of the eigenvalues of ``M`` at numerical parameter values."""
    num = np.array(m.subs(values).evalf(), dtype=float)
    return float(np.max(np.abs(np.linalg.eigvals(num))))


def stability_threshold(
    optimizer=None,
    *,
    matrix: sp.Matrix | None = None,
    a: sp.Symbol = a_sym,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    samples: int = 5,
    seed: int = 0,
) -> Threshold:
    """Derive the critical sharpness of a linear update map.

    Parameters
    ----------
    optimizer
        An update map with ``query``/``update`` rules (e.g. ``HeavyBall(beta=beta_sym)``);
        its momentum may be a sympy symbol. Give this or ``matrix``.
    matrix
        Alternatively the update matrix ``M`` itself, in the symbol ``a`` and parameters.
    a
        The sharpness symbol.
    ranges
        Ranges of the parameters (by symbol name) over which the branch of the threshold is
        selected and checked; defaults to ``eta`` in (0.05, 3), ``beta`` in (0, 0.95), and
        (0.1, 1) for any other parameter.
    samples
        Number of random parameter points at which the branch is selected and checked,
        besides the corners of the ranges.
    seed
        Seed of those points.

    Returns
    -------
    Threshold

    Notes
    -----
    Candidates are the positive roots in ``a`` of the factors of the Schur-Cohn
    expressions ``D_k``. At every corner of the parameter ranges and at ``samples`` random
    points inside them the threshold is the first
    candidate with ``rho(M) < 1`` on its left and ``rho(M) > 1`` on its right, where the
    spectral radius ``rho`` comes from a numerical eigendecomposition: an independent check
    of the symbolic conditions. The candidate expression that is the threshold at every
    point is returned; if none is, a ValueError says the threshold is piecewise there.

    Examples
    --------
    >>> from minimal_eos import Nesterov
    >>> stability_threshold(Nesterov(beta=beta_sym)).expr
    2*(beta + 1)/(eta*(2*beta + 1))
    """
    if (optimizer is None) == (matrix is None):
        raise ValueError("give exactly one of optimizer and matrix")
    m = update_matrix(optimizer, a=a) if matrix is None else sp.Matrix(matrix)
    # floats become exact rationals, so that factoring finds the true boundary factors
    m = m.applyfunc(lambda e: sp.nsimplify(e, rational=True))
    if a not in m.free_symbols:
        raise ValueError(f"the update matrix does not depend on the sharpness symbol {a}")
    poly = characteristic_polynomial(m)
    conds = schur_cohn_conditions(poly)
    candidates: list[sp.Expr] = []
    for cond in conds:
        for factor in sp.factor_list(cond)[1]:
            f = factor[0]
            if a in f.free_symbols:
                candidates.extend(r for r in sp.solve(f, a) if r not in candidates)
    if not candidates:
        raise ValueError("no stability boundary in the sharpness: the map never changes stability")
    params = sorted(m.free_symbols - {a}, key=str)
    rng = np.random.default_rng(seed)
    rngs = dict(DEFAULT_RANGES, **(ranges or {}))
    boxes = [rngs.get(s.name, (0.1, 1.0)) for s in params]
    points = [dict(zip(params, corner, strict=True)) for corner in itertools.product(*boxes)]
    points += [{s: rng.uniform(*box) for s, box in zip(params, boxes, strict=True)}
               for _ in range(samples)]
    chosen: set[int] | None = None
    for vals in points:
        numeric = []
        for i, c in enumerate(candidates):
            val = complex(c.subs(vals).evalf())
            if abs(val.imag) < 1e-12 and val.real > 0:
                numeric.append((val.real, i))
        numeric.sort()
        found = _first_loss_of_stability(m, a, vals, numeric)
        ok = {i for v, i in numeric if found is not None and np.isclose(v, found, rtol=1e-9)}
        chosen = ok if chosen is None else chosen & ok
    if not chosen:
        raise ValueError(
            "the threshold is not one expression over the sampled parameter ranges; "
            "narrow the ranges"
        )
    expr = sp.simplify(sp.factor(candidates[min(chosen)]))
    return Threshold(expr, m, poly, tuple(conds))


def _first_loss_of_stability(m, a, vals, numeric) -> float | None:
    """First candidate value where the spectral radius crosses 1 from below."""
    left = 0.0
    for val, _ in numeric:
        mid_left = 0.5 * (left + val)
        right = val * (1 + 1e-6) + 1e-9
        if spectral_radius(m, {**vals, a: mid_left}) < 1 and spectral_radius(
            m, {**vals, a: right}
        ) > 1:
            return val
        left = val
    return None


def known_thresholds() -> dict[str, sp.Expr]:
    """The closed forms the derivation must reproduce, in ``eta`` and ``beta``.

    For ``"sgd"`` the sharpness is the batch sharpness; for ``"rmsprop"`` and ``"adam"``
    (momentum ``beta1 = beta``) it is the preconditioned sharpness ``lambda_max(P^{-1} H)``.
    """
    return {
        "gd": 2 / eta_sym,
        "heavy_ball": 2 * (1 + beta_sym) / eta_sym,
        "nesterov": (2 + 2 * beta_sym) / ((1 + 2 * beta_sym) * eta_sym),
        "sgd": 2 / eta_sym,
        "rmsprop": 2 / eta_sym,
        "adam": (2 + 2 * beta_sym) / ((1 - beta_sym) * eta_sym),
    }


def derive_all(names: Sequence[str] = ("gd", "heavy_ball", "nesterov")) -> dict[str, Threshold]:
    """Derive the thresholds of the named optimizers, with a symbolic momentum ``beta``.

    ``"rmsprop"`` and ``"adam"`` are derived from their frozen-preconditioner views (Adam's
    ``beta1`` is the symbol ``beta``), ``"sgd"`` from its update on a mini-batch quadratic.
    """
    from .optimizers import OPTIMIZERS, Adam, RMSProp

    out = {}
    for name in names:
        cls = OPTIMIZERS[name]
        if name == "adam":
            opt = Adam(beta1=beta_sym).frozen()
        elif name == "rmsprop":
            opt = RMSProp().frozen()
        elif name in ("gd", "sgd"):
            opt = cls()
        else:
            opt = cls(beta=beta_sym)
        out[name] = stability_threshold(opt)
    return out


def preconditioned_sharpness(hessian, p) -> float:
    """Largest eigenvalue of ``P^{-1} H``, i.e. of ``P^{-1/2} H P^{-1/2}``.

    Parameters
    ----------
    hessian
        A symmetric matrix ``H``, shape ``(d, d)``.
    p
        The preconditioner: a positive vector (the diagonal of ``P``), shape ``(d,)``, or a
        symmetric positive definite matrix, shape ``(d, d)``.

    Returns
    -------
    float

    Notes
    -----
    ``P^{-1} H`` is similar to the symmetric ``P^{-1/2} H P^{-1/2}``, so its eigenvalues are
    real; with ``P = Q diag(q) Q^T``, ``P^{-1/2} = Q diag(q^{-1/2}) Q^T``. This is the
    quantity that an adaptive method with frozen preconditioner ``P`` compares with its
    threshold (:class:`~minimal_eos.optimizers.FrozenPreconditioner`).

    References
    ----------
    Cohen et al., arXiv 2207.14484.

    Examples
    --------
    >>> preconditioned_sharpness(np.diag([4.0, 1.0]), np.array([2.0, 0.25]))
    4.0
    """
    h = np.asarray(hessian, dtype=float)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or not np.all(np.isfinite(h)):
        raise ValueError(f"hessian must be a finite square matrix; got shape {h.shape}")
    if not np.allclose(h, h.T, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(h).max())):
        raise ValueError("hessian must be symmetric")
    pm = np.asarray(p, dtype=float)
    if pm.shape not in ((h.shape[0],), h.shape) or not np.all(np.isfinite(pm)):
        raise ValueError(
            f"p must be a finite vector of shape ({h.shape[0]},) or a matrix of shape "
            f"{h.shape}; got shape {pm.shape}"
        )
    if pm.ndim == 1:
        if not np.all(pm > 0):
            raise ValueError("p must be positive")
        root = 1.0 / np.sqrt(pm)
        sym = root[:, None] * h * root[None, :]
    else:
        if not np.allclose(pm, pm.T, rtol=1e-12, atol=0.0):
            raise ValueError("p must be symmetric")
        q, basis = np.linalg.eigh(pm)
        if not np.all(q > 0):
            raise ValueError("p must be positive definite")
        inv_root = (basis / np.sqrt(q)) @ basis.T
        sym = inv_root @ h @ inv_root
    return float(np.linalg.eigvalsh(0.5 * (sym + sym.T))[-1])
