"""Numbers the figure texts derive from cached results, against independent routes."""

from __future__ import annotations

import numpy as np
import pytest

from paper.make import fig03_momentum, fig14_stochastic


def test_nesterov_step_size_reads_both_thresholds_and_the_initial_sharpness():
    r = {"main.sharpness_t": np.array([0, 5, 10]), "main.sharpness": np.array([4.2, 4.5, 5.0])}
    got = fig03_momentum.nesterov_step_size(r, 0.4, 0.2, 0.9)
    # Nesterov on a x^2 / 2: closed form (2 + 2 beta) / ((1 + 2 beta) eta)
    assert got["edge_at_shared_eta"] == pytest.approx(3.8 / (2.8 * 0.4), rel=1e-12)
    assert got["edge_at_own_eta"] == pytest.approx(3.8 / (2.8 * 0.2), rel=1e-12)
    assert (got["s0"], got["s0_step"]) == (4.2, 0)


def test_stochastic_agreement_counts_points_within_the_band_per_damping():
    from analysis.stochastic_stabilization import GapRow

    def row(damping: float, ratio: float, diverged: int = 0) -> GapRow:
        return GapRow(eta=0.05, alpha=1.0, beta=1.0, damping=damping, q=1.0, sigma_u2=1.0,
                      predicted=0.2, measured=0.2 * ratio, stderr=0.0,
                      relative_error=abs(ratio - 1), x2=0.0, diverged=diverged, runs=4)

    rows = [row(0.0, 1.05), row(0.0, 1.2), row(0.0, 0.95), row(0.0, 1.0, diverged=1),
            row(1.0, -0.5), row(1.0, 1.5)]
    assert fig14_stochastic.agreement(rows) == {0.0: (2, 3), 1.0: (0, 2)}


def test_one_colour_per_method_and_shades_from_light_to_dark():
    from matplotlib.colors import to_rgb

    from paper import style

    assert len(set(style.METHODS.values())) == len(style.METHODS)
    assert style.PREDICTION not in style.METHODS.values()
    for color in style.METHODS.values():
        got = style.shades(color, 4)
        brightness = [sum(c) for c in got]
        assert brightness == sorted(brightness, reverse=True) and len(set(got)) == 4
        # the lightest is 55% of the way to white, the darkest 35% of the way to black
        base = np.array(to_rgb(color))
        assert np.allclose(got[0], base + 0.55 * (1 - base), atol=1e-6)
        assert np.allclose(got[-1], 0.65 * base, atol=1e-6)
    with pytest.raises(ValueError, match="n must"):
        style.shades(style.GD, 0)


def test_the_long_drop_run_is_said_to_stall_or_to_reach_the_edge():
    from paper.make import fig02_drop

    base = {"steps": 2500, "factor": 2.0, "drop_step": 300, "same_as_short": True,
            "edge": 10.0, "s_end": 9.1, "onset": None}
    stalled = fig02_drop._describe_long(base, 1000)
    assert "still does not reach the new 2/η = 10.00" in stalled and "stalls" in stalled
    reached = fig02_drop._describe_long(base | {
        "onset": 1205, "settle": 1385, "overshoot": 1.08, "peak_at": 1370, "plateau": 10.02,
        "plateau_rel": 0.002, "within": 1.0, "within_after_onset": 0.93}, 1000)
    assert "reaches the new 2/η = 10.00 at step 1205 (905 steps after the drop)" in reached
    assert "slower, not stalled: it reaches the edge 205 steps after" in reached
    early = fig02_drop._describe_long(base | {
        "onset": 900, "settle": None, "overshoot": 1.1, "peak_at": 950, "plateau": 10.1,
        "plateau_rel": 0.01, "within": 0.9, "within_after_onset": 0.8}, 1000)
    assert "stays above it to the end" in early and "not stalled" not in early


def test_isolated_samples_are_found_with_their_tracker_restarts():
    from paper.make import fig02_drop

    t = np.arange(0, 101, 5)
    s = np.full(len(t), 5.0)
    s[2], s[10], s[13] = 12.0, 11.0, 9.0  # steps 10 (before `after`), 50 and 65
    s[14] = 6.5  # 9.0 is 1.38 times this neighbour: not isolated
    s[17] = 9.0  # step 85: isolated, not a cold restart (17 % 10)
    loss = np.linspace(1.0, 0.9, 101)
    loss[50] *= 1.02
    r = {"main.sharpness_t": t, "main.sharpness": s, "main.loss": loss, "main.start": 0}
    got = fig02_drop.spikes(r, "main", after=20)
    assert [(x["t"], x["value"], x["cold_restart"]) for x in got] == [(50, 11.0, True),
                                                                       (85, 9.0, False)]
    assert got[0]["neighbours"] == 5.0
    # the loss bump at step 50 lies within one tracking interval of the sample there
    assert got[0]["loss_change"] == pytest.approx(max(loss[50] / loss[49] - 1,
                                                      1 - loss[51] / loss[50]))
