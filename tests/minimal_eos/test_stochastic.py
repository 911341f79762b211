"""Stochastic self-stabilization: the noisy reduced map, the noisy cubic model, the gap."""

import numpy as np
import pytest

from minimal_eos._random import below, normal, uniform
from minimal_eos.models.cubic import CubicModel
from minimal_eos.stabilization import (
    ReducedMap,
    stochastic_equilibrium,
    stochastic_gd,
    stochastic_sharpness_gap,
)


def test_gap_formula():
    assert stochastic_sharpness_gap(0.1, 2.0, 3.0, 0.5) == pytest.approx(0.1 * 3 * 0.5 / 8)
    assert stochastic_sharpness_gap(0.1, 2.0, 3.0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("args", "name"),
    [((0.0, 1.0, 1.0, 1.0), "eta"), ((0.1, -1.0, 1.0, 1.0), "alpha"),
     ((0.1, 1.0, float("nan"), 1.0), "beta"), ((0.1, 1.0, 1.0, -1.0), "sigma_u2")],
)
def test_gap_formula_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        stochastic_sharpness_gap(*args)


def test_counter_based_draws():
    """Pure functions of (seed, run, step, lane): moments of 20,000 normals within 5
    standard errors, uniforms in [0, 1), integers in range, and distinct keys differ."""
    z = np.array([normal(3, 1, t, 0) for t in range(20_000)])
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    u = np.array([uniform(3, 1, t, 0) for t in range(20_000)])
    assert u.min() >= 0 and u.max() < 1
    k = np.array([below(7, 3, 1, t, 0) for t in range(2_000)])
    assert set(k) == set(range(7))
    assert normal(3, 1, 5, 0) == normal(3, 1, 5, 0)
    assert len({normal(3, 1, 5, 0), normal(4, 1, 5, 0), normal(3, 2, 5, 0), normal(3, 1, 6, 0),
                normal(3, 1, 5, 1)}) == 5


def test_noisy_gd_on_the_cubic_model_is_the_noisy_reduced_map():
    """GD with noise along u on CubicModel.at_edge, through the model's own gradient, equals
    the stochastic reduced map in (x, Y = sqrt(beta) y) with the same draws."""
    eta, alpha, beta, s2 = 0.05, 0.5, 2.0, 3.0
    model = CubicModel.at_edge(eta, alpha, beta)
    c = np.sqrt(2 * alpha / beta)
    w = stochastic_gd(model, [c, 0.1], 400, eta=eta, sigma_u2=s2, u=[1.0, 0.0], seed=7, run=2)
    x, y = ReducedMap(eta, alpha, beta).run_stochastic(c, np.sqrt(beta) * 0.1, 400, s2, seed=7,
                                                       runs=3)
    np.testing.assert_allclose(w[:, 0], x[:, 2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.sqrt(beta) * w[:, 1], y[:, 2], rtol=1e-10, atol=1e-12)
    assert np.std(w[:, 0] - x[:, 1]) > 0.1  # another run draws other noise


def test_noise_enters_through_the_step():
    """One step from the centre's y = 0, x = 0: x+ = -eta sigma_u xi."""
    x, y = ReducedMap(0.1, 1.0, 2.0).run_stochastic(0.0, 0.0, 1, 4.0, seed=5)
    assert x[1, 0] == pytest.approx(-0.1 * 2.0 * normal(5, 0, 0, 0), rel=1e-15)
    assert y[1, 0] == pytest.approx(0.1, rel=1e-15)


def test_equilibrium_is_the_same_whatever_the_number_of_runs():
    """Run b is keyed by (seed, b): its average does not depend on the other runs (nor on the
    threads that run them)."""
    rm = ReducedMap(0.05, 1.0, 1.0)
    xs4, ys4 = rm.run_stochastic(1.0, 0.0, 2000, 2.0, seed=1, runs=4)
    xs9, ys9 = rm.run_stochastic(1.0, 0.0, 2000, 2.0, seed=1, runs=9)
    np.testing.assert_array_equal(xs4, xs9[:, :4])
    np.testing.assert_array_equal(ys4, ys9[:, :4])
    a = stochastic_equilibrium(rm, 2.0, steps=3000, burn_in=1000, runs=5, seed=2)
    b = stochastic_equilibrium(rm, 2.0, steps=3000, burn_in=1000, runs=5, seed=2)
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"steps": 10, "burn_in": 10}, "burn_in"), ({"steps": 0, "burn_in": 0}, "steps"),
     ({"steps": 10, "burn_in": 1, "runs": 0}, "runs"),
     ({"steps": 10, "burn_in": 1, "damping": -1.0}, "damping")],
)
def test_equilibrium_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stochastic_equilibrium(ReducedMap(0.1, 1.0, 1.0), 1.0, **kwargs)
