"""SGD, RMSProp and Adam as update maps, and their preconditioned thresholds."""

import numpy as np
import pytest
import scipy.linalg
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from minimal_eos import SGD, Adam, Quadratic, RMSProp, get_optimizer, reference_run
from minimal_eos.optimizers import FrozenPreconditioner, check_optimizer
from minimal_eos.thresholds import (
    a_sym,
    beta_sym,
    derive_all,
    eta_sym,
    known_thresholds,
    preconditioned_sharpness,
    spectral_radius,
    update_matrix,
)

LONG = settings.get_current_profile_name() == "long"


def _adam_loop(grad, x, lr, steps, b1, b2, eps, correct=True):
    """Adam as torch.optim.Adam documents it (weight decay 0, not AMSGrad, maximize off)."""
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    out = [x.copy()]
    for t in range(1, steps + 1):
        g = grad(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t) if correct else m
        v_hat = v / (1 - b2**t) if correct else v
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(x.copy())
    return np.array(out)


def _rmsprop_loop(grad, x, lr, steps, alpha, eps):
    """RMSprop as torch.optim.RMSprop documents it (no momentum, not centred)."""
    v = np.zeros_like(x)
    out = [x.copy()]
    for _ in range(steps):
        g = grad(x)
        v = alpha * v + (1 - alpha) * g**2
        x = x - lr * g / (np.sqrt(v) + eps)
        out.append(x.copy())
    return np.array(out)


MODEL = Quadratic([3.0, 0.5, 0.1], linear=(0.2, -1.0, 0.3),
                  basis=np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0])
THETA0 = np.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize("correct", [True, False])
def test_adam_equals_the_documented_algorithm(correct):
    opt = Adam(beta1=0.8, beta2=0.95, eps=1e-3, bias_correction=correct)
    got = reference_run(MODEL, opt, THETA0, np.full(40, 0.05))
    want = _adam_loop(MODEL.grad, THETA0, 0.05, 40, 0.8, 0.95, 1e-3, correct)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_rmsprop_equals_the_documented_algorithm():
    got = reference_run(MODEL, RMSProp(beta2=0.9, eps=1e-4), THETA0, np.full(40, 0.01))
    want = _rmsprop_loop(MODEL.grad, THETA0, 0.01, 40, 0.9, 1e-4)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_update_maps_equal_torch_optim(name):
    """Step by step against torch.optim in float64 on the same quadratic; torch orders the
    operations differently (e.g. Adam divides the step size by 1 - beta1^t), so the
    agreement is to rounding, 1e-12 relative over 40 steps."""
    torch = pytest.importorskip("torch")
    h = torch.tensor(MODEL.hessian_matrix)
    b = torch.tensor(MODEL.linear, dtype=torch.float64)
    w = torch.tensor(THETA0, requires_grad=True)
    lr = 0.03
    if name == "sgd":
        topt, opt = torch.optim.SGD([w], lr=lr), SGD(batch_size=1)
    elif name == "rmsprop":
        topt, opt = torch.optim.RMSprop([w], lr=lr, alpha=0.9, eps=1e-6), RMSProp(0.9, 1e-6)
    else:
        topt, opt = (torch.optim.Adam([w], lr=lr, betas=(0.7, 0.99), eps=1e-6),
                     Adam(0.7, 0.99, 1e-6))
    state = opt.init(THETA0.copy())
    for _ in range(40):
        topt.zero_grad()
        (0.5 * w @ h @ w + b @ w).backward()
        topt.step()
        state = opt.update(state, MODEL.grad(opt.query(state)), lr)
        np.testing.assert_allclose(state[0], w.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt", [RMSProp(0.9, 1e-3), Adam(0.8, 0.9, 1e-3)],
                         ids=lambda o: o.name)
def test_the_same_rule_runs_on_sympy(opt):
    """The update on symbols, evaluated, equals the update on floats (two steps)."""
    x0, g0, g1 = sp.symbols("x0 g0 g1")
    s = opt.update(opt.update(opt.init(x0), g0, sp.Rational(1, 10)), g1, sp.Rational(1, 10))
    f = opt.update(opt.update(opt.init(0.7), -1.3, 0.1), 0.4, 0.1)
    vals = {x0: 0.7, g0: -1.3, g1: 0.4}
    for sym, num in zip(s, f, strict=True):
        assert float(sp.sympify(sym).subs(vals)) == pytest.approx(float(num), rel=1e-13)


@pytest.mark.parametrize(
    ("make", "match"),
    [(lambda: SGD(0), "batch_size"), (lambda: SGD(2.5), "batch_size"),
     (lambda: SGD(True), "batch_size"), (lambda: SGD(2, replacement="no"), "replacement"),
     (lambda: RMSProp(beta2=1.0), "beta2"), (lambda: RMSProp(beta2=-0.1), "beta2"),
     (lambda: RMSProp(eps=0.0), "eps"), (lambda: Adam(beta1=1.0), "beta1"),
     (lambda: Adam(beta2=float("nan")), "beta2"), (lambda: Adam(eps=-1e-8), "eps"),
     (lambda: Adam(bias_correction=1), "bias_correction"),
     (lambda: get_optimizer("adamw"), "optimizer"), (lambda: check_optimizer(3), "optimizer"),
     (lambda: FrozenPreconditioner(0.5, p=np.array([1.0, 0.0])), "p"),
     (lambda: SGD(5).check_data(4), "batch_size")],
)
def test_bad_input_is_a_one_line_value_error(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_batch_size_may_exceed_the_data_with_replacement():
    SGD(5, replacement=True).check_data(4)


def test_get_optimizer_builds_the_new_maps():
    assert get_optimizer("adam", beta1=0.5) == Adam(beta1=0.5)
    assert get_optimizer("rmsprop").beta2 == 0.99
    assert get_optimizer("sgd", batch_size=4) == SGD(4)


# ---------------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_derived_thresholds_of_the_new_maps(name):
    thr = derive_all((name,))[name]
    assert sp.simplify(thr.expr - known_thresholds()[name]) == 0


def test_adam_threshold_is_38_over_eta_at_beta1_09():
    assert Adam(beta1=0.9).critical_sharpness(0.5) == pytest.approx(76.0, rel=1e-14)
    assert RMSProp().critical_sharpness(0.5) == 4.0
    expr = derive_all(("adam",))["adam"].expr.subs({beta_sym: sp.Rational(9, 10)})
    assert sp.simplify(expr - 38 / eta_sym) == 0


def test_the_frozen_view_is_the_linear_map_of_the_notes():
    m = update_matrix(Adam(beta1=beta_sym).frozen())
    want = sp.Matrix([[1 - eta_sym * (1 - beta_sym) * a_sym, -eta_sym * beta_sym],
                      [(1 - beta_sym) * a_sym, beta_sym]])
    assert sp.simplify(m - want) == sp.zeros(2, 2)


@pytest.mark.parametrize("opt", [Adam(), RMSProp()], ids=lambda o: o.name)
def test_the_full_adaptive_maps_are_refused_as_nonlinear(opt):
    with pytest.raises(ValueError, match="frozen"):
        update_matrix(opt)


def _frozen_run(opt, h, x0, eta, steps, bound=1e8):
    """Iterate the frozen map on f = x^T H x / 2: final |x| (inf once past the bound)."""
    state = opt.init(x0)
    for _ in range(steps):
        state = opt.update(state, h @ opt.query(state), eta)
        size = np.max(np.abs(state[0]))
        if not size <= bound:
            return np.inf
    return float(np.max(np.abs(state[0])))


@settings(max_examples=400 if LONG else 25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 4),
    beta=st.floats(0.0, 0.95),
    eps=st.floats(0.05, 0.3),
    eta=st.floats(0.01, 1.0),
)
def test_frozen_preconditioner_converges_below_and_diverges_above(seed, d, beta, eps, eta):
    """A random quadratic (random spectrum in a random basis, so H is not diagonal) and a
    random diagonal preconditioner P: at (1 - eps) times the critical sharpness of
    lambda_max(P^{-1} H) the frozen map converges, at (1 + eps) it diverges. The start is
    off the minimiser (the origin) along every direction."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    h0 = (q * rng.uniform(0.1, 1.0, size=d)) @ q.T
    h0 = 0.5 * (h0 + h0.T)
    p = rng.uniform(0.2, 5.0, size=d)
    opt = FrozenPreconditioner(beta=beta, p=p)
    top = preconditioned_sharpness(h0, p)
    x0 = np.ones(d)
    m = update_matrix(FrozenPreconditioner(beta=beta))
    spectrum = np.linalg.eigvals(h0 / p[:, None]).real
    for factor, want_stable in ((1 - eps, True), (1 + eps, False)):
        h = h0 * factor * opt.critical_sharpness(eta) / top
        radius = max(spectral_radius(m, {a_sym: lam * factor * opt.critical_sharpness(eta) / top,
                                          eta_sym: eta}) for lam in spectrum)
        steps = int(np.log(1e12) / abs(np.log(radius))) + 50
        final = _frozen_run(opt, h, x0, eta, min(steps, 200_000))
        assert (final < 1e-6) == want_stable, (factor, radius, final)


@settings(max_examples=200 if LONG else 30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 6), dense=st.booleans())
def test_preconditioned_sharpness_against_the_generalised_eigenproblem(seed, d, dense):
    """lambda_max(P^{-1/2} H P^{-1/2}) against scipy's H v = lambda P v (a Cholesky route)."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    h = a + a.T
    if dense:
        c = rng.normal(size=(d, d))
        p = c @ c.T + 0.5 * np.eye(d)
    else:
        p = rng.uniform(0.1, 10.0, size=d)
    want = scipy.linalg.eigh(h, p if dense else np.diag(p), eigvals_only=True)[-1]
    assert preconditioned_sharpness(h, p) == pytest.approx(want, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("h", "p", "match"),
    [(np.ones((2, 3)), np.ones(2), "hessian"), (np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2),
                                                "symmetric"),
     (np.eye(2), np.array([1.0, -1.0]), "p must be positive"), (np.eye(2), np.ones(3), "p must"),
     (np.eye(2), np.diag([1.0, -1.0]), "positive definite")],
)
def test_preconditioned_sharpness_bad_input(h, p, match):
    with pytest.raises(ValueError, match=match):
        preconditioned_sharpness(h, p)
