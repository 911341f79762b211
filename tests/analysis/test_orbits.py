"""Periodic orbits, orbit diagrams, Lyapunov exponents, phase diagrams and Feigenbaum's
constant, on GD maps whose orbits are known in closed form."""

import math

import matplotlib
import numpy as np
import pytest
import sympy as sp

from analysis import (
    FunctionMap,
    GDMap,
    Outcome,
    feigenbaum_cascade,
    lyapunov_exponent,
    orbit_diagram,
    periodic_orbits,
    phase_diagram,
    plot_orbit_diagram,
)
from analysis.orbits import gd_loop
from minimal_eos import GD, Quadratic, SymbolicModel, reference_run
from minimal_eos.simulate import Status

x = sp.Symbol("x")
# GD on f = (x^2 - 1)^2 / 4: flip at eta = 1, 2-cycle with multiplier 7 - 4 eta - 2 eta^2
# (analysis/notebooks/quartic_1d.py), period 4 from sqrt(5) - 1, chaos from ~1.3023
QUARTIC = SymbolicModel((x**2 - 1) ** 2 / 4, (x,))


def _two_cycle_multiplier(eta):
    return 7 - 4 * eta - 2 * eta**2


def test_periodic_orbits_of_the_quartic():
    gd = GDMap(QUARTIC, 1.1)
    guesses = np.linspace(-2, 2, 41)[:, None]
    orbits = periodic_orbits(gd, 2, guesses)
    # three 2-cycles (around +1, around -1, and the symmetric one +-sqrt(1 + 2/eta)),
    # each found from many guesses and reported once
    assert len(orbits) == 3
    sym = [o for o in orbits if abs(o.points.sum()) < 1e-9]
    assert len(sym) == 1
    assert abs(sym[0].points[1, 0]) == pytest.approx(math.sqrt(1 + 2 / 1.1), rel=1e-13)
    assert not sym[0].stable
    near = next(o for o in orbits if o.points.min() > 0)
    assert near.stable and near.period == 2
    assert near.multipliers[0].real == pytest.approx(_two_cycle_multiplier(1.1), abs=1e-10)
    assert orbits.other_period > 0  # guesses that went to the fixed points were counted
    with_fixed = periodic_orbits(gd, 2, guesses, minimal=False)
    assert {o.period for o in with_fixed} == {1, 2}


def test_an_orbit_with_one_multiplier_outside_the_unit_circle_is_unstable():
    """GD on (x^2 - 1)^2 / 4 + 3 y^2 / 2 at eta = 1.1 separates: the 2-cycle near x = 1
    has the multiplier 7 - 4 eta - 2 eta^2 = 0.18 along x and (1 - 3 eta)^2 = 5.29 along y
    (the y-part is linear: y+ = (1 - 3 eta) y), so it is unstable, and y = 0 on it."""
    y = sp.Symbol("y")
    eta = 1.1
    model = SymbolicModel((x**2 - 1) ** 2 / 4 + sp.Rational(3, 2) * y**2, (x, y))
    orbits = periodic_orbits(GDMap(model, eta), 2, [[1.2, 0.1], [0.8, -0.1]])
    near = [o for o in orbits if o.points[:, 0].min() > 0]
    assert len(near) == 1
    orbit = near[0]
    np.testing.assert_allclose(orbit.points[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(orbit.multipliers.real,
                               [(1 - 3 * eta) ** 2, _two_cycle_multiplier(eta)], atol=1e-10)
    np.testing.assert_allclose(orbit.multipliers.imag, 0.0, atol=1e-12)
    assert orbit.spectral_radius == pytest.approx(5.29, abs=1e-10)
    assert not orbit.stable


def test_diverging_guesses_are_reported_not_raised():
    orbits = periodic_orbits(GDMap(QUARTIC, 1.1), 3, [[50.0], [1e5]], max_iter=20)
    assert len(orbits) == 0
    assert orbits.diverged + orbits.unconverged == 2
    assert "diverged" in orbits.message or "did not converge" in orbits.message


def test_periodic_orbits_bad_input():
    gd = GDMap(QUARTIC, 1.1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="period"):
            periodic_orbits(gd, bad, [[1.0]])
    with pytest.raises(ValueError, match="guesses"):
        periodic_orbits(gd, 2, [[np.nan]])
    with pytest.raises(ValueError, match="guesses"):
        periodic_orbits(gd, 2, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="map"):
        periodic_orbits(QUARTIC, 2, [[1.0]])


def test_periodic_orbits_on_a_function_map():
    """The logistic map at r = 3.2: the 2-cycle (r + 1 +- sqrt((r - 3)(r + 1))) / (2 r)."""
    r = 3.2
    logistic = FunctionMap(1, lambda t: r * t * (1 - t), lambda t: (r - 2 * r * t)[None])
    orbits = periodic_orbits(logistic, 2, [[0.3], [0.6], [0.9]])
    assert len(orbits) == 1
    disc = math.sqrt((r - 3) * (r + 1))
    np.testing.assert_allclose(orbits[0].points.ravel(),
                               [(r + 1 - disc) / (2 * r), (r + 1 + disc) / (2 * r)], rtol=1e-13)
    assert orbits[0].multipliers[0].real == pytest.approx(4 + 2 * r - r**2, abs=1e-12)


def test_orbit_diagram_periods_and_records():
    etas = np.array([0.7, 0.95, 1.05, 1.15, 1.22, 1.27, 1.4, 2.5])
    for continuation in (True, False):
        d = orbit_diagram(QUARTIC, etas, [1.1], transient=4000, keep=64,
                          continuation=continuation)
        # 1.22 is 1.3% below the period-4 threshold sqrt(5) - 1 = 1.236 (multiplier -0.86:
        # settled within 4000 steps); 1.27 lies between it and the period-8 threshold ~1.287
        assert list(d.period[:6]) == [1, 1, 2, 2, 2, 4]
        assert d.status[6] == Status.RUNNING  # chaos
        assert d.status[7] == Status.DIVERGED and d.diverged_at[7] > 0
        assert np.all(np.ma.getmaskarray(d.points[7])[d.diverged_at[7] - 4001:])
        np.testing.assert_allclose(d.points[0], 1.0, atol=1e-12)
        two = np.sort(np.unique(np.round(d.points[3, :, 0], 9)))
        disc = math.sqrt((1 + 1.15) ** 2 - 4)
        expected = np.sqrt([((1 + 1.15) - disc) / 2.3, ((1 + 1.15) + disc) / 2.3])
        np.testing.assert_allclose(two, expected, atol=1e-8)
    vals = d.values("loss")
    assert vals[0, 0] == pytest.approx(QUARTIC.loss(d.points[0, 0]), abs=0)


def test_independent_runs_equal_the_numpy_reference_bit_for_bit():
    model = Quadratic([2.0, 0.5], linear=[0.1, -0.3])
    etas = np.array([0.3, 0.9, 0.99])
    th0 = np.array([[1.0, -2.0], [0.5, 0.5], [3.0, 1.0]])
    d = orbit_diagram(model, etas, th0, transient=7, keep=5, continuation=False)
    for i, eta in enumerate(etas):
        ref = reference_run(model, GD(), th0[i], [eta] * 12)
        assert np.array_equal(np.ma.getdata(d.points[i]), ref[8:])


def test_continuation_follows_the_attractor_from_the_previous_step_size():
    """With two coexisting 2-cycles (around +1 and -1), continuation stays on the branch
    it started on; independent starts from theta0 also do, and both agree."""
    etas = np.linspace(1.02, 1.2, 10)
    cont = orbit_diagram(QUARTIC, etas, [-1.05], transient=2000, keep=8)
    assert np.all(np.ma.getdata(cont.points) < 0)
    indep = orbit_diagram(QUARTIC, etas, [-1.05], transient=2000, keep=8, continuation=False)
    np.testing.assert_allclose(np.sort(cont.points, axis=1), np.sort(indep.points, axis=1),
                               atol=1e-8)


def test_orbit_diagram_bad_input():
    with pytest.raises(ValueError, match="etas"):
        orbit_diagram(QUARTIC, [], [1.0])
    with pytest.raises(ValueError, match="etas"):
        orbit_diagram(QUARTIC, [0.5, -0.1], [1.0])
    with pytest.raises(ValueError, match="etas"):
        orbit_diagram(QUARTIC, [np.nan], [1.0])
    with pytest.raises(ValueError, match="theta0"):
        orbit_diagram(QUARTIC, [0.5, 0.6], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="keep"):
        orbit_diagram(QUARTIC, [0.5], [1.0], keep=0)
    with pytest.raises(ValueError, match="model"):
        orbit_diagram(GDMap(QUARTIC, 1.0), [0.5], [1.0])
    d = orbit_diagram(QUARTIC, [0.5], [1.0], transient=1, keep=2)
    with pytest.raises(ValueError, match="what"):
        d.values("entropy")


def test_plot_helper_draws_without_a_display():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = orbit_diagram(QUARTIC, np.linspace(0.9, 1.3, 30), [1.1], transient=300, keep=30)
    ax = plot_orbit_diagram(d, 0)
    assert len(ax.collections) == 1
    assert ax.collections[0].get_offsets().shape == (30 * 30, 2)
    plt.close("all")


def test_lyapunov_exponents_against_closed_forms():
    # fixed point: log|1 - eta S| with S = 2
    lyap = lyapunov_exponent(QUARTIC, [0.3, 0.7], [1.2], steps=500, transient=500)
    np.testing.assert_allclose(lyap.exponent, np.log(np.abs(1 - 2 * np.array([0.3, 0.7]))),
                               rtol=1e-12)
    # 2-cycle: half the log of its multiplier
    eta = 1.15
    two = float(lyapunov_exponent(QUARTIC, eta, [1.1], steps=2000, transient=2000))
    assert two == pytest.approx(0.5 * math.log(abs(_two_cycle_multiplier(eta))), rel=1e-9)
    # superstable cycle: the tangent is mapped to (almost) zero, a very negative exponent
    sup = float(lyapunov_exponent(QUARTIC, 3 / math.sqrt(2) - 1, [1.1], steps=200))
    assert sup < -10


def test_lyapunov_exponent_of_a_1d_map_is_the_mean_log_derivative():
    """In chaos (eta = 1.4) against the mean of log|1 - eta f''(x_t)| along the same
    trajectory, computed with numpy: the two routes differ only by rounding (1e-10)."""
    eta = 1.4
    lyap = float(lyapunov_exponent(QUARTIC, eta, [1.1], steps=3000, transient=500))
    traj = reference_run(QUARTIC, GD(), [1.1], [eta] * 3500)[500:3500, 0]
    direct = np.mean(np.log(np.abs(1 - eta * (3 * traj**2 - 1))))
    assert lyap > 0.1
    assert lyap == pytest.approx(direct, abs=1e-10)


def test_lyapunov_with_finite_difference_tangents_above_32_coordinates(rng):
    """dim 40: Hessian-vector products by central differences; exact on a quadratic up to
    rounding (1e-9), giving log max_i |1 - eta h_i|."""
    h = rng.uniform(0.1, 3.0, 40)
    model = Quadratic(h)
    for eta in (0.3, 0.65):
        lyap = float(lyapunov_exponent(model, eta, rng.standard_normal(40), steps=3000,
                                       transient=10))
        # the tangent aligns with the top multiplier at rate (second / top) ratio per step;
        # 3000 steps bring the estimate within 1e-3 of the limit for these spectra
        assert lyap == pytest.approx(np.log(np.max(np.abs(1 - eta * h))), abs=2e-3)


def test_lyapunov_reports_divergence():
    res = lyapunov_exponent(QUARTIC, [0.5, 3.0], [1.1], steps=100)
    assert res.diverged_at[1] > 0 and np.ma.getmaskarray(res.exponent)[1]
    with pytest.raises(ValueError, match="diverged"):
        float(lyapunov_exponent(QUARTIC, 3.0, [1.1], steps=100))
    with pytest.raises(ValueError, match="single"):
        float(res)
    with pytest.raises(ValueError, match="eta"):
        lyapunov_exponent(QUARTIC, [], [1.1])


def test_phase_diagram_outcomes():
    etas = [0.5, 1.1, 1.25, 1.4, 2.5]
    pd = phase_diagram(QUARTIC, etas, [[1.1], [-0.9]], transient=4000, measure=2000)
    expected = [Outcome.CONVERGED, Outcome.PERIODIC, Outcome.PERIODIC, Outcome.CHAOTIC,
                Outcome.DIVERGED]
    for i, out in enumerate(expected):
        assert list(pd.outcome[i]) == [out, out]
    assert list(pd.period[1]) == [2, 2] and list(pd.period[2]) == [4, 4]
    np.testing.assert_allclose(pd.final_sharpness[0], 2.0, rtol=1e-12)
    assert np.all(np.ma.getmaskarray(pd.final_sharpness[1:]))
    assert np.all(pd.lyapunov[3] > 0.1) and np.all(pd.lyapunov[:3] < 0)
    assert pd.codes().shape == (5, 2)
    assert "converged" in pd.message
    with pytest.raises(ValueError, match="thetas0"):
        phase_diagram(QUARTIC, etas, [[np.nan]])


@pytest.mark.slow
def test_feigenbaum_ratios_tend_to_delta(full, capsys):
    """Superstable step sizes of the cascade from x* = 1. eta_1 = 3/sqrt(2) - 1 exactly
    (multiplier 7 - 4 eta - 2 eta^2 = 0). The gap ratios converge geometrically to
    delta = 4.6692016 (error ~ delta^-2n): measured 4.6690 at n = 6, 4.66920 at n = 9."""
    levels = 10 if full else 7
    cascade = feigenbaum_cascade(QUARTIC, 1.0, levels=levels)
    print(cascade.table())
    assert capsys.readouterr().out.count("\n") == levels + 4
    assert cascade.etas[0] == pytest.approx(0.5, rel=1e-15)
    assert cascade.etas[1] == pytest.approx(3 / math.sqrt(2) - 1, rel=1e-13)
    assert np.all(np.diff(cascade.etas) > 0)
    assert abs(cascade.ratios[-1] - 4.6692016) < (2e-5 if full else 2e-3)
    assert np.all(np.abs(cascade.ratios[2:] - 4.6692016) < 0.05)


def test_feigenbaum_bad_input():
    with pytest.raises(ValueError, match="one-dimensional"):
        feigenbaum_cascade(Quadratic([1.0, 2.0]), 0.0)
    with pytest.raises(ValueError, match="minimum"):
        feigenbaum_cascade(QUARTIC, 0.5)
    with pytest.raises(ValueError, match="eta_max"):
        feigenbaum_cascade(QUARTIC, 1.0, eta_max=0.8)


@pytest.mark.parametrize("continuation", [True, False])
def test_compiled_loop_equals_its_python_function(continuation, rng):
    """The numba loop against its own py_func (the same code run by the interpreter): the
    same operations in the same order, so the outputs agree bit for bit."""
    model = Quadratic([2.0, 0.5], linear=[0.1, -0.3])
    loop = gd_loop(model.kernels())
    etas = np.array([0.3, 0.95, 1.2])
    th0 = rng.standard_normal((2, 3))
    v0 = rng.standard_normal((2, 3))
    outs = []
    for fn in (loop, loop.py_func):
        rec, hist = np.zeros((4, 2, 3)), np.zeros((3, 2, 3))
        x_out, div, lyap = np.empty((2, 3)), np.full(3, -1, dtype=np.int64), np.zeros(3)
        fn(th0, etas, model.param_vector(), 12, 5, 1e8, True, continuation, 1e-8, v0, 2, rec,
           hist, x_out, div, lyap)
        outs.append((rec, hist, x_out, div, lyap))
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a, b)
