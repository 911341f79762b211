"""Figures' data for diagonal networks and logistic regression at large step sizes."""

import numpy as np
import pytest

from analysis.dln_logistic import (
    dln_step_size_sweep,
    logistic_bifurcation,
    logistic_loss_curves,
)
from minimal_eos.data import (
    cycle_dataset_1d,
    imbalanced_separable,
    nonseparable_logistic,
    sparse_regression,
)


@pytest.mark.slow
def test_dln_sweep(full):
    """The step-size sweep: exact predictions, the EoS window, the recovery jump.

    Default size: n = 8, d = 20 (seconds); with --full the n = 20, d = 50 problem of the
    figure.
    """
    n, d = (20, 50) if full else (8, 20)
    prob = sparse_regression(n, d, 2, seed=0)
    sweep = dln_step_size_sweep(prob, alpha=0.05, steps=40000, n_etas=24 if not full else 48)
    conv = sweep.status == "converged"
    assert sweep.eta_eos < sweep.eta_div
    # every converged limit is the predicted minimiser (GD stops at L <= 1e-26)
    assert np.ma.max(sweep.prediction_error) < 1e-9
    # linear stability of the limit, eta S <= 2, and the edge above the onset
    assert np.ma.max(sweep.edge) <= 2 * (1 + 1e-3)
    above = conv & (sweep.etas > 1.2 * sweep.eta_eos)
    assert above.any() and np.all(sweep.edge[above] > 1.5)
    below = sweep.etas < 0.9 * sweep.eta_eos
    assert np.all(sweep.oscillation[below] == 0)
    # at small steps GD sits near the gradient-flow solution; at the edge the effective
    # scale collapses on some coordinates and the recovery degrades: the measured jump is a
    # factor ~10 (n = 20, d = 50) and ~4 (n = 8, d = 20); 2 leaves room across seeds
    small = conv & below
    assert np.all(np.abs(sweep.recovery_error[small] - sweep.gradient_flow_recovery) < 0.05)
    assert np.max(sweep.recovery_error[above]) > 2 * np.max(sweep.recovery_error[small])
    assert np.ma.min(sweep.alpha_eff[above]) < 1e-3 * sweep.alpha
    # no divergence below the onset; some at the top of the sweep (divergence is not
    # monotone in eta there: diverging and oscillating step sizes interleave)
    assert not np.any(sweep.status[sweep.etas < sweep.eta_eos] == "diverged")
    assert np.any(sweep.status[sweep.etas >= sweep.eta_eos] == "diverged")


def test_logistic_curves():
    curves = logistic_loss_curves(imbalanced_separable(3, 1, tilt=0.1), [2.0, 20.0], 20000,
                                  every=10)
    assert curves.log_loss_constant.shape == (2, 2001) == curves.log_loss_adaptive.shape
    # on the same budget the adaptive step ends far lower (measured ln L ~ -1e3 vs -7)
    assert np.all(curves.log_loss_adaptive[:, -1] < curves.log_loss_constant[:, -1] - 10)
    # the constant step approaches its predicted asymptote ln(1/(eta gamma^2 t)): within
    # 1 % in 1/L after 2e4 steps
    np.testing.assert_allclose(curves.late_constant, 1.0, rtol=1e-2)
    assert abs(curves.log_loss_constant[0, -1] - curves.predicted_constant[0, -1]) < 0.05
    assert curves.phase_constant[1] > 0 and curves.phase_constant[0] == 0


def test_bifurcation_diagram_period_doubling():
    """Random 2-D non-separable data: period 1 below 2/lambda, then 2, then 4."""
    data = nonseparable_logistic(30, 2, seed=0)
    probe = logistic_bifurcation(data, [1.0], starts=np.zeros((1, 2)), transient=10, keep=4)
    lam = probe.thresholds.sharpness
    etas = np.array([1.9, 2.2, 2.7]) / lam
    bif = logistic_bifurcation(data, etas, transient=4000, keep=64)
    assert len(bif.diagrams) == 1  # no stable cycle below 2/lambda here: one branch
    # measured cascade for this set: period 2 from 2/lambda, period 4 from ~2.6/lambda
    assert list(bif.diagrams[0].period) == [1, 2, 4]


def test_cycle_branch_is_found():
    """The 1-D cycle data set: two branches at eta lambda = 1.59, the minimum and a cycle."""
    data = cycle_dataset_1d()
    probe = logistic_bifurcation(data, [1.0], starts=np.zeros((1, 1)), transient=10, keep=4)
    etas = np.array([1.59, 1.6]) / probe.thresholds.sharpness
    bif = logistic_bifurcation(data, etas, transient=2000, keep=16)
    assert len(bif.diagrams) == 2
    assert list(bif.diagrams[0].period) == [1, 1] and list(bif.diagrams[1].period) == [2, 2]


def test_sweep_alpha_only_prediction_misses_by_the_shift():
    """The prediction through alpha_inf alone (shift kept at c_0) misses GD's limit by far
    more than the exact one (A_inf and c_inf), and the more so the larger eta: the shift's
    change sum r(x_t) is third order in the steps (O(eta^2) after summing over the run)."""
    from minimal_eos.implicit_bias import eos_onset
    from minimal_eos.models.diagonal import DiagonalNetwork

    prob = sparse_regression(8, 20, 2, seed=0)
    model = DiagonalNetwork(prob.X, prob.y, "uv")
    eos = eos_onset(model, model.init(0.05))
    sweep = dln_step_size_sweep(prob, [0.5 * eos, 0.7 * eos, 0.9 * eos], alpha=0.05,
                                steps=40000)
    assert np.all(sweep.status == "converged"), sweep.status
    exact, alone = np.ma.getdata(sweep.prediction_error), np.ma.getdata(sweep.alpha_only_error)
    assert np.all(exact < 1e-9)
    assert np.all(alone > 1e3 * np.maximum(exact, 1e-16)), (exact, alone)
    assert np.all(np.diff(alone) > 0) and np.all(np.diff(np.ma.getdata(sweep.shift)) > 0)
