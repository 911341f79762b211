"""Logistic regression at large step sizes: kernels against sympy, numerical stability,
the compiled GD loop, separable-data rates, non-separable thresholds, cycles."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from analysis import GDMap, periodic_orbits
from minimal_eos import LogisticRegression, logistic_gd
from minimal_eos.data import (
    cycle_dataset_1d,
    imbalanced_separable,
    nonseparable_logistic,
    separable_logistic,
    symmetric_logistic,
)
from minimal_eos.logistic_theory import (
    adaptive_late_slope,
    late_rate_constant,
    logistic_minimizer,
    max_margin,
    nonmonotone_phase,
    stability_thresholds,
    symmetric_two_cycle,
    two_cycle_equations,
)


def test_kernels_match_symbolic_derivation(rng):
    data = nonseparable_logistic(4, 2, rng=rng)
    model = LogisticRegression(data.X, data.y)
    sym = model.symbolic()
    consts = model.param_vector()[1:]
    f_loss, f_grad, f_hess = (sym.lambdify(w) for w in ("loss", "gradient", "hessian"))
    f_dir3 = sp.lambdify((sym.coords, sym.direction, sym.consts), sym.third_directional)
    for _ in range(3):
        w = rng.normal(scale=2.0, size=2)
        u = rng.normal(size=2)
        # the same smooth functions of O(1) numbers by two routes: rounding only
        assert model.loss(w) == pytest.approx(float(f_loss(w, consts)), rel=1e-13)
        np.testing.assert_allclose(model.grad(w), f_grad(w, consts), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(model.hessian(w), f_hess(w, consts), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(model.third_directional(w, u),
                                   np.array(f_dir3(w, u, consts), dtype=float),
                                   rtol=1e-11, atol=1e-14)
        assert model.sharpness(w) == pytest.approx(np.linalg.eigvalsh(f_hess(w, consts))[-1],
                                                   rel=1e-12)


def test_kernels_are_stable_at_extreme_margins():
    """ln(1 + e^-s) at s = -+800 and sigma(-s) without overflow: exact limits."""
    model = LogisticRegression(np.array([[1.0], [-1.0]]), np.array([1, 1]))
    w = np.array([800.0])  # margins +800 and -800
    # l(800) = log1p(e^-800) = 0 in float64, l(-800) = 800 + log1p(e^-800) = 800
    assert model.loss(w) == 400.0
    # grad = -1/2 [sigma(-800) * 1 + sigma(800) * (-1)] = 1/2 (to 1 ulp)
    np.testing.assert_allclose(model.grad(w), [0.5], rtol=1e-15)
    assert np.all(np.isfinite(model.hessian(w))) and model.hessian(w)[0, 0] >= 0.0
    # the compiled loop's log-loss at a point where every margin is ~1000: L ~ e^-1000
    # underflows, ln L does not: reference ln(mean(exp(-s))) by logsumexp (l(s) = e^-s to
    # relative 1e-434 there)
    data = separable_logistic(6, 2, margin=0.2, seed=3)
    m2 = LogisticRegression(data.X, data.y)
    _, w_hat = max_margin(data.X, data.y)
    w_far = w_hat * 1000.0 / np.min(data.y * (data.X @ w_hat))
    s = data.y * (data.X @ w_far)
    run = logistic_gd(m2, w_far, 0, eta=1.0)
    assert run.log_loss[0, 0] == pytest.approx(logsumexp(-s) - np.log(6), rel=1e-14)


def _reference(model, w0, eta, steps, adaptive):
    w = np.array(w0, dtype=float)
    out = []
    for t in range(steps + 1):
        s = model.y * (model.X @ w)
        log_l = logsumexp(np.log(np.log1p(np.exp(-s)))) - np.log(model.n)
        out.append(log_l)
        if t == steps:
            break
        g = -(model.X * (model.y / (1 + np.exp(s)))[:, None]).mean(axis=0)
        w = w - (eta / np.exp(log_l) if adaptive else eta) * g
    return w, np.array(out)


@pytest.mark.parametrize("schedule", ["constant", "risk-adaptive"])
def test_compiled_gd_matches_numpy(schedule):
    data = separable_logistic(10, 2, margin=0.1, seed=1)
    model = LogisticRegression(data.X, data.y)
    run = logistic_gd(model, np.zeros(2), 60, eta=[0.5, 3.0], schedule=schedule)
    for b, eta in enumerate(run.eta):
        w, log_l = _reference(model, np.zeros(2), eta, 60, schedule == "risk-adaptive")
        # same operations in another order; 60 steps of a non-expanding map keep the
        # difference at the rounding level of the iterate (|w| <= 1e2)
        np.testing.assert_allclose(run.final_w[b], w, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(run.log_loss[b], log_l, rtol=1e-11, atol=1e-12)


def test_hessian_at_minimizer_matches_finite_differences():
    data = nonseparable_logistic(30, 3, seed=4)
    model = LogisticRegression(data.X, data.y)
    w = logistic_minimizer(model)
    assert np.max(np.abs(model.grad(w))) < 1e-12
    h = 1e-5
    fd = np.array([(model.grad(w + h * e) - model.grad(w - h * e)) / (2 * h) for e in np.eye(3)])
    # central differences: truncation h^2 |D^3 L| / 6 <= 1e-10 (|D^3 L| <= max|x|^3 / 10),
    # rounding eps |grad| / h ~ 1e-11
    np.testing.assert_allclose(fd, model.hessian(w), atol=1e-8)
    th = stability_thresholds(model)
    assert th.sharpness == pytest.approx(np.linalg.eigvalsh(fd)[-1], abs=1e-8)
    # what the thresholds mean, from the finite-difference Hessian: GD's linearisation at w*,
    # I - eta H, has spectral radius 1 at eta = critical (w* loses stability through -1), and
    # eta lambda = 1 at global_1d (the top mode is then annihilated in one step)
    step = np.eye(3) - th.critical * fd
    radius = np.max(np.abs(np.linalg.eigvalsh(step)))
    assert radius == pytest.approx(1.0, abs=1e-7)
    assert np.linalg.eigvalsh(step)[0] == pytest.approx(-1.0, abs=1e-7)
    assert th.global_1d * np.linalg.eigvalsh(fd)[-1] == pytest.approx(1.0, abs=1e-7)


@st.composite
def _one_d_nonseparable(draw):
    n_pos = draw(st.integers(1, 4))
    n_neg = draw(st.integers(1, 4))
    mags = draw(st.lists(st.floats(0.1, 5.0), min_size=n_pos + n_neg, max_size=n_pos + n_neg))
    z = np.array(mags) * np.array([1.0] * n_pos + [-1.0] * n_neg)
    labels = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=len(z),
                                    max_size=len(z))))
    return z * labels, labels  # x = z y, so that y x = z


@settings(max_examples=25)
@given(data=_one_d_nonseparable(), f=st.floats(0.05, 0.95),
       starts=st.lists(st.floats(-20.0, 20.0), min_size=4, max_size=4))
def test_one_dimensional_step_below_one_over_lambda_converges(data, f, starts):
    """Meng et al.: in 1-D, eta < 1/lambda converges to w* from anywhere.

    With z of both signs the data are not separable and w* is finite. From starts in
    [-20, 20] / max|z| the iterate drifts at a rate >= eta min(|L'(-inf)|, |L'(+inf)|) and
    then contracts by |1 - eta L''| per step; 60000 steps leave it within 1e-9.
    """
    x, y = data
    model = LogisticRegression(x[:, None], y)
    th = stability_thresholds(model)
    w0 = np.array(starts)[:, None] / np.max(np.abs(x))
    run = logistic_gd(model, w0, 60000, eta=f * th.global_1d, every=60000)
    np.testing.assert_allclose(run.final_w[:, 0], th.minimizer[0], rtol=0,
                               atol=1e-9 * (1 + abs(th.minimizer[0])))


def test_cycle_below_critical_step_and_period_doubling():
    """The 1-D data set of minimal_eos.data.cycle_dataset_1d, with the orbit tools:

    at eta lambda = 1.59 (between 1 and 2) the minimum is stable *and* a stable 2-cycle
    exists; its multiplier equals (1 - eta L''(a)) (1 - eta L''(b)); at 1.61 the 2-cycle
    has lost stability through -1 and a stable 4-cycle exists (period doubling).
    """
    data = cycle_dataset_1d()
    model = LogisticRegression(data.X, data.y)
    th = stability_thresholds(model)
    guesses = np.linspace(-3, 3, 61)[:, None]
    eta = 1.59 / th.sharpness
    two = [o for o in periodic_orbits(GDMap(model, eta), 2, guesses) if o.stable]
    assert len(two) == 1
    a, b = two[0].points[:, 0]
    closed = (1 - eta * model.hessian([a])[0, 0]) * (1 - eta * model.hessian([b])[0, 0])
    # the orbit tools multiply the same two Jacobians: rounding only
    assert two[0].multipliers[0].real == pytest.approx(closed, rel=1e-10, abs=1e-12)
    assert abs(1 - eta * th.sharpness) < 1  # the minimum is stable too
    eta2 = 1.61 / th.sharpness
    two_after = periodic_orbits(GDMap(model, eta2), 2, guesses)
    assert not any(o.stable for o in two_after)
    assert min(o.multipliers[0].real for o in two_after) < -1
    four = [o for o in periodic_orbits(GDMap(model, eta2), 4, guesses) if o.stable]
    assert len(four) == 1
    # coexistence in a plain run: from the cycle GD stays on it (an even number of steps
    # returns to a), from next to the minimum it converges to the minimum
    run = logistic_gd(model, np.array([[a], [th.minimizer[0] + 1e-3]]), 4000, eta=eta)
    np.testing.assert_allclose(run.final_w[:, 0], [a, th.minimizer[0]], atol=1e-10)


@pytest.mark.parametrize("d", [1, 2])
def test_symmetric_two_cycle_equations_match_simulation(d):
    """{a, -a} with eta grad L(a) = 2a (sympy nsolve) against the simulated cycle."""
    data = symmetric_logistic(4, d, seed=d)
    model = LogisticRegression(data.X, data.y)
    th = stability_thresholds(model)
    np.testing.assert_allclose(th.minimizer, 0.0, atol=1e-14)  # even loss: w* = 0
    coords, eqs = two_cycle_equations(model)
    assert len(coords) == d and all(sp.Symbol("eta", positive=True) in e.free_symbols
                                    for e in eqs)
    eta = 1.3 * th.critical
    cyc = symmetric_two_cycle(model, eta)
    assert cyc.stable
    run = logistic_gd(model, 0.01 * np.ones(d), 20000, eta=eta, every=1)
    w_even, w_odd = run.final_w[0], None
    w_odd = logistic_gd(model, 0.01 * np.ones(d), 20001, eta=eta).final_w[0]
    # the cycle's multipliers are < 0.5 here, so 2e4 steps converge to rounding; nsolve
    # works at 40 digits
    point = cyc.point if np.dot(cyc.point, w_even) > 0 else -cyc.point
    np.testing.assert_allclose(w_even, point, atol=1e-10)
    np.testing.assert_allclose(w_odd, -point, atol=1e-10)


# {x_i} = {+-2 e1, +-1.8 e2}, all labels 1 (symmetric): H(0) = diag(0.5, 0.405), and on the
# 2-cycle {(r, 0), (-r, 0)} the points +-1.8 e2 still have margin 0, so H(a)_22 = 0.405 and
# the multiplier along e2 is (1 - 0.405 eta)^2: 1.2232 at eta = 1.3 * 2 / 0.5 (unstable)
CROSS = LogisticRegression(np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.8], [0.0, -1.8]]),
                           np.ones(4))


@pytest.mark.parametrize(("d", "factor"), [(1, 1.3), (2, 1.3), (1, 3.0), (2, 3.0), (0, 1.3)])
def test_symmetric_two_cycle_multipliers_equal_those_of_periodic_orbits(d, factor):
    """The eigenvalues of (I - eta H(a))^2 against periodic_orbits' product of the two
    Jacobians along {a, -a} (Newton on F^2(x) - x from a, then eig of DF(-a) DF(a)); d = 0
    is the data set CROSS, whose cycle is unstable with a multiplier known in closed form."""
    if d == 0:
        model = CROSS
    else:
        data = symmetric_logistic(4, d, seed=d)
        model = LogisticRegression(data.X, data.y)
    eta = factor * stability_thresholds(model).critical
    cyc = symmetric_two_cycle(model, eta)
    orbits = periodic_orbits(GDMap(model, eta), 2, cyc.point[None])
    assert len(orbits) == 1
    orbit = orbits[0]
    np.testing.assert_allclose(np.sort(np.abs(orbit.points[:, 0])), np.abs(cyc.point[0]),
                               rtol=1e-10)
    # nsolve at 40 digits and Newton in float64 find the same point to ~1e-14: the
    # multipliers agree to rounding of two 2 x 2 products
    np.testing.assert_allclose(np.sort(orbit.multipliers.real), np.sort(cyc.multipliers),
                               rtol=1e-9, atol=1e-12)
    assert orbit.stable == cyc.stable
    if d == 0:
        assert cyc.multipliers.max() == pytest.approx((1 - 0.405 * eta) ** 2, rel=1e-12)
        assert not cyc.stable


def test_separable_phase_and_late_rate():
    """Separable data, constant steps (Wu et al.):

    - eta < 2 / L_smooth (L_smooth = lambda_max(X^T X / n) / 4): the descent lemma makes
      the loss monotone, tau = 0;
    - if some z_i . zbar < 0 (z = y x), then for eta > 2 n ln 2 / |z_i . zbar| the first
      step already raises the loss above ln 2: tau >= 1;
    - the phase ends (tau << T) and then 1/L grows by eta gamma^2 per step: c -> 1/gamma^2.
    """
    data = imbalanced_separable(3, 1, tilt=0.1)
    model = LogisticRegression(data.X, data.y)
    gamma, _ = max_margin(data.X, data.y)
    z = data.y[:, None] * data.X
    smooth = np.linalg.eigvalsh(data.X.T @ data.X / 4)[-1] / 4
    overshoot = 2 * 4 * np.log(2) / abs(np.min(z @ z.mean(axis=0)))
    etas = np.array([0.5 * 2 / smooth, 0.9 * 2 / smooth, 1.2 * overshoot, 5 * overshoot])
    run = logistic_gd(model, np.zeros(2), 100000, eta=etas, every=100)
    tau = nonmonotone_phase(run)
    assert tau[0] == 0 and tau[1] == 0
    assert tau[2] >= 1 and tau[3] >= 1
    assert np.all(tau < run.t[-1] / 10)
    # 1/L_t = 1/L_t0 + eta gamma^2 (t - t0) + O(log t): over 5e4 steps the constant is
    # within 1 % (measured 0.2 % at the smallest eta)
    np.testing.assert_allclose(late_rate_constant(run) * gamma**2, 1.0, rtol=1e-2)


def test_risk_adaptive_steps():
    """eta_t = eta / L(w_t) (Zhang et al.): late slope of ln L is -eta gamma^2, and after
    4 / gamma^2 steps ln L <= -eta, far below the constant step with the same eta."""
    for data in (imbalanced_separable(3, 1, tilt=0.1), separable_logistic(30, 3, margin=0.05,
                                                                          seed=0)):
        model = LogisticRegression(data.X, data.y)
        gamma, _ = max_margin(data.X, data.y)
        etas = np.array([1.0, 2.0, 5.0, 20.0])
        late = logistic_gd(model, np.zeros(model.dim), 20000, eta=etas,
                           schedule="risk-adaptive", every=100)
        # along w_hat the step is eta |grad L| / L -> eta gamma, so the support vectors'
        # margins grow by eta gamma^2 per step; measured within 0.1 %
        np.testing.assert_allclose(adaptive_late_slope(late, 50) / (etas * gamma**2), -1.0,
                                   rtol=1e-2)
        budget = int(np.ceil(4 / gamma**2))
        ada = logistic_gd(model, np.zeros(model.dim), budget, eta=etas, schedule="risk-adaptive")
        const = logistic_gd(model, np.zeros(model.dim), budget, eta=etas)
        assert np.all(ada.log_loss[:, -1] <= -etas)
        assert np.all(ada.log_loss[:, -1] < const.log_loss[:, -1] - 1.0)
    with pytest.raises(ValueError, match="constant steps"):
        late_rate_constant(ada)


def test_bad_input():
    x = np.array([[1.0], [2.0], [3.0]])
    with pytest.raises(ValueError, match="labels y"):
        LogisticRegression(x, [-1, 0, 1])
    with pytest.raises(ValueError, match="X and y disagree"):
        LogisticRegression(x, [1, -1])
    with pytest.raises(ValueError, match="X must be finite"):
        LogisticRegression(np.array([[1.0], [np.nan]]), [1, -1])
    model = LogisticRegression(x, [0, 1, 1])
    np.testing.assert_array_equal(model.y, [-1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="schedule"):
        logistic_gd(model, [0.0], 10, eta=1.0, schedule="adaptive")
    with pytest.raises(ValueError, match="eta must be > 0"):
        logistic_gd(model, [0.0], 10, eta=[1.0, -1.0])
    with pytest.raises(ValueError, match="w0 must have shape"):
        logistic_gd(model, [0.0, 1.0], 10, eta=1.0)
    with pytest.raises(ValueError, match="separable"):
        logistic_minimizer(LogisticRegression(x, [1, 1, 1]))
    with pytest.raises(ValueError, match="symmetric"):
        two_cycle_equations(model)
