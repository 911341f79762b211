"""Predictions for scalar networks, ``l(xy)`` models and the uv model (the catapult).

Gradient flow
    :func:`conserved_quantities` (``w_i^2 - w_j^2``, ``x^2 - y^2``, ``u u^T - v v^T``,
    ``a_j^2 - |w_j|^2`` for ReLU), :func:`gradient_flow_solution` (the minimum gradient flow
    reaches from a point, in closed form) and :func:`gfs_sharpness`, which GD decreases
    monotonically (Kreisler et al.).
Minima and their flips
    :func:`stability_threshold` ``2 / S``; :func:`flip_coefficients` and
    :func:`chen_bruna_condition` (the third-order condition that decides whether a stable
    period-2 orbit appears when ``eta`` crosses ``2 / S``); :func:`period_two_polynomial`
    and :func:`period_two_orbits` (period-2 orbits of a one-dimensional loss, derived
    symbolically); :func:`scalar_period_two` (the period-2 orbits of a scalar network, which
    lie on its balanced line, with all their multipliers in closed form).
``l(xy)`` models
    :func:`product_reduction` (GD as an exact map of ``(s, D) = (xy, x^2 - y^2)``),
    :func:`edge_imbalance`, :func:`alignment_orbit` and :func:`alignment_condition`
    (trajectory alignment: the iterates follow the period-2 orbits of the map of ``s`` at
    frozen ``D`` down to the minimum of sharpness ``2 / eta``).
The uv model
    :func:`uv_reduced_step` (GD as an exact map of ``(f, lambda)``),
    :func:`catapult_phase`, :func:`universal_catapult` and :func:`predict_catapult`
    (lazy below ``eta lambda_0 = 2``, catapult up to 4, divergence above; the final
    sharpness below ``2 / eta``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ._checks import as_float_array, positive_float, positive_int, sympy_expr
from .models.base import Model
from .models.product import ProductModel
from .models.scalar import ScalarNetwork
from .models.two_layer import TwoLayerNetwork
from .models.uv import UVModel

# -- gradient flow -------------------------------------------------------------------------


def conserved_quantities(model: Model, theta) -> np.ndarray:
    """Quantities that gradient flow conserves, evaluated at ``theta``.

    Returns
    -------
    numpy.ndarray
        - :class:`ScalarNetwork`: ``w_i^2 - w_D^2`` for ``i < D`` (length ``D - 1``);
        - :class:`ProductModel`: ``[x^2 - y^2]``;
        - :class:`UVModel`: the upper triangle (with diagonal) of ``u u^T - v v^T``;
        - :class:`TwoLayerNetwork` with ReLU: ``a_j^2 - |w_j|^2`` for every unit.

    Notes
    -----
    For ``L = l(prod_i w_i)``, ``d(w_i^2)/dt = -2 l'(P) P`` is the same for every ``i``.
    For the uv model ``du/dt = -c r v`` and ``dv/dt = -c r u``, so
    ``d(u_i u_j - v_i v_j)/dt = 0``. For a ReLU unit ``a sigma(w . x)`` (1-homogeneous),
    ``d(a^2)/dt = d|w|^2/dt``. Du, Hu, Lee (arXiv 1806.00900); Kreisler et al. (ICML 2023).
    One GD step changes them by ``O(eta^2)``: see :func:`product_reduction`.

    Examples
    --------
    >>> conserved_quantities(ScalarNetwork(depth=3), [1.0, 2.0, 3.0])
    array([-8., -5.])
    """
    th = model.check_theta(theta)
    if isinstance(model, ScalarNetwork):
        return th[:-1] ** 2 - th[-1] ** 2
    if isinstance(model, ProductModel):
        return np.array([th[0] ** 2 - th[1] ** 2])
    if isinstance(model, UVModel):
        u, v = model.split(th)
        mat = np.outer(u, u) - np.outer(v, v)
        return mat[np.triu_indices(model.width)]
    if isinstance(model, TwoLayerNetwork) and model.activation == "relu":
        w, a = model.split(th)
        return a**2 - np.sum(w**2, axis=1)
    raise ValueError(f"no conserved quantities known for {model!r:.80}: accepted are "
                     f"ScalarNetwork, ProductModel, UVModel and ReLU TwoLayerNetwork")


def _scalar_gfs_squares(net: ScalarNetwork, w: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(w_i^2 at the gradient-flow solution, P*, mean x^2)`` for a scalar network."""
    x = np.array(net.x)
    y = np.array(net.y)
    m2 = float(np.mean(x * x))
    pstar = float(np.mean(x * y)) / m2 if m2 > 0 else 0.0
    c = w**2 - w[0] ** 2  # conserved offsets: w_i^2 = a + c_i along the flow
    lo = -float(np.min(c))

    def prod(a: float) -> float:
        return float(np.prod(a + c))

    target = pstar**2
    if target == 0.0:
        return lo + c, pstar, m2
    hi = lo + 1.0
    while prod(hi) < target:
        hi = lo + 2.0 * (hi - lo)
    for _ in range(200):  # bisection: prod(a + c) is increasing for a > lo
        mid = 0.5 * (lo + hi)
        if prod(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4e-16 * max(1.0, abs(hi)):
            break
    # one Newton step polishes the root
    a = 0.5 * (lo + hi)
    terms = a + c
    dprod = float(np.sum(np.prod(terms) / terms)) if np.all(terms > 0) else 0.0
    if dprod > 0:
        a = a - (prod(a) - target) / dprod
    return a + c, pstar, m2


def gradient_flow_solution(model: Model, theta) -> np.ndarray:
    """The minimum that gradient flow ``dw/dt = -grad L(w)`` reaches from ``theta``.

    Supported models: :class:`ScalarNetwork`, :class:`ProductModel`, :class:`UVModel`.

    Notes
    -----
    *Scalar networks.* The flow keeps ``w_i^2 = a + c_i`` with ``c_i = w_i^2 - w_1^2``
    fixed, and ends where the product reaches ``P* = <x y> / <x^2>``: ``a`` is the root of
    ``prod_i (a + c_i) = P*^2`` with ``a > -min c_i`` (the product is increasing there).
    Signs are kept, except that when ``P`` must change sign the coordinate of smallest
    magnitude crosses zero.
    *l(xy).* ``D = x^2 - y^2`` is kept and ``s = xy`` flows to the minimum ``s*`` of ``l``
    that it reaches (:meth:`ProductModel.minimizing_product`), so
    ``x^2 = (D + sqrt(D^2 + 4 s*^2)) / 2`` and ``y^2 = (-D + sqrt(D^2 + 4 s*^2)) / 2``.
    *uv.* ``u +- v`` evolve as ``exp(-+tau)`` with ``tau = int c r dt``, so with
    ``A = |u + v|^2``, ``B = |u - v|^2`` the flow ends at ``z = exp(2 tau)`` solving
    ``A / z - B z = 4 y / c``.
    Kreisler, Nacson, Soudry, Carmon, ICML 2023 ("Gradient descent monotonically decreases
    the sharpness of gradient flow solutions in scalar networks and beyond").

    Examples
    --------
    >>> gradient_flow_solution(ProductModel("squared"), [2.0, 0.0])   # D = 4, s* = 1
    array([2.05817103, 0.48586827])
    """
    th = model.check_theta(theta)
    if isinstance(model, ScalarNetwork):
        sq, pstar, _ = _scalar_gfs_squares(model, th)
        out = np.sqrt(np.maximum(sq, 0.0)) * np.where(th < 0, -1.0, 1.0)
        p0 = float(np.prod(th))
        if pstar != 0.0 and (p0 == 0.0 or math.copysign(1.0, p0) != math.copysign(1.0, pstar)):
            k = int(np.argmin(np.abs(th)))  # the coordinate that crosses zero
            out[k] = math.copysign(out[k], pstar * float(np.prod(np.delete(out, k))))
        return out
    if isinstance(model, ProductModel):
        x, y = th
        d = x * x - y * y
        s = model.minimizing_product(x * y)
        q = math.hypot(d, 2.0 * s)
        ax, ay = math.sqrt(max(0.5 * (q + d), 0.0)), math.sqrt(max(0.5 * (q - d), 0.0))
        # signs: the larger coordinate keeps its sign, the other one follows sign(s*)
        if abs(x) >= abs(y):
            sx = math.copysign(1.0, x)
            sy = sx * math.copysign(1.0, s) if s != 0 else math.copysign(1.0, y)
        else:
            sy = math.copysign(1.0, y)
            sx = sy * math.copysign(1.0, s) if s != 0 else math.copysign(1.0, x)
        return np.array([sx * ax, sy * ay])
    if isinstance(model, UVModel):
        u, v = model.split(th)
        c, y = model.c, model.y
        pp, mm = u + v, u - v
        a, b = float(pp @ pp), float(mm @ mm)
        k = 4.0 * y / c
        if b == 0.0:
            if a == 0.0 or k <= 0.0:
                raise ValueError("gradient flow from this point does not reach a minimum "
                                 "(u = v with a target it cannot reach)")
            z = a / k
        else:
            z = (-k + math.sqrt(k * k + 4.0 * a * b)) / (2.0 * b)
        if z <= 0.0:
            raise ValueError("gradient flow from this point does not reach a minimum "
                             "(u = -v = 0)")
        e = math.sqrt(z)
        return np.concatenate([(pp / e + e * mm) / 2.0, (pp / e - e * mm) / 2.0])
    raise ValueError(f"no closed-form gradient flow solution for {type(model).__name__}: "
                     f"accepted are ScalarNetwork, ProductModel, UVModel")


def gfs_sharpness(model: Model, theta) -> float:
    """The sharpness of :func:`gradient_flow_solution`, in closed form.

    Notes
    -----
    Scalar networks: ``<x^2> sum_i prod_{j != i} w_j^2`` at the solution (the Hessian
    there is ``<x^2> g g^T`` with ``g_i = prod_{j != i} w_j``). ``l(xy)``:
    ``l''(s*) sqrt(D^2 + 4 s*^2)``. uv: ``lambda = c^2 (|u|^2 + |v|^2)`` at the solution.
    GD decreases it monotonically for scalar networks (Kreisler et al., ICML 2023).

    Examples
    --------
    >>> round(gfs_sharpness(ScalarNetwork(depth=2), [2.0, 0.5]), 12)   # already a minimum
    4.25
    """
    th = model.check_theta(theta)
    if isinstance(model, ScalarNetwork):
        sq, _, m2 = _scalar_gfs_squares(model, th)
        sq = np.maximum(sq, 0.0)
        return float(m2 * sum(np.prod(np.delete(sq, i)) for i in range(len(sq))))
    if isinstance(model, ProductModel):
        s = model.minimizing_product(th[0] * th[1])
        l2 = _product_derivs(model)[1][2](s)
        return l2 * math.hypot(th[0] ** 2 - th[1] ** 2, 2.0 * s)
    if isinstance(model, UVModel):
        return model.ntk(gradient_flow_solution(model, th))
    raise ValueError(f"no closed-form gradient flow solution for {type(model).__name__}: "
                     f"accepted are ScalarNetwork, ProductModel, UVModel")


def stability_threshold(model: Model, theta) -> float:
    """``2 / S(theta)``: GD at a minimum ``theta`` is linearly stable iff ``eta < 2 / S``.

    Examples
    --------
    >>> stability_threshold(ScalarNetwork(depth=2), [1.0, 1.0])
    1.0
    """
    s = model.sharpness(model.check_theta(theta))
    if s <= 0:
        raise ValueError(f"the sharpness at theta is {s:.3g} <= 0: no finite threshold")
    return 2.0 / s


def random_minimum(net: ScalarNetwork, rng: np.random.Generator, *, low: float = 0.5,
                   high: float = 2.0) -> np.ndarray:
    """A minimum of a scalar network: ``|w_i|`` uniform in ``[low, high]`` for ``i < D``,
    random signs, and ``w_D`` chosen so that the product is ``P* = <x y> / <x^2>``."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    x, y = np.array(net.x), np.array(net.y)
    pstar = float(np.mean(x * y) / np.mean(x * x))
    w = rng.uniform(low, high, net.depth) * rng.choice([-1.0, 1.0], net.depth)
    w[-1] = pstar / float(np.prod(w[:-1]))
    return w


def imbalance_factor(net: ScalarNetwork, theta, eta: float) -> float:
    """``max_{i<j} eta^2 g(P)^2 P^2 / (w_i^2 w_j^2)`` with ``g(P) = <x (x P - y)>``.

    One GD step multiplies the imbalance ``w_i^2 - w_j^2`` by
    ``1 - eta^2 g^2 P^2 / (w_i^2 w_j^2)``; when this factor is at most 2 every imbalance
    shrinks in magnitude, and with them the gradient-flow solution's sharpness
    (exactly for depth 2, where it is ``<x^2> sqrt(D^2 + 4 P*^2)``; checked numerically
    for larger depths in the tests). Kreisler et al. (ICML 2023).
    """
    w = net.check_theta(theta)
    eta = positive_float(eta, "eta")
    x, y = np.array(net.x), np.array(net.y)
    p = float(np.prod(w))
    g = float(np.mean(x * (x * p - y)))
    if net.depth < 2:
        return 0.0
    sq = np.sort(w**2)
    return float(eta**2 * g**2 * p**2 / (sq[0] * sq[1])) if sq[0] * sq[1] > 0 else math.inf


# -- flips of one-dimensional maps -----------------------------------------------------------


def _as_expr(expr, x) -> tuple[sp.Expr, sp.Symbol]:
    if not isinstance(x, sp.Symbol):
        raise ValueError(f"x must be a sympy Symbol; got {x!r}")
    expr = sympy_expr(expr, "expr")
    if expr.free_symbols - {x}:
        raise ValueError(f"the loss must depend on {x} only; it also has "
                         f"{sorted(map(str, expr.free_symbols - {x}))}")
    return expr, x


def flip_coefficients(expr, x: sp.Symbol, x_star) -> dict[str, sp.Expr]:
    """Taylor data of GD's flip at a minimum ``x*`` of a one-dimensional loss ``f``.

    Returns
    -------
    dict
        ``S = f''(x*)``, ``f3 = f'''(x*)``, ``f4 = f''''(x*)``, ``condition`` =
        ``3 f3^2 - S f4`` (Chen & Bruna's), ``normal_form`` ``= c2^2 + c3`` at
        ``eta = 2 / S``, and ``amplitude2`` = the factor ``k`` in the leading-order orbit
        amplitude ``A^2 = k (eta S - 2)``.

    Notes
    -----
    With ``e = x - x*`` the map is ``e+ = -(1 + mu) e + c2 e^2 + c3 e^3 + ...`` with
    ``mu = eta S - 2``, ``c2 = -eta f3 / 2``, ``c3 = -eta f4 / 6``. Its second iterate is
    ``e + ((1 + mu)^2 - 1) e - 2 (c2^2 + c3) e^3 + ...``, so for ``c2^2 + c3 > 0`` a period-2
    orbit ``+-A`` with ``A^2 = mu / (c2^2 + c3)`` appears as ``eta`` crosses ``2 / S``
    (supercritical flip), with multiplier ``1 - 4 mu + O(mu^2)`` (stable). At ``eta = 2/S``,
    ``c2^2 + c3 = (3 f3^2 - S f4) / (3 S^2)``: the orbit exists above ``2/S`` and is stable
    iff ``3 f'''^2 - f'' f'''' > 0`` (Chen & Bruna, arXiv 2206.04172, their 1-D condition);
    for the opposite sign it exists below ``2/S`` and is unstable (subcritical).

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> flip_coefficients((x**2 - 1)**2 / 4, x, 1)["condition"]
    96
    """
    expr, x = _as_expr(expr, x)
    xs = (sp.nsimplify(x_star) if isinstance(x_star, float)
          else sympy_expr(x_star, "x_star"))
    s = sp.simplify(sp.diff(expr, x, 2).subs(x, xs))
    f3 = sp.simplify(sp.diff(expr, x, 3).subs(x, xs))
    f4 = sp.simplify(sp.diff(expr, x, 4).subs(x, xs))
    cond = sp.simplify(3 * f3**2 - s * f4)
    normal = sp.simplify(cond / (3 * s**2))
    return {"S": s, "f3": f3, "f4": f4, "condition": cond, "normal_form": normal,
            "amplitude2": sp.simplify(1 / normal) if normal != 0 else sp.oo}


def chen_bruna_condition(expr, x: sp.Symbol, x_star) -> sp.Expr:
    """``3 f'''(x*)^2 - f''(x*) f''''(x*)``: positive iff GD just above ``eta = 2 / f''(x*)``
    has a stable period-2 orbit around ``x*`` (see :func:`flip_coefficients`).

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> chen_bruna_condition(sp.cos(x), x, sp.pi)   # f'' = 1, f''' = 0, f'''' = -1 at pi
    1
    """
    return flip_coefficients(expr, x, x_star)["condition"]


def period_two_polynomial(expr, x: sp.Symbol, eta) -> sp.Expr:
    """The polynomial whose roots are the points of period exactly 2 of GD on ``expr``.

    ``(F(F(x)) - x) / (F(x) - x)`` with ``F(x) = x - eta f'(x)``, factored; ``eta`` may be
    a number or a sympy symbol. Only for polynomial losses.

    Examples
    --------
    >>> x, eta = sp.symbols("x eta")
    >>> period_two_polynomial((x**2 - 1)**2 / 4, x, eta)
    -(eta*x**2 - eta - 2)*(eta**2*x**4 - eta**2*x**2 - eta*x**2 + 1)
    """
    expr, x = _as_expr(expr, x)
    if not expr.is_polynomial(x):
        raise ValueError("period_two_polynomial needs a polynomial loss; use "
                         "analysis.orbits.periodic_orbits for other losses")
    f = sp.expand(x - eta * sp.diff(expr, x))
    f2 = sp.expand(f.subs(x, f))
    return sp.factor(sp.cancel((f2 - x) / (f - x)))


def period_two_orbits(expr, x: sp.Symbol, eta: float) -> list[tuple[float, float]]:
    """The real period-2 orbits ``(x1, x2)``, ``x1 < x2``, of GD on a polynomial 1-D loss.

    The roots of :func:`period_two_polynomial` at this ``eta`` come in pairs
    ``x2 = F(x1)``; each orbit is listed once.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> [tuple(round(v, 6) for v in o) for o in period_two_orbits((x**2 - 1)**2 / 4, x, 1.1)]
    [(-1.678744, 1.678744), (-1.116063, -0.814552), (0.814552, 1.116063)]
    """
    eta = positive_float(eta, "eta")
    expr, x = _as_expr(expr, x)
    e = sp.nsimplify(eta, rational=True)
    poly = sp.Poly(sp.numer(sp.together(period_two_polynomial(expr, x, e))), x)
    fx = sp.lambdify(x, x - e * sp.diff(expr, x), "math")
    roots = [complex(r) for r in poly.nroots(n=30, maxsteps=200)]
    real = sorted(r.real for r in roots if abs(r.imag) <= 1e-10 * (1 + abs(r)))
    orbits: list[tuple[float, float]] = []
    for r in real:
        pair = tuple(sorted((r, float(fx(r)))))
        if not any(abs(pair[0] - o[0]) + abs(pair[1] - o[1]) <= 1e-8 * (1 + abs(r))
                   for o in orbits):
            orbits.append(pair)
    return sorted(orbits)


def period_two_multiplier(expr, x: sp.Symbol, eta: float, orbit) -> float:
    """``F'(x1) F'(x2) = (1 - eta f''(x1)) (1 - eta f''(x2))`` of a 1-D period-2 orbit."""
    expr, x = _as_expr(expr, x)
    f2 = sp.lambdify(x, sp.diff(expr, x, 2), "math")
    x1, x2 = orbit
    return (1.0 - eta * f2(x1)) * (1.0 - eta * f2(x2))


# -- scalar networks: the balanced line ------------------------------------------------------


def balanced_loss(net: ScalarNetwork) -> tuple[sp.Symbol, sp.Expr]:
    """``(w, phi(w))`` with ``phi(w) = L(w, ..., w) / D``: GD on the balanced line is GD on phi.

    Notes
    -----
    At ``w_1 = ... = w_D = w``, ``dL/dw_i = g(P) w^(D-1)`` with ``g(P) = <x (x P - y)>``,
    the same for every ``i``, so the line is invariant and
    ``w+ = w - eta g(w^D) w^(D-1) = w - eta phi'(w)``.
    """
    w = sp.Symbol("w", real=True)
    x = [sp.nsimplify(v, rational=True) for v in net.x]
    y = [sp.nsimplify(v, rational=True) for v in net.y]
    n = len(x)
    loss = sum((xk * w**net.depth - yk) ** 2 for xk, yk in zip(x, y, strict=True)) / (2 * n)
    return w, sp.expand(loss / net.depth)


@dataclass(frozen=True)
class ScalarOrbit:
    """A period-2 orbit of GD on a scalar network (on its balanced line).

    Attributes
    ----------
    points
        The two points, shape ``(2, D)`` (all coordinates equal in each).
    along
        The multiplier along the balanced line, ``(1 - eta phi''(w1)) (1 - eta phi''(w2))``.
    transverse
        The multiplier across it (multiplicity ``D - 1``),
        ``prod_t (1 + eta g(P_t) w_t^(D-2))``.
    stable
        Both multipliers inside the unit disc.
    """

    points: np.ndarray
    along: float
    transverse: float
    stable: bool

    @property
    def multipliers(self) -> np.ndarray:
        """All ``D`` multipliers (largest modulus first)."""
        d = self.points.shape[1]
        m = np.array([self.along] + [self.transverse] * (d - 1))
        return m[np.argsort(-np.abs(m), kind="stable")]


def scalar_period_two(net: ScalarNetwork, eta: float) -> list[ScalarOrbit]:
    """The period-2 orbits of GD on a scalar network near its balanced minima, derived symbolically.

    Notes
    -----
    One GD step multiplies each imbalance ``w_i^2 - w_j^2`` by
    ``1 - eta^2 g(P)^2 P^2 / (w_i^2 w_j^2)``; on a period-2 orbit where these factors lie in
    ``(-1, 1)`` (near a minimum ``g`` is small) every imbalance must vanish, so the orbits
    lie on the balanced lines ``|w_1| = ... = |w_D|``. (At an unbalanced minimum that
    loses stability there is no nearby period-2 orbit: GD drifts along the minima instead.)
    On the line GD is GD on ``phi`` (:func:`balanced_loss`), whose period-2 orbits
    :func:`period_two_orbits` derives. The Jacobian there is ``a I + b 1 1^T``
    (permutation symmetry): along ``1`` it is ``1 - eta phi''(w)``, across it
    ``1 - eta (H_11 - H_12) = 1 + eta g(P) w^(D-2)``. Orbits with sign flips
    (an even number of negative coordinates) are images of these.
    Chen & Bruna (arXiv 2206.04172); Kreisler et al. (ICML 2023).
    """
    if not isinstance(net, ScalarNetwork):
        raise ValueError("scalar_period_two needs a ScalarNetwork")
    eta = positive_float(eta, "eta")
    w, phi = balanced_loss(net)
    dep = net.depth
    x, y = np.array(net.x), np.array(net.y)

    def g(p: float) -> float:
        return float(np.mean(x * (x * p - y)))

    out = []
    for w1, w2 in period_two_orbits(phi, w, eta):
        along = period_two_multiplier(phi, w, eta, (w1, w2))
        trans = (1.0 + eta * g(w1**dep) * w1 ** (dep - 2)) * (1.0 + eta * g(w2**dep)
                                                               * w2 ** (dep - 2))
        if dep == 1:
            trans = 0.0
        pts = np.array([[w1] * dep, [w2] * dep])
        stable = abs(along) < 1.0 and (dep == 1 or abs(trans) < 1.0)
        out.append(ScalarOrbit(points=pts, along=float(along), transverse=float(trans),
                               stable=bool(stable)))
    return out


# -- l(xy): exact reduction and trajectory alignment -----------------------------------------


@functools.lru_cache(maxsize=64)
def _product_derivs(model: ProductModel):
    """``(s, [l, l', l'', l''', l''''])``, the derivatives as float functions (cached)."""
    s, l_expr = model.one_dimensional()
    return s, [sp.lambdify(s, sp.diff(l_expr, s, k), "math") for k in range(5)]


def product_reduction(model: ProductModel, eta: float):
    """GD on ``l(xy)`` as an exact map of ``(s, D) = (x y, x^2 - y^2)``.

    Returns a function ``step(s, D) -> (s+, D+)`` (numpy arrays or floats).

    Notes
    -----
    With ``q = x^2 + y^2 = sqrt(4 s^2 + D^2)``, ``x+ = x - eta l'(s) y`` and
    ``y+ = y - eta l'(s) x`` give ``s+ = s (1 + eta^2 l'(s)^2) - eta l'(s) q`` and
    ``D+ = D (1 - eta^2 l'(s)^2)``: the imbalance only shrinks while
    ``eta |l'(s)| < sqrt(2)``, and with it the gradient-flow solution's sharpness
    ``l''(s*) sqrt(D^2 + 4 s*^2)`` (the monotone decrease of Kreisler et al. for these
    models). Song & Yun (arXiv 2307.04204); Zhu et al. (arXiv 2210.03294).
    """
    if not isinstance(model, ProductModel):
        raise ValueError("product_reduction needs a ProductModel")
    eta = positive_float(eta, "eta")
    s_sym, l_expr = model.one_dimensional()
    lp = sp.lambdify(s_sym, sp.diff(l_expr, s_sym), "numpy")

    def step(s, d):
        g = lp(s)
        q = np.sqrt(4.0 * np.square(s) + np.square(d))
        return s * (1.0 + (eta * g) ** 2) - eta * g * q, d * (1.0 - (eta * g) ** 2)

    return step


def _minimum_product(model: ProductModel) -> float:
    return model.minimizing_product(1.0 if model.target == 0 else model.target)


def edge_imbalance(model: ProductModel, eta: float) -> float:
    """``|D|`` of the minimum whose sharpness is exactly ``2 / eta`` (Zhu et al.'s
    eta-EoS minimum): ``l''(s*) sqrt(D^2 + 4 s*^2) = 2 / eta``.

    Raises ValueError when every minimum is sharper than ``2 / eta`` (``eta`` too large).

    Examples
    --------
    >>> round(edge_imbalance(ProductModel("quartic"), 0.2), 12)   # sqrt(1/eta^2 - 4)
    4.582575694956
    """
    eta = positive_float(eta, "eta")
    s_star = _minimum_product(model)
    _, der = _product_derivs(model)
    q = 2.0 / (eta * der[2](s_star))
    d2 = q * q - 4.0 * s_star**2
    if d2 < 0:
        raise ValueError(f"every minimum has sharpness >= {der[2](s_star) * 2 * abs(s_star):.6g}"
                         f" > 2/eta = {2 / eta:.6g}: no minimum at the edge")
    return math.sqrt(d2)


@functools.lru_cache(maxsize=64)
def _frozen_map(model: ProductModel, eta: float):
    """``g(s, D)``, ``dg/ds(s, D)`` and ``l''(s)`` as numpy functions (cached)."""
    s, l_expr = model.one_dimensional()
    d = sp.Symbol("D", real=True)
    lp = sp.diff(l_expr, s)
    g = s * (1 + eta**2 * lp**2) - eta * lp * sp.sqrt(4 * s**2 + d**2)
    return (sp.lambdify((s, d), g, "numpy"), sp.lambdify((s, d), sp.diff(g, s), "numpy"),
            sp.lambdify(s, sp.diff(l_expr, s, 2), "math"))


@functools.lru_cache(maxsize=64)
def alignment_condition(model: ProductModel, eta: float) -> float:
    """``c2^2 + c3`` of the frozen map ``s -> s (1 + eta^2 l'^2) - eta l'(s) sqrt(4 s^2 + D^2)``
    at its flip (``D`` at the edge): positive means that the frozen map has stable period-2
    orbits for ``D`` above the edge, which GD's iterates follow (trajectory alignment).

    Notes
    -----
    With ``lambda, alpha, beta = l'', l''', l''''`` at ``s*`` and ``q = 2 / (eta lambda)``
    the frozen map has ``g' = -1``,
    ``g'' = 2 eta^2 s* lambda^2 - eta (q alpha + lambda q'')`` and
    ``g''' = eta^2 (6 lambda^2 + 6 s* lambda alpha) - eta (q beta + 3 alpha q'' + lambda q''')``
    with ``q'', q'''`` the derivatives of ``sqrt(4 s^2 + D^2)``; computed here with sympy.
    """
    if not isinstance(model, ProductModel):
        raise ValueError("alignment_condition needs a ProductModel")
    d_edge = edge_imbalance(model, eta)
    s_star = _minimum_product(model)
    s, l_expr = model.one_dimensional()
    e, dd = sp.nsimplify(eta, rational=True), sp.Float(d_edge, 30)
    lp = sp.diff(l_expr, s)
    g = s * (1 + e**2 * lp**2) - e * lp * sp.sqrt(4 * s**2 + dd**2)
    at = {s: sp.Float(s_star, 30)}
    c2 = sp.diff(g, s, 2).subs(at) / 2
    c3 = sp.diff(g, s, 3).subs(at) / 6
    return float(sp.N(c2**2 + c3, 20))


def alignment_orbit(model: ProductModel, eta: float, imbalance: float, *,
                    s_star: float | None = None, tol: float = 1e-13,
                    max_iter: int = 100) -> tuple[float, float] | None:
    """The period-2 orbit ``(s1, s2)`` of ``s`` at frozen ``D`` around a minimum, or None.

    The frozen map is ``g_D(s) = s (1 + eta^2 l'(s)^2) - eta l'(s) sqrt(4 s^2 + D^2)``
    (the ``s``-part of :func:`product_reduction`). For ``|D|`` above
    :func:`edge_imbalance` (and a positive :func:`alignment_condition`) it has a period-2
    orbit around ``s*``, found here by Newton's method on ``g_D(g_D(s)) - s`` from the
    flip's leading-order amplitude ``A^2 = (eta S_D - 2) / (c2^2 + c3)``.
    Song & Yun's trajectory alignment: GD's ``(s_t, D_t)`` follow these orbits while ``D``
    slowly shrinks towards the edge, where the sharpness is ``2 / eta``.

    Parameters
    ----------
    s_star
        The minimum of ``l`` to look around; by default the one on the target's side
        (``c`` for squared and log cosh, ``+|c|`` for the quartic, whose other minimum
        ``-|c|`` mirrors it).
    """
    if not isinstance(model, ProductModel):
        raise ValueError("alignment_orbit needs a ProductModel")
    eta = positive_float(eta, "eta")
    d = float(as_float_array(imbalance, "imbalance", ndim=0))
    try:
        d_edge = edge_imbalance(model, eta)
    except ValueError:
        return None
    if abs(d) <= d_edge:
        return None
    ss = _minimum_product(model) if s_star is None else float(s_star)
    if model.loss_name == "quartic" and ss < 0:
        orbit = alignment_orbit(model, eta, d, s_star=-ss, tol=tol, max_iter=max_iter)
        return None if orbit is None else (-orbit[1], -orbit[0])
    if not math.isfinite(d * d):
        return None
    gfun, dgfun, l2 = _frozen_map(model, eta)
    mu = eta * l2(ss) * math.hypot(d, 2 * ss) - 2.0
    cond = alignment_condition(model, eta)
    if cond <= 0 or mu <= 0:
        return None
    amp = math.sqrt(mu / cond)
    s1 = np.float64(ss + amp)
    dd = np.float64(d)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            y1 = gfun(s1, dd)
            res = gfun(y1, dd) - s1
            slope = dgfun(y1, dd) * dgfun(s1, dd) - 1.0
            if not (np.isfinite(res) and np.isfinite(slope) and slope != 0.0):
                return None
            step = float(np.clip(res / slope, -0.5 * amp, 0.5 * amp))
            s1 = s1 - step
            if abs(step) <= tol * (1 + abs(s1)):
                break
        else:
            return None
        s2 = float(gfun(s1, dd))
    s1 = float(s1)
    if not (math.isfinite(s2) and abs(s1 - s2) > 1e3 * tol * (1 + abs(s1))
            and min(s1, s2) < ss < max(s1, s2)):
        return None
    return (min(s1, s2), max(s1, s2))


# -- the uv model: the catapult --------------------------------------------------------------


def uv_state(model: UVModel, theta) -> tuple[float, float]:
    """``(f, lambda)``: the output and the neural tangent kernel at ``theta``."""
    return model.output(theta), model.ntk(theta)


def uv_reduced_step(f, lam, eta: float, c: float, y: float = 0.0):
    """One GD step of the uv model as an exact map of ``(f, lambda)``.

    Notes
    -----
    With ``r = f - y``: ``u+ = u - eta c r v``, ``v+ = v - eta c r u`` give
    ``f+ = f - eta r lambda + eta^2 c^2 r^2 f`` and
    ``lambda+ = lambda - 4 eta c^2 r f + eta^2 c^2 r^2 lambda``; for ``y = 0``,
    ``lambda+ - lambda = eta c^2 f^2 (eta lambda - 4)``: the kernel (and the sharpness at
    the minimum reached) decreases while ``eta lambda < 4``.
    Lewkowycz et al. (arXiv 2003.02218); Kalra, He, Barkeshli (arXiv 2311.02076).
    """
    r = f - y
    c2 = c * c
    return (f - eta * r * lam + eta**2 * c2 * r * r * f,
            lam - 4.0 * eta * c2 * r * f + eta**2 * c2 * r * r * lam)


def uv_imbalance(model: UVModel, theta) -> float:
    """``Q = lambda^2 / c^4 - 4 f^2 / c^2 = (|u|^2 - |v|^2)^2 + 4 (|u|^2 |v|^2 - (u . v)^2)``.

    Notes
    -----
    A GD step maps ``(u, v)`` to ``(u, v) [[1, -a], [-a, 1]]`` with ``a = eta c r``, so both
    ``|u|^2 - |v|^2`` and the Gram determinant ``|u|^2 |v|^2 - (u . v)^2`` are multiplied by
    powers of ``1 - a^2``: ``Q+ = Q (1 - eta^2 c^2 r^2)^2`` exactly (gradient flow keeps
    ``Q``). As for ``l(xy)``, a period-2 orbit near a minimum needs ``Q = 0``; elsewhere GD
    at the edge drifts, ``Q`` shrinking, towards minima of lower sharpness.
    """
    f, lam = uv_state(model, theta)
    c = model.c
    return lam * lam / c**4 - 4.0 * f * f / (c * c)


CATAPULT_BOUNDARIES = (2.0, 4.0)


def catapult_phase(eta_lambda0: float) -> str:
    """The phase of the uv model at large width: ``"lazy"`` for ``eta lambda_0 <= 2``,
    ``"catapult"`` for ``2 < eta lambda_0 < 4``, ``"divergent"`` from 4.

    Notes
    -----
    In the large-width limit the reduced map of ``mu = eta lambda`` and
    ``z = eta^2 c^2 f^2`` (with ``y = 0``) is ``mu+ = mu + z (mu - 4)``,
    ``z+ = z (1 - mu + z)^2`` with ``z_0 -> 0``: below 2, ``z`` decays and ``mu`` stays;
    between 2 and 4, ``z`` grows (the loss spike) while ``mu`` falls until ``mu < 2``
    (the catapult); above 4, ``mu`` grows with ``z`` and the run diverges.
    At ``mu_0 = 2`` exactly, ``z+ = z (1 - z)^2 < z``: the loss never rises, so the phase
    is lazy. At ``mu_0 = 4`` exactly ``mu`` stays 4 and ``z+ = z (z - 3)^2`` wanders in
    ``[0, 4]`` without converging; it is labelled divergent with the runs above it.
    Lewkowycz et al. (arXiv 2003.02218).
    """
    x = positive_float(eta_lambda0, "eta_lambda0")
    if x <= CATAPULT_BOUNDARIES[0]:
        return "lazy"
    if x < CATAPULT_BOUNDARIES[1]:
        return "catapult"
    return "divergent"


@dataclass(frozen=True)
class CatapultPrediction:
    """A prediction of the uv model's run.

    Attributes
    ----------
    phase
        ``"lazy"``, ``"catapult"``, ``"divergent"``, or ``"unresolved"`` (no convergence
        within the step budget).
    eta_lambda
        ``eta lambda`` at the end (``eta`` times the final sharpness); < 2 when converged.
    final_sharpness
        ``lambda`` at the end, or None when the run diverges or is unresolved.
    peak_loss
        The largest loss along the run (relative to the initial loss for the universal
        prediction).
    steps
        Steps until convergence (or divergence).
    """

    phase: str
    eta_lambda: float | None
    final_sharpness: float | None
    peak_loss: float
    steps: int


def universal_catapult(eta_lambda0: float, *, eta: float = 1.0, z0: float = 1e-12,
                       max_steps: int = 1_000_000, tol: float = 1e-14) -> CatapultPrediction:
    """The catapult of the uv model with ``y = 0`` from ``mu_0 = eta lambda_0``.

    Iterates ``mu+ = mu + z (mu - 4)``, ``z+ = z (1 - mu + z)^2`` from ``(mu_0, z0)``
    until ``z < tol z0`` with ``|1 - mu| < 1`` (converged), ``z > 1e12`` (diverged) or
    ``max_steps``. ``final_sharpness = mu_inf / eta``; ``peak_loss`` is ``max z / z0``.

    Notes
    -----
    With ``y = 0``, ``mu = eta lambda`` and ``z = eta^2 c^2 f^2``, :func:`uv_reduced_step`
    becomes exactly this parameter-free map, for any width: with
    ``z0 = eta^2 c^2 f_0^2`` it reproduces GD. The infinite-width prediction is the limit
    ``z0 -> 0`` (``c^2 = x^2 / n -> 0``). Since ``mu+ - 4 = (mu - 4)(1 + z)``, runs with
    ``mu_0 > 4`` diverge and runs with ``mu_0 < 4`` keep ``mu < 4``: the upper boundary is
    exactly 4. For ``mu_0`` up to about 2.4 the final ``mu`` converges as ``z0 -> 0``
    (to 1e-9 at 2.3) and is a smooth function of ``mu_0``; above, the bounce amplifies
    differences (the final ``mu`` varies with ``z0`` by 5e-6 at 2.5, 5e-3 at 2.8), and
    closer to 4 the catapult is chaotic. The final ``mu`` is below 2 throughout.
    Lewkowycz et al. (arXiv 2003.02218); Kalra, He, Barkeshli (arXiv 2311.02076).
    """
    mu = positive_float(eta_lambda0, "eta_lambda0")
    eta = positive_float(eta, "eta")
    z0 = positive_float(z0, "z0")
    max_steps = positive_int(max_steps, "max_steps")
    z = z0
    peak = z0
    mu0 = mu
    for t in range(max_steps):
        if z <= tol * z0 and abs(1.0 - mu) < 1.0:
            phase = "lazy" if mu0 < 2.0 else "catapult"
            return CatapultPrediction(phase, mu, mu / eta, peak / z0, t)
        if not (z < 1e12 and math.isfinite(mu)):
            return CatapultPrediction("divergent", None, None, math.inf, t)
        mu, z = mu + z * (mu - 4.0), z * (1.0 - mu + z) ** 2
        peak = max(peak, z)
    return CatapultPrediction("unresolved", None, None, peak / z0, max_steps)


def predict_catapult(model: UVModel, theta0, eta: float, *, max_steps: int = 1_000_000,
                     tol: float = 1e-14, bound: float = 1e12) -> CatapultPrediction:
    """The run of GD on the uv model from ``theta0``, predicted by the exact ``(f, lambda)`` map.

    Converged when the residual ``|f - y|`` falls below ``tol (1 + |y|)`` with
    ``|1 - eta lambda| < 1``; the final sharpness is then ``lambda`` (the sharpness at a
    minimum is the kernel). The phase is ``"lazy"`` or ``"catapult"`` by whether the loss
    ever rose above its initial value.
    """
    if not isinstance(model, UVModel):
        raise ValueError("predict_catapult needs a UVModel")
    eta = positive_float(eta, "eta")
    max_steps = positive_int(max_steps, "max_steps")
    f, lam = uv_state(model, theta0)
    c, y = model.c, model.y
    loss0 = 0.5 * (f - y) ** 2
    peak = loss0
    for t in range(max_steps):
        r = f - y
        if abs(r) <= tol * (1.0 + abs(y)) and abs(1.0 - eta * lam) < 1.0:
            phase = "catapult" if peak > loss0 * (1.0 + 1e-12) else "lazy"
            return CatapultPrediction(phase, eta * lam, lam, peak, t)
        if not (abs(f) < bound and abs(lam) < bound):
            return CatapultPrediction("divergent", None, None, math.inf, t)
        f, lam = uv_reduced_step(f, lam, eta, c, y)
        peak = max(peak, 0.5 * (f - y) ** 2)
    return CatapultPrediction("unresolved", None, None, peak, max_steps)
