"""Numbers the figure texts derive from cached results, against independent routes."""

from __future__ import annotations

import numpy as np
import pytest

from paper.make import fig03_momentum


def test_nesterov_step_size_reads_both_thresholds_and_the_initial_sharpness():
    r = {"main.sharpness_t": np.array([0, 5, 10]), "main.sharpness": np.array([4.2, 4.5, 5.0])}
    got = fig03_momentum.nesterov_step_size(r, 0.4, 0.2, 0.9)
    # Nesterov on a x^2 / 2: closed form (2 + 2 beta) / ((1 + 2 beta) eta)
    assert got["edge_at_shared_eta"] == pytest.approx(3.8 / (2.8 * 0.4), rel=1e-12)
    assert got["edge_at_own_eta"] == pytest.approx(3.8 / (2.8 * 0.2), rel=1e-12)
    assert (got["s0"], got["s0_step"]) == (4.2, 0)
