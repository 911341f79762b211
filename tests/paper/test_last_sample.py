"""The cold check of a run's last tracked samples: against a dense Hessian, and its verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from paper import last_sample


def _result(tracked, cold_top, *, estimates=11, refresh=10):
    cold = np.zeros((2, 3, 2))
    cold[:, :, 0] = np.asarray(cold_top, dtype=float)[:, None]
    return {"t": np.array([95, 100]), "tracked": np.asarray(tracked, dtype=float),
            "cold": cold, "residual": np.zeros_like(cold), "estimates": estimates,
            "refresh_every": refresh}


def test_a_jump_the_cold_estimates_confirm_is_real():
    s = last_sample.summary(_result([5.0, 6.0], [5.01, 5.99]))
    assert (s["t_before"], s["t_last"]) == (95, 100)
    assert s["agrees_before"] and s["agrees_last"] and s["jump"] == pytest.approx(0.2)
    text = last_sample.describe("run", s)
    assert "tracking is right at both samples and the jump is real" in text
    small = last_sample.describe("run", last_sample.summary(_result([5.0, 5.2], [5.0, 5.2])))
    assert small.endswith("right at both samples")


def test_a_jump_after_a_missed_eigenvalue_is_in_the_tracking():
    s = last_sample.summary(_result([2.6, 4.35], [4.3, 4.35]))
    assert not s["agrees_before"] and s["agrees_last"] and s["last_cold"]
    text = last_sample.describe("run", s)
    assert "65% higher" in text and "a cold restart of the tracker" in text
    assert "the jump is in the tracking, not in the iterates" in text
    warm = last_sample.summary(_result([2.6, 4.35], [4.3, 4.35], estimates=12))
    assert not warm["last_cold"]
    assert "cold restart" not in last_sample.describe("run", warm)


def test_a_last_value_above_the_cold_estimate_is_an_error_of_the_tracker():
    s = last_sample.summary(_result([5.3, 11.27], [5.3, 5.28]))
    assert s["agrees_before"] and not s["agrees_last"]
    text = last_sample.describe("run", s)
    assert "the last tracked value is 113% above the cold estimate" in text
    assert "(a cold restart of the tracker); the sharpness there is 5.28" in text


@pytest.mark.slow
def test_cold_estimates_at_the_last_iterate_match_a_dense_hessian():
    """A tiny run (seed 0): the cold Lanczos value at the last iterate equals the top
    eigenvalue of the dense Hessian there, and the tracked values are the run's own."""
    import dataclasses

    import torch

    from paper.runs import TRACKING, run_network
    from validation.experiment import Config, Experiment

    config = dataclasses.replace(
        Config(n=60, width=8, steps=23, track_every=5, eta=0.3, checks=("edge",)), **TRACKING)
    d = config.to_dict()
    got = last_sample.run_last_sample({"network": d, "iterations": 60, "starts": 2})
    assert got["t"].tolist() == [20, 23] and got["estimates"] == 6
    ref = run_network(d)
    assert got["tracked"].tolist() == ref["main.sharpness"][-2:].tolist()
    exp = Experiment(config, torch.device("cpu"))
    while exp.t < config.steps + 1:
        exp.step()
    w = exp.runs["main"].state[0]
    eye = torch.eye(exp.p, dtype=w.dtype)
    dense = torch.cat([exp.objective.hvp(w, eye[:, i:i + 256])
                       for i in range(0, exp.p, 256)], 1).double()
    top = torch.linalg.eigvalsh((dense + dense.T) / 2)[-1].item()
    assert got["cold"][1, :, 0] == pytest.approx(top, rel=1e-3)
