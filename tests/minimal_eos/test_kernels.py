"""The compiled steps against the update maps; divergence, period and printer edge cases."""

import numpy as np
import pytest
import sympy as sp

from minimal_eos import (
    GD,
    HeavyBall,
    Nesterov,
    Quadratic,
    ScalarNetwork,
    Status,
    SymbolicModel,
    simulate,
)
from minimal_eos._kernels import make_generic_step

xs = sp.Symbol("x")
NET = ScalarNetwork(depth=3, x=(1.0, 0.7), y=(1.0, 0.4))
QUAD = Quadratic((2.0, 0.5, -0.1), linear=(0.2, 0.1, 0.0))
QUARTIC_1D = SymbolicModel((xs**2 - 1) ** 2 / 4, (xs,))


def _steps(model):
    """The model's own step, and the generic step built on its gradient kernel."""
    kern = model.kernels()
    own = kern.step if kern.step is not None else make_generic_step(kern.grad)
    return {"own": own, "generic": make_generic_step(kern.grad)}


@pytest.mark.parametrize("which", ["own", "generic"])
@pytest.mark.parametrize("model", [NET, QUAD], ids=["fused", "hand-written"])
@pytest.mark.parametrize("cls", [GD, HeavyBall, Nesterov], ids=lambda c: c.name)
def test_compiled_step_equals_the_update_map_on_random_states(cls, model, which, rng):
    """One compiled step from random (x, v) equals update(state, grad L(query(state)), eta)."""
    d, n = model.dim, 11
    beta = float(rng.uniform(0.05, 0.95))
    opt = cls() if cls is GD else cls(beta)
    x, v = rng.uniform(-1.5, 1.5, size=(d, n)), rng.normal(size=(d, n))
    e = rng.uniform(0.01, 2.0, size=n)
    x1, v1, death = x.copy(), v.copy(), np.full(n, np.inf)
    _steps(model)[which](x1, v1, e, death, 0, beta, opt.code, 1e300, 0, n,
                         model.param_vector(), np.empty((5, d, n)))
    assert np.all(death == np.inf)
    for b in range(n):
        state = (x[:, b], v[:, b])
        want_x, want_v = opt.update(state, model.grad(opt.query(state)), e[b])
        np.testing.assert_array_equal(x1[:, b], want_x)
        np.testing.assert_array_equal(v1[:, b], want_v if cls is not GD else v[:, b])


@pytest.mark.parametrize(
    ("model", "fused"),
    [(Quadratic((1.0,)), False), (SymbolicModel(xs**2 / 2, (xs,)), True)],
    ids=["generic step", "fused step"],
)
def test_divergence_step_at_the_bound_itself(model, fused):
    """GD on x^2/2 with eta = 3: x_k = (-2)^k. |x_10| = 1024 is on the bound, x_11 leaves it."""
    assert (model.kernels().step is not None) == fused
    res = simulate(model, GD(), [1.0], 30, eta=3.0, divergence_bound=1024.0, save=("theta",))
    assert res.status[0] == Status.DIVERGED and res.diverged_at[0] == 11
    assert res.final_theta[0, 0] == 1024.0
    assert not res.theta.mask[0, :11].any() and res.theta.mask[0, 11:].all()


@pytest.mark.parametrize(("eta", "p"), [(1.26, 4), (1.395, 5), (1.335, 6), (1.295, 8)])
def test_max_period_p_detects_period_p(eta, p):
    """On (x^2 - 1)^2 / 4 these step sizes settle on cycles of period p (and no shorter)."""
    exact = simulate(QUARTIC_1D, GD(), [0.9], 3000, eta=eta, save=(), max_period=p)
    assert exact.status[0] == Status.PERIODIC and exact.period[0] == p
    short = simulate(QUARTIC_1D, GD(), [0.9], 3000, eta=eta, save=(), max_period=p - 1)
    assert short.status[0] == Status.RUNNING and short.period[0] == 0


def test_max_period_two_on_the_exact_two_cycle():
    """GD on x^2/2 with eta = 2 maps x to -x exactly: period 2, also with only 3 steps."""
    for steps in (3, 50):
        res = simulate(Quadratic((1.0,)), GD(), [1.0], steps, eta=2.0, max_period=2)
        assert res.status[0] == Status.PERIODIC and res.period[0] == 2
    res = simulate(Quadratic((1.0,)), GD(), [1.0], 50, eta=2.0, max_period=1)
    assert res.status[0] == Status.RUNNING


def test_negative_powers_in_a_symbolic_model():
    """L = x^-2: value, gradient and Hessian at x = 2 are exact (powers of two)."""
    model = SymbolicModel(xs**-2, (xs,))
    assert model.loss([2.0]) == 0.25
    assert model.grad([2.0])[0] == -0.25  # -2 x^-3
    assert model.hessian([2.0])[0, 0] == 0.375  # 6 x^-4
    assert "1.0/" in model.symbolic().source()
