"""The uv model: hand-written kernels against sympy, the exact (f, lambda) reduction, the
conserved matrix, and the catapult phases with their final sharpness."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from analysis import Outcome, phase_diagram
from minimal_eos import UVModel
from minimal_eos.scalar_theory import (
    catapult_phase,
    conserved_quantities,
    gfs_sharpness,
    gradient_flow_solution,
    predict_catapult,
    universal_catapult,
    uv_imbalance,
    uv_reduced_step,
    uv_state,
)


@pytest.mark.parametrize("width", [3])
def test_kernels_match_the_symbolic_derivation(width, rng):
    model = UVModel(width=width, x=0.7, y=0.4)
    sym = model.symbolic()
    compiled = sym.compile()
    p = model.param_vector()
    th = rng.standard_normal((2 * width, 5))
    u = rng.standard_normal((2 * width, 5))
    for name, shape in (("loss", (5,)), ("grad", (2 * width, 5)),
                        ("hess", (2 * width, 2 * width, 5))):
        a, b = np.empty(shape), np.empty(shape)
        getattr(model.kernels(), name)(th, 0, 5, p, a)
        getattr(compiled, name)(th, 0, 5, p, b)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)  # rounding only
    a, b = np.empty((2 * width, 5)), np.empty((2 * width, 5))
    model.kernels().dir3(th, u, 0, 5, p, a)
    compiled.dir3(th, u, 0, 5, p, b)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@settings(max_examples=60)
@given(width=st.sampled_from([1, 2, 5]), seed=st.integers(0, 2**32 - 1),
       y=st.floats(-2, 2), scale=st.floats(0.01, 3))
def test_closed_form_sharpness_is_the_top_eigenvalue(width, seed, y, scale):
    """max((lambda + sqrt(lambda^2 + 4 c r (2 c f + c r))) / 2, |c r|): 1e-12 x |H|, the
    accuracy of LAPACK's eigvalsh."""
    model = UVModel(width=width, y=y)
    th = scale * np.random.default_rng(seed).standard_normal(2 * width)
    h = model.hessian(th)
    dense = np.linalg.eigvalsh(h)[-1]
    assert model.sharpness(th) == pytest.approx(dense, abs=1e-12 * (1 + np.abs(h).max()))


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), eta=st.floats(0.01, 2.0), y=st.floats(-1, 1))
def test_gd_is_the_exact_map_of_output_and_kernel(seed, eta, y):
    """(f, lambda) -> (f - eta r lambda + eta^2 c^2 r^2 f, lambda - 4 eta c^2 r f +
    eta^2 c^2 r^2 lambda), and Q+ = Q (1 - eta^2 c^2 r^2)^2; 1e-11 relative (rounding of
    sums over 2n = 16 coordinates)."""
    model = UVModel(width=8, y=y)
    th = np.random.default_rng(seed).standard_normal(16)
    f, lam = uv_state(model, th)
    nxt = th - eta * model.grad(th)
    f1, lam1 = uv_reduced_step(f, lam, eta, model.c, y)
    f_true, lam_true = uv_state(model, nxt)
    scale = 1 + abs(f) + lam
    assert f1 == pytest.approx(f_true, abs=1e-11 * scale**3)
    assert lam1 == pytest.approx(lam_true, abs=1e-11 * scale**3)
    r = f - y
    q1 = uv_imbalance(model, th) * (1 - (eta * model.c * r) ** 2) ** 2
    assert uv_imbalance(model, nxt) == pytest.approx(q1, rel=1e-9, abs=1e-9 * scale**4)


def test_gradient_flow_conserves_uu_minus_vv_and_reaches_the_closed_form(rng):
    model = UVModel(width=4, x=1.3, y=0.8)
    for _ in range(2):
        th0 = 0.7 * rng.standard_normal(8)
        sol = solve_ivp(lambda t, w: -model.grad(w), (0, 300.0), th0, method="LSODA",
                        rtol=1e-12, atol=1e-14)
        c0 = conserved_quantities(model, th0)
        drift = max(np.max(np.abs(conserved_quantities(model, w) - c0)) for w in sol.y.T)
        assert drift < 1e-8  # integration error at rtol 1e-12
        np.testing.assert_allclose(sol.y[:, -1], gradient_flow_solution(model, th0), atol=1e-6)
        assert model.sharpness(sol.y[:, -1]) == pytest.approx(gfs_sharpness(model, th0),
                                                              rel=1e-6)


def test_lazy_phase_ends_near_the_gradient_flow_solution(rng):
    """Small steps: the final sharpness is the GFS sharpness up to O(eta)."""
    model = UVModel(width=50, y=0.5)
    th0 = model.init(rng)
    for eta in (0.01, 0.02):
        pred = predict_catapult(model, th0, eta)
        gap = abs(pred.final_sharpness - gfs_sharpness(model, th0))
        assert pred.phase == "lazy" and gap < 2 * eta * gfs_sharpness(model, th0)


def test_universal_map_is_the_reduction_for_y_zero(rng):
    """With y = 0 the (mu, z) map with z0 = eta^2 c^2 f0^2 is exact for any width."""
    model = UVModel(width=30)
    th0 = model.init(rng)
    f0, lam0 = uv_state(model, th0)
    for mu0 in (1.5, 2.3, 3.0):
        eta = mu0 / lam0
        exact = predict_catapult(model, th0, eta)
        uni = universal_catapult(mu0, eta=eta, z0=(eta * model.c * f0) ** 2)
        assert uni.phase == exact.phase
        # both converge to ~1e-14; the final kernel agrees to the rounding accumulated
        # over the O(100) steps of the catapult
        assert uni.final_sharpness == pytest.approx(exact.final_sharpness, rel=1e-9)


def test_catapult_phase_boundaries():
    assert [catapult_phase(v) for v in (1.0, 1.99, 2.01, 3.99, 4.01)] == [
        "lazy", "lazy", "catapult", "catapult", "divergent"]
    below2, above4 = np.nextafter(2.0, 0.0), np.nextafter(4.0, 5.0)
    below4 = np.nextafter(4.0, 0.0)
    assert [catapult_phase(v) for v in (below2, 2.0, np.nextafter(2.0, 3.0), below4, 4.0,
                                        above4)] == [
        "lazy", "lazy", "catapult", "catapult", "divergent", "divergent"]
    # the boundaries against the map itself: at mu_0 = 2, z+ = z (1 - z)^2 never rises (no
    # spike); just above 2 it does; one ulp either side of 4 the map catapults, resp.
    # diverges
    mu, z = 2.0, 1e-3
    for _ in range(1000):
        mu, z_next = mu + z * (mu - 4.0), z * (1.0 - mu + z) ** 2
        assert z_next < z
        z = z_next
    assert universal_catapult(2.0 + 1e-3, z0=1e-12).phase == "catapult"
    assert universal_catapult(1.999, z0=1e-12).phase == "lazy"
    assert universal_catapult(float(below4), z0=1e-12).phase == "catapult"
    assert universal_catapult(float(above4), z0=1e-12).phase == "divergent"
    # mu+ - 4 = (mu - 4)(1 + z): the upper boundary is exactly 4 at any z0
    assert universal_catapult(4.001, z0=1e-6).phase == "divergent"
    assert universal_catapult(3.999, z0=1e-6).phase == "catapult"
    # infinite width (z0 -> 0): the final mu converges for mu0 up to ~2.4 (to 1e-9 at 2.3,
    # 3e-8 at 2.4; beyond, the bounce amplifies rounding: 5e-6 at 2.5, 5e-3 at 2.8)
    finals = [universal_catapult(m, z0=z).eta_lambda for m in (2.2, 2.4)
              for z in (1e-10, 1e-14, 1e-20)]
    assert max(finals[:3]) - min(finals[:3]) < 1e-7
    assert max(finals[3:]) - min(finals[3:]) < 1e-6
    assert all(v < 2 for v in finals)
    assert universal_catapult(2.8, z0=1e-12).eta_lambda < 2


@pytest.mark.slow
def test_catapult_phase_diagram_of_gd(full):
    """GD on the full uv model (width 100, 3 initialisations x 12 step sizes; more with
    --full): converged below eta lambda_0 = 4 and diverged above; lazy (no loss spike)
    below 2, catapult (a spike) between 2 and 4; final sharpness below 2/eta and equal to
    the (f, lambda) map's prediction to 1e-7 (chaotic transients near 4 amplify rounding,
    which is why it is not 1e-12)."""
    model = UVModel(width=100)
    n_init = 6 if full else 3
    grid = np.concatenate([np.linspace(0.6, 3.8, 9 if not full else 33), [4.2, 4.5, 5.0]])
    for k in range(n_init):
        th0 = model.init(np.random.default_rng(100 + k))
        lam0 = model.ntk(th0)
        pd = phase_diagram(model, grid / lam0, th0, transient=4000, measure=50)
        for j, g in enumerate(grid):
            eta = g / lam0
            if g > 4:
                assert pd.outcome[j, 0] == Outcome.DIVERGED
                continue
            assert pd.outcome[j, 0] == Outcome.CONVERGED
            pred = predict_catapult(model, th0, eta)
            if abs(g - 2) > 0.05:  # at the boundary itself the spike is marginal
                assert pred.phase == ("lazy" if g < 2 else "catapult")
            s = pd.final_sharpness[j, 0]
            assert eta * s < 2
            assert s == pytest.approx(pred.final_sharpness, rel=1e-7)


def test_wide_networks_approach_the_infinite_width_prediction():
    """The final eta lambda at width n with f0 = O(1) tends to the z0 -> 0 limit; the gap
    shrinks with z0 = eta^2 f0^2 / n (measured: ~1e-3 at n = 1e2, ~1e-6 at n = 1e5)."""
    gaps = []
    for n in (100, 10_000):
        model = UVModel(width=n)
        # a point with f0 = 1 and lambda0 = 2 (u = v = e1, scaled)
        th0 = np.zeros(2 * n)
        th0[0] = th0[n] = math.sqrt(math.sqrt(n))
        th0[1] = th0[n + 2] = math.sqrt(n - math.sqrt(n))
        f0, lam0 = uv_state(model, th0)
        assert (f0, lam0) == pytest.approx((1.0, 2.0), rel=1e-12)
        mu0 = 2.4
        exact = predict_catapult(model, th0, mu0 / lam0)
        gaps.append(abs(exact.eta_lambda - universal_catapult(mu0).eta_lambda))
    assert gaps[1] < gaps[0] / 10


def test_bad_input():
    with pytest.raises(ValueError, match="width"):
        UVModel(width=0)
    with pytest.raises(ValueError, match="x"):
        UVModel(width=3, x=0.0)
    with pytest.raises(ValueError, match="eta_lambda0"):
        catapult_phase(-1.0)
    with pytest.raises(ValueError, match="UVModel"):
        predict_catapult(object(), [0.0], 0.1)
    with pytest.raises(ValueError, match="rng"):
        UVModel(width=2).init(0)


def test_compiled_kernels_equal_their_python_functions(rng):
    """Each hand-written kernel against its py_func: the same float operations, so equal
    up to the last bit (allowing 1 ulp for libm's sqrt in the closed-form sharpness)."""
    model = UVModel(width=4, x=0.9, y=0.3)
    k = model.kernels()
    th, u, p = rng.standard_normal((8, 6)), rng.standard_normal((8, 6)), model.param_vector()
    for name, shape in (("loss", (6,)), ("grad", (8, 6)), ("hess", (8, 8, 6)),
                        ("sharp", (6,))):
        a, b = np.empty(shape), np.empty(shape)
        getattr(k, name)(th, 1, 5, p, a)
        getattr(k, name).py_func(th, 1, 5, p, b)
        np.testing.assert_allclose(a[..., 1:5], b[..., 1:5], rtol=4e-16, atol=0)
    a, b = np.empty((8, 6)), np.empty((8, 6))
    k.dir3(th, u, 1, 5, p, a)
    k.dir3.py_func(th, u, 1, 5, p, b)
    np.testing.assert_allclose(a[:, 1:5], b[:, 1:5], rtol=4e-16, atol=0)
