"""One conformance test over every model: derivatives against finite differences,
sharpness against a dense eigendecomposition, and bad input."""

import numpy as np
import pytest
import sympy as sp

from minimal_eos import (
    CubicModel,
    DiagonalNetwork,
    LogisticRegression,
    ProductModel,
    Quadratic,
    ScalarNetwork,
    SharpeningValley,
    SymbolicModel,
    TwoLayerNetwork,
    UVModel,
)

x, y = sp.symbols("x y")


def _rotation(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


MODELS = {
    "quadratic": Quadratic((3.0, -0.5, 1.0), linear=(0.1, -0.2, 0.3)),
    "quadratic-rotated": Quadratic((2.0, 0.5), basis=_rotation(0.3)),
    "quadratic-unsorted": Quadratic((0.5, -2.0, 4.0, 1.0), linear=(0.2, 0.0, -0.1, 0.3)),
    "scalar-depth3": ScalarNetwork(depth=3, x=(1.0, 0.5), y=(1.0, -0.3)),
    "scalar-depth2": ScalarNetwork(depth=2),
    "symbolic-quartic": SymbolicModel((x**2 * y**2 - 1) ** 2 / 4, (x, y)),
    "product-quartic": ProductModel("quartic"),
    "product-logcosh": ProductModel("log_cosh"),
    "uv": UVModel(width=3),
    "two-layer-relu": TwoLayerNetwork.toy(3, "relu", n_points=4),
    "two-layer-tanh": TwoLayerNetwork.toy(3, "tanh", n_points=4),
    "cubic": CubicModel.at_edge(1.0, 0.5, 2.0, 2, rng=np.random.default_rng(0)),
    "sharpening-valley": SharpeningValley(),
    "diagonal-uv": DiagonalNetwork(np.eye(2, 3) + 0.3, np.array([1.0, -0.5]), "uv"),
    "diagonal-uu-vv": DiagonalNetwork(np.eye(2, 3) + 0.3, np.array([1.0, -0.5]), "uu-vv"),
    "logistic": LogisticRegression(np.array([[1.0, 0.3], [-0.5, 1.0], [0.2, -1.0]]),
                                   np.array([1.0, -1.0, 1.0])),
}


def _fd_grad(f, p, h=1e-6):
    return np.array([(f(p + h * e) - f(p - h * e)) / (2 * h) for e in np.eye(len(p))])


@pytest.mark.parametrize("name", MODELS)
def test_derivatives_match_finite_differences(name, rng):
    model = MODELS[name]
    for _ in range(3):
        p = rng.uniform(-1.2, 1.2, size=model.dim)
        # central differences with h=1e-6: truncation ~h^2 |f'''| plus rounding ~eps/h,
        # both below 1e-7 for these low-degree polynomials on the box [-1.2, 1.2]^d
        np.testing.assert_allclose(model.grad(p), _fd_grad(model.loss, p), atol=1e-6)
        fd_h = np.array([_fd_grad(lambda q, i=i: model.grad(q)[i], p) for i in range(model.dim)])
        np.testing.assert_allclose(model.hessian(p), fd_h, atol=1e-6)
        _, u = model.top_eigenpair(p)
        fd_s = _fd_grad(lambda q, u=u: u @ model.hessian(q) @ u, p)
        np.testing.assert_allclose(model.third_directional(p, u), fd_s, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_sharpness_is_top_eigenvalue(name, rng):
    model = MODELS[name]
    p = rng.uniform(-1.2, 1.2, size=model.dim)
    dense = np.linalg.eigvalsh(model.hessian(p))[-1]
    assert model.sharpness(p) == pytest.approx(dense, rel=1e-12, abs=1e-12)
    lam, u = model.top_eigenpair(p)
    np.testing.assert_allclose(model.hessian(p) @ u, lam * u, atol=1e-10)


@pytest.mark.parametrize("name", MODELS)
def test_bad_points_are_rejected(name):
    model = MODELS[name]
    with pytest.raises(ValueError, match="shape"):
        model.loss(np.zeros(model.dim + 1))
    with pytest.raises(ValueError, match="finite"):
        model.grad(np.full(model.dim, np.nan))


def test_quadratic_kernels_match_symbolic_derivation(rng):
    """The hand-written quadratic kernels against the sympy-derived ones."""
    h = rng.normal(size=(3, 3))
    q, _ = np.linalg.qr(h)
    model = Quadratic((2.0, -1.0, 0.5), linear=(0.3, 0.0, -0.7), basis=q)
    sym = model.symbolic().compile()
    consts = model.param_vector()[1:]
    th = rng.normal(size=(3, 4))
    for kname, shape in (("loss", (4,)), ("grad", (3, 4)), ("hess", (3, 3, 4))):
        a, b = np.empty(shape), np.empty(shape)
        getattr(model.kernels(), kname)(th, 0, 4, model.param_vector(), a)
        getattr(sym, kname)(th, 0, 4, consts, b)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("spectrum", [(0.5, -2.0, 4.0, 1.0), (-3.0, 1.0, 2.5), (-1.0, -0.5)])
def test_quadratic_sharpness_does_not_depend_on_the_order_of_the_spectrum(spectrum, rng):
    """S is the largest eigenvalue of H = Q diag(spectrum) Q^T in any order, from a dense
    eigendecomposition of the matrix the loss is built from."""
    q, _ = np.linalg.qr(rng.normal(size=(len(spectrum), len(spectrum))))
    model = Quadratic(spectrum, basis=q)
    p = rng.normal(size=len(spectrum))
    dense = np.linalg.eigvalsh(model.hessian(p))[-1]
    assert dense == pytest.approx(max(spectrum), abs=1e-12)
    assert model.sharpness(p) == pytest.approx(dense, abs=1e-12)
    lam, u = model.top_eigenpair(p)
    assert lam == pytest.approx(dense, abs=1e-12)
    np.testing.assert_allclose(model.hessian(p) @ u, dense * u, atol=1e-12)


def test_quadratic_validation():
    with pytest.raises(ValueError, match="orthogonal"):
        Quadratic((1.0, 2.0), basis=np.ones((2, 2)))
    with pytest.raises(ValueError, match="linear"):
        Quadratic((1.0, 2.0), linear=(1.0,))
    with pytest.raises(ValueError, match="finite"):
        Quadratic((1.0, np.inf))
    np.testing.assert_allclose(Quadratic((2.0,), linear=(1.0,)).minimizer(), [-0.5])


def test_scalar_network_sharpness_at_minimum():
    """At a minimum of 1/2 (w1...wD - 1)^2 the Hessian is g g^T, S = |g|^2."""
    w = np.array([2.0, 0.5, 1.0])
    g = np.array([0.5, 2.0, 1.0])
    assert ScalarNetwork(depth=3).sharpness(w) == pytest.approx(g @ g, rel=1e-12)


def _log1pexp(s):
    return np.logaddexp(0.0, s)


def _definition(model):
    """Each model's loss written from its definition in numpy, independent of its kernels."""
    if isinstance(model, Quadratic):
        h = model.basis @ np.diag(model.eigenvalues) @ model.basis.T
        return lambda w: 0.5 * w @ h @ w + np.dot(model.linear, w)
    if isinstance(model, ScalarNetwork):
        xs, ys = np.array(model.x), np.array(model.y)
        return lambda w: np.mean((xs * np.prod(w) - ys) ** 2) / 2
    if isinstance(model, SymbolicModel):
        return lambda w: float(model.expr.subs(dict(zip(model.coords, w, strict=True))))
    if isinstance(model, ProductModel):
        c = model.target
        if model.loss_name == "quartic":
            return lambda w: ((w[0] * w[1]) ** 2 - c**2) ** 2 / 4
        return lambda w: np.log(np.cosh(w[0] * w[1] - c))
    if isinstance(model, UVModel):
        n = model.width
        return lambda w: (model.x * (w[:n] @ w[n:]) / np.sqrt(n) - model.y) ** 2 / 2
    if isinstance(model, TwoLayerNetwork):
        m, d = model.width, model.inputs.shape[1]

        def two_layer(w):
            act = np.tanh if model.activation == "tanh" else lambda z: np.maximum(z, 0)
            f = model.output_scale * act(model.inputs @ w[: m * d].reshape(m, d).T) @ w[m * d:]
            return np.mean((f - model.targets) ** 2) / 2
        return two_layer
    if isinstance(model, CubicModel):
        def cubic(w):
            d = w - model.center
            third = sum(c * (a @ d) ** 3 for c, a in zip(model.weights, model.vectors,
                                                         strict=True))
            return model.offset + model.linear @ d + d @ model.quadratic @ d / 2 + third / 6
        return cubic
    if isinstance(model, SharpeningValley):
        k, b, h, c = model.rate, model.coupling, model.valley, model.target
        return lambda w: (np.exp(k * w[1]) * (w[0] - b * w[2]) ** 2 / 2
                          + h * (w[1] + w[2] - c) ** 2 / 2)
    if isinstance(model, DiagonalNetwork):
        d = model.X.shape[1]

        def diagonal(w):
            u, v = w[:d], w[d:]
            beta = u * v if model.parametrization == "uv" else u * u - v * v
            return np.mean((model.X @ beta - model.y) ** 2) / 2
        return diagonal
    if isinstance(model, LogisticRegression):
        return lambda w: np.mean(_log1pexp(-model.y * (model.X @ w)))
    raise AssertionError(f"no definition for {type(model).__name__}")


@pytest.mark.parametrize("name", MODELS)
def test_loss_equals_its_definition(name, rng):
    """The loss kernels against the definition in each model's docstring, evaluated in
    numpy (sympy for SymbolicModel); the derivative kernels are tied to the loss by the
    finite differences above."""
    model = MODELS[name]
    f = _definition(model)
    for _ in range(4):
        p = rng.uniform(-1.2, 1.2, size=model.dim)
        # the same sums in another order: rounding only
        assert model.loss(p) == pytest.approx(f(p), rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("name", [n for n in MODELS if MODELS[n].kernels().step is not None])
def test_fused_step_equals_the_update_rules(name, rng):
    """The fused optimizer step against the update rules written in numpy around
    ``model.grad`` (itself checked by finite differences): GD ``x - e g(x)``, heavy ball
    ``v+ = beta v - e g(x)``, Nesterov ``v+ = beta v - e g(x + beta v)``, ``x+ = x + v+``."""
    model = MODELS[name]
    kern = model.kernels()
    d, n, beta = model.dim, 5, 0.6
    th = rng.uniform(-1.2, 1.2, size=(d, n))
    v0 = rng.normal(size=(d, n))
    e = rng.uniform(0.01, 0.3, size=n)
    for opt in (0, 1, 2):
        x, v, death = th.copy(), v0.copy(), np.full(n, np.inf)
        kern.step(x, v, e, death, 0, beta, opt, 1e8, 0, n, model.param_vector(),
                  np.empty((5, d, n)))
        assert np.all(np.isinf(death))
        for b in range(n):
            at = th[:, b] + (beta * v0[:, b] if opt == 2 else 0.0)
            g = model.grad(at)
            if opt == 0:
                expected_x, expected_v = th[:, b] - e[b] * g, v0[:, b]
            else:
                expected_v = beta * v0[:, b] - e[b] * g
                expected_x = th[:, b] + expected_v
            # the fused step may evaluate the gradient in another order: rounding only
            np.testing.assert_allclose(x[:, b], expected_x, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(v[:, b], expected_v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_every_kernel_equals_its_py_func(name, rng):
    """Compiled kernels against their pure-Python versions on random inputs."""
    model = MODELS[name]
    kern = model.kernels()
    d, n = model.dim, 6
    p = model.param_vector()
    th = rng.uniform(-1.2, 1.2, size=(d, n))
    u = rng.normal(size=(d, n))
    calls = {
        "loss": ((th, 1, n, p), (n,)),
        "grad": ((th, 1, n, p), (d, n)),
        "hess": ((th, 1, n, p), (d, d, n)),
        "dir3": ((th, u, 1, n, p), (d, n)),
        "sharp": ((th, 1, n, p), (n,)),
    }
    for kname, (args, shape) in calls.items():
        fn = getattr(kern, kname)
        a, b = np.zeros(shape), np.zeros(shape)
        fn(*args, a)
        fn.py_func(*args, b)
        if kname == "sharp" and d > 2:
            # LAPACK through numba vs through numpy: equal to rounding
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
        else:
            np.testing.assert_array_equal(a, b)
    if kern.step is not None:
        for opt in (0, 1, 2):
            states = []
            for fn in (kern.step, kern.step.py_func):
                x, v = th.copy(), u.copy()
                death = np.full(n, np.inf)
                death[2] = 1.0  # a run that already diverged must not move
                e = rng.uniform(0.1, 50.0, size=n) if not states else states[0][3]
                fn(x, v, e, death, 5, 0.7, opt, 1e3, 0, n, p, np.empty((5, d, n)))
                states.append((x, v, death, e))
            for s1, s2 in zip(states[0][:3], states[1][:3], strict=True):
                np.testing.assert_array_equal(s1, s2)
            np.testing.assert_array_equal(states[0][0][:, 2], th[:, 2])


@pytest.mark.parametrize("name", ["scalar-depth3", "symbolic-quartic"])
def test_fused_step_equals_generic_step(name, rng):
    """The generated fused step and the multi-pass generic step agree bit for bit."""
    from minimal_eos._kernels import make_generic_step

    model = MODELS[name]
    kern = model.kernels()
    generic = make_generic_step(kern.grad)
    d, n = model.dim, 9
    th = rng.uniform(-1.5, 1.5, size=(d, n))
    v0 = rng.normal(size=(d, n))
    e = rng.uniform(0.01, 30.0, size=n)  # large steps: some runs leave the bound
    for opt in (0, 1, 2):
        out = []
        for fn in (kern.step, generic):
            x, v, death = th.copy(), v0.copy(), np.full(n, np.inf)
            for t in range(4):
                fn(x, v, e, death, t, 0.6, opt, 1e4, 0, n, model.param_vector(),
                   np.empty((5, d, n)))
            out.append((x, v, death))
        for a, b in zip(out[0], out[1], strict=True):
            np.testing.assert_array_equal(a, b)
        assert np.isfinite(out[0][2]).any()  # the test does exercise divergence
