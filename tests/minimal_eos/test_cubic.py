"""The cubic Taylor model: hand-written kernels against sympy, dense tensors and finite
differences; the at-edge constructor's constants; GD on it is exactly the reduced map."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minimal_eos import GD, CubicModel, ReducedMap, simulate, stabilization_constants

LONG = settings.get_current_profile_name() == "long"  # pytest --full: 10x the examples


def _random_cubic(rng, d=3, r=3):
    h = rng.standard_normal((d, d))
    return CubicModel(
        center=rng.standard_normal(d),
        linear=rng.standard_normal(d),
        quadratic=h + h.T,
        weights=rng.standard_normal(r),
        vectors=rng.standard_normal((r, d)),
        offset=0.7,
    )


def _batch(model, pts, u=None):
    """All kernels on the columns of ``pts`` (shape (n, d)) at once."""
    k = model.kernels()
    p = model.param_vector()
    th = np.ascontiguousarray(pts.T)
    d, n = th.shape
    out = {"loss": np.empty(n), "grad": np.empty((d, n)), "hess": np.empty((d, d, n)),
           "sharp": np.empty(n), "dir3": np.empty((d, n))}
    k.loss(th, 0, n, p, out["loss"])
    k.grad(th, 0, n, p, out["grad"])
    k.hess(th, 0, n, p, out["hess"])
    k.sharp(th, 0, n, p, out["sharp"])
    k.dir3(th, np.ascontiguousarray(u.T), 0, n, p, out["dir3"])
    return out


def test_kernels_match_the_sympy_derivation(rng):
    model = _random_cubic(rng)
    sym = model.symbolic()
    consts = model.param_vector()[1:]  # the parameter vector without R
    pts = rng.uniform(-1.5, 1.5, size=(6, model.dim))
    dirs = rng.standard_normal((6, model.dim))
    out = _batch(model, pts, dirs)
    f, g, h = (sym.lambdify(w) for w in ("loss", "gradient", "hessian"))
    d3 = sp.lambdify((sym.coords, sym.direction, sym.consts), sym.third_directional, "numpy")
    for b, (p, u) in enumerate(zip(pts, dirs, strict=True)):
        # same polynomial, different evaluation order: agreement to a few ulps of the
        # terms (|terms| < 100 on this box, so 1e-11 absolute)
        np.testing.assert_allclose(out["loss"][b], f(p, consts), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(out["grad"][:, b], g(p, consts), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(out["hess"][:, :, b], h(p, consts), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(out["dir3"][:, b], np.array(d3(p, u, consts), dtype=float),
                                   rtol=1e-12, atol=1e-11)
        # the sharpness kernel builds its own Hessian column: compare with dense eigvalsh
        assert out["sharp"][b] == pytest.approx(np.linalg.eigvalsh(h(p, consts))[-1],
                                                rel=1e-12, abs=1e-11)


def test_kernels_match_the_dense_tensor_and_finite_differences(rng):
    model = _random_cubic(rng, d=5, r=4)
    t = model.tensor()
    np.testing.assert_allclose(t, np.transpose(t, (1, 0, 2)), atol=1e-14)  # symmetric
    np.testing.assert_allclose(t, np.transpose(t, (2, 1, 0)), atol=1e-14)
    w = rng.uniform(-1, 1, size=model.dim)
    dlt = w - model.center
    # closed forms from the dense tensor
    loss = (model.offset + model.linear @ dlt + dlt @ model.quadratic @ dlt / 2
            + np.einsum("ijk,i,j,k", t, dlt, dlt, dlt) / 6)
    assert model.loss(w) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(model.grad(w), model.linear + model.quadratic @ dlt
                               + np.einsum("ijk,j,k->i", t, dlt, dlt) / 2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.hessian(w), model.quadratic + np.einsum("ijk,k->ij", t, dlt),
                               rtol=1e-12, atol=1e-12)
    u = rng.standard_normal(model.dim)
    np.testing.assert_allclose(model.third_directional(w, u), np.einsum("ijk,j,k->i", t, u, u),
                               rtol=1e-12, atol=1e-12)
    # finite differences, h = 1e-5: the loss is a cubic, so central differences of the
    # gradient are exact up to rounding ~ eps |L| / h ~ 1e-10
    e = np.eye(model.dim)
    fd_g = np.array([(model.loss(w + 1e-5 * v) - model.loss(w - 1e-5 * v)) / 2e-5 for v in e])
    fd_h = np.array([(model.grad(w + 1e-5 * v) - model.grad(w - 1e-5 * v)) / 2e-5 for v in e])
    fd_3 = np.array([(u @ model.hessian(w + 1e-5 * v) @ u - u @ model.hessian(w - 1e-5 * v) @ u)
                     / 2e-5 for v in e])
    np.testing.assert_allclose(model.grad(w), fd_g, atol=1e-7)
    np.testing.assert_allclose(model.hessian(w), fd_h, atol=1e-7)
    np.testing.assert_allclose(model.third_directional(w, u), fd_3, atol=1e-7)


def test_compiled_kernel_equals_its_python_function(rng):
    model = _random_cubic(rng)
    k = model.kernels()
    th = np.ascontiguousarray(rng.standard_normal((model.dim, 4)))
    a, b = np.empty((model.dim, 4)), np.empty((model.dim, 4))
    k.grad(th, 1, 4, model.param_vector(), a)
    k.grad.py_func(th, 1, 4, model.param_vector(), b)
    np.testing.assert_array_equal(a[:, 1:], b[:, 1:])


@settings(max_examples=250 if LONG else 25)
@given(
    eta=st.floats(1e-3, 1.0),
    alpha=st.floats(1e-3, 10.0),
    beta=st.floats(1e-3, 100.0),
    n_stable=st.integers(0, 4),
    damping=st.floats(0.0, 0.9),
    coupling=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
)
# damping = 1e-9: h sits on the old cutoff 1e-9 * 2/eta, and rounding put it above
@example(eta=0.75, alpha=1.0, beta=1.0, n_stable=0, damping=1e-9, coupling=0.0, seed=0)
def test_at_edge_has_the_chosen_constants(eta, alpha, beta, n_stable, damping, coupling, seed):
    rng = np.random.default_rng(seed)
    model = CubicModel.at_edge(eta, alpha, beta, n_stable, damping=damping * 2 / eta,
                               coupling=coupling, rng=rng)
    c = stabilization_constants(model, model.center)
    # alpha, beta are sums of a few products of O(1) numbers times the (rotated) frame:
    # rounding only, relative 1e-10
    assert c.sharpness == pytest.approx(2 / eta, rel=1e-12)
    assert c.alpha == pytest.approx(alpha, rel=1e-10)
    assert c.beta == pytest.approx(beta, rel=1e-10)
    assert abs(c.grad_loss @ c.u) <= 1e-10 * (np.linalg.norm(c.grad_loss) + 1)
    # the spectrum at w*: h = damping * 2/eta along the sharpening direction, the default
    # stable eigenvalues (evenly spaced in [0.1, 0.5] * 2/eta, 0.3 * 2/eta alone) and 2/eta.
    # Compared value by value, not counted above a cutoff: h can be as small as rounding.
    # H is a product of three orthogonal and diagonal factors: rounding, 1e-12 * 2/eta.
    edge = 2 / eta
    mu = edge * (np.linspace(0.1, 0.5, n_stable) if n_stable > 1 else np.full(n_stable, 0.3))
    vals = np.linalg.eigvalsh(model.hessian(model.center))
    np.testing.assert_allclose(vals, np.sort([damping * edge, *mu, edge]), rtol=0,
                               atol=1e-12 * edge)
    assert model.dim == 2 + n_stable
    np.testing.assert_allclose(model.frame.T @ model.frame, np.eye(model.dim), atol=1e-12)


@pytest.mark.parametrize("damping", [0.0, 1.5])
def test_gd_on_the_at_edge_model_is_the_reduced_map(damping, rng):
    eta, alpha, beta = 0.05, 0.8, 3.0
    model = CubicModel.at_edge(eta, alpha, beta, 3, damping=damping, rng=rng)
    sb = np.sqrt(beta)
    w0 = model.local_point([0.01, -2.0 / sb, 0.5, -0.3, 0.2])
    res = simulate(model, GD(), w0, 400, eta=eta, save=("theta",))
    local = (res.theta[0].data - model.center) @ model.frame
    x, big_y = local[:, 0], sb * local[:, 1]
    # the same map in numpy: x+ = -(1 + eta Y) x, Y+ = Y + eta (alpha - beta x^2/2 - h Y)
    xr, yr = [0.01], [-2.0]
    for _ in range(400):
        xr.append(-(1 + eta * yr[-1]) * xr[-1])
        yr.append(yr[-1] + eta * (alpha - beta * xr[-2] ** 2 / 2 - damping * yr[-1]))
    # GD runs in rotated coordinates: agreement to rounding, amplified over 400 steps of a
    # map with |multiplier| <= 1.1: absolute 1e-9 on values of size ~1
    np.testing.assert_allclose(x, xr, atol=1e-9)
    np.testing.assert_allclose(big_y, yr, atol=1e-9)
    if damping == 0.0:
        rx, ry = ReducedMap(eta, alpha, beta).run(0.01, -2.0, 400)
        np.testing.assert_allclose(x, rx, atol=1e-9)
        np.testing.assert_allclose(big_y, ry, atol=1e-9)
    # the stable coordinates are plain GD on mu v^2 / 2 + v: v+ = (1 - eta mu) v - eta
    mu = np.linspace(0.1, 0.5, 3) * 2 / eta
    v_exact = -1 / mu + (np.array([0.5, -0.3, 0.2]) + 1 / mu) * (1 - eta * mu) ** 400
    np.testing.assert_allclose(local[-1, 2:], v_exact, atol=1e-9)


def test_at_edge_with_a_full_stable_block(rng):
    block = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    model = CubicModel.at_edge(0.1, 1.0, 4.0, 3, stable_hessian=block, rng=rng)
    vals = np.linalg.eigvalsh(model.hessian(model.center))
    # spectrum: 0 (sharpening direction), the block's eigenvalues, 2/eta; rounding only
    np.testing.assert_allclose(vals, np.sort([0.0, *np.linalg.eigvalsh(block), 20.0]),
                               atol=1e-12)
    c = stabilization_constants(model, model.center)
    assert c.alpha == pytest.approx(1.0, rel=1e-12) and c.beta == pytest.approx(4.0, rel=1e-12)


def test_direct_sum_is_block_diagonal(rng):
    a = CubicModel.at_edge(0.1, 1.0, 2.0, 1, rng=rng)
    b = CubicModel.at_edge(0.1, 0.5, 8.0, 0, rng=rng)
    s = CubicModel.direct_sum(a, b)
    wa, wb = rng.standard_normal(3), rng.standard_normal(2)
    w = np.concatenate([wa, wb])
    assert s.loss(w) == pytest.approx(a.loss(wa) + b.loss(wb), rel=1e-12)
    np.testing.assert_allclose(s.hessian(w)[:3, 3:], 0, atol=1e-14)
    vals = np.linalg.eigvalsh(s.hessian(s.center))
    assert np.sum(np.isclose(vals, 20.0, rtol=1e-12)) == 2  # two eigenvalues at 2/eta


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="alpha"):
        CubicModel.at_edge(0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        CubicModel.at_edge(0.1, -1.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        CubicModel.at_edge(0.1, 1.0, 0.0)
    with pytest.raises(ValueError, match="eta"):
        CubicModel.at_edge(-0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="positive definite"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_eigenvalues=[1.0, -1.0])
    with pytest.raises(ValueError, match="stable_eigenvalues"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_eigenvalues=[1.0, 25.0])
    with pytest.raises(ValueError, match="stable_eigenvalues must have shape"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_eigenvalues=[1.0])
    with pytest.raises(ValueError, match="positive definite"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_hessian=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_hessian=np.eye(3))
    with pytest.raises(ValueError, match="not both"):
        CubicModel.at_edge(0.1, 1.0, 1.0, 2, stable_hessian=np.eye(2), stable_eigenvalues=[1, 1])
    with pytest.raises(ValueError, match="damping"):
        CubicModel.at_edge(0.1, 1.0, 1.0, damping=30.0)
    with pytest.raises(ValueError, match="rng"):
        CubicModel.at_edge(0.1, 1.0, 1.0, coupling=0.5)
    ok = {"center": np.zeros(2), "linear": np.zeros(2), "quadratic": np.eye(2),
          "weights": [1.0], "vectors": [[1.0, 0.0]]}
    CubicModel(**ok)
    with pytest.raises(ValueError, match="vectors must have shape"):
        CubicModel(**{**ok, "vectors": [[1.0, 0.0, 0.0]]})
    with pytest.raises(ValueError, match="weights must have shape"):
        CubicModel(**{**ok, "weights": [1.0, 2.0]})
    with pytest.raises(ValueError, match="quadratic must have shape"):
        CubicModel(**{**ok, "quadratic": np.eye(3)})
    with pytest.raises(ValueError, match="symmetric"):
        CubicModel(**{**ok, "quadratic": [[1.0, 2.0], [0.0, 1.0]]})
    with pytest.raises(ValueError, match="linear must have shape"):
        CubicModel(**{**ok, "linear": np.zeros(3)})
    with pytest.raises(ValueError, match="finite"):
        CubicModel(**{**ok, "center": [np.nan, 0.0]})
    with pytest.raises(ValueError, match="frame"):
        CubicModel(**ok).local_point([0.0, 0.0])
    with pytest.raises(ValueError, match="CubicModel"):
        CubicModel.direct_sum()
