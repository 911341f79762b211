"""Statistics derived by the figures: the fate of a run from its tail, and the landmarks and
orderings the texts of Figs. 4 and 11 quote, on sequences whose answer is known in closed
form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paper.make.fig04_phases import first_cycle
from paper.make.fig11_ablations import order_over_time, spread
from paper.tails import classify_tail, settled_step


def test_slow_convergence_is_not_period_two():
    """x_t = a m^t with m = -0.999 (a fixed point approached with multiplier near -1).

    The period-2 test passes (|x_T - x_{T-2}| = a |m|^(T-2) (1 - m^2) is below the
    tolerance) while the period-1 test fails; the rule reads the shrinking amplitude and
    returns the rate |m| and the steps left, ln(eps / A_1) / ln|m|, in closed form.
    """
    m, a, k = -0.999, 1e-8, 128
    x = a * m ** np.arange(k)
    c = classify_tail(x, tol=1e-9)
    assert c.status == "converging" and c.period == 1
    assert c.rate == pytest.approx(abs(m), rel=1e-12)
    eps = 1e-9 * (1 + abs(x[-1]))
    a1 = a * abs(m) ** (k - 3) * (1 - m)  # the larger of the last two amplitudes
    assert c.steps_left == pytest.approx(math.log(eps / a1) / math.log(abs(m)), rel=1e-9)


def test_cycles_fixed_points_and_no_period():
    t = np.arange(128)
    two = np.where(t % 2 == 0, 0.3, -0.7)
    c = classify_tail(two)
    assert (c.status, c.period) == ("periodic", 2) and c.rate == pytest.approx(1.0)
    four = np.array([0.1, 0.5, -0.2, 0.9])[t % 4]
    assert classify_tail(np.column_stack([four, 2 * four])).period == 4
    assert classify_tail(np.full(16, 0.25)).status == "converged"
    # the logistic map at r = 4 is chaotic: no period up to 64
    x = np.empty(256)
    x[0] = 0.1234
    for i in range(255):
        x[i + 1] = 4 * x[i] * (1 - x[i])
    assert classify_tail(x).status == "running"
    # a cycle approached from inside (growing amplitude) stays periodic
    grow = np.where(t % 2 == 0, 1.0, -1.0) * (1 - 1e-11 * 0.5 ** t)
    assert classify_tail(grow).status == "periodic"


@pytest.mark.parametrize("bad, match", [
    (np.zeros(3), "K >= 4"), (np.zeros((5, 2, 2)), "shape"),
    (np.array([0.0, 1.0, np.nan, 2.0]), "finite")])
def test_bad_tails_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        classify_tail(bad)
    with pytest.raises(ValueError, match="tol"):
        classify_tail(np.zeros(8), tol=-1.0)
    with pytest.raises(ValueError, match="min_shrink"):
        classify_tail(np.zeros(8), min_shrink=1.0)


def test_settled_step_closed_form():
    """x_t = 2^-t: the step from x_t to x_(t+1) is 2^-(t+1), at most eps = tol (1 + x_T)
    from t = ceil(log2(1/eps)) - 1 on."""
    x = 0.5 ** np.arange(60)
    eps = 1e-9 * (1 + x[-1])
    assert settled_step(x, tol=1e-9) == math.ceil(math.log2(1 / eps)) - 1
    assert settled_step(np.array([0.0, 1.0, 2.0])) is None
    assert settled_step(np.ones(5)) == 0
    with pytest.raises(ValueError, match="finite"):
        settled_step(np.array([1.0, np.inf]))


def test_first_cycle_landmarks():
    """|x_t| = x0 exp(((t - 100)^2 - 100^2) / 1000), y_t = t - 100: |x| shrinks until the
    crossing at t = 100, where it is x0 exp(-10), and is back to x0 at t = 200."""
    t = np.arange(260)
    x0 = 1e-3
    x = x0 * np.exp(((t - 100.0) ** 2 - 100.0**2) / 1000.0)
    got = first_cycle(t, -x, t - 100.0)
    assert got["cross"] == 100 and got["x_min_step"] == 100
    assert got["x_min"] == pytest.approx(x0 * math.exp(-10.0), rel=1e-12)
    assert got["x_back"] == 200


def test_order_over_time_and_spread():
    """Three settings ordered increasingly (as expected) until step 40, then decreasingly."""
    t = np.arange(0, 100, 10)
    base = np.where(t <= 40, 1.0, -1.0)
    curves = [1 + 0.0 * base, 1 + 0.1 * base, 1 + 0.2 * base]
    o = order_over_time(t, curves, 1)
    assert o["expected"] == pytest.approx(0.5) and o["reversed"] == pytest.approx(0.5)
    assert o["expected_until"] == 40 and o["reversed_from"] == 50
    assert order_over_time(t, curves, -1)["reversed_from"] is None
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}


def test_ntk_initial_sharpness_is_the_readout_biases():
    """Fig. 11's claim: in the NTK parametrization with a zero read-out, the Hessian block of
    the read-out biases is the identity and the top eigenvector lies on it, so S(0) ~ 1.

    Dense Hessian from Hessian-vector products on a small network (float64), checked
    against the block structure; the coupling to the other weights is small but not zero.
    """
    import torch

    from validation.experiment import Config, Experiment

    config = Config(n=40, width=8, eta=1.0, steps=100, checks=("edge",), dtype="float64",
                    parametrization="ntk")
    exp = Experiment(config, torch.device("cpu"))
    w = exp.w0.clone()
    eye = torch.eye(w.numel(), dtype=w.dtype)
    h = torch.stack([exp.objective.hvp(w, eye[i]) for i in range(w.numel())]).numpy()
    h = (h + h.T) / 2
    o = exp.network.layers[-1].weight_shape[0]
    np.testing.assert_allclose(h[-o:, -o:], np.eye(o), atol=1e-12)
    values, vectors = np.linalg.eigh(h)
    assert values[-1] == pytest.approx(1.0, abs=2e-3)
    assert np.sum(vectors[-o:, -1] ** 2) > 0.99
