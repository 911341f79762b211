"""The update maps of minimal_eos.optimizers against independent routes: closed forms,
torch.optim, and the dense spectrum of each map's linearisation; and their argument checks.

Fast by design (no compiled simulation kernel): these tests are the mutation-testing
selection for ``minimal_eos/optimizers.py`` (``setup.cfg`` ``[mutmut]``).
"""

import functools
import inspect

import numpy as np
import pytest
import sympy as sp

from minimal_eos import (
    GD,
    SGD,
    Adam,
    FiniteSumQuadratic,
    HeavyBall,
    Nesterov,
    Quadratic,
    RMSProp,
    get_optimizer,
    reference_run,
    simulate,
)
from minimal_eos.optimizers import (
    KERNEL_OPTIMIZERS,
    OPTIMIZERS,
    FrozenPreconditioner,
    check_optimizer,
)

H = np.array([[2.0, 0.4, 0.0], [0.4, 1.0, -0.3], [0.0, -0.3, 0.25]])
LINEAR = np.array([0.3, -1.0, 0.5])
THETA0 = np.array([1.0, -2.0, 0.5])


def _grad(x):
    return H @ x + LINEAR


def _torch_run(make, grad_scale, steps, lr):
    """Parameters of a torch.optim optimizer on ``x^T H x / 2 + b^T x``, the gradient
    divided by ``grad_scale`` (a frozen diagonal preconditioner), in float64."""
    torch = pytest.importorskip("torch")
    w = torch.tensor(THETA0.copy(), dtype=torch.float64)
    opt = make([w], lr)
    out = [w.numpy().copy()]
    for _ in range(steps):
        w.grad = torch.tensor(_grad(w.numpy()) / grad_scale)
        opt.step()
        out.append(w.numpy().copy())
    return np.array(out)


def _run(opt, steps, eta, grad=_grad):
    """Positions and query points of ``steps`` updates with the exact gradient."""
    state = opt.init(THETA0.copy())
    xs, qs = [state[0]], []
    for _ in range(steps):
        q = opt.query(state)
        qs.append(q)
        state = opt.update(state, grad(q), eta)
        xs.append(state[0])
    return np.array(xs), np.array(qs), state


# ---------------------------------------------------------------------------------------
# trajectories
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.5, 1.5, 2.5, 3.5])
def test_gd_is_geometric_on_a_scalar_quadratic(a):
    """On ``L = a x^2 / 2``: ``x_t = (1 - eta a)^t x_0`` (converges for eta a < 2, flips
    sign for eta a > 1, diverges for eta a > 2)."""
    model = Quadratic([a])
    eta, steps = 1.0, 12
    got = reference_run(model, GD(), [1.5], np.full(steps, eta))[:, 0]
    want = 1.5 * (1.0 - eta * a) ** np.arange(steps + 1)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


def test_the_step_size_of_each_step_is_used():
    """A varying step size on ``x^2 / 2``: ``x_t = x_0 prod_{s < t} (1 - eta_s)``."""
    etas = np.array([0.1, 0.5, 1.7, 0.25, 1.9])
    got = reference_run(Quadratic([1.0]), GD(), [2.0], etas)[:, 0]
    want = 2.0 * np.concatenate([[1.0], np.cumprod(1.0 - etas)])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_heavy_ball_equals_torch_sgd_with_momentum(beta):
    """torch: ``buf+ = beta buf + g``, ``w+ = w - lr buf+``: with ``v = -lr buf`` this is
    ``v+ = beta v - lr g``, ``x+ = x + v+``."""
    torch = pytest.importorskip("torch")
    lr, steps = 0.3, 30
    want = _torch_run(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=beta), 1.0, steps, lr)
    xs, _, (_, v) = _run(HeavyBall(beta), steps, lr)
    np.testing.assert_allclose(xs, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v, want[-1] - want[-2], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("beta", [0.3, 0.9])
def test_nesterov_looks_ahead_like_torch_nesterov(beta):
    """torch's Nesterov (``buf+ = beta buf + g``, ``w+ = w - lr (g + beta buf+)``) iterates
    the look-ahead point ``y = x + beta v`` of the form here: its parameters are this map's
    query points, and the positions are ``x = y - beta v``."""
    torch = pytest.importorskip("torch")
    lr, steps = 0.3, 30
    want = _torch_run(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=beta, nesterov=True),
                      1.0, steps, lr)
    xs, qs, (x, v) = _run(Nesterov(beta), steps, lr)
    np.testing.assert_allclose(qs, want[:-1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x + beta * v, want[-1], rtol=1e-12, atol=1e-14)
    assert not np.allclose(xs[1:], want[1:])  # the positions are not the look-ahead points


@pytest.mark.parametrize("beta", [0.0, 0.6])
def test_frozen_preconditioner_equals_torch_momentum_on_the_preconditioned_gradient(beta):
    """``m+ = beta m + (1 - beta) g``, ``x+ = x - eta m+ / p`` is heavy ball on ``g / p``
    with step ``eta (1 - beta)``: torch's SGD with momentum ``beta`` and that step size."""
    torch = pytest.importorskip("torch")
    p = np.array([2.0, 0.5, 4.0])
    eta, steps = 0.2, 30
    want = _torch_run(lambda w, lr: torch.optim.SGD(w, lr=lr, momentum=beta), p, steps,
                      eta * (1.0 - beta))
    xs, _, (_, m) = _run(FrozenPreconditioner(beta, p), steps, eta)
    np.testing.assert_allclose(xs, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, -(want[-1] - want[-2]) * p / eta, rtol=1e-10, atol=1e-14)


def test_adam_state_and_bias_correction_equal_torch_adam():
    """Adam's ``(x, m, v, t)`` after 25 steps against torch.optim.Adam's parameters and its
    ``exp_avg``, ``exp_avg_sq`` and ``step``."""
    torch = pytest.importorskip("torch")
    w = torch.tensor(THETA0.copy(), dtype=torch.float64)
    topt = torch.optim.Adam([w], lr=0.05, betas=(0.6, 0.8), eps=1e-3)
    opt = Adam(0.6, 0.8, 1e-3)
    state = opt.init(THETA0.copy())
    assert state[3] == 0 and not np.any(state[1]) and not np.any(state[2])
    for _ in range(25):
        w.grad = torch.tensor(_grad(w.numpy()))
        topt.step()
        state = opt.update(state, _grad(opt.query(state)), 0.05)
    tstate = topt.state[w]
    np.testing.assert_allclose(state[0], w.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[1], tstate["exp_avg"].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[2], tstate["exp_avg_sq"].numpy(), rtol=1e-12, atol=1e-14)
    assert state[3] == int(tstate["step"]) == 25


def test_first_adam_step_is_a_sign_step():
    """Closed form: with bias correction and ``eps -> 0`` the first step is
    ``x - eta sign(g)``, whatever the betas; without it, ``x - eta (1 - b1) / sqrt(1 - b2)
    sign(g)``."""
    g = np.array([3.0, -0.25, 1e-3])
    for b1, b2 in ((0.9, 0.999), (0.5, 0.7)):
        x1 = Adam(b1, b2, 1e-12).update(Adam().init(np.zeros(3)), g, 0.1)[0]
        np.testing.assert_allclose(x1, -0.1 * np.sign(g), rtol=1e-8)
        raw = Adam(b1, b2, 1e-12, bias_correction=False)
        x1 = raw.update(raw.init(np.zeros(3)), g, 0.1)[0]
        np.testing.assert_allclose(x1, -0.1 * (1 - b1) / np.sqrt(1 - b2) * np.sign(g),
                                   rtol=1e-6)


def test_first_rmsprop_step_and_eps():
    """Closed form of the first RMSProp step from ``v_0 = 0``:
    ``x - eta g / (sqrt(1 - beta2) |g| + eps)``."""
    g = np.array([2.0, -0.5])
    opt = RMSProp(0.75, 0.5)
    x1, v1 = opt.update(opt.init(np.ones(2)), g, 0.1)
    np.testing.assert_allclose(x1, 1.0 - 0.1 * g / (0.5 * np.abs(g) + 0.5), rtol=1e-15)
    np.testing.assert_allclose(v1, 0.25 * g**2, rtol=1e-15)


def test_gd_and_sgd_keep_the_velocity_and_gd_is_heavy_ball_without_momentum():
    for opt in (GD(), SGD(2)):
        x, v = opt.update(opt.init(np.ones(2)), np.array([1.0, 2.0]), 0.5)
        np.testing.assert_array_equal(x, [0.5, 0.0])
        np.testing.assert_array_equal(v, [0.0, 0.0])
    np.testing.assert_array_equal(_run(GD(), 10, 0.7)[0], _run(HeavyBall(0.0), 10, 0.7)[0])
    assert GD().beta == HeavyBall(0.0).beta == 0.0


# ---------------------------------------------------------------------------------------
# thresholds against the spectrum of the linearised map
# ---------------------------------------------------------------------------------------


def _radius(opt, a, eta):
    """Spectral radius of one update on ``L = a x^2 / 2``, read column by column from the
    map itself (it is linear in the state for these optimizers), by dense eigenvalues. GD's
    and SGD's velocity is inert (an eigenvalue 1 that never moves): only ``x`` counts."""
    cols = []
    for basis in np.eye(2):
        state = (basis[0], basis[1])
        new = opt.update(state, a * opt.query(state), eta)
        cols.append([new[0], new[1]])
    m = np.array(cols).T
    return max(abs(np.linalg.eigvals(m[:1, :1] if isinstance(opt, GD | SGD) else m)))


@pytest.mark.parametrize(
    ("opt", "at_eta_1"),
    [(GD(), 2.0), (SGD(3), 2.0), (HeavyBall(0.5), 3.0), (HeavyBall(0.0), 2.0),
     (Nesterov(0.5), 1.5), (Nesterov(0.9), 3.8 / 2.8), (FrozenPreconditioner(0.0), 2.0),
     (FrozenPreconditioner(0.9), 38.0), (RMSProp(0.5), 2.0), (Adam(0.9), 38.0),
     (Adam(0.5, 0.5), 6.0)],
    ids=lambda o: getattr(o, "name", None),
)
def test_critical_sharpness_is_where_the_map_loses_stability(opt, at_eta_1):
    """Just below the critical sharpness the map contracts, just above it expands; the value
    at ``eta = 1`` is the closed form of the class docstring, and it scales as ``1 / eta``."""
    linear = opt.frozen() if isinstance(opt, RMSProp | Adam) else opt
    for eta in (0.25, 1.0, 3.0):
        crit = opt.critical_sharpness(eta)
        assert crit == pytest.approx(at_eta_1 / eta, rel=1e-14)
        assert _radius(linear, crit * (1 - 1e-6), eta) < 1 < _radius(linear, crit * (1 + 1e-6),
                                                                        eta)


def test_frozen_views_carry_the_first_moment_only():
    assert RMSProp(0.3).frozen() == FrozenPreconditioner(0.0, 1)
    assert RMSProp(0.3).frozen(p=3.0) == FrozenPreconditioner(0.0, 3.0)
    assert Adam(0.7, 0.2).frozen(p=2.0) == FrozenPreconditioner(0.7, 2.0)


# ---------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [(lambda b: HeavyBall(b), "beta"), (lambda b: FrozenPreconditioner(b), "beta"),
     (lambda b: RMSProp(beta2=b), "beta2"), (lambda b: Adam(beta1=b), "beta1"),
     (lambda b: Adam(beta2=b), "beta2")],
)
def test_every_momentum_is_checked_under_its_own_name(make, field):
    for good in (0, 0.0, 0.999999, np.float32(0.5), sp.Rational(1, 4), sp.Float(0.5)):
        value = getattr(make(good), field)
        assert type(value) is float and value == float(good)
    for bad in (1, 1.0, -1e-12, np.inf, np.nan, sp.Integer(2), None):
        with pytest.raises(ValueError, match=rf"^{field} must "):
            make(bad)
    beta = sp.Symbol("beta")
    assert getattr(make(beta), field) is beta


@pytest.mark.parametrize("make", [lambda e: RMSProp(eps=e), lambda e: Adam(eps=e)])
def test_eps_is_a_positive_float_or_a_symbol(make):
    for good in (1e-300, 2, sp.Rational(1, 8)):
        eps = make(good).eps
        assert type(eps) is float and eps == float(good)
    for bad in (0.0, -1e-8, np.inf, np.nan, sp.Integer(-1), "1e-8"):
        with pytest.raises(ValueError, match=r"^eps must "):
            make(bad)
    eps = sp.Symbol("epsilon")
    assert make(eps).eps is eps


def test_frozen_preconditioner_p():
    for good in (1, 0.5, [1.0, 3.0], np.array([1e-3]), sp.Symbol("p")):
        FrozenPreconditioner(0.5, good)
    # None becomes NaN as a float: refused with the same message, not a TypeError
    for bad in (0.0, -1.0, [1.0, 0.0], [1.0, np.nan], np.inf, [np.inf, 1.0], [1.0, None]):
        with pytest.raises(ValueError, match=r"^p must be positive and finite"):
            FrozenPreconditioner(0.5, bad)


def test_flags_are_stored_as_bools():
    for field, make in (("replacement", lambda f: SGD(2, replacement=f)),
                        ("bias_correction", lambda f: Adam(bias_correction=f))):
        for flag in (True, False, np.True_, np.False_):
            value = getattr(make(flag), field)
            assert type(value) is bool and value == bool(flag)
        for bad in (1, 0, "yes", None):
            with pytest.raises(ValueError, match=rf"^{field} must be True or False"):
                make(bad)
    size = SGD(np.int64(3)).batch_size
    assert type(size) is int and size == 3
    for bad in (0, 2.5, True, "2"):
        with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1"):
            SGD(bad)


def test_batch_size_against_the_data():
    SGD(4).check_data(4)
    SGD(5, replacement=True).check_data(1)
    with pytest.raises(ValueError, match=r"^batch_size must be at most the number of "
                                         r"examples \(4\) when drawing without replacement"):
        SGD(5).check_data(4)


def test_names_build_the_classes_with_their_defaults():
    assert set(OPTIMIZERS) == {"gd", "heavy_ball", "nesterov", "sgd", "rmsprop", "adam"}
    assert set(KERNEL_OPTIMIZERS) == {"gd", "heavy_ball", "nesterov"}
    for name, cls in OPTIMIZERS.items():
        assert type(get_optimizer(name)) is cls and cls().name == name
        assert check_optimizer(name) == cls()
        opt = cls()
        assert check_optimizer(opt) is opt
    assert len({cls.code for cls in OPTIMIZERS.values()}) == len(OPTIMIZERS)
    assert get_optimizer("nesterov", beta=0.25) == Nesterov(0.25)


def test_bad_names_and_parameters_are_one_line_value_errors():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'adamw'"):
        get_optimizer("adamw")
    with pytest.raises(ValueError, match=r"^bad parameters for the gd optimizer: "):
        get_optimizer("gd", beta=0.5)
    names = "'gd', 'heavy_ball', 'nesterov', 'sgd', 'rmsprop', 'adam'"
    for bad in (3, None, GD, FrozenPreconditioner(0.5)):
        with pytest.raises(ValueError, match=r"^optimizer must be GD\(\), ") as info:
            check_optimizer(bad)
        assert f"one of the names {names}; got {bad!r}" in str(info.value)


# ---------------------------------------------------------------------------------------
# reference_run with mini-batches
# ---------------------------------------------------------------------------------------

HS = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]], [[0.5, -0.2], [-0.2, 0.4]]])
BS = np.array([[1.0, -1.0], [0.5, 0.0], [-0.2, 0.3]])


def test_the_full_batch_without_replacement_is_gd():
    model = FiniteSumQuadratic(HS, BS)
    etas = np.full(20, 0.3)
    sgd = reference_run(model, SGD(3), [1.0, -1.0], etas, seed=5, run=2)
    gd = reference_run(model, GD(), [1.0, -1.0], etas)
    np.testing.assert_allclose(sgd, gd, rtol=1e-13, atol=1e-15)
    assert sgd.shape == (21, 2)


def test_one_example_drawn_with_replacement_is_gd_on_it():
    """One example, batch of 3 drawn with replacement: each draw is that example."""
    model = FiniteSumQuadratic(HS[:1], BS[:1])
    etas = np.full(15, 0.2)
    sgd = reference_run(model, SGD(3, replacement=True), [1.0, 2.0], etas)
    want = reference_run(Quadratic(np.linalg.eigvalsh(HS[0])[::-1],
                                   basis=np.linalg.eigh(HS[0])[1][:, ::-1],
                                   linear=BS[0]), GD(), [1.0, 2.0], etas)
    np.testing.assert_allclose(sgd, want, rtol=1e-12, atol=1e-14)


def test_the_default_keys_are_those_of_the_first_run_of_simulate():
    """``reference_run(..., SGD)`` replays run 0 of :func:`simulate` at its default seed, and
    both keys change the draws."""
    seed = inspect.signature(simulate).parameters["seed"].default
    model = FiniteSumQuadratic(HS, BS)
    run = functools.partial(reference_run, model, SGD(1), [1.0, -1.0], np.full(12, 0.3))
    want = run(seed=seed, run=0)
    np.testing.assert_array_equal(run(), want)
    assert not np.allclose(run(seed=seed + 1, run=0), want)
    assert not np.allclose(run(seed=seed, run=1), want)


def test_reference_run_checks_the_mini_batch_keys():
    model = FiniteSumQuadratic(HS, BS)
    for kwargs, field in (({"seed": -1}, "seed"), ({"run": -1}, "run"),
                          ({"seed": 1.5}, "seed")):
        with pytest.raises(ValueError, match=rf"^{field} must be an integer >= 0"):
            reference_run(model, SGD(2), [0.0, 0.0], [0.1], **kwargs)
    with pytest.raises(ValueError, match=r"^batch_size must be at most"):
        reference_run(model, SGD(4), [0.0, 0.0], [0.1])


def test_adaptive_defaults_are_torch_defaults():
    """RMSProp's and Adam's defaults are torch.optim's (``alpha``, ``betas``, ``eps``)."""
    torch = pytest.importorskip("torch")
    w = [torch.zeros(1, requires_grad=True)]
    rms, adam = torch.optim.RMSprop(w).defaults, torch.optim.Adam(w).defaults
    assert (RMSProp().beta2, RMSProp().eps) == (rms["alpha"], rms["eps"])
    assert (Adam().beta1, Adam().beta2) == adam["betas"] and Adam().eps == adam["eps"]
    assert Adam().bias_correction and not adam["amsgrad"]
