"""The code generator against sympy's own evaluation and finite differences."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from minimal_eos import SymbolicLoss, SymbolicModel

x, y, c = sp.symbols("x y c")
LOSSES = {
    "quartic": SymbolicLoss((x, y), (x**2 * y**2 - c) ** 2 / 4, (c,)),
    "logcosh": SymbolicLoss((x, y), sp.log(sp.cosh(x * y - c)), (c,)),
    "cubic-1d": SymbolicLoss((x,), x**3 / 3 - c * x, (c,)),
}
CONSTS = np.array([1.3])


def _batch(loss, pts):
    kern = loss.compile()
    th = np.ascontiguousarray(pts.T)
    n = th.shape[1]
    d = loss.dim
    out_l, out_g, out_h = np.empty(n), np.empty((d, n)), np.empty((d, d, n))
    kern.loss(th, 0, n, CONSTS, out_l)
    kern.grad(th, 0, n, CONSTS, out_g)
    kern.hess(th, 0, n, CONSTS, out_h)
    return out_l, out_g, out_h


@pytest.mark.parametrize("name", LOSSES)
def test_compiled_kernels_match_lambdify(name, rng):
    loss = LOSSES[name]
    pts = rng.uniform(-1.5, 1.5, size=(7, loss.dim))
    out_l, out_g, out_h = _batch(loss, pts)
    f, g, h = (loss.lambdify(w) for w in ("loss", "gradient", "hessian"))
    for b, p in enumerate(pts):
        # same expression, different evaluation order (cse): agreement to rounding
        np.testing.assert_allclose(out_l[b], f(p, CONSTS), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out_g[:, b], g(p, CONSTS), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out_h[:, :, b], h(p, CONSTS), rtol=1e-12, atol=1e-12)


def _hand_gradient(name, p, cc):
    """The gradients worked out by hand from the three expressions of LOSSES."""
    if name == "quartic":
        xx, yy = p
        return (xx**2 * yy**2 - cc) * np.array([xx * yy**2, xx**2 * yy])
    if name == "logcosh":
        xx, yy = p
        return np.tanh(xx * yy - cc) * np.array([yy, xx])
    return np.array([p[0] ** 2 - cc])


@pytest.mark.parametrize("name", LOSSES)
def test_compiled_kernels_match_hand_derivatives_and_finite_differences(name, rng):
    """Independent of sympy's differentiation: the gradient kernel against the gradient
    derived by hand, the Hessian kernel against central differences of that gradient."""
    loss = LOSSES[name]
    pts = rng.uniform(-1.5, 1.5, size=(7, loss.dim))
    _, out_g, out_h = _batch(loss, pts)
    h = 1e-6
    for b, p in enumerate(pts):
        np.testing.assert_allclose(out_g[:, b], _hand_gradient(name, p, CONSTS[0]),
                                   rtol=1e-12, atol=1e-12)
        fd = np.array([(_hand_gradient(name, p + h * e, CONSTS[0])
                        - _hand_gradient(name, p - h * e, CONSTS[0])) / (2 * h)
                       for e in np.eye(loss.dim)])
        # central differences: truncation h^2 |D^4 L| / 6 and rounding eps |g| / h, both
        # below 1e-8 on the box [-1.5, 1.5]^d
        np.testing.assert_allclose(out_h[:, :, b], fd, atol=1e-7)


@pytest.mark.parametrize("name", LOSSES)
def test_kernels_equal_their_py_func(name, rng):
    """Compiled kernels and their pure-Python versions agree bit for bit."""
    loss = LOSSES[name]
    kern = loss.compile()
    th = rng.uniform(-1.5, 1.5, size=(loss.dim, 5))
    a, b = np.empty((loss.dim, 5)), np.empty((loss.dim, 5))
    kern.grad(th, 0, 5, CONSTS, a)
    kern.grad.py_func(th, 0, 5, CONSTS, b)
    np.testing.assert_array_equal(a, b)


def test_columns_outside_the_range_are_untouched():
    kern = LOSSES["quartic"].compile()
    th = np.ones((2, 6))
    out = np.full((2, 6), 7.0)
    kern.grad(th, 2, 4, CONSTS, out)
    assert np.all(out[:, :2] == 7.0) and np.all(out[:, 4:] == 7.0)
    assert np.all(out[:, 2:4] != 7.0)


@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(-1, 1), st.floats(-1, 1))
def test_third_directional_is_derivative_of_quadratic_form(px, py, ux, uy):
    """D^3 L[u, u] = grad_theta (u^T H(theta) u), checked by central differences."""
    model = SymbolicModel((x**2 * y**2 - c) ** 2 / 4, (x, y), (c,), (1.3,))
    p, u = np.array([px, py]), np.array([ux, uy])
    h = 1e-5
    fd = np.array(
        [
            (u @ model.hessian(p + h * e) @ u - u @ model.hessian(p - h * e) @ u) / (2 * h)
            for e in np.eye(2)
        ]
    )
    # central differences: error O(h^2 * |D^5 L|) ~ 1e-10 * 1e3 on this box
    np.testing.assert_allclose(model.third_directional(p, u), fd, rtol=1e-6, atol=1e-6)


def test_bad_symbols_are_rejected():
    with pytest.raises(ValueError, match="neither coords nor consts"):
        SymbolicLoss((x,), x * y)
    with pytest.raises(ValueError, match="distinct"):
        SymbolicLoss((x,), x, (x,))
    with pytest.raises(ValueError, match="one number per const"):
        SymbolicModel(x * c, (x,), (c,), ())
