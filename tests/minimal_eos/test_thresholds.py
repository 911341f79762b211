"""Stability thresholds: symbolic derivation, closed forms, and simulation."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minimal_eos import GD, HeavyBall, Nesterov, Quadratic, Status, simulate
from minimal_eos.thresholds import (
    a_sym,
    beta_sym,
    characteristic_polynomial,
    derive_all,
    eta_sym,
    known_thresholds,
    schur_cohn_conditions,
    spectral_radius,
    stability_threshold,
    update_matrix,
)

LONG = settings.get_current_profile_name() == "long"  # pytest --full: >= 1,000 examples each


@pytest.fixture(scope="module")
def derived():
    """The derivations, once per module (derived when the tests run, not at import)."""
    return derive_all()


@pytest.mark.parametrize("name", ["gd", "heavy_ball", "nesterov"])
def test_derived_threshold_equals_closed_form(name, derived):
    assert set(derived) == {"gd", "heavy_ball", "nesterov"}
    assert sp.simplify(derived[name].expr - known_thresholds()[name]) == 0


@pytest.mark.parametrize("opt", [GD(), HeavyBall(0.3), Nesterov(0.8)], ids=lambda o: o.name)
def test_closed_form_methods_agree_with_derivation(opt, derived):
    expr = derived[opt.name].expr.subs({beta_sym: opt.beta, eta_sym: 0.7})
    assert opt.critical_sharpness(0.7) == pytest.approx(float(expr), rel=1e-14)


def test_update_matrix_drops_the_inert_velocity_of_gd():
    assert update_matrix(GD()) == sp.Matrix([[1 - a_sym * eta_sym]])


@settings(max_examples=1000 if LONG else 60)
@given(st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_schur_cohn_agrees_with_numerical_roots(coeffs):
    """All D_k > 0 iff every root of z^3 + c2 z^2 + c1 z + c0 is inside the unit circle."""
    z = sp.Symbol("z")
    poly = sp.Poly([1, *coeffs], z)
    roots = np.roots([1.0, *coeffs])
    radius = np.max(np.abs(roots))
    conds = [float(c) for c in schur_cohn_conditions(poly)]
    if abs(radius - 1) > 1e-6 and min(abs(c) for c in conds) > 1e-9:
        assert (min(conds) > 0) == (radius < 1)


class QuasiHyperbolic:
    """Quasi-hyperbolic momentum, a linear update map the library does not know:
    v+ = beta v + g,  x+ = x - eta ((1 - nu) g + nu v+)."""

    def __init__(self, beta, nu):
        self.beta, self.nu = beta, nu

    def query(self, state):
        return state[0]

    def update(self, state, grad, eta):
        x, v = state
        v_new = self.beta * v + grad
        return x - eta * ((1 - self.nu) * grad + self.nu * v_new), v_new


@pytest.mark.parametrize(("beta", "nu"), [(0.5, 0.7), (0.9, 0.3), (0.0, 0.0)])
def test_derivation_works_for_a_map_it_was_not_written_for(beta, nu):
    thr = stability_threshold(QuasiHyperbolic(beta, nu))
    for eta in (0.1, 1.0, 2.5):
        a_star = float(thr.expr.subs(eta_sym, eta))
        # the spectral radius crosses 1 at a*: 1e-6 either side is decisive
        assert spectral_radius(thr.matrix, {a_sym: a_star * (1 - 1e-6), eta_sym: eta}) < 1
        assert spectral_radius(thr.matrix, {a_sym: a_star * (1 + 1e-6), eta_sym: eta}) > 1


def test_characteristic_polynomial_against_numpy():
    """det(z I - M) against numpy's coefficients from the eigenvalues; the moduli of the
    roots alone (all the threshold depends on) cannot tell z I - M from z I + M."""
    m = sp.Matrix([[1, 2, 0], [3, 4, 1], [0, 1, -2]])
    coeffs = characteristic_polynomial(m).all_coeffs()
    np.testing.assert_allclose([float(c) for c in coeffs],
                               np.poly(np.array(m, dtype=float)), atol=1e-12)


def test_derivation_in_another_sharpness_symbol():
    lam = sp.Symbol("lam", positive=True)
    thr = stability_threshold(HeavyBall(beta=beta_sym), a=lam)
    assert sp.simplify(thr.expr - known_thresholds()["heavy_ball"]) == 0
    assert lam in thr.matrix.free_symbols and a_sym not in thr.matrix.free_symbols


def test_matrix_route_and_errors():
    m = sp.Matrix([[1 - a_sym * eta_sym]])
    assert sp.simplify(stability_threshold(matrix=m).expr - 2 / eta_sym) == 0
    assert characteristic_polynomial(m).degree() == 1
    with pytest.raises(ValueError, match="exactly one"):
        stability_threshold()
    with pytest.raises(ValueError, match="does not depend"):
        stability_threshold(matrix=sp.Matrix([[sp.Rational(1, 2)]]))
    # eigenvalues 1/2 and 1/3 whatever a is: stability never changes
    with pytest.raises(ValueError, match="no stability boundary"):
        stability_threshold(matrix=sp.Matrix([[sp.Rational(1, 2), a_sym], [0, sp.Rational(1, 3)]]))


c_sym = sp.Symbol("c", real=True)
TWO_BRANCHES = sp.diag(1 - a_sym * eta_sym, 1 - a_sym * c_sym)  # threshold min(2/eta, 2/c)


@pytest.mark.parametrize("seed", range(6))
def test_a_threshold_with_two_branches_is_never_returned_as_one(seed):
    """diag(1 - a eta, 1 - a c) loses stability at min(2/eta, 2/c). With c in (0.1, 0.2) and
    eta in (0.05, 3), 2/c is the threshold only on eta < c, about 5% of the box: random
    samples alone miss it (seeds 2 to 9 of 10 returned 2/eta), the ranges' corners do not."""
    with pytest.raises(ValueError, match="not one expression"):
        stability_threshold(matrix=TWO_BRANCHES, ranges={"c": (0.1, 0.2)}, seed=seed)


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [({"eta": (1.0, 3.0), "c": (0.1, 0.5)}, 2 / eta_sym),
     ({"eta": (0.05, 0.1), "c": (0.5, 1.0)}, 2 / c_sym)],
)
def test_the_branch_that_holds_on_the_ranges_is_picked(ranges, expected):
    thr = stability_threshold(matrix=TWO_BRANCHES, ranges=ranges)
    assert sp.simplify(thr.expr - expected) == 0
    # and it is where the spectral radius crosses 1, from a numerical eigendecomposition
    vals = {eta_sym: np.mean(ranges["eta"]), c_sym: np.mean(ranges["c"])}
    a_star = float(thr.expr.subs(vals))
    assert spectral_radius(TWO_BRANCHES, {**vals, a_sym: a_star * (1 - 1e-6)}) < 1
    assert spectral_radius(TWO_BRANCHES, {**vals, a_sym: a_star * (1 + 1e-6)}) > 1


def _steps_needed(opt, eta, spectrum, factor):
    """Steps for the slowest mode to shrink (or grow) by `factor`, from the spectral radius."""
    m = update_matrix(opt)
    worst = 1.0
    for lam in spectrum:
        rho = spectral_radius(m, {a_sym: lam, eta_sym: eta})
        worst = max(worst, 1 / abs(np.log(rho)))
    return int(np.log(factor) * worst) + 200


OPTIMIZERS = {"gd": lambda b: GD(), "heavy_ball": HeavyBall, "nesterov": Nesterov}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@settings(max_examples=1000 if LONG else 25)
@given(
    top=st.floats(0.5, 20.0),
    rest=st.lists(st.floats(0.05, 1.0), min_size=0, max_size=3),
    beta=st.floats(0.0, 0.99),
    eps=st.floats(0.05, 0.3),
    shift=st.lists(st.floats(-1, 1), min_size=4, max_size=4),
)
# top = 1, shift = -1: the minimiser is (1,), the old start point
@example(top=1.0, rest=[], beta=0.0, eps=0.05, shift=[-1.0, 0.0, 0.0, 0.0])
def test_simulation_converges_below_and_diverges_above_threshold(
    name, top, rest, beta, eps, shift
):
    """At (1 - eps) times the critical step size GD/momentum converges; at (1 + eps) it
    diverges. beta is capped at 0.99 so that the slowest mode, whose radius tends to
    sqrt(beta), converges within a bounded number of steps. The start is the minimiser
    plus one along every eigenvector: at the minimiser itself nothing moves, at any step
    size, and the property is false there."""
    opt = OPTIMIZERS[name](beta)
    spectrum = (top, *(top * r for r in rest))
    model = Quadratic(spectrum, linear=tuple(shift[: len(spectrum)]))
    eta_star = opt.critical_sharpness(1.0) / top  # a*(eta) = c / eta, so eta* = c / top
    lo, hi = (1 - eps) * eta_star, (1 + eps) * eta_star
    # converge to 1e-10 relative from O(1): factor 1e12; diverge past 1e8: factor 1e9
    steps = max(_steps_needed(opt, lo, spectrum, 1e12), _steps_needed(opt, hi, [top], 1e9))
    theta0 = model.minimizer() + 1.0
    res = simulate(model, opt, theta0, min(steps, 400_000), eta=[lo, hi], save=())
    assert res.status[0] == Status.CONVERGED, res.describe(0)
    assert res.status[1] == Status.DIVERGED, res.describe(1)
    np.testing.assert_allclose(res.final_theta[0], model.minimizer(), rtol=1e-7, atol=1e-7)
