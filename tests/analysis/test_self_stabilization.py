"""Figures' data of self-stabilization: the four-phase picture and GD vs the flows."""

import numpy as np
import pytest

from analysis.self_stabilization import (
    flow_comparison,
    four_phase_picture,
    four_phase_run,
    moving_average,
)
from minimal_eos import GD, CubicModel, Quadratic, ReducedMap, detect_phases, reference_run


def test_four_phase_picture_of_the_reduced_map():
    pic = four_phase_picture(0.01, 1.0, 2.0, steps=1500)
    assert pic.phases.in_order
    np.testing.assert_array_equal(pic.phases.sequence[:5], [1, 2, 3, 4, 1])
    assert pic.threshold == 200.0 and pic.sigma2 == pytest.approx(1.0)
    # the predicted sharpness 2/eta + y against the dense Hessian of the cubic model on which
    # the reduced map is exact, at local coordinates (x, y / sqrt(beta)) (grad S has norm
    # sqrt(beta)): there the top eigenvalue is A/2 + sqrt(A^2/4 + beta x^2), A = 2/eta + y,
    # which exceeds 2/eta + y by at most beta x^2 / A
    model = CubicModel.at_edge(0.01, 1.0, 2.0)
    for k in range(0, len(pic.x), 50):
        w = model.local_point([pic.x[k], pic.y[k] / np.sqrt(2.0)])
        dense = np.linalg.eigvalsh(model.hessian(w))[-1]
        excess = dense - pic.sharpness[k]
        assert -1e-10 <= excess <= 2.0 * pic.x[k] ** 2 / pic.sharpness[k] + 1e-10
    x, y = ReducedMap(0.01, 1.0, 2.0).run(1e-3, -1.0, 1500)  # the documented defaults
    np.testing.assert_array_equal(pic.x, x)
    np.testing.assert_array_equal(pic.y, y)
    # before the blow-up the continuum limit follows the map to first order in eta: the map
    # adds log(1 + eta y) - eta y ~ -(eta y)^2 / 2 to log|x| per step, at most
    # 100 * (0.01 * 1)^2 / 2 = 5e-3 over the 100 sharpening steps; y differs through x^2 only
    first = slice(0, pic.phases.first_start(2))
    np.testing.assert_allclose(pic.continuum_x[first], np.abs(pic.x[first]), rtol=1e-2)
    np.testing.assert_allclose(pic.continuum_y[first], pic.y[first], atol=1e-6)


def test_four_phase_run_reads_the_reduced_map_off_gd(rng):
    eta, alpha, beta = 0.02, 1.0, 1.0
    model = CubicModel.at_edge(eta, alpha, beta, 2, rng=rng)
    w0 = model.local_point([0.1, -1.0, 1.0, -1.0])
    pic = four_phase_run(model, w0, 1200, eta=eta)
    # GD on this model is exactly the reduced map (rounding amplified by 1200 steps of a
    # map with multipliers within 1 +- 0.1: 1e-9)
    x, y = ReducedMap(eta, alpha, beta).run(pic.x[0], pic.y[0], 1200)
    np.testing.assert_allclose(pic.x, x, atol=1e-9)
    np.testing.assert_allclose(pic.y, y, atol=1e-9)
    assert pic.phases.in_order and pic.phases.cycles >= 2
    np.testing.assert_array_equal(pic.phases.labels, detect_phases(x, y, alpha, beta).labels)
    # in the frame the Hessian's (x, y) block is [[2/eta + Y, sqrt(beta) x], [sqrt(beta) x, 0]]
    # (Y = sqrt(beta) y), so S = A/2 + sqrt(A^2/4 + beta x^2) with A = 2/eta + Y
    a = 2 / eta + pic.y
    np.testing.assert_allclose(pic.sharpness, a / 2 + np.sqrt(a**2 / 4 + beta * pic.x**2),
                               rtol=1e-12)


def test_flow_comparison_on_a_damped_cubic_model(rng):
    eta, alpha, beta = 0.1, 1.0, 4.0
    model = CubicModel.at_edge(eta, alpha, beta, 2, damping=2.0, rng=rng)
    w0 = model.local_point([1e-3, -1.0, 1.0, -1.0])
    fc = flow_comparison(model, w0, 1200, eta=eta, every=4, window=2)
    assert fc.t[-1] == 1200 and len(fc.t) == 301
    # GD's iterates against the numpy update map; all three distances start at 0
    ref = reference_run(model, GD(), w0, np.full(1200, eta))
    np.testing.assert_allclose(fc.gd_theta, ref[::4], rtol=1e-12, atol=1e-12)
    assert fc.dist_gd_central[0] == fc.dist_gd_gradient[0] == fc.dist_central_gradient[0] == 0
    np.testing.assert_allclose(fc.central.t, fc.t)
    # on the settled period-2 orbit GD's loss is constant and equals L + tr(Sigma)/eta
    # (exact for this model; the transient is gone by e^-60 at step 800)
    late = fc.t >= 800
    np.testing.assert_allclose(fc.gd_loss_average[late], fc.central.predicted_loss[late],
                               rtol=1e-9)
    np.testing.assert_allclose(fc.dist_gd_central[late], np.sqrt(2 * alpha / beta), rtol=1e-7)
    # gradient flow settles at sharpness 2/eta + alpha/h above the edge, GD and the central
    # flow at the edge
    assert fc.gradient.sharpness[-1] == pytest.approx(2 / eta + 0.5, rel=1e-6)
    assert fc.central.sharpness.max() <= 2 / eta * (1 + 1e-9)
    assert fc.dist_gd_gradient[-1] > fc.dist_gd_central[-1]


def test_moving_average_against_a_loop(rng):
    v = rng.standard_normal(37)
    for w in (1, 2, 5, 37, 50):
        got = moving_average(v, w)
        for i in range(37):
            lo = min(max(i - w // 2, 0), max(37 - w, 0))
            ref = v[lo:lo + w].mean()
            assert got[i] == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="alpha"):
        four_phase_picture(0.1, -1.0, 1.0)
    quad = Quadratic((1.0, 2.0))
    with pytest.raises(ValueError, match="reference"):
        four_phase_run(quad, [0.1, 0.1], 10, eta=1.0)
    with pytest.raises(ValueError, match="alpha"):
        four_phase_run(quad, [0.1, 0.1], 10, eta=1.0, reference=[0.0, 0.0])
    model = CubicModel.at_edge(0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="diverged"):
        flow_comparison(model, model.local_point([1.0, 100.0]), 50, eta=0.1)


def test_the_measured_numbers_quoted_in_the_readme():
    from analysis.self_stabilization import measured_predictions

    m = measured_predictions()
    for case in m.values():
        assert case["phases_in_order"] == 1.0
        # the central flow holds S at 2/eta to its integration tolerance
        assert case["central_flow_max_overshoot"] <= 1e-6
        # L alone misses the oscillation's share tr(Sigma)/eta by an order of magnitude
        assert case["loss_vs_central_L_alone"] > 5
    # exact cubic, settled: rounding; exact cubic over cycles: the O(eta^2 y^2) terms
    # (< 1 %); non-cubic: below 5 % (see tests/minimal_eos/test_flows.py)
    assert m["cubic-damped"]["loss_vs_central_prediction"] < 1e-9
    assert m["cubic-undamped"]["loss_vs_central_prediction"] < 0.01
    assert m["sharpening-valley"]["loss_vs_central_prediction"] < 0.05
    assert m["cubic-undamped"]["mean_x2_vs_tr_sigma"] < 0.005
    assert m["sharpening-valley"]["mean_x2_vs_tr_sigma"] < 0.05
    assert m["cubic-undamped"]["cycles"] >= 5 and m["sharpening-valley"]["cycles"] >= 3
    # gradient flow leaves GD behind, the central flow does not
    for name in ("cubic-undamped", "sharpening-valley"):
        assert m[name]["distance_gd_gradient_end"] > 10 * m[name]["distance_gd_central_end"]
    assert m["cubic-damped"]["distance_gd_central_end"] == pytest.approx(np.sqrt(0.5), rel=1e-7)
